/* The messaging layer of the protocol library driven alone: no database, no
 * supervisor (this test links libwa.a and common/ only), a stand-in client
 * that records what would go to the server, and real Signal stores (ours and
 * a peer's, each in a temporary directory) so that incoming messages are
 * really decrypted. Checked: a batch is handed to the application with a
 * token, and nothing (receipt, ack, Signal flush) happens before it answers;
 * several stanzas arriving while a batch commits make the next batch; a
 * failed store acknowledges nothing, reconnects, and undoes the Signal state
 * (the resent stanza decrypts again); a stale token or a wrong answer;
 * groups, undecryptable messages, duplicates, retry receipts, a connection
 * lost while a batch commits. */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/wa/wa_binary.h"
#include "supervisor/wa/wa_client.h"
#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_messaging.h"
#include "supervisor/wa/wa_signal_crypto.h"
#include "supervisor/wa/wa_signal_store.h"
#include "supervisor/wa/wa_store.h"
#include "t.h"

/* ---- two parties with Signal stores ---- */

struct party {
    char dir[256];
    struct wa_creds creds;
    struct wa_prekey *pk;
    size_t npk;
    struct wa_signal_store *st;
    signal_context *g;
    signal_protocol_store_context *sc;
};

static int party_new(struct party *p, const char *base, const char *name, const char *jid)
{
    char err[256];
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/%s", base, name);
    if (wa_store_new_creds(&p->creds) < 0)
        return -1;
    snprintf(p->creds.jid, sizeof p->creds.jid, "%s", jid);
    p->npk = 4;
    p->pk = calloc(p->npk, sizeof *p->pk);
    for (size_t i = 0; i < p->npk; i++) {
        p->pk[i].id = (uint32_t)i + 1;
        wa_crypto_x25519_keypair(p->pk[i].priv, p->pk[i].pub);
    }
    if (wa_store_save(p->dir, &p->creds, err, sizeof err) < 0 ||
        wa_store_prekeys_save(p->dir, p->pk, p->npk, err, sizeof err) < 0)
        return -1;
    p->g = wa_signal_context_new();
    /* the store borrows the prekeys (a used one is removed from p->pk) */
    p->st = wa_signal_store_open(p->dir, &p->creds, &p->pk, &p->npk, err, sizeof err);
    if (!p->st) {
        printf("# open: %s\n", err);
        return -1;
    }
    return wa_signal_store_context(p->st, p->g, &p->sc);
}

static void party_free(struct party *p)
{
    signal_protocol_store_context_destroy(p->sc);
    wa_signal_store_free(p->st);
    signal_context_destroy(p->g);
    free(p->pk);
}

static struct party us, peer;

/* The size of the Signal journal our store appends to on every flush. */
static long long journal_size(void)
{
    long long total = 0;
    const char *names[] = {"signal.log", "signal.bin"};
    for (size_t i = 0; i < 2; i++) {
        char path[400];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", us.dir, names[i]);
        if (stat(path, &sb) == 0)
            total += (long long)sb.st_size;
    }
    return total;
}

/* ---- the stand-in client ---- */

static struct wa_client_hooks hooks;
static void *hooks_arg;
static int link_up = 1;   /* sends fail (-1) while 0, as the real client's do when not connected */
static char sent[64][96]; /* "receipt:ID[:type]" or "ack:ID", in order */
static int nsent, reconnects, pauses;

static void record(const char *what, const wa_node *n)
{
    if (nsent >= 64)
        return;
    const char *id = wa_node_attr_str(n, "id"), *type = wa_node_attr_str(n, "type");
    snprintf(sent[nsent++], sizeof sent[0], "%s:%s%s%s", what, id ? id : "?", type ? ":" : "",
             type ? type : "");
}

int wa_client_send_node(struct wa_client *c, const wa_node *n)
{
    (void)c;
    if (!link_up)
        return -1;
    record(n->tag, n);
    return 0;
}

void wa_client_ack(struct wa_client *c, const wa_node *n)
{
    (void)c;
    if (link_up)
        record("ack", n);
}

int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg)
{
    (void)c, (void)a, (void)iq, (void)cb, (void)arg;
    return -1; /* nothing here sends */
}

const struct wa_creds *wa_client_creds(const struct wa_client *c)
{
    (void)c;
    return &us.creds;
}

