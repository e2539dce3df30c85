/* The worker's PostgreSQL pool: common/pgpool.h on the h2o loop
 * (workers/pgc_h2o.c), statements prepared once per connection, metrics in
 * the worker's slot. Queries queue when every connection is busy (3 s at
 * most); a lost connection is retried with exponential backoff. */
#ifndef WAPI_WORKER_DB_H
#define WAPI_WORKER_DB_H
#include <h2o.h>
#include <libpq-fe.h>

#include "common/db_params.h"
#include "common/metrics.h"

/* res is NULL on error (err says why); the result is freed after the call. */
typedef void (*db_cb)(void *ctx, const PGresult *res, const char *err);

struct pgq;

int db_pool_init(h2o_loop_t *loop, const struct db_params *params, int size, struct metrics_slot *m);
/* Queues a parameterized query (text params, text results). The returned
 * handle is valid until the callback runs or db_cancel() is called. */
struct pgq *db_query(const char *sql, int nparams, const char *const *params, db_cb cb, void *ctx);
/* The callback will not run; the query itself may still finish on the server. */
void db_cancel(struct pgq *q);
/* Connections currently usable (connected). */
int db_pool_connected(void);
void db_pool_shutdown(void);

#endif
