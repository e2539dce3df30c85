#include "sdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

enum cstate { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct sdb_query {
    struct sdb_query *next;
    const char *sql;
    int nparams;
    char **params;
    sdb_cb cb;
    void *ctx;
    int cancelled;
    uint64_t queued_at;
};

struct conn {
    PGconn *pg;
    struct event *ev;
    enum cstate st;
    struct sdb_query *q;
    PGresult *res;
    uint64_t next_attempt;
    unsigned backoff_ms;
    int idx;
};

#define QUEUE_WAIT_MS 10000
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

static struct {
    struct event_base *base;
    const struct db_params *params;
    int size;
    struct conn *c;
    struct sdb_query *head, *tail;
    struct event *tick, *kick;
    int shutdown;
} D;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dispatch(void);
static void on_io(evutil_socket_t fd, short what, void *arg);

static void query_free(struct sdb_query *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q);
}

static void complete(struct sdb_query *q, const PGresult *res, const char *err)
{
    if (!q->cancelled && q->cb)
        q->cb(q->ctx, res, err);
    query_free(q);
}

static void watch(struct conn *c, short what)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = event_new(D.base, PQsocket(c->pg), what, on_io, c);
    event_add(c->ev, NULL);
}

static void conn_fail(struct conn *c, const char *why)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s", why && *why ? why : "connection lost");
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    if (c->idx == 0 && c->backoff_ms == BACKOFF_MIN_MS)
        log_warn("supervisor database connection failed; retrying with backoff", LF_S("error", reason));
    if (c->ev) {
        event_free(c->ev);
        c->ev = NULL;
    }
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->st = C_DOWN;
    c->next_attempt = mono_ms() + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    struct sdb_query *q = c->q;
    c->q = NULL;
    if (q)
        complete(q, NULL, reason);
}

static void poll_connect(struct conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING: watch(c, EV_READ); return;
    case PGRES_POLLING_WRITING: watch(c, EV_WRITE); return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0) {
            conn_fail(c, "cannot set non-blocking mode");
            return;
        }
        if (c->backoff_ms > BACKOFF_MIN_MS)
            log_info("supervisor database connection restored");
        c->backoff_ms = BACKOFF_MIN_MS;
        c->st = C_IDLE;
        watch(c, EV_READ | EV_PERSIST);
        dispatch();
        return;
    default: conn_fail(c, PQerrorMessage(c->pg)); return;
    }
}

static void conn_start(struct conn *c)
{
    c->pg = PQconnectStartParams(D.params->keys, D.params->values, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    c->st = C_CONNECTING;
    watch(c, EV_WRITE);
}

static void finish_query(struct conn *c)
{
    struct sdb_query *q = c->q;
    PGresult *res = c->res;
    c->q = NULL;
    c->res = NULL;
    c->st = C_IDLE;
    if (!res) {
        complete(q, NULL, "no result");
    } else {
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
            complete(q, res, NULL);
        else
            complete(q, NULL, PQresultErrorMessage(res));
        PQclear(res);
    }
    dispatch();
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    if (c->st == C_CONNECTING) {
        poll_connect(c);
        return;
    }
    if (what & EV_WRITE) {
        int r = PQflush(c->pg);
        if (r < 0) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        if (r == 0)
            watch(c, EV_READ | EV_PERSIST);
        return;
    }
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->st != C_BUSY) {
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            finish_query(c);
            return;
        }
        if (c->res && PQresultStatus(c->res) != PGRES_TUPLES_OK && PQresultStatus(c->res) != PGRES_COMMAND_OK) {
            PQclear(r);
            continue;
        }
        if (c->res)
            PQclear(c->res);
        c->res = r;
    }
}

