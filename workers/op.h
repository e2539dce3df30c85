/* One request's database work: an op lives in the request's memory, starts
 * queries (and requests to the supervisor) whose callbacks get it back, and
 * cancels them when the client goes away first. Handler state structs put
 * struct op_base first. */
#ifndef WAPI_WORKER_OP_H
#define WAPI_WORKER_OP_H
#include <stddef.h>

#include "db.h"
#include "http.h"
#include "sup_link.h"

struct op_base {
    struct rq *rq;
    struct pgq *q; /* in flight, or NULL */
    uint32_t sup;  /* a supervisor request in flight (op_ask), or 0 */
    sup_reply_cb sup_cb;
    /* Optional: more to undo when the client goes away first (a place in a
     * queue, a temp file, a secret to wipe); runs after the query or the
     * supervisor request (op_ask) is cancelled. */
    void (*also_abort)(struct op_base *o);
    /* Optional: answers a query that could not start (status 500) or
     * failed (503, err says why) in another error shape than the REST
     * API's (Better Auth's, for its routes). */
    void (*answer_error)(struct op_base *o, int status, const char *err);
};

/* A zeroed op of size bytes (struct op_base first) in rq's pool; rq->state
 * points at it. */
void *op_alloc(struct rq *rq, size_t size);
/* Queues sql with params (copied); cb gets the op as ctx. On
 * failure answers 500 itself and returns -1. */
int op_run(void *op, const char *sql, int n, const char *const *params, db_cb cb);
/* Asks the supervisor (with the descriptor fd passed along, -1 for none);
 * cb gets the op and the answer (NULL: none in time). A client that goes
 * away cancels it. 0, or -1 after answering 503. */
int op_ask(void *op, uint32_t type, const void *payload, size_t len, int fd, uint32_t timeout_ms,
           sup_reply_cb cb);
/* The op waits for something other than a query or op_ask (a queue): a
 * client that goes away runs also_abort. */
void op_wait(void *op);
/* First thing in a callback: the query is over. Answers 503 and returns 0
 * when there is no result. */
int op_done(void *op, const PGresult *res, const char *err);

#endif
