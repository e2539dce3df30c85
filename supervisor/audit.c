#include "audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "events.h"
#include "sdb.h"
#include "sup.h"

#define BATCH 100
#define POLL_S 5

static struct {
    struct event *timer;
    int busy;  /* a query is out */
    int again; /* kicked meanwhile */
} A;

static void publish(void);

static const char SQL_PENDING[] = "SELECT id FROM wapi_audit WHERE event_id IS NULL ORDER BY id LIMIT "
                                  "100";

/* Event ids come from the supervisor's event log (monotonic); a row another
 * process published meanwhile is left alone (event_id IS NULL under the row
 * lock), so no action is published twice. */
static const char SQL_PUBLISH[] =
    "WITH x AS (SELECT unnest($1::bigint[]) AS aid, unnest($2::bigint[]) AS eid), "
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
    int full = ctx != NULL;
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
    done(full);
}

static void on_pending(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        log_warn("audit: cannot read new rows", LF_S("error", err ? err : "?"));
        done(0);
        return;
    }
    int n = PQntuples(res);
    if (n == 0) {
        done(0);
        return;
    }
    struct sbuf ids, eids;
    sbuf_init(&ids);
    sbuf_init(&eids);
    sbuf_addc(&ids, '{');
    sbuf_addc(&eids, '{');
    for (int i = 0; i < n; i++) {
        sbuf_addf(&ids, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        sbuf_addf(&eids, "%s%" PRIu64, i ? "," : "", events_next_id());
    }
    sbuf_addc(&ids, '}');
    sbuf_addc(&eids, '}');
    const char *p[2] = {ids.buf, eids.buf};
    if (ids.oom || eids.oom || !sdb_query(SQL_PUBLISH, 2, p, on_published, n == BATCH ? (void *)1 : NULL)) {
        log_warn("audit: out of memory");
        done(0);
    }
    sbuf_free(&ids);
    sbuf_free(&eids);
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
    if (!sdb_query(SQL_PENDING, 0, NULL, on_pending, NULL))
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
