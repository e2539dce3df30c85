/* /api/media: uploads, the list, deletion and signed links. An upload's
 * body (raw, or the "file" part of multipart/form-data) is written into a
 * temp file the supervisor hands over (an open descriptor inside the store:
 * this worker never opens the media folder by path), then handed back for
 * the supervisor to hash, type-check and publish. h2o 2.2.5 reads a whole
 * body before the handler runs (over 32 MiB in a temp file it maps), so
 * the writing is done here, 1 MiB per turn of the loop. */
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/jsonw.h"
#include "common/media_url.h"
#include "common/sbuf.h"
#include "common/timefmt.h"
#include "db.h"
#include "handlers.h"
#include "media_api.h"
#include "multipart.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define UPLOAD_IPC_MS 5000
#define PUBLISH_IPC_MS 120000 /* fsync and SHA-256 of up to a gigabyte on a slow disk */
/* A publication still queued in the supervisor after this is dropped there:
 * the rest of PUBLISH_IPC_MS is for the hashing itself. */
#define PUBLISH_START_MS (PUBLISH_IPC_MS / 2)
#define WRITE_STEP (1u << 20)
#define LIST_DEFAULT 50
#define LIST_MAX 200

const struct wapi_config *media_cfg;
static h2o_loop_t *loop;
static h2o_timeout_t zero;
static uint8_t key[MEDIA_KEY_LEN];
static int have_key;

void media_api_init(h2o_loop_t *l, const struct wapi_config *cfg)
{
    loop = l;
    media_cfg = cfg;
    h2o_timeout_init(loop, &zero, 0);
}

const uint8_t *media_key(void)
{
    return have_key ? key : NULL;
}

int media_key_take(struct rq *rq, const struct ipc_msg *m)
{
    uint32_t status, len;
    const uint8_t *body;
    rq->on_abort = NULL;
    if (sup_reply_read(m, &status, &body, &len) < 0) {
        http_error(rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return -1;
    }
    if (status != 200 || len != MEDIA_KEY_LEN) {
        http_error(rq, 503, "media_unavailable", "signed links are not available yet; try again", NULL);
        return -1;
    }
    memcpy(key, body, MEDIA_KEY_LEN);
    have_key = 1;
    return 0;
}

char *media_id_param(struct rq *rq)
{
    char *id = http_param(rq, 0);
    if (!id || !http_id_ok(id, strlen(id), 64)) {
        http_error(rq, 404, "not_found", "no media with this id", NULL);
        return NULL;
    }
    return id;
}

static const char *const kinds[] = {"image", "video", "audio", "voice", "document", "sticker", NULL};

int media_kind_ok(const char *kind)
{
    for (const char *const *k = kinds; *k; k++)
        if (!strcmp(kind, *k))
            return 1;
    return 0;
}

static int one_of(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(v, *list))
            return 1;
    return 0;
}

/* ---- POST /api/media */

struct up {
    struct op_base b; /* first */
    const char *data; /* the file's bytes, in the request body */
    size_t len, off;
    char declared[MP_TYPE_MAX], kind[16], file_name[MP_KEPT_NAME_MAX + 1], sha[65];
    int fd;
    uint64_t token;
    uint32_t req_id; /* of the UPLOAD request, while its answer is awaited */
    enum { UP_NONE, UP_ASKING, UP_WRITING, UP_PUBLISHING } phase;
    h2o_timeout_entry_t step;
    /* media_put: told the outcome instead of answering it */
    media_put_cb done;
    void *done_ctx;
};

/* {token, request id}: token 0 names the upload by the UPLOAD request whose
 * answer (and so the token) never arrived. */
static void discard(uint64_t token, uint32_t req_id)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, token);
    ipc_wr_u32(&b, req_id);
    if (!b.oom)
        sup_notify(IPC_MEDIA_DISCARD, b.buf, b.len);
    sbuf_free(&b);
}

/* The temp file will not be published: ours closed, and the supervisor told
 * (else it holds the reservation until its own timeout, or publishes a
 * file whose client was answered 503). */
static void up_drop(struct up *u)
{
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    if (u->phase == UP_ASKING)
        discard(0, u->req_id);
    else if (u->phase == UP_WRITING || u->phase == UP_PUBLISHING)
        discard(u->token, 0);
    u->phase = UP_NONE;
}

/* After op.c has cancelled what the op waited for from the supervisor. */
static void up_abort(struct op_base *b)
{
    struct up *u = (struct up *)b;
    if (h2o_timeout_is_linked(&u->step))
        h2o_timeout_unlink(&u->step);
    up_drop(u);
}

