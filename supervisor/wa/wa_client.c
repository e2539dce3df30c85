#include "wa_client.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "../offload.h"
#include "proto/adv.pb-c.h"
#include "wa_binary.h"
#include "wa_crypto.h"
#include "wa_noise.h"
#include "wa_payload.h"
#include "wa_signal_crypto.h"
#include "wa_signal_store.h"
#include "wa_store.h"
#include "wa_ws.h"

#define SERVER "s.whatsapp.net"
#define PREKEY_UPLOAD_FIRST 812
#define PREKEY_UPLOAD_REFILL 50
#define PREKEY_MIN 5
#define PING_INTERVAL_S 25
#define PING_TIMEOUT_S 20
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define MAX_REFS 8
#define MAX_IQS 32

static const char *const state_names[WA_STATE_COUNT] = {
    "stopped", "connecting", "qr", "pairing", "connected", "reconnecting", "logged_out", "banned", "outdated", "locked"};

const char *wa_state_name(enum wa_state st)
{
    return st < WA_STATE_COUNT ? state_names[st] : "unknown";
}

enum iq_kind { IQ_NONE, IQ_CALLBACK, IQ_PREKEY_COUNT, IQ_PREKEY_UPLOAD, IQ_ACTIVE, IQ_PING, IQ_LOGOUT, IQ_PAIR_CODE, IQ_PAIR_FINISH };

struct wa_client {
    struct wa_client_config cfg;
    char url[512], origin[256], version[64], sessions[4096];
    struct wa_client_events ev;
    void *arg;
    enum wa_state st;
    int running; /* wanted connected */
    struct wa_ws *ws;
    struct wa_noise ns;
    int ns_live, in_transport;
    struct wa_creds creds;
    int have_creds;
    struct wa_prekey *prekeys;
    size_t nprekeys;
    char refs[MAX_REFS][160];
    int nrefs, ref_idx;
    struct event *qr_timer, *retry_timer, *ping_timer, *linger_timer;
    unsigned backoff_ms;
    int ping_outstanding;
    unsigned ids;
    char id_prefix[16];
    struct {
        char id[32];
        enum iq_kind kind;
        wa_iq_cb cb;
        void *cb_arg;
    } iqs[MAX_IQS];
    struct wa_signal_store *sig;
    signal_context *sig_g;
    signal_protocol_store_context *sig_sc;
    struct wa_client_hooks hooks;
    void *hooks_arg;
    int logging_out;
    unsigned conn_gen; /* bumped per connection: late work for an old one is dropped */
    struct {
        int active;
        unsigned conn_gen;
        uint8_t eph_priv[32], eph_pub[32];
        char code[9];
        char phone[24];
        uint8_t ref[128];
        size_t ref_len;
    } pc; /* pairing by phone number */
};

static void set_state(struct wa_client *c, enum wa_state st, const char *detail)
{
    if (c->st == st && !(detail && *detail))
        return;
    c->st = st;
    if (c->ev.on_state)
        c->ev.on_state(c->arg, st, detail ? detail : "");
}

static void qr_clear(struct wa_client *c)
{
    c->nrefs = c->ref_idx = 0;
    evtimer_del(c->qr_timer);
    if (c->ev.on_qr)
        c->ev.on_qr(c->arg, NULL);
}

static void drop_transport(struct wa_client *c)
{
    int had_transport = c->ws != NULL || c->in_transport;
    if (c->linger_timer)
        evtimer_del(c->linger_timer);
    if (c->ws) {
        wa_ws_free(c->ws);
        c->ws = NULL;
    }
    if (c->ns_live) {
        wa_noise_free(&c->ns);
        c->ns_live = 0;
    }
    c->in_transport = 0;
    c->ping_outstanding = 0;
    evtimer_del(c->ping_timer);
    for (int i = 0; i < MAX_IQS; i++)
        if (c->iqs[i].kind == IQ_CALLBACK) {
            wa_iq_cb cb = c->iqs[i].cb;
            void *arg = c->iqs[i].cb_arg;
            c->iqs[i].kind = IQ_NONE;
            cb(arg, NULL);
        }
    memset(c->iqs, 0, sizeof c->iqs);
    if (had_transport && c->hooks.on_disconnect)
        c->hooks.on_disconnect(c->hooks_arg);
    if (c->nrefs)
        qr_clear(c);
}

static int connect_now(struct wa_client *c);

/* Lost or refused: try again later unless a terminal state was reached. */
static void schedule_retry(struct wa_client *c, const char *why)
{
    drop_transport(c);
    if (!c->running)
        return;
    unsigned base = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;
    uint8_t r[2];
    wa_crypto_random(r, 2);
    /* +-20% jitter so many clients do not come back in step */
    unsigned jitter = (unsigned)(((r[0] << 8) | r[1]) % (base * 2 / 5 + 1));
    unsigned delay = base - base / 5 + jitter;
    c->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
    log_warn("whatsapp connection lost; reconnecting", LF_S("why", why), LF_I("retry_in_ms", delay));
    set_state(c, WA_RECONNECTING, why);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->retry_timer, &tv);
}

/* A terminal outcome: nothing more happens until someone starts us again. */
static void halt(struct wa_client *c, enum wa_state st, const char *why)
{
    c->running = 0;
    drop_transport(c);
    evtimer_del(c->retry_timer);
    log_warn("whatsapp session halted", LF_S("state", wa_state_name(st)), LF_S("why", why));
    set_state(c, st, why);
}

static void close_signal(struct wa_client *c)
{
    if (c->sig_sc)
        signal_protocol_store_context_destroy(c->sig_sc);
    if (c->sig_g)
        signal_context_destroy(c->sig_g);
    wa_signal_store_free(c->sig);
    c->sig_sc = NULL;
    c->sig_g = NULL;
    c->sig = NULL;
}

static void wipe_credentials(struct wa_client *c)
{
    close_signal(c);
    wa_signal_store_wipe(c->sessions);
    wa_store_wipe(c->sessions);
    OPENSSL_cleanse(&c->creds, sizeof c->creds);
    c->have_creds = 0;
    if (c->prekeys) {
        OPENSSL_cleanse(c->prekeys, c->nprekeys * sizeof *c->prekeys);
        free(c->prekeys);
    }
    c->prekeys = NULL;
    c->nprekeys = 0;
}

/* ---- sending ---- */

static const char *next_id(struct wa_client *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s-%u", c->id_prefix, ++c->ids);
    return buf;
}

static int send_node(struct wa_client *c, const wa_node *n)
{
    if (!c->in_transport)
        return -1;
    uint8_t *plain = NULL, *frame = NULL;
    size_t plen = 0, flen = 0;
    if (wa_frame_encode(n, &plain, &plen) != WA_OK)
        return -1;
    if (log_enabled(LOG_DEBUG)) {
        char *s = wa_node_to_string(n, 400);
        log_debug("whatsapp send", LF_S("node", s));
        free(s);
    }
    int rc = wa_noise_encrypt(&c->ns, plain, plen, &frame, &flen);
    OPENSSL_cleanse(plain, plen);
    free(plain);
    if (rc != WA_NOISE_OK)
        return -1;
    rc = wa_ws_send(c->ws, frame, flen);
    free(frame);
    return rc;
}

