/* GET /api/events: Server-Sent Events. The supervisor pushes every event to
 * every worker; each worker fans it out to its streams. A client that comes
 * back with Last-Event-ID first gets what it missed from the supervisor's
 * log, then the live stream. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "handlers.h"
#include "sup_link.h"

#define HEARTBEAT_MS 15000
#define MAX_PENDING (1u << 20) /* a client this far behind is cut off; it resumes by id */

struct sse {
    h2o_generator_t gen; /* first: h2o hands it back to us */
    struct sse *prev, *next;
    struct rq *rq;
    struct sbuf pending, inflight; /* inflight is owned by h2o until proceed */
    uint64_t last_id;              /* of the last event passed (Last-Event-ID at first) */
    uint64_t last_seq;             /* its publication number: events follow these */
    uint32_t req_id;               /* backlog request in flight */
    int started;                   /* response headers sent */
    int sending;
    int missed; /* events pushed while the backlog was loading */
    int closing;
    int finished; /* the final part was handed to h2o */
    uint64_t last_write_ms;
    perm_mask perms; /* what this stream's principal may see */
    char user_id[64], api_key_id[64];
};

static struct sse streams = {.prev = &streams, .next = &streams};
static h2o_loop_t *loop;

static void flush(struct sse *s)
{
    if (!s->started || s->sending || s->finished || (!s->pending.len && !s->closing))
        return;
    struct sbuf t = s->inflight;
    s->inflight = s->pending;
    s->pending = t;
    sbuf_reset(&s->pending);
    h2o_iovec_t buf = h2o_iovec_init(s->inflight.buf ? s->inflight.buf : "", s->inflight.len);
    s->sending = 1;
    s->finished = s->closing; /* nothing may follow the final part */
    s->last_write_ms = h2o_now(loop);
    h2o_send(s->rq->req, &buf, 1, s->closing ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    struct sse *s = (struct sse *)g;
    s->sending = 0;
    sbuf_reset(&s->inflight);
    if (!s->closing)
        flush(s);
}

static void unlink_stream(struct sse *s)
{
    if (s->next) {
        s->prev->next = s->next;
        s->next->prev = s->prev;
        s->next = s->prev = NULL;
    }
}

static void on_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    unlink_stream((struct sse *)g);
}

static void sse_dispose(void *p)
{
    struct sse *s = p;
    /* The pool releases later allocations first: rq outlives s by a moment,
     * and its abort hook must not reach back into s. */
    if (s->rq && s->rq->state == s)
        s->rq->on_abort = NULL;
    unlink_stream(s);
    if (s->req_id)
        sup_cancel(s->req_id);
    sbuf_free(&s->pending);
    sbuf_free(&s->inflight);
}

static void add_event(struct sse *s, uint64_t id, uint64_t seq, const char *type, size_t tlen,
                      const char *json, size_t jlen)
{
    if (seq <= s->last_seq)
        return; /* had it (from the backlog and live both) */
    s->last_seq = seq;
    s->last_id = id;
    if (!(s->perms & PERM_BIT(authz_event_perm(type, tlen))))
        return;
    sbuf_addf(&s->pending, "id: %" PRIu64 "\nevent: %.*s\ndata: ", id, (int)tlen, type);
    sbuf_add(&s->pending, json, jlen); /* one line: the supervisor writes compact JSON */
    sbuf_adds(&s->pending, "\n\n");
    if (s->pending.len > MAX_PENDING)
        s->closing = 1; /* too slow: end the stream; the client resumes with Last-Event-ID */
}

static void start_response(struct sse *s)
{
    h2o_req_t *req = s->rq->req;
    s->rq->responded = 1;
    s->rq->on_abort = NULL;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    s->gen.proceed = on_proceed;
    s->gen.stop = on_stop;
    h2o_start_response(req, &s->gen);
    s->started = 1;
}

static void request_backlog(struct sse *s);

static void on_backlog(void *ctx, const struct ipc_msg *m)
{
    struct sse *s = ctx;
    s->req_id = 0;
    struct ipc_rd rd;
    uint32_t status = 0, len = 0;
    const uint8_t *body = NULL;
    if (m) {
        ipc_rd_init(&rd, m);
        status = ipc_rd_u32(&rd);
        body = ipc_rd_bytes(&rd, &len);
        if (ipc_rd_end(&rd) < 0)
            body = NULL;
    }
    if (!s->started) {
        if (!body || status != 200) {
            s->rq->on_abort = NULL;
            http_error(s->rq, 503, "supervisor_unavailable", "cannot read the event log", NULL);
            return;
        }
        start_response(s);
        sbuf_adds(&s->pending, "retry: 3000\n\n");
    }
    /* Lines: id \t seq \t type \t json \n */
    const char *p = (const char *)body, *end = p + (body ? len : 0);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        const char *t1 = memchr(p, '\t', (size_t)(nl - p));
        const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
        const char *t3 = t2 ? memchr(t2 + 1, '\t', (size_t)(nl - t2 - 1)) : NULL;
        if (t3) {
            uint64_t id = strtoull(p, NULL, 10), seq = strtoull(t1 + 1, NULL, 10);
            add_event(s, id, seq, t2 + 1, (size_t)(t3 - t2 - 1), t3 + 1, (size_t)(nl - t3 - 1));
        }
        p = nl + 1;
    }
    if (s->missed) {
        s->missed = 0;
        request_backlog(s);
    }
    flush(s);
}

