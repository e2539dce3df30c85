#include "apikey.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth_http.h"
#include "common/auth_token.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "db.h"
#include "handlers.h"
#include "op.h"

#define CACHE_SLOTS 512
#define NAME_MAX_LEN 32   /* the plugin's maximumNameLength */
#define PREFIX_MAX_LEN 32 /* maximumPrefixLength */
#define START_LEN 6       /* startingCharactersConfig.charactersLength */
#define LIST_MAX 1000

/* ---- lookup cache: direct-mapped by the key's hash */

struct kc {
    char hash[APIKEY_HASH_LEN + 1];
    uint64_t fetched_ms;
    int valid;
    enum role owner_role;
    int has_scopes;
    perm_mask scopes;
    char user_id[64];
    char key_id[64];
    const char *why; /* when not valid */
};

static struct kc cache[CACHE_SLOTS];

static uint64_t now_ms(void)
{
    return http_now_us() / 1000;
}

static struct kc *slot_of(const char *hash)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < APIKEY_HASH_LEN; i++)
        h = (h ^ (unsigned char)hash[i]) * 16777619u;
    return &cache[h % CACHE_SLOTS];
}

static struct kc *cache_get(const char *hash)
{
    struct kc *e = slot_of(hash);
    if (e->hash[0] && CRYPTO_memcmp(e->hash, hash, APIKEY_HASH_LEN) == 0 &&
        now_ms() - e->fetched_ms < APIKEY_CACHE_MS)
        return e;
    return NULL;
}

void apikey_forget(const char *key_id, const char *user_id)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].hash[0] && ((key_id && strcmp(cache[i].key_id, key_id) == 0) ||
                                 (user_id && strcmp(cache[i].user_id, user_id) == 0)))
            cache[i].hash[0] = '\0';
}

static void grant(struct rq *rq, const struct kc *e)
{
    rq->principal.authenticated = 1;
    rq->principal.via_api_key = 1;
    rq->principal.role = e->owner_role;
    rq->principal.perms = authz_key_perms(e->owner_role, e->has_scopes, e->scopes);
    snprintf(rq->principal.user_id, sizeof rq->principal.user_id, "%s", e->user_id);
    snprintf(rq->principal.api_key_id, sizeof rq->principal.api_key_id, "%s", e->key_id);
}

struct lookup {
    struct rq *rq;
    struct pgq *q;
    http_handler next;
    char hash[APIKEY_HASH_LEN + 1];
};

static void lookup_abort(struct rq *rq)
{
    struct lookup *l = rq->state;
    if (l->q)
        db_cancel(l->q);
}

static void refuse(struct rq *rq, const char *why)
{
    http_add_header(rq, "www-authenticate", "Bearer");
    if (strcmp(why, "KEY_DISABLED") == 0)
        auth_error(rq, 401, why, "API Key is disabled", NULL);
    else if (strcmp(why, "KEY_EXPIRED") == 0)
        auth_error(rq, 401, why, "API Key has expired", NULL);
    else if (strcmp(why, "USAGE_EXCEEDED") == 0)
        auth_error(rq, 429, why, "API Key has reached its usage limit", NULL);
    else
        auth_error(rq, 401, "INVALID_API_KEY", "Invalid API key.", NULL);
}

static void on_lookup(void *ctx, const PGresult *res, const char *err)
{
    struct lookup *l = ctx;
    struct rq *rq = l->rq;
    l->q = NULL;
    rq->on_abort = NULL;
    if (!res) {
        log_warn("api key lookup failed", LF_S("error", err ? err : "?"));
        auth_error(rq, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again", NULL);
        return;
    }
    struct kc *e = slot_of(l->hash);
    memset(e, 0, sizeof *e);
    memcpy(e->hash, l->hash, sizeof e->hash);
    e->fetched_ms = now_ms();
    e->why = "INVALID_API_KEY";
    if (PQntuples(res) == 1) {
        snprintf(e->key_id, sizeof e->key_id, "%s", PQgetvalue(res, 0, 0));
        snprintf(e->user_id, sizeof e->user_id, "%s", PQgetvalue(res, 0, 1));
        e->owner_role = authz_role_of(PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2));
        const char *state = PQgetvalue(res, 0, 3);
        /* Scopes that do not parse grant nothing (deny by default). */
        if (!PQgetisnull(res, 0, 5) && PQgetvalue(res, 0, 5)[0]) {
            e->has_scopes = 1;
            authz_parse_scopes(PQgetvalue(res, 0, 5), (size_t)PQgetlength(res, 0, 5), 0, &e->scopes, NULL, 0);
        }
        if (strcmp(state, "ok") == 0)
            e->valid = 1;
        else
            e->why = strcmp(state, "disabled") == 0  ? "KEY_DISABLED"
                     : strcmp(state, "expired") == 0 ? "KEY_EXPIRED"
                                                     : "USAGE_EXCEEDED";
    }
    if (!e->valid) {
        refuse(rq, e->why);
        return;
    }
    grant(rq, e);
    l->next(rq);
}

