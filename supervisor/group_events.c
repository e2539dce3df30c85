#include "group_events.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "events.h"
#include "sdb.h"
#include "wa/wa_messaging.h"

static const char SQL_NOTICE[] =
    "WITH n AS (INSERT INTO wa_group_notices (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id) "
    "INSERT INTO wa_events (id, type, data) SELECT $2::bigint, $3, $4::jsonb FROM n RETURNING id, type, "
    "data::text";

struct taken {
    uint64_t token;
};

static void on_stored(void *ctx, const PGresult *res, const char *err)
{
    struct taken *t = ctx;
    if (!res) {
        log_warn("a group change was not stored; the server tells it again", LF_S("error", err));
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            events_publish(strtoull(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                           PQgetvalue(res, i, 2));
    }
    wa_messaging_held_done(t->token, res != NULL);
    free(t);
}

static void people(struct jsonw *w, const struct wa_group_event *ev)
{
    jw_key(w, "participants");
    jw_arr(w);
    for (size_t i = 0; i < ev->n; i++)
        jw_str(w, ev->participants[i]);
    jw_arr_end(w);
}

/* A chat's timer as a group's metadata or notice tells it: stored, and
 * chat.disappearing raised, only when it changes. */
static const char SQL_CHAT_EPHEMERAL[] =
    "SELECT $4::bigint, wapi_chat_ephemeral($1, $2::int, now(), $3, $4::bigint)";

static void on_chat_ephemeral(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        log_warn("cannot record a chat's disappearing timer", LF_S("error", err));
        return;
    }
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1))
        events_publish(strtoull(PQgetvalue(res, 0, 0), NULL, 10), "chat.disappearing", PQgetvalue(res, 0, 1));
}

void group_events_chat_timer(const char *jid, uint32_t seconds, const char *by)
{
    char secs[16], evid[24];
    snprintf(secs, sizeof secs, "%u", (unsigned)(seconds <= WA_MSG_EXPIRATION_MAX ? seconds : 0));
    snprintf(evid, sizeof evid, "%llu", (unsigned long long)events_next_id());
    const char *p[] = {jid, secs, by && *by ? by : NULL, evid};
    if (!sdb_query(SQL_CHAT_EPHEMERAL, 4, p, on_chat_ephemeral, NULL))
        log_warn("cannot record a chat's disappearing timer", LF_S("error", "out of memory"));
}

int group_events_take(void *arg, const struct wa_group_event *ev, uint64_t token)
{
    (void)arg;
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "jid", ev->gjid);
    jw_kstr(&w, "actor", ev->actor[0] ? ev->actor : NULL);
    const char *type = "group.updated";
    if (!strcmp(ev->kind, "created")) {
        type = "group.created";
        jw_kstr(&w, "subject", ev->subject);
        people(&w, ev);
    } else if (!strcmp(ev->kind, "participants")) {
        type = "group.participants";
        jw_kstr(&w, "action", ev->action);
        people(&w, ev);
    } else {
        if (ev->subject)
            jw_kstr(&w, "subject", ev->subject);
        if (ev->description)
            jw_kstr(&w, "description", ev->description);
        if (ev->announce >= 0)
            jw_kbool(&w, "announce", ev->announce);
        if (ev->locked >= 0)
            jw_kbool(&w, "locked", ev->locked);
        if (ev->ephemeral_seconds >= 0) {
            jw_kint(&w, "ephemeral_seconds", ev->ephemeral_seconds);
            /* The chat's timer too (raises chat.disappearing when it changes). */
            group_events_chat_timer(
                ev->gjid,
                ev->ephemeral_seconds <= WA_MSG_EXPIRATION_MAX ? (uint32_t)ev->ephemeral_seconds : 0,
                ev->actor[0] ? ev->actor : NULL);
        }
        if (ev->invite_revoked)
            jw_kbool(&w, "invite_revoked", 1);
    }
    jw_obj_end(&w);
    struct taken *t = malloc(sizeof *t);
    char key[200], evid[24];
    snprintf(key, sizeof key, "%s %s", ev->gjid, ev->id);
    snprintf(evid, sizeof evid, "%" PRIu64, events_next_id());
    int rc = -1;
    if (t && jw_finish(&w) == 0) {
        t->token = token;
        const char *p[] = {key, evid, type, b.buf};
        if (sdb_query(SQL_NOTICE, 4, p, on_stored, t))
            rc = 0;
    }
    if (rc < 0) {
        log_warn("a group change could not be stored; the server tells it again", LF_S("group", ev->gjid));
        free(t);
    }
    sbuf_free(&b);
    return rc;
}
