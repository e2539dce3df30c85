/* WhatsApp media encryption, streamed (see wa_media_cipher.h). */
#include "wa_media_cipher.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "wa_crypto.h"

static const char *const INFO[WA_MEDIA_KINDS] = {
    [WA_MEDIA_IMAGE] = "WhatsApp Image Keys",     [WA_MEDIA_VIDEO] = "WhatsApp Video Keys",
    [WA_MEDIA_AUDIO] = "WhatsApp Audio Keys",     [WA_MEDIA_DOCUMENT] = "WhatsApp Document Keys",
    [WA_MEDIA_HISTORY] = "WhatsApp History Keys", [WA_MEDIA_APPSTATE] = "WhatsApp App State Keys",
};

struct wa_media_stream {
    int encrypt;
    EVP_CIPHER_CTX *aes;
    EVP_MAC_CTX *mac;
    EVP_MD_CTX *sha_plain, *sha_enc;
    uint64_t plain_len, enc_len;
    /* Decrypting: the last bytes seen, which may be the MAC. */
    uint8_t tail[WA_MEDIA_MAC_LEN];
    size_t tail_len;
    int failed; /* an update failed: the stream is unusable */
};

const char *wa_media_info(enum wa_media_kind kind)
{
    return (unsigned)kind < WA_MEDIA_KINDS ? INFO[kind] : NULL;
}

