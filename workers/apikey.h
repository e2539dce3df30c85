/* API keys the way @better-auth/api-key keeps them: the "apikey" table, the
 * key stored as base64url(SHA-256(key)). Authenticates requests that carry
 * one (looked up at most every APIKEY_CACHE_MS per key and worker, so a
 * revoked key stops working within that time) and serves the plugin's
 * /api/auth/api-key/{create,list,get,delete}. */
#ifndef WAPI_WORKER_APIKEY_H
#define WAPI_WORKER_APIKEY_H
#include "http.h"

#define APIKEY_CACHE_MS 500

/* Fills rq->principal and calls next(rq), or answers 401 itself. */
void apikey_authenticate(struct rq *rq, const char *key, size_t len, http_handler next);

#endif
