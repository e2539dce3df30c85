/* /api/webhooks: targets for signed event deliveries (Standard Webhooks),
 * their delivery log and redelivery. The supervisor does the sending. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "common/whsec.h"
#include "common/webhook_url.h"
#include "db.h"
#include "audit.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"

#define KEY_BYTES 32 /* a new secret's key */
#define MAX_WEBHOOKS 100

static const struct wapi_config *cfg;

void webhooks_api_init(const struct wapi_config *c)
{
    cfg = c;
}

/* "audit.*": every audit.<action> event (who did what; admins' webhooks only). */
static const char *const event_types[] = {"message.received",
                                          "message.sent",
                                          "message.status",
                                          "message.reaction",
                                          "message.edited",
                                          "message.revoked",
                                          "message.media_stored",
                                          "message.media_failed",
                                          "message.undecryptable",
                                          "message.updated",
                                          "group.created",
                                          "group.updated",
                                          "group.participants",
                                          "call.received",
                                          "chat.merged",
                                          "poll.vote",
                                          "chat.disappearing",
                                          "history.progress",
                                          "history.completed",
                                          "chat.updated",
                                          "contact.updated",
                                          "audit.*",
                                          "*",
                                          NULL};

#define HOOK_JSON                                                                                            \
    "json_build_object('id', w.id, 'url', w.url, 'events', to_json(w.events), 'enabled', w.enabled, "        \
    "'created_at', " REST_TS("w.created_at") ", 'updated_at', " REST_TS("w.updated_at") ")::text"

struct op {
    struct op_base base; /* first: op.h */
    int limit;
    int show_secret;
    const char *params[8];
    char id[40];
    char url[WEBHOOK_URL_MAX];
    char events[256];
    char secret[128];
    char enabled[8];
    char n1[24], n2[24], n3[24];
    int audited; /* the statement wrote an audit row */
};

/* The actor as params[at..at+2] (user, key, address), for HOOK_AUDIT. */
static void hook_actor(struct op *o, int at)
{
    struct audit_actor ac;
    audit_actor(o->base.rq, &ac);
    o->params[at] = ac.user;
    o->params[at + 1] = ac.key;
    o->params[at + 2] = ac.ip;
    o->audited = 1;
}

static struct op *op_new(struct rq *rq)
{
    return op_alloc(rq, sizeof(struct op));
}

static void op_query(struct op *o, const char *sql, int n, db_cb cb)
{
    op_run(o, sql, n, o->params, cb);
}

static int random_hex(char *out, size_t bytes)
{
    unsigned char r[32];
    if (bytes > sizeof r || getrandom(r, bytes, 0) != (ssize_t)bytes)
        return -1;
    hex_encode(out, r, bytes, 0);
    return 0;
}

/* ---- field checks: 0 ok, -1 after answering 400 */

static int check_url(struct rq *rq, yajl_val v, char *out, size_t outlen)
{
    if (!v || !YAJL_IS_STRING(v)) {
        http_error(rq, 400, "invalid_url", "url must be an http:// or https:// URL", "url");
        return -1;
    }
    struct webhook_url u;
    char err[128];
    if (webhook_url_parse(v->u.string, &u, err, sizeof err) < 0) {
        http_error(rq, 400, "invalid_url", err, "url");
        return -1;
    }
    if (!cfg->webhooks.allow_private && webhook_host_private(u.host)) {
        http_error(
            rq, 400, "private_url",
            "url points at a private, loopback or link-local address (allow with webhooks.allow_private)",
            "url");
        return -1;
    }
    snprintf(out, outlen, "%s", v->u.string);
    return 0;
}

