/* Connections through a proxy (see wa_proxy.h). SOCKS5 is RFC 1928 (CONNECT
 * only) with RFC 1929 user/password; HTTP is a CONNECT request with Basic
 * credentials. */
#include "wa_proxy.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_HTTP_HEAD 8192

enum step { ST_CONNECT, ST_GREET, ST_AUTH, ST_RESOLVE, ST_REQUEST, ST_HTTP, ST_DONE };

struct wa_proxy_conn {
    struct bufferevent *bev;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *gai;
    struct proxy_url p;
    char name[320]; /* the proxy, redacted */
    char host[256];
    int port;
    enum step st;
    /* evdns may answer inside evdns_getaddrinfo(): the answer is kept and
     * taken after it returns. */
    int in_gai, gai_done, gai_err;
    struct sockaddr_storage gai_addr;
    wa_proxy_cb cb;
    void *arg;
};

static void release(struct wa_proxy_conn *c)
{
    if (c->gai)
        evdns_getaddrinfo_cancel(c->gai); /* its callback runs with EVUTIL_EAI_CANCEL */
    if (c->bev)
        bufferevent_free(c->bev);
    OPENSSL_cleanse(c->p.pass, sizeof c->p.pass);
    free(c);
}

void wa_proxy_cancel(struct wa_proxy_conn *c)
{
    if (c)
        release(c);
}

static void fail(struct wa_proxy_conn *c, const char *what)
{
    char why[512];
    snprintf(why, sizeof why, "proxy %s: %s", c->name, what);
    wa_proxy_cb cb = c->cb;
    void *arg = c->arg;
    release(c);
    cb(arg, NULL, why);
}

static void succeed(struct wa_proxy_conn *c)
{
    struct bufferevent *bev = c->bev;
    c->bev = NULL;
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_set_timeouts(bev, NULL, NULL);
    wa_proxy_cb cb = c->cb;
    void *arg = c->arg;
    release(c);
    cb(arg, bev, NULL);
}

/* ---- SOCKS5 */

static void socks_request(struct wa_proxy_conn *c, const struct sockaddr *sa)
{
    uint8_t m[4 + 1 + 255 + 2];
    size_t n = 0;
    m[n++] = 5, m[n++] = 1, m[n++] = 0; /* version, CONNECT, reserved */
    if (sa && sa->sa_family == AF_INET) {
        m[n++] = 1;
        memcpy(m + n, &((const struct sockaddr_in *)sa)->sin_addr, 4), n += 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        m[n++] = 4;
        memcpy(m + n, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16), n += 16;
    } else { /* socks5h: the proxy resolves the name */
        size_t hl = strlen(c->host);
        m[n++] = 3, m[n++] = (uint8_t)hl;
        memcpy(m + n, c->host, hl), n += hl;
    }
    m[n++] = (uint8_t)(c->port >> 8), m[n++] = (uint8_t)c->port;
    bufferevent_write(c->bev, m, n);
    c->st = ST_REQUEST;
}

/* The resolved target: the CONNECT, or the failure. -1 when c is gone. */
static int resolved(struct wa_proxy_conn *c)
{
    if (c->gai_err) {
        char what[400];
        snprintf(what, sizeof what, "cannot resolve %s: %s", c->host, evutil_gai_strerror(c->gai_err));
        fail(c, what);
        return -1;
    }
    socks_request(c, (struct sockaddr *)&c->gai_addr);
    return 0;
}

static void on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    struct wa_proxy_conn *c = arg;
    if (err == EVUTIL_EAI_CANCEL)
        return; /* released already */
    c->gai = NULL;
    c->gai_err = err ? err : !ai ? EVUTIL_EAI_FAIL : 0;
    if (!c->gai_err && ai->ai_addrlen <= sizeof c->gai_addr)
        memcpy(&c->gai_addr, ai->ai_addr, ai->ai_addrlen);
    else if (!c->gai_err)
        c->gai_err = EVUTIL_EAI_FAMILY;
    if (ai)
        evutil_freeaddrinfo(ai);
    c->gai_done = 1;
    if (!c->in_gai)
        resolved(c);
}