static void up_fail(struct up *u, int status, const char *code, const char *msg, const char *field)
{
    up_drop(u);
    if (u->done) {
        struct sbuf b;
        sbuf_init(&b);
        jw_error_body(&b, code ? code : "internal_error", msg, field);
        u->done(u->done_ctx, (uint32_t)status, b.buf ? b.buf : "", b.len);
        sbuf_free(&b);
        return;
    }
    u->b.rq->on_abort = NULL;
    http_error(u->b.rq, status, code, msg, field);
}

/* The supervisor's answer as it is (its status and JSON). */
static void forward(struct up *u, const struct ipc_msg *m)
{
    uint32_t status, len;
    const uint8_t *body;
    if (sup_reply_read(m, &status, &body, &len) < 0) {
        up_fail(u, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return;
    }
    if (u->done) {
        u->done(u->done_ctx, status, (const char *)body, len);
        return;
    }
    u->b.rq->on_abort = NULL;
    http_json(u->b.rq, (int)status, (const char *)body, len);
}

static void on_published(void *ctx, const struct ipc_msg *m)
{
    struct up *u = ctx;
    int fd = sup_reply_fd(m); /* none is sent with this answer */
    if (fd >= 0)
        close(fd);
    if (m)
        u->phase = UP_NONE; /* answered: nothing to discard */
    forward(u, m);
}

static void publish(struct up *u)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, u->token);
    ipc_wr_u64(&b, u->len);
    ipc_wr_bytes(&b, u->declared, (uint32_t)strlen(u->declared));
    ipc_wr_bytes(&b, u->kind, (uint32_t)strlen(u->kind));
    ipc_wr_bytes(&b, u->file_name, (uint32_t)strlen(u->file_name));
    ipc_wr_bytes(&b, u->sha, (uint32_t)strlen(u->sha));
    ipc_wr_u32(&b, PUBLISH_START_MS);
    int r = b.oom ? -1 : op_ask(u, IPC_MEDIA_PUBLISH, b.buf, b.len, u->fd, PUBLISH_IPC_MS, on_published);
    sbuf_free(&b);
    if (r < 0) {
        if (b.oom)
            up_fail(u, 500, NULL, "out of memory", NULL);
        else
            up_drop(u); /* op_ask answered 503 */
        return;
    }
    close(u->fd); /* the supervisor holds the file now */
    u->fd = -1;
    u->phase = UP_PUBLISHING;
}

static void on_step(h2o_timeout_entry_t *e)
{
    struct up *u = (struct up *)((char *)e - offsetof(struct up, step));
    size_t n = u->len - u->off < WRITE_STEP ? u->len - u->off : WRITE_STEP;
    ssize_t w = pwrite(u->fd, u->data + u->off, n, (off_t)u->off);
    if (w < 0 && errno == EINTR) {
        h2o_timeout_link(loop, &zero, &u->step);
        return;
    }
    if (w <= 0) {
        int full = w < 0 && (errno == ENOSPC || errno == EDQUOT);
        if (full) {
            metrics_add(&http_metrics()->media_refused_full_total,
                        1); /* the supervisor counts its own 507s */
            up_fail(u, 507, "media_store_full", "the media volume is full", "file");
        } else {
            up_fail(u, 503, "store_error", "the file could not be written; try again", NULL);
        }
        return;
    }
    u->off += (size_t)w;
    if (u->off < u->len)
        h2o_timeout_link(loop, &zero, &u->step); /* the next step after other work of the loop */
    else
        publish(u);
}

static void on_temp_file(void *ctx, const struct ipc_msg *m)
{
    struct up *u = ctx;
    int fd = sup_reply_fd(m);
    uint32_t status, len;
    const uint8_t *body;
    int rd = sup_reply_read(m, &status, &body, &len);
    if (rd == 0 && status == 200 && fd >= 0 && len == sizeof u->token) {
        memcpy(&u->token, body, sizeof u->token);
        u->fd = fd;
        u->off = 0;
        u->phase = UP_WRITING;
        u->step.cb = on_step;
        h2o_timeout_link(loop, &zero, &u->step);
        return;
    }
    if (fd >= 0)
        close(fd);
    if (rd == 0 && status != 200) {
        u->phase = UP_NONE; /* refused: nothing was reserved */
        forward(u, m);      /* 507 store full, 503, … */
        return;
    }
    /* No answer in time (the supervisor may still hand out the file and
     * hold its size against the quota), or a 200 without its file or
     * token: the upload is discarded, the client told to try again. */
    if (rd == 0 && len == sizeof u->token) {
        memcpy(&u->token, body, sizeof u->token);
        u->phase = UP_WRITING; /* discarded by token */
    }
    up_fail(u, 503, "media_unavailable", "the media store did not answer; try again", NULL);
}

