#include "pgc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum state { S_DOWN, S_CONNECTING, S_SETUP, S_IDLE, S_PREPARING, S_BUSY };

#define CONNECT_TIMEOUT_MS 10000

struct pgc {
    struct pgc_loop loop;
    struct pgc_opts o;
    enum state st;
    PGconn *pg;
    int fd;        /* the socket io watches (libpq may switch while connecting) */
    void *io;      /* NULL when not watching */
    void *timer;   /* connect deadline while connecting, backoff while down */
    PGresult *res; /* the statement's result so far: its first error, else its last */
    pgc_result_cb cb;
    void *ctx;
    /* The statement being prepared, then run: its text and parameters. */
    const char *sql;
    int nparams;
    char **params;
    char **prep; /* texts prepared on this connection, named "s<index>" */
    int nprep;
    unsigned backoff_ms, failures;
    int stale;    /* a prepared statement went stale: end this connection once idle */
    int starting; /* the first connect is due (from the loop: no callback inside pgc_new) */
    int in_cb;    /* callbacks running (nested): pgc_free only marks */
    int freed;
    char err[256];
};

/* ---- callbacks may free c: they run between enter() and leave() */

static void enter(struct pgc *c)
{
    c->in_cb++;
}

/* Leaves a callback; 1 when c was freed meanwhile (and is gone now). */
static int leave(struct pgc *c)
{
    if (--c->in_cb == 0 && c->freed) {
        free(c->prep);
        free(c);
        return 1;
    }
    return c->freed;
}

