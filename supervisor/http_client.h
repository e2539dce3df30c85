/* Outgoing HTTP(S) requests on the supervisor's event loop, through
 * libcurl's multi-socket interface: media uploads and downloads, and URL
 * fetches for POST /api/messages. libcurl brings what a hand-written client
 * would have to grow: TLS verification, redirects, timeouts, proxies.
 *
 * Trust is the WhatsApp endpoint's: the system store, or OpenSSL's
 * SSL_CERT_FILE / SSL_CERT_DIR when set (libcurl does not read them itself).
 * Bodies stream both ways (from a file descriptor up, through a callback
 * down), so memory does not grow with the size of a file. */
#ifndef WAPI_HTTP_CLIENT_H
#define WAPI_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct http_req; /* one request in flight; owned by this module */

struct http_result {
    int ok;                   /* 1: a complete answer arrived (any status) */
    long status;              /* HTTP status, 0 when none */
    const char *error;        /* when !ok: why, for logs and API errors */
    uint64_t received;        /* body bytes handed to on_data */
    const char *content_type; /* of the answer, or NULL */
};

struct http_opts {
    const char *method; /* "GET" (default) or "POST" */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated, or NULL */
    /* The request body: body_len bytes read from body_fd at offset 0 (the fd
     * stays the caller's), or body/body_len from memory when body_fd < 0. */
    int body_fd;
    const void *body;
    uint64_t body_len;
    /* The answer's body, piece by piece: return 0 to go on, -1 to stop
     * (the request then fails with "aborted by the receiver"). NULL: the
     * body is read and dropped. */
    int (*on_data)(void *ctx, const void *p, size_t n);
    uint64_t max_bytes;      /* a longer answer fails the request; 0: no limit */
    long timeout_ms;         /* the whole request; 0: 60 s */
    long connect_timeout_ms; /* 0: 10 s */
    long low_speed_bytes;    /* fail when slower than this for low_speed_s (0: off) */
    long low_speed_s;
    int max_redirects;  /* 0: none followed */
    int refuse_private; /* no loopback/private/link-local address, redirects included */
    const char *proxy;  /* socks5://, socks5h:// or http:// URL (copied at the start), or NULL/"" */
    void (*done)(void *ctx, const struct http_result *r); /* called once, from the loop */
    void *ctx;
};

/* Once at start-up, before any thread exists. */
int http_client_init(struct event_base *base);
/* Starts a request; NULL when it cannot start (done is then not called). */
struct http_req *http_request(const struct http_opts *o);
/* Cancels a request in flight: done is not called. */
void http_cancel(struct http_req *r);
/* Requests in flight (for metrics and tests). */
int http_in_flight(void);
void http_client_shutdown(void);

#endif