/* A query parameter, decoded: 1 present, 0 absent, -1 too long or malformed. */
static int query_text(struct rq *rq, const char *name, char *out, size_t cap)
{
    int n = rest_query(rq, name, out, cap);
    if (n == -1) {
        out[0] = '\0';
        return 0;
    }
    return n < 0 || multipart_url_decode(out) < 0 ? -1 : 1;
}

/* The file and the fields of a multipart body; 0, or -1 after answering 400. */
static int read_form(struct up *u, const char *ctype, size_t clen, char *name_in, size_t name_cap)
{
    struct rq *rq = u->b.rq;
    char boundary[MP_BOUNDARY_MAX + 1];
    if (multipart_boundary(ctype, clen, boundary) < 0) {
        http_error(rq, 400, "invalid_multipart", "multipart/form-data needs a valid boundary", "file");
        return -1;
    }
    struct mp_part *parts = h2o_mem_alloc_pool(&rq->req->pool, sizeof *parts * MP_MAX_PARTS);
    int n;
    const char *why;
    if (multipart_parse(rq->req->entity.base, rq->req->entity.len, boundary, parts, &n, &why) < 0) {
        http_error(rq, 400, "invalid_multipart", why, "file");
        return -1;
    }
    struct mp_form *f = h2o_mem_alloc_pool(&rq->req->pool, sizeof *f);
    const char *bad;
    if (multipart_form(parts, n, f, &bad) < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "the form's %s field is repeated or too long", bad);
        http_error(rq, 400, "invalid_multipart", msg, bad);
        return -1;
    }
    const struct mp_part *file = f->file;
    if (!file) {
        http_error(rq, 400, "missing_file", "the form has no \"file\" field", "file");
        return -1;
    }
    memcpy(u->kind, f->kind, sizeof u->kind);
    memcpy(u->sha, f->sha256, sizeof u->sha);
    snprintf(name_in, name_cap, "%s", f->file_name);
    u->data = file->data;
    u->len = file->len;
    snprintf(u->declared, sizeof u->declared, "%s", file->type);
    if (!name_in[0])
        snprintf(name_in, name_cap, "%s", file->filename);
    return 0;
}

void h_media_upload(struct rq *rq)
{
    h2o_req_t *req = rq->req;
    struct up *u = op_alloc(rq, sizeof *u);
    u->b.also_abort = up_abort;
    u->fd = -1;
    char name_in[MP_FILENAME_MAX];
    name_in[0] = '\0';
    ssize_t ci = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const char *ctype = ci >= 0 ? req->headers.entries[ci].value.base : "";
    size_t clen = ci >= 0 ? req->headers.entries[ci].value.len : 0;
    /* Only form-data is a form: another multipart type (related, mixed) is
     * a raw upload of that declared type, checked against its bytes. */
    if (clen >= 19 && !strncasecmp(ctype, "multipart/form-data", 19) &&
        (clen == 19 || ctype[19] == ';' || ctype[19] == ' ' || ctype[19] == '\t')) {
        if (read_form(u, ctype, clen, name_in, sizeof name_in) < 0)
            return;
    } else {
        if (clen >= sizeof u->declared) {
            http_error(rq, 400, "type_mismatch", "the Content-Type is too long", "file");
            return;
        }
        memcpy(u->declared, ctype, clen);
        u->declared[clen] = '\0';
        u->data = req->entity.base;
        u->len = req->entity.base ? req->entity.len : 0;
        if (query_text(rq, "kind", u->kind, sizeof u->kind) < 0) {
            http_error(rq, 400, "invalid_kind",
                       "kind must be image, video, audio, voice, document or sticker", "kind");
            return;
        }
        if (query_text(rq, "file_name", name_in, sizeof name_in) < 0 ||
            query_text(rq, "sha256", u->sha, sizeof u->sha) < 0) {
            http_error(rq, 400, "invalid_query", "file_name or sha256 is malformed or too long", NULL);
            return;
        }
    }
    if (u->kind[0] && !media_kind_ok(u->kind)) {
        http_error(rq, 400, "invalid_kind", "kind must be image, video, audio, voice, document or sticker",
                   "kind");
        return;
    }
    if (multipart_file_name(name_in, u->file_name) < 0) {
        http_error(rq, 400, "invalid_file_name",
                   "file_name must be valid UTF-8 of at most 255 bytes without control characters",
                   "file_name");
        return;
    }
    size_t sl = strlen(u->sha);
    for (size_t i = 0; i < sl; i++)
        u->sha[i] = (char)(u->sha[i] >= 'A' && u->sha[i] <= 'F' ? u->sha[i] + 32 : u->sha[i]);
    if (sl && (sl != 64 || strspn(u->sha, "0123456789abcdef") != 64)) {
        http_error(rq, 400, "invalid_sha256", "sha256 must be 64 hex digits", "sha256");
        return;
    }
    for (const char *p = u->declared; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            http_error(rq, 400, "type_mismatch", "the Content-Type is malformed", "file");
            return;
        }
    if (u->len == 0) {
        http_error(rq, 400, "empty_file", "the file is empty", "file");
        return;
    }
    if (u->len > (size_t)media_cfg->media.max_upload_bytes) {
        char msg[96];
        snprintf(msg, sizeof msg, "the file is larger than media.max_upload_bytes (%d bytes)",
                 media_cfg->media.max_upload_bytes);
        metrics_add(&http_metrics()->media_refused_too_large_total, 1);
        http_error(rq, 413, "payload_too_large", msg, "file");
        return;
    }
    uint64_t size = u->len;
    if (op_ask(u, IPC_MEDIA_UPLOAD, &size, sizeof size, -1, UPLOAD_IPC_MS, on_temp_file) == 0) {
        u->req_id = u->b.sup;
        u->phase = UP_ASKING;
    }
}

