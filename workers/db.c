#include "db.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

enum cstate { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
#define MAX_PREPARED 64

struct db_query {
    struct db_query *next;
    const char *sql; /* borrowed: a literal that outlives the query */
    int nparams;
    char **params; /* owned copies */
    db_cb cb;
    void *ctx;
    int cancelled;
    uint64_t queued_at;
};

struct db_conn {
    PGconn *pg;
    h2o_socket_t *sock; /* watches a dup of PQsocket(): closing it never touches libpq's fd */
    int pgfd;
    enum cstate st;
    struct db_query *q;
    PGresult *res;
    uint64_t next_attempt;
    unsigned backoff_ms;
    int ever_up;
    /* Statements prepared on this connection ("w<index>"), by their text:
     * parsing and planning the same statements for every request was a
     * large share of the server's CPU. */
    char *prep[MAX_PREPARED];
    int nprep;
    int preparing; /* a prepare for prep[nprep] is in flight */
    int setting_up; /* the session settings are being sent after connecting */
    int drop_prepared; /* a prepared plan went stale: reconnect when idle */
};

#define QUEUE_WAIT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static struct {
    h2o_loop_t *loop;
    const struct db_params *params;
    int size;
    struct db_conn *conns;
    struct db_query *head, *tail;
    unsigned nwait;
    struct metrics_slot *m;
    h2o_timeout_t tick, zero;
    h2o_timeout_entry_t tick_entry, kick_entry;
    int shutdown;
} P;

static void dispatch(void);
static void on_readable(h2o_socket_t *sock, const char *err);
static void on_flush(h2o_socket_t *sock, const char *err);

static void update_gauges(void)
{
    uint64_t up = 0, busy = 0;
    for (int i = 0; i < P.size; i++) {
        up += P.conns[i].st == C_IDLE || P.conns[i].st == C_BUSY;
        busy += P.conns[i].st == C_BUSY;
    }
    metrics_set(&P.m->db_connected, up);
    metrics_set(&P.m->db_busy, busy);
    metrics_set(&P.m->db_waiting, P.nwait);
}

static void query_free(struct db_query *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q);
}

static void complete(struct db_query *q, const PGresult *res, const char *err)
{
    metrics_add(&P.m->db_queries_total, 1);
    if (err)
        metrics_add(&P.m->db_errors_total, 1);
    if (!q->cancelled && q->cb)
        q->cb(q->ctx, res, err);
    query_free(q);
}

