/* The worker's HTTP layer on h2o: the access log, the error filter over
 * h2o's own pages, request entry (ids, limits, auth), the router and the
 * connections. One file (~1,000 lines) because all five share the life of
 * struct rq, from accept to the access-log line; the route table itself is
 * in routes.c. */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"

struct conn {
    struct conn *prev, *next;
    h2o_socket_t *sock; /* NULL once closed; the struct lives while requests do */
    int fd;
    unsigned active;      /* requests of this connection not yet finished */
    size_t bytes_at_idle; /* bytes read when the last request finished */
};

/* A listening socket and the hosts its connections are served by: the main
 * one (the route table), and the metrics one when metrics.listen is set. */
struct listener {
    h2o_socket_t *sock; /* NULL when not started, or closed by the drain */
    int fd;
    h2o_accept_ctx_t accept_ctx;
    h2o_hostconf_t *hosts[2]; /* one host each: no Host header reaches the other's */
};

static struct {
    h2o_loop_t *loop;
    const struct wapi_config *cfg;
    struct metrics_slot *m;
    const struct route *routes;
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    struct listener main_l, metrics_l;
    http_handler metrics_handler; /* every request on the metrics listener */
    int accept_paused;
    uint64_t accept_resume_ms;
    struct conn conns; /* list head */
    unsigned nconn;
    unsigned inflight;
    int draining;
    uint64_t drain_started_ms;
    struct sbuf alog;
    http_auth_fn auth;
} H;

void http_set_auth(http_auth_fn fn)
{
    H.auth = fn;
}

uint64_t http_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

unsigned http_connections(void)
{
    return H.nconn;
}

struct metrics_slot *http_metrics(void)
{
    return H.m;
}

/* ---- access log: lines batched, flushed in whole lines below PIPE_BUF so
 * lines from several workers never interleave on a pipe. */

void http_flush_access_log(void)
{
    size_t off = 0;
    while (off < H.alog.len) {
        size_t n = H.alog.len - off;
        if (n > 4000) {
            n = 4000;
            while (n > 0 && H.alog.buf[off + n - 1] != '\n')
                n--;
            if (n == 0)
                n = H.alog.len - off;
        }
        log_write_raw(H.alog.buf + off, n);
        off += n;
    }
    sbuf_reset(&H.alog);
}

static int method_bit(h2o_iovec_t m)
{
    static const struct {
        const char *s;
        size_t n;
        int bit;
    } t[] = {{"GET", 3, M_GET},     {"HEAD", 4, M_HEAD},     {"POST", 4, M_POST},      {"PUT", 3, M_PUT},
             {"PATCH", 5, M_PATCH}, {"DELETE", 6, M_DELETE}, {"OPTIONS", 7, M_OPTIONS}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (m.len == t[i].n && memcmp(m.base, t[i].s, m.len) == 0)
            return t[i].bit;
    return 0;
}

/* The timestamp's seconds part changes once a second: format it once. */
static size_t access_ts(char *out)
{
    static time_t cached_sec = -1;
    static char prefix[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    long ms = ts.tv_nsec / 1000000;
    out[n++] = '.';
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    return n;
}

static void add_uint(struct sbuf *b, unsigned long long v)
{
    char tmp[24];
    int i = sizeof tmp;
    do
        tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    sbuf_add(b, tmp + i, sizeof tmp - (size_t)i);
}

/* The one JSON document not written through jsonw: a line per request with
 * fixed keys, where the generator's per-token work cost ~400 ns of a ~500 ns
 * line (~9% of /healthz throughput in make bench). Its free-text values go
 * through the tree's one escaper; the others are digits or validated ids. */
static void access_log(struct rq *rq)
{
    static char pidbuf[16];
    static size_t pidlen;
    h2o_req_t *req = rq->req;
    if (!log_enabled(LOG_INFO))
        return;
    if (!pidlen)
        pidlen = (size_t)snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    char ts[40];
    size_t tsl = access_ts(ts);
    uint64_t us = http_now_us() - rq->start_us;
    struct sbuf *b = &H.alog;
    sbuf_adds(b, "{\"ts\":\"");
    sbuf_add(b, ts, tsl);
    sbuf_adds(b, "\",\"level\":\"info\",\"proc\":\"worker\",\"pid\":");
    sbuf_add(b, pidbuf, pidlen);
    sbuf_adds(b, ",\"msg\":\"request\",\"request_id\":\"");
    sbuf_adds(b, rq->id); /* validated: [A-Za-z0-9._:-] only */
    sbuf_adds(b, "\",\"method\":");
    sbuf_add_json_str(b, req->method.base, req->method.len < 16 ? req->method.len : 16);
    sbuf_adds(b, ",\"path\":");
    sbuf_add_json_str(b, req->path_normalized.base,
                      req->path_normalized.len < 512 ? req->path_normalized.len : 512);
    sbuf_adds(b, ",\"status\":");
    add_uint(b, (unsigned)(req->res.status > 0 ? req->res.status : 0));
    sbuf_adds(b, ",\"bytes\":");
    add_uint(b, req->bytes_sent);
    sbuf_adds(b, ",\"duration_ms\":");
    add_uint(b, us / 1000);
    sbuf_addc(b, '.');
    char frac[3] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10)};
    sbuf_add(b, frac, 3);
    sbuf_adds(b, "}\n");
    if (H.alog.len > 3500)
        http_flush_access_log();
}

