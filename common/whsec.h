/* Webhook signing secrets as Standard Webhooks shows them: "whsec_" and
 * the key in standard base64. One rule for every reader: 24 to 64 bytes of
 * key, base64 with padding (length a multiple of 4). */
#ifndef WAPI_COMMON_WHSEC_H
#define WAPI_COMMON_WHSEC_H
#include <stddef.h>

#define WHSEC_PREFIX "whsec_"
#define WHSEC_KEY_MIN 24
#define WHSEC_KEY_MAX 64
#define WHSEC_MAX_LEN (6 + (WHSEC_KEY_MAX + 2) / 3 * 4) /* the longest valid secret */

/* The key of secret into key (WHSEC_KEY_MAX bytes); its length, or -1 when
 * the secret does not follow the rule. */
int whsec_decode(const char *secret, unsigned char key[WHSEC_KEY_MAX]);
/* "whsec_" + base64(key) into out (WHSEC_MAX_LEN + 1 bytes); -1 when klen
 * is outside the rule. */
int whsec_encode(const unsigned char *key, size_t klen, char *out, size_t outlen);

#endif