static void remember_iq(struct wa_client *c, const char *id, enum iq_kind kind)
{
    for (int i = 0; i < MAX_IQS; i++)
        if (c->iqs[i].kind == IQ_NONE) {
            snprintf(c->iqs[i].id, sizeof c->iqs[i].id, "%s", id);
            c->iqs[i].kind = kind;
            return;
        }
}

static enum iq_kind take_iq(struct wa_client *c, const char *id)
{
    for (int i = 0; i < MAX_IQS; i++)
        if (c->iqs[i].kind != IQ_NONE && strcmp(c->iqs[i].id, id) == 0) {
            enum iq_kind k = c->iqs[i].kind;
            c->iqs[i].kind = IQ_NONE;
            return k;
        }
    return IQ_NONE;
}

static wa_node *iq_new(wa_arena *a, struct wa_client *c, const char *type, const char *xmlns, char *id, size_t idlen)
{
    wa_node *iq = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr(a, iq, "id", next_id(c, id, idlen));
    if (xmlns)
        wa_node_add_attr(a, iq, "xmlns", xmlns);
    wa_node_add_attr_jid(a, iq, "to", &to);
    wa_node_add_attr(a, iq, "type", type);
    return iq;
}

static wa_node *child(wa_arena *a, wa_node *parent, const char *tag)
{
    wa_node *n = wa_node_new(a, tag);
    wa_node_add_child(a, parent, n);
    return n;
}

static void put_be(uint8_t *b, uint32_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static void send_iq_result(struct wa_client *c, const wa_node *req)
{
    const char *id = wa_node_attr_str(req, "id");
    if (!id)
        return;
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr(a, iq, "id", id);
    wa_node_add_attr_jid(a, iq, "to", &to);
    wa_node_add_attr(a, iq, "type", "result");
    send_node(c, iq);
    wa_arena_free(a);
}

static void send_iq_error(struct wa_client *c, const char *id, int code, const char *text)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr(a, iq, "id", id);
    wa_node_add_attr_jid(a, iq, "to", &to);
    wa_node_add_attr(a, iq, "type", "error");
    wa_node *e = child(a, iq, "error");
    char codebuf[16];
    snprintf(codebuf, sizeof codebuf, "%d", code);
    wa_node_add_attr(a, e, "code", codebuf);
    wa_node_add_attr(a, e, "text", text);
    send_node(c, iq);
    wa_arena_free(a);
}

/* ---- prekeys ---- */

static int generate_prekeys(struct wa_client *c, size_t want, char *err, size_t errlen)
{
    size_t have_unsent = 0;
    for (size_t i = 0; i < c->nprekeys; i++)
        have_unsent += c->prekeys[i].id >= c->creds.uploaded_upto;
    if (have_unsent >= want)
        return 0;
    size_t add = want - have_unsent;
    if (c->nprekeys + add > WA_STORE_PREKEYS_MAX) {
        /* Keep the newest: older ones were consumed or are long stale. */
        size_t drop = c->nprekeys + add - WA_STORE_PREKEYS_MAX;
        memmove(c->prekeys, c->prekeys + drop, (c->nprekeys - drop) * sizeof *c->prekeys);
        c->nprekeys -= drop;
    }
    struct wa_prekey *k = realloc(c->prekeys, (c->nprekeys + add) * sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->prekeys = k;
    for (size_t i = 0; i < add; i++) {
        struct wa_prekey *p = &c->prekeys[c->nprekeys + i];
        p->id = c->creds.next_prekey_id++;
        if (c->creds.next_prekey_id > 0xFFFFFF)
            c->creds.next_prekey_id = 1; /* ids are 3 bytes on the wire */
        if (wa_crypto_x25519_keypair(p->priv, p->pub) < 0) {
            snprintf(err, errlen, "key generation failed");
            return -1;
        }
    }
    c->nprekeys += add;
    /* Durable before the server can hand them out. */
    if (wa_store_prekeys_save(c->sessions, c->prekeys, c->nprekeys, err, errlen) < 0 ||
        wa_store_save(c->sessions, &c->creds, err, errlen) < 0)
        return -1;
    return 0;
}

static void upload_prekeys(struct wa_client *c, size_t count)
{
    char err[256];
    if (generate_prekeys(c, count, err, sizeof err) < 0) {
        log_error("cannot prepare prekeys", LF_S("error", err));
        return;
    }
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq = iq_new(a, c, "set", "encrypt", id, sizeof id);
    uint8_t b4[4], b1 = 5, b3[3];
    put_be(b4, c->creds.registration_id, 4);
    wa_node_set_bytes(a, child(a, iq, "registration"), b4, 4);
    wa_node_set_bytes(a, child(a, iq, "type"), &b1, 1);
    wa_node_set_bytes(a, child(a, iq, "identity"), c->creds.ident_pub, 32);
    wa_node *list = child(a, iq, "list");
    uint32_t last = c->creds.uploaded_upto;
    size_t sent = 0;
    for (size_t i = 0; i < c->nprekeys && sent < count; i++) {
        if (c->prekeys[i].id < c->creds.uploaded_upto)
            continue;
        wa_node *k = child(a, list, "key");
        put_be(b3, c->prekeys[i].id, 3);
        wa_node_set_bytes(a, child(a, k, "id"), b3, 3);
        wa_node_set_bytes(a, child(a, k, "value"), c->prekeys[i].pub, 32);
        last = c->prekeys[i].id + 1;
        sent++;
    }
    wa_node *skey = child(a, iq, "skey");
    put_be(b3, c->creds.spk_id, 3);
    wa_node_set_bytes(a, child(a, skey, "id"), b3, 3);
    wa_node_set_bytes(a, child(a, skey, "value"), c->creds.spk_pub, 32);
    wa_node_set_bytes(a, child(a, skey, "signature"), c->creds.spk_sig, 64);
    if (send_node(c, iq) == 0) {
        remember_iq(c, id, IQ_PREKEY_UPLOAD); /* marked uploaded when the server confirms */
        log_info("uploading prekeys", LF_I("count", sent), LF_I("upto", last));
    }
    wa_arena_free(a);
}

/* An IQ to the server with one empty child, remembered so its reply is
 * routed by kind. 0 when it went out. */
static int send_simple_iq(struct wa_client *c, const char *type, const char *xmlns, const char *tag,
                          enum iq_kind kind)
{
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq = iq_new(a, c, type, xmlns, id, sizeof id);
    child(a, iq, tag);
    int rc = send_node(c, iq);
    if (rc == 0)
        remember_iq(c, id, kind);
    wa_arena_free(a);
    return rc;
}

static void query_prekey_count(struct wa_client *c)
{
    send_simple_iq(c, "get", "encrypt", "count", IQ_PREKEY_COUNT);
}

static void send_active(struct wa_client *c)
{
    send_simple_iq(c, "set", "passive", "active", IQ_ACTIVE);
}

/* ---- keepalive ---- */

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct wa_client *c = arg;
    if (!c->in_transport)
        return;
    if (c->ping_outstanding) {
        schedule_retry(c, "keepalive: no answer from the server");
        return;
    }
    if (send_simple_iq(c, "get", "w:p", "ping", IQ_PING) == 0)
        c->ping_outstanding = 1;
    struct timeval tv = {PING_TIMEOUT_S, 0};
    evtimer_add(c->ping_timer, &tv);
}