static void request_backlog(struct sse *s)
{
    uint64_t after[2] = {s->last_id, s->last_seq};
    s->req_id = sup_request(IPC_EVENTS_SINCE, after, sizeof after, 3000, on_backlog, s);
    if (!s->req_id && !s->started) {
        s->rq->on_abort = NULL;
        http_error(s->rq, 503, "supervisor_unavailable", "the supervisor link is down", NULL);
    }
}

static void sse_abort(struct rq *rq)
{
    struct sse *s = rq->state;
    if (s->req_id)
        sup_cancel(s->req_id);
    s->req_id = 0;
}

void h_events(struct rq *rq)
{
    h2o_req_t *req = rq->req;
    struct sse *s = h2o_mem_alloc_shared(&req->pool, sizeof *s, sse_dispose);
    memset(s, 0, sizeof *s);
    s->rq = rq;
    s->perms = rq->principal.perms;
    snprintf(s->user_id, sizeof s->user_id, "%s", rq->principal.user_id);
    snprintf(s->api_key_id, sizeof s->api_key_id, "%s", rq->principal.api_key_id);
    rq->state = s;
    rq->on_abort = sse_abort;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (i >= 0 && req->headers.entries[i].value.len < 24) {
        char buf[24];
        memcpy(buf, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        buf[req->headers.entries[i].value.len] = '\0';
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (*end == '\0' && end != buf)
            s->last_id = v;
    }
    s->next = streams.next;
    s->prev = &streams;
    streams.next->prev = s;
    streams.next = s;
    request_backlog(s);
}

void events_init(h2o_loop_t *l)
{
    loop = l;
}

/* A user's role changed, a user or a key is gone: their cached keys are
 * forgotten and their streams end (a client that reconnects is judged anew). */
static void on_access_change(const char *type, size_t tlen, const uint8_t *json, size_t jlen)
{
    enum authz_change ch = authz_access_change(type, tlen);
    if (ch == AUTHZ_NO_CHANGE)
        return;
    int user = ch == AUTHZ_USER_CHANGED, key = ch == AUTHZ_KEY_CHANGED;
    char err[64];
    yajl_val v = json_parse((const char *)json, jlen, IPC_MAX_PAYLOAD, err, sizeof err);
    const char *target = json_str(json_member(v, "data"), "target");
    if (target) {
        apikey_forget(key ? target : NULL, user ? target : NULL);
        for (struct sse *s = streams.next; s != &streams; s = s->next)
            if (s->started && !strcmp(user ? s->user_id : s->api_key_id, target)) {
                s->closing = 1;
                if (!s->sending)
                    flush(s);
            }
    }
    yajl_tree_free(v);
}

void events_on_push(const struct ipc_msg *m)
{
    struct ipc_rd rd;
    ipc_rd_init(&rd, m);
    uint64_t id = ipc_rd_u64(&rd), seq = ipc_rd_u64(&rd);
    uint32_t tlen, jlen;
    const uint8_t *type = ipc_rd_bytes(&rd, &tlen);
    const uint8_t *json = ipc_rd_bytes(&rd, &jlen);
    if (ipc_rd_end(&rd) < 0 || !type || !json)
        return;
    on_access_change((const char *)type, tlen, json, jlen);
    for (struct sse *s = streams.next; s != &streams; s = s->next) {
        if (!s->started || s->req_id) {
            s->missed = 1;
            continue;
        }
        add_event(s, id, seq, (const char *)type, tlen, (const char *)json, jlen);
        flush(s);
    }
}

void events_tick(void)
{
    uint64_t now = h2o_now(loop);
    for (struct sse *s = streams.next; s != &streams; s = s->next) {
        if (s->started && !s->sending && now - s->last_write_ms >= HEARTBEAT_MS) {
            sbuf_adds(&s->pending, ": ping\n\n");
            flush(s);
        }
    }
}

/* Draining: finish every stream so its connection can close. */
void events_close_all(void)
{
    for (struct sse *s = streams.next; s != &streams;) {
        struct sse *n = s->next;
        if (s->started) {
            s->closing = 1;
            if (!s->sending)
                flush(s);
        }
        s = n;
    }
}
