#include "session.h"

#include <event2/dns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "common/db_params.h"
#include "common/log.h"
#include "common/metrics.h"
#include "events.h"
#include "group_refresh.h"
#include "history.h"
#include "placeholder.h"
#include "presence.h"
#include "pg_lock.h"
#include "appsync.h"
#include "audit.h"
#include "sup.h"
#include "inbox.h"
#include "media_download.h"
#include "media_send.h"
#include "outbox.h"
#include "wa/wa_client.h"
#include "wa/wa_messaging.h"
#include "wa/wa_payload.h"
#include "wa/wa_ws.h"
#include "worker_table.h"

#define SESSION_LOCK_KEY 0x7761706953455353ll /* "wapiSESS" */
#define LOCK_RETRY_S 5

static struct {
    struct wa_client *client;
    struct evdns_base *dns;
    SSL_CTX *ssl;
    struct db_params params;
    enum wa_state st;
    char since[64];
    char last_error[256];
    char jid[96], lid[96], name[64], platform[32];
    char *qr;   /* owned; NULL when none */
    int wanted; /* someone asked for the session to run */
    struct event *lock_retry;
} Ss;

static void emit(const char *type, const char *data_json)
{
    events_publish(events_next_id(), type, data_json);
}

/* Empty fields are null on the wire. */
static void kstr_or_null(struct jsonw *w, const char *key, const char *s)
{
    jw_kstr(w, key, s && *s ? s : NULL);
}

void session_json(struct jsonw *w)
{
    jw_obj(w);
    jw_kstr(w, "state", wa_state_name(Ss.st));
    jw_key(w, "me");
    if (Ss.jid[0]) {
        jw_obj(w);
        kstr_or_null(w, "jid", Ss.jid);
        kstr_or_null(w, "lid", Ss.lid);
        kstr_or_null(w, "name", Ss.name);
        kstr_or_null(w, "platform", Ss.platform);
        jw_obj_end(w);
    } else {
        jw_null(w);
    }
    kstr_or_null(w, "since", Ss.since);
    kstr_or_null(w, "last_error", Ss.last_error);
    jw_obj_end(w);
}

/* The status as a whole document in out; -1 when it could not be written. */
static int status_doc(struct sbuf *out)
{
    struct jsonw w;
    jw_init(&w, out);
    session_json(&w);
    return jw_finish(&w);
}

/* The status as a worker's answer (*status kept, or 500). */
static void status_answer(uint32_t *status, struct sbuf *body)
{
    struct jsonw w;
    jw_init(&w, body);
    session_json(&w);
    workers_answer_json(&w, status, body);
}

_Static_assert(WA_STATE_COUNT == METRICS_WA_STATES && WA_CONNECTED == METRICS_WA_CONNECTED,
               "metrics name the session's states in enum wa_state's order");

static void set_state(enum wa_state st, const char *detail, int is_error)
{
    metrics_set(&S.shm->wa_state, (uint64_t)st);
    if (st != Ss.st)
        rfc3339_now_ms(Ss.since, sizeof Ss.since);
    Ss.st = st;
    if (is_error && detail && *detail)
        snprintf(Ss.last_error, sizeof Ss.last_error, "%s", detail);
    if (st == WA_LOGGED_OUT)
        Ss.jid[0] = Ss.lid[0] = Ss.name[0] = Ss.platform[0] = '\0';
    struct sbuf b;
    sbuf_init(&b);
    if (status_doc(&b) == 0)
        emit("session.status", b.buf);
    else
        log_error("session.status event lost: out of memory", LF_S("state", wa_state_name(st)));
    sbuf_free(&b);
}

static void on_client_state(void *arg, enum wa_state st, const char *detail)
{
    (void)arg;
    int is_error = st == WA_RECONNECTING || st == WA_LOGGED_OUT || st == WA_BANNED || st == WA_OUTDATED ||
                   st == WA_LOCKED || (st == WA_STOPPED && detail && *detail);
    log_info("whatsapp session state", LF_S("state", wa_state_name(st)), LF_S("detail", detail));
    enum wa_state prev = Ss.st;
    set_state(st, detail, is_error);
    if (st == WA_CONNECTED && prev != WA_CONNECTED && Ss.client) {
        presence_connected(Ss.client, Ss.name);
        group_refresh(Ss.client);
        placeholder_connected();
        history_kick();
        appsync_connected();
    }
    /* Unlinked (from the phone, or by logout): the account is no longer ours. */
    if (st == WA_LOGGED_OUT && prev != WA_LOGGED_OUT)
        audit_record(NULL, "session.logged_out", Ss.jid[0] ? Ss.jid : NULL, NULL);
    if (st == WA_LOGGED_OUT || st == WA_BANNED || st == WA_OUTDATED || (st == WA_STOPPED && !Ss.wanted)) {
        pg_lock_release();
    }
    if (st == WA_STOPPED && detail && *detail && Ss.wanted) {
        /* The client gave up on its own (QR not scanned, replaced, store error). */
        Ss.wanted = 0;
        pg_lock_release();
    }
}

