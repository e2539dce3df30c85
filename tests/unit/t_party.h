/* For the unit tests of the WhatsApp layer: a party with a Signal store of
 * its own in a directory (fresh creds and one-time prekeys), and its prekey
 * bundle as the server hands it to whoever starts a session with it. */
#ifndef WAPI_T_PARTY_H
#define WAPI_T_PARTY_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_signal_crypto.h"
#include "supervisor/wa/wa_signal_store.h"
#include "supervisor/wa/wa_store.h"

struct party {
    char dir[256];
    struct wa_creds creds;
    struct wa_prekey *pk; /* borrowed by the store: a flush removes the used ones */
    size_t npk;
    struct wa_signal_store *st;
    signal_context *g;
    signal_protocol_store_context *sc;
};

static int party_open(struct party *p)
{
    char err[256];
    p->st = wa_signal_store_open(p->dir, &p->creds, &p->pk, &p->npk, err, sizeof err);
    if (!p->st) {
        printf("# open: %s\n", err);
        return -1;
    }
    return wa_signal_store_context(p->st, p->g, &p->sc);
}

static void party_close(struct party *p)
{
    if (p->sc)
        signal_protocol_store_context_destroy(p->sc);
    p->sc = NULL;
    wa_signal_store_free(p->st);
    p->st = NULL;
}

/* A new party in parent/name with nprekeys one-time prekeys (ids 1..). */
static int party_new(struct party *p, const char *parent, const char *name, size_t nprekeys)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/%s", parent, name);
    if (wa_store_new_creds(&p->creds) < 0)
        return -1;
    p->pk = calloc(nprekeys, sizeof *p->pk);
    if (!p->pk)
        return -1;
    for (size_t i = 0; i < nprekeys; i++) {
        p->pk[i].id = (uint32_t)i + 1;
        wa_crypto_x25519_keypair(p->pk[i].priv, p->pk[i].pub);
    }
    p->npk = nprekeys;
    char err[256];
    if (wa_store_save(p->dir, &p->creds, err, sizeof err) < 0 ||
        wa_store_prekeys_save(p->dir, p->pk, p->npk, err, sizeof err) < 0)
        return -1;
    p->g = wa_signal_context_new();
    return party_open(p);
}

/* Closed, and all of it freed (its files stay). */
static void party_free(struct party *p)
{
    party_close(p);
    if (p->g)
        signal_context_destroy(p->g);
    p->g = NULL;
    free(p->pk);
    p->pk = NULL;
}

/* p's bundle with its prekey at index prekey_index of p->pk (read it before
 * a flush of p's store removes a used one). */
static inline void bundle_of(const struct party *p, size_t prekey_index, struct wa_bundle *b)
{
    memset(b, 0, sizeof *b);
    b->registration_id = p->creds.registration_id;
    memcpy(b->identity, p->creds.ident_pub, 32);
    b->spk_id = p->creds.spk_id;
    memcpy(b->spk, p->creds.spk_pub, 32);
    memcpy(b->spk_sig, p->creds.spk_sig, 64);
    b->has_prekey = 1;
    b->prekey_id = p->pk[prekey_index].id;
    memcpy(b->prekey, p->pk[prekey_index].pub, 32);
}

#endif
