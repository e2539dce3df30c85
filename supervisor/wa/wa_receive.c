/* The receive side of messaging: <message> stanzas queued, taken in
 * batches, decrypted, handed to the application, and answered (Signal state
 * flushed, receipts, acks) only once it says the batch is stored. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "wa_messaging_int.h"
#include "wa_group_cipher.h"
#include "wa_peerdata.h"
#include "wa_signal_store.h"

/* A <receipt> answering stanza n (id, to = its from), in a; NULL when n
 * has no id or sender. */
static wa_node *receipt_for(wa_arena *a, const wa_node *n)
{
    char fb[128];
    const char *id = wa_node_attr_str(n, "id");
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    wa_jid j;
    if (!a || !id || !from)
        return NULL;
    wa_node *r = wa_node_new(a, "receipt");
    wa_node_add_attr(a, r, "id", id);
    if (wa_jid_parse(a, from, &j) == WA_OK)
        wa_node_add_attr_jid(a, r, "to", &j);
    return r;
}

static void send_receipt(const wa_node *n, const char *type, const char *recipient)
{
    char pb[128];
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    wa_arena *a = wa_arena_new();
    wa_node *r = receipt_for(a, n);
    wa_jid j;
    if (r) {
        if (participant && wa_jid_parse(a, participant, &j) == WA_OK)
            wa_node_add_attr_jid(a, r, "participant", &j);
        if (recipient && wa_jid_parse(a, recipient, &j) == WA_OK)
            wa_node_add_attr_jid(a, r, "recipient", &j);
        if (type)
            wa_node_add_attr(a, r, "type", type);
        wa_client_send_node(wam.c, r);
    }
    wa_arena_free(a);
}

static void send_retry_receipt(const wa_node *n, int count)
{
    const char *id = wa_node_attr_str(n, "id");
    const char *t = wa_node_attr_str(n, "t");
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (!cr)
        return;
    wa_arena *a = wa_arena_new();
    wa_node *r = receipt_for(a, n);
    if (!r) {
        wa_arena_free(a);
        return;
    }
    wa_node_add_attr(a, r, "type", "retry");
    char pb[128];
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    wa_jid pj;
    if (participant && wa_jid_parse(a, participant, &pj) == WA_OK)
        wa_node_add_attr_jid(a, r, "participant", &pj); /* a group's sender: who is asked to send again */
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
    wa_client_send_node(wam.c, r);
    wa_arena_free(a);
}