static void set_err(struct pgc *c, const char *why)
{
    snprintf(c->err, sizeof c->err, "%s", why && *why ? why : "connection lost");
    size_t n = strlen(c->err);
    while (n && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
        c->err[--n] = '\0';
    for (char *p = c->err; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

static void free_params(struct pgc *c)
{
    for (int i = 0; i < c->nparams; i++)
        free(c->params[i]);
    free(c->params);
    c->params = NULL;
    c->nparams = 0;
    c->sql = NULL;
}

static void forget_prepared(struct pgc *c)
{
    if (c->st == S_PREPARING) /* the text being prepared is not counted yet */
        free(c->prep[c->nprep]);
    for (int i = 0; i < c->nprep; i++)
        free(c->prep[i]);
    c->nprep = 0;
}

static void io_close(struct pgc *c)
{
    if (c->io) {
        c->loop.io_free(c->io);
        c->io = NULL;
    }
    c->fd = -1;
}

static void on_io(void *arg, int readable, int writable);

/* Watches PQsocket() for what is asked; -1 when there is no socket. */
static int want(struct pgc *c, int r, int w)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (!c->io || fd != c->fd) {
        io_close(c);
        if (!(c->io = c->loop.io_new(c->loop.ctx, fd, on_io, c)))
            return -1;
        c->fd = fd;
    }
    c->loop.io_want(c->io, r, w);
    return 0;
}

static void connect_now(struct pgc *c);

/* Closes the libpq side: socket watch, connection, partial result, the
 * statements prepared on it, the statement under way. */
static void close_pg(struct pgc *c)
{
    io_close(c);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    PQclear(c->res);
    c->res = NULL;
    forget_prepared(c);
    free_params(c);
}

/* The connection is gone (or never came): the statement in flight gets the
 * error, then the owner; then reconnection is scheduled. */
static void go_down(struct pgc *c, const char *why)
{
    set_err(c, why);
    close_pg(c);
    c->st = S_DOWN;
    c->stale = 0;
    c->failures++;
    pgc_result_cb cb = c->cb;
    c->cb = NULL;
    enter(c);
    if (cb)
        cb(c->ctx, NULL, c->err, "");
    if (!c->freed && c->o.on_down)
        c->o.on_down(c->o.arg, c, c->err);
    if (leave(c))
        return;
    if (c->o.reconnect && c->st == S_DOWN) {
        c->loop.timer_start(c->timer, c->backoff_ms);
        c->backoff_ms = c->backoff_ms * 2 > c->o.backoff_max_ms ? c->o.backoff_max_ms : c->backoff_ms * 2;
    }
}

static void become_up(struct pgc *c)
{
    c->st = S_IDLE;
    c->failures = 0;
    c->backoff_ms = c->o.backoff_min_ms;
    c->loop.timer_stop(c->timer);
    if (want(c, 1, 0) < 0) { /* notifications, or the server closing */
        go_down(c, "no socket");
        return;
    }
    if (c->o.on_up) {
        enter(c);
        c->o.on_up(c->o.arg, c);
        leave(c);
    }
}

/* Writes what libpq holds; then waits for the answer. -1 when it failed. */
static int flush(struct pgc *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    if (want(c, 1, r > 0) < 0) {
        go_down(c, "no socket");
        return -1;
    }
    return 0;
}

/* Notices (and a server's last words before it closes) would go to stderr,
 * among the JSON log lines; what matters reaches the caller as an error. */
static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static void poll_connect(struct pgc *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_FAILED) {
        go_down(c, PQerrorMessage(c->pg));
        return;
    }
    if (want(c, st == PGRES_POLLING_READING, st == PGRES_POLLING_WRITING) < 0) {
        go_down(c, "no socket");
        return;
    }
    if (st != PGRES_POLLING_OK)
        return;
    if (PQsetnonblocking(c->pg, 1) != 0) {
        go_down(c, "cannot set non-blocking mode");
        return;
    }
    if (!c->o.setup_sql) {
        become_up(c);
        return;
    }
    if (!PQsendQuery(c->pg, c->o.setup_sql)) {
        go_down(c, PQerrorMessage(c->pg));
        return;
    }
    c->st = S_SETUP;
    flush(c);
}

static void connect_now(struct pgc *c)
{
    c->pg = PQconnectStartParams(c->o.params->keys, c->o.params->values, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        go_down(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, quiet, NULL);
    c->st = S_CONNECTING;
    c->loop.timer_start(c->timer, c->o.connect_timeout_ms);
    poll_connect(c);
}

static void on_timer(void *arg)
{
    struct pgc *c = arg;
    if (c->st == S_CONNECTING) {
        go_down(c, "timed out connecting to the database");
    } else if (c->st == S_DOWN && (c->o.reconnect || c->starting)) {
        c->starting = 0;
        connect_now(c);
    }
}

static int send_exec(struct pgc *c, int idx, int multi);
static void restart(struct pgc *c, const char *why);

/* The statement (or the set-up, or a prepare) has all its results. */
static void finish(struct pgc *c)
{

    PGresult *res = c->res;
    c->res = NULL;
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int ok = s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
    if (c->st == S_SETUP) {
        char why[300];
        snprintf(why, sizeof why, "session set-up failed: %s", res ? PQresultErrorMessage(res) : "no result");
        PQclear(res);
        if (ok)
            become_up(c);
        else
            go_down(c, why);
        return;
    }
    if (c->st == S_PREPARING) {
        /* Kept when it prepared; a text that does not prepare runs unnamed,
         * so that its own error reaches the caller. */
        if (ok)
            c->nprep++;
        else
            free(c->prep[c->nprep]);
        PQclear(res);
        send_exec(c, ok ? c->nprep - 1 : -1, 0);
        return;
    }
    c->st = S_IDLE;
    free_params(c);
    pgc_result_cb cb = c->cb;
    c->cb = NULL;
    const char *code = res && !ok ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (code && (!strcmp(code, "0A000") || !strcmp(code, "26000")) && c->nprep > 0)
        c->stale = 1;
    enter(c);
    if (cb)
        cb(c->ctx, ok ? res : NULL, ok ? NULL : (res ? PQresultErrorMessage(res) : "no result"),
           code ? code : "");
    PQclear(res);
    if (leave(c))
        return;
    if (c->stale && c->st == S_IDLE)
        restart(c, "a prepared statement is outdated by a schema change");
}

static void on_io(void *arg, int readable, int writable)
{
    struct pgc *c = arg;
    (void)readable;
    if (c->st == S_CONNECTING) {
        poll_connect(c);
        return;
    }
    if (c->st == S_DOWN)
        return;
    if (writable && flush(c) < 0)
        return;
    if (!PQconsumeInput(c->pg)) {
        go_down(c, PQerrorMessage(c->pg));
        return;
    }
    enter(c);
    while (c->st >= S_SETUP && c->st != S_IDLE && !c->freed && c->pg && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            finish(c); /* may send the next statement; the loop then waits for it */
            continue;
        }
        ExecStatusType st = c->res ? PQresultStatus(c->res) : PGRES_COMMAND_OK;
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            PQclear(c->res);
            c->res = r;
        } else {
            PQclear(r);
        }
    }
    PGnotify *nf;
    while (!c->freed && c->pg && (nf = PQnotifies(c->pg))) {
        if (c->o.on_notify)
            c->o.on_notify(c->o.arg, c, nf->relname, nf->extra ? nf->extra : "");
        PQfreemem(nf);
    }
    if (leave(c))
        return;
    if (c->pg && PQstatus(c->pg) == CONNECTION_BAD)
        go_down(c, PQerrorMessage(c->pg));
}

/* Sends the current statement: by name when prepared (idx >= 0), else as
 * text (several statements through the simple protocol, which alone takes
 * them). 0, or -1 when the connection went down. */
