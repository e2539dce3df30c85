/* The messaging layer of the protocol library driven alone: no database, no
 * supervisor (this test links libwa.a and common/ only, so a layer that
 * needed either would not link), a stand-in client that records what would
 * go to the server (each stanza copied, in order) and behaves like the real
 * one where it matters (sends fail while the link is down; a reconnect drops
 * the link at once, answering pending queries with NULL, then on_disconnect),
 * and real Signal stores (ours and four senders', each in a temporary
 * directory) so that messages are really encrypted and decrypted.
 *
 * Receiving: a batch is handed to the application with a token, and nothing
 * (receipt, ack, Signal flush) happens before it answers; what arrives while
 * a batch commits makes the next batch (at most WA_INCOMING_MAX, reading
 * paused while the queue is long); a failed store acknowledges nothing,
 * reconnects and undoes the Signal state (a resent first message decrypts
 * again); the token and answer contract; groups, undecryptable and malformed
 * messages (retry receipts, at most 5), duplicates, our other device's
 * messages, a LID sender; a connection lost while a batch commits.
 * Sending: device list, a send waiting for a commit to end, one copy per
 * device (the peer and our other device decrypt theirs), acks, delivery and
 * read receipts, a retry receipt answered with a resend in a new session,
 * sends handed back when the connection goes. */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/e2e.pb-c.h"
#include "supervisor/wa/wa_binary.h"
#include "supervisor/wa/wa_client.h"
#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_group_cipher.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_messaging.h"
#include "supervisor/wa/wa_peerdata.h"
#include "supervisor/wa/wa_signal_crypto.h"
#include "supervisor/wa/wa_signal_store.h"
#include "supervisor/wa/wa_store.h"
#include "t.h"
#include "t_party.h"

#define OUR_USER "15559999"
#define OUR_DEV 3
#define PEER "15550001@s.whatsapp.net"

/* ---- parties with Signal stores ---- */

/* A party (t_party.h) with the JID it is known by. */
static int party_at(struct party *p, const char *parent, const char *name, const char *jid)
{
    if (party_new(p, parent, name, 6) < 0)
        return -1;
    snprintf(p->creds.jid, sizeof p->creds.jid, "%s", jid);
    return 0;
}

/* us: 15559999:3 (LID 99900011122). Senders: a contact, a second contact,
 * our other device (15559999:5), a contact known by its LID, and another
 * device of ours that uses our LID (99900011122:7). */
#define OUR_LID "99900011122"
static struct party us, peer, peer2, mydev, lidp, mylid, gsend, myphone;

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

/* Whether our store, opened again from its files, has a session with
 * name.device: what survives a crash. -1 when it cannot be opened. */
static int durable_session(const char *name, int device)
{
    char err[256];
    struct wa_prekey *pk = NULL;
    size_t npk = 0;
    if (wa_store_prekeys_load(us.dir, &pk, &npk, err, sizeof err) < 0)
        return -1;
    struct wa_signal_store *st = wa_signal_store_open(us.dir, &us.creds, &pk, &npk, err, sizeof err);
    int r = st ? wa_signal_store_has_session(st, name, device) : -1;
    wa_signal_store_free(st);
    free(pk);
    return r;
}

/* ---- the stand-in client ---- */

static struct wa_client_hooks hooks;
static void *hooks_arg;
static int link_up;      /* sends fail (-1) while 0, as the real client's do when not connected */
static wa_arena *copies; /* copies of what was sent, freed at the end */
#define SENT_MAX 4096
static struct {
    char what[8];      /* the stanza's tag, or "ack" (n is then the stanza acknowledged) */
    const wa_node *n;  /* a copy */
    long long journal; /* our Signal journal's size when it went */
} sent[SENT_MAX];
static int nsent, reconnects, npauses, pauses[8];
#define IQ_MAX 8
static struct {
    wa_iq_cb cb;
    void *arg;
    const wa_node *n; /* a copy */
} iqs[IQ_MAX];
static int niq;

static const wa_node *copy_node(const wa_node *n)
{
    uint8_t *buf;
    size_t len;
    wa_node *c = NULL;
    if (wa_node_encode(n, &buf, &len) == WA_OK) {
        wa_node_decode(buf, len, &wa_limits_default, copies, &c);
        free(buf);
    }
    return c;
}

static void record(const char *what, const wa_node *n)
{
    if (nsent >= SENT_MAX)
        return;
    snprintf(sent[nsent].what, sizeof sent[0].what, "%s", what);
    sent[nsent].n = copy_node(n);
    sent[nsent].journal = journal_size();
    nsent++;
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
    (void)c, (void)a;
    if (!link_up || niq == IQ_MAX)
        return -1;
    iqs[niq].cb = cb;
    iqs[niq].arg = arg;
    iqs[niq].n = copy_node(iq);
    niq++;
    return 0;
}

/* The answer to query i (NULL: the connection went first). */
static void answer_iq(int i, const wa_node *answer)
{
    if (i >= niq)
        return;
    wa_iq_cb cb = iqs[i].cb;
    void *arg = iqs[i].arg;
    memmove(&iqs[i], &iqs[i + 1], (size_t)(niq - i - 1) * sizeof iqs[0]);
    niq--;
    cb(arg, answer);
}

/* As the real client's transport going away: pending queries answered with
 * NULL, then on_disconnect. */
static void drop_link(void)
{
    link_up = 0;
    while (niq > 0)
        answer_iq(0, NULL);
    hooks.on_disconnect(hooks_arg);
}

static void link_back(void)
{
    link_up = 1;
    hooks.on_connected(hooks_arg);
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
    (void)c;
    if (npauses < 8)
        pauses[npauses] = paused;
    npauses++;
}

/* The real one drops the transport at once (wac_schedule_retry). */
void wa_client_reconnect(struct wa_client *c, const char *why)
{
    (void)c, (void)why;
    reconnects++;
    if (link_up)
        drop_link();
}

void wa_client_set_hooks(struct wa_client *c, const struct wa_client_hooks *h, void *arg)
{
    (void)c;
    hooks = *h;
    hooks_arg = arg;
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    static int next;
    (void)c;
    snprintf(buf, len, "SID%d", ++next);
    return buf;
}

enum wa_state wa_client_state(const struct wa_client *c)
{
    (void)c;
    return link_up ? WA_CONNECTED : WA_RECONNECTING;
}

/* ---- what was sent ---- */

/* "tag:id[:type][:retry count]"; for an ack, of the stanza acknowledged. */
static const char *summary(int i, char *buf, size_t cap)
{
    const wa_node *n = sent[i].n;
    if (!n)
        return snprintf(buf, cap, "%s:?", sent[i].what), buf;
    const char *id = wa_node_attr_str(n, "id"), *type = wa_node_attr_str(n, "type");
    const wa_node *rt = strcmp(sent[i].what, "ack") ? wa_node_child(n, "retry") : NULL;
    const char *count = rt ? wa_node_attr_str(rt, "count") : NULL;
    snprintf(buf, cap, "%s:%s%s%s%s%s", sent[i].what, id ? id : "?", type ? ":" : "", type ? type : "",
             count ? ":" : "", count ? count : "");
    return buf;
}

static int sent_is(int from, const char *const *want, int n)
{
    char b[128];
    if (nsent - from != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(summary(from + i, b, sizeof b), want[i]) != 0)
            return 0;
    return 1;
}

static void dump_sent(int from)
{
    char b[128];
    for (int i = from; i < nsent; i++)
        printf("# sent %s\n", summary(i, b, sizeof b));
}

#define T_SENT(from, want, name)                                                                             \
    do {                                                                                                     \
        int ok_ = sent_is((from), (want), (int)(sizeof(want) / sizeof(want)[0]));                            \
        T_CHECK(ok_, name);                                                                                  \
        if (!ok_)                                                                                            \
            dump_sent(from);                                                                                 \
    } while (0)

/* An attribute of a node as text ("" when absent). */
static const char *attr_of(const wa_node *n, const char *key)
{
    static char bufs[4][128];
    static int k;
    char *b = bufs[k++ % 4];
    const char *v = n ? wa_node_attr_text(n, key, b, sizeof bufs[0]) : NULL;
    return v ? v : "";
}

/* How many <ack id=id> went out since from. */
static int acks_for(int from, const char *id)
{
    int k = 0;
    for (int i = from; i < nsent; i++)
        k += !strcmp(sent[i].what, "ack") && !strcmp(attr_of(sent[i].n, "id"), id);
    return k;
}

static const wa_node *child_of(const wa_node *n, const char *tag)
{
    return n ? wa_node_child(n, tag) : NULL;
}

/* The copy of what went i-th, NULL when nothing did. */
static const wa_node *sent_at(int i)
{
    return i >= 0 && i < nsent ? sent[i].n : NULL;
}

/* ---- the application ---- */

#define EVENTS_MAX 32
static struct {
    int calls, n, fail, pending, resend, resend_rc;
    uint64_t token;
    struct {
        char id[64], chat[128], sender[128], text[64], push[32], lid[128], subtype[32];
        int from_me, kind, fill;
        int64_t ts;
    } m[WA_INCOMING_MAX];
    long long journal_at_call;
    int sent_at_call;
    int undecryptable, ready;
    char undecryptable_id[64], undecryptable_from[128];
    char events[EVENTS_MAX][96]; /* on_sent, on_receipt, on_lid */
    int nevents;
    /* Waits for a resend (WA_MSG_RETRY_WAIT) handed over with the batch,
     * kept apart from the messages: total elements, which are waits, and
     * every wait's id so far. A batch of waits alone is stored at once. */
    int total, is_wait[WA_INCOMING_MAX], nwaits;
    char waits[64][64];
} app;
static int retries;
static struct {
    char id[64], user[64], server[32];
    int device, count;
} retry_seen;

static void event(const char *a, const char *b, const char *c)
{
    if (app.nevents < EVENTS_MAX)
        snprintf(app.events[app.nevents++], sizeof app.events[0], "%s %s %s", a, b, c);
}

static int on_incoming(void *arg, const struct wa_incoming *m, int n, uint64_t token)
{
    (void)arg;
    int nw = 0;
    for (int i = 0; i < n && i < WA_INCOMING_MAX; i++)
        if (m[i].content->kind == WA_MSG_RETRY_WAIT) {
            if (app.nwaits < 64)
                snprintf(app.waits[app.nwaits++], sizeof app.waits[0], "%s", m[i].id);
            nw++;
        }
    if (nw == n) { /* waits alone: stored at once (the answer may come from within the call) */
        char all[WA_INCOMING_MAX + 1];
        memset(all, 't', (size_t)n);
        all[n] = '\0';
        if (app.fail)
            return -1;
        wa_messaging_stored(token, all, NULL);
        return 0;
    }
    app.calls++;
    app.total = n;
    app.n = n - nw;
    app.token = token;
    app.pending = 1;
    app.journal_at_call = journal_size();
    app.sent_at_call = nsent;
    for (int i = 0, k = 0; i < n && i < WA_INCOMING_MAX; i++) {
        const struct wa_msg_content *mc = m[i].content;
        app.is_wait[i] = mc->kind == WA_MSG_RETRY_WAIT;
        if (app.is_wait[i])
            continue;
        int j = k++;
        snprintf(app.m[j].id, sizeof app.m[j].id, "%s", m[i].id);
        snprintf(app.m[j].chat, sizeof app.m[j].chat, "%s", m[i].chat);
        snprintf(app.m[j].sender, sizeof app.m[j].sender, "%s", m[i].sender ? m[i].sender : "(none)");
        snprintf(app.m[j].text, sizeof app.m[j].text, "%s", mc->text ? mc->text : "(none)");
        snprintf(app.m[j].push, sizeof app.m[j].push, "%s", m[i].push_name ? m[i].push_name : "(none)");
        snprintf(app.m[j].lid, sizeof app.m[j].lid, "%s", m[i].lid ? m[i].lid : "(none)");
        snprintf(app.m[j].subtype, sizeof app.m[j].subtype, "%s", mc->subtype ? mc->subtype : "");
        app.m[j].from_me = m[i].from_me;
        app.m[j].kind = (int)mc->kind;
        app.m[j].fill = m[i].fill;
        app.m[j].ts = m[i].ts;
    }
    return app.fail ? -1 : 0;
}

/* The application's answer for the batch it holds: every message new. */
static void store_all(void)
{
    char applied[WA_INCOMING_MAX + 1];
    memset(applied, 't', (size_t)app.total);
    applied[app.total] = '\0';
    app.pending = 0;
    wa_messaging_stored(app.token, applied, NULL);
}

/* The answer for the batch's messages (one character each, as given: a
 * malformed one stays malformed), its waits stored ('t') where they stand. */