void media_put(struct rq *rq, const void *data, size_t len, const char *kind, const char *file_name,
               media_put_cb done, void *ctx)
{
    struct up *u = op_alloc(rq, sizeof *u);
    u->b.also_abort = up_abort;
    u->fd = -1;
    u->done = done;
    u->done_ctx = ctx;
    u->data = data;
    u->len = len;
    snprintf(u->kind, sizeof u->kind, "%s", kind);
    snprintf(u->file_name, sizeof u->file_name, "%s", file_name ? file_name : "");
    if (len == 0) {
        up_fail(u, 400, "empty_file", "the file is empty", "file");
        return;
    }
    if (len > (size_t)media_cfg->media.max_upload_bytes) {
        metrics_add(&http_metrics()->media_refused_too_large_total, 1);
        up_fail(u, 413, "payload_too_large", "the file is larger than media.max_upload_bytes", "file");
        return;
    }
    uint64_t size = len;
    if (op_ask(u, IPC_MEDIA_UPLOAD, &size, sizeof size, -1, UPLOAD_IPC_MS, on_temp_file) == 0) {
        u->req_id = u->b.sup;
        u->phase = UP_ASKING;
    }
}

/* ---- GET /api/media */

struct lst {
    struct op_base b;
    int limit;
    const char *params[4];
};

static void on_list(void *ctx, const PGresult *res, const char *err)
{
    struct lst *o = ctx;
    if (!op_done(o, res, err))
        return;
    rest_answer_page(o->b.rq, res, 0, o->limit, 0, 1, -1);
}

/* Newest first; the cursor is the seq of the last one shown. */
static const char SQL_LIST[] =
    "SELECT wapi_media_json(m)::text, m.seq FROM wa_media m WHERE ($1::bigint IS NULL OR m.seq < $1::bigint) "
    "AND ($2::text IS NULL OR m.kind = $2) AND ($3::text IS NULL OR m.state = $3) ORDER BY m.seq DESC LIMIT "
    "$4";

