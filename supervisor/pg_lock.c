#include "pg_lock.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/pgc.h"
#include "pgc_libevent.h"

static struct {
    struct pgc *c; /* its session holds the lock; closing it releases it */
    int held;
    char keybuf[32];
    pg_lock_cb cb;
    void *arg;
} L;

static void reset(void)
{
    pgc_free(L.c); /* ends the session: PostgreSQL releases its advisory locks */
    L.c = NULL;
    L.held = 0;
}

static void report(enum pg_lock_event e, const char *detail)
{
    char d[256];
    snprintf(d, sizeof d, "%s", detail ? detail : "");
    if (e != PG_LOCK_HELD)
        reset();
    if (L.cb)
        L.cb(L.arg, e, d);
}

static void on_result(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)ctx, (void)sqlstate;
    if (!res || PQntuples(res) != 1) {
        report(PG_LOCK_ERROR, res ? "no result" : err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        report(PG_LOCK_BUSY, "another wapi holds this session (database advisory lock)");
        return;
    }
    L.held = 1;
    report(PG_LOCK_HELD, "");
}

static void on_up(void *arg, struct pgc *c)
{
    (void)arg;
    const char *p[1] = {L.keybuf};
    if (pgc_send(c, "SELECT pg_try_advisory_lock($1::bigint)", 1, p, 0, on_result, NULL) < 0 && L.c == c)
        report(PG_LOCK_ERROR, pgc_last_error(c));
}

static void on_down(void *arg, struct pgc *c, const char *why)
{
    (void)arg;
    if (L.c != c)
        return; /* already reported (the statement's error came first) */
    report(L.held ? PG_LOCK_LOST : PG_LOCK_ERROR, L.held ? "database connection closed" : why);
}

int pg_lock_acquire(struct event_base *base, const struct db_params *params, int64_t key, pg_lock_cb cb,
                    void *arg)
{
    reset();
    snprintf(L.keybuf, sizeof L.keybuf, "%lld", (long long)key);
    L.cb = cb;
    L.arg = arg;
    struct pgc_loop loop;
    pgc_libevent(&loop, base);
    /* Not reconnecting by itself: a lost lock is the session's to decide on. */
    struct pgc_opts o = {.params = params, .on_up = on_up, .on_down = on_down};
    if (!(L.c = pgc_new(&loop, &o))) {
        report(PG_LOCK_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

void pg_lock_release(void)
{
    L.cb = NULL;
    reset();
}

int pg_lock_held(void)
{
    return L.held;
}
