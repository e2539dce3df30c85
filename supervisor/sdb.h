/* The supervisor's PostgreSQL pool: common/pgpool.h on the libevent loop
 * (supervisor/pgc_libevent.c), statements prepared once per connection,
 * queued queries (10 s at most), reconnection with backoff. One statement
 * per query: make multi-row changes atomic with CTEs
 * (WITH a AS (INSERT ...), b AS (UPDATE ...) SELECT ...). */
#ifndef WAPI_SDB_H
#define WAPI_SDB_H
#include <event2/event.h>
#include <libpq-fe.h>

#include "common/db_params.h"

/* res is NULL on error (err says why); res is freed after the call. Never
 * called from inside sdb_query(). */
typedef void (*sdb_cb)(void *ctx, const PGresult *res, const char *err);

struct pgq;

/* A CTE making the statement's commit asynchronous (no wait for the WAL
 * flush); the statement must read it (e.g. FROM sc CROSS JOIN ...) or it is
 * not evaluated. Only for changes a crash may undo: any later synchronous
 * commit flushes them too. */
#define SDB_ASYNC_COMMIT "sc AS (SELECT set_config('synchronous_commit', 'off', true) AS v)"

int sdb_init(struct event_base *base, const struct db_params *params, int size);
/* sql must outlive the query (a literal); params are copied. NULL on OOM. */
struct pgq *sdb_query(const char *sql, int nparams, const char *const *params, sdb_cb cb, void *ctx);
/* The callback will not run. */
void sdb_cancel(struct pgq *q);
int sdb_connected(void);
void sdb_shutdown(void);

#endif
