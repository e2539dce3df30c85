#include "wa_messaging.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "supervisor/events.h"
#include "supervisor/sdb.h"
#include "supervisor/sup.h"
#include "wa_message.h"
#include "wa_signal_store.h"

#define MAX_ENC (64u << 10)
#define MAX_QUEUE 4096
#define MAX_DEVICES 64
#define MAX_RETRY_RECEIPTS 5
#define SEND_TIMEOUT_S 30
#define RETRY_SLOTS 64

struct qitem {
    wa_arena *a;
    wa_node *n;
};

struct device {
    char user[64], server[32];
    int dev;
    int own; /* one of our other devices */
};

static struct {
    struct wa_client *c;
    struct wa_messaging_events ev;
    void *arg;
    int connected;
    /* receive */
    struct qitem q[MAX_QUEUE];
    size_t qhead, qlen;
    int busy; /* a message is being committed */
    struct {
        char id[64];
        int count;
    } retries[RETRY_SLOTS];
    uint64_t decrypt_failures;
    /* send */
    struct {
        int active;
        char id[64], to_user[64], to_server[32], text_owner;
        char *text, *reply_to;
        struct device devs[MAX_DEVICES];
        int ndevs;
        int waiting_ack;
        int retry; /* > 0: a resend for one device that asked (retry receipt), with this count */
        unsigned gen;
    } s;
    struct event *send_timer;
} M;

uint64_t wa_messaging_decrypt_failures(void)
{
    return M.decrypt_failures;
}

int wa_messaging_busy(void)
{
    return M.s.active;
}

int wa_messaging_ready(void)
{
    return M.connected;
}

/* ---- helpers ---- */

static const char *attr_text(const wa_node *n, const char *key, char *buf, size_t len)
{
    const wa_attr *a = wa_node_attr(n, key);
    if (!a)
        return NULL;
    if (a->type == WA_VAL_STR)
        return a->str;
    if (wa_jid_format(&a->jid, buf, len) >= (int)len)
        return NULL;
    return buf;
}

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

static void rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_kv(struct sbuf *b, const char *k, const char *v, int first)
{
    if (!first)
        sbuf_addc(b, ',');
    sbuf_add_json_str(b, k, strlen(k));
    sbuf_addc(b, ':');
    if (v)
        sbuf_add_json_str(b, v, strlen(v));
    else
        sbuf_adds(b, "null");
}

/* ---- receive ---- */

static void process_next(void);

