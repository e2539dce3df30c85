/* Profile pictures, a person's, a group's or our own: where one is (and,
 * with ?download=true, the picture itself fetched into the media store
 * once per picture), and setting or removing one from an uploaded image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "handlers.h"
#include "media_api.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define PICTURE_TIMEOUT_MS 15000
#define FETCH_TIMEOUT_MS 90000 /* the supervisor's URL fetch (60 s) and the publication */

struct get_op {
    struct op_base b;
    char *info; /* the supervisor's answer: {jid, id, type, url, direct_path} (pool) */
    uint32_t info_len;
    char url[1024], file_name[160];
    const char *params[1];
};

/* The picture's answer with "media_id" added; the id is [A-Za-z0-9_]. */
static void answer_with_media(struct get_op *o, const char *media_id)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, o->info, o->info_len - 1); /* without its closing brace */
    sbuf_addf(&b, ",\"media_id\":\"%s\"}", media_id);
    o->b.rq->on_abort = NULL;
    if (b.oom)
        http_error(o->b.rq, 500, NULL, "out of memory", NULL);
    else
        http_json(o->b.rq, 200, b.buf, b.len);
    sbuf_free(&b);
}

static void on_fetched(void *ctx, const struct ipc_msg *m)
{
    struct get_op *o = ctx;
    uint32_t status = 0, len = 0;
    const uint8_t *body = NULL;
    char id[80];
    int r = media_fetch_reply(m, id, sizeof id, &status, &body, &len);
    if (r == 1) {
        answer_with_media(o, id);
        return;
    }
    o->b.rq->on_abort = NULL;
    if (r < 0 && !body) {
        http_error(o->b.rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return;
    }
    char err[64];
    yajl_val e = r == 0 ? json_parse((const char *)body, len, 4096, err, sizeof err) : NULL;
    yajl_val em = e ? json_member(e, "error") : NULL;
    const char *msg = em ? json_str(em, "message") : NULL;
    http_error(o->b.rq, 502, "picture_fetch_failed", msg ? msg : "the picture could not be fetched", NULL);
    yajl_tree_free(e);
}

/* A picture fetched before (the same person, size and picture id) is the
 * same file: fetched once. */
static void on_cached(void *ctx, const PGresult *res, const char *err)
{
    struct get_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) == 1) {
        answer_with_media(o, PQgetvalue(res, 0, 0));
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_bytes(&b, o->url, (uint32_t)strlen(o->url));
    ipc_wr_bytes(&b, "image", 5);
    ipc_wr_bytes(&b, o->file_name, (uint32_t)strlen(o->file_name));
    if (b.oom) {
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 500, NULL, "out of memory", NULL);
    } else {
        op_ask(o, IPC_MEDIA_FETCH, b.buf, b.len, -1, FETCH_TIMEOUT_MS, on_fetched);
    }
    sbuf_free(&b);
}

