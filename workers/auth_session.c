#include "auth_session.h"

#include <stdio.h>
#include <string.h>

#include "common/auth_token.h"

#define STR_(x) #x
#define STR(x) STR_(x)

struct pgq *auth_session_create(struct rq *rq, const char *user_id, int remember, char *token_out,
                                     db_cb cb, void *ctx)
{
    char id[AUTH_ID_LEN + 1], ip[64], ua[513] = "", ttl[16];
    if (auth_random_string(id, AUTH_ID_LEN, 0) < 0 || auth_random_string(token_out, AUTH_ID_LEN, 0) < 0)
        return NULL;
    auth_client_ip(rq, ip, sizeof ip);
    size_t n;
    const char *u = auth_header(rq, "user-agent", &n);
    if (u) {
        if (n > 512)
            n = 512;
        while (n > 0 && ((unsigned char)u[n - 1] & 0xC0) == 0x80)
            n--; /* never cut a UTF-8 sequence in half */
        if (n > 0 && (unsigned char)u[n - 1] >= 0xC0)
            n--;
        memcpy(ua, u, n);
        ua[n] = '\0';
        if (memchr(ua, '\0', n))
            ua[0] = '\0';
    }
    /* Not remembered: the row lives a day, the cookie until the browser closes. */
    snprintf(ttl, sizeof ttl, "%d", remember ? SESSION_EXPIRES_S : 24 * 3600);
    const char *p[6] = {id, ttl, token_out, ip, ua, user_id};
    return db_query("WITH s AS (INSERT INTO \"session\" (\"id\", \"expiresAt\", \"token\", \"createdAt\", "
                    "\"updatedAt\", \"ipAddress\", \"userAgent\", \"userId\") "
                    "VALUES ($1, now() + make_interval(secs => $2::int), $3, now(), now(), $4, $5, $6) RETURNING *) "
                    "SELECT " SQL_SESSION_COLS ", " SQL_USER_COLS " FROM s JOIN \"user\" u ON u.\"id\" = s.\"userId\"",
                    6, p, cb, ctx);
}

struct pgq *auth_session_resolve(const char *token, int may_refresh, db_cb cb, void *ctx)
{
    const char *p[2] = {token, may_refresh ? "1" : "0"};
    return db_query(
        "WITH upd AS (UPDATE \"session\" SET \"expiresAt\" = now() + make_interval(secs => " STR(SESSION_EXPIRES_S)
        "), \"updatedAt\" = now() WHERE \"token\" = $1 AND $2 = '1' AND \"expiresAt\" > now() "
        "AND \"expiresAt\" - make_interval(secs => " STR(SESSION_EXPIRES_S) " - " STR(SESSION_UPDATE_AGE_S)
        ") <= now() RETURNING *), "
        "cur AS (SELECT * FROM upd UNION ALL SELECT * FROM \"session\" WHERE \"token\" = $1 "
        "AND NOT EXISTS (SELECT 1 FROM upd)) "
        "SELECT " SQL_SESSION_COLS ", " SQL_USER_COLS ", EXISTS (SELECT 1 FROM upd), s.\"expiresAt\" <= now() "
        "FROM cur s JOIN \"user\" u ON u.\"id\" = s.\"userId\"",
        2, p, cb, ctx);
}

struct pgq *auth_session_delete(const char *token, db_cb cb, void *ctx)
{
    const char *p[1] = {token};
    return db_query("DELETE FROM \"session\" WHERE \"token\" = $1", 1, p, cb, ctx);
}

int auth_session_apply(struct rq *rq, const PGresult *res, int remember)
{
    if (!res || PQntuples(res) != 1)
        return 0;
    if (PQgetvalue(res, 0, SESS_COL_EXPIRED)[0] == 't') {
        auth_session_delete(PQgetvalue(res, 0, SESS_COL_TOKEN), NULL, NULL);
        auth_clear_session_cookies(rq);
        return 0;
    }
    if (PQgetvalue(res, 0, SESS_COL_REFRESHED)[0] == 't')
        auth_set_session_cookie(rq, PQgetvalue(res, 0, SESS_COL_TOKEN), remember);
    return 1;
}
