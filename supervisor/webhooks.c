#include "webhooks.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/whsec.h"
#include "common/db_params.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/metrics.h"
#include "common/webhook_url.h"
#include "common/proxy_url.h"
#include "http_client.h"
#include "pgc_libevent.h"
#include "sdb.h"
#include "sup.h"

/* Tuning (environment, read once at start; the defaults are the schedule
 * the README documents). */
#define MAX_INFLIGHT 16
#define POLL_MS 150 /* fan-out polling while the notification connection is down */
#define FANOUT_BATCH 1000
#define RESPONSE_MAX 65536
#define FINISH_TRIES 40
/* While LISTEN works, commits and redeliveries wake the dispatcher and due
 * retries have a timer of their own: polling is only the safety net. */
#define SAFETY_POLL_MS 2000
#define LISTEN_RETRY_MS 500

struct delivery {
    struct delivery *next;
    char id[24];
    int attempts;
    struct webhook_url url;
    char secret[128];
    char event_id[24];
    char *body;
    size_t body_len;
    struct evdns_getaddrinfo_request *dns_req;
    int dns_done;
    struct evhttp_connection *evcon;
    char ip[64];                /* the address checked, and connected to */
    int reused;                 /* evcon came from the idle pool */
    int fresh;                  /* this attempt must not use a kept connection */
    struct evhttp_request *req; /* while in flight */
    struct event *deadline;     /* the whole attempt, however slowly the target drips bytes */
    struct http_req *via_proxy; /* webhooks.proxy: the attempt through libcurl, while in flight */
    int cancelled;
    int net_error;
    int closed; /* the connection ended (EOF, reset) before any response */
    char error[400];
    /* outcome */
    char state[12];
    char status[8];
    char delay_s[32];
    char attempts_s[12];
    int finish_tries;
    struct event *retry_ev;
};

static struct {
    struct evdns_base *dns;
    SSL_CTX *ssl;
    struct event *timer;
    int fanout_busy, fanout_again, claim_busy, claim_again;
    int reserved;         /* slots a claiming fan-out or claim statement may fill */
    struct event *due_ev; /* the next retry or lease expiry we know of */
    uint64_t due_at;      /* its time (now_ms()), 0 when none is armed */
    uint64_t last_fanout, last_claim;
    struct db_params params;
    struct pgc *lc; /* the notification connection: LISTENs, and the fan-out they call for */
    int lq_cap;     /* slots reserved by the fan-out under way */
    char lq_lim[12], lq_lease[12];
    int inflight;
    unsigned max_attempts, base_ms, timeout_ms;
    int started;
} WH;

uint64_t webhooks_backoff_ms(unsigned attempt, unsigned base_ms)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < attempt && d < 6ull * 3600 * 1000; i++)
        d *= 4;
    return d > 6ull * 3600 * 1000 ? 6ull * 3600 * 1000 : d;
}

int webhooks_sign(const char *secret, const char *id, long long timestamp, const char *body, size_t body_len,
                  char *out, size_t outlen)
{
    unsigned char key[WHSEC_KEY_MAX];
    int kl = whsec_decode(secret, key);
    if (kl < 0)
        return -1;
    char head[64];
    int hl = snprintf(head, sizeof head, ".%lld.", timestamp);
    /* HMAC over id "." ts "." body without copying the body. */
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                            OSSL_PARAM_construct_end()};
    unsigned char mac_out[32];
    size_t ml = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, (size_t)kl, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)head, (size_t)hl) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
             EVP_MAC_final(ctx, mac_out, &ml, sizeof mac_out) == 1 && ml == 32;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok || outlen < 3 + 45)
        return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac_out, 32);
    return 0;
}

/* ---- finishing an attempt */

static void delivery_free(struct delivery *d)
{
    if (d->retry_ev)
        event_free(d->retry_ev);
    if (d->deadline)
        event_free(d->deadline);
    free(d->body);
    OPENSSL_cleanse(d->secret, sizeof d->secret);
    free(d);
}

static void kick(void);
static void kick_soon(void);
static void arm_due(long long ms);

static void finish_query(struct delivery *d);

static void on_finish_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    finish_query(arg);
}

