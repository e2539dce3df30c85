#include "audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "auth_http.h"
#include "common/ipc.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

void audit_actor(struct rq *rq, struct audit_actor *a)
{
    char *ip = h2o_mem_alloc_pool(&rq->req->pool, 64);
    auth_client_ip(rq, ip, 64);
    a->user = rq->principal.user_id;
    a->key = rq->principal.api_key_id;
    a->ip = ip;
}

void audit_kick(void)
{
    sup_notify(IPC_AUDIT_KICK, NULL, 0);
}

/* ---- GET /api/audit */

#define AUDIT_JSON                                                                                           \
    "json_build_object('id', a.id::text, 'at', " REST_TS(                                                    \
        "a.at") ", 'action', a.action, 'actor', "                                                            \
                "json_build_object('user_id', a.actor_user_id, 'email', u.\"email\", 'api_key_id', "         \
                "a.actor_key_id, "                                                                           \
                "'ip', a.actor_ip), 'target', a.target, 'detail', a.detail, 'event_id', "                    \
                "a.event_id::text)::text"

/* Newest first; the cursor is the id of the last one shown. */
static const char SQL_AUDIT[] =
    "SELECT " AUDIT_JSON ", a.id, NULL FROM wapi_audit a LEFT JOIN \"user\" u ON u.\"id\" = a.actor_user_id "
    "WHERE ($1::bigint IS NULL OR a.id < $1::bigint) AND ($2::text IS NULL OR a.action = $2 "
    "OR a.action LIKE $2 || '.%') ORDER BY a.id DESC LIMIT $3";

struct audit_op {
    struct op_base base;
    int limit;
};

static void on_audit(void *ctx, const PGresult *res, const char *err)
{
    struct audit_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    rest_answer_page(o->base.rq, res, 0, o->limit, 0, 1, 2);
}

void h_audit_list(struct rq *rq)
{
    int limit;
    int64_t cur;
    int has = rest_page(rq, 50, 200, &limit, &cur);
    if (has < 0)
        return;
    char action[64];
    int al = rest_query(rq, "action", action, sizeof action);
    if (al == -2 || al == 0 || (al > 0 && strspn(action, "abcdefghijklmnopqrstuvwxyz_.") != (size_t)al)) {
        http_error(rq, 400, "invalid_action",
                   "action must be an action name or prefix such as user or webhook.created", "action");
        return;
    }
    struct audit_op *o = op_alloc(rq, sizeof *o);
    o->limit = limit;
    char c[24], l[16];
    snprintf(c, sizeof c, "%" PRId64, cur);
    snprintf(l, sizeof l, "%d", limit + 1);
    const char *p[3] = {has ? c : NULL, al > 0 ? action : NULL, l};
    op_run(o, SQL_AUDIT, 3, p, on_audit);
}
