/* Better Auth's email-and-password endpoints: POST /api/auth/sign-up/email,
 * POST /api/auth/sign-in/email, POST /api/auth/sign-out, GET
 * /api/auth/get-session, and the admin plugin's POST
 * /api/auth/admin/create-user (how users join under "invite"). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "auth_http.h"
#include "auth_session.h"
#include "common/auth_cookie.h"
#include "common/auth_input.h"
#include "common/auth_token.h"
#include "common/json.h"
#include "common/log.h"
#include "db.h"
#include "handlers.h"
#include "hashpool.h"
#include "ratelimit.h"

#define RL_MAX 10      /* attempts per address and window, sign-in and sign-up each */
#define RL_WINDOW_S 60

enum kind { SIGN_IN, SIGN_UP, CREATE_USER };

struct flow {
    struct rq *rq;
    enum kind kind;
    struct db_query *q;
    struct hashpool_job *job;
    int remember;
    char email[256];
    char name[512];
    char role[16];
    char password[PASSWORD_MAX_BYTES + 1];
    size_t pwlen;
    char hash[PASSWORD_HASH_LEN];
    char user_id[AUTH_ID_LEN + 1];
    char token[AUTH_ID_LEN + 1];
};

static void flow_wipe(struct flow *f)
{
    OPENSSL_cleanse(f->password, sizeof f->password);
    OPENSSL_cleanse(f->hash, sizeof f->hash);
}

static void flow_abort(struct rq *rq)
{
    struct flow *f = rq->state;
    if (f->q)
        db_cancel(f->q);
    if (f->job)
        hashpool_cancel(f->job);
    flow_wipe(f);
}

/* Ends the flow: from here on nothing refers to f after the answer. */
static void flow_done(struct flow *f)
{
    f->rq->on_abort = NULL;
    flow_wipe(f);
}

static void fail(struct flow *f, int status, const char *code, const char *message)
{
    flow_done(f);
    auth_error(f->rq, status, code, message, NULL);
}

static void db_failed(struct flow *f, const char *err)
{
    log_warn("account query failed", LF_S("error", err ? err : "?"));
    fail(f, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again");
}

static void on_session(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res || PQntuples(res) != 1) {
        if (!res)
            log_warn("session insert failed", LF_S("error", err ? err : "?"));
        fail(f, 500, "FAILED_TO_CREATE_SESSION", "Failed to create session");
        return;
    }
    struct rq *rq = f->rq;
    flow_done(f);
    auth_set_session_cookie(rq, PQgetvalue(res, 0, SESS_COL_TOKEN), f->remember);
    struct sbuf b;
    sbuf_init(&b);
    if (f->kind == SIGN_IN)
        sbuf_adds(&b, "{\"redirect\":false,\"token\":");
    else
        sbuf_adds(&b, "{\"token\":");
    auth_col_json(&b, res, 0, SESS_COL_TOKEN);
    sbuf_adds(&b, ",\"user\":");
    auth_user_json(&b, res, 0, SESS_COL_USER);
    sbuf_addc(&b, '}');
    http_add_header(rq, "cache-control", "no-store");
    http_json(rq, 200, b.buf, b.len);
    sbuf_free(&b);
}

static void start_session(struct flow *f)
{
    f->q = auth_session_create(f->rq, f->user_id, f->remember, f->token, on_session, f);
    if (!f->q)
        fail(f, 500, "FAILED_TO_CREATE_SESSION", "Failed to create session");
}

/* ---- sign-in */

static void on_verified(void *ctx, int ok, const char *hash)
{
    (void)hash;
    struct flow *f = ctx;
    f->job = NULL;
    if (ok < 0) {
        fail(f, 500, "INTERNAL_ERROR", "password check failed");
        return;
    }
    if (ok != 1 || !f->user_id[0]) {
        fail(f, 401, "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password");
        return;
    }
    start_session(f);
}