static void on_finished(void *ctx, const PGresult *res, const char *err)
{
    struct delivery *d = ctx;
    if (!res) {
        /* The database is away: keep the outcome and try again; if it stays
         * away, the row's lease ends and the delivery is simply sent again. */
        if (++d->finish_tries < FINISH_TRIES) {
            if (!d->retry_ev)
                d->retry_ev = evtimer_new(S.base, on_finish_retry, d);
            struct timeval tv = {0, 500 * 1000};
            if (d->retry_ev) {
                evtimer_add(d->retry_ev, &tv);
                return;
            }
        }
        log_warn("webhook delivery outcome not stored", LF_S("delivery", d->id),
                 LF_S("error", err ? err : "?"));
    } else if (strcmp(d->state, "pending") == 0) {
        /* Its retry is due after the delay: no polling needed to notice. */
        arm_due((long long)(atof(d->delay_s) * 1000.0) + 1);
    }
    WH.inflight--;
    delivery_free(d);
    if (res)
        kick();
    else
        kick_soon();
}

static const char SQL_FINISH[] =
    "UPDATE wa_webhook_deliveries SET state = $2, last_status = $3::int, last_error = $4, "
    "delivered_at = CASE WHEN $2 = 'delivered' THEN now() END, "
    "next_attempt_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $5::double precision) "
    "  ELSE now() END "
    "WHERE id = $1::bigint AND attempts = $6::int AND state = 'pending'";

static void finish_query(struct delivery *d)
{
    const char *p[6] = {
        d->id,      d->state,     d->status[0] ? d->status : NULL, d->error[0] ? d->error : NULL,
        d->delay_s, d->attempts_s};
    if (!sdb_query(SQL_FINISH, 6, p, on_finished, d))
        on_finished(d, NULL, "out of memory");
}

static void free_evcon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    evhttp_connection_free(arg);
}

/* Plain-HTTP connections that answered, kept for the next attempt to the same
 * address, port and host (keep-alive): a new connection per delivery costs
 * the receiver an accept, and often a thread, each time. One the receiver has
 * closed meanwhile reconnects by itself; if the receiver closes it just as a
 * request goes out, that request is sent again on a new connection within the
 * same attempt. TLS connections are not kept. */
#define IDLE_MAX 16
static struct idle_conn {
    struct evhttp_connection *evcon;
    char key[400];
} IDLE[IDLE_MAX];
static unsigned idle_next;

static void idle_key(const struct delivery *d, char *key, size_t len)
{
    snprintf(key, len, "%s|%d|%s", d->ip, d->url.port, d->url.host);
}

static struct evhttp_connection *idle_take(const struct delivery *d)
{
    char key[400];
    idle_key(d, key, sizeof key);
    for (unsigned i = 0; i < IDLE_MAX; i++)
        if (IDLE[i].evcon && strcmp(IDLE[i].key, key) == 0) {
            struct evhttp_connection *c = IDLE[i].evcon;
            IDLE[i].evcon = NULL;
            return c;
        }
    return NULL;
}

static void idle_put(const struct delivery *d, struct evhttp_connection *evcon)
{
    unsigned slot = IDLE_MAX;
    for (unsigned i = 0; i < IDLE_MAX && slot == IDLE_MAX; i++)
        if (!IDLE[i].evcon)
            slot = i;
    if (slot == IDLE_MAX) { /* full: the slots are reused in turn */
        slot = idle_next++ % IDLE_MAX;
        struct timeval zero = {0, 0};
        event_base_once(S.base, -1, EV_TIMEOUT, free_evcon, IDLE[slot].evcon, &zero);
    }
    IDLE[slot].evcon = evcon;
    idle_key(d, IDLE[slot].key, sizeof IDLE[slot].key);
}

/* status 0: no HTTP answer (network, TLS, timeout). */
static void finish(struct delivery *d, int status, int retryable)
{
    d->req = NULL;
    if (d->deadline)
        evtimer_del(d->deadline);
    if (d->evcon && status && !d->url.https) {
        idle_put(d, d->evcon); /* it answered: evhttp keeps it open unless either side said close */
        d->evcon = NULL;
    }
    if (d->evcon) {
        struct timeval zero = {0, 0};
        event_base_once(S.base, -1, EV_TIMEOUT, free_evcon, d->evcon, &zero);
        d->evcon = NULL;
    }
    snprintf(d->attempts_s, sizeof d->attempts_s, "%d", d->attempts);
    if (status)
        snprintf(d->status, sizeof d->status, "%d", status);
    snprintf(d->delay_s, sizeof d->delay_s, "0");
    if (status >= 200 && status < 300) {
        snprintf(d->state, sizeof d->state, "delivered");
        d->error[0] = '\0';
    } else if (!retryable) {
        snprintf(d->state, sizeof d->state, "failed");
    } else if ((unsigned)d->attempts >= WH.max_attempts) {
        snprintf(d->state, sizeof d->state, "dead");
        metrics_add(&S.shm->webhook_dead_letters_total, 1);
    } else {
        snprintf(d->state, sizeof d->state, "pending");
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (uint32_t)rand();
        double jitter = 0.8 + 0.4 * ((double)r / 4294967296.0); /* ±20% */
        double ms = (double)webhooks_backoff_ms((unsigned)d->attempts, WH.base_ms) * jitter;
        snprintf(d->delay_s, sizeof d->delay_s, "%.3f", ms / 1000.0);
    }
    if (status && !(status >= 200 && status < 300) && !d->error[0])
        snprintf(d->error, sizeof d->error, "HTTP %d", status);
    log_info("webhook attempt", LF_S("delivery", d->id), LF_S("event", d->event_id),
             LF_I("attempt", d->attempts), LF_I("status", status), LF_S("outcome", d->state),
             LF_S("error", d->error));
    finish_query(d);
}

