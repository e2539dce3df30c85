/* The audit log, the worker's side: who acts (as SQL parameters for the
 * wapi_audit_add() call or INSERT that records an action in the action's own
 * statement), waking the supervisor to publish new rows as audit.* events,
 * and GET /api/audit. */
#ifndef WAPI_WORKER_AUDIT_H
#define WAPI_WORKER_AUDIT_H
#include "http.h"

/* The actor of rq: user id, API key id ("" when none) and client address,
 * in rq's memory. */
struct audit_actor {
    const char *user, *key, *ip;
};
void audit_actor(struct rq *rq, struct audit_actor *a);
/* After a statement that wrote audit rows committed. */
void audit_kick(void);

#endif