static void on_user(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res) {
        db_failed(f, err);
        return;
    }
    const char *stored = NULL;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
        snprintf(f->user_id, sizeof f->user_id, "%s", PQgetvalue(res, 0, 0));
        stored = PQgetvalue(res, 0, 1);
    } else {
        f->user_id[0] = '\0'; /* unknown e-mail: the same work, then the same answer */
    }
    f->job = hashpool_verify(stored, f->password, f->pwlen, on_verified, f);
    if (!f->job)
        fail(f, 503, "BUSY", "too many sign-ins at once; try again");
}

static void lookup_user(struct flow *f)
{
    const char *p[1] = {f->email};
    f->q = db_query("SELECT u.\"id\", a.\"password\" FROM \"user\" u JOIN \"account\" a ON a.\"userId\" = u.\"id\" "
                    "AND a.\"providerId\" = 'credential' AND a.\"accountId\" = u.\"id\" "
                    "WHERE u.\"email\" = $1 LIMIT 1",
                    1, p, on_user, f);
    if (!f->q)
        fail(f, 500, "INTERNAL_ERROR", "out of memory");
}

/* ---- sign-up and create-user */

static void on_user_row(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res || PQntuples(res) != 1) {
        db_failed(f, err);
        return;
    }
    struct rq *rq = f->rq;
    flow_done(f);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"user\":");
    auth_user_json(&b, res, 0, 0);
    sbuf_addc(&b, '}');
    http_json(rq, 200, b.buf, b.len);
    sbuf_free(&b);
}

static void on_created(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res || PQntuples(res) != 1) {
        db_failed(f, err);
        return;
    }
    const char *st = PQgetvalue(res, 0, 0);
    if (strcmp(st, "exists") == 0) {
        fail(f, 422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "User already exists. Use another email.");
        return;
    }
    if (strcmp(st, "invite") == 0 || strcmp(st, "closed") == 0) {
        fail(f, 403, "EMAIL_PASSWORD_SIGN_UP_DISABLED",
             strcmp(st, "invite") == 0 ? "Sign-up is by invitation: ask an admin to create your account"
                                       : "Sign-up is closed");
        return;
    }
    if (strncmp(st, "created:", 8) != 0) {
        db_failed(f, st);
        return;
    }
    log_info("user created", LF_S("user_id", f->user_id), LF_S("role", st + 8));
    if (f->kind == SIGN_UP) {
        start_session(f);
        return;
    }
    /* create-user answers with the new user: read it back. */
    const char *p[1] = {f->user_id};
    f->q = db_query("SELECT " SQL_USER_COLS " FROM \"user\" u WHERE u.\"id\" = $1", 1, p, on_user_row, f);
    if (!f->q)
        fail(f, 500, "INTERNAL_ERROR", "out of memory");
}

static void on_hashed(void *ctx, int ok, const char *hash)
{
    struct flow *f = ctx;
    f->job = NULL;
    if (ok != 0 || !hash) {
        fail(f, 500, "INTERNAL_ERROR", "password hashing failed");
        return;
    }
    snprintf(f->hash, sizeof f->hash, "%s", hash);
    char account_id[AUTH_ID_LEN + 1];
    if (auth_random_string(f->user_id, AUTH_ID_LEN, 0) < 0 || auth_random_string(account_id, AUTH_ID_LEN, 0) < 0) {
        fail(f, 500, "INTERNAL_ERROR", "no randomness");
        return;
    }
    const char *p[8] = {f->user_id, f->name, f->email, f->hash, account_id, AUTHC.registration,
                        f->kind == CREATE_USER ? "true" : "false", f->role[0] ? f->role : NULL};
    f->q = db_query("SELECT wapi_create_user($1, $2, $3, $4, $5, $6, $7::boolean, $8)", 8, p, on_created, f);
    if (!f->q)
        fail(f, 500, "INTERNAL_ERROR", "out of memory");
}

/* ---- shared start */