static void keepalive_arm(struct wa_client *c)
{
    struct timeval tv = {PING_INTERVAL_S, 0};
    evtimer_del(c->ping_timer);
    evtimer_add(c->ping_timer, &tv);
}

/* ---- pairing ---- */

static void b64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void show_qr(struct wa_client *c)
{
    if (c->ref_idx >= c->nrefs) {
        /* Every ref shown and none scanned: WhatsApp expects us to go away. */
        halt(c, WA_STOPPED, "QR code not scanned in time");
        return;
    }
    char noise[64], ident[64], adv[64], qr[512];
    b64(c->creds.noise_pub, 32, noise);
    b64(c->creds.ident_pub, 32, ident);
    b64(c->creds.adv_secret, 32, adv);
    snprintf(qr, sizeof qr, "%s,%s,%s,%s", c->refs[c->ref_idx], noise, ident, adv);
    unsigned secs = c->ref_idx == 0 ? c->cfg.qr_first_s : c->cfg.qr_next_s;
    c->ref_idx++;
    set_state(c, WA_QR, "");
    if (c->ev.on_qr)
        c->ev.on_qr(c->arg, qr);
    struct timeval tv = {secs, 0};
    evtimer_add(c->qr_timer, &tv);
}

static void on_qr_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    show_qr(arg);
}

static void handle_pair_device(struct wa_client *c, const wa_node *iq, const wa_node *pd)
{
    send_iq_result(c, iq);
    c->nrefs = c->ref_idx = 0;
    if (pd->content == WA_CONTENT_LIST)
        for (uint32_t i = 0; i < pd->nchildren && c->nrefs < MAX_REFS; i++) {
            const wa_node *r = pd->children[i];
            if (strcmp(r->tag, "ref") != 0)
                continue;
            size_t n = r->content == WA_CONTENT_BYTES ? r->nbytes : r->content == WA_CONTENT_STR ? strlen(r->str) : 0;
            const char *p = r->content == WA_CONTENT_BYTES ? (const char *)r->bytes : r->str;
            if (n == 0 || n >= sizeof c->refs[0] || memchr(p, ',', n) || memchr(p, '\0', n))
                continue;
            memcpy(c->refs[c->nrefs], p, n);
            c->refs[c->nrefs][n] = '\0';
            c->nrefs++;
        }
    if (c->nrefs == 0) {
        schedule_retry(c, "pair-device without refs");
        return;
    }
    evtimer_del(c->qr_timer);
    show_qr(c);
}

static const wa_node *bytes_child(const wa_node *n, const char *tag)
{
    const wa_node *ch = wa_node_child(n, tag);
    return ch && ch->content == WA_CONTENT_BYTES ? ch : NULL;
}

/* <pair-success>: check what the phone sent, sign our part, store, answer. */
static void handle_pair_success(struct wa_client *c, const wa_node *iq, const wa_node *ps)
{
    const char *id = wa_node_attr_str(iq, "id");
    const wa_node *di = bytes_child(ps, "device-identity");
    const wa_node *dev = wa_node_child(ps, "device");
    const wa_node *plat = wa_node_child(ps, "platform");
    const wa_node *biz = wa_node_child(ps, "biz");
    char jidbuf[sizeof c->creds.jid], lidbuf[sizeof c->creds.lid];
    const char *jid = dev ? wa_node_attr_text(dev, "jid", jidbuf, sizeof jidbuf) : NULL;
    const char *lid = dev ? wa_node_attr_text(dev, "lid", lidbuf, sizeof lidbuf) : NULL;
    if (!id || !di || !jid) {
        if (id)
            send_iq_error(c, id, 500, "internal-error");
        schedule_retry(c, "malformed pair-success");
        return;
    }
    set_state(c, WA_PAIRING, "");
    evtimer_del(c->qr_timer);
    Wapi__Adv__SignedDeviceIdentityHMAC *h = wapi__adv__signed_device_identity_hmac__unpack(NULL, di->nbytes, di->bytes);
    if (!h || !h->has_details || !h->has_hmac || h->hmac.len != 32) {
        if (h)
            wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
        send_iq_error(c, id, 500, "internal-error");
        schedule_retry(c, "pair-success: malformed device identity");
        return;
    }
    int hosted = h->has_account_type && h->account_type == WAPI__ADV__ACCOUNT_TYPE__HOSTED;
    uint8_t mac[32];
    {
        size_t n = h->details.len + 2;
        uint8_t *buf = malloc(n);
        size_t off = 0;
        if (hosted) {
            buf[0] = 6, buf[1] = 5;
            off = 2;
        }
        memcpy(buf + off, h->details.data, h->details.len);
        wa_crypto_hmac_sha256(c->creds.adv_secret, 32, buf, off + h->details.len, mac);
        free(buf);
    }
    if (CRYPTO_memcmp(mac, h->hmac.data, 32) != 0) {
        wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
        send_iq_error(c, id, 401, "hmac-mismatch");
        schedule_retry(c, "pair-success: HMAC mismatch");
        return;
    }
    Wapi__Adv__SignedDeviceIdentity *sdi =
        wapi__adv__signed_device_identity__unpack(NULL, h->details.len, h->details.data);
    wapi__adv__signed_device_identity_hmac__free_unpacked(h, NULL);
    if (!sdi || !sdi->has_details || !sdi->has_account_signature_key || sdi->account_signature_key.len != 32 ||
        !sdi->has_account_signature || sdi->account_signature.len != 64) {
        if (sdi)
            wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        send_iq_error(c, id, 500, "internal-error");
        schedule_retry(c, "pair-success: malformed signed identity");
        return;
    }
    Wapi__Adv__DeviceIdentity *dident = wapi__adv__device_identity__unpack(NULL, sdi->details.len, sdi->details.data);
    uint32_t key_index = dident && dident->has_key_index ? dident->key_index : 0;
    if (dident)
        wapi__adv__device_identity__free_unpacked(dident, NULL);
    size_t dl = sdi->details.len;
    uint8_t *msg = malloc(2 + dl + 32 + 32);
    /* The account (phone) signed: prefix || details || our identity key. */
    msg[0] = 6, msg[1] = hosted ? 5 : 0;
    memcpy(msg + 2, sdi->details.data, dl);
    memcpy(msg + 2 + dl, c->creds.ident_pub, 32);
    if (wa_crypto_xeddsa_verify(sdi->account_signature_key.data, msg, 2 + dl + 32, sdi->account_signature.data) !=
        1) {
        free(msg);
        wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        send_iq_error(c, id, 401, "signature-mismatch");
        schedule_retry(c, "pair-success: account signature invalid");
        return;
    }
    /* Our device signature: prefix 06 01 || details || identity || account key. */
    msg[1] = 1;
    memcpy(msg + 2 + dl + 32, sdi->account_signature_key.data, 32);
    uint8_t devsig[64];
    int sig_ok = wa_crypto_xeddsa_sign(c->creds.ident_priv, msg, 2 + dl + 64, devsig) == 0;
    free(msg);
    if (!sig_ok) {
        wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
        send_iq_error(c, id, 500, "internal-error");
        schedule_retry(c, "pair-success: cannot sign");
        return;
    }
    sdi->has_device_signature = 1;
    sdi->device_signature.data = devsig;
    sdi->device_signature.len = 64;
    /* What we keep and send back carries no account signature key. */
    sdi->has_account_signature_key = 0;
    size_t outlen = wapi__adv__signed_device_identity__get_packed_size(sdi);
    uint8_t *out = malloc(outlen);
    wapi__adv__signed_device_identity__pack(sdi, out);
    sdi->device_signature.data = NULL; /* devsig is on our stack */
    sdi->has_device_signature = 0;
    wapi__adv__signed_device_identity__free_unpacked(sdi, NULL);
    if (outlen > sizeof c->creds.account) {
        free(out);
        send_iq_error(c, id, 500, "internal-error");
        schedule_retry(c, "pair-success: identity too large");
        return;
    }
    /* Durable before the server learns we accepted. */
    c->creds.paired = 1;
    snprintf(c->creds.jid, sizeof c->creds.jid, "%s", jid);
    snprintf(c->creds.lid, sizeof c->creds.lid, "%s", lid ? lid : "");
    const char *pname = plat ? wa_node_attr_str(plat, "name") : NULL;
    const char *bname = biz ? wa_node_attr_str(biz, "name") : NULL;
    snprintf(c->creds.platform, sizeof c->creds.platform, "%s", pname ? pname : "");
    snprintf(c->creds.business, sizeof c->creds.business, "%s", bname ? bname : "");
    memcpy(c->creds.account, out, outlen);
    c->creds.account_len = outlen;
    char err[256];
    if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0) {
        free(out);
        log_error("cannot store the pairing", LF_S("error", err));
        c->creds.paired = 0;
        send_iq_error(c, id, 500, "internal-error");
        halt(c, WA_STOPPED, err);
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *res = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr_jid(a, res, "to", &to);
    wa_node_add_attr(a, res, "type", "result");
    wa_node_add_attr(a, res, "id", id);
    wa_node *pds = child(a, res, "pair-device-sign");
    wa_node *d = child(a, pds, "device-identity");
    char ki[16];
    snprintf(ki, sizeof ki, "%u", key_index);
    wa_node_add_attr(a, d, "key-index", ki);
    wa_node_set_bytes(a, d, out, outlen);
    send_node(c, res);
    wa_arena_free(a);
    free(out);
    log_info("paired", LF_S("jid", c->creds.jid), LF_S("platform", c->creds.platform));
    if (c->ev.on_me) {
        struct wa_me me = {c->creds.jid, c->creds.lid, c->creds.push_name, c->creds.platform};
        c->ev.on_me(c->arg, &me);
    }
    qr_clear(c);
}