static void send_receipt(const wa_node *n, const char *type, const char *recipient)
{
    char fb[128], pb[128];
    const char *id = wa_node_attr_str(n, "id");
    const char *from = attr_text(n, "from", fb, sizeof fb);
    const char *participant = attr_text(n, "participant", pb, sizeof pb);
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
    const char *from = attr_text(n, "from", fb, sizeof fb);
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

struct commit {
    wa_arena *a;
    wa_node *n;
    uint64_t event_id;
    char type[32];
    char *json;
    int from_me;
    char recipient[128];
};

static void finish_item(void)
{
    struct qitem *it = &M.q[M.qhead];
    wa_arena_free(it->a);
    it->a = NULL;
    M.qhead = (M.qhead + 1) % MAX_QUEUE;
    M.qlen--;
    M.busy = 0;
}

static void on_committed(void *ctx, const PGresult *res, const char *err)
{
    struct commit *cm = ctx;
    char ferr[256];
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    int have_sig = wa_client_signal(M.c, &g, &sc, &st) == 0;
    if (!res) {
        /* Not stored: forget the decryption so the resend decrypts again, and
         * make the server resend by reconnecting. */
        log_error("cannot store an incoming message; not acknowledging it", LF_S("id", wa_node_attr_str(cm->n, "id")),
                  LF_S("error", err));
        if (have_sig && wa_signal_store_reload(st, ferr, sizeof ferr) < 0)
            log_error("cannot reload the Signal store", LF_S("error", ferr));
        wa_client_reconnect(M.c, "incoming message not stored");
    } else {
        if (have_sig && wa_signal_store_flush(st, ferr, sizeof ferr) < 0)
            log_error("cannot store the Signal state", LF_S("error", ferr));
        int inserted = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        if (inserted && cm->json)
            events_publish(cm->event_id, cm->type, cm->json);
        if (inserted && S.shm)
            metrics_add(&S.shm->wa_messages_received_total, 1);
        log_info("incoming message stored", LF_S("id", wa_node_attr_str(cm->n, "id")), LF_S("type", cm->type),
                 LF_I("new", inserted));
        send_receipt(cm->n, cm->from_me ? "sender" : NULL, cm->from_me && cm->recipient[0] ? cm->recipient : NULL);
        wa_client_ack(M.c, cm->n);
    }
    free(cm->json);
    free(cm);
    finish_item();
    process_next();
}

/* A LID for contact jid, unless another contact holds it already (a number
 * that changed hands keeps its old mapping until that row is corrected):
 * the unique index must never make an incoming message fail to commit. */
#define LID_FREE(lid, jid) "CASE WHEN EXISTS (SELECT 1 FROM wa_contacts x WHERE x.lid = " lid " AND x.jid <> " jid ") " \
                           "THEN NULL ELSE " lid " END"

static const char SQL_INSERT[] =
    "WITH m AS (INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, subtype, text, reply_to, "
    "reaction_to, reaction, status, ts) VALUES ($1, $2, $3, $4::boolean, $5, $6, $7, $8, $9, $10, "
    "CASE WHEN $4::boolean THEN 'sent' ELSE 'received' END, to_timestamp($11::bigint)) "
    "ON CONFLICT (id) DO NOTHING RETURNING id), "
    "c AS (INSERT INTO wa_contacts (jid, lid, push_name, updated_at) SELECT $3, " LID_FREE("$16", "$3") ", $12, "
    "now() FROM m WHERE NOT $4::boolean AND $3 IS NOT NULL "
    "ON CONFLICT (jid) DO UPDATE SET push_name = COALESCE(EXCLUDED.push_name, wa_contacts.push_name), "
    "lid = COALESCE(EXCLUDED.lid, wa_contacts.lid), updated_at = now() RETURNING 1), "
    "ch AS (INSERT INTO wa_chats (jid, last_message_id, last_message_at, unread_count, updated_at) "
    "SELECT $2, $1, to_timestamp($11::bigint), CASE WHEN $4::boolean OR $5 = 'reaction' THEN 0 ELSE 1 END, now() FROM m "
    "ON CONFLICT (jid) DO UPDATE SET last_message_id = EXCLUDED.last_message_id, "
    "last_message_at = EXCLUDED.last_message_at, unread_count = wa_chats.unread_count + EXCLUDED.unread_count, "
    "updated_at = now() RETURNING 1), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT $13::bigint, $14, $15::jsonb FROM m RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM m), (SELECT count(*) FROM c), (SELECT count(*) FROM ch), (SELECT count(*) FROM e)";

static const char SQL_EDIT[] =
    "WITH u AS (UPDATE wa_messages SET text = $2, edited_at = to_timestamp($3::bigint), updated_at = now() "
    "WHERE id = $1 AND chat_jid = $5 AND (edited_at IS NULL OR edited_at < to_timestamp($3::bigint)) "
    "RETURNING id), e AS (INSERT INTO wa_events (id, type, data) SELECT $4::bigint, 'message.edited', $6::jsonb "
    "FROM u RETURNING 1) SELECT EXISTS (SELECT 1 FROM u), (SELECT count(*) FROM e)";

static const char SQL_REVOKE[] =
    "WITH u AS (UPDATE wa_messages SET revoked_at = to_timestamp($2::bigint), updated_at = now() "
    "WHERE id = $1 AND chat_jid = $4 AND revoked_at IS NULL RETURNING id), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT $3::bigint, 'message.revoked', $5::jsonb FROM u RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM u), (SELECT count(*) FROM e)";

/* Commits what a decrypted message says; on_committed continues. */
static void commit_message(struct commit *cm, const char *id, const char *chat, const char *sender, int from_me,
                           int64_t ts, const char *push_name, const char *lid, const struct wa_msg_content *mc)
{
    char tsbuf[40], tsnum[24];
    rfc3339(ts, tsbuf, sizeof tsbuf);
    snprintf(tsnum, sizeof tsnum, "%lld", (long long)ts);
    cm->event_id = events_next_id();
    char evid[24];
    snprintf(evid, sizeof evid, "%llu", (unsigned long long)cm->event_id);
    const char *mtype = mc->kind == WA_MSG_REACTION ? "reaction" : mc->kind == WA_MSG_TEXT ? "text" : "unsupported";
    struct sbuf j;
    sbuf_init(&j);
    sbuf_addc(&j, '{');
    json_kv(&j, "id", mc->kind == WA_MSG_EDIT || mc->kind == WA_MSG_REVOKE ? mc->target : id, 1);
    json_kv(&j, "chat", chat, 0);
    json_kv(&j, "from", sender, 0);
    sbuf_adds(&j, from_me ? ",\"from_me\":true" : ",\"from_me\":false");
    switch (mc->kind) {
    case WA_MSG_EDIT:
        json_kv(&j, "type", "text", 0);
        json_kv(&j, "text", mc->text, 0);
        json_kv(&j, "edit_id", id, 0);
        json_kv(&j, "edited_at", tsbuf, 0);
        break;
    case WA_MSG_REVOKE:
        json_kv(&j, "revoke_id", id, 0);
        json_kv(&j, "revoked_at", tsbuf, 0);
        break;
    default:
        json_kv(&j, "type", mtype, 0);
        json_kv(&j, "subtype", mc->subtype, 0);
        json_kv(&j, "text", mc->kind == WA_MSG_REACTION ? NULL : mc->text, 0);
        json_kv(&j, "reply_to", mc->reply_to, 0);
        if (mc->kind == WA_MSG_REACTION) {
            json_kv(&j, "reaction_to", mc->target, 0);
            json_kv(&j, "reaction", mc->text, 0);
        }
        json_kv(&j, "status", from_me ? "sent" : "received", 0);
        json_kv(&j, "ts", tsbuf, 0);
        break;
    }
    sbuf_addc(&j, '}');
    cm->json = sbuf_steal(&j);
    struct sdb_query *q;
    if (mc->kind == WA_MSG_EDIT) {
        snprintf(cm->type, sizeof cm->type, "message.edited");
        const char *p[] = {mc->target, mc->text, tsnum, evid, chat, cm->json};
        q = sdb_query(SQL_EDIT, 6, p, on_committed, cm);
    } else if (mc->kind == WA_MSG_REVOKE) {
        snprintf(cm->type, sizeof cm->type, "message.revoked");
        const char *p[] = {mc->target, tsnum, evid, chat, cm->json};
        q = sdb_query(SQL_REVOKE, 5, p, on_committed, cm);
    } else {
        snprintf(cm->type, sizeof cm->type, mc->kind == WA_MSG_REACTION ? "message.reaction" : "message.received");
        const char *p[] = {id,
                           chat,
                           sender,
                           from_me ? "true" : "false",
                           mtype,
                           mc->subtype,
                           mc->kind == WA_MSG_REACTION ? NULL : mc->text,
                           mc->reply_to,
                           mc->kind == WA_MSG_REACTION ? mc->target : NULL,
                           mc->kind == WA_MSG_REACTION ? mc->text : NULL,
                           tsnum,
                           push_name,
                           evid,
                           cm->type,
                           cm->json,
                           lid};
        q = sdb_query(SQL_INSERT, 16, p, on_committed, cm);
    }
    if (!q)
        on_committed(cm, NULL, "out of memory");
}

/* The attribute key as "user@server" (device dropped) when it is a JID on server; else NULL. */
static const char *alt_jid(const wa_node *n, wa_arena *a, const char *key, const char *server, char *buf, size_t len)
{
    char tb[128];
    const char *v = attr_text(n, key, tb, sizeof tb);
    wa_jid j;
    if (!v || wa_jid_parse(a, v, &j) != WA_OK || strcmp(j.server, server) != 0 || !j.user[0] || strlen(j.user) > 32)
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
static void store_undecryptable_group(wa_node *n, wa_arena *a, const char *id, const char *from, const wa_jid *fj,
                                      const char *own_user, const char *t, const char *notify)
{
    char pb[128], sender[128] = "";
    const char *participant = attr_text(n, "participant", pb, sizeof pb);
    wa_jid pj;
    if (participant && wa_jid_parse(a, participant, &pj) == WA_OK && pj.user[0])
        snprintf(sender, sizeof sender, "%s@%s", pj.user, pj.server);
    int from_me = sender[0] && strncmp(sender, own_user, strlen(own_user)) == 0 && sender[strlen(own_user)] == '@';
    const char *kind = !strcmp(fj->server, "g.us") ? "group_message"
                       : !strcmp(fj->server, "broadcast") ? "broadcast_message"
                       : !strcmp(fj->server, "newsletter") ? "newsletter_message"
                                                            : "other_message";
    char chat[128];
    snprintf(chat, sizeof chat, "%s@%s", fj->user, fj->server);
    struct commit *cm = calloc(1, sizeof *cm);
    if (!cm) {
        finish_item();
        return;
    }
    log_info("message in a group or broadcast: stored as unsupported (sender keys are not supported yet)",
             LF_S("id", id), LF_S("from", from));
    cm->a = a;
    cm->n = n;
    struct wa_msg_content mc = {.kind = WA_MSG_UNSUPPORTED, .subtype = (char *)kind};
    M.busy = 1;
    commit_message(cm, id, chat, sender[0] ? sender : NULL, from_me, t ? strtoll(t, NULL, 10) : (int64_t)time(NULL),
                   from_me ? NULL : notify, NULL, &mc);
}

/* Handles the head of the queue: done synchronously (ack now) or waits for a commit. */
static void handle_message(wa_node *n, wa_arena *a)
{
    char fb[128], rb[128], own_user[64];
    int own_dev = 0;
    const char *id = wa_node_attr_str(n, "id");
    const char *from = attr_text(n, "from", fb, sizeof fb);
    const char *recipient = attr_text(n, "recipient", rb, sizeof rb);
    const char *t = wa_node_attr_str(n, "t");
    const char *notify = wa_node_attr_str(n, "notify");
    wa_jid fj;
    if (!id || !*id || strlen(id) >= 64 || !from || wa_jid_parse(a, from, &fj) != WA_OK ||
        own_address(own_user, sizeof own_user, &own_dev) < 0) {
        log_warn("message stanza without a usable id or sender; acknowledged and dropped");
        wa_client_ack(M.c, n);
        finish_item();
        return;
    }
    if (strcmp(fj.server, "s.whatsapp.net") != 0 && strcmp(fj.server, "lid") != 0) {
        store_undecryptable_group(n, a, id, from, &fj, own_user, t, notify);
        return;
    }
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    if (wa_client_signal(M.c, &g, &sc, &st) < 0) {
        finish_item();
        return;
    }
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
            if (!v || strcmp(v, "2") || e->content != WA_CONTENT_BYTES || e->nbytes == 0 || e->nbytes > MAX_ENC) {
                why = "malformed <enc>";
                continue;
            }
            any = 1;
            rc = wa_msg_decrypt(sc, g, name, fj.device, strcmp(et, "pkmsg") == 0 ? WA_ENC_PKMSG : WA_ENC_MSG,
                                e->bytes, e->nbytes, &plain, &plen);
        }
    if (rc == SG_ERR_DUPLICATE_MESSAGE) {
        /* Decrypted and committed before (state is flushed only after the
         * commit): the server resent it because the ack did not arrive. */
        log_info("incoming message seen before; acknowledging again", LF_S("id", id));
        send_receipt(n, NULL, NULL);
        wa_client_ack(M.c, n);
        finish_item();
        return;
    }
    long ulen = rc == 0 ? wa_msg_unpad(plain, plen) : -1;
    struct wa_msg_content mc;
    if (rc != 0 || ulen < 0 || wa_msg_parse(plain, (size_t)ulen, &mc) < 0) {
        if (plain) {
            OPENSSL_cleanse(plain, plen);
            free(plain);
        }
        char ferr[200];
        wa_signal_store_reload(st, ferr, sizeof ferr);
        M.decrypt_failures++;
        if (S.shm)
            metrics_add(&S.shm->wa_decrypt_failures_total, 1);
        int cnt = retry_count(id);
        log_warn("cannot decrypt an incoming message", LF_S("id", id), LF_S("from", from),
                 LF_S("why", rc == 0 ? "bad padding or not a Message" : any ? "decryption failed" : why),
                 LF_I("code", rc), LF_I("retry", cnt), LF_I("failures_total", (long long)M.decrypt_failures));
        if (any && cnt <= MAX_RETRY_RECEIPTS)
            send_retry_receipt(n, cnt);
        wa_client_ack(M.c, n);
        finish_item();
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
        const char *other = alt_jid(n, a, from_lid ? "sender_pn" : "sender_lid", from_lid ? "s.whatsapp.net" : "lid",
                                    alt, sizeof alt);
        if (from_lid) {
            snprintf(lid, sizeof lid, "%s", sender);
            if (other)
                snprintf(sender, sizeof sender, "%s", other);
        } else if (other) {
            snprintf(lid, sizeof lid, "%s", other);
        }
        snprintf(chat, sizeof chat, "%s", sender);
    }
    if (mc.kind == WA_MSG_NONE) {
        wa_msg_content_free(&mc);
        char ferr[200];
        if (wa_signal_store_flush(st, ferr, sizeof ferr) < 0)
            log_error("cannot store the Signal state", LF_S("error", ferr));
        send_receipt(n, from_me ? "sender" : NULL, NULL);
        wa_client_ack(M.c, n);
        finish_item();
        return;
    }
    struct commit *cm = calloc(1, sizeof *cm);
    if (!cm) {
        wa_msg_content_free(&mc);
        finish_item();
        return;
    }
    cm->a = a;
    cm->n = n;
    cm->from_me = from_me;
    if (from_me)
        snprintf(cm->recipient, sizeof cm->recipient, "%s", chat);
    M.busy = 1;
    commit_message(cm, id, chat, sender, from_me, t ? strtoll(t, NULL, 10) : (int64_t)time(NULL),
                   from_me ? NULL : notify, lid[0] ? lid : NULL, &mc);
    wa_msg_content_free(&mc);
}

static void process_next(void)
{
    while (!M.busy && M.qlen > 0) {
        struct qitem *it = &M.q[M.qhead];
        if (!M.connected) {
            /* The server resends what was not acknowledged. */
            finish_item();
            continue;
        }
        handle_message(it->n, it->a);
    }
}

/* ---- send ---- */

static void send_done(enum wa_send_result r, const char *err)
{
    if (!M.s.active)
        return;
    char id[64];
    snprintf(id, sizeof id, "%s", M.s.id);
    M.s.active = 0;
    M.s.waiting_ack = 0;
    M.s.gen++;
    evtimer_del(M.send_timer);
    free(M.s.text);
    free(M.s.reply_to);
    M.s.text = M.s.reply_to = NULL;
    if (M.s.retry) {
        /* The message itself was sent before: its status does not change. */
        log_info("message resent after a retry receipt", LF_S("id", id), LF_I("ok", r == WA_SEND_OK),
                 LF_S("why", err ? err : ""));
        M.s.retry = 0;
        if (M.ev.on_ready)
            M.ev.on_ready(M.arg); /* the outbox may go on */
        return;
    }
    if (M.ev.on_sent)
        M.ev.on_sent(M.arg, id, r, err);
}

static void on_send_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    send_done(WA_SEND_TRANSIENT, "no answer from the server in time");
}