void h_media_list(struct rq *rq)
{
    int limit;
    int64_t cur;
    int has = rest_page(rq, LIST_DEFAULT, LIST_MAX, &limit, &cur);
    if (has < 0)
        return;
    static const char *const states[] = {"pending", "stored", "failed", "expired", NULL};
    char *kind = h2o_mem_alloc_pool(&rq->req->pool, 16), *state = h2o_mem_alloc_pool(&rq->req->pool, 16);
    int hk = rest_query(rq, "kind", kind, 16), hs = rest_query(rq, "state", state, 16);
    if (hk != -1 && (hk < 0 || !media_kind_ok(kind))) {
        http_error(rq, 400, "invalid_kind", "kind must be image, video, audio, voice, document or sticker",
                   "kind");
        return;
    }
    if (hs != -1 && (hs < 0 || !one_of(state, states))) {
        http_error(rq, 400, "invalid_state", "state must be pending, stored, failed or expired", "state");
        return;
    }
    struct lst *o = op_alloc(rq, sizeof *o);
    o->limit = limit;
    char *p0 = h2o_mem_alloc_pool(&rq->req->pool, 24), *p3 = h2o_mem_alloc_pool(&rq->req->pool, 16);
    snprintf(p0, 24, "%" PRId64, cur);
    snprintf(p3, 16, "%d", limit + 1);
    o->params[0] = has ? p0 : NULL;
    o->params[1] = hk > 0 ? kind : NULL;
    o->params[2] = hs > 0 ? state : NULL;
    o->params[3] = p3;
    op_run(o, SQL_LIST, 4, o->params, on_list);
}

/* ---- DELETE /api/media/{id}: the row goes; its file goes with the next
 * sweep once no other row names it. */

static void on_deleted(void *ctx, const PGresult *res, const char *err)
{
    struct op_base *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) == 0)
        http_error(o->rq, 404, "not_found", "no media with this id", NULL);
    else
        http_send(o->rq, 204, NULL, "", 0);
}

/* An op on one media row: the {id} of the path is its one parameter. */
struct one {
    struct op_base b;
    const char *params[1];
};

static void by_id(struct rq *rq, const char *sql, db_cb cb)
{
    char *id = media_id_param(rq);
    if (!id)
        return;
    struct one *o = op_alloc(rq, sizeof *o);
    o->params[0] = id;
    op_run(o, sql, 1, o->params, cb);
}

void h_media_delete(struct rq *rq)
{
    by_id(rq, "DELETE FROM wa_media WHERE id = $1 RETURNING id", on_deleted);
}

/* ---- GET /api/media/{id}/url: a link that works without credentials
 * until it expires. */

static void answer_link(struct one *o)
{
    struct rq *rq = o->b.rq;
    long long exp = (long long)time(NULL) + media_cfg->media.url_ttl_seconds;
    char path[256], at[RFC3339_LEN];
    if (media_url_path(media_key(), o->params[0], exp, path, sizeof path) < 0) {
        http_error(rq, 500, NULL, "the link does not fit", NULL);
        return;
    }
    rfc3339_s((time_t)exp, at, sizeof at);
    const char *base = media_cfg->base_url;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    struct sbuf url, b;
    sbuf_init(&url);
    sbuf_add(&url, base, bl);
    sbuf_adds(&url, path);
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    if (url.oom)
        jw_fail(&w);
    else
        jw_kstr(&w, "url", url.buf);
    jw_kstr(&w, "expires_at", at);
    jw_obj_end(&w);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, 200, &w);
    sbuf_free(&b);
    sbuf_free(&url);
}

static void on_link_key(void *ctx, const struct ipc_msg *m)
{
    struct one *o = ctx;
    if (media_key_take(o->b.rq, m) == 0)
        answer_link(o);
}

static void on_link_row(void *ctx, const PGresult *res, const char *err)
{
    struct one *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "stored") != 0) {
        http_error(o->b.rq, 404, "not_found", "no stored media with this id", NULL);
        return;
    }
    if (media_key()) {
        answer_link(o);
        return;
    }
    op_ask(o, IPC_MEDIA_KEY, NULL, 0, -1, MEDIA_KEY_IPC_MS, on_link_key);
}

void h_media_url(struct rq *rq)
{
    by_id(rq, "SELECT state FROM wa_media WHERE id = $1", on_link_row);
}

int media_fetch_reply(const struct ipc_msg *m, char *id, size_t cap, uint32_t *status, const uint8_t **body,
                      uint32_t *len)
{
    int fd = sup_reply_fd(m);
    if (fd >= 0)
        close(fd);
    if (sup_reply_read(m, status, body, len) < 0)
        return -1;
    if (*status != 201)
        return 0;
    char err[64];
    yajl_val v = json_parse((const char *)*body, *len, 4096, err, sizeof err);
    const char *s = v ? json_str(v, "id") : NULL;
    int ok = s && strlen(s) < cap && rest_id_ok(s, strlen(s));
    if (ok)
        memcpy(id, s, strlen(s) + 1);
    yajl_tree_free(v);
    return ok ? 1 : -1;
}
