/* WhatsApp's Noise XX handshake and transport cipher; see wa_noise.h. */
#include "wa_noise.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proto/wa.pb-c.h"

const uint8_t wa_noise_header[WA_NOISE_HEADER_LEN] = {'W', 'A', 6, 3};

enum { ST_INIT, ST_HELLO_SENT, ST_TRANSPORT, ST_FAILED };

/* ------------------------------------------------------------------ */
/* Framing                                                             */

void wa_framer_init(struct wa_framer *f, size_t max_frame)
{
    memset(f, 0, sizeof *f);
    f->max_frame = (max_frame == 0 || max_frame > WA_FRAME_MAX) ? WA_FRAME_MAX : max_frame;
}

void wa_framer_free(struct wa_framer *f)
{
    if (f->buf)
        OPENSSL_clear_free(f->buf, f->cap); /* may hold a plaintext-bound frame */
    f->buf = NULL;
    f->len = f->cap = 0;
}

int wa_frame_put_len(uint8_t out[WA_FRAME_HDR_LEN], size_t len)
{
    if (len > WA_FRAME_MAX)
        return -1;
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    return 0;
}

static size_t get_len(const uint8_t *p)
{
    return ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | (size_t)p[2];
}

/* Grows buf to hold at least need bytes (need <= 3 + max_frame). Growth
 * follows the bytes actually received, so a header that merely declares a
 * large frame costs nothing until the bytes arrive; it never passes the
 * largest frame allowed. */
static int framer_reserve(struct wa_framer *f, size_t need)
{
    if (need <= f->cap)
        return 0;
    size_t cap = f->cap ? f->cap : 256, limit = WA_FRAME_HDR_LEN + f->max_frame;
    while (cap < need)
        cap *= 2;
    if (cap > limit)
        cap = limit > need ? limit : need;
    uint8_t *nb = OPENSSL_malloc(cap);
    if (!nb)
        return -1;
    if (f->len)
        memcpy(nb, f->buf, f->len);
    if (f->buf)
        OPENSSL_clear_free(f->buf, f->cap);
    f->buf = nb;
    f->cap = cap;
    return 0;
}

