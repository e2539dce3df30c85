/* A pool of asynchronous PostgreSQL connections (pgc.h) with a queue:
 * queries wait for an idle connection, start from the loop (never inside
 * pgpool_query()), and give up after queue_wait_ms, or at once while no
 * connection is up or coming up. Each connection reconnects by itself with
 * backoff; one log line per outage and one when it is over. The same core
 * serves the supervisor (libevent) and the workers (h2o). */
#ifndef WAPI_COMMON_PGPOOL_H
#define WAPI_COMMON_PGPOOL_H
#include <libpq-fe.h>
#include <stdint.h>

#include "common/pgc.h"

/* res is NULL on error (err says why); both are borrowed for the call. */
typedef void (*pgpool_cb)(void *ctx, const PGresult *res, const char *err);

struct pgpool_opts {
    const struct db_params *params;
    int size;
    const char *setup_sql; /* each connection's session set-up, or NULL */
    int max_prepared;      /* per connection; 0: never prepare */
    unsigned queue_wait_ms, backoff_min_ms, backoff_max_ms;
    int lazy;         /* connect one at once, the others on the first tick */
    const char *what; /* in log lines: "database", "supervisor database" */
    /* Optional hooks for metrics: each query done, each reconnection, and
     * the gauges whenever they may have changed. */
    void (*on_done)(void *arg, int failed);
    void (*on_reconnect)(void *arg);
    void (*on_gauges)(void *arg, int connected, int busy, unsigned waiting);
    void *arg;
};

struct pgpool;
struct pgq;

struct pgpool *pgpool_new(const struct pgc_loop *loop, const struct pgpool_opts *o);
/* Queues a parameterized query (text parameters, copied; text results).
 * sql must outlive the query (a literal). The handle is valid until the
 * callback runs or pgq_cancel(). NULL on out of memory. */
struct pgq *pgpool_query(struct pgpool *p, const char *sql, int nparams, const char *const *params,
                         pgpool_cb cb, void *ctx);
/* The callback will not run; the statement may still finish on the server. */
void pgq_cancel(struct pgq *q);
int pgpool_connected(const struct pgpool *p);
/* Closes every connection and frees the pool; queued queries are dropped
 * without callbacks. */
void pgpool_shutdown(struct pgpool *p);

#endif
