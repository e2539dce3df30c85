#include "actions.h"

#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "group_events.h"
#include "inbox.h"
#include "session.h"
#include "wa/wa_actions.h"
#include "wa/wa_group.h"
#include "wa/wa_messaging.h"
#include "worker_table.h"

#define MAX_ID 64
#define MAX_JID 128

static int not_connected(uint32_t *status, struct sbuf *body)
{
    *status = 409;
    jw_error_body(body, "not_connected", "the WhatsApp session is not connected", NULL);
    return 0;
}

/* A bounded string field copied out of the payload; -1 when absent or too long. */
static int rd_str(struct ipc_rd *rd, char *buf, size_t cap)
{
    uint32_t len;
    const uint8_t *p = ipc_rd_bytes(rd, &len);
    if (!p || len == 0 || len >= cap || memchr(p, 0, len))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return 0;
}

static int do_read(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char chat[MAX_JID];
    static char ids[IPC_ACT_MAX_IDS][MAX_ID];
    const char *idp[IPC_ACT_MAX_IDS];
    if (rd_str(rd, chat, sizeof chat) < 0)
        return -1;
    uint32_t n = ipc_rd_u32(rd);
    if (n == 0 || n > IPC_ACT_MAX_IDS)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(rd, ids[i], sizeof ids[i]) < 0)
            return -1;
        idp[i] = ids[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
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
    if (rd_str(rd, jid, sizeof jid) < 0 || rd_str(rd, state, sizeof state) < 0 || ipc_rd_end(rd) < 0)
        return -1;
    int typing = strcmp(state, "typing") == 0;
    if (!typing && strcmp(state, "paused") != 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
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
    if (rd_str(rd, jid, sizeof jid) < 0 || ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
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

/* A worker's request answered later: whom to answer. The records of such
 * requests begin with these two fields. */
struct later {
    pid_t pid;
    uint32_t msg_id;
};

/* Answers a request that waited (its worker may have left meanwhile). */
static void answer_later(const void *rec, uint32_t status, const struct sbuf *b, const char *what)
{
    const struct later *l = rec;
    if (!b->oom && workers_reply(l->pid, l->msg_id, status, b->buf, b->len) < 0)
        log_info("answered after its worker left", LF_S("what", what), LF_I("pid", l->pid));
}

/* A zeroed record of size bytes (struct later first) for pid's request
 * msg_id; NULL after answering 503 at once. */
static void *later_new(size_t size, pid_t pid, uint32_t msg_id, uint32_t *status, struct sbuf *body)
{
    struct later *l = calloc(1, size);
    if (!l) {
        *status = 503;
        jw_error_body(body, "out_of_memory", "try again", NULL);
        return NULL;
    }
    l->pid = pid, l->msg_id = msg_id;
    return l;
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
    answer_later(p, status, &b, "number check");
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
        if (rd_str(rd, phones[i], sizeof phones[i]) < 0 ||
            strspn(phones[i], "0123456789") != strlen(phones[i]))
            return -1;
        pp[i] = phones[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    struct later *p = later_new(sizeof *p, pid, msg_id, status, body);
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

/* ---- a group's metadata, asked of WhatsApp (w:g2 query) */

static const char *const ROLES[] = {"member", "admin", "superadmin"};

/* A refused participant's reason, by the server's code. */
static const char *member_code(int code)
{
    return code == 403   ? "not_allowed"
           : code == 404 ? "not_in_group"
           : code == 406 ? "not_acceptable"
           : code == 408 ? "not_on_whatsapp"
           : code == 409 ? "already_member"
                         : "refused";
}

/* <participant jid error=…/> children of n as [{jid, status, code}]. */
static void refused_json(struct jsonw *w, const wa_node *n, int all)
{
    jw_arr(w);
    for (uint32_t i = 0; n && n->content == WA_CONTENT_LIST && i < n->nchildren; i++) {
        const wa_node *c = n->children[i];
        char jb[160];
        const char *jid = wa_node_attr_text(c, "jid", jb, sizeof jb), *err = wa_node_attr_str(c, "error");
        if (strcmp(c->tag, "participant") || !jid || (!err && !all))
            continue;
        int code = err ? atoi(err) : 200;
        jw_obj(w);
        jw_kstr(w, "jid", jid);
        jw_kuint(w, "status", (uint64_t)(code > 0 ? code : 500));
        jw_kstr(w, "code", code == 200 ? "ok" : member_code(code));
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* One group as the API shows it; with refused (a creation's answer), also
 * the invitees the server refused. */
static void group_json_refused(struct jsonw *w, const struct wa_group_info *g, const wa_node *refused);

static void group_json(struct jsonw *w, const struct wa_group_info *g)
{
    group_json_refused(w, g, NULL);
}

static void group_json_refused(struct jsonw *w, const struct wa_group_info *g, const wa_node *refused)
{
    jw_obj(w);
    jw_kstr(w, "jid", g->jid);
    jw_kstr(w, "subject", g->subject);
    jw_kstr(w, "description", g->description);
    jw_kstr(w, "owner", g->owner[0] ? g->owner : NULL);
    jw_key(w, "created");
    if (g->created > 0) {
        char ts[RFC3339_LEN];
        rfc3339_s((time_t)g->created, ts, sizeof ts);
        jw_str(w, ts);
    } else {
        jw_null(w);
    }
    jw_kstr(w, "addressing_mode", g->lid_addressing ? "lid" : "pn");
    jw_kbool(w, "announce", g->announce);
    jw_kbool(w, "locked", g->locked);
    jw_kuint(w, "ephemeral_seconds", g->ephemeral_seconds);
    jw_key(w, "participants");
    jw_arr(w);
    for (size_t i = 0; i < g->n; i++) {
        const struct wa_group_participant *x = &g->p[i];
        jw_obj(w);
        jw_kstr(w, "jid", x->jid);
        jw_kstr(w, "pn", x->pn[0] ? x->pn : NULL);
        jw_kstr(w, "lid", x->lid[0] ? x->lid : NULL);
        jw_kstr(w, "role", ROLES[x->role >= 0 && x->role <= 2 ? x->role : 0]);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    if (refused) {
        jw_key(w, "refused");
        refused_json(w, refused, 0);
    }
    jw_obj_end(w);
}

/* The server's refusal as the API's error. */
static void group_error(struct sbuf *b, uint32_t *status, int code, const char *why)
{
    *status = code == 404                  ? 404
              : code == 403 || code == 401 ? 403
              : code == 406                ? 400
              : code == 409                ? 409
              : code                       ? 502
                                           : 503;
    jw_error_body(b,
                  code == 404   ? "group_not_found"
                  : code == 403 ? "not_participant"
                  : code == 401 ? "not_admin"
                  : code == 406 ? "not_acceptable"
                  : code == 409 ? "conflict"
                  : code        ? "whatsapp_error"
                                : "whatsapp_unavailable",
                  code == 404   ? "no such group"
                  : code == 403 ? "we are not in this group"
                  : code == 401 ? "only the group's admins may do this"
                  : code == 406 ? "WhatsApp did not accept it (e.g. an empty or too long subject)"
                  : code == 409 ? "WhatsApp says it conflicts (e.g. we are in the group already)"
                                : why,
                  NULL);
}

static void on_group(void *arg, const struct wa_group_info *g, int code, const char *why)
{
    struct later *p = arg;
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status = 200;
    if (!g) {
        group_error(&b, &status, code, why);
    } else {
        if (g->subject && *g->subject)
            inbox_chat_name(g->jid, g->subject);
        group_events_chat_timer(g->jid, g->ephemeral_seconds, NULL);
        struct jsonw w;
        jw_init(&w, &b);
        group_json(&w, g);
        workers_answer_json(&w, &status, &b);
    }
    answer_later(p, status, &b, "group query");
    sbuf_free(&b);
    free(p);
}

/* The groups we are in: one array, written as the answer's groups come. */
struct pending_list {
    struct later to; /* first: later_new, answer_later */
    struct sbuf b;
    struct jsonw w;
    int n;
};

static void on_group_list(void *arg, const struct wa_group_info *g, int code, const char *why)
{
    struct pending_list *p = arg;
    if (g) {
        if (g->subject && *g->subject)
            inbox_chat_name(g->jid, g->subject);
        group_events_chat_timer(g->jid, g->ephemeral_seconds, NULL);
        group_json(&p->w, g);
        p->n++;
        return;
    }
    uint32_t status = 200;
    struct sbuf err;
    sbuf_init(&err);
    const struct sbuf *out = &p->b;
    if (code != 200) {
        jw_fail(&p->w);
        jw_finish(&p->w);
        group_error(&err, &status, code, why);
        out = &err;
    } else {
        jw_arr_end(&p->w);
        jw_obj_end(&p->w);
        workers_answer_json(&p->w, &status, &p->b);
    }
    answer_later(p, status, out, "group list");
    sbuf_free(&err);
    sbuf_free(&p->b);
    free(p);
}

static int do_group_list(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    struct pending_list *p = later_new(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    sbuf_init(&p->b);
    jw_init(&p->w, &p->b);
    jw_obj(&p->w);
    jw_key(&p->w, "data");
    jw_arr(&p->w);
    if (wa_group_participating(c, on_group_list, p) < 0) {
        jw_fail(&p->w);
        jw_finish(&p->w);
        sbuf_free(&p->b);
        free(p);
        return not_connected(status, body);
    }
    return 1;
}

static int do_group(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[MAX_JID];
    if (rd_str(rd, jid, sizeof jid) < 0 || ipc_rd_end(rd) < 0 || !strstr(jid, "@g.us"))
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    struct later *p = later_new(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    if (wa_group_query(c, jid, on_group, p) < 0) {
        free(p);
        return not_connected(status, body);
    }
    return 1;
}

/* ---- changes: create, add/remove/promote/demote, leave */

enum {
    GC_CREATE = 1,
    GC_ADD,
    GC_REMOVE,
    GC_PROMOTE,
    GC_DEMOTE,
    GC_LEAVE,
    GC_PATCH,
    GC_INVITE,
    GC_REVOKE,
    GC_JOIN
};
static const char *const GC_ACTIONS[] = {NULL, NULL, "add", "remove", "promote", "demote", NULL};
#define GC_SETTINGS 4 /* subject, announce, locked, ephemeral */

struct pending_change {
    struct later to; /* first: later_new, answer_later */
    int op;
    char gjid[MAX_JID];
    /* GC_PATCH: the settings still to send, "tag=value" each */
    char settings[GC_SETTINGS][440];
    int nsettings, next;
};

static void on_group_change(void *arg, const wa_node *answer, int code, const char *why);

/* The next setting of a PATCH, or (all done) the group as it is now. */
static void patch_next(struct pending_change *p)
{
    struct wa_client *c = session_client();
    int r = -1;
    if (c && p->next < p->nsettings) {
        char *eq = strchr(p->settings[p->next], '=');
        *eq = '\0';
        r = wa_group_setting(c, p->gjid, p->settings[p->next], eq + 1, on_group_change, p);
        p->next++;
    } else if (c) {
        struct later *q = malloc(sizeof *q);
        if (q) {
            *q = p->to;
            if ((r = wa_group_query(c, p->gjid, on_group, q)) < 0)
                free(q);
        }
        if (r == 0) {
            free(p);
            return;
        }
    }
    if (r < 0) {
        struct sbuf b;
        sbuf_init(&b);
        uint32_t status = 503;
        jw_error_body(&b, "whatsapp_unavailable", "the connection went away while changing the group", NULL);
        answer_later(p, status, &b, "group change");
        sbuf_free(&b);
        free(p);
    }
}

static void on_group_change(void *arg, const wa_node *answer, int code, const char *why)
{
    struct pending_change *p = arg;
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status = 200;
    struct jsonw w;
    struct wa_group_info g;
    const wa_node *lg = p->op == GC_LEAVE && answer ? wa_node_child(answer, "group") : NULL;
    const char *lerr = lg ? wa_node_attr_str(lg, "error") : NULL;
    const char *icode = (p->op == GC_INVITE || p->op == GC_REVOKE) && answer && !strcmp(answer->tag, "invite")
                            ? wa_node_attr_str(answer, "code")
                            : NULL;
    char gb[160];
    const char *joined = p->op == GC_JOIN && answer && !strcmp(answer->tag, "group")
                             ? wa_node_attr_text(answer, "jid", gb, sizeof gb)
                             : NULL;
    if (code != 200 || (p->op == GC_LEAVE && lerr)) {
        group_error(&b, &status, code != 200 ? code : atoi(lerr), why ? why : "refused");
    } else if (p->op == GC_PATCH) {
        sbuf_free(&b);
        patch_next(p); /* answers when the last setting is in */
        return;
    } else if (p->op == GC_INVITE || p->op == GC_REVOKE || p->op == GC_JOIN) {
        if ((p->op == GC_JOIN && !joined) ||
            (p->op != GC_JOIN && (!icode || !*icode || strlen(icode) > 64))) {
            group_error(&b, &status, 500, "the server's answer is not the expected one");
        } else {
            jw_init(&w, &b);
            jw_obj(&w);
            if (p->op == GC_JOIN) {
                jw_kstr(&w, "jid", joined);
                wa_messaging_group_changed(joined, 0);
            } else {
                char link[128];
                snprintf(link, sizeof link, "https://chat.whatsapp.com/%s", icode);
                jw_kstr(&w, "jid", p->gjid);
                jw_kstr(&w, "code", icode);
                jw_kstr(&w, "link", link);
            }
            jw_obj_end(&w);
            workers_answer_json(&w, &status, &b);
        }
    } else if (p->op == GC_CREATE) {
        if (!answer || wa_group_parse(answer, &g) < 0) {
            group_error(&b, &status, 500, "the server's answer is no group");
        } else {
            if (g.subject && *g.subject)
                inbox_chat_name(g.jid, g.subject);
            jw_init(&w, &b);
            group_json_refused(&w, &g, answer);
            status = 201;
            workers_answer_json(&w, &status, &b);
            wa_group_info_free(&g);
        }
    } else if (p->op == GC_LEAVE) {
        wa_messaging_group_changed(p->gjid, 1);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "jid", p->gjid);
        jw_kbool(&w, "left", 1);
        jw_obj_end(&w);
        workers_answer_json(&w, &status, &b);
    } else {
        wa_messaging_group_changed(p->gjid, p->op == GC_REMOVE);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "jid", p->gjid);
        jw_kstr(&w, "action", GC_ACTIONS[p->op]);
        jw_key(&w, "results");
        refused_json(&w, answer, 1);
        jw_obj_end(&w);
        workers_answer_json(&w, &status, &b);
    }
    answer_later(p, status, &b, "group change");
    sbuf_free(&b);
    free(p);
}

#define GC_MAX 1024

static int do_group_change(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    uint32_t op = ipc_rd_u32(rd);
    char target[400];
    if (op < GC_CREATE || op > GC_JOIN || rd_str(rd, target, sizeof target) < 0)
        return -1;
    uint32_t n = ipc_rd_u32(rd);
    if (n > GC_MAX)
        return -1;
    static char jids[GC_MAX][440]; /* JIDs, or for a PATCH "subject=" and 100 characters */
    const char *jp[GC_MAX];
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(rd, jids[i], sizeof jids[i]) < 0)
            return -1;
        jp[i] = jids[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    struct pending_change *p = later_new(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    p->op = (int)op;
    int r;
    if (op == GC_CREATE) {
        char key[24];
        wa_client_new_id(c, key, sizeof key);
        r = wa_group_create(c, target, key, jp, n, on_group_change, p);
    } else if (op == GC_JOIN) {
        r = wa_group_join(c, target, on_group_change, p);
    } else if (op == GC_PATCH) {
        snprintf(p->gjid, sizeof p->gjid, "%.127s", target);
        if (n < 1 || n > GC_SETTINGS) {
            free(p);
            return -1;
        }
        for (uint32_t i = 0; i < n; i++) {
            if (!strchr(jids[i], '=') || strlen(jids[i]) >= sizeof p->settings[i]) {
                free(p);
                return -1;
            }
            snprintf(p->settings[i], sizeof p->settings[i], "%s", jids[i]);
        }
        p->nsettings = (int)n;
        char *eq = strchr(p->settings[0], '=');
        *eq = '\0';
        p->next = 1;
        r = wa_group_setting(c, p->gjid, p->settings[0], eq + 1, on_group_change, p);
    } else if (op == GC_INVITE || op == GC_REVOKE) {
        snprintf(p->gjid, sizeof p->gjid, "%.127s", target);
        r = wa_group_invite(c, target, op == GC_REVOKE, on_group_change, p);
    } else {
        snprintf(p->gjid, sizeof p->gjid, "%.127s", target);
        r = op == GC_LEAVE ? wa_group_leave(c, target, on_group_change, p)
                           : wa_group_members(c, target, GC_ACTIONS[op], jp, n, on_group_change, p);
    }
    if (r < 0) {
        free(p);
        return not_connected(status, body);
    }
    return 1;
}

int actions_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    switch (ipc_rd_u32(rd)) {
    case IPC_ACT_READ:
        return do_read(rd, status, body);
    case IPC_ACT_PRESENCE:
        return do_presence(rd, status, body);
    case IPC_ACT_CONTACTS:
        return do_contacts(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUP:
        return do_group(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUPS:
        return do_group_list(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUP_CHANGE:
        return do_group_change(m->pid, m->id, rd, status, body);
    case IPC_ACT_SUBSCRIBE:
        return do_subscribe(rd, status, body);
    default:
        return -1;
    }
}
