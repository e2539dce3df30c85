/* LTHash of app-state collections: see wa_lthash.h. */
#include "wa_lthash.h"

#include "wa_crypto.h"

static const char INFO[] = "WhatsApp Patch Integrity";

static int mix(uint8_t hash[WA_LTHASH_LEN], const uint8_t *item, size_t len, int sign)
{
    uint8_t ex[WA_LTHASH_LEN];
    if (wa_crypto_hkdf_sha256(NULL, 0, item, len, (const uint8_t *)INFO, sizeof INFO - 1, ex, sizeof ex) != 0)
        return -1;
    for (size_t i = 0; i < WA_LTHASH_LEN; i += 2) {
        uint16_t a = (uint16_t)(hash[i] | hash[i + 1] << 8);
        uint16_t b = (uint16_t)(ex[i] | ex[i + 1] << 8);
        uint16_t r = sign > 0 ? (uint16_t)(a + b) : (uint16_t)(a - b);
        hash[i] = (uint8_t)(r & 0xff);
        hash[i + 1] = (uint8_t)(r >> 8);
    }
    return 0;
}

int wa_lthash_add(uint8_t hash[WA_LTHASH_LEN], const uint8_t *item, size_t len)
{
    return mix(hash, item, len, 1);
}

int wa_lthash_sub(uint8_t hash[WA_LTHASH_LEN], const uint8_t *item, size_t len)
{
    return mix(hash, item, len, -1);
}
