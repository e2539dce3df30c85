#include "rest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/jsonw.h"
#include "common/log.h"

yajl_val rest_body(struct rq *rq, size_t max)
{
    h2o_iovec_t e = rq->req->entity;
    if (e.len > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", max);
        http_error(rq, 413, "payload_too_large", msg, NULL);
        return NULL;
    }
    if (!e.base || e.len == 0) {
        http_error(rq, 400, "invalid_json", "a JSON object body is required", NULL);
        return NULL;
    }
    /* json_parse refuses an escaped NUL (yajl would cut the string there). */
    char err[160];
    yajl_val v = json_parse(e.base, e.len, max, err, sizeof err);
    if (!v) {
        http_error(rq, 400, "invalid_json", err, NULL);
        return NULL;
    }
    if (!YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        http_error(rq, 400, "invalid_json", "the body must be a JSON object", NULL);
        return NULL;
    }
    return v;
}

int rest_query(struct rq *rq, const char *name, char *out, size_t outlen)
{
    h2o_req_t *req = rq->req;
    if (req->query_at == SIZE_MAX)
        return -1;
    size_t nl = strlen(name);
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t n = (size_t)((amp ? amp : end) - q);
        if (n > nl && q[nl] == '=' && memcmp(q, name, nl) == 0) {
            size_t vl = n - nl - 1;
            if (vl >= outlen)
                return -2;
            memcpy(out, q + nl + 1, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        q += n + 1;
    }
    return -1;
}

int rest_limit(struct rq *rq, int def, int max)
{
    char v[16];
    int n = rest_query(rq, "limit", v, sizeof v);
    if (n == -1)
        return def;
    char *e;
    long l = n > 0 ? strtol(v, &e, 10) : 0;
    if (n <= 0 || *e || l < 1 || l > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "limit must be an integer from 1 to %d", max);
        http_error(rq, 400, "invalid_limit", msg, "limit");
        return -1;
    }
    return (int)l;
}

void rest_add_cursor(struct jsonw *w, const char *n, const char *text)
{
    char raw[256];
    int rl = snprintf(raw, sizeof raw, "%s%s%s", n, text ? ":" : "", text ? text : "");
    if (rl < 0 || (size_t)rl >= sizeof raw) {
        jw_null(w);
        return;
    }
    char out[(sizeof raw + 2) / 3 * 4 + 1]; /* base64url without padding */
    size_t ol = h2o_base64_encode(out, raw, (size_t)rl, 1);
    jw_strn(w, out, ol);
}

int rest_page(struct rq *rq, int def, int max, int *limit, int64_t *cur)
{
    *cur = 0;
    if ((*limit = rest_limit(rq, def, max)) < 0)
        return -1;
    return rest_cursor(rq, cur, NULL, 0);
}

void rest_answer_page(struct rq *rq, const PGresult *res, int first, int limit, int json_col, int num_col,
                      int text_col)
{
    int n = PQntuples(res) - first;
    int shown = limit >= 0 && n > limit ? limit : n;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "data");
    jw_arr(&w);
    for (int i = 0; i < shown; i++)
        jw_raw(&w, PQgetvalue(res, first + i, json_col)); /* json from PostgreSQL */
    jw_arr_end(&w);
    if (limit >= 0) {
        jw_key(&w, "next_cursor");
        int last = first + shown - 1;
        if (n > limit && shown > 0)
            rest_add_cursor(
                &w, PQgetvalue(res, last, num_col),
                text_col < 0 || PQgetisnull(res, last, text_col) ? NULL : PQgetvalue(res, last, text_col));
        else
            jw_null(&w);
    }
    jw_obj_end(&w);
    http_jsonw(rq, 200, &w);
    sbuf_free(&b);
}

int rest_cursor(struct rq *rq, int64_t *n, char *text, size_t textlen)
{
    char v[300];
    int l = rest_query(rq, "cursor", v, sizeof v);
    if (l == -1 || l == 0)
        return 0;
    h2o_iovec_t d = l > 0 ? h2o_decode_base64url(&rq->req->pool, v, (size_t)l) : h2o_iovec_init(NULL, 0);
    char raw[256];
    int ok = d.base != NULL && d.len < sizeof raw && memchr(d.base, '\0', d.len) == NULL;
    if (ok) {
        memcpy(raw, d.base, d.len);
        raw[d.len] = '\0';
    }
    char *e = NULL;
    long long num = ok ? strtoll(raw, &e, 10) : 0;
    if (ok && (e == raw || num < 0))
        ok = 0;
    if (ok && *e == ':') {
        size_t tl = strlen(e + 1);
        if (!text || tl >= textlen)
            ok = 0;
        else
            memcpy(text, e + 1, tl + 1);
    } else if (ok && *e) {
        ok = 0;
    } else if (ok && text) {
        ok = 0; /* this list's cursors carry text */
    }
    if (!ok) {
        http_error(rq, 400, "invalid_cursor", "cursor is not one this API returned", "cursor");
        return -1;
    }
    *n = num;
    return 1;
}

void rest_db_error(struct rq *rq, const char *err)
{
    log_warn("database query failed", LF_S("error", err ? err : "?"), LF_S("request_id", rq->id));
    http_error(rq, 503, "database_unavailable", "the database is unavailable; try again", NULL);
}

const char *rest_one_row(struct rq *rq, const PGresult *res, const char *err, const char *missing)
{
    if (!res) {
        rest_db_error(rq, err);
        return NULL;
    }
    if (PQntuples(res) != 1) {
        http_error(rq, 404, "not_found", missing, NULL);
        return NULL;
    }
    return PQgetvalue(res, 0, 0);
}

int rest_id_ok(const char *s, size_t n)
{
    return http_id_ok(s, n, 128);
}

int rest_jid_ok(const char *s, size_t n)
{
    if (n < 3 || n > 128)
        return 0;
    int at = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '@')
            at++;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return at == 1 && s[0] != '@' && s[n - 1] != '@';
}
