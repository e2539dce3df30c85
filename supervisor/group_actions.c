/* The group requests of IPC_ACTION: a group's metadata, the groups we are
 * in, and changes (create, members, settings, description, invite, join,
 * leave, picture), each asked of WhatsApp and answered when it answers. */
#include "group_actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "action_req.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "group_events.h"
#include "inbox.h"
#include "media.h"
#include "media_image.h"
#include "media_store.h"
#include "session.h"
#include "wa/wa_group.h"
#include "wa/wa_messaging.h"
#include "wa/wa_offload.h"
#include "wa/wa_picture.h"
#include "worker_table.h"

#define MAX_JID 128

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
    action_req_answer(p, status, &b, "group query");
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
    action_req_answer(p, status, out, "group list");
    sbuf_free(&err);
    sbuf_free(&p->b);
    free(p);
}

static int do_group_list(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct pending_list *p = action_req_later(sizeof *p, pid, msg_id, status, body);
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
        return action_req_not_connected(status, body);
    }
    return 1;
}

static int do_group(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[MAX_JID];
    if (action_req_str(rd, jid, sizeof jid) < 0 || ipc_rd_end(rd) < 0 || !strstr(jid, "@g.us"))
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct later *p = action_req_later(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    if (wa_group_query(c, jid, on_group, p) < 0) {
        free(p);
        return action_req_not_connected(status, body);
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
#define GC_SETTINGS 5   /* subject, description, announce, locked, ephemeral */
#define GC_SETTING 8208 /* "description=" and 2048 characters of UTF-8 */

struct pending_change {
    struct later to; /* first: later_new, answer_later */
    int op;
    char gjid[MAX_JID];
    /* GC_PATCH: the settings still to send, "tag=value" each */
    char settings[GC_SETTINGS][GC_SETTING];
    int nsettings, next;
};

static void on_group_change(void *arg, const wa_node *answer, int code, const char *why);

static void on_description_prev(void *arg, const struct wa_group_info *g, int code, const char *why);

/* Sends setting i of a PATCH ("tag=value"); a description asks for the
 * current one's id first (the server refuses a change naming another). */
static int patch_send(struct wa_client *c, struct pending_change *p, int i)
{
    char *eq = strchr(p->settings[i], '=');
    *eq = '\0';
    p->next = i + 1;
    if (!strcmp(p->settings[i], "description"))
        return wa_group_query(c, p->gjid, on_description_prev, p);
    return wa_group_setting(c, p->gjid, p->settings[i], eq + 1, on_group_change, p);
}

/* The answer went away or could not be sent: 503. */
static void patch_unavailable(struct pending_change *p)
{
    struct sbuf b;
    sbuf_init(&b);
    jw_error_body(&b, "whatsapp_unavailable", "the connection went away while changing the group", NULL);
    action_req_answer(p, 503, &b, "group change");
    sbuf_free(&b);
    free(p);
}

static void on_description_prev(void *arg, const struct wa_group_info *g, int code, const char *why)
{
    struct pending_change *p = arg;
    struct wa_client *c = session_client();
    if (!g) {
        on_group_change(p, NULL, code, why);
        return;
    }
    const char *text = p->settings[p->next - 1] + strlen("description") + 1;
    char id[24];
    if (!c || wa_group_describe(c, p->gjid, text, g->description_id, wa_client_new_id(c, id, sizeof id),
                                on_group_change, p) < 0)
        patch_unavailable(p);
}

/* The next setting of a PATCH, or (all done) the group as it is now. */
static void patch_next(struct pending_change *p)
{
    struct wa_client *c = session_client();
    int r = -1;
    if (c && p->next < p->nsettings) {
        r = patch_send(c, p, p->next);
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
    if (r < 0)
        patch_unavailable(p);
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
    action_req_answer(p, status, &b, "group change");
    sbuf_free(&b);
    free(p);
}

#define GC_MAX 1024

static int do_group_change(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    uint32_t op = ipc_rd_u32(rd);
    char target[400];
    if (op < GC_CREATE || op > GC_JOIN || action_req_str(rd, target, sizeof target) < 0)
        return -1;
    uint32_t n = ipc_rd_u32(rd);
    if (n > GC_MAX)
        return -1;
    static char jids[GC_MAX][MAX_JID];
    static char settings[GC_SETTINGS][GC_SETTING]; /* a PATCH's, "tag=value" each */
    const char *jp[GC_MAX];
    if (op == GC_PATCH && n > GC_SETTINGS)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (op == GC_PATCH
                ? action_req_str(rd, settings[i], sizeof settings[i]) < 0 || !strchr(settings[i], '=')
                : action_req_str(rd, jids[i], sizeof jids[i]) < 0)
            return -1;
        jp[i] = jids[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct pending_change *p = action_req_later(sizeof *p, pid, msg_id, status, body);
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
        for (uint32_t i = 0; i < n; i++)
            memcpy(p->settings[i], settings[i], sizeof p->settings[i]); /* same size, NUL within */
        p->nsettings = (int)n;
        r = patch_send(c, p, 0);
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
        return action_req_not_connected(status, body);
    }
    return 1;
}

/* ---- profile pictures (w:profile:picture) */

struct pending_picture {
    struct later to; /* first */
    char jid[MAX_JID];
    int get, own, fd; /* get: where it is; else a change (own: of our picture) */
    uint8_t *jpeg;
    size_t len;
    char err[160];
};

static void picture_free(struct pending_picture *p)
{
    if (p->fd >= 0)
        close(p->fd);
    free(p->jpeg);
    free(p);
}

static void on_picture(void *arg, const struct wa_picture *pic, int code, const char *why)
{
    struct pending_picture *p = arg;
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status = 200;
    if (!pic && (code == 404 || (code == 401 && !strstr(p->jid, "@g.us")))) {
        status = 404;
        jw_error_body(&b, code == 404 ? "picture_not_found" : "picture_hidden",
                      code == 404 ? "there is no picture" : "the picture is hidden from us", NULL);
    } else if (!pic) {
        group_error(&b, &status, code, why);
    } else {
        struct jsonw w;
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "jid", p->jid);
        jw_kstr(&w, "id", pic->id[0] ? pic->id : NULL);
        if (p->get) {
            jw_kstr(&w, "type", pic->type[0] ? pic->type : NULL);
            jw_kstr(&w, "url", pic->url[0] ? pic->url : NULL);
            jw_kstr(&w, "direct_path", pic->direct_path[0] ? pic->direct_path : NULL);
        }
        jw_obj_end(&w);
        workers_answer_json(&w, &status, &b);
    }
    action_req_answer(p, status, &b, "picture");
    sbuf_free(&b);
    picture_free(p);
}

/* On a thread: the stored image as a profile picture. */
static void picture_work(void *arg)
{
    struct pending_picture *p = arg;
    struct media_image info;
    if (media_image_picture(p->fd, &p->jpeg, &p->len, &info, p->err, sizeof p->err) < 0) {
        free(p->jpeg);
        p->jpeg = NULL;
    } else if (p->len > WA_PICTURE_MAX) {
        snprintf(p->err, sizeof p->err, "the picture is still too large as JPEG");
        free(p->jpeg);
        p->jpeg = NULL;
    }
}

static void picture_done(void *arg)
{
    struct pending_picture *p = arg;
    struct wa_client *c = session_client();
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status;
    if (!p->jpeg) {
        status = 400;
        jw_error_body(&b, "invalid_picture", p->err[0] ? p->err : "the file is no picture", "media_id");
    } else if (c && wa_picture_set(c, p->own ? NULL : p->jid, p->jpeg, p->len, on_picture, p) == 0) {
        sbuf_free(&b);
        return;
    } else {
        status = 409;
        jw_error_body(&b, "not_connected", "the WhatsApp session is not connected", NULL);
    }
    action_req_answer(p, status, &b, "picture");
    sbuf_free(&b);
    picture_free(p);
}

static int do_picture(uint32_t act, pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status,
                      struct sbuf *body)
{
    char jid[MAX_JID], sha[80] = "";
    if (action_req_str(rd, jid, sizeof jid) < 0)
        return -1;
    uint32_t flag = ipc_rd_u32(rd); /* preview, or remove */
    if (act == IPC_ACT_PICTURE_SET && !flag &&
        (action_req_str(rd, sha, sizeof sha) < 0 || strlen(sha) != 64 ||
         strspn(sha, "0123456789abcdef") != 64))
        return -1;
    int own = !strcmp(jid, "me"); /* our own picture */
    if (ipc_rd_end(rd) < 0 || flag > 1 || (act == IPC_ACT_PICTURE_SET && !own && !strstr(jid, "@g.us")) ||
        (act == IPC_ACT_PICTURE && own))
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct pending_picture *p = action_req_later(sizeof *p, pid, msg_id, status, body);
    if (!p)
        return 0;
    p->fd = -1;
    p->get = act == IPC_ACT_PICTURE;
    p->own = own;
    const struct wa_creds *cr = wa_client_creds(c);
    if (own && cr) /* answered with our JID, without the device */
        snprintf(p->jid, sizeof p->jid, "%.*s@s.whatsapp.net", (int)strcspn(cr->jid, ":@"), cr->jid);
    else
        snprintf(p->jid, sizeof p->jid, "%s", jid);
    int r;
    if (act == IPC_ACT_PICTURE) {
        r = wa_picture_get(c, jid, (int)flag, on_picture, p);
    } else if (flag) {
        r = wa_picture_set(c, own ? NULL : jid, NULL, 0, on_picture, p);
    } else {
        struct media_store *st = media_store_ready();
        uint64_t size = 0;
        p->fd = st ? media_store_open_file(st, sha, &size) : -1;
        if (p->fd < 0) {
            *status = 404;
            jw_error_body(body, "media_not_found", "the media store no longer holds this file", "media_id");
            picture_free(p);
            return 0;
        }
        r = wa_offload_run(picture_work, picture_done, p);
    }
    if (r < 0) {
        picture_free(p);
        return action_req_not_connected(status, body);
    }
    return 1;
}

int group_actions_ipc(uint32_t act, const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                      struct sbuf *body)
{
    switch (act) {
    case IPC_ACT_GROUP:
        return do_group(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUPS:
        return do_group_list(m->pid, m->id, rd, status, body);
    case IPC_ACT_GROUP_CHANGE:
        return do_group_change(m->pid, m->id, rd, status, body);
    case IPC_ACT_PICTURE:
    case IPC_ACT_PICTURE_SET:
        return do_picture(act, m->pid, m->id, rd, status, body);
    default:
        return -1;
    }
}
