/* Device lists from usync, reused for a while so that consecutive sends to
 * a chat skip that round trip. An entry goes early on a devices
 * notification for its user, a retry receipt from one of the user's
 * devices, an ack with an error, and all go when the connection is lost.
 * Least recently used entries make room when it is full. */
#ifndef WAPI_WA_DEVCACHE_H
#define WAPI_WA_DEVCACHE_H
#include <stdint.h>

#define WA_DEVCACHE_SLOTS 1024
#define WA_DEVCACHE_TTL_MS (5 * 60 * 1000)
#define WA_DEVCACHE_MAX_DEVICES 64

struct wa_devcache {
    char user[64], server[32]; /* user[0] == 0: free */
    int64_t fetched_ms;
    uint64_t used; /* least recently used goes first when full */
    int n;
    uint16_t dev[WA_DEVCACHE_MAX_DEVICES];
};

/* The entry of user@server fetched less than the TTL ago (now_ms on the
 * same monotonic clock as the puts), or NULL. Valid until the next put. */
struct wa_devcache *wa_devcache_find(const char *user, const char *server, int64_t now_ms);
/* Records (or replaces) the list; ignored when n is 0 or too large, or a name too long. */
void wa_devcache_put(const char *user, const char *server, const uint16_t *dev, int n, int64_t now_ms);
/* Every server's entry of this user (a phone number and its LID share none,
 * but a user seen under two servers loses both). */
void wa_devcache_forget(const char *user);
void wa_devcache_clear(void);

#endif
