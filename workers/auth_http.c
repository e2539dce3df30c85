#include "auth_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/auth_cookie.h"
#include "common/auth_input.h"
#include "common/json.h"
#include "common/jsonw.h"

struct auth_conf AUTHC;

#define MAX_ORIGINS 16
static struct {
    char base[256];
    char trusted[MAX_ORIGINS][256];
    int ntrusted;
} O;

/* scheme://host[:port], lower-case, default ports dropped; 0 or -1. */
static int origin_of(const char *url, size_t len, char *out, size_t outlen)
{
    size_t sl;
    int https;
    if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
        sl = 7, https = 0;
    else if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
        sl = 8, https = 1;
    else
        return -1;
    size_t e = sl;
    while (e < len && url[e] != '/' && url[e] != '?' && url[e] != '#')
        e++;
    size_t hl = e - sl;
    if (hl == 0 || hl + sl >= outlen)
        return -1;
    char host[256];
    if (hl >= sizeof host)
        return -1;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)url[sl + i]);
    host[hl] = '\0';
    if (strchr(host, '@'))
        return -1;
    size_t n = strlen(host);
    if (https && n > 4 && strcmp(host + n - 4, ":443") == 0)
        host[n - 4] = '\0';
    else if (!https && n > 3 && strcmp(host + n - 3, ":80") == 0)
        host[n - 3] = '\0';
    snprintf(out, outlen, "%s%s", https ? "https://" : "http://", host);
    return 0;
}

void auth_http_init(const struct wapi_config *cfg)
{
    AUTHC.secret = cfg->secret && *cfg->secret ? cfg->secret : AUTH_SECRET_DEFAULT;
    AUTHC.secure = strncmp(cfg->base_url, "https://", 8) == 0;
    AUTHC.registration = cfg->auth.registration;
    AUTHC.production = cfg->production;
    AUTHC.base_url = cfg->base_url;
    auth_cookie_name(cfg->base_url, "session_token", AUTHC.session_cookie, sizeof AUTHC.session_cookie);
    auth_cookie_name(cfg->base_url, "dont_remember", AUTHC.dont_remember, sizeof AUTHC.dont_remember);
    auth_cookie_name(cfg->base_url, "session_data", AUTHC.session_data, sizeof AUTHC.session_data);
    if (origin_of(cfg->base_url, strlen(cfg->base_url), O.base, sizeof O.base) < 0)
        O.base[0] = '\0';
    const char *p = cfg->auth.trusted_origins ? cfg->auth.trusted_origins : "";
    while (*p && O.ntrusted < MAX_ORIGINS) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (origin_of(p, n, O.trusted[O.ntrusted], sizeof O.trusted[0]) == 0)
            O.ntrusted++;
        p += n + (c ? 1 : 0);
    }
}

void auth_add_header(struct rq *rq, const char *name, const char *value)
{
    /* http_add_header() keeps the pointer: give it a copy that lives with the request. */
    h2o_iovec_t v = h2o_strdup(&rq->req->pool, value, SIZE_MAX);
    http_add_header(rq, name, v.base);
}

void auth_error(struct rq *rq, int status, const char *code, const char *message, const char *field)
{
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kerror(&w, code, message, field);
    jw_kstr(&w, "code", code);
    jw_kstr(&w, "message", message);
    jw_obj_end(&w);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, status, &w);
    sbuf_free(&b);
}

yajl_val auth_body(struct rq *rq)
{
    h2o_iovec_t e = rq->req->entity;
    if (e.len > AUTH_BODY_MAX) {
        auth_error(rq, 413, "PAYLOAD_TOO_LARGE", "request body larger than 16384 bytes", NULL);
        return NULL;
    }
    if (!e.base || e.len == 0) {
        auth_error(rq, 400, "VALIDATION_ERROR", "a JSON object body is required", NULL);
        return NULL;
    }
    /* json_parse refuses an escaped NUL (yajl would cut the string there). */
    char err[160];
    yajl_val v = json_parse(e.base, e.len, AUTH_BODY_MAX, err, sizeof err);
    if (!v) {
        auth_error(rq, 400, "VALIDATION_ERROR", err, NULL);
        return NULL;
    }
    if (!YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        auth_error(rq, 400, "BODY_MUST_BE_AN_OBJECT", "Body must be an object", NULL);
        return NULL;
    }
    return v;
}

