#include "audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "events.h"
#include "sdb.h"
#include "sup.h"

#define BATCH 100
#define BATCH_S "100"
#define POLL_S 5

static struct {
    struct event *timer;
    int busy;  /* a query is out */
    int again; /* kicked meanwhile */
} A;

static void publish(void);

/* One statement: the oldest unpublished rows get the event ids reserved
 * for them ($1 on), in order. A row another process is publishing is
 * skipped (its lock), and one published meanwhile is left alone (event_id
 * IS NULL under the row lock), so no action is published twice. */
static const char SQL_PUBLISH[] =
    "WITH p AS (SELECT id FROM wapi_audit WHERE event_id IS NULL ORDER BY id LIMIT " BATCH_S
    " FOR UPDATE SKIP LOCKED), "
    "x AS (SELECT id AS aid, $1::bigint + row_number() OVER (ORDER BY id) - 1 AS eid FROM p), "
    "u AS (UPDATE wapi_audit a SET event_id = x.eid FROM x WHERE a.id = x.aid AND a.event_id IS NULL "
    "  RETURNING a.id, a.at, a.action, a.actor_user_id, a.actor_key_id, a.actor_ip, a.target, a.detail, "
    "x.eid), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT u.eid, 'audit.' || u.action, jsonb_build_object("
    "  'id', u.id::text, 'at', to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
    "  'action', u.action, 'actor', jsonb_build_object('user_id', u.actor_user_id, "
    "  'email', (SELECT \"email\" FROM \"user\" WHERE \"id\" = u.actor_user_id), 'api_key_id', "
    "u.actor_key_id, "
    "  'ip', u.actor_ip), 'target', u.target, 'detail', u.detail) FROM u RETURNING id, type, data) "
    "SELECT e.id, e.type, e.data::text, u.action, coalesce(u.actor_user_id, ''), coalesce(u.actor_key_id, "
    "''), "
    "coalesce(u.target, '') FROM e JOIN u ON u.eid = e.id ORDER BY e.id";

static void done(int more)
{
    A.busy = 0;
    if (A.again || more) {
        A.again = 0;
        publish();
    }
}

static void on_published(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        log_warn("audit: publishing failed", LF_S("error", err ? err : "?"));
        done(0);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        uint64_t id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        events_publish(id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        /* The detail stays in the table: it may name addresses users consider private. */
        log_info("audit", LF_S("action", PQgetvalue(res, i, 3)), LF_S("actor_user_id", PQgetvalue(res, i, 4)),
                 LF_S("actor_api_key_id", PQgetvalue(res, i, 5)), LF_S("target", PQgetvalue(res, i, 6)));
    }
    done(PQntuples(res) == BATCH); /* a full batch: more may wait */
}

static void publish(void)
{
    if (!S.migrated)
        return;
    if (A.busy) {
        A.again = 1;
        return;
    }
    A.busy = 1;
    /* Ids for a whole batch, taken now: they are in publication order. */
    char first[24];
    snprintf(first, sizeof first, "%" PRIu64, events_reserve(BATCH));
    const char *p[1] = {first};
    if (!sdb_query(SQL_PUBLISH, 1, p, on_published, NULL))
        done(0);
}

void audit_kick(void)
{
    publish();
}

int audit_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    (void)m, (void)status, (void)body;
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    publish();
    return WORKER_NO_ANSWER;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    publish();
}

void audit_init(void)
{
    A.timer = event_new(S.base, -1, EV_PERSIST, on_timer, NULL);
    struct timeval tv = {POLL_S, 0};
    if (A.timer)
        evtimer_add(A.timer, &tv);
}

static void on_recorded(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("audit: cannot record", LF_S("error", err ? err : "?"));
    publish();
}

void audit_record(const struct audit_who *who, const char *action, const char *target,
                  const char *detail_json)
{
    const char *p[6] = {
        who ? who->user : NULL, who ? who->key : NULL, who ? who->ip : NULL, action, target, detail_json};
    if (!sdb_query("SELECT wapi_audit_add($1, $2, $3, $4, $5, $6::jsonb)", 6, p, on_recorded, NULL))
        log_warn("audit: out of memory", LF_S("action", action));
}
