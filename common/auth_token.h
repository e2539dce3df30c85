/* Random identifiers and tokens in Better Auth's alphabets, and the
 * api-key plugin's key hash (base64url(SHA-256(key)), no padding). */
#ifndef WAPI_AUTH_TOKEN_H
#define WAPI_AUTH_TOKEN_H
#include <stddef.h>

#define AUTH_ID_LEN 32       /* generateId(): ids and session tokens, [A-Za-z0-9] */
#define APIKEY_RANDOM_LEN 64 /* the plugin's defaultKeyLength, [a-zA-Z] */
#define APIKEY_HASH_LEN 43   /* base64url of 32 bytes without padding */
#define APIKEY_MAX_LEN 256   /* a key we accept in a header, prefix included */

/* n random characters of [A-Za-z0-9] (letters_only: [a-zA-Z]) and a NUL; 0 or -1. */
int auth_random_string(char *out, size_t n, int letters_only);
/* out receives APIKEY_HASH_LEN characters and a NUL. */
void apikey_hash(const char *key, size_t len, char out[APIKEY_HASH_LEN + 1]);

/* How one-time tokens (invitations, the setup token) are kept: only
 * base64url(SHA-256(token)), the same function as API keys. */
#define AUTH_TOKEN_LEN 32
static inline void auth_token_hash(const char *token, size_t len, char out[APIKEY_HASH_LEN + 1])
{
    apikey_hash(token, len, out);
}

#endif
