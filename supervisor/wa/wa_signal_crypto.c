/* libsignal-protocol-c leaves every primitive to the application; these are
 * ours, on OpenSSL 3's EVP interfaces (the HMAC_CTX API is deprecated). */
#include "wa_signal_crypto.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static int sc_random(uint8_t *data, size_t len, void *user_data)
{
    (void)user_data;
    if (len > INT_MAX)
        return SG_ERR_INVAL;
    return RAND_bytes(data, (int)len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int sc_hmac_init(void **hmac_context, const uint8_t *key, size_t key_len, void *user_data)
{
    (void)user_data;
    *hmac_context = NULL;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return SG_ERR_UNKNOWN;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!ctx)
        return SG_ERR_NOMEM;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    /* A zero-length key is legal HMAC, but OpenSSL wants a non-NULL pointer. */
    static const uint8_t empty[1];
    if (EVP_MAC_init(ctx, key_len ? key : empty, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return SG_ERR_UNKNOWN;
    }
    *hmac_context = ctx;
    return 0;
}

static int sc_hmac_update(void *hmac_context, const uint8_t *data, size_t data_len, void *user_data)
{
    (void)user_data;
    return EVP_MAC_update(hmac_context, data, data_len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int sc_hmac_final(void *hmac_context, signal_buffer **output, void *user_data)
{
    (void)user_data;
    uint8_t md[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (EVP_MAC_final(hmac_context, md, &len, sizeof md) != 1)
        return SG_ERR_UNKNOWN;
    signal_buffer *b = signal_buffer_create(md, len);
    OPENSSL_cleanse(md, sizeof md);
    if (!b)
        return SG_ERR_NOMEM;
    *output = b;
    return 0;
}

static void sc_hmac_cleanup(void *hmac_context, void *user_data)
{
    (void)user_data;
    EVP_MAC_CTX_free(hmac_context); /* NULL is fine */
}

static int sc_sha512_init(void **digest_context, void *user_data)
{
    (void)user_data;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return SG_ERR_NOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return SG_ERR_UNKNOWN;
    }
    *digest_context = ctx;
    return 0;
}

static int sc_sha512_update(void *digest_context, const uint8_t *data, size_t data_len, void *user_data)
{
    (void)user_data;
    return EVP_DigestUpdate(digest_context, data, data_len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

/* The library reuses the context after final, so re-initialise it here. */
static int sc_sha512_final(void *digest_context, signal_buffer **output, void *user_data)
{
    (void)user_data;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(digest_context, md, &len) != 1 ||
        EVP_DigestInit_ex(digest_context, EVP_sha512(), NULL) != 1)
        return SG_ERR_UNKNOWN;
    signal_buffer *b = signal_buffer_create(md, len);
    if (!b)
        return SG_ERR_NOMEM;
    *output = b;
    return 0;
}

static void sc_sha512_cleanup(void *digest_context, void *user_data)
{
    (void)user_data;
    EVP_MD_CTX_free(digest_context);
}

static const EVP_CIPHER *sc_cipher(int cipher, size_t key_len)
{
    if (cipher == SG_CIPHER_AES_CBC_PKCS5) {
        if (key_len == 16)
            return EVP_aes_128_cbc();
        if (key_len == 24)
            return EVP_aes_192_cbc();
        if (key_len == 32)
            return EVP_aes_256_cbc();
    } else if (cipher == SG_CIPHER_AES_CTR_NOPADDING) {
        if (key_len == 16)
            return EVP_aes_128_ctr();
        if (key_len == 24)
            return EVP_aes_192_ctr();
        if (key_len == 32)
            return EVP_aes_256_ctr();
    }
    return NULL;
}

/* One function for both directions: EVP_CipherInit_ex takes enc = 1 or 0.
 * CBC uses PKCS#7 padding (OpenSSL's default); a bad pad on decrypt fails. */
static int sc_crypt(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len, const uint8_t *iv,
                    size_t iv_len, const uint8_t *in, size_t in_len, int enc)
{
    const EVP_CIPHER *evp = sc_cipher(cipher, key_len);
    if (!evp || iv_len != 16)
        return SG_ERR_INVAL;
    if (in_len > (size_t)INT_MAX - 32)
        return SG_ERR_INVAL;
    int result = SG_ERR_UNKNOWN;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t *buf = malloc(in_len + 32); /* room for one block of padding */
    int n1 = 0, n2 = 0;
    if (!ctx || !buf) {
        result = SG_ERR_NOMEM;
        goto done;
    }
    if (EVP_CipherInit_ex(ctx, evp, NULL, key, iv, enc) != 1)
        goto done;
    if (EVP_CipherUpdate(ctx, buf, &n1, in, (int)in_len) != 1)
        goto done;
    if (EVP_CipherFinal_ex(ctx, buf + n1, &n2) != 1)
        goto done;
    *output = signal_buffer_create(buf, (size_t)n1 + (size_t)n2);
    result = *output ? 0 : SG_ERR_NOMEM;
done:
    if (buf) {
        OPENSSL_cleanse(buf, in_len + 32);
        free(buf);
    }
    EVP_CIPHER_CTX_free(ctx);
    return result;
}

static int sc_encrypt(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
                      const uint8_t *iv, size_t iv_len, const uint8_t *plaintext, size_t plaintext_len,
                      void *user_data)
{
    (void)user_data;
    return sc_crypt(output, cipher, key, key_len, iv, iv_len, plaintext, plaintext_len, 1);
}

static int sc_decrypt(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
                      const uint8_t *iv, size_t iv_len, const uint8_t *ciphertext, size_t ciphertext_len,
                      void *user_data)
{
    (void)user_data;
    return sc_crypt(output, cipher, key, key_len, iv, iv_len, ciphertext, ciphertext_len, 0);
}

void wa_signal_crypto_provider(signal_crypto_provider *out)
{
    memset(out, 0, sizeof *out);
    out->random_func = sc_random;
    out->hmac_sha256_init_func = sc_hmac_init;
    out->hmac_sha256_update_func = sc_hmac_update;
    out->hmac_sha256_final_func = sc_hmac_final;
    out->hmac_sha256_cleanup_func = sc_hmac_cleanup;
    out->sha512_digest_init_func = sc_sha512_init;
    out->sha512_digest_update_func = sc_sha512_update;
    out->sha512_digest_final_func = sc_sha512_final;
    out->sha512_digest_cleanup_func = sc_sha512_cleanup;
    out->encrypt_func = sc_encrypt;
    out->decrypt_func = sc_decrypt;
}

signal_context *wa_signal_context_new(void)
{
    signal_context *ctx = NULL;
    signal_crypto_provider p;
    wa_signal_crypto_provider(&p);
    if (signal_context_create(&ctx, NULL) != 0)
        return NULL;
    if (signal_context_set_crypto_provider(ctx, &p) != 0) {
        signal_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}
