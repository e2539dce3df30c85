#include "wa_ws.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "wa_proxy.h"

#define MAX_RESPONSE_HEAD 8192

enum ws_state { WS_CONNECTING, WS_UPGRADING, WS_OPEN, WS_CLOSED };

struct wa_ws {
    struct bufferevent *bev;
    wslay_event_context_ptr ctx;
    enum ws_state st;
    struct wa_ws_callbacks cb;
    void *arg;
    char host[256], path[1024], origin[256], ua[128];
    int port, tls;
    char key_b64[32];
    size_t max_message;
    int paused; /* wa_ws_pause(): no message is taken in */
    int depth;  /* >0 while inside our callbacks: freeing is deferred */
    int doomed; /* wa_ws_free() was called during a callback */
    int closed_reported;
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct wa_proxy_conn *pc; /* connecting through a proxy */
    int timeout_s;
};

static void destroy(struct wa_ws *ws)
{
    wa_proxy_cancel(ws->pc);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    if (ws->bev)
        bufferevent_free(ws->bev); /* BEV_OPT_CLOSE_ON_FREE: closes the socket and SSL */
    free(ws);
}

void wa_ws_free(struct wa_ws *ws)
{
    if (!ws)
        return;
    if (ws->depth > 0) {
        ws->doomed = 1;
        ws->cb.on_close = NULL;
        ws->cb.on_message = NULL;
        ws->cb.on_open = NULL;
        if (ws->bev)
            bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
        return;
    }
    destroy(ws);
}

/* Every entry from libevent goes through enter/leave so a callback may free ws. */
static void enter(struct wa_ws *ws)
{
    ws->depth++;
}

static int leave(struct wa_ws *ws)
{
    if (--ws->depth == 0 && ws->doomed) {
        destroy(ws);
        return -1;
    }
    return 0;
}

static void fail(struct wa_ws *ws, const char *why)
{
    if (ws->closed_reported)
        return;
    ws->closed_reported = 1;
    ws->st = WS_CLOSED;
    if (ws->bev)
        bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
    if (ws->cb.on_close)
        ws->cb.on_close(ws->arg, why);
}

static int parse_url(struct wa_ws *ws, const char *url)
{
    const char *p;
    if (strncmp(url, "wss://", 6) == 0) {
        ws->tls = 1;
        ws->port = 443;
        p = url + 6;
    } else if (strncmp(url, "ws://", 5) == 0) {
        ws->tls = 0;
        ws->port = 80;
        p = url + 5;
    } else {
        return -1;
    }
    const char *slash = strchr(p, '/');
    size_t hostlen = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hostlen);
    size_t namelen = colon ? (size_t)(colon - p) : hostlen;
    if (namelen == 0 || namelen >= sizeof ws->host)
        return -1;
    memcpy(ws->host, p, namelen);
    ws->host[namelen] = '\0';
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hostlen || port < 1 || port > 65535)
            return -1;
        ws->port = (int)port;
    }
    snprintf(ws->path, sizeof ws->path, "%s", slash ? slash : "/");
    for (const char *c = ws->host; *c; c++)
        if (*c <= ' ' || *c == '\r' || *c == '\n')
            return -1;
    for (const char *c = ws->path; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return -1;
    return 0;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct wa_ws *ws = user;
    struct evbuffer *in = bufferevent_get_input(ws->bev);
    /* Paused: what wslay holds already may still come out, nothing more. */
    int n = ws->paused ? 0 : evbuffer_remove(in, buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    struct wa_ws *ws = user;
    if (bufferevent_write(ws->bev, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx, (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user)
{
    (void)ctx;
    struct wa_ws *ws = user;
    if (ws->doomed || ws->st != WS_OPEN)
        return;
    if (a->opcode == WSLAY_BINARY_FRAME) {
        if (ws->cb.on_message)
            ws->cb.on_message(ws->arg, a->msg, a->msg_length);
    } else if (a->opcode == WSLAY_TEXT_FRAME) {
        fail(ws, "server sent a text message");
    } else if (a->opcode == WSLAY_CONNECTION_CLOSE) {
        char why[64];
        snprintf(why, sizeof why, "server closed the websocket (%u)", a->status_code);
        fail(ws, why);
    }
}

static void pump(struct wa_ws *ws)
{
    if (ws->st != WS_OPEN || ws->doomed)
        return;
    if (!ws->paused && wslay_event_recv(ws->ctx) != 0) {
        fail(ws, "websocket protocol error");
        return;
    }
    if (ws->st != WS_OPEN || ws->doomed)
        return;
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
        fail(ws, "websocket send failed");
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* The HTTP/1.1 101 answer, headers checked as RFC 6455 says. */
static int check_upgrade(struct wa_ws *ws, const char *head, char *why, size_t whylen)
{
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        snprintf(why, whylen, "websocket upgrade refused: %.40s", head);
        char *nl = strpbrk(why, "\r\n");
        if (nl)
            *nl = '\0';
        return -1;
    }
    char expect[64];
    {
        char cat[128];
        snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", ws->key_b64);
        uint8_t sha[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)cat, strlen(cat), sha);
        b64(sha, sizeof sha, expect);
    }
    int upgrade = 0, connection = 0, accept = 0;
    for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        const char *end = strstr(l, "\r\n");
        size_t n = end ? (size_t)(end - l) : strlen(l);
        if (n >= 8 && strncasecmp(l, "upgrade:", 8) == 0)
            upgrade = strcasestr(l, "websocket") && strcasestr(l, "websocket") < l + n;
        else if (n >= 11 && strncasecmp(l, "connection:", 11) == 0)
            connection = strcasestr(l, "upgrade") && strcasestr(l, "upgrade") < l + n;
        else if (n >= 21 && strncasecmp(l, "sec-websocket-accept:", 21) == 0) {
            const char *v = l + 21;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(l + n - v);
            while (vl && v[vl - 1] == ' ')
                vl--;
            accept = vl == strlen(expect) && memcmp(v, expect, vl) == 0;
        }
    }
    if (!upgrade || !connection || !accept) {
        snprintf(why, whylen, "websocket upgrade answer invalid (%s)",
                 !accept    ? "Sec-WebSocket-Accept"
                 : !upgrade ? "Upgrade"
                            : "Connection");
        return -1;
    }
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct wa_ws *ws = arg;
    enter(ws);
    if (ws->st == WS_UPGRADING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > MAX_RESPONSE_HEAD)
                fail(ws, "websocket upgrade answer too large");
            leave(ws);
            return;
        }
        size_t n = (size_t)end.pos + 4;
        if (n > MAX_RESPONSE_HEAD) {
            fail(ws, "websocket upgrade answer too large");
            leave(ws);
            return;
        }
        char *head = malloc(n + 1);
        evbuffer_remove(in, head, n);
        head[n] = '\0';
        char why[160];
        int ok = check_upgrade(ws, head, why, sizeof why) == 0;
        free(head);
        if (!ok) {
            fail(ws, why);
            leave(ws);
            return;
        }
        struct wslay_event_callbacks cbs = {recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, on_msg_cb};
        if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0) {
            fail(ws, "out of memory");
            leave(ws);
            return;
        }
        wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
        ws->st = WS_OPEN;
        bufferevent_set_timeouts(bev, NULL, NULL);
        if (ws->cb.on_open)
            ws->cb.on_open(ws->arg);
    }
    pump(ws);
    leave(ws);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct wa_ws *ws = arg;
    enter(ws);
    pump(ws);
    leave(ws);
}

