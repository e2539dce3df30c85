/* GET /api/media/{id}: the bytes of a stored file, from a read-only
 * descriptor the supervisor hands over (this worker never opens the media
 * folder by path), read with pread in 64 KiB steps as h2o asks for more
 * (h2o 2.2.5 has no sendfile path for a handler). With ETag (the SHA-256),
 * If-None-Match, one Range (206, 416), a safe Content-Disposition, and
 * signed links (?expires=&sig=) that stand for credentials. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/media_url.h"
#include "common/sbuf.h"
#include "db.h"
#include "handlers.h"
#include "media_api.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define CHUNK (64 * 1024)
#define OPEN_IPC_MS 3000

/* ---- request headers */

/* Range: 1 with [*start, *start + *len) for one satisfiable range, 0 when
 * the whole body is to be sent (no header, another unit, several ranges,
 * bad syntax: RFC 9110 lets a server ignore those), -1 when unsatisfiable
 * (416). */
static int parse_range(const char *v, size_t n, uint64_t size, uint64_t *start, uint64_t *len)
{
    if (n < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return 0;
    const char *p = v + 6, *e = v + n;
    while (p < e && *p == ' ')
        p++;
    while (e > p && e[-1] == ' ')
        e--;
    if (memchr(p, ',', (size_t)(e - p)))
        return 0;
    const char *dash = memchr(p, '-', (size_t)(e - p));
    if (!dash)
        return 0;
    uint64_t a = 0, b = 0;
    int ha = 0, hb = 0;
    for (const char *q = p; q < dash; q++, ha++) {
        if (*q < '0' || *q > '9' || ha >= 18)
            return 0;
        a = a * 10 + (uint64_t)(*q - '0');
    }
    for (const char *q = dash + 1; q < e; q++, hb++) {
        if (*q < '0' || *q > '9' || hb >= 18)
            return 0;
        b = b * 10 + (uint64_t)(*q - '0');
    }
    if (!ha && !hb)
        return 0;
    if (!ha) { /* the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *len = b < size ? b : size;
        *start = size - *len;
        return 1;
    }
    if (hb && b < a)
        return 0;
    if (a >= size)
        return -1;
    uint64_t last = hb && b < size - 1 ? b : size - 1;
    *start = a;
    *len = last - a + 1;
    return 1;
}

/* If-None-Match names etag (quoted), weakly compared, or is "*". */
static int etag_listed(const char *v, size_t n, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = v, *e = v + n;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == ','))
            p++;
        const char *s = p;
        while (p < e && *p != ',')
            p++;
        const char *t = p;
        while (t > s && t[-1] == ' ')
            t--;
        if (t - s >= 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((t - s == 1 && *s == '*') || ((size_t)(t - s) == el && !memcmp(s, etag, el)))
            return 1;
    }
    return 0;
}

/* Types a browser may show in place; anything else is a download, so an
 * uploaded page or script never runs in the dashboard's origin. */
static int shown_inline(const char *type)
{
    static const char *const ok[] = {"image/jpeg", "image/png",  "image/webp", "image/gif",
                                     "video/mp4",  "video/3gpp", "video/webm", NULL};
    if (!strncmp(type, "audio/", 6))
        return 1;
    size_t n = strcspn(type, "; ");
    for (const char *const *t = ok; *t; t++)
        if (strlen(*t) == n && !strncmp(type, *t, n))
            return 1;
    return 0;
}

/* RFC 6266: an ASCII fallback (anything else, quotes and backslashes become
 * "_") and the exact name as filename* (RFC 8187, UTF-8 percent-encoded). */
static void content_disposition(struct sbuf *b, int in_place, const char *name)
{
    sbuf_adds(b, in_place ? "inline" : "attachment");
    if (!*name)
        return;
    sbuf_adds(b, "; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p >= 0x80 && (*p & 0xc0) == 0x80)
            continue; /* one "_" per character, not per byte */
        sbuf_addc(b, *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' ? (char)*p : '_');
    }
    sbuf_adds(b, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p))
            sbuf_addc(b, (char)*p);
        else {
            char e[4] = {'%'};
            hex_encode(e + 1, p, 1, 1);
            sbuf_add(b, e, 3);
        }
    }
}

