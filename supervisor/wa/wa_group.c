/* A group's metadata: the query and the parse of its answer. */
#include "wa_group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTICIPANTS 2048 /* WhatsApp allows 1024; anything above is not a group's answer */
#define MAX_TEXT 8192         /* 2048 characters of UTF-8: the longest description */

/* "user@server" of attribute key of n (the device dropped), or "" when absent or no JID. */
static void jid_attr(const wa_node *n, const char *key, wa_arena *a, char *out, size_t cap)
{
    char tb[160];
    const char *v = wa_node_attr_text(n, key, tb, sizeof tb);
    wa_jid j;
    out[0] = '\0';
    size_t ul, sl;
    if (!v || wa_jid_parse(a, v, &j) != WA_OK || !j.user[0] ||
        (ul = strlen(j.user)) + (sl = strlen(j.server)) + 2 > cap)
        return;
    memcpy(out, j.user, ul);
    out[ul] = '@';
    memcpy(out + ul + 1, j.server, sl + 1);
}

static int64_t num_attr(const wa_node *n, const char *key)
{
    const char *v = wa_node_attr_str(n, key);
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    return v && *v && !*end && x >= 0 ? (int64_t)x : 0;
}

static char *text_dup(const char *s, size_t n)
{
    if (n > MAX_TEXT)
        n = MAX_TEXT;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void wa_group_info_free(struct wa_group_info *g)
{
    free(g->subject);
    free(g->description);
    free(g->p);
    memset(g, 0, sizeof *g);
}

int wa_group_parse(const wa_node *group, struct wa_group_info *g)
{
    memset(g, 0, sizeof *g);
    const char *id = group ? wa_node_attr_str(group, "id") : NULL;
    if (!group || strcmp(group->tag, "group") || !id || !*id || strlen(id) > 64)
        return -1;
    wa_arena *a = wa_arena_new();
    if (!a)
        return -1;
    snprintf(g->jid, sizeof g->jid, strchr(id, '@') ? "%s" : "%s@g.us", id);
    const char *subject = wa_node_attr_str(group, "subject");
    g->subject = text_dup(subject ? subject : "", subject ? strlen(subject) : 0);
    jid_attr(group, "creator", a, g->owner, sizeof g->owner);
    g->created = num_attr(group, "creation");
    g->subject_time = num_attr(group, "s_t");
    const char *am = wa_node_attr_str(group, "addressing_mode");
    g->lid_addressing = am && !strcmp(am, "lid");
    size_t np = 0;
    for (uint32_t i = 0; group->content == WA_CONTENT_LIST && i < group->nchildren; i++)
        np += !strcmp(group->children[i]->tag, "participant");
    if (np > MAX_PARTICIPANTS || !g->subject || (np && !(g->p = calloc(np, sizeof *g->p)))) {
        wa_arena_free(a);
        wa_group_info_free(g);
        return -1;
    }
    for (uint32_t i = 0; group->content == WA_CONTENT_LIST && i < group->nchildren; i++) {
        const wa_node *c = group->children[i];
        if (!strcmp(c->tag, "participant")) {
            struct wa_group_participant *p = &g->p[g->n];
            jid_attr(c, "jid", a, p->jid, sizeof p->jid);
            if (!p->jid[0] || wa_node_attr_str(c, "error"))
                continue; /* a creation's refused invitee is no participant */
            int lid = strstr(p->jid, "@lid") != NULL;
            if (lid) {
                snprintf(p->lid, sizeof p->lid, "%s", p->jid);
                jid_attr(c, "phone_number", a, p->pn, sizeof p->pn);
            } else {
                snprintf(p->pn, sizeof p->pn, "%s", p->jid);
                jid_attr(c, "lid", a, p->lid, sizeof p->lid);
            }
            const char *type = wa_node_attr_str(c, "type");
            p->role = !type ? 0 : !strcmp(type, "superadmin") ? 2 : !strcmp(type, "admin") ? 1 : 0;
            g->n++;
        } else if (!strcmp(c->tag, "description")) {
            const wa_node *body = wa_node_child(c, "body");
            const char *did = wa_node_attr_str(c, "id");
            if (body && body->content == WA_CONTENT_BYTES && !g->description) {
                g->description = text_dup((const char *)body->bytes, body->nbytes);
                if (did && strlen(did) < sizeof g->description_id)
                    snprintf(g->description_id, sizeof g->description_id, "%s", did);
            }
        } else if (!strcmp(c->tag, "announcement")) {
            g->announce = 1;
        } else if (!strcmp(c->tag, "locked")) {
            g->locked = 1;
        } else if (!strcmp(c->tag, "ephemeral")) {
            int64_t e = num_attr(c, "expiration");
            g->ephemeral_seconds = e > 0 && e < UINT32_MAX ? (uint32_t)e : 0;
        }
    }
    wa_arena_free(a);
    return 0;
}

/* One w:g2 request in flight: its caller's callback (one of the two). */
struct pending {
    wa_group_cb info_cb;
    wa_group_change_cb change_cb;
    void *arg;
};

/* The server's refusal in an answer: its code (500 when it names none);
 * *why its text, or fallback. */
static int refusal(const wa_node *n, const char **why, const char *fallback)
{
    const wa_node *err = wa_node_child(n, "error");
    const char *code = err ? wa_node_attr_str(err, "code") : NULL;
    const char *text = err ? wa_node_attr_str(err, "text") : NULL;
    *why = text ? text : fallback;
    return code ? atoi(code) : 500;
}

static int is_result(const wa_node *n)
{
    const char *type = wa_node_attr_str(n, "type");
    return type && !strcmp(type, "result");
}

/* Sends <iq xmlns=w:g2 type to> with child (all in a; a is freed); on gets
 * p with the answer. -1 (p freed) when it cannot go. */
static int g2_iq(struct wa_client *c, wa_arena *a, const char *to, const char *type, wa_node *child,
                 wa_iq_cb on, struct pending *p)
{
    wa_jid j;
    int r = -1;
    if (p && a && child && wa_jid_parse(a, to, &j) == WA_OK && !strcmp(j.server, "g.us")) {
        wa_node *iq = wa_node_new(a, "iq");
        wa_node_add_attr(a, iq, "xmlns", "w:g2");
        wa_node_add_attr(a, iq, "type", type);
        /* wa_client_iq sets to= the server unless given: these go to @g.us or the group */
        wa_node_add_attr_jid(a, iq, "to", &j);
        wa_node_add_child(a, iq, child);
        r = wa_client_iq(c, a, iq, on, p);
    }
    wa_arena_free(a);
    if (r < 0)
        free(p);
    return r;
}

static struct pending *pending_new(wa_group_cb info_cb, wa_group_change_cb change_cb, void *arg)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p)
        p->info_cb = info_cb, p->change_cb = change_cb, p->arg = arg;
    return p;
}

