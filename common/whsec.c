#include "whsec.h"

#include <openssl/evp.h>
#include <string.h>

int whsec_decode(const char *secret, unsigned char key[WHSEC_KEY_MAX])
{
    size_t n = strlen(secret), b = n > 6 ? n - 6 : 0;
    if (n > WHSEC_MAX_LEN || b == 0 || b % 4 || memcmp(secret, WHSEC_PREFIX, 6) != 0)
        return -1;
    unsigned char buf[WHSEC_MAX_LEN];
    int kl = EVP_DecodeBlock(buf, (const unsigned char *)secret + 6, (int)b);
    if (kl < 0)
        return -1;
    kl -= (secret[n - 1] == '=') + (secret[n - 2] == '='); /* EVP_DecodeBlock counts the padding as zeros */
    if (kl < WHSEC_KEY_MIN || kl > WHSEC_KEY_MAX)
        return -1;
    memcpy(key, buf, (size_t)kl);
    return kl;
}

int whsec_encode(const unsigned char *key, size_t klen, char *out, size_t outlen)
{
    if (klen < WHSEC_KEY_MIN || klen > WHSEC_KEY_MAX || outlen < WHSEC_MAX_LEN + 1)
        return -1;
    memcpy(out, WHSEC_PREFIX, 6);
    EVP_EncodeBlock((unsigned char *)out + 6, key, (int)klen);
    return 0;
}
