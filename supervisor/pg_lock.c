#include "pg_lock.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

enum lstate { L_IDLE, L_CONNECTING, L_QUERYING, L_HELD };

static struct {
    enum lstate st;
    PGconn *pg;
    struct event *ev;
    struct event_base *base;
    int64_t key;
    pg_lock_cb cb;
    void *arg;
} L;

static void reset(void)
{
    if (L.ev) {
        event_free(L.ev);
        L.ev = NULL;
    }
    if (L.pg) {
        PQfinish(L.pg); /* ends the session: PostgreSQL releases its advisory locks */
        L.pg = NULL;
    }
    L.st = L_IDLE;
}

static void report(enum pg_lock_event e, const char *detail)
{
    char d[256];
    snprintf(d, sizeof d, "%s", detail ? detail : "");
    size_t n = strlen(d);
    while (n && (d[n - 1] == '\n' || d[n - 1] == ' '))
        d[--n] = '\0';
    if (e != PG_LOCK_HELD)
        reset();
    if (L.cb)
        L.cb(L.arg, e, d);
}

static void on_io(evutil_socket_t fd, short what, void *arg);

static void watch(short what)
{
    if (L.ev)
        event_free(L.ev);
    L.ev = event_new(L.base, PQsocket(L.pg), what, on_io, NULL);
    event_add(L.ev, NULL);
}

static void send_query(void)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)L.key);
    const char *params[1] = {key};
    if (!PQsendQueryParams(L.pg, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, params, NULL, NULL, 0)) {
        report(PG_LOCK_ERROR, PQerrorMessage(L.pg));
        return;
    }
    L.st = L_QUERYING;
    watch(EV_READ | EV_PERSIST);
    PQflush(L.pg);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (L.st == L_CONNECTING) {
        switch (PQconnectPoll(L.pg)) {
        case PGRES_POLLING_READING: watch(EV_READ); return;
        case PGRES_POLLING_WRITING: watch(EV_WRITE); return;
        case PGRES_POLLING_OK:
            PQsetnonblocking(L.pg, 1);
            send_query();
            return;
        default: report(PG_LOCK_ERROR, PQerrorMessage(L.pg)); return;
        }
    }
    if (!PQconsumeInput(L.pg)) {
        report(L.st == L_HELD ? PG_LOCK_LOST : PG_LOCK_ERROR, PQerrorMessage(L.pg));
        return;
    }
    if (L.st == L_HELD) {
        /* Nothing is expected while we hold it: only notices, or the end. */
        PGresult *r;
        while (!PQisBusy(L.pg) && (r = PQgetResult(L.pg)))
            PQclear(r);
        if (PQstatus(L.pg) == CONNECTION_BAD)
            report(PG_LOCK_LOST, "database connection closed");
        return;
    }
    if (PQisBusy(L.pg))
        return;
    PGresult *r = PQgetResult(L.pg), *extra;
    while ((extra = PQgetResult(L.pg)))
        PQclear(extra);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        report(PG_LOCK_ERROR, r ? PQresultErrorMessage(r) : "no result");
        PQclear(r);
        return;
    }
    int got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got) {
        report(PG_LOCK_BUSY, "another wapi holds this session (database advisory lock)");
        return;
    }
    L.st = L_HELD;
    report(PG_LOCK_HELD, "");
}

int pg_lock_acquire(struct event_base *base, const struct db_params *params, int64_t key, pg_lock_cb cb, void *arg)
{
    reset();
    L.base = base;
    L.key = key;
    L.cb = cb;
    L.arg = arg;
    L.pg = PQconnectStartParams(params->keys, params->values, 1);
    if (!L.pg || PQstatus(L.pg) == CONNECTION_BAD) {
        report(PG_LOCK_ERROR, L.pg ? PQerrorMessage(L.pg) : "out of memory");
        return -1;
    }
    L.st = L_CONNECTING;
    watch(EV_WRITE);
    return 0;
}

void pg_lock_release(void)
{
    L.cb = NULL;
    reset();
}

int pg_lock_held(void)
{
    return L.st == L_HELD;
}
