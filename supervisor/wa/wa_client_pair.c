/* Pairing this companion with a phone: by QR code (pair-device, then
 * pair-success) and by phone number (a linking code typed on the phone,
 * then companion_hello / primary_hello / companion_finish): the part of
 * the client that runs until the session has an account. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa_offload.h"
#include "common/log.h"
#include "proto/adv.pb-c.h"
#include "wa_client_int.h"
#include "wa_crypto.h"

/* ---- pairing by QR code ---- */

void wac_pair_qr_clear(struct wa_client *c)
{
    c->nrefs = c->ref_idx = 0;
    evtimer_del(c->qr_timer);
    if (c->ev.on_qr)
        c->ev.on_qr(c->arg, NULL);
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void show_qr(struct wa_client *c)
{
    if (c->ref_idx >= c->nrefs) {
        /* Every ref shown and none scanned: WhatsApp expects us to go away. */
        wac_halt(c, WA_STOPPED, "QR code not scanned in time");
        return;
    }
    char noise[64], ident[64], adv[64], qr[512];
    b64(c->creds.noise_pub, 32, noise);
    b64(c->creds.ident_pub, 32, ident);
    b64(c->creds.adv_secret, 32, adv);
    snprintf(qr, sizeof qr, "%s,%s,%s,%s", c->refs[c->ref_idx], noise, ident, adv);
    unsigned secs = c->ref_idx == 0 ? c->cfg.qr_first_s : c->cfg.qr_next_s;
    c->ref_idx++;
    wac_set_state(c, WA_QR, "");
    if (c->ev.on_qr)
        c->ev.on_qr(c->arg, qr);
    struct timeval tv = {secs, 0};
    evtimer_add(c->qr_timer, &tv);
}

void wac_pair_on_qr_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    show_qr(arg);
}

void wac_pair_device(struct wa_client *c, const wa_node *iq, const wa_node *pd)
{
    wac_send_iq_result(c, iq);
    c->nrefs = c->ref_idx = 0;
    if (pd->content == WA_CONTENT_LIST)
        for (uint32_t i = 0; i < pd->nchildren && c->nrefs < MAX_REFS; i++) {
            const wa_node *r = pd->children[i];
            if (strcmp(r->tag, "ref") != 0)
                continue;
            size_t n = r->content == WA_CONTENT_BYTES ? r->nbytes
                       : r->content == WA_CONTENT_STR ? strlen(r->str)
                                                      : 0;
            const char *p = r->content == WA_CONTENT_BYTES ? (const char *)r->bytes : r->str;
            if (n == 0 || n >= sizeof c->refs[0] || memchr(p, ',', n) || memchr(p, '\0', n))
                continue;
            memcpy(c->refs[c->nrefs], p, n);
            c->refs[c->nrefs][n] = '\0';
            c->nrefs++;
        }
    if (c->nrefs == 0) {
        wac_schedule_retry(c, "pair-device without refs");
        return;
    }
    evtimer_del(c->qr_timer);
    show_qr(c);
}

static const wa_node *bytes_child(const wa_node *n, const char *tag)
{
    const wa_node *ch = wa_node_child(n, tag);
    return ch && ch->content == WA_CONTENT_BYTES ? ch : NULL;
}