void apikey_authenticate(struct rq *rq, const char *key, size_t len, http_handler next)
{
    if (len == 0 || len > APIKEY_MAX_LEN) {
        refuse(rq, "INVALID_API_KEY");
        return;
    }
    char hash[APIKEY_HASH_LEN + 1];
    apikey_hash(key, len, hash);
    struct kc *e = cache_get(hash);
    if (e) {
        if (!e->valid) {
            refuse(rq, e->why);
            return;
        }
        grant(rq, e);
        next(rq);
        return;
    }
    struct lookup *l = h2o_mem_alloc_pool(&rq->req->pool, sizeof *l);
    memset(l, 0, sizeof *l);
    l->rq = rq;
    l->next = next;
    memcpy(l->hash, hash, sizeof hash);
    rq->state = l;
    rq->on_abort = lookup_abort;
    const char *p[1] = {hash};
    /* One round trip: find the key, judge it, and note when it was last used. */
    l->q = db_query(
        "WITH k AS (SELECT a.\"id\", a.\"referenceId\", a.\"permissions\", CASE "
        "WHEN a.\"enabled\" = false THEN 'disabled' "
        "WHEN a.\"expiresAt\" IS NOT NULL AND a.\"expiresAt\" <= now() THEN 'expired' "
        "WHEN a.\"remaining\" = 0 AND a.\"refillAmount\" IS NULL THEN 'exhausted' ELSE 'ok' END AS state "
        "FROM \"apikey\" a WHERE a.\"key\" = $1 LIMIT 1), "
        "upd AS (UPDATE \"apikey\" SET \"lastRequest\" = now() "
        "WHERE \"id\" = (SELECT \"id\" FROM k WHERE state = 'ok') RETURNING 1) "
        "SELECT k.\"id\", k.\"referenceId\", u.\"role\", k.state, (SELECT count(*) FROM upd), "
        "k.\"permissions\" "
        "FROM k JOIN \"user\" u ON u.\"id\" = k.\"referenceId\"",
        1, p, on_lookup, l);
    if (!l->q) {
        rq->on_abort = NULL;
        auth_error(rq, 500, "INTERNAL_ERROR", "out of memory", NULL);
    }
}

/* ---- endpoints */

#define SQL_KEY_COLS                                                                                         \
    "k.\"id\", k.\"configId\", k.\"name\", k.\"start\", k.\"prefix\", k.\"referenceId\", "                   \
    "k.\"refillInterval\", k.\"refillAmount\", " SQL_TS(                                                     \
        "k.\"lastRefillAt\"") ", k.\"enabled\", "                                                            \
                              "k.\"rateLimitEnabled\", k.\"rateLimitTimeWindow\", k.\"rateLimitMax\", "      \
                              "k.\"requestCount\", "                                                         \
                              "k.\"remaining\", " SQL_TS("k.\"lastRequest\"") ", " SQL_TS(                   \
                                  "k.\"expiresAt\"") ", " SQL_TS("k.\"createdAt\"") ", " SQL_TS("k."         \
                                                                                                "\"updatedA" \
                                                                                                "t\"") ", "  \
                                                                                                       "k."  \
                                                                                                       "\"p" \
                                                                                                       "erm" \
                                                                                                       "iss" \
                                                                                                       "ion" \
                                                                                                       "s\"" \
                                                                                                       ", "  \
                                                                                                       "k."  \
                                                                                                       "\"m" \
                                                                                                       "eta" \
                                                                                                       "dat" \
                                                                                                       "a\""
