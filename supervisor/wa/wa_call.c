#include "wa_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies attribute key of n as text into out; -1 when absent or too long. */
static int attr_into(const wa_node *n, const char *key, char *out, size_t cap)
{
    char buf[160];
    const char *v = wa_node_attr_text(n, key, buf, sizeof buf);
    if (!v || strlen(v) >= cap)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int wa_call_parse(const wa_node *n, struct wa_call *out)
{
    memset(out, 0, sizeof *out);
    char fb[160];
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    if (strcmp(n->tag, "call") || n->content != WA_CONTENT_LIST || n->nchildren != 1 || !from ||
        wa_jid_text_bare(from, out->from, sizeof out->from) < 0 || strstr(out->from, "@g.us") ||
        attr_into(n, "id", out->stanza_id, sizeof out->stanza_id) < 0)
        return -1;
    const wa_node *k = n->children[0];
    if (attr_into(k, "call-id", out->call_id, sizeof out->call_id) < 0 || !out->call_id[0])
        return -1;
    if (attr_into(k, "call-creator", out->creator, sizeof out->creator) < 0)
        snprintf(out->creator, sizeof out->creator, "%s", out->from);
    const wa_attr *ca = wa_node_attr(k, "call-creator");
    out->creator_ad = ca && ca->type == WA_VAL_JID && ca->jid.wire == WA_JID_AD;
    char pb[160];
    const char *pn = wa_node_attr_text(k, "caller_pn", pb, sizeof pb);
    if (pn && wa_jid_text_bare(pn, out->caller_pn, sizeof out->caller_pn) < 0)
        out->caller_pn[0] = '\0';
    char gb[160];
    const char *g = wa_node_attr_text(k, "group-jid", gb, sizeof gb);
    if (g &&
        (wa_jid_text_bare(g, out->group_jid, sizeof out->group_jid) < 0 || !strstr(out->group_jid, "@g.us")))
        out->group_jid[0] = '\0';
    const char *t = wa_node_attr_str(n, "t");
    char *end = NULL;
    long long ts = t ? strtoll(t, &end, 10) : 0;
    out->ts = end && *end == '\0' && ts > 0 && ts < 32503680000LL ? ts : 0;
    out->offline = wa_node_attr_str(n, "offline") != NULL;
    if (!strcmp(k->tag, "offer") || !strcmp(k->tag, "offer_notice")) {
        out->status = "offer";
        const char *media = wa_node_attr_str(k, "media");
        out->video = wa_node_child(k, "video") != NULL || (media && !strcmp(media, "video"));
    } else if (!strcmp(k->tag, "terminate")) {
        const char *reason = wa_node_attr_str(k, "reason");
        out->status = reason && !strcmp(reason, "timeout") ? "timeout" : "terminate";
    } else if (!strcmp(k->tag, "reject")) {
        out->status = "reject";
    } else if (!strcmp(k->tag, "accept")) {
        out->status = "accept";
    } else {
        out->status = "other"; /* relaylatency, transport, preaccept: the call's own plumbing */
    }
    return 0;
}

int wa_call_reject(struct wa_client *c, const struct wa_call *call)
{
    const struct wa_creds *cr = wa_client_creds(c);
    wa_arena *a = wa_arena_new();
    wa_jid to, me, creator;
    int r = -1;
    if (a && cr && wa_jid_parse(a, call->from, &to) == WA_OK && wa_jid_parse(a, cr->jid, &me) == WA_OK &&
        wa_jid_parse(a, call->creator, &creator) == WA_OK) {
        if (call->creator_ad)
            creator.wire = WA_JID_AD; /* as the offer named it: a phone is device 0 */
        wa_node *n = wa_node_new(a, "call"), *rej = wa_node_new(a, "reject");
        char id[24];
        wa_node_add_attr(a, n, "id", wa_client_new_id(c, id, sizeof id));
        wa_node_add_attr_jid(a, n, "from", &me);
        wa_node_add_attr_jid(a, n, "to", &to);
        wa_node_add_attr(a, rej, "call-id", call->call_id);
        wa_node_add_attr_jid(a, rej, "call-creator", &creator);
        wa_node_add_attr(a, rej, "count", "0");
        wa_node_add_child(a, n, rej);
        r = wa_client_send_node(c, n);
    }
    wa_arena_free(a);
    return r;
}
