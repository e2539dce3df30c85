/* Media retry: the request receipt's shape and its sealed id, opened here
 * with OpenSSL's own HKDF and AES-GCM; answers sealed the same way and read
 * back (success with its path, not found, the phone's error), and every way
 * an answer can be wrong. */
#include "supervisor/wa/wa_mediaretry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "t.h"

static void ref_key(const uint8_t mk[32], uint8_t out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
                      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)mk, 32),
                      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                        (void *)"WhatsApp Media Retry Notification", 33),
                      OSSL_PARAM_construct_end()};
    EVP_KDF_derive(c, out, 32, p);
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
}

/* AES-256-GCM with the tag appended; enc 0 returns -1 on a bad tag. */
static int gcm(int enc, const uint8_t key[32], const uint8_t iv[12], const char *ad, const uint8_t *in, int n,
               uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l = 0, ok;
    EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv, enc);
    EVP_CipherUpdate(c, NULL, &l, (const uint8_t *)ad, (int)strlen(ad));
    if (enc) {
        EVP_CipherUpdate(c, out, &l, in, n);
        ok = EVP_CipherFinal_ex(c, out + l, &l) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + n) == 1;
    } else {
        EVP_CipherUpdate(c, out, &l, in, n - 16);
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + n - 16));
        ok = EVP_CipherFinal_ex(c, out + l, &l) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* protobuf by hand: field 1 id, field 2 path, field 3 result (each optional). */
static size_t answer_pb(uint8_t *b, const char *id, const char *path, int result)
{
    size_t n = 0;
    if (id) {
        b[n++] = 0x0a, b[n++] = (uint8_t)strlen(id);
        memcpy(b + n, id, strlen(id)), n += strlen(id);
    }
    if (path) {
        b[n++] = 0x12, b[n++] = (uint8_t)strlen(path);
        memcpy(b + n, path, strlen(path)), n += strlen(path);
    }
    if (result >= 0)
        b[n++] = 0x18, b[n++] = (uint8_t)result;
    return n;
}

/* <notification type=mediaretry id><rmr/><encrypt><enc_p/><enc_iv/></encrypt></notification>
 * sealed under mk with ad as associated data. */
static wa_node *notification(wa_arena *a, const char *id, const uint8_t mk[32], const char *ad,
                             const uint8_t *pb, size_t pbn, size_t ivlen, int flip)
{
    uint8_t key[32], iv[12], sealed[512];
    ref_key(mk, key);
    RAND_bytes(iv, sizeof iv);
    gcm(1, key, iv, ad, pb, (int)pbn, sealed);
    if (flip)
        sealed[0] ^= 1;
    wa_node *n = wa_node_new(a, "notification"), *rmr = wa_node_new(a, "rmr"),
            *enc = wa_node_new(a, "encrypt"), *p = wa_node_new(a, "enc_p"), *v = wa_node_new(a, "enc_iv");
    wa_node_add_attr(a, n, "type", "mediaretry");
    wa_node_add_attr(a, n, "id", id);
    wa_node_add_attr(a, rmr, "jid", "15550001111@s.whatsapp.net");
    wa_node_set_bytes(a, p, sealed, pbn + 16);
    wa_node_set_bytes(a, v, iv, ivlen);
    wa_node_add_child(a, enc, p);
    wa_node_add_child(a, enc, v);
    wa_node_add_child(a, n, rmr);
    wa_node_add_child(a, n, enc);
    return n;
}

