/* The send side of messaging: device lists (usync, cached), prekey
 * bundles, encryption per device, the Signal state flushed before the
 * stanzas go, a window of stanzas awaiting the server's ack; acks, delivery
 * receipts and retry receipts from the recipients. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "wa_actions.h"
#include "wa_messaging_int.h"
#include "wa_crypto.h"
#include "wa_peerdata.h"
#include "wa_signal_store.h"

static void pump(void);
static void batch_flush(void);
static void continue_send(void);

/* -- device lists -- */

struct device *wam_dev_add(void)
{
    if (wam.s.ndevs == wam.s.devcap) {
        int cap = wam.s.devcap ? wam.s.devcap * 2 : MAX_DEVICES;
        struct device *d = cap <= MAX_SEND_DEVICES ? realloc(wam.s.devs, (size_t)cap * sizeof *d) : NULL;
        if (!d)
            return NULL;
        wam.s.devs = d;
        wam.s.devcap = cap;
    }
    struct device *x = &wam.s.devs[wam.s.ndevs++];
    memset(x, 0, sizeof *x);
    return x;
}

static void add_devices(const struct wa_devcache *e, int own, int own_dev)
{
    for (int k = 0; k < e->n; k++) {
        if (own && e->dev[k] == own_dev)
            continue; /* ourselves */
        struct device *x = wam_dev_add();
        if (!x)
            return;
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
    struct wa_devcache *r = wa_devcache_find(wam.s.to_user, wam.s.to_server, wam_now_ms());
    int self = strcmp(wam.s.to_user, own_user) == 0;
    struct wa_devcache *o = self ? r : wa_devcache_find(own_user, "s.whatsapp.net", wam_now_ms());
    if (!r || !o)
        return -1;
    wam.s.ndevs = 0;
    add_devices(r, self, own_dev);
    int nrecipient = self ? 0 : wam.s.ndevs;
    if (!self)
        add_devices(o, 1, own_dev);
    return nrecipient;
}

/* -- the window of sends awaiting their ack -- */

static void arm_timer(void)
{
    int64_t next = INT64_MAX;
    if (wam.s.active)
        next = wam.s.deadline_ms;
    for (int i = 0; i < wam.naw; i++)
        if (wam.aw[i].deadline_ms < next)
            next = wam.aw[i].deadline_ms;
    if (next == INT64_MAX) {
        evtimer_del(wam.send_timer);
        return;
    }
    int64_t d = next - wam_now_ms();
    if (d < 0)
        d = 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    evtimer_add(wam.send_timer, &tv);
}

/* The outcome of one send: to the outbox, or (a resend, a peer message)
 * only logged. */
static void report(const char *id, int retry, int peer, enum wa_send_result r, const char *err)
{
    if (peer) {
        log_info("peer message to our phone", LF_S("id", id), LF_I("ok", r == WA_SEND_OK),
                 LF_S("why", err ? err : ""));
        if (wam.sev.on_ready)
            wam.sev.on_ready(wam.sarg);
        return;
    }
    if (retry) {
        /* The message itself was sent before: its status does not change. */
        log_info("message resent after a retry receipt", LF_S("id", id), LF_I("ok", r == WA_SEND_OK),
                 LF_S("why", err ? err : ""));
        if (wam.sev.on_ready)
            wam.sev.on_ready(wam.sarg); /* the outbox may go on */
        return;
    }
    if (wam.sev.on_sent)
        wam.sev.on_sent(wam.sarg, id, r, err);
}

static void clear_prep(void)
{
    wam.s.active = 0;
    wam.s.retry = 0;
    wam.s.peer = 0;
    wam.s.group = 0;
    wam.s.deferred = 0;
    wam.s.ndevs = 0;
    if (wam.s.devcap > MAX_DEVICES) { /* a large group's list is not kept */
        free(wam.s.devs);
        wam.s.devs = NULL;
        wam.s.devcap = 0;
    }
    if (wam.s.bundles)
        OPENSSL_cleanse(wam.s.bundles, (size_t)wam.s.nbundles * sizeof *wam.s.bundles);
    free(wam.s.bundles);
    wam.s.bundles = NULL;
    wam.s.nbundles = 0;
    wam.s.gen++;
    free(wam.s.text);
    free(wam.s.reply_to);
    free(wam.s.mentions);
    wa_msg_media_free(wam.s.media);
    free(wam.s.raw);
    wam.s.text = wam.s.reply_to = wam.s.mentions = NULL;
    wam.s.media = NULL;
    wam.s.raw = NULL;
    wam.s.raw_len = 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (b && n)
        memcpy(b, p, n);
    return b;
}

void wam_stanza_type(struct wa_msg_stanza *st)
{
    memset(st, 0, sizeof *st);
    st->type = "text";
    if (wam.s.media) {
        st->type = "media";
        st->mediatype = wa_msg_media_enc_type(wam.s.media);
    } else if (wam.s.raw) {
        *st = wam.s.raw_st;
    }
}

/* The message being prepared ends before its stanza was written. */
void wam_send_done(enum wa_send_result r, const char *err)
{
    if (!wam.s.active)
        return;
    char id[64];
    snprintf(id, sizeof id, "%s", wam.s.id);
    int retry = wam.s.retry, peer = wam.s.peer;
    clear_prep();
    arm_timer();
    report(id, retry, peer, r, err);
    pump();
}

/* Its stanza is written: the ack is awaited in the window, the next may start. */
/* The encrypted stanzas of the batch go out, in order, after one flush of
 * the Signal state: the ratchet steps are durable before the ciphertexts
 * leave, and one write (with its fsync) serves a burst. */
static void batch_flush(void)
{
    if (!wam.nbatch)
        return;
    struct wa_signal sig;
    char ferr[200];
    int stored = wa_client_signal(wam.c, &sig) == 0 && wa_signal_store_flush(sig.st, ferr, sizeof ferr) == 0;
    if (!stored)
        log_error("cannot store the Signal state; not sending", LF_S("error", ferr));
    int n = wam.nbatch;
    wam.nbatch = 0;
    for (int i = 0; i < n; i++) {
        struct outgoing *o = &wam.batch[i];
        int r = stored ? wa_client_send_node(wam.c, o->msg) : -1;
        wa_arena_free(o->a);
        o->a = NULL;
        if (!stored) {
            report(o->id, o->retry, o->peer, WA_SEND_TRANSIENT, "session store write failed");
            continue;
        }
        if (r < 0) {
            report(o->id, o->retry, o->peer, WA_SEND_LOST, "connection lost while sending");
            continue;
        }
        struct awaiting *w = &wam.aw[wam.naw++];
        snprintf(w->id, sizeof w->id, "%s", o->id);
        snprintf(w->to_user, sizeof w->to_user, "%s", o->to_user);
        w->retry = o->retry;
        w->peer = o->peer;
        snprintf(w->phash, sizeof w->phash, "%s", o->phash);
        w->deadline_ms = wam_now_ms() + SEND_TIMEOUT_S * 1000;
        wam.awmsgs += !w->retry && !w->peer;
        log_info("message sent to the server", LF_S("id", o->id), LF_I("devices", o->devices),
                 LF_I("pkmsg", o->pkmsg), LF_I("awaiting_ack", wam.naw), LF_I("batch", n));
    }
}

/* Takes entry i out of the window (its copy in *out). */
static void window_take(int i, struct awaiting *out)
{
    *out = wam.aw[i];
    memmove(&wam.aw[i], &wam.aw[i + 1], (size_t)(wam.naw - i - 1) * sizeof wam.aw[0]);
    wam.naw--;
    wam.awmsgs -= !out->retry && !out->peer;
}

static void on_send_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int64_t now = wam_now_ms();
    for (int i = 0; i < wam.naw;) {
        if (wam.aw[i].deadline_ms > now) {
            i++;
            continue;
        }
        struct awaiting w;
        window_take(i, &w);
        log_warn("no ack from the server in time", LF_S("id", w.id));
        report(w.id, w.retry, w.peer, WA_SEND_TRANSIENT, "no ack from the server in time");
    }
    if (wam.s.active && wam.s.deadline_ms <= now)
        wam_send_done(WA_SEND_TRANSIENT, "no answer from the server in time");
    arm_timer();
    pump();
}

