/* Better Auth's email-and-password endpoints: POST /api/auth/sign-up/email,
 * POST /api/auth/sign-in/email, POST /api/auth/sign-out, GET
 * /api/auth/get-session, and the admin plugin's POST
 * /api/auth/admin/create-user (how users join under "invite"). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auth_http.h"
#include "auth_session.h"
#include "common/auth_cookie.h"
#include "common/auth_input.h"
#include "common/auth_token.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "db.h"
#include "handlers.h"
#include "hashpool.h"
#include "op.h"
#include "ratelimit.h"

enum kind { SIGN_IN, SIGN_UP, CREATE_USER };

struct flow {
    struct rq *rq;
    enum kind kind;
    struct pgq *q;
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
    char ip[64];
    char account_key[300];                /* the per-account rate-limit key (sign-in) */
    char invitation[APIKEY_HASH_LEN + 1]; /* hashes of the tokens sign-up was shown, or "" */
    char setup[APIKEY_HASH_LEN + 1];
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
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    if (f->kind == SIGN_IN)
        jw_kbool(&w, "redirect", 0);
    jw_key(&w, "token");
    auth_col_json(&w, res, 0, SESS_COL_TOKEN);
    jw_key(&w, "user");
    auth_user_json(&w, res, 0, SESS_COL_USER);
    jw_obj_end(&w);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, 200, &w);
    sbuf_free(&b);
}

static void start_session(struct flow *f)
{
    f->q = auth_session_create(f->rq, f->user_id, f->remember, f->token, on_session, f);
    if (!f->q)
        fail(f, 500, "FAILED_TO_CREATE_SESSION", "Failed to create session");
}

/* ---- sign-in */