int main(void)
{
    wa_arena *a = wa_arena_new();
    uint8_t mk[32], other[32], key[32], pb[256], plain[256];
    RAND_bytes(mk, sizeof mk);
    memcpy(other, mk, 32);
    other[0] ^= 0x80;
    const char *id = "3EB0C0FFEE00112233";

    wa_node *r =
        wa_mediaretry_request(a, id, "15559990000@s.whatsapp.net", "15550001111@s.whatsapp.net", 0, NULL, mk);
    char buf[80];
    T_CHECK(r && !strcmp(r->tag, "receipt") && !strcmp(wa_node_attr_str(r, "id"), id) &&
                !strcmp(wa_node_attr_str(r, "type"), "server-error") &&
                !strcmp(wa_node_attr_text(r, "to", buf, sizeof buf), "15559990000@s.whatsapp.net"),
            "the request: <receipt id type=server-error to=our account>");
    const wa_node *rmr = r ? wa_node_child(r, "rmr") : NULL;
    T_CHECK(rmr && !strcmp(wa_node_attr_text(rmr, "jid", buf, sizeof buf), "15550001111@s.whatsapp.net") &&
                !strcmp(wa_node_attr_str(rmr, "from_me"), "false") && !wa_node_attr(rmr, "participant"),
            "<rmr jid=the chat from_me=false>, no participant outside groups");
    const wa_node *enc = r ? wa_node_child(r, "encrypt") : NULL;
    const wa_node *p = enc ? wa_node_child(enc, "enc_p") : NULL,
                  *iv = enc ? wa_node_child(enc, "enc_iv") : NULL;
    T_CHECK(p && iv && p->content == WA_CONTENT_BYTES && iv->content == WA_CONTENT_BYTES && iv->nbytes == 12,
            "<encrypt><enc_p/><enc_iv/> (12 bytes)</encrypt>");
    ref_key(mk, key);
    int opened = p && iv && gcm(0, key, iv->bytes, id, p->bytes, (int)p->nbytes, plain) == 0;
    T_CHECK(
        opened && p->nbytes - 16 == 2 + strlen(id) && plain[0] == 0x0a && plain[1] == strlen(id) &&
            !memcmp(plain + 2, id, strlen(id)),
        "enc_p opens under HKDF(media key, 'WhatsApp Media Retry Notification') with the id as AD: {1: id}");
    T_CHECK(p && iv && gcm(0, key, iv->bytes, "another", p->bytes, (int)p->nbytes, plain) == -1,
            "and not with another id as AD");
    wa_node *g = wa_mediaretry_request(a, id, "15559990000@s.whatsapp.net", "120363000000000001@g.us", 1,
                                       "15550002222@s.whatsapp.net", mk);
    rmr = g ? wa_node_child(g, "rmr") : NULL;
    T_CHECK(rmr && !strcmp(wa_node_attr_str(rmr, "from_me"), "true") &&
                !strcmp(wa_node_attr_text(rmr, "participant", buf, sizeof buf), "15550002222@s.whatsapp.net"),
            "in a group: from_me and the participant");
    T_CHECK(
        !wa_mediaretry_request(a, "", "15559990000@s.whatsapp.net", "x@s.whatsapp.net", 0, NULL, mk) &&
            !wa_mediaretry_request(a, NULL, "15559990000@s.whatsapp.net", "x@s.whatsapp.net", 0, NULL, mk),
        "no id: no request");

    struct wa_mediaretry_answer ans;
    char err[200];
    const char *path = "/v/t62.7118-24/99_n.enc?ccb=11-4&oh=01_y&oe=6A000000";
    size_t n = answer_pb(pb, id, path, 1);
    wa_node *ok = notification(a, id, mk, id, pb, n, 12, 0);
    T_CHECK(wa_mediaretry_id(ok) && !strcmp(wa_mediaretry_id(ok), id), "the notification's id is read first");
    T_CHECK(wa_mediaretry_open(ok, mk, &ans, err, sizeof err) == 0 && ans.result == WA_MR_SUCCESS &&
                !strcmp(ans.direct_path, path),
            "success: the new direct path");
    n = answer_pb(pb, id, NULL, 2);
    T_CHECK(wa_mediaretry_open(notification(a, id, mk, id, pb, n, 12, 0), mk, &ans, err, sizeof err) == 0 &&
                ans.result == WA_MR_NOT_FOUND,
            "not found: told");
    wa_node *e = wa_node_new(a, "notification"), *ec = wa_node_new(a, "error");
    wa_node_add_attr(a, e, "type", "mediaretry");
    wa_node_add_attr(a, e, "id", id);
    wa_node *ermr = wa_node_new(a, "rmr");
    wa_node_add_attr(a, ermr, "jid", "15550001111@s.whatsapp.net");
    wa_node_add_attr(a, ermr, "from_me", "false");
    wa_node_add_child(a, e, ermr);
    wa_node_add_attr(a, ec, "code", "2");
    wa_node_add_child(a, e, ec);
    T_CHECK(wa_mediaretry_open(e, mk, &ans, err, sizeof err) == 0 && ans.result == WA_MR_PHONE_ERROR &&
                ans.phone_error == 2,
            "<error code=2>: the phone no longer has it");

    int bad = 0, cases = 0;
#define BAD(node, key, why)                                                                                  \
    do {                                                                                                     \
        cases++;                                                                                             \
        if (wa_mediaretry_open((node), (key), &ans, err, sizeof err) == -1 && strstr(err, (why)))            \
            bad++;                                                                                           \
        else                                                                                                 \
            printf("# case %d: %s\n", cases, err);                                                           \
    } while (0)
    n = answer_pb(pb, id, path, 1);
    BAD(notification(a, id, mk, id, pb, n, 12, 0), other, "does not decrypt");
    BAD(notification(a, id, mk, "3EB0OTHER", pb, n, 12, 0), mk, "does not decrypt");
    BAD(notification(a, id, mk, id, pb, n, 12, 1), mk, "does not decrypt");
    BAD(notification(a, id, mk, id, pb, n, 11, 0), mk, "well-formed");
    size_t n2 = answer_pb(pb, "3EB0OTHER", path, 1);
    BAD(notification(a, id, mk, id, pb, n2, 12, 0), mk, "another message");
    n2 = answer_pb(pb, id, NULL, 1);
    BAD(notification(a, id, mk, id, pb, n2, 12, 0), mk, "direct path");
    n2 = answer_pb(pb, id, "relative/path", 1);
    BAD(notification(a, id, mk, id, pb, n2, 12, 0), mk, "direct path");
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    BAD(notification(a, id, mk, id, junk, sizeof junk, 12, 0), mk, "not a protobuf");
    wa_node *norm = notification(a, id, mk, id, pb, n, 12, 0);
    norm->children[0]->tag = "xrmr";
    BAD(norm, mk, "not a mediaretry");
    wa_node *nojid = notification(a, id, mk, id, pb, n, 12, 0);
    nojid->children[0]->nattrs = 0;
    BAD(nojid, mk, "usable jid");
    T_CHECK(bad == cases,
            "refused with a reason: another key, another id as AD, a flipped byte, an 11-byte IV, an answer "
            "about another message, success without a path or with a relative one, junk, no <rmr>, <rmr> "
            "without a jid");

    struct wa_mediaretry_note note;
    n = answer_pb(pb, id, path, 1);
    wa_node *g2 = notification(a, id, mk, id, pb, n, 12, 0);
    wa_node_add_attr(a, g2->children[0], "participant", "15550002222@s.whatsapp.net");
    wa_node_add_attr(a, g2->children[0], "from_me", "true");
    int parsed = wa_mediaretry_parse(g2, &note, err, sizeof err) == 0;
    T_CHECK(parsed && !strcmp(note.id, id) && !strcmp(note.chat, "15550001111@s.whatsapp.net") &&
                !strcmp(note.participant, "15550002222@s.whatsapp.net") && note.from_me &&
                !note.phone_error && note.nsealed == n + 16,
            "parsed: id, chat, participant, from_me and the sealed answer copied out of the stanza");
    wa_node *wire = notification(a, id, mk, id, pb, n, 12, 0);
    wa_jid pj;
    wire->children[0]->nattrs = 0;
    int jid_ok = wa_jid_parse(a, "15550001111@s.whatsapp.net", &pj) == WA_OK &&
                 wa_node_add_attr_jid(a, wire->children[0], "jid", &pj) == 0;
    struct wa_mediaretry_note wn;
    T_CHECK(jid_ok && wa_mediaretry_parse(wire, &wn, err, sizeof err) == 0 &&
                !strcmp(wn.chat, "15550001111@s.whatsapp.net"),
            "<rmr jid> as the server writes it (a JID, not a string) is read");
    wa_arena_free(a);
    a = wa_arena_new(); /* the stanza is gone: the copy still opens */
    T_CHECK(parsed && wa_mediaretry_decrypt(&note, mk, &ans, err, sizeof err) == 0 &&
                ans.result == WA_MR_SUCCESS && !strcmp(ans.direct_path, path),
            "and opens after the stanza is freed");
    T_CHECK(parsed && wa_mediaretry_decrypt(&note, other, &ans, err, sizeof err) == -1,
            "not under another key");
    wa_node *nt = wa_node_new(a, "notification");
    wa_node_add_attr(a, nt, "type", "devices");
    T_CHECK(!wa_mediaretry_id(nt) && !wa_mediaretry_id(NULL), "other notifications are not it");
    wa_arena_free(a);
    T_DONE();
}