/* ---- HTTP */

static void on_request_error(enum evhttp_request_error e, void *arg)
{
    struct delivery *d = arg;
    if (d->cancelled)
        return;
    d->net_error = 1;
    d->closed = e == EVREQ_HTTP_EOF || e == EVREQ_HTTP_BUFFER_ERROR;
    const char *why = e == EVREQ_HTTP_TIMEOUT          ? "timed out"
                      : e == EVREQ_HTTP_EOF            ? "connection closed before a response"
                      : e == EVREQ_HTTP_INVALID_HEADER ? "invalid response headers"
                      : e == EVREQ_HTTP_BUFFER_ERROR   ? "connection failed"
                      : e == EVREQ_HTTP_DATA_TOO_LONG  ? "response too large"
                                                       : "request cancelled";
    if (!d->error[0])
        snprintf(d->error, sizeof d->error, "%s", why);
}

static void send_request(struct delivery *d, const char *ip);

static void on_response(struct evhttp_request *req, void *arg)
{
    struct delivery *d = arg;
    if (d->cancelled)
        return; /* the deadline already finished this attempt */
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if ((!req || code == 0) && d->reused && d->closed) {
        /* A kept connection the receiver closed as we sent: not the
         * receiver's failure, so the same attempt goes out on a new one
         * (a timeout, by contrast, is the attempt's outcome). */
        struct timeval zero = {0, 0};
        event_base_once(S.base, -1, EV_TIMEOUT, free_evcon, d->evcon, &zero);
        d->evcon = NULL;
        d->req = NULL;
        d->reused = 0;
        d->fresh = 1;
        d->net_error = 0;
        d->closed = 0;
        d->error[0] = '\0';
        if (d->deadline)
            evtimer_del(d->deadline);
        send_request(d, d->ip);
        return;
    }
    if (!req || code == 0) {
        if (!d->error[0])
            snprintf(d->error, sizeof d->error, "no response");
        if (d->url.https && d->evcon) {
            struct bufferevent *bev = evhttp_connection_get_bufferevent(d->evcon);
            unsigned long e = bev ? bufferevent_get_openssl_error(bev) : 0;
            if (e) {
                char buf[120];
                ERR_error_string_n(e, buf, sizeof buf);
                snprintf(d->error, sizeof d->error, "TLS: %s", buf);
            }
        }
        finish(d, 0, 1);
        return;
    }
    int retry = code == 408 || code == 429 || code >= 500;
    finish(d, code, retry);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct delivery *d = arg;
    if (!d->req)
        return;
    d->cancelled = 1;
    struct evhttp_request *req = d->req;
    d->req = NULL;
    evhttp_cancel_request(req);
    snprintf(d->error, sizeof d->error, "timed out (the whole attempt)");
    finish(d, 0, 1);
}

