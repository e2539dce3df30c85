/* /healthz (the loop answers), /readyz (PostgreSQL and the supervisor answer,
 * the schema is migrated), /metrics (Prometheus, summed over all workers).
 * With metrics.listen set, /metrics is answered on that listener only (it is
 * kept off the public one), which answers nothing but /metrics and /healthz. */
#include <stdio.h>
#include <string.h>

#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "db.h"
#include "handlers.h"
#include "sup_link.h"

static struct metrics_shm *shm;
static int metrics_apart; /* metrics.listen is set */

void health_init(struct metrics_shm *m, const struct wapi_config *cfg)
{
    shm = m;
    metrics_apart = cfg->metrics.listen[0] != '\0';
}

void h_healthz(struct rq *rq)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_json(rq, 200, body, sizeof body - 1);
}

struct ready {
    struct rq *rq;
    struct pgq *q;
    uint32_t ping;
    int db_done, sup_done;
    char db_err[160];
    const char *sup_err;
};

static void ready_finish(struct ready *st)
{
    if (!st->db_done || !st->sup_done)
        return;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    int ok = !st->db_err[0] && !st->sup_err;
    jw_obj(&w);
    jw_kstr(&w, "status", ok ? "ready" : "unavailable");
    if (!ok) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s%s%s", st->db_err[0] ? "database: " : "", st->db_err,
                 st->sup_err ? (st->db_err[0] ? "; supervisor: " : "supervisor: ") : "");
        if (st->sup_err)
            snprintf(reason + strlen(reason), sizeof reason - strlen(reason), "%s", st->sup_err);
        jw_kstr(&w, "reason", reason);
    }
    jw_key(&w, "checks");
    jw_obj(&w);
    jw_kstr(&w, "database", st->db_err[0] ? "fail" : "ok");
    jw_kstr(&w, "supervisor", st->sup_err ? "fail" : "ok");
    jw_obj_end(&w);
    jw_obj_end(&w);
    st->rq->on_abort = NULL;
    http_add_header(st->rq, "cache-control", "no-store");
    http_jsonw(st->rq, ok ? 200 : 503, &w);
    sbuf_free(&b);
}

static void on_db(void *ctx, const PGresult *res, const char *err)
{
    struct ready *st = ctx;
    st->q = NULL;
    st->db_done = 1;
    if (!res) {
        snprintf(st->db_err, sizeof st->db_err, "%s", err ? err : "query failed");
        char *nl = strchr(st->db_err, '\n');
        if (nl)
            *nl = '\0';
    }
    ready_finish(st);
}

static void on_pong(void *ctx, const struct ipc_msg *m)
{
    struct ready *st = ctx;
    st->ping = 0;
    st->sup_done = 1;
    if (!m)
        st->sup_err = "no answer";
    else if (!(m->h.len >= 4 && (*(const uint32_t *)(const void *)m->payload & IPC_PONG_MIGRATED)))
        st->sup_err = "database schema not migrated yet";
    ready_finish(st);
}

static void ready_abort(struct rq *rq)
{
    struct ready *st = rq->state;
    if (st->q)
        db_cancel(st->q);
    if (st->ping)
        sup_cancel(st->ping);
}

void h_readyz(struct rq *rq)
{
    struct ready *st = h2o_mem_alloc_pool(&rq->req->pool, sizeof *st);
    memset(st, 0, sizeof *st);
    st->rq = rq;
    rq->state = st;
    rq->on_abort = ready_abort;
    st->q = db_query("SELECT 1", 0, NULL, on_db, st);
    if (!st->q) {
        st->db_done = 1;
        snprintf(st->db_err, sizeof st->db_err, "out of memory");
    }
    st->ping = sup_request(IPC_PING, NULL, 0, 1000, on_pong, st);
    if (!st->ping) {
        st->sup_done = 1;
        st->sup_err = "link down";
    }
    ready_finish(st);
}

void h_metrics(struct rq *rq)
{
    if (metrics_apart && !http_on_metrics_listener(rq)) {
        http_error(rq, 404, "not_found", "no such route", NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    metrics_render(shm, &b);
    http_send(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.buf, b.len);
    sbuf_free(&b);
}

void h_metrics_listener(struct rq *rq)
{
    h2o_iovec_t p = rq->req->path_normalized, m = rq->req->method;
    int metrics = h2o_memis(p.base, p.len, H2O_STRLIT("/metrics"));
    if (!metrics && !h2o_memis(p.base, p.len, H2O_STRLIT("/healthz"))) {
        http_error(rq, 404, NULL, "no such route", NULL);
        return;
    }
    if (!h2o_memis(m.base, m.len, H2O_STRLIT("GET")) && !h2o_memis(m.base, m.len, H2O_STRLIT("HEAD"))) {
        http_add_header(rq, "allow", "GET, HEAD");
        http_error(rq, 405, NULL, "method not allowed for this path", NULL);
        return;
    }
    if (metrics)
        h_metrics(rq);
    else
        h_healthz(rq);
}
