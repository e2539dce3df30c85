/* The string dictionaries of WhatsApp's binary node format (dictionary version 3):
 * 236 single-byte tokens and four 256-entry double-byte dictionaries, plus the
 * reverse lookup the encoder uses. Everything here is immutable static data. */
#ifndef WAPI_WA_TOKENS_H
#define WAPI_WA_TOKENS_H

#include <stddef.h>

#define WA_SINGLE_TOKENS 236
#define WA_DICTS 4
#define WA_DICT_TOKENS 256
#define WA_TOKEN_MAX_LEN 48 /* longest string in any table */

/* Index 0 is "" and is never written as a token (byte 0 means LIST_EMPTY). */
extern const char *const wa_single_tokens[WA_SINGLE_TOKENS];
/* DICTIONARY_0..3: written as byte 0xEC + dict, then the index. */
extern const char *const wa_double_tokens[WA_DICTS][WA_DICT_TOKENS];

/* Finds s[0..n) in the tables without scanning them (binary search over a sorted index).
 * Returns 1 and sets *dict (-1 for a single-byte token, else 0..3) and *index; returns 0
 * when s is no token. "" and strings holding NUL are never tokens. */
int wa_token_lookup(const char *s, size_t n, int *dict, int *index);

#endif
