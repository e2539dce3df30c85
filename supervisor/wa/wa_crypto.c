/* Thin, checked wrappers over OpenSSL 3 and libsignal-protocol-c so the rest
 * of the WhatsApp client works on plain byte arrays. */
#include "wa_crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <signal/curve.h>
#include <signal/signal_protocol.h>

#include "wa_signal_crypto.h"

int wa_crypto_random(uint8_t *buf, size_t len)
{
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(buf, n) != 1)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Curve25519 clamping: libsignal's XEdDSA signs with the scalar as stored. */
static void clamp(uint8_t k[WA_KEY_LEN])
{
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
}

int wa_crypto_x25519_pub(const uint8_t priv[WA_KEY_LEN], uint8_t pub[WA_KEY_LEN])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, WA_KEY_LEN);
    size_t len = WA_KEY_LEN;
    int ok = pk && EVP_PKEY_get_raw_public_key(pk, pub, &len) == 1 && len == WA_KEY_LEN;
    EVP_PKEY_free(pk);
    return ok ? 0 : -1;
}

int wa_crypto_x25519_keypair(uint8_t priv[WA_KEY_LEN], uint8_t pub[WA_KEY_LEN])
{
    if (wa_crypto_random(priv, WA_KEY_LEN) != 0)
        return -1;
    clamp(priv);
    if (wa_crypto_x25519_pub(priv, pub) != 0) {
        OPENSSL_cleanse(priv, WA_KEY_LEN);
        return -1;
    }
    return 0;
}

int wa_crypto_x25519_dh(const uint8_t priv[WA_KEY_LEN], const uint8_t peer_pub[WA_KEY_LEN],
                        uint8_t shared[WA_KEY_LEN])
{
    int ok = 0;
    EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, WA_KEY_LEN);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, WA_KEY_LEN);
    EVP_PKEY_CTX *ctx = mine ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
    size_t len = WA_KEY_LEN;
    /* OpenSSL refuses an all-zero result (a low-order peer point) itself. */
    if (ctx && peer && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
        EVP_PKEY_derive(ctx, shared, &len) == 1 && len == WA_KEY_LEN)
        ok = 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(mine);
    if (!ok)
        OPENSSL_cleanse(shared, WA_KEY_LEN);
    return ok ? 0 : -1;
}

int wa_crypto_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len,
                          uint8_t out[WA_SHA256_LEN])
{
    static const uint8_t empty[1];
    size_t len = 0;
    /* EVP_Q_mac wants non-NULL pointers even for empty inputs. */
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key_len ? key : empty, key_len,
                   data_len ? data : empty, data_len, out, WA_SHA256_LEN, &len))
        return -1;
    return len == WA_SHA256_LEN ? 0 : -1;
}

/* HKDF by its definition (RFC 5869) over HMAC: an empty ikm (the Noise
 * Split) and an absent salt are both plain cases here, with no provider
 * special-casing to worry about. */
int wa_crypto_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    static const uint8_t zeros[WA_SHA256_LEN];
    uint8_t prk[WA_SHA256_LEN], t[WA_SHA256_LEN];
    uint8_t *block = NULL;
    int rc = -1;
    if (out_len > 255 * WA_SHA256_LEN)
        return -1;
    if (!salt || salt_len == 0) {
        salt = zeros;
        salt_len = sizeof zeros;
    }
    if (wa_crypto_hmac_sha256(salt, salt_len, ikm, ikm_len, prk) != 0)
        goto done;
    /* T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i) */
    if (info_len > SIZE_MAX - WA_SHA256_LEN - 1)
        goto done;
    block = OPENSSL_malloc(WA_SHA256_LEN + info_len + 1);
    if (!block)
        goto done;
    size_t tlen = 0, done_len = 0;
    for (unsigned i = 1; done_len < out_len; i++) {
        memcpy(block, t, tlen);
        if (info_len)
            memcpy(block + tlen, info, info_len);
        block[tlen + info_len] = (uint8_t)i;
        if (wa_crypto_hmac_sha256(prk, sizeof prk, block, tlen + info_len + 1, t) != 0)
            goto done;
        tlen = WA_SHA256_LEN;
        size_t n = out_len - done_len < WA_SHA256_LEN ? out_len - done_len : WA_SHA256_LEN;
        memcpy(out + done_len, t, n);
        done_len += n;
    }
    rc = 0;
done:
    if (block)
        OPENSSL_clear_free(block, WA_SHA256_LEN + info_len + 1);
    OPENSSL_cleanse(prk, sizeof prk);
    OPENSSL_cleanse(t, sizeof t);
    return rc;
}