static void on_answer(void *arg, const wa_node *n)
{
    struct pending *q = arg;
    struct wa_group_info g;
    const char *why;
    if (!n) {
        q->info_cb(q->arg, NULL, 0, "connection lost");
    } else if (is_result(n) && wa_group_parse(wa_node_child(n, "group"), &g) == 0) {
        q->info_cb(q->arg, &g, 200, NULL);
        wa_group_info_free(&g);
    } else {
        int code = refusal(n, &why, "the server's answer is no group");
        q->info_cb(q->arg, NULL, code, why);
    }
    free(q);
}

int wa_group_query(struct wa_client *c, const char *gjid, wa_group_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_node *qn = a ? wa_node_new(a, "query") : NULL;
    if (qn)
        wa_node_add_attr(a, qn, "request", "interactive");
    return g2_iq(c, a, gjid, "get", qn, on_answer, pending_new(cb, NULL, arg));
}

#define MAX_GROUPS 10000 /* an account is in far fewer; a bound on one answer */

static void on_participating(void *arg, const wa_node *n)
{
    struct pending *q = arg;
    const wa_node *gs = n ? wa_node_child(n, "groups") : NULL;
    const char *why;
    if (!n) {
        q->info_cb(q->arg, NULL, 0, "connection lost");
    } else if (!is_result(n) || !gs) {
        int code = refusal(n, &why, "the server's answer is no list of groups");
        q->info_cb(q->arg, NULL, code, why);
    } else {
        for (uint32_t i = 0; gs->content == WA_CONTENT_LIST && i < gs->nchildren && i < MAX_GROUPS; i++) {
            struct wa_group_info g;
            if (wa_group_parse(gs->children[i], &g) == 0) {
                q->info_cb(q->arg, &g, 200, NULL);
                wa_group_info_free(&g);
            }
        }
        q->info_cb(q->arg, NULL, 200, NULL);
    }
    free(q);
}