static void dispatch(void)
{
    for (int i = 0; i < D.size && D.head; i++) {
        struct conn *c = &D.c[i];
        if (c->st != C_IDLE)
            continue;
        struct sdb_query *q = D.head;
        D.head = q->next;
        if (!D.head)
            D.tail = NULL;
        if (q->cancelled) {
            query_free(q);
            i--;
            continue;
        }
        c->q = q;
        if (!PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL, NULL, 0)) {
            conn_fail(c, PQerrorMessage(c->pg));
            continue;
        }
        c->st = C_BUSY;
        int r = PQflush(c->pg);
        if (r < 0)
            conn_fail(c, PQerrorMessage(c->pg));
        else if (r > 0)
            watch(c, EV_WRITE | EV_PERSIST);
    }
}

static int any_live(void)
{
    for (int i = 0; i < D.size; i++)
        if (D.c[i].st != C_DOWN)
            return 1;
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    uint64_t now = mono_ms();
    for (int i = 0; i < D.size; i++)
        if (D.c[i].st == C_DOWN && now >= D.c[i].next_attempt && !D.shutdown)
            conn_start(&D.c[i]);
    /* Taken out first, answered after: a callback may queue a new query, and
     * the list must be whole by then. */
    struct sdb_query **pp = &D.head, *last = NULL, *gone = NULL, **gtail = &gone;
    while (*pp) {
        struct sdb_query *q = *pp;
        if (q->cancelled || now - q->queued_at > QUEUE_WAIT_MS || (!any_live() && now - q->queued_at > 200)) {
            *pp = q->next;
            q->next = NULL;
            *gtail = q;
            gtail = &q->next;
            continue;
        }
        last = q;
        pp = &q->next;
    }
    D.tail = last;
    while (gone) {
        struct sdb_query *q = gone;
        gone = q->next;
        if (q->cancelled)
            query_free(q);
        else
            complete(q, NULL, "database unavailable");
    }
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    dispatch();
}

int sdb_init(struct event_base *base, const struct db_params *params, int size)
{
    D.base = base;
    D.params = params;
    D.size = size;
    D.c = calloc((size_t)size, sizeof *D.c);
    if (!D.c)
        return -1;
    for (int i = 0; i < size; i++) {
        D.c[i].backoff_ms = BACKOFF_MIN_MS;
        D.c[i].idx = i;
        conn_start(&D.c[i]);
    }
    D.tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 100000};
    event_add(D.tick, &tv);
    D.kick = evtimer_new(base, on_kick, NULL);
    return 0;
}

struct sdb_query *sdb_query(const char *sql, int nparams, const char *const *params, sdb_cb cb, void *ctx)
{
    struct sdb_query *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->sql = sql;
    q->cb = cb;
    q->ctx = ctx;
    q->queued_at = mono_ms();
    if (nparams > 0) {
        q->params = calloc((size_t)nparams, sizeof(char *));
        if (!q->params) {
            free(q);
            return NULL;
        }
        for (int i = 0; i < nparams; i++) {
            q->params[i] = params[i] ? strdup(params[i]) : NULL;
            q->nparams = i + 1;
            if (params[i] && !q->params[i]) {
                query_free(q);
                return NULL;
            }
        }
    }
    if (D.tail)
        D.tail->next = q;
    else
        D.head = q;
    D.tail = q;
    struct timeval zero = {0, 0};
    if (!evtimer_pending(D.kick, NULL))
        evtimer_add(D.kick, &zero); /* started from the loop: never a callback inside this call */
    return q;
}

void sdb_cancel(struct sdb_query *q)
{
    if (q)
        q->cancelled = 1;
}

int sdb_connected(void)
{
    int n = 0;
    for (int i = 0; i < D.size; i++)
        n += D.c[i].st == C_IDLE || D.c[i].st == C_BUSY;
    return n;
}

void sdb_shutdown(void)
{
    D.shutdown = 1;
    for (int i = 0; i < D.size; i++) {
        struct conn *c = &D.c[i];
        if (c->ev)
            event_free(c->ev);
        c->ev = NULL;
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        c->st = C_DOWN;
    }
}
