/* /api/session*: the WhatsApp session, asked of the supervisor over IPC.
 * The QR code is rendered to SVG here with libqrencode. */
#include <ctype.h>
#include <qrencode.h>
#include <stdio.h>
#include <string.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "audit.h"
#include "handlers.h"
#include "sup_link.h"

#define IPC_TIMEOUT_MS 3000

struct pending {
    struct rq *rq;
    uint32_t id;
    int want_svg; /* for the QR */
};

static void pending_abort(struct rq *rq)
{
    struct pending *p = rq->state;
    if (p->id)
        sup_cancel(p->id);
}

/* The reply: {u32 status, bytes body}; NULL on timeout. */
int sup_reply_read(const struct ipc_msg *m, uint32_t *status, const uint8_t **body, uint32_t *len)
{
    if (!m)
        return -1;
    struct ipc_rd rd;
    ipc_rd_init(&rd, m);
    *status = ipc_rd_u32(&rd);
    *body = ipc_rd_bytes(&rd, len);
    return ipc_rd_end(&rd) < 0 || !*body ? -1 : 0;
}

/* The supervisor's answer to p's request: 0 with its status and body, the
 * answer marked no-store; -1 after answering 503. */
static int reply_read(struct pending *p, const struct ipc_msg *m, uint32_t *status, const uint8_t **body,
                      uint32_t *len)
{
    p->id = 0;
    p->rq->on_abort = NULL;
    if (sup_reply_read(m, status, body, len) < 0) {
        http_error(p->rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return -1;
    }
    http_add_header(p->rq, "cache-control", "no-store");
    return 0;
}

static void reply_json(void *ctx, const struct ipc_msg *m)
{
    struct pending *p = ctx;
    uint32_t status, len;
    const uint8_t *body;
    if (reply_read(p, m, &status, &body, &len) == 0)
        http_json(p->rq, (int)status, (const char *)body, len);
}

static struct pending *ask_within(struct rq *rq, uint32_t type, const void *payload, size_t len,
                                  uint32_t timeout_ms, sup_reply_cb cb)
{
    struct pending *p = h2o_mem_alloc_pool(&rq->req->pool, sizeof *p);
    memset(p, 0, sizeof *p);
    p->rq = rq;
    rq->state = p;
    rq->on_abort = pending_abort;
    p->id = sup_request(type, payload, len, timeout_ms, cb, p);
    if (!p->id) {
        rq->on_abort = NULL;
        http_error(rq, 503, "supervisor_unavailable", "the supervisor link is down", NULL);
        return NULL;
    }
    return p;
}

static struct pending *ask(struct rq *rq, uint32_t type, const void *payload, size_t len, sup_reply_cb cb)
{
    return ask_within(rq, type, payload, len, IPC_TIMEOUT_MS, cb);
}

void sup_ask_json(struct rq *rq, uint32_t type, const void *payload, size_t len, uint32_t timeout_ms)
{
    ask_within(rq, type, payload, len, timeout_ms, reply_json);
}

void sup_ask_action(struct rq *rq, struct sbuf *b, uint32_t timeout_ms)
{
    if (b->oom)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        sup_ask_json(rq, IPC_ACTION, b->buf, b->len, timeout_ms);
    sbuf_free(b);
}

void h_session_get(struct rq *rq)
{
    ask(rq, IPC_SESSION_GET, NULL, 0, reply_json);
}

/* {u32 cmd, bytes arg, bytes user, bytes key, bytes ip}: the supervisor
 * records who asked in the audit log as it acts. */
static void command(struct rq *rq, uint32_t cmd, const char *arg)
{
    struct sbuf b;
    sbuf_init(&b);
    struct audit_actor ac;
    audit_actor(rq, &ac);
    ipc_wr_u32(&b, cmd);
    ipc_wr_bytes(&b, arg, (uint32_t)strlen(arg));
    ipc_wr_bytes(&b, ac.user, (uint32_t)strlen(ac.user));
    ipc_wr_bytes(&b, ac.key, (uint32_t)strlen(ac.key));
    ipc_wr_bytes(&b, ac.ip, (uint32_t)strlen(ac.ip));
    ask(rq, IPC_SESSION_CMD, b.buf, b.len, reply_json);
    sbuf_free(&b);
}

void h_session_start(struct rq *rq)
{
    command(rq, IPC_CMD_START, "");
}

void h_session_stop(struct rq *rq)
{
    command(rq, IPC_CMD_STOP, "");
}

void h_session_logout(struct rq *rq)
{
    command(rq, IPC_CMD_LOGOUT, "");
}

void h_session_pairing_code(struct rq *rq)
{
    char err[160];
    yajl_val v = json_parse(rq->req->entity.base, rq->req->entity.len, 16384, err, sizeof err);
    if (!v) {
        http_error(rq, 400, "invalid_json", err, NULL);
        return;
    }
    const char *phone = json_str(v, "phone");
    char digits[32];
    size_t n = 0;
    int ok = phone != NULL;
    for (const char *c = phone ? phone : ""; ok && *c; c++) {
        if (isdigit((unsigned char)*c)) {
            if (n >= 15)
                ok = 0;
            else
                digits[n++] = *c;
        } else if (!(c == phone && *c == '+') && *c != ' ' && *c != '-') {
            ok = 0;
        }
    }
    digits[n] = '\0';
    yajl_tree_free(v);
    if (!ok || n < 7) {
        http_error(rq, 400, "invalid_phone",
                   "phone must be the number in international form, 7 to 15 digits, e.g. +15551234567",
                   "phone");
        return;
    }
    command(rq, IPC_CMD_PAIR_PHONE, digits);
}

/* SVG with one path of unit squares; the quiet zone is part of the view box. */
static void qr_svg(const char *text, struct sbuf *out)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (!q)
        return;
    int w = q->width, border = 4, size = w + 2 * border;
    sbuf_addf(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">"
        "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
        size, size, size, size);
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            if (q->data[y * w + x] & 1)
                sbuf_addf(out, "M%d %dh1v1h-1z", x + border, y + border);
    sbuf_adds(out, "\"/></svg>\n");
    QRcode_free(q);
}