void wam_dev_jid(const struct device *d, char *buf, size_t cap)
{
    if (d->dev)
        snprintf(buf, cap, "%s:%d@%s", d->user, d->dev, d->server);
    else
        snprintf(buf, cap, "%s@%s", d->user, d->server);
}

/* Encrypts for every device with a session and writes the stanza; ends the
 * preparation either way (the next may start inside, so nothing of wam.s is
 * touched after). */
static void encrypt_and_send(void)
{
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    char to[128];
    snprintf(to, sizeof to, "%s@%s", wam.s.to_user, wam.s.to_server);
    uint8_t *plain = NULL, *dsm = NULL;
    size_t plen = 0, dlen = 0;
    int built =
        wam.s.peer
            ? (plain = dup_bytes(wam.s.raw, wam.s.raw_len)) != NULL &&
                  (dsm = dup_bytes(wam.s.raw, wam.s.raw_len)) != NULL && (plen = dlen = wam.s.raw_len, 1)
        : wam.s.raw ? (plain = malloc(wam.s.raw_len ? wam.s.raw_len : 1)) != NULL &&
                          (memcpy(plain, wam.s.raw, wam.s.raw_len), plen = wam.s.raw_len,
                           wa_msg_wrap_dsm(wam.s.raw, wam.s.raw_len, to, &dsm, &dlen) == 0)
        : wam.s.media
            ? wa_msg_build_media(wam.s.media, wam.s.reply_to, NULL, wam.s.mentions, NULL, &plain, &plen) ==
                      0 &&
                  wa_msg_build_media(wam.s.media, wam.s.reply_to, NULL, wam.s.mentions, to, &dsm, &dlen) == 0
            : wa_msg_build_text(wam.s.text, wam.s.reply_to, NULL, wam.s.mentions, NULL, &plain, &plen) == 0 &&
                  wa_msg_build_text(wam.s.text, wam.s.reply_to, NULL, wam.s.mentions, to, &dsm, &dlen) == 0;
    if (!built) {
        free(plain);
        free(dsm);
        wam_send_done(WA_SEND_FAILED, "cannot build the message");
        return;
    }
    int group_retry = wam.s.retry && !strcmp(wam.s.to_server, "g.us");
    if (wam.s.group || group_retry) {
        OPENSSL_cleanse(dsm, dlen);
        free(dsm);
        dsm = NULL;
        uint8_t *p2 = NULL;
        size_t p2len = 0;
        if (group_retry) {
            /* The device that asked gets the message pairwise, with our
             * sender key beside it (it may have lost that too). */
            uint8_t *k = NULL;
            size_t kl = 0;
            if (wam_group_own_skdm(wam.s.to_user, &k, &kl) == 0 &&
                wa_msg_append_skdm(plain, plen, to, k, kl, &p2, &p2len) == 0) {
                OPENSSL_cleanse(plain, plen);
                free(plain);
                plain = p2, plen = p2len;
            }
            free(k);
            /* own devices too: a group's copy is never wrapped */
            dsm = malloc(plen);
            if (dsm) {
                memcpy(dsm, plain, plen);
                dlen = plen;
            }
        } else {
            wam_group_encrypt_and_send(plain, plen); /* ends the preparation */
            OPENSSL_cleanse(plain, plen);
            free(plain);
            return;
        }
    }
    wa_arena *a = wa_arena_new();
    wa_node *msg = wa_node_new(a, "message");
    wa_node *parts = wa_node_new(a, "participants");
    wa_jid j;
    wa_node_add_attr(a, msg, "id", wam.s.id);
    if (wam.s.retry && wam.s.ndevs == 1 && !group_retry)
        wam_dev_jid(&wam.s.devs[0], to, sizeof to);
    wa_jid_parse(a, to, &j);
    wa_node_add_attr_jid(a, msg, "to", &j);
    if (group_retry && wam.s.ndevs == 1) { /* to the group, for this member's device only */
        char dj[160];
        wam_dev_jid(&wam.s.devs[0], dj, sizeof dj);
        wa_jid_parse(a, dj, &j);
        wa_node_add_attr_jid(a, msg, "participant", &j);
    }
    struct wa_msg_stanza st;
    wam_stanza_type(&st);
    wa_node_add_attr(a, msg, "type", st.type);
    if (st.edit)
        wa_node_add_attr(a, msg, "edit", st.edit);
    if (wam.s.peer) {
        /* As WhatsApp's own clients mark a message to their phone. */
        wa_node_add_attr(a, msg, "category", "peer");
        wa_node_add_attr(a, msg, "push_priority", "high_force");
    }
    int any_pk = 0, nto = 0, nrecipient = 0;
    for (int i = 0; i < wam.s.ndevs; i++) {
        struct device *d = &wam.s.devs[i];
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
            log_warn("cannot encrypt for a device", LF_S("id", wam.s.id), LF_I("device", d->dev),
                     LF_I("code", r));
            continue;
        }
        wam_dev_jid(d, dj, sizeof dj);
        wa_node *tn = wa_node_new(a, "to");
        wa_jid_parse(a, dj, &j);
        wa_node_add_attr_jid(a, tn, "jid", &j);
        wa_node *en = wa_node_new(a, "enc");
        wa_node_add_attr(a, en, "v", "2");
        wa_node_add_attr(a, en, "type", type == WA_ENC_PKMSG ? "pkmsg" : "msg");
        if (st.mediatype)
            wa_node_add_attr(a, en, "mediatype", st.mediatype);
        if (st.hide_on_failure)
            wa_node_add_attr(a, en, "decrypt-fail", "hide");
        wa_node_set_bytes(a, en, ct, cl);
        free(ct);
        if (wam.s.retry) {
            char cnt[16];
            snprintf(cnt, sizeof cnt, "%d", wam.s.retry);
            wa_node_add_attr(a, en, "count", cnt);
            /* A resend goes to the one device, without <participants>. */
            wa_node_add_child(a, msg, en);
        } else if (wam.s.peer) {
            wa_node_add_child(a, msg, en); /* to the phone alone, without <participants> */
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
    if (wam.s.retry || wam.s.peer ? nto == 0 : nrecipient == 0) {
        wa_arena_free(a);
        char ferr[200];
        /* Forget what encrypting this one changed, unless encrypted stanzas
         * wait for their flush: then it is kept (a skipped ratchet step). */
        if (wam.nbatch)
            batch_flush();
        else
            wa_signal_store_reload(sig.st, ferr, sizeof ferr);
        wam_send_done(WA_SEND_FAILED, "no device of the recipient could be reached");
        return;
    }
    if (!wam.s.retry && !wam.s.peer)
        wa_node_add_child(a, msg, parts);
    if (st.polltype || wam.s.peer) {
        /* a poll or a vote says so beside its content, as the phones' do;
         * a peer message (to our own phone) carries appdata */
        wa_node *meta = wa_node_new(a, "meta");
        if (st.polltype)
            wa_node_add_attr(a, meta, "polltype", st.polltype);
        else
            wa_node_add_attr(a, meta, "appdata", "default");
        wa_node_add_child(a, msg, meta);
    }
    wam_queue_outgoing(a, msg, nto, any_pk, NULL);
}

void wam_queue_outgoing(wa_arena *a, wa_node *msg, int nto, int any_pk, const char *phash)
{
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (any_pk && cr && cr->account_len) {
        wa_node *di = wa_node_new(a, "device-identity");
        wa_node_set_bytes(a, di, cr->account, cr->account_len);
        wa_node_add_child(a, msg, di);
    }
    struct outgoing *o = &wam.batch[wam.nbatch++];
    o->a = a;
    o->msg = msg;
    snprintf(o->id, sizeof o->id, "%s", wam.s.id);
    snprintf(o->to_user, sizeof o->to_user, "%s", wam.s.to_user);
    snprintf(o->phash, sizeof o->phash, "%s", phash ? phash : "");
    o->retry = wam.s.retry;
    o->peer = wam.s.peer;
    o->devices = nto;
    o->pkmsg = any_pk;
    clear_prep();
    /* Inside pump() the next ready ones join this batch; the loop flushes. */
    if (!wam.pumping) {
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

/* An answer to a query of the send being prepared: 1 when it is for that
 * send; 0 when it is stale, or when the connection went first (lost says
 * while doing what; the send is handed back). */
int wam_answer_wanted(void *arg, const wa_node *n, const char *lost)
{
    if ((unsigned)(uintptr_t)arg != wam.s.gen || !wam.s.active)
        return 0;
    if (!n) {
        wam.connected = 0; /* nothing more starts before on_disconnect hands the rest back */
        wam_send_done(WA_SEND_LOST, lost);
        return 0;
    }
    return 1;
}

static void on_prekeys(void *arg, const wa_node *n)
{
    if (!wam_answer_wanted(arg, n, "connection lost while fetching prekeys"))
        return;
    const wa_node *list = wa_node_child(n, "list");
    const char *type = wa_node_attr_str(n, "type");
    if (!type || strcmp(type, "result") != 0 || !list || list->content != WA_CONTENT_LIST) {
        wam_send_done(WA_SEND_TRANSIENT, "prekey query failed");
        return;
    }
    /* Kept, not applied: the Signal state may be in use by a commit. */
    wam.s.bundles = list->nchildren ? calloc(list->nchildren, sizeof *wam.s.bundles) : NULL;
    if (list->nchildren && !wam.s.bundles) {
        wam_send_done(WA_SEND_TRANSIENT, "out of memory");
        return;
    }
    wam.s.nbundles = 0;
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
        struct bundle *x = &wam.s.bundles[wam.s.nbundles++];
        wa_msg_address_name(j.user, j.server, x->name, sizeof x->name);
        x->dev = j.device;
        x->b = b;
        OPENSSL_cleanse(&b, sizeof b);
    }
    wa_arena_free(a);
    if (wam.busy) {
        wam.s.deferred = 1; /* wam_next_turn() goes on */
        return;
    }
    continue_send();
}

/* The server's answers are in and no incoming message is committing: the
 * sessions from the bundles are made, then the message is encrypted and
 * written, all before the loop turns. */
static void continue_send(void)
{
    wam.s.deferred = 0;
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    if (wam.s.retry) {
        /* The recipient lost our session: a new one from the fresh bundle.
         * Done here, in turn, so no message queued before it is encrypted
         * on the new session ahead of it. */
        char name[96];
        wa_msg_address_name(wam.s.devs[0].user, wam.s.devs[0].server, name, sizeof name);
        signal_protocol_address addr = {name, strlen(name), wam.s.devs[0].dev};
        signal_protocol_session_delete_session(sig.sc, &addr);
    }
    for (int i = 0; i < wam.s.nbundles; i++) {
        struct bundle *x = &wam.s.bundles[i];
        int r = wa_msg_session_from_bundle(sig.sc, sig.g, x->name, x->dev, &x->b);
        if (r != 0)
            log_warn("prekey bundle refused", LF_S("address", x->name), LF_I("device", x->dev),
                     LF_I("code", r));
    }
    if (wam.s.bundles)
        OPENSSL_cleanse(wam.s.bundles, (size_t)wam.s.nbundles * sizeof *wam.s.bundles);
    free(wam.s.bundles);
    wam.s.bundles = NULL;
    wam.s.nbundles = 0;
    encrypt_and_send();
}

void wam_fetch_prekeys_or_send(void)
{
    struct wa_signal sig;
    if (wa_client_signal(wam.c, &sig) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "no session store");
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq");
    wa_node_add_attr(a, iq, "xmlns", "encrypt");
    wa_node_add_attr(a, iq, "type", "get");
    wa_node *key = wa_node_new(a, "key");
    int need = 0;
    for (int i = 0; i < wam.s.ndevs; i++) {
        char name[96], dj[160];
        wa_msg_address_name(wam.s.devs[i].user, wam.s.devs[i].server, name, sizeof name);
        /* A resend always starts a new session from a fresh bundle; a group
         * send needs sessions only with the devices that get our key. */
        if (!wam.s.retry && ((wam.s.group && !wam.s.devs[i].skdm) ||
                             wa_signal_store_has_session(sig.st, name, wam.s.devs[i].dev)))
            continue;
        wam_dev_jid(&wam.s.devs[i], dj, sizeof dj);
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
        if (wam.busy)
            wam.s.deferred = 1; /* the device list came while a message commits: wam_next_turn() goes on */
        else
            continue_send();
        return;
    }
    int r = wa_client_iq(wam.c, a, iq, on_prekeys, (void *)(uintptr_t)wam.s.gen);
    wa_arena_free(a);
    if (r < 0)
        wam_send_done(WA_SEND_LOST, "not connected");
}

/* A usync <user jid=phone><lid val=user@lid/>: the phone number <-> LID mapping. */
static void remember_lid(const wa_node *u, wa_arena *a, const wa_jid *j)
{
    char lb[128], pn[128];
    const wa_node *l = wa_node_child(u, "lid");
    if (!l || strcmp(j->server, "s.whatsapp.net") != 0 || !wam_alt_jid(l, a, "val", "lid", lb, sizeof lb))
        return;
    snprintf(pn, sizeof pn, "%s@s.whatsapp.net", j->user);
    if (wam.rev.on_lid)
        wam.rev.on_lid(wam.rarg, pn, lb);
}

/* The users of a usync list into the device cache; with add, their
 * devices (but ours) join the send being prepared. 1 when a user other
 * than us has devices. */
static int usync_users(const wa_node *list, int add)
{
    char own_user[64];
    int own_dev = 0;
    wam_own_address(own_user, sizeof own_user, &own_dev);
    int recipient_found = 0;
    wa_arena *a = wa_arena_new();
    for (uint32_t i = 0; a && list->content == WA_CONTENT_LIST && i < list->nchildren; i++) {
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
        int own = wam_is_own(&j);
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
            if (!add || (own && dv == own_dev))
                continue; /* ourselves */
            struct device *x = wam_dev_add();
            if (!x)
                continue;
            snprintf(x->user, sizeof x->user, "%s", j.user);
            snprintf(x->server, sizeof x->server, "%s", j.server);
            x->dev = (int)dv;
            x->own = own;
            recipient_found |= !own;
        }
        wa_devcache_put(j.user, j.server, ids, nids, wam_now_ms());
    }
    wa_arena_free(a);
    return recipient_found;
}

void wam_usync_apply(const wa_node *list)
{
    usync_users(list, 0);
}

static void on_usync(void *arg, const wa_node *n)
{
    if (!wam_answer_wanted(arg, n, "connection lost while listing devices"))
        return;
    const wa_node *list = wa_usync_list(n);
    if (!list) {
        wam_send_done(WA_SEND_TRANSIENT, "device list query failed");
        return;
    }
    wam.s.ndevs = 0;
    if (!usync_users(list, 1)) {
        wam_send_done(WA_SEND_FAILED, "the recipient is not on WhatsApp (no devices)");
        return;
    }
    wam_fetch_prekeys_or_send();
}

/* <iq xmlns=usync> for the devices of the recipient and of our account. */
static void send_usync(const char *own_user)
{
    wa_arena *a = wa_arena_new();
    wa_node *query, *list;
    wa_node *iq = wa_usync_new(wam.c, a, "message", &query, &list);
    wa_node *dv = wa_node_new(a, "devices");
    wa_node_add_attr(a, dv, "version", "2");
    wa_node_add_child(a, query, dv);
    wa_node_add_child(a, query, wa_node_new(a, "lid"));
    char buf[128];
    wa_jid j;
    snprintf(buf, sizeof buf, "%s@%s", wam.s.to_user, wam.s.to_server);
    wa_node *u1 = wa_node_new(a, "user");
    wa_jid_parse(a, buf, &j);
    wa_node_add_attr_jid(a, u1, "jid", &j);
    wa_node_add_child(a, list, u1);
    if (strcmp(wam.s.to_user, own_user) != 0) {
        snprintf(buf, sizeof buf, "%s@s.whatsapp.net", own_user);
        wa_node *u2 = wa_node_new(a, "user");
        wa_jid_parse(a, buf, &j);
        wa_node_add_attr_jid(a, u2, "jid", &j);
        wa_node_add_child(a, list, u2);
    }
    int r = wa_client_iq(wam.c, a, iq, on_usync, (void *)(uintptr_t)wam.s.gen);
    wa_arena_free(a);
    if (r < 0)
        wam_send_done(WA_SEND_LOST, "not connected");
}

/* Makes job the one being prepared and starts on it. */
static void start_job(struct send_job *jb)
{
    wam.s.active = 1;
    wam.s.gen++;
    wam.s.deadline_ms = wam_now_ms() + SEND_TIMEOUT_S * 1000;
    memcpy(wam.s.id, jb->id, sizeof wam.s.id);
    memcpy(wam.s.to_user, jb->to_user, sizeof wam.s.to_user);
    memcpy(wam.s.to_server, jb->to_server, sizeof wam.s.to_server);
    wam.s.text = jb->text;
    wam.s.reply_to = jb->reply_to;
    wam.s.mentions = jb->mentions;
    wam.s.media = jb->media;
    wam.s.raw = jb->raw;
    wam.s.raw_len = jb->raw_len;
    wam.s.raw_st = jb->raw_st;
    wam.s.retry = jb->retry;
    wam.s.peer = jb->peer;
    wam.s.ndevs = 0;
    wam.s.group = !jb->retry && !jb->peer && !strcmp(jb->to_server, "g.us");
    arm_timer();
    if (jb->peer) {
        /* Our phone is device 0 of our own account: no device list needed. */
        struct device *d = wam_dev_add();
        if (!d) {
            wam_send_done(WA_SEND_TRANSIENT, "out of memory");
            return;
        }
        snprintf(d->user, sizeof d->user, "%s", jb->to_user);
        snprintf(d->server, sizeof d->server, "%s", jb->to_server);
        d->dev = 0;
        d->own = 1;
        wam_fetch_prekeys_or_send();
        return;
    }
    if (jb->retry) {
        /* The session with the device is replaced once the bundle is in (continue_send). */
        struct device *d = wam_dev_add();
        if (!d) {
            wam_send_done(WA_SEND_TRANSIENT, "out of memory");
            return;
        }
        *d = jb->dev;
        log_info("resending a message the recipient could not decrypt", LF_S("id", wam.s.id),
                 LF_I("count", wam.s.retry));
        wam_fetch_prekeys_or_send();
        return;
    }
    char own_user[64];
    int own_dev = 0;
    if (wam_own_address(own_user, sizeof own_user, &own_dev) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "not logged in");
        return;
    }
    if (wam.s.group) {
        wam_group_start();
        return;
    }
    int nrecipient = devices_from_cache(own_user, own_dev);
    if (nrecipient < 0) {
        send_usync(own_user);
        return;
    }
    if (nrecipient == 0) {
        wam_send_done(WA_SEND_FAILED, "the recipient is not on WhatsApp (no devices)");
        return;
    }
    wam_fetch_prekeys_or_send();
}