/* ---- the body, from a descriptor */

struct fdbody {
    h2o_generator_t gen; /* first: h2o hands it back */
    h2o_req_t *req;
    int fd;
    uint64_t off, left;
    char *buf;
};

static void fdbody_close(struct fdbody *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

static void fdbody_dispose(void *p)
{
    fdbody_close(p);
}

static void fdbody_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct fdbody *f = (struct fdbody *)g;
    size_t want = f->left < CHUNK ? (size_t)f->left : CHUNK;
    ssize_t r;
    while ((r = pread(f->fd, f->buf, want, (off_t)f->off)) < 0 && errno == EINTR)
        ;
    if (r <= 0) { /* the file shrank or the disk failed: cut the response short */
        fdbody_close(f);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    f->off += (uint64_t)r;
    f->left -= (uint64_t)r;
    h2o_iovec_t v = h2o_iovec_init(f->buf, (size_t)r);
    if (!f->left)
        fdbody_close(f);
    h2o_send(req, &v, 1, f->left ? H2O_SEND_STATE_IN_PROGRESS : H2O_SEND_STATE_FINAL);
}

static void fdbody_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    fdbody_close((struct fdbody *)g);
}

/* ---- the handler */

struct get {
    struct op_base b;
    const char *params[1];
    char *id;
    char expires[24], sig[MEDIA_SIG_LEN + 2];
    /* the row */
    char hex[65], mimetype[128], file_name[256];
    uint64_t size;
    /* what to send */
    int status;
    uint64_t start, len;
};

static void add_validators(struct rq *rq, const struct get *o)
{
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", o->hex);
    http_add_header(rq, "etag", etag);
    http_add_header(rq, "cache-control", "private, immutable");
}

static void add_body_headers(struct rq *rq, const struct get *o)
{
    add_validators(rq, o);
    http_add_header(rq, "accept-ranges", "bytes");
    /* A page opened from here runs in a sandbox (no scripts, its own origin). */
    http_add_header(rq, "content-security-policy", "sandbox");
    struct sbuf b;
    sbuf_init(&b);
    content_disposition(&b, shown_inline(o->mimetype), o->file_name);
    if (!b.oom)
        http_add_header(rq, "content-disposition", b.buf);
    sbuf_free(&b);
    if (o->status == 206) {
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, o->start, o->start + o->len - 1,
                 o->size);
        http_add_header(rq, "content-range", cr);
    }
}

