/* Users and how people join: the admin plugin's list-users, set-role and
 * remove-user (Better Auth's paths and shapes), and invitations, single-use
 * sign-up links that expire. The router lets only those with users:read /
 * users:write in; the last admin can be neither demoted nor removed. */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "audit.h"
#include "auth_http.h"
#include "common/auth_input.h"
#include "common/auth_token.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"

#define LIST_MAX 1000
#define INVITE_TTL_DEFAULT_S (7 * 86400)
#define INVITE_TTL_MIN_S 300
#define INVITE_TTL_MAX_S (30 * 86400)

struct user_op {
    struct op_base base;
    int limit, offset;
    int reread; /* answer with the user (set-role), not {success} */
    char user_id[128];
    char token[AUTH_TOKEN_LEN + 1]; /* a new invitation's, shown once */
};

/* ---- GET /api/auth/admin/list-users?limit=&offset= */

static void on_users(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "users");
    jw_arr(&w);
    for (int i = 0; i < PQntuples(res); i++)
        auth_user_json(&w, res, i, 0);
    jw_arr_end(&w);
    jw_kraw(&w, "total", PQntuples(res) ? PQgetvalue(res, 0, 8) : "0"); /* count(*) */
    jw_kint(&w, "limit", o->limit);
    jw_kint(&w, "offset", o->offset);
    jw_obj_end(&w);
    http_add_header(o->base.rq, "cache-control", "no-store");
    http_jsonw(o->base.rq, 200, &w);
    sbuf_free(&b);
}

/* A non-negative integer query parameter within max; def when absent, -1
 * after answering 400. */
static int int_param(struct rq *rq, const char *name, int def, int max)
{
    char v[16], *e;
    int l = rest_query(rq, name, v, sizeof v);
    if (l == -1)
        return def;
    long n = l > 0 ? strtol(v, &e, 10) : -1;
    if (l <= 0 || *e || n < 0 || n > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an integer from 0 to %d", name, max);
        auth_error(rq, 400, "VALIDATION_ERROR", msg, name);
        return -1;
    }
    return (int)n;
}

void h_users_list(struct rq *rq)
{
    int limit = int_param(rq, "limit", 100, LIST_MAX),
        offset = limit < 0 ? -1 : int_param(rq, "offset", 0, 1 << 30);
    if (limit < 0 || offset < 0)
        return;
    struct user_op *o = op_alloc(rq, sizeof *o);
    o->limit = limit;
    o->offset = offset;
    char l[16], off[16];
    snprintf(l, sizeof l, "%d", limit);
    snprintf(off, sizeof off, "%d", offset);
    const char *p[2] = {l, off};
    op_run(o,
           "SELECT " SQL_USER_COLS ", count(*) OVER () FROM \"user\" u ORDER BY u.\"createdAt\", u.\"id\" "
           "LIMIT $1 OFFSET $2",
           2, p, on_users);
}

/* ---- POST /api/auth/admin/set-role {userId, role} and remove-user {userId} */

static void on_user_now(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        auth_error(o->base.rq, 404, "USER_NOT_FOUND", "User not found", "userId");
        return;
    }
    auth_user_answer(o->base.rq, res);
}

static void on_user_row(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *st = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    struct rq *rq = o->base.rq;
    if (!strcmp(st, "not_found")) {
        auth_error(rq, 404, "USER_NOT_FOUND", "User not found", "userId");
        return;
    }
    if (!strcmp(st, "last_admin")) {
        auth_error(rq, 409, "LAST_ADMIN",
                   "the last admin cannot be demoted or removed; make another admin first", "userId");
        return;
    }
    if (strncmp(st, "ok", 2) != 0) {
        rest_db_error(rq, st);
        return;
    }
    /* Keys of this user cached here lose their old role now; other workers
     * hear of it through the audit event, or within the cache's lifetime. */
    apikey_forget(NULL, o->user_id);
    audit_kick();
    if (!o->reread) {
        static const char ok[] = "{\"success\":true}";
        http_json(rq, 200, ok, sizeof ok - 1);
        return;
    }
    /* set-role answers with the user as it is now (a new statement: the
     * change is not visible to the one that made it). */
    const char *p[1] = {o->user_id};
    op_run(o, "SELECT " SQL_USER_COLS " FROM \"user\" u WHERE u.\"id\" = $1", 1, p, on_user_now);
}