static void on_rate(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res) {
        db_failed(f, err);
        return;
    }
    int retry;
    if (!ratelimit_allowed(res, RL_MAX, &retry)) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry);
        auth_add_header(f->rq, "retry-after", ra);
        fail(f, 429, "RATE_LIMITED", "Too many attempts; try again later");
        return;
    }
    if (f->kind == SIGN_IN) {
        lookup_user(f);
        return;
    }
    f->job = hashpool_hash(f->password, f->pwlen, on_hashed, f);
    if (!f->job)
        fail(f, 503, "BUSY", "too many sign-ups at once; try again");
}

static struct flow *flow_new(struct rq *rq, enum kind kind)
{
    struct flow *f = h2o_mem_alloc_pool(&rq->req->pool, sizeof *f);
    memset(f, 0, sizeof *f);
    f->rq = rq;
    f->kind = kind;
    f->remember = 1;
    return f;
}

/* Reads and checks the body into f; answers 400 itself and returns -1. */
static int read_body(struct flow *f)
{
    struct rq *rq = f->rq;
    yajl_val body = auth_body(rq);
    if (!body)
        return -1;
    int rc = -1, present;
    const char *email = auth_field(rq, body, "email", 1, 1, 254, NULL);
    if (!email)
        goto out;
    if (!auth_email_ok(email, f->email, sizeof f->email)) {
        auth_error(rq, 400, "INVALID_EMAIL", "Invalid email", "email");
        goto out;
    }
    const char *pw = f->kind == SIGN_IN ? auth_field(rq, body, "password", 1, 1, 128, NULL)
                                        : auth_field(rq, body, "password", 1, 8, 128, NULL);
    if (!pw)
        goto out;
    if (f->kind != SIGN_IN) {
        const char *name = auth_field(rq, body, "name", 1, 0, 100, NULL);
        if (!name)
            goto out;
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    if (f->kind == CREATE_USER) {
        const char *role = auth_field(rq, body, "role", 0, 0, 16, &present);
        if (!role)
            goto out;
        if (present && strcmp(role, "user") && strcmp(role, "admin")) {
            auth_error(rq, 400, "VALIDATION_ERROR", "role must be \"user\" or \"admin\"", "role");
            goto out;
        }
        snprintf(f->role, sizeof f->role, "%s", present ? role : "user");
    } else {
        int rm = json_bool(body, "rememberMe");
        if (rm == -2) {
            auth_error(rq, 400, "VALIDATION_ERROR", "rememberMe must be a boolean", "rememberMe");
            goto out;
        }
        f->remember = rm != 0;
    }
    f->pwlen = strlen(pw);
    memcpy(f->password, pw, f->pwlen + 1);
    rc = 0;
out:
    if (json_member(body, "password") && YAJL_IS_STRING(json_member(body, "password"))) {
        char *s = json_member(body, "password")->u.string;
        OPENSSL_cleanse(s, strlen(s));
    }
    yajl_tree_free(body);
    return rc;
}

static void start(struct rq *rq, enum kind kind)
{
    if (kind != CREATE_USER && !auth_csrf_ok(rq, 0))
        return;
    struct flow *f = flow_new(rq, kind);
    if (read_body(f) < 0) {
        flow_wipe(f);
        return;
    }
    rq->state = f;
    rq->on_abort = flow_abort;
    if (kind == CREATE_USER) {
        f->job = hashpool_hash(f->password, f->pwlen, on_hashed, f);
        if (!f->job)
            fail(f, 503, "BUSY", "too many requests at once; try again");
        return;
    }
    char ip[64], key[96];
    auth_client_ip(rq, ip, sizeof ip);
    snprintf(key, sizeof key, "%s:%s", kind == SIGN_IN ? "sign-in" : "sign-up", ip);
    f->q = ratelimit_hit(key, RL_WINDOW_S, on_rate, f);
    if (!f->q)
        fail(f, 500, "INTERNAL_ERROR", "out of memory");
}

void h_auth_sign_in(struct rq *rq)
{
    start(rq, SIGN_IN);
}

void h_auth_sign_up(struct rq *rq)
{
    start(rq, SIGN_UP);
}

void h_auth_create_user(struct rq *rq)
{
    if (!rq->principal.is_admin) {
        auth_error(rq, 403, "FORBIDDEN", "only an admin can create users", NULL);
        return;
    }
    start(rq, CREATE_USER);
}

/* ---- sign-out and get-session */

struct simple {
    struct rq *rq;
    struct db_query *q;
    int remember;
};

static void simple_abort(struct rq *rq)
{
    struct simple *s = rq->state;
    if (s->q)
        db_cancel(s->q);
}

static void on_signed_out(void *ctx, const PGresult *res, const char *err)
{
    struct simple *s = ctx;
    s->q = NULL;
    s->rq->on_abort = NULL;
    if (!res) {
        log_warn("sign-out failed", LF_S("error", err ? err : "?"));
        auth_error(s->rq, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again", NULL);
        return;
    }
    auth_clear_session_cookies(s->rq);
    static const char ok[] = "{\"success\":true}";
    http_json(s->rq, 200, ok, sizeof ok - 1);
}

void h_auth_sign_out(struct rq *rq)
{
    if (!auth_csrf_ok(rq, 1))
        return;
    char tok[AUTH_COOKIE_TOKEN_MAX + 1];
    struct simple *s = h2o_mem_alloc_pool(&rq->req->pool, sizeof *s);
    memset(s, 0, sizeof *s);
    s->rq = rq;
    if (auth_session_token(rq, tok, sizeof tok) < 0) {
        auth_clear_session_cookies(rq);
        static const char ok[] = "{\"success\":true}";
        http_json(rq, 200, ok, sizeof ok - 1);
        return;
    }
    rq->state = s;
    rq->on_abort = simple_abort;
    s->q = auth_session_delete(tok, on_signed_out, s);
    if (!s->q) {
        rq->on_abort = NULL;
        auth_error(rq, 500, "INTERNAL_ERROR", "out of memory", NULL);
    }
}

static void on_get_session(void *ctx, const PGresult *res, const char *err)
{
    struct simple *s = ctx;
    struct rq *rq = s->rq;
    s->q = NULL;
    rq->on_abort = NULL;
    if (!res) {
        log_warn("session lookup failed", LF_S("error", err ? err : "?"));
        auth_error(rq, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again", NULL);
        return;
    }
    http_add_header(rq, "cache-control", "no-store");
    if (!auth_session_apply(rq, res, s->remember)) {
        if (PQntuples(res) == 0)
            auth_clear_session_cookies(rq);
        http_json(rq, 200, "null", 4);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"session\":");
    auth_session_json(&b, res, 0, 0);
    sbuf_adds(&b, ",\"user\":");
    auth_user_json(&b, res, 0, SESS_COL_USER);
    sbuf_addc(&b, '}');
    http_json(rq, 200, b.buf, b.len);
    sbuf_free(&b);
}

void h_auth_get_session(struct rq *rq)
{
    char tok[AUTH_COOKIE_TOKEN_MAX + 1];
    if (auth_session_token(rq, tok, sizeof tok) < 0) {
        http_add_header(rq, "cache-control", "no-store");
        http_json(rq, 200, "null", 4);
        return;
    }
    struct simple *s = h2o_mem_alloc_pool(&rq->req->pool, sizeof *s);
    memset(s, 0, sizeof *s);
    s->rq = rq;
    s->remember = !auth_dont_remember(rq);
    rq->state = s;
    rq->on_abort = simple_abort;
    s->q = auth_session_resolve(tok, s->remember, on_get_session, s);
    if (!s->q) {
        rq->on_abort = NULL;
        auth_error(rq, 500, "INTERNAL_ERROR", "out of memory", NULL);
    }
}