static void dev_jid(const struct device *d, char *buf, size_t cap)
{
    if (d->dev)
        snprintf(buf, cap, "%s:%d@%s", d->user, d->dev, d->server);
    else
        snprintf(buf, cap, "%s@%s", d->user, d->server);
}

static int encrypt_and_send(void)
{
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    if (wa_client_signal(M.c, &g, &sc, &st) < 0)
        return -1;
    char to[128];
    snprintf(to, sizeof to, "%s@%s", M.s.to_user, M.s.to_server);
    uint8_t *plain = NULL, *dsm = NULL;
    size_t plen = 0, dlen = 0;
    if (wa_msg_build_text(M.s.text, M.s.reply_to, NULL, NULL, &plain, &plen) < 0 ||
        wa_msg_build_text(M.s.text, M.s.reply_to, NULL, to, &dsm, &dlen) < 0) {
        free(plain);
        return -1;
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
        if (!wa_signal_store_has_session(st, name, d->dev))
            continue;
        uint8_t *padded = NULL, *ct = NULL;
        size_t pl = 0, cl = 0;
        int type = 0;
        if (wa_msg_pad(d->own ? dsm : plain, d->own ? dlen : plen, &padded, &pl) < 0)
            continue;
        int r = wa_msg_encrypt(sc, g, name, d->dev, padded, pl, &type, &ct, &cl);
        OPENSSL_cleanse(padded, pl);
        free(padded);
        if (r != 0) {
            log_warn("cannot encrypt for a device", LF_S("id", M.s.id), LF_I("device", d->dev), LF_I("code", r));
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
        wa_signal_store_reload(st, ferr, sizeof ferr);
        send_done(WA_SEND_FAILED, "no device of the recipient could be reached");
        return 0;
    }
    if (!M.s.retry)
        wa_node_add_child(a, msg, parts);
    const struct wa_creds *cr = wa_client_creds(M.c);
    if (any_pk && cr && cr->account_len) {
        wa_node *di = wa_node_new(a, "device-identity");
        wa_node_set_bytes(a, di, cr->account, cr->account_len);
        wa_node_add_child(a, msg, di);
    }
    /* The ratchet steps are durable before the ciphertexts leave. */
    char ferr[200];
    if (wa_signal_store_flush(st, ferr, sizeof ferr) < 0) {
        log_error("cannot store the Signal state; not sending", LF_S("error", ferr));
        wa_arena_free(a);
        send_done(WA_SEND_TRANSIENT, "session store write failed");
        return 0;
    }
    int r = wa_client_send_node(M.c, msg);
    wa_arena_free(a);
    if (r < 0) {
        send_done(WA_SEND_TRANSIENT, "connection lost while sending");
        return 0;
    }
    M.s.waiting_ack = 1;
    log_info("message sent to the server", LF_S("id", M.s.id), LF_I("devices", nto), LF_I("pkmsg", any_pk));
    return 0;
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
        send_done(WA_SEND_TRANSIENT, "connection lost while fetching prekeys");
        return;
    }
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    const wa_node *list = wa_node_child(n, "list");
    const char *type = wa_node_attr_str(n, "type");
    if (!type || strcmp(type, "result") != 0 || !list || list->content != WA_CONTENT_LIST ||
        wa_client_signal(M.c, &g, &sc, &st) < 0) {
        send_done(WA_SEND_TRANSIENT, "prekey query failed");
        return;
    }
    wa_arena *a = wa_arena_new();
    for (uint32_t i = 0; i < list->nchildren; i++) {
        const wa_node *u = list->children[i];
        char jb[128];
        const char *jid = attr_text(u, "jid", jb, sizeof jb);
        wa_jid j;
        if (strcmp(u->tag, "user") || !jid || wa_jid_parse(a, jid, &j) != WA_OK || wa_node_child(u, "error"))
            continue;
        const wa_node *reg = bytes_of(u, "registration", 4), *ident = bytes_of(u, "identity", 32);
        const wa_node *sk = wa_node_child(u, "skey"), *k = wa_node_child(u, "key");
        const wa_node *skid = bytes_of(sk, "id", 3), *skv = bytes_of(sk, "value", 32), *sks = bytes_of(sk, "signature", 64);
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
        char name[96];
        wa_msg_address_name(j.user, j.server, name, sizeof name);
        int r = wa_msg_session_from_bundle(sc, g, name, j.device, &b);
        if (r != 0)
            log_warn("prekey bundle refused", LF_S("jid", jid), LF_I("code", r));
    }
    wa_arena_free(a);
    encrypt_and_send();
}

