/* wa_actions.c against a stand-in client: the stanzas it builds (read
 * receipt, chatstate, usync contact query) and how it reads the server's
 * answer to the contact query, including answers that are wrong. */
#include "supervisor/wa/wa_actions.c"

#include "t.h"

/* ---- the stand-in client ---- */
static enum wa_state st_state = WA_CONNECTED;
static wa_arena *sent_arena;
static wa_node *sent; /* a copy of the last stanza, via its encoding */
static wa_iq_cb iq_cb;
static void *iq_arg;
static int iq_fail;
static struct wa_creds st_creds;

static void keep(const wa_node *n)
{
    uint8_t *buf;
    size_t len;
    wa_arena_free(sent_arena);
    sent_arena = wa_arena_new();
    sent = NULL;
    if (wa_node_encode(n, &buf, &len) == WA_OK) {
        wa_node_decode(buf, len, &wa_limits_default, sent_arena, &sent);
        free(buf);
    }
}

enum wa_state wa_client_state(const struct wa_client *c)
{
    (void)c;
    return st_state;
}

int wa_client_send_node(struct wa_client *c, const wa_node *n)
{
    (void)c;
    keep(n);
    return 0;
}

int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg)
{
    (void)c;
    if (iq_fail)
        return -1;
    wa_jid to;
    wa_jid_parse(a, "s.whatsapp.net", &to);
    wa_node_add_attr(a, iq, "id", "iq-1");
    wa_node_add_attr_jid(a, iq, "to", &to);
    keep(iq);
    iq_cb = cb;
    iq_arg = arg;
    return 0;
}

const struct wa_creds *wa_client_creds(const struct wa_client *c)
{
    (void)c;
    return &st_creds;
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "sid-1");
    return buf;
}

/* ---- helpers ---- */
static struct wa_client *C = (struct wa_client *)&st_state; /* never dereferenced */

static const char *attr(const wa_node *n, const char *k, char *buf, size_t len)
{
    return n ? wa_node_attr_text(n, k, buf, len) : NULL;
}

static struct {
    int calls;
    size_t n;
    struct wa_contact_result r[4];
    char why[128];
    int null;
} got;

static void on_result(void *arg, const struct wa_contact_result *res, size_t n, const char *why)
{
    (void)arg;
    got.calls++;
    got.null = res == NULL;
    got.n = n;
    for (size_t i = 0; res && i < n && i < 4; i++)
        got.r[i] = res[i];
    snprintf(got.why, sizeof got.why, "%s", why ? why : "");
}

/* Builds <iq type=result><usync><list>{users}</list></usync></iq> and feeds it to the pending query. */
static void answer(const char *type, int nusers, const char *const *jid, const char *const *ctype,
                   const char *const *echo)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "type", type);
    wa_node *us = wa_node_new(a, "usync"), *list = wa_node_new(a, "list");
    for (int i = 0; i < nusers; i++) {
        wa_node *u = wa_node_new(a, "user");
        if (jid[i]) {
            wa_jid j;
            wa_jid_parse(a, jid[i], &j);
            wa_node_add_attr_jid(a, u, "jid", &j);
        }
        wa_node *ct = wa_node_new(a, "contact");
        if (ctype[i])
            wa_node_add_attr(a, ct, "type", ctype[i]);
        if (echo[i])
            wa_node_set_bytes(a, ct, echo[i], strlen(echo[i]));
        wa_node_add_child(a, u, ct);
        wa_node_add_child(a, list, u);
    }
    wa_node_add_child(a, us, list);
    wa_node_add_child(a, iq, us);
    memset(&got, 0, sizeof got);
    iq_cb(iq_arg, iq);
    wa_arena_free(a);
}

