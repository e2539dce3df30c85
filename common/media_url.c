#include "media_url.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void media_url_sign(const uint8_t key[MEDIA_KEY_LEN], const char *id, long long expires,
                    char sig[MEDIA_SIG_LEN + 1])
{
    char msg[300];
    int n = snprintf(msg, sizeof msg, "%s\n%lld", id, expires);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0; /* ids are short; an absurd one signs as the empty message and never verifies */
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, MEDIA_KEY_LEN, (const unsigned char *)msg, (size_t)n, mac, &maclen);
    size_t o = 0;
    for (size_t i = 0; i < 32; i += 3) {
        uint32_t v = (uint32_t)mac[i] << 16 | (i + 1 < 32 ? (uint32_t)mac[i + 1] << 8 : 0) |
                     (i + 2 < 32 ? mac[i + 2] : 0);
        sig[o++] = b64u[v >> 18 & 63];
        sig[o++] = b64u[v >> 12 & 63];
        if (i + 1 < 32)
            sig[o++] = b64u[v >> 6 & 63];
        if (i + 2 < 32)
            sig[o++] = b64u[v & 63];
    }
    sig[o] = '\0';
}

enum media_url_check media_url_check(const uint8_t key[MEDIA_KEY_LEN], const char *id, const char *expires,
                                     const char *sig, time_t now)
{
    size_t el = strlen(expires);
    if (el == 0 || el > 18 || strspn(expires, "0123456789") != el || strlen(sig) != MEDIA_SIG_LEN)
        return MEDIA_URL_BAD;
    long long exp = strtoll(expires, NULL, 10);
    char want[MEDIA_SIG_LEN + 1];
    media_url_sign(key, id, exp, want);
    /* "0123" and "123" are one number but not one link: the text must be the one signed. */
    char canon[24];
    snprintf(canon, sizeof canon, "%lld", exp);
    int ok = CRYPTO_memcmp(want, sig, MEDIA_SIG_LEN) == 0 && strcmp(canon, expires) == 0;
    if (!ok)
        return MEDIA_URL_BAD;
    return (long long)now > exp ? MEDIA_URL_EXPIRED : MEDIA_URL_OK;
}

int media_url_path(const uint8_t key[MEDIA_KEY_LEN], const char *id, long long expires, char *out,
                   size_t outlen)
{
    char sig[MEDIA_SIG_LEN + 1];
    media_url_sign(key, id, expires, sig);
    int n = snprintf(out, outlen, "/api/media/%s?expires=%lld&sig=%s", id, expires, sig);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