/* The user and the actor's columns of both statements. */
static struct user_op *user_change(struct rq *rq, yajl_val body, struct audit_actor *ac)
{
    const char *id = auth_field(rq, body, "userId", 1, 1, 127, NULL);
    if (!id)
        return NULL;
    struct user_op *o = op_alloc(rq, sizeof *o);
    snprintf(o->user_id, sizeof o->user_id, "%s", id);
    audit_actor(rq, ac);
    return o;
}

void h_users_set_role(struct rq *rq)
{
    yajl_val body = auth_body(rq);
    if (!body)
        return;
    struct audit_actor ac;
    const char *role = auth_field(rq, body, "role", 1, 1, 16, NULL);
    enum role r = role ? authz_role_parse(role) : ROLE_NONE;
    if (role && r == ROLE_NONE)
        auth_error(rq, 400, "VALIDATION_ERROR", "role must be \"admin\", \"member\" or \"viewer\"", "role");
    struct user_op *o = r != ROLE_NONE ? user_change(rq, body, &ac) : NULL;
    if (o) {
        const char *p[5] = {o->user_id, authz_role_name(r), ac.user, ac.key, ac.ip};
        o->reread = 1;
        op_run(o, "SELECT wapi_set_role($1, $2, $3, $4, $5)", 5, p, on_user_row);
    }
    yajl_tree_free(body);
}

void h_users_remove(struct rq *rq)
{
    yajl_val body = auth_body(rq);
    if (!body)
        return;
    struct audit_actor ac;
    struct user_op *o = user_change(rq, body, &ac);
    if (o) {
        const char *p[4] = {o->user_id, ac.user, ac.key, ac.ip};
        op_run(o, "SELECT wapi_remove_user($1, $2, $3, $4)", 4, p, on_user_row);
    }
    yajl_tree_free(body);
}

/* ---- /api/invitations */

#define INVITE_JSON                                                                                          \
    "json_build_object('id', i.id, 'email', i.email, 'role', i.role, 'state', CASE "                         \
    "WHEN i.used_at IS NOT NULL THEN 'used' WHEN i.revoked_at IS NOT NULL THEN 'revoked' "                   \
    "WHEN i.expires_at <= now() THEN 'expired' ELSE 'pending' END, 'created_by', i.created_by, "             \
    "'created_at', " REST_TS("i.created_at") ", 'expires_at', " REST_TS(                                     \
        "i.expires_at") ", 'used_at', " REST_TS("i.used_at") ", 'used_by', i.used_by)::text"

static void on_invitations(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    http_add_header(o->base.rq, "cache-control", "no-store");
    rest_answer_page(o->base.rq, res, 0, -1, 0, -1, -1);
}

void h_invitations_list(struct rq *rq)
{
    struct user_op *o = op_alloc(rq, sizeof *o);
    op_run(o, "SELECT " INVITE_JSON " FROM wapi_invitations i ORDER BY i.created_at DESC, i.id LIMIT 200", 0,
           NULL, on_invitations);
}

static void on_invited(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    struct rq *rq = o->base.rq;
    if (!op_done(o, res, err) || PQntuples(res) != 1) {
        if (res)
            http_error(rq, 500, NULL, "invitation not stored", NULL);
        OPENSSL_cleanse(o->token, sizeof o->token);
        return;
    }
    audit_kick();
    /* The token is shown once, here, in the link and alone. */
    size_t bl = strlen(AUTHC.base_url);
    while (bl > 0 && AUTHC.base_url[bl - 1] == '/')
        bl--;
    struct sbuf url;
    sbuf_init(&url);
    sbuf_add(&url, AUTHC.base_url, bl);
    sbuf_adds(&url, "/#/sign-up?invitation=");
    sbuf_adds(&url, o->token);
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_raw_members(&w, PQgetvalue(res, 0, 0)); /* the invitation, as PostgreSQL wrote it */
    jw_kstr(&w, "token", o->token);
    if (url.oom)
        jw_fail(&w);
    else
        jw_kstr(&w, "url", url.buf);
    jw_obj_end(&w);
    OPENSSL_cleanse(o->token, sizeof o->token);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, 201, &w);
    if (url.buf)
        OPENSSL_cleanse(url.buf, url.cap);
    sbuf_free(&url);
    if (b.buf)
        OPENSSL_cleanse(b.buf, b.cap);
    sbuf_free(&b);
}