/* Starts the next jobs, in order, while the window has room: one at a time
 * is prepared; a preparation that finishes at once lets the next start. */
static void pump(void)
{
    if (wam.pumping)
        return; /* the loop below goes on */
    wam.pumping = 1;
    while (!wam.busy && !wam.s.active && wam.jlen > 0 && wam.naw + wam.nbatch < SEND_WINDOW &&
           wam.connected) {
        struct send_job jb = wam.jobs[wam.jhead];
        wam.jhead = (wam.jhead + 1) % (sizeof wam.jobs / sizeof wam.jobs[0]);
        wam.jlen--;
        wam.jmsgs -= !jb.retry && !jb.peer;
        start_job(&jb);
    }
    /* Before anything can wait on the event loop. */
    batch_flush();
    arm_timer();
    wam.pumping = 0;
    wam_process_next(); /* incoming messages waiting for this turn */
}

int wam_send_holds_store(void)
{
    return wam.nbatch > 0 || wam.s.deferred;
}

/* An incoming message's commit ended: a send whose answers came meanwhile
 * goes first, then the sends waiting to start, then the next message (each
 * side gets a turn while the other keeps coming). */
void wam_next_turn(void)
{
    if (wam.busy)
        return;
    wam_group_rotate_pending();
    if (wam.s.active && wam.s.deferred)
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
    size_t cap = sizeof wam.jobs / sizeof wam.jobs[0];
    int aside = jb->retry || jb->peer;
    if (wam.jlen >= cap || (aside && (int)wam.jlen - wam.jmsgs >= MAX_RESENDS))
        return -1;
    wam.jobs[(wam.jhead + wam.jlen) % cap] = *jb;
    wam.jlen++;
    wam.jmsgs += !aside;
    return 0;
}

