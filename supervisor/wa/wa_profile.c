#include "wa_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa_actions.h"

struct profile_pending {
    wa_profile_cb cb;
    void *arg;
};

static void on_profile_answer(void *arg, const wa_node *n)
{
    struct profile_pending *q = arg;
    const char *type = n ? wa_node_attr_str(n, "type") : NULL;
    if (!n) {
        q->cb(q->arg, NULL, 0, "connection lost");
    } else if (type && !strcmp(type, "result")) {
        q->cb(q->arg, n, 200, NULL);
    } else {
        const wa_node *err = wa_node_child(n, "error");
        const char *code = err ? wa_node_attr_str(err, "code") : NULL;
        const char *text = err ? wa_node_attr_str(err, "text") : NULL;
        int c = code ? atoi(code) : 0;
        q->cb(q->arg, NULL, c > 0 ? c : 500, text ? text : "the server refused");
    }
    free(q);
}

/* Sends iq (in a; a freed) and hands the answer to cb. */
static int send_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_profile_cb cb, void *arg)
{
    struct profile_pending *q = calloc(1, sizeof *q);
    int r = -1;
    if (q && a && iq) {
        q->cb = cb, q->arg = arg;
        r = wa_client_iq(c, a, iq, on_profile_answer, q);
    }
    wa_arena_free(a);
    if (r < 0)
        free(q);
    return r;
}

/* A person's JID parsed into j (in a); -1 when it is none. */
static int person(wa_arena *a, const char *jid, wa_jid *j)
{
    return jid && wa_jid_parse(a, jid, j) == WA_OK && j->user[0] && !j->device &&
                   (!strcmp(j->server, "s.whatsapp.net") || !strcmp(j->server, "lid"))
               ? 0
               : -1;
}

int wa_about_get(struct wa_client *c, const char *jid, wa_profile_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_jid j;
    if (!a || person(a, jid, &j) < 0 || wa_client_state(c) != WA_CONNECTED) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *query, *list;
    wa_node *iq = wa_usync_new(c, a, "interactive", &query, &list);
    wa_node_add_child(a, query, wa_node_new(a, "status"));
    wa_node *u = wa_node_new(a, "user");
    wa_node_add_attr_jid(a, u, "jid", &j);
    wa_node_add_child(a, list, u);
    return send_iq(c, a, iq, cb, arg);
}

int wa_about_parse(const wa_node *answer, char **text, int64_t *set_at)
{
    *text = NULL;
    *set_at = 0;
    const wa_node *list = wa_usync_list(answer);
    const wa_node *u = list && list->nchildren >= 1 ? list->children[0] : NULL;
    const wa_node *st = u ? wa_node_child(u, "status") : NULL;
    if (!u || strcmp(u->tag, "user") || !st)
        return -1;
    const char *t = wa_node_attr_str(st, "t");
    char *end = NULL;
    long long v = t ? strtoll(t, &end, 10) : 0;
    *set_at = end && !*end && v > 0 && v < 32503680000LL ? v : 0;
    char buf[WA_ABOUT_MAX + 1];
    if (wa_node_attr_str(st, "code") || (st->content != WA_CONTENT_BYTES && st->content != WA_CONTENT_STR))
        return 0; /* 401: hidden from us; or none */
    const char *p = wa_node_text(st, buf, sizeof buf);
    if (!p)
        return -1;
    if (!*p)
        return 0;
    return (*text = strdup(p)) ? 1 : -1;
}

/* <iq xmlns to=s.whatsapp.net type> in a. */
static wa_node *iq_new(wa_arena *a, const char *xmlns, const char *type)
{
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "xmlns", xmlns);
    wa_node_add_attr(a, iq, "type", type);
    return iq;
}

int wa_about_set(struct wa_client *c, const char *text, wa_profile_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    size_t len = text ? strlen(text) : 0;
    if (!a || !len || len > WA_ABOUT_MAX) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *iq = iq_new(a, "status", "set"), *st = wa_node_new(a, "status");
    wa_node_set_bytes(a, st, text, len);
    wa_node_add_child(a, iq, st);
    return send_iq(c, a, iq, cb, arg);
}

int wa_blocklist_get(struct wa_client *c, wa_profile_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    return send_iq(c, a, a ? iq_new(a, "blocklist", "get") : NULL, cb, arg);
}

int wa_blocklist_parse(const wa_node *answer, char (*out)[96], size_t max)
{
    const wa_node *list = answer ? wa_node_child(answer, "list") : NULL;
    if (!list)
        return -1;
    size_t n = 0;
    for (uint32_t i = 0; list->content == WA_CONTENT_LIST && i < list->nchildren && n < max; i++) {
        const wa_node *it = list->children[i];
        char jb[128];
        const char *jid = strcmp(it->tag, "item") ? NULL : wa_node_attr_text(it, "jid", jb, sizeof jb);
        if (jid && strlen(jid) < sizeof out[0] && strchr(jid, '@'))
            snprintf(out[n++], sizeof out[0], "%s", jid);
    }
    return (int)n;
}