int wa_framer_feed(struct wa_framer *f, const uint8_t *in, size_t in_len, size_t *used, const uint8_t **frame,
                   size_t *frame_len)
{
    *used = 0;
    *frame = NULL;
    *frame_len = 0;
    if (f->failed)
        return WA_NOISE_ERR_FRAME;
    if (f->consumed) {
        f->len = 0;
        f->consumed = 0;
        /* Do not keep a large buffer around after one large frame. */
        if (f->cap > 65536)
            wa_framer_free(f);
    }
    /* Fast path: a whole frame at the start of the input, nothing buffered. */
    if (f->len == 0 && in_len >= WA_FRAME_HDR_LEN) {
        size_t body = get_len(in);
        if (body > f->max_frame) {
            f->failed = 1;
            return WA_NOISE_ERR_FRAME;
        }
        if (in_len - WA_FRAME_HDR_LEN >= body) {
            *used = WA_FRAME_HDR_LEN + body;
            *frame = in + WA_FRAME_HDR_LEN;
            *frame_len = body;
            return 1;
        }
    }
    size_t off = 0;
    /* Header first, so the body length is known before buffering it. */
    if (f->len < WA_FRAME_HDR_LEN) {
        size_t take = WA_FRAME_HDR_LEN - f->len;
        if (take > in_len)
            take = in_len;
        if (framer_reserve(f, WA_FRAME_HDR_LEN) != 0)
            return WA_NOISE_ERR_NOMEM;
        memcpy(f->buf + f->len, in, take);
        f->len += take;
        off += take;
        if (f->len < WA_FRAME_HDR_LEN) {
            *used = off;
            return 0;
        }
        if (get_len(f->buf) > f->max_frame) {
            *used = off;
            f->failed = 1;
            return WA_NOISE_ERR_FRAME;
        }
    }
    size_t total = WA_FRAME_HDR_LEN + get_len(f->buf);
    size_t take = total - f->len;
    if (take > in_len - off)
        take = in_len - off;
    if (take) {
        if (framer_reserve(f, f->len + take) != 0)
            return WA_NOISE_ERR_NOMEM;
        memcpy(f->buf + f->len, in + off, take);
        f->len += take;
        off += take;
    }
    *used = off;
    if (f->len < total)
        return 0;
    f->consumed = 1;
    *frame = f->buf + WA_FRAME_HDR_LEN;
    *frame_len = total - WA_FRAME_HDR_LEN;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Noise symmetric state                                               */

static void hs_init(struct wa_noise_hs *hs)
{
    /* The pattern name is exactly 32 bytes, so it is h itself, unhashed. */
    memset(hs, 0, sizeof *hs);
    memcpy(hs->h, WA_NOISE_PATTERN, WA_SHA256_LEN);
    memcpy(hs->ck, hs->h, WA_SHA256_LEN);
}

static void hs_wipe(struct wa_noise_hs *hs)
{
    OPENSSL_cleanse(hs, sizeof *hs);
}

static int hs_mix_hash(struct wa_noise_hs *hs, const uint8_t *data, size_t len)
{
    return wa_crypto_sha256_2(hs->h, sizeof hs->h, data, len, hs->h);
}

/* ck, k = HKDF(salt = ck, ikm); n = 0. */
static int hs_mix_key(struct wa_noise_hs *hs, const uint8_t *ikm, size_t ikm_len)
{
    uint8_t okm[64];
    if (wa_crypto_hkdf_sha256(hs->ck, sizeof hs->ck, ikm, ikm_len, NULL, 0, okm, sizeof okm) != 0)
        return -1;
    memcpy(hs->ck, okm, 32);
    memcpy(hs->k, okm + 32, 32);
    OPENSSL_cleanse(okm, sizeof okm);
    hs->n = 0;
    hs->has_key = 1;
    return 0;
}

static int hs_mix_dh(struct wa_noise_hs *hs, const uint8_t priv[WA_KEY_LEN], const uint8_t pub[WA_KEY_LEN])
{
    uint8_t dh[WA_KEY_LEN];
    if (wa_crypto_x25519_dh(priv, pub, dh) != 0)
        return -1;
    int rc = hs_mix_key(hs, dh, sizeof dh);
    OPENSSL_cleanse(dh, sizeof dh);
    return rc;
}

/* 8 zero bytes, then the counter big-endian: what WhatsApp uses, not the
 * little-endian nonce of the Noise specification. */
static void make_iv(uint8_t iv[WA_GCM_IV_LEN], uint64_t n)
{
    memset(iv, 0, WA_GCM_IV_LEN);
    iv[8] = (uint8_t)(n >> 24);
    iv[9] = (uint8_t)(n >> 16);
    iv[10] = (uint8_t)(n >> 8);
    iv[11] = (uint8_t)n;
}

/* out gets len + 16 bytes; then MixHash(ciphertext). */
static int hs_encrypt(struct wa_noise_hs *hs, const uint8_t *pt, size_t len, uint8_t *out)
{
    uint8_t iv[WA_GCM_IV_LEN];
    if (!hs->has_key || hs->n > UINT32_MAX)
        return -1;
    make_iv(iv, hs->n);
    if (wa_crypto_aes_gcm_seal(hs->k, iv, hs->h, sizeof hs->h, pt, len, out) != 0)
        return -1;
    hs->n++;
    return hs_mix_hash(hs, out, len + WA_GCM_TAG_LEN);
}

/* out gets len - 16 bytes (len >= 16 checked by the caller); then MixHash(ciphertext). */
static int hs_decrypt(struct wa_noise_hs *hs, const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t iv[WA_GCM_IV_LEN];
    if (!hs->has_key || hs->n > UINT32_MAX || len < WA_GCM_TAG_LEN)
        return -1;
    make_iv(iv, hs->n);
    if (wa_crypto_aes_gcm_open(hs->k, iv, hs->h, sizeof hs->h, ct, len, out) != 0)
        return -1;
    hs->n++;
    return hs_mix_hash(hs, ct, len);
}

/* Split: HKDF(salt = ck, empty ikm) -> first half, second half. */
static int hs_split(struct wa_noise_hs *hs, uint8_t k1[WA_KEY_LEN], uint8_t k2[WA_KEY_LEN])
{
    uint8_t okm[64];
    if (wa_crypto_hkdf_sha256(hs->ck, sizeof hs->ck, NULL, 0, NULL, 0, okm, sizeof okm) != 0)
        return -1;
    memcpy(k1, okm, 32);
    memcpy(k2, okm + 32, 32);
    OPENSSL_cleanse(okm, sizeof okm);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Certificate chain                                                   */

static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...)
{
    if (!buf || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Validity bounds are unix seconds; a value only milliseconds could mean
 * (past the year 5000 in seconds) is read as milliseconds, so a server that
 * sends either unit is judged correctly. */
static uint64_t cert_seconds(uint64_t v)
{
    return v >= 100000000000ull ? v / 1000 : v;
}

static enum wa_cert_rc check_window(const Wapi__Wa__CertChain__NoiseCertificate__Details *d,
                                    const char *which, uint64_t now, char *reason, size_t cap)
{
    if (d->has_not_before && now < cert_seconds(d->not_before)) {
        say(reason, cap, "%s certificate not yet valid", which);
        return WA_CERT_NOT_YET_VALID;
    }
    if (d->has_not_after && now > cert_seconds(d->not_after)) {
        say(reason, cap, "%s certificate expired", which);
        return WA_CERT_EXPIRED;
    }
    return WA_CERT_OK;
}

static Wapi__Wa__CertChain__NoiseCertificate__Details *unpack_details(const ProtobufCBinaryData *b)
{
    return (Wapi__Wa__CertChain__NoiseCertificate__Details *)protobuf_c_message_unpack(
        &wapi__wa__cert_chain__noise_certificate__details__descriptor, NULL, b->len, b->data);
}

static int cert_parts_ok(const Wapi__Wa__CertChain__NoiseCertificate *c)
{
    return c && c->has_details && c->has_signature && c->signature.len == WA_SIG_LEN;
}

enum wa_cert_rc wa_noise_verify_cert_chain(const uint8_t *chain, size_t chain_len,
                                           const uint8_t root_pub[WA_KEY_LEN],
                                           const uint8_t server_static[WA_KEY_LEN], uint64_t now,
                                           char *reason, size_t reason_cap)
{
    enum wa_cert_rc rc = WA_CERT_MALFORMED;
    Wapi__Wa__CertChain__NoiseCertificate__Details *inter = NULL, *leaf = NULL;
    Wapi__Wa__CertChain *cc = wapi__wa__cert_chain__unpack(NULL, chain_len, chain);
    if (!cc) {
        say(reason, reason_cap, "certificate chain does not decode");
        goto done;
    }
    if (!cert_parts_ok(cc->intermediate)) {
        say(reason, reason_cap, "intermediate certificate missing or signature not 64 bytes");
        goto done;
    }
    if (!cert_parts_ok(cc->leaf)) {
        say(reason, reason_cap, "leaf certificate missing or signature not 64 bytes");
        goto done;
    }
    if (!wa_crypto_xeddsa_verify(root_pub, cc->intermediate->details.data, cc->intermediate->details.len,
                                 cc->intermediate->signature.data)) {
        say(reason, reason_cap, "intermediate certificate signature does not verify with the root key");
        rc = WA_CERT_INTERMEDIATE_SIG;
        goto done;
    }
    inter = unpack_details(&cc->intermediate->details);
    if (!inter) {
        say(reason, reason_cap, "intermediate certificate details do not decode");
        goto done;
    }
    if (inter->issuer_serial != 0) { /* absent reads as 0, which is right */
        say(reason, reason_cap, "intermediate issuerSerial %u, expected 0", (unsigned)inter->issuer_serial);
        rc = WA_CERT_INTERMEDIATE_ISSUER;
        goto done;
    }
    if (!inter->has_key || inter->key.len != WA_KEY_LEN) {
        say(reason, reason_cap, "intermediate certificate key missing or not 32 bytes");
        goto done;
    }
    if (!wa_crypto_xeddsa_verify(inter->key.data, cc->leaf->details.data, cc->leaf->details.len,
                                 cc->leaf->signature.data)) {
        say(reason, reason_cap, "leaf certificate signature does not verify with the intermediate key");
        rc = WA_CERT_LEAF_SIG;
        goto done;
    }
    leaf = unpack_details(&cc->leaf->details);
    if (!leaf) {
        say(reason, reason_cap, "leaf certificate details do not decode");
        goto done;
    }
    if (leaf->issuer_serial != inter->serial) {
        say(reason, reason_cap, "leaf issuerSerial %u, expected intermediate serial %u",
            (unsigned)leaf->issuer_serial, (unsigned)inter->serial);
        rc = WA_CERT_LEAF_ISSUER;
        goto done;
    }
    if (!leaf->has_key || leaf->key.len != WA_KEY_LEN ||
        CRYPTO_memcmp(leaf->key.data, server_static, WA_KEY_LEN) != 0) {
        say(reason, reason_cap, "leaf certificate key is not the server static key");
        rc = WA_CERT_LEAF_KEY;
        goto done;
    }
    if ((rc = check_window(inter, "intermediate", now, reason, reason_cap)) != WA_CERT_OK)
        goto done;
    if ((rc = check_window(leaf, "leaf", now, reason, reason_cap)) != WA_CERT_OK)
        goto done;
    rc = WA_CERT_OK;
    say(reason, reason_cap, "%s", "");
done:
    if (leaf)
        protobuf_c_message_free_unpacked(&leaf->base, NULL);
    if (inter)
        protobuf_c_message_free_unpacked(&inter->base, NULL);
    if (cc)
        wapi__wa__cert_chain__free_unpacked(cc, NULL);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Session                                                             */

static int fail(struct wa_noise *ns, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct wa_noise *ns, int rc, const char *fmt, ...)
{
    if (ns->state != ST_FAILED) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ns->reason, sizeof ns->reason, fmt, ap);
        va_end(ap);
    }
    ns->state = ST_FAILED;
    /* Nothing more can be sent or read: drop every key now. */
    hs_wipe(&ns->hs);
    OPENSSL_cleanse(ns->e_priv, sizeof ns->e_priv);
    OPENSSL_cleanse(ns->s_priv, sizeof ns->s_priv);
    OPENSSL_cleanse(ns->wkey, sizeof ns->wkey);
    OPENSSL_cleanse(ns->rkey, sizeof ns->rkey);
    return rc;
}

int wa_noise_init(struct wa_noise *ns, const struct wa_noise_config *cfg)
{
    memset(ns, 0, sizeof *ns);
    ns->state = ST_FAILED;
    ns->max_frame = (cfg->max_frame == 0 || cfg->max_frame > WA_FRAME_MAX) ? WA_FRAME_MAX : cfg->max_frame;
    wa_framer_init(&ns->in, ns->max_frame);
    if (!cfg->root_pub || !cfg->static_priv) {
        snprintf(ns->reason, sizeof ns->reason, "root key and static key are required");
        return WA_NOISE_ERR_CRYPTO;
    }
    memcpy(ns->root_pub, cfg->root_pub, WA_KEY_LEN);
    memcpy(ns->s_priv, cfg->static_priv, WA_KEY_LEN);
    int ok;
    if (cfg->ephemeral_priv) {
        memcpy(ns->e_priv, cfg->ephemeral_priv, WA_KEY_LEN);
        ok = wa_crypto_x25519_pub(ns->e_priv, ns->e_pub) == 0;
    } else {
        ok = wa_crypto_x25519_keypair(ns->e_priv, ns->e_pub) == 0;
    }
    if (!ok || wa_crypto_x25519_pub(ns->s_priv, ns->s_pub) != 0) {
        ns->state = ST_INIT;
        return fail(ns, WA_NOISE_ERR_CRYPTO, "cannot make the noise key pairs");
    }
    hs_init(&ns->hs);
    ns->state = ST_INIT;
    return WA_NOISE_OK;
}

void wa_noise_free(struct wa_noise *ns)
{
    wa_framer_free(&ns->in);
    OPENSSL_cleanse(ns, sizeof *ns);
    ns->state = ST_FAILED;
}

/* A malloc'd buffer for one outbound frame of body_len bytes, preceded by the
 * connection header if it has not gone out yet. Returns the body pointer. */
static uint8_t *frame_alloc(struct wa_noise *ns, size_t body_len, uint8_t **out, size_t *out_len)
{
    size_t hdr = ns->header_sent ? 0 : WA_NOISE_HEADER_LEN;
    if (body_len > ns->max_frame)
        return NULL;
    uint8_t *buf = malloc(hdr + WA_FRAME_HDR_LEN + body_len);
    if (!buf)
        return NULL;
    if (hdr)
        memcpy(buf, wa_noise_header, WA_NOISE_HEADER_LEN);
    wa_frame_put_len(buf + hdr, body_len);
    ns->header_sent = 1;
    *out = buf;
    *out_len = hdr + WA_FRAME_HDR_LEN + body_len;
    return buf + hdr + WA_FRAME_HDR_LEN;
}

int wa_noise_start(struct wa_noise *ns, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (ns->state != ST_INIT)
        return ns->state == ST_FAILED ? WA_NOISE_ERR_STATE
                                      : fail(ns, WA_NOISE_ERR_STATE, "start called twice");
    if (hs_mix_hash(&ns->hs, wa_noise_header, WA_NOISE_HEADER_LEN) != 0 ||
        hs_mix_hash(&ns->hs, ns->e_pub, WA_KEY_LEN) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "hash failed");

    Wapi__Wa__HandshakeMessage__ClientHello hello = WAPI__WA__HANDSHAKE_MESSAGE__CLIENT_HELLO__INIT;
    hello.has_ephemeral = 1;
    hello.ephemeral.data = ns->e_pub;
    hello.ephemeral.len = WA_KEY_LEN;
    Wapi__Wa__HandshakeMessage msg = WAPI__WA__HANDSHAKE_MESSAGE__INIT;
    msg.client_hello = &hello;
    size_t n = wapi__wa__handshake_message__get_packed_size(&msg);
    uint8_t *body = frame_alloc(ns, n, out, out_len);
    if (!body)
        return fail(ns, n > ns->max_frame ? WA_NOISE_ERR_TOO_BIG : WA_NOISE_ERR_NOMEM,
                    "cannot frame ClientHello");
    wapi__wa__handshake_message__pack(&msg, body);
    ns->state = ST_HELLO_SENT;
    return WA_NOISE_OK;
}

int wa_noise_recv(struct wa_noise *ns, const uint8_t *in, size_t in_len, size_t *used, const uint8_t **frame,
                  size_t *frame_len)
{
    if (ns->state == ST_FAILED) {
        *used = 0;
        *frame = NULL;
        *frame_len = 0;
        return WA_NOISE_ERR_STATE;
    }
    int r = wa_framer_feed(&ns->in, in, in_len, used, frame, frame_len);
    if (r == WA_NOISE_ERR_FRAME)
        return fail(ns, r, "inbound frame longer than %zu bytes", ns->max_frame);
    if (r < 0)
        return fail(ns, r, "out of memory buffering a frame");
    return r;
}

/* Steps of the ServerHello, in Noise XX order (the "<- e, ee, s, es" message). */
static int read_server_hello(struct wa_noise *ns, const Wapi__Wa__HandshakeMessage__ServerHello *sh,
                             uint64_t now)
{
    uint8_t *cert;
    if (!sh->has_ephemeral || sh->ephemeral.len != WA_KEY_LEN)
        return fail(ns, WA_NOISE_ERR_PROTO, "ServerHello ephemeral missing or not 32 bytes");
    if (!sh->has_static_key || sh->static_key.len != WA_KEY_LEN + WA_GCM_TAG_LEN)
        return fail(ns, WA_NOISE_ERR_PROTO, "ServerHello static missing or not 48 bytes");
    if (!sh->has_payload || sh->payload.len < WA_GCM_TAG_LEN)
        return fail(ns, WA_NOISE_ERR_PROTO, "ServerHello payload missing or shorter than a tag");
    const uint8_t *re = sh->ephemeral.data;
    memcpy(ns->server_eph, re, WA_KEY_LEN);

    if (hs_mix_hash(&ns->hs, re, WA_KEY_LEN) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "hash failed");
    if (hs_mix_dh(&ns->hs, ns->e_priv, re) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "DH with the server ephemeral key failed");
    if (hs_decrypt(&ns->hs, sh->static_key.data, sh->static_key.len, ns->server_static) != 0)
        return fail(ns, WA_NOISE_ERR_DECRYPT, "cannot decrypt the server static key");
    if (hs_mix_dh(&ns->hs, ns->e_priv, ns->server_static) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "DH with the server static key failed");

    size_t cert_len = sh->payload.len - WA_GCM_TAG_LEN;
    cert = malloc(cert_len + 1);
    if (!cert)
        return fail(ns, WA_NOISE_ERR_NOMEM, "out of memory");
    if (hs_decrypt(&ns->hs, sh->payload.data, sh->payload.len, cert) != 0) {
        free(cert);
        return fail(ns, WA_NOISE_ERR_DECRYPT, "cannot decrypt the server certificate");
    }
    char why[120];
    ns->cert_rc =
        wa_noise_verify_cert_chain(cert, cert_len, ns->root_pub, ns->server_static, now, why, sizeof why);
    free(cert);
    if (ns->cert_rc != WA_CERT_OK)
        return fail(ns, WA_NOISE_ERR_CERT, "server certificate: %s", why);
    return WA_NOISE_OK;
}

/* "-> s, se" with the payload, then Split. */
static int write_client_finish(struct wa_noise *ns, const uint8_t *payload, size_t payload_len, uint8_t **out,
                               size_t *out_len)
{
    uint8_t enc_static[WA_KEY_LEN + WA_GCM_TAG_LEN];
    if (payload_len > ns->max_frame)
        return fail(ns, WA_NOISE_ERR_TOO_BIG, "ClientPayload too large");
    if (hs_encrypt(&ns->hs, ns->s_pub, WA_KEY_LEN, enc_static) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "cannot encrypt our static key");
    if (hs_mix_dh(&ns->hs, ns->s_priv, ns->server_eph) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "DH of our static key failed");
    uint8_t *enc_payload = malloc(payload_len + WA_GCM_TAG_LEN);
    if (!enc_payload)
        return fail(ns, WA_NOISE_ERR_NOMEM, "out of memory");
    if (hs_encrypt(&ns->hs, payload, payload_len, enc_payload) != 0) {
        free(enc_payload);
        return fail(ns, WA_NOISE_ERR_CRYPTO, "cannot encrypt the ClientPayload");
    }
    Wapi__Wa__HandshakeMessage__ClientFinish fin = WAPI__WA__HANDSHAKE_MESSAGE__CLIENT_FINISH__INIT;
    fin.has_static_key = 1;
    fin.static_key.data = enc_static;
    fin.static_key.len = sizeof enc_static;
    fin.has_payload = 1;
    fin.payload.data = enc_payload;
    fin.payload.len = payload_len + WA_GCM_TAG_LEN;
    Wapi__Wa__HandshakeMessage msg = WAPI__WA__HANDSHAKE_MESSAGE__INIT;
    msg.client_finish = &fin;
    size_t n = wapi__wa__handshake_message__get_packed_size(&msg);
    uint8_t *body = frame_alloc(ns, n, out, out_len);
    if (!body) {
        free(enc_payload);
        return fail(ns, n > ns->max_frame ? WA_NOISE_ERR_TOO_BIG : WA_NOISE_ERR_NOMEM,
                    "cannot frame ClientFinish");
    }
    wapi__wa__handshake_message__pack(&msg, body);
    free(enc_payload);

    /* The initiator writes with the first key and reads with the second. */
    if (hs_split(&ns->hs, ns->wkey, ns->rkey) != 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
        return fail(ns, WA_NOISE_ERR_CRYPTO, "split failed");
    }
    hs_wipe(&ns->hs);
    OPENSSL_cleanse(ns->e_priv, sizeof ns->e_priv);
    OPENSSL_cleanse(ns->s_priv, sizeof ns->s_priv);
    ns->wctr = ns->rctr = 0;
    ns->state = ST_TRANSPORT;
    return WA_NOISE_OK;
}

int wa_noise_read_server_hello(struct wa_noise *ns, const uint8_t *frame, size_t frame_len,
                               const uint8_t *payload, size_t payload_len, uint64_t now, uint8_t **out,
                               size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (ns->state != ST_HELLO_SENT)
        return ns->state == ST_FAILED ? WA_NOISE_ERR_STATE
                                      : fail(ns, WA_NOISE_ERR_STATE, "ServerHello not expected now");
    Wapi__Wa__HandshakeMessage *msg = wapi__wa__handshake_message__unpack(NULL, frame_len, frame);
    if (!msg)
        return fail(ns, WA_NOISE_ERR_PROTO, "ServerHello frame is not a HandshakeMessage");
    int rc;
    if (!msg->server_hello) {
        rc = fail(ns, WA_NOISE_ERR_PROTO, "HandshakeMessage has no ServerHello");
    } else {
        rc = read_server_hello(ns, msg->server_hello, now);
    }
    wapi__wa__handshake_message__free_unpacked(msg, NULL);
    if (rc != WA_NOISE_OK)
        return rc;
    return write_client_finish(ns, payload, payload_len, out, out_len);
}

/* Transport counters are 32 bits on the wire; one past the last is spent. */
static int next_iv(uint64_t *ctr, uint8_t iv[WA_GCM_IV_LEN])
{
    if (*ctr > UINT32_MAX)
        return -1;
    make_iv(iv, *ctr);
    (*ctr)++;
    return 0;
}

int wa_noise_encrypt(struct wa_noise *ns, const uint8_t *pt, size_t pt_len, uint8_t **out, size_t *out_len)
{
    uint8_t iv[WA_GCM_IV_LEN];
    *out = NULL;
    *out_len = 0;
    if (ns->state != ST_TRANSPORT)
        return ns->state == ST_FAILED ? WA_NOISE_ERR_STATE
                                      : fail(ns, WA_NOISE_ERR_STATE, "encrypt before the handshake finished");
    /* Too big is the caller's mistake, not the session's: it stays usable. */
    if (ns->max_frame < WA_GCM_TAG_LEN || pt_len > ns->max_frame - WA_GCM_TAG_LEN)
        return WA_NOISE_ERR_TOO_BIG;
    if (next_iv(&ns->wctr, iv) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "write counter exhausted");
    uint8_t *body = frame_alloc(ns, pt_len + WA_GCM_TAG_LEN, out, out_len);
    if (!body)
        return fail(ns, WA_NOISE_ERR_NOMEM, "out of memory");
    if (wa_crypto_aes_gcm_seal(ns->wkey, iv, NULL, 0, pt, pt_len, body) != 0) {
        free(*out);
        *out = NULL;
        *out_len = 0;
        return fail(ns, WA_NOISE_ERR_CRYPTO, "encrypt failed");
    }
    return WA_NOISE_OK;
}

int wa_noise_decrypt(struct wa_noise *ns, const uint8_t *frame, size_t frame_len, uint8_t **out,
                     size_t *out_len)
{
    uint8_t iv[WA_GCM_IV_LEN];
    *out = NULL;
    *out_len = 0;
    if (ns->state != ST_TRANSPORT)
        return ns->state == ST_FAILED
                   ? WA_NOISE_ERR_STATE
                   : fail(ns, WA_NOISE_ERR_STATE, "transport frame before the handshake finished");
    if (frame_len < WA_GCM_TAG_LEN)
        return fail(ns, WA_NOISE_ERR_PROTO, "transport frame shorter than a tag");
    if (next_iv(&ns->rctr, iv) != 0)
        return fail(ns, WA_NOISE_ERR_CRYPTO, "read counter exhausted");
    size_t n = frame_len - WA_GCM_TAG_LEN;
    uint8_t *pt = malloc(n + 1);
    if (!pt)
        return fail(ns, WA_NOISE_ERR_NOMEM, "out of memory");
    if (wa_crypto_aes_gcm_open(ns->rkey, iv, NULL, 0, frame, frame_len, pt) != 0) {
        free(pt);
        return fail(ns, WA_NOISE_ERR_DECRYPT, "transport frame %llu does not authenticate",
                    (unsigned long long)(ns->rctr - 1));
    }
    *out = pt;
    *out_len = n;
    return WA_NOISE_OK;
}

int wa_noise_is_transport(const struct wa_noise *ns)
{
    return ns->state == ST_TRANSPORT;
}

const char *wa_noise_reason(const struct wa_noise *ns)
{
    return ns->reason;
}

enum wa_cert_rc wa_noise_cert_error(const struct wa_noise *ns)
{
    return ns->cert_rc;
}

const char *wa_noise_rc_name(int rc)
{
    switch (rc) {
    case WA_NOISE_OK:
        return "ok";
    case WA_NOISE_ERR_STATE:
        return "state";
    case WA_NOISE_ERR_FRAME:
        return "frame";
    case WA_NOISE_ERR_PROTO:
        return "protocol";
    case WA_NOISE_ERR_DECRYPT:
        return "decrypt";
    case WA_NOISE_ERR_CERT:
        return "certificate";
    case WA_NOISE_ERR_CRYPTO:
        return "crypto";
    case WA_NOISE_ERR_NOMEM:
        return "nomem";
    case WA_NOISE_ERR_TOO_BIG:
        return "too-big";
    }
    return "unknown";
}
