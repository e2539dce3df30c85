/* One asynchronous PostgreSQL connection, independent of any event loop:
 * libpq in non-blocking mode, connecting with a timeout, a session set-up
 * statement, one statement at a time (plain, or prepared once per text and
 * then executed by name), LISTEN/NOTIFY, and reconnection with backoff. A
 * prepared statement that went stale (SQLSTATE 0A000: the schema changed
 * under its plan; 26000: it is gone) ends the connection after its caller
 * has the error, and the next one prepares afresh.
 *
 * The event loop is reached only through struct pgc_loop, which an adapter
 * fills in (pgc_libevent for the supervisor, pgc_h2o for the workers): the
 * core asks it to watch a socket and to run timers, the adapter calls back.
 * Connection pools (pgpool.h) and single-purpose connections (LISTEN, an
 * advisory lock) are both built on it. */
#ifndef WAPI_COMMON_PGC_H
#define WAPI_COMMON_PGC_H
#include <libpq-fe.h>
#include <stdint.h>

#include "common/db_params.h"

/* Every connection's session set-up: prepared statements are planned for
 * their parameters every time. A generic plan made while a table was small
 * (a hash of a whole table instead of an index probe) would stay cached as
 * the table grows; parsing once is most of the saving. */
#define PG_SESSION_SETUP "SET plan_cache_mode = force_custom_plan"

/* What the core needs of an event loop. */
struct pgc_loop {
    void *ctx;
    /* A watch on fd; cb(arg, readable, writable) runs on readiness. */
    void *(*io_new)(void *ctx, int fd, void (*cb)(void *arg, int readable, int writable), void *arg);
    /* What to wait for (both 0: nothing). Level-triggered. */
    void (*io_want)(void *io, int readable, int writable);
    void (*io_free)(void *io);
    /* A one-shot timer; start restarts it when pending. */
    void *(*timer_new)(void *ctx, void (*cb)(void *arg), void *arg);
    void (*timer_start)(void *timer, unsigned ms);
    void (*timer_stop)(void *timer);
    void (*timer_free)(void *timer);
    uint64_t (*clock_ms)(void *ctx); /* a monotonic clock */
};

struct pgc;

/* res is NULL on error: err says why, sqlstate is its SQLSTATE ("" when
 * none). Either is borrowed for the call. */
typedef void (*pgc_result_cb)(void *ctx, const PGresult *res, const char *err, const char *sqlstate);

struct pgc_opts {
    const struct db_params *params;
    /* Sent once after each connect, before the connection is up (may hold
     * several statements, e.g. "SET ...; LISTEN x"); NULL: none. */
    const char *setup_sql;
    unsigned connect_timeout_ms; /* 0: 10 s */
    /* 0: once down, stay down (the owner decides); else reconnect after a
     * backoff from backoff_min_ms doubling to backoff_max_ms. */
    int reconnect;
    unsigned backoff_min_ms, backoff_max_ms;
    /* Up to this many texts are prepared and then run by name (0: none). */
    int max_prepared;
    /* Called when the connection is up and idle, when it went down (the
     * statement in flight, if any, has had its error first), and for each
     * notification. Any may be NULL. */
    void (*on_up)(void *arg, struct pgc *c);
    void (*on_down)(void *arg, struct pgc *c, const char *why);
    void (*on_notify)(void *arg, struct pgc *c, const char *channel, const char *payload);
    void *arg;
};

/* Starts connecting from the loop (no callback runs inside this call).
 * NULL on out of memory. */
struct pgc *pgc_new(const struct pgc_loop *loop, const struct pgc_opts *o);
/* Closes (no callback runs after it, not even the statement's). */
void pgc_free(struct pgc *c);
/* 1 when connected, set up and no statement is in flight. */
int pgc_idle(const struct pgc *c);
int pgc_up(const struct pgc *c);   /* connected and set up, busy or not */
int pgc_down(const struct pgc *c); /* neither up nor connecting (waiting to retry, or stopped) */
/* Sends one statement on an idle connection; cb runs once, later, with its
 * last result or its first error. prepare: run it as a prepared statement
 * (prepared here first if its text is new; a text holding several
 * statements never is). params are copied. -1 when not idle or the send
 * failed (then the connection goes down; cb does not run). */
int pgc_send(struct pgc *c, const char *sql, int nparams, const char *const *params, int prepare,
             pgc_result_cb cb, void *ctx);
/* The error text of the last failure, for logs. */
const char *pgc_last_error(const struct pgc *c);
/* Consecutive failures since the last time it was up. */
unsigned pgc_failures(const struct pgc *c);

#endif
