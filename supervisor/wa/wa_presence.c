#include "wa_presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wa_presence_parse(const wa_node *n, struct wa_presence *out)
{
    char buf[128];
    memset(out, 0, sizeof *out);
    const char *from = wa_node_attr_text(n, "from", buf, sizeof buf);
    if (!strcmp(n->tag, "presence")) {
        if (!from || wa_jid_text_bare(from, out->jid, sizeof out->jid) < 0 || strstr(out->jid, "@g.us"))
            return -1;
        const char *type = wa_node_attr_str(n, "type");
        out->kind = WA_PRESENCE_AVAILABILITY;
        if (!type || !strcmp(type, "available")) {
            out->state = "available";
        } else if (!strcmp(type, "unavailable")) {
            out->state = "unavailable";
            const char *last = wa_node_attr_str(n, "last");
            char *end = NULL;
            long long t = last ? strtoll(last, &end, 10) : 0;
            out->last_seen = end && *end == '\0' && t > 0 && t < 32503680000LL ? t : 0; /* "deny": hidden */
        } else {
            return -1; /* error, subscribe answers and the like */
        }
        return 0;
    }
    if (strcmp(n->tag, "chatstate") != 0 || n->content != WA_CONTENT_LIST || n->nchildren != 1 || !from ||
        wa_jid_text_bare(from, out->chat, sizeof out->chat) < 0)
        return -1;
    out->kind = WA_PRESENCE_CHATSTATE;
    if (strstr(out->chat, "@g.us")) {
        char pb[128];
        const char *p = wa_node_attr_text(n, "participant", pb, sizeof pb);
        if (!p || wa_jid_text_bare(p, out->jid, sizeof out->jid) < 0 || strstr(out->jid, "@g.us"))
            return -1;
    } else {
        snprintf(out->jid, sizeof out->jid, "%s", out->chat);
    }
    const wa_node *k = n->children[0];
    if (!strcmp(k->tag, "composing")) {
        const char *media = wa_node_attr_str(k, "media");
        out->state = media && !strcmp(media, "audio") ? "recording" : "composing";
    } else if (!strcmp(k->tag, "paused")) {
        out->state = "paused";
    } else {
        return -1;
    }
    return 0;
}