static void conn_release(struct conn *c)
{
    if (--c->active == 0 && !c->sock)
        free(c);
}

static void rq_dispose(void *p)
{
    struct rq *rq = p;
    struct conn *c = rq->conn;
    if (c) {
        if (c->sock)
            c->bytes_at_idle = c->sock->bytes_read;
        conn_release(c);
    }
    if (!rq->responded && rq->on_abort)
        rq->on_abort(rq);
    int status = rq->req->res.status ? rq->req->res.status : 499;
    metrics_observe_request(H.m, rq->route, status, http_now_us() - rq->start_us);
    access_log(rq);
    H.inflight--;
}

static void on_conn_close(void *data);

/* Creates the request's rq on first use (our handler, or the error filter
 * when h2o answers on its own, e.g. 413). */
static struct rq *rq_of(h2o_req_t *req, int create);

static const char *status_code(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 409:
        return "conflict";
    case 410:
        return "gone";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 416:
        return "range_not_satisfiable";
    case 417:
        return "expectation_failed";
    case 422:
        return "unprocessable_entity";
    case 429:
        return "rate_limited";
    case 431:
        return "headers_too_large";
    case 500:
        return "internal_error";
    case 502:
        return "bad_gateway";
    case 503:
        return "unavailable";
    case 507:
        return "insufficient_storage";
    default:
        return status >= 500 ? "server_error" : "client_error";
    }
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

/* h2o keeps the pointers it is given: copy into the request's pool, since
 * callers build values in stack buffers. */
void http_add_header(struct rq *rq, const char *name, const char *value)
{
    h2o_iovec_t n = h2o_strdup(&rq->req->pool, name, SIZE_MAX),
                v = h2o_strdup(&rq->req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&rq->req->pool, &rq->req->res.headers, n.base, n.len, 0, NULL, v.base, v.len);
}

static h2o_generator_t generator = {NULL, NULL};

/* On every response: pages never run inline script, are never framed, and
 * never have their type sniffed. */
static void add_security_headers(h2o_req_t *req)
{
    static const char csp[] =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'";
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                          H2O_STRLIT(csp));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                          H2O_STRLIT("strict-origin-when-cross-origin"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL,
                          H2O_STRLIT("DENY"));
}

/* The status line and headers, with a body to come from gen (h2o asks it
 * for more through gen->proceed); length SIZE_MAX when not known. */
static void start(struct rq *rq, int status, const char *content_type, size_t length, h2o_generator_t *gen)
{
    h2o_req_t *req = rq->req;
    rq->responded = 1;
    rq->on_abort = NULL;
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = length;
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    add_security_headers(req);
    h2o_start_response(req, gen);
}