/* A PostgreSQL text[] literal of known names only (no quoting needed). */
static int check_events(struct rq *rq, yajl_val v, char *out, size_t outlen)
{
    int ok = v && YAJL_IS_ARRAY(v) && v->u.array.len >= 1 && v->u.array.len <= 16;
    size_t used = 0;
    out[used++] = '{';
    for (size_t i = 0; ok && i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        ok = 0;
        for (int k = 0; YAJL_IS_STRING(e) && event_types[k]; k++)
            if (!strcmp(e->u.string, event_types[k]))
                ok = 1;
        if (ok) {
            size_t l = strlen(e->u.string);
            if (used + l + 3 > outlen)
                ok = 0;
            else {
                if (i)
                    out[used++] = ',';
                out[used++] = '"';
                memcpy(out + used, e->u.string, l);
                used += l;
                out[used++] = '"';
            }
        }
    }
    if (!ok) {
        http_error(
            rq, 400, "invalid_events",
            "events must be a non-empty array of: message.received, message.sent, message.status, "
            "message.reaction, message.edited, message.revoked, message.media_stored, message.media_failed, "
            "message.undecryptable, message.updated, "
            "group.created, group.updated, group.participants, call.received, chat.merged, poll.vote, "
            "chat.disappearing, history.progress, history.completed, chat.updated, contact.updated, audit.*, "
            "or \"*\"",
            "events");
        return -1;
    }
    out[used++] = '}';
    out[used] = '\0';
    return 0;
}

static int check_secret(struct rq *rq, yajl_val v, char *out, size_t outlen)
{
    unsigned char key[WHSEC_KEY_MAX];
    if (!v || YAJL_IS_NULL(v)) {
        if (getrandom(key, KEY_BYTES, 0) != KEY_BYTES || whsec_encode(key, KEY_BYTES, out, outlen) < 0) {
            http_error(rq, 500, NULL, "no randomness available", NULL);
            return -1;
        }
        return 0;
    }
    const char *s = YAJL_IS_STRING(v) ? v->u.string : "";
    size_t n = strlen(s);
    int ok = n < outlen && whsec_decode(s, key) >= 0;
    if (!ok) {
        http_error(rq, 400, "invalid_secret", "secret must be whsec_ followed by base64 of 24 to 64 bytes",
                   "secret");
        return -1;
    }
    memcpy(out, s, n + 1);
    return 0;
}

/* ---- answers */

static void on_hook(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *json = rest_one_row(o->base.rq, res, err, "no webhook with this id");
    if (!json)
        return;
    if (o->audited)
        audit_kick();
    if (!o->show_secret) {
        http_json(o->base.rq, 200, json, strlen(json));
        return;
    }
    /* The secret is shown once: when it is set. */
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_raw_members(&w, json); /* the webhook, as PostgreSQL wrote it */
    jw_kstr(&w, "secret", o->secret);
    jw_obj_end(&w);
    http_jsonw(o->base.rq, o->show_secret == 2 ? 201 : 200, &w);
    sbuf_free(&b);
}

static void on_hook_list(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    rest_answer_page(o->base.rq, res, 0, -1, 0, -1, -1);
}

/* The audit row names where deliveries go without what may be a secret in
 * the URL (user:password, query). */
#define HOOK_AUDIT(action, actor_params)                                                                     \
    "a AS (INSERT INTO wapi_audit (actor_user_id, actor_key_id, actor_ip, action, target, detail) "          \
    "SELECT " actor_params ", '" action "', w.id, jsonb_build_object('url', regexp_replace(substring(w.url " \
    "from '^[A-Za-z]+://[^/?#]*'), '//[^@]*@', '//'), 'events', to_jsonb(w.events), 'enabled', w.enabled) "  \
    "FROM w) "

static const char SQL_CREATE[] =
    "WITH w AS (INSERT INTO wa_webhooks (id, url, events, secret, created_by) "
    "SELECT $1, $2, $3::text[], $4, $5 WHERE (SELECT count(*) FROM wa_webhooks) < "
    "100"
    " RETURNING *), " HOOK_AUDIT("webhook.created", "$6, nullif($7, ''), $8") "SELECT " HOOK_JSON " FROM w";