const char *auth_field(struct rq *rq, yajl_val body, const char *name, int required, size_t min, size_t max,
                       int *present)
{
    char msg[160];
    yajl_val v = json_member(body, name);
    if (present)
        *present = v != NULL && !YAJL_IS_NULL(v);
    if (!v || YAJL_IS_NULL(v)) {
        if (!required)
            return "";
        snprintf(msg, sizeof msg, "%s is required", name);
        auth_error(rq, 400, "VALIDATION_ERROR", msg, name);
        return NULL;
    }
    if (!YAJL_IS_STRING(v)) {
        snprintf(msg, sizeof msg, "%s must be a string", name);
        auth_error(rq, 400, "VALIDATION_ERROR", msg, name);
        return NULL;
    }
    size_t n = auth_js_length(v->u.string);
    if (n < min || n > max) {
        if (min > 0)
            snprintf(msg, sizeof msg, "%s must be %zu to %zu characters", name, min, max);
        else
            snprintf(msg, sizeof msg, "%s must be at most %zu characters", name, max);
        auth_error(rq, 400, "VALIDATION_ERROR", msg, name);
        return NULL;
    }
    return v->u.string;
}

const char *auth_header(struct rq *rq, const char *name, size_t *len)
{
    ssize_t i = -1, last = -1;
    while ((i = h2o_find_header_by_str(&rq->req->headers, name, strlen(name), i)) != -1)
        last = i;
    if (last < 0)
        return NULL;
    *len = rq->req->headers.entries[last].value.len;
    return rq->req->headers.entries[last].value.base;
}

static int private_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const unsigned char lo[16] = {[15] = 1};
        if (memcmp(b, lo, 16) == 0 || (b[0] & 0xFE) == 0xFC)
            return 1;
        static const unsigned char v4[12] = {[10] = 0xFF, [11] = 0xFF};
        if (memcmp(b, v4, 12) == 0) {
            struct sockaddr_in s4 = {0};
            s4.sin_family = AF_INET;
            memcpy(&s4.sin_addr, b + 12, 4);
            return private_addr((const struct sockaddr *)&s4);
        }
    }
    return 0;
}

void auth_client_ip(struct rq *rq, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    snprintf(out, outlen, "unknown");
    h2o_conn_t *c = rq->req->conn;
    if (!c->callbacks->get_peername)
        return;
    socklen_t sl = c->callbacks->get_peername(c, (struct sockaddr *)&ss);
    if (sl == 0)
        return;
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    char buf[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf, sizeof buf);
    else
        return;
    snprintf(out, outlen, "%s", strncmp(buf, "::ffff:", 7) == 0 && strchr(buf, '.') ? buf + 7 : buf);
    if (!private_addr(sa))
        return;
    size_t xl;
    const char *x = auth_header(rq, "x-forwarded-for", &xl);
    if (!x || xl == 0 || xl > 1024)
        return;
    size_t s = xl;
    while (s > 0 && x[s - 1] != ',')
        s--;
    size_t e = xl;
    while (s < e && (x[s] == ' ' || x[s] == '\t'))
        s++;
    while (e > s && (x[e - 1] == ' ' || x[e - 1] == '\t'))
        e--;
    char cand[64];
    if (e - s == 0 || e - s >= sizeof cand)
        return;
    memcpy(cand, x + s, e - s);
    cand[e - s] = '\0';
    unsigned char tmp[16];
    if (inet_pton(AF_INET, cand, tmp) == 1 || inet_pton(AF_INET6, cand, tmp) == 1)
        snprintf(out, outlen, "%s", cand);
}

static int origin_allowed(const char *o)
{
    if (O.base[0] && strcmp(o, O.base) == 0)
        return 1;
    for (int i = 0; i < O.ntrusted; i++)
        if (strcmp(o, O.trusted[i]) == 0)
            return 1;
    return 0;
}

int auth_origin_trusted(struct rq *rq)
{
    size_t n;
    const char *v = auth_header(rq, "origin", &n);
    if (!v)
        v = auth_header(rq, "referer", &n);
    char o[256];
    if (!v || origin_of(v, n, o, sizeof o) < 0)
        return 0;
    return origin_allowed(o);
}

