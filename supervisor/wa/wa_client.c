#include "wa_client.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "wa_binary.h"
#include "wa_client_int.h"
#include "wa_crypto.h"
#include "wa_noise.h"
#include "wa_offload.h"
#include "wa_payload.h"
#include "wa_signal_crypto.h"
#include "wa_signal_store.h"
#include "wa_store.h"
#include "wa_ws.h"

#define PING_INTERVAL_S 25
#define PING_TIMEOUT_S 20
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

static const char *const state_names[WA_STATE_COUNT] = {"stopped",   "connecting",   "qr",         "pairing",
                                                        "connected", "reconnecting", "logged_out", "banned",
                                                        "outdated",  "locked"};

const char *wa_state_name(enum wa_state st)
{
    return st < WA_STATE_COUNT ? state_names[st] : "unknown";
}

void wac_set_state(struct wa_client *c, enum wa_state st, const char *detail)
{
    if (c->st == st && !(detail && *detail))
        return;
    c->st = st;
    if (c->ev.on_state)
        c->ev.on_state(c->arg, st, detail ? detail : "");
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
        wac_pair_qr_clear(c);
}

static int connect_now(struct wa_client *c);

/* Lost or refused: try again later unless a terminal state was reached. */
void wac_schedule_retry(struct wa_client *c, const char *why)
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
    wac_set_state(c, WA_RECONNECTING, why);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->retry_timer, &tv);
}

/* A terminal outcome: nothing more happens until someone starts us again. */
void wac_halt(struct wa_client *c, enum wa_state st, const char *why)
{
    c->running = 0;
    drop_transport(c);
    evtimer_del(c->retry_timer);
    log_warn("whatsapp session halted", LF_S("state", wa_state_name(st)), LF_S("why", why));
    wac_set_state(c, st, why);
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

int wac_send_node(struct wa_client *c, const wa_node *n)
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

void wac_remember_iq(struct wa_client *c, const char *id, enum iq_kind kind)
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

wa_node *wac_iq_new(wa_arena *a, struct wa_client *c, const char *type, const char *xmlns, char *id,
                    size_t idlen)
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

wa_node *wac_child(wa_arena *a, wa_node *parent, const char *tag)
{
    wa_node *n = wa_node_new(a, tag);
    wa_node_add_child(a, parent, n);
    return n;
}

/* <iq id to=server type> in a: the answer to the server's iq id. */
static wa_node *iq_answer(wa_arena *a, const char *id, const char *type)
{
    wa_node *iq = wa_node_new(a, "iq");
    wa_jid to;
    wa_jid_parse(a, SERVER, &to);
    wa_node_add_attr(a, iq, "id", id);
    wa_node_add_attr_jid(a, iq, "to", &to);
    wa_node_add_attr(a, iq, "type", type);
    return iq;
}

void wac_send_iq_result(struct wa_client *c, const wa_node *req)
{
    const char *id = wa_node_attr_str(req, "id");
    if (!id)
        return;
    wa_arena *a = wa_arena_new();
    wac_send_node(c, iq_answer(a, id, "result"));
    wa_arena_free(a);
}

void wac_send_iq_error(struct wa_client *c, const char *id, int code, const char *text)
{
    wa_arena *a = wa_arena_new();
    wa_node *iq = iq_answer(a, id, "error");
    wa_node *e = wac_child(a, iq, "error");
    char codebuf[16];
    snprintf(codebuf, sizeof codebuf, "%d", code);
    wa_node_add_attr(a, e, "code", codebuf);
    wa_node_add_attr(a, e, "text", text);
    wac_send_node(c, iq);
    wa_arena_free(a);
}

/* An IQ to the server with one empty wac_child, remembered so its reply is
 * routed by kind. 0 when it went out. */
static int send_simple_iq(struct wa_client *c, const char *type, const char *xmlns, const char *tag,
                          enum iq_kind kind)
{
    wa_arena *a = wa_arena_new();
    char id[32];
    wa_node *iq = wac_iq_new(a, c, type, xmlns, id, sizeof id);
    wac_child(a, iq, tag);
    int rc = wac_send_node(c, iq);
    if (rc == 0)
        wac_remember_iq(c, id, kind);
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
        wac_schedule_retry(c, "keepalive: no answer from the server");
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
    case IQ_PING:
        c->ping_outstanding = 0;
        keepalive_arm(c);
        break;
    case IQ_PREKEY_COUNT:
        wac_prekeys_count(c, n, ok);
        break;
    case IQ_PREKEY_UPLOAD:
        wac_prekeys_uploaded(c, ok);
        break;
    case IQ_ACTIVE:
        break;
    case IQ_LOGOUT:
        drop_transport(c);
        break;
    case IQ_PAIR_CODE:
        wac_pair_code_registered(c, n, ok);
        break;
    case IQ_PAIR_FINISH:
        wac_pair_code_finished(ok);
        break;
    case IQ_CALLBACK:
    case IQ_NONE:
        break;
    }
}