static int retry_count(const char *id)
{
    int free_slot = -1;
    for (int i = 0; i < RETRY_SLOTS; i++) {
        if (wam.retries[i].id[0] && strcmp(wam.retries[i].id, id) == 0)
            return ++wam.retries[i].count;
        if (!wam.retries[i].id[0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        free_slot = (int)(wam.decrypt_failures % RETRY_SLOTS);
    snprintf(wam.retries[free_slot].id, sizeof wam.retries[free_slot].id, "%s", id);
    wam.retries[free_slot].count = 1;
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
    int peer_receipt;    /* <receipt type=peer_msg>: our phone's peer message (category=peer) */
    int fill;            /* our phone sent a message again: it fills its placeholder */
    char fid[64];        /* ... whose id (id points here) */
    char *fpush;         /* ... and push name (push_name points here; owned) */
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
    while (n-- > 0 && wam.qlen > 0) {
        struct qitem *it = &wam.q[wam.qhead];
        wa_arena_free(it->a);
        it->a = NULL;
        wam.qhead = (wam.qhead + 1) % MAX_QUEUE;
        wam.qlen--;
    }
    if (wam.paused && wam.qlen <= QUEUE_RESUME) {
        wam.paused = 0;
        wa_client_pause(wam.c, 0);
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
        send_receipt(n,
                     im->peer_receipt     ? "peer_msg"
                     : im->sender_receipt ? "sender"
                                          : NULL,
                     im->recipient[0] && !im->peer_receipt ? im->recipient : NULL);
        break;
    case A_RETRY:
        if (im->retry > 0)
            send_retry_receipt(n, im->retry);
        break;
    }
    wa_client_ack(wam.c, n);
}

/* The batch ends: answered when stored (applied: one 't' or 'f' per
 * element), else forgotten so that the server's resend decrypts again. */
static void batch_end(const char *applied, const char *err)
{
    char ferr[256];
    struct wa_signal sig;
    int have_sig = wa_client_signal(wam.c, &sig) == 0;
    const char *first = wa_node_attr_str(wam.q[wam.qhead].n, "id");
    if (!applied) {
        /* Not stored: forget the decryptions, and make the server resend by
         * reconnecting. */
        log_error("cannot store incoming messages; not acknowledging them", LF_I("messages", nb),
                  LF_S("first_id", first), LF_S("error", err));
        if (have_sig && wa_signal_store_reload(sig.st, ferr, sizeof ferr) < 0)
            log_error("cannot reload the Signal store", LF_S("error", ferr));
        wa_client_reconnect(wam.c, "incoming messages not stored");
    } else if (have_sig && wa_signal_store_flush(sig.st, ferr, sizeof ferr) < 0) {
        log_error("cannot store the Signal state", LF_S("error", ferr));
    }
    for (int i = 0; i < nb; i++) {
        struct inmsg *im = &B[i];
        const wa_node *n = wam.q[(wam.qhead + (size_t)i) % MAX_QUEUE].n;
        if (applied)
            answer(im, n);
        wa_msg_content_free(&im->mc);
        free(im->fpush);
        im->fpush = NULL;
    }
    drop_items((size_t)nb);
    nb = nsql = 0;
    wam.busy = 0;
}

void wa_messaging_stored(uint64_t token, const char *applied, const char *err)
{
    if (!wam.busy || token != wam.token || nsql == 0) {
        log_error("incoming batch answered twice or unknown; ignored", LF_I("token", (long long)token));
        return;
    }
    if (applied && (strlen(applied) != (size_t)nsql || strspn(applied, "tf") != (size_t)nsql)) {
        applied = NULL; /* not the answer asked for: treated as not stored */
        err = "the answer does not match the batch";
    }
    batch_end(applied, err ? err : "not stored");
    wam_next_turn();
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

/* Broadcast lists other than status, and newsletters, are not decrypted
 * yet: each is still stored (type unsupported, subtype naming the kind of
 * chat, sender from participant) before its receipt and ack, so nothing
 * acknowledged is lost and the API shows that it came. (Groups and status
 * were stored so too, as group_message / broadcast_message, before sender
 * keys were supported; those rows stay as they are.) */
static void store_undecryptable_group(struct inmsg *im, wa_node *n, wa_arena *a, const char *id,
                                      const char *from, const wa_jid *fj, const char *own_user, const char *t,
                                      const char *notify)
{
    char pb[128], sender[128] = "";
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    wa_jid pj;
    int from_me = 0;
    if (participant && wa_jid_parse(a, participant, &pj) == WA_OK && pj.user[0]) {
        /* One of our devices, by phone number or by LID: we are the sender. */
        from_me = wam_is_own(&pj);
        if (from_me)
            snprintf(sender, sizeof sender, "%s@s.whatsapp.net", own_user);
        else
            snprintf(sender, sizeof sender, "%s@%s", pj.user, pj.server);
    }
    const char *kind = !strcmp(fj->server, "g.us")         ? "group_message"
                       : !strcmp(fj->server, "broadcast")  ? "broadcast_message"
                       : !strcmp(fj->server, "newsletter") ? "newsletter_message"
                                                           : "other_message";
    char chat[128];
    snprintf(chat, sizeof chat, "%s@%s", fj->user, fj->server);
    log_info("message in a broadcast list or newsletter: stored as unsupported", LF_S("id", id),
             LF_S("from", from));
    struct wa_msg_content mc = {.kind = WA_MSG_UNSUPPORTED, .subtype = strdup(kind)};
    im->answer = A_RECEIPT;
    if (!mc.subtype) {
        broken = 1;
        return;
    }
    add_element(im, id, chat, sender[0] ? sender : NULL, from_me, stanza_time(t), from_me ? NULL : notify,
                NULL, &mc);
}

/* Who a message is from and in which chat, as far as the stanza tells
 * (the placeholder of one that cannot be decrypted is stored under it). */
struct addr {
    char chat[128], sender[128], lid[128];
    int from_me;
};

/* A message that could not be decrypted: nothing of its Signal state is
 * kept, and a retry receipt asks for it again while retries are left. When
 * it fails for good it is stored as a placeholder (the application then
 * asks our phone to send it again): the retries are used up (the sender's
 * resends failed too), the plaintext came out but is no Message (a resend
 * carries the same bytes), or the stanza has nothing for this device to
 * decrypt (nothing a retry receipt asks for). */
static void undecryptable(struct inmsg *im, struct wa_signal *sig, const char *id, const char *from, int rc,
                          int any, const char *why, const struct addr *ad, const char *t, const char *notify)
{
    /* Nothing of this one is kept; the others of the batch are. */
    if (wa_signal_store_rollback(sig->st) < 0)
        broken = 1; /* out of memory: the whole batch is forgotten */
    wam.decrypt_failures++;
    if (wam.rev.on_undecryptable)
        wam.rev.on_undecryptable(wam.rarg, id, from);
    int cnt = retry_count(id);
    log_warn("cannot decrypt an incoming message", LF_S("id", id), LF_S("from", from), LF_S("why", why),
             LF_I("code", rc), LF_I("retry", cnt), LF_I("failures_total", (long long)wam.decrypt_failures));
    im->answer = A_RETRY;
    im->retry = any && cnt <= MAX_RETRY_RECEIPTS ? cnt : 0;
    int final = (any && cnt > MAX_RETRY_RECEIPTS) || rc == 0 || !any;
    if (!ad)
        return;
    if (!final) {
        /* Acked with the retry receipt: remembered in the same commit, so
         * a resend that never comes (a sender that does not answer, a
         * crash) still ends as a placeholder rather than nothing. */
        struct wa_msg_content wait = {.kind = WA_MSG_RETRY_WAIT};
        add_element(im, id, ad->chat, ad->sender[0] ? ad->sender : NULL, ad->from_me, stanza_time(t),
                    ad->from_me ? NULL : notify, ad->lid[0] ? ad->lid : NULL, &wait);
        return;
    }
    im->retry = 0;
    log_warn("incoming message cannot be decrypted for good: stored as a placeholder", LF_S("id", id),
             LF_S("from", from), LF_S("why", why));
    struct wa_msg_content mc = {.kind = WA_MSG_UNDECRYPTABLE};
    add_element(im, id, ad->chat, ad->sender[0] ? ad->sender : NULL, ad->from_me, stanza_time(t),
                ad->from_me ? NULL : notify, ad->lid[0] ? ad->lid : NULL, &mc);
}

/* A sender's answer to our retry receipt: its <enc> says which try it is. */
static int is_resend(const wa_node *n)
{
    for (uint32_t i = 0; n->content == WA_CONTENT_LIST && i < n->nchildren; i++)
        if (!strcmp(n->children[i]->tag, "enc") && wa_node_attr_str(n->children[i], "count"))
            return 1;
    return 0;
}

/* Unpads and parses a decryption's result into mc (then 0); frees plain. */
static int open_plain(uint8_t *plain, size_t plen, struct wa_msg_content *mc)
{
    long ulen = wa_msg_unpad(plain, plen);
    int r = ulen < 0 ? -1 : wa_msg_parse(plain, (size_t)ulen, mc);
    OPENSSL_cleanse(plain, plen);
    free(plain);
    return r;
}

/* ad->sender came from a LID (from_lid) or a phone number; the stanza may
 * name the other form beside it (pn_attr, lid_attr): ad->lid gets the LID
 * and ad->sender the phone number whenever it is known. */
static void other_address(const wa_node *n, wa_arena *a, int from_lid, const char *pn_attr,
                          const char *lid_attr, struct addr *ad)
{
    char alt[128];
    const char *other = wam_alt_jid(n, a, from_lid ? pn_attr : lid_attr, from_lid ? "s.whatsapp.net" : "lid",
                                    alt, sizeof alt);
    if (from_lid) {
        snprintf(ad->lid, sizeof ad->lid, "%s", ad->sender);
        if (other)
            snprintf(ad->sender, sizeof ad->sender, "%s", other);
    } else if (other) {
        snprintf(ad->lid, sizeof ad->lid, "%s", other);
    }
}

/* A group message's sender (pj), by phone number and LID as far as told. */
static void group_address(const wa_node *n, wa_arena *a, const wa_jid *pj, const char *own_user,
                          const char *chat, struct addr *ad)
{
    memset(ad, 0, sizeof *ad);
    snprintf(ad->chat, sizeof ad->chat, "%s", chat);
    ad->from_me = wam_is_own(pj);
    int from_lid = !strcmp(pj->server, "lid");
    snprintf(ad->sender, sizeof ad->sender, "%s@%s", pj->user, pj->server);
    if (ad->from_me) {
        if (from_lid)
            snprintf(ad->lid, sizeof ad->lid, "%s", ad->sender);
        snprintf(ad->sender, sizeof ad->sender, "%s@s.whatsapp.net", own_user);
        return;
    }
    /* In a LID-addressed group the server names the phone number beside the
     * LID (participant_pn); in others, perhaps the LID. */
    other_address(n, a, from_lid, "participant_pn", "participant_lid", ad);
}

/* A direct message's chat and sender (fj): dest names the chat when one of
 * our other devices sent it (the deviceSentMessage's, else the stanza's
 * recipient; else our own chat). */
static void direct_address(const wa_node *n, wa_arena *a, const wa_jid *fj, const char *own_user,
                           const char *dest, struct addr *ad)
{
    memset(ad, 0, sizeof *ad);
    ad->from_me = wam_is_own(fj);
    int from_lid = strcmp(fj->server, "lid") == 0;
    snprintf(ad->sender, sizeof ad->sender, "%s@%s", fj->user, fj->server);
    if (ad->from_me) {
        /* One of our other devices, by phone number or by LID (then we are
         * still the sender by phone number). */
        if (from_lid) {
            snprintf(ad->lid, sizeof ad->lid, "%s", ad->sender);
            snprintf(ad->sender, sizeof ad->sender, "%s@s.whatsapp.net", own_user);
        }
        wa_jid dj;
        if (!dest || wa_jid_parse(a, dest, &dj) != WA_OK)
            snprintf(ad->chat, sizeof ad->chat, "%s", ad->sender);
        else
            snprintf(ad->chat, sizeof ad->chat, "%s@%s", dj.user, dj.server);
        return;
    }
    /* The chat is keyed by the phone number whenever it is known. */
    other_address(n, a, from_lid, "sender_pn", "sender_lid", ad);
    snprintf(ad->chat, sizeof ad->chat, "%s", ad->sender);
}

/* Our phone's answer to a placeholder resend request (a peer data
 * operation answer, from device 0 of our own account): the message it sent
 * again fills its placeholder. One per answer (we ask for one at a time);
 * anything unusable is logged and changes nothing. */
static void take_resent(struct inmsg *im, const char *id, const struct wa_msg_content *pd, wa_arena *a,
                        const char *t)
{
    struct wa_pd_resent r[WA_PD_MAX_RESULTS];
    size_t nr = 0, skipped = 0;
    char err[128];
    if (wa_pd_parse_response(pd->peer_data, pd->peer_data_len, r, WA_PD_MAX_RESULTS, &nr, &skipped, err,
                             sizeof err) < 0) {
        log_warn("our phone's peer data answer is unusable; ignored", LF_S("id", id), LF_S("error", err));
        return;
    }
    if (skipped || nr > 1)
        log_warn("our phone's peer data answer: results left out", LF_S("id", id),
                 LF_I("usable", (long long)nr), LF_I("unusable", (long long)skipped));
    wa_jid cj, pj;
    char chat[128], part[128] = "";
    if (nr > 0 && r[0].mc.kind != WA_MSG_NONE && r[0].mc.kind != WA_MSG_PEER_DATA &&
        r[0].mc.kind != WA_MSG_HISTORY_SYNC && wa_jid_parse(a, r[0].chat, &cj) == WA_OK && cj.user[0] &&
        (!r[0].participant || (wa_jid_parse(a, r[0].participant, &pj) == WA_OK && pj.user[0]))) {
        snprintf(chat, sizeof chat, "%s@%s", cj.user, cj.server);
        if (r[0].participant)
            snprintf(part, sizeof part, "%s@%s", pj.user, pj.server);
        snprintf(im->fid, sizeof im->fid, "%s", r[0].id);
        im->fpush = r[0].push_name;
        r[0].push_name = NULL;
        im->fill = 1;
        log_info("our phone sent again a message we could not decrypt", LF_S("id", im->fid),
                 LF_S("answer", id));
        add_element(im, im->fid, chat, part[0] ? part : NULL, r[0].from_me,
                    r[0].ts > 0 ? r[0].ts : stanza_time(t), im->fpush, NULL, &r[0].mc);
    } else if (nr > 0) {
        log_warn("our phone's peer data answer holds nothing to store; ignored", LF_S("id", id));
    }
    for (size_t i = 0; i < nr; i++)
        wa_pd_resent_free(&r[i]);
}

/* A group (or status) message: <message from=group participant=sender>
 * with a pairwise <enc type=pkmsg|msg> when the sender hands us its key
 * (a SenderKeyDistributionMessage, or the whole message when it answers a
 * retry receipt) and an <enc type=skmsg> for every member. */
static void prepare_group(struct inmsg *im, wa_node *n, wa_arena *a, const char *id, const char *from,
                          const wa_jid *gj, const char *own_user, const char *t, const char *notify)
{
    char pb[128], chat[128], name[96];
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    wa_jid pj;
    if (!participant || wa_jid_parse(a, participant, &pj) != WA_OK || !pj.user[0] ||
        (strcmp(pj.server, "s.whatsapp.net") && strcmp(pj.server, "lid"))) {
        log_warn("group message without a usable participant; acknowledged and dropped", LF_S("id", id),
                 LF_S("from", from));
        im->answer = A_ACK;
        return;
    }
    snprintf(chat, sizeof chat, "%s@%s", gj->user, gj->server);
    wa_msg_address_name(pj.user, pj.server, name, sizeof name);
    struct addr ad;
    group_address(n, a, &pj, own_user, chat, &ad);
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) < 0)
        return; /* A_NONE */
    wa_signal_store_mark(sig.st);
    struct wa_msg_content mc = {.kind = WA_MSG_NONE}, pc = {.kind = WA_MSG_NONE};
    int rc = 0, any = 0, dup = 0, got_sk = 0;
    const char *why = "no <enc> for this device";
    for (uint32_t i = 0; n->content == WA_CONTENT_LIST && i < n->nchildren && rc == 0; i++) {
        const wa_node *e = n->children[i];
        if (strcmp(e->tag, "enc") != 0)
            continue;
        const char *v = wa_node_attr_str(e, "v"), *et = wa_node_attr_str(e, "type");
        int sk = et && !strcmp(et, "skmsg"), pair = et && (!strcmp(et, "pkmsg") || !strcmp(et, "msg"));
        if (!sk && !pair) {
            why = "unsupported <enc> type";
            continue;
        }
        if (!v || strcmp(v, "2") || e->content != WA_CONTENT_BYTES || e->nbytes == 0 || e->nbytes > MAX_ENC) {
            why = "malformed <enc>";
            continue;
        }
        any = 1;
        uint8_t *plain = NULL;
        size_t plen = 0;
        struct wa_msg_content *into = sk ? &mc : &pc;
        if (into->kind != WA_MSG_NONE || (sk && got_sk))
            continue; /* one of each kind counts */
        got_sk |= sk;
        rc = sk ? wa_gc_decrypt(sig.sc, sig.g, chat, name, pj.device, e->bytes, e->nbytes, &plain, &plen)
                : wa_msg_decrypt(sig.sc, sig.g, name, pj.device,
                                 !strcmp(et, "pkmsg") ? WA_ENC_PKMSG : WA_ENC_MSG, e->bytes, e->nbytes,
                                 &plain, &plen);
        if (rc == SG_ERR_DUPLICATE_MESSAGE) {
            dup = 1;
            rc = 0;
            continue;
        }
        if (rc != 0) {
            why = sk ? (rc == SG_ERR_NO_SESSION ? "no sender key of this sender yet"
                                                : "group decryption failed")
                     : "decryption failed";
            break;
        }
        wa_msg_content_free(into);
        if (open_plain(plain, plen, into) < 0) {
            rc = -1;
            why = "bad padding or not a Message";
            break;
        }
        /* The sender's key, before the skmsg that follows uses it. The group
         * is the stanza's, whatever the message names: keys are looked up
         * by the chat they arrive in. */
        if (!sk && pc.skdm) {
            int kr = wa_gc_process_skdm(sig.sc, sig.g, chat, name, pj.device, pc.skdm, pc.skdm_len);
            if (kr != 0)
                log_warn("a sender key distribution message was refused", LF_S("id", id),
                         LF_S("from", participant), LF_I("code", kr));
        }
    }
    /* The content: the skmsg's, or the pairwise copy's (a resend after a
     * retry receipt carries the message itself). */
    struct wa_msg_content *c = mc.kind != WA_MSG_NONE ? &mc : &pc;
    if (rc != 0 || !any) {
        wa_msg_content_free(&mc);
        wa_msg_content_free(&pc);
        undecryptable(im, &sig, id, from, rc, any, why, &ad, t, notify);
        return;
    }
    im->answer = A_RECEIPT;
    if (c->kind == WA_MSG_PEER_DATA) /* only our phone's, pairwise, is read */
        c->kind = WA_MSG_NONE;
    if (dup && c->kind == WA_MSG_NONE) {
        log_info("incoming message seen before; acknowledging again", LF_S("id", id));
        wa_msg_content_free(&mc);
        wa_msg_content_free(&pc);
        return;
    }
    im->sender_receipt = ad.from_me;
    if (c->kind == WA_MSG_APPSTATE_KEYS ||
        c->kind == WA_MSG_HISTORY_SYNC) /* keys and history come from our phone alone */
        c->kind = WA_MSG_NONE;
    if (c->kind == WA_MSG_NONE && is_resend(n))
        c->kind = WA_MSG_RETRY_DONE;
    if (c->kind != WA_MSG_NONE)
        add_element(im, id, chat, ad.sender, ad.from_me, stanza_time(t), ad.from_me ? NULL : notify,
                    ad.lid[0] ? ad.lid : NULL, c);
    wa_msg_content_free(&mc);
    wa_msg_content_free(&pc);
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
        wam_own_address(own_user, sizeof own_user, &own_dev) < 0) {
        log_warn("message stanza without a usable id or sender; acknowledged and dropped");
        im->answer = A_ACK;
        return;
    }
    if (!strcmp(fj.server, "g.us") || (!strcmp(fj.server, "broadcast") && !strcmp(fj.user, "status"))) {
        prepare_group(im, n, a, id, from, &fj, own_user, t, notify);
        return;
    }
    if (strcmp(fj.server, "s.whatsapp.net") != 0 && strcmp(fj.server, "lid") != 0) {
        store_undecryptable_group(im, n, a, id, from, &fj, own_user, t, notify);
        return;
    }
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) < 0)
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
                why = "unsupported <enc> type for a direct chat";
                continue;
            }
            if (!v || strcmp(v, "2") || e->content != WA_CONTENT_BYTES || e->nbytes == 0 ||
                e->nbytes > MAX_ENC) {
                why = "malformed <enc>";
                continue;
            }
            any = 1;
            int type = strcmp(et, "pkmsg") == 0 ? WA_ENC_PKMSG : WA_ENC_MSG;
            rc = wa_msg_decrypt(sig.sc, sig.g, name, fj.device, type, e->bytes, e->nbytes, &plain, &plen);
            /* A contact who wrote by phone number and now writes by LID (or
             * back): the session was made under the other address (no
             * session here; or, for a prekey message the sender repeats
             * until we answer, its prekey is used up). The stanza names the
             * other address beside the sender (sender_pn / sender_lid). */
            char alt[128], altname[96];
            wa_jid aj;
            int lid = !strcmp(fj.server, "lid");
            if ((rc == SG_ERR_NO_SESSION || (rc == SG_ERR_INVALID_KEY_ID && type == WA_ENC_PKMSG)) &&
                wam_alt_jid(n, a, lid ? "sender_pn" : "sender_lid", lid ? "s.whatsapp.net" : "lid", alt,
                            sizeof alt) &&
                wa_jid_parse(a, alt, &aj) == WA_OK && aj.user[0]) {
                wa_msg_address_name(aj.user, aj.server, altname, sizeof altname);
                rc = wa_msg_decrypt(sig.sc, sig.g, altname, fj.device, type, e->bytes, e->nbytes, &plain,
                                    &plen);
                if (rc == 0)
                    log_info("decrypted under the contact's other address", LF_S("id", id),
                             LF_S("from", from));
            }
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
    struct wa_msg_content mc;
    if (rc != 0 || open_plain(plain, plen, &mc) < 0) {
        if (rc != 0 && plain) {
            OPENSSL_cleanse(plain, plen);
            free(plain);
        }
        struct addr ad;
        direct_address(n, a, &fj, own_user, recipient, &ad);
        undecryptable(im, &sig, id, from, rc, any,
                      rc == 0 ? "bad padding or not a Message"
                      : any   ? "decryption failed"
                              : why,
                      &ad, t, notify);
        return;
    }
    const char *category = wa_node_attr_str(n, "category");
    im->peer_receipt = category && !strcmp(category, "peer");
    if (mc.kind == WA_MSG_PEER_DATA) {
        im->answer = A_RECEIPT;
        im->sender_receipt = wam_is_own(&fj);
        if (wam_is_own(&fj) && fj.device == 0)
            take_resent(im, id, &mc, a, t);
        else
            log_warn("a peer data answer not from our phone; ignored", LF_S("id", id), LF_S("from", from));
        wa_msg_content_free(&mc);
        return;
    }
    struct addr ad;
    direct_address(n, a, &fj, own_user, mc.dsm_dest ? mc.dsm_dest : recipient, &ad);
    im->answer = A_RECEIPT;
    im->sender_receipt = ad.from_me;
    /* App-state keys are our phone's to share: from anyone else they are dropped. */
    if (mc.kind == WA_MSG_APPSTATE_KEYS && !(ad.from_me && fj.device == 0)) {
        log_warn("app-state keys not from our phone: ignored", LF_S("id", id), LF_S("from", from));
        mc.kind = WA_MSG_NONE;
    }
    /* History too: anyone else's notification could fill our chats. */
    if (mc.kind == WA_MSG_HISTORY_SYNC && !(ad.from_me && fj.device == 0)) {
        log_warn("a history sync notification not from our phone: ignored", LF_S("id", id),
                 LF_S("from", from));
        mc.kind = WA_MSG_NONE;
    }
    if (mc.kind == WA_MSG_NONE && is_resend(n))
        mc.kind = WA_MSG_RETRY_DONE;
    if (mc.kind != WA_MSG_NONE) {
        if (ad.from_me)
            snprintf(im->recipient, sizeof im->recipient, "%s", ad.chat);
        add_element(im, id, ad.chat, ad.sender, ad.from_me, stanza_time(t), ad.from_me ? NULL : notify,
                    ad.lid[0] ? ad.lid : NULL, &mc);
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
 * messages are committed and acknowledged meanwhile.
 *
 * Takes what has arrived (up to BATCH_MAX stanzas) as one batch: each
 * decrypted in order, one statement (one transaction) for all, then one
 * flush of the Signal state, then every receipt and ack. One batch at a
 * time: the next one is what arrived meanwhile, so the time from a message's
 * arrival to its ack stays near two commits however fast they come. */
void wam_process_next(void)
{
    if (wam.busy || wam_send_holds_store() || wam.qlen == 0)
        return;
    if (!wam.connected) {
        drop_items(wam.qlen); /* the server resends what was not acknowledged */
        return;
    }
    wam.busy = 1;
    nb = (int)(wam.qlen < BATCH_MAX ? wam.qlen : BATCH_MAX);
    nsql = broken = 0;
    for (int i = 0; i < nb; i++) {
        struct qitem *it = &wam.q[(wam.qhead + (size_t)i) % MAX_QUEUE];
        memset(&B[i], 0, sizeof B[i]);
        B[i].sql = -1;
        prepare(&B[i], it->n, it->a);
    }
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) == 0)
        wa_signal_store_unmark(sig.st);
    if (broken) {
        batch_end(NULL, "out of memory");
        wam_next_turn();
        return;
    }
    if (nsql == 0) {
        /* Nothing to store: flushed and answered now; the next turn on the loop. */
        batch_end("", NULL);
        event_active(wam.pump_ev, EV_TIMEOUT, 0);
        return;
    }
    struct wa_incoming in[BATCH_MAX];
    for (int i = 0; i < nb; i++) {
        const struct inmsg *im = &B[i];
        if (im->sql < 0)
            continue;
        in[im->sql] =
            (struct wa_incoming){im->id,  im->chat,      im->sender[0] ? im->sender : NULL, im->from_me,
                                 im->ts,  im->push_name, im->lid[0] ? im->lid : NULL,       &im->mc,
                                 im->fill};
    }
    /* The answer may come from within the call. */
    uint64_t token = ++wam.token;
    if (!wam.rev.on_incoming || wam.rev.on_incoming(wam.rarg, in, nsql, token) < 0)
        wa_messaging_stored(token, NULL, "the application did not take the messages");
}