void http_send(struct rq *rq, int status, const char *content_type, const char *body, size_t len)
{
    if (rq->responded)
        return;
    start(rq, status, content_type, len, &generator);
    h2o_req_t *req = rq->req;
    if (req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

int http_start_body(struct rq *rq, int status, const char *content_type, size_t length, h2o_generator_t *gen)
{
    if (rq->responded)
        return -1;
    start(rq, status, content_type, length, gen);
    if (h2o_memis(rq->req->method.base, rq->req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(rq->req, NULL, 0, H2O_SEND_STATE_FINAL); /* the length is in the headers; no body */
        return 1;
    }
    return 0;
}

void http_send_empty(struct rq *rq, int status)
{
    if (rq->responded)
        return;
    start(rq, status, NULL, SIZE_MAX, &generator);
    h2o_send(rq->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

void http_json(struct rq *rq, int status, const char *json, size_t len)
{
    http_send(rq, status, "application/json; charset=utf-8", json, len);
}

static void error_body(struct sbuf *b, int status, const char *code, const char *message, const char *field)
{
    jw_error_body(b, code ? code : status_code(status), message, field);
}

void http_error(struct rq *rq, int status, const char *code, const char *message, const char *field)
{
    struct sbuf b;
    sbuf_init(&b);
    error_body(&b, status, code, message, field);
    http_json(rq, status, b.buf ? b.buf : "", b.len);
    sbuf_free(&b);
}

void http_jsonw(struct rq *rq, int status, struct jsonw *w)
{
    if (jw_finish(w) == 0)
        http_json(rq, status, w->out->buf, w->out->len);
    else
        http_error(rq, 500, NULL, "out of memory", NULL);
}

/* ---- error filter: h2o's own error pages (413 for a body over the limit,
 * 400, 417, ...) become JSON in our shape. */

struct jerr_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
};

static void jerr_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *inbufs, size_t inbufcnt,
                         h2o_send_state_t state)
{
    (void)inbufs, (void)inbufcnt;
    struct jerr_ostream *s = (struct jerr_ostream *)self;
    h2o_iovec_t out = s->body;
    size_t n = 0;
    if (!s->sent && !(req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0))
        n = 1;
    s->sent = 1;
    h2o_ostream_send_next(&s->super, req, &out, n, state);
}

/* POST /api/media, whose 413 names the media limit. */
static int is_media_upload(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) &&
           h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/api/media"));
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    struct rq *rq = rq_of(req, 1);
    if (rq && !rq->responded && req->res.status >= 400) {
        /* Not one of ours (ours set rq->responded): replace the body. */
        rq->responded = 1;
        struct sbuf b;
        sbuf_init(&b);
        char msg[128];
        snprintf(msg, sizeof msg, "%s", reason_of(req->res.status));
        const char *field = NULL;
        if (req->res.status == 413 && is_media_upload(req)) {
            snprintf(msg, sizeof msg, "the file is larger than media.max_upload_bytes (%d bytes)",
                     H.cfg->media.max_upload_bytes);
            field = "file";
            metrics_add(&H.m->media_refused_too_large_total, 1);
        } else if (req->res.status == 413) {
            /* h2o's limit is the media one; this path's own is http.max_body_size. */
            snprintf(msg, sizeof msg, "request body larger than %d bytes", H.cfg->http.max_body_size);
        }
        error_body(&b, req->res.status, NULL, msg, field);
        ssize_t i;
        while ((i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) != -1)
            h2o_delete_header(&req->res.headers, i);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json; charset=utf-8"));
        struct jerr_ostream *s = (void *)h2o_add_ostream(req, sizeof *s, slot);
        s->body = h2o_strdup(&req->pool, b.buf, b.len);
        s->sent = 0;
        req->res.content_length = s->body.len;
        add_security_headers(req);
        s->super.do_send = jerr_do_send;
        sbuf_free(&b);
        slot = &s->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- request entry */

int http_id_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

static void new_request_id(char *out)
{
    /* 16 random bytes from a per-process buffer refilled by getrandom(). */
    static unsigned char pool[4096];
    static size_t used = sizeof pool;
    if (used + 16 > sizeof pool) {
        if (getrandom(pool, sizeof pool, 0) != (ssize_t)sizeof pool) {
            for (size_t i = 0; i < sizeof pool; i++)
                pool[i] = (unsigned char)rand();
        }
        used = 0;
    }
    hex_encode(out, pool + used, 16, 0);
    used += 16;
}

/* rq is located through the first shared allocation of the pool: h2o gives
 * no per-request user pointer, so we keep it in a header we control. */
static struct rq *rq_of(h2o_req_t *req, int create)
{
    /* We store the rq pointer in the request's "env" vector slot 0 as a marker. */
    for (size_t i = 0; i + 1 < req->env.size; i += 2)
        if (req->env.entries[i].len == 5 && memcmp(req->env.entries[i].base, "wapi#", 5) == 0)
            return (struct rq *)(void *)req->env.entries[i + 1].base;
    if (!create)
        return NULL;
    struct rq *rq = h2o_mem_alloc_shared(&req->pool, sizeof *rq, rq_dispose);
    memset(rq, 0, sizeof *rq);
    rq->req = req;
    rq->start_us = http_now_us();
    rq->route = metrics_route_of(req->path_normalized.base, req->path_normalized.len);
    h2o_vector_reserve(&req->pool, &req->env, req->env.size + 2);
    req->env.entries[req->env.size++] = h2o_iovec_init("wapi#", 5);
    req->env.entries[req->env.size++] = h2o_iovec_init((char *)rq, 0);
    H.inflight++;
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock && sock->on_close.cb == on_conn_close) {
        rq->conn = sock->on_close.data;
        rq->conn->active++;
    }
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0 && http_id_ok(req->headers.entries[i].value.base, req->headers.entries[i].value.len, 64))
        snprintf(rq->id, sizeof rq->id, "%.*s", (int)req->headers.entries[i].value.len,
                 req->headers.entries[i].value.base);
    else
        new_request_id(rq->id);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, rq->id,
                          strlen(rq->id));
    return rq;
}

/* ---- the router */

#define ROUTE_MAX_SEGS 8
#define PARAM_MAX_LEN 256

/* How specifically pattern matches path: per segment 3 for a literal, 2 for
 * {name}, 1 for "*" (which ends it), base 4, first segment most
 * significant; -1 when it does not match. The {name} segments go to params
 * (HTTP_MAX_PARAMS, checked at start). */
static long route_score(const char *pat, const char *path, size_t n, h2o_iovec_t *params)
{
    long score = 0;
    int depth = 0, np = 0;
    const char *pe = path + n;
    if (n == 0 || *path != '/' || *pat != '/')
        return -1;
    pat++, path++;
    if (!*pat) /* "/" itself */
        return path == pe ? 0 : -1;
    for (;;) {
        const char *ps = strchr(pat, '/');
        size_t pl = ps ? (size_t)(ps - pat) : strlen(pat);
        if (pl == 1 && *pat == '*') {
            score = score * 4 + 1;
            depth++;
            break;
        }
        if (path > pe)
            return -1;
        const char *ss = memchr(path, '/', (size_t)(pe - path));
        size_t sl = ss ? (size_t)(ss - path) : (size_t)(pe - path);
        if (pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}') {
            if (sl == 0 || sl > PARAM_MAX_LEN)
                return -1;
            params[np++] = h2o_iovec_init(path, sl);
            score = score * 4 + 2;
        } else {
            if (sl != pl || memcmp(path, pat, pl) != 0)
                return -1;
            score = score * 4 + 3;
        }
        depth++;
        path += sl;
        if (!ps) {
            if (path != pe)
                return -1;
            break;
        }
        if (path == pe)
            return -1; /* the pattern goes on */
        pat = ps + 1;
        path++;
    }
    while (depth++ < ROUTE_MAX_SEGS)
        score *= 4;
    return score;
}