/* After the greeting (and the credentials): the CONNECT, with the target's
 * address resolved here (socks5) or its name (socks5h). -1 when c is gone. */
static int socks_connect(struct wa_proxy_conn *c)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    memset(&a6, 0, sizeof a6), memset(&a4, 0, sizeof a4);
    if (inet_pton(AF_INET, c->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        socks_request(c, (struct sockaddr *)&a4);
    } else if (inet_pton(AF_INET6, c->host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        socks_request(c, (struct sockaddr *)&a6);
    } else if (c->p.kind == PROXY_SOCKS5H) {
        socks_request(c, NULL);
    } else {
        struct evutil_addrinfo hints = {0};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        c->st = ST_RESOLVE;
        c->in_gai = 1;
        struct evdns_getaddrinfo_request *r =
            evdns_getaddrinfo(c->dns, c->host, NULL, &hints, on_resolved, c);
        c->in_gai = 0;
        if (c->gai_done)
            return resolved(c);
        c->gai = r;
    }
    return 0;
}

static const char *socks_reply_text(int rep)
{
    static const char *const t[] = {
        "succeeded",           "general failure",       "not allowed by the proxy's rules",
        "network unreachable", "host unreachable",      "connection refused",
        "TTL expired",         "command not supported", "address type not supported"};
    return rep >= 0 && rep < (int)(sizeof t / sizeof *t) ? t[rep] : "unknown error";
}

static void socks_read(struct wa_proxy_conn *c, struct evbuffer *in)
{
    uint8_t b[4 + 1 + 255 + 2];
    char what[400];
    for (;;) {
        size_t have = evbuffer_get_length(in);
        if (c->st == ST_GREET) {
            if (have < 2)
                return;
            evbuffer_remove(in, b, 2);
            if (b[0] != 5) {
                fail(c, "not a SOCKS5 proxy (bad greeting answer)");
                return;
            }
            if (b[1] == 0) {
                if (socks_connect(c) < 0)
                    return;
            } else if (b[1] == 2 && c->p.user[0]) {
                size_t ul = strlen(c->p.user), pl = strlen(c->p.pass), n = 0;
                uint8_t m[3 + 255 + 255];
                m[n++] = 1, m[n++] = (uint8_t)ul;
                memcpy(m + n, c->p.user, ul), n += ul;
                m[n++] = (uint8_t)pl;
                memcpy(m + n, c->p.pass, pl), n += pl;
                bufferevent_write(c->bev, m, n);
                OPENSSL_cleanse(m, sizeof m);
                c->st = ST_AUTH;
            } else {
                fail(c, b[1] == 2 ? "the proxy wants a user name and password (give them in the proxy URL)"
                                  : "the proxy accepts none of our authentication methods");
                return;
            }
        } else if (c->st == ST_AUTH) {
            if (have < 2)
                return;
            evbuffer_remove(in, b, 2);
            if (b[1] != 0) {
                fail(c, "the proxy refused the user name and password");
                return;
            }
            if (socks_connect(c) < 0)
                return;
        } else if (c->st == ST_REQUEST) {
            if (have < 5)
                return;
            evbuffer_copyout(in, b, 5);
            size_t need = b[3] == 1 ? 10 : b[3] == 4 ? 22 : b[3] == 3 ? 7 + (size_t)b[4] : 0;
            if (b[0] != 5 || !need) {
                fail(c, "malformed SOCKS5 answer");
                return;
            }
            if (b[1] != 0) {
                snprintf(what, sizeof what, "cannot reach %s:%d (SOCKS5 error %d: %s)", c->host, c->port,
                         b[1], socks_reply_text(b[1]));
                fail(c, what);
                return;
            }
            if (have < need)
                return;
            evbuffer_drain(in, need);
            succeed(c);
            return;
        } else {
            return; /* resolving */
        }
    }
}

/* ---- HTTP CONNECT */

static void http_connect(struct wa_proxy_conn *c)
{
    int v6 = strchr(c->host, ':') != NULL;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n", v6 ? "[" : "", c->host,
                        v6 ? "]" : "", c->port, v6 ? "[" : "", c->host, v6 ? "]" : "", c->port);
    if (c->p.user[0]) {
        char cred[520], b64[700];
        int n = snprintf(cred, sizeof cred, "%s:%s", c->p.user, c->p.pass);
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, n);
        evbuffer_add_printf(out, "Proxy-Authorization: Basic %s\r\n", b64);
        OPENSSL_cleanse(cred, sizeof cred);
        OPENSSL_cleanse(b64, sizeof b64);
    }
    evbuffer_add_printf(out, "\r\n");
    c->st = ST_HTTP;
}

