#include "pgpool.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define TICK_MS 100
#define DOWN_GRACE_MS 100 /* while nothing is up: how long a query may wait anyway */

struct pgq {
    struct pgq *next;
    struct pgpool *pool;
    const char *sql;
    int nparams;
    char **params;
    pgpool_cb cb;
    void *ctx;
    int cancelled;
    uint64_t queued_at;
};

struct slot {
    struct pgpool *pool;
    struct pgc *c;
    struct pgq *q; /* in flight on it */
};

struct pgpool {
    struct pgc_loop loop;
    struct pgpool_opts o;
    struct slot *s;
    struct pgq *head, *tail;
    unsigned nwait;
    void *tick, *kick;
    int started; /* connections beyond the first exist (lazy) */
    int kicked;  /* the kick timer is armed */
    int outage;  /* an outage was logged and is not over */
    int shutdown;
};

static void dispatch(struct pgpool *p);

static void gauges(struct pgpool *p)
{
    if (!p->o.on_gauges)
        return;
    int up = 0, busy = 0;
    for (int i = 0; i < p->o.size; i++) {
        up += pgc_up(p->s[i].c);
        busy += p->s[i].q != NULL;
    }
    p->o.on_gauges(p->o.arg, up, busy, p->nwait);
}

static void q_free(struct pgq *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q);
}

static void complete(struct pgq *q, const PGresult *res, const char *err)
{
    struct pgpool *p = q->pool;
    if (p->o.on_done)
        p->o.on_done(p->o.arg, err != NULL);
    if (!q->cancelled && q->cb)
        q->cb(q->ctx, res, err);
    q_free(q);
}

static void on_result(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)sqlstate;
    struct slot *sl = ctx;
    struct pgq *q = sl->q;
    sl->q = NULL;
    if (q)
        complete(q, res, err);
    dispatch(sl->pool);
}

static void on_up(void *arg, struct pgc *c)
{
    (void)c;
    struct slot *sl = arg;
    struct pgpool *p = sl->pool;
    if (p->outage) {
        p->outage = 0;
        log_info("connection restored", LF_S("to", p->o.what));
    }
    dispatch(p);
}

static void on_down(void *arg, struct pgc *c, const char *why)
{
    struct slot *sl = arg;
    struct pgpool *p = sl->pool;
    if (p->o.on_reconnect)
        p->o.on_reconnect(p->o.arg);
    /* One line per outage, not one per connection and attempt. */
    if (!p->outage && pgc_failures(c) == 1 && !p->shutdown) {
        p->outage = 1;
        log_warn("connection failed; retrying with backoff", LF_S("to", p->o.what), LF_S("error", why));
    }
    gauges(p);
}

static struct pgc *slot_connect(struct slot *sl)
{
    struct pgpool *p = sl->pool;
    struct pgc_opts co = {
        .params = p->o.params,
        .setup_sql = p->o.setup_sql,
        .reconnect = 1,
        .backoff_min_ms = p->o.backoff_min_ms,
        .backoff_max_ms = p->o.backoff_max_ms,
        .max_prepared = p->o.max_prepared,
        .on_up = on_up,
        .on_down = on_down,
        .arg = sl,
    };
    return sl->c = pgc_new(&p->loop, &co);
}

static int any_alive(const struct pgpool *p)
{
    for (int i = 0; i < p->o.size; i++)
        if (p->s[i].c && !pgc_down(p->s[i].c))
            return 1;
    return 0;
}

static void dispatch(struct pgpool *p)
{
    for (int i = 0; i < p->o.size && p->head && !p->shutdown; i++) {
        struct slot *sl = &p->s[i];
        if (!pgc_idle(sl->c) || sl->q)
            continue;
        struct pgq *q = p->head;
        p->head = q->next;
        if (!p->head)
            p->tail = NULL;
        p->nwait--;
        if (q->cancelled) {
            q_free(q);
            i--;
            continue;
        }
        sl->q = q;
        if (pgc_send(sl->c, q->sql, q->nparams, (const char *const *)q->params, p->o.max_prepared > 0,
                     on_result, sl) < 0) {
            /* That connection went down; another may take it. */
            sl->q = NULL;
            q->next = p->head;
            p->head = q;
            if (!p->tail)
                p->tail = q;
            p->nwait++;
        }
    }
    gauges(p);
}

static void on_kick(void *arg)
{
    struct pgpool *p = arg;
    p->kicked = 0;
    dispatch(p);
}

