/* Bytes as hexadecimal text, one writer for the tree (ids, hashes, salts). */
#ifndef WAPI_HEX_H
#define WAPI_HEX_H
#include <stddef.h>

/* Writes 2n digits and a NUL into out (2n + 1 bytes); lowercase, or
 * uppercase when upper. */
void hex_encode(char *out, const void *in, size_t n, int upper);

#endif