void h_invitations_create(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    char email[256] = "";
    const char *role = "member";
    int64_t ttl = INVITE_TTL_DEFAULT_S;
    yajl_val v = json_member(body, "email");
    if (v && !YAJL_IS_NULL(v) && (!YAJL_IS_STRING(v) || !auth_email_ok(v->u.string, email, sizeof email))) {
        http_error(rq, 400, "invalid_email", "email must be an email address (or null: anyone with the link)",
                   "email");
        goto out;
    }
    if ((v = json_member(body, "role"))) {
        enum role r = YAJL_IS_STRING(v) ? authz_role_parse(v->u.string) : ROLE_NONE;
        if (r == ROLE_NONE) {
            http_error(rq, 400, "invalid_role", "role must be \"admin\", \"member\" or \"viewer\"", "role");
            goto out;
        }
        role = authz_role_name(r);
    }
    int has = json_int(body, "expires_in", &ttl);
    if (has < 0 || ttl < INVITE_TTL_MIN_S || ttl > INVITE_TTL_MAX_S) {
        http_error(rq, 400, "invalid_expires_in",
                   "expires_in must be a number of seconds from 300 to 2592000 (30 days)", "expires_in");
        goto out;
    }
    struct user_op *o = op_alloc(rq, sizeof *o);
    char id[AUTH_ID_LEN + 4] = "inv_", hash[APIKEY_HASH_LEN + 1], ttls[24];
    if (auth_random_string(id + 4, AUTH_ID_LEN - 8, 0) < 0 ||
        auth_random_string(o->token, AUTH_TOKEN_LEN, 0) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    auth_token_hash(o->token, strlen(o->token), hash);
    snprintf(ttls, sizeof ttls, "%" PRId64, ttl);
    struct audit_actor ac;
    audit_actor(rq, &ac);
    const char *p[8] = {id, hash, email[0] ? email : NULL, role, ac.user, ttls, ac.key, ac.ip};
    op_run(o,
           "WITH i AS (INSERT INTO wapi_invitations (id, token_hash, email, role, created_by, expires_at) "
           "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::int)) RETURNING *), "
           "a AS (INSERT INTO wapi_audit (actor_user_id, actor_key_id, actor_ip, action, target, detail) "
           "SELECT $5, nullif($7, ''), $8, 'invitation.created', i.id, jsonb_build_object('email', i.email, "
           "'role', i.role, 'expires_at', i.expires_at) FROM i) "
           "SELECT " INVITE_JSON " FROM i",
           8, p, on_invited);
out:
    yajl_tree_free(body);
}

static void on_revoked(void *ctx, const PGresult *res, const char *err)
{
    struct user_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        http_error(o->base.rq, 404, "not_found", "no pending invitation with this id", NULL);
        return;
    }
    audit_kick();
    http_send(o->base.rq, 204, NULL, "", 0);
}

void h_invitations_revoke(struct rq *rq)
{
    char *id = http_param(rq, 0);
    if (!id || strlen(id) > 64) {
        http_error(rq, 404, "not_found", "no pending invitation with this id", NULL);
        return;
    }
    struct user_op *o = op_alloc(rq, sizeof *o);
    struct audit_actor ac;
    audit_actor(rq, &ac);
    const char *p[4] = {id, ac.user, ac.key, ac.ip};
    op_run(o,
           "WITH i AS (UPDATE wapi_invitations SET revoked_at = now() WHERE id = $1 AND used_at IS NULL "
           "AND revoked_at IS NULL AND expires_at > now() RETURNING id, email, role), "
           "a AS (INSERT INTO wapi_audit (actor_user_id, actor_key_id, actor_ip, action, target, detail) "
           "SELECT $2, nullif($3, ''), $4, 'invitation.revoked', i.id, jsonb_build_object('email', i.email, "
           "'role', i.role) FROM i) SELECT id FROM i",
           4, p, on_revoked);
}