static void on_where(void *ctx, const struct ipc_msg *m)
{
    struct get_op *o = ctx;
    uint32_t status, len;
    const uint8_t *body;
    struct rq *rq = o->b.rq;
    if (sup_reply_read(m, &status, &body, &len) < 0) {
        rq->on_abort = NULL;
        http_error(rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return;
    }
    char err[64];
    yajl_val v = status == 200 ? json_parse((const char *)body, len, 16384, err, sizeof err) : NULL;
    const char *jid = v ? json_str(v, "jid") : NULL, *id = v ? json_str(v, "id") : NULL;
    const char *type = v ? json_str(v, "type") : NULL, *url = v ? json_str(v, "url") : NULL;
    int ok = jid && id && type && url && strlen(url) < sizeof o->url && len > 2 && body[len - 1] == '}' &&
             strspn(id, "0123456789abcdefABCDEF") == strlen(id) && strlen(id) <= 40;
    if (!ok) {
        rq->on_abort = NULL;
        http_json(rq, (int)status, (const char *)body, len);
        yajl_tree_free(v);
        return;
    }
    o->info = h2o_mem_alloc_pool(&rq->req->pool, len);
    memcpy(o->info, body, len);
    o->info_len = len;
    snprintf(o->url, sizeof o->url, "%s", url);
    snprintf(o->file_name, sizeof o->file_name, "picture-%.*s-%s-%s.jpg", (int)strcspn(jid, "@"), jid, type,
             id);
    yajl_tree_free(v);
    o->params[0] = o->file_name;
    op_run(o, "SELECT id FROM wa_media WHERE file_name = $1 AND state = 'stored' ORDER BY seq DESC LIMIT 1",
           1, o->params, on_cached);
}

void picture_get(struct rq *rq, const char *jid)
{
    char type[16], dl[8];
    int tl = rest_query(rq, "type", type, sizeof type);
    int dn = rest_query(rq, "download", dl, sizeof dl);
    if (tl != -1 && (tl < 0 || (strcmp(type, "image") && strcmp(type, "preview")))) {
        http_error(rq, 400, "invalid_type", "type must be image or preview", "type");
        return;
    }
    if (dn != -1 && (dn < 0 || (strcmp(dl, "true") && strcmp(dl, "false")))) {
        http_error(rq, 400, "invalid_download", "download must be true or false", "download");
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_PICTURE);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_u32(&b, tl > 0 && !strcmp(type, "preview"));
    if (dn > 0 && !strcmp(dl, "true") && !b.oom) {
        struct get_op *o = op_alloc(rq, sizeof *o);
        op_ask(o, IPC_ACTION, b.buf, b.len, -1, PICTURE_TIMEOUT_MS, on_where);
        sbuf_free(&b);
        return;
    }
    sup_ask_action(rq, &b, PICTURE_TIMEOUT_MS);
}

/* Sets (sha: a stored image's digest) or removes (sha NULL) the picture. */
static void picture_change(struct rq *rq, const char *jid, const char *sha)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_PICTURE_SET);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_u32(&b, sha == NULL);
    if (sha)
        ipc_wr_bytes(&b, sha, (uint32_t)strlen(sha));
    sup_ask_action(rq, &b, PICTURE_TIMEOUT_MS);
}

struct picture_op {
    struct op_base b;
    const char *jid; /* the group's, or "me" */
    const char *params[1];
};

static void on_picture_media(void *ctx, const PGresult *res, const char *err)
{
    struct picture_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct rq *rq = o->b.rq;
    rq->on_abort = NULL;
    if (PQntuples(res) != 1) {
        http_error(rq, 404, "media_not_found", "no such media", "media_id");
    } else if (strcmp(PQgetvalue(res, 0, 2), "stored")) {
        http_error(rq, 409, "media_not_ready", "the media is not stored (yet)", "media_id");
    } else if (strcmp(PQgetvalue(res, 0, 1), "image")) {
        http_error(rq, 400, "invalid_picture", "a picture must be an image (JPEG, PNG or WebP)", "media_id");
    } else {
        picture_change(rq, o->jid, PQgetvalue(res, 0, 0));
    }
}

void picture_put(struct rq *rq, const char *target)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    const char *id = json_str(body, "media_id");
    if (!id || !rest_id_ok(id, strlen(id))) {
        http_error(rq, 400, "invalid_media_id", "media_id must be the id of an uploaded image", "media_id");
        yajl_tree_free(body);
        return;
    }
    struct picture_op *o = op_alloc(rq, sizeof *o);
    o->jid = target;
    o->params[0] = h2o_mem_alloc_pool(&rq->req->pool, strlen(id) + 1);
    memcpy((char *)o->params[0], id, strlen(id) + 1);
    yajl_tree_free(body);
    op_run(o, "SELECT sha256, kind, state FROM wa_media WHERE id = $1", 1, o->params, on_picture_media);
}

void picture_remove(struct rq *rq, const char *target)
{
    picture_change(rq, target, NULL);
}