int wa_client_signal(struct wa_client *c, struct wa_signal *out)
{
    (void)c;
    *out = (struct wa_signal){us.g, us.sc, us.st};
    return 0;
}

void wa_client_pause(struct wa_client *c, int paused)
{
    (void)c, (void)paused;
    pauses++;
}

void wa_client_reconnect(struct wa_client *c, const char *why)
{
    (void)c, (void)why;
    reconnects++;
}

void wa_client_set_hooks(struct wa_client *c, const struct wa_client_hooks *h, void *arg)
{
    (void)c;
    hooks = *h;
    hooks_arg = arg;
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "SID1");
    return buf;
}

enum wa_state wa_client_state(const struct wa_client *c)
{
    (void)c;
    return link_up ? WA_CONNECTED : WA_RECONNECTING;
}

/* ---- the application ---- */

static struct {
    int calls, n, fail;
    uint64_t token;
    char ids[8][64], chat[8][128], sender[8][128], text[8][64], push[8][32], subtype[8][32];
    int from_me[8], kind[8];
    int64_t ts[8];
    long long journal_at_call;
    int sent_at_call;
} app;
static int undecryptable, retries;
static struct {
    char id[64], user[64], server[32];
    int device, count;
} retry_seen;

static int on_incoming(void *arg, const struct wa_incoming *m, int n, uint64_t token)
{
    (void)arg;
    app.calls++;
    app.n = n;
    app.token = token;
    app.journal_at_call = journal_size();
    app.sent_at_call = nsent;
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(app.ids[i], sizeof app.ids[i], "%s", m[i].id);
        snprintf(app.chat[i], sizeof app.chat[i], "%s", m[i].chat);
        snprintf(app.sender[i], sizeof app.sender[i], "%s", m[i].sender ? m[i].sender : "(none)");
        snprintf(app.text[i], sizeof app.text[i], "%s", m[i].content->text ? m[i].content->text : "(none)");
        snprintf(app.push[i], sizeof app.push[i], "%s", m[i].push_name ? m[i].push_name : "(none)");
        snprintf(app.subtype[i], sizeof app.subtype[i], "%s",
                 m[i].content->subtype ? m[i].content->subtype : "");
        app.from_me[i] = m[i].from_me;
        app.kind[i] = (int)m[i].content->kind;
        app.ts[i] = m[i].ts;
    }
    return app.fail ? -1 : 0;
}

static void on_undecryptable(void *arg, const char *id, const char *from)
{
    (void)arg, (void)id, (void)from;
    undecryptable++;
}

static void on_retry(void *arg, const struct wa_retry_request *r)
{
    (void)arg;
    retries++;
    snprintf(retry_seen.id, sizeof retry_seen.id, "%s", r->id);
    snprintf(retry_seen.user, sizeof retry_seen.user, "%s", r->user);
    snprintf(retry_seen.server, sizeof retry_seen.server, "%s", r->server);
    retry_seen.device = r->device;
    retry_seen.count = r->count;
}

/* ---- stanzas from the peer ---- */

struct ct {
    uint8_t *p;
    size_t n;
    int type;
};

static struct ct encrypt_text(const char *text)
{
    struct ct c = {0};
    uint8_t *msg, *padded;
    size_t mlen, plen;
    if (wa_msg_build_text(text, NULL, NULL, NULL, &msg, &mlen) != 0)
        return c;
    if (wa_msg_pad(msg, mlen, &padded, &plen) == 0) {
        if (wa_msg_encrypt(peer.sc, peer.g, "15559999", 3, padded, plen, &c.type, &c.p, &c.n) != 0)
            c.p = NULL;
        free(padded);
    }
    free(msg);
    return c;
}

/* <message from id t notify><enc v=2 type>bytes</enc></message>; handed to
 * the layer as the client does (it keeps the arena when it says so). */