static void create_hook(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    if (check_url(rq, json_member(body, "url"), o->url, sizeof o->url) < 0 ||
        check_events(rq, json_member(body, "events"), o->events, sizeof o->events) < 0 ||
        check_secret(rq, json_member(body, "secret"), o->secret, sizeof o->secret) < 0)
        goto out;
    yajl_val en = json_member(body, "enabled");
    if (en && !YAJL_IS_TRUE(en)) {
        http_error(rq, 400, "invalid_enabled", "a new webhook is enabled; disable it with PATCH", "enabled");
        goto out;
    }
    memcpy(o->id, "wh_", 3);
    if (random_hex(o->id + 3, 12) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    o->show_secret = 2;
    o->params[0] = o->id;
    o->params[1] = o->url;
    o->params[2] = o->events;
    o->params[3] = o->secret;
    o->params[4] = rq->principal.user_id[0] ? rq->principal.user_id : NULL;
    hook_actor(o, 5);
    op_query(o, SQL_CREATE, 8, on_hook);
out:
    yajl_tree_free(body);
}

void h_webhooks_create(struct rq *rq)
{
    create_hook(rq);
}

void h_webhooks_list(struct rq *rq)
{
    struct op *o = op_new(rq);
    op_query(o, "SELECT " HOOK_JSON " FROM wa_webhooks w ORDER BY w.created_at, w.id", 0, on_hook_list);
}

static const char SQL_PATCH[] =
    "WITH w AS (UPDATE wa_webhooks w SET url = coalesce($2, w.url), events = coalesce($3::text[], w.events), "
    "secret = coalesce($4, w.secret), enabled = coalesce($5::boolean, w.enabled), updated_at = now() "
    "WHERE w.id = $1 RETURNING *), " HOOK_AUDIT("webhook.changed",
                                                "$6, nullif($7, ''), $8") "SELECT " HOOK_JSON " FROM w";

static void patch_hook(struct rq *rq, struct op *o)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    o->params[0] = o->id;
    yajl_val v;
    if ((v = json_member(body, "url"))) {
        if (check_url(rq, v, o->url, sizeof o->url) < 0)
            goto out;
        o->params[1] = o->url;
    }
    if ((v = json_member(body, "events"))) {
        if (check_events(rq, v, o->events, sizeof o->events) < 0)
            goto out;
        o->params[2] = o->events;
    }
    if ((v = json_member(body, "secret"))) {
        if (YAJL_IS_NULL(v)) {
            http_error(rq, 400, "invalid_secret",
                       "secret must be whsec_ followed by base64 of 24 to 64 bytes", "secret");
            goto out;
        }
        if (check_secret(rq, v, o->secret, sizeof o->secret) < 0)
            goto out;
        o->params[3] = o->secret;
        o->show_secret = 1;
    }
    if ((v = json_member(body, "enabled"))) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            http_error(rq, 400, "invalid_enabled", "enabled must be true or false", "enabled");
            goto out;
        }
        snprintf(o->enabled, sizeof o->enabled, "%s", YAJL_IS_TRUE(v) ? "true" : "false");
        o->params[4] = o->enabled;
    }
    hook_actor(o, 5);
    op_query(o, SQL_PATCH, 8, on_hook);
out:
    yajl_tree_free(body);
}

static void on_deleted(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err) || !rest_one_row(o->base.rq, res, err, "no webhook with this id"))
        return;
    audit_kick();
    http_send(o->base.rq, 204, NULL, "", 0);
}

/* ---- deliveries */

#define DELIVERY_JSON                                                                                        \
    "json_build_object('id', d.id::text, 'webhook_id', d.webhook_id, 'event_id', d.event_id::text, "         \
    "'event_type', e.type, 'state', d.state, 'attempts', d.attempts, "                                       \
    "'next_attempt_at', CASE WHEN d.state = 'pending' THEN " REST_TS(                                        \
        "d.next_attempt_at") " END, "                                                                        \
                             "'last_attempt_at', " REST_TS(                                                  \
                                 "d.last_attempt_at") ", 'last_status', d.last_status, "                     \
                                                      "'last_error', d.last_error, "                         \
                                                      "'delivered_at', " REST_TS(                            \
                                                          "d.delivered_at") ", "                             \
                                                                            "'created_at', " REST_TS(        \
                                                                                "d.created_at") ")::text"

static void on_deliveries(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    int rows = PQntuples(res);
    /* The first row says whether the webhook exists; deliveries follow. */
    if (rows < 1 || PQgetisnull(res, 0, 0)) {
        http_error(o->base.rq, 404, "not_found", "no webhook with this id", NULL);
        return;
    }
    rest_answer_page(o->base.rq, res, 1, o->limit, 1, 2, -1);
}