int main(void)
{
    char b1[128], b2[128];
    snprintf(st_creds.jid, sizeof st_creds.jid, "15550001234:7@s.whatsapp.net");

    /* read receipt */
    const char *ids[] = {"3EB0AAAA", "3EB0BBBB", "3EB0CCCC"};
    T_EQ_INT(wa_send_read(C, "15550009999@s.whatsapp.net", ids, 3), 0, "read receipt sent");
    T_EQ_STR(sent ? sent->tag : NULL, "receipt", "it is a <receipt>");
    T_EQ_STR(attr(sent, "id", b1, sizeof b1), "3EB0AAAA", "the first id is the stanza id");
    T_EQ_STR(attr(sent, "to", b1, sizeof b1), "15550009999@s.whatsapp.net", "to the chat");
    T_EQ_STR(attr(sent, "type", b1, sizeof b1), "read", "type read");
    const char *t = attr(sent, "t", b1, sizeof b1);
    T_CHECK(t && labs(atol(t) - (long)time(NULL)) < 5, "t is now");
    const wa_node *list = sent ? wa_node_child(sent, "list") : NULL;
    T_CHECK(list && list->content == WA_CONTENT_LIST && list->nchildren == 2, "the others in a <list>");
    T_EQ_STR(list && list->nchildren == 2 ? attr(list->children[1], "id", b1, sizeof b1) : NULL, "3EB0CCCC",
             "as <item id>");
    T_EQ_INT(wa_send_read(C, "15550009999@s.whatsapp.net", ids, 1), 0, "one id");
    T_CHECK(sent && !wa_node_child(sent, "list"), "no <list> for one id");
    T_CHECK(wa_send_read(C, "15550009999@s.whatsapp.net", ids, 0) < 0, "no ids: refused");
    T_CHECK(wa_send_read(C, "not a jid", ids, 1) < 0, "a bad chat: refused");
    T_CHECK(wa_send_read(C, "15550009999:3@s.whatsapp.net", ids, 1) < 0, "a device JID: refused");
    st_state = WA_RECONNECTING;
    T_CHECK(wa_send_read(C, "15550009999@s.whatsapp.net", ids, 1) < 0, "not connected: refused");
    st_state = WA_CONNECTED;

    /* chatstate */
    T_EQ_INT(wa_send_chatstate(C, "15550009999@s.whatsapp.net", 1), 0, "typing sent");
    T_EQ_STR(sent ? sent->tag : NULL, "chatstate", "a <chatstate>");
    T_EQ_STR(attr(sent, "from", b1, sizeof b1), "15550001234@s.whatsapp.net", "from our account, no device");
    T_EQ_STR(attr(sent, "to", b2, sizeof b2), "15550009999@s.whatsapp.net", "to the chat");
    T_CHECK(sent && sent->content == WA_CONTENT_LIST && sent->nchildren == 1 &&
                !strcmp(sent->children[0]->tag, "composing"),
            "holding <composing/>");
    T_EQ_INT(wa_send_chatstate(C, "15550009999@s.whatsapp.net", 0), 0, "paused sent");
    T_CHECK(sent && sent->nchildren == 1 && !strcmp(sent->children[0]->tag, "paused"), "holding <paused/>");

    /* contact query */
    const char *phones[] = {"15550009999", "15550001111", "15550008888"};
    T_EQ_INT(wa_query_contacts(C, phones, 3, on_result, NULL), 0, "contact query sent");
    const wa_node *us = sent ? wa_node_child(sent, "usync") : NULL;
    T_EQ_STR(attr(us, "context", b1, sizeof b1), "interactive", "usync context interactive");
    T_EQ_STR(attr(us, "mode", b1, sizeof b1), "query", "mode query");
    const wa_node *q = us ? wa_node_child(us, "query") : NULL;
    T_CHECK(q && q->nchildren == 1 && !strcmp(q->children[0]->tag, "contact"), "query <contact/>");
    const wa_node *ul = us ? wa_node_child(us, "list") : NULL;
    T_CHECK(ul && ul->nchildren == 3, "three users");
    const wa_node *c0 = ul && ul->nchildren ? wa_node_child(ul->children[0], "contact") : NULL;
    char txt[32] = "";
    T_CHECK(c0 && wa_node_text(c0, txt, sizeof txt) && !strcmp(txt, "+15550009999"),
            "<contact>+digits</contact>");

    {
        const char *jid[] = {"15550008888@s.whatsapp.net", "15550009999@s.whatsapp.net",
                             "15550001111@s.whatsapp.net"};
        const char *ct[] = {"in", "in", "out"};
        const char *echo[] = {"+15550008888", "+15550009999", "+15550001111"};
        answer("result", 3, jid, ct, echo);
    }
    T_CHECK(got.calls == 1 && !got.null && got.n == 3, "answered with three results");
    T_EQ_STR(got.r[0].phone, "15550009999", "in the order asked, whatever the server's order");
    T_CHECK(got.r[0].on_whatsapp && !strcmp(got.r[0].jid, "15550009999@s.whatsapp.net"),
            "first: on WhatsApp");
    T_CHECK(!got.r[1].on_whatsapp && !got.r[1].jid[0], "second: type out, no JID");
    T_CHECK(got.r[2].on_whatsapp && !strcmp(got.r[2].jid, "15550008888@s.whatsapp.net"),
            "third: on WhatsApp");

    /* Answers that are wrong or odd. */
    wa_query_contacts(C, phones, 2, on_result, NULL);
    {
        const char *jid[] = {"15550009999@s.whatsapp.net", "group@g.us"};
        const char *ct[] = {"in", "in"};
        const char *echo[] = {NULL, "+15550001111"};
        answer("result", 2, jid, ct, echo);
    }
    T_CHECK(got.calls == 1 && got.r[0].on_whatsapp, "no echo: matched by the JID's user");
    T_CHECK(!got.r[1].on_whatsapp && !got.r[1].jid[0], "a JID that is not a person's: not on WhatsApp");
    wa_query_contacts(C, phones, 2, on_result, NULL);
    {
        const char *jid[] = {NULL, "15550009999@s.whatsapp.net"};
        const char *ct[] = {"in", NULL};
        const char *echo[] = {"+15550009999", "+15550009999"};
        answer("result", 2, jid, ct, echo);
    }
    T_CHECK(got.calls == 1 && !got.r[0].on_whatsapp && !got.r[1].on_whatsapp,
            "type in without a JID, or no type: not on WhatsApp");
    wa_query_contacts(C, phones, 2, on_result, NULL);
    answer("error", 0, NULL, NULL, NULL);
    T_CHECK(got.calls == 1 && got.null && strstr(got.why, "refused"),
            "an <iq type=error>: refused, no results");
    wa_query_contacts(C, phones, 2, on_result, NULL);
    memset(&got, 0, sizeof got);
    iq_cb(iq_arg, NULL);
    T_CHECK(got.calls == 1 && got.null && strstr(got.why, "lost"), "the connection drops: told so");
    wa_query_contacts(C, phones, 1, on_result, NULL);
    {
        wa_arena *a = wa_arena_new();
        wa_node *iq = wa_node_new(a, "iq");
        wa_node_add_attr(a, iq, "type", "result");
        wa_node *us2 = wa_node_new(a, "usync");
        wa_node_set_bytes(a, us2, "xx", 2); /* <usync> with bytes, no <list> */
        wa_node_add_child(a, iq, us2);
        memset(&got, 0, sizeof got);
        iq_cb(iq_arg, iq);
        wa_arena_free(a);
    }
    T_CHECK(got.calls == 1 && got.null, "a result without a <list>: refused");
    T_CHECK(wa_query_contacts(C, phones, 0, on_result, NULL) < 0, "no phones: refused");
    T_CHECK(wa_query_contacts(C, phones, WA_ACT_MAX_PHONES + 1, on_result, NULL) < 0, "too many: refused");
    iq_fail = 1;
    T_CHECK(wa_query_contacts(C, phones, 1, on_result, NULL) < 0, "the iq cannot be sent: -1 (and no leak)");
    iq_fail = 0;
    wa_arena_free(sent_arena);
    T_DONE();
}