static void fetch_prekeys_or_send(void)
{
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    if (wa_client_signal(M.c, &g, &sc, &st) < 0) {
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
        if (wa_signal_store_has_session(st, name, M.s.devs[i].dev))
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
        encrypt_and_send();
        return;
    }
    int r = wa_client_iq(M.c, a, iq, on_prekeys, (void *)(uintptr_t)M.s.gen);
    wa_arena_free(a);
    if (r < 0)
        send_done(WA_SEND_TRANSIENT, "not connected");
}

static const char SQL_LID[] =
    "INSERT INTO wa_contacts (jid, lid, updated_at) SELECT $1, $2, now() "
    "WHERE NOT EXISTS (SELECT 1 FROM wa_contacts x WHERE x.lid = $2 AND x.jid <> $1) "
    "ON CONFLICT (jid) DO UPDATE SET lid = EXCLUDED.lid, updated_at = now() "
    "WHERE wa_contacts.lid IS DISTINCT FROM EXCLUDED.lid";

static void on_lid_saved(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("cannot record a phone number's LID", LF_S("error", err));
}

/* A usync <user jid=phone><lid val=user@lid/>: the phone number <-> LID mapping. */
static void remember_lid(const wa_node *u, wa_arena *a, const wa_jid *j)
{
    char lb[128], pn[128];
    const wa_node *l = wa_node_child(u, "lid");
    if (!l || strcmp(j->server, "s.whatsapp.net") != 0 || !alt_jid(l, a, "val", "lid", lb, sizeof lb))
        return;
    snprintf(pn, sizeof pn, "%s@s.whatsapp.net", j->user);
    const char *p[] = {pn, lb};
    sdb_query(SQL_LID, 2, p, on_lid_saved, NULL);
}