/* A <message>: queued, in order, each committed before its receipt and ack.
 * 1: the stanza (and a) are kept. */
int wam_receive_stanza(wa_node *n, wa_arena *a)
{
    if (wam.qlen == MAX_QUEUE) {
        /* Not reached while the pause below holds: a last resort. */
        log_warn("incoming queue full; dropped, the server resends it after a reconnect",
                 LF_S("id", wa_node_attr_str(n, "id")));
        return 0;
    }
    wam.q[(wam.qhead + wam.qlen) % MAX_QUEUE] = (struct qitem){a, n};
    wam.qlen++;
    if (!wam.paused && wam.qlen >= QUEUE_PAUSE) {
        wam.paused = 1;
        wa_client_pause(wam.c, 1);
        log_warn("incoming messages arrive faster than they are stored; reading paused",
                 LF_I("queued", (long long)wam.qlen));
    }
    wam_process_next();
    return 1;
}

/* The connection went away. */
void wam_receive_disconnect(void)
{
    wam.paused = 0; /* the next connection is read from the start */
    /* Queued stanzas not in the batch being committed are dropped: the server resends them. */
    size_t keep = wam.busy ? (size_t)nb : 0;
    while (wam.qlen > keep) {
        struct qitem *it = &wam.q[(wam.qhead + wam.qlen - 1) % MAX_QUEUE];
        wa_arena_free(it->a);
        it->a = NULL;
        wam.qlen--;
    }
}