static void send_upgrade(struct wa_ws *ws)
{
    uint8_t key[16];
    RAND_bytes(key, sizeof key);
    b64(key, sizeof key, ws->key_b64);
    char hostport[300];
    if ((ws->tls && ws->port == 443) || (!ws->tls && ws->port == 80))
        snprintf(hostport, sizeof hostport, "%s", ws->host);
    else
        snprintf(hostport, sizeof hostport, "%s:%d", ws->host, ws->port);
    evbuffer_add_printf(
        bufferevent_get_output(ws->bev),
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\nUser-Agent: %s\r\n\r\n",
        ws->path, hostport, ws->key_b64, ws->origin, ws->ua);
    ws->st = WS_UPGRADING;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct wa_ws *ws = arg;
    enter(ws);
    if (what & BEV_EVENT_CONNECTED) {
        /* Stanzas are small and each waits for an answer: without this, Nagle
         * holds a write behind the peer's delayed ACK (tens of ms per round). */
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        send_upgrade(ws);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        char why[400];
        if (what & BEV_EVENT_TIMEOUT) {
            snprintf(why, sizeof why, "%s timed out",
                     ws->st == WS_CONNECTING ? "connect" : "websocket upgrade");
        } else if (what & BEV_EVENT_EOF) {
            snprintf(why, sizeof why, "connection closed by the server");
        } else {
            unsigned long e = ws->tls ? bufferevent_get_openssl_error(bev) : 0;
            int dnserr = bufferevent_socket_get_dns_error(bev);
            if (dnserr)
                snprintf(why, sizeof why, "cannot resolve %s: %s", ws->host, evutil_gai_strerror(dnserr));
            else if (e)
                snprintf(why, sizeof why, "TLS: %s", ERR_reason_error_string(e));
            else
                snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        }
        fail(ws, why);
    }
    leave(ws);
}

/* TLS for host with certificate and name checks; NULL when unavailable. */
static SSL *new_ssl(struct wa_ws *ws)
{
    SSL *ssl = ws->ssl_ctx ? SSL_new(ws->ssl_ctx) : NULL;
    if (!ssl)
        return NULL;
    SSL_set_tlsext_host_name(ssl, ws->host); /* SNI */
    SSL_set1_host(ssl, ws->host);            /* the certificate must name this host */
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    return ssl;
}

