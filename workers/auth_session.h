/* Auth sessions in Better Auth's "session" table: create one, resolve a
 * token (refreshing it when older than updateAge, like Better Auth), delete. */
#ifndef WAPI_WORKER_AUTH_SESSION_H
#define WAPI_WORKER_AUTH_SESSION_H
#include "auth_http.h"
#include "db.h"

/* Result columns of both queries: session 0..7, user 8..15; resolve adds
 * refreshed (16) and expired (17). */
#define SESS_COL_ID 0
#define SESS_COL_TOKEN 2
#define SESS_COL_USER_ID 7
#define SESS_COL_USER 8
#define SESS_COL_ROLE 15
#define SESS_COL_REFRESHED 16
#define SESS_COL_EXPIRED 17

struct pgq *auth_session_create(struct rq *rq, const char *user_id, int remember, char *token_out,
                                     db_cb cb, void *ctx);
/* may_refresh = 0 when the user asked not to be remembered. */
struct pgq *auth_session_resolve(const char *token, int may_refresh, db_cb cb, void *ctx);
struct pgq *auth_session_delete(const char *token, db_cb cb, void *ctx);
/* After resolve: 1 with a live session (re-issuing the cookie when it was
 * refreshed), 0 when none or expired (the row is deleted, cookies cleared). */
int auth_session_apply(struct rq *rq, const PGresult *res, int remember);

#endif