static void on_usync(void *arg, const wa_node *n)
{
    if ((unsigned)(uintptr_t)arg != M.s.gen || !M.s.active)
        return;
    if (!n) {
        send_done(WA_SEND_TRANSIENT, "connection lost while listing devices");
        return;
    }
    const char *type = wa_node_attr_str(n, "type");
    const wa_node *us = wa_node_child(n, "usync");
    const wa_node *list = us ? wa_node_child(us, "list") : NULL;
    if (!type || strcmp(type, "result") != 0 || !list || list->content != WA_CONTENT_LIST) {
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
        const char *jid = attr_text(u, "jid", jb, sizeof jb);
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
        for (uint32_t k = 0; k < dl->nchildren && M.s.ndevs < MAX_DEVICES; k++) {
            const wa_node *d = dl->children[k];
            const char *ids = wa_node_attr_str(d, "id");
            if (strcmp(d->tag, "device") || !ids)
                continue;
            char *end;
            long dv = strtol(ids, &end, 10);
            if (*end || dv < 0 || dv > 65535)
                continue;
            if (own && dv == own_dev)
                continue; /* ourselves */
            struct device *x = &M.s.devs[M.s.ndevs++];
            snprintf(x->user, sizeof x->user, "%s", j.user);
            snprintf(x->server, sizeof x->server, "%s", j.server);
            x->dev = (int)dv;
            x->own = own;
            recipient_found |= !own;
        }
    }
    wa_arena_free(a);
    if (!recipient_found) {
        send_done(WA_SEND_FAILED, "the recipient is not on WhatsApp (no devices)");
        return;
    }
    fetch_prekeys_or_send();
}

