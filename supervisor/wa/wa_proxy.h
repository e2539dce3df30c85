/* A TCP connection to host:port through a proxy (SOCKS5 with or without
 * remote name resolution, or HTTP CONNECT), on the libevent loop: connect
 * to the proxy, its handshake (user name and password when the URL has
 * them), then the plain connection is handed over as a bufferevent, ready
 * for TLS or a WebSocket upgrade. Errors name the proxy by its redacted URL
 * (never the password). */
#ifndef WAPI_WA_PROXY_H
#define WAPI_WA_PROXY_H

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "common/proxy_url.h"

struct wa_proxy_conn;
/* bev: connected through the proxy, the caller's to set up and free; NULL
 * with why when it failed. Called once, never from inside
 * wa_proxy_connect(). */
typedef void (*wa_proxy_cb)(void *arg, struct bufferevent *bev, const char *why);

/* NULL (cb not called) when it cannot start; why says so. */
struct wa_proxy_conn *wa_proxy_connect(struct event_base *base, struct evdns_base *dns,
                                       const struct proxy_url *p, const char *host, int port, int timeout_s,
                                       wa_proxy_cb cb, void *arg, char *why, size_t whylen);
/* Stops a connection under way; cb is not called. */
void wa_proxy_cancel(struct wa_proxy_conn *c);

#endif
