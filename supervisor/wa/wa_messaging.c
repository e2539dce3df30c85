#include "wa_messaging.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "wa_actions.h"
#include "wa_signal_store.h"

#define MAX_ENC (64u << 10)
#define MAX_QUEUE 4096
/* Past this many queued <message>s the socket is no longer read, so TCP
 * holds the server back instead of a stanza being dropped unacknowledged;
 * reading resumes once the queue is down to QUEUE_RESUME. What one read
 * delivers after the pause still fits below MAX_QUEUE. */
#define QUEUE_PAUSE 1024
#define QUEUE_RESUME 256
/* Incoming messages committed together at most (one statement, one flush). */
#define BATCH_MAX WA_INCOMING_MAX
#define MAX_DEVICES 64
#define MAX_RETRY_RECEIPTS 5
#define SEND_TIMEOUT_S 30
#define RETRY_SLOTS 64
/* Sends whose stanza is written and whose ack has not come yet, at most.
 * The next message is prepared meanwhile: against a server 100-300 ms away,
 * waiting for each ack before the next would cap sending at a few per second. */
#define SEND_WINDOW 16
/* Outgoing messages held at once: the window, the one being prepared and a
 * few accepted ahead, so that the outbox's next claim overlaps the sending. */
#define SEND_CAPACITY (SEND_WINDOW + 8)
/* Resends answering retry receipts that wait for their turn. */
#define MAX_RESENDS 16
/* Device lists from usync are reused for a while, so consecutive sends to a
 * chat skip that round trip. An entry goes early on a devices notification
 * for its user, a retry receipt from one of the user's devices, an ack with
 * an error, and all go when the connection is lost. */
#define DEVCACHE_SLOTS 1024
#define DEVCACHE_TTL_MS (5 * 60 * 1000)

struct qitem {
    wa_arena *a;
    wa_node *n;
};

struct device {
    char user[64], server[32];
    int dev;
    int own; /* one of our other devices */
};

/* A send waiting for its turn: a message from the outbox, or (retry > 0) a
 * resend of one of ours to the one device that could not decrypt it. */
struct send_job {
    char id[64], to_user[64], to_server[32];
    char *text, *reply_to;
    int retry;
    struct device dev; /* retry: the device that asked */
};

/* Encrypted, waiting for the flush of the Signal state before it is written. */
struct outgoing {
    wa_arena *a;
    wa_node *msg;
    char id[64], to_user[64];
    int retry, devices, pkmsg;
};

/* A stanza written whose ack has not come yet. */
struct awaiting {
    char id[64], to_user[64];
    int retry;
    int64_t deadline_ms;
};

/* A prekey bundle from the server, kept until the Signal state may change. */
struct bundle {
    char name[96];
    int dev;
    struct wa_bundle b;
};

struct devcache {
    char user[64], server[32]; /* user[0] == 0: free */
    int64_t fetched_ms;
    uint64_t used; /* least recently used goes first when full */
    int n;
    uint16_t dev[MAX_DEVICES];
};

static struct {
    struct wa_client *c;
    struct event_base *base;
    struct wa_send_events sev;
    void *sarg;
    struct wa_receive_events rev;
    void *rarg;
    int connected;
    /* receive */
    struct qitem q[MAX_QUEUE];
    size_t qhead, qlen;
    int busy;       /* a batch of incoming messages is being committed */
    uint64_t token; /* that batch's, as given to on_incoming */
    int paused;     /* the socket is not read: the queue is long */
    struct {
        char id[64];
        int count;
    } retries[RETRY_SLOTS];
    uint64_t decrypt_failures;
    /* send: the one being prepared (device list, prekeys, encryption) */
    struct {
        int active;
        char id[64], to_user[64], to_server[32];
        char *text, *reply_to;
        struct device devs[MAX_DEVICES];
        int ndevs;
        int retry; /* > 0: a resend for one device that asked (retry receipt), with this count */
        int64_t deadline_ms;
        unsigned gen;
        /* The server's answers are in, but an incoming message is committing:
         * the bundles wait here and the send goes on when the commit ends. */
        int deferred;
        struct bundle *bundles;
        int nbundles;
    } s;
    /* waiting to be prepared, in the order given (stanzas go out in it) */
    struct send_job jobs[SEND_CAPACITY + MAX_RESENDS];
    size_t jhead, jlen;
    int jmsgs; /* of them from the outbox (not resends) */
    /* written, ack awaited, oldest first */
    struct awaiting aw[SEND_WINDOW];
    int naw, awmsgs;
    struct outgoing batch[SEND_WINDOW];
    int nbatch;
    int pumping;
    struct event *send_timer, *pump_ev;
    struct devcache cache[DEVCACHE_SLOTS];
    uint64_t cache_clock;
} M;

int wa_messaging_room(void)
{
    if (!M.connected)
        return 0;
    int held = M.jmsgs + (M.s.active && !M.s.retry) + M.awmsgs;
    for (int i = 0; i < M.nbatch; i++)
        held += !M.batch[i].retry;
    return held < SEND_CAPACITY ? SEND_CAPACITY - held : 0;
}

int wa_messaging_busy(void)
{
    return wa_messaging_room() == 0;
}

int wa_messaging_ready(void)
{
    return M.connected;
}

/* ---- helpers ---- */

/* Own user and device from creds.jid ("user:dev@server"). */
static int own_address(char *user, size_t ucap, int *dev)
{
    const struct wa_creds *cr = wa_client_creds(M.c);
    if (!cr || !cr->jid[0])
        return -1;
    const char *at = strchr(cr->jid, '@'), *colon = strchr(cr->jid, ':');
    if (!at)
        return -1;
    const char *end = colon && colon < at ? colon : at;
    if ((size_t)(end - cr->jid) >= ucap)
        return -1;
    memcpy(user, cr->jid, (size_t)(end - cr->jid));
    user[end - cr->jid] = '\0';
    *dev = colon && colon < at ? atoi(colon + 1) : 0;
    return 0;
}

/* ---- receive ---- */

static void process_next(void);
static void next_turn(void);

static void send_receipt(const wa_node *n, const char *type, const char *recipient)
{
    char fb[128], pb[128];
    const char *id = wa_node_attr_str(n, "id");
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    if (!id || !from)
        return;
    wa_arena *a = wa_arena_new();
    wa_node *r = wa_node_new(a, "receipt");
    wa_jid j;
    wa_node_add_attr(a, r, "id", id);
    if (wa_jid_parse(a, from, &j) == WA_OK)
        wa_node_add_attr_jid(a, r, "to", &j);
    if (participant && wa_jid_parse(a, participant, &j) == WA_OK)
        wa_node_add_attr_jid(a, r, "participant", &j);
    if (recipient && wa_jid_parse(a, recipient, &j) == WA_OK)
        wa_node_add_attr_jid(a, r, "recipient", &j);
    if (type)
        wa_node_add_attr(a, r, "type", type);
    wa_client_send_node(M.c, r);
    wa_arena_free(a);
}

static void send_retry_receipt(const wa_node *n, int count)
{
    char fb[128];
    const char *id = wa_node_attr_str(n, "id");
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    const char *t = wa_node_attr_str(n, "t");
    const struct wa_creds *cr = wa_client_creds(M.c);
    if (!id || !from || !cr)
        return;
    wa_arena *a = wa_arena_new();
    wa_node *r = wa_node_new(a, "receipt");
    wa_jid j;
    wa_node_add_attr(a, r, "id", id);
    if (wa_jid_parse(a, from, &j) == WA_OK)
        wa_node_add_attr_jid(a, r, "to", &j);
    wa_node_add_attr(a, r, "type", "retry");
    wa_node *rt = wa_node_new(a, "retry");
    char cnt[16];
    snprintf(cnt, sizeof cnt, "%d", count);
    wa_node_add_attr(a, rt, "count", cnt);
    wa_node_add_attr(a, rt, "id", id);
    wa_node_add_attr(a, rt, "t", t ? t : "0");
    wa_node_add_attr(a, rt, "v", "1");
    wa_node_add_child(a, r, rt);
    wa_node *reg = wa_node_new(a, "registration");
    uint8_t rb[4] = {(uint8_t)(cr->registration_id >> 24), (uint8_t)(cr->registration_id >> 16),
                     (uint8_t)(cr->registration_id >> 8), (uint8_t)cr->registration_id};
    wa_node_set_bytes(a, reg, rb, 4);
    wa_node_add_child(a, r, reg);
    wa_client_send_node(M.c, r);
    wa_arena_free(a);
}