/* Queues a text (text), a media message (media, copied) or a Message the
 * application built (raw, copied). */
static int queue_send(const char *id, const char *to_jid, const char *text, const struct wa_msg_media *media,
                      const uint8_t *raw, size_t raw_len, const char *reply_to, const char *mentions)
{
    if (wa_messaging_room() <= 0 || strlen(id) >= sizeof wam.s.id)
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
    if (raw && wa_msg_stanza_type(raw, raw_len, &jb.raw_st) < 0)
        return -1; /* no Message */
    jb.text = text ? strdup(text) : NULL;
    jb.media = media ? wa_msg_media_dup(media) : NULL;
    jb.raw = raw ? dup_bytes(raw, raw_len) : NULL;
    jb.raw_len = raw_len;
    jb.reply_to = reply_to ? strdup(reply_to) : NULL;
    jb.mentions = mentions && *mentions ? strdup(mentions) : NULL;
    if ((text && !jb.text) || (media && !jb.media) || (raw && !jb.raw) || (reply_to && !jb.reply_to) ||
        (mentions && *mentions && !jb.mentions) || push_job(&jb) < 0) {
        free(jb.text);
        free(jb.reply_to);
        free(jb.mentions);
        wa_msg_media_free(jb.media);
        free(jb.raw);
        return -1;
    }
    /* On the next turn of the loop: the rest of the caller's batch joins,
     * and ready messages share one flush of the Signal state. */
    event_active(wam.pump_ev, EV_TIMEOUT, 0);
    return 0;
}