static void app_stored(const char *applied, const char *err)
{
    char full[2 * WA_INCOMING_MAX + 2];
    size_t k = 0, o = 0;
    for (int i = 0; applied && i < app.total && o + 1 < sizeof full; i++)
        full[o++] = app.is_wait[i] ? 't' : applied[k] ? applied[k++] : '\0';
    while (applied && applied[k] && o + 1 < sizeof full)
        full[o++] = applied[k++];
    full[o] = '\0';
    wa_messaging_stored(app.token, applied ? full : NULL, err);
}

static void on_undecryptable(void *arg, const char *id, const char *from)
{
    (void)arg;
    app.undecryptable++;
    snprintf(app.undecryptable_id, sizeof app.undecryptable_id, "%s", id);
    snprintf(app.undecryptable_from, sizeof app.undecryptable_from, "%s", from);
}

static struct wa_mediaretry_note mr_note;
static int mr_notes;

static void on_media_retry(void *arg, const struct wa_mediaretry_note *note)
{
    (void)arg;
    mr_note = *note;
    mr_notes++;
}

static struct wa_presence last_presence;
static int npresence;

static void on_presence(void *arg, const struct wa_presence *p)
{
    (void)arg;
    last_presence = *p;
    npresence++;
}

static struct {
    int n;
    char kind[16], action[16], group[96], first[96];
    size_t np;
    uint64_t token;
} gev;

static int on_group_event(void *arg, const struct wa_group_event *ev, uint64_t token)
{
    (void)arg;
    gev.n++;
    snprintf(gev.kind, sizeof gev.kind, "%s", ev->kind);
    snprintf(gev.action, sizeof gev.action, "%s", ev->action ? ev->action : "");
    snprintf(gev.group, sizeof gev.group, "%s", ev->gjid);
    snprintf(gev.first, sizeof gev.first, "%s", ev->n ? ev->participants[0] : "");
    gev.np = ev->n;
    gev.token = token;
    return 0;
}

static struct {
    int n, video;
    char id[64], from[96];
    uint64_t token;
} cev;

static int on_call(void *arg, const struct wa_call *call, uint64_t token)
{
    (void)arg;
    cev.n++;
    cev.video = call->video;
    snprintf(cev.id, sizeof cev.id, "%s", call->call_id);
    snprintf(cev.from, sizeof cev.from, "%s", call->from);
    cev.token = token;
    return 0;
}

static char last_subject[128], last_subject_group[96];

static void on_group_subject(void *arg, const char *gjid, const char *subject)
{
    (void)arg;
    snprintf(last_subject, sizeof last_subject, "%s", subject);
    snprintf(last_subject_group, sizeof last_subject_group, "%s", gjid);
}

static void on_lid(void *arg, const char *pn, const char *lid)
{
    (void)arg;
    event("lid", pn, lid);
}

static const char *result_name(enum wa_send_result r)
{
    return r == WA_SEND_OK          ? "ok"
           : r == WA_SEND_TRANSIENT ? "transient"
           : r == WA_SEND_FAILED    ? "failed"
                                    : "lost";
}

static void on_sent(void *arg, const char *id, enum wa_send_result r, const char *err)
{
    (void)arg, (void)err;
    event("sent", id, result_name(r));
}

static void on_receipt(void *arg, const char *id, const char *status, const char *from,
                       const char *participant)
{
    (void)arg, (void)from, (void)participant;
    event("receipt", id, status);
}

static void on_ready(void *arg)
{
    (void)arg;
    app.ready++;
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
    if (app.resend)
        app.resend_rc = wa_messaging_resend(r, PEER, "hi back", NULL, NULL, NULL);
}

static int has_event(int from, const char *e)
{
    for (int i = from; i < app.nevents; i++)
        if (!strcmp(app.events[i], e))
            return 1;
    return 0;
}

/* ---- stanzas from the senders ---- */

struct ct {
    uint8_t *p;
    size_t n;
    int type;
};

/* plain (padded or not) from p to our device. */
static struct ct seal_raw(struct party *p, const uint8_t *plain, size_t n)
{
    struct ct c = {0};
    if (wa_msg_encrypt(p->sc, p->g, OUR_USER, OUR_DEV, plain, n, &c.type, &c.p, &c.n) != 0)
        c.p = NULL;
    return c;
}

/* text from p to our device (wrapped as deviceSentMessage{dsm_dest} when set). */
static struct ct seal(struct party *p, const char *text, const char *dsm_dest)
{
    struct ct c = {0};
    uint8_t *msg, *padded;
    size_t mlen, plen;
    if (wa_msg_build_text(text, NULL, NULL, NULL, dsm_dest, &msg, &mlen) != 0)
        return c;
    if (wa_msg_pad(msg, mlen, &padded, &plen) == 0) {
        c = seal_raw(p, padded, plen);
        free(padded);
    }
    free(msg);
    return c;
}

struct stanza {
    const char *id, *from, *participant, *sender_pn, *notify;
    const char *v, *enc_type; /* the <enc>'s (v "2" when NULL); no <enc> when enc_type is NULL */
    const uint8_t *p;
    size_t n;
    const char *category;  /* "peer": our phone's peer message */
    const char *enc2_type; /* a second <enc> after it (a group's skmsg after the pairwise copy) */
    const uint8_t *p2;
    size_t n2;
};

/* <message id from [participant sender_pn] t notify type=text><enc v type>bytes</enc></message>,
 * handed to the layer as the client does (it keeps the arena when it says so). */
static void feed(const struct stanza *s)
{
    wa_arena *a = wa_arena_new();
    wa_node *m = wa_node_new(a, "message");
    wa_jid j;
    wa_node_add_attr(a, m, "id", s->id);
    wa_jid_parse(a, s->from, &j);
    wa_node_add_attr_jid(a, m, "from", &j);
    if (s->participant) {
        wa_jid_parse(a, s->participant, &j);
        wa_node_add_attr_jid(a, m, "participant", &j);
    }
    if (s->sender_pn) {
        wa_jid_parse(a, s->sender_pn, &j);
        wa_node_add_attr_jid(a, m, "sender_pn", &j);
    }
    wa_node_add_attr(a, m, "t", "1700000000");
    wa_node_add_attr(a, m, "notify", s->notify ? s->notify : "Peer");
    wa_node_add_attr(a, m, "type", "text");
    if (s->category)
        wa_node_add_attr(a, m, "category", s->category);
    if (s->enc_type) {
        wa_node *e = wa_node_new(a, "enc");
        wa_node_add_attr(a, e, "v", s->v ? s->v : "2");
        wa_node_add_attr(a, e, "type", s->enc_type);
        wa_node_set_bytes(a, e, s->p, s->n);
        wa_node_add_child(a, m, e);
    }
    if (s->enc2_type) {
        wa_node *e = wa_node_new(a, "enc");
        wa_node_add_attr(a, e, "v", "2");
        wa_node_add_attr(a, e, "type", s->enc2_type);
        wa_node_set_bytes(a, e, s->p2, s->n2);
        wa_node_add_child(a, m, e);
    }
    if (!hooks.on_stanza(hooks_arg, m, a))
        wa_arena_free(a);
}

static void deliver_from(const char *from, const char *id, const struct ct *c)
{
    feed(&(struct stanza){
        .id = id, .from = from, .enc_type = c->type == WA_ENC_PKMSG ? "pkmsg" : "msg", .p = c->p, .n = c->n});
}

static void deliver(const char *id, const struct ct *c)
{
    deliver_from(PEER, id, c);
}

#define GROUP "120363000000000001@g.us"

/* The Signal address (name, device) of a participant JID. */
static void address_of(const char *participant, char *name, size_t cap, int32_t *dev)
{
    wa_arena *a = wa_arena_new();
    wa_jid j;
    wa_jid_parse(a, participant, &j);
    wa_msg_address_name(j.user, j.server, name, cap);
    *dev = j.device;
    wa_arena_free(a);
}

/* The text "group <id>" as an skmsg of participant in GROUP, sealed with
 * the sender key the party gsend keeps for that participant. The key's
 * distribution message in *skdm when asked. */
static struct ct group_seal(const char *participant, const char *text, uint8_t **skdm, size_t *skdm_len)
{
    struct ct c = {0};
    char name[96];
    int32_t dev;
    address_of(participant, name, sizeof name, &dev);
    uint8_t *msg, *padded, *k = NULL;
    size_t mlen, plen, kl = 0;
    if (wa_gc_own_skdm(gsend.sc, gsend.g, GROUP, name, dev, &k, &kl) != 0)
        return c;
    if (skdm) {
        *skdm = k;
        *skdm_len = kl;
    } else {
        free(k);
    }
    if (wa_msg_build_text(text, NULL, NULL, NULL, NULL, &msg, &mlen) != 0)
        return c;
    if (wa_msg_pad(msg, mlen, &padded, &plen) == 0) {
        if (wa_gc_encrypt(gsend.sc, gsend.g, GROUP, name, dev, padded, plen, &c.p, &c.n) != 0)
            c.p = NULL;
        free(padded);
    }
    free(msg);
    return c;
}

/* A group text from participant whose sender key we have already (it is
 * put into our store directly, as an earlier message would have). */
static void group_message(const char *id, const char *participant)
{
    char name[96], text[96];
    int32_t dev;
    uint8_t *k = NULL;
    size_t kl = 0;
    address_of(participant, name, sizeof name, &dev);
    snprintf(text, sizeof text, "group %s", id);
    struct ct c = group_seal(participant, text, &k, &kl);
    /* Once per sender: a distribution message taken again later would start
     * our copy past the messages still queued (they would read as old). */
    static char known[8][96];
    int seen = 0;
    for (size_t i = 0; i < 8 && known[i][0] && !seen; i++)
        seen = !strcmp(known[i], participant);
    for (size_t i = 0; i < 8 && !seen; i++)
        if (!known[i][0]) {
            snprintf(known[i], sizeof known[i], "%s", participant);
            if (!k || wa_gc_process_skdm(us.sc, us.g, GROUP, name, dev, k, kl) != 0)
                printf("# cannot take the sender key of %s\n", participant);
            break;
        }
    free(k);
    feed(&(struct stanza){
        .id = id, .from = GROUP, .participant = participant, .enc_type = "skmsg", .p = c.p, .n = c.n});
    free(c.p);
}

/* n group messages, ids prefix0.. */
static void flood(const char *prefix, int n)
{
    char id[32];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s%d", prefix, i);
        group_message(id, "15550002@s.whatsapp.net");
    }
}

/* Any other stanza from the server: <tag attrs...> with children. */
static void feed_node(wa_node *n, wa_arena *a)
{
    if (!hooks.on_stanza(hooks_arg, n, a))
        wa_arena_free(a);
}

static wa_node *node_jid(wa_arena *a, const char *tag, const char *key, const char *jid)
{
    wa_node *n = wa_node_new(a, tag);
    wa_jid j;
    wa_jid_parse(a, jid, &j);
    wa_node_add_attr_jid(a, n, key, &j);
    return n;
}

static void receipt_from_server(const char *id, const char *from, const char *type, const char *item,
                                const char *retry_count)
{
    wa_arena *a = wa_arena_new();
    wa_node *r = node_jid(a, "receipt", "from", from);
    wa_node_add_attr(a, r, "id", id);
    if (type)
        wa_node_add_attr(a, r, "type", type);
    if (item) {
        wa_node *l = wa_node_new(a, "list"), *it = wa_node_new(a, "item");
        wa_node_add_attr(a, it, "id", item);
        wa_node_add_child(a, l, it);
        wa_node_add_child(a, r, l);
    }
    if (retry_count) {
        wa_node *rt = wa_node_new(a, "retry");
        wa_node_add_attr(a, rt, "count", retry_count);
        wa_node_add_attr(a, rt, "id", id);
        wa_node_add_child(a, r, rt);
    }
    feed_node(r, a);
}

static void ack_from_server(const char *id)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = node_jid(a, "ack", "from", PEER);
    wa_node_add_attr(a, n, "id", id);
    wa_node_add_attr(a, n, "class", "message");
    feed_node(n, a);
}

/* <user jid><devices><device-list><device id/>...</device-list></devices>[<lid val/>]</user> */
static void usync_user(wa_arena *a, wa_node *list, const char *jid, const char *const *ids, int n,
                       const char *lid)
{
    wa_node *u = node_jid(a, "user", "jid", jid), *devs = wa_node_new(a, "devices"),
            *dl = wa_node_new(a, "device-list");
    for (int i = 0; i < n; i++) {
        wa_node *d = wa_node_new(a, "device");
        wa_node_add_attr(a, d, "id", ids[i]);
        wa_node_add_child(a, dl, d);
    }
    wa_node_add_child(a, devs, dl);
    wa_node_add_child(a, u, devs);
    if (lid)
        wa_node_add_child(a, u, node_jid(a, "lid", "val", lid));
    wa_node_add_child(a, list, u);
}