static void use_bev(struct wa_ws *ws)
{
    bufferevent_setcb(ws->bev, on_read, on_write, on_event, ws);
    struct timeval tv = {ws->timeout_s, 0};
    bufferevent_set_timeouts(ws->bev, &tv, &tv);
    bufferevent_enable(ws->bev, EV_READ | EV_WRITE);
}

/* Through the proxy: TLS over the tunnel (its handshake's end is the
 * CONNECTED event), or the upgrade at once. */
static void on_tunnel(void *arg, struct bufferevent *bev, const char *why)
{
    struct wa_ws *ws = arg;
    ws->pc = NULL;
    enter(ws);
    if (!bev) {
        fail(ws, why);
    } else if (ws->tls) {
        SSL *ssl = new_ssl(ws);
        ws->bev = ssl ? bufferevent_openssl_filter_new(ws->base, bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
                      : NULL;
        if (!ws->bev) {
            if (ssl)
                SSL_free(ssl);
            bufferevent_free(bev);
            fail(ws, "TLS unavailable");
        } else {
            use_bev(ws);
        }
    } else {
        ws->bev = bev;
        use_bev(ws);
        send_upgrade(ws);
    }
    leave(ws);
}

struct wa_ws *wa_ws_connect(struct event_base *base, struct evdns_base *dns, const struct wa_ws_options *o,
                            const struct wa_ws_callbacks *cb, void *arg, char *why, size_t whylen)
{
    struct wa_ws *ws = calloc(1, sizeof *ws);
    if (!ws) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (parse_url(ws, o->url) < 0) {
        snprintf(why, whylen, "unusable URL \"%s\" (expected ws:// or wss://host[:port]/path)", o->url);
        free(ws);
        return NULL;
    }
    snprintf(ws->origin, sizeof ws->origin, "%s", o->origin ? o->origin : "");
    snprintf(ws->ua, sizeof ws->ua, "%s", o->user_agent ? o->user_agent : "wapi");
    ws->cb = *cb;
    ws->arg = arg;
    ws->max_message = o->max_message ? o->max_message : (16u << 20);
    ws->base = base;
    ws->ssl_ctx = o->ssl_ctx;
    ws->timeout_s = o->connect_timeout_s > 0 ? o->connect_timeout_s : 20;
    if (ws->tls && !ws->ssl_ctx) {
        snprintf(why, whylen, "TLS unavailable");
        free(ws);
        return NULL;
    }
    if (o->proxy && o->proxy->kind != PROXY_NONE) {
        ws->st = WS_CONNECTING;
        ws->pc = wa_proxy_connect(base, dns, o->proxy, ws->host, ws->port, ws->timeout_s, on_tunnel, ws, why,
                                  whylen);
        if (!ws->pc) {
            free(ws);
            return NULL;
        }
        return ws;
    }
    if (ws->tls) {
        SSL *ssl = new_ssl(ws);
        if (!ssl) {
            snprintf(why, whylen, "TLS unavailable");
            free(ws);
            return NULL;
        }
        ws->bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    } else {
        ws->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (!ws->bev) {
        snprintf(why, whylen, "cannot create a socket");
        free(ws);
        return NULL;
    }
    use_bev(ws);
    ws->st = WS_CONNECTING;
    if (bufferevent_socket_connect_hostname(ws->bev, dns, AF_UNSPEC, ws->host, ws->port) < 0) {
        snprintf(why, whylen, "cannot connect to %s:%d", ws->host, ws->port);
        destroy(ws);
        return NULL;
    }
    return ws;
}

int wa_ws_send(struct wa_ws *ws, const uint8_t *data, size_t len)
{
    if (!ws || ws->st != WS_OPEN || ws->doomed)
        return -1;
    struct wslay_event_msg m = {WSLAY_BINARY_FRAME, data, len};
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return -1;
    if (ws->depth == 0) {
        enter(ws);
        if (wslay_event_send(ws->ctx) != 0)
            fail(ws, "websocket send failed");
        if (leave(ws) < 0)
            return -1;
    } else if (wslay_event_send(ws->ctx) != 0) {
        fail(ws, "websocket send failed");
    }
    return 0;
}

void wa_ws_pause(struct wa_ws *ws, int paused)
{
    if (!ws || ws->doomed || !ws->bev || ws->paused == !!paused)
        return;
    ws->paused = !!paused;
    if (paused) {
        bufferevent_disable(ws->bev, EV_READ);
        return;
    }
    bufferevent_enable(ws->bev, EV_READ);
    /* What arrived meanwhile is taken on the next turn of the loop, never
     * inside the caller. */
    if (ws->st == WS_OPEN)
        bufferevent_trigger(ws->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

size_t wa_ws_pending(const struct wa_ws *ws)
{
    return ws && ws->bev ? evbuffer_get_length(bufferevent_get_output(ws->bev)) : 0;
}

SSL_CTX *wa_ws_client_ssl_ctx(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    return c;
}