int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to,
                      const char *mentions)
{
    return text ? queue_send(id, to_jid, text, NULL, NULL, 0, reply_to, mentions) : -1;
}

int wa_messaging_send_media(const char *id, const char *to_jid, const struct wa_msg_media *media,
                            const char *reply_to, const char *mentions)
{
    return media ? queue_send(id, to_jid, NULL, media, NULL, 0, reply_to, mentions) : -1;
}

int wa_messaging_send_raw(const char *id, const char *to_jid, const uint8_t *msg, size_t n)
{
    return msg && n ? queue_send(id, to_jid, NULL, NULL, msg, n, NULL, NULL) : -1;
}

void wam_handle_ack(const wa_node *n)
{
    const char *cls = wa_node_attr_str(n, "class"), *id = wa_node_attr_str(n, "id");
    if (!cls || strcmp(cls, "message") || !id)
        return;
    /* Acks come in the order the stanzas went; the oldest with this id is it
     * (a resend may share the id of its message). */
    int i = 0;
    while (i < wam.naw && strcmp(wam.aw[i].id, id))
        i++;
    if (i == wam.naw)
        return;
    struct awaiting w;
    window_take(i, &w);
    const char *error = wa_node_attr_str(n, "error"), *phash = wa_node_attr_str(n, "phash");
    if (w.phash[0] && phash && strcmp(phash, w.phash) != 0)
        wam_group_phash_mismatch(w.to_user); /* taken, but our member list may be stale: the next one asks */
    if (error) {
        /* Perhaps sent to a device list that is no longer right. */
        char own_user[64];
        int own_dev;
        wa_devcache_forget(w.to_user);
        if (wam_own_address(own_user, sizeof own_user, &own_dev) == 0)
            wa_devcache_forget(own_user);
        char why[96];
        snprintf(why, sizeof why, "refused by the server (error %.40s)", error);
        report(w.id, w.retry, w.peer, WA_SEND_FAILED, why);
    } else {
        report(w.id, w.retry, w.peer, WA_SEND_OK, NULL);
    }
    arm_timer();
    pump();
}

