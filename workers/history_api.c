/* History sync over the API: GET /api/history lists the chunks our phone
 * sent and what became of them (common/sql/0037_history_sync.sql); POST
 * /api/chats/{jid}/history asks our phone for older messages of a chat,
 * anchored at its oldest stored message (supervisor/history.c). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"

#define HISTORY_COUNT_MAX 500 /* as WA_PD_HISTORY_MAX */
#define HISTORY_ASK_TIMEOUT_MS 5000

struct op {
    struct op_base base; /* first: op.h */
    int count;
};

/* The latest jobs first (the blob's keys and payload are never shown). */
static const char SQL_JOBS[] =
    "SELECT coalesce(json_agg(json_build_object('id', j.message_id, 'sync_type', CASE j.sync_type "
    "WHEN 0 THEN 'initial_bootstrap' WHEN 1 THEN 'initial_status_v3' WHEN 2 THEN 'full' WHEN 3 THEN 'recent' "
    "WHEN 4 THEN 'push_name' WHEN 5 THEN 'non_blocking_data' WHEN 6 THEN 'on_demand' ELSE 'unknown' END, "
    "'chunk_order', j.chunk_order, 'progress', j.progress, 'state', j.state, 'attempts', j.attempts, "
    "'error', j.error, 'inline', j.direct_path IS NULL, 'bytes', j.file_length, "
    "'conversations', j.conversations, 'messages', j.messages, 'pushnames', "
    "j.pushnames, 'lid_mappings', j.lid_mappings, 'request_id', j.request_id, "
    "'received_at', " REST_TS("j.received_at") ", 'done_at', " REST_TS(
        "j.done_at") ", "
                     "'receipted_at', " REST_TS(
                         "j.receipted_at") ") ORDER BY j.received_at DESC), '[]')::text "
                                           "FROM (SELECT * FROM wa_history_jobs WHERE $1 = '' OR state = $1 "
                                           "ORDER BY received_at DESC "
                                           "LIMIT $2::int) j";

static void on_jobs(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *json = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "[]";
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"data\":");
    sbuf_adds(&b, json);
    sbuf_addc(&b, '}');
    if (b.oom)
        http_error(o->base.rq, 500, NULL, "out of memory", NULL);
    else
        http_json(o->base.rq, 200, b.buf, b.len);
    sbuf_free(&b);
}

/* GET /api/history?state=pending|done|failed|skipped&limit=1..500 */
void h_history_list(struct rq *rq)
{
    char state[16] = "";
    int sr = rest_query(rq, "state", state, sizeof state);
    if (sr == -2 || (sr >= 0 && strcmp(state, "pending") && strcmp(state, "done") &&
                     strcmp(state, "failed") && strcmp(state, "skipped"))) {
        http_error(rq, 400, "invalid_state", "state must be pending, done, failed or skipped", "state");
        return;
    }
    int limit = rest_limit(rq, 100, 500);
    if (limit < 0)
        return;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    struct op *o = op_alloc(rq, sizeof *o);
    const char *p[] = {sr >= 0 ? state : "", lim};
    op_run(o, SQL_JOBS, 2, p, on_jobs);
}

/* The chat (by its number's JID when a LID is mapped) and its oldest stored
 * message: the anchor older history is asked before. */
static const char SQL_ANCHOR[] =
    "SELECT c.jid, m.id, m.from_me, extract(epoch FROM m.ts)::bigint FROM wa_chats c "
    "LEFT JOIN LATERAL (SELECT id, from_me, ts FROM wa_messages WHERE chat_jid = c.jid "
    "AND type <> 'undecryptable' ORDER BY ts, seq LIMIT 1) m ON true WHERE c.jid = wapi_chat_of($1)";

static void on_anchor(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    struct rq *rq = o->base.rq;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) != 1) {
        http_error(rq, 404, "not_found", "no chat with this JID", NULL);
        return;
    }
    if (PQgetisnull(res, 0, 1)) {
        http_error(rq, 409, "no_anchor",
                   "the chat has no stored message to ask older history before; its history comes with the "
                   "phone's history sync",
                   NULL);
        return;
    }
    const char *chat = PQgetvalue(res, 0, 0), *id = PQgetvalue(res, 0, 1);
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_HISTORY);
    ipc_wr_bytes(&b, chat, (uint32_t)strlen(chat));
    ipc_wr_bytes(&b, id, (uint32_t)strlen(id));
    ipc_wr_u32(&b, PQgetvalue(res, 0, 2)[0] == 't');
    ipc_wr_u64(&b, strtoull(PQgetvalue(res, 0, 3), NULL, 10));
    ipc_wr_u32(&b, (uint32_t)o->count);
    sup_ask_action(rq, &b, HISTORY_ASK_TIMEOUT_MS);
}

/* POST /api/chats/{jid}/history {count}: 202 {request_id, ...}; the answer
 * arrives as a history sync chunk (history.progress, request_id). */
void h_chat_history(struct rq *rq)
{
    char *raw = http_param(rq, 0);
    char jid[160];
    if (!raw || !rest_jid_ok(raw, strlen(raw)) || parse_to(raw, jid, sizeof jid) < 0) {
        http_error(rq, 404, "not_found", "no chat with this JID", NULL);
        return;
    }
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    int64_t count = 50;
    int hc = json_int(body, "count", &count);
    yajl_tree_free(body);
    if (hc < 0 || count < 1 || count > HISTORY_COUNT_MAX) {
        http_error(rq, 400, "invalid_count", "count must be an integer from 1 to 500", "count");
        return;
    }
    struct op *o = op_alloc(rq, sizeof *o);
    o->count = (int)count;
    const char *p[] = {jid};
    op_run(o, SQL_ANCHOR, 1, p, on_anchor);
}
