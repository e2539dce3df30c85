#include "ratelimit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned hits;

void ratelimit_client(const char *ip, char *out, size_t outlen)
{
    unsigned char a[16];
    char buf[INET6_ADDRSTRLEN];
    if (strchr(ip, ':') && inet_pton(AF_INET6, ip, a) == 1) {
        memset(a + 8, 0, 8);
        if (inet_ntop(AF_INET6, a, buf, sizeof buf)) {
            snprintf(out, outlen, "%s/64", buf);
            return;
        }
    }
    snprintf(out, outlen, "%s", ip);
}

#define STR_(x) #x
#define STR(x) STR_(x)

/* A fixed window: restarts when the last one is over. */
#define WINDOW_UPSERT(win)                                                                                   \
    "ON CONFLICT (key) DO UPDATE SET "                                                                       \
    "count = CASE WHEN r.window_start <= now() - interval '" win " s' THEN 1 ELSE r.count + 1 END, "         \
    "window_start = CASE WHEN r.window_start <= now() - interval '" win                                      \
    " s' THEN now() ELSE r.window_start END "

/* Rows: (count as if this attempt were one more, seconds left, limit). */
static const char SQL_ATTEMPT[] =
    "WITH r AS (INSERT INTO wapi_rate_limit AS r (key, window_start, count) VALUES ($1, now(), "
    "1) " WINDOW_UPSERT(STR(
        RATELIMIT_CLIENT_WINDOW_S)) "RETURNING r.key, r.count, "
                                    "ceil(extract(epoch from (r.window_start + interval '" STR(
                                        RATELIMIT_CLIENT_WINDOW_S) " s' - now()))) AS retry), "
                                                                   "a AS (INSERT INTO wapi_audit (actor_ip, "
                                                                   "action, target, detail) SELECT "
                                                                   "nullif($3, ''), 'auth.rate_limited', "
                                                                   "  r.key, jsonb_build_object('attempts', "
                                                                   "r.count, 'window_s', " STR(
                                                                       RATELIMIT_CLIENT_WINDOW_S) ") FROM r "
                                                                                                  "  WHERE "
                                                                                                  "r.count "
                                                                                                  "= " STR(
                                                                                                      RATELIMIT_CLIENT_MAX) " + 1) "
                                                                                                                            "SELECT r.count, r.retry, " STR(
                                                                                                                                RATELIMIT_CLIENT_MAX) " FROM r UNION ALL "
                                                                                                                                                      "SELECT f.count + 1, ceil(extract(epoch from (f.window_start + interval '" STR(RATELIMIT_ACCOUNT_WINDOW_S) " s' - now()))), " STR(
                                                                                                                                                          RATELIMIT_ACCOUNT_MAX) " FROM wapi_rate_limit f WHERE f.key = $2 "
                                                                                                                                                                                 "AND f.window_start > now() - interval '" STR(
                                                                                                                                                                                     RATELIMIT_ACCOUNT_WINDOW_S) " s'";

static const char SQL_FAILED[] =
    "WITH r AS (INSERT INTO wapi_rate_limit AS r (key, window_start, count) VALUES ($1, now(), "
    "1) " WINDOW_UPSERT(
        STR(RATELIMIT_ACCOUNT_WINDOW_S)) "RETURNING r.key, r.count), "
                                         "a AS (INSERT INTO wapi_audit (actor_ip, action, target, detail) "
                                         "SELECT nullif($2, ''), 'auth.rate_limited', "
                                         "  r.key, jsonb_build_object('failures', r.count, 'window_s', " STR(
                                             RATELIMIT_ACCOUNT_WINDOW_S) ") FROM r "
                                                                         "  WHERE r.count = " STR(
                                                                             RATELIMIT_ACCOUNT_MAX) " RETURNI"
                                                                                                    "NG 1) "
                                                                                                    "SELECT "
                                                                                                    "count(*)"
                                                                                                    " FROM a";

struct pgq *ratelimit_attempt(const char *client_key, const char *account_key, const char *ip, db_cb cb,
                                   void *ctx)
{
    const char *p[3] = {client_key, account_key, ip ? ip : ""};
    /* Now and then, forget windows long gone (no one waits for it). */
    if (++hits % 256 == 0)
        db_query("DELETE FROM wapi_rate_limit WHERE window_start < now() - interval '1 hour'", 0, NULL, NULL,
                 NULL);
    return db_query(SQL_ATTEMPT, 3, p, cb, ctx);
}

int ratelimit_allowed(const PGresult *res, int *retry_after, int *first_refusal)
{
    int ok = 1, retry = 1;
    *first_refusal = 0;
    /* No row (the database answered oddly): do not lock people out. */
    for (int i = 0; res && i < PQntuples(res); i++) {
        long count = strtol(PQgetvalue(res, i, 0), NULL, 10);
        long r = strtol(PQgetvalue(res, i, 1), NULL, 10);
        long max = strtol(PQgetvalue(res, i, 2), NULL, 10);
        if (count <= max)
            continue;
        ok = 0;
        if (i == 0 && count == max + 1)
            *first_refusal = 1;
        if (r > retry)
            retry = (int)r;
    }
    if (!ok)
        *retry_after = retry;
    return ok;
}

int ratelimit_locked(const PGresult *res)
{
    return res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == '1';
}

struct pgq *ratelimit_failed(const char *account_key, const char *ip, db_cb cb, void *ctx)
{
    const char *p[2] = {account_key, ip ? ip : ""};
    return db_query(SQL_FAILED, 2, p, cb, ctx);
}
