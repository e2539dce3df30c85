/* Times as RFC 3339 UTC text, the one format of JSON, logs and archives. */
#ifndef WAPI_COMMON_TIMEFMT_H
#define WAPI_COMMON_TIMEFMT_H
#include <stddef.h>
#include <time.h>

#define RFC3339_LEN 32 /* room for either form and the NUL */

/* "2026-12-04T13:25:30.123Z" (milliseconds). */
void rfc3339_ms(const struct timespec *ts, char *buf, size_t len);
/* The same for now (CLOCK_REALTIME). */
void rfc3339_now_ms(char *buf, size_t len);
/* "2026-12-04T13:25:30Z" (whole seconds). */
void rfc3339_s(time_t t, char *buf, size_t len);

#endif