static const char SQL_DELIVERIES[] =
    "SELECT (SELECT id FROM wa_webhooks WHERE id = $1), NULL, NULL "
    "UNION ALL (SELECT NULL, " DELIVERY_JSON
    ", d.id FROM wa_webhook_deliveries d JOIN wa_events e ON e.id = d.event_id "
    "WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2::bigint) AND ($3::text IS NULL OR d.state "
    "= $3) "
    "ORDER BY d.id DESC LIMIT $4)";

static const char SQL_REDELIVER[] =
    "UPDATE wa_webhook_deliveries d SET state = 'pending', attempts = 0, next_attempt_at = now(), "
    "last_error = NULL FROM wa_events e WHERE d.id = $2 AND d.webhook_id = $1 AND e.id = d.event_id "
    "RETURNING " DELIVERY_JSON;

static void on_redeliver(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *json = rest_one_row(o->base.rq, res, err, "no such delivery of this webhook");
    if (!json)
        return;
    http_json(o->base.rq, 202, json, strlen(json));
}

/* A new op for /api/webhooks/{id}/...; NULL after answering 404. */
static struct op *hook_op(struct rq *rq)
{
    char *id = http_param(rq, 0);
    if (!id || !rest_id_ok(id, strlen(id)) || strlen(id) >= sizeof((struct op *)0)->id) {
        http_error(rq, 404, "not_found", "no webhook with this id", NULL);
        return NULL;
    }
    struct op *o = op_new(rq);
    memcpy(o->id, id, strlen(id) + 1);
    o->params[0] = o->id;
    return o;
}

void h_webhook_get(struct rq *rq)
{
    struct op *o = hook_op(rq);
    if (o)
        op_query(o, "SELECT " HOOK_JSON " FROM wa_webhooks w WHERE w.id = $1", 1, on_hook);
}

void h_webhook_patch(struct rq *rq)
{
    struct op *o = hook_op(rq);
    if (o)
        patch_hook(rq, o);
}

void h_webhook_delete(struct rq *rq)
{
    struct op *o = hook_op(rq);
    if (!o)
        return;
    hook_actor(o, 1);
    op_query(o,
             "WITH w AS (DELETE FROM wa_webhooks WHERE id = $1 RETURNING *), " HOOK_AUDIT(
                 "webhook.deleted", "$2, nullif($3, ''), $4") "SELECT id FROM w",
             4, on_deleted);
}

void h_webhook_deliveries(struct rq *rq)
{
    struct op *o = hook_op(rq);
    if (!o)
        return;
    int limit;
    int64_t cur;
    int has = rest_page(rq, 50, 200, &limit, &cur);
    if (has < 0)
        return;
    char st[16];
    int sl = rest_query(rq, "state", st, sizeof st);
    if (sl != -1 && (sl < 0 || (strcmp(st, "pending") && strcmp(st, "delivered") && strcmp(st, "failed") &&
                                strcmp(st, "dead")))) {
        http_error(rq, 400, "invalid_state", "state must be pending, delivered, failed or dead", "state");
        return;
    }
    snprintf(o->n1, sizeof o->n1, "%" PRId64, cur);
    snprintf(o->n2, sizeof o->n2, "%d", limit + 1);
    snprintf(o->n3, sizeof o->n3, "%s", sl > 0 ? st : "");
    o->limit = limit;
    o->params[1] = has ? o->n1 : NULL;
    o->params[2] = sl > 0 ? o->n3 : NULL;
    o->params[3] = o->n2;
    op_query(o, SQL_DELIVERIES, 4, on_deliveries);
}

void h_webhook_redeliver(struct rq *rq)
{
    char *num = http_param(rq, 1), *e = NULL;
    long long did = num && strlen(num) < 20 ? strtoll(num, &e, 10) : 0;
    if (!num || !e || *e || did < 1) {
        http_error(rq, 404, "not_found", "no such delivery of this webhook", NULL);
        return;
    }
    struct op *o = hook_op(rq);
    if (!o)
        return;
    snprintf(o->n1, sizeof o->n1, "%lld", did);
    o->params[1] = o->n1;
    op_query(o, SQL_REDELIVER, 2, on_redeliver);
}
