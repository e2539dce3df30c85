#include "wa_actions.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse_user_jid(wa_arena *a, const char *s, wa_jid *j)
{
    return wa_jid_parse(a, s, j) == WA_OK && j->user[0] && j->device == 0 ? 0 : -1;
}

int wa_send_read(struct wa_client *c, const char *chat, const char *const *ids, size_t n)
{
    if (n == 0 || wa_client_state(c) != WA_CONNECTED)
        return -1;
    wa_arena *a = wa_arena_new();
    if (!a)
        return -1;
    wa_jid to;
    int rc = -1;
    if (parse_user_jid(a, chat, &to) == 0) {
        wa_node *r = wa_node_new(a, "receipt");
        char t[24];
        snprintf(t, sizeof t, "%lld", (long long)time(NULL));
        wa_node_add_attr(a, r, "id", ids[0]);
        wa_node_add_attr_jid(a, r, "to", &to);
        wa_node_add_attr(a, r, "type", "read");
        wa_node_add_attr(a, r, "t", t);
        if (n > 1) {
            wa_node *list = wa_node_new(a, "list");
            for (size_t i = 1; i < n; i++) {
                wa_node *it = wa_node_new(a, "item");
                wa_node_add_attr(a, it, "id", ids[i]);
                wa_node_add_child(a, list, it);
            }
            wa_node_add_child(a, r, list);
        }
        rc = wa_client_send_node(c, r);
    }
    wa_arena_free(a);
    return rc;
}

/* Our account's JID without a device ("user@s.whatsapp.net"). */
static int own_jid(struct wa_client *c, wa_arena *a, wa_jid *out)
{
    const struct wa_creds *cr = wa_client_creds(c);
    if (!cr || !cr->jid[0] || wa_jid_parse(a, cr->jid, out) != WA_OK)
        return -1;
    out->device = 0;
    out->wire = WA_JID_AUTO;
    return 0;
}

int wa_send_chatstate(struct wa_client *c, const char *jid, int typing)
{
    if (wa_client_state(c) != WA_CONNECTED)
        return -1;
    wa_arena *a = wa_arena_new();
    if (!a)
        return -1;
    wa_jid to, me;
    int rc = -1;
    if (parse_user_jid(a, jid, &to) == 0 && own_jid(c, a, &me) == 0) {
        wa_node *cs = wa_node_new(a, "chatstate");
        wa_node_add_attr_jid(a, cs, "from", &me);
        wa_node_add_attr_jid(a, cs, "to", &to);
        wa_node_add_child(a, cs, wa_node_new(a, typing ? "composing" : "paused"));
        rc = wa_client_send_node(c, cs);
    }
    wa_arena_free(a);
    return rc;
}

int wa_send_availability(struct wa_client *c, int available, const char *name)
{
    if (wa_client_state(c) != WA_CONNECTED)
        return -1;
    wa_arena *a = wa_arena_new();
    if (!a)
        return -1;
    wa_node *p = wa_node_new(a, "presence");
    wa_node_add_attr(a, p, "type", available ? "available" : "unavailable");
    if (available && name && *name)
        wa_node_add_attr(a, p, "name", name);
    int rc = wa_client_send_node(c, p);
    wa_arena_free(a);
    return rc;
}

int wa_send_presence_subscribe(struct wa_client *c, const char *jid)
{
    if (wa_client_state(c) != WA_CONNECTED)
        return -1;
    wa_arena *a = wa_arena_new();
    if (!a)
        return -1;
    wa_jid to;
    int rc = -1;
    if (parse_user_jid(a, jid, &to) == 0 && strcmp(to.server, "g.us") != 0) {
        wa_node *p = wa_node_new(a, "presence");
        wa_node_add_attr(a, p, "type", "subscribe");
        wa_node_add_attr_jid(a, p, "to", &to);
        rc = wa_client_send_node(c, p);
    }
    wa_arena_free(a);
    return rc;
}