static int retry_count(const char *id)
{
    int free_slot = -1;
    for (int i = 0; i < RETRY_SLOTS; i++) {
        if (M.retries[i].id[0] && strcmp(M.retries[i].id, id) == 0)
            return ++M.retries[i].count;
        if (!M.retries[i].id[0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        free_slot = (int)(M.decrypt_failures % RETRY_SLOTS);
    snprintf(M.retries[free_slot].id, sizeof M.retries[free_slot].id, "%s", id);
    M.retries[free_slot].count = 1;
    return 1;
}

/* What a message of the batch gets once the batch is committed and its
 * Signal state durable (never before). */
enum answer {
    A_NONE,    /* nothing (no session store: the server resends) */
    A_ACK,     /* the ack alone */
    A_RECEIPT, /* a receipt, then the ack */
    A_RETRY    /* a retry receipt (when count > 0), then the ack */
};

struct inmsg {
    enum answer answer;
    int sender_receipt;  /* <receipt type=sender>: one of our other devices sent it */
    char recipient[128]; /* ... naming this chat ("" none) */
    int retry;           /* the retry receipt's count */
    int sql;             /* its place among the messages handed over; -1 none */
    /* what is handed over (strings of the stanza live in its arena) */
    const char *id, *push_name;
    char chat[128], sender[128], lid[128];
    int from_me;
    int64_t ts;
    struct wa_msg_content mc; /* owned */
};

/* The batch: the first nb stanzas of the queue; nsql of them are handed to
 * the application. */
static struct inmsg B[BATCH_MAX];
static int nb, nsql, broken;

/* Frees the first n stanzas of the queue. */
static void drop_items(size_t n)
{
    while (n-- > 0 && M.qlen > 0) {
        struct qitem *it = &M.q[M.qhead];
        wa_arena_free(it->a);
        it->a = NULL;
        M.qhead = (M.qhead + 1) % MAX_QUEUE;
        M.qlen--;
    }
    if (M.paused && M.qlen <= QUEUE_RESUME) {
        M.paused = 0;
        wa_client_pause(M.c, 0);
    }
}

static void answer(const struct inmsg *im, const wa_node *n)
{
    switch (im->answer) {
    case A_NONE:
        return;
    case A_ACK:
        break;
    case A_RECEIPT:
        send_receipt(n, im->sender_receipt ? "sender" : NULL, im->recipient[0] ? im->recipient : NULL);
        break;
    case A_RETRY:
        if (im->retry > 0)
            send_retry_receipt(n, im->retry);
        break;
    }
    wa_client_ack(M.c, n);
}

/* The batch ends: answered when stored (applied: one 't' or 'f' per
 * element), else forgotten so that the server's resend decrypts again. */
static void batch_end(const char *applied, const char *err)
{
    char ferr[256];
    struct wa_signal sig;
    int have_sig = wa_client_signal(M.c, &sig) == 0;
    const char *first = wa_node_attr_str(M.q[M.qhead].n, "id");
    if (!applied) {
        /* Not stored: forget the decryptions, and make the server resend by
         * reconnecting. */
        log_error("cannot store incoming messages; not acknowledging them", LF_I("messages", nb),
                  LF_S("first_id", first), LF_S("error", err));
        if (have_sig && wa_signal_store_reload(sig.st, ferr, sizeof ferr) < 0)
            log_error("cannot reload the Signal store", LF_S("error", ferr));
        wa_client_reconnect(M.c, "incoming messages not stored");
    } else if (have_sig && wa_signal_store_flush(sig.st, ferr, sizeof ferr) < 0) {
        log_error("cannot store the Signal state", LF_S("error", ferr));
    }
    for (int i = 0; i < nb; i++) {
        struct inmsg *im = &B[i];
        const wa_node *n = M.q[(M.qhead + (size_t)i) % MAX_QUEUE].n;
        if (applied)
            answer(im, n);
        wa_msg_content_free(&im->mc);
    }
    drop_items((size_t)nb);
    nb = nsql = 0;
    M.busy = 0;
}

void wa_messaging_stored(uint64_t token, const char *applied, const char *err)
{
    if (!M.busy || token != M.token || nsql == 0) {
        log_error("incoming batch answered twice or unknown; ignored", LF_I("token", (long long)token));
        return;
    }
    if (applied && (strlen(applied) != (size_t)nsql || strspn(applied, "tf") != (size_t)nsql)) {
        applied = NULL; /* not the answer asked for: treated as not stored */
        err = "the answer does not match the batch";
    }
    batch_end(applied, err ? err : "not stored");
    next_turn();
}

/* A message of the batch to hand over; takes mc. */
static void add_element(struct inmsg *im, const char *id, const char *chat, const char *sender, int from_me,
                        int64_t ts, const char *push_name, const char *lid, struct wa_msg_content *mc)
{
    im->id = id;
    snprintf(im->chat, sizeof im->chat, "%s", chat);
    snprintf(im->sender, sizeof im->sender, "%s", sender ? sender : "");
    snprintf(im->lid, sizeof im->lid, "%s", lid ? lid : "");
    im->push_name = push_name;
    im->from_me = from_me;
    im->ts = ts;
    im->mc = *mc;
    memset(mc, 0, sizeof *mc);
    im->sql = nsql++;
}

/* The stanza's t (Unix seconds), or now when absent or not a plausible time:
 * one value PostgreSQL refuses would fail every message of its batch. */
static int64_t stanza_time(const char *t)
{
    char *end;
    long long v = t ? strtoll(t, &end, 10) : 0;
    if (!t || !*t || *end || v <= 0 || v > 32503680000LL) /* year 3000 */
        return (int64_t)time(NULL);
    return (int64_t)v;
}

/* The attribute key as "user@server" (device dropped) when it is a JID on server; else NULL. */
static const char *alt_jid(const wa_node *n, wa_arena *a, const char *key, const char *server, char *buf,
                           size_t len)
{
    char tb[128];
    const char *v = wa_node_attr_text(n, key, tb, sizeof tb);
    wa_jid j;
    if (!v || wa_jid_parse(a, v, &j) != WA_OK || strcmp(j.server, server) != 0 || !j.user[0] ||
        strlen(j.user) > 32)
        return NULL;
    for (const char *c = j.user; *c; c++)
        if (*c < '0' || *c > '9')
            return NULL;
    snprintf(buf, len, "%s@%s", j.user, j.server);
    return buf;
}

/* Group, broadcast and newsletter messages use sender keys, which are not
 * supported yet: each is still stored (type unsupported, subtype naming the
 * kind of chat, sender from participant) before its receipt and ack, so
 * nothing acknowledged is lost and the API shows that it came. */
static void store_undecryptable_group(struct inmsg *im, wa_node *n, wa_arena *a, const char *id,
                                      const char *from, const wa_jid *fj, const char *own_user, const char *t,
                                      const char *notify)
{
    char pb[128], sender[128] = "";
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    wa_jid pj;
    if (participant && wa_jid_parse(a, participant, &pj) == WA_OK && pj.user[0])
        snprintf(sender, sizeof sender, "%s@%s", pj.user, pj.server);
    int from_me =
        sender[0] && strncmp(sender, own_user, strlen(own_user)) == 0 && sender[strlen(own_user)] == '@';
    const char *kind = !strcmp(fj->server, "g.us")         ? "group_message"
                       : !strcmp(fj->server, "broadcast")  ? "broadcast_message"
                       : !strcmp(fj->server, "newsletter") ? "newsletter_message"
                                                           : "other_message";
    char chat[128];
    snprintf(chat, sizeof chat, "%s@%s", fj->user, fj->server);
    log_info("message in a group or broadcast: stored as unsupported (sender keys are not supported yet)",
             LF_S("id", id), LF_S("from", from));
    struct wa_msg_content mc = {.kind = WA_MSG_UNSUPPORTED, .subtype = strdup(kind)};
    im->answer = A_RECEIPT;
    if (!mc.subtype) {
        broken = 1;
        return;
    }
    add_element(im, id, chat, sender[0] ? sender : NULL, from_me, stanza_time(t), from_me ? NULL : notify,
                NULL, &mc);
}

/* Decrypts one stanza of the batch and says what it gets: an element of the
 * batch's statement and the answer for after the commit. Its Signal state
 * changes are kept for the batch's flush, or undone when it fails. */
static void prepare(struct inmsg *im, wa_node *n, wa_arena *a)
{
    char fb[128], rb[128], own_user[64];
    int own_dev = 0;
    const char *id = wa_node_attr_str(n, "id");
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    const char *recipient = wa_node_attr_text(n, "recipient", rb, sizeof rb);
    const char *t = wa_node_attr_str(n, "t");
    const char *notify = wa_node_attr_str(n, "notify");
    wa_jid fj;
    if (!id || !*id || strlen(id) >= 64 || !from || wa_jid_parse(a, from, &fj) != WA_OK ||
        own_address(own_user, sizeof own_user, &own_dev) < 0) {
        log_warn("message stanza without a usable id or sender; acknowledged and dropped");
        im->answer = A_ACK;
        return;
    }
    if (strcmp(fj.server, "s.whatsapp.net") != 0 && strcmp(fj.server, "lid") != 0) {
        store_undecryptable_group(im, n, a, id, from, &fj, own_user, t, notify);
        return;
    }
    struct wa_signal sig;
    if (wa_client_signal(M.c, &sig) < 0)
        return;                   /* A_NONE */
    wa_signal_store_mark(sig.st); /* what this one changes, undone alone if it fails */
    char name[96];
    wa_msg_address_name(fj.user, fj.server, name, sizeof name);
    uint8_t *plain = NULL;
    size_t plen = 0;
    int rc = 1, any = 0;
    const char *why = "no <enc> for this device";
    if (n->content == WA_CONTENT_LIST)
        for (uint32_t i = 0; i < n->nchildren && rc != 0; i++) {
            const wa_node *e = n->children[i];
            if (strcmp(e->tag, "enc") != 0)
                continue;
            const char *v = wa_node_attr_str(e, "v"), *et = wa_node_attr_str(e, "type");
            if (!et || (strcmp(et, "pkmsg") && strcmp(et, "msg"))) {
                why = "unsupported <enc> type (sender keys are not supported yet)";
                continue;
            }
            if (!v || strcmp(v, "2") || e->content != WA_CONTENT_BYTES || e->nbytes == 0 ||
                e->nbytes > MAX_ENC) {
                why = "malformed <enc>";
                continue;
            }
            any = 1;
            rc = wa_msg_decrypt(sig.sc, sig.g, name, fj.device,
                                strcmp(et, "pkmsg") == 0 ? WA_ENC_PKMSG : WA_ENC_MSG, e->bytes, e->nbytes,
                                &plain, &plen);
        }
    if (rc == SG_ERR_DUPLICATE_MESSAGE) {
        /* Decrypted and committed before (state is flushed only after the
         * commit), or earlier in this batch (then its answer, like every
         * answer, waits for the commit): the server resent it because the
         * ack did not arrive. */
        log_info("incoming message seen before; acknowledging again", LF_S("id", id));
        im->answer = A_RECEIPT;
        return;
    }
    long ulen = rc == 0 ? wa_msg_unpad(plain, plen) : -1;
    struct wa_msg_content mc;
    if (rc != 0 || ulen < 0 || wa_msg_parse(plain, (size_t)ulen, &mc) < 0) {
        if (plain) {
            OPENSSL_cleanse(plain, plen);
            free(plain);
        }
        /* Nothing of this one is kept; the others of the batch are. */
        if (wa_signal_store_rollback(sig.st) < 0)
            broken = 1; /* out of memory: the whole batch is forgotten */
        M.decrypt_failures++;
        if (M.rev.on_undecryptable)
            M.rev.on_undecryptable(M.rarg, id, from);
        int cnt = retry_count(id);
        log_warn("cannot decrypt an incoming message", LF_S("id", id), LF_S("from", from),
                 LF_S("why", rc == 0 ? "bad padding or not a Message"
                             : any   ? "decryption failed"
                                     : why),
                 LF_I("code", rc), LF_I("retry", cnt), LF_I("failures_total", (long long)M.decrypt_failures));
        im->answer = A_RETRY;
        im->retry = any && cnt <= MAX_RETRY_RECEIPTS ? cnt : 0;
        return;
    }
    OPENSSL_cleanse(plain, plen);
    free(plain);
    int from_me = strcmp(fj.user, own_user) == 0;
    char chat[128], sender[128], lid[128] = "";
    snprintf(sender, sizeof sender, "%s@%s", fj.user, fj.server);
    if (from_me) {
        const char *dest = mc.dsm_dest ? mc.dsm_dest : recipient;
        wa_jid dj;
        if (!dest || wa_jid_parse(a, dest, &dj) != WA_OK)
            snprintf(chat, sizeof chat, "%s", sender);
        else
            snprintf(chat, sizeof chat, "%s@%s", dj.user, dj.server);
    } else {
        /* Phone number and LID of the sender, as far as the stanza tells:
         * the chat is keyed by the phone number whenever it is known. */
        char alt[128];
        int from_lid = strcmp(fj.server, "lid") == 0;
        const char *other = alt_jid(n, a, from_lid ? "sender_pn" : "sender_lid",
                                    from_lid ? "s.whatsapp.net" : "lid", alt, sizeof alt);
        if (from_lid) {
            snprintf(lid, sizeof lid, "%s", sender);
            if (other)
                snprintf(sender, sizeof sender, "%s", other);
        } else if (other) {
            snprintf(lid, sizeof lid, "%s", other);
        }
        snprintf(chat, sizeof chat, "%s", sender);
    }
    im->answer = A_RECEIPT;
    im->sender_receipt = from_me;
    if (mc.kind != WA_MSG_NONE) {
        if (from_me)
            snprintf(im->recipient, sizeof im->recipient, "%s", chat);
        add_element(im, id, chat, sender, from_me, stanza_time(t), from_me ? NULL : notify,
                    lid[0] ? lid : NULL, &mc);
    }
    wa_msg_content_free(&mc);
}

/* The Signal store has one flush for everything that changed, so receiving
 * and sending take turns on it: incoming messages' state (decrypted, their
 * commit in flight) must not be made durable by a send's flush before the
 * commit (a failed commit reloads the store so that the resends decrypt
 * again), and a send's ratchet steps must not be dropped by that reload.
 * A send changes the Signal state only in synchronous steps that end with
 * its flush, and only while no incoming batch is committing; it never holds
 * the turn while it waits for the server (device list, prekeys), so incoming
 * messages are committed and acknowledged meanwhile. */
static int send_holds_store(void);

/* Takes what has arrived (up to BATCH_MAX stanzas) as one batch: each
 * decrypted in order, one statement (one transaction) for all, then one
 * flush of the Signal state, then every receipt and ack. One batch at a
 * time: the next one is what arrived meanwhile, so the time from a message's
 * arrival to its ack stays near two commits however fast they come. */
static void process_next(void)
{
    if (M.busy || send_holds_store() || M.qlen == 0)
        return;
    if (!M.connected) {
        drop_items(M.qlen); /* the server resends what was not acknowledged */
        return;
    }
    M.busy = 1;
    nb = (int)(M.qlen < BATCH_MAX ? M.qlen : BATCH_MAX);
    nsql = broken = 0;
    for (int i = 0; i < nb; i++) {
        struct qitem *it = &M.q[(M.qhead + (size_t)i) % MAX_QUEUE];
        memset(&B[i], 0, sizeof B[i]);
        B[i].sql = -1;
        prepare(&B[i], it->n, it->a);
    }
    struct wa_signal sig;
    if (wa_client_signal(M.c, &sig) == 0)
        wa_signal_store_unmark(sig.st);
    if (broken) {
        batch_end(NULL, "out of memory");
        next_turn();
        return;
    }
    if (nsql == 0) {
        /* Nothing to store: flushed and answered now; the next turn on the loop. */
        batch_end("", NULL);
        event_active(M.pump_ev, EV_TIMEOUT, 0);
        return;
    }
    struct wa_incoming in[BATCH_MAX];
    for (int i = 0; i < nb; i++) {
        const struct inmsg *im = &B[i];
        if (im->sql < 0)
            continue;
        in[im->sql] =
            (struct wa_incoming){im->id, im->chat,      im->sender[0] ? im->sender : NULL, im->from_me,
                                 im->ts, im->push_name, im->lid[0] ? im->lid : NULL,       &im->mc};
    }
    /* The answer may come from within the call. */
    uint64_t token = ++M.token;
    if (!M.rev.on_incoming || M.rev.on_incoming(M.rarg, in, nsql, token) < 0)
        wa_messaging_stored(token, NULL, "the application did not take the messages");
}

/* ---- send ---- */

static void pump(void);
static void batch_flush(void);
static void continue_send(void);

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- device lists -- */

static struct devcache *cache_find(const char *user, const char *server)
{
    int64_t now = mono_ms();
    for (int i = 0; i < DEVCACHE_SLOTS; i++) {
        struct devcache *e = &M.cache[i];
        if (!e->user[0] || strcmp(e->user, user) || strcmp(e->server, server))
            continue;
        if (now - e->fetched_ms >= DEVCACHE_TTL_MS) {
            e->user[0] = '\0';
            return NULL;
        }
        e->used = ++M.cache_clock;
        return e;
    }
    return NULL;
}

static void cache_put(const char *user, const char *server, const uint16_t *dev, int n)
{
    if (n <= 0 || n > MAX_DEVICES || strlen(user) >= sizeof M.cache[0].user ||
        strlen(server) >= sizeof M.cache[0].server)
        return;
    struct devcache *slot = NULL;
    for (int i = 0; i < DEVCACHE_SLOTS; i++) {
        struct devcache *e = &M.cache[i];
        if (e->user[0] && !strcmp(e->user, user) && !strcmp(e->server, server)) {
            slot = e;
            break;
        }
        if (!slot || (slot->user[0] && (!e->user[0] || e->used < slot->used)))
            slot = e;
    }
    snprintf(slot->user, sizeof slot->user, "%s", user);
    snprintf(slot->server, sizeof slot->server, "%s", server);
    slot->fetched_ms = mono_ms();
    slot->used = ++M.cache_clock;
    slot->n = n;
    memcpy(slot->dev, dev, (size_t)n * sizeof *dev);
}

/* Every server's entry of this user (a phone number and its LID share none,
 * but a user seen under two servers loses both). */
static void cache_forget(const char *user)
{
    for (int i = 0; i < DEVCACHE_SLOTS; i++)
        if (M.cache[i].user[0] && !strcmp(M.cache[i].user, user))
            M.cache[i].user[0] = '\0';
}

static void cache_clear(void)
{
    for (int i = 0; i < DEVCACHE_SLOTS; i++)
        M.cache[i].user[0] = '\0';
}

static void add_devices(const struct devcache *e, int own, int own_dev)
{
    for (int k = 0; k < e->n && M.s.ndevs < MAX_DEVICES; k++) {
        if (own && e->dev[k] == own_dev)
            continue; /* ourselves */
        struct device *x = &M.s.devs[M.s.ndevs++];
        snprintf(x->user, sizeof x->user, "%s", e->user);
        snprintf(x->server, sizeof x->server, "%s", e->server);
        x->dev = e->dev[k];
        x->own = own;
    }
}

/* The devices of the recipient and of our account from the cache: the
 * number of the recipient's, or -1 when either list is not known. */
static int devices_from_cache(const char *own_user, int own_dev)
{
    struct devcache *r = cache_find(M.s.to_user, M.s.to_server);
    int self = strcmp(M.s.to_user, own_user) == 0;
    struct devcache *o = self ? r : cache_find(own_user, "s.whatsapp.net");
    if (!r || !o)
        return -1;
    M.s.ndevs = 0;
    add_devices(r, self, own_dev);
    int nrecipient = self ? 0 : M.s.ndevs;
    if (!self)
        add_devices(o, 1, own_dev);
    return nrecipient;
}

/* -- the window of sends awaiting their ack -- */

static void arm_timer(void)
{
    int64_t next = INT64_MAX;
    if (M.s.active)
        next = M.s.deadline_ms;
    for (int i = 0; i < M.naw; i++)
        if (M.aw[i].deadline_ms < next)
            next = M.aw[i].deadline_ms;
    if (next == INT64_MAX) {
        evtimer_del(M.send_timer);
        return;
    }
    int64_t d = next - mono_ms();
    if (d < 0)
        d = 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    evtimer_add(M.send_timer, &tv);
}

/* The outcome of one send: to the outbox, or (a resend) only logged. */
static void report(const char *id, int retry, enum wa_send_result r, const char *err)
{
    if (retry) {
        /* The message itself was sent before: its status does not change. */
        log_info("message resent after a retry receipt", LF_S("id", id), LF_I("ok", r == WA_SEND_OK),
                 LF_S("why", err ? err : ""));
        if (M.sev.on_ready)
            M.sev.on_ready(M.sarg); /* the outbox may go on */
        return;
    }
    if (M.sev.on_sent)
        M.sev.on_sent(M.sarg, id, r, err);
}

static void clear_prep(void)
{
    M.s.active = 0;
    M.s.retry = 0;
    M.s.deferred = 0;
    if (M.s.bundles)
        OPENSSL_cleanse(M.s.bundles, (size_t)M.s.nbundles * sizeof *M.s.bundles);
    free(M.s.bundles);
    M.s.bundles = NULL;
    M.s.nbundles = 0;
    M.s.gen++;
    free(M.s.text);
    free(M.s.reply_to);
    M.s.text = M.s.reply_to = NULL;
}

/* The message being prepared ends before its stanza was written. */
static void send_done(enum wa_send_result r, const char *err)
{
    if (!M.s.active)
        return;
    char id[64];
    snprintf(id, sizeof id, "%s", M.s.id);
    int retry = M.s.retry;
    clear_prep();
    arm_timer();
    report(id, retry, r, err);
    pump();
}

/* Its stanza is written: the ack is awaited in the window, the next may start. */
/* The encrypted stanzas of the batch go out, in order, after one flush of
 * the Signal state: the ratchet steps are durable before the ciphertexts
 * leave, and one write (with its fsync) serves a burst. */
static void batch_flush(void)
{
    if (!M.nbatch)
        return;
    struct wa_signal sig;
    char ferr[200];
    int stored = wa_client_signal(M.c, &sig) == 0 && wa_signal_store_flush(sig.st, ferr, sizeof ferr) == 0;
    if (!stored)
        log_error("cannot store the Signal state; not sending", LF_S("error", ferr));
    int n = M.nbatch;
    M.nbatch = 0;
    for (int i = 0; i < n; i++) {
        struct outgoing *o = &M.batch[i];
        int r = stored ? wa_client_send_node(M.c, o->msg) : -1;
        wa_arena_free(o->a);
        o->a = NULL;
        if (!stored) {
            report(o->id, o->retry, WA_SEND_TRANSIENT, "session store write failed");
            continue;
        }
        if (r < 0) {
            report(o->id, o->retry, WA_SEND_LOST, "connection lost while sending");
            continue;
        }
        struct awaiting *w = &M.aw[M.naw++];
        snprintf(w->id, sizeof w->id, "%s", o->id);
        snprintf(w->to_user, sizeof w->to_user, "%s", o->to_user);
        w->retry = o->retry;
        w->deadline_ms = mono_ms() + SEND_TIMEOUT_S * 1000;
        M.awmsgs += !w->retry;
        log_info("message sent to the server", LF_S("id", o->id), LF_I("devices", o->devices),
                 LF_I("pkmsg", o->pkmsg), LF_I("awaiting_ack", M.naw), LF_I("batch", n));
    }
}

/* Takes entry i out of the window (its copy in *out). */
static void window_take(int i, struct awaiting *out)
{
    *out = M.aw[i];
    memmove(&M.aw[i], &M.aw[i + 1], (size_t)(M.naw - i - 1) * sizeof M.aw[0]);
    M.naw--;
    M.awmsgs -= !out->retry;
}

static void on_send_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int64_t now = mono_ms();
    for (int i = 0; i < M.naw;) {
        if (M.aw[i].deadline_ms > now) {
            i++;
            continue;
        }
        struct awaiting w;
        window_take(i, &w);
        log_warn("no ack from the server in time", LF_S("id", w.id));
        report(w.id, w.retry, WA_SEND_TRANSIENT, "no ack from the server in time");
    }
    if (M.s.active && M.s.deadline_ms <= now)
        send_done(WA_SEND_TRANSIENT, "no answer from the server in time");
    arm_timer();
    pump();
}

static void dev_jid(const struct device *d, char *buf, size_t cap)
{
    if (d->dev)
        snprintf(buf, cap, "%s:%d@%s", d->user, d->dev, d->server);
    else
        snprintf(buf, cap, "%s@%s", d->user, d->server);
}

/* Encrypts for every device with a session and writes the stanza; ends the
 * preparation either way (the next may start inside, so nothing of M.s is
 * touched after). */
static void encrypt_and_send(void)
{
    struct wa_signal sig;
    if (wa_client_signal(M.c, &sig) < 0) {
        send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    char to[128];
    snprintf(to, sizeof to, "%s@%s", M.s.to_user, M.s.to_server);
    uint8_t *plain = NULL, *dsm = NULL;
    size_t plen = 0, dlen = 0;
    if (wa_msg_build_text(M.s.text, M.s.reply_to, NULL, NULL, &plain, &plen) < 0 ||
        wa_msg_build_text(M.s.text, M.s.reply_to, NULL, to, &dsm, &dlen) < 0) {
        free(plain);
        send_done(WA_SEND_FAILED, "cannot build the message");
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *msg = wa_node_new(a, "message");
    wa_node *parts = wa_node_new(a, "participants");
    wa_jid j;
    wa_node_add_attr(a, msg, "id", M.s.id);
    if (M.s.retry && M.s.ndevs == 1)
        dev_jid(&M.s.devs[0], to, sizeof to);
    wa_jid_parse(a, to, &j);
    wa_node_add_attr_jid(a, msg, "to", &j);
    wa_node_add_attr(a, msg, "type", "text");
    int any_pk = 0, nto = 0, nrecipient = 0;
    for (int i = 0; i < M.s.ndevs; i++) {
        struct device *d = &M.s.devs[i];
        char name[96], dj[160];
        wa_msg_address_name(d->user, d->server, name, sizeof name);
        if (!wa_signal_store_has_session(sig.st, name, d->dev))
            continue;
        uint8_t *padded = NULL, *ct = NULL;
        size_t pl = 0, cl = 0;
        int type = 0;
        if (wa_msg_pad(d->own ? dsm : plain, d->own ? dlen : plen, &padded, &pl) < 0)
            continue;
        int r = wa_msg_encrypt(sig.sc, sig.g, name, d->dev, padded, pl, &type, &ct, &cl);
        OPENSSL_cleanse(padded, pl);
        free(padded);
        if (r != 0) {
            log_warn("cannot encrypt for a device", LF_S("id", M.s.id), LF_I("device", d->dev),
                     LF_I("code", r));
            continue;
        }
        dev_jid(d, dj, sizeof dj);
        wa_node *tn = wa_node_new(a, "to");
        wa_jid_parse(a, dj, &j);
        wa_node_add_attr_jid(a, tn, "jid", &j);
        wa_node *en = wa_node_new(a, "enc");
        wa_node_add_attr(a, en, "v", "2");
        wa_node_add_attr(a, en, "type", type == WA_ENC_PKMSG ? "pkmsg" : "msg");
        wa_node_set_bytes(a, en, ct, cl);
        free(ct);
        if (M.s.retry) {
            char cnt[16];
            snprintf(cnt, sizeof cnt, "%d", M.s.retry);
            wa_node_add_attr(a, en, "count", cnt);
            /* A resend goes to the one device, without <participants>. */
            wa_node_add_child(a, msg, en);
        } else {
            wa_node_add_child(a, tn, en);
            wa_node_add_child(a, parts, tn);
        }
        any_pk |= type == WA_ENC_PKMSG;
        nto++;
        nrecipient += !d->own;
    }
    OPENSSL_cleanse(plain, plen);
    OPENSSL_cleanse(dsm, dlen);
    free(plain);
    free(dsm);
    if (M.s.retry ? nto == 0 : nrecipient == 0) {
        wa_arena_free(a);
        char ferr[200];
        /* Forget what encrypting this one changed, unless encrypted stanzas
         * wait for their flush: then it is kept (a skipped ratchet step). */
        if (M.nbatch)
            batch_flush();
        else
            wa_signal_store_reload(sig.st, ferr, sizeof ferr);
        send_done(WA_SEND_FAILED, "no device of the recipient could be reached");
        return;
    }
    if (!M.s.retry)
        wa_node_add_child(a, msg, parts);
    const struct wa_creds *cr = wa_client_creds(M.c);
    if (any_pk && cr && cr->account_len) {
        wa_node *di = wa_node_new(a, "device-identity");
        wa_node_set_bytes(a, di, cr->account, cr->account_len);
        wa_node_add_child(a, msg, di);
    }
    struct outgoing *o = &M.batch[M.nbatch++];
    o->a = a;
    o->msg = msg;
    snprintf(o->id, sizeof o->id, "%s", M.s.id);
    snprintf(o->to_user, sizeof o->to_user, "%s", M.s.to_user);
    o->retry = M.s.retry;
    o->devices = nto;
    o->pkmsg = any_pk;
    clear_prep();
    /* Inside pump() the next ready ones join this batch; the loop flushes. */
    if (!M.pumping) {
        batch_flush();
        arm_timer();
        pump();
    }
}

static uint32_t be(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static const wa_node *bytes_of(const wa_node *n, const char *tag, size_t len)
{
    const wa_node *c = n ? wa_node_child(n, tag) : NULL;
    return c && c->content == WA_CONTENT_BYTES && c->nbytes == len ? c : NULL;
}

static void on_prekeys(void *arg, const wa_node *n)
{
    if ((unsigned)(uintptr_t)arg != M.s.gen || !M.s.active)
        return;
    if (!n) {
        M.connected = 0; /* nothing more starts before on_disconnect hands the rest back */
        send_done(WA_SEND_LOST, "connection lost while fetching prekeys");
        return;
    }
    const wa_node *list = wa_node_child(n, "list");
    const char *type = wa_node_attr_str(n, "type");
    if (!type || strcmp(type, "result") != 0 || !list || list->content != WA_CONTENT_LIST) {
        send_done(WA_SEND_TRANSIENT, "prekey query failed");
        return;
    }
    /* Kept, not applied: the Signal state may be in use by a commit. */
    M.s.bundles = list->nchildren ? calloc(list->nchildren, sizeof *M.s.bundles) : NULL;
    if (list->nchildren && !M.s.bundles) {
        send_done(WA_SEND_TRANSIENT, "out of memory");
        return;
    }
    M.s.nbundles = 0;
    wa_arena *a = wa_arena_new();
    for (uint32_t i = 0; i < list->nchildren; i++) {
        const wa_node *u = list->children[i];
        char jb[128];
        const char *jid = wa_node_attr_text(u, "jid", jb, sizeof jb);
        wa_jid j;
        if (strcmp(u->tag, "user") || !jid || wa_jid_parse(a, jid, &j) != WA_OK || wa_node_child(u, "error"))
            continue;
        const wa_node *reg = bytes_of(u, "registration", 4), *ident = bytes_of(u, "identity", 32);
        const wa_node *sk = wa_node_child(u, "skey"), *k = wa_node_child(u, "key");
        const wa_node *skid = bytes_of(sk, "id", 3), *skv = bytes_of(sk, "value", 32),
                      *sks = bytes_of(sk, "signature", 64);
        const wa_node *kid = bytes_of(k, "id", 3), *kv = bytes_of(k, "value", 32);
        if (!reg || !ident || !skid || !skv || !sks) {
            log_warn("prekey bundle incomplete", LF_S("jid", jid));
            continue;
        }
        struct wa_bundle b = {0};
        b.registration_id = be(reg->bytes, 4);
        memcpy(b.identity, ident->bytes, 32);
        b.spk_id = be(skid->bytes, 3);
        memcpy(b.spk, skv->bytes, 32);
        memcpy(b.spk_sig, sks->bytes, 64);
        if (kid && kv) {
            b.has_prekey = 1;
            b.prekey_id = be(kid->bytes, 3);
            memcpy(b.prekey, kv->bytes, 32);
        }
        struct bundle *x = &M.s.bundles[M.s.nbundles++];
        wa_msg_address_name(j.user, j.server, x->name, sizeof x->name);
        x->dev = j.device;
        x->b = b;
        OPENSSL_cleanse(&b, sizeof b);
    }
    wa_arena_free(a);
    if (M.busy) {
        M.s.deferred = 1; /* next_turn() goes on */
        return;
    }
    continue_send();
}

/* The server's answers are in and no incoming message is committing: the
 * sessions from the bundles are made, then the message is encrypted and
 * written, all before the loop turns. */
static void continue_send(void)
{
    M.s.deferred = 0;
    struct wa_signal sig;
    if (wa_client_signal(M.c, &sig) < 0) {
        send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    if (M.s.retry) {
        /* The recipient lost our session: a new one from the fresh bundle.
         * Done here, in turn, so no message queued before it is encrypted
         * on the new session ahead of it. */
        char name[96];
        wa_msg_address_name(M.s.devs[0].user, M.s.devs[0].server, name, sizeof name);
        signal_protocol_address addr = {name, strlen(name), M.s.devs[0].dev};
        signal_protocol_session_delete_session(sig.sc, &addr);
    }
    for (int i = 0; i < M.s.nbundles; i++) {
        struct bundle *x = &M.s.bundles[i];
        int r = wa_msg_session_from_bundle(sig.sc, sig.g, x->name, x->dev, &x->b);
        if (r != 0)
            log_warn("prekey bundle refused", LF_S("address", x->name), LF_I("device", x->dev),
                     LF_I("code", r));
    }
    if (M.s.bundles)
        OPENSSL_cleanse(M.s.bundles, (size_t)M.s.nbundles * sizeof *M.s.bundles);
    free(M.s.bundles);
    M.s.bundles = NULL;
    M.s.nbundles = 0;
    encrypt_and_send();
}

static void fetch_prekeys_or_send(void)
{
    struct wa_signal sig;
    if (wa_client_signal(M.c, &sig) < 0) {
        send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "xmlns", "encrypt");
    wa_node_add_attr(a, iq, "type", "get");
    wa_node *key = wa_node_new(a, "key");
    int need = 0;
    for (int i = 0; i < M.s.ndevs; i++) {
        char name[96], dj[160];
        wa_msg_address_name(M.s.devs[i].user, M.s.devs[i].server, name, sizeof name);
        /* A resend always starts a new session from a fresh bundle. */
        if (!M.s.retry && wa_signal_store_has_session(sig.st, name, M.s.devs[i].dev))
            continue;
        dev_jid(&M.s.devs[i], dj, sizeof dj);
        wa_node *u = wa_node_new(a, "user");
        wa_jid j;
        wa_jid_parse(a, dj, &j);
        wa_node_add_attr_jid(a, u, "jid", &j);
        wa_node_add_child(a, key, u);
        need++;
    }
    wa_node_add_child(a, iq, key);
    if (need == 0) {
        wa_arena_free(a);
        if (M.busy)
            M.s.deferred = 1; /* the device list came while a message commits: next_turn() goes on */
        else
            continue_send();
        return;
    }
    int r = wa_client_iq(M.c, a, iq, on_prekeys, (void *)(uintptr_t)M.s.gen);
    wa_arena_free(a);
    if (r < 0)
        send_done(WA_SEND_LOST, "not connected");
}

/* A usync <user jid=phone><lid val=user@lid/>: the phone number <-> LID mapping. */
static void remember_lid(const wa_node *u, wa_arena *a, const wa_jid *j)
{
    char lb[128], pn[128];
    const wa_node *l = wa_node_child(u, "lid");
    if (!l || strcmp(j->server, "s.whatsapp.net") != 0 || !alt_jid(l, a, "val", "lid", lb, sizeof lb))
        return;
    snprintf(pn, sizeof pn, "%s@s.whatsapp.net", j->user);
    if (M.rev.on_lid)
        M.rev.on_lid(M.rarg, pn, lb);
}

static void on_usync(void *arg, const wa_node *n)
{
    if ((unsigned)(uintptr_t)arg != M.s.gen || !M.s.active)
        return;
    if (!n) {
        M.connected = 0; /* nothing more starts before on_disconnect hands the rest back */
        send_done(WA_SEND_LOST, "connection lost while listing devices");
        return;
    }
    const wa_node *list = wa_usync_list(n);
    if (!list) {
        send_done(WA_SEND_TRANSIENT, "device list query failed");
        return;
    }
    char own_user[64];
    int own_dev = 0;
    own_address(own_user, sizeof own_user, &own_dev);
    M.s.ndevs = 0;
    int recipient_found = 0;
    wa_arena *a = wa_arena_new();
    for (uint32_t i = 0; i < list->nchildren; i++) {
        const wa_node *u = list->children[i];
        char jb[128];
        const char *jid = wa_node_attr_text(u, "jid", jb, sizeof jb);
        wa_jid j;
        if (strcmp(u->tag, "user") || !jid || wa_jid_parse(a, jid, &j) != WA_OK || strlen(j.user) >= 64 ||
            strlen(j.server) >= 32)
            continue;
        remember_lid(u, a, &j);
        const wa_node *devs = wa_node_child(u, "devices");
        const wa_node *dl = devs ? wa_node_child(devs, "device-list") : NULL;
        if (!dl || dl->content != WA_CONTENT_LIST)
            continue;
        int own = strcmp(j.user, own_user) == 0;
        uint16_t ids[MAX_DEVICES];
        int nids = 0;
        for (uint32_t k = 0; k < dl->nchildren && nids < MAX_DEVICES; k++) {
            const wa_node *d = dl->children[k];
            const char *idstr = wa_node_attr_str(d, "id");
            if (strcmp(d->tag, "device") || !idstr)
                continue;
            char *end;
            long dv = strtol(idstr, &end, 10);
            if (!*idstr || *end || dv < 0 || dv > 65535)
                continue;
            ids[nids++] = (uint16_t)dv;
            if ((own && dv == own_dev) || M.s.ndevs >= MAX_DEVICES)
                continue; /* ourselves */
            struct device *x = &M.s.devs[M.s.ndevs++];
            snprintf(x->user, sizeof x->user, "%s", j.user);
            snprintf(x->server, sizeof x->server, "%s", j.server);
            x->dev = (int)dv;
            x->own = own;
            recipient_found |= !own;
        }
        cache_put(j.user, j.server, ids, nids);
    }
    wa_arena_free(a);
    if (!recipient_found) {
        send_done(WA_SEND_FAILED, "the recipient is not on WhatsApp (no devices)");
        return;
    }
    fetch_prekeys_or_send();
}

/* <iq xmlns=usync> for the devices of the recipient and of our account. */
static void send_usync(const char *own_user)
{
    wa_arena *a = wa_arena_new();
    wa_node *query, *list;
    wa_node *iq = wa_usync_new(M.c, a, "message", &query, &list);
    wa_node *dv = wa_node_new(a, "devices");
    wa_node_add_attr(a, dv, "version", "2");
    wa_node_add_child(a, query, dv);
    wa_node_add_child(a, query, wa_node_new(a, "lid"));
    char buf[128];
    wa_jid j;
    snprintf(buf, sizeof buf, "%s@%s", M.s.to_user, M.s.to_server);
    wa_node *u1 = wa_node_new(a, "user");
    wa_jid_parse(a, buf, &j);
    wa_node_add_attr_jid(a, u1, "jid", &j);
    wa_node_add_child(a, list, u1);
    if (strcmp(M.s.to_user, own_user) != 0) {
        snprintf(buf, sizeof buf, "%s@s.whatsapp.net", own_user);
        wa_node *u2 = wa_node_new(a, "user");
        wa_jid_parse(a, buf, &j);
        wa_node_add_attr_jid(a, u2, "jid", &j);
        wa_node_add_child(a, list, u2);
    }
    int r = wa_client_iq(M.c, a, iq, on_usync, (void *)(uintptr_t)M.s.gen);
    wa_arena_free(a);
    if (r < 0)
        send_done(WA_SEND_LOST, "not connected");
}

/* Makes job the one being prepared and starts on it. */
static void start_job(struct send_job *jb)
{
    M.s.active = 1;
    M.s.gen++;
    M.s.deadline_ms = mono_ms() + SEND_TIMEOUT_S * 1000;
    memcpy(M.s.id, jb->id, sizeof M.s.id);
    memcpy(M.s.to_user, jb->to_user, sizeof M.s.to_user);
    memcpy(M.s.to_server, jb->to_server, sizeof M.s.to_server);
    M.s.text = jb->text;
    M.s.reply_to = jb->reply_to;
    M.s.retry = jb->retry;
    memset(&M.s.devs, 0, sizeof M.s.devs);
    M.s.ndevs = 0;
    arm_timer();
    if (jb->retry) {
        /* The session with the device is replaced once the bundle is in (continue_send). */
        M.s.devs[0] = jb->dev;
        M.s.ndevs = 1;
        log_info("resending a message the recipient could not decrypt", LF_S("id", M.s.id),
                 LF_I("count", M.s.retry));
        fetch_prekeys_or_send();
        return;
    }
    char own_user[64];
    int own_dev = 0;
    if (own_address(own_user, sizeof own_user, &own_dev) < 0) {
        send_done(WA_SEND_TRANSIENT, "not logged in");
        return;
    }
    int nrecipient = devices_from_cache(own_user, own_dev);
    if (nrecipient < 0) {
        send_usync(own_user);
        return;
    }
    if (nrecipient == 0) {
        send_done(WA_SEND_FAILED, "the recipient is not on WhatsApp (no devices)");
        return;
    }
    fetch_prekeys_or_send();
}

/* Starts the next jobs, in order, while the window has room: one at a time
 * is prepared; a preparation that finishes at once lets the next start. */
static void pump(void)
{
    if (M.pumping)
        return; /* the loop below goes on */
    M.pumping = 1;
    while (!M.busy && !M.s.active && M.jlen > 0 && M.naw + M.nbatch < SEND_WINDOW && M.connected) {
        struct send_job jb = M.jobs[M.jhead];
        M.jhead = (M.jhead + 1) % (sizeof M.jobs / sizeof M.jobs[0]);
        M.jlen--;
        M.jmsgs -= !jb.retry;
        start_job(&jb);
    }
    /* Before anything can wait on the event loop. */
    batch_flush();
    arm_timer();
    M.pumping = 0;
    process_next(); /* incoming messages waiting for this turn */
}

static int send_holds_store(void)
{
    return M.nbatch > 0 || M.s.deferred;
}

/* An incoming message's commit ended: a send whose answers came meanwhile
 * goes first, then the sends waiting to start, then the next message (each
 * side gets a turn while the other keeps coming). */
static void next_turn(void)
{
    if (M.busy)
        return;
    if (M.s.active && M.s.deferred)
        continue_send();
    pump();
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    pump();
}

static int push_job(const struct send_job *jb)
{
    size_t cap = sizeof M.jobs / sizeof M.jobs[0];
    if (M.jlen >= cap || (jb->retry && (int)M.jlen - M.jmsgs >= MAX_RESENDS))
        return -1;
    M.jobs[(M.jhead + M.jlen) % cap] = *jb;
    M.jlen++;
    M.jmsgs += !jb->retry;
    return 0;
}

int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to)
{
    if (wa_messaging_room() <= 0 || strlen(id) >= sizeof M.s.id)
        return -1;
    struct send_job jb;
    memset(&jb, 0, sizeof jb);
    wa_arena *a = wa_arena_new();
    wa_jid tj;
    if (wa_jid_parse(a, to_jid, &tj) != WA_OK || strlen(tj.user) >= sizeof jb.to_user ||
        strlen(tj.server) >= sizeof jb.to_server || !tj.user[0]) {
        wa_arena_free(a);
        return -2;
    }
    snprintf(jb.id, sizeof jb.id, "%s", id);
    snprintf(jb.to_user, sizeof jb.to_user, "%s", tj.user);
    snprintf(jb.to_server, sizeof jb.to_server, "%s", tj.server);
    wa_arena_free(a);
    jb.text = strdup(text);
    jb.reply_to = reply_to ? strdup(reply_to) : NULL;
    if (!jb.text || (reply_to && !jb.reply_to) || push_job(&jb) < 0) {
        free(jb.text);
        free(jb.reply_to);
        return -1;
    }
    /* On the next turn of the loop: the rest of the caller's batch joins,
     * and ready messages share one flush of the Signal state. */
    event_active(M.pump_ev, EV_TIMEOUT, 0);
    return 0;
}

/* ---- stanzas ---- */

static void handle_ack(const wa_node *n)
{
    const char *cls = wa_node_attr_str(n, "class"), *id = wa_node_attr_str(n, "id");
    if (!cls || strcmp(cls, "message") || !id)
        return;
    /* Acks come in the order the stanzas went; the oldest with this id is it
     * (a resend may share the id of its message). */
    int i = 0;
    while (i < M.naw && strcmp(M.aw[i].id, id))
        i++;
    if (i == M.naw)
        return;
    struct awaiting w;
    window_take(i, &w);
    const char *error = wa_node_attr_str(n, "error");
    if (error) {
        /* Perhaps sent to a device list that is no longer right. */
        char own_user[64];
        int own_dev;
        cache_forget(w.to_user);
        if (own_address(own_user, sizeof own_user, &own_dev) == 0)
            cache_forget(own_user);
        char why[96];
        snprintf(why, sizeof why, "refused by the server (error %.40s)", error);
        report(w.id, w.retry, WA_SEND_FAILED, why);
    } else {
        report(w.id, w.retry, WA_SEND_OK, NULL);
    }
    arm_timer();
    pump();
}

int wa_messaging_resend(const struct wa_retry_request *r, const char *chat_jid, const char *text,
                        const char *reply_to)
{
    char own_user[64];
    int own_dev = 0;
    if (!M.connected || own_address(own_user, sizeof own_user, &own_dev) < 0 || !r->id ||
        strlen(r->id) >= 64 || strlen(r->user) >= 64 || strlen(r->server) >= 32)
        return -1;
    wa_arena *a = wa_arena_new();
    wa_jid cj;
    struct send_job jb;
    memset(&jb, 0, sizeof jb);
    int ok = a && chat_jid && text && wa_jid_parse(a, chat_jid, &cj) == WA_OK &&
             strlen(cj.user) < sizeof jb.to_user && strlen(cj.server) < sizeof jb.to_server;
    if (ok) {
        snprintf(jb.id, sizeof jb.id, "%s", r->id);
        snprintf(jb.to_user, sizeof jb.to_user, "%s", cj.user);
        snprintf(jb.to_server, sizeof jb.to_server, "%s", cj.server);
    }
    wa_arena_free(a);
    if (!ok)
        return -1;
    jb.text = strdup(text);
    jb.reply_to = reply_to ? strdup(reply_to) : NULL;
    snprintf(jb.dev.user, sizeof jb.dev.user, "%s", r->user);
    snprintf(jb.dev.server, sizeof jb.dev.server, "%s", r->server);
    jb.dev.dev = r->device;
    jb.dev.own = strcmp(r->user, own_user) == 0;
    jb.retry = r->count > 0 ? r->count : 1;
    if (!jb.text || (reply_to && !jb.reply_to) || push_job(&jb) < 0) {
        free(jb.text);
        free(jb.reply_to);
        return -1;
    }
    pump();
    return 0;
}

static void handle_retry_receipt(const wa_node *n, const char *from)
{
    const char *id = wa_node_attr_str(n, "id");
    const wa_node *rt = wa_node_child(n, "retry");
    const char *cnt = rt ? wa_node_attr_str(rt, "count") : NULL;
    wa_arena *a = wa_arena_new();
    wa_jid fj;
    if (!id || strlen(id) >= 64 || !from || wa_jid_parse(a, from, &fj) != WA_OK || strlen(fj.user) >= 64 ||
        strlen(fj.server) >= 32) {
        wa_arena_free(a);
        return;
    }
    /* The device may be new, or gone: list the user's devices again next time. */
    cache_forget(fj.user);
    int count = cnt ? atoi(cnt) : 1;
    log_warn("the recipient could not decrypt a message we sent", LF_S("id", id), LF_S("from", from),
             LF_I("count", count));
    if (count <= MAX_RETRY_RECEIPTS && M.sev.on_retry) {
        struct wa_retry_request r = {id, fj.user, fj.server, fj.device, count};
        M.sev.on_retry(M.sarg, &r);
    }
    wa_arena_free(a);
}

/* <notification type=devices from=user>: a device of that user was added or
 * removed; its cached list is no longer right. */
static void handle_devices_notification(const wa_node *n)
{
    char fb[128];
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    wa_arena *a = wa_arena_new();
    wa_jid fj;
    if (from && wa_jid_parse(a, from, &fj) == WA_OK && fj.user[0]) {
        cache_forget(fj.user);
        log_info("device list changed; it will be fetched again", LF_S("user", from));
    }
    wa_arena_free(a);
}

static void handle_receipt(const wa_node *n)
{
    const char *type = wa_node_attr_str(n, "type");
    char fb[128];
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    const char *status = !type || !*type                                       ? "delivered"
                         : !strcmp(type, "read") || !strcmp(type, "read-self") ? "read"
                         : !strcmp(type, "played")                             ? "played"
                                                                               : NULL;
    if (type && !strcmp(type, "retry"))
        handle_retry_receipt(n, from);
    if (status && M.sev.on_receipt && from) {
        const char *id = wa_node_attr_str(n, "id");
        if (id)
            M.sev.on_receipt(M.sarg, id, status, from);
        const wa_node *list = wa_node_child(n, "list");
        if (list && list->content == WA_CONTENT_LIST)
            for (uint32_t i = 0; i < list->nchildren; i++) {
                const char *iid = wa_node_attr_str(list->children[i], "id");
                if (!strcmp(list->children[i]->tag, "item") && iid)
                    M.sev.on_receipt(M.sarg, iid, status, from);
            }
    }
    wa_client_ack(M.c, n);
}

static int on_stanza(void *arg, wa_node *n, wa_arena *a)
{
    (void)arg;
    if (!strcmp(n->tag, "ack")) {
        handle_ack(n);
        return 0;
    }
    if (!strcmp(n->tag, "receipt")) {
        handle_receipt(n);
        return 0;
    }
    if (!strcmp(n->tag, "notification")) {
        const char *type = wa_node_attr_str(n, "type");
        if (type && !strcmp(type, "devices"))
            handle_devices_notification(n);
        return 0;
    }
    if (strcmp(n->tag, "message"))
        return 0;
    /* <message>: in order, each committed before its receipt and ack. */
    if (M.qlen == MAX_QUEUE) {
        /* Not reached while the pause below holds: a last resort. */
        log_warn("incoming queue full; dropped, the server resends it after a reconnect",
                 LF_S("id", wa_node_attr_str(n, "id")));
        return 0;
    }
    M.q[(M.qhead + M.qlen) % MAX_QUEUE] = (struct qitem){a, n};
    M.qlen++;
    if (!M.paused && M.qlen >= QUEUE_PAUSE) {
        M.paused = 1;
        wa_client_pause(M.c, 1);
        log_warn("incoming messages arrive faster than they are stored; reading paused",
                 LF_I("queued", (long long)M.qlen));
    }
    process_next();
    return 1;
}

static void on_connected(void *arg)
{
    (void)arg;
    M.connected = 1;
    if (M.sev.on_ready)
        M.sev.on_ready(M.sarg);
}

static void on_disconnect(void *arg)
{
    (void)arg;
    M.connected = 0;
    M.paused = 0; /* the next connection is read from the start */
    /* Queued stanzas not in the batch being committed are dropped: the server resends them. */
    size_t keep = M.busy ? (size_t)nb : 0;
    while (M.qlen > keep) {
        struct qitem *it = &M.q[(M.qhead + M.qlen - 1) % MAX_QUEUE];
        wa_arena_free(it->a);
        it->a = NULL;
        M.qlen--;
    }
    /* Device lists may change while we do not hear of it. */
    cache_clear();
    /* Every send held goes back to the outbox, to go again with its id on the
     * next connection: the one being prepared, those whose ack did not come
     * (the server may have taken them: a resend with the same id is the
     * documented outcome), those not started. Resends answering retry
     * receipts are dropped. */
    if (M.s.active)
        send_done(WA_SEND_LOST, "connection lost");
    while (M.naw > 0) {
        struct awaiting w;
        window_take(0, &w);
        if (!w.retry)
            report(w.id, 0, WA_SEND_LOST, "connection lost before the server's ack");
    }
    size_t cap = sizeof M.jobs / sizeof M.jobs[0];
    while (M.jlen > 0) {
        struct send_job jb = M.jobs[M.jhead];
        M.jhead = (M.jhead + 1) % cap;
        M.jlen--;
        M.jmsgs -= !jb.retry;
        free(jb.text);
        free(jb.reply_to);
        if (!jb.retry)
            report(jb.id, 0, WA_SEND_LOST, "connection lost before sending");
    }
    arm_timer();
}

void wa_messaging_init(struct wa_client *c, struct event_base *base)
{
    M.c = c;
    M.base = base;
    M.send_timer = evtimer_new(base, on_send_timeout, NULL);
    M.pump_ev = event_new(base, -1, 0, on_pump, NULL);
    struct wa_client_hooks h = {on_stanza, on_connected, on_disconnect};
    wa_client_set_hooks(c, &h, NULL);
}

void wa_messaging_set_send_events(const struct wa_send_events *ev, void *arg)
{
    M.sev = *ev;
    M.sarg = arg;
}

void wa_messaging_set_receive_events(const struct wa_receive_events *ev, void *arg)
{
    M.rev = *ev;
    M.rarg = arg;
}