/* The route for path and method, its {name} segments in params; else NULL
 * with *allowed the methods the most specific path takes (0: no such path). */
static const struct route *route_find(const char *path, size_t n, int mbit, int *allowed, h2o_iovec_t *params)
{
    const struct route *best = NULL;
    long best_score = -1;
    *allowed = 0;
    for (const struct route *r = H.routes; r->path; r++) {
        h2o_iovec_t got[HTTP_MAX_PARAMS];
        long sc = route_score(r->path, path, n, got);
        if (sc < 0 || sc < best_score)
            continue;
        if (sc > best_score) {
            best_score = sc;
            best = NULL;
            *allowed = 0;
        }
        *allowed |= r->methods;
        if ((r->methods & mbit) && !best) {
            best = r;
            memcpy(params, got, sizeof got);
        }
    }
    return best;
}

char *http_param(struct rq *rq, int i)
{
    if (i < 0 || i >= HTTP_MAX_PARAMS || !rq->params[i].base)
        return NULL;
    char *s = h2o_mem_alloc_pool(&rq->req->pool, rq->params[i].len + 1);
    memcpy(s, rq->params[i].base, rq->params[i].len);
    s[rq->params[i].len] = '\0';
    return s;
}

/* After the auth hook: the route's permission, or 403 and nothing runs. */
static void authorized(struct rq *rq)
{
    const struct route *r = rq->matched;
    const struct principal *pr = &rq->principal;
    if ((r->flags & ROUTE_SESSION_ONLY) && pr->via_api_key) {
        http_error(rq, 403, "session_required", "this needs a signed-in session; API keys cannot do it",
                   NULL);
        return;
    }
    if (r->perm != PERM_SIGNED_IN && !(pr->perms & PERM_BIT(r->perm))) {
        char msg[160];
        const char *need = authz_perm_name(r->perm);
        if (pr->via_api_key && (authz_role_perms(pr->role) & PERM_BIT(r->perm)))
            snprintf(msg, sizeof msg, "this API key does not have the %s permission", need);
        else
            snprintf(msg, sizeof msg, "the %s role does not have the %s permission",
                     authz_role_name(pr->role), need);
        http_error(rq, 403, "forbidden", msg, NULL);
        return;
    }
    r->handler(rq);
}