static wa_node *bytes_node(wa_arena *a, const char *tag, const void *p, size_t n)
{
    wa_node *x = wa_node_new(a, tag);
    wa_node_set_bytes(a, x, p, n);
    return x;
}

/* Answers the device query: the peer has device 0 (and a LID), we have 3 and 5. */
static void answer_devices(void)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq"), *u = wa_node_new(a, "usync"), *list = wa_node_new(a, "list");
    const char *peer_devs[] = {"0"}, *our_devs[] = {"3", "5"};
    wa_node_add_attr(a, iq, "type", "result");
    usync_user(a, list, PEER, peer_devs, 1, "777000111@lid");
    usync_user(a, list, OUR_USER "@s.whatsapp.net", our_devs, 2, NULL);
    wa_node_add_child(a, u, list);
    wa_node_add_child(a, iq, u);
    answer_iq(0, iq);
    wa_arena_free(a);
}

/* <iq type=result><list><user jid>registration identity skey key</user></list></iq> */
static wa_node *prekey_answer(wa_arena *a, const char *jid, const struct wa_bundle *b)
{
    uint8_t reg[4] = {(uint8_t)(b->registration_id >> 24), (uint8_t)(b->registration_id >> 16),
                      (uint8_t)(b->registration_id >> 8), (uint8_t)b->registration_id};
    uint8_t skid[3] = {(uint8_t)(b->spk_id >> 16), (uint8_t)(b->spk_id >> 8), (uint8_t)b->spk_id};
    uint8_t kid[3] = {(uint8_t)(b->prekey_id >> 16), (uint8_t)(b->prekey_id >> 8), (uint8_t)b->prekey_id};
    wa_node *iq = wa_node_new(a, "iq"), *list = wa_node_new(a, "list"), *u = node_jid(a, "user", "jid", jid);
    wa_node *sk = wa_node_new(a, "skey"), *k = wa_node_new(a, "key");
    wa_node_add_attr(a, iq, "type", "result");
    wa_node_add_child(a, u, bytes_node(a, "registration", reg, 4));
    wa_node_add_child(a, u, bytes_node(a, "identity", b->identity, 32));
    wa_node_add_child(a, sk, bytes_node(a, "id", skid, 3));
    wa_node_add_child(a, sk, bytes_node(a, "value", b->spk, 32));
    wa_node_add_child(a, sk, bytes_node(a, "signature", b->spk_sig, 64));
    wa_node_add_child(a, u, sk);
    wa_node_add_child(a, k, bytes_node(a, "id", kid, 3));
    wa_node_add_child(a, k, bytes_node(a, "value", b->prekey, 32));
    wa_node_add_child(a, u, k);
    wa_node_add_child(a, list, u);
    wa_node_add_child(a, iq, list);
    return iq;
}

/* The <enc> of a sent <message> meant for jid (the one directly inside when
 * jid is NULL), or NULL. */
static const wa_node *enc_for(const wa_node *msg, const char *jid)
{
    if (!jid)
        return child_of(msg, "enc");
    const wa_node *parts = child_of(msg, "participants");
    for (uint32_t i = 0; parts && parts->content == WA_CONTENT_LIST && i < parts->nchildren; i++)
        if (!strcmp(attr_of(parts->children[i], "jid"), jid))
            return wa_node_child(parts->children[i], "enc");
    return NULL;
}

/* p decrypts enc, sent by our device: the Message, or -1. */
static int open_enc(struct party *p, const wa_node *enc, struct wa_msg_content *mc)
{
    uint8_t *plain = NULL;
    size_t plen = 0;
    memset(mc, 0, sizeof *mc);
    if (!enc || enc->content != WA_CONTENT_BYTES)
        return -1;
    int type = !strcmp(attr_of(enc, "type"), "pkmsg") ? WA_ENC_PKMSG : WA_ENC_MSG;
    if (wa_msg_decrypt(p->sc, p->g, OUR_USER, OUR_DEV, type, enc->bytes, enc->nbytes, &plain, &plen) != 0)
        return -1;
    long n = wa_msg_unpad(plain, plen);
    int r = n < 0 ? -1 : wa_msg_parse(plain, (size_t)n, mc);
    free(plain);
    return r;
}

/* Message id from our other device `from`, a deviceSentMessage of text to
 * PEER: handed over as ours, in PEER's chat, sent by our phone number (with
 * lid, "(none)" for none), with no push name; once stored answered with a
 * sender receipt naming the chat, to that device. */
static void from_our_device(const char *id, const char *from, const struct ct *c, const char *text,
                            const char *lid)
{
    char name[5][160], want[2][32];
    const char *what[] = {"ours, in the chat it was sent to", "sent by our phone number",
                          "decrypted, with no push name", "answered with a sender receipt",
                          "naming the chat, to that device"};
    for (int i = 0; i < 5; i++)
        snprintf(name[i], sizeof name[i], "from %s: %s", from, what[i]);
    int s0 = nsent;
    deliver_from(from, id, c);
    T_CHECK(app.m[0].from_me && !strcmp(app.m[0].chat, PEER), name[0]);
    T_CHECK(!strcmp(app.m[0].sender, OUR_USER "@s.whatsapp.net") && !strcmp(app.m[0].lid, lid), name[1]);
    T_CHECK(!strcmp(app.m[0].text, text) && !strcmp(app.m[0].push, "(none)"), name[2]);
    app_stored("t", NULL);
    snprintf(want[0], sizeof want[0], "receipt:%s:sender", id);
    snprintf(want[1], sizeof want[1], "ack:%s:text", id);
    const char *w[] = {want[0], want[1]};
    T_SENT(s0, w, name[3]);
    T_CHECK(!strcmp(attr_of(sent_at(s0), "recipient"), PEER) && !strcmp(attr_of(sent_at(s0), "to"), from),
            name[4]);
}

static struct event_base *evb;

static void turn(void)
{
    event_base_loop(evb, EVLOOP_NONBLOCK);
}

/* Answers the group query (iqs[0]) with members (phone-number addressed). */
static void answer_group(const char *const *members, int n)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq"), *g = wa_node_new(a, "group");
    wa_node_add_attr(a, iq, "type", "result");
    wa_node_add_attr(a, g, "id", "120363000000000001");
    wa_node_add_attr(a, g, "subject", "Team");
    wa_node_add_attr(a, g, "addressing_mode", "pn");
    for (int i = 0; i < n; i++)
        wa_node_add_child(a, g, node_jid(a, "participant", "jid", members[i]));
    wa_node_add_child(a, iq, g);
    answer_iq(0, iq);
    wa_arena_free(a);
}

/* Answers a device query (iqs[0]) for one user with device 0. */
static void answer_one_device(const char *jid)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq"), *u = wa_node_new(a, "usync"), *list = wa_node_new(a, "list");
    const char *devs[] = {"0"};
    wa_node_add_attr(a, iq, "type", "result");
    usync_user(a, list, jid, devs, 1, NULL);
    wa_node_add_child(a, u, list);
    wa_node_add_child(a, iq, u);
    answer_iq(0, iq);
    wa_arena_free(a);
}

/* p opens a group message we sent: the key from its pairwise copy (when
 * there is one for jid), then the skmsg. 1 when the text is want. */
static int open_group(struct party *p, const wa_node *msg, const char *jid, const char *want)
{
    struct wa_msg_content mc;
    const wa_node *pw = enc_for(msg, jid);
    if (pw) {
        if (open_enc(p, pw, &mc) < 0 || !mc.skdm || mc.kind != WA_MSG_NONE || strcmp(mc.skdm_group, GROUP) ||
            wa_gc_process_skdm(p->sc, p->g, GROUP, OUR_USER, OUR_DEV, mc.skdm, mc.skdm_len) != 0) {
            wa_msg_content_free(&mc);
            return -1;
        }
        wa_msg_content_free(&mc);
    }
    const wa_node *sk = child_of(msg, "enc");
    uint8_t *plain = NULL;
    size_t plen = 0;
    if (!sk || strcmp(attr_of(sk, "type"), "skmsg") ||
        wa_gc_decrypt(p->sc, p->g, GROUP, OUR_USER, OUR_DEV, sk->bytes, sk->nbytes, &plain, &plen) != 0)
        return -2;
    long n = wa_msg_unpad(plain, plen);
    int r = n >= 0 && wa_msg_parse(plain, (size_t)n, &mc) == 0;
    free(plain);
    r = r && mc.text && !strcmp(mc.text, want);
    wa_msg_content_free(&mc);
    return r ? 1 : -3;
}

/* The ack of a group send, with the server's participant hash. */
static void group_ack(const char *id, const char *phash)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = node_jid(a, "ack", "from", GROUP);
    wa_node_add_attr(a, n, "id", id);
    wa_node_add_attr(a, n, "class", "message");
    if (phash)
        wa_node_add_attr(a, n, "phash", phash);
    feed_node(n, a);
}

