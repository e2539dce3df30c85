/* API keys the way @better-auth/api-key keeps them: the "apikey" table, the
 * key stored as base64url(SHA-256(key)). Authenticates requests that carry
 * one (looked up at most every APIKEY_CACHE_MS per key and worker, so a
 * revoked key stops working within that time, at once in the worker that
 * revoked it or hears of it) and serves the plugin's
 * /api/auth/api-key/{create,list,get,delete} and the admins' /api/keys.
 * A key may carry scopes ("permissions"); it never has more than its owner's
 * role as it is now. */
#ifndef WAPI_WORKER_APIKEY_H
#define WAPI_WORKER_APIKEY_H
#include "http.h"

#define APIKEY_CACHE_MS 500

/* Fills rq->principal and calls next(rq), or answers 401 itself. */
void apikey_authenticate(struct rq *rq, const char *key, size_t len, http_handler next);

/* Drops cached lookups of key key_id and of every key of user_id (either may
 * be NULL): a revocation or a role change takes effect at once here. */
void apikey_forget(const char *key_id, const char *user_id);

#endif