/* ---- inbound nodes ---- */

static void on_iq_reply(struct wa_client *c, const wa_node *n, const char *type)
{
    const char *id = wa_node_attr_str(n, "id");
    if (!id)
        return;
    for (int i = 0; i < MAX_IQS; i++)
        if (c->iqs[i].kind == IQ_CALLBACK && strcmp(c->iqs[i].id, id) == 0) {
            wa_iq_cb cb = c->iqs[i].cb;
            void *arg = c->iqs[i].cb_arg;
            c->iqs[i].kind = IQ_NONE;
            cb(arg, n);
            return;
        }
    enum iq_kind k = take_iq(c, id);
    int ok = strcmp(type, "result") == 0;
    switch (k) {
    case IQ_PING: c->ping_outstanding = 0; keepalive_arm(c); break;
    case IQ_PREKEY_COUNT: {
        const wa_node *cnt = wa_node_child(n, "count");
        const char *v = cnt ? wa_node_attr_str(cnt, "value") : NULL;
        long have = v ? strtol(v, NULL, 10) : -1;
        if (!ok || have < 0) {
            log_warn("prekey count query failed");
            break;
        }
        if (have < PREKEY_MIN)
            upload_prekeys(c, c->creds.uploaded_upto <= 1 ? PREKEY_UPLOAD_FIRST : PREKEY_UPLOAD_REFILL);
        break;
    }
    case IQ_PREKEY_UPLOAD:
        if (ok) {
            /* Every prekey we hold was offered: advance the mark and keep it. */
            uint32_t upto = c->creds.uploaded_upto;
            for (size_t i = 0; i < c->nprekeys; i++)
                if (c->prekeys[i].id + 1 > upto)
                    upto = c->prekeys[i].id + 1;
            c->creds.uploaded_upto = upto;
            char err[256];
            if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0)
                log_error("cannot store the prekey mark", LF_S("error", err));
            log_info("prekeys uploaded", LF_I("upto", upto));
        } else {
            log_warn("prekey upload refused by the server");
        }
        break;
    case IQ_ACTIVE: break;
    case IQ_LOGOUT: drop_transport(c); break;
    case IQ_PAIR_CODE: {
        const wa_node *reg = wa_node_child(n, "link_code_companion_reg");
        const wa_node *ref = reg ? wa_node_child(reg, "link_code_pairing_ref") : NULL;
        if (!ok || !ref || ref->content != WA_CONTENT_BYTES || ref->nbytes == 0 || ref->nbytes > sizeof c->pc.ref) {
            const wa_node *e = wa_node_child(n, "error");
            const char *code = e ? wa_node_attr_str(e, "code") : NULL;
            log_warn("pairing code refused by the server", LF_S("code", code ? code : "?"));
            c->pc.active = 0;
            set_state(c, WA_QR, code && !strcmp(code, "404") ? "pairing code: this phone number has no WhatsApp account"
                                                             : "pairing code refused by the server");
            break;
        }
        memcpy(c->pc.ref, ref->bytes, ref->nbytes);
        c->pc.ref_len = ref->nbytes;
        log_info("pairing code registered; waiting for it on the phone");
        break;
    }
    case IQ_PAIR_FINISH:
        if (!ok)
            log_warn("pairing code: the server refused the key bundle");
        break;
    case IQ_CALLBACK:
    case IQ_NONE: break;
    }
}

static void handle_stream_error(struct wa_client *c, const wa_node *n)
{
    const char *code = wa_node_attr_str(n, "code");
    const wa_node *conflict = wa_node_child(n, "conflict");
    const char *ctype = conflict ? wa_node_attr_str(conflict, "type") : NULL;
    char why[128];
    snprintf(why, sizeof why, "stream error%s%s%s%s", code ? " " : "", code ? code : "", ctype ? " conflict " : "",
             ctype ? ctype : "");
    if (code && strcmp(code, "515") == 0) {
        /* Pairing done (or the server wants a fresh start): log in again now. */
        log_info("whatsapp asked for a restart (515)");
        drop_transport(c);
        c->backoff_ms = 0;
        set_state(c, WA_CONNECTING, "restart after pairing");
        connect_now(c);
        return;
    }
    if (ctype && strcmp(ctype, "replaced") == 0) {
        halt(c, WA_STOPPED, "replaced: another client took over this session");
        return;
    }
    if ((code && strcmp(code, "401") == 0) || (ctype && strcmp(ctype, "device_removed") == 0)) {
        wipe_credentials(c);
        halt(c, WA_LOGGED_OUT, ctype ? ctype : "logged out by the server");
        return;
    }
    schedule_retry(c, why);
}

