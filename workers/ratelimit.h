/* Sign-in and sign-up limits, in PostgreSQL so every worker (and every pod
 * on the same database) shares them; fixed windows, one statement per
 * attempt:
 *   - per client: RATELIMIT_CLIENT_MAX attempts a minute ("sign-in:ip:...");
 *     an IPv6 client is its /64 (one subscriber holds at least that);
 *   - per account, for sign-in: RATELIMIT_ACCOUNT_MAX failed attempts in
 *     RATELIMIT_ACCOUNT_WINDOW_S, from any address ("sign-in:email:..."),
 *     after which even the right password waits (else the limit would tell
 *     a guess that is right from one that is not).
 * The first refusal of a key in a window is written to the audit log in the
 * same statement. */
#ifndef WAPI_WORKER_RATELIMIT_H
#define WAPI_WORKER_RATELIMIT_H
#include <stddef.h>

#include "db.h"

#define RATELIMIT_CLIENT_MAX 10
#define RATELIMIT_CLIENT_WINDOW_S 60
#define RATELIMIT_ACCOUNT_MAX 10
#define RATELIMIT_ACCOUNT_WINDOW_S 900

/* The part of a client address one person controls: an IPv4 address whole,
 * an IPv6 address by its /64. */
void ratelimit_client(const char *ip, char *out, size_t outlen);
/* Counts one attempt under client_key and reads account_key's failures
 * (NULL: none); ip goes into an audit row. Read the result with
 * ratelimit_allowed(). */
struct pgq *ratelimit_attempt(const char *client_key, const char *account_key, const char *ip, db_cb cb,
                                   void *ctx);
/* 1 when within both limits; else 0 with *retry_after (seconds, >= 1) and
 * *first_refusal set when an audit row was written for this refusal. */
int ratelimit_allowed(const PGresult *res, int *retry_after, int *first_refusal);
/* Counts a failed sign-in for account_key; answer the client after cb (so
 * its next attempt meets the count). Read the result with
 * ratelimit_locked(): 1 when the account just reached its limit (an audit
 * row was written). */
struct pgq *ratelimit_failed(const char *account_key, const char *ip, db_cb cb, void *ctx);
int ratelimit_locked(const PGresult *res);

#endif
