/* The group routes: /api/groups…, each a request to the supervisor, which
 * asks WhatsApp (w:g2) and answers with its outcome. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "common/utf8.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define GROUP_TIMEOUT_MS 15000 /* WhatsApp answers w:g2 in well under a second */

/* GET /api/groups/{jid}: the group as WhatsApp has it now (subject,
 * description, owner, settings, participants with roles), asked live. */
void h_group_get(struct rq *rq)
{
    char *raw = http_param(rq, 0);
    char jid[160];
    if (!raw || parse_to(raw, jid, sizeof jid) < 0 || !strstr(jid, "@g.us")) {
        http_error(rq, 404, "group_not_found", "no such group (want digits@g.us)", NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_GROUP);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    sup_ask_action(rq, &b, GROUP_TIMEOUT_MS);
}

/* GET /api/groups: the groups we are in, asked of WhatsApp. */
void h_groups_list(struct rq *rq)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_GROUPS);
    sup_ask_action(rq, &b, GROUP_TIMEOUT_MS);
}

/* POST /api/groups, /api/groups/{jid}/participants, /api/groups/{jid}/leave:
 * changes asked of WhatsApp (IPC_ACT_GROUP_CHANGE), answered with its
 * outcome. */

#define GROUP_SUBJECT_MAX 100      /* WhatsApp's */
#define GROUP_DESCRIPTION_MAX 2048 /* WhatsApp's */
#define GROUP_PEOPLE_MAX 1023

/* participants: people as phone numbers or JIDs, into b; the count, or -1
 * after answering 400. */
static int people_arg(struct rq *rq, yajl_val v, int min, struct sbuf *b)
{
    size_t n = v && YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
    if ((v && !YAJL_IS_ARRAY(v)) || n < (size_t)min || n > GROUP_PEOPLE_MAX) {
        http_error(rq, 400, "invalid_participants",
                   min ? "participants must be a list of 1 to 1023 phone numbers or JIDs"
                       : "participants must be a list of up to 1023 phone numbers or JIDs",
                   "participants");
        return -1;
    }
    ipc_wr_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        yajl_val x = v->u.array.values[i];
        char jid[160], field[40];
        if (!YAJL_IS_STRING(x) || parse_to(x->u.string, jid, sizeof jid) < 0 || strstr(jid, "@g.us")) {
            snprintf(field, sizeof field, "participants[%zu]", i);
            http_error(rq, 400, "invalid_participants",
                       "each participant must be a phone number or a person's JID", field);
            return -1;
        }
        ipc_wr_bytes(b, jid, (uint32_t)strlen(jid));
    }
    return (int)n;
}

static void group_change(struct rq *rq, uint32_t op, const char *target, yajl_val people, int min)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_GROUP_CHANGE);
    ipc_wr_u32(&b, op);
    ipc_wr_bytes(&b, target, (uint32_t)strlen(target));
    if (op == 6 || op >= 8)
        ipc_wr_u32(&b, 0);
    else if (people_arg(rq, people, min, &b) < 0) {
        sbuf_free(&b);
        return;
    }
    sup_ask_action(rq, &b, GROUP_TIMEOUT_MS);
}

/* {jid} of a group; NULL after answering 404. */
static char *group_param(struct rq *rq)
{
    char *raw = http_param(rq, 0);
    char jid[160];
    if (!raw || parse_to(raw, jid, sizeof jid) < 0 || !strstr(jid, "@g.us")) {
        http_error(rq, 404, "group_not_found", "no such group (want digits@g.us)", NULL);
        return NULL;
    }
    char *out = h2o_mem_alloc_pool(&rq->req->pool, strlen(jid) + 1);
    memcpy(out, jid, strlen(jid) + 1);
    return out;
}

void h_group_create(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    yajl_val v = json_member(body, "subject");
    long chars = v && YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
    if (chars < 1 || chars > GROUP_SUBJECT_MAX || strspn(v->u.string, " \t\r\n") == strlen(v->u.string))
        http_error(rq, 400, "invalid_subject", "subject must be a string of 1 to 100 characters", "subject");
    else
        group_change(rq, 1, v->u.string, json_member(body, "participants"), 0);
    yajl_tree_free(body);
}

void h_group_participants(struct rq *rq)
{
    char *jid = group_param(rq);
    if (!jid)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    static const char *const actions[] = {"add", "remove", "promote", "demote"};
    const char *a = json_str(body, "action");
    uint32_t op = 0;
    for (uint32_t i = 0; a && i < 4; i++)
        if (!strcmp(a, actions[i]))
            op = i + 2;
    if (!op)
        http_error(rq, 400, "invalid_action", "action must be add, remove, promote or demote", "action");
    else
        group_change(rq, op, jid, json_member(body, "participants"), 1);
    yajl_tree_free(body);
}

/* One "tag=value" setting of a PATCH into items. */
static void setting(struct sbuf *items, int *n, const char *tag, const char *value)
{
    struct sbuf one;
    sbuf_init(&one);
    sbuf_addf(&one, "%s=%s", tag, value);
    ipc_wr_bytes(items, one.buf, (uint32_t)one.len);
    items->oom |= one.oom;
    sbuf_free(&one);
    (*n)++;
}