static void on_client_qr(void *arg, const char *qr)
{
    (void)arg;
    free(Ss.qr);
    Ss.qr = qr ? strdup(qr) : NULL;
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    kstr_or_null(&w, "qr", Ss.qr);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        emit("session.qr", b.buf);
    else
        log_error("session.qr event lost: out of memory");
    sbuf_free(&b);
}

/* Our phone changed our push name (app-state sync): shown, and sent with our presence. */
static void on_push_name(const char *name)
{
    if (!strcmp(Ss.name, name) || !Ss.jid[0])
        return;
    snprintf(Ss.name, sizeof Ss.name, "%s", name);
    log_info("our push name, as our phone set it", LF_S("name", Ss.name));
    set_state(Ss.st, NULL, 0); /* session.status with the name */
    if (Ss.st == WA_CONNECTED && Ss.client)
        presence_connected(Ss.client, Ss.name);
}

static void on_client_me(void *arg, const struct wa_me *me)
{
    (void)arg;
    snprintf(Ss.jid, sizeof Ss.jid, "%s", me->jid ? me->jid : "");
    snprintf(Ss.lid, sizeof Ss.lid, "%s", me->lid ? me->lid : "");
    snprintf(Ss.name, sizeof Ss.name, "%s", me->name ? me->name : "");
    snprintf(Ss.platform, sizeof Ss.platform, "%s", me->platform ? me->platform : "");
    /* Told who we are while showing a QR or pairing code: a phone just linked us. */
    if (Ss.st == WA_QR || Ss.st == WA_PAIRING)
        audit_record(NULL, "session.linked", Ss.jid[0] ? Ss.jid : NULL, NULL);
}

static void try_lock(void);

static void on_lock_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (Ss.wanted && !pg_lock_held())
        try_lock();
}

static void retry_lock_later(void)
{
    struct timeval tv = {LOCK_RETRY_S, 0};
    evtimer_del(Ss.lock_retry);
    evtimer_add(Ss.lock_retry, &tv);
}

static void on_lock(void *arg, enum pg_lock_event ev, const char *detail)
{
    (void)arg;
    char err[512];
    switch (ev) {
    case PG_LOCK_HELD:
        if (!Ss.wanted) {
            pg_lock_release();
            return;
        }
        if (wa_client_start(Ss.client, err, sizeof err) < 0) {
            Ss.wanted = 0;
            pg_lock_release();
        }
        break;
    case PG_LOCK_BUSY:
        wa_client_set_locked(Ss.client, detail);
        retry_lock_later();
        break;
    case PG_LOCK_ERROR:
        log_warn("cannot take the session lock; retrying", LF_S("error", detail));
        if (Ss.st != WA_CONNECTING)
            set_state(WA_CONNECTING, "", 0);
        snprintf(Ss.last_error, sizeof Ss.last_error, "database: %s", detail);
        retry_lock_later();
        break;
    case PG_LOCK_LOST:
        /* Exclusivity can no longer be promised: stop at once, then try again. */
        log_error("session lock lost; disconnecting from WhatsApp", LF_S("error", detail));
        wa_client_stop(Ss.client);
        snprintf(Ss.last_error, sizeof Ss.last_error, "database lock lost: %s", detail);
        retry_lock_later();
        break;
    }
}

static void try_lock(void)
{
    pg_lock_acquire(S.base, &Ss.params, SESSION_LOCK_KEY, on_lock, NULL);
}

static void start(void)
{
    Ss.wanted = 1;
    Ss.last_error[0] = '\0';
    if (pg_lock_held()) {
        char err[512];
        wa_client_start(Ss.client, err, sizeof err);
        return;
    }
    if (Ss.st != WA_CONNECTING)
        set_state(WA_CONNECTING, "", 0);
    try_lock();
}

static void stop(void)
{
    Ss.wanted = 0;
    evtimer_del(Ss.lock_retry);
    wa_client_stop(Ss.client);
    pg_lock_release();
}

static void logout(void)
{
    Ss.wanted = 0;
    evtimer_del(Ss.lock_retry);
    wa_client_logout(Ss.client);
    pg_lock_release();
}