int auth_csrf_ok(struct rq *rq, int cookie_authenticated)
{
    h2o_iovec_t m = rq->req->method;
    if ((m.len == 3 && memcmp(m.base, "GET", 3) == 0) || (m.len == 4 && memcmp(m.base, "HEAD", 4) == 0) ||
        (m.len == 7 && memcmp(m.base, "OPTIONS", 7) == 0))
        return 1;
    size_t n;
    int from_browser = auth_header(rq, "origin", &n) || auth_header(rq, "referer", &n) ||
                       auth_header(rq, "sec-fetch-site", &n);
    if (!cookie_authenticated && !auth_header(rq, "cookie", &n) && !from_browser)
        return 1; /* a program with no cookies: nothing for a forged request to ride on */
    const char *o = auth_header(rq, "origin", &n);
    if (o && n == 4 && memcmp(o, "null", 4) == 0) {
        auth_error(rq, 403, "MISSING_OR_NULL_ORIGIN", "Missing or null Origin", NULL);
        return 0;
    }
    if (!auth_header(rq, "origin", &n) && !auth_header(rq, "referer", &n)) {
        auth_error(rq, 403, "MISSING_OR_NULL_ORIGIN", "Missing or null Origin", NULL);
        return 0;
    }
    if (!auth_origin_trusted(rq)) {
        auth_error(rq, 403, "INVALID_ORIGIN", "Invalid origin", NULL);
        return 0;
    }
    return 1;
}

static int signed_cookie(struct rq *rq, const char *name, char *tok, size_t toklen)
{
    ssize_t i = -1;
    /* Every Cookie header (HTTP/2 may split them), first match wins. */
    while ((i = h2o_find_header(&rq->req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        h2o_iovec_t v = rq->req->headers.entries[i].value;
        size_t vl;
        const char *c = auth_cookie_find(v.base, v.len, name, &vl);
        if (c)
            return auth_cookie_verify(AUTHC.secret, c, vl, tok, toklen);
    }
    return -1;
}

int auth_session_token(struct rq *rq, char *tok, size_t toklen)
{
    return signed_cookie(rq, AUTHC.session_cookie, tok, toklen);
}

int auth_dont_remember(struct rq *rq)
{
    char v[16];
    return signed_cookie(rq, AUTHC.dont_remember, v, sizeof v) > 0 && strcmp(v, "true") == 0;
}

static void set_cookie(struct rq *rq, const char *name, const char *value, long max_age)
{
    char c[AUTH_COOKIE_MAX + 200];
    char age[32] = "";
    if (max_age >= 0)
        snprintf(age, sizeof age, "; Max-Age=%ld", max_age);
    snprintf(c, sizeof c, "%s=%s%s; Path=/; HttpOnly%s; SameSite=Lax", name, value, age,
             AUTHC.secure ? "; Secure" : "");
    auth_add_header(rq, "set-cookie", c);
}

void auth_set_session_cookie(struct rq *rq, const char *token, int remember)
{
    char v[AUTH_COOKIE_MAX];
    if (auth_cookie_sign(AUTHC.secret, token, strlen(token), v, sizeof v) < 0)
        return;
    set_cookie(rq, AUTHC.session_cookie, v, remember ? SESSION_EXPIRES_S : -1);
    if (!remember && auth_cookie_sign(AUTHC.secret, "true", 4, v, sizeof v) == 0)
        set_cookie(rq, AUTHC.dont_remember, v, -1);
}

void auth_clear_session_cookies(struct rq *rq)
{
    set_cookie(rq, AUTHC.session_cookie, "", 0);
    set_cookie(rq, AUTHC.session_data, "", 0);
    set_cookie(rq, AUTHC.dont_remember, "", 0);
}

void auth_col_json(struct jsonw *w, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        jw_null(w);
    else
        jw_strn(w, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

void auth_user_json(struct jsonw *w, const PGresult *r, int row, int col)
{
    static const char *const k[] = {"id",    "name",      "email",     "emailVerified",
                                    "image", "createdAt", "updatedAt", "role"};
    jw_obj(w);
    for (int i = 0; i < 8; i++) {
        jw_key(w, k[i]);
        if (i == 3) /* emailVerified: a boolean, NULL read as false */
            jw_bool(w, !PQgetisnull(r, row, col + i) && PQgetvalue(r, row, col + i)[0] == 't');
        else
            auth_col_json(w, r, row, col + i);
    }
    jw_obj_end(w);
}

void auth_user_answer(struct rq *rq, const PGresult *r)
{
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "user");
    auth_user_json(&w, r, 0, 0);
    jw_obj_end(&w);
    http_jsonw(rq, 200, &w);
    sbuf_free(&b);
}

void auth_session_json(struct jsonw *w, const PGresult *r, int row, int col)
{
    static const char *const k[] = {"id",        "expiresAt", "token",     "createdAt",
                                    "updatedAt", "ipAddress", "userAgent", "userId"};
    jw_obj(w);
    for (int i = 0; i < 8; i++) {
        jw_key(w, k[i]);
        auth_col_json(w, r, row, col + i);
    }
    jw_obj_end(w);
}