static int resend(const struct wa_retry_request *r, const char *chat_jid, const char *text,
                  const struct wa_msg_media *media, const uint8_t *raw, size_t raw_len, const char *reply_to,
                  const char *mentions)
{
    char own_user[64];
    int own_dev = 0;
    if (!wam.connected || wam_own_address(own_user, sizeof own_user, &own_dev) < 0 || !r->id ||
        strlen(r->id) >= 64 || strlen(r->user) >= 64 || strlen(r->server) >= 32)
        return -1;
    wa_arena *a = wa_arena_new();
    wa_jid cj;
    struct send_job jb;
    memset(&jb, 0, sizeof jb);
    int ok = a && chat_jid && (text != NULL) + (media != NULL) + (raw != NULL) == 1 &&
             wa_jid_parse(a, chat_jid, &cj) == WA_OK && strlen(cj.user) < sizeof jb.to_user &&
             strlen(cj.server) < sizeof jb.to_server;
    if (ok) {
        snprintf(jb.id, sizeof jb.id, "%s", r->id);
        snprintf(jb.to_user, sizeof jb.to_user, "%s", cj.user);
        snprintf(jb.to_server, sizeof jb.to_server, "%s", cj.server);
    }
    wa_arena_free(a);
    if (!ok)
        return -1;
    if (raw && wa_msg_stanza_type(raw, raw_len, &jb.raw_st) < 0)
        return -1; /* no Message */
    jb.text = text ? strdup(text) : NULL;
    jb.media = media ? wa_msg_media_dup(media) : NULL;
    jb.raw = raw ? dup_bytes(raw, raw_len) : NULL;
    jb.raw_len = raw_len;
    jb.reply_to = reply_to ? strdup(reply_to) : NULL;
    jb.mentions = mentions && *mentions ? strdup(mentions) : NULL;
    snprintf(jb.dev.user, sizeof jb.dev.user, "%s", r->user);
    snprintf(jb.dev.server, sizeof jb.dev.server, "%s", r->server);
    jb.dev.dev = r->device;
    wa_jid rj = {.user = r->user, .server = r->server};
    jb.dev.own = wam_is_own(&rj); /* by phone number or by LID */
    jb.retry = r->count > 0 ? r->count : 1;
    if ((text && !jb.text) || (media && !jb.media) || (raw && !jb.raw) || (reply_to && !jb.reply_to) ||
        (mentions && *mentions && !jb.mentions) || push_job(&jb) < 0) {
        free(jb.text);
        free(jb.reply_to);
        free(jb.mentions);
        wa_msg_media_free(jb.media);
        free(jb.raw);
        return -1;
    }
    pump();
    return 0;
}

