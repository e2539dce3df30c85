#include "auth_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

int auth_random_string(char *out, size_t n, int letters_only)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t k = letters_only ? 52 : 62;
    /* Rejection sampling keeps every character equally likely. */
    unsigned char lim = (unsigned char)(256 - 256 % k);
    size_t o = 0;
    while (o < n) {
        unsigned char buf[64];
        if (RAND_bytes(buf, sizeof buf) != 1)
            return -1;
        for (size_t i = 0; i < sizeof buf && o < n; i++)
            if (buf[i] < lim)
                out[o++] = alnum[buf[i] % k];
    }
    out[n] = '\0';
    return 0;
}

void apikey_hash(const char *key, size_t len, char out[APIKEY_HASH_LEN + 1])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    char b64[48];
    SHA256((const unsigned char *)key, len, d);
    EVP_EncodeBlock((unsigned char *)b64, d, sizeof d); /* 44 characters, one '=' */
    for (int i = 0; i < APIKEY_HASH_LEN; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    out[APIKEY_HASH_LEN] = '\0';
}