int wa_media_derive(const uint8_t media_key[WA_MEDIA_KEY_LEN], enum wa_media_kind kind,
                    struct wa_media_keys *out)
{
    const char *info = wa_media_info(kind);
    uint8_t buf[112];
    if (!info)
        return -1;
    if (wa_crypto_hkdf_sha256(NULL, 0, media_key, WA_MEDIA_KEY_LEN, (const uint8_t *)info, strlen(info), buf,
                              sizeof buf) != 0)
        return -1;
    memcpy(out->iv, buf, 16);
    memcpy(out->cipher, buf + 16, 32);
    memcpy(out->mac, buf + 48, 32);
    memcpy(out->ref, buf + 80, 32);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

void wa_media_stream_free(struct wa_media_stream *s)
{
    if (!s)
        return;
    EVP_CIPHER_CTX_free(s->aes); /* both wipe their key schedules */
    EVP_MAC_CTX_free(s->mac);
    EVP_MD_CTX_free(s->sha_plain);
    EVP_MD_CTX_free(s->sha_enc);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

static struct wa_media_stream *stream_new(const uint8_t media_key[WA_MEDIA_KEY_LEN], enum wa_media_kind kind,
                                          int encrypt)
{
    struct wa_media_keys k;
    struct wa_media_stream *s = calloc(1, sizeof *s);
    EVP_MAC *hmac = NULL;
    int ok = 0;
    if (!s || wa_media_derive(media_key, kind, &k) != 0)
        goto done;
    s->encrypt = encrypt;
    s->aes = EVP_CIPHER_CTX_new();
    s->sha_plain = EVP_MD_CTX_new();
    s->sha_enc = EVP_MD_CTX_new();
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    s->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    if (!s->aes || !s->sha_plain || !s->sha_enc || !s->mac)
        goto done;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_CipherInit_ex(s->aes, EVP_aes_256_cbc(), NULL, k.cipher, k.iv, encrypt) != 1 ||
        EVP_MAC_init(s->mac, k.mac, sizeof k.mac, params) != 1 ||
        EVP_MAC_update(s->mac, k.iv, sizeof k.iv) != 1 ||
        EVP_DigestInit_ex(s->sha_plain, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(s->sha_enc, EVP_sha256(), NULL) != 1)
        goto done;
    ok = 1;
done:
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(&k, sizeof k);
    if (!ok) {
        wa_media_stream_free(s);
        return NULL;
    }
    return s;
}

struct wa_media_stream *wa_media_encrypt_new(const uint8_t media_key[WA_MEDIA_KEY_LEN],
                                             enum wa_media_kind kind)
{
    return stream_new(media_key, kind, 1);
}

struct wa_media_stream *wa_media_decrypt_new(const uint8_t media_key[WA_MEDIA_KEY_LEN],
                                             enum wa_media_kind kind)
{
    return stream_new(media_key, kind, 0);
}

/* Ciphertext (not the MAC) going out or coming in. */
static int enc_bytes(struct wa_media_stream *s, const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    s->enc_len += n;
    return EVP_MAC_update(s->mac, p, n) == 1 && EVP_DigestUpdate(s->sha_enc, p, n) == 1 ? 0 : -1;
}

static int plain_bytes(struct wa_media_stream *s, const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    s->plain_len += n;
    return EVP_DigestUpdate(s->sha_plain, p, n) == 1 ? 0 : -1;
}

/* Runs n bytes through AES into out; returns the bytes written or -1. */
static long aes(struct wa_media_stream *s, const uint8_t *in, size_t n, uint8_t *out)
{
    long total = 0;
    while (n) {
        /* EVP takes int lengths: feed large buffers in pieces. */
        int chunk = n > (size_t)(INT_MAX - 2 * WA_MEDIA_BLOCK) ? INT_MAX - 2 * WA_MEDIA_BLOCK : (int)n, w = 0;
        if (EVP_CipherUpdate(s->aes, out + total, &w, in, chunk) != 1)
            return -1;
        total += w;
        in += chunk;
        n -= (size_t)chunk;
    }
    return total;
}

static long decrypt_part(struct wa_media_stream *s, const uint8_t *in, size_t n, uint8_t *out)
{
    if (enc_bytes(s, in, n) != 0)
        return -1;
    long w = aes(s, in, n, out);
    if (w < 0 || plain_bytes(s, out, (size_t)w) != 0)
        return -1;
    return w;
}

long wa_media_update(struct wa_media_stream *s, const uint8_t *in, size_t n, uint8_t *out)
{
    if (s->failed)
        return WA_MEDIA_ECRYPTO;
    if (n > LONG_MAX - 2 * WA_MEDIA_BLOCK) {
        s->failed = 1;
        return WA_MEDIA_ECRYPTO;
    }
    if (s->encrypt) {
        long w;
        if (plain_bytes(s, in, n) != 0 || (w = aes(s, in, n, out)) < 0 || enc_bytes(s, out, (size_t)w) != 0) {
            s->failed = 1;
            return WA_MEDIA_ECRYPTO;
        }
        return w;
    }
    /* Decrypting: everything but the last WA_MEDIA_MAC_LEN bytes seen so far
     * is ciphertext. The held-back tail goes first, then the new bytes. */
    size_t avail = s->tail_len + n;
    if (avail <= WA_MEDIA_MAC_LEN) {
        memcpy(s->tail + s->tail_len, in, n);
        s->tail_len = avail;
        return 0;
    }
    size_t emit = avail - WA_MEDIA_MAC_LEN;
    size_t from_tail = emit < s->tail_len ? emit : s->tail_len;
    size_t from_in = emit - from_tail;
    long w1 = decrypt_part(s, s->tail, from_tail, out);
    long w2 = w1 < 0 ? -1 : decrypt_part(s, in, from_in, out + w1);
    if (w2 < 0) {
        s->failed = 1;
        return WA_MEDIA_ECRYPTO;
    }
    memmove(s->tail, s->tail + from_tail, s->tail_len - from_tail);
    s->tail_len -= from_tail;
    memcpy(s->tail + s->tail_len, in + from_in, n - from_in);
    s->tail_len += n - from_in;
    return w1 + w2;
}

long wa_media_final(struct wa_media_stream *s, uint8_t *out, struct wa_media_sums *sums)
{
    uint8_t mac[32];
    size_t maclen = 0;
    unsigned int dlen = 0;
    int w = 0;
    if (s->failed)
        return WA_MEDIA_ECRYPTO;
    s->failed = 1; /* a stream ends once */
    if (s->encrypt) {
        if (EVP_CipherFinal_ex(s->aes, out, &w) != 1 || enc_bytes(s, out, (size_t)w) != 0 ||
            EVP_MAC_final(s->mac, mac, &maclen, sizeof mac) != 1 || maclen != sizeof mac)
            return WA_MEDIA_ECRYPTO;
        memcpy(out + w, mac, WA_MEDIA_MAC_LEN);
        if (EVP_DigestUpdate(s->sha_enc, mac, WA_MEDIA_MAC_LEN) != 1)
            return WA_MEDIA_ECRYPTO;
        s->enc_len += WA_MEDIA_MAC_LEN;
        w += WA_MEDIA_MAC_LEN;
    } else {
        /* At least one block (padding always adds one), whole blocks. */
        if (s->tail_len < WA_MEDIA_MAC_LEN || s->enc_len < WA_MEDIA_BLOCK || s->enc_len % WA_MEDIA_BLOCK)
            return WA_MEDIA_ESHORT;
        if (EVP_MAC_final(s->mac, mac, &maclen, sizeof mac) != 1 || maclen != sizeof mac)
            return WA_MEDIA_ECRYPTO;
        if (CRYPTO_memcmp(mac, s->tail, WA_MEDIA_MAC_LEN) != 0)
            return WA_MEDIA_EMAC;
        if (EVP_CipherFinal_ex(s->aes, out, &w) != 1)
            return WA_MEDIA_EPAD;
        if (plain_bytes(s, out, (size_t)w) != 0 ||
            EVP_DigestUpdate(s->sha_enc, s->tail, WA_MEDIA_MAC_LEN) != 1)
            return WA_MEDIA_ECRYPTO;
        s->enc_len += WA_MEDIA_MAC_LEN;
    }
    if (EVP_DigestFinal_ex(s->sha_plain, sums->file_sha256, &dlen) != 1 ||
        EVP_DigestFinal_ex(s->sha_enc, sums->file_enc_sha256, &dlen) != 1)
        return WA_MEDIA_ECRYPTO;
    sums->file_length = s->plain_len;
    sums->enc_length = s->enc_len;
    return w;
}
