/* wa_call.c: how a <call> stanza is read (offers, LID callers with their
 * number, group calls, ends and the call's plumbing; malformed ones
 * refused) and the reject it builds, against a stand-in client. */
#include "supervisor/wa/wa_call.c"

#include "t.h"

static wa_arena *sent_arena;
static wa_node *sent; /* the last stanza, through its encoding */
static struct wa_creds creds;

int wa_client_send_node(struct wa_client *c, const wa_node *n)
{
    (void)c;
    uint8_t *buf;
    size_t len;
    wa_arena_free(sent_arena);
    sent_arena = wa_arena_new();
    sent = NULL;
    if (wa_node_encode(n, &buf, &len) == WA_OK) {
        wa_node_decode(buf, len, &wa_limits_default, sent_arena, &sent);
        free(buf);
    }
    return 0;
}

const struct wa_creds *wa_client_creds(const struct wa_client *c)
{
    (void)c;
    return &creds;
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "CID1");
    return buf;
}

/* A <call from> with one child tag and its attributes (k, v pairs, NULL-ended). */
static wa_node *call_of(wa_arena *a, const char *from, const char *tag, const char *const *kv)
{
    wa_node *n = wa_node_new(a, "call"), *k = wa_node_new(a, tag);
    wa_node_add_attr(a, n, "id", "S1");
    if (from)
        wa_node_add_attr(a, n, "from", from);
    wa_node_add_attr(a, n, "t", "1700000000");
    for (size_t i = 0; kv && kv[i]; i += 2)
        wa_node_add_attr(a, k, kv[i], kv[i + 1]);
    wa_node_add_child(a, n, k);
    return n;
}

int main(void)
{
    wa_arena *a = wa_arena_new();
    struct wa_call c;

    static const char *const offer[] = {"call-id", "ABC", "call-creator", "15550001:0@s.whatsapp.net", NULL};
    wa_node *n = call_of(a, "15550001@s.whatsapp.net", "offer", offer);
    wa_node_add_child(a, n->children[0], wa_node_new(a, "audio"));
    T_CHECK(wa_call_parse(n, &c) == 0 && !strcmp(c.status, "offer") && !strcmp(c.call_id, "ABC") &&
                !strcmp(c.from, "15550001@s.whatsapp.net") && !c.video && !c.offline && c.ts == 1700000000 &&
                !c.group_jid[0] && !c.caller_pn[0],
            "a voice offer: its id, the caller, the time");
    wa_node_add_child(a, n->children[0], wa_node_new(a, "video"));
    wa_node_add_attr(a, n, "offline", "1");
    T_CHECK(wa_call_parse(n, &c) == 0 && c.video && c.offline, "with <video>: a video call; offline marked");

    static const char *const lid[] = {
        "call-id",        "L1", "call-creator", "77@lid", "caller_pn", "15550002@s.whatsapp.net", "group-jid",
        "120363001@g.us", NULL};
    n = call_of(a, "77:3@lid", "offer", lid);
    T_CHECK(wa_call_parse(n, &c) == 0 && !strcmp(c.from, "77@lid") &&
                !strcmp(c.caller_pn, "15550002@s.whatsapp.net") && !strcmp(c.group_jid, "120363001@g.us"),
            "by LID in a group: the caller without device, its number, the group");

    static const char *const end[] = {"call-id", "ABC", "reason", "timeout", NULL};
    n = call_of(a, "15550001@s.whatsapp.net", "terminate", end);
    T_CHECK(wa_call_parse(n, &c) == 0 && !strcmp(c.status, "timeout"), "a terminate for timeout: timeout");
    static const char *const lat[] = {"call-id", "ABC", NULL};
    n = call_of(a, "15550001@s.whatsapp.net", "relaylatency", lat);
    T_CHECK(wa_call_parse(n, &c) == 0 && !strcmp(c.status, "other"), "relaylatency: the call's plumbing");

    static const char *const noid[] = {"call-creator", "1@s.whatsapp.net", NULL};
    T_CHECK(wa_call_parse(call_of(a, "15550001@s.whatsapp.net", "offer", noid), &c) < 0,
            "no call-id: refused");
    T_CHECK(wa_call_parse(call_of(a, NULL, "offer", offer), &c) < 0, "no from: refused");
    T_CHECK(wa_call_parse(call_of(a, "120363001@g.us", "offer", offer), &c) < 0, "from a group: refused");
    n = call_of(a, "15550001@s.whatsapp.net", "offer", offer);
    wa_node_add_child(a, n, wa_node_new(a, "offer"));
    T_CHECK(wa_call_parse(n, &c) < 0, "two children: refused");
    char longid[100];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    const char *const lng[] = {"call-id", longid, NULL};
    T_CHECK(wa_call_parse(call_of(a, "15550001@s.whatsapp.net", "offer", lng), &c) < 0,
            "a call-id too long: refused");

    /* The reject: to the caller, naming the call and its creator as the offer did. */
    snprintf(creds.jid, sizeof creds.jid, "15559990:4@s.whatsapp.net");
    wa_jid cj;
    wa_jid_parse(a, "15550001@s.whatsapp.net", &cj);
    cj.device = 0, cj.wire = WA_JID_AD;
    n = call_of(a, "15550001@s.whatsapp.net", "offer", (const char *const[]){"call-id", "ABC", NULL});
    wa_node_add_attr_jid(a, n->children[0], "call-creator", &cj);
    T_CHECK(wa_call_parse(n, &c) == 0 && c.creator_ad, "a creator sent as a device JID is noted so");
    T_CHECK(wa_call_reject((struct wa_client *)&creds, &c) == 0 && sent, "a reject goes out");
    char b1[128], b2[128], b3[128];
    const wa_node *r = sent ? wa_node_child(sent, "reject") : NULL;
    const wa_attr *cr = r ? wa_node_attr(r, "call-creator") : NULL;
    T_CHECK(sent && !strcmp(sent->tag, "call") &&
                !strcmp(wa_node_attr_text(sent, "to", b1, sizeof b1), "15550001@s.whatsapp.net") &&
                !strcmp(wa_node_attr_text(sent, "from", b2, sizeof b2), "15559990:4@s.whatsapp.net") && r &&
                !strcmp(wa_node_attr_str(r, "call-id"), "ABC") &&
                !strcmp(wa_node_attr_str(r, "count"), "0") && cr && cr->type == WA_VAL_JID &&
                cr->jid.wire == WA_JID_AD &&
                !strcmp(wa_node_attr_text(r, "call-creator", b3, sizeof b3), "15550001@s.whatsapp.net"),
            "<call to=caller from=us><reject call-id call-creator (a device JID, as offered) count=0/>");
    wa_arena_free(sent_arena);
    wa_arena_free(a);
    T_DONE();
}