static void reply_qr(void *ctx, const struct ipc_msg *m)
{
    struct pending *p = ctx;
    uint32_t status, len;
    const uint8_t *body;
    if (reply_read(p, m, &status, &body, &len) < 0)
        return;
    if (status != 200 || len == 0) {
        http_error(p->rq, 404, "no_qr", "no QR code right now (the session is not waiting for a scan)", NULL);
        return;
    }
    if (!p->want_svg) {
        http_send(p->rq, 200, "text/plain; charset=utf-8", (const char *)body, len);
        return;
    }
    char *text = h2o_mem_alloc_pool(&p->rq->req->pool, len + 1);
    memcpy(text, body, len);
    text[len] = '\0';
    struct sbuf svg;
    sbuf_init(&svg);
    qr_svg(text, &svg);
    if (!svg.len)
        http_error(p->rq, 500, NULL, "cannot render the QR code", NULL);
    else
        http_send(p->rq, 200, "image/svg+xml", svg.buf, svg.len);
    sbuf_free(&svg);
}

void h_session_qr(struct rq *rq)
{
    h2o_req_t *req = rq->req;
    int raw = 0;
    if (req->query_at != SIZE_MAX) {
        /* format=svg|raw; other parameters (a cache-buster) are ignored. */
        const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            size_t n = (size_t)((amp ? amp : end) - q);
            if (n >= 7 && memcmp(q, "format=", 7) == 0) {
                if (n == 10 && memcmp(q + 7, "raw", 3) == 0)
                    raw = 1;
                else if (!(n == 10 && memcmp(q + 7, "svg", 3) == 0)) {
                    http_error(rq, 400, "invalid_format", "format must be svg or raw", "format");
                    return;
                }
            }
            q += n + 1;
        }
    }
    struct pending *p = ask(rq, IPC_QR_GET, NULL, 0, reply_qr);
    if (p)
        p->want_svg = !raw;
}