static void on_tick(void *arg)
{
    struct pgpool *p = arg;

    if (p->shutdown)
        return;
    if (!p->started) {
        p->started = 1;
        for (int i = 1; i < p->o.size; i++)
            if (!p->s[i].c)
                slot_connect(&p->s[i]);
    }
    uint64_t now = p->loop.clock_ms(p->loop.ctx);
    int alive = any_alive(p);
    /* Waiting queries give up rather than hang their callers. Taken out
     * first, answered after: a callback may queue a new query, and the list
     * must be whole by then. */
    struct pgq **pp = &p->head, *last = NULL, *gone = NULL, **gtail = &gone;
    while (*pp) {
        struct pgq *q = *pp;
        if (q->cancelled || now - q->queued_at > p->o.queue_wait_ms ||
            (!alive && now - q->queued_at > DOWN_GRACE_MS)) {
            *pp = q->next;
            p->nwait--;
            q->next = NULL;
            *gtail = q;
            gtail = &q->next;
            continue;
        }
        last = q;
        pp = &q->next;
    }
    p->tail = last;
    while (gone) {
        struct pgq *q = gone;
        gone = q->next;
        if (q->cancelled)
            q_free(q);
        else
            complete(q, NULL, "database unavailable");
    }
    gauges(p);
    if (!p->shutdown)
        p->loop.timer_start(p->tick, TICK_MS);
}

struct pgpool *pgpool_new(const struct pgc_loop *loop, const struct pgpool_opts *o)
{
    struct pgpool *p = calloc(1, sizeof *p);
    if (!p || o->size < 1)
        goto fail;
    p->loop = *loop;
    p->o = *o;
    if (!p->o.queue_wait_ms)
        p->o.queue_wait_ms = 3000;
    if (!p->o.what)
        p->o.what = "database";
    if (!(p->s = calloc((size_t)o->size, sizeof *p->s)))
        goto fail;
    p->tick = loop->timer_new(loop->ctx, on_tick, p);
    p->kick = loop->timer_new(loop->ctx, on_kick, p);
    if (!p->tick || !p->kick)
        goto fail;
    for (int i = 0; i < o->size; i++)
        p->s[i].pool = p;
    p->started = !o->lazy;
    for (int i = 0; i < (o->lazy ? 1 : o->size); i++)
        if (!slot_connect(&p->s[i]))
            goto fail;
    loop->timer_start(p->tick, TICK_MS);
    return p;
fail:
    if (p) {
        for (int i = 0; p->s && i < p->o.size; i++)
            pgc_free(p->s[i].c);
        if (p->tick)
            loop->timer_free(p->tick);
        if (p->kick)
            loop->timer_free(p->kick);
        free(p->s);
        free(p);
    }
    return NULL;
}

struct pgq *pgpool_query(struct pgpool *p, const char *sql, int nparams, const char *const *params,
                         pgpool_cb cb, void *ctx)
{
    struct pgq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->pool = p;
    q->sql = sql;
    q->cb = cb;
    q->ctx = ctx;
    q->queued_at = p->loop.clock_ms(p->loop.ctx);
    if (nparams > 0) {
        if (!(q->params = calloc((size_t)nparams, sizeof *q->params))) {
            free(q);
            return NULL;
        }
        for (int i = 0; i < nparams; i++) {
            q->params[i] = params[i] ? strdup(params[i]) : NULL;
            q->nparams = i + 1;
            if (params[i] && !q->params[i]) {
                q_free(q);
                return NULL;
            }
        }
    }
    if (p->tail)
        p->tail->next = q;
    else
        p->head = q;
    p->tail = q;
    p->nwait++;
    /* Started from the loop: a callback never runs before its caller has the handle. */
    if (!p->kicked) {
        p->kicked = 1;
        p->loop.timer_start(p->kick, 0);
    }
    return q;
}

void pgq_cancel(struct pgq *q)
{
    if (q)
        q->cancelled = 1;
}

int pgpool_connected(const struct pgpool *p)
{
    int n = 0;
    for (int i = 0; i < p->o.size; i++)
        n += pgc_up(p->s[i].c);
    return n;
}

void pgpool_shutdown(struct pgpool *p)
{
    p->shutdown = 1;
    p->loop.timer_stop(p->tick);
    p->loop.timer_stop(p->kick);
    for (int i = 0; i < p->o.size; i++) {
        pgc_free(p->s[i].c);
        p->s[i].c = NULL;
        if (p->s[i].q)
            q_free(p->s[i].q);
        p->s[i].q = NULL;
    }
    while (p->head) {
        struct pgq *q = p->head;
        p->head = q->next;
        q_free(q);
    }
    p->tail = NULL;
    p->nwait = 0;
    gauges(p);
    p->loop.timer_free(p->tick);
    p->loop.timer_free(p->kick);
    free(p->s);
    free(p);
}
