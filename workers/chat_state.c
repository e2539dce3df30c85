/* A chat's settings that follow our phone (app-state sync): archive, pin,
 * mute and read, and their undo as DELETE of the same path. The chat must
 * be known; the supervisor sends the change as a patch and answers 202 with
 * the chat's state once WhatsApp's server took it and it is committed
 * (supervisor/appsync.c). Our push name goes the same way (PUT
 * /api/profile/name). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "common/utf8.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

/* A conflict may take a sync (a snapshot download) before ours goes again. */
#define CHAT_STATE_TIMEOUT_MS 60000
#define MUTE_MAX_S (10LL * 366 * 86400)

enum { W_ARCHIVE = 1, W_PIN, W_MUTE, W_READ, W_PUSH_NAME }; /* IPC_ACT_CHAT_STATE's what */
#define PUSH_NAME_MAX_CHARS 25                              /* WhatsApp's limit for a profile name */

struct cs_op {
    struct op_base b;
    int what, on;
    int64_t mute_end_ms;
    const char *params[1];
};

/* The chat (known here) and its last message's time: then the supervisor is asked. */
static const char SQL_CHAT_LAST[] =
    "SELECT c.jid, coalesce(extract(epoch FROM (SELECT max(m.ts) FROM wa_messages m WHERE m.chat_jid = "
    "c.jid)), "
    "extract(epoch FROM c.last_message_at), 0)::bigint FROM wa_chats c WHERE c.jid = wapi_chat_of($1)";

