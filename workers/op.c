#include "op.h"

#include <string.h>

#include "rest.h"

static void op_abort(struct rq *rq)
{
    struct op_base *o = rq->state;
    if (o->q)
        db_cancel(o->q);
    o->q = NULL;
    if (o->sup)
        sup_cancel(o->sup);
    o->sup = 0;
    if (o->also_abort)
        o->also_abort(o);
}

void *op_alloc(struct rq *rq, size_t size)
{
    struct op_base *o = h2o_mem_alloc_pool(&rq->req->pool, size);
    memset(o, 0, size);
    o->rq = rq;
    rq->state = o;
    return o;
}

int op_run(void *op, const char *sql, int n, const char *const *params, db_cb cb)
{
    struct op_base *o = op;
    o->rq->on_abort = op_abort;
    o->q = db_query(sql, n, params, cb, o);
    if (!o->q) {
        o->rq->on_abort = NULL;
        if (o->answer_error)
            o->answer_error(o, 500, "out of memory");
        else
            http_error(o->rq, 500, NULL, "out of memory", NULL);
        return -1;
    }
    return 0;
}

static void on_answer(void *ctx, const struct ipc_msg *m)
{
    struct op_base *o = ctx;
    o->sup = 0;
    o->sup_cb(o, m);
}

int op_ask(void *op, uint32_t type, const void *payload, size_t len, int fd, uint32_t timeout_ms,
           sup_reply_cb cb)
{
    struct op_base *o = op;
    o->rq->on_abort = op_abort;
    o->sup_cb = cb;
    o->sup = sup_request_fd(type, payload, len, fd, timeout_ms, on_answer, o);
    if (!o->sup) {
        o->rq->on_abort = NULL;
        http_error(o->rq, 503, "supervisor_unavailable", "the supervisor link is down", NULL);
        return -1;
    }
    return 0;
}

void op_wait(void *op)
{
    struct op_base *o = op;
    o->rq->on_abort = op_abort;
}

int op_done(void *op, const PGresult *res, const char *err)
{
    struct op_base *o = op;
    o->q = NULL;
    o->rq->on_abort = NULL;
    if (!res && o->answer_error)
        o->answer_error(o, 503, err);
    else if (!res)
        rest_db_error(o->rq, err);
    return res != NULL;
}