static int send_exec(struct pgc *c, int idx, int multi)
{
    int ok;
    if (idx >= 0) {
        char name[16];
        snprintf(name, sizeof name, "s%d", idx);
        ok = PQsendQueryPrepared(c->pg, name, c->nparams, (const char *const *)c->params, NULL, NULL, 0);
    } else if (multi && c->nparams == 0) {
        ok = PQsendQuery(c->pg, c->sql);
    } else {
        ok =
            PQsendQueryParams(c->pg, c->sql, c->nparams, NULL, (const char *const *)c->params, NULL, NULL, 0);
    }
    if (!ok) {
        go_down(c, PQerrorMessage(c->pg));
        return -1;
    }
    c->st = S_BUSY;
    return flush(c);
}

int pgc_send(struct pgc *c, const char *sql, int nparams, const char *const *params, int prepare,
             pgc_result_cb cb, void *ctx)
{
    if (c->st != S_IDLE || c->freed)
        return -1;
    if (nparams > 0) {
        if (!(c->params = calloc((size_t)nparams, sizeof *c->params)))
            return -1;
        for (c->nparams = 0; c->nparams < nparams; c->nparams++)
            if (params[c->nparams] && !(c->params[c->nparams] = strdup(params[c->nparams]))) {
                free_params(c);
                return -1;
            }
    }
    /* cb is set once the statement is out: a failure to send does not run it. */
    c->sql = sql;
    c->cb = NULL;
    int multi = strchr(sql, ';') != NULL; /* several statements: never prepared */
    int can_prepare = prepare && c->o.max_prepared > 0 && !multi, idx = -1;
    for (int i = 0; can_prepare && i < c->nprep && idx < 0; i++)
        if (c->prep[i] == sql || !strcmp(c->prep[i], sql))
            idx = i;
    if (can_prepare && idx < 0 && c->nprep < c->o.max_prepared && (c->prep[c->nprep] = strdup(sql))) {
        char name[16];
        snprintf(name, sizeof name, "s%d", c->nprep);
        if (!PQsendPrepare(c->pg, name, sql, nparams, NULL)) {
            free(c->prep[c->nprep]);
            go_down(c, PQerrorMessage(c->pg));
            return -1;
        }
        c->st = S_PREPARING;
        if (flush(c) < 0)
            return -1;
    } else if (send_exec(c, idx, multi) < 0) {
        return -1;
    }
    c->cb = cb;
    c->ctx = ctx;
    return 0;
}

/* Ends the connection now and, since nothing is wrong with the server,
 * connects again at once. */
static void restart(struct pgc *c, const char *why)
{
    if (c->st == S_DOWN)
        return;
    c->backoff_ms = 0;
    go_down(c, why);
    c->backoff_ms = c->o.backoff_min_ms;
}

struct pgc *pgc_new(const struct pgc_loop *loop, const struct pgc_opts *o)
{
    struct pgc *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = *loop;
    c->o = *o;
    if (!c->o.connect_timeout_ms)
        c->o.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    if (!c->o.backoff_min_ms)
        c->o.backoff_min_ms = 100;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms)
        c->o.backoff_max_ms = c->o.backoff_min_ms;
    c->backoff_ms = c->o.backoff_min_ms;
    c->fd = -1;
    if (c->o.max_prepared > 0 && !(c->prep = calloc((size_t)c->o.max_prepared, sizeof *c->prep))) {
        free(c);
        return NULL;
    }
    if (!(c->timer = loop->timer_new(loop->ctx, on_timer, c))) {
        free(c->prep);
        free(c);
        return NULL;
    }
    c->st = S_DOWN;
    c->starting = 1;
    c->loop.timer_start(c->timer, 0);
    return c;
}

void pgc_free(struct pgc *c)
{
    if (!c || c->freed)
        return;
    c->cb = NULL;
    close_pg(c);
    c->loop.timer_free(c->timer);
    c->timer = NULL;
    c->st = S_DOWN;
    c->freed = 1;
    if (c->in_cb == 0) {
        free(c->prep);
        free(c);
    }
}

int pgc_idle(const struct pgc *c)
{
    return c && !c->freed && c->st == S_IDLE;
}

int pgc_up(const struct pgc *c)
{
    return c && !c->freed && c->st >= S_IDLE;
}

int pgc_down(const struct pgc *c)
{
    return !c || c->freed || (c->st == S_DOWN && !c->starting);
}

const char *pgc_last_error(const struct pgc *c)
{
    return c->err;
}

unsigned pgc_failures(const struct pgc *c)
{
    return c->failures;
}