#define NKEYCOLS 21

/* One row's members as the plugin returns them (numbers and booleans typed,
 * the permissions and metadata parsed back from their JSON text), into the
 * object open in w. */
static void key_members(struct jsonw *w, const PGresult *r, int row)
{
    static const struct {
        const char *name;
        char type; /* s string, n number, b boolean, j JSON text */
    } c[NKEYCOLS] = {{"id", 's'},
                     {"configId", 's'},
                     {"name", 's'},
                     {"start", 's'},
                     {"prefix", 's'},
                     {"referenceId", 's'},
                     {"refillInterval", 'n'},
                     {"refillAmount", 'n'},
                     {"lastRefillAt", 's'},
                     {"enabled", 'b'},
                     {"rateLimitEnabled", 'b'},
                     {"rateLimitTimeWindow", 'n'},
                     {"rateLimitMax", 'n'},
                     {"requestCount", 'n'},
                     {"remaining", 'n'},
                     {"lastRequest", 's'},
                     {"expiresAt", 's'},
                     {"createdAt", 's'},
                     {"updatedAt", 's'},
                     {"permissions", 'j'},
                     {"metadata", 'j'}};
    for (int i = 0; i < NKEYCOLS; i++) {
        jw_key(w, c[i].name);
        if (PQgetisnull(r, row, i)) {
            jw_null(w);
            continue;
        }
        const char *v = PQgetvalue(r, row, i);
        switch (c[i].type) {
        case 'n':
            jw_raw(w, v); /* an integer column */
            break;
        case 'b':
            jw_bool(w, v[0] == 't');
            break;
        case 'j': {
            char err[64];
            yajl_val t = json_parse(v, strlen(v), 65536, err, sizeof err);
            jw_raw(w, t ? v : NULL); /* valid JSON: pass it through */
            yajl_tree_free(t);
            break;
        }
        default:
            jw_str(w, v);
        }
    }
}

/* Answers 200 with row 0 as one key; plain_key (the key itself, shown once
 * on creation) is added when not NULL and wiped from the body once sent. */
static void key_answer(struct rq *rq, const PGresult *res, const char *plain_key)
{
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    key_members(&w, res, 0);
    if (plain_key)
        jw_kstr(&w, "key", plain_key);
    jw_obj_end(&w);
    http_add_header(rq, "cache-control", "no-store");
    http_jsonw(rq, 200, &w);
    if (b.buf)
        OPENSSL_cleanse(b.buf, b.cap);
    sbuf_free(&b);
}

struct op {
    struct op_base b;
    int admin_route; /* /api/keys: our error shape, 204 */
    char key[PREFIX_MAX_LEN + APIKEY_RANDOM_LEN + 1];
    char id[128];
};

/* The client left: the new key's secret goes with it. */
static void key_abort(struct op_base *b)
{
    struct op *o = (struct op *)b;
    OPENSSL_cleanse(o->key, sizeof o->key);
}

/* Better Auth's error shape for its routes; the admin routes (/api/keys)
 * answer a query that cannot start in ours. */
static void key_error(struct op_base *b, int status, const char *err)
{
    struct op *o = (struct op *)b;
    OPENSSL_cleanse(o->key, sizeof o->key);
    if (status == 503) {
        log_warn("api key query failed", LF_S("error", err ? err : "?"));
        auth_error(b->rq, 503, "DATABASE_UNAVAILABLE", "the database is unavailable; try again", NULL);
    } else if (o->admin_route) {
        http_error(b->rq, 500, NULL, err, NULL);
    } else {
        auth_error(b->rq, 500, "INTERNAL_ERROR", err, NULL);
    }
}

static struct op *op_new(struct rq *rq)
{
    struct op *o = op_alloc(rq, sizeof *o);
    o->b.also_abort = key_abort;
    o->b.answer_error = key_error;
    return o;
}

static void on_created(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        OPENSSL_cleanse(o->key, sizeof o->key);
        auth_error(o->b.rq, 500, "INTERNAL_ERROR", "key not stored", NULL);
        return;
    }
    audit_kick();
    key_answer(o->b.rq, res, o->key);
    OPENSSL_cleanse(o->key, sizeof o->key);
}