static void send_request(struct delivery *d, const char *ip)
{
    struct bufferevent *bev = NULL;
    if (ip != d->ip)
        snprintf(d->ip, sizeof d->ip, "%s", ip);
    d->evcon = d->url.https || d->fresh ? NULL : idle_take(d);
    d->reused = d->evcon != NULL;
    if (d->evcon) {
        /* already connected, or reconnects by itself */
    } else if (d->url.https) {
        SSL *ssl = WH.ssl ? SSL_new(WH.ssl) : NULL;
        if (!ssl) {
            snprintf(d->error, sizeof d->error, "TLS unavailable");
            finish(d, 0, 1);
            return;
        }
        SSL_set_tlsext_host_name(ssl, d->url.host);
        SSL_set1_host(ssl, d->url.host);
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        bev = bufferevent_openssl_socket_new(S.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    } else {
        bev = bufferevent_socket_new(S.base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (bev)
        d->evcon = evhttp_connection_base_bufferevent_new(S.base, NULL, bev, ip, (unsigned short)d->url.port);
    struct evhttp_request *req = d->evcon ? evhttp_request_new(on_response, d) : NULL;
    if (!req) {
        if (!d->evcon && bev)
            bufferevent_free(bev);
        snprintf(d->error, sizeof d->error, "out of memory");
        finish(d, 0, 1);
        return;
    }
    struct timeval tv = {WH.timeout_ms / 1000, (WH.timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(d->evcon, &tv);
    evhttp_connection_set_retries(d->evcon, 0);
    evhttp_connection_set_max_body_size(d->evcon, RESPONSE_MAX);
    evhttp_connection_set_max_headers_size(d->evcon, 16384);
    evhttp_request_set_error_cb(req, on_request_error);
    long long ts = (long long)time(NULL);
    char sig[64], tss[24], host[300];
    snprintf(tss, sizeof tss, "%lld", ts);
    webhooks_sign(d->secret, d->event_id, ts, d->body, d->body_len, sig, sizeof sig);
    int default_port = d->url.port == (d->url.https ? 443 : 80);
    int v6 = strchr(d->url.host, ':') != NULL;
    if (default_port)
        snprintf(host, sizeof host, "%s%s%s", v6 ? "[" : "", d->url.host, v6 ? "]" : "");
    else
        snprintf(host, sizeof host, "%s%s%s:%d", v6 ? "[" : "", d->url.host, v6 ? "]" : "", d->url.port);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "wapi-webhooks/1");
    if (d->url.https)
        evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "webhook-id", d->event_id);
    evhttp_add_header(h, "webhook-timestamp", tss);
    evhttp_add_header(h, "webhook-signature", sig);
    evbuffer_add(evhttp_request_get_output_buffer(req), d->body, d->body_len);
    if (evhttp_make_request(d->evcon, req, EVHTTP_REQ_POST, d->url.path) < 0) {
        /* evhttp frees the request on failure */
        snprintf(d->error, sizeof d->error, "cannot send the request");
        finish(d, 0, 1);
        return;
    }
    d->req = req;
    if (!d->deadline)
        d->deadline = evtimer_new(S.base, on_deadline, d);
    struct timeval dl = {(WH.timeout_ms * 2) / 1000, ((WH.timeout_ms * 2) % 1000) * 1000};
    if (d->deadline)
        evtimer_add(d->deadline, &dl);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct delivery *d = arg;
    d->dns_req = NULL;
    d->dns_done = 1;
    if (result != 0 || !res) {
        snprintf(d->error, sizeof d->error, "cannot resolve %s: %s", d->url.host,
                 evutil_gai_strerror(result));
        if (res)
            evutil_freeaddrinfo(res);
        finish(d, 0, 1);
        return;
    }
    /* Every address must be public: a name that also resolves to a private
     * address is refused, and we connect to the address we checked. */
    char ip[64] = "";
    int priv = 0;
    for (struct evutil_addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        if (webhook_addr_private(a->ai_addr))
            priv = 1;
        if (!ip[0]) {
            const void *src = a->ai_family == AF_INET
                                  ? (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr
                                  : (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr;
            evutil_inet_ntop(a->ai_family, src, ip, sizeof ip);
        }
    }
    evutil_freeaddrinfo(res);
    if (!ip[0]) {
        snprintf(d->error, sizeof d->error, "no address for %s", d->url.host);
        finish(d, 0, 1);
        return;
    }
    if (priv && !S.cfg.webhooks.allow_private) {
        snprintf(d->error, sizeof d->error,
                 "target resolves to a private address (webhooks.allow_private is off)");
        finish(d, 0, 0);
        return;
    }
    send_request(d, ip);
}

/* ---- through webhooks.proxy: libcurl speaks SOCKS5 and HTTP CONNECT. The
 * proxy resolves the name (socks5h, http) or we do (socks5): either way only
 * the URL's own literal address is checked against private ranges here. */

static void on_proxied(void *ctx, const struct http_result *r)
{
    struct delivery *d = ctx;
    d->via_proxy = NULL;
    if (!r->ok) {
        struct proxy_url px;
        char pname[320] = "the proxy", perr[64];
        if (proxy_url_parse(S.cfg.webhooks.proxy, &px, perr, sizeof perr) == 0)
            proxy_url_redacted(&px, pname, sizeof pname);
        snprintf(d->error, sizeof d->error, "through %s: %s", pname, r->error ? r->error : "failed");
        finish(d, 0, 1);
        return;
    }
    int code = (int)r->status;
    finish(d, code, code == 408 || code == 429 || code >= 500);
}

static void send_via_proxy(struct delivery *d, const char *url)
{
    long long ts = (long long)time(NULL);
    char sig[64], h_id[64], h_ts[48], h_sig[96];
    webhooks_sign(d->secret, d->event_id, ts, d->body, d->body_len, sig, sizeof sig);
    snprintf(h_id, sizeof h_id, "webhook-id: %s", d->event_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    const char *headers[] = {
        "Content-Type: application/json", "User-Agent: wapi-webhooks/1", h_id, h_ts, h_sig, "Expect:", NULL};
    struct http_opts o = {0};
    o.method = "POST";
    o.url = url;
    o.headers = headers;
    o.body_fd = -1;
    o.body = d->body;
    o.body_len = d->body_len;
    o.max_bytes = RESPONSE_MAX;
    o.timeout_ms = (long)WH.timeout_ms;
    o.connect_timeout_ms = (long)WH.timeout_ms;
    o.proxy = S.cfg.webhooks.proxy;
    o.done = on_proxied;
    o.ctx = d;
    d->via_proxy = http_request(&o);
    if (!d->via_proxy) {
        snprintf(d->error, sizeof d->error, "cannot start the request");
        finish(d, 0, 1);
    }
}

static void start_delivery(struct delivery *d, const char *url)
{
    char err[128];
    if (webhook_url_parse(url, &d->url, err, sizeof err) < 0) {
        snprintf(d->error, sizeof d->error, "%s", err);
        finish(d, 0, 0);
        return;
    }
    if (!S.cfg.webhooks.allow_private && webhook_host_private(d->url.host)) {
        snprintf(d->error, sizeof d->error, "target is a private address (webhooks.allow_private is off)");
        finish(d, 0, 0);
        return;
    }
    if (S.cfg.webhooks.proxy && *S.cfg.webhooks.proxy) {
        send_via_proxy(d, url);
        return;
    }
    struct evutil_addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    /* The callback may run before this returns (a literal address). */
    struct evdns_getaddrinfo_request *r =
        evdns_getaddrinfo(WH.dns, d->url.host, NULL, &hints, on_resolved, d);
    if (!d->dns_done)
        d->dns_req = r;
}

/* ---- claiming due deliveries */

/* Columns 0-7 of a claiming statement's rows: what one attempt needs. */
#define DELIVERY_COLS                                                                                        \
    "d.id, d.attempts, w.url, w.secret, e.id AS event_id, e.type, "                                          \
    "to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, e.data::text AS "  \
    "data"

/* The next time a pending row comes due (a retry, or the lease of an attempt
 * that never finished) in ms from now, so that due rows need no polling. The
 * statement's snapshot predates its own changes: rows it claims are not
 * counted, and an in-flight lease at worst wakes the dispatcher for nothing. */
#define NEXT_DUE                                                                                             \
    "nx AS (SELECT ceil(extract(epoch FROM min(next_attempt_at) - now()) * 1000)::bigint AS ms "             \
    "  FROM wa_webhook_deliveries WHERE state = 'pending' AND next_attempt_at > now())"

/* The statements that claim deliveries and start their attempts from the
 * result do not wait for their commit to reach the disk (this transaction
 * only; the rest of the pool is untouched). Losing such a commit in a
 * PostgreSQL crash loses the whole statement, never part of it: the events'
 * wa_webhook_pending rows, or the deliveries' earlier state, come back, and
 * the attempts are made again. Duplicates were possible anyway (deduplicate
 * on webhook-id), a missed delivery is not: any later durable commit, such
 * as an attempt's outcome, flushes the write-ahead log up to it. */
#define ASYNC_COMMIT SDB_ASYNC_COMMIT

static const char SQL_CLAIM[] =
    "WITH " ASYNC_COMMIT ", c AS (SELECT d.id FROM wa_webhook_deliveries d JOIN wa_webhooks w ON w.id = "
    "d.webhook_id AND w.enabled "
    "  WHERE d.state = 'pending' AND d.next_attempt_at <= now() "
    /* per-chat order: not while an earlier delivery of the chat is pending */
    "  AND (d.chat IS NULL OR NOT EXISTS (SELECT 1 FROM wa_webhook_deliveries x WHERE x.webhook_id = "
    "d.webhook_id "
    "  AND x.chat = d.chat AND x.state = 'pending' AND x.event_id < d.event_id)) "
    "  ORDER BY d.next_attempt_at, d.id LIMIT $1::int FOR UPDATE OF d SKIP LOCKED), "
    "u AS (UPDATE wa_webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(), "
    "  next_attempt_at = now() + make_interval(secs => $2::int) "
    "  FROM c, wa_webhooks w, wa_events e WHERE d.id = c.id AND w.id = d.webhook_id AND e.id = d.event_id "
    "  RETURNING " DELIVERY_COLS "), " NEXT_DUE " "
    "SELECT u.*, nx.ms FROM sc CROSS JOIN nx LEFT JOIN u ON true";

static void claim(void);

static void on_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    WH.due_at = 0;
    kick();
}

/* Wake the claim loop in ms (the earliest of the times asked for wins). */
static void arm_due(long long ms)
{
    if (!WH.due_ev || ms < 0)
        return;
    uint64_t at = now_ms() + (uint64_t)ms;
    if (WH.due_at && WH.due_at <= at)
        return;
    WH.due_at = at;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(WH.due_ev, &tv);
}

/* How many more attempts may start, less those a statement under way may
 * already have claimed. */
static int capacity(void)
{
    int n = MAX_INFLIGHT - WH.inflight - WH.reserved;
    return n > 0 ? n : 0;
}

/* Starts the attempts of res's claimed rows (columns col..col+7; rows whose
 * id is NULL carry no delivery). Returns how many it started. */
static int start_claimed(const PGresult *res, int col)
{
    int rows = PQntuples(res), started = 0;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, col))
            continue;
        struct delivery *d = calloc(1, sizeof *d);
        if (!d)
            break; /* its lease ends and it is claimed again */
        WH.inflight++;
        started++;
        snprintf(d->id, sizeof d->id, "%s", PQgetvalue(res, i, col));
        d->attempts = atoi(PQgetvalue(res, i, col + 1));
        snprintf(d->secret, sizeof d->secret, "%s", PQgetvalue(res, i, col + 3));
        snprintf(d->event_id, sizeof d->event_id, "%s", PQgetvalue(res, i, col + 4));
        struct sbuf b;
        sbuf_init(&b);
        struct jsonw w;
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "id", d->event_id);
        jw_kstr(&w, "type", PQgetvalue(res, i, col + 5));
        jw_kstr(&w, "at", PQgetvalue(res, i, col + 6));
        jw_kraw(&w, "data", PQgetvalue(res, i, col + 7));
        jw_obj_end(&w);
        int ok = jw_finish(&w) == 0;
        d->body_len = b.len;
        d->body = sbuf_steal(&b);
        if (!ok || !d->body) {
            snprintf(d->error, sizeof d->error, "out of memory");
            finish(d, 0, 1);
            continue;
        }
        start_delivery(d, PQgetvalue(res, i, col + 2));
    }
    return started;
}

static void on_claimed(void *ctx, const PGresult *res, const char *err)
{
    WH.reserved -= (int)(intptr_t)ctx;
    WH.claim_busy = 0;
    if (!res) {
        log_warn("webhook deliveries: claim failed", LF_S("error", err ? err : "?"));
        return;
    }
    int started = start_claimed(res, 0);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 8))
        arm_due(atoll(PQgetvalue(res, 0, 8)));
    if (WH.claim_again || started > 0) {
        WH.claim_again = 0;
        claim();
    }
}

