/* The Signal store against libsignal-protocol-c itself: two parties (each
 * with a store in its own directory) start a session from a prekey bundle,
 * exchange pkmsg and msg both ways; the used prekey disappears from
 * prekeys.bin; state survives a reopen only once flushed; a corrupt file is
 * refused; a changed remote identity is accepted and counted; padding and the
 * Message protobuf round-trip. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_signal_crypto.h"
#include "supervisor/wa/wa_signal_store.h"
#include "supervisor/wa/wa_store.h"
#include "t.h"

struct party {
    char dir[256];
    struct wa_creds creds;
    struct wa_prekey *pk;
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
    signal_protocol_store_context_destroy(p->sc);
    p->sc = NULL;
    wa_signal_store_free(p->st);
    p->st = NULL;
}

static int party_new(struct party *p, const char *base, const char *name, size_t nprekeys)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/%s", base, name);
    if (wa_store_new_creds(&p->creds) < 0)
        return -1;
    p->pk = calloc(nprekeys, sizeof *p->pk);
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

static void bundle_of(const struct party *p, size_t prekey_index, struct wa_bundle *b)
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

static int roundtrip(struct party *from, const char *from_name, struct party *to, const char *to_name,
                     const char *text, int *type_out)
{
    uint8_t *padded, *ct, *pt;
    size_t plen, clen, tlen;
    int type;
    wa_msg_pad((const uint8_t *)text, strlen(text), &padded, &plen);
    int r = wa_msg_encrypt(from->sc, from->g, to_name, 0, padded, plen, &type, &ct, &clen);
    free(padded);
    if (r != 0)
        return r;
    r = wa_msg_decrypt(to->sc, to->g, from_name, 0, type, ct, clen, &pt, &tlen);
    free(ct);
    if (r != 0)
        return r;
    long n = wa_msg_unpad(pt, tlen);
    int ok = n == (long)strlen(text) && memcmp(pt, text, (size_t)n) == 0;
    free(pt);
    if (type_out)
        *type_out = type;
    return ok ? 0 : -999;
}

int main(void)
{
    char base[] = "/tmp/wapi-sigstore-XXXXXX";
    if (!mkdtemp(base))
        return 1;
    struct party a, b;
    T_CHECK(party_new(&a, base, "alice", 5) == 0, "alice store opens on a fresh directory");
    T_CHECK(party_new(&b, base, "bob", 3) == 0, "bob store opens on a fresh directory");
    T_EQ_INT(wa_signal_store_session_count(a.st), 0, "no sessions at first");

    /* Bob starts a session from Alice's bundle (her prekey 2). */
    struct wa_bundle bun;
    bundle_of(&a, 1, &bun);
    struct wa_bundle bad = bun;
    bad.spk_sig[5] ^= 1;
    T_CHECK(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bad) != 0, "bundle with a bad signed-prekey signature refused");
    T_EQ_INT(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bun), 0, "session from a prekey bundle");
    int type = -1;
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "hello alice", &type), 0, "pkmsg bob -> alice decrypts");
    T_EQ_INT(type, WA_ENC_PKMSG, "first message is a pkmsg");
    T_CHECK(wa_signal_store_dirty(a.st), "alice has unflushed changes after decrypting");
    T_EQ_INT(a.npk, 5, "used prekey still held until flush");

    /* Not flushed: a reopen sees the old state (the message could be decrypted again). */
    party_close(&a);
    T_EQ_INT(party_open(&a), 0, "alice reopens");
    T_EQ_INT(wa_signal_store_session_count(a.st), 0, "unflushed session is not on disk");

    /* Again, and flush this time. */
    party_close(&b);
    char err[256];
    T_EQ_INT(wa_signal_store_wipe(b.dir), 0, "bob's signal file wiped");
    T_EQ_INT(party_open(&b), 0, "bob reopens empty");
    T_EQ_INT(wa_msg_session_from_bundle(b.sc, b.g, "15550001", 0, &bun), 0, "bob starts over");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "hello again", NULL), 0, "pkmsg decrypts");
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "alice flushes");
    T_EQ_INT(wa_signal_store_flush(b.st, err, sizeof err), 0, "bob flushes");
    T_EQ_INT(a.npk, 4, "used prekey removed from memory");
    int gone = 1;
    for (size_t i = 0; i < a.npk; i++)
        gone &= a.pk[i].id != 2;
    T_CHECK(gone, "the used prekey is the one removed");
    struct wa_prekey *ondisk = NULL;
    size_t nd = 0;
    T_EQ_INT(wa_store_prekeys_load(a.dir, &ondisk, &nd, err, sizeof err), 1, "prekeys.bin reloads");
    T_EQ_INT(nd, 4, "prekeys.bin lost the used prekey durably");
    free(ondisk);

    party_close(&a);
    party_close(&b);
    T_EQ_INT(party_open(&a), 0, "alice reopens from disk");
    T_EQ_INT(party_open(&b), 0, "bob reopens from disk");
    T_CHECK(wa_signal_store_has_session(a.st, "15550002", 0), "alice's session with bob survived");
    T_EQ_INT(roundtrip(&a, "15550001", &b, "15550002", "reply from alice", &type), 0, "alice -> bob after reopen");
    T_EQ_INT(type, WA_ENC_MSG, "reply is a msg");
    T_EQ_INT(roundtrip(&b, "15550002", &a, "15550001", "and back", &type), 0, "bob -> alice msg");
    T_EQ_INT(type, WA_ENC_MSG, "bob's next is a msg");

    /* A replayed ciphertext is a duplicate. */
    uint8_t *pd, *ct, *pt;
    size_t pl, cl, tl;
    wa_msg_pad((const uint8_t *)"once", 4, &pd, &pl);
    wa_msg_encrypt(b.sc, b.g, "15550001", 0, pd, pl, &type, &ct, &cl);
    free(pd);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl), 0, "decrypts once");
    free(pt);
    T_EQ_INT(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl), SG_ERR_DUPLICATE_MESSAGE,
             "the same ciphertext again is a duplicate");
    ct[cl / 2] ^= 0x40;
    T_CHECK(wa_msg_decrypt(a.sc, a.g, "15550002", 0, type, ct, cl, &pt, &tl) < 0, "tampered ciphertext fails");
    free(ct);
    T_EQ_INT(wa_signal_store_flush(a.st, err, sizeof err), 0, "flush");

    /* A changed identity for a known address (bob reinstalled) is accepted and
     * counted, as WhatsApp's clients do; the new key replaces the old one. */
    struct party c;
    T_CHECK(party_new(&c, base, "mallory", 2) == 0, "third party");
    struct wa_bundle fresh;
    bundle_of(&a, 2, &fresh); /* an unused one-time prekey of alice's */
    T_EQ_INT(wa_msg_session_from_bundle(c.sc, c.g, "15550001", 0, &fresh), 0, "the new install builds a session to alice");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 0, "no identity change yet");
    T_EQ_INT(roundtrip(&c, "15550002", &a, "15550001", "i am bob, reinstalled", NULL), 0,
             "a message under a changed identity decrypts");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 1, "the identity change is counted");
    T_EQ_INT(roundtrip(&c, "15550002", &a, "15550001", "again", NULL), 0, "and later messages too");
    T_EQ_INT((int)wa_signal_store_identity_changes(a.st), 1, "the new key is now the known one");
    T_EQ_INT(wa_signal_store_reload(a.st, err, sizeof err), 0, "reload drops unflushed changes");

    /* Corrupt file: refused, not replaced. */
    party_close(&a);
    char path[400];
    snprintf(path, sizeof path, "%s/signal.bin", a.dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, 20, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 20, SEEK_SET);
    fputc(ch ^ 0xff, f);
    fclose(f);
    struct stat s1, s2;
    stat(path, &s1);
    err[0] = 0;
    struct wa_signal_store *bad_st = wa_signal_store_open(a.dir, &a.creds, &a.pk, &a.npk, err, sizeof err);
    T_CHECK(bad_st == NULL, "corrupt signal.bin is refused");
    T_CHECK(strstr(err, "corrupt") != NULL, "the error says corrupt");
    stat(path, &s2);
    T_CHECK(s1.st_size == s2.st_size && s1.st_mtime == s2.st_mtime, "corrupt file left as it was");
    truncate(path, 30);
    T_CHECK(wa_signal_store_open(a.dir, &a.creds, &a.pk, &a.npk, err, sizeof err) == NULL, "truncated file refused");

    /* Padding. */
    uint8_t x[3] = {'a', 2, 2};
    T_EQ_INT(wa_msg_unpad(x, 3), 1, "unpad 2");
    uint8_t y[3] = {'a', 1, 2};
    T_EQ_INT(wa_msg_unpad(y, 3), -1, "inconsistent padding refused");
    uint8_t z[2] = {'a', 9};
    T_EQ_INT(wa_msg_unpad(z, 2), -1, "padding longer than the data refused");
    T_EQ_INT(wa_msg_unpad(z, 0), -1, "empty refused");

    /* Protobuf. */
    uint8_t *m;
    size_t ml;
    struct wa_msg_content mc;
    wa_msg_build_text("hi there", NULL, NULL, NULL, &m, &ml);
    T_EQ_INT(wa_msg_parse(m, ml, &mc), 0, "conversation parses");
    T_CHECK(mc.kind == WA_MSG_TEXT && mc.text && !strcmp(mc.text, "hi there") && !mc.reply_to, "conversation text");
    T_EQ_STR(mc.subtype, "conversation", "subtype conversation");
    wa_msg_content_free(&mc);
    free(m);
    wa_msg_build_text("quoted", "3EB0ABC", "1555@s.whatsapp.net", "1666@s.whatsapp.net", &m, &ml);
    T_EQ_INT(wa_msg_parse(m, ml, &mc), 0, "reply in deviceSentMessage parses");
    T_EQ_STR(mc.text, "quoted", "reply text");
    T_EQ_STR(mc.reply_to, "3EB0ABC", "reply_to");
    T_EQ_STR(mc.dsm_dest, "1666@s.whatsapp.net", "deviceSentMessage destination");
    wa_msg_content_free(&mc);
    free(m);
    /* reactionMessage{key{id "X1"}, text "👍"} by hand: field 46 = tag 0x72 0x02. */
    const uint8_t react[] = {0xf2, 0x02, 0x0c, 0x0a, 0x04, 0x1a, 0x02, 'X', '1', 0x12, 0x04, 0xf0, 0x9f, 0x91, 0x8d};
    T_EQ_INT(wa_msg_parse(react, sizeof react, &mc), 0, "reaction parses");
    T_CHECK(mc.kind == WA_MSG_REACTION && mc.target && !strcmp(mc.target, "X1"), "reaction target");
    wa_msg_content_free(&mc);
    /* protocolMessage{key{id "R"}, type 0} */
    const uint8_t revoke[] = {0x62, 0x07, 0x0a, 0x03, 0x1a, 0x01, 'R', 0x10, 0x00};
    T_EQ_INT(wa_msg_parse(revoke, sizeof revoke, &mc), 0, "revoke parses");
    T_CHECK(mc.kind == WA_MSG_REVOKE && mc.target && !strcmp(mc.target, "R"), "revoke target");
    wa_msg_content_free(&mc);
    /* imageMessage (field 3) is unsupported, by name. */
    const uint8_t img[] = {0x1a, 0x02, 0x0a, 0x00};
    T_EQ_INT(wa_msg_parse(img, sizeof img, &mc), 0, "image parses");
    T_CHECK(mc.kind == WA_MSG_UNSUPPORTED && mc.subtype && !strcmp(mc.subtype, "imageMessage"), "image is unsupported/imageMessage");
    wa_msg_content_free(&mc);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    T_EQ_INT(wa_msg_parse(junk, sizeof junk, &mc), -1, "junk is no Message");

    party_close(&b);
    party_close(&c);
    struct party *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        signal_context_destroy(all[i]->g);
        free(all[i]->pk);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    if (system(cmd) != 0)
        return 1;
    T_DONE();
}
