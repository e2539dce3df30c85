/* The worker's HTTP side: h2o set-up on the inherited listen socket, the
 * connection table, the router, and the response helpers every handler uses. */
#ifndef WAPI_WORKER_HTTP_H
#define WAPI_WORKER_HTTP_H
#include <h2o.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"

/* One per request, in the request's pool; freed when h2o is done with it. */
struct conn;

/* Who made the request, filled by the auth hook before a ROUTE_AUTH handler runs. */
struct principal {
    int authenticated;
    int via_api_key; /* else a session cookie */
    int is_admin;
    char user_id[64];
    char api_key_id[64];
};

struct rq {
    h2o_req_t *req;
    uint64_t start_us;
    enum metrics_route route;
    char id[72];
    int responded;
    /* Called if the request goes away (client gone) before a response; a
     * handler with pending work cancels it here so no callback touches rq. */
    void (*on_abort)(struct rq *);
    void *state;
    struct conn *conn; /* ours, for drain bookkeeping; NULL if unknown */
    struct principal principal;
};

enum http_method { M_GET = 1, M_HEAD = 2, M_POST = 4, M_PUT = 8, M_PATCH = 16, M_DELETE = 32, M_OPTIONS = 64 };

typedef void (*http_handler)(struct rq *rq);

#define ROUTE_AUTH 1 /* needs a session cookie or an API key (see http_set_auth) */

struct route {
    const char *path; /* exact, or a prefix when it ends with '/' and prefix is set */
    int prefix;
    int methods;
    http_handler handler;
    int flags;
};

/* The auth hook: checks rq, then either calls next(rq) with rq->principal
 * filled, or answers 401/403 itself. May complete asynchronously. */
typedef void (*http_auth_fn)(struct rq *rq, http_handler next);
void http_set_auth(http_auth_fn fn);

int http_init(h2o_loop_t *loop, const struct wapi_config *cfg, struct metrics_slot *m, const struct route *routes);
void http_start_accepting(int listen_fd);
/* The metrics listener (metrics.listen): handler answers every request on it,
 * instead of the route table. -1 when listen_fd is not a stream socket. */
int http_start_metrics_listener(int listen_fd, http_handler handler);
/* Whether rq came in on the metrics listener. */
int http_on_metrics_listener(const struct rq *rq);
/* Graceful drain: stop accepting, finish what is in flight, close idle
 * connections. Returns 1 once nothing is left. */
void http_drain(void);
int http_drained(void);
void http_tick(void); /* every 100 ms */
void http_flush_access_log(void);
unsigned http_connections(void);

/* Responses (copy the body into the request's pool). */
void http_send(struct rq *rq, int status, const char *content_type, const char *body, size_t len);
void http_json(struct rq *rq, int status, const char *json, size_t len);
/* {"error":{"code":...,"message":...,"field":...}}; field may be NULL. */
void http_error(struct rq *rq, int status, const char *code, const char *message, const char *field);
void http_add_header(struct rq *rq, const char *name, const char *value);
uint64_t http_now_us(void);

#endif
