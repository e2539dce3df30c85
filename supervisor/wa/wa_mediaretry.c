/* Media retry requests and answers (see wa_mediaretry.h). */
#include "wa_mediaretry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proto/mmsretry.pb-c.h"
#include "wa_crypto.h"

#define INFO "WhatsApp Media Retry Notification"

static int retry_key(const uint8_t media_key[32], uint8_t key[32])
{
    return wa_crypto_hkdf_sha256(NULL, 0, media_key, 32, (const uint8_t *)INFO, strlen(INFO), key, 32);
}

wa_node *wa_mediaretry_request(wa_arena *a, const char *msg_id, const char *own_jid, const char *chat_jid,
                               int from_me, const char *participant, const uint8_t media_key[32])
{
    uint8_t key[32], iv[WA_GCM_IV_LEN], sealed[512 + WA_GCM_TAG_LEN];
    wa_node *res = NULL;
    if (!msg_id || !*msg_id || strlen(msg_id) > 256 || !own_jid || !chat_jid)
        return NULL;
    Wapi__Mms__RetryRequest rq = WAPI__MMS__RETRY_REQUEST__INIT;
    rq.stanzaid = (char *)msg_id;
    size_t n = wapi__mms__retry_request__get_packed_size(&rq);
    uint8_t plain[300];
    if (n > sizeof plain)
        return NULL;
    wapi__mms__retry_request__pack(&rq, plain);
    if (retry_key(media_key, key) < 0 || wa_crypto_random(iv, sizeof iv) < 0 ||
        wa_crypto_aes_gcm_seal(key, iv, (const uint8_t *)msg_id, strlen(msg_id), plain, n, sealed) < 0)
        goto done;
    wa_jid to, chat, part;
    wa_node *r = wa_node_new(a, "receipt"), *enc = wa_node_new(a, "encrypt"), *p = wa_node_new(a, "enc_p"),
            *ivn = wa_node_new(a, "enc_iv"), *rmr = wa_node_new(a, "rmr");
    if (!r || !enc || !p || !ivn || !rmr || wa_jid_parse(a, own_jid, &to) != WA_OK ||
        wa_jid_parse(a, chat_jid, &chat) != WA_OK ||
        (participant && wa_jid_parse(a, participant, &part) != WA_OK))
        goto done;
    if (wa_node_add_attr(a, r, "id", msg_id) < 0 || wa_node_add_attr_jid(a, r, "to", &to) < 0 ||
        wa_node_add_attr(a, r, "type", "server-error") < 0 ||
        wa_node_set_bytes(a, p, sealed, n + WA_GCM_TAG_LEN) < 0 ||
        wa_node_set_bytes(a, ivn, iv, sizeof iv) < 0 || wa_node_add_child(a, enc, p) < 0 ||
        wa_node_add_child(a, enc, ivn) < 0 || wa_node_add_attr_jid(a, rmr, "jid", &chat) < 0 ||
        wa_node_add_attr(a, rmr, "from_me", from_me ? "true" : "false") < 0 ||
        (participant && wa_node_add_attr_jid(a, rmr, "participant", &part) < 0) ||
        wa_node_add_child(a, r, enc) < 0 || wa_node_add_child(a, r, rmr) < 0)
        goto done;
    res = r;
done:
    OPENSSL_cleanse(key, sizeof key);
    return res;
}

const char *wa_mediaretry_id(const wa_node *n)
{
    const char *type = n ? wa_node_attr_str(n, "type") : NULL;
    if (!type || strcmp(n->tag, "notification") != 0 || strcmp(type, "mediaretry") != 0)
        return NULL;
    const char *id = wa_node_attr_str(n, "id");
    return id && *id && strlen(id) <= 256 ? id : NULL;
}

static const wa_node *bytes_child(const wa_node *n, const char *tag)
{
    const wa_node *c = n ? wa_node_child(n, tag) : NULL;
    return c && c->content == WA_CONTENT_BYTES ? c : NULL;
}

/* A JID attribute (written as a JID or as text) into out; "" when absent
 * or longer than out. */
static void copy_jid_attr(const wa_node *n, const char *name, char *out, size_t cap)
{
    const char *v = wa_node_attr_text(n, name, out, cap);
    if (!v || strlen(v) + 1 >= cap)
        out[0] = 0;
    else if (v != out)
        memmove(out, v, strlen(v) + 1);
}