static void deliver_enc(const char *from, const char *participant, const char *id, const char *enc_type,
                        const uint8_t *p, size_t n)
{
    wa_arena *a = wa_arena_new();
    wa_node *m = wa_node_new(a, "message");
    wa_jid j;
    wa_node_add_attr(a, m, "id", id);
    wa_jid_parse(a, from, &j);
    wa_node_add_attr_jid(a, m, "from", &j);
    if (participant) {
        wa_jid_parse(a, participant, &j);
        wa_node_add_attr_jid(a, m, "participant", &j);
    }
    wa_node_add_attr(a, m, "t", "1700000000");
    wa_node_add_attr(a, m, "notify", "Peer");
    wa_node_add_attr(a, m, "type", "text");
    wa_node *e = wa_node_new(a, "enc");
    wa_node_add_attr(a, e, "v", "2");
    wa_node_add_attr(a, e, "type", enc_type);
    wa_node_set_bytes(a, e, p, n);
    wa_node_add_child(a, m, e);
    if (!hooks.on_stanza(hooks_arg, m, a))
        wa_arena_free(a);
}

static void deliver(const char *id, const struct ct *c)
{
    deliver_enc("15550001@s.whatsapp.net", NULL, id, c->type == WA_ENC_PKMSG ? "pkmsg" : "msg", c->p, c->n);
}

static struct event_base *base;

