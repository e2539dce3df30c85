/* The WhatsApp linked-device client: one connection to the WhatsApp
 * servers on the supervisor's libevent loop. Transport (WebSocket, Noise),
 * pairing by QR, login from the session store, prekeys, keepalive,
 * reconnection with backoff, and the mapping of every stream error and
 * failure to a state. Everything it learns goes out through callbacks. */
#ifndef WAPI_WA_CLIENT_H
#define WAPI_WA_CLIENT_H
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdint.h>

enum wa_state {
    WA_STOPPED,
    WA_CONNECTING,
    WA_QR,
    WA_PAIRING,
    WA_CONNECTED,
    WA_RECONNECTING,
    WA_LOGGED_OUT,
    WA_BANNED,
    WA_OUTDATED,
    WA_LOCKED,
    WA_STATE_COUNT
};

const char *wa_state_name(enum wa_state st);

struct wa_client_config {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl;         /* for wss:// */
    const char *url;      /* copied */
    const char *origin;   /* copied */
    const char *version;  /* "2.3000.N", copied */
    const char *sessions; /* the session store directory, copied */
    uint8_t root_key[32]; /* the certificate chain's root */
    unsigned qr_first_s;  /* 60 */
    unsigned qr_next_s;   /* 20 */
    const char *proxy;    /* "socks5h://…", "http://…" or "" (directly); copied, checked by the caller */
    int history;          /* WA_HISTORY_* (wa_payload.h): asked for when registering */
};

struct wa_me {
    const char *jid, *lid, *name, *platform; /* borrowed for the call */
};

struct wa_client_events {
    /* detail: why (a failure reason, a stream error), or "" */
    void (*on_state)(void *arg, enum wa_state st, const char *detail);
    /* qr is NULL when the QR code is gone */
    void (*on_qr)(void *arg, const char *qr);
    void (*on_me)(void *arg, const struct wa_me *me);
};

struct wa_client;

struct wa_client *wa_client_new(const struct wa_client_config *cfg, const struct wa_client_events *ev,
                                void *arg);
/* Connects (a no-op when already running). -1 with err when the store is corrupt. */
int wa_client_start(struct wa_client *c, char *err, size_t errlen);
/* Disconnects; state stopped. */
void wa_client_stop(struct wa_client *c);
/* Tells the server (when connected), wipes the credentials; state logged_out. */
void wa_client_logout(struct wa_client *c);
/* Pairing by phone number: asks the server for a linking code for phone
 * (digits, international form) and writes it as "XXXX-XXXX" into code_out.
 * The session must be waiting for a QR scan. -1 with err otherwise. */
int wa_client_pair_phone(struct wa_client *c, const char *digits, char *code_out, size_t code_len, char *err,
                         size_t errlen);
/* Marks the session locked by another process (state locked, nothing runs). */
void wa_client_set_locked(struct wa_client *c, const char *detail);
enum wa_state wa_client_state(const struct wa_client *c);
/* Has paired credentials on disk (loaded). */
int wa_client_paired(const struct wa_client *c);
void wa_client_free(struct wa_client *c);

/* ---- for the messaging layer ---- */
#include <signal/signal_protocol.h>

#include "wa_binary.h"
#include "wa_store.h"

struct wa_signal_store;
/* n is NULL when the connection went away before the answer. */
typedef void (*wa_iq_cb)(void *arg, const wa_node *n);

struct wa_client_hooks {
    /* <message>, <receipt>, <ack>, <notification type=devices|mediaretry>
     * (acked already) while paired; return 1 to keep a (the tree), then free it
     * with wa_arena_free; 0 and the client frees it. */
    int (*on_stanza)(void *arg, wa_node *n, wa_arena *a);
    void (*on_connected)(void *arg);  /* logged in */
    void (*on_disconnect)(void *arg); /* transport gone */
};
void wa_client_set_hooks(struct wa_client *c, const struct wa_client_hooks *h, void *arg);
/* Sends a stanza when connected; -1 otherwise. */
int wa_client_send_node(struct wa_client *c, const wa_node *n);
/* Sends iq (id is added here, and to = the server unless iq has a to); cb gets the answer, or NULL if the
 * connection drops first. -1 when not connected (cb will not run). */
int wa_client_iq(struct wa_client *c, wa_arena *a, wa_node *iq, wa_iq_cb cb, void *arg);
/* paused: stops taking stanzas in (the socket is not read) until resumed;
 * each new connection starts taking them. */
void wa_client_pause(struct wa_client *c, int paused);
/* <ack> for a stanza the server sent. */
void wa_client_ack(struct wa_client *c, const wa_node *n);
const struct wa_creds *wa_client_creds(const struct wa_client *c);
struct wa_signal {
    signal_context *g;
    signal_protocol_store_context *sc;
    struct wa_signal_store *st;
};
/* The Signal state of this session (after start). -1 when none. */
int wa_client_signal(struct wa_client *c, struct wa_signal *out);
/* Drops the connection and reconnects with backoff (the server resends what was not acked). */
void wa_client_reconnect(struct wa_client *c, const char *why);
const char *wa_client_new_id(struct wa_client *c, char *buf, size_t len);

#endif