static void handle_failure(struct wa_client *c, const wa_node *n)
{
    const char *reason = wa_node_attr_str(n, "reason");
    int r = reason ? atoi(reason) : 0;
    char why[160];
    const char *loc = wa_node_attr_str(n, "location");
    snprintf(why, sizeof why, "failure %d%s%s", r, loc ? " at " : "", loc ? loc : "");
    switch (r) {
    case 401:
    case 403:
    case 406:
        wipe_credentials(c);
        halt(c, WA_LOGGED_OUT, why);
        return;
    case 402: {
        const char *expire = wa_node_attr_str(n, "expire");
        char b[200];
        snprintf(b, sizeof b, "temporarily banned (failure 402%s%s)", expire ? ", expires in " : "",
                 expire ? expire : "");
        halt(c, WA_BANNED, b);
        return;
    }
    case 405: halt(c, WA_OUTDATED, "client version outdated (failure 405): set whatsapp.version"); return;
    case 409: halt(c, WA_OUTDATED, "bad user agent (failure 409)"); return;
    default: schedule_retry(c, why); return;
    }
}

static void send_ack(struct wa_client *c, const wa_node *n)
{
    const char *id = wa_node_attr_str(n, "id");
    char from[128];
    const char *f = wa_node_attr_text(n, "from", from, sizeof from);
    if (!id || !f)
        return;
    wa_arena *a = wa_arena_new();
    wa_node *ack = wa_node_new(a, "ack");
    wa_node_add_attr(a, ack, "id", id);
    wa_node_add_attr(a, ack, "class", n->tag);
    const char *type = wa_node_attr_str(n, "type");
    if (type && strcmp(n->tag, "message") != 0)
        wa_node_add_attr(a, ack, "type", type);
    wa_jid to;
    if (wa_jid_parse(a, f, &to) == WA_OK)
        wa_node_add_attr_jid(a, ack, "to", &to);
    /* A group's sender and a deviceSentMessage's chat are named back. */
    static const char *const echo[] = {"participant", "recipient"};
    for (size_t i = 0; i < sizeof echo / sizeof echo[0]; i++) {
        char buf[128];
        const char *v = wa_node_attr_text(n, echo[i], buf, sizeof buf);
        wa_jid j;
        if (v && wa_jid_parse(a, v, &j) == WA_OK)
            wa_node_add_attr_jid(a, ack, echo[i], &j);
    }
    send_node(c, ack);
    wa_arena_free(a);
}


/* ---- pairing by phone number ---- */

static const char linking_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/* 5 random bytes in the linking alphabet (base32 without padding): 8 characters. */
static void linking_code(char out[9])
{
    uint8_t r[5];
    wa_crypto_random(r, sizeof r);
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | r[i];
    for (int i = 7; i >= 0; i--, v >>= 5)
        out[i] = linking_alphabet[v & 31];
    out[8] = '\0';
}

static int aes_ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int len = 0, ok = x && EVP_EncryptInit_ex(x, EVP_aes_256_ctr(), NULL, key, iv) == 1 &&
                      EVP_EncryptUpdate(x, out, &len, in, (int)n) == 1 && len == (int)n;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -1;
}

/* The slow part (PBKDF2, 131072 rounds) runs off the loop. */
struct code_job {
    struct wa_client *c;
    unsigned conn_gen;
    int stage; /* 1 hello, 2 primary hello */
    char code[9];
    uint8_t salt[32], iv[16], key[32];
    uint8_t eph_pub[32], wrapped[80];
    uint8_t primary_wrapped[80], primary_ident[32];
    int ok;
};

static void code_work(void *arg)
{
    struct code_job *j = arg;
    j->ok = PKCS5_PBKDF2_HMAC(j->code, 8, j->salt, 32, 2 << 16, EVP_sha256(), 32, j->key) == 1;
}

static void send_companion_hello(struct wa_client *c, struct code_job *j)
{
    memcpy(j->wrapped, j->salt, 32);
    memcpy(j->wrapped + 32, j->iv, 16);
    if (aes_ctr(j->key, j->iv, j->eph_pub, 32, j->wrapped + 48) < 0)
        return;
    wa_arena *a = wa_arena_new();
    char id[32], jidtxt[64];
    wa_node *iq = iq_new(a, c, "set", "md", id, sizeof id);
    wa_node *reg = child(a, iq, "link_code_companion_reg");
    snprintf(jidtxt, sizeof jidtxt, "%s@" SERVER, c->pc.phone);
    wa_jid jid;
    wa_jid_parse(a, jidtxt, &jid);
    wa_node_add_attr_jid(a, reg, "jid", &jid);
    wa_node_add_attr(a, reg, "stage", "companion_hello");
    wa_node_add_attr(a, reg, "should_show_push_notification", "true");
    wa_node_set_bytes(a, child(a, reg, "link_code_pairing_wrapped_companion_ephemeral_pub"), j->wrapped, 80);
    wa_node_set_bytes(a, child(a, reg, "companion_server_auth_key_pub"), c->creds.noise_pub, 32);
    wa_node_set_bytes(a, child(a, reg, "companion_platform_id"), "1", 1); /* Chrome, as the ClientPayload says */
    wa_node_set_bytes(a, child(a, reg, "companion_platform_display"), "Chrome (Linux)", 14);
    uint8_t zero = 0;
    wa_node_set_bytes(a, child(a, reg, "link_code_pairing_nonce"), &zero, 1);
    if (send_node(c, iq) == 0)
        remember_iq(c, id, IQ_PAIR_CODE);
    wa_arena_free(a);
}