static void on_chat(void *ctx, const PGresult *res, const char *err)
{
    struct cs_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct rq *rq = o->b.rq;
    rq->on_abort = NULL;
    if (PQntuples(res) != 1) {
        http_error(rq, 404, "not_found", "no chat with this JID", NULL);
        return;
    }
    const char *jid = PQgetvalue(res, 0, 0);
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_CHAT_STATE);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_u32(&b, (uint32_t)o->what);
    ipc_wr_u32(&b, (uint32_t)o->on);
    ipc_wr_u64(&b, (uint64_t)o->mute_end_ms);
    ipc_wr_u64(&b, (uint64_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    sup_ask_action(rq, &b, CHAT_STATE_TIMEOUT_MS);
}

static void change(struct rq *rq, int what, int on, int64_t mute_end_ms)
{
    char *raw = http_param(rq, 0);
    char jid[160];
    if (!raw || parse_to(raw, jid, sizeof jid) < 0 || strstr(jid, "@broadcast") ||
        strstr(jid, "@newsletter")) {
        http_error(rq, 404, "not_found", "no chat with this JID", NULL);
        return;
    }
    if (!strchr(jid, '@'))
        strncat(jid, "@s.whatsapp.net", sizeof jid - strlen(jid) - 1);
    struct cs_op *o = op_alloc(rq, sizeof *o);
    o->what = what, o->on = on, o->mute_end_ms = mute_end_ms;
    o->params[0] = jid; /* copied by op_run */
    op_run(o, SQL_CHAT_LAST, 1, o->params, on_chat);
}

void h_chat_archive(struct rq *rq)
{
    change(rq, W_ARCHIVE, 1, 0);
}

void h_chat_unarchive(struct rq *rq)
{
    change(rq, W_ARCHIVE, 0, 0);
}

void h_chat_pin(struct rq *rq)
{
    change(rq, W_PIN, 1, 0);
}

void h_chat_unpin(struct rq *rq)
{
    change(rq, W_PIN, 0, 0);
}

void h_chat_read(struct rq *rq)
{
    change(rq, W_READ, 1, 0);
}

void h_chat_unread(struct rq *rq)
{
    change(rq, W_READ, 0, 0);
}

void h_chat_unmute(struct rq *rq)
{
    change(rq, W_MUTE, 0, 0);
}

/* "2026-12-04T13:25:30Z" or with a fraction of a second: Unix seconds, -1 when not that. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &n) != 6 ||
        n != 19)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* POST /api/chats/{jid}/mute {until?: RFC 3339 time, seconds?: from now}; neither: for ever. */
void h_chat_mute(struct rq *rq)
{
    int64_t end_ms = -1, now = (int64_t)time(NULL);
    if (rq->req->entity.len > 0) {
        yajl_val body = rest_body(rq, REST_BODY_MAX);
        if (!body)
            return;
        yajl_val until = json_member(body, "until");
        int64_t secs = 0;
        int hs = json_int(body, "seconds", &secs);
        int bad_until = 0;
        int64_t t = -1;
        if (until && !YAJL_IS_NULL(until))
            bad_until = !YAJL_IS_STRING(until) || (t = parse_time(until->u.string)) < 0 || t <= now ||
                        t - now > MUTE_MAX_S;
        int both = until && !YAJL_IS_NULL(until) && json_member(body, "seconds");
        int bad_secs = json_member(body, "seconds") && (hs != 1 || secs < 1 || secs > MUTE_MAX_S);
        yajl_tree_free(body);
        if (both) {
            http_error(rq, 400, "invalid_mute", "give until or seconds, not both", "until");
            return;
        }
        if (bad_until) {
            http_error(rq, 400, "invalid_until",
                       "until must be a time in the future (RFC 3339, UTC, e.g. 2030-01-01T00:00:00Z), "
                       "at most ten years away",
                       "until");
            return;
        }
        if (bad_secs) {
            http_error(rq, 400, "invalid_seconds", "seconds must be a whole number from 1 to ten years",
                       "seconds");
            return;
        }
        if (t > 0)
            end_ms = t * 1000;
        else if (hs == 1)
            end_ms = (now + secs) * 1000;
    }
    change(rq, W_MUTE, 1, end_ms);
}

/* ---- GET /api/labels: the labels of a business account (app-state sync
 * labelEdit), each with the chats it is on (labelAssociation). */

static const char SQL_LABELS[] = "SELECT json_build_object('data', coalesce(json_agg(json_build_object('id', "
                                 "l.id, 'name', l.name, 'color', "
                                 "l.color, 'deleted', l.deleted, 'chats', coalesce((SELECT "
                                 "json_agg(cl.chat_jid ORDER BY cl.chat_jid) FROM "
                                 "wa_chat_labels cl WHERE cl.label_id = l.id), '[]'::json)) ORDER BY l.id), "
                                 "'[]'::json))::text FROM wa_labels l";

static void on_labels(void *ctx, const PGresult *res, const char *err)
{
    struct op_base *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *j = PQgetvalue(res, 0, 0);
    http_json(o->rq, 200, j, strlen(j));
}

void h_labels_list(struct rq *rq)
{
    struct op_base *o = op_alloc(rq, sizeof *o);
    op_run(o, SQL_LABELS, 0, NULL, on_labels);
}

/* PUT /api/profile/name {name}: our push name, 1 to 25 characters, as our
 * phone would set it (pushNameSetting in critical_block); 202 {name} once
 * WhatsApp's server took it. Contacts see it with our next messages and
 * presence. */
void h_profile_name(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    const char *t = json_str(body, "name");
    long chars = t ? utf8_len(t, strlen(t)) : -1;
    if (chars < 1 || chars > PUSH_NAME_MAX_CHARS || strspn(t, " \t\r\n") == strlen(t) || strlen(t) >= 128) {
        http_error(rq, 400, "invalid_name", "name must be a string of 1 to 25 characters", "name");
    } else {
        struct sbuf b;
        sbuf_init(&b);
        ipc_wr_u32(&b, IPC_ACT_CHAT_STATE);
        ipc_wr_bytes(&b, t, (uint32_t)strlen(t));
        ipc_wr_u32(&b, W_PUSH_NAME);
        ipc_wr_u32(&b, 1);
        ipc_wr_u64(&b, 0);
        ipc_wr_u64(&b, 0);
        sup_ask_action(rq, &b, CHAT_STATE_TIMEOUT_MS);
    }
    yajl_tree_free(body);
}