static void on_failure_counted(void *ctx, const PGresult *res, const char *err)
{
    struct flow *f = ctx;
    f->q = NULL;
    if (!res)
        log_warn("cannot count a failed sign-in", LF_S("error", err ? err : "?"));
    else if (ratelimit_locked(res))
        audit_kick();
    fail(f, 401, "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password");
}

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
        /* Counted before the answer: the next guess meets the count. */
        if (!(f->q = ratelimit_failed(f->account_key, f->ip, on_failure_counted, f)))
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
    f->q = db_query(
        "SELECT u.\"id\", a.\"password\" FROM \"user\" u JOIN \"account\" a ON a.\"userId\" = u.\"id\" "
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
    auth_user_answer(rq, res);
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
    static const struct {
        const char *status, *code, *message;
        const char *field;
    } refusals[] = {
        {"invite", "EMAIL_PASSWORD_SIGN_UP_DISABLED",
         "Sign-up is by invitation: ask an admin for an invitation link or an account", NULL},
        {"closed", "EMAIL_PASSWORD_SIGN_UP_DISABLED", "Sign-up is closed", NULL},
        {"setup_token", "SETUP_TOKEN_REQUIRED",
         "The first account needs the one-time setup token printed in the server's log at start (or run "
         "wapictl "
         "user add EMAIL --admin)",
         "setupToken"},
        {"invitation", "INVALID_INVITATION", "This invitation is unknown, used, revoked or expired",
         "invitation"},
        {"invitation_email", "INVITATION_EMAIL_MISMATCH",
         "This invitation was made out to another email address", "email"},
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        if (strcmp(st, refusals[i].status) == 0) {
            flow_done(f);
            auth_error(f->rq, 403, refusals[i].code, refusals[i].message, refusals[i].field);
            return;
        }
    if (strncmp(st, "created:", 8) != 0) {
        db_failed(f, st);
        return;
    }
    audit_kick();
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
    if (auth_random_string(f->user_id, AUTH_ID_LEN, 0) < 0 ||
        auth_random_string(account_id, AUTH_ID_LEN, 0) < 0) {
        fail(f, 500, "INTERNAL_ERROR", "no randomness");
        return;
    }
    struct audit_actor ac;
    audit_actor(f->rq, &ac);
    const char *p[14] = {f->user_id,
                         f->name,
                         f->email,
                         f->hash,
                         account_id,
                         AUTHC.registration,
                         f->kind == CREATE_USER ? "true" : "false",
                         f->role[0] ? f->role : NULL,
                         f->invitation[0] ? f->invitation : NULL,
                         f->setup[0] ? f->setup : NULL,
                         AUTHC.production ? "true" : "false",
                         f->kind == CREATE_USER ? ac.user : NULL,
                         ac.key[0] ? ac.key : NULL,
                         ac.ip};
    f->q = db_query(
        "SELECT wapi_create_user($1, $2, $3, $4, $5, $6, $7::boolean, $8, $9, $10, $11::boolean, $12, "
        "$13, $14)",
        14, p, on_created, f);
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
    int retry, first;
    if (!ratelimit_allowed(res, &retry, &first)) {
        if (first)
            audit_kick();
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

/* An optional token field as its hash into out ("" when absent or empty);
 * -1 after answering 400. */
static int read_token(struct rq *rq, yajl_val body, const char *name, char out[APIKEY_HASH_LEN + 1])
{
    int present;
    const char *t = auth_field(rq, body, name, 0, 0, 128, &present);
    if (!t)
        return -1;
    if (present && t[0])
        auth_token_hash(t, strlen(t), out);
    return 0;
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
        enum role r = present ? authz_role_parse(role) : ROLE_MEMBER;
        if (r == ROLE_NONE) {
            auth_error(rq, 400, "VALIDATION_ERROR", "role must be \"admin\", \"member\" or \"viewer\"",
                       "role");
            goto out;
        }
        snprintf(f->role, sizeof f->role, "%s", authz_role_name(r));
    } else {
        /* Sign-up's tokens are only ever compared by their hashes. */
        if (f->kind == SIGN_UP && (read_token(rq, body, "invitation", f->invitation) < 0 ||
                                   read_token(rq, body, "setupToken", f->setup) < 0))
            goto out;
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
    /* Per client (an IPv6 client by its /64) and, for sign-in, per account:
     * guesses spread over many addresses still meet the second. */
    char client[80], k_client[128];
    auth_client_ip(rq, f->ip, sizeof f->ip);
    ratelimit_client(f->ip, client, sizeof client);
    snprintf(k_client, sizeof k_client, "%s:ip:%s", kind == SIGN_IN ? "sign-in" : "sign-up", client);
    if (kind == SIGN_IN)
        snprintf(f->account_key, sizeof f->account_key, "sign-in:email:%s", f->email);
    f->q = ratelimit_attempt(k_client, kind == SIGN_IN ? f->account_key : NULL, f->ip, on_rate, f);
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

/* The router let only a signed-in session with users:write through. */
void h_auth_create_user(struct rq *rq)
{
    start(rq, CREATE_USER);
}

/* ---- sign-out and get-session */

struct simple {
    struct rq *rq;
    struct pgq *q;
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
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "session");
    auth_session_json(&w, res, 0, 0);
    jw_key(&w, "user");
    auth_user_json(&w, res, 0, SESS_COL_USER);
    jw_obj_end(&w);
    http_jsonw(rq, 200, &w);
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

/* ---- GET /api/registration: what the sign-up screen needs to know */

static void on_registration(void *ctx, const PGresult *res, const char *err)
{
    struct op_base *o = ctx;
    if (!op_done(o, res, err))
        return;
    int first = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "policy", AUTHC.registration);
    jw_kbool(&w, "first_user", first);
    jw_kbool(&w, "setup_token_required", first && AUTHC.production);
    jw_obj_end(&w);
    http_add_header(o->rq, "cache-control", "no-store");
    http_jsonw(o->rq, 200, &w);
    sbuf_free(&b);
}

void h_registration(struct rq *rq)
{
    struct op_base *o = op_alloc(rq, sizeof *o);
    op_run(o, "SELECT NOT EXISTS (SELECT 1 FROM \"user\")", 0, NULL, on_registration);
}