static void send_companion_finish(struct wa_client *c, struct code_job *j)
{
    uint8_t primary_eph[32], eph_shared[32], ident_shared[32], adv_random[32], salt[32], nonce[12], key[32];
    uint8_t bundle[96], wrapped[32 + 12 + 96 + 16];
    if (aes_ctr(j->key, j->primary_wrapped + 32, j->primary_wrapped + 48, 32, primary_eph) < 0 ||
        wa_crypto_x25519_dh(c->pc.eph_priv, primary_eph, eph_shared) < 0 ||
        wa_crypto_x25519_dh(c->creds.ident_priv, j->primary_ident, ident_shared) < 0) {
        log_warn("pairing code: the phone's keys are unusable (wrong code?)");
        return;
    }
    wa_crypto_random(adv_random, 32);
    wa_crypto_random(salt, 32);
    wa_crypto_random(nonce, 12);
    static const char info[] = "link_code_pairing_key_bundle_encryption_key";
    wa_crypto_hkdf_sha256(salt, 32, eph_shared, 32, (const uint8_t *)info, sizeof info - 1, key, 32);
    memcpy(bundle, c->creds.ident_pub, 32);
    memcpy(bundle + 32, j->primary_ident, 32);
    memcpy(bundle + 64, adv_random, 32);
    memcpy(wrapped, salt, 32);
    memcpy(wrapped + 32, nonce, 12);
    wa_crypto_aes_gcm_seal(key, nonce, NULL, 0, bundle, sizeof bundle, wrapped + 44);
    uint8_t adv_in[96];
    memcpy(adv_in, eph_shared, 32);
    memcpy(adv_in + 32, ident_shared, 32);
    memcpy(adv_in + 64, adv_random, 32);
    static const char adv_info[] = "adv_secret";
    wa_crypto_hkdf_sha256(NULL, 0, adv_in, sizeof adv_in, (const uint8_t *)adv_info, sizeof adv_info - 1,
                          c->creds.adv_secret, 32);
    OPENSSL_cleanse(adv_in, sizeof adv_in);
    OPENSSL_cleanse(eph_shared, 32);
    OPENSSL_cleanse(ident_shared, 32);
    OPENSSL_cleanse(key, 32);
    /* The new advertising secret checks the coming pair-success: durable first. */
    char err[256];
    if (wa_store_save(c->sessions, &c->creds, err, sizeof err) < 0) {
        log_error("cannot store the pairing secret", LF_S("error", err));
        return;
    }
    wa_arena *a = wa_arena_new();
    char id[32], jidtxt[64];
    wa_node *iq = iq_new(a, c, "set", "md", id, sizeof id);
    wa_node *reg = child(a, iq, "link_code_companion_reg");
    snprintf(jidtxt, sizeof jidtxt, "%s@" SERVER, c->pc.phone);
    wa_jid jid;
    wa_jid_parse(a, jidtxt, &jid);
    wa_node_add_attr_jid(a, reg, "jid", &jid);
    wa_node_add_attr(a, reg, "stage", "companion_finish");
    wa_node_set_bytes(a, child(a, reg, "link_code_pairing_wrapped_key_bundle"), wrapped, sizeof wrapped);
    wa_node_set_bytes(a, child(a, reg, "companion_identity_public"), c->creds.ident_pub, 32);
    wa_node_set_bytes(a, child(a, reg, "link_code_pairing_ref"), c->pc.ref, c->pc.ref_len);
    if (send_node(c, iq) == 0)
        remember_iq(c, id, IQ_PAIR_FINISH);
    wa_arena_free(a);
    set_state(c, WA_PAIRING, "");
}

static void code_done(void *arg)
{
    struct code_job *j = arg;
    struct wa_client *c = j->c;
    if (j->ok && c->in_transport && c->conn_gen == j->conn_gen && c->pc.active && !c->creds.paired) {
        if (j->stage == 1)
            send_companion_hello(c, j);
        else
            send_companion_finish(c, j);
    }
    OPENSSL_cleanse(j, sizeof *j);
    free(j);
}

/* (The notification was acked by the caller.) */
static void handle_code_primary_hello(struct wa_client *c, const wa_node *n)
{
    const wa_node *reg = wa_node_child(n, "link_code_companion_reg");
    const wa_node *ref = reg ? bytes_child(reg, "link_code_pairing_ref") : NULL;
    const wa_node *wr = reg ? bytes_child(reg, "link_code_pairing_wrapped_primary_ephemeral_pub") : NULL;
    const wa_node *pid = reg ? bytes_child(reg, "primary_identity_pub") : NULL;
    if (!c->pc.active || c->creds.paired || !ref || !wr || !pid || wr->nbytes < 80 || pid->nbytes != 32 ||
        ref->nbytes != c->pc.ref_len || memcmp(ref->bytes, c->pc.ref, c->pc.ref_len) != 0) {
        log_warn("pairing code notification ignored (none pending, or it does not match)");
        return;
    }
    struct code_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->c = c;
    j->conn_gen = c->conn_gen;
    j->stage = 2;
    memcpy(j->code, c->pc.code, 9);
    memcpy(j->salt, wr->bytes, 32);
    memcpy(j->primary_wrapped, wr->bytes, 80);
    memcpy(j->primary_ident, pid->bytes, 32);
    if (offload_run(code_work, code_done, j) < 0)
        free(j);
}

int wa_client_pair_phone(struct wa_client *c, const char *digits, char *code_out, size_t code_len, char *err,
                         size_t errlen)
{
    size_t n = strlen(digits);
    if (n < 7 || n > 15 || digits[0] == '0' || strspn(digits, "0123456789") != n) {
        snprintf(err, errlen, "phone must be 7 to 15 digits in international form, without a leading 0");
        return -1;
    }
    if (!c->in_transport || c->creds.paired || c->st != WA_QR) {
        snprintf(err, errlen, "the session is not waiting to be linked (state %s); start it first",
                 wa_state_name(c->st));
        return -1;
    }
    struct code_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(&c->pc, 0, sizeof c->pc);
    c->pc.active = 1;
    c->pc.conn_gen = c->conn_gen;
    snprintf(c->pc.phone, sizeof c->pc.phone, "%s", digits);
    linking_code(c->pc.code);
    wa_crypto_x25519_keypair(c->pc.eph_priv, c->pc.eph_pub);
    j->c = c;
    j->conn_gen = c->conn_gen;
    j->stage = 1;
    memcpy(j->code, c->pc.code, 9);
    memcpy(j->eph_pub, c->pc.eph_pub, 32);
    wa_crypto_random(j->salt, 32);
    wa_crypto_random(j->iv, 16);
    if (offload_run(code_work, code_done, j) < 0) {
        free(j);
        c->pc.active = 0;
        snprintf(err, errlen, "cannot start the key derivation");
        return -1;
    }
    snprintf(code_out, code_len, "%.4s-%.4s", c->pc.code, c->pc.code + 4);
    log_info("pairing code issued", LF_S("phone_suffix", digits + n - 2));
    return 0;
}

static int handle_node(struct wa_client *c, wa_node *n, wa_arena *a)
{
    if (log_enabled(LOG_DEBUG)) {
        char *s = wa_node_to_string(n, 400);
        log_debug("whatsapp recv", LF_S("node", s));
        free(s);
    }
    if (strcmp(n->tag, "iq") == 0) {
        const char *type = wa_node_attr_str(n, "type");
        if (!type)
            return 0;
        if (!strcmp(type, "result") || !strcmp(type, "error")) {
            on_iq_reply(c, n, type);
            return 0;
        }
        const wa_node *pd = wa_node_child(n, "pair-device");
        const wa_node *ps = wa_node_child(n, "pair-success");
        const char *xmlns = wa_node_attr_str(n, "xmlns");
        if (pd && !c->creds.paired)
            handle_pair_device(c, n, pd);
        else if (ps && !c->creds.paired)
            handle_pair_success(c, n, ps);
        else if (xmlns && strcmp(xmlns, "urn:xmpp:ping") == 0)
            send_iq_result(c, n);
        return 0;
    }
    if (strcmp(n->tag, "success") == 0) {
        c->backoff_ms = 0;
        const char *lid = wa_node_attr_str(n, "lid");
        if (lid && !c->creds.lid[0])
            snprintf(c->creds.lid, sizeof c->creds.lid, "%s", lid);
        log_info("whatsapp connected", LF_S("jid", c->creds.jid));
        set_state(c, WA_CONNECTED, "");
        if (c->hooks.on_connected)
            c->hooks.on_connected(c->hooks_arg);
        if (c->ev.on_me) {
            struct wa_me me = {c->creds.jid, c->creds.lid, c->creds.push_name, c->creds.platform};
            c->ev.on_me(c->arg, &me);
        }
        query_prekey_count(c);
        send_active(c);
        keepalive_arm(c);
        return 0;
    }
    if (strcmp(n->tag, "failure") == 0) {
        handle_failure(c, n);
        return 0;
    }
    if (strcmp(n->tag, "stream:error") == 0) {
        handle_stream_error(c, n);
        return 0;
    }
    if (strcmp(n->tag, "xmlstreamend") == 0) {
        schedule_retry(c, "stream ended by the server");
        return 0;
    }
    if (strcmp(n->tag, "notification") == 0) {
        const char *type = wa_node_attr_str(n, "type");
        send_ack(c, n);
        if (type && strcmp(type, "link_code_companion_reg") == 0) {
            handle_code_primary_hello(c, n);
            return 0;
        }
        if (type && strcmp(type, "encrypt") == 0) {
            const wa_node *cnt = wa_node_child(n, "count");
            if (cnt)
                upload_prekeys(c, PREKEY_UPLOAD_REFILL);
        }
        /* A user's devices changed: the messaging layer's device lists. */
        if (type && strcmp(type, "devices") == 0 && c->hooks.on_stanza && c->creds.paired)
            return c->hooks.on_stanza(c->hooks_arg, n, a);
        return 0;
    }
    if (strcmp(n->tag, "ib") == 0)
        return 0;
    if ((!strcmp(n->tag, "message") || !strcmp(n->tag, "receipt") || !strcmp(n->tag, "ack")) && c->hooks.on_stanza &&
        c->creds.paired)
        return c->hooks.on_stanza(c->hooks_arg, n, a);
    if (!strcmp(n->tag, "message") || !strcmp(n->tag, "receipt") || !strcmp(n->tag, "call"))
        send_ack(c, n);
    return 0;
}