wa_node *wa_usync_new(struct wa_client *c, wa_arena *a, const char *context, wa_node **query, wa_node **list)
{
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "xmlns", "usync");
    wa_node_add_attr(a, iq, "type", "get");
    wa_node *us = wa_node_new(a, "usync");
    char sid[32];
    wa_client_new_id(c, sid, sizeof sid);
    wa_node_add_attr(a, us, "sid", sid);
    wa_node_add_attr(a, us, "mode", "query");
    wa_node_add_attr(a, us, "last", "true");
    wa_node_add_attr(a, us, "index", "0");
    wa_node_add_attr(a, us, "context", context);
    *query = wa_node_new(a, "query");
    *list = wa_node_new(a, "list");
    wa_node_add_child(a, us, *query);
    wa_node_add_child(a, us, *list);
    wa_node_add_child(a, iq, us);
    return iq;
}

const wa_node *wa_usync_list(const wa_node *answer)
{
    const char *type = wa_node_attr_str(answer, "type");
    const wa_node *us = wa_node_child(answer, "usync");
    const wa_node *list = us ? wa_node_child(us, "list") : NULL;
    return type && strcmp(type, "result") == 0 && list && list->content == WA_CONTENT_LIST ? list : NULL;
}

struct contacts_q {
    wa_contacts_cb cb;
    void *arg;
    size_t n;
    struct wa_contact_result res[WA_ACT_MAX_PHONES];
};

static void on_contacts(void *arg, const wa_node *n)
{
    struct contacts_q *q = arg;
    if (!n) {
        q->cb(q->arg, NULL, 0, "the WhatsApp connection was lost before the answer");
        free(q);
        return;
    }
    const wa_node *list = wa_usync_list(n);
    if (!list) {
        q->cb(q->arg, NULL, 0, "WhatsApp refused the query");
        free(q);
        return;
    }
    wa_arena *a = wa_arena_new();
    for (uint32_t i = 0; a && i < list->nchildren; i++) {
        const wa_node *u = list->children[i];
        const wa_node *ct = wa_node_child(u, "contact");
        if (strcmp(u->tag, "user") != 0 || !ct)
            continue;
        char asked[32], jb[128];
        const char *jid = wa_node_attr_text(u, "jid", jb, sizeof jb);
        wa_jid j;
        if (jid && (wa_jid_parse(a, jid, &j) != WA_OK || strcmp(j.server, "s.whatsapp.net") != 0))
            jid = NULL;
        /* The server echoes what was asked ("+digits"); else match by the JID's user. */
        const char *echo = wa_node_text(ct, asked, sizeof asked);
        const char *digits = echo && echo[0] == '+' ? echo + 1 : jid ? j.user : NULL;
        if (!digits)
            continue;
        for (size_t k = 0; k < q->n; k++) {
            if (strcmp(q->res[k].phone, digits) != 0)
                continue;
            const char *in = wa_node_attr_str(ct, "type");
            q->res[k].on_whatsapp = in && strcmp(in, "in") == 0 && jid;
            if (q->res[k].on_whatsapp)
                snprintf(q->res[k].jid, sizeof q->res[k].jid, "%s@s.whatsapp.net", j.user);
        }
    }
    wa_arena_free(a);
    q->cb(q->arg, q->res, q->n, NULL);
    free(q);
}

int wa_query_contacts(struct wa_client *c, const char *const *phones, size_t n, wa_contacts_cb cb, void *arg)
{
    if (n == 0 || n > WA_ACT_MAX_PHONES || wa_client_state(c) != WA_CONNECTED)
        return -1;
    struct contacts_q *q = calloc(1, sizeof *q);
    wa_arena *a = wa_arena_new();
    if (!q || !a) {
        free(q);
        wa_arena_free(a);
        return -1;
    }
    q->cb = cb;
    q->arg = arg;
    q->n = n;
    wa_node *query, *list;
    wa_node *iq = wa_usync_new(c, a, "interactive", &query, &list);
    wa_node_add_child(a, query, wa_node_new(a, "contact"));
    for (size_t i = 0; i < n; i++) {
        snprintf(q->res[i].phone, sizeof q->res[i].phone, "%s", phones[i]);
        char plus[32];
        snprintf(plus, sizeof plus, "+%s", phones[i]);
        wa_node *u = wa_node_new(a, "user"), *ct = wa_node_new(a, "contact");
        wa_node_set_str(a, ct, plus);
        wa_node_add_child(a, u, ct);
        wa_node_add_child(a, list, u);
    }
    int r = wa_client_iq(c, a, iq, on_contacts, q);
    wa_arena_free(a);
    if (r < 0)
        free(q);
    return r;
}