static void http_read(struct wa_proxy_conn *c, struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HTTP_HEAD)
            fail(c, "the proxy's answer to CONNECT has no end");
        return;
    }
    char line[128] = "";
    size_t n = evbuffer_get_length(in) < sizeof line - 1 ? evbuffer_get_length(in) : sizeof line - 1;
    evbuffer_copyout(in, line, n);
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    evbuffer_drain(in, (size_t)end.pos + 4);
    int status = 0;
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
        fail(c, "not an HTTP proxy (no status line)");
        return;
    }
    if (status / 100 == 2) {
        succeed(c);
        return;
    }
    char what[400];
    if (status == 407 || status == 401) /* some proxies answer 401 */
        snprintf(what, sizeof what, "the proxy refused %s (%d)",
                 c->p.user[0] ? "the user name and password" : "to work without a user name and password",
                 status);
    else
        snprintf(what, sizeof what, "CONNECT %s:%d answered \"%.80s\"", c->host, c->port, line);
    fail(c, what);
}

/* ---- the socket */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct wa_proxy_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->st == ST_HTTP)
        http_read(c, in);
    else
        socks_read(c, in);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct wa_proxy_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->p.kind == PROXY_HTTP) {
            http_connect(c);
        } else {
            uint8_t m[4] = {5, 1, 0, 0};
            size_t n = 3;
            if (c->p.user[0])
                m[1] = 2, m[3] = 2, n = 4; /* no authentication, or user/password */
            bufferevent_write(bev, m, n);
            c->st = ST_GREET;
        }
        return;
    }
    char why[300];
    int dnserr = bufferevent_socket_get_dns_error(bev);
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(why, sizeof why, "%s timed out", c->st == ST_CONNECT ? "connecting" : "the handshake");
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "closed the connection during the handshake");
    else if (dnserr)
        snprintf(why, sizeof why, "cannot resolve the proxy: %s", evutil_gai_strerror(dnserr));
    else
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    fail(c, why);
}

struct wa_proxy_conn *wa_proxy_connect(struct event_base *base, struct evdns_base *dns,
                                       const struct proxy_url *p, const char *host, int port, int timeout_s,
                                       wa_proxy_cb cb, void *arg, char *why, size_t whylen)
{
    struct wa_proxy_conn *c = calloc(1, sizeof *c);
    if (!c || !p || p->kind == PROXY_NONE || strlen(host) > 255) {
        snprintf(why, whylen, "cannot use the proxy for %s", host);
        free(c);
        return NULL;
    }
    c->p = *p;
    proxy_url_redacted(p, c->name, sizeof c->name);
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->dns = dns;
    c->cb = cb;
    c->arg = arg;
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        snprintf(why, whylen, "proxy %s: cannot create a socket", c->name);
        release(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    struct timeval tv = {timeout_s > 0 ? timeout_s : 20, 0};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect_hostname(c->bev, dns, AF_UNSPEC, p->host, p->port) < 0) {
        snprintf(why, whylen, "proxy %s: cannot connect", c->name);
        release(c);
        return NULL;
    }
    return c;
}
