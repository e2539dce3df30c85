/* Noise XX client of WhatsApp against an in-test responder with its own PKI:
 * success, every certificate defect, tampering at each step, transport in
 * both directions, framing split at every offset, bounds; plus the crypto
 * wrappers and ClientPayload builder the handshake relies on. */
#include "supervisor/wa/wa_noise.c"

#include <inttypes.h>

#include "supervisor/wa/wa_payload.h"
#include "t.h"

#define NOW 1700000000ull

static void hex2bin(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* ---------------- test PKI ---------------- */

struct pki {
    uint8_t root_priv[32], root_pub[32];
    uint8_t int_priv[32], int_pub[32];
    uint8_t other_priv[32], other_pub[32]; /* a key nobody trusts */
    uint8_t srv_priv[32], srv_pub[32];     /* the server static key = leaf key */
};

struct chain_opts {
    uint32_t int_serial, int_issuer, leaf_serial, leaf_issuer;
    int wrong_leaf_key;  /* leaf key is not the server static key */
    int int_signed_by;   /* 0 root, 1 other */
    int leaf_signed_by;  /* 0 intermediate, 1 root */
    int corrupt_int_sig; /* flip a bit of the intermediate signature */
    int corrupt_leaf_sig;
    int omit_leaf;
    int short_sig;  /* a 63-byte leaf signature */
    int no_windows; /* leave notBefore/notAfter out */
    uint64_t int_nb, int_na, leaf_nb, leaf_na;
};

static void chain_defaults(struct chain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->int_serial = 77;
    o->int_issuer = 0;
    o->leaf_serial = 1234;
    o->leaf_issuer = 77;
    o->int_nb = o->leaf_nb = 1600000000;
    o->int_na = o->leaf_na = 1800000000;
}

static size_t pack_details(uint32_t serial, uint32_t issuer, const uint8_t key[32], uint64_t nb, uint64_t na,
                           int windows, uint8_t *out)
{
    Wapi__Wa__CertChain__NoiseCertificate__Details d = WAPI__WA__CERT_CHAIN__NOISE_CERTIFICATE__DETAILS__INIT;
    d.has_serial = d.has_issuer_serial = d.has_key = 1;
    d.serial = serial;
    d.issuer_serial = issuer;
    d.key.data = (uint8_t *)key;
    d.key.len = 32;
    if (windows) {
        d.has_not_before = d.has_not_after = 1;
        d.not_before = nb;
        d.not_after = na;
    }
    return protobuf_c_message_pack(&d.base, out);
}

/* A serialized CertChain; *len gets its size. Caller frees. */
static uint8_t *build_chain(const struct pki *k, const struct chain_opts *o, size_t *len)
{
    uint8_t idet[200], ldet[200], isig[64], lsig[64];
    size_t ilen =
        pack_details(o->int_serial, o->int_issuer, k->int_pub, o->int_nb, o->int_na, !o->no_windows, idet);
    size_t llen = pack_details(o->leaf_serial, o->leaf_issuer, o->wrong_leaf_key ? k->other_pub : k->srv_pub,
                               o->leaf_nb, o->leaf_na, !o->no_windows, ldet);
    wa_crypto_xeddsa_sign(o->int_signed_by ? k->other_priv : k->root_priv, idet, ilen, isig);
    wa_crypto_xeddsa_sign(o->leaf_signed_by ? k->root_priv : k->int_priv, ldet, llen, lsig);
    if (o->corrupt_int_sig)
        isig[5] ^= 0x10;
    if (o->corrupt_leaf_sig)
        lsig[40] ^= 0x01;
    Wapi__Wa__CertChain__NoiseCertificate ic = WAPI__WA__CERT_CHAIN__NOISE_CERTIFICATE__INIT;
    Wapi__Wa__CertChain__NoiseCertificate lc = WAPI__WA__CERT_CHAIN__NOISE_CERTIFICATE__INIT;
    ic.has_details = ic.has_signature = lc.has_details = lc.has_signature = 1;
    ic.details.data = idet;
    ic.details.len = ilen;
    ic.signature.data = isig;
    ic.signature.len = 64;
    lc.details.data = ldet;
    lc.details.len = llen;
    lc.signature.data = lsig;
    lc.signature.len = o->short_sig ? 63 : 64;
    Wapi__Wa__CertChain cc = WAPI__WA__CERT_CHAIN__INIT;
    cc.intermediate = &ic;
    cc.leaf = o->omit_leaf ? NULL : &lc;
    *len = wapi__wa__cert_chain__get_packed_size(&cc);
    uint8_t *buf = malloc(*len + 1);
    wapi__wa__cert_chain__pack(&cc, buf);
    return buf;
}

static void make_pki(struct pki *k)
{
    wa_crypto_x25519_keypair(k->root_priv, k->root_pub);
    wa_crypto_x25519_keypair(k->int_priv, k->int_pub);
    wa_crypto_x25519_keypair(k->other_priv, k->other_pub);
    wa_crypto_x25519_keypair(k->srv_priv, k->srv_pub);
}

/* ---------------- fake responder ---------------- */

enum tamper { TAMPER_NONE, TAMPER_EPH, TAMPER_STATIC, TAMPER_PAYLOAD, TAMPER_WRONG_STATIC_KEY };

struct server {
    struct wa_noise_hs hs;
    uint8_t e_priv[32], e_pub[32];
    uint8_t s_priv[32], s_pub[32];
    uint8_t ce[32], cs[32]; /* client ephemeral and static as received */
    uint8_t wkey[32], rkey[32];
    uint64_t wctr, rctr;
    uint8_t *payload; /* decrypted ClientPayload (owned) */
    size_t payload_len;
};

/* Reads header + framed ClientHello exactly as the client sent them. */
static int srv_read_hello(struct server *s, const uint8_t *in, size_t len)
{
    if (len < 4 + 3 || memcmp(in, wa_noise_header, 4) != 0)
        return -1;
    size_t body = get_len(in + 4);
    if (body != len - 7)
        return -1;
    Wapi__Wa__HandshakeMessage *m = wapi__wa__handshake_message__unpack(NULL, body, in + 7);
    if (!m)
        return -1;
    int ok = m->client_hello && m->client_hello->has_ephemeral && m->client_hello->ephemeral.len == 32 &&
             !m->client_hello->has_static_key && !m->client_hello->has_payload;
    if (ok)
        memcpy(s->ce, m->client_hello->ephemeral.data, 32);
    wapi__wa__handshake_message__free_unpacked(m, NULL);
    if (!ok)
        return -1;
    hs_init(&s->hs);
    hs_mix_hash(&s->hs, wa_noise_header, 4);
    hs_mix_hash(&s->hs, s->ce, 32);
    return 0;
}

/* The ServerHello frame body (unframed); caller frees. "<- e, ee, s, es". */
static uint8_t *srv_write_hello(struct server *s, const uint8_t *chain, size_t chain_len, enum tamper t,
                                size_t *out_len)
{
    uint8_t enc_static[48];
    uint8_t *enc_cert = malloc(chain_len + 16);
    uint8_t spub[32], spriv[32];
    memcpy(spub, s->s_pub, 32);
    memcpy(spriv, s->s_priv, 32);
    if (t == TAMPER_WRONG_STATIC_KEY) /* a server holding another static key than the leaf names */
        wa_crypto_x25519_keypair(spriv, spub);
    wa_crypto_x25519_keypair(s->e_priv, s->e_pub);
    hs_mix_hash(&s->hs, s->e_pub, 32);
    hs_mix_dh(&s->hs, s->e_priv, s->ce);
    hs_encrypt(&s->hs, spub, 32, enc_static);
    hs_mix_dh(&s->hs, spriv, s->ce);
    hs_encrypt(&s->hs, chain, chain_len, enc_cert);

    uint8_t eph[32];
    memcpy(eph, s->e_pub, 32);
    if (t == TAMPER_EPH)
        eph[3] ^= 0x20;
    if (t == TAMPER_STATIC)
        enc_static[10] ^= 0x01;
    if (t == TAMPER_PAYLOAD)
        enc_cert[chain_len + 15] ^= 0x80; /* in the tag */
    Wapi__Wa__HandshakeMessage__ServerHello sh = WAPI__WA__HANDSHAKE_MESSAGE__SERVER_HELLO__INIT;
    sh.has_ephemeral = sh.has_static_key = sh.has_payload = 1;
    sh.ephemeral.data = eph;
    sh.ephemeral.len = 32;
    sh.static_key.data = enc_static;
    sh.static_key.len = 48;
    sh.payload.data = enc_cert;
    sh.payload.len = chain_len + 16;
    Wapi__Wa__HandshakeMessage m = WAPI__WA__HANDSHAKE_MESSAGE__INIT;
    m.server_hello = &sh;
    *out_len = wapi__wa__handshake_message__get_packed_size(&m);
    uint8_t *out = malloc(*out_len);
    wapi__wa__handshake_message__pack(&m, out);
    free(enc_cert);
    return out;
}

/* Reads the framed ClientFinish: "-> s, se", then Split (responder order). */
static int srv_read_finish(struct server *s, const uint8_t *in, size_t len)
{
    if (len < 3 || get_len(in) != len - 3)
        return -1;
    Wapi__Wa__HandshakeMessage *m = wapi__wa__handshake_message__unpack(NULL, len - 3, in + 3);
    if (!m)
        return -1;
    int rc = -1;
    Wapi__Wa__HandshakeMessage__ClientFinish *f = m->client_finish;
    if (!f || !f->has_static_key || f->static_key.len != 48 || !f->has_payload || f->payload.len < 16)
        goto done;
    if (hs_decrypt(&s->hs, f->static_key.data, 48, s->cs) != 0)
        goto done;
    if (hs_mix_dh(&s->hs, s->e_priv, s->cs) != 0)
        goto done;
    s->payload_len = f->payload.len - 16;
    s->payload = malloc(s->payload_len + 1);
    if (hs_decrypt(&s->hs, f->payload.data, f->payload.len, s->payload) != 0)
        goto done;
    if (hs_split(&s->hs, s->rkey, s->wkey) != 0)
        goto done;
    rc = 0;
done:
    wapi__wa__handshake_message__free_unpacked(m, NULL);
    return rc;
}

/* A framed transport message from the server; caller frees. */
static uint8_t *srv_encrypt(struct server *s, const void *pt, size_t len, size_t *out_len)
{
    uint8_t iv[12];
    uint8_t *out = malloc(3 + len + 16);
    make_iv(iv, s->wctr++);
    wa_frame_put_len(out, len + 16);
    wa_crypto_aes_gcm_seal(s->wkey, iv, NULL, 0, pt, len, out + 3);
    *out_len = 3 + len + 16;
    return out;
}

/* Decrypts one framed transport message from the client into out. */
static int srv_decrypt(struct server *s, const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
    uint8_t iv[12];
    if (len < 3 + 16 || get_len(in) != len - 3)
        return -1;
    make_iv(iv, s->rctr++);
    *out_len = len - 3 - 16;
    return wa_crypto_aes_gcm_open(s->rkey, iv, NULL, 0, in + 3, len - 3, out);
}

static void srv_free(struct server *s)
{
    free(s->payload);
    OPENSSL_cleanse(s, sizeof *s);
}

/* ---------------- one handshake ---------------- */

static const uint8_t PAYLOAD[] = "client payload bytes \x01\x02\x03";

struct run {
    struct wa_noise ns;
    struct server srv;
    int rc; /* of wa_noise_read_server_hello */
};

/* Runs start -> ServerHello -> ClientFinish; leaves both ends in r.
 * root: what the client trusts. */
static void run_handshake(struct run *r, const struct pki *k, const uint8_t *root,
                          const struct chain_opts *co, enum tamper t, uint64_t now)
{
    uint8_t cs_priv[32], cs_pub[32];
    wa_crypto_x25519_keypair(cs_priv, cs_pub);
    struct wa_noise_config cfg = {.root_pub = root, .static_priv = cs_priv};
    memset(r, 0, sizeof *r);
    wa_noise_init(&r->ns, &cfg);
    memcpy(r->srv.s_priv, k->srv_priv, 32);
    memcpy(r->srv.s_pub, k->srv_pub, 32);

    uint8_t *out;
    size_t out_len;
    wa_noise_start(&r->ns, &out, &out_len);
    srv_read_hello(&r->srv, out, out_len);
    free(out);

    size_t chain_len, sh_len;
    uint8_t *chain = build_chain(k, co, &chain_len);
    uint8_t *sh = srv_write_hello(&r->srv, chain, chain_len, t, &sh_len);
    r->rc = wa_noise_read_server_hello(&r->ns, sh, sh_len, PAYLOAD, sizeof PAYLOAD, now, &out, &out_len);
    if (r->rc == WA_NOISE_OK) {
        srv_read_finish(&r->srv, out, out_len);
        free(out);
    }
    free(chain);
    free(sh);
    OPENSSL_cleanse(cs_priv, sizeof cs_priv);
}

static void run_free(struct run *r)
{
    wa_noise_free(&r->ns);
    srv_free(&r->srv);
}

/* ---------------- tests ---------------- */

static void test_crypto(void)
{
    /* RFC 5869 test case 1 and 3 (zero-length salt and info). */
    uint8_t ikm[22], salt[13], info[10], okm[42], want[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    wa_crypto_hkdf_sha256(salt, 13, ikm, 22, info, 10, okm, 42);
    hex2bin("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", want, 42);
    T_CHECK(memcmp(okm, want, 42) == 0, "crypto: HKDF RFC 5869 case 1");
    wa_crypto_hkdf_sha256(NULL, 0, ikm, 22, NULL, 0, okm, 42);
    hex2bin("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", want, 42);
    T_CHECK(memcmp(okm, want, 42) == 0, "crypto: HKDF RFC 5869 case 3 (no salt, no info)");

    /* Split-shaped call: empty ikm, 32-byte salt; the value Baileys' hkdf gives. */
    uint8_t ones[32], split[64], split_want[64];
    memset(ones, 1, 32);
    T_EQ_INT(wa_crypto_hkdf_sha256(ones, 32, NULL, 0, NULL, 0, split, 64), 0, "crypto: HKDF with empty ikm");
    hex2bin("b5a5789af1d00c74773ef327dc63f0f11c7041252d4916c43a252b92e3358ad2"
            "72d7e204fba7b0ac19964ebcba5e88e3609cb8c3cafa4b940945df49da83680f",
            split_want, 64);
    T_CHECK(memcmp(split, split_want, 64) == 0, "crypto: HKDF empty ikm matches Baileys' value");

    /* AES-GCM: NIST test case 13 (zero key, zero IV, empty plaintext). */
    uint8_t key[32] = {0}, iv[12] = {0}, tag[16], tag_want[16];
    wa_crypto_aes_gcm_seal(key, iv, NULL, 0, NULL, 0, tag);
    hex2bin("530f8afbc74536b9a963b4f1c4cb738b", tag_want, 16);
    T_CHECK(memcmp(tag, tag_want, 16) == 0, "crypto: AES-256-GCM empty-message tag vector");
    uint8_t ct[16 + 5], pt[5];
    wa_crypto_aes_gcm_seal(key, iv, (const uint8_t *)"ad", 2, (const uint8_t *)"hello", 5, ct);
    T_EQ_INT(wa_crypto_aes_gcm_open(key, iv, (const uint8_t *)"ad", 2, ct, sizeof ct, pt), 0,
             "crypto: GCM opens");
    T_CHECK(memcmp(pt, "hello", 5) == 0, "crypto: GCM round trip");
    T_EQ_INT(wa_crypto_aes_gcm_open(key, iv, (const uint8_t *)"ax", 2, ct, sizeof ct, pt), -1,
             "crypto: GCM rejects other AD");
    ct[0] ^= 1;
    T_EQ_INT(wa_crypto_aes_gcm_open(key, iv, (const uint8_t *)"ad", 2, ct, sizeof ct, pt), -1,
             "crypto: GCM rejects tampered ciphertext");
    T_EQ_INT(wa_crypto_aes_gcm_open(key, iv, NULL, 0, ct, 15, pt), -1,
             "crypto: GCM rejects input shorter than tag");

    /* SHA-256, MD5, HMAC. */
    uint8_t h[32], hw[32], m5[16], m5w[16];
    wa_crypto_sha256((const uint8_t *)"abc", 3, h);
    hex2bin("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hw, 32);
    T_CHECK(memcmp(h, hw, 32) == 0, "crypto: SHA-256 abc");
    wa_crypto_md5((const uint8_t *)"2.3000.1", 8, m5);
    hex2bin("236487c02d95b982c2cdc3c6e961e0e3", m5w, 16);
    T_CHECK(memcmp(m5, m5w, 16) == 0, "crypto: MD5 of a version string");
    wa_crypto_hmac_sha256((const uint8_t *)"key", 3,
                          (const uint8_t *)"The quick brown fox jumps over the lazy dog", 43, h);
    hex2bin("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8", hw, 32);
    T_CHECK(memcmp(h, hw, 32) == 0, "crypto: HMAC-SHA256 vector");

    /* X25519: RFC 7748 section 6.1. */
    uint8_t a_priv[32], b_pub[32], a_pub[32], shared[32], want_shared[32], want_a_pub[32];
    hex2bin("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a_priv, 32);
    hex2bin("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", b_pub, 32);
    hex2bin("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", want_a_pub, 32);
    hex2bin("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want_shared, 32);
    wa_crypto_x25519_pub(a_priv, a_pub);
    T_CHECK(memcmp(a_pub, want_a_pub, 32) == 0, "crypto: X25519 public key vector");
    wa_crypto_x25519_dh(a_priv, b_pub, shared);
    T_CHECK(memcmp(shared, want_shared, 32) == 0, "crypto: X25519 shared secret vector");
    uint8_t zero[32] = {0};
    T_EQ_INT(wa_crypto_x25519_dh(a_priv, zero, shared), -1, "crypto: X25519 rejects a low-order point");

    /* XEdDSA. */
    uint8_t sk[32], pk[32], sig[64];
    wa_crypto_x25519_keypair(sk, pk);
    T_EQ_INT(wa_crypto_xeddsa_sign(sk, (const uint8_t *)"msg", 3, sig), 0, "crypto: XEdDSA signs");
    T_EQ_INT(wa_crypto_xeddsa_verify(pk, (const uint8_t *)"msg", 3, sig), 1, "crypto: XEdDSA verifies");
    T_EQ_INT(wa_crypto_xeddsa_verify(pk, (const uint8_t *)"msh", 3, sig), 0,
             "crypto: XEdDSA rejects other message");
    sig[63] ^= 0x01;
    T_EQ_INT(wa_crypto_xeddsa_verify(pk, (const uint8_t *)"msg", 3, sig), 0,
             "crypto: XEdDSA rejects tampered sig");
    T_EQ_INT(wa_crypto_xeddsa_sign(sk, NULL, 0, sig), 0, "crypto: XEdDSA signs empty message");
    T_EQ_INT(wa_crypto_xeddsa_verify(pk, NULL, 0, sig), 1, "crypto: XEdDSA verifies empty message");
}

static void test_success(const struct pki *k)
{
    struct run r;
    struct chain_opts co;
    chain_defaults(&co);
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    T_EQ_INT(r.rc, WA_NOISE_OK, "handshake: succeeds with a valid chain");
    T_CHECK(wa_noise_is_transport(&r.ns), "handshake: client is in transport mode");
    T_EQ_STR(wa_noise_reason(&r.ns), "", "handshake: no failure reason");
    T_CHECK(r.srv.payload && r.srv.payload_len == sizeof PAYLOAD &&
                memcmp(r.srv.payload, PAYLOAD, sizeof PAYLOAD) == 0,
            "handshake: server decrypts the ClientPayload unchanged");
    T_CHECK(memcmp(r.srv.cs, r.ns.s_pub, 32) == 0, "handshake: server learns our static key");
    T_CHECK(memcmp(r.ns.wkey, r.srv.rkey, 32) == 0 && memcmp(r.ns.rkey, r.srv.wkey, 32) == 0,
            "handshake: split keys agree (write=[0:32], read=[32:64])");
    T_CHECK(memcmp(r.ns.wkey, r.ns.rkey, 32) != 0, "handshake: read and write keys differ");
    static const uint8_t zero[32];
    T_CHECK(memcmp(r.ns.e_priv, zero, 32) == 0 && memcmp(r.ns.s_priv, zero, 32) == 0 &&
                memcmp(r.ns.hs.ck, zero, 32) == 0,
            "handshake: private keys and chaining key wiped after split");

    /* Transport both ways; counters advance independently. */
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "client->server %d", i);
        uint8_t *out, dec[64];
        size_t out_len, dec_len;
        ok &= wa_noise_encrypt(&r.ns, (const uint8_t *)msg, (size_t)n, &out, &out_len) == WA_NOISE_OK;
        ok &= out_len == 3 + (size_t)n + 16;
        ok &= srv_decrypt(&r.srv, out, out_len, dec, &dec_len) == 0 && dec_len == (size_t)n &&
              memcmp(dec, msg, (size_t)n) == 0;
        free(out);
    }
    T_CHECK(ok, "transport: 5 frames client -> server decrypt in order");
    T_EQ_INT(r.ns.wctr, 5, "transport: write counter is 5");
    T_EQ_INT(r.ns.rctr, 0, "transport: read counter untouched by writes");
    ok = 1;
    for (int i = 0; i < 7; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "server->client %d", i);
        size_t fl, used, body_len, pt_len;
        uint8_t *f = srv_encrypt(&r.srv, msg, (size_t)n, &fl), *pt;
        const uint8_t *body;
        ok &= wa_noise_recv(&r.ns, f, fl, &used, &body, &body_len) == 1 && used == fl;
        ok &= wa_noise_decrypt(&r.ns, body, body_len, &pt, &pt_len) == WA_NOISE_OK && pt_len == (size_t)n &&
              memcmp(pt, msg, (size_t)n) == 0;
        free(pt);
        free(f);
    }
    T_CHECK(ok, "transport: 7 frames server -> client decrypt in order");
    T_EQ_INT(r.ns.rctr, 7, "transport: read counter is 7");
    T_EQ_INT(r.ns.wctr, 5, "transport: write counter unchanged by reads");

    /* Empty plaintext is a valid frame. */
    uint8_t *out, *pt;
    size_t out_len, pt_len;
    T_EQ_INT(wa_noise_encrypt(&r.ns, NULL, 0, &out, &out_len), WA_NOISE_OK,
             "transport: empty frame encrypts");
    uint8_t dec[8];
    size_t dec_len;
    T_CHECK(srv_decrypt(&r.srv, out, out_len, dec, &dec_len) == 0 && dec_len == 0,
            "transport: empty frame decrypts");
    free(out);

    /* Too big for the frame bound: refused, session still usable. */
    uint8_t *big = calloc(1, WA_FRAME_MAX);
    T_EQ_INT(wa_noise_encrypt(&r.ns, big, WA_FRAME_MAX - 15, &out, &out_len), WA_NOISE_ERR_TOO_BIG,
             "transport: plaintext over the frame bound refused");
    T_EQ_INT(wa_noise_encrypt(&r.ns, big, WA_FRAME_MAX - 16, &out, &out_len), WA_NOISE_OK,
             "transport: plaintext filling the largest frame accepted");
    T_CHECK(out_len == 3 + WA_FRAME_MAX && out[0] == 0xff && out[1] == 0xff && out[2] == 0xff,
            "transport: largest frame has length ffffff");
    free(out);
    free(big);

    /* Replay, reorder and tamper on the read side each kill the session. */
    size_t f1l, f2l;
    uint8_t *f1 = srv_encrypt(&r.srv, "one", 3, &f1l);
    uint8_t *f2 = srv_encrypt(&r.srv, "two", 3, &f2l);
    T_EQ_INT(wa_noise_decrypt(&r.ns, f2 + 3, f2l - 3, &pt, &pt_len), WA_NOISE_ERR_DECRYPT,
             "transport: out-of-order frame rejected");
    T_CHECK(strstr(wa_noise_reason(&r.ns), "does not authenticate") != NULL,
            "transport: reason names the frame");
    T_EQ_INT(wa_noise_decrypt(&r.ns, f1 + 3, f1l - 3, &pt, &pt_len), WA_NOISE_ERR_STATE,
             "transport: session stays failed after a bad frame");
    T_EQ_INT(wa_noise_encrypt(&r.ns, (const uint8_t *)"x", 1, &out, &out_len), WA_NOISE_ERR_STATE,
             "transport: no encrypting after failure");
    T_CHECK(memcmp(r.ns.rkey, zero, 32) == 0 && memcmp(r.ns.wkey, zero, 32) == 0,
            "transport: keys wiped on failure");
    free(f1);
    free(f2);
    run_free(&r);

    /* A tampered transport frame. */
    chain_defaults(&co);
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    uint8_t *f = srv_encrypt(&r.srv, "hello", 5, &f1l);
    f[3 + 2] ^= 0x04;
    T_EQ_INT(wa_noise_decrypt(&r.ns, f + 3, f1l - 3, &pt, &pt_len), WA_NOISE_ERR_DECRYPT,
             "transport: tampered frame rejected");
    free(f);
    run_free(&r);

    /* Transport frame shorter than a tag. */
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    T_EQ_INT(wa_noise_decrypt(&r.ns, (const uint8_t *)"short", 5, &pt, &pt_len), WA_NOISE_ERR_PROTO,
             "transport: frame shorter than a tag rejected");
    run_free(&r);

    /* Counter exhaustion: the last counter value works, the next is refused. */
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    r.ns.wctr = UINT32_MAX;
    r.srv.rctr = UINT32_MAX;
    T_EQ_INT(wa_noise_encrypt(&r.ns, (const uint8_t *)"last", 4, &out, &out_len), WA_NOISE_OK,
             "transport: counter 2^32-1 usable");
    T_CHECK(srv_decrypt(&r.srv, out, out_len, dec, &dec_len) == 0 && dec_len == 4,
            "transport: counter 2^32-1 goes on the wire as ff ff ff ff");
    free(out);
    T_EQ_INT(wa_noise_encrypt(&r.ns, (const uint8_t *)"over", 4, &out, &out_len), WA_NOISE_ERR_CRYPTO,
             "transport: counter never wraps");
    run_free(&r);
}

struct defect {
    const char *name;
    void (*apply)(struct chain_opts *);
    int wrong_root;
    enum wa_cert_rc want;
    const char *reason_has;
};

static void d_int_sig(struct chain_opts *o)
{
    o->corrupt_int_sig = 1;
}
static void d_int_other(struct chain_opts *o)
{
    o->int_signed_by = 1;
}
static void d_int_issuer(struct chain_opts *o)
{
    o->int_issuer = 5;
}
static void d_leaf_sig(struct chain_opts *o)
{
    o->corrupt_leaf_sig = 1;
}
static void d_leaf_by_root(struct chain_opts *o)
{
    o->leaf_signed_by = 1;
}
static void d_leaf_issuer(struct chain_opts *o)
{
    o->leaf_issuer = 78;
}
static void d_leaf_key(struct chain_opts *o)
{
    o->wrong_leaf_key = 1;
}
static void d_leaf_expired(struct chain_opts *o)
{
    o->leaf_na = NOW - 1;
}
static void d_int_expired(struct chain_opts *o)
{
    o->int_na = NOW - 1;
}
static void d_leaf_future(struct chain_opts *o)
{
    o->leaf_nb = NOW + 1;
}
static void d_int_future(struct chain_opts *o)
{
    o->int_nb = NOW + 3600;
}
static void d_leaf_expired_ms(struct chain_opts *o)
{
    o->leaf_nb = 1600000000000ull;
    o->leaf_na = (NOW - 1) * 1000;
}
static void d_omit_leaf(struct chain_opts *o)
{
    o->omit_leaf = 1;
}
static void d_short_sig(struct chain_opts *o)
{
    o->short_sig = 1;
}
static void d_none(struct chain_opts *o)
{
    (void)o;
}

static void test_chain_defects(const struct pki *k)
{
    static const struct defect ds[] = {
        {"wrong root", d_none, 1, WA_CERT_INTERMEDIATE_SIG, "root"},
        {"bad intermediate signature", d_int_sig, 0, WA_CERT_INTERMEDIATE_SIG,
         "intermediate certificate signature"},
        {"intermediate signed by another key", d_int_other, 0, WA_CERT_INTERMEDIATE_SIG, "root key"},
        {"intermediate issuerSerial not 0", d_int_issuer, 0, WA_CERT_INTERMEDIATE_ISSUER, "issuerSerial 5"},
        {"bad leaf signature", d_leaf_sig, 0, WA_CERT_LEAF_SIG, "intermediate key"},
        {"leaf signed by root, not intermediate", d_leaf_by_root, 0, WA_CERT_LEAF_SIG,
         "leaf certificate signature"},
        {"wrong leaf issuerSerial", d_leaf_issuer, 0, WA_CERT_LEAF_ISSUER, "expected intermediate serial 77"},
        {"leaf key is not the server static", d_leaf_key, 0, WA_CERT_LEAF_KEY, "server static"},
        {"leaf expired", d_leaf_expired, 0, WA_CERT_EXPIRED, "leaf certificate expired"},
        {"intermediate expired", d_int_expired, 0, WA_CERT_EXPIRED, "intermediate certificate expired"},
        {"leaf not yet valid", d_leaf_future, 0, WA_CERT_NOT_YET_VALID, "leaf certificate not yet valid"},
        {"intermediate not yet valid", d_int_future, 0, WA_CERT_NOT_YET_VALID,
         "intermediate certificate not yet"},
        {"leaf expired (milliseconds)", d_leaf_expired_ms, 0, WA_CERT_EXPIRED, "leaf certificate expired"},
        {"leaf missing", d_omit_leaf, 0, WA_CERT_MALFORMED, "leaf certificate missing"},
        {"leaf signature 63 bytes", d_short_sig, 0, WA_CERT_MALFORMED, "64 bytes"},
    };
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        struct chain_opts co;
        chain_defaults(&co);
        ds[i].apply(&co);
        struct run r;
        run_handshake(&r, k, ds[i].wrong_root ? k->other_pub : k->root_pub, &co, TAMPER_NONE, NOW);
        char name[320];
        snprintf(name, sizeof name, "chain: %s -> rejected as certificate error", ds[i].name);
        T_EQ_INT(r.rc, WA_NOISE_ERR_CERT, name);
        snprintf(name, sizeof name, "chain: %s -> check %d", ds[i].name, (int)ds[i].want);
        T_EQ_INT(wa_noise_cert_error(&r.ns), ds[i].want, name);
        snprintf(name, sizeof name, "chain: %s -> reason \"%s\"", ds[i].name, wa_noise_reason(&r.ns));
        T_CHECK(strstr(wa_noise_reason(&r.ns), ds[i].reason_has) != NULL, name);
        uint8_t *out;
        size_t out_len;
        snprintf(name, sizeof name, "chain: %s -> no transport afterwards", ds[i].name);
        T_EQ_INT(wa_noise_encrypt(&r.ns, (const uint8_t *)"x", 1, &out, &out_len), WA_NOISE_ERR_STATE, name);
        run_free(&r);
    }

    /* The server holds a different static key than the leaf certifies. */
    struct chain_opts co;
    chain_defaults(&co);
    struct run r;
    run_handshake(&r, k, k->root_pub, &co, TAMPER_WRONG_STATIC_KEY, NOW);
    T_EQ_INT(wa_noise_cert_error(&r.ns), WA_CERT_LEAF_KEY, "chain: server static differs from leaf key");
    run_free(&r);

    /* Boundaries: exactly at notBefore and notAfter is valid; absent windows are open;
     * millisecond windows around now are understood. */
    chain_defaults(&co);
    co.int_nb = co.leaf_nb = NOW;
    co.int_na = co.leaf_na = NOW;
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    T_EQ_INT(r.rc, WA_NOISE_OK, "chain: valid exactly at notBefore == notAfter == now");
    run_free(&r);
    chain_defaults(&co);
    co.no_windows = 1;
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    T_EQ_INT(r.rc, WA_NOISE_OK, "chain: no validity fields means no window");
    run_free(&r);
    chain_defaults(&co);
    co.leaf_nb = (NOW - 10) * 1000;
    co.leaf_na = (NOW + 10) * 1000;
    run_handshake(&r, k, k->root_pub, &co, TAMPER_NONE, NOW);
    T_EQ_INT(r.rc, WA_NOISE_OK, "chain: millisecond window around now accepted");
    run_free(&r);

    /* Direct calls: garbage and empty input. */
    char why[120];
    T_EQ_INT(wa_noise_verify_cert_chain((const uint8_t *)"\xff\xff\xff", 3, k->root_pub, k->srv_pub, NOW, why,
                                        sizeof why),
             WA_CERT_MALFORMED, "chain: garbage does not decode");
    T_EQ_INT(
        wa_noise_verify_cert_chain((const uint8_t *)"", 0, k->root_pub, k->srv_pub, NOW, why, sizeof why),
        WA_CERT_MALFORMED, "chain: empty chain is malformed");
    T_EQ_INT(wa_noise_verify_cert_chain((const uint8_t *)"", 0, k->root_pub, k->srv_pub, NOW, NULL, 0),
             WA_CERT_MALFORMED, "chain: reason buffer may be NULL");
}

static void test_tamper(const struct pki *k)
{
    struct chain_opts co;
    chain_defaults(&co);
    struct {
        enum tamper t;
        const char *name;
        const char *reason;
    } ts[] = {
        {TAMPER_EPH, "ServerHello ephemeral", "static"},
        {TAMPER_STATIC, "ServerHello static ciphertext", "static"},
        {TAMPER_PAYLOAD, "ServerHello certificate ciphertext", "certificate"},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        struct run r;
        char name[120];
        run_handshake(&r, k, k->root_pub, &co, ts[i].t, NOW);
        snprintf(name, sizeof name, "tamper: %s -> decrypt error", ts[i].name);
        T_EQ_INT(r.rc, WA_NOISE_ERR_DECRYPT, name);
        snprintf(name, sizeof name, "tamper: %s -> reason mentions %s", ts[i].name, ts[i].reason);
        T_CHECK(strstr(wa_noise_reason(&r.ns), ts[i].reason) != NULL, name);
        run_free(&r);
    }

    /* ClientFinish tampered on the way: the responder's decryption fails,
     * for the static part and for the payload part. */
    for (int part = 0; part < 2; part++) {
        uint8_t cs_priv[32], cs_pub[32];
        wa_crypto_x25519_keypair(cs_priv, cs_pub);
        struct wa_noise ns;
        struct server srv;
        memset(&srv, 0, sizeof srv);
        memcpy(srv.s_priv, k->srv_priv, 32);
        memcpy(srv.s_pub, k->srv_pub, 32);
        struct wa_noise_config cfg = {.root_pub = k->root_pub, .static_priv = cs_priv};
        wa_noise_init(&ns, &cfg);
        uint8_t *out;
        size_t out_len, chain_len, sh_len;
        wa_noise_start(&ns, &out, &out_len);
        srv_read_hello(&srv, out, out_len);
        free(out);
        uint8_t *chain = build_chain(k, &co, &chain_len);
        uint8_t *sh = srv_write_hello(&srv, chain, chain_len, TAMPER_NONE, &sh_len);
        wa_noise_read_server_hello(&ns, sh, sh_len, PAYLOAD, sizeof PAYLOAD, NOW, &out, &out_len);
        /* Layout: 3 length, 0x22 len, 0x0a 0x30 static(48), 0x12 len payload. */
        size_t at = part == 0 ? 3 + 2 + 2 + 10 : out_len - 4;
        out[at] ^= 0x01;
        T_EQ_INT(srv_read_finish(&srv, out, out_len), -1,
                 part == 0 ? "tamper: ClientFinish static ciphertext rejected by the responder"
                           : "tamper: ClientFinish payload ciphertext rejected by the responder");
        free(out);
        free(chain);
        free(sh);
        wa_noise_free(&ns);
        srv_free(&srv);
    }
}

static void test_malformed_hello(const struct pki *k)
{
    uint8_t cs_priv[32], cs_pub[32];
    wa_crypto_x25519_keypair(cs_priv, cs_pub);
    struct wa_noise_config cfg = {.root_pub = k->root_pub, .static_priv = cs_priv};
    struct {
        const char *name;
        const uint8_t *bytes;
        size_t len;
        const char *reason;
    } cases[] = {
        {"garbage", (const uint8_t *)"\x0a\xff\xff\xff\xff\x0f", 6, "not a HandshakeMessage"},
        {"empty message", (const uint8_t *)"", 0, "no ServerHello"},
        {"ClientHello instead", (const uint8_t *)"\x12\x02\x0a\x00", 4, "no ServerHello"},
        {"ServerHello without fields", (const uint8_t *)"\x1a\x00", 2, "ephemeral"},
        {"31-byte ephemeral",
         (const uint8_t *)"\x1a\x21\x0a\x1f"
                          "0123456789012345678901234567890",
         35, "ephemeral"},
        {"no static",
         (const uint8_t *)"\x1a\x22\x0a\x20"
                          "01234567890123456789012345678901",
         36, "static"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wa_noise ns;
        uint8_t *out;
        size_t out_len;
        char name[320];
        wa_noise_init(&ns, &cfg);
        wa_noise_start(&ns, &out, &out_len);
        free(out);
        int rc = wa_noise_read_server_hello(&ns, cases[i].bytes, cases[i].len, PAYLOAD, sizeof PAYLOAD, NOW,
                                            &out, &out_len);
        snprintf(name, sizeof name, "malformed ServerHello: %s -> protocol error", cases[i].name);
        T_EQ_INT(rc, WA_NOISE_ERR_PROTO, name);
        snprintf(name, sizeof name, "malformed ServerHello: %s -> reason \"%s\"", cases[i].name,
                 wa_noise_reason(&ns));
        T_CHECK(strstr(wa_noise_reason(&ns), cases[i].reason) != NULL && out == NULL, name);
        wa_noise_free(&ns);
    }

    /* Wrong order of calls. */
    struct wa_noise ns;
    uint8_t *out;
    size_t out_len;
    wa_noise_init(&ns, &cfg);
    T_EQ_INT(wa_noise_read_server_hello(&ns, (const uint8_t *)"", 0, NULL, 0, NOW, &out, &out_len),
             WA_NOISE_ERR_STATE, "state: ServerHello before start refused");
    wa_noise_free(&ns);
    wa_noise_init(&ns, &cfg);
    wa_noise_start(&ns, &out, &out_len);
    T_CHECK(out_len == 4 + 3 + 36 && memcmp(out, "WA\x06\x03\x00\x00\x24\x12\x22\x0a\x20", 11) == 0 &&
                memcmp(out + 11, ns.e_pub, 32) == 0,
            "start: header, length 36, ClientHello{ephemeral}");
    free(out);
    T_EQ_INT(wa_noise_encrypt(&ns, (const uint8_t *)"x", 1, &out, &out_len), WA_NOISE_ERR_STATE,
             "state: encrypt during the handshake refused");
    T_EQ_INT(wa_noise_start(&ns, &out, &out_len), WA_NOISE_ERR_STATE, "state: start refused once failed");
    wa_noise_free(&ns);
    wa_noise_init(&ns, &cfg);
    wa_noise_start(&ns, &out, &out_len);
    free(out);
    T_EQ_INT(wa_noise_start(&ns, &out, &out_len), WA_NOISE_ERR_STATE, "state: start twice refused");
    wa_noise_free(&ns);

    struct wa_noise_config bad = {.root_pub = NULL, .static_priv = cs_priv};
    T_EQ_INT(wa_noise_init(&ns, &bad), WA_NOISE_ERR_CRYPTO, "init: missing root key refused");
    wa_noise_free(&ns);

    /* A fixed ephemeral key (for reproducible tests) is used as given. */
    uint8_t e[32], epub[32];
    wa_crypto_x25519_keypair(e, epub);
    struct wa_noise_config fixed = {.root_pub = k->root_pub, .static_priv = cs_priv, .ephemeral_priv = e};
    wa_noise_init(&ns, &fixed);
    T_CHECK(memcmp(ns.e_pub, epub, 32) == 0, "init: a given ephemeral key is used");
    wa_noise_free(&ns);
}

/* Five frames of the given sizes, concatenated; byte j of frame i is i*31+j*7. */
static uint8_t *frame_stream(const size_t sizes[5], size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += 3 + sizes[i];
    uint8_t *buf = malloc(total), *p = buf;
    for (int i = 0; i < 5; i++) {
        wa_frame_put_len(p, sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            p[3 + j] = (uint8_t)(i * 31 + j * 7);
        p += 3 + sizes[i];
    }
    *len = total;
    return buf;
}

/* Feeds the stream cut at the given offsets; returns 1 when all 5 frames
 * come out intact and in order. */
static int feed_chunks(const uint8_t *stream, size_t len, const size_t sizes[5], const size_t *cuts,
                       size_t ncuts, size_t max_frame)
{
    struct wa_framer f;
    wa_framer_init(&f, max_frame);
    int got = 0, ok = 1;
    size_t start = 0;
    for (size_t c = 0; c <= ncuts && ok; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        size_t off = start;
        while (off < end && ok) {
            size_t used, fl;
            const uint8_t *fr;
            int r = wa_framer_feed(&f, stream + off, end - off, &used, &fr, &fl);
            if (r < 0 || (used == 0 && r == 0))
                ok = 0;
            off += used;
            if (r == 1) {
                if (got >= 5 || fl != sizes[got])
                    ok = 0;
                for (size_t j = 0; ok && j < fl; j++)
                    if (fr[j] != (uint8_t)(got * 31 + j * 7))
                        ok = 0;
                got++;
            }
        }
        start = end;
    }
    wa_framer_free(&f);
    return ok && got == 5;
}

static void test_framing(void)
{
    /* Small frames (including an empty one) for the exhaustive splits... */
    static const size_t small[5] = {0, 1, 5, 300, 1000};
    size_t len;
    uint8_t *stream = frame_stream(small, &len);
    T_CHECK(feed_chunks(stream, len, small, NULL, 0, 0), "framing: whole stream at once");
    int ok = 1;
    for (size_t i = 1; i < len; i++) {
        size_t cut = i;
        ok &= feed_chunks(stream, len, small, &cut, 1, 0);
    }
    T_CHECK(ok, "framing: split into two at every offset");
    /* Two cuts at every pair of offsets in the first 40 bytes: the three small
     * frames, and the header and first body bytes of the 300-byte one. */
    ok = 1;
    for (size_t i = 1; i < 40; i++)
        for (size_t j = i + 1; j < 40; j++) {
            size_t cuts[2] = {i, j};
            ok &= feed_chunks(stream, len, small, cuts, 2, 0);
        }
    T_CHECK(ok, "framing: split into three at every pair of offsets in the first 40 bytes");
    size_t *every = malloc(sizeof(size_t) * len);
    for (size_t i = 0; i + 1 < len; i++)
        every[i] = i + 1;
    T_CHECK(feed_chunks(stream, len, small, every, len - 1, 0), "framing: one byte at a time");
    free(every);
    free(stream);

    /* ...and one over 64 KiB, so all three length bytes matter. */
    static const size_t large[5] = {2, 70000, 0, 65536, 3};
    stream = frame_stream(large, &len);
    T_CHECK(feed_chunks(stream, len, large, NULL, 0, 0), "framing: frames over 64 KiB at once");
    ok = 1;
    for (size_t i = 1; i < len; i += 997) {
        size_t cut = i;
        ok &= feed_chunks(stream, len, large, &cut, 1, 0);
    }
    T_CHECK(ok, "framing: frames over 64 KiB split every 997 bytes");
    every = malloc(sizeof(size_t) * len);
    for (size_t i = 0; i + 1 < len; i++)
        every[i] = i + 1;
    T_CHECK(feed_chunks(stream, len, large, every, len - 1, 0),
            "framing: frames over 64 KiB one byte at a time");
    free(every);
    T_CHECK(!feed_chunks(stream, len, large, NULL, 0, 69999),
            "framing: a frame over the bound fails the stream");
    {
        /* The 70000-byte frame (second in the stream), buffered across two calls. */
        struct wa_framer g;
        size_t u1, u2, u3, gl;
        const uint8_t *gf;
        wa_framer_init(&g, 0);
        int r1 = wa_framer_feed(&g, stream + 5, 1000, &u1, &gf, &gl);
        int r2 = wa_framer_feed(&g, stream + 5 + u1, len - 5 - u1, &u2, &gf, &gl);
        T_CHECK(r1 == 0 && r2 == 1 && gl == 70000 && g.cap >= 70003 && g.cap <= 2 * 70003,
                "framing: a buffered large frame uses at most twice its size");
        wa_framer_feed(&g, stream + 5 + u1 + u2, 1, &u3, &gf, &gl);
        T_CHECK(g.cap <= 256, "framing: the large buffer is released after its frame");
        wa_framer_free(&g);
    }
    free(stream);

    /* Oversize rejected from the header alone, before any body bytes. */
    struct wa_framer f;
    size_t used, fl;
    const uint8_t *fr;
    wa_framer_init(&f, 100);
    T_EQ_INT(wa_framer_feed(&f, (const uint8_t *)"\x00\x00\x65", 3, &used, &fr, &fl), WA_NOISE_ERR_FRAME,
             "framing: 101 > bound 100 rejected at the header");
    T_EQ_INT(wa_framer_feed(&f, (const uint8_t *)"\x00\x00\x01x", 4, &used, &fr, &fl), WA_NOISE_ERR_FRAME,
             "framing: framer stays failed");
    wa_framer_free(&f);
    wa_framer_init(&f, 100);
    T_EQ_INT(wa_framer_feed(&f, (const uint8_t *)"\x00", 1, &used, &fr, &fl), 0,
             "framing: partial header waits");
    T_EQ_INT(wa_framer_feed(&f, (const uint8_t *)"\x01\x00", 2, &used, &fr, &fl), WA_NOISE_ERR_FRAME,
             "framing: oversize rejected when the header completes across calls");
    wa_framer_free(&f);
    wa_framer_init(&f, 100);
    T_EQ_INT(wa_framer_feed(&f, (const uint8_t *)"\x00\x00\x64", 3, &used, &fr, &fl), 0,
             "framing: exactly the bound is accepted");
    wa_framer_free(&f);
    wa_framer_init(&f, 0);
    T_EQ_INT(wa_framer_feed(&f,
                            (const uint8_t *)"\xff\xff\xff"
                                             "abc",
                            6, &used, &fr, &fl),
             0, "framing: 2^24-1 accepted by the default bound");
    T_CHECK(used == 6 && f.cap <= 256,
            "framing: a declared length allocates nothing before the bytes arrive");
    wa_framer_free(&f);
    uint8_t hdr[3];
    T_EQ_INT(wa_frame_put_len(hdr, 0x1000000), -1, "framing: 2^24 cannot be encoded");
    T_CHECK(wa_frame_put_len(hdr, 0x123456) == 0 && hdr[0] == 0x12 && hdr[1] == 0x34 && hdr[2] == 0x56,
            "framing: length is big-endian");

    /* Through a session: oversize inbound frame fails the session. */
    uint8_t sp[32], spub[32];
    wa_crypto_x25519_keypair(sp, spub);
    struct wa_noise ns;
    struct wa_noise_config cfg = {.root_pub = spub, .static_priv = sp, .max_frame = 1000};
    wa_noise_init(&ns, &cfg);
    T_EQ_INT(wa_noise_recv(&ns, (const uint8_t *)"\x00\x03\xe9", 3, &used, &fr, &fl), WA_NOISE_ERR_FRAME,
             "framing: session rejects an inbound frame over its bound");
    T_CHECK(strstr(wa_noise_reason(&ns), "longer than 1000") != NULL, "framing: reason gives the bound");
    wa_noise_free(&ns);
}

static void test_payload(void)
{
    uint32_t v[3];
    T_CHECK(wa_version_parse("2.3000.1045649367", v) == 0 && v[0] == 2 && v[1] == 3000 && v[2] == 1045649367,
            "version: 2.3000.1045649367 parses");
    T_CHECK(wa_version_parse("0.0.0", v) == 0, "version: zeros parse");
    T_CHECK(wa_version_parse("2.3000.4294967295", v) == 0 && v[2] == 4294967295u, "version: 32-bit maximum");
    const char *bad[] = {"",
                         "2",
                         "2.3000",
                         "2.3000.",
                         ".3000.1",
                         "2..1",
                         "2.3000.1.4",
                         "2.3000.1 ",
                         " 2.3000.1",
                         "2.3000.-1",
                         "2.3000.+1",
                         "2.3000.01",
                         "2.3000.4294967296",
                         "2.3000.1x",
                         "a.b.c",
                         NULL};
    int ok = 1;
    for (int i = 0; bad[i]; i++)
        ok &= wa_version_parse(bad[i], v) == -1;
    ok &= wa_version_parse(NULL, v) == -1;
    T_CHECK(ok, "version: 16 malformed strings rejected");

    struct wa_payload_opts o;
    wa_payload_defaults(&o);
    o.version = "2.3000.1045649367";
    o.push_name = "wapi test";
    struct wa_register_keys k;
    memset(&k, 0, sizeof k);
    k.registration_id = 0x01020304;
    k.signed_prekey_id = 0xABCDEF;
    memset(k.identity_pub, 0x11, 32);
    memset(k.signed_prekey_pub, 0x22, 32);
    memset(k.signed_prekey_sig, 0x33, 64);
    uint8_t *out;
    size_t out_len;
    char err[120];
    T_EQ_INT(wa_payload_register(&o, &k, &out, &out_len, err, sizeof err), 0, "payload: register builds");
    Wapi__Wa__ClientPayload *p = wapi__wa__client_payload__unpack(NULL, out_len, out);
    T_CHECK(p && p->user_agent && p->user_agent->platform == 14 && p->user_agent->app_version &&
                p->user_agent->app_version->primary == 2 && p->user_agent->app_version->secondary == 3000 &&
                p->user_agent->app_version->tertiary == 1045649367,
            "payload: register user agent WEB 2.3000.N");
    T_CHECK(p && p->has_connect_type && p->connect_type == 1 && p->has_connect_reason &&
                p->connect_reason == 1 && p->has_passive && !p->passive && p->has_pull && !p->pull &&
                !p->has_username && p->push_name && strcmp(p->push_name, "wapi test") == 0,
            "payload: register flags");
    Wapi__Wa__ClientPayload__DevicePairingRegistrationData *d = p ? p->device_pairing_data : NULL;
    uint8_t md5[16];
    wa_crypto_md5((const uint8_t *)"2.3000.1045649367", 17, md5);
    T_CHECK(d && d->e_regid.len == 4 && memcmp(d->e_regid.data, "\x01\x02\x03\x04", 4) == 0 &&
                d->e_keytype.len == 1 && d->e_keytype.data[0] == 5 && d->e_ident.len == 32 &&
                d->e_skey_id.len == 3 && memcmp(d->e_skey_id.data, "\xab\xcd\xef", 3) == 0 &&
                d->e_skey_val.len == 32 && d->e_skey_sig.len == 64 && d->build_hash.len == 16 &&
                memcmp(d->build_hash.data, md5, 16) == 0,
            "payload: register pairing data sizes, big-endian ids, build hash");
    Wapi__Wa__DeviceProps *dp =
        d ? wapi__wa__device_props__unpack(NULL, d->device_props.len, d->device_props.data) : NULL;
    T_CHECK(dp && dp->os && strcmp(dp->os, "wapi") == 0 && dp->platform_type == 1,
            "payload: register device props");
    T_CHECK(dp && dp->has_require_full_sync && !dp->require_full_sync && dp->history_sync_config &&
                !dp->history_sync_config->has_full_sync_days_limit &&
                !dp->history_sync_config->has_full_sync_size_mb_limit,
            "payload: history recent (the default): no full sync asked");
    if (dp)
        wapi__wa__device_props__free_unpacked(dp, NULL);
    if (p)
        wapi__wa__client_payload__free_unpacked(p, NULL);
    free(out);
    o.history = WA_HISTORY_FULL;
    T_EQ_INT(wa_payload_register(&o, &k, &out, &out_len, err, sizeof err), 0,
             "payload: register (full) builds");
    p = wapi__wa__client_payload__unpack(NULL, out_len, out);
    d = p ? p->device_pairing_data : NULL;
    dp = d ? wapi__wa__device_props__unpack(NULL, d->device_props.len, d->device_props.data) : NULL;
    T_CHECK(dp && dp->has_require_full_sync && dp->require_full_sync && dp->history_sync_config &&
                dp->history_sync_config->has_full_sync_days_limit &&
                dp->history_sync_config->full_sync_days_limit == WA_HISTORY_FULL_DAYS &&
                dp->history_sync_config->has_full_sync_size_mb_limit &&
                dp->history_sync_config->full_sync_size_mb_limit == WA_HISTORY_FULL_SIZE_MB &&
                dp->history_sync_config->has_storage_quota_mb,
            "payload: history full: requireFullSync and the full-sync limits");
    o.history = WA_HISTORY_RECENT;
    if (dp)
        wapi__wa__device_props__free_unpacked(dp, NULL);
    if (p)
        wapi__wa__client_payload__free_unpacked(p, NULL);
    free(out);

    T_EQ_INT(wa_payload_login(&o, 15551234567ull, 12, &out, &out_len, err, sizeof err), 0,
             "payload: login builds");
    p = wapi__wa__client_payload__unpack(NULL, out_len, out);
    T_CHECK(p && p->has_username && p->username == 15551234567ull && p->has_device && p->device == 12 &&
                p->passive && p->pull && !p->device_pairing_data && !p->has_lid_db_migrated,
            "payload: login username, device, passive, pull");
    if (p)
        wapi__wa__client_payload__free_unpacked(p, NULL);
    free(out);

    o.version = "2.3000";
    T_EQ_INT(wa_payload_login(&o, 1, 0, &out, &out_len, err, sizeof err), -1,
             "payload: malformed version refused");
    T_CHECK(strstr(err, "2.3000") != NULL && out == NULL, "payload: reason quotes the version");
    o.version = "2.3000.1";
    k.signed_prekey_id = 0x1000000;
    T_EQ_INT(wa_payload_register(&o, &k, &out, &out_len, err, sizeof err), -1,
             "payload: signed prekey id over 3 bytes refused");
}

int main(void)
{
    struct pki k;
    make_pki(&k);
    test_crypto();
    test_success(&k);
    test_chain_defects(&k);
    test_tamper(&k);
    test_malformed_hello(&k);
    test_framing();
    test_payload();
    OPENSSL_cleanse(&k, sizeof k);
    T_DONE();
}