static void close_sock(struct db_conn *c)
{
    if (c->sock) {
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
}

static void forget_prepared(struct db_conn *c)
{
    for (int i = 0; i < c->nprep + c->preparing; i++) {
        free(c->prep[i]);
        c->prep[i] = NULL;
    }
    c->nprep = c->preparing = c->drop_prepared = c->setting_up = 0;
}

static void conn_fail(struct db_conn *c, const char *why)
{
    char reason[256];
    snprintf(reason, sizeof reason, "%s", why && *why ? why : "connection lost");
    size_t n = strlen(reason);
    while (n && (reason[n - 1] == '\n' || reason[n - 1] == ' '))
        reason[--n] = '\0';
    for (char *p = reason; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    /* One line per outage per worker, not one per connection and attempt. */
    if (c == &P.conns[0] && c->backoff_ms == BACKOFF_MIN_MS)
        log_warn("database connection failed; retrying with backoff", LF_S("error", reason));
    close_sock(c);
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    forget_prepared(c);
    c->st = C_DOWN;
    c->next_attempt = h2o_now(P.loop) + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    metrics_add(&P.m->db_reconnects_total, 1);
    struct db_query *q = c->q;
    c->q = NULL;
    if (q)
        complete(q, NULL, reason);
    update_gauges();
}

/* libpq may switch sockets while connecting (several hosts): follow it. */
static int watch_socket(struct db_conn *c)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->sock && fd == c->pgfd)
        return 0;
    close_sock(c);
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return -1;
    c->pgfd = fd;
    c->sock = h2o_evloop_socket_create(P.loop, d, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    return 0;
}

static void on_connect_io(h2o_socket_t *sock, const char *err);

static void poll_connect(struct db_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_FAILED) {
        conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    if (watch_socket(c) < 0) {
        conn_fail(c, "no socket");
        return;
    }
    switch (st) {
    case PGRES_POLLING_READING:
        h2o_socket_read_start(c->sock, on_connect_io);
        break;
    case PGRES_POLLING_WRITING:
        h2o_socket_read_stop(c->sock);
        h2o_socket_notify_write(c->sock, on_connect_io);
        break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0) {
            conn_fail(c, "cannot set non-blocking mode");
            return;
        }
        if (c->backoff_ms > BACKOFF_MIN_MS)
            log_info("database connection restored");
        c->ever_up = 1;
        c->backoff_ms = BACKOFF_MIN_MS;
        h2o_socket_read_start(c->sock, on_readable); /* notices, or the server closing */
        /* Prepared statements are planned for their parameters every time: a
         * generic plan made while a table was small (a hash of a whole table
         * instead of an index probe) stays cached as the table grows. Parsing
         * once is most of the saving. */
        if (!PQsendQuery(c->pg, "SET plan_cache_mode = force_custom_plan")) {
            conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        c->setting_up = 1;
        c->st = C_BUSY;
        if (PQflush(c->pg) > 0)
            h2o_socket_notify_write(c->sock, on_flush);
        update_gauges();
        break;
    default:
        break;
    }
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    (void)err;
    poll_connect(sock->data);
}

static void conn_start(struct db_conn *c)
{
    c->pg = PQconnectStartParams(P.params->keys, P.params->values, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    c->st = C_CONNECTING;
    c->pgfd = -1;
    poll_connect(c);
}

static int send_query(struct db_conn *c, struct db_query *q, int may_prepare);

/* The prepare step of c->q ended: keep the statement (or give up preparing
 * it) and send the query itself. 0, or -1 when the connection failed. */
static int prepared(struct db_conn *c)
{
    PGresult *res = c->res;
    c->res = NULL;
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok) {
        c->nprep++;
    } else {
        free(c->prep[c->nprep]);
        c->prep[c->nprep] = NULL;
    }
    c->preparing = 0;
    PQclear(res);
    /* A text that does not prepare goes unnamed: its own error reaches the caller. */
    return send_query(c, c->q, ok);
}

static void finish_query(struct db_conn *c)
{
    if (c->setting_up) {
        int ok = c->res && PQresultStatus(c->res) == PGRES_COMMAND_OK;
        PQclear(c->res);
        c->res = NULL;
        c->setting_up = 0;
        if (!ok) {
            conn_fail(c, "cannot set up the session");
            return;
        }
        c->st = C_IDLE;
        update_gauges();
        dispatch();
        return;
    }
    if (c->preparing) {
        prepared(c);
        return;
    }
    struct db_query *q = c->q;
    PGresult *res = c->res;
    c->q = NULL;
    c->res = NULL;
    c->st = C_IDLE;
    update_gauges();
    if (!res) {
        complete(q, NULL, "no result");
    } else {
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
            complete(q, res, NULL);
        } else {
            /* 0A000 "cached plan must not change result type": the schema
             * changed under a prepared statement; start this connection over. */
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            c->drop_prepared |= code && strcmp(code, "0A000") == 0;
            complete(q, NULL, PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    if (c->drop_prepared) {
        c->backoff_ms = BACKOFF_MIN_MS / 2; /* at once: nothing is wrong with the server */
        conn_fail(c, "prepared statements outdated by a schema change");
    }
    dispatch();
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct db_conn *c = sock->data;
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
        /* Keep the first error, else the last result of a multi-statement query. */
        if (c->res && PQresultStatus(c->res) != PGRES_TUPLES_OK && PQresultStatus(c->res) != PGRES_COMMAND_OK) {
            PQclear(r);
            continue;
        }
        if (c->res)
            PQclear(c->res);
        c->res = r;
    }
}

static void on_flush(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct db_conn *c = sock->data;
    int r = PQflush(c->pg);
    if (r < 0)
        conn_fail(c, PQerrorMessage(c->pg));
    else if (r > 0)
        h2o_socket_notify_write(c->sock, on_flush);
}

static void dispatch(void)
{
    for (int i = 0; i < P.size && P.head; i++) {
        struct db_conn *c = &P.conns[i];
        if (c->st != C_IDLE)
            continue;
        struct db_query *q = P.head;
        P.head = q->next;
        if (!P.head)
            P.tail = NULL;
        P.nwait--;
        if (q->cancelled) {
            query_free(q);
            i--;
            continue;
        }
        send_query(c, q, 1);
    }
    update_gauges();
}

/* Sends q on idle connection c: as a prepared statement when its text is
 * one (first its prepare, when new here), else unnamed (several statements
 * in one text cannot be prepared). -1 when the connection failed. */
static int send_query(struct db_conn *c, struct db_query *q, int may_prepare)
{
    c->q = q;
    int idx = -1, ok;
    char name[16];
    if (!strchr(q->sql, ';'))
        for (int i = 0; i < c->nprep && idx < 0; i++)
            if (c->prep[i] == q->sql || strcmp(c->prep[i], q->sql) == 0)
                idx = i;
    if (idx >= 0) {
        snprintf(name, sizeof name, "w%d", idx);
        ok = PQsendQueryPrepared(c->pg, name, q->nparams, (const char *const *)q->params, NULL, NULL, 0);
    } else if (may_prepare && !strchr(q->sql, ';') && c->nprep < MAX_PREPARED &&
               (c->prep[c->nprep] = strdup(q->sql))) {
        snprintf(name, sizeof name, "w%d", c->nprep);
        c->preparing = 1;
        ok = PQsendPrepare(c->pg, name, q->sql, q->nparams, NULL);
    } else {
        ok = PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL, NULL, 0);
    }
    if (!ok) {
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    c->st = C_BUSY;
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_fail(c, PQerrorMessage(c->pg));
        return -1;
    }
    if (r > 0)
        h2o_socket_notify_write(c->sock, on_flush);
    return 0;
}

static int any_live(void)
{
    for (int i = 0; i < P.size; i++)
        if (P.conns[i].st != C_DOWN)
            return 1;
    return 0;
}

static void on_tick(h2o_timeout_entry_t *e)
{
    (void)e;
    uint64_t now = h2o_now(P.loop);
    for (int i = 0; i < P.size; i++)
        if (P.conns[i].st == C_DOWN && now >= P.conns[i].next_attempt && !P.shutdown)
            conn_start(&P.conns[i]);
    /* Waiting queries give up rather than hang their requests. */
    /* Taken out first, answered after: a callback may queue a new query, and
     * the list must be whole by then. */
    struct db_query **pp = &P.head, *last = NULL, *gone = NULL, **gtail = &gone;
    while (*pp) {
        struct db_query *q = *pp;
        if (q->cancelled || now - q->queued_at > QUEUE_WAIT_MS || (!any_live() && now - q->queued_at > 100)) {
            *pp = q->next;
            P.nwait--;
            q->next = NULL;
            *gtail = q;
            gtail = &q->next;
            continue;
        }
        last = q;
        pp = &q->next;
    }
    P.tail = last;
    while (gone) {
        struct db_query *q = gone;
        gone = q->next;
        if (q->cancelled)
            query_free(q);
        else
            complete(q, NULL, "database unavailable");
    }
    update_gauges();
    if (!P.shutdown)
        h2o_timeout_link(P.loop, &P.tick, &P.tick_entry);
}

/* Queries start from the loop, never inside db_query(): a callback then never
 * runs before its caller has the handle. */
static void on_kick(h2o_timeout_entry_t *e)
{
    (void)e;
    dispatch();
}

int db_pool_init(h2o_loop_t *loop, const struct db_params *params, int size, struct metrics_slot *m)
{
    P.loop = loop;
    P.params = params;
    P.size = size;
    P.m = m;
    P.conns = calloc((size_t)size, sizeof *P.conns);
    if (!P.conns)
        return -1;
    for (int i = 0; i < size; i++)
        P.conns[i].backoff_ms = BACKOFF_MIN_MS;
    /* One connection now; the others as soon as there is demand or the tick. */
    conn_start(&P.conns[0]);
    for (int i = 1; i < size; i++)
        P.conns[i].next_attempt = h2o_now(loop);
    h2o_timeout_init(loop, &P.zero, 0);
    P.kick_entry.cb = on_kick;
    h2o_timeout_init(loop, &P.tick, 100);
    P.tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &P.tick, &P.tick_entry);
    return 0;
}

struct db_query *db_query(const char *sql, int nparams, const char *const *params, db_cb cb, void *ctx)
{
    struct db_query *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->sql = sql;
    q->cb = cb;
    q->ctx = ctx;
    q->queued_at = h2o_now(P.loop);
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
    if (P.tail)
        P.tail->next = q;
    else
        P.head = q;
    P.tail = q;
    P.nwait++;
    if (!h2o_timeout_is_linked(&P.kick_entry))
        h2o_timeout_link(P.loop, &P.zero, &P.kick_entry);
    return q;
}

void db_cancel(struct db_query *q)
{
    if (q)
        q->cancelled = 1;
}

int db_pool_connected(void)
{
    int n = 0;
    for (int i = 0; i < P.size; i++)
        n += P.conns[i].st == C_IDLE || P.conns[i].st == C_BUSY;
    return n;
}

void db_pool_shutdown(void)
{
    P.shutdown = 1;
    if (h2o_timeout_is_linked(&P.tick_entry))
        h2o_timeout_unlink(&P.tick_entry);
    for (int i = 0; i < P.size; i++) {
        struct db_conn *c = &P.conns[i];
        close_sock(c);
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
        c->st = C_DOWN;
    }
    update_gauges();
}