void h_apikey_create(struct rq *rq)
{
    yajl_val body = auth_body(rq);
    if (!body)
        return;
    /* "permissions" is server-only in Better Auth; here a signed-in user may
     * scope their own key, within their role (checked below). */
    static const char *const server_only[] = {"refillAmount", "refillInterval", "rateLimitMax",
                                              "rateLimitTimeWindow", "rateLimitEnabled"};
    for (size_t i = 0; i < sizeof server_only / sizeof server_only[0]; i++)
        if (json_member(body, server_only[i])) {
            auth_error(
                rq, 400, "SERVER_ONLY_PROPERTY",
                "The property you're trying to set can only be set from the server auth instance only.",
                server_only[i]);
            goto out;
        }
    yajl_val rem = json_member(body, "remaining");
    if (rem && !YAJL_IS_NULL(rem)) {
        auth_error(rq, 400, "SERVER_ONLY_PROPERTY",
                   "The property you're trying to set can only be set from the server auth instance only.",
                   "remaining");
        goto out;
    }
    if (json_member(body, "userId")) {
        auth_error(rq, 401, "UNAUTHORIZED_SESSION", "Unauthorized or invalid session", "userId");
        goto out;
    }
    yajl_val md = json_member(body, "metadata");
    if (md && !YAJL_IS_NULL(md)) {
        auth_error(rq, 400, "METADATA_DISABLED", "Metadata is disabled.", "metadata");
        goto out;
    }
    int has_name, has_prefix;
    const char *name = auth_field(rq, body, "name", 0, 1, NAME_MAX_LEN, &has_name);
    if (!name)
        goto out;
    const char *prefix = auth_field(rq, body, "prefix", 0, 1, PREFIX_MAX_LEN, &has_prefix);
    if (!prefix)
        goto out;
    for (const char *p = prefix; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-')) {
            auth_error(
                rq, 400, "VALIDATION_ERROR",
                "Invalid prefix format, must be alphanumeric and contain only underscores and hyphens.",
                "prefix");
            goto out;
        }
    char scopes[1024] = "";
    yajl_val pv = json_member(body, "permissions");
    if (pv && !YAJL_IS_NULL(pv)) {
        perm_mask m;
        char bad[96];
        if (authz_scopes_of(pv, 1, &m, bad, sizeof bad) < 0) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "permissions must be an object of resource -> [actions], e.g. "
                     "{\"messages\":[\"read\",\"send\"]}%s%s",
                     bad[0] ? "; unknown: " : "", bad);
            auth_error(rq, 400, "INVALID_PERMISSIONS", msg, "permissions");
            goto out;
        }
        if (m & ~authz_role_perms(rq->principal.role)) {
            auth_error(rq, 403, "forbidden", "a key cannot have a permission its owner's role lacks",
                       "permissions");
            goto out;
        }
        struct sbuf sj;
        sbuf_init(&sj);
        struct jsonw w;
        jw_init(&w, &sj);
        authz_scopes_json(&w, m);
        snprintf(scopes, sizeof scopes, "%s", jw_finish(&w) < 0 ? "{}" : sj.buf);
        sbuf_free(&sj);
    }
    char expires[24] = "";
    yajl_val ex = json_member(body, "expiresIn");
    if (ex && !YAJL_IS_NULL(ex)) {
        if (!YAJL_IS_NUMBER(ex)) {
            auth_error(rq, 400, "VALIDATION_ERROR", "expiresIn must be a number of seconds", "expiresIn");
            goto out;
        }
        double s = YAJL_GET_DOUBLE(ex);
        if (YAJL_IS_INTEGER(ex))
            s = (double)YAJL_GET_INTEGER(ex);
        if (!(s >= 86400)) {
            auth_error(rq, 400, "EXPIRES_IN_IS_TOO_SMALL",
                       "The expiresIn is smaller than the predefined minimum value.", "expiresIn");
            goto out;
        }
        if (s > 365.0 * 86400) {
            auth_error(rq, 400, "EXPIRES_IN_IS_TOO_LARGE",
                       "The expiresIn is larger than the predefined maximum value.", "expiresIn");
            goto out;
        }
        snprintf(expires, sizeof expires, "%.0f", s);
    }
    struct op *o = op_new(rq);
    char rnd[APIKEY_RANDOM_LEN + 1], hash[APIKEY_HASH_LEN + 1], start[START_LEN + 1];
    if (auth_random_string(rnd, APIKEY_RANDOM_LEN, 1) < 0 || auth_random_string(o->id, AUTH_ID_LEN, 0) < 0) {
        rq->on_abort = NULL;
        auth_error(rq, 500, "INTERNAL_ERROR", "no randomness", NULL);
        goto out;
    }
    snprintf(o->key, sizeof o->key, "%s%s", prefix, rnd);
    OPENSSL_cleanse(rnd, sizeof rnd);
    apikey_hash(o->key, strlen(o->key), hash);
    snprintf(start, sizeof start, "%.*s", START_LEN, o->key);
    struct audit_actor ac;
    audit_actor(rq, &ac);
    const char *p[9] = {o->id,
                        has_name ? name : NULL,
                        start,
                        has_prefix ? prefix : NULL,
                        hash,
                        rq->principal.user_id,
                        expires[0] ? expires : NULL,
                        scopes[0] ? scopes : NULL,
                        ac.ip};
    /* rateLimitEnabled false: wapi does not count requests per key, and a
     * database handed back to Better Auth keeps the key usable there too.
     * The audit row commits with the key. */
    op_run(
        o,
        "WITH k AS (INSERT INTO \"apikey\" (\"id\", \"configId\", \"name\", \"start\", \"prefix\", "
        "\"key\", \"referenceId\", \"enabled\", \"rateLimitEnabled\", \"rateLimitTimeWindow\", "
        "\"rateLimitMax\", \"requestCount\", \"expiresAt\", \"createdAt\", \"updatedAt\", \"permissions\") "
        "VALUES ($1, 'default', $2, $3, $4, $5, $6, true, false, 86400000, 10, 0, "
        "now() + make_interval(secs => $7::double precision), now(), now(), $8) RETURNING *), "
        "a AS (INSERT INTO wapi_audit (actor_user_id, actor_ip, action, target, detail) "
        "SELECT $6, $9, 'apikey.created', k.\"id\", jsonb_build_object('name', k.\"name\", 'owner', "
        "k.\"referenceId\", 'permissions', k.\"permissions\"::jsonb, 'expires_at', k.\"expiresAt\") FROM k) "
        "SELECT " SQL_KEY_COLS " FROM k",
        9, p, on_created);
