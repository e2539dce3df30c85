/* A WebSocket client on the supervisor's libevent loop: ws:// or wss://
 * (TLS with certificate and host-name verification), our own HTTP Upgrade,
 * libwslay for framing; directly or through a proxy (wa_proxy.c). Binary messages in and out; nothing blocks.
 */
#ifndef WAPI_WA_WS_H
#define WAPI_WA_WS_H
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proxy_url.h"

struct wa_ws;

struct wa_ws_callbacks {
    void (*on_open)(void *arg);
    void (*on_message)(void *arg, const uint8_t *data, size_t len);
    /* Once, after open or not; the owner then calls wa_ws_free(). why is borrowed. */
    void (*on_close)(void *arg, const char *why);
};

struct wa_ws_options {
    const char *url;    /* ws://host[:port]/path or wss://... */
    const char *origin; /* the Origin header */
    const char *user_agent;
    SSL_CTX *ssl_ctx; /* for wss://; borrowed (verify paths set by the caller) */
    int connect_timeout_s;
    size_t max_message;            /* larger inbound messages fail the connection */
    const struct proxy_url *proxy; /* connect through it; NULL or PROXY_NONE: directly */
};

/* Returns NULL with why set when the URL is unusable. */
struct wa_ws *wa_ws_connect(struct event_base *base, struct evdns_base *dns, const struct wa_ws_options *o,
                            const struct wa_ws_callbacks *cb, void *arg, char *why, size_t whylen);
/* Queues one binary message; -1 if the socket is not open. */
int wa_ws_send(struct wa_ws *ws, const uint8_t *data, size_t len);
/* paused: no more messages are taken in (the socket is not read, so TCP
 * holds the sender back); writing goes on. Resuming takes what arrived
 * meanwhile on a later turn of the loop. */
void wa_ws_pause(struct wa_ws *ws, int paused);
/* Bytes queued but not yet written to the socket. */
size_t wa_ws_pending(const struct wa_ws *ws);
/* Closes and frees; no callback runs after it. Safe inside a callback. */
void wa_ws_free(struct wa_ws *ws);
/* Creates an SSL_CTX for clients: system CAs, TLS 1.2+, peer verification. */
SSL_CTX *wa_ws_client_ssl_ctx(void);

#endif
