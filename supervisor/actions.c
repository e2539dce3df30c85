#include "actions.h"

#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "action_req.h"
#include "appsync.h"
#include "common/timefmt.h"
#include "inbox.h"
#include "wa/wa_actions.h"
#include "group_actions.h"
#include "profile_actions.h"
#include "wa/wa_messaging.h"
#include "wa/wa_peerdata.h"
#include "worker_table.h"

#define MAX_ID 64
#define MAX_JID 128

static int do_read(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char chat[MAX_JID];
    static char ids[IPC_ACT_MAX_IDS][MAX_ID];
    const char *idp[IPC_ACT_MAX_IDS];
    if (action_req_str(rd, chat, sizeof chat) < 0)
        return -1;
    uint32_t n = ipc_rd_u32(rd);
    if (n == 0 || n > IPC_ACT_MAX_IDS)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (action_req_str(rd, ids[i], sizeof ids[i]) < 0)
            return -1;
        idp[i] = ids[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    if (wa_send_read(c, chat, idp, n) < 0) {
        *status = 503;
        jw_error_body(body, "send_failed", "the read receipt could not be sent; try again", NULL);
        return 0;
    }
    struct jsonw w;
    jw_init(&w, body);
    jw_obj(&w);
    jw_kuint(&w, "receipts", n);
    jw_obj_end(&w);
    *status = 200;
    workers_answer_json(&w, status, body);
    return 0;
}

static int do_presence(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[MAX_JID], state[16];
    if (action_req_str(rd, jid, sizeof jid) < 0 || action_req_str(rd, state, sizeof state) < 0 ||
        ipc_rd_end(rd) < 0)
        return -1;
    int typing = strcmp(state, "typing") == 0;
    if (!typing && strcmp(state, "paused") != 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    if (wa_send_chatstate(c, jid, typing) < 0) {
        *status = 503;
        jw_error_body(body, "send_failed", "the presence update could not be sent; try again", NULL);
        return 0;
    }
    struct jsonw w;
    jw_init(&w, body);
    jw_obj(&w);
    jw_kstr(&w, "state", state);
    jw_obj_end(&w);
    *status = 200;
    workers_answer_json(&w, status, body);
    return 0;
}

static int do_subscribe(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[MAX_JID];
    if (action_req_str(rd, jid, sizeof jid) < 0 || ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    if (wa_send_presence_subscribe(c, jid) < 0) {
        *status = 503;
        jw_error_body(body, "send_failed", "the subscription could not be sent; try again", NULL);
        return 0;
    }
    struct jsonw w;
    jw_init(&w, body);
    jw_obj(&w);
    jw_kstr(&w, "jid", jid);
    jw_kbool(&w, "subscribed", 1);
    jw_obj_end(&w);
    *status = 200;
    workers_answer_json(&w, status, body);
    return 0;
}

/* {bytes chat, bytes anchor id, u32 from_me, u64 anchor ts, u32 count}: our
 * phone is asked for older messages of the chat (the worker found the
 * anchor); 202 {request_id, chat_jid, anchor_id, count}. The answer is a
 * history sync chunk (supervisor/history.c). */
static int do_history(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char chat[160], anchor[128], rid[64];
    if (action_req_str(rd, chat, sizeof chat) < 0 || action_req_str(rd, anchor, sizeof anchor) < 0)
        return -1;
    int from_me = ipc_rd_u32(rd) != 0;
    uint64_t ts = ipc_rd_u64(rd);
    uint32_t count = ipc_rd_u32(rd);
    if (ipc_rd_end(rd) < 0 || count < 1 || count > WA_PD_HISTORY_MAX || ts > INT64_MAX)
        return -1;
    if (!action_req_client(status, body))
        return 0;
    if (wa_messaging_history_request(chat, anchor, from_me, (int64_t)ts, (int)count, rid, sizeof rid) < 0) {
        *status = 503;
        jw_error_body(body, "send_failed", "the request could not be sent to our phone; try again", NULL);
        return 0;
    }
    struct jsonw w;
    jw_init(&w, body);
    jw_obj(&w);
    jw_kstr(&w, "request_id", rid);
    jw_kstr(&w, "chat_jid", chat);
    jw_kstr(&w, "anchor_id", anchor);
    jw_kuint(&w, "count", count);
    jw_obj_end(&w);
    *status = 202;
    workers_answer_json(&w, status, body);
    return 0;
}

static void on_contacts(void *arg, const struct wa_contact_result *res, size_t n, const char *why)
{
    struct later *p = arg;
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status = 200;
    if (!res) {
        status = 503;
        jw_error_body(&b, "whatsapp_unavailable", why ? why : "no answer from WhatsApp", NULL);
    } else {
        struct jsonw w;
        jw_init(&w, &b);
        jw_obj(&w);
        jw_key(&w, "data");
        jw_arr(&w);
        for (size_t i = 0; i < n; i++) {
            jw_obj(&w);
            jw_kstr(&w, "phone", res[i].phone);
            jw_kbool(&w, "on_whatsapp", res[i].on_whatsapp);
            jw_kstr(&w, "jid", res[i].jid[0] ? res[i].jid : NULL);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
        workers_answer_json(&w, &status, &b);
    }
    action_req_answer(p, status, &b, "number check");
    sbuf_free(&b);
    free(p);
}

static int do_contacts(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char phones[WA_ACT_MAX_PHONES][24];
    const char *pp[WA_ACT_MAX_PHONES];
    uint32_t n = ipc_rd_u32(rd);
    if (n == 0 || n > WA_ACT_MAX_PHONES || n > IPC_ACT_MAX_PHONES)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (action_req_str(rd, phones[i], sizeof phones[i]) < 0 ||
            strspn(phones[i], "0123456789") != strlen(phones[i]))
            return -1;
        pp[i] = phones[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct later *p = action_req_later(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    if (wa_query_contacts(c, pp, n, on_contacts, p) < 0) {
        free(p);
        *status = 503;
        jw_error_body(body, "send_failed", "the query could not be sent; try again", NULL);
        return 0;
    }
    return 1;
}

int actions_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    uint32_t act = ipc_rd_u32(rd);
    switch (act) {
    case IPC_ACT_READ:
        return do_read(rd, status, body);
    case IPC_ACT_PRESENCE:
        return do_presence(rd, status, body);
    case IPC_ACT_CONTACTS:
        return do_contacts(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUP:
    case IPC_ACT_GROUPS:
    case IPC_ACT_GROUP_CHANGE:
    case IPC_ACT_PICTURE:
    case IPC_ACT_PICTURE_SET:
        return group_actions_ipc(act, m, rd, status, body);
    case IPC_ACT_ABOUT:
    case IPC_ACT_ABOUT_SET:
    case IPC_ACT_BLOCKLIST:
    case IPC_ACT_BLOCK:
    case IPC_ACT_BUSINESS:
        return profile_actions_ipc(act, m, rd, status, body);
    case IPC_ACT_SUBSCRIBE:
        return do_subscribe(rd, status, body);
    case IPC_ACT_HISTORY:
        return do_history(rd, status, body);
    case IPC_ACT_CHAT_STATE:
        return appsync_change_ipc(m, rd, status, body);
    default:
        return -1;
    }
}