static void handle_stream_error(struct wa_client *c, const wa_node *n)
{
    const char *code = wa_node_attr_str(n, "code");
    const wa_node *conflict = wa_node_child(n, "conflict");
    const char *ctype = conflict ? wa_node_attr_str(conflict, "type") : NULL;
    char why[128];
    snprintf(why, sizeof why, "stream error%s%s%s%s", code ? " " : "", code ? code : "",
             ctype ? " conflict " : "", ctype ? ctype : "");
    if (code && strcmp(code, "515") == 0) {
        /* Pairing done (or the server wants a fresh start): log in again now. */
        log_info("whatsapp asked for a restart (515)");
        drop_transport(c);
        c->backoff_ms = 0;
        wac_set_state(c, WA_CONNECTING, "restart after pairing");
        connect_now(c);
        return;
    }
    if (ctype && strcmp(ctype, "replaced") == 0) {
        wac_halt(c, WA_STOPPED, "replaced: another client took over this session");
        return;
    }
    if ((code && strcmp(code, "401") == 0) || (ctype && strcmp(ctype, "device_removed") == 0)) {
        wipe_credentials(c);
        wac_halt(c, WA_LOGGED_OUT, ctype ? ctype : "logged out by the server");
        return;
    }
    wac_schedule_retry(c, why);
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
        wac_halt(c, WA_LOGGED_OUT, why);
        return;
    case 402: {
        const char *expire = wa_node_attr_str(n, "expire");
        char b[200];
        snprintf(b, sizeof b, "temporarily banned (failure 402%s%s)", expire ? ", expires in " : "",
                 expire ? expire : "");
        wac_halt(c, WA_BANNED, b);
        return;
    }
    case 405:
        wac_halt(c, WA_OUTDATED, "client version outdated (failure 405): set whatsapp.version");
        return;
    case 409:
        wac_halt(c, WA_OUTDATED, "bad user agent (failure 409)");
        return;
    default:
        wac_schedule_retry(c, why);
        return;
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
    wac_send_node(c, ack);
    wa_arena_free(a);
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
            wac_pair_device(c, n, pd);
        else if (ps && !c->creds.paired)
            wac_pair_success(c, n, ps);
        else if (xmlns && strcmp(xmlns, "urn:xmpp:ping") == 0)
            wac_send_iq_result(c, n);
        return 0;
    }
    if (strcmp(n->tag, "success") == 0) {
        c->backoff_ms = 0;
        const char *lid = wa_node_attr_str(n, "lid");
        if (lid && !c->creds.lid[0])
            snprintf(c->creds.lid, sizeof c->creds.lid, "%s", lid);
        log_info("whatsapp connected", LF_S("jid", c->creds.jid));
        wac_set_state(c, WA_CONNECTED, "");
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
        wac_schedule_retry(c, "stream ended by the server");
        return 0;
    }
    if (strcmp(n->tag, "notification") == 0) {
        const char *type = wa_node_attr_str(n, "type");
        /* A group's change is acked by the messaging layer once the
         * application has stored it (wa_client_ack). */
        int deferred = type && !strcmp(type, "w:gp2") && c->hooks.on_stanza && c->creds.paired;
        if (!deferred)
            send_ack(c, n);
        if (type && strcmp(type, "link_code_companion_reg") == 0) {
            wac_pair_code_primary_hello(c, n);
            return 0;
        }
        if (type && strcmp(type, "encrypt") == 0) {
            const wa_node *cnt = wa_node_child(n, "count");
            if (cnt)
                wac_prekeys_refill(c);
        }
        /* A user's devices changed: the messaging layer's device lists; our
         * phone answered a media retry request: the application's; a group's
         * members changed: the group send's member list and sender key;
         * app-state collections changed: the application's sync. */
        if (type &&
            (!strcmp(type, "devices") || !strcmp(type, "mediaretry") || !strcmp(type, "w:gp2") ||
             !strcmp(type, "server_sync")) &&
            c->hooks.on_stanza && c->creds.paired)
            return c->hooks.on_stanza(c->hooks_arg, n, a);
        return 0;
    }
    if (strcmp(n->tag, "ib") == 0)
        return 0;
    if ((!strcmp(n->tag, "message") || !strcmp(n->tag, "receipt") || !strcmp(n->tag, "ack") ||
         !strcmp(n->tag, "presence") || !strcmp(n->tag, "chatstate") || !strcmp(n->tag, "call")) &&
        c->hooks.on_stanza && c->creds.paired)
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
        wac_schedule_retry(c, "noise init failed");
        return;
    }
    c->ns_live = 1;
    uint8_t *out;
    size_t len;
    if (wa_noise_start(&c->ns, &out, &len) != WA_NOISE_OK) {
        wac_schedule_retry(c, "noise start failed");
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
    o.history = c->history;
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
            wac_schedule_retry(c, "bad frame from the server");
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
                wac_halt(c, WA_STOPPED, err);
                return;
            }
            rc = wa_noise_read_server_hello(&c->ns, frame, flen, payload, plen, (uint64_t)time(NULL), &out,
                                            &olen);
            free(payload);
            if (rc != WA_NOISE_OK) {
                char why[256];
                snprintf(why, sizeof why, "handshake failed: %s", wa_noise_reason(&c->ns));
                wac_schedule_retry(c, why);
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
            wac_schedule_retry(c, "frame failed authentication (bad MAC)");
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
            wac_schedule_retry(c, why);
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
    wac_schedule_retry(c, w);
}