/* The row is ours for the attempt's timeout and a margin; a crash
 * mid-attempt (or before it began) lets it come due again after that. */
static void lease_s(char *buf, size_t len)
{
    snprintf(buf, len, "%u", WH.timeout_ms / 1000 + 10);
}

static void claim(void)
{
    int cap = capacity();
    if (WH.claim_busy || cap == 0 || !S.migrated)
        return;
    char lim[12], lease[12];
    snprintf(lim, sizeof lim, "%d", cap);
    lease_s(lease, sizeof lease);
    const char *p[2] = {lim, lease};
    WH.claim_busy = 1;
    WH.last_claim = now_ms();
    WH.reserved += cap;
    if (!sdb_query(SQL_CLAIM, 2, p, on_claimed, (void *)(intptr_t)cap)) {
        WH.reserved -= cap;
        WH.claim_busy = 0;
    }
}

static void kick(void)
{
    if (WH.claim_busy)
        WH.claim_again = 1;
    else
        claim();
}

/* From a failed query's callback: the pool may be sweeping its queue of
 * expired queries when it calls us, so queue the next one from the loop. */
static void kick_soon(void)
{
    struct timeval zero = {0, 0};
    if (WH.due_ev)
        evtimer_add(WH.due_ev, &zero);
    WH.due_at = now_ms();
}