int http_routes_check(const struct route *routes, char *err, size_t errlen)
{
    for (const struct route *r = routes; r->path; r++) {
        const char *why = NULL;
        if (r->perm <= PERM_UNSET || r->perm >= PERM_COUNT)
            why = "names no permission";
        else if (!r->handler || !r->methods)
            why = "has no handler or no method";
        else if (r->path[0] != '/')
            why = "does not start with /";
        else {
            int segs = 0, params = 0;
            for (const char *s = r->path + 1; *s && !why;) {
                const char *e = strchr(s, '/');
                size_t l = e ? (size_t)(e - s) : strlen(s);
                if (l == 0)
                    why = "has an empty segment";
                else if (l == 1 && *s == '*' && e)
                    why = "has * before its last segment";
                else if (*s == '{' && (l < 3 || s[l - 1] != '}'))
                    why = "has a malformed {name}";
                else if (*s == '{' && ++params > HTTP_MAX_PARAMS)
                    why = "has too many {name} segments";
                else if (++segs > ROUTE_MAX_SEGS)
                    why = "is too deep";
                s = e ? e + 1 : s + l;
            }
        }
        for (const struct route *q = routes; !why && q < r; q++)
            if (!strcmp(q->path, r->path) && (q->methods & r->methods))
                why = "repeats a method of an earlier route";
        if (why) {
            snprintf(err, errlen, "route %s %s", r->path, why);
            return -1;
        }
    }
    return 0;
}

/* Whether the query string has name= among its parameters. */
static int has_query_param(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    size_t nl = strlen(name);
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t n = (size_t)((amp ? amp : end) - q);
        if (n > nl && q[nl] == '=' && !memcmp(q, name, nl))
            return 1;
        q += n + 1;
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct rq *rq = rq_of(req, 1);
    size_t hdr = req->path.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; i++)
        hdr += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (hdr > (size_t)H.cfg->http.max_header_size) {
        req->http1_is_persistent = 0;
        http_error(rq, 431, NULL, "request headers too large", NULL);
        return 0;
    }
    /* h2o's own limit is raised for uploads (http_init): every other path
     * keeps http.max_body_size, checked first (before auth or any work), on
     * the declared length as on what arrived. h2o 2.2.5 has read the body by
     * now: it has one limit for every path and no hook between the headers
     * and the body (see README, Limits). */
    ssize_t cli = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_LENGTH, -1);
    size_t declared =
        cli >= 0 ? h2o_strtosize(req->headers.entries[cli].value.base, req->headers.entries[cli].value.len)
                 : 0;
    if (declared == SIZE_MAX)
        declared = 0; /* not a number: h2o has refused it already */
    if ((req->entity.len > (size_t)H.cfg->http.max_body_size ||
         declared > (size_t)H.cfg->http.max_body_size) &&
        !is_media_upload(req)) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %d bytes", H.cfg->http.max_body_size);
        http_error(rq, 413, "payload_too_large", msg, NULL);
        return 0;
    }
    int mbit = method_bit(req->method);
    int allowed = 0;
    const struct route *match =
        route_find(req->path_normalized.base, req->path_normalized.len, mbit, &allowed, rq->params);
    if (match) {
        rq->matched = match;
        /* A signed link stands for credentials: the handler checks it (403
         * when it does not hold), nothing else is looked at. */
        if (match->perm == PERM_PUBLIC ||
            ((match->flags & ROUTE_SIGNED_LINK) && has_query_param(req, "sig"))) {
            match->handler(rq);
            return 0;
        }
        if (!H.auth) {
            http_error(rq, 401, "unauthorized", "authentication required", NULL);
            return 0;
        }
        H.auth(rq, authorized);
        return 0;
    }
    if (allowed) {
        char allow[64] = "";
        static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
        for (int b = 0; b < 7; b++)
            if (allowed & (1 << b))
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "",
                         names[b]);
        http_add_header(rq, "allow", allow);
        http_error(rq, 405, NULL, "method not allowed for this path", NULL);
        return 0;
    }
    http_error(rq, 404, NULL, "no such route", NULL);
    return 0;
}

