/* The worker's HTTP side: h2o set-up on the inherited listen socket, the
 * connection table, the router, and the response helpers every handler uses. */
#ifndef WAPI_WORKER_HTTP_H
#define WAPI_WORKER_HTTP_H
#include <h2o.h>
#include <stdint.h>

#include "common/authz.h"
#include "common/config.h"
#include "common/metrics.h"

/* One per request, in the request's pool; freed when h2o is done with it. */
struct conn;

/* Who made the request, filled by the auth hook before a route that needs
 * credentials runs. */
struct principal {
    int authenticated;
    int via_api_key; /* else a session cookie */
    enum role role;  /* the user's role now (for a key: its owner's) */
    perm_mask perms; /* what this request may do: the role's, or a key's scopes within it */
    char user_id[64];
    char api_key_id[64];
};

#define HTTP_MAX_PARAMS 4

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
    const struct route *matched;         /* the route being served; NULL when none */
    h2o_iovec_t params[HTTP_MAX_PARAMS]; /* the {name} segments of its path, in order */
};

enum http_method {
    M_GET = 1,
    M_HEAD = 2,
    M_POST = 4,
    M_PUT = 8,
    M_PATCH = 16,
    M_DELETE = 32,
    M_OPTIONS = 64
};

typedef void (*http_handler)(struct rq *rq);

#define ROUTE_SESSION_ONLY 1 /* refused to API keys: what it creates outlives any key */
#define ROUTE_SIGNED_LINK 2  /* a ?sig= in the query replaces credentials; the handler checks it */

/* Room for the multipart framing around a file of media.max_upload_bytes. */
#define HTTP_MEDIA_FORM_SLACK 65536

/* One line of the router table. The path is literal segments, "{name}" for
 * one segment of any value, and a last segment "*" for any rest. The most
 * specific path wins (segment by segment: literal, then {name}, then *); a
 * method that path does not take is 405. Every route names the permission it
 * needs: a table with a route that names none does not start. */
struct route {
    int methods;
    const char *path;
    enum perm perm;
    http_handler handler;
    int flags;
};

/* The auth hook: checks rq's credentials, then either calls next(rq) with
 * rq->principal filled, or answers 401/403 itself. May complete
 * asynchronously. The router then checks the route's permission. */
typedef void (*http_auth_fn)(struct rq *rq, http_handler next);
void http_set_auth(http_auth_fn fn);

/* 0 when every route names a permission and a handler and has a
 * well-formed path; else -1 with the first fault in err. */
int http_routes_check(const struct route *routes, char *err, size_t errlen);
/* A {name} segment of the matched route's path as a NUL-terminated copy in
 * the request's memory; NULL when there is no such parameter. */
char *http_param(struct rq *rq, int i);
/* Fails with -1 (and logs why) when http_routes_check() refuses routes. */
int http_init(h2o_loop_t *loop, const struct wapi_config *cfg, struct metrics_slot *m,
              const struct route *routes);
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
/* s[0..n) is 1..max characters of [A-Za-z0-9._:-] (request ids, resource ids). */
int http_id_ok(const char *s, size_t n, size_t max);
void http_tick(void); /* every 100 ms */
void http_flush_access_log(void);
unsigned http_connections(void);
/* This worker's metrics slot. */
struct metrics_slot *http_metrics(void);

struct jsonw;

/* Responses (copy the body into the request's pool). */
void http_send(struct rq *rq, int status, const char *content_type, const char *body, size_t len);
void http_json(struct rq *rq, int status, const char *json, size_t len);
/* Finishes w and sends its document, or a 500 when it could not be
 * written; the caller still frees w's sbuf. */
void http_jsonw(struct rq *rq, int status, struct jsonw *w);
/* {"error":{"code":...,"message":...,"field":...}}; field may be NULL. */
void http_error(struct rq *rq, int status, const char *code, const char *message, const char *field);
void http_add_header(struct rq *rq, const char *name, const char *value);
/* A response whose body gen produces: h2o calls gen->proceed for more, the
 * generator answers with h2o_send (FINAL at the end). length is the
 * Content-Length (SIZE_MAX: none). Returns 0 when the body is to be sent, 1
 * for a HEAD request (the headers went out, nothing more to do), -1 when rq
 * was answered already. */
int http_start_body(struct rq *rq, int status, const char *content_type, size_t length, h2o_generator_t *gen);
/* A response without a body or a length (304). */
void http_send_empty(struct rq *rq, int status);
uint64_t http_now_us(void);

#endif