/* ---- fan-out: wa_events → deliveries */

static void fanout(void);

static void on_fanout_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    fanout();
}

/* Each event row has a wa_webhook_pending row from the same transaction (a
 * trigger): take a batch of them and create the matching deliveries in one
 * statement, so a crash either does both or neither, and an event whose
 * transaction commits late is never skipped.
 * The same statement claims the first $1 new deliveries (as many as may start
 * now) exactly as SQL_CLAIM would, leased for $2 s, and returns what their
 * attempts need: the attempts start from its result, one commit after the
 * event's instead of two. A crash once it has committed leaves them pending
 * with a lease, like a crash mid-attempt: they come due when it ends. The
 * others are left due for the claim loop, which takes the oldest first. */
static const char SQL_FANOUT[] =
    "WITH " ASYNC_COMMIT
    ", p AS (DELETE FROM wa_webhook_pending WHERE event_id IN (SELECT event_id FROM wa_webhook_pending "
    "  ORDER BY event_id LIMIT "
    "1000"
    " FOR UPDATE SKIP LOCKED) RETURNING event_id), "
    "m AS (SELECT w.id AS webhook_id, e.id AS event_id, ec.chat, "
    "  row_number() OVER (ORDER BY e.id, w.id) <= $1::int AND (ec.chat IS NULL OR "
    "  (row_number() OVER (PARTITION BY w.id, ec.chat ORDER BY e.id) = 1 AND NOT EXISTS (SELECT 1 "
    "  FROM wa_webhook_deliveries x WHERE x.webhook_id = w.id AND x.chat = ec.chat AND x.state = "
    "'pending'))) "
    "  AS go FROM p JOIN wa_events e ON e.id = p.event_id "
    /* events stored before 0020 name the chat 'chat' */
    "  CROSS JOIN LATERAL (SELECT coalesce(e.data->>'chat_jid', e.data->>'chat') AS chat) ec "
    "  JOIN wa_webhooks w ON w.enabled AND (e.type = ANY (w.events) OR '*' = ANY (w.events) "
    "  OR (e.type LIKE 'audit.%' AND 'audit.*' = ANY (w.events))) "
    "  AND e.created_at >= w.created_at), "
    "ins AS (INSERT INTO wa_webhook_deliveries (webhook_id, event_id, chat, attempts, last_attempt_at, "
    "  next_attempt_at) SELECT webhook_id, event_id, chat, CASE WHEN go THEN 1 ELSE 0 END, CASE WHEN go THEN "
    "now() END, "
    "  CASE WHEN go THEN now() + make_interval(secs => $2::int) ELSE now() END FROM m "
    "  ON CONFLICT (webhook_id, event_id) DO NOTHING RETURNING id, webhook_id, event_id, attempts), "
    "n AS (SELECT (SELECT count(*) FROM p) AS taken, (SELECT count(*) FROM ins) AS created) "
    "SELECT n.taken, n.created, " DELIVERY_COLS
    " FROM sc CROSS JOIN n LEFT JOIN (ins d JOIN wa_webhooks w ON w.id = d.webhook_id "
    "  JOIN wa_events e ON e.id = d.event_id) ON d.attempts = 1";