/* ---- the socket ---- */

static void on_ws_open(void *arg)
{
    struct wa_client *c = arg;
    struct wa_noise_config nc = {c->cfg.root_key, c->creds.noise_priv, NULL, 0};
    if (wa_noise_init(&c->ns, &nc) != WA_NOISE_OK) {
        schedule_retry(c, "noise init failed");
        return;
    }
    c->ns_live = 1;
    uint8_t *out;
    size_t len;
    if (wa_noise_start(&c->ns, &out, &len) != WA_NOISE_OK) {
        schedule_retry(c, "noise start failed");
        return;
    }
    wa_ws_send(c->ws, out, len);
    free(out);
}

static int build_payload(struct wa_client *c, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    struct wa_payload_opts o;
    wa_payload_defaults(&o);
    o.version = c->version;
    if (c->creds.paired) {
        char user[64];
        unsigned dev = 0;
        const char *at = strchr(c->creds.jid, '@');
        const char *colon = strchr(c->creds.jid, ':');
        size_t ul = (size_t)((colon && colon < at ? colon : at) - c->creds.jid);
        if (!at || ul == 0 || ul >= sizeof user) {
            snprintf(err, errlen, "stored JID unusable");
            return -1;
        }
        memcpy(user, c->creds.jid, ul);
        user[ul] = '\0';
        if (colon && colon < at)
            dev = (unsigned)strtoul(colon + 1, NULL, 10);
        char *end;
        unsigned long long username = strtoull(user, &end, 10);
        if (*end) {
            snprintf(err, errlen, "stored JID user is not a number");
            return -1;
        }
        return wa_payload_login(&o, username, dev, out, len, err, errlen);
    }
    struct wa_register_keys k;
    k.registration_id = c->creds.registration_id;
    memcpy(k.identity_pub, c->creds.ident_pub, 32);
    k.signed_prekey_id = c->creds.spk_id;
    memcpy(k.signed_prekey_pub, c->creds.spk_pub, 32);
    memcpy(k.signed_prekey_sig, c->creds.spk_sig, 64);
    return wa_payload_register(&o, &k, out, len, err, errlen);
}

static void on_ws_message(void *arg, const uint8_t *data, size_t len)
{
    struct wa_client *c = arg;
    struct wa_ws *ws = c->ws;
    if (!c->ns_live)
        return;
    /* A handler may drop this socket (and even open the next one): stop then. */
    while (len > 0 && c->ws == ws && c->ns_live) {
        size_t used = 0;
        const uint8_t *frame;
        size_t flen;
        int rc = wa_noise_recv(&c->ns, data, len, &used, &frame, &flen);
        if (rc < 0) {
            schedule_retry(c, "bad frame from the server");
            return;
        }
        data += used;
        len -= used;
        if (rc == 0)
            return;
        if (!c->in_transport) {
            uint8_t *payload = NULL, *out = NULL;
            size_t plen = 0, olen = 0;
            char err[200];
            if (build_payload(c, &payload, &plen, err, sizeof err) < 0) {
                halt(c, WA_STOPPED, err);
                return;
            }
            rc = wa_noise_read_server_hello(&c->ns, frame, flen, payload, plen, (uint64_t)time(NULL), &out, &olen);
            free(payload);
            if (rc != WA_NOISE_OK) {
                char why[256];
                snprintf(why, sizeof why, "handshake failed: %s", wa_noise_reason(&c->ns));
                schedule_retry(c, why);
                return;
            }
            wa_ws_send(c->ws, out, olen);
            free(out);
            c->in_transport = 1;
            continue;
        }
        uint8_t *plain = NULL;
        size_t plen = 0;
        if (wa_noise_decrypt(&c->ns, frame, flen, &plain, &plen) != WA_NOISE_OK) {
            free(plain);
            schedule_retry(c, "frame failed authentication (bad MAC)");
            return;
        }
        wa_arena *a = wa_arena_new();
        wa_node *node = NULL;
        int drc = wa_frame_decode(plain, plen, NULL, a, &node);
        OPENSSL_cleanse(plain, plen);
        free(plain);
        if (drc != WA_OK) {
            wa_arena_free(a);
            char why[128];
            snprintf(why, sizeof why, "undecodable node: %s", wa_strerror(drc));
            schedule_retry(c, why);
            return;
        }
        if (!handle_node(c, node, a))
            wa_arena_free(a);
    }
}

static void on_ws_close(void *arg, const char *why)
{
    struct wa_client *c = arg;
    struct wa_ws *ws = c->ws;
    c->ws = NULL;
    wa_ws_free(ws); /* deferred: we are inside its callback */
    char w[256];
    snprintf(w, sizeof w, "%s", why);
    schedule_retry(c, w);
}

static int connect_now(struct wa_client *c)
{
    c->conn_gen++;
    c->pc.active = 0;
    struct wa_ws_options o = {c->url, c->origin, "Mozilla/5.0 (X11; Linux x86_64) wapi", c->cfg.ssl, 20, 16u << 20};
    struct wa_ws_callbacks cb = {on_ws_open, on_ws_message, on_ws_close};
    char why[256];
    c->ws = wa_ws_connect(c->cfg.base, c->cfg.dns, &o, &cb, c, why, sizeof why);
    if (!c->ws) {
        schedule_retry(c, why);
        return -1;
    }
    return 0;
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct wa_client *c = arg;
    if (!c->running || c->ws)
        return;
    set_state(c, c->st == WA_RECONNECTING ? WA_RECONNECTING : WA_CONNECTING, "");
    connect_now(c);
}

/* After logout the socket stays until the server confirms (or a moment
 * passes), so the request is not cut off with the connection. */
static void on_linger_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    drop_transport(arg);
}

