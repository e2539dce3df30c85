#include "sdb.h"

#include "common/pgpool.h"
#include "pgc_libevent.h"

static struct pgpool *pool;

int sdb_init(struct event_base *base, const struct db_params *params, int size)
{
    struct pgc_loop loop;
    pgc_libevent(&loop, base);
    struct pgpool_opts o = {
        .params = params,
        .size = size,
        .setup_sql = PG_SESSION_SETUP,
        .max_prepared = 64,
        .queue_wait_ms = 10000,
        .backoff_min_ms = 200,
        .backoff_max_ms = 5000,
        .what = "supervisor database",
    };
    return (pool = pgpool_new(&loop, &o)) ? 0 : -1;
}

struct pgq *sdb_query(const char *sql, int nparams, const char *const *params, sdb_cb cb, void *ctx)
{
    return pool ? pgpool_query(pool, sql, nparams, params, cb, ctx) : NULL;
}

void sdb_cancel(struct pgq *q)
{
    pgq_cancel(q);
}

int sdb_connected(void)
{
    return pool ? pgpool_connected(pool) : 0;
}

void sdb_shutdown(void)
{
    if (pool)
        pgpool_shutdown(pool);
    pool = NULL;
}