static void on_fanout(void *ctx, const PGresult *res, const char *err)
{
    WH.reserved -= (int)(intptr_t)ctx;
    WH.fanout_busy = 0;
    if (WH.fanout_again || (res && PQntuples(res) >= 1 && atol(PQgetvalue(res, 0, 0)) >= FANOUT_BATCH)) {
        WH.fanout_again = 0;
        struct timeval zero = {0, 0};
        event_base_once(S.base, -1, EV_TIMEOUT, on_fanout_again, NULL, &zero);
    }
    if (!res) {
        /* If it did commit, its claimed rows come due when their lease ends
         * (the claim result tells the due timer). */
        log_warn("webhook deliveries: fan-out failed", LF_S("error", err ? err : "?"));
        kick_soon();
        return;
    }
    if (PQntuples(res) < 1)
        return;
    long created = atol(PQgetvalue(res, 0, 1));
    int started = start_claimed(res, 2);
    if (created > started)
        kick(); /* more than could start now: the claim loop takes them as slots free */
}

static void fanout_pool(void)
{
    const char *p[2] = {WH.lq_lim, WH.lq_lease};
    if (!sdb_query(SQL_FANOUT, 2, p, on_fanout, (void *)(intptr_t)WH.lq_cap))
        on_fanout((void *)(intptr_t)WH.lq_cap, NULL, "out of memory");
}

static void on_lc_fanout(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)ctx, (void)sqlstate; /* a stale prepared statement: the connection starts over by itself */
    on_fanout((void *)(intptr_t)WH.lq_cap, res, err);
}

/* The fan-out runs where a notification woke us: on the notification
 * connection, which is otherwise idle, as a prepared statement. It neither
 * queues behind the pool's other work nor is planned again each time (its
 * planning costs more than its execution). The pool runs it while that
 * connection is down or busy. */