struct wa_client *wa_client_new(const struct wa_client_config *cfg, const struct wa_client_events *ev, void *arg)
{
    struct wa_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *cfg;
    snprintf(c->url, sizeof c->url, "%s", cfg->url);
    snprintf(c->origin, sizeof c->origin, "%s", cfg->origin);
    snprintf(c->version, sizeof c->version, "%s", cfg->version);
    snprintf(c->sessions, sizeof c->sessions, "%s", cfg->sessions);
    if (!c->cfg.qr_first_s)
        c->cfg.qr_first_s = 60;
    if (!c->cfg.qr_next_s)
        c->cfg.qr_next_s = 20;
    c->ev = *ev;
    c->arg = arg;
    c->st = WA_STOPPED;
    uint8_t r[4];
    wa_crypto_random(r, sizeof r);
    snprintf(c->id_prefix, sizeof c->id_prefix, "%02X%02X%02X%02X", r[0], r[1], r[2], r[3]);
    c->qr_timer = evtimer_new(cfg->base, on_qr_timer, c);
    c->retry_timer = evtimer_new(cfg->base, on_retry_timer, c);
    c->ping_timer = evtimer_new(cfg->base, on_ping_timer, c);
    c->linger_timer = evtimer_new(cfg->base, on_linger_timer, c);
    return c;
}

int wa_client_start(struct wa_client *c, char *err, size_t errlen)
{
    if (c->running)
        return 0;
    if (!c->have_creds) {
        int r = wa_store_load(c->sessions, &c->creds, err, errlen);
        if (r < 0) {
            log_error("session store unusable; not connecting", LF_S("error", err));
            set_state(c, WA_STOPPED, err);
            return -1;
        }
        if (r == 0) {
            /* A new companion: its keys are durable before they appear in a QR code. */
            if (wa_store_new_creds(&c->creds) < 0 || wa_store_save(c->sessions, &c->creds, err, errlen) < 0) {
                if (!*err)
                    snprintf(err, errlen, "cannot create keys");
                set_state(c, WA_STOPPED, err);
                return -1;
            }
        } else if (wa_store_prekeys_load(c->sessions, &c->prekeys, &c->nprekeys, err, errlen) < 0) {
            log_error("session store unusable; not connecting", LF_S("error", err));
            set_state(c, WA_STOPPED, err);
            return -1;
        }
        c->have_creds = 1;
    }
    if (!c->sig) {
        c->sig = wa_signal_store_open(c->sessions, &c->creds, &c->prekeys, &c->nprekeys, err, errlen);
        c->sig_g = c->sig ? wa_signal_context_new() : NULL;
        if (!c->sig || !c->sig_g || wa_signal_store_context(c->sig, c->sig_g, &c->sig_sc) < 0) {
            if (c->sig)
                snprintf(err, errlen, "cannot set up the Signal store");
            close_signal(c);
            log_error("session store unusable; not connecting", LF_S("error", err));
            set_state(c, WA_STOPPED, err);
            return -1;
        }
    }
    c->running = 1;
    c->backoff_ms = 0;
    set_state(c, WA_CONNECTING, "");
    connect_now(c);
    return 0;
}

void wa_client_stop(struct wa_client *c)
{
    c->running = 0;
    evtimer_del(c->retry_timer);
    drop_transport(c);
    set_state(c, WA_STOPPED, "");
}

void wa_client_logout(struct wa_client *c)
{
    int told = 0;
    if (c->in_transport && c->creds.paired) {
        wa_arena *a = wa_arena_new();
        char id[32];
        wa_node *iq = iq_new(a, c, "set", "md", id, sizeof id);
        wa_node *r = child(a, iq, "remove-companion-device");
        wa_jid j;
        if (wa_jid_parse(a, c->creds.jid, &j) == WA_OK)
            wa_node_add_attr_jid(a, r, "jid", &j);
        wa_node_add_attr(a, r, "reason", "user_initiated");
        if (send_node(c, iq) == 0) {
            remember_iq(c, id, IQ_LOGOUT);
            told = 1;
        }
        wa_arena_free(a);
    }
    c->running = 0;
    evtimer_del(c->retry_timer);
    evtimer_del(c->ping_timer);
    evtimer_del(c->qr_timer);
    if (told) {
        struct timeval tv = {3, 0};
        evtimer_add(c->linger_timer, &tv);
    } else {
        drop_transport(c);
    }
    wipe_credentials(c);
    set_state(c, WA_LOGGED_OUT, "logged out by the user");
}

void wa_client_set_locked(struct wa_client *c, const char *detail)
{
    c->running = 0;
    evtimer_del(c->retry_timer);
    drop_transport(c);
    set_state(c, WA_LOCKED, detail);
}

enum wa_state wa_client_state(const struct wa_client *c)
{
    return c->st;
}

int wa_client_paired(const struct wa_client *c)
{
    return c->have_creds && c->creds.paired;
}

void wa_client_free(struct wa_client *c)
{
    if (!c)
        return;
    drop_transport(c);
    event_free(c->qr_timer);
    event_free(c->retry_timer);
    event_free(c->ping_timer);
    event_free(c->linger_timer);
    close_signal(c);
    OPENSSL_cleanse(&c->creds, sizeof c->creds);
    if (c->prekeys) {
        OPENSSL_cleanse(c->prekeys, c->nprekeys * sizeof *c->prekeys);
        free(c->prekeys);
    }
    free(c);
}

/* ---- for the messaging layer ---- */

void wa_client_set_hooks(struct wa_client *c, const struct wa_client_hooks *h, void *arg)
{
    c->hooks = *h;
    c->hooks_arg = arg;
}

int wa_client_send_node(struct wa_client *c, const wa_node *n)
{
    if (c->st != WA_CONNECTED)
        return -1;
    return send_node(c, n);
}

int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg)
{
    if (c->st != WA_CONNECTED)
        return -1;
    int slot = -1;
    for (int i = 0; i < MAX_IQS && slot < 0; i++)
        if (c->iqs[i].kind == IQ_NONE)
            slot = i;
    if (slot < 0)
        return -1;
    char id[32];
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr(a, iq, "id", next_id(c, id, sizeof id));
    wa_node_add_attr_jid(a, iq, "to", &to);
    if (send_node(c, iq) < 0)
        return -1;
    snprintf(c->iqs[slot].id, sizeof c->iqs[slot].id, "%s", id);
    c->iqs[slot].kind = IQ_CALLBACK;
    c->iqs[slot].cb = cb;
    c->iqs[slot].cb_arg = arg;
    return 0;
}

void wa_client_pause(struct wa_client *c, int paused)
{
    wa_ws_pause(c->ws, paused);
}

void wa_client_ack(struct wa_client *c, const wa_node *n)
{
    send_ack(c, n);
}

const struct wa_creds *wa_client_creds(const struct wa_client *c)
{
    return c->have_creds ? &c->creds : NULL;
}

int wa_client_signal(struct wa_client *c, struct wa_signal *out)
{
    if (!c->sig)
        return -1;
    *out = (struct wa_signal){c->sig_g, c->sig_sc, c->sig};
    return 0;
}

void wa_client_reconnect(struct wa_client *c, const char *why)
{
    if (c->running && c->ws)
        schedule_retry(c, why);
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    return next_id(c, buf, len);
}
