/* UTF-8 checked strictly (no overlong forms, surrogates or code points past
 * U+10FFFF). */
#ifndef WAPI_UTF8_H
#define WAPI_UTF8_H
#include <stddef.h>

/* Number of code points of valid UTF-8, or -1 when invalid. */
long utf8_len(const char *s, size_t n);

#endif