static int connect_now(struct wa_client *c)
{
    c->conn_gen++;
    c->pc.active = 0;
    struct wa_ws_options o = {c->url,    c->origin, "Mozilla/5.0 (X11; Linux x86_64) wapi", c->cfg.ssl, 20,
                              16u << 20, &c->proxy};
    struct wa_ws_callbacks cb = {on_ws_open, on_ws_message, on_ws_close};
    char why[256];
    c->ws = wa_ws_connect(c->cfg.base, c->cfg.dns, &o, &cb, c, why, sizeof why);
    if (!c->ws) {
        wac_schedule_retry(c, why);
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
    wac_set_state(c, c->st == WA_RECONNECTING ? WA_RECONNECTING : WA_CONNECTING, "");
    connect_now(c);
}

/* After logout the socket stays until the server confirms (or a moment
 * passes), so the request is not cut off with the connection. */
static void on_linger_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    drop_transport(arg);
}

struct wa_client *wa_client_new(const struct wa_client_config *cfg, const struct wa_client_events *ev,
                                void *arg)
{
    if (wa_offload_init(cfg->base) < 0)
        return NULL; /* the pairing code's key derivation runs off the loop */
    struct wa_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *cfg;
    snprintf(c->url, sizeof c->url, "%s", cfg->url);
    snprintf(c->origin, sizeof c->origin, "%s", cfg->origin);
    snprintf(c->version, sizeof c->version, "%s", cfg->version);
    c->history = cfg->history;
    snprintf(c->sessions, sizeof c->sessions, "%s", cfg->sessions);
    char perr[200];
    if (proxy_url_parse(cfg->proxy, &c->proxy, perr, sizeof perr) < 0) {
        free(c);
        return NULL;
    }
    c->cfg.proxy = NULL; /* not kept: the parsed copy is */
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
    c->qr_timer = evtimer_new(cfg->base, wac_pair_on_qr_timer, c);
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
            wac_set_state(c, WA_STOPPED, err);
            return -1;
        }
        if (r == 0) {
            /* A new companion: its keys are durable before they appear in a QR code. */
            if (wa_store_new_creds(&c->creds) < 0 || wa_store_save(c->sessions, &c->creds, err, errlen) < 0) {
                if (!*err)
                    snprintf(err, errlen, "cannot create keys");
                wac_set_state(c, WA_STOPPED, err);
                return -1;
            }
        } else if (wa_store_prekeys_load(c->sessions, &c->prekeys, &c->nprekeys, err, errlen) < 0) {
            log_error("session store unusable; not connecting", LF_S("error", err));
            wac_set_state(c, WA_STOPPED, err);
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
            wac_set_state(c, WA_STOPPED, err);
            return -1;
        }
    }
    c->running = 1;
    c->backoff_ms = 0;
    wac_set_state(c, WA_CONNECTING, "");
    connect_now(c);
    return 0;
}

void wa_client_stop(struct wa_client *c)
{
    c->running = 0;
    evtimer_del(c->retry_timer);
    drop_transport(c);
    wac_set_state(c, WA_STOPPED, "");
}

void wa_client_logout(struct wa_client *c)
{
    int told = 0;
    if (c->in_transport && c->creds.paired) {
        wa_arena *a = wa_arena_new();
        char id[32];
        wa_node *iq = wac_iq_new(a, c, "set", "md", id, sizeof id);
        wa_node *r = wac_child(a, iq, "remove-companion-device");
        wa_jid j;
        if (wa_jid_parse(a, c->creds.jid, &j) == WA_OK)
            wa_node_add_attr_jid(a, r, "jid", &j);
        wa_node_add_attr(a, r, "reason", "user_initiated");
        if (wac_send_node(c, iq) == 0) {
            wac_remember_iq(c, id, IQ_LOGOUT);
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
    wac_set_state(c, WA_LOGGED_OUT, "logged out by the user");
}

void wa_client_set_locked(struct wa_client *c, const char *detail)
{
    c->running = 0;
    evtimer_del(c->retry_timer);
    drop_transport(c);
    wac_set_state(c, WA_LOCKED, detail);
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
    return wac_send_node(c, n);
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
    wa_node_add_attr(a, iq, "id", next_id(c, id, sizeof id));
    if (!wa_node_attr(iq, "to")) { /* a group's query names the group */
        wa_jid_parse(a, SERVER, &to);
        wa_node_add_attr_jid(a, iq, "to", &to);
    }
    if (wac_send_node(c, iq) < 0)
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
        wac_schedule_retry(c, why);
}

const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len)
{
    return next_id(c, buf, len);
}
