/* Webhook dispatch: fans wa_events out into wa_webhook_deliveries rows and
 * sends them, signed per Standard Webhooks, over HTTP(S) from the
 * supervisor's loop. At least once: a delivery row leaves 'pending' only
 * after the target answered 2xx (delivered), a 4xx other than 408/429
 * (failed), or after the last attempt (dead). */
#ifndef WAPI_SUP_WEBHOOKS_H
#define WAPI_SUP_WEBHOOKS_H
#include <stddef.h>
#include <stdint.h>

/* Starts polling (uses S.base, S.cfg and the sdb pool). */
void webhooks_init(void);

/* The Standard Webhooks signature "v1,<base64>" of id.timestamp.body with
 * the secret "whsec_<base64 key>" into out; -1 on a malformed secret. */
int webhooks_sign(const char *secret, const char *id, long long timestamp, const char *body, size_t body_len,
                  char *out, size_t outlen);
/* Milliseconds to wait after the attempt-th failed attempt (1-based),
 * before jitter: base_ms * 4^(attempt-1), capped at 6 hours. */
uint64_t webhooks_backoff_ms(unsigned attempt, unsigned base_ms);

#endif