int wa_messaging_resend(const struct wa_retry_request *r, const char *chat_jid, const char *text,
                        const struct wa_msg_media *media, const char *reply_to, const char *mentions)
{
    return resend(r, chat_jid, text, media, NULL, 0, reply_to, mentions);
}

int wa_messaging_resend_raw(const struct wa_retry_request *r, const char *chat_jid, const uint8_t *msg,
                            size_t n)
{
    return msg && n ? resend(r, chat_jid, NULL, NULL, msg, n, NULL, NULL) : -1;
}

/* A peer message to our phone (device 0): raw (a Message, taken over) queued
 * under a new id, written to sid (64 bytes). 0, or -1 (raw freed). */
static int send_to_phone(uint8_t *raw, size_t raw_len, char *sid)
{
    char own_user[64];
    int own_dev = 0;
    struct send_job jb;
    memset(&jb, 0, sizeof jb);
    jb.raw = raw;
    jb.raw_len = raw_len;
    if (!wam.connected || wam_own_address(own_user, sizeof own_user, &own_dev) < 0) {
        free(raw);
        return -1;
    }
    /* A message id as WhatsApp clients make them: 3EB0 and 18 upper-case hex digits. */
    uint8_t rnd[9];
    static const char hx[] = "0123456789ABCDEF";
    if (wa_crypto_random(rnd, sizeof rnd) < 0 || wa_msg_stanza_type(jb.raw, jb.raw_len, &jb.raw_st) < 0) {
        free(jb.raw);
        return -1;
    }
    memcpy(sid, "3EB0", 4);
    for (size_t i = 0; i < sizeof rnd; i++)
        sid[4 + 2 * i] = hx[rnd[i] >> 4], sid[5 + 2 * i] = hx[rnd[i] & 15];
    sid[4 + 2 * sizeof rnd] = '\0';
    snprintf(jb.id, sizeof jb.id, "%s", sid);
    snprintf(jb.to_user, sizeof jb.to_user, "%s", own_user);
    snprintf(jb.to_server, sizeof jb.to_server, "s.whatsapp.net");
    jb.peer = 1;
    if (push_job(&jb) < 0) {
        free(jb.raw);
        return -1;
    }
    event_active(wam.pump_ev, EV_TIMEOUT, 0);
    return 0;
}

int wa_messaging_placeholder_resend(const char *id, const char *chat_jid, int from_me,
                                    const char *participant)
{
    char sid[64];
    struct wa_pd_key k = {chat_jid, from_me, id, participant};
    uint8_t *raw;
    size_t len;
    if (!wam.connected || wa_pd_build_placeholder_request(&k, &raw, &len) < 0 ||
        send_to_phone(raw, len, sid) < 0)
        return -1;
    log_info("asking our phone to send again a message we could not decrypt", LF_S("id", id),
             LF_S("request", sid));
    return 0;
}