int wa_blocklist_set(struct wa_client *c, const char *jid, const char *pn, int block, wa_profile_cb cb,
                     void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_jid j, p;
    if (!a || person(a, jid, &j) < 0 ||
        (pn && (person(a, pn, &p) < 0 || strcmp(p.server, "s.whatsapp.net")))) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *iq = iq_new(a, "blocklist", "set"), *it = wa_node_new(a, "item");
    wa_node_add_attr(a, it, "action", block ? "block" : "unblock");
    wa_node_add_attr_jid(a, it, "jid", &j);
    if (pn && block)
        wa_node_add_attr_jid(a, it, "pn_jid", &p);
    wa_node_add_child(a, iq, it);
    return send_iq(c, a, iq, cb, arg);
}

int wa_business_get(struct wa_client *c, const char *jid, wa_profile_cb cb, void *arg)
{
    wa_arena *a = wa_arena_new();
    wa_jid j;
    if (!a || person(a, jid, &j) < 0) {
        wa_arena_free(a);
        return -1;
    }
    wa_node *iq = iq_new(a, "w:biz", "get"), *bp = wa_node_new(a, "business_profile"),
            *pr = wa_node_new(a, "profile");
    wa_node_add_attr(a, bp, "v", "244");
    wa_node_add_attr_jid(a, pr, "jid", &j);
    wa_node_add_child(a, bp, pr);
    wa_node_add_child(a, iq, bp);
    return send_iq(c, a, iq, cb, arg);
}

/* The text of n's child tag into out ("" when absent); -1 when it does not fit or holds a NUL. */
static int child_text(const wa_node *n, const char *tag, char *out, size_t cap)
{
    const wa_node *k = n ? wa_node_child(n, tag) : NULL;
    out[0] = '\0';
    if (!k || (k->content != WA_CONTENT_BYTES && k->content != WA_CONTENT_STR))
        return 0;
    return wa_node_text(k, out, cap) ? 0 : -1;
}

/* "HH:MM" or minutes as digits, into minutes after midnight; -1 when neither. */
static int minutes(const char *v)
{
    if (!v || !*v)
        return -1;
    char *end;
    long m = strtol(v, &end, 10);
    if (*end == ':' && end[1]) {
        long mm = strtol(end + 1, &end, 10);
        m = *end ? -1 : m * 60 + mm;
    } else if (*end) {
        m = -1;
    }
    return m >= 0 && m <= 24 * 60 ? (int)m : -1;
}

int wa_business_parse(const wa_node *answer, struct wa_business *out)
{
    memset(out, 0, sizeof *out);
    const wa_node *bp = answer ? wa_node_child(answer, "business_profile") : NULL;
    if (!bp)
        return -1;
    const wa_node *p = wa_node_child(bp, "profile");
    if (!p)
        return 0;
    if (child_text(p, "description", out->description, sizeof out->description) < 0 ||
        child_text(p, "address", out->address, sizeof out->address) < 0 ||
        child_text(p, "email", out->email, sizeof out->email) < 0 ||
        child_text(wa_node_child(p, "categories"), "category", out->category, sizeof out->category) < 0)
        return -1;
    for (uint32_t i = 0; p->content == WA_CONTENT_LIST && i < p->nchildren && out->nwebsites < 4; i++) {
        const wa_node *k = p->children[i];
        if (strcmp(k->tag, "website") || k->content != WA_CONTENT_BYTES || !k->nbytes ||
            k->nbytes >= sizeof out->websites[0] || memchr(k->bytes, 0, k->nbytes))
            continue;
        memcpy(out->websites[out->nwebsites], k->bytes, k->nbytes);
        out->websites[out->nwebsites++][k->nbytes] = '\0';
    }
    const wa_node *bh = wa_node_child(p, "business_hours");
    const char *tz = bh ? wa_node_attr_str(bh, "timezone") : NULL;
    if (tz && strlen(tz) < sizeof out->timezone)
        snprintf(out->timezone, sizeof out->timezone, "%s", tz);
    for (uint32_t i = 0; bh && bh->content == WA_CONTENT_LIST && i < bh->nchildren && out->nhours < 14; i++) {
        const wa_node *k = bh->children[i];
        const char *day = wa_node_attr_str(k, "day_of_week"), *mode = wa_node_attr_str(k, "mode");
        if (strcmp(k->tag, "business_hours_config") || !day || !mode ||
            strlen(day) >= sizeof out->hours[0].day || strlen(mode) >= sizeof out->hours[0].mode)
            continue;
        snprintf(out->hours[out->nhours].day, sizeof out->hours[0].day, "%s", day);
        snprintf(out->hours[out->nhours].mode, sizeof out->hours[0].mode, "%s", mode);
        out->hours[out->nhours].open = minutes(wa_node_attr_str(k, "open_time"));
        out->hours[out->nhours].close = minutes(wa_node_attr_str(k, "close_time"));
        out->nhours++;
    }
    return 1;
}