void session_init(void)
{
    Ss.dns = evdns_base_new(S.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    Ss.ssl = wa_ws_client_ssl_ctx();
    db_params_init(&Ss.params, &S.cfg, "wapi-session");
    Ss.lock_retry = evtimer_new(S.base, on_lock_retry, NULL);
    struct wa_client_config cc = {0};
    cc.base = S.base;
    cc.dns = Ss.dns;
    cc.ssl = Ss.ssl;
    cc.url = S.cfg.whatsapp.url;
    cc.origin = S.cfg.whatsapp.origin;
    cc.version = S.cfg.whatsapp.version;
    cc.sessions = S.cfg.paths.sessions;
    cc.proxy = S.cfg.whatsapp.proxy;
    cc.history = !strcmp(S.cfg.whatsapp.history, "off")    ? WA_HISTORY_OFF
                 : !strcmp(S.cfg.whatsapp.history, "full") ? WA_HISTORY_FULL
                                                           : WA_HISTORY_RECENT;
    for (int i = 0; i < 32; i++)
        sscanf(S.cfg.whatsapp.root_key + 2 * i, "%2hhx", &cc.root_key[i]);
    struct wa_client_events ev = {on_client_state, on_client_qr, on_client_me};
    Ss.client = wa_client_new(&cc, &ev, NULL);
    wa_messaging_init(Ss.client, S.base);
    inbox_init();
    outbox_init(S.base, Ss.client);
    media_send_init(Ss.client);
    media_download_init(S.base, Ss.client);
    history_init(S.base, Ss.client);
    appsync_init(S.base, Ss.client);
    appsync_on_push_name(on_push_name);
    Ss.st = WA_STOPPED;
    rfc3339_now_ms(Ss.since, sizeof Ss.since);
}

struct wa_client *session_client(void)
{
    return Ss.client;
}

void session_autostart(void)
{
    if (S.cfg.whatsapp.autostart)
        start();
}

void session_shutdown(void)
{
    if (!Ss.client)
        return;
    Ss.wanted = 0;
    outbox_shutdown();
    wa_client_stop(Ss.client);
    pg_lock_release();
}

int session_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    switch (m->type) {
    case IPC_SESSION_GET:
        if (ipc_rd_end(rd) < 0)
            return -1;
        *status = 200;
        status_answer(status, body);
        return 0;
    case IPC_QR_GET:
        if (ipc_rd_end(rd) < 0)
            return -1;
        if (Ss.qr && Ss.st == WA_QR) {
            *status = 200;
            sbuf_adds(body, Ss.qr);
        } else {
            *status = 404;
        }
        return 0;
    case IPC_SESSION_CMD: {
        uint32_t cmd = ipc_rd_u32(rd);
        uint32_t alen;
        const uint8_t *argp = ipc_rd_bytes(rd, &alen);
        char who_s[3][128];
        for (int i = 0; i < 3; i++) {
            uint32_t l;
            const uint8_t *v = ipc_rd_bytes(rd, &l);
            if (!v || l >= sizeof who_s[i])
                return -1;
            memcpy(who_s[i], v, l);
            who_s[i][l] = '\0';
        }
        if (ipc_rd_end(rd) < 0)
            return -1;
        struct audit_who who = {who_s[0], who_s[1], who_s[2]};
        static const char *const actions[] = {[IPC_CMD_START] = "session.start",
                                              [IPC_CMD_STOP] = "session.stop",
                                              [IPC_CMD_LOGOUT] = "session.logout",
                                              [IPC_CMD_PAIR_PHONE] = "session.pairing_code"};
        if (cmd >= IPC_CMD_START && cmd <= IPC_CMD_PAIR_PHONE)
            audit_record(&who, actions[cmd], Ss.jid[0] ? Ss.jid : NULL, NULL);
        switch (cmd) {
        case IPC_CMD_START:
            start();
            *status = 202;
            break;
        case IPC_CMD_STOP:
            stop();
            *status = 200;
            break;
        case IPC_CMD_LOGOUT:
            logout();
            *status = 200;
            break;
        case IPC_CMD_PAIR_PHONE: {
            char digits[32], code[16], err[200];
            if (!argp || alen == 0 || alen >= sizeof digits)
                return -1;
            memcpy(digits, argp, alen);
            digits[alen] = '\0';
            if (wa_client_pair_phone(Ss.client, digits, code, sizeof code, err, sizeof err) < 0) {
                *status = 409;
                jw_error_body(body, "not_pairable", err, "phone");
                return 0;
            }
            *status = 200;
            struct jsonw w;
            jw_init(&w, body);
            jw_obj(&w);
            jw_kstr(&w, "code", code);
            jw_obj_end(&w);
            workers_answer_json(&w, status, body);
            return 0;
        }
        default:
            return -1;
        }
        status_answer(status, body);
        return 0;
    }
    case IPC_EVENTS_SINCE: {
        uint64_t after_id = ipc_rd_u64(rd), after_seq = ipc_rd_u64(rd);
        if (ipc_rd_end(rd) < 0)
            return -1;
        *status = 200;
        events_since(after_id, after_seq, Ss.st == WA_QR, body);
        return 0;
    }
    }
    return -1;
}

int session_command(const char *cmd, struct jsonw *w)
{
    if (!*cmd || !strcmp(cmd, "status")) {
    } else if (!strcmp(cmd, "start")) {
        start();
    } else if (!strcmp(cmd, "stop")) {
        stop();
    } else if (!strcmp(cmd, "logout")) {
        logout();
    } else if (!strcmp(cmd, "qr")) {
        kstr_or_null(w, "qr", Ss.st == WA_QR ? Ss.qr : NULL);
    } else {
        return -1;
    }
    jw_key(w, "session");
    session_json(w);
    return 0;
}
