#include "password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>
#include <uninorm.h>

#include "hex.h"

#define SCRYPT_N 16384
#define SCRYPT_R 16
#define SCRYPT_P 1
#define DKLEN 64
/* 128 * N * r bytes of scratch, plus room for OpenSSL's own bookkeeping. */
#define SCRYPT_MAXMEM ((uint64_t)128 * SCRYPT_N * SCRYPT_R * 2)

char *password_nfkc(const char *pw, size_t len, size_t *outlen)
{
    if (len > PASSWORD_MAX_BYTES || u8_check((const uint8_t *)pw, len) != NULL)
        return NULL;
    size_t n = 0;
    uint8_t *r = u8_normalize(UNINORM_NFKC, (const uint8_t *)pw, len, NULL, &n);
    if (!r)
        return NULL;
    char *s = realloc(r, n + 1);
    if (!s) {
        free(r);
        return NULL;
    }
    s[n] = '\0';
    *outlen = n;
    return s;
}

static int derive(const char *pw, size_t len, const char *salt, size_t saltlen, unsigned char key[DKLEN])
{
    size_t n;
    char *norm = password_nfkc(pw, len, &n);
    if (!norm)
        return -1;
    int ok = EVP_PBE_scrypt(norm, n, (const unsigned char *)salt, saltlen, SCRYPT_N, SCRYPT_R, SCRYPT_P,
                            SCRYPT_MAXMEM, key, DKLEN);
    OPENSSL_cleanse(norm, n);
    free(norm);
    return ok == 1 ? 0 : -1;
}

int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_LEN])
{
    unsigned char rnd[16], key[DKLEN];
    char salt[33];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -1;
    hex_encode(salt, rnd, sizeof rnd, 0);
    if (derive(pw, len, salt, 32, key) < 0)
        return -1;
    memcpy(out, salt, 32);
    out[32] = ':';
    hex_encode(out + 33, key, DKLEN, 0);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

int password_verify(const char *stored, const char *pw, size_t len)
{
    /* Better Auth splits on ':' and compares the lower-case hex of the key. */
    const char *colon = stored ? strchr(stored, ':') : NULL;
    size_t saltlen = colon ? (size_t)(colon - stored) : 0;
    const char *want = colon ? colon + 1 : "";
    const char *salt = stored;
    int malformed = !colon || saltlen == 0 || saltlen > 256 || strchr(want, ':') || strlen(want) != 2 * DKLEN;
    if (malformed) { /* same work, no match */
        salt = "00000000000000000000000000000000";
        saltlen = 32;
    }
    unsigned char key[DKLEN];
    char hex[2 * DKLEN + 1];
    if (derive(pw, len, salt, saltlen, key) < 0)
        return -1;
    hex_encode(hex, key, DKLEN, 0);
    OPENSSL_cleanse(key, sizeof key);
    if (malformed)
        return 0;
    return CRYPTO_memcmp(hex, want, 2 * DKLEN) == 0;
}
