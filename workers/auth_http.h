/* Request-level helpers shared by the account endpoints: the JSON body
 * (16 KiB cap), errors in both our shape and Better Auth's, the client's
 * address, the origin check, cookies, and row-to-JSON writers. */
#ifndef WAPI_WORKER_AUTH_HTTP_H
#define WAPI_WORKER_AUTH_HTTP_H
#include <libpq-fe.h>
#include <yajl/yajl_tree.h>

#include "common/config.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "http.h"

#define AUTH_BODY_MAX 16384
#define SESSION_EXPIRES_S (7 * 24 * 3600) /* Better Auth's session.expiresIn */
#define SESSION_UPDATE_AGE_S (24 * 3600)  /* session.updateAge */

struct auth_conf {
    const char *secret;
    char session_cookie[64]; /* better-auth.session_token, __Secure- on https */
    char dont_remember[64];  /* better-auth.dont_remember */
    char session_data[64];   /* better-auth.session_data (cleared on sign-out) */
    int secure;
    const char *registration; /* open | invite | closed */
    int production;           /* the first account needs the setup token */
    const char *base_url;     /* BETTER_AUTH_URL: invitation links point here */
};
extern struct auth_conf AUTHC;

void auth_http_init(const struct wapi_config *cfg);

/* http_add_header() with a value copied into the request's memory. */
void auth_add_header(struct rq *rq, const char *name, const char *value);
/* {"error":{"code","message","field"},"code","message"}: ours and Better Auth's. */
void auth_error(struct rq *rq, int status, const char *code, const char *message, const char *field);
/* The body as a JSON object, or NULL after answering 400/413 itself. */
yajl_val auth_body(struct rq *rq);
/* A string member within limits, or NULL after answering 400 naming it.
 * required=0 and absent: *present=0 and returns "". max counts UTF-16
 * units like JavaScript's length. */
const char *auth_field(struct rq *rq, yajl_val body, const char *name, int required, size_t min, size_t max,
                       int *present);

/* The client's address: the socket peer; when that peer is loopback or a
 * private address (a proxy in front of us: the ingress), the last entry of
 * X-Forwarded-For, which that proxy wrote. */
void auth_client_ip(struct rq *rq, char *out, size_t outlen);
/* Origin (or Referer) equals BETTER_AUTH_URL's origin or a trusted origin. */
int auth_origin_trusted(struct rq *rq);
/* The state-changing request guard for requests that carry cookies or come
 * from a browser: answers 403 and returns 0 when refused. */
int auth_csrf_ok(struct rq *rq, int cookie_authenticated);

/* Header value or NULL (len set). */
const char *auth_header(struct rq *rq, const char *name, size_t *len);
/* The session token from a valid signed cookie into tok; length or -1. */
int auth_session_token(struct rq *rq, char *tok, size_t toklen);
int auth_dont_remember(struct rq *rq);
void auth_set_session_cookie(struct rq *rq, const char *token, int remember);
void auth_clear_session_cookies(struct rq *rq);

/* SQL fragments: a timestamp as JavaScript's Date.toJSON() writes it. */
#define SQL_TS(col) "to_char((" col ")::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* A user's role as authz_role_of() reads the stored name: Better Auth's
 * "user" is a member, anything unknown (or NULL) a viewer. */
#define SQL_ROLE(col)                                                                                        \
    "CASE WHEN " col " IN ('admin', 'member', 'viewer') THEN " col " WHEN " col " = 'user' THEN 'member' "   \
    "ELSE 'viewer' END"
/* The 8 user columns auth_user_json() reads, from "user" aliased u. */
#define SQL_USER_COLS                                                                                        \
    "u.\"id\", u.\"name\", u.\"email\", u.\"emailVerified\", u.\"image\", " SQL_TS(                          \
        "u.\"createdAt\"") ", " SQL_TS("u.\"updatedAt\"") ", " SQL_ROLE("u.\"role\"")
/* The 8 session columns auth_session_json() reads, from s. */
#define SQL_SESSION_COLS                                                                                     \
    "s.\"id\", " SQL_TS("s.\"expiresAt\"") ", s.\"token\", " SQL_TS("s.\"createdAt\"") ", " SQL_TS(          \
        "s.\"updatedAt\"") ", s.\"ipAddress\", s.\"userAgent\", s.\"userId\""

/* Each writes one value: the user object, the session object, a nullable
 * text column as a string or null. */
void auth_user_json(struct jsonw *w, const PGresult *r, int row, int col);
void auth_session_json(struct jsonw *w, const PGresult *r, int row, int col);
void auth_col_json(struct jsonw *w, const PGresult *r, int row, int col);
/* Answers 200 {"user":{...}} from row 0 of r (the user columns first). */
void auth_user_answer(struct rq *rq, const PGresult *r);

#endif