/* <pair-success>: check what the phone sent, sign our part, store, answer. */
void wac_pair_success(struct wa_client *c, const wa_node *iq, const wa_node *ps)
{
    const char *id = wa_node_attr_str(iq, "id");
    const wa_node *di = bytes_child(ps, "device-identity");
    const wa_node *dev = wa_node_child(ps, "device");
    const wa_node *plat = wa_node_child(ps, "platform");
    const wa_node *biz = wa_node_child(ps, "biz");
    char jidbuf[sizeof c->creds.jid], lidbuf[sizeof c->creds.lid];
    const char *jid = dev ? wa_node_attr_text(dev, "jid", jidbuf, sizeof jidbuf) : NULL;
    const char *lid = dev ? wa_node_attr_text(dev, "lid", lidbuf, sizeof lidbuf) : NULL;
    if (!id || !di || !jid) {
        if (id)
            wac_send_iq_error(c, id, 500, "internal-error");
        wac_schedule_retry(c, "malformed pair-success");
        return;
    }
    wac_set_state(c, WA_PAIRING, "");
    evtimer_del(c->qr_timer);
    Wapi__Adv__SignedDeviceIdentityHMAC *h =
        wapi__adv__signed_device_identity_hmac__unpack(NULL, di->nbytes, di->bytes);
    if (!h || !h->has_details || !h->has_hmac || h->hmac.len != 32) {
        if (h)
            wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
        wac_send_iq_error(c, id, 500, "internal-error");
        wac_schedule_retry(c, "pair-success: malformed device identity");
        return;
    }
    int hosted = h->has_account_type && h->account_type == WAPI__ADV__ACCOUNT_TYPE__HOSTED;
    uint8_t mac[32];
    {
        size_t n = h->details.len + 2;
        uint8_t *buf = malloc(n);
        size_t off = 0;
        if (hosted) {
            buf[0] = 6, buf[1] = 5;
            off = 2;
        }
        memcpy(buf + off, h->details.data, h->details.len);
        wa_crypto_hmac_sha256(c->creds.adv_secret, 32, buf, off + h->details.len, mac);
        free(buf);
    }
    if (CRYPTO_memcmp(mac, h->hmac.data, 32) != 0) {
        wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
        wac_send_iq_error(c, id, 401, "hmac-mismatch");
        wac_schedule_retry(c, "pair-success: HMAC mismatch");
        return;
    }
    Wapi__Adv__SignedDeviceIdentity *sdi =
        wapi__adv__signed_device_identity__unpack(NULL, h->details.len, h->details.data);
    wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
    if (!sdi || !sdi->has_details || !sdi->has_account_signature_key ||
        sdi->account_signature_key.len != 32 || !sdi->has_account_signature ||
        sdi->account_signature.len != 64) {
        if (sdi)
            wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        wac_send_iq_error(c, id, 500, "internal-error");
        wac_schedule_retry(c, "pair-success: malformed signed identity");
        return;
    }
    Wapi__Adv__DeviceIdentity *dident =
        wapi__adv__device_identity__unpack(NULL, sdi->details.len, sdi->details.data);
    uint32_t key_index = dident && dident->has_key_index ? dident->key_index : 0;
    if (dident)
        wapi__adv__device_identity__free_unpacked(dident, NULL);
    size_t dl = sdi->details.len;
    uint8_t *msg = malloc(2 + dl + 32 + 32);
    /* The account (phone) signed: prefix || details || our identity key. */
    msg[0] = 6, msg[1] = hosted ? 5 : 0;
    memcpy(msg + 2, sdi->details.data, dl);
    memcpy(msg + 2 + dl, c->creds.ident_pub, 32);
    if (wa_crypto_xeddsa_verify(sdi->account_signature_key.data, msg, 2 + dl + 32,
                                sdi->account_signature.data) != 1) {
        free(msg);
        wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        wac_send_iq_error(c, id, 401, "signature-mismatch");
        wac_schedule_retry(c, "pair-success: account signature invalid");
        return;
    }
    /* Our device signature: prefix 06 01 || details || identity || account key. */
    msg[1] = 1;
    memcpy(msg + 2 + dl + 32, sdi->account_signature_key.data, 32);
    uint8_t devsig[64];
    int sig_ok = wa_crypto_xeddsa_sign(c->creds.ident_priv, msg, 2 + dl + 64, devsig) == 0;
    free(msg);
    if (!sig_ok) {
        wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        wac_send_iq_error(c, id, 500, "internal-error");
        wac_schedule_retry(c, "pair-success: cannot sign");
        return;
    }
    sdi->has_device_signature = 1;
    sdi->device_signature.data = devsig;
    sdi->device_signature.len = 64;
    /* What we keep and send back carries no account signature key. */
    sdi->has_account_signature_key = 0;
    size_t outlen = wapi__adv__signed_device_identity__get_packed_size(sdi);
    uint8_t *out = malloc(outlen);
    wapi__adv__signed_device_identity__pack(sdi, out);
    sdi->device_signature.data = NULL; /* devsig is on our stack */
    sdi->has_device_signature = 0;
    wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
    if (outlen > sizeof c->creds.account) {
        free(out);
        wac_send_iq_error(c, id, 500, "internal-error");
        wac_schedule_retry(c, "pair-success: identity too large");
        return;
    }
    /* Durable before the server learns we accepted. */
    c->creds.paired = 1;
    snprintf(c->creds.jid, sizeof c->creds.jid, "%s", jid);
    snprintf(c->creds.lid, sizeof c->creds.lid, "%s", lid ? lid : "");
    const char *pname = plat ? wa_node_attr_str(plat, "name") : NULL;
    const char *bname = biz ? wa_node_attr_str(biz, "name") : NULL;
    snprintf(c->creds.platform, sizeof c->creds.platform, "%s", pname ? pname : "");
    snprintf(c->creds.business, sizeof c->creds.business, "%s", bname ? bname : "");
    memcpy(c->creds.account, out, outlen);
    c->creds.account_len = outlen;
    char err[256];
    if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0) {
        free(out);
        log_error("cannot store the pairing", LF_S("error", err));
        c->creds.paired = 0;
        wac_send_iq_error(c, id, 500, "internal-error");
        wac_halt(c, WA_STOPPED, err);
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *res = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr_jid(a, res, "to", &to);
    wa_node_add_attr(a, res, "type", "result");
    wa_node_add_attr(a, res, "id", id);
    wa_node *pds = wac_child(a, res, "pair-device-sign");
    wa_node *d = wac_child(a, pds, "device-identity");
    char ki[16];
    snprintf(ki, sizeof ki, "%u", key_index);
    wa_node_add_attr(a, d, "key-index", ki);
    wa_node_set_bytes(a, d, out, outlen);
    wac_send_node(c, res);
    wa_arena_free(a);
    free(out);
    log_info("paired", LF_S("jid", c->creds.jid), LF_S("platform", c->creds.platform));
    if (c->ev.on_me) {
        struct wa_me me = {c->creds.jid, c->creds.lid, c->creds.push_name, c->creds.platform};
        c->ev.on_me(c->arg, &me);
    }
    wac_pair_qr_clear(c);
}