int wa_group_participating(struct wa_client *c, wa_group_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_node *p = a ? wa_node_new(a, "participating") : NULL;
    if (p) {
        wa_node_add_child(a, p, wa_node_new(a, "participants"));
        wa_node_add_child(a, p, wa_node_new(a, "description"));
    }
    return g2_iq(c, a, "@g.us", "get", p, on_participating, pending_new(cb, NULL, arg));
}

/* ---- changes (w:g2 set) */

static void on_change(void *arg, const wa_node *n)
{
    struct pending *q = arg;
    const char *why;
    if (!n) {
        q->change_cb(q->arg, NULL, 0, "connection lost");
    } else if (is_result(n)) {
        const wa_node *first = n->content == WA_CONTENT_LIST && n->nchildren ? n->children[0] : NULL;
        q->change_cb(q->arg, first, 200, NULL);
    } else {
        int code = refusal(n, &why, "the server refused");
        q->change_cb(q->arg, NULL, code, why);
    }
    free(q);
}

/* Sends <iq xmlns=w:g2 type=set to=to> with child (in a); frees a. */
static int send_change(struct wa_client *c, wa_arena *a, const char *to, wa_node *child,
                       wa_group_change_cb cb, void *arg)
{
    return g2_iq(c, a, to, "set", child, on_change, pending_new(NULL, cb, arg));
}

/* <participant jid=…/> children; -1 when one is no person's JID. */
static int add_participants(wa_arena *a, wa_node *to, const char *const *jids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wa_jid j;
        if (wa_jid_parse(a, jids[i], &j) != WA_OK || !j.user[0] ||
            (strcmp(j.server, "s.whatsapp.net") && strcmp(j.server, "lid")))
            return -1;
        wa_node *p = wa_node_new(a, "participant");
        wa_node_add_attr_jid(a, p, "jid", &j);
        wa_node_add_child(a, to, p);
    }
    return 0;
}

int wa_group_create(struct wa_client *c, const char *subject, const char *key, const char *const *jids,
                    size_t n, wa_group_change_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    if (!a || !subject || !*subject || !key || n > MAX_PARTICIPANTS) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *cr = wa_node_new(a, "create");
    wa_node_add_attr(a, cr, "subject", subject);
    wa_node_add_attr(a, cr, "key", key);
    if (add_participants(a, cr, jids, n) < 0) {
        wa_arena_free(a);
        return -1;
    }
    return send_change(c, a, "@g.us", cr, cb, arg);
}

