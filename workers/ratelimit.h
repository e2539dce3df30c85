/* Fixed-window attempt counters per key (e.g. "sign-in:<address>") in
 * PostgreSQL: one atomic upsert per attempt, so every worker (and every
 * pod on the same database) shares them. */
#ifndef WAPI_WORKER_RATELIMIT_H
#define WAPI_WORKER_RATELIMIT_H
#include "db.h"

/* Counts one attempt; the callback's result is read with ratelimit_allowed(). */
struct db_query *ratelimit_hit(const char *key, int window_s, db_cb cb, void *ctx);
/* 1 when the attempt is within max; else 0 with *retry_after (seconds, >= 1). */
int ratelimit_allowed(const PGresult *res, int max, int *retry_after);

#endif