int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to)
{
    if (M.s.active || !M.connected)
        return -1;
    char own_user[64];
    int own_dev;
    if (own_address(own_user, sizeof own_user, &own_dev) < 0 || strlen(id) >= sizeof M.s.id)
        return -1;
    wa_arena *a = wa_arena_new();
    wa_jid tj;
    if (wa_jid_parse(a, to_jid, &tj) != WA_OK || strlen(tj.user) >= sizeof M.s.to_user ||
        strlen(tj.server) >= sizeof M.s.to_server || !tj.user[0]) {
        wa_arena_free(a);
        return -2;
    }
    memset(&M.s.devs, 0, sizeof M.s.devs);
    snprintf(M.s.id, sizeof M.s.id, "%s", id);
    snprintf(M.s.to_user, sizeof M.s.to_user, "%s", tj.user);
    snprintf(M.s.to_server, sizeof M.s.to_server, "%s", tj.server);
    M.s.text = strdup(text);
    M.s.reply_to = reply_to ? strdup(reply_to) : NULL;
    M.s.active = 1;
    M.s.waiting_ack = 0;
    M.s.gen++;
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "xmlns", "usync");
    wa_node_add_attr(a, iq, "type", "get");
    wa_node *us = wa_node_new(a, "usync");
    char sid[32];
    wa_client_new_id(M.c, sid, sizeof sid);
    wa_node_add_attr(a, us, "sid", sid);
    wa_node_add_attr(a, us, "mode", "query");
    wa_node_add_attr(a, us, "last", "true");
    wa_node_add_attr(a, us, "index", "0");
    wa_node_add_attr(a, us, "context", "message");
    wa_node *query = wa_node_new(a, "query");
    wa_node *dv = wa_node_new(a, "devices");
    wa_node_add_attr(a, dv, "version", "2");
    wa_node_add_child(a, query, dv);
    wa_node_add_child(a, query, wa_node_new(a, "lid"));
    wa_node_add_child(a, us, query);
    wa_node *list = wa_node_new(a, "list");
    char buf[128];
    wa_jid j;
    snprintf(buf, sizeof buf, "%s@%s", tj.user, tj.server);
    wa_node *u1 = wa_node_new(a, "user");
    wa_jid_parse(a, buf, &j);
    wa_node_add_attr_jid(a, u1, "jid", &j);
    wa_node_add_child(a, list, u1);
    if (strcmp(tj.user, own_user) != 0) {
        snprintf(buf, sizeof buf, "%s@s.whatsapp.net", own_user);
        wa_node *u2 = wa_node_new(a, "user");
        wa_jid_parse(a, buf, &j);
        wa_node_add_attr_jid(a, u2, "jid", &j);
        wa_node_add_child(a, list, u2);
    }
    wa_node_add_child(a, us, list);
    wa_node_add_child(a, iq, us);
    struct timeval tv = {SEND_TIMEOUT_S, 0};
    evtimer_add(M.send_timer, &tv);
    int r = wa_client_iq(M.c, a, iq, on_usync, (void *)(uintptr_t)M.s.gen);
    wa_arena_free(a);
    if (r < 0) {
        M.s.active = 0;
        evtimer_del(M.send_timer);
        free(M.s.text);
        free(M.s.reply_to);
        M.s.text = M.s.reply_to = NULL;
        return -1;
    }
    return 0;
}