/* ---- pairing by phone number ---- */

static const char linking_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/* 5 random bytes in the linking alphabet (base32 without padding): 8 characters. */
static void linking_code(char out[9])
{
    uint8_t r[5];
    wa_crypto_random(r, sizeof r);
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | r[i];
    for (int i = 7; i >= 0; i--, v >>= 5)
        out[i] = linking_alphabet[v & 31];
    out[8] = '\0';
}

static int aes_ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int len = 0, ok = x && EVP_EncryptInit_ex(x, EVP_aes_256_ctr(), NULL, key, iv) == 1 &&
                      EVP_EncryptUpdate(x, out, &len, in, (int)n) == 1 && len == (int)n;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -1;
}

/* The slow part (PBKDF2, 131072 rounds) runs off the loop. */
struct code_job {
    struct wa_client *c;
    unsigned conn_gen;
    int stage; /* 1 hello, 2 primary hello */
    char code[9];
    uint8_t salt[32], iv[16], key[32];
    uint8_t eph_pub[32], wrapped[80];
    uint8_t primary_wrapped[80], primary_ident[32];
    int ok;
};

static void code_work(void *arg)
{
    struct code_job *j = arg;
    j->ok = PKCS5_PBKDF2_HMAC(j->code, 8, j->salt, 32, 2 << 16, EVP_sha256(), 32, j->key) == 1;
}

/* <iq xmlns=md><link_code_companion_reg jid stage>, the frame of both companion stages. */
static wa_node *companion_reg(wa_arena *a, struct wa_client *c, const char *stage, wa_node **iq, char *id,
                              size_t idlen)
{
    char jidtxt[64];
    *iq = wac_iq_new(a, c, "set", "md", id, idlen);
    wa_node *reg = wac_child(a, *iq, "link_code_companion_reg");
    snprintf(jidtxt, sizeof jidtxt, "%s@" SERVER, c->pc.phone);
    wa_jid jid;
    wa_jid_parse(a, jidtxt, &jid);
    wa_node_add_attr_jid(a, reg, "jid", &jid);
    wa_node_add_attr(a, reg, "stage", stage);
    return reg;
}