out:
    yajl_tree_free(body);
}

static void on_listed(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "apiKeys");
    jw_arr(&w);
    for (int i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        key_members(&w, res, i);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_kint(&w, "total", PQntuples(res));
    jw_obj_end(&w);
    http_add_header(o->b.rq, "cache-control", "no-store");
    http_jsonw(o->b.rq, 200, &w);
    sbuf_free(&b);
}

void h_apikey_list(struct rq *rq)
{
    struct op *o = op_new(rq);
    const char *p[1] = {rq->principal.user_id};
    op_run(o,
           "SELECT " SQL_KEY_COLS " FROM \"apikey\" k WHERE k.\"referenceId\" = $1 "
           "ORDER BY k.\"createdAt\" DESC, k.\"id\" LIMIT 1000",
           1, p, on_listed);
}

static void on_got(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        auth_error(o->b.rq, 404, "KEY_NOT_FOUND", "API Key not found", "id");
        return;
    }
    key_answer(o->b.rq, res, NULL);
}

/* The value of one query parameter, percent-decoded into out; 1 if found. */
static int query_param(struct rq *rq, const char *name, char *out, size_t outlen)
{
    h2o_req_t *req = rq->req;
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        if ((size_t)(e - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (const char *p = q + nl + 1; p < e; p++) {
                if (o + 1 >= outlen)
                    return -1;
                if (*p == '%' && e - p >= 3) {
                    char hx[3] = {p[1], p[2], 0};
                    char *endp;
                    long v = strtol(hx, &endp, 16);
                    if (*endp || v == 0)
                        return -1;
                    out[o++] = (char)v;
                    p += 2;
                } else {
                    out[o++] = *p == '+' ? ' ' : *p;
                }
            }
            out[o] = '\0';
            return 1;
        }
        q = e + 1;
    }
    return 0;
}