/* ---- stanzas ---- */

static void handle_ack(const wa_node *n)
{
    const char *cls = wa_node_attr_str(n, "class"), *id = wa_node_attr_str(n, "id");
    if (!cls || strcmp(cls, "message") || !id || !M.s.active || !M.s.waiting_ack || strcmp(id, M.s.id))
        return;
    const char *error = wa_node_attr_str(n, "error");
    if (error) {
        char why[96];
        snprintf(why, sizeof why, "refused by the server (error %s)", error);
        send_done(WA_SEND_FAILED, why);
        return;
    }
    send_done(WA_SEND_OK, NULL);
}

struct retry_req {
    char id[64], user[64], server[32];
    int dev, count;
};

static const char SQL_RETRY_MSG[] =
    "SELECT text, reply_to, chat_jid FROM wa_messages WHERE id = $1 AND from_me AND type = 'text' AND revoked_at IS NULL";


static void on_retry_msg(void *ctx, const PGresult *res, const char *err)
{
    struct retry_req *rr = ctx;
    char own_user[64];
    int own_dev = 0;
    if (!res || PQntuples(res) != 1 || M.s.active || !M.connected || own_address(own_user, sizeof own_user, &own_dev) < 0) {
        log_warn("retry receipt not answered", LF_S("id", rr->id),
                 LF_S("why", !res ? err : PQntuples(res) != 1 ? "no such message of ours" : "busy or not connected"));
        free(rr);
        return;
    }
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
    if (wa_client_signal(M.c, &g, &sc, &st) < 0) {
        free(rr);
        return;
    }
    /* The recipient lost our session: start a new one from a fresh bundle. */
    char name[96];
    wa_msg_address_name(rr->user, rr->server, name, sizeof name);
    signal_protocol_address addr = {name, strlen(name), rr->dev};
    signal_protocol_session_delete_session(sc, &addr);
    const char *chat = PQgetvalue(res, 0, 2);
    wa_arena *a = wa_arena_new();
    wa_jid cj;
    int ok = wa_jid_parse(a, chat, &cj) == WA_OK && strlen(cj.user) < sizeof M.s.to_user &&
             strlen(cj.server) < sizeof M.s.to_server;
    if (ok) {
        memset(&M.s.devs, 0, sizeof M.s.devs);
        snprintf(M.s.id, sizeof M.s.id, "%s", rr->id);
        snprintf(M.s.to_user, sizeof M.s.to_user, "%s", cj.user);
        snprintf(M.s.to_server, sizeof M.s.to_server, "%s", cj.server);
        M.s.text = strdup(PQgetvalue(res, 0, 0));
        M.s.reply_to = PQgetisnull(res, 0, 1) ? NULL : strdup(PQgetvalue(res, 0, 1));
        struct device *d = &M.s.devs[0];
        snprintf(d->user, sizeof d->user, "%s", rr->user);
        snprintf(d->server, sizeof d->server, "%s", rr->server);
        d->dev = rr->dev;
        d->own = strcmp(rr->user, own_user) == 0;
        M.s.ndevs = 1;
        M.s.active = 1;
        M.s.waiting_ack = 0;
        M.s.retry = rr->count > 0 ? rr->count : 1;
        M.s.gen++;
        struct timeval tv = {SEND_TIMEOUT_S, 0};
        evtimer_add(M.send_timer, &tv);
        log_info("resending a message the recipient could not decrypt", LF_S("id", rr->id), LF_I("count", M.s.retry));
        fetch_prekeys_or_send();
    }
    wa_arena_free(a);
    free(rr);
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
    int count = cnt ? atoi(cnt) : 1;
    log_warn("the recipient could not decrypt a message we sent", LF_S("id", id), LF_S("from", from),
             LF_I("count", count));
    if (count > MAX_RETRY_RECEIPTS) {
        wa_arena_free(a);
        return;
    }
    struct retry_req *rr = calloc(1, sizeof *rr);
    if (rr) {
        snprintf(rr->id, sizeof rr->id, "%s", id);
        snprintf(rr->user, sizeof rr->user, "%s", fj.user);
        snprintf(rr->server, sizeof rr->server, "%s", fj.server);
        rr->dev = fj.device;
        rr->count = count;
        const char *p[] = {id};
        if (!sdb_query(SQL_RETRY_MSG, 1, p, on_retry_msg, rr))
            free(rr);
    }
    wa_arena_free(a);
}