void group_set_timer(struct rq *rq, const char *gjid, int64_t seconds)
{
    struct sbuf b, items;
    sbuf_init(&b);
    sbuf_init(&items);
    int n = 0;
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", (long long)seconds);
    setting(&items, &n, seconds ? "ephemeral" : "not_ephemeral", seconds ? secs : "");
    ipc_wr_u32(&b, IPC_ACT_GROUP_CHANGE);
    ipc_wr_u32(&b, 7);
    ipc_wr_bytes(&b, gjid, (uint32_t)strlen(gjid));
    ipc_wr_u32(&b, (uint32_t)n);
    sbuf_add(&b, items.buf, items.len);
    b.oom |= items.oom;
    sup_ask_action(rq, &b, GROUP_TIMEOUT_MS);
    sbuf_free(&items);
    sbuf_free(&b);
}

/* PATCH /api/groups/{jid} {subject?, description?, announce?, locked?,
 * ephemeral_seconds?}: each given setting in turn, then the group as it is
 * now. */
void h_group_patch(struct rq *rq)
{
    char *jid = group_param(rq);
    if (!jid)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct sbuf b, items;
    sbuf_init(&b);
    sbuf_init(&items);
    int n = 0;
    yajl_val v = json_member(body, "subject");
    if (v && !YAJL_IS_NULL(v)) {
        long chars = YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
        if (chars < 1 || chars > GROUP_SUBJECT_MAX || strspn(v->u.string, " \t\r\n") == strlen(v->u.string)) {
            http_error(rq, 400, "invalid_subject", "subject must be a string of 1 to 100 characters",
                       "subject");
            goto out;
        }
        setting(&items, &n, "subject", v->u.string);
    }
    v = json_member(body, "description");
    if (v && !YAJL_IS_NULL(v)) {
        long chars = YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
        if (chars < 0 || chars > GROUP_DESCRIPTION_MAX) {
            http_error(rq, 400, "invalid_description",
                       "description must be a string of up to 2048 characters (\"\" removes it)",
                       "description");
            goto out;
        }
        setting(&items, &n, "description", v->u.string);
    }
    static const char *const flags[][3] = {{"announce", "announcement", "not_announcement"},
                                           {"locked", "locked", "unlocked"}};
    for (int i = 0; i < 2; i++) {
        int f = json_bool(body, flags[i][0]);
        if (f == -2) {
            http_error(rq, 400, "invalid_setting", "announce and locked must be true or false", flags[i][0]);
            goto out;
        }
        if (f >= 0)
            setting(&items, &n, flags[i][f ? 1 : 2], "");
    }
    int64_t e = 0;
    int he = json_int(body, "ephemeral_seconds", &e);
    if (he < 0 || (he > 0 && e != 0 && e != 86400 && e != 604800 && e != 7776000)) {
        http_error(rq, 400, "invalid_ephemeral_seconds",
                   "ephemeral_seconds must be 0 (off), 86400, 604800 or 7776000", "ephemeral_seconds");
        goto out;
    }
    if (he > 0) {
        char secs[24];
        snprintf(secs, sizeof secs, "%lld", (long long)e);
        setting(&items, &n, e ? "ephemeral" : "not_ephemeral", e ? secs : "");
    }
    if (!n) {
        http_error(rq, 400, "nothing_to_change",
                   "give one of subject, description, announce, locked, ephemeral_seconds", NULL);
        goto out;
    }
    ipc_wr_u32(&b, IPC_ACT_GROUP_CHANGE);
    ipc_wr_u32(&b, 7);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_u32(&b, (uint32_t)n);
    sbuf_add(&b, items.buf, items.len);
    b.oom |= items.oom;
    sup_ask_action(rq, &b, GROUP_TIMEOUT_MS); /* frees b; freeing it again below is harmless */
out:
    sbuf_free(&items);
    sbuf_free(&b);
    yajl_tree_free(body);
}

void h_group_invite(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        group_change(rq, 8, jid, NULL, 0);
}

void h_group_invite_revoke(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        group_change(rq, 9, jid, NULL, 0);
}

/* POST /api/groups/join {code}: a code or a https://chat.whatsapp.com/CODE link. */
void h_group_join(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    const char *c = json_str(body, "code");
    static const char *const prefixes[] = {"https://chat.whatsapp.com/", "http://chat.whatsapp.com/",
                                           "chat.whatsapp.com/"};
    for (size_t i = 0; c && i < 3; i++)
        if (!strncmp(c, prefixes[i], strlen(prefixes[i])))
            c += strlen(prefixes[i]);
    size_t cl = c ? strlen(c) : 0;
    int ok = cl >= 8 && cl <= 64;
    for (size_t i = 0; ok && i < cl; i++)
        ok = isalnum((unsigned char)c[i]) || c[i] == '-' || c[i] == '_';
    if (!ok)
        http_error(rq, 400, "invalid_code",
                   "code must be an invite code or a https://chat.whatsapp.com/… link", "code");
    else
        group_change(rq, 10, c, NULL, 0);
    yajl_tree_free(body);
}

void h_group_leave(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        group_change(rq, 6, jid, NULL, 0);
}

/* ---- /api/groups/{jid}/picture (pictures.c does the work) */

void h_group_picture(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        picture_get(rq, jid);
}

/* PUT {media_id}: an uploaded image (POST /api/media) becomes the group's
 * picture: its centred square, at most 640 pixels a side, as JPEG. */
void h_group_picture_set(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        picture_put(rq, jid);
}

void h_group_picture_remove(struct rq *rq)
{
    char *jid = group_param(rq);
    if (jid)
        picture_remove(rq, jid);
}