/* The metrics listener's requests never see the route table. */
static int on_metrics_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct rq *rq = rq_of(req, 1);
    if (H.metrics_handler)
        H.metrics_handler(rq);
    else
        http_error(rq, 404, NULL, "no such route", NULL);
    return 0;
}

int http_on_metrics_listener(const struct rq *rq)
{
    return rq->req->conn->hosts == H.metrics_l.accept_ctx.hosts;
}

/* ---- connections */

static void on_accept(h2o_socket_t *listener, const char *err);

/* Both listeners pause and resume together: they share max_connections. */
static void pause_accept(uint64_t resume_ms)
{
    struct listener *ls[] = {&H.main_l, &H.metrics_l};
    for (size_t i = 0; i < 2; i++)
        if (ls[i]->sock)
            h2o_socket_read_stop(ls[i]->sock);
    H.accept_paused = 1;
    H.accept_resume_ms = resume_ms;
}

static void resume_accept(void)
{
    if (!H.accept_paused || H.draining)
        return;
    H.accept_paused = 0;
    struct listener *ls[] = {&H.main_l, &H.metrics_l};
    for (size_t i = 0; i < 2; i++)
        if (ls[i]->sock)
            h2o_socket_read_start(ls[i]->sock, on_accept);
}

static void on_conn_close(void *data)
{
    struct conn *c = data;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->sock = NULL;
    if (c->active == 0)
        free(c);
    H.nconn--;
    metrics_set(&H.m->connections, H.nconn);
    if (H.accept_paused && H.accept_resume_ms == 0)
        resume_accept();
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    (void)err;
    struct listener *l = listener->data;
    for (int i = 0; i < 32; i++) {
        if (H.nconn >= (unsigned)H.cfg->http.max_connections) {
            pause_accept(0);
            return;
        }
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: back off instead of spinning on a ready listener. */
                log_warn("accept failed; pausing", LF_S("error", strerror(errno)));
                pause_accept(h2o_now(H.loop) + 100);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        h2o_socket_t *sock = h2o_evloop_socket_create(H.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        c->sock = sock;
        c->fd = fd;
        c->next = H.conns.next;
        c->prev = &H.conns;
        H.conns.next->prev = c;
        H.conns.next = c;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        H.nconn++;
        metrics_add(&H.m->connections_total, 1);
        metrics_set(&H.m->connections, H.nconn);
        h2o_accept(&l->accept_ctx, sock);
    }
}

static void start_listener(struct listener *l, int listen_fd)
{
    l->fd = listen_fd;
    l->sock = h2o_evloop_socket_create(H.loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    if (!H.accept_paused)
        h2o_socket_read_start(l->sock, on_accept);
}

void http_start_accepting(int listen_fd)
{
    start_listener(&H.main_l, listen_fd);
}

int http_start_metrics_listener(int listen_fd, http_handler handler)
{
    int type;
    socklen_t len = sizeof type;
    if (getsockopt(listen_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return -1;
    H.metrics_handler = handler;
    start_listener(&H.metrics_l, listen_fd);
    return 0;
}

void http_drain(void)
{
    if (H.draining)
        return;
    H.draining = 1;
    H.drain_started_ms = h2o_now(H.loop);
    struct listener *ls[] = {&H.main_l, &H.metrics_l};
    for (size_t i = 0; i < 2; i++) {
        if (ls[i]->sock) {
            h2o_socket_read_stop(ls[i]->sock);
            h2o_socket_close(ls[i]->sock); /* closes our copy of the listen fd */
            ls[i]->sock = NULL;
        }
    }
    /* HTTP/1 answers the next request with Connection: close; HTTP/2 sends GOAWAY. */
    h2o_context_request_shutdown(&H.ctx);
}

int http_drained(void)
{
    return H.draining && H.nconn == 0;
}

void http_tick(void)
{
    uint64_t now = h2o_now(H.loop);
    if (H.accept_paused && H.accept_resume_ms && now >= H.accept_resume_ms) {
        H.accept_resume_ms = 0;
        resume_accept();
    }
    if (!H.draining)
        return;
    /* A connection is idle when no request of it is running and the client
     * sent nothing since its last response: half-close it so h2o reads EOF
     * and closes it cleanly. One mid-request (a slow upload) is left alone. */
    if (now - H.drain_started_ms < 200)
        return;
    for (struct conn *c = H.conns.next; c != &H.conns; c = c->next)
        if (c->active == 0 && c->sock->bytes_read == c->bytes_at_idle)
            shutdown(c->fd, SHUT_RD);
}

int http_init(h2o_loop_t *loop, const struct wapi_config *cfg, struct metrics_slot *m,
              const struct route *routes)
{
    H.loop = loop;
    H.cfg = cfg;
    H.m = m;
    char err[160];
    if (http_routes_check(routes, err, sizeof err) < 0) {
        log_error("refusing the router table", LF_S("error", err));
        return -1;
    }
    H.routes = routes;
    H.conns.next = H.conns.prev = &H.conns;
    sbuf_init(&H.alog);
    h2o_config_init(&H.gconf);
    H.gconf.server_name = h2o_iovec_init(H2O_STRLIT("wapi"));
    /* h2o 2.2.5 reads a whole body before any handler sees it and has one
     * limit for every path: the larger of the two, so that an upload of
     * media.max_upload_bytes (with its multipart framing) gets through.
     * Larger declared lengths are refused before the body is read; on other
     * paths on_req refuses what is over http.max_body_size. */
    size_t media_max = (size_t)cfg->media.max_upload_bytes + HTTP_MEDIA_FORM_SLACK;
    H.gconf.max_request_entity_size =
        (size_t)cfg->http.max_body_size > media_max ? (size_t)cfg->http.max_body_size : media_max;
    H.gconf.http1.req_timeout = (uint64_t)cfg->http.request_timeout * 1000;
    H.gconf.http2.idle_timeout = (uint64_t)cfg->http.idle_timeout * 1000;
    H.gconf.http2.graceful_shutdown_timeout = (uint64_t)cfg->shutdown_timeout * 1000;
    /* Both hosts are registered before the context is made, so it knows them
     * all; each listener's connections are bound to its own host only. */
    struct listener *ls[] = {&H.main_l, &H.metrics_l};
    static const char *const names[] = {"default", "metrics"};
    int (*const handlers[])(h2o_handler_t *, h2o_req_t *) = {on_req, on_metrics_req};
    for (size_t i = 0; i < 2; i++) {
        h2o_hostconf_t *host =
            h2o_config_register_host(&H.gconf, h2o_iovec_init(names[i], strlen(names[i])), 65535);
        h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
        h2o_handler_t *h = h2o_create_handler(path, sizeof *h);
        h->on_req = handlers[i];
        h2o_filter_t *f = h2o_create_filter(path, sizeof *f);
        f->on_setup_ostream = on_setup_ostream;
        f = h2o_create_filter(&host->fallback_path, sizeof *f);
        f->on_setup_ostream = on_setup_ostream;
        ls[i]->hosts[0] = host;
        ls[i]->hosts[1] = NULL;
        ls[i]->fd = -1;
    }
    h2o_context_init(&H.ctx, loop, &H.gconf);
    for (size_t i = 0; i < 2; i++) {
        ls[i]->accept_ctx.ctx = &H.ctx;
        ls[i]->accept_ctx.hosts = ls[i]->hosts;
    }
    return 0;
}
