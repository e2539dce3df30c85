/* Bytes as hexadecimal text, one writer for the tree (ids, hashes, salts). */
#ifndef WAPI_HEX_H
#define WAPI_HEX_H
#include <stddef.h>

/* Writes 2n digits and a NUL into out (2n + 1 bytes); lowercase, or
 * uppercase when upper. */
void hex_encode(char *out, const void *in, size_t n, int upper);
/* Reads exactly 2n hex digits (either case, nothing else: no sign, no
 * space, no prefix) from s, which must end there, into out. 0 or -1. */
int hex_decode(const char *s, void *out, size_t n);

#endif
