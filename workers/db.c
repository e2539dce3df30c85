#include "db.h"

#include "common/pgpool.h"
#include "pgc_h2o.h"

static struct {
    struct pgpool *pool;
    struct metrics_slot *m;
} P;

static void on_done(void *arg, int failed)
{
    (void)arg;
    metrics_add(&P.m->db_queries_total, 1);
    if (failed)
        metrics_add(&P.m->db_errors_total, 1);
}

static void on_reconnect(void *arg)
{
    (void)arg;
    metrics_add(&P.m->db_reconnects_total, 1);
}

static void on_gauges(void *arg, int connected, int busy, unsigned waiting)
{
    (void)arg;
    metrics_set(&P.m->db_connected, (uint64_t)connected);
    metrics_set(&P.m->db_busy, (uint64_t)busy);
    metrics_set(&P.m->db_waiting, waiting);
}

int db_pool_init(h2o_loop_t *loop, const struct db_params *params, int size, struct metrics_slot *m)
{
    P.m = m;
    struct pgc_loop l;
    pgc_h2o(&l, loop);
    /* Statements are prepared once per connection (by their text) and then
     * run by name: parsing and planning the same statements for every
     * request was a large share of the server's CPU. */
    struct pgpool_opts o = {
        .params = params,
        .size = size,
        .setup_sql = PG_SESSION_SETUP,
        .max_prepared = 64,
        .queue_wait_ms = 3000,
        .backoff_min_ms = 100,
        .backoff_max_ms = 5000,
        .lazy = 1,
        .what = "database",
        .on_done = on_done,
        .on_reconnect = on_reconnect,
        .on_gauges = on_gauges,
    };
    return (P.pool = pgpool_new(&l, &o)) ? 0 : -1;
}

struct pgq *db_query(const char *sql, int nparams, const char *const *params, db_cb cb, void *ctx)
{
    return P.pool ? pgpool_query(P.pool, sql, nparams, params, cb, ctx) : NULL;
}

void db_cancel(struct pgq *q)
{
    pgq_cancel(q);
}

int db_pool_connected(void)
{
    return P.pool ? pgpool_connected(P.pool) : 0;
}

void db_pool_shutdown(void)
{
    if (P.pool)
        pgpool_shutdown(P.pool);
    P.pool = NULL;
}