int wa_messaging_history_request(const char *chat_jid, const char *id, int from_me, int64_t ts, int count,
                                 char *request_id, size_t rlen)
{
    char sid[64];
    uint8_t *raw;
    size_t len;
    if (!wam.connected || wa_pd_build_history_request(chat_jid, id, from_me, ts, count, &raw, &len) < 0 ||
        send_to_phone(raw, len, sid) < 0)
        return -1;
    snprintf(request_id, rlen, "%s", sid);
    log_info("asking our phone for older history", LF_S("chat", chat_jid), LF_S("anchor", id),
             LF_I("count", count), LF_S("request", sid));
    return 0;
}

int wa_messaging_hist_sync_receipt(const char *id)
{
    char own_user[64], own[96];
    int own_dev = 0;
    if (!wam.connected || !id || !*id || wam_own_address(own_user, sizeof own_user, &own_dev) < 0)
        return -1;
    snprintf(own, sizeof own, "%s@s.whatsapp.net", own_user);
    wa_arena *a = wa_arena_new();
    wa_jid to;
    int rc = -1;
    if (a && wa_jid_parse(a, own, &to) == WA_OK) {
        wa_node *r = wa_node_new(a, "receipt");
        wa_node_add_attr(a, r, "id", id);
        wa_node_add_attr(a, r, "type", "hist_sync");
        wa_node_add_attr_jid(a, r, "to", &to);
        rc = wa_client_send_node(wam.c, r);
    }
    wa_arena_free(a);
    return rc < 0 ? -1 : 0;
}

int wa_messaging_own_phone_send(const uint8_t *msg, size_t len)
{
    char sid[64];
    uint8_t *copy = msg && len ? malloc(len) : NULL;
    if (!copy)
        return -1;
    memcpy(copy, msg, len);
    return send_to_phone(copy, len, sid);
}

static void handle_retry_receipt(const wa_node *n, const char *from)
{
    char pb[128];
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    if (from && strstr(from, "@g.us") && participant)
        from = participant; /* in a group, the member's device asks */
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
    wa_devcache_forget(fj.user);
    int count = cnt ? atoi(cnt) : 1;
    log_warn("the recipient could not decrypt a message we sent", LF_S("id", id), LF_S("from", from),
             LF_I("count", count));
    if (count <= MAX_RETRY_RECEIPTS && wam.sev.on_retry) {
        struct wa_retry_request r = {id, fj.user, fj.server, fj.device, count};
        wam.sev.on_retry(wam.sarg, &r);
    }
    wa_arena_free(a);
}

/* <notification type=devices from=user>: a device of that user was added or
 * removed; its cached list is no longer right. */
void wam_handle_devices_notification(const wa_node *n)
{
    char fb[128];
    const char *from = wa_node_attr_text(n, "from", fb, sizeof fb);
    wa_arena *a = wa_arena_new();
    wa_jid fj;
    if (from && wa_jid_parse(a, from, &fj) == WA_OK && fj.user[0]) {
        wa_devcache_forget(fj.user);
        log_info("device list changed; it will be fetched again", LF_S("user", from));
    }
    wa_arena_free(a);
}

void wam_handle_receipt(const wa_node *n)
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
    char pb[128];
    const char *participant = wa_node_attr_text(n, "participant", pb, sizeof pb);
    if (status && wam.sev.on_receipt && from) {
        const char *id = wa_node_attr_str(n, "id");
        if (id)
            wam.sev.on_receipt(wam.sarg, id, status, from, participant);
        const wa_node *list = wa_node_child(n, "list");
        if (list && list->content == WA_CONTENT_LIST)
            for (uint32_t i = 0; i < list->nchildren; i++) {
                const char *iid = wa_node_attr_str(list->children[i], "id");
                if (!strcmp(list->children[i]->tag, "item") && iid)
                    wam.sev.on_receipt(wam.sarg, iid, status, from, participant);
            }
    }
    wa_client_ack(wam.c, n);
}

/* The connection went away. */
void wam_send_disconnect(void)
{
    /* Device lists and group members may change while we do not hear of it. */
    wa_devcache_clear();
    wam_group_disconnect();
    /* Every send held goes back to the outbox, to go again with its id on the
     * next connection: the one being prepared, those whose ack did not come
     * (the server may have taken them: a resend with the same id is the
     * documented outcome), those not started. Resends answering retry
     * receipts are dropped. */
    if (wam.s.active)
        wam_send_done(WA_SEND_LOST, "connection lost");
    while (wam.naw > 0) {
        struct awaiting w;
        window_take(0, &w);
        if (!w.retry && !w.peer) /* peer messages are asked again at the next connect */
            report(w.id, 0, 0, WA_SEND_LOST, "connection lost before the server's ack");
    }
    size_t cap = sizeof wam.jobs / sizeof wam.jobs[0];
    while (wam.jlen > 0) {
        struct send_job jb = wam.jobs[wam.jhead];
        wam.jhead = (wam.jhead + 1) % cap;
        wam.jlen--;
        wam.jmsgs -= !jb.retry && !jb.peer;
        free(jb.text);
        free(jb.reply_to);
        free(jb.mentions);
        wa_msg_media_free(jb.media);
        free(jb.raw);
        if (!jb.retry && !jb.peer)
            report(jb.id, 0, 0, WA_SEND_LOST, "connection lost before sending");
    }
    arm_timer();
}

void wam_send_init(struct event_base *base)
{
    wam.send_timer = evtimer_new(base, on_send_timeout, NULL);
    wam.pump_ev = event_new(base, -1, 0, on_pump, NULL);
}