int wa_mediaretry_parse(const wa_node *n, struct wa_mediaretry_note *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *id = wa_mediaretry_id(n);
    const wa_node *rmr = id ? wa_node_child(n, "rmr") : NULL;
    if (!id || !rmr) {
        snprintf(err, errlen, "not a mediaretry notification with an id and <rmr>");
        return -1;
    }
    memcpy(out->id, id, strlen(id) + 1);
    copy_jid_attr(rmr, "jid", out->chat, sizeof out->chat);
    copy_jid_attr(rmr, "participant", out->participant, sizeof out->participant);
    const char *fm = wa_node_attr_str(rmr, "from_me");
    out->from_me = fm && !strcmp(fm, "true");
    if (!out->chat[0]) {
        snprintf(err, errlen, "mediaretry <rmr> without a usable jid");
        return -1;
    }
    const wa_node *e = wa_node_child(n, "error");
    if (e) {
        const char *code = wa_node_attr_str(e, "code");
        int c = code ? atoi(code) : 0;
        out->phone_error = c > 0 ? c : -1;
        return 0;
    }
    const wa_node *enc = wa_node_child(n, "encrypt");
    const wa_node *p = bytes_child(enc, "enc_p"), *iv = bytes_child(enc, "enc_iv");
    if (!p || !iv || iv->nbytes != WA_GCM_IV_LEN || p->nbytes < WA_GCM_TAG_LEN ||
        p->nbytes > WA_MEDIARETRY_MAX_SEALED) {
        snprintf(err, errlen, "mediaretry without a well-formed <encrypt>");
        return -1;
    }
    memcpy(out->iv, iv->bytes, WA_GCM_IV_LEN);
    memcpy(out->sealed, p->bytes, p->nbytes);
    out->nsealed = p->nbytes;
    return 0;
}

int wa_mediaretry_decrypt(const struct wa_mediaretry_note *note, const uint8_t media_key[32],
                          struct wa_mediaretry_answer *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (note->phone_error) {
        out->result = WA_MR_PHONE_ERROR;
        out->phone_error = note->phone_error;
        return 0;
    }
    if (note->nsealed < WA_GCM_TAG_LEN || note->nsealed > WA_MEDIARETRY_MAX_SEALED) {
        snprintf(err, errlen, "mediaretry without a sealed answer");
        return -1;
    }
    uint8_t key[32], plain[WA_MEDIARETRY_MAX_SEALED];
    int ok = retry_key(media_key, key) == 0 &&
             wa_crypto_aes_gcm_open(key, note->iv, (const uint8_t *)note->id, strlen(note->id), note->sealed,
                                    note->nsealed, plain) == 0;
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        snprintf(err, errlen, "mediaretry does not decrypt under this media key");
        return -1;
    }
    size_t plen = note->nsealed - WA_GCM_TAG_LEN;
    Wapi__Mms__RetryAnswer *a = wapi__mms__retry_answer__unpack(NULL, plen, plain);
    if (!a) {
        snprintf(err, errlen, "mediaretry answer is not a protobuf");
        return -1;
    }
    int rc = -1;
    if (a->stanzaid && strcmp(a->stanzaid, note->id) != 0) {
        snprintf(err, errlen, "mediaretry answer is about another message");
    } else {
        out->result = a->has_result ? (int)a->result : WA_MR_GENERAL_ERROR;
        if (out->result == WA_MR_SUCCESS) {
            if (!a->directpath || a->directpath[0] != '/' || strlen(a->directpath) >= sizeof out->direct_path)
                snprintf(err, errlen, "mediaretry success without a usable direct path");
            else {
                snprintf(out->direct_path, sizeof out->direct_path, "%s", a->directpath);
                rc = 0;
            }
        } else {
            rc = 0;
        }
    }
    wapi__mms__retry_answer__free_unpacked(a, NULL);
    return rc;
}

int wa_mediaretry_open(const wa_node *n, const uint8_t media_key[32], struct wa_mediaretry_answer *out,
                       char *err, size_t errlen)
{
    struct wa_mediaretry_note *note = malloc(sizeof *note);
    if (!note) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = wa_mediaretry_parse(n, note, err, errlen);
    if (rc == 0)
        rc = wa_mediaretry_decrypt(note, media_key, out, err, errlen);
    else
        memset(out, 0, sizeof *out);
    free(note);
    return rc;
}
