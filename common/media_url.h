/* Signed media links: /api/media/{id}?expires=UNIX&sig=SIG, where SIG is
 * base64url (no padding) of HMAC-SHA256(key, id "\n" expires). Whoever holds
 * such a link may fetch that one file until it expires, without credentials
 * (webhook receivers, <img> tags). The key is the store's own (32 bytes,
 * wapi_media_secret), never the sign-in secret. */
#ifndef WAPI_COMMON_MEDIA_URL_H
#define WAPI_COMMON_MEDIA_URL_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MEDIA_KEY_LEN 32
#define MEDIA_SIG_LEN 43 /* base64url of 32 bytes, unpadded */

enum media_url_check { MEDIA_URL_OK = 0, MEDIA_URL_BAD = -1, MEDIA_URL_EXPIRED = -2 };

/* sig gets MEDIA_SIG_LEN characters and a NUL. */
void media_url_sign(const uint8_t key[MEDIA_KEY_LEN], const char *id, long long expires,
                    char sig[MEDIA_SIG_LEN + 1]);
/* expires and sig as they came in the query (not trusted). The signature is
 * compared in constant time before the expiry is looked at: a forged link
 * is MEDIA_URL_BAD whatever its date. */
enum media_url_check media_url_check(const uint8_t key[MEDIA_KEY_LEN], const char *id, const char *expires,
                                     const char *sig, time_t now);
/* "/api/media/ID?expires=N&sig=S" into out; -1 when it does not fit. */
int media_url_path(const uint8_t key[MEDIA_KEY_LEN], const char *id, long long expires, char *out,
                   size_t outlen);

#endif
