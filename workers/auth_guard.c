/* The router's auth hook: an API key (X-Api-Key, or Authorization: Bearer)
 * or the session cookie; cookie-authenticated state-changing requests must
 * come from our own origin (or a trusted one). Also GET /api/me and the
 * catch-all for unknown /api/ paths. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "apikey.h"
#include "auth_http.h"
#include "auth_session.h"
#include "common/auth_cookie.h"
#include "common/log.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "db.h"
#include "handlers.h"

struct guard {
    struct rq *rq;
    struct pgq *q;
    http_handler next;
    int remember;
};

static void guard_abort(struct rq *rq)
{
    struct guard *g = rq->state;
    if (g->q)
        db_cancel(g->q);
}

static void unauthorized(struct rq *rq)
{
    auth_error(rq, 401, "UNAUTHORIZED", "sign in, or send an API key (X-Api-Key or Authorization: Bearer)",
               NULL);
}

static void on_session(void *ctx, const PGresult *res, const char *err)
{
    struct guard *g = ctx;
    struct rq *rq = g->rq;
    g->q = NULL;
    rq->on_abort = NULL;
    rq->state = NULL;
    if (!res) {
        log_warn("session lookup failed", LF_S("error", err ? err : "?"));
        auth_error(rq, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again", NULL);
        return;
    }
    if (!auth_session_apply(rq, res, g->remember)) {
        unauthorized(rq);
        return;
    }
    if (!auth_csrf_ok(rq, 1))
        return;
    rq->principal.authenticated = 1;
    rq->principal.via_api_key = 0;
    rq->principal.role = authz_role_of(PQgetvalue(res, 0, SESS_COL_ROLE));
    rq->principal.perms = authz_role_perms(rq->principal.role);
    snprintf(rq->principal.user_id, sizeof rq->principal.user_id, "%s", PQgetvalue(res, 0, SESS_COL_USER_ID));
    g->next(rq);
}

static void guard(struct rq *rq, http_handler next)
{
    size_t n;
    const char *key = auth_header(rq, "x-api-key", &n);
    if (!key) {
        const char *a = auth_header(rq, "authorization", &n);
        if (a && n > 7 && strncasecmp(a, "Bearer ", 7) == 0) {
            key = a + 7;
            n -= 7;
            while (n > 0 && *key == ' ')
                key++, n--;
        }
    }
    if (key) {
        apikey_authenticate(rq, key, n, next);
        return;
    }
    char tok[AUTH_COOKIE_TOKEN_MAX + 1];
    if (auth_session_token(rq, tok, sizeof tok) < 0) {
        unauthorized(rq);
        return;
    }
    struct guard *g = h2o_mem_alloc_pool(&rq->req->pool, sizeof *g);
    memset(g, 0, sizeof *g);
    g->rq = rq;
    g->next = next;
    g->remember = !auth_dont_remember(rq);
    rq->state = g;
    rq->on_abort = guard_abort;
    g->q = auth_session_resolve(tok, g->remember, on_session, g);
    if (!g->q) {
        rq->on_abort = NULL;
        auth_error(rq, 500, "INTERNAL_ERROR", "out of memory", NULL);
    }
}

void auth_init(const struct wapi_config *cfg)
{
    auth_http_init(cfg);
    http_set_auth(guard);
}

void h_me(struct rq *rq)
{
    const struct principal *pr = &rq->principal;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "userId", pr->user_id);
    jw_kstr(&w, "role", authz_role_name(pr->role));
    jw_kstr(&w, "via", pr->via_api_key ? "api_key" : "session");
    if (pr->via_api_key)
        jw_kstr(&w, "apiKeyId", pr->api_key_id);
    jw_key(&w, "permissions");
    authz_perms_list_json(&w, pr->perms);
    jw_obj_end(&w);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, 200, &w);
    sbuf_free(&b);
}

void h_api_not_found(struct rq *rq)
{
    http_error(rq, 404, NULL, "no such route", NULL);
}