static void send_companion_hello(struct wa_client *c, struct code_job *j)
{
    memcpy(j->wrapped, j->salt, 32);
    memcpy(j->wrapped + 32, j->iv, 16);
    if (aes_ctr(j->key, j->iv, j->eph_pub, 32, j->wrapped + 48) < 0)
        return;
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq;
    wa_node *reg = companion_reg(a, c, "companion_hello", &iq, id, sizeof id);
    wa_node_add_attr(a, reg, "should_show_push_notification", "true");
    wa_node_set_bytes(a, wac_child(a, reg, "link_code_pairing_wrapped_companion_ephemeral_pub"), j->wrapped,
                      80);
    wa_node_set_bytes(a, wac_child(a, reg, "companion_server_auth_key_pub"), c->creds.noise_pub, 32);
    /* Chrome, as the ClientPayload says */
    wa_node_set_bytes(a, wac_child(a, reg, "companion_platform_id"), "1", 1);
    wa_node_set_bytes(a, wac_child(a, reg, "companion_platform_display"), "Chrome (Linux)", 14);
    uint8_t zero = 0;
    wa_node_set_bytes(a, wac_child(a, reg, "link_code_pairing_nonce"), &zero, 1);
    if (wac_send_node(c, iq) == 0)
        wac_remember_iq(c, id, IQ_PAIR_CODE);
    wa_arena_free(a);
}

static void send_companion_finish(struct wa_client *c, struct code_job *j)
{
    uint8_t primary_eph[32], eph_shared[32], ident_shared[32], adv_random[32], salt[32], nonce[12], key[32];
    uint8_t bundle[96], wrapped[32 + 12 + 96 + 16];
    if (aes_ctr(j->key, j->primary_wrapped + 32, j->primary_wrapped + 48, 32, primary_eph) < 0 ||
        wa_crypto_x25519_dh(c->pc.eph_priv, primary_eph, eph_shared) < 0 ||
        wa_crypto_x25519_dh(c->creds.ident_priv, j->primary_ident, ident_shared) < 0) {
        log_warn("pairing code: the phone's keys are unusable (wrong code?)");
        return;
    }
    wa_crypto_random(adv_random, 32);
    wa_crypto_random(salt, 32);
    wa_crypto_random(nonce, 12);
    static const char info[] = "link_code_pairing_key_bundle_encryption_key";
    wa_crypto_hkdf_sha256(salt, 32, eph_shared, 32, (const uint8_t *)info, sizeof info - 1, key, 32);
    memcpy(bundle, c->creds.ident_pub, 32);
    memcpy(bundle + 32, j->primary_ident, 32);
    memcpy(bundle + 64, adv_random, 32);
    memcpy(wrapped, salt, 32);
    memcpy(wrapped + 32, nonce, 12);
    wa_crypto_aes_gcm_seal(key, nonce, NULL, 0, bundle, sizeof bundle, wrapped + 44);
    uint8_t adv_in[96];
    memcpy(adv_in, eph_shared, 32);
    memcpy(adv_in + 32, ident_shared, 32);
    memcpy(adv_in + 64, adv_random, 32);
    static const char adv_info[] = "adv_secret";
    wa_crypto_hkdf_sha256(NULL, 0, adv_in, sizeof adv_in, (const uint8_t *)adv_info, sizeof adv_info - 1,
                          c->creds.adv_secret, 32);
    OPENSSL_cleanse(adv_in, sizeof adv_in);
    OPENSSL_cleanse(eph_shared, 32);
    OPENSSL_cleanse(ident_shared, 32);
    OPENSSL_cleanse(key, 32);
    /* The new advertising secret checks the coming pair-success: durable first. */
    char err[256];
    if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0) {
        log_error("cannot store the pairing secret", LF_S("error", err));
        return;
    }
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq;
    wa_node *reg = companion_reg(a, c, "companion_finish", &iq, id, sizeof id);
    wa_node_set_bytes(a, wac_child(a, reg, "link_code_pairing_wrapped_key_bundle"), wrapped, sizeof wrapped);
    wa_node_set_bytes(a, wac_child(a, reg, "companion_identity_public"), c->creds.ident_pub, 32);
    wa_node_set_bytes(a, wac_child(a, reg, "link_code_pairing_ref"), c->pc.ref, c->pc.ref_len);
    if (wac_send_node(c, iq) == 0)
        wac_remember_iq(c, id, IQ_PAIR_FINISH);
    wa_arena_free(a);
    wac_set_state(c, WA_PAIRING, "");
}

static void code_done(void *arg)
{
    struct code_job *j = arg;
    struct wa_client *c = j->c;
    if (j->ok && c->in_transport && c->conn_gen == j->conn_gen && c->pc.active && !c->creds.paired) {
        if (j->stage == 1)
            send_companion_hello(c, j);
        else
            send_companion_finish(c, j);
    }
    OPENSSL_cleanse(j, sizeof *j);
    free(j);
}