static void on_file(void *ctx, const struct ipc_msg *m)
{
    struct get *o = ctx;
    struct rq *rq = o->b.rq;
    int fd = sup_reply_fd(m);
    uint32_t status, blen;
    const uint8_t *body;
    rq->on_abort = NULL;
    if (sup_reply_read(m, &status, &body, &blen) < 0 || (status == 200 && fd < 0)) {
        if (fd >= 0)
            close(fd);
        http_error(rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return;
    }
    if (status != 200) {
        if (fd >= 0)
            close(fd);
        http_json(rq, (int)status, (const char *)body, blen);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != o->size) {
        close(fd);
        http_error(rq, 500, "store_error", "the stored file is not the size its record says", NULL);
        return;
    }
    struct fdbody *f = h2o_mem_alloc_shared(&rq->req->pool, sizeof *f, fdbody_dispose);
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->req = rq->req;
    f->off = o->start;
    f->left = o->len;
    f->buf = h2o_mem_alloc_pool(&rq->req->pool, CHUNK);
    f->gen.proceed = fdbody_proceed;
    f->gen.stop = fdbody_stop;
    add_body_headers(rq, o);
    if (http_start_body(rq, o->status, o->mimetype, (size_t)o->len, &f->gen) != 0) {
        fdbody_close(f);
        return;
    }
    fdbody_proceed(&f->gen, rq->req);
}

static const char *req_header(h2o_req_t *req, const h2o_token_t *t, size_t *n)
{
    ssize_t i = h2o_find_header(&req->headers, t, -1);
    if (i < 0)
        return NULL;
    *n = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

static void on_row(void *ctx, const PGresult *res, const char *err)
{
    struct get *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct rq *rq = o->b.rq;
    h2o_req_t *req = rq->req;
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 4), "stored") != 0) {
        http_error(rq, 404, "not_found", "no stored media with this id", NULL);
        return;
    }
    snprintf(o->hex, sizeof o->hex, "%s", PQgetvalue(res, 0, 0));
    o->size = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    snprintf(o->mimetype, sizeof o->mimetype, "%s", PQgetvalue(res, 0, 2));
    snprintf(o->file_name, sizeof o->file_name, "%s", PQgetvalue(res, 0, 3));
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", o->hex);
    size_t n;
    const char *v = req_header(req, H2O_TOKEN_IF_NONE_MATCH, &n);
    if (v && etag_listed(v, n, etag)) {
        add_validators(rq, o);
        http_send_empty(rq, 304);
        return;
    }
    o->status = 200;
    o->start = 0;
    o->len = o->size;
    v = req_header(req, H2O_TOKEN_RANGE, &n);
    size_t irn;
    const char *ir = req_header(req, H2O_TOKEN_IF_RANGE, &irn);
    if (v && (!ir ||
              (irn == strlen(etag) && !memcmp(ir, etag, irn)))) { /* If-Range: the same file, or all of it */
        int r = parse_range(v, n, o->size, &o->start, &o->len);
        if (r < 0) {
            char cr[40];
            snprintf(cr, sizeof cr, "bytes */%" PRIu64, o->size);
            http_add_header(rq, "content-range", cr);
            http_error(rq, 416, "range_not_satisfiable", "the range is outside the file", NULL);
            return;
        }
        if (r > 0)
            o->status = 206;
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        static h2o_generator_t none = {NULL, NULL};
        add_body_headers(rq, o);
        http_start_body(rq, o->status, o->mimetype, (size_t)o->len, &none);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_bytes(&b, o->hex, (uint32_t)strlen(o->hex));
    if (b.oom)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        op_ask(o, IPC_MEDIA_OPEN, b.buf, b.len, -1, OPEN_IPC_MS, on_file);
    sbuf_free(&b);
}

static void lookup(struct get *o)
{
    o->params[0] = o->id;
    op_run(o, "SELECT sha256, size, mimetype, coalesce(file_name, ''), state FROM wa_media WHERE id = $1", 1,
           o->params, on_row);
}

/* The signed link's verdict; 0 to go on, -1 after answering 403. */
static int check_link(struct get *o)
{
    enum media_url_check c = media_url_check(media_key(), o->id, o->expires, o->sig, time(NULL));
    if (c == MEDIA_URL_OK)
        return 0;
    o->b.rq->on_abort = NULL;
    if (c == MEDIA_URL_EXPIRED)
        http_error(o->b.rq, 403, "link_expired", "this link has expired; ask for a new one", NULL);
    else
        http_error(o->b.rq, 403, "invalid_signature", "this link is not valid for this media", NULL);
    return -1;
}

static void on_key(void *ctx, const struct ipc_msg *m)
{
    struct get *o = ctx;
    if (media_key_take(o->b.rq, m) == 0 && check_link(o) == 0)
        lookup(o);
}

void h_media_get(struct rq *rq)
{
    char *id = media_id_param(rq);
    if (!id)
        return;
    struct get *o = op_alloc(rq, sizeof *o);
    o->id = id;
    int he = rest_query(rq, "expires", o->expires, sizeof o->expires);
    int hs = rest_query(rq, "sig", o->sig, sizeof o->sig);
    if (hs == -1) { /* credentials were checked by the router */
        lookup(o);
        return;
    }
    if (he < 0 || hs < 0) {
        http_error(rq, 403, "invalid_signature", "this link is not valid for this media", NULL);
        return;
    }
    if (media_key()) {
        if (check_link(o) == 0)
            lookup(o);
        return;
    }
    op_ask(o, IPC_MEDIA_KEY, NULL, 0, -1, MEDIA_KEY_IPC_MS, on_key);
}