static void fanout(void)
{
    if (WH.fanout_busy) {
        WH.fanout_again = 1;
        return;
    }
    if (!S.migrated)
        return;
    WH.lq_cap = capacity();
    snprintf(WH.lq_lim, sizeof WH.lq_lim, "%d", WH.lq_cap);
    lease_s(WH.lq_lease, sizeof WH.lq_lease);
    WH.fanout_busy = 1;
    WH.last_fanout = now_ms();
    WH.reserved += WH.lq_cap;
    const char *p[2] = {WH.lq_lim, WH.lq_lease};
    if (pgc_idle(WH.lc) && pgc_send(WH.lc, SQL_FANOUT, 2, p, 1, on_lc_fanout, NULL) == 0)
        return; /* its result, or the connection's end, calls on_fanout */
    fanout_pool();
}

/* ---- LISTEN wapi_events (a trigger notifies at each commit that adds events) */

static void on_lc_up(void *arg, struct pgc *c)
{
    (void)arg, (void)c;
    if (S.stopping)
        return;
    fanout(); /* anything committed or redelivered before we listened */
    kick();
}

static void on_lc_down(void *arg, struct pgc *c, const char *why)
{
    (void)arg;
    if (pgc_failures(c) == 1 && !S.stopping)
        log_warn("webhook notification connection lost; polling until it is back", LF_S("error", why));
}

static void on_lc_notify(void *arg, struct pgc *c, const char *channel, const char *payload)
{
    (void)arg, (void)c, (void)payload;
    if (S.stopping)
        return;
    if (!strcmp(channel, "wapi_events"))
        fanout();
    else
        kick(); /* wapi_webhook_due: a redelivery, or a webhook enabled again */
}

static void listen_start(void)
{
    struct pgc_loop loop;
    pgc_libevent(&loop, S.base);
    struct pgc_opts o = {
        .params = &WH.params,
        .setup_sql = PG_SESSION_SETUP "; LISTEN wapi_events; LISTEN wapi_webhook_due",
        .reconnect = 1,
        .backoff_min_ms = LISTEN_RETRY_MS,
        .backoff_max_ms = 5000,
        .max_prepared = 1,
        .on_up = on_lc_up,
        .on_down = on_lc_down,
        .on_notify = on_lc_notify,
    };
    if (!(WH.lc = pgc_new(&loop, &o)))
        log_warn("no webhook notification connection (out of memory): polling");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (S.stopping)
        return;
    uint64_t now = now_ms();
    /* Listening: notifications wake us and the due timer covers retries; poll
     * now and then all the same, in case a notification was lost. Without
     * the notification connection, poll as often as it used to wake us. */
    uint64_t every = pgc_up(WH.lc) ? SAFETY_POLL_MS : POLL_MS;
    if (now - WH.last_fanout >= every)
        fanout();
    if (now - WH.last_claim >= every)
        kick();
}

void webhooks_init(void)
{
    if (WH.started)
        return;
    WH.started = 1;
    /* Read once: a reload does not change deliveries already scheduled. */
    WH.max_attempts = (unsigned)S.cfg.webhooks.max_attempts;
    WH.base_ms = (unsigned)S.cfg.webhooks.retry_base_ms;
    WH.timeout_ms = (unsigned)S.cfg.webhooks.timeout_ms;
    WH.dns = evdns_base_new(S.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!WH.dns)
        WH.dns = evdns_base_new(S.base, 0);
    WH.ssl = SSL_CTX_new(TLS_client_method());
    if (WH.ssl) {
        SSL_CTX_set_min_proto_version(WH.ssl, TLS1_2_VERSION);
        SSL_CTX_set_default_verify_paths(WH.ssl);
        SSL_CTX_set_verify(WH.ssl, SSL_VERIFY_PEER, NULL);
    }
    db_params_init(&WH.params, &S.cfg, "wapi-webhooks");
    WH.due_ev = evtimer_new(S.base, on_due, NULL);
    listen_start();
    WH.timer = event_new(S.base, -1, EV_PERSIST, on_timer, NULL);
    struct timeval tv = {0, POLL_MS * 1000};
    if (WH.timer)
        evtimer_add(WH.timer, &tv);
    struct proxy_url px;
    char pname[320] = "", perr[64];
    if (proxy_url_parse(S.cfg.webhooks.proxy, &px, perr, sizeof perr) == 0 && px.kind != PROXY_NONE)
        proxy_url_redacted(&px, pname, sizeof pname);
    log_info("webhook dispatcher started", LF_I("max_attempts", WH.max_attempts),
             LF_I("retry_base_ms", WH.base_ms), LF_I("timeout_ms", WH.timeout_ms),
             LF_S("proxy", pname[0] ? pname : NULL));
}
