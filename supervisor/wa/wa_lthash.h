/* The LTHash of an app-state collection ("WhatsApp Patch Integrity"): a
 * 128-byte sum, order-independent, of every value MAC the collection holds.
 * Each value is HKDF-SHA256-expanded to 128 bytes and added to (or taken
 * from) the state as 64 unsigned 16-bit little-endian lanes, wrapping. */
#ifndef WAPI_WA_LTHASH_H
#define WAPI_WA_LTHASH_H

#include <stddef.h>
#include <stdint.h>

#define WA_LTHASH_LEN 128

/* Adds (or subtracts) the expansion of item to hash; 0, or -1 when the
 * expansion failed (hash then unchanged). */
int wa_lthash_add(uint8_t hash[WA_LTHASH_LEN], const uint8_t *item, size_t len);
int wa_lthash_sub(uint8_t hash[WA_LTHASH_LEN], const uint8_t *item, size_t len);

#endif
