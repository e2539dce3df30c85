/* Password hashing off the event loop: a few low-priority threads per
 * worker run scrypt; completions come back on the h2o loop through a
 * pipe. A callback never runs inside the call that queued its job. */
#ifndef WAPI_WORKER_HASHPOOL_H
#define WAPI_WORKER_HASHPOOL_H
#include <h2o.h>

#include "common/password.h"

/* ok: 1 match / 0 no match (verify), 0 done (hash), -1 failed; hash is the
 * new "salt:key" string for a hash job, else NULL. */
typedef void (*hashpool_cb)(void *ctx, int ok, const char *hash);
struct hashpool_job;

/* threads per worker; slots: hashes at once over all workers (lock files
 * in run_dir; 0 = no limit). */
int hashpool_init(h2o_loop_t *loop, int threads, const char *run_dir, int slots);
/* NULL when the queue is full (the caller answers 503) or memory runs out. */
struct hashpool_job *hashpool_hash(const char *pw, size_t len, hashpool_cb cb, void *ctx);
/* stored may be NULL: the same work is done and the answer is "no match". */
struct hashpool_job *hashpool_verify(const char *stored, const char *pw, size_t len, hashpool_cb cb, void *ctx);
/* The callback will not run; the job still finishes in its thread. */
void hashpool_cancel(struct hashpool_job *job);

#endif
