#include "calls.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/timefmt.h"
#include "events.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_messaging.h"

static const char SQL_CALL[] =
    "WITH c AS (INSERT INTO wa_calls (call_id, from_jid, caller_pn, group_jid, video, offered_at, rejected) "
    "VALUES ($1, $2, nullif($3, ''), nullif($4, ''), $5::boolean, to_timestamp($6::bigint), $7::boolean) "
    "ON CONFLICT (call_id) DO NOTHING RETURNING call_id) "
    "INSERT INTO wa_events (id, type, data) SELECT $8::bigint, 'call.received', $9::jsonb FROM c "
    "RETURNING id, type, data::text";

struct taken {
    uint64_t token;
    int reject;
    struct wa_call call;
};

static void on_stored(void *ctx, const PGresult *res, const char *err)
{
    struct taken *t = ctx;
    if (!res) {
        log_warn("a call was not stored; the server tells it again", LF_S("error", err));
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            events_publish(strtoull(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                           PQgetvalue(res, i, 2));
        /* Turned down once, when first seen (a call told again was already). */
        if (t->reject && PQntuples(res) > 0 && wa_messaging_call_reject(&t->call) < 0)
            log_warn("a call could not be rejected", LF_S("call", t->call.call_id));
    }
    wa_messaging_held_done(t->token, res != NULL);
    free(t);
}

int calls_take(void *arg, const struct wa_call *call, uint64_t token)
{
    (void)arg;
    struct taken *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->token = token;
    t->reject = S.cfg.whatsapp.reject_calls;
    t->call = *call;
    int64_t ts = call->ts ? call->ts : (int64_t)time(NULL);
    char at[RFC3339_LEN];
    rfc3339_s((time_t)ts, at, sizeof at);
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "id", call->call_id);
    jw_kstr(&w, "from", call->from);
    jw_kstr(&w, "caller_pn", call->caller_pn[0] ? call->caller_pn : NULL);
    jw_kstr(&w, "group_jid", call->group_jid[0] ? call->group_jid : NULL);
    jw_kbool(&w, "video", call->video);
    jw_kbool(&w, "offline", call->offline);
    jw_kbool(&w, "rejected", t->reject);
    jw_kstr(&w, "at", at);
    jw_obj_end(&w);
    char evid[24], tsb[24];
    snprintf(evid, sizeof evid, "%" PRIu64, events_next_id());
    snprintf(tsb, sizeof tsb, "%" PRId64, ts);
    int rc = -1;
    if (jw_finish(&w) == 0) {
        const char *p[] = {call->call_id,
                           call->from,
                           call->caller_pn,
                           call->group_jid,
                           call->video ? "t" : "f",
                           tsb,
                           t->reject ? "t" : "f",
                           evid,
                           b.buf};
        if (sdb_query(SQL_CALL, 9, p, on_stored, t))
            rc = 0;
    }
    if (rc < 0) {
        log_warn("a call could not be stored; the server tells it again", LF_S("call", call->call_id));
        free(t);
    }
    sbuf_free(&b);
    return rc;
}
