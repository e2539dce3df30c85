#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned hits;

struct db_query *ratelimit_hit(const char *key, int window_s, db_cb cb, void *ctx)
{
    char w[16];
    snprintf(w, sizeof w, "%d", window_s);
    const char *p[2] = {key, w};
    /* Now and then, forget windows long gone (no one waits for it). */
    if (++hits % 256 == 0)
        db_query("DELETE FROM wapi_rate_limit WHERE window_start < now() - interval '1 hour'", 0, NULL, NULL, NULL);
    return db_query("INSERT INTO wapi_rate_limit AS r (key, window_start, count) VALUES ($1, now(), 1) "
                    "ON CONFLICT (key) DO UPDATE SET "
                    "count = CASE WHEN r.window_start <= now() - make_interval(secs => $2::int) THEN 1 "
                    "ELSE r.count + 1 END, "
                    "window_start = CASE WHEN r.window_start <= now() - make_interval(secs => $2::int) THEN now() "
                    "ELSE r.window_start END "
                    "RETURNING count, ceil(extract(epoch from (window_start + make_interval(secs => $2::int) - now())))",
                    2, p, cb, ctx);
}

int ratelimit_allowed(const PGresult *res, int max, int *retry_after)
{
    if (!res || PQntuples(res) != 1)
        return 1; /* the database answered oddly: do not lock people out */
    long count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    long retry = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    if (count <= max)
        return 1;
    *retry_after = retry < 1 ? 1 : (int)retry;
    return 0;
}