static void turn(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static int sent_is(int from, const char *const *want, int n)
{
    if (nsent - from != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(sent[from + i], want[i]) != 0)
            return 0;
    return 1;
}

static void dump_sent(int from)
{
    for (int i = from; i < nsent; i++)
        printf("# sent %s\n", sent[i]);
}

int main(void)
{
    char base_dir[] = "/tmp/wapi-test-messaging-XXXXXX";
    if (!mkdtemp(base_dir))
        return 1;
    T_CHECK(party_new(&us, base_dir, "us", "15559999:3@s.whatsapp.net") == 0, "our Signal store");
    T_CHECK(party_new(&peer, base_dir, "peer", "15550001@s.whatsapp.net") == 0, "the peer's Signal store");
    struct wa_bundle b = {0};
    b.registration_id = us.creds.registration_id;
    memcpy(b.identity, us.creds.ident_pub, 32);
    b.spk_id = us.creds.spk_id;
    memcpy(b.spk, us.creds.spk_pub, 32);
    memcpy(b.spk_sig, us.creds.spk_sig, 64);
    b.has_prekey = 1;
    b.prekey_id = us.pk[0].id;
    memcpy(b.prekey, us.pk[0].pub, 32);
    T_EQ_INT(wa_msg_session_from_bundle(peer.sc, peer.g, "15559999", 3, &b), 0,
             "the peer starts a session with us");

    base = event_base_new();
    wa_messaging_init((struct wa_client *)&us, base); /* the handle is only passed back to the stand-ins */
    struct wa_receive_events rev = {on_incoming, NULL, on_undecryptable};
    struct wa_send_events sev = {NULL, NULL, NULL, on_retry};
    wa_messaging_set_receive_events(&rev, NULL);
    wa_messaging_set_send_events(&sev, NULL);
    T_CHECK(hooks.on_stanza && hooks.on_connected && hooks.on_disconnect,
            "the layer takes the client's hooks");
    hooks.on_connected(hooks_arg);
    T_CHECK(wa_messaging_ready(), "ready once connected");

    /* 1. One text: handed over; nothing answered or made durable before the store says so. */
    struct ct c1 = encrypt_text("hello wapi");
    T_CHECK(c1.p && c1.type == WA_ENC_PKMSG, "the peer's first message is a pkmsg");
    long long j0 = journal_size();
    deliver("M1", &c1);
    turn();
    T_EQ_INT(app.calls, 1, "the message is handed to the application");
    T_EQ_INT(app.n, 1, "alone");
    T_EQ_STR(app.ids[0], "M1", "with its id");
    T_EQ_STR(app.chat[0], "15550001@s.whatsapp.net", "in the sender's chat");
    T_EQ_STR(app.sender[0], "15550001@s.whatsapp.net", "from the sender");
    T_EQ_STR(app.text[0], "hello wapi", "decrypted");
    T_EQ_STR(app.push[0], "Peer", "with the push name");
    T_EQ_INT(app.ts[0], 1700000000, "and the stanza's time");
    T_CHECK(!app.from_me[0] && app.kind[0] == WA_MSG_TEXT, "a text from someone else");
    T_EQ_INT(app.sent_at_call, 0, "nothing sent to the server when it is handed over");
    T_EQ_INT(app.journal_at_call, j0, "and the Signal state not written");
    turn();
    T_EQ_INT(nsent, 0, "still nothing sent while the application stores it");
    T_EQ_INT(journal_size(), j0, "nor written");
    wa_messaging_stored(app.token, "t", NULL);
    const char *w1[] = {"receipt:M1", "ack:M1:text"};
    T_CHECK(sent_is(0, w1, 2), "once stored: the receipt, then the ack");
    if (!sent_is(0, w1, 2))
        dump_sent(0);
    T_CHECK(journal_size() > j0, "and the Signal state made durable");
    T_EQ_INT(reconnects, 0, "no reconnection");

    /* 2. Stanzas arriving while a batch commits make the next batch, in order. */
    struct ct c2 = encrypt_text("two"), c3 = encrypt_text("three"), c4 = encrypt_text("four");
    int s0 = nsent;
    deliver("M2", &c2);
    T_EQ_INT(app.calls, 2, "M2 handed over at once");
    uint64_t t2 = app.token;
    deliver("M3", &c3);
    deliver("M4", &c4);
    turn();
    T_EQ_INT(app.calls, 2, "M3 and M4 wait while M2 commits");
    wa_messaging_stored(t2, "t", NULL);
    turn();
    T_EQ_INT(app.calls, 3, "then they are handed over");
    T_EQ_INT(app.n, 2, "together, as one batch");
    T_CHECK(!strcmp(app.ids[0], "M3") && !strcmp(app.ids[1], "M4"), "in the order they came");
    T_CHECK(!strcmp(app.text[0], "three") && !strcmp(app.text[1], "four"), "each decrypted");
    wa_messaging_stored(app.token, "tf", NULL);
    const char *w2[] = {"receipt:M2",  "ack:M2:text", "receipt:M3",
                        "ack:M3:text", "receipt:M4",  "ack:M4:text"};
    T_CHECK(sent_is(s0, w2, 6), "every message of a stored batch is answered, new or not");
    if (!sent_is(s0, w2, 6))
        dump_sent(s0);

    /* 3. A failed store: nothing acknowledged, reconnect, the Signal state undone. */
    struct ct c5 = encrypt_text("five");
    s0 = nsent;
    long long j5 = journal_size();
    deliver("M5", &c5);
    T_EQ_STR(app.ids[0], "M5", "M5 handed over");
    wa_messaging_stored(app.token, NULL, "the database is down");
    T_EQ_INT(nsent, s0, "a batch not stored gets no receipt and no ack");
    T_EQ_INT(reconnects, 1, "the connection is dropped so the server resends");
    T_EQ_INT(journal_size(), j5, "its Signal state is not written");
    int calls = app.calls;
    deliver("M5", &c5); /* the server's resend */
    T_EQ_INT(app.calls, calls + 1, "the resend is handed over again");
    T_CHECK(!strcmp(app.ids[0], "M5") && !strcmp(app.text[0], "five"),
            "decrypted again: the state was undone");

    /* 4. A stale token is ignored; an answer of the wrong length is a failed store. */
    wa_messaging_stored(app.token + 7, "t", NULL);
    T_EQ_INT(nsent, s0, "an unknown token changes nothing");
    wa_messaging_stored(app.token, "tt", NULL);
    T_EQ_INT(nsent, s0, "an answer for two messages of a batch of one acknowledges nothing");
    T_EQ_INT(reconnects, 2, "and counts as not stored");
    deliver("M5", &c5);
    wa_messaging_stored(app.token, "t", NULL);
    const char *w5[] = {"receipt:M5", "ack:M5:text"};
    T_CHECK(sent_is(s0, w5, 2), "stored at last, answered once");

    /* 5. A group message (sender keys) is handed over as unsupported; a
     * malformed one gets a retry receipt and is never handed over. */
    uint8_t junk[40];
    memset(junk, 0x5a, sizeof junk);
    s0 = nsent;
    deliver_enc("120363000000000001@g.us", "15550002@s.whatsapp.net", "G1", "skmsg", junk, sizeof junk);
    T_EQ_STR(app.ids[0], "G1", "a group message is handed over");
    T_EQ_STR(app.chat[0], "120363000000000001@g.us", "in the group's chat");
    T_EQ_STR(app.sender[0], "15550002@s.whatsapp.net", "from the participant");
    T_CHECK(app.kind[0] == WA_MSG_UNSUPPORTED && !strcmp(app.subtype[0], "group_message"),
            "as unsupported/group_message");
    wa_messaging_stored(app.token, "t", NULL);
    calls = app.calls;
    deliver_enc("15550001@s.whatsapp.net", NULL, "B1", "msg", junk, sizeof junk);
    turn();
    T_EQ_INT(app.calls, calls, "an undecryptable message is not handed over");
    T_EQ_INT(undecryptable, 1, "it is reported once");
    const char *w6[] = {"receipt:G1", "ack:G1:text", "receipt:B1:retry", "ack:B1:text"};
    T_CHECK(sent_is(s0, w6, 4), "answered with a retry receipt, then acked");
    if (!sent_is(s0, w6, 4))
        dump_sent(s0);

    /* 6. A duplicate of a stored message: answered again, not handed over. */
    s0 = nsent;
    deliver("M1", &c1);
    turn();
    T_EQ_INT(app.calls, calls, "a duplicate is not handed over again");
    T_CHECK(sent_is(s0, w1, 2), "but receipted and acked again");

    /* 7. The application cannot take a batch: as if the store failed. */
    struct ct c7 = encrypt_text("seven");
    app.fail = 1;
    s0 = nsent;
    deliver("M7", &c7);
    app.fail = 0;
    T_EQ_INT(nsent, s0, "not taken: nothing acknowledged");
    T_EQ_INT(reconnects, 3, "and the connection dropped");
    deliver("M7", &c7);
    T_EQ_STR(app.text[0], "seven", "the resend decrypts");
    wa_messaging_stored(app.token, "t", NULL);

    /* 8. A retry receipt for one of our messages goes to the sending side. */
    wa_arena *a = wa_arena_new();
    wa_node *r = wa_node_new(a, "receipt");
    wa_jid j;
    wa_node_add_attr(a, r, "id", "S1");
    wa_jid_parse(a, "15550001:2@s.whatsapp.net", &j);
    wa_node_add_attr_jid(a, r, "from", &j);
    wa_node_add_attr(a, r, "type", "retry");
    wa_node *rt = wa_node_new(a, "retry");
    wa_node_add_attr(a, rt, "count", "2");
    wa_node_add_attr(a, rt, "id", "S1");
    wa_node_add_child(a, r, rt);
    s0 = nsent;
    if (!hooks.on_stanza(hooks_arg, r, a))
        wa_arena_free(a);
    T_EQ_INT(retries, 1, "a retry receipt is reported");
    T_CHECK(!strcmp(retry_seen.id, "S1") && !strcmp(retry_seen.user, "15550001") &&
                !strcmp(retry_seen.server, "s.whatsapp.net") && retry_seen.device == 2 &&
                retry_seen.count == 2,
            "with the message, the device that asked and its count");
    T_CHECK(nsent == s0 + 1 && !strncmp(sent[s0], "ack:S1", 6), "and the receipt is acked");

    /* 9. The connection goes while a batch commits: the commit's answer still
     * makes the state durable, so the server's resend is a duplicate. */
    struct ct c9 = encrypt_text("nine");
    deliver("M9", &c9);
    T_EQ_STR(app.ids[0], "M9", "M9 handed over");
    link_up = 0;
    hooks.on_disconnect(hooks_arg);
    T_CHECK(!wa_messaging_ready(), "not ready once disconnected");
    s0 = nsent;
    long long j9 = journal_size();
    wa_messaging_stored(app.token, "t", NULL);
    T_EQ_INT(nsent, s0, "nothing goes out on a connection that is gone");
    T_CHECK(journal_size() > j9, "but the stored batch's Signal state is made durable");
    link_up = 1;
    hooks.on_connected(hooks_arg);
    calls = app.calls;
    deliver("M9", &c9);
    turn();
    T_EQ_INT(app.calls, calls, "the resend after reconnecting is not handed over twice");
    const char *w9[] = {"receipt:M9", "ack:M9:text"};
    T_CHECK(sent_is(s0, w9, 2), "and is answered");

    free(c1.p), free(c2.p), free(c3.p), free(c4.p), free(c5.p), free(c7.p), free(c9.p);
    hooks.on_disconnect(hooks_arg);
    turn();
    party_free(&us);
    party_free(&peer);
    event_base_free(base);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base_dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", base_dir);
    T_DONE();
}
