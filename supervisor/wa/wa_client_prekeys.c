/* The one-time prekeys other devices start Signal sessions with: made and
 * stored here, uploaded to the server, refilled when it runs low. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "wa_client_int.h"
#include "wa_crypto.h"

#define PREKEY_UPLOAD_FIRST 812
#define PREKEY_UPLOAD_REFILL 50
#define PREKEY_MIN 5

static void put_be(uint8_t *b, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static int generate_prekeys(struct wa_client *c, size_t want, char *err, size_t errlen)
{
    size_t have_unsent = 0;
    for (size_t i = 0; i < c->nprekeys; i++)
        have_unsent += c->prekeys[i].id >= c->creds.uploaded_upto;
    if (have_unsent >= want)
        return 0;
    size_t add = want - have_unsent;
    if (c->nprekeys + add > WA_STORE_PREKEYS_MAX) {
        /* Keep the newest: older ones were consumed or are long stale. */
        size_t drop = c->nprekeys + add - WA_STORE_PREKEYS_MAX;
        memmove(c->prekeys, c->prekeys + drop, (c->nprekeys - drop) * sizeof *c->prekeys);
        c->nprekeys -= drop;
    }
    struct wa_prekey *k = realloc(c->prekeys, (c->nprekeys + add) * sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->prekeys = k;
    for (size_t i = 0; i < add; i++) {
        struct wa_prekey *p = &c->prekeys[c->nprekeys + i];
        p->id = c->creds.next_prekey_id++;
        if (c->creds.next_prekey_id > 0xFFFFFF)
            c->creds.next_prekey_id = 1; /* ids are 3 bytes on the wire */
        if (wa_crypto_x25519_keypair(p->priv, p->pub) < 0) {
            snprintf(err, errlen, "key generation failed");
            return -1;
        }
    }
    c->nprekeys += add;
    /* Durable before the server can hand them out. */
    if (wa_store_prekeys_save(c->sessions, c->prekeys, c->nprekeys, err, errlen) < 0 ||
        wa_store_save(c->sessions, &c->creds, err, errlen) < 0)
        return -1;
    return 0;
}

static void upload_prekeys(struct wa_client *c, size_t count)
{
    char err[256];
    if (generate_prekeys(c, count, err, sizeof err) < 0) {
        log_error("cannot prepare prekeys", LF_S("error", err));
        return;
    }
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq = wac_iq_new(a, c, "set", "encrypt", id, sizeof id);
    uint8_t b4[4], b1 = 5, b3[3];
    put_be(b4, c->creds.registration_id, 4);
    wa_node_set_bytes(a, wac_child(a, iq, "registration"), b4, 4);
    wa_node_set_bytes(a, wac_child(a, iq, "type"), &b1, 1);
    wa_node_set_bytes(a, wac_child(a, iq, "identity"), c->creds.ident_pub, 32);
    wa_node *list = wac_child(a, iq, "list");
    uint32_t last = c->creds.uploaded_upto;
    size_t sent = 0;
    for (size_t i = 0; i < c->nprekeys && sent < count; i++) {
        if (c->prekeys[i].id < c->creds.uploaded_upto)
            continue;
        wa_node *k = wac_child(a, list, "key");
        put_be(b3, c->prekeys[i].id, 3);
        wa_node_set_bytes(a, wac_child(a, k, "id"), b3, 3);
        wa_node_set_bytes(a, wac_child(a, k, "value"), c->prekeys[i].pub, 32);
        last = c->prekeys[i].id + 1;
        sent++;
    }
    wa_node *skey = wac_child(a, iq, "skey");
    put_be(b3, c->creds.spk_id, 3);
    wa_node_set_bytes(a, wac_child(a, skey, "id"), b3, 3);
    wa_node_set_bytes(a, wac_child(a, skey, "value"), c->creds.spk_pub, 32);
    wa_node_set_bytes(a, wac_child(a, skey, "signature"), c->creds.spk_sig, 64);
    if (wac_send_node(c, iq) == 0) {
        wac_remember_iq(c, id, IQ_PREKEY_UPLOAD); /* marked uploaded when the server confirms */
        log_info("uploading prekeys", LF_I("count", sent), LF_I("upto", last));
    }
    wa_arena_free(a);
}
void wac_prekeys_count(struct wa_client *c, const wa_node *n, int ok)
{
    const wa_node *cnt = wa_node_child(n, "count");
    const char *v = cnt ? wa_node_attr_str(cnt, "value") : NULL;
    long have = v ? strtol(v, NULL, 10) : -1;
    if (!ok || have < 0) {
        log_warn("prekey count query failed");
        return;
    }
    if (have < PREKEY_MIN)
        upload_prekeys(c, c->creds.uploaded_upto <= 1 ? PREKEY_UPLOAD_FIRST : PREKEY_UPLOAD_REFILL);
}

void wac_prekeys_uploaded(struct wa_client *c, int ok)
{
    if (!ok) {
        log_warn("prekey upload refused by the server");
        return;
    }
    /* Every prekey we hold was offered: advance the mark and keep it. */
    uint32_t upto = c->creds.uploaded_upto;
    for (size_t i = 0; i < c->nprekeys; i++)
        if (c->prekeys[i].id + 1 > upto)
            upto = c->prekeys[i].id + 1;
    c->creds.uploaded_upto = upto;
    char err[256];
    if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0)
        log_error("cannot store the prekey mark", LF_S("error", err));
    log_info("prekeys uploaded", LF_I("upto", upto));
}

void wac_prekeys_refill(struct wa_client *c)
{
    upload_prekeys(c, PREKEY_UPLOAD_REFILL);
}