/* (The notification was acked by the caller.) */
void wac_pair_code_primary_hello(struct wa_client *c, const wa_node *n)
{
    const wa_node *reg = wa_node_child(n, "link_code_companion_reg");
    const wa_node *ref = reg ? bytes_child(reg, "link_code_pairing_ref") : NULL;
    const wa_node *wr = reg ? bytes_child(reg, "link_code_pairing_wrapped_primary_ephemeral_pub") : NULL;
    const wa_node *pid = reg ? bytes_child(reg, "primary_identity_pub") : NULL;
    if (!c->pc.active || c->creds.paired || !ref || !wr || !pid || wr->nbytes < 80 || pid->nbytes != 32 ||
        ref->nbytes != c->pc.ref_len || memcmp(ref->bytes, c->pc.ref, c->pc.ref_len) != 0) {
        log_warn("pairing code notification ignored (none pending, or it does not match)");
        return;
    }
    struct code_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->c = c;
    j->conn_gen = c->conn_gen;
    j->stage = 2;
    memcpy(j->code, c->pc.code, 9);
    memcpy(j->salt, wr->bytes, 32);
    memcpy(j->primary_wrapped, wr->bytes, 80);
    memcpy(j->primary_ident, pid->bytes, 32);
    if (wa_offload_run(code_work, code_done, j) < 0)
        free(j);
}

int wa_client_pair_phone(struct wa_client *c, const char *digits, char *code_out, size_t code_len, char *err,
                         size_t errlen)
{
    size_t n = strlen(digits);
    if (n < 7 || n > 15 || digits[0] == '0' || strspn(digits, "0123456789") != n) {
        snprintf(err, errlen, "phone must be 7 to 15 digits in international form, without a leading 0");
        return -1;
    }
    if (!c->in_transport || c->creds.paired || c->st != WA_QR) {
        snprintf(err, errlen, "the session is not waiting to be linked (state %s); start it first",
                 wa_state_name(c->st));
        return -1;
    }
    struct code_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(&c->pc, 0, sizeof c->pc);
    c->pc.active = 1;
    c->pc.conn_gen = c->conn_gen;
    snprintf(c->pc.phone, sizeof c->pc.phone, "%s", digits);
    linking_code(c->pc.code);
    wa_crypto_x25519_keypair(c->pc.eph_priv, c->pc.eph_pub);
    j->c = c;
    j->conn_gen = c->conn_gen;
    j->stage = 1;
    memcpy(j->code, c->pc.code, 9);
    memcpy(j->eph_pub, c->pc.eph_pub, 32);
    wa_crypto_random(j->salt, 32);
    wa_crypto_random(j->iv, 16);
    if (wa_offload_run(code_work, code_done, j) < 0) {
        free(j);
        c->pc.active = 0;
        snprintf(err, errlen, "cannot start the key derivation");
        return -1;
    }
    snprintf(code_out, code_len, "%.4s-%.4s", c->pc.code, c->pc.code + 4);
    log_info("pairing code issued", LF_S("phone_suffix", digits + n - 2));
    return 0;
}

/* The server's answer to companion_hello: the ref the phone's answer will carry. */
void wac_pair_code_registered(struct wa_client *c, const wa_node *n, int ok)
{
    const wa_node *reg = wa_node_child(n, "link_code_companion_reg");
    const wa_node *ref = reg ? wa_node_child(reg, "link_code_pairing_ref") : NULL;
    if (!ok || !ref || ref->content != WA_CONTENT_BYTES || ref->nbytes == 0 ||
        ref->nbytes > sizeof c->pc.ref) {
        const wa_node *e = wa_node_child(n, "error");
        const char *code = e ? wa_node_attr_str(e, "code") : NULL;
        log_warn("pairing code refused by the server", LF_S("code", code ? code : "?"));
        c->pc.active = 0;
        wac_set_state(c, WA_QR,
                      code && !strcmp(code, "404") ? "pairing code: this phone number has no WhatsApp account"
                                                   : "pairing code refused by the server");
        return;
    }
    memcpy(c->pc.ref, ref->bytes, ref->nbytes);
    c->pc.ref_len = ref->nbytes;
    log_info("pairing code registered; waiting for it on the phone");
}

/* The server's answer to companion_finish; pair-success follows when it took the bundle. */
void wac_pair_code_finished(int ok)
{
    if (!ok)
        log_warn("pairing code: the server refused the key bundle");
}