int wa_group_members(struct wa_client *c, const char *gjid, const char *action, const char *const *jids,
                     size_t n, wa_group_change_cb cb, void *arg)
{
    static const char *const actions[] = {"add", "remove", "promote", "demote"};
    int ok = 0;
    for (size_t i = 0; i < 4; i++)
        ok |= action && !strcmp(action, actions[i]);
    wa_arena *a = wa_arena_new();
    if (!a || !ok || n == 0 || n > MAX_PARTICIPANTS) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *ch = wa_node_new(a, action);
    if (add_participants(a, ch, jids, n) < 0) {
        wa_arena_free(a);
        return -1;
    }
    return send_change(c, a, gjid, ch, cb, arg);
}

int wa_group_leave(struct wa_client *c, const char *gjid, wa_group_change_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_jid j;
    if (!a || wa_jid_parse(a, gjid, &j) != WA_OK || strcmp(j.server, "g.us")) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *lv = wa_node_new(a, "leave"), *g = wa_node_new(a, "group");
    wa_node_add_attr_jid(a, g, "id", &j);
    wa_node_add_child(a, lv, g);
    return send_change(c, a, "@g.us", lv, cb, arg);
}

int wa_group_setting(struct wa_client *c, const char *gjid, const char *tag, const char *value,
                     wa_group_change_cb cb, void *arg)
{
    static const char *const tags[] = {"subject",  "announcement", "not_announcement", "locked",
                                       "unlocked", "ephemeral",    "not_ephemeral"};
    int ok = 0;
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++)
        ok |= tag && !strcmp(tag, tags[i]);
    wa_arena *a = wa_arena_new();
    if (!a || !ok || (!strcmp(tag, "subject") && (!value || !*value)) ||
        (!strcmp(tag, "ephemeral") && (!value || strspn(value, "0123456789") != strlen(value) || !*value))) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *n = wa_node_new(a, tag);
    if (!strcmp(tag, "subject"))
        wa_node_set_bytes(a, n, value, strlen(value));
    else if (!strcmp(tag, "ephemeral"))
        wa_node_add_attr(a, n, "expiration", value);
    return send_change(c, a, gjid, n, cb, arg);
}

int wa_group_describe(struct wa_client *c, const char *gjid, const char *text, const char *prev,
                      const char *new_id, wa_group_change_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    size_t tl = text ? strlen(text) : 0;
    if (!a || !new_id || !*new_id || strlen(new_id) > 64 || tl > MAX_TEXT || (prev && strlen(prev) > 64)) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *d = wa_node_new(a, "description");
    if (tl) {
        wa_node *body = wa_node_new(a, "body");
        wa_node_set_bytes(a, body, text, tl);
        wa_node_add_attr(a, d, "id", new_id);
        wa_node_add_child(a, d, body);
    } else {
        wa_node_add_attr(a, d, "delete", "true");
    }
    if (prev && *prev)
        wa_node_add_attr(a, d, "prev", prev);
    return send_change(c, a, gjid, d, cb, arg);
}

int wa_group_invite(struct wa_client *c, const char *gjid, int revoke, wa_group_change_cb cb, void *arg)
{
    /* get: the link's code; set: a new one */
    wa_arena *a = wa_arena_new();
    return g2_iq(c, a, gjid, revoke ? "set" : "get", a ? wa_node_new(a, "invite") : NULL, on_change,
                 pending_new(NULL, cb, arg));
}

int wa_group_join(struct wa_client *c, const char *code, wa_group_change_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    if (!a || !code || !*code || strlen(code) > 64) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *n = wa_node_new(a, "invite");
    wa_node_add_attr(a, n, "code", code);
    return send_change(c, a, "@g.us", n, cb, arg);
}

/* ---- w:gp2 notices */

void wa_group_event_free(struct wa_group_event *ev)
{
    free(ev->subject);
    free(ev->description);
    free(ev->participants);
    memset(ev, 0, sizeof *ev);
}

