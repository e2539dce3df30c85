#include "media_url.h"

#include <h2o/string_.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    h2o_base64_encode(sig, mac, sizeof mac, 1); /* unpadded: MEDIA_SIG_LEN characters and a NUL */
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