int main(void)
{
    char dir[] = "/tmp/wapi-test-messaging-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int setup = party_at(&us, dir, "us", OUR_USER ":3@s.whatsapp.net") == 0 &&
                party_at(&peer, dir, "peer", PEER) == 0 &&
                party_at(&peer2, dir, "peer2", "15550002@s.whatsapp.net") == 0 &&
                party_at(&mydev, dir, "mydev", OUR_USER ":5@s.whatsapp.net") == 0 &&
                party_at(&lidp, dir, "lidp", "88877766655@lid") == 0 &&
                party_at(&mylid, dir, "mylid", OUR_LID ":7@lid") == 0 &&
                party_at(&gsend, dir, "gsend", "15550009@s.whatsapp.net") == 0 &&
                party_at(&myphone, dir, "myphone", OUR_USER "@s.whatsapp.net") == 0;
    snprintf(us.creds.lid, sizeof us.creds.lid, "%s", OUR_LID ":3@lid");
    T_CHECK(setup, "our Signal store and the senders'");
    /* Each sender starts a session with us from a bundle with one of our
     * prekeys (read now: a flush removes used ones from us.pk). */
    struct party *senders[] = {&peer, &peer2, &mydev, &lidp, &mylid, &myphone};
    for (size_t i = 0; setup && i < 6; i++) {
        struct wa_bundle b;
        bundle_of(&us, i, &b);
        setup = wa_msg_session_from_bundle(senders[i]->sc, senders[i]->g, OUR_USER, OUR_DEV, &b) == 0;
    }
    T_CHECK(setup, "each sender starts a session with us");
    if (!setup)
        goto out;
    struct wa_bundle peer_bundle, mydev_bundle, mylid_bundle; /* for the resends below */
    bundle_of(&peer, 0, &peer_bundle);
    bundle_of(&mydev, 0, &mydev_bundle);
    bundle_of(&mylid, 0, &mylid_bundle);

    copies = wa_arena_new();
    evb = event_base_new();
    wa_messaging_init((struct wa_client *)&us, evb); /* the handle is only passed back to the stand-ins */
    struct wa_receive_events rev = {on_incoming, on_lid,           on_undecryptable, on_media_retry,
                                    on_presence, on_group_subject, on_group_event,   on_call};
    struct wa_send_events sev = {on_sent, on_receipt, on_ready, on_retry};
    wa_messaging_set_receive_events(&rev, NULL);
    wa_messaging_set_send_events(&sev, NULL);
    T_CHECK(hooks.on_stanza && hooks.on_connected && hooks.on_disconnect,
            "the layer takes the client's hooks");
    T_CHECK(!wa_messaging_ready() && wa_messaging_room() == 0 && wa_messaging_busy(),
            "nothing taken before the connection is up");
    T_EQ_INT(wa_messaging_send("S0", PEER, "x", NULL, NULL), -1, "a send before then is refused");
    link_back();
    T_CHECK(wa_messaging_ready() && app.ready == 1, "ready once connected, and the outbox told");
    int room = wa_messaging_room();
    T_CHECK(room > 0 && !wa_messaging_busy(), "room for sends");

    /* 1. One text: handed over; nothing answered or made durable before the store says so. */
    struct ct c1 = seal(&peer, "hello wapi", NULL);
    T_CHECK(c1.p && c1.type == WA_ENC_PKMSG, "the peer's first message is a pkmsg");
    long long j0 = journal_size();
    deliver("M1", &c1);
    T_EQ_INT(app.calls, 1, "the message is handed to the application at once");
    T_EQ_INT(app.n, 1, "alone");
    T_EQ_STR(app.m[0].id, "M1", "with its id");
    T_EQ_STR(app.m[0].chat, PEER, "in the sender's chat");
    T_EQ_STR(app.m[0].sender, PEER, "from the sender");
    T_EQ_STR(app.m[0].text, "hello wapi", "decrypted");
    T_EQ_STR(app.m[0].push, "Peer", "with the push name");
    T_EQ_STR(app.m[0].lid, "(none)", "no LID when the stanza names none");
    T_EQ_INT(app.m[0].ts, 1700000000, "and the stanza's time");
    T_CHECK(!app.m[0].from_me && app.m[0].kind == WA_MSG_TEXT, "a text from someone else");
    T_EQ_INT(app.sent_at_call, 0, "nothing sent to the server when it is handed over");
    T_EQ_INT(app.journal_at_call, j0, "and the Signal state not written");
    turn();
    T_EQ_INT(nsent, 0, "still nothing sent while the application stores it");
    T_EQ_INT(journal_size(), j0, "nor written");
    T_EQ_INT(durable_session("15550001", 0), 0, "our store opened again does not have the new session");
    app_stored("t", NULL);
    const char *w1[] = {"receipt:M1", "ack:M1:text"};
    T_SENT(0, w1, "once stored: the receipt, then the ack");
    T_EQ_STR(attr_of(sent[0].n, "to"), PEER, "the receipt goes to the sender");
    T_CHECK(journal_size() > j0, "the Signal state is written");
    T_EQ_INT(sent[0].journal, journal_size(), "before the receipt goes");
    T_EQ_INT(durable_session("15550001", 0), 1, "and the session survives a reopen");
    T_EQ_INT(reconnects, 0, "no reconnection");

    /* 2. Stanzas arriving while a batch commits make the next batch, in
     * order; an undecryptable one among them leaves the others alone. */
    struct ct c2 = seal(&peer, "two", NULL), c3 = seal(&peer, "three", NULL), c4 = seal(&peer, "four", NULL);
    uint8_t junk[40];
    memset(junk, 0x5a, sizeof junk);
    int s0 = nsent;
    deliver("M2", &c2);
    T_EQ_INT(app.calls, 2, "M2 handed over at once");
    uint64_t t2 = app.token;
    deliver("M3", &c3);
    feed(&(struct stanza){.id = "B0", .from = PEER, .enc_type = "msg", .p = junk, .n = sizeof junk});
    deliver("M4", &c4);
    turn();
    T_EQ_INT(app.calls, 2, "M3, B0 and M4 wait while M2 commits");
    T_EQ_INT(app.undecryptable, 0, "not even decrypted yet");
    long long j2 = journal_size();
    wa_messaging_stored(t2, "t", NULL);
    T_EQ_INT(app.calls, 3, "then they are handed over");
    T_EQ_INT(app.n, 2, "together, as one batch, without the undecryptable one");
    T_CHECK(!strcmp(app.m[0].id, "M3") && !strcmp(app.m[1].id, "M4"), "in the order they came");
    T_CHECK(!strcmp(app.m[0].text, "three") && !strcmp(app.m[1].text, "four"), "each decrypted");
    T_EQ_INT(app.undecryptable, 1, "B0 is reported undecryptable");
    T_CHECK(app.total == 3 && app.is_wait[1] && app.nwaits >= 1 && !strcmp(app.waits[app.nwaits - 1], "B0"),
            "B0's wait for a resend goes with them, in its place (stored with its ack)");
    long long j3 = journal_size();
    T_CHECK(j3 > j2, "M2's state written when it was stored");
    app_stored("tf", NULL);
    const char *w2[] = {"receipt:M2",         "ack:M2:text", "receipt:M3", "ack:M3:text",
                        "receipt:B0:retry:1", "ack:B0:text", "receipt:M4", "ack:M4:text"};
    T_SENT(s0, w2, "every message of a stored batch is answered, new or not, in the order they came");
    T_CHECK(journal_size() > j3, "M3's and M4's state written when they are");
    turn();
    T_EQ_INT(app.calls, 3, "nothing more to hand over");

    /* 3. A failed store: nothing acknowledged, the connection dropped, the
     * Signal state undone; the first message of a new contact too. */
    struct ct c5 = seal(&peer, "five", NULL);
    s0 = nsent;
    long long j5 = journal_size();
    deliver("M5", &c5);
    T_EQ_STR(app.m[0].id, "M5", "M5 handed over");
    wa_messaging_stored(app.token, NULL, "the database is down");
    T_EQ_INT(nsent, s0, "a batch not stored gets no receipt and no ack");
    T_EQ_INT(reconnects, 1, "the connection is dropped so the server resends");
    T_CHECK(!wa_messaging_ready(), "not ready meanwhile");
    T_EQ_INT(journal_size(), j5, "its Signal state is not written");
    link_back();
    int calls = app.calls;
    deliver("M5", &c5); /* the server's resend */
    T_EQ_INT(app.calls, calls + 1, "the resend is handed over again");
    T_CHECK(!strcmp(app.m[0].id, "M5") && !strcmp(app.m[0].text, "five"),
            "decrypted again: the state was undone");
    app_stored("t", NULL);
    const char *w5[] = {"receipt:M5", "ack:M5:text"};
    T_SENT(s0, w5, "stored at last, answered once");

    struct ct p1 = seal(&peer2, "first contact", NULL);
    s0 = nsent;
    feed(&(struct stanza){
        .id = "P1", .from = "15550002@s.whatsapp.net", .enc_type = "pkmsg", .p = p1.p, .n = p1.n});
    T_EQ_STR(app.m[0].text, "first contact", "a new contact's first message is handed over");
    T_CHECK(wa_signal_store_has_session(us.st, "15550002", 0), "with a new session");
    wa_messaging_stored(app.token, NULL, "disk full");
    T_CHECK(!wa_signal_store_has_session(us.st, "15550002", 0), "not stored: the new session is gone");
    T_EQ_INT(reconnects, 2, "and the connection dropped");
    link_back();
    feed(&(struct stanza){
        .id = "P1", .from = "15550002@s.whatsapp.net", .enc_type = "pkmsg", .p = p1.p, .n = p1.n});
    T_EQ_STR(app.m[0].text, "first contact", "its resend decrypts again (the prekey is still there)");
    app_stored("t", NULL);
    const char *wp[] = {"receipt:P1", "ack:P1:text"};
    T_SENT(s0, wp, "then it is answered");
    T_EQ_INT(durable_session("15550002", 0), 1, "and its session durable");

    /* 4. The answer's contract: a stale token is ignored, the batch still
     * waits; an answer that does not match the batch is a failed store; an
     * answer given twice or with no batch is ignored; err is ignored when
     * the batch is stored. */
    struct ct c6 = seal(&peer, "six", NULL);
    s0 = nsent;
    deliver("M6", &c6);
    uint64_t t6 = app.token;
    wa_messaging_stored(t6 + 7, "t", NULL);
    wa_messaging_stored(t6 - 1, "t", NULL);
    T_EQ_INT(nsent, s0, "an unknown or old token changes nothing");
    T_EQ_INT(reconnects, 2, "and is no failure");
    wa_messaging_stored(t6, "tt", NULL);
    T_EQ_INT(nsent, s0, "an answer for two messages of a batch of one acknowledges nothing");
    T_EQ_INT(reconnects, 3, "and counts as not stored");
    wa_messaging_stored(t6, "t", NULL);
    T_EQ_INT(nsent, s0, "the batch is gone: answering it again does nothing");
    link_back();
    deliver("M6", &c6);
    T_EQ_STR(app.m[0].text, "six", "the resend decrypts again");
    app_stored("y", NULL);
    T_CHECK(nsent == s0 && reconnects == 4, "an answer other than 't' or 'f' counts as not stored");
    link_back();
    deliver("M6", &c6);
    app_stored("f", "an error given with an answer");
    const char *w6[] = {"receipt:M6", "ack:M6:text"};
    T_SENT(s0, w6, "'f' (stored before) is answered like 't'; err is ignored when stored");
    app_stored("f", NULL);
    wa_messaging_stored(0, NULL, "no batch");
    T_CHECK(nsent == s0 + 2 && reconnects == 4, "answers with no batch waiting are ignored");

    /* 5. A group message (sender keys) is decrypted and handed over; an
     * undecryptable one gets a retry receipt (5 at most); a malformed one
     * an ack alone; none of these is handed over. */
    s0 = nsent;
    group_message("G1", "15550002@s.whatsapp.net");
    T_EQ_STR(app.m[0].id, "G1", "a group message is handed over");
    T_EQ_STR(app.m[0].chat, "120363000000000001@g.us", "in the group's chat");
    T_EQ_STR(app.m[0].sender, "15550002@s.whatsapp.net", "from the participant");
    T_CHECK(app.m[0].kind == WA_MSG_TEXT && !strcmp(app.m[0].text, "group G1"),
            "decrypted with the participant's sender key");
    T_CHECK(!app.m[0].from_me && !strcmp(app.m[0].push, "Peer"), "from someone else, with the push name");
    T_EQ_INT(app.m[0].ts, 1700000000, "at the stanza's time");
    app_stored("t", NULL);
    const char *wg[] = {"receipt:G1", "ack:G1:text"};
    T_SENT(s0, wg, "answered once stored");
    T_EQ_STR(attr_of(sent_at(s0), "participant"), "15550002@s.whatsapp.net",
             "the receipt names the participant");
    T_EQ_STR(attr_of(sent_at(s0), "to"), "120363000000000001@g.us", "and goes to the group");
    group_message("G2", OUR_USER ":5@s.whatsapp.net");
    T_CHECK(app.m[0].from_me && !strcmp(app.m[0].push, "(none)"), "one from our other device is ours");
    app_stored("t", NULL);

    /* The first message of a sender we have no key of: the key comes in a
     * pairwise copy (pkmsg) beside the skmsg, in the same stanza. */
    {
        uint8_t *k = NULL, *m1 = NULL, *pd = NULL;
        size_t kl = 0, ml = 0, pl = 0;
        struct ct g3 = group_seal(PEER, "first from the peer", &k, &kl);
        Wapi__E2e__Message km = WAPI__E2E__MESSAGE__INIT;
        Wapi__E2e__SenderKeyDistributionMessage skd = WAPI__E2E__SENDER_KEY_DISTRIBUTION_MESSAGE__INIT;
        skd.groupid = GROUP;
        skd.has_axolotlsenderkeydistributionmessage = 1;
        skd.axolotlsenderkeydistributionmessage = (ProtobufCBinaryData){kl, k};
        km.senderkeydistributionmessage = &skd;
        ml = wapi__e2e__message__get_packed_size(&km);
        m1 = malloc(ml);
        wapi__e2e__message__pack(&km, m1);
        wa_msg_pad(m1, ml, &pd, &pl);
        struct ct pw = seal_raw(&peer, pd, pl);
        s0 = nsent;
        calls = app.calls;
        feed(&(struct stanza){
            .id = "G3", .from = GROUP, .participant = PEER, .enc_type = "skmsg", .p = g3.p, .n = g3.n});
        turn();
        T_EQ_INT(app.calls, calls, "an skmsg before its sender key is not handed over");
        T_EQ_STR(attr_of(sent_at(s0), "type"), "retry", "a retry receipt asks for it");
        T_EQ_STR(attr_of(sent_at(s0), "participant"), PEER, "naming the participant");
        s0 = nsent;
        feed(&(struct stanza){.id = "G3",
                              .from = GROUP,
                              .participant = PEER,
                              .enc_type = pw.type == WA_ENC_PKMSG ? "pkmsg" : "msg",
                              .p = pw.p,
                              .n = pw.n,
                              .enc2_type = "skmsg",
                              .p2 = g3.p,
                              .n2 = g3.n});
        T_CHECK(app.calls == calls + 1 && !strcmp(app.m[0].id, "G3") && app.m[0].kind == WA_MSG_TEXT &&
                    !strcmp(app.m[0].text, "first from the peer") && !strcmp(app.m[0].sender, PEER),
                "with the key in a pairwise copy beside it, the same skmsg decrypts");
        app_stored("t", NULL);
        const char *wg3[] = {"receipt:G3", "ack:G3:text"};
        T_SENT(s0, wg3, "and is answered once stored");
        s0 = nsent;
        calls = app.calls;
        feed(&(struct stanza){
            .id = "G3", .from = GROUP, .participant = PEER, .enc_type = "skmsg", .p = g3.p, .n = g3.n});
        turn();
        T_EQ_INT(app.calls, calls, "the same skmsg again (a resend) is not handed over twice");
        T_SENT(s0, wg3, "but answered again");
        free(k);
        free(m1);
        free(pd);
        free(pw.p);
        free(g3.p);
    }

    calls = app.calls;
    int undecryptable = app.undecryptable;
    s0 = nsent;
    feed(&(struct stanza){.id = "B1", .from = PEER, .enc_type = "msg", .p = junk, .n = sizeof junk});
    turn();
    T_EQ_INT(app.calls, calls, "an undecryptable message is not handed over");
    T_EQ_INT(app.undecryptable, undecryptable + 1, "it is reported once");
    T_CHECK(!strcmp(app.undecryptable_id, "B1") && !strcmp(app.undecryptable_from, PEER),
            "with its id and sender");
    const char *wb[] = {"receipt:B1:retry:1", "ack:B1:text"};
    T_SENT(s0, wb, "answered with a retry receipt, then acked");
    {
        const wa_node *r = sent_at(s0), *rt = child_of(r, "retry"), *reg = child_of(r, "registration");
        uint32_t rid = reg && reg->content == WA_CONTENT_BYTES && reg->nbytes == 4
                           ? (uint32_t)reg->bytes[0] << 24 | (uint32_t)reg->bytes[1] << 16 |
                                 (uint32_t)reg->bytes[2] << 8 | reg->bytes[3]
                           : 0;
        T_CHECK(!strcmp(attr_of(rt, "id"), "B1") && !strcmp(attr_of(rt, "t"), "1700000000") &&
                    !strcmp(attr_of(rt, "v"), "1"),
                "the retry names the message and its time");
        T_EQ_INT(rid, us.creds.registration_id, "with our registration id");
        T_EQ_STR(attr_of(r, "to"), PEER, "to the sender");
    }
    for (int i = 2; i <= 6; i++)
        feed(&(struct stanza){.id = "B1", .from = PEER, .enc_type = "msg", .p = junk, .n = sizeof junk});
    turn();
    /* The retries used up: the sixth is handed over as a placeholder, and
     * acked only once it is stored. */
    T_CHECK(app.calls == calls + 1 && app.n == 1 && !strcmp(app.m[0].id, "B1") &&
                app.m[0].kind == WA_MSG_UNDECRYPTABLE && !strcmp(app.m[0].chat, PEER) &&
                !strcmp(app.m[0].sender, PEER) && !app.m[0].from_me,
            "after 5 retries it is handed over as a placeholder (its id, chat, sender)");
    const char *wb5[] = {"receipt:B1:retry:1", "ack:B1:text", "receipt:B1:retry:2", "ack:B1:text",
                         "receipt:B1:retry:3", "ack:B1:text", "receipt:B1:retry:4", "ack:B1:text",
                         "receipt:B1:retry:5", "ack:B1:text"};
    T_SENT(s0, wb5, "each time again the count goes up; the placeholder not acked before it is stored");
    app_stored("t", NULL);
    const char *wb6[] = {"receipt:B1:retry:1", "ack:B1:text", "receipt:B1:retry:2", "ack:B1:text",
                         "receipt:B1:retry:3", "ack:B1:text", "receipt:B1:retry:4", "ack:B1:text",
                         "receipt:B1:retry:5", "ack:B1:text", "ack:B1:text"};
    T_SENT(s0, wb6, "stored: acked alone (no receipt: we do not have the message)");
    T_EQ_INT(app.undecryptable, undecryptable + 6, "each reported");

    /* Nothing a retry receipt could ask for: placeholders at once. */
    calls = app.calls;
    s0 = nsent;
    int xok = 1;
    static const char *const xids[] = {"X1", "X2", "X3"};
    for (int i = 0; i < 3; i++) {
        if (i == 0)
            feed(&(struct stanza){
                .id = "X1", .from = PEER, .v = "1", .enc_type = "msg", .p = junk, .n = sizeof junk});
        else if (i == 1)
            feed(
                &(struct stanza){.id = "X2", .from = PEER, .enc_type = "skmsg", .p = junk, .n = sizeof junk});
        else
            feed(&(struct stanza){.id = "X3", .from = PEER});
        turn();
        xok &= app.calls == calls + 1 + i && app.n == 1 && !strcmp(app.m[0].id, xids[i]) &&
               app.m[0].kind == WA_MSG_UNDECRYPTABLE && nsent == s0 + i;
        app_stored("t", NULL);
    }
    T_CHECK(xok, "a malformed <enc>, one of an unknown type, none: each handed over as a placeholder, "
                 "unanswered until stored");
    const char *wx[] = {"ack:X1:text", "ack:X2:text", "ack:X3:text"};
    T_SENT(s0, wx, "then acked alone (no retry asked)");
    T_EQ_INT(app.undecryptable, undecryptable + 9, "each reported undecryptable");
    calls = app.calls;

    /* One that decrypts but is no Message (its padding is wrong): what its
     * decryption changed is undone, so it is no duplicate when it comes
     * again, and the next message decrypts. */
    static const uint8_t unpadded[] = {'x', 'y', 'z', 0};
    struct ct bp = seal_raw(&peer, unpadded, sizeof unpadded), c14 = seal(&peer, "fourteen", NULL);
    s0 = nsent;
    deliver("BP", &bp);
    T_CHECK(app.calls == calls + 1 && app.n == 1 && !strcmp(app.m[0].id, "BP") &&
                app.m[0].kind == WA_MSG_UNDECRYPTABLE,
            "a bad plaintext (a resend carries the same bytes) is a placeholder at once");
    app_stored("t", NULL);
    deliver("BP", &bp);
    T_CHECK(app.calls == calls + 2 && app.n == 1 && app.m[0].kind == WA_MSG_UNDECRYPTABLE,
            "again when it comes again (the store keeps one)");
    app_stored("f", NULL);
    const char *wbp[] = {"ack:BP:text", "ack:BP:text"};
    T_SENT(s0, wbp, "acked alone each time, no retry receipt, never a receipt");
    T_EQ_INT(app.undecryptable, undecryptable + 11, "and is reported each time");
    deliver("M14", &c14);
    T_EQ_STR(app.m[0].text, "fourteen", "the peer's next message decrypts");
    app_stored("t", NULL);
    calls = app.calls;

    /* 6. Duplicates: of a stored message, and twice in one batch. */
    s0 = nsent;
    deliver("M1", &c1);
    turn();
    T_EQ_INT(app.calls, calls, "a duplicate is not handed over again");
    T_SENT(s0, w1, "but receipted and acked again");
    struct ct c7 = seal(&peer, "seven", NULL), c8 = seal(&peer, "eight", NULL);
    s0 = nsent;
    deliver("M7", &c7);
    deliver("M8", &c8);
    deliver("M8", &c8);
    app_stored("t", NULL);
    T_CHECK(app.n == 1 && !strcmp(app.m[0].id, "M8"),
            "the same message twice in a batch is handed over once");
    app_stored("t", NULL);
    const char *w78[] = {"receipt:M7",  "ack:M7:text", "receipt:M8",
                         "ack:M8:text", "receipt:M8",  "ack:M8:text"};
    T_SENT(s0, w78, "and both copies answered");

    /* 7. The application cannot take a batch: as if the store failed. */
    struct ct c9 = seal(&peer, "nine", NULL);
    app.fail = 1;
    s0 = nsent;
    deliver("M9", &c9);
    app.fail = 0;
    T_EQ_INT(nsent, s0, "not taken: nothing acknowledged");
    T_EQ_INT(reconnects, 5, "and the connection dropped");
    link_back();
    deliver("M9", &c9);
    T_EQ_STR(app.m[0].text, "nine", "the resend decrypts");
    app_stored("t", NULL);

    /* 8. Retry receipts for our messages go to the sending side. */
    s0 = nsent;
    receipt_from_server("S1", "15550001:2@s.whatsapp.net", "retry", NULL, "2");
    T_EQ_INT(retries, 1, "a retry receipt is reported");
    T_CHECK(!strcmp(retry_seen.id, "S1") && !strcmp(retry_seen.user, "15550001") &&
                !strcmp(retry_seen.server, "s.whatsapp.net") && retry_seen.device == 2 &&
                retry_seen.count == 2,
            "with the message, the device that asked and its count");
    receipt_from_server("S1", "15550001:2@s.whatsapp.net", "retry", NULL, "6");
    T_EQ_INT(retries, 1, "past 5 retries it is not");
    const char *wr[] = {"ack:S1:retry", "ack:S1:retry"};
    T_SENT(s0, wr, "both receipts acked");

    /* 9. The connection goes while a batch commits: what came after it is
     * dropped; the commit's answer still makes the state durable but sends
     * nothing, so the server's resend is a duplicate. */
    struct ct c10 = seal(&peer, "ten", NULL), c11 = seal(&peer, "eleven", NULL);
    deliver("M10", &c10);
    T_EQ_STR(app.m[0].id, "M10", "M10 handed over");
    deliver("M11", &c11);
    calls = app.calls;
    drop_link();
    T_CHECK(!wa_messaging_ready() && wa_messaging_room() == 0, "not ready once disconnected");
    s0 = nsent;
    long long j10 = journal_size();
    app_stored("t", NULL);
    T_EQ_INT(nsent, s0, "nothing goes out on a connection that is gone");
    T_CHECK(journal_size() > j10, "but the stored batch's Signal state is made durable");
    T_EQ_INT(app.calls, calls, "what was queued behind it is dropped (the server resends it)");
    link_back();
    deliver("M10", &c10);
    turn();
    T_EQ_INT(app.calls, calls, "the resend of the stored one is not handed over twice");
    deliver("M11", &c11);
    T_EQ_STR(app.m[0].text, "eleven", "the dropped one comes with the resends");
    app_stored("t", NULL);
    const char *w10[] = {"receipt:M10", "ack:M10:text", "receipt:M11", "ack:M11:text"};
    T_SENT(s0, w10, "and both are answered");

    /* 10. Our other device's message (deviceSentMessage) and a sender known by its LID. */
    struct ct d1 = seal(&mydev, "sent from my phone", PEER);
    from_our_device("D1", OUR_USER ":5@s.whatsapp.net", &d1, "sent from my phone", "(none)");
    struct ct l1 = seal(&lidp, "from a lid", NULL);
    feed(&(struct stanza){.id = "L1",
                          .from = "88877766655@lid",
                          .sender_pn = "15550003@s.whatsapp.net",
                          .enc_type = "pkmsg",
                          .p = l1.p,
                          .n = l1.n});
    T_CHECK(!strcmp(app.m[0].sender, "15550003@s.whatsapp.net") &&
                !strcmp(app.m[0].chat, "15550003@s.whatsapp.net") && !strcmp(app.m[0].lid, "88877766655@lid"),
            "a LID sender: chat and sender by phone number, with the LID");
    T_EQ_STR(app.m[0].text, "from a lid", "decrypted");
    app_stored("t", NULL);

    /* Our other device addressed by our LID: still ours (it is no contact
     * writing from our own number), in the chat it was sent to. */
    struct ct d2 = seal(&mylid, "sent by lid", PEER);
    from_our_device("D2", OUR_LID ":7@lid", &d2, "sent by lid", OUR_LID "@lid");
    group_message("G4", OUR_LID ":7@lid");
    T_CHECK(app.m[0].from_me && !strcmp(app.m[0].sender, OUR_USER "@s.whatsapp.net") &&
                !strcmp(app.m[0].push, "(none)"),
            "a group message from our LID is ours too");
    app_stored("t", NULL);

    /* 11. A flood while a batch commits: reading paused while the queue is
     * long. The connection goes: the flood is dropped (the server resends),
     * and the next connection is read from the start. Then the queue is
     * taken WA_INCOMING_MAX at a time and reading resumed once it is short. */
    log_set_level(LOG_WARN);
    s0 = nsent;
    calls = app.calls;
    group_message("H1", "15550002@s.whatsapp.net");
    flood("F", 1100);
    T_CHECK(npauses == 1 && pauses[0] == 1, "reading paused once the queue is long");
    drop_link();
    app_stored("t", NULL);
    T_CHECK(nsent == s0 && app.calls == calls + 1, "the connection gone, the flood is dropped unanswered");
    T_EQ_INT(npauses, 1, "the next connection is not paused");
    link_back();
    group_message("H2", "15550002@s.whatsapp.net");
    flood("F", 1100);
    T_CHECK(npauses == 2 && pauses[1] == 1, "on the next connection reading is paused again");
    int batches = 0, over = 0, total = 0;
    while (app.pending && batches < 40) {
        store_all();
        if (app.pending) {
            batches++;
            total += app.n;
            over |= app.n > WA_INCOMING_MAX || (app.n < WA_INCOMING_MAX && total < 1100);
        }
    }
    log_set_level(LOG_INFO);
    T_EQ_INT(total, 1100, "all of the flood handed over");
    T_CHECK(batches == 18 && !over, "in batches of WA_INCOMING_MAX (the last one smaller)");
    T_CHECK(npauses == 3 && pauses[2] == 0, "reading resumed");
    T_CHECK(app.n > 0 && !strcmp(app.m[app.n - 1].id, "F1099"), "in order to the last");
    T_EQ_INT(nsent - s0, 2 * 1101, "each answered");
    T_EQ_INT(app.calls, calls + 20, "one call per batch");

    /* A batch with nothing to store (WA_INCOMING_MAX group messages without
     * a sender: dropped) is answered at once; what is queued behind it goes
     * on the next turn. */
    group_message("H3", "15550002@s.whatsapp.net");
    char xid[32];
    for (int i = 0; i < WA_INCOMING_MAX; i++) {
        snprintf(xid, sizeof xid, "E%d", i);
        feed(&(struct stanza){.id = xid, .from = GROUP});
    }
    group_message("G3", "15550002@s.whatsapp.net");
    s0 = nsent;
    calls = app.calls;
    app_stored("t", NULL);
    T_CHECK(app.calls == calls && nsent == s0 + 2 + WA_INCOMING_MAX,
            "a batch with nothing to store (acks alone) is answered without the application");
    turn();
    T_CHECK(app.calls == calls + 1 && !strcmp(app.m[0].id, "G3"),
            "the next one on the next turn of the loop");
    app_stored("t", NULL);

    /* 12. Sending: the device list, a send waiting for a commit to end, one
     * copy per device, the ack, receipts. */
    int e0 = app.nevents;
    T_EQ_INT(wa_messaging_send("S1", PEER, "hi back", NULL, NULL), 0, "a send is taken");
    T_EQ_INT(wa_messaging_room(), room - 1, "and holds a place");
    T_EQ_INT(niq, 0, "started on the next turn of the loop");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "usync"), "the devices are asked for");
    struct ct c13 = seal(&peer, "thirteen", NULL);
    s0 = nsent;
    deliver("M13", &c13);
    answer_devices();
    T_CHECK(has_event(e0, "lid " PEER " 777000111@lid"), "the peer's LID from the device list is told");
    T_CHECK(nsent == s0 && niq == 0, "every device has a session; the send waits while M13 commits");
    app_stored("t", NULL);
    const char *ws[] = {"receipt:M13", "ack:M13:text", "message:S1:text"};
    T_SENT(s0, ws, "the commit answered first, then the message");
    const wa_node *msg = sent_at(s0 + 2);
    T_CHECK(sent[s0 + 2].journal > sent[s0 + 1].journal, "its Signal state written before it goes");
    T_EQ_STR(attr_of(msg, "to"), PEER, "to the peer");
    T_CHECK(!enc_for(msg, OUR_USER ":3@s.whatsapp.net"), "not to ourselves");
    struct wa_msg_content mc;
    T_CHECK(open_enc(&peer, enc_for(msg, PEER), &mc) == 0 && mc.text && !strcmp(mc.text, "hi back") &&
                !mc.dsm_dest,
            "the peer decrypts its copy");
    wa_msg_content_free(&mc);
    T_CHECK(open_enc(&mydev, enc_for(msg, OUR_USER ":5@s.whatsapp.net"), &mc) == 0 && mc.text &&
                !strcmp(mc.text, "hi back") && mc.dsm_dest && !strcmp(mc.dsm_dest, PEER),
            "our other device decrypts its copy, naming the chat");
    wa_msg_content_free(&mc);
    T_CHECK(!has_event(e0, "sent S1 ok"), "not reported sent before the server's ack");
    ack_from_server("S1");
    T_CHECK(has_event(e0, "sent S1 ok"), "reported sent on the ack");
    T_EQ_INT(wa_messaging_room(), room, "and its place is free again");
    s0 = nsent;
    receipt_from_server("S1", PEER, NULL, NULL, NULL);
    receipt_from_server("S1", PEER, "read", "S0", NULL);
    T_CHECK(has_event(e0, "receipt S1 delivered") && has_event(e0, "receipt S1 read") &&
                has_event(e0, "receipt S0 read"),
            "delivery and read receipts reported, the list's items too");
    const char *wrr[] = {"ack:S1", "ack:S1:read"};
    T_SENT(s0, wrr, "and acked");

    /* A second send uses the device list fetched a moment ago. */
    s0 = nsent;
    T_EQ_INT(wa_messaging_send("S2", PEER, "again", NULL, NULL), 0, "a second send is taken");
    turn();
    const char *ws2[] = {"message:S2:text"};
    T_SENT(s0, ws2, "and goes without asking for the devices again");
    msg = sent_at(s0);
    T_CHECK(niq == 0 && enc_for(msg, PEER) && enc_for(msg, OUR_USER ":5@s.whatsapp.net") &&
                !enc_for(msg, OUR_USER ":3@s.whatsapp.net"),
            "to the same devices, not to ourselves");
    T_CHECK(open_enc(&peer, enc_for(msg, PEER), &mc) == 0 && mc.text && !strcmp(mc.text, "again"),
            "the peer decrypts it");
    wa_msg_content_free(&mc);
    ack_from_server("S2");

    /* A voice note: the same path with an attachment; the stanza says
     * media, each <enc> its mediatype, and both copies carry the keys. */
    {
        struct wa_msg_media vn = {.type = WA_MT_VOICE,
                                  .file_length = 4242,
                                  .seconds = 7,
                                  .waveform_len = 64,
                                  .has_media_key = 1,
                                  .has_file_sha256 = 1,
                                  .has_file_enc_sha256 = 1};
        memset(vn.media_key, 0xA1, 32);
        memset(vn.file_sha256, 0xB2, 32);
        memset(vn.file_enc_sha256, 0xC3, 32);
        memset(vn.waveform, 9, 64);
        vn.direct_path = "/v/t62.7118-24/1_n.enc?oh=x";
        vn.mimetype = "audio/ogg; codecs=opus";
        s0 = nsent;
        T_EQ_INT(wa_messaging_send_media("S2m", PEER, &vn, "M13", NULL), 0, "a voice note is taken");
        vn.direct_path = NULL; /* the queue holds its own copy */
        turn();
        const char *wsm[] = {"message:S2m:media"};
        T_SENT(s0, wsm, "and goes as a media stanza");
        msg = sent_at(s0);
        const wa_node *ep = enc_for(msg, PEER), *eo = enc_for(msg, OUR_USER ":5@s.whatsapp.net");
        T_CHECK(ep && eo && !strcmp(attr_of(ep, "mediatype"), "ptt") &&
                    !strcmp(attr_of(eo, "mediatype"), "ptt"),
                "every <enc> says mediatype=ptt");
        T_CHECK(open_enc(&peer, ep, &mc) == 0 && mc.kind == WA_MSG_MEDIA && mc.media &&
                    mc.media->type == WA_MT_VOICE && mc.media->has_media_key &&
                    mc.media->media_key[0] == 0xA1 && mc.media->file_enc_sha256[31] == 0xC3 &&
                    mc.media->file_length == 4242 && mc.media->seconds == 7 && mc.media->waveform_len == 64 &&
                    mc.reply_to && !strcmp(mc.reply_to, "M13") &&
                    !strcmp(mc.media->direct_path, "/v/t62.7118-24/1_n.enc?oh=x"),
                "the peer decrypts a voice note with its keys, sums, duration, waveform and reply");
        wa_msg_content_free(&mc);
        T_CHECK(open_enc(&mydev, eo, &mc) == 0 && mc.kind == WA_MSG_MEDIA && mc.dsm_dest &&
                    !strcmp(mc.dsm_dest, PEER) && mc.media && mc.media->type == WA_MT_VOICE,
                "our other device decrypts it, naming the chat");
        wa_msg_content_free(&mc);
        ack_from_server("S2m");
        struct wa_msg_media nokey = {.type = WA_MT_IMAGE, .direct_path = "/v/x"};
        T_EQ_INT(wa_messaging_send_media("S2n", PEER, NULL, NULL, NULL), -1, "no attachment: refused");
        e0 = app.nevents;
        T_EQ_INT(wa_messaging_send_media("S2n", PEER, &nokey, NULL, NULL), 0,
                 "an attachment without keys is taken");
        turn();
        T_CHECK(has_event(e0, "sent S2n failed"), "and fails (it cannot be built), reported once");
    }

    /* 13. A retry receipt answered with a resend: a fresh bundle, a new
     * session, the copy to that device alone. */
    app.resend = 1;
    int ready = app.ready, e1 = app.nevents;
    s0 = nsent;
    receipt_from_server("S1", PEER, "retry", NULL, "1");
    app.resend = 0;
    T_EQ_INT(app.resend_rc, 0, "the resend is taken");
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "encrypt"), "a fresh prekey bundle is asked for");
    {
        const wa_node *u = child_of(child_of(niq ? iqs[0].n : NULL, "key"), "user");
        T_EQ_STR(attr_of(u, "jid"), PEER, "for the device that asked");
        wa_arena *a = wa_arena_new();
        answer_iq(0, prekey_answer(a, PEER, &peer_bundle));
        wa_arena_free(a);
    }
    const char *wre[] = {"ack:S1:retry", "message:S1:text"};
    T_SENT(s0, wre, "the retry receipt acked, the message sent again");
    msg = sent_at(s0 + 1);
    const wa_node *enc = enc_for(msg, NULL);
    T_CHECK(!strcmp(attr_of(msg, "to"), PEER) && !child_of(msg, "participants") && enc &&
                !strcmp(attr_of(enc, "count"), "1") && !strcmp(attr_of(enc, "type"), "pkmsg"),
            "to that device alone, in a new session, with the retry count");
    T_CHECK(open_enc(&peer, enc, &mc) == 0 && mc.text && !strcmp(mc.text, "hi back"), "the peer decrypts it");
    wa_msg_content_free(&mc);
    ack_from_server("S1");
    T_CHECK(app.ready == ready + 1 && app.nevents == e1,
            "its ack lets the outbox go on; S1 is not reported again");

    /* Our other device asks too: what it gets again is the deviceSentMessage. */
    app.resend = 1;
    s0 = nsent;
    receipt_from_server("S1", OUR_USER ":5@s.whatsapp.net", "retry", NULL, "2");
    app.resend = 0;
    T_CHECK(app.resend_rc == 0 && niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "encrypt"),
            "our other device's retry: its bundle is asked for");
    {
        wa_arena *a = wa_arena_new();
        answer_iq(0, prekey_answer(a, OUR_USER ":5@s.whatsapp.net", &mydev_bundle));
        wa_arena_free(a);
    }
    T_SENT(s0, wre, "the message sent again");
    msg = sent_at(s0 + 1);
    enc = enc_for(msg, NULL);
    T_CHECK(!strcmp(attr_of(msg, "to"), OUR_USER ":5@s.whatsapp.net") && enc &&
                !strcmp(attr_of(enc, "count"), "2"),
            "to that device, with its count");
    T_CHECK(open_enc(&mydev, enc, &mc) == 0 && mc.text && !strcmp(mc.text, "hi back") && mc.dsm_dest &&
                !strcmp(mc.dsm_dest, PEER),
            "which decrypts it as ours, sent to the chat");
    wa_msg_content_free(&mc);
    ack_from_server("S1");

    /* The same from our device that uses our LID. */
    app.resend = 1;
    s0 = nsent;
    receipt_from_server("S1", OUR_LID ":7@lid", "retry", NULL, "1");
    app.resend = 0;
    T_CHECK(app.resend_rc == 0 && niq == 1, "our LID device's retry: its bundle is asked for");
    {
        wa_arena *a = wa_arena_new();
        answer_iq(0, prekey_answer(a, OUR_LID ":7@lid", &mylid_bundle));
        wa_arena_free(a);
    }
    T_SENT(s0, wre, "the message sent again");
    msg = sent_at(s0 + 1);
    T_EQ_STR(attr_of(msg, "to"), OUR_LID ":7@lid", "to that device");
    T_CHECK(open_enc(&mylid, enc_for(msg, NULL), &mc) == 0 && mc.text && !strcmp(mc.text, "hi back") &&
                mc.dsm_dest && !strcmp(mc.dsm_dest, PEER),
            "which decrypts it as ours, sent to the chat (not as a message to it)");
    wa_msg_content_free(&mc);
    ack_from_server("S1");

    /* 14. The connection goes with sends held: each handed back once, in
     * order: the one being prepared, those awaiting their ack, those waiting
     * to start. The device lists are forgotten with the connection. */
    e0 = app.nevents;
    s0 = nsent;
    T_EQ_INT(wa_messaging_send("S3", PEER, "three", NULL, NULL), 0, "S3 taken");
    T_EQ_INT(wa_messaging_send("S4", PEER, "four", NULL, NULL), 0, "S4 taken");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "usync"),
            "the device list is asked for again (the retry receipts made it stale)");
    answer_devices();
    const char *w34[] = {"message:S3:text", "message:S4:text"};
    T_SENT(s0, w34, "S3 goes, then S4 (the device list known now)");
    e0 = app.nevents;
    T_EQ_INT(wa_messaging_send("S5", "15550009@s.whatsapp.net", "five", NULL, NULL), 0, "S5 taken");
    T_EQ_INT(wa_messaging_send("S6", PEER, "six", NULL, NULL), 0, "S6 taken");
    turn();
    T_CHECK(niq == 1 && app.nevents == e0, "S5's devices asked for, S6 waits; nothing reported yet");
    drop_link();
    const char *lost[] = {"sent S5 lost", "sent S3 lost", "sent S4 lost", "sent S6 lost"};
    int lost_ok = app.nevents - e0 == 4;
    for (int i = 0; lost_ok && i < 4; i++)
        lost_ok = !strcmp(app.events[e0 + i], lost[i]);
    T_CHECK(lost_ok, "all four handed back as lost, once each, in that order");
    T_EQ_INT(wa_messaging_send("S7", PEER, "seven", NULL, NULL), -1, "nothing taken while disconnected");
    link_back();
    T_EQ_INT(wa_messaging_send("S7", "@s.whatsapp.net", "seven", NULL, NULL), -2,
             "a JID without a user is refused");
    T_EQ_INT(wa_messaging_room(), room, "nothing held");
    T_EQ_INT(wa_messaging_send("S7", PEER, "seven", NULL, NULL), 0, "S7 taken on the new connection");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "usync"), "its devices asked for again");

    /* 15. Media retry: the request goes to our own account (no device),
     * the phone's answer comes to the application copied out of its stanza. */
    uint8_t mk[32];
    memset(mk, 0x5a, sizeof mk);
    s0 = nsent;
    T_EQ_INT(wa_messaging_media_retry("MR1", PEER, 0, NULL, mk), 0, "a media retry request is taken");
    const wa_node *mr = nsent == s0 + 1 ? sent[s0].n : NULL;
    T_CHECK(mr && !strcmp(mr->tag, "receipt") && !strcmp(attr_of(mr, "type"), "server-error") &&
                !strcmp(attr_of(mr, "id"), "MR1") && !strcmp(attr_of(mr, "to"), OUR_USER "@s.whatsapp.net"),
            "<receipt type=server-error id to=our account without the device>");
    wa_arena *ma = wa_arena_new();
    wa_node *note = wa_node_new(ma, "notification"), *rmr = wa_node_new(ma, "rmr"),
            *er = wa_node_new(ma, "error");
    wa_node_add_attr(ma, note, "type", "mediaretry");
    wa_node_add_attr(ma, note, "id", "MR1");
    wa_node_add_attr(ma, rmr, "jid", PEER);
    wa_node_add_attr(ma, rmr, "from_me", "false");
    wa_node_add_attr(ma, er, "code", "2");
    wa_node_add_child(ma, note, rmr);
    wa_node_add_child(ma, note, er);
    feed_node(note, ma);
    T_CHECK(mr_notes == 1 && !strcmp(mr_note.id, "MR1") && !strcmp(mr_note.chat, PEER) &&
                mr_note.phone_error == 2,
            "the phone's answer reaches the application: id, chat, error code");
    ma = wa_arena_new();
    note = wa_node_new(ma, "notification");
    wa_node_add_attr(ma, note, "type", "mediaretry");
    wa_node_add_attr(ma, note, "id", "MR2");
    feed_node(note, ma);
    T_EQ_INT(mr_notes, 1, "a malformed one (no <rmr>) does not");
    drop_link();
    T_EQ_INT(wa_messaging_media_retry("MR1", PEER, 0, NULL, mk), -1, "none is taken while disconnected");

    /* Presence: a contact's availability and typing reach the application;
     * malformed ones do not. */
    {
        wa_arena *pa = wa_arena_new();
        wa_node *pr = wa_node_new(pa, "presence");
        wa_node_add_attr(pa, pr, "from", "15550001:3@s.whatsapp.net");
        wa_node_add_attr(pa, pr, "type", "unavailable");
        wa_node_add_attr(pa, pr, "last", "1733300000");
        feed_node(pr, pa);
        T_CHECK(npresence == 1 && last_presence.kind == WA_PRESENCE_AVAILABILITY &&
                    !strcmp(last_presence.jid, "15550001@s.whatsapp.net") &&
                    !strcmp(last_presence.state, "unavailable") && last_presence.last_seen == 1733300000,
                "presence unavailable with last seen, the device dropped from the JID");
        pa = wa_arena_new();
        pr = wa_node_new(pa, "presence");
        wa_node_add_attr(pa, pr, "from", "15550001@s.whatsapp.net");
        wa_node_add_attr(pa, pr, "type", "unavailable");
        wa_node_add_attr(pa, pr, "last", "deny");
        feed_node(pr, pa);
        T_CHECK(npresence == 2 && last_presence.last_seen == 0, "last seen hidden (\"deny\"): none");
        pa = wa_arena_new();
        pr = wa_node_new(pa, "chatstate");
        wa_node *cp = wa_node_new(pa, "composing");
        wa_node_add_attr(pa, pr, "from", "120363000000000001@g.us");
        wa_node_add_attr(pa, pr, "participant", "15550002@s.whatsapp.net");
        wa_node_add_attr(pa, cp, "media", "audio");
        wa_node_add_child(pa, pr, cp);
        feed_node(pr, pa);
        T_CHECK(npresence == 3 && last_presence.kind == WA_PRESENCE_CHATSTATE &&
                    !strcmp(last_presence.chat, "120363000000000001@g.us") &&
                    !strcmp(last_presence.jid, "15550002@s.whatsapp.net") &&
                    !strcmp(last_presence.state, "recording"),
                "chatstate in a group: the chat, who, recording (composing media=audio)");
        pa = wa_arena_new();
        pr = wa_node_new(pa, "chatstate");
        wa_node_add_attr(pa, pr, "from", "120363000000000001@g.us");
        wa_node_add_child(pa, pr, wa_node_new(pa, "paused"));
        feed_node(pr, pa);
        pa = wa_arena_new();
        pr = wa_node_new(pa, "chatstate");
        wa_node_add_attr(pa, pr, "from", "15550002@s.whatsapp.net");
        wa_node_add_child(pa, pr, wa_node_new(pa, "dancing"));
        feed_node(pr, pa);
        pa = wa_arena_new();
        pr = wa_node_new(pa, "presence");
        wa_node_add_attr(pa, pr, "from", "nobody");
        feed_node(pr, pa);
        T_EQ_INT(npresence, 3,
                 "a group chatstate without participant, an unknown state, a bad JID: none reach it");
    }

    /* A group's change: to the application, acked only once it is stored. */
    link_back();
    {
        int s1 = nsent;
        wa_arena *ga = wa_arena_new();
        wa_node *no = wa_node_new(ga, "notification"), *add = wa_node_new(ga, "add"),
                *pp = wa_node_new(ga, "participant");
        wa_node_add_attr(ga, no, "type", "w:gp2");
        wa_node_add_attr(ga, no, "id", "GN1");
        wa_node_add_attr(ga, no, "from", GROUP);
        wa_node_add_attr(ga, no, "participant", PEER);
        wa_node_add_attr(ga, pp, "jid", "15550003333@s.whatsapp.net");
        wa_node_add_child(ga, add, pp);
        wa_node_add_child(ga, no, add);
        feed_node(no, ga);
        T_CHECK(gev.n == 1 && !strcmp(gev.kind, "participants") && !strcmp(gev.action, "add") &&
                    !strcmp(gev.group, GROUP) && gev.np == 1 &&
                    !strcmp(gev.first, "15550003333@s.whatsapp.net"),
                "a member added: the change reaches the application (group, action, who)");
        T_EQ_INT(acks_for(s1, "GN1"), 0, "not acked before it is stored");
        wa_messaging_held_done(gev.token, 1);
        T_EQ_INT(acks_for(s1, "GN1"), 1, "acked once stored");
        wa_messaging_held_done(gev.token, 1);
        T_EQ_INT(acks_for(s1, "GN1"), 1, "a second done for it acks nothing more");
        ga = wa_arena_new();
        no = wa_node_new(ga, "notification");
        wa_node_add_attr(ga, no, "type", "w:gp2");
        wa_node_add_attr(ga, no, "id", "GN2");
        wa_node_add_attr(ga, no, "from", GROUP);
        wa_node_add_child(ga, no, wa_node_new(ga, "locked"));
        feed_node(no, ga);
        T_CHECK(gev.n == 2 && !strcmp(gev.kind, "updated"), "a setting: an update");
        wa_messaging_held_done(gev.token, 0);
        T_EQ_INT(acks_for(s1, "GN2"), 0, "not stored: not acked (the server tells it again)");
        ga = wa_arena_new();
        no = wa_node_new(ga, "notification");
        wa_node_add_attr(ga, no, "type", "w:gp2");
        wa_node_add_attr(ga, no, "id", "GN3");
        wa_node_add_attr(ga, no, "from", GROUP);
        wa_node_add_child(ga, no, wa_node_new(ga, "picture"));
        feed_node(no, ga);
        T_CHECK(gev.n == 2 && acks_for(s1, "GN3") == 1,
                "a change we do not tell (a picture): acked at once, no event");
    }

    /* A call: an offer to the application, acked once stored; the rest of
     * a call's stanzas acked at once. */
    link_back();
    {
        int s1 = nsent;
        wa_arena *ca = wa_arena_new();
        wa_node *call = wa_node_new(ca, "call"), *offer = wa_node_new(ca, "offer");
        wa_node_add_attr(ca, call, "id", "CALL1");
        wa_node_add_attr(ca, call, "from", PEER);
        wa_node_add_attr(ca, call, "t", "1700000000");
        wa_node_add_attr(ca, offer, "call-id", "C0FFEE");
        wa_node_add_attr(ca, offer, "call-creator", PEER);
        wa_node_add_child(ca, offer, wa_node_new(ca, "audio"));
        wa_node_add_child(ca, offer, wa_node_new(ca, "video"));
        wa_node_add_child(ca, call, offer);
        feed_node(call, ca);
        T_CHECK(cev.n == 1 && !strcmp(cev.id, "C0FFEE") && cev.video &&
                    !strncmp(PEER, cev.from, strcspn(PEER, ":@")),
                "a video call offered: to the application (its id, who, video)");
        T_EQ_INT(acks_for(s1, "CALL1"), 0, "the offer is not acked before it is stored");
        wa_messaging_held_done(cev.token, 1);
        T_EQ_INT(acks_for(s1, "CALL1"), 1, "acked once stored");
        ca = wa_arena_new();
        call = wa_node_new(ca, "call");
        wa_node *end = wa_node_new(ca, "terminate");
        wa_node_add_attr(ca, call, "id", "CALL2");
        wa_node_add_attr(ca, call, "from", PEER);
        wa_node_add_attr(ca, end, "call-id", "C0FFEE");
        wa_node_add_child(ca, call, end);
        feed_node(call, ca);
        T_CHECK(cev.n == 1 && acks_for(s1, "CALL2") == 1, "the call's end: acked at once, not told");
    }

    /* 16. Sending to a group: members asked (w:g2), their devices, our
     * sender key pairwise to each device that lacks it, one skmsg for all;
     * the next send is the skmsg alone; someone leaves: a new key, to the
     * remaining members only; the server's other participant hash makes
     * the next send ask again. */
    link_back();
    e0 = app.nevents;
    s0 = nsent;
    T_EQ_INT(wa_messaging_send("GS1", GROUP, "to the group", NULL, NULL), 0, "a send to a group is taken");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "w:g2") &&
                !strcmp(attr_of(iqs[0].n, "to"), GROUP) && child_of(iqs[0].n, "query") &&
                !strcmp(attr_of(child_of(iqs[0].n, "query"), "request"), "interactive"),
            "the group's members are asked for (<iq xmlns=w:g2 to=group><query request=interactive/>)");
    const char *members1[] = {PEER, OUR_USER "@s.whatsapp.net"};
    answer_group(members1, 2);
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "usync"), "then their devices");
    T_CHECK(!strcmp(last_subject, "Team") && !strcmp(last_subject_group, GROUP),
            "the group's subject reaches the application (its chat is named by it)");
    answer_devices();
    const char *wg1[] = {"message:GS1:text"};
    T_SENT(s0, wg1, "the message goes");
    msg = nsent > s0 ? sent_at(s0) : NULL;
    T_CHECK(msg && !strcmp(attr_of(msg, "to"), GROUP) && !strcmp(attr_of(msg, "addressing_mode"), "pn") &&
                !strcmp(attr_of(msg, "phash"), "2:JrZpqnez"),
            "to the group, addressing mode and participant hash named (over 15550001.0:0, our .0:3 and .0:5; "
            "the value computed apart)");
    T_CHECK(msg && enc_for(msg, PEER) && enc_for(msg, OUR_USER ":5@s.whatsapp.net") &&
                !enc_for(msg, OUR_USER ":3@s.whatsapp.net"),
            "our key pairwise to the member's device and our other device, not to ourselves");
    T_EQ_INT(msg ? open_group(&peer, msg, PEER, "to the group") : 0, 1,
             "the member takes the key and reads it");
    T_EQ_INT(msg ? open_group(&mydev, msg, OUR_USER ":5@s.whatsapp.net", "to the group") : 0, 1,
             "so does our other device");
    group_ack("GS1", NULL);
    T_CHECK(has_event(e0, "sent GS1 ok"), "reported sent on the ack");
    size_t kl = 0;
    const uint8_t *kept = wa_signal_store_skdm_sent(us.st, GROUP, &kl);
    T_CHECK(kept && kl == strlen(PEER) + 1 + strlen(OUR_USER ":5@s.whatsapp.net") + 1 &&
                memmem(kept, kl, PEER, strlen(PEER) + 1),
            "who has our key is kept in the Signal store (a restart does not give it to everyone again)");
    T_CHECK(!wa_signal_store_dirty(us.st), "and it was flushed with the encryption, before the stanza went");

    s0 = nsent;
    T_EQ_INT(wa_messaging_send("GS2", GROUP, "second", NULL, NULL), 0, "a second group send");
    turn();
    const char *wg2[] = {"message:GS2:text"};
    T_SENT(s0, wg2, "goes without asking for members or devices again");
    msg = nsent > s0 ? sent_at(s0) : NULL;
    T_CHECK(msg && niq == 0 && !child_of(msg, "participants"), "the skmsg alone: everyone has the key");
    T_EQ_INT(msg ? open_group(&peer, msg, PEER, "second") : 0, 1, "the member reads it with the key it has");
    const wa_node *old_sk = msg ? child_of(msg, "enc") : NULL;
    group_ack("GS2", NULL);

    /* The peer leaves. */
    wa_messaging_group_changed(GROUP, 1);
    T_CHECK(!wa_signal_store_skdm_sent(us.st, GROUP, &kl) && !wa_signal_store_dirty(us.st),
            "our key is replaced at once (who had the old one forgotten, durably)");
    s0 = nsent;
    T_EQ_INT(wa_messaging_send("GS3", GROUP, "after the peer left", NULL, NULL), 0, "the next send");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "w:g2"), "asks for the members again");
    const char *members2[] = {"15550002@s.whatsapp.net", OUR_USER "@s.whatsapp.net"};
    answer_group(members2, 2);
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "usync") && child_of(iqs[0].n, "usync"),
            "the new member's devices are asked for");
    answer_one_device("15550002@s.whatsapp.net");
    const char *wg3[] = {"message:GS3:text"};
    T_SENT(s0, wg3, "then it goes");
    msg = nsent > s0 ? sent_at(s0) : NULL;
    T_CHECK(msg && enc_for(msg, "15550002@s.whatsapp.net") && enc_for(msg, OUR_USER ":5@s.whatsapp.net") &&
                !enc_for(msg, PEER),
            "the new key to the members, nothing to the one who left");
    T_EQ_INT(msg ? open_group(&peer2, msg, "15550002@s.whatsapp.net", "after the peer left") : 0, 1,
             "the new member reads it");
    T_CHECK(msg && open_group(&peer, msg, NULL, "after the peer left") < 0,
            "the one who left cannot, with the key it had");
    T_CHECK(old_sk && msg && child_of(msg, "enc")->nbytes > 0, "(it could read the one before)");
    group_ack("GS3", "2:XXXXXX");
    s0 = nsent;
    T_EQ_INT(wa_messaging_send("GS4", GROUP, "after a hash mismatch", NULL, NULL), 0,
             "a send after the server's ack "
             "named another hash");
    turn();
    T_CHECK(niq == 1 && !strcmp(attr_of(iqs[0].n, "xmlns"), "w:g2"), "asks for the members again");
    answer_group(members2, 2);
    {
        const wa_node *uq = child_of(iqs[0].n, "usync"), *ul = child_of(uq, "list");
        T_CHECK(niq == 1 && ul && ul->nchildren == 2, "and every member's devices, ours too, in one query");
        wa_arena *ua = wa_arena_new();
        wa_node *iq = wa_node_new(ua, "iq"), *u = wa_node_new(ua, "usync"), *list = wa_node_new(ua, "list");
        const char *d0[] = {"0"}, *d35[] = {"3", "5"};
        wa_node_add_attr(ua, iq, "type", "result");
        usync_user(ua, list, "15550002@s.whatsapp.net", d0, 1, NULL);
        usync_user(ua, list, OUR_USER "@s.whatsapp.net", d35, 2, NULL);
        wa_node_add_child(ua, u, list);
        wa_node_add_child(ua, iq, u);
        answer_iq(0, iq);
        wa_arena_free(ua);
    }
    const char *wg4[] = {"message:GS4:text"};
    T_SENT(s0, wg4, "then it goes");
    msg = nsent > s0 ? sent_at(s0) : NULL;
    T_CHECK(msg && !child_of(msg, "participants"), "the members still have the key: the skmsg alone");
    group_ack("GS4", NULL);
    T_EQ_INT(wa_messaging_send("GS5", "120363999999999999@g.us", "not a member", NULL, NULL), 0,
             "a send to another group");
    turn();
    e0 = app.nevents;
    {
        wa_arena *ea = wa_arena_new();
        wa_node *iq = wa_node_new(ea, "iq"), *gerr = wa_node_new(ea, "error");
        wa_node_add_attr(ea, iq, "type", "error");
        wa_node_add_attr(ea, gerr, "code", "403");
        wa_node_add_attr(ea, gerr, "text", "forbidden");
        wa_node_add_child(ea, iq, gerr);
        answer_iq(0, iq);
        wa_arena_free(ea);
    }
    T_CHECK(app.nevents > e0 && !strncmp(app.events[e0], "sent GS5 failed", 15),
            "a group we are not in (403): the send fails, it is not retried");

    /* 12. Placeholders: our phone is asked to send one again (a peer
     * message to device 0 of our account), and its answer fills it. */
    {
        /* A PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE made by Baileys'
         * encoder: message 3EB0111111111111111111 of 15550009999, "hello
         * again", from "Peer" at 1767225600. */
        static const char answer_hex[] =
            "627910118a017408041216334542304141424243434444454546463030313132321a5822560a540a360a1a3135353530"
            "3030393939394073"
            "2e77686174736170702e6e657410001a1633454230313131313131313131313131313131313131120d0a0b68656c6c6f"
            "20"
            "616761696e1880f2d6ca069a010450656572";
        uint8_t ans[160], *padded = NULL;
        size_t an = strlen(answer_hex) / 2, pl = 0;
        for (size_t i = 0; i < an; i++) {
            unsigned x;
            sscanf(answer_hex + 2 * i, "%2x", &x);
            ans[i] = (uint8_t)x;
        }
        T_CHECK(wa_msg_pad(ans, an, &padded, &pl) == 0, "the phone's answer padded");
        struct ct pa = seal_raw(&myphone, padded, pl), pb = seal_raw(&peer, padded, pl);
        free(padded);
        calls = app.calls;
        s0 = nsent;
        feed(&(struct stanza){.id = "PA1",
                              .from = OUR_USER "@s.whatsapp.net",
                              .category = "peer",
                              .enc_type = pa.type == WA_ENC_PKMSG ? "pkmsg" : "msg",
                              .p = pa.p,
                              .n = pa.n});
        turn();
        T_CHECK(app.calls == calls + 1 && app.n == 1 && app.m[0].fill &&
                    !strcmp(app.m[0].id, "3EB0111111111111111111") &&
                    !strcmp(app.m[0].chat, "15550009999@s.whatsapp.net") && app.m[0].kind == WA_MSG_TEXT &&
                    !strcmp(app.m[0].text, "hello again") && !strcmp(app.m[0].push, "Peer") &&
                    app.m[0].ts == 1767225600 && !app.m[0].from_me,
                "our phone's answer: the message it sent again, to fill its placeholder (id, chat, text, "
                "push name, time)");
        T_EQ_INT(nsent, s0, "not answered before it is stored");
        app_stored("t", NULL);
        const char *wpa[] = {"receipt:PA1:peer_msg", "ack:PA1:text"};
        T_SENT(s0, wpa, "then a peer_msg receipt and the ack");
        calls = app.calls;
        s0 = nsent;
        deliver("PB1", &pb);
        turn();
        T_EQ_INT(app.calls, calls, "the same answer from someone else than our phone: nothing handed over");
        const char *wpb[] = {"receipt:PB1", "ack:PB1:text"};
        T_SENT(s0, wpb, "but answered");
        free(pa.p), free(pb.p);

        /* The request: to our phone alone, marked as a peer message. */
        int ready0 = app.ready, ev0 = app.nevents;
        s0 = nsent;
        T_EQ_INT(
            wa_messaging_placeholder_resend("3EB0222222222222222222", GROUP, 0, "15550002@s.whatsapp.net"), 0,
            "a placeholder resend request is taken");
        turn();
        const wa_node *rq = nsent > s0 ? sent_at(s0) : NULL;
        const wa_node *re = rq ? child_of(rq, "enc") : NULL;
        T_CHECK(rq && !strcmp(rq->tag, "message") && !strcmp(attr_of(rq, "to"), OUR_USER "@s.whatsapp.net") &&
                    !strcmp(attr_of(rq, "type"), "text") && !strcmp(attr_of(rq, "category"), "peer") &&
                    !strcmp(attr_of(rq, "push_priority"), "high_force") && !child_of(rq, "participants") &&
                    re && !strcmp(attr_of(re, "v"), "2") && !attr_of(re, "count")[0],
                "to our phone (device 0), type text, category peer, push_priority high_force, one <enc>");
        const char *rid = rq ? attr_of(rq, "id") : "";
        T_CHECK(strlen(rid) == 22 && !strncmp(rid, "3EB0", 4) && strspn(rid + 4, "0123456789ABCDEF") == 18,
                "with a message id as WhatsApp's clients make them");
        const wa_node *meta = rq ? child_of(rq, "meta") : NULL;
        T_CHECK(meta && !strcmp(attr_of(meta, "appdata"), "default"), "and <meta appdata=default>");
        uint8_t *plain = NULL, *want = NULL;
        size_t plen = 0, wl = 0;
        struct wa_pd_key k = {GROUP, 0, "3EB0222222222222222222", "15550002@s.whatsapp.net"};
        int ok = re && re->content == WA_CONTENT_BYTES &&
                 wa_msg_decrypt(myphone.sc, myphone.g, OUR_USER, OUR_DEV,
                                !strcmp(attr_of(re, "type"), "pkmsg") ? WA_ENC_PKMSG : WA_ENC_MSG, re->bytes,
                                re->nbytes, &plain, &plen) == 0 &&
                 wa_pd_build_placeholder_request(&k, &want, &wl) == 0;
        long ul = ok ? wa_msg_unpad(plain, plen) : -1;
        T_CHECK(ok && ul == (long)wl && !memcmp(plain, want, wl),
                "our phone decrypts the request for the message's key (chat, id, sender)");
        free(plain), free(want);
        ack_from_server(rid);
        T_CHECK(app.ready == ready0 + 1 && app.nevents == ev0,
                "its ack lets the outbox go on; it is no outbox message (nothing reported)");
        T_EQ_INT(wa_messaging_placeholder_resend("", GROUP, 0, NULL), -1, "an empty id: refused");
    }
    drop_link();
    turn();
    free(c1.p), free(c2.p), free(c3.p), free(c4.p), free(c5.p), free(c6.p), free(c7.p), free(c8.p);
    free(c9.p), free(c10.p), free(c11.p), free(c13.p), free(p1.p), free(d1.p), free(l1.p);
    free(bp.p), free(c14.p), free(d2.p);
    event_base_free(evb);
    wa_arena_free(copies);
out:
    party_free(&us);
    party_free(&peer);
    party_free(&peer2);
    party_free(&mydev);
    party_free(&lidp);
    party_free(&mylid);
    party_free(&myphone);
    party_free(&gsend);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    T_DONE();
}