void h_apikey_get(struct rq *rq)
{
    char id[128];
    int r = query_param(rq, "id", id, sizeof id);
    if (r <= 0 || !id[0]) {
        auth_error(rq, 400, "VALIDATION_ERROR", "the id query parameter is required (at most 127 bytes)",
                   "id");
        return;
    }
    struct op *o = op_new(rq);
    const char *p[2] = {id, rq->principal.user_id};
    op_run(o, "SELECT " SQL_KEY_COLS " FROM \"apikey\" k WHERE k.\"id\" = $1 AND k.\"referenceId\" = $2", 2,
           p, on_got);
}

static void on_deleted(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        if (o->admin_route)
            http_error(o->b.rq, 404, "not_found", "no API key with this id", NULL);
        else
            auth_error(o->b.rq, 404, "KEY_NOT_FOUND", "API Key not found", "keyId");
        return;
    }
    apikey_forget(o->id, NULL);
    audit_kick();
    if (o->admin_route) {
        http_send(o->b.rq, 204, NULL, "", 0);
        return;
    }
    static const char ok[] = "{\"success\":true}";
    http_json(o->b.rq, 200, ok, sizeof ok - 1);
}

/* Deletes key id (of owner, or of anyone when owner is NULL) with its audit row. */
static void revoke_key(struct rq *rq, const char *id, const char *owner, int admin_route)
{
    struct op *o = op_new(rq);
    o->admin_route = admin_route;
    snprintf(o->id, sizeof o->id, "%s", id);
    struct audit_actor ac;
    audit_actor(rq, &ac);
    const char *p[5] = {id, owner, ac.user, ac.key, ac.ip};
    op_run(
        o,
        "WITH d AS (DELETE FROM \"apikey\" WHERE \"id\" = $1 AND ($2::text IS NULL OR \"referenceId\" = $2) "
        "RETURNING \"id\", \"name\", \"referenceId\"), "
        "a AS (INSERT INTO wapi_audit (actor_user_id, actor_key_id, actor_ip, action, target, detail) "
        "SELECT $3, nullif($4, ''), $5, 'apikey.revoked', d.\"id\", "
        "jsonb_build_object('name', d.\"name\", 'owner', d.\"referenceId\") FROM d) "
        "SELECT \"id\" FROM d",
        5, p, on_deleted);
}

void h_apikey_delete(struct rq *rq)
{
    yajl_val body = auth_body(rq);
    if (!body)
        return;
    const char *id = auth_field(rq, body, "keyId", 1, 1, 127, NULL);
    if (id)
        revoke_key(rq, id, rq->principal.user_id, 0);
    yajl_tree_free(body);
}

/* ---- everyone's keys (admins): GET /api/keys, DELETE /api/keys/{id} */

static void on_all_keys(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_key(&w, "data");
    jw_arr(&w);
    for (int i = 0; i < PQntuples(res); i++) {
        jw_obj(&w);
        key_members(&w, res, i);
        jw_key(&w, "owner");
        jw_obj(&w);
        jw_key(&w, "email");
        auth_col_json(&w, res, i, NKEYCOLS);
        jw_key(&w, "role");
        auth_col_json(&w, res, i, NKEYCOLS + 1);
        jw_obj_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    http_add_header(o->b.rq, "cache-control", "no-store");
    http_jsonw(o->b.rq, 200, &w);
    sbuf_free(&b);
}

void h_keys_list_all(struct rq *rq)
{
    struct op *o = op_new(rq);
    o->admin_route = 1;
    op_run(o,
           "SELECT " SQL_KEY_COLS ", u.\"email\", " SQL_ROLE(
               "u.\"role\"") " FROM \"apikey\" k "
                             "LEFT JOIN \"user\" u ON u.\"id\" = k.\"referenceId\" ORDER BY "
                             "k.\"createdAt\" DESC, k.\"id\" LIMIT 1000",
           0, NULL, on_all_keys);
}

void h_keys_revoke_any(struct rq *rq)
{
    char *id = http_param(rq, 0);
    if (!id || strlen(id) > 127) {
        http_error(rq, 404, "not_found", "no API key with this id", NULL);
        return;
    }
    revoke_key(rq, id, NULL, 1);
}