static int event_people(const wa_node *list, wa_arena *a, struct wa_group_event *ev)
{
    size_t np = 0;
    for (uint32_t i = 0; list->content == WA_CONTENT_LIST && i < list->nchildren; i++)
        np += !strcmp(list->children[i]->tag, "participant");
    if (np > MAX_PARTICIPANTS || (np && !(ev->participants = calloc(np, sizeof *ev->participants))))
        return -1;
    for (uint32_t i = 0; list->content == WA_CONTENT_LIST && i < list->nchildren; i++) {
        const wa_node *c = list->children[i];
        if (strcmp(c->tag, "participant"))
            continue;
        jid_attr(c, "jid", a, ev->participants[ev->n], sizeof ev->participants[0]);
        if (ev->participants[ev->n][0])
            ev->n++;
    }
    return 0;
}

int wa_group_event_parse(const wa_node *n, struct wa_group_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->announce = ev->locked = -1;
    ev->ephemeral_seconds = -1;
    const char *id = wa_node_attr_str(n, "id");
    wa_arena *a = wa_arena_new();
    if (!a || !id || strlen(id) >= sizeof ev->id || n->content != WA_CONTENT_LIST) {
        wa_arena_free(a);
        return -1;
    }
    snprintf(ev->id, sizeof ev->id, "%s", id);
    jid_attr(n, "from", a, ev->gjid, sizeof ev->gjid);
    jid_attr(n, "participant", a, ev->actor, sizeof ev->actor);
    int r = -1;
    for (uint32_t i = 0; r < 0 && ev->gjid[0] && strstr(ev->gjid, "@g.us") && i < n->nchildren; i++) {
        const wa_node *c = n->children[i];
        const char *t = c->tag;
        if (!strcmp(t, "create")) {
            const wa_node *g = wa_node_child(c, "group");
            const char *sj = g ? wa_node_attr_str(g, "subject") : NULL;
            ev->kind = "created";
            ev->subject = sj ? text_dup(sj, strlen(sj)) : NULL;
            r = g && event_people(g, a, ev) == 0 ? 0 : -2;
        } else if (!strcmp(t, "add") || !strcmp(t, "remove") || !strcmp(t, "promote") ||
                   !strcmp(t, "demote")) {
            ev->kind = "participants";
            ev->action = !strcmp(t, "add")       ? "add"
                         : !strcmp(t, "remove")  ? "remove"
                         : !strcmp(t, "promote") ? "promote"
                                                 : "demote";
            r = event_people(c, a, ev) == 0 && ev->n ? 0 : -2;
        } else if (!strcmp(t, "subject")) {
            const char *sj = wa_node_attr_str(c, "subject");
            ev->kind = "updated";
            ev->subject = sj ? text_dup(sj, strlen(sj)) : NULL;
            r = ev->subject ? 0 : -2;
        } else if (!strcmp(t, "description")) {
            const wa_node *body = wa_node_child(c, "body");
            ev->kind = "updated";
            if (body && body->content == WA_CONTENT_BYTES)
                ev->description = text_dup((const char *)body->bytes, body->nbytes);
            else if (wa_node_child(c, "delete"))
                ev->description = text_dup("", 0);
            r = ev->description ? 0 : -2;
        } else if (!strcmp(t, "announcement") || !strcmp(t, "not_announcement")) {
            ev->kind = "updated", ev->announce = !strcmp(t, "announcement"), r = 0;
        } else if (!strcmp(t, "locked") || !strcmp(t, "unlocked")) {
            ev->kind = "updated", ev->locked = !strcmp(t, "locked"), r = 0;
        } else if (!strcmp(t, "ephemeral") || !strcmp(t, "not_ephemeral")) {
            ev->kind = "updated",
            ev->ephemeral_seconds = !strcmp(t, "ephemeral") ? num_attr(c, "expiration") : 0, r = 0;
        } else if (!strcmp(t, "invite")) {
            ev->kind = "updated", ev->invite_revoked = 1, r = 0;
        }
    }
    wa_arena_free(a);
    if (r < 0)
        wa_group_event_free(ev);
    return r < 0 ? -1 : 0;
}