static void handle_receipt(const wa_node *n)
{
    const char *type = wa_node_attr_str(n, "type");
    char fb[128];
    const char *from = attr_text(n, "from", fb, sizeof fb);
    const char *status = !type || !*type ? "delivered"
                         : !strcmp(type, "read") || !strcmp(type, "read-self") ? "read"
                         : !strcmp(type, "played") ? "played"
                         : NULL;
    if (type && !strcmp(type, "retry"))
        handle_retry_receipt(n, from);
    if (status && M.ev.on_receipt && from) {
        const char *id = wa_node_attr_str(n, "id");
        if (id)
            M.ev.on_receipt(M.arg, id, status, from);
        const wa_node *list = wa_node_child(n, "list");
        if (list && list->content == WA_CONTENT_LIST)
            for (uint32_t i = 0; i < list->nchildren; i++) {
                const char *iid = wa_node_attr_str(list->children[i], "id");
                if (!strcmp(list->children[i]->tag, "item") && iid)
                    M.ev.on_receipt(M.arg, iid, status, from);
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
    /* <message>: one at a time, in order. */
    if (M.qlen == MAX_QUEUE) {
        log_warn("incoming queue full; the server will resend", LF_S("id", wa_node_attr_str(n, "id")));
        return 0;
    }
    M.q[(M.qhead + M.qlen) % MAX_QUEUE] = (struct qitem){a, n};
    M.qlen++;
    process_next();
    return 1;
}

static void on_connected(void *arg)
{
    (void)arg;
    M.connected = 1;
    if (M.ev.on_ready)
        M.ev.on_ready(M.arg);
}

static void on_disconnect(void *arg)
{
    (void)arg;
    M.connected = 0;
    /* Queued stanzas (not the one being committed) are dropped: the server resends them. */
    if (!M.busy)
        while (M.qlen)
            finish_item();
    if (M.s.active)
        send_done(WA_SEND_TRANSIENT, "connection lost");
}

void wa_messaging_init(struct wa_client *c, const struct wa_messaging_events *ev, void *arg)
{
    M.c = c;
    M.ev = *ev;
    M.arg = arg;
    M.send_timer = evtimer_new(S.base, on_send_timeout, NULL);
    struct wa_client_hooks h = {on_stanza, on_connected, on_disconnect};
    wa_client_set_hooks(c, &h, NULL);
}