static int gcm(int enc, const uint8_t key[WA_KEY_LEN], const uint8_t iv[WA_GCM_IV_LEN], const uint8_t *ad,
               size_t ad_len, const uint8_t *in, size_t in_len, uint8_t *out, uint8_t tag[WA_GCM_TAG_LEN])
{
    int ok = 0, n = 0;
    if (in_len > INT_MAX || ad_len > INT_MAX)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -1;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, WA_GCM_IV_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1)
        goto done;
    if (ad_len && EVP_CipherUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1)
        goto done;
    if (in_len && EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) != 1)
        goto done;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, WA_GCM_TAG_LEN, tag) != 1)
        goto done;
    /* GCM writes nothing here; the tag check happens on decrypt. */
    if (EVP_CipherFinal_ex(ctx, out + in_len, &n) != 1)
        goto done;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, WA_GCM_TAG_LEN, tag) != 1)
        goto done;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

int wa_crypto_aes_gcm_seal(const uint8_t key[WA_KEY_LEN], const uint8_t iv[WA_GCM_IV_LEN], const uint8_t *ad,
                           size_t ad_len, const uint8_t *pt, size_t pt_len, uint8_t *out)
{
    return gcm(1, key, iv, ad, ad_len, pt, pt_len, out, out + pt_len);
}

int wa_crypto_aes_gcm_open(const uint8_t key[WA_KEY_LEN], const uint8_t iv[WA_GCM_IV_LEN], const uint8_t *ad,
                           size_t ad_len, const uint8_t *ct, size_t ct_len, uint8_t *out)
{
    uint8_t tag[WA_GCM_TAG_LEN];
    if (ct_len < WA_GCM_TAG_LEN)
        return -1;
    size_t n = ct_len - WA_GCM_TAG_LEN;
    memcpy(tag, ct + n, WA_GCM_TAG_LEN); /* copy first: out may alias ct */
    if (gcm(0, key, iv, ad, ad_len, ct, n, out, tag) != 0) {
        OPENSSL_cleanse(out, n); /* never hand out unauthenticated plaintext */
        return -1;
    }
    return 0;
}

int wa_crypto_sha256_2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                       uint8_t out[WA_SHA256_LEN])
{
    int ok = 0;
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, a, a_len) == 1 &&
        EVP_DigestUpdate(ctx, b, b_len) == 1 && EVP_DigestFinal_ex(ctx, out, &len) == 1 &&
        len == WA_SHA256_LEN)
        ok = 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int wa_crypto_sha256(const uint8_t *data, size_t len, uint8_t out[WA_SHA256_LEN])
{
    return wa_crypto_sha256_2(data, len, NULL, 0, out);
}

int wa_crypto_md5(const uint8_t *data, size_t len, uint8_t out[WA_MD5_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL) == 1 && n == WA_MD5_LEN ? 0 : -1;
}

int wa_crypto_xeddsa_verify(const uint8_t pub[WA_KEY_LEN], const uint8_t *msg, size_t msg_len,
                            const uint8_t sig[WA_SIG_LEN])
{
    uint8_t ser[1 + WA_KEY_LEN];
    ec_public_key *key = NULL;
    static const uint8_t empty[1];
    ser[0] = 0x05; /* libsignal's Curve25519 key type */
    memcpy(ser + 1, pub, WA_KEY_LEN);
    if (curve_decode_point(&key, ser, sizeof ser, NULL) != 0)
        return 0;
    int r = curve_verify_signature(key, msg_len ? msg : empty, msg_len, sig, WA_SIG_LEN);
    SIGNAL_UNREF(key);
    return r == 1 ? 1 : 0;
}

int wa_crypto_xeddsa_sign(const uint8_t priv[WA_KEY_LEN], const uint8_t *msg, size_t msg_len,
                          uint8_t sig[WA_SIG_LEN])
{
    int rc = -1;
    uint8_t k[WA_KEY_LEN];
    static const uint8_t empty[1];
    ec_private_key *key = NULL;
    signal_buffer *out = NULL;
    signal_context *ctx = wa_signal_context_new();
    if (!ctx)
        return -1;
    memcpy(k, priv, WA_KEY_LEN);
    clamp(k); /* a no-op for our keys; keeps foreign unclamped keys correct */
    if (curve_decode_private_point(&key, k, WA_KEY_LEN, ctx) != 0)
        goto done;
    if (curve_calculate_signature(ctx, &out, key, msg_len ? msg : empty, msg_len) != 0 || !out ||
        signal_buffer_len(out) != WA_SIG_LEN)
        goto done;
    memcpy(sig, signal_buffer_data(out), WA_SIG_LEN);
    rc = 0;
done:
    if (out)
        signal_buffer_free(out);
    /* ec_private_key_destroy wipes the key bytes before freeing. */
    SIGNAL_UNREF(key);
    OPENSSL_cleanse(k, sizeof k);
    signal_context_destroy(ctx);
    return rc;
}
