/* Outgoing HTTP(S) on the supervisor's loop: libcurl's multi-socket
 * interface driven by libevent (one event per socket curl watches, one
 * timer for curl's timeouts). */
#include "http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/webhook_url.h"

struct http_req {
    CURL *easy;
    struct curl_slist *hdrs;
    struct http_opts o;
    uint64_t received, sent;
    int too_big, aborted, refused_private, read_failed;
    struct http_req *prev, *next; /* every request in flight */
    char err[CURL_ERROR_SIZE];
    char why[CURL_ERROR_SIZE + 64];
};

/* What curl watches on one socket. */
struct watch {
    struct event *ev;
};

static struct {
    CURLM *multi;
    struct event_base *base;
    struct event *timer;
    struct http_req *reqs;
    int n;
} H;

static void check_done(void);

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)arg;
    int running = 0;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(H.multi, fd, flags, &running);
    check_done();
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int running = 0;
    curl_multi_socket_action(H.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done();
}

/* curl says which sockets to watch for what. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy, (void)userp;
    struct watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            free(w);
            curl_multi_assign(H.multi, s, NULL);
        }
        return 0;
    }
    short kind =
        (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1;
        curl_multi_assign(H.multi, s, w);
    } else {
        event_free(w->ev);
    }
    w->ev = event_new(H.base, s, kind, on_event, NULL);
    if (!w->ev || event_add(w->ev, NULL) != 0) {
        log_error("http client: cannot watch a socket", LF_I("fd", s));
        return -1;
    }
    return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
    (void)multi, (void)userp;
    if (ms < 0) {
        evtimer_del(H.timer);
        return 0;
    }
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return evtimer_add(H.timer, &tv);
}

int http_client_init(struct event_base *base)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    H.base = base;
    H.multi = curl_multi_init();
    H.timer = evtimer_new(base, on_timeout, NULL);
    if (!H.multi || !H.timer)
        return -1;
    curl_multi_setopt(H.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(H.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct http_req *r = ud;
    size_t n = size * nmemb;
    if (r->o.max_bytes && (n > r->o.max_bytes || r->received > r->o.max_bytes - n)) {
        r->too_big = 1;
        return 0; /* anything but n ends the transfer */
    }
    r->received += n;
    if (r->o.on_data && r->o.on_data(r->o.ctx, p, n) != 0) {
        r->aborted = 1;
        return 0;
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct http_req *r = ud;
    size_t want = size * nmemb;
    uint64_t left = r->o.body_len - r->sent;
    if (want > left)
        want = (size_t)left;
    if (!want)
        return 0;
    if (r->o.body_fd < 0) {
        memcpy(buf, (const char *)r->o.body + r->sent, want);
    } else {
        ssize_t got;
        do
            got = pread(r->o.body_fd, buf, want, (off_t)r->sent);
        while (got < 0 && errno == EINTR);
        if (got <= 0) { /* the file is shorter than said, or unreadable */
            r->read_failed = 1;
            return CURL_READFUNC_ABORT;
        }
        want = (size_t)got;
    }
    r->sent += want;
    return want;
}

/* A redirect or a retried connection starts the body again. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct http_req *r = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->o.body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    r->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Every connection, redirects included, passes here with its address. */
static curl_socket_t on_open(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct http_req *r = ud;
    (void)purpose;
    if (r->o.refuse_private && webhook_addr_private(&a->addr)) {
        r->refused_private = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void req_free(struct http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (H.reqs == r)
        H.reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    H.n--;
    curl_multi_remove_handle(H.multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r);
}

static void finish(struct http_req *r, CURLcode rc)
{
    struct http_result res = {.received = r->received};
    long status = 0;
    char *ctype = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
    res.status = status;
    res.content_type = ctype;
    /* An error status is an answer: the caller decides (a 410 from a media
     * host means "ask the phone"), with no body passed on (FAILONERROR). */
    res.ok = rc == CURLE_OK || (rc == CURLE_HTTP_RETURNED_ERROR && status >= 400);
    if (!res.ok) {
        if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED)
            snprintf(r->why, sizeof r->why, "the answer is larger than %llu bytes",
                     (unsigned long long)r->o.max_bytes);
        else if (r->refused_private)
            snprintf(r->why, sizeof r->why, "the address is private or loopback (refused)");
        else if (r->aborted)
            snprintf(r->why, sizeof r->why, "aborted by the receiver");
        else if (r->read_failed)
            snprintf(r->why, sizeof r->why, "the request body could not be read");
        else if (rc == CURLE_TOO_MANY_REDIRECTS)
            snprintf(r->why, sizeof r->why, "more than %d redirects", r->o.max_redirects);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(r->why, sizeof r->why, "timed out%s%s", r->err[0] ? ": " : "", r->err);
        else
            snprintf(r->why, sizeof r->why, "%s%s%s", curl_easy_strerror(rc), r->err[0] ? ": " : "", r->err);
        res.error = r->why;
    }
    void (*done)(void *, const struct http_result *) = r->o.done;
    void *ctx = r->o.ctx;
    /* The request is gone from the multi before done runs, so done may
     * start another; content_type stays valid until the easy is freed. */
    curl_multi_remove_handle(H.multi, r->easy);
    if (done)
        done(ctx, &res);
    req_free(r);
}

static void check_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(H.multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct http_req *r = NULL;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r)
            finish(r, rc);
    }
}

#define SET(opt, val) ok &= curl_easy_setopt(e, (opt), (val)) == CURLE_OK

struct http_req *http_request(const struct http_opts *o)
{
    if (!H.multi || !o->url)
        return NULL;
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->o = *o;
    CURL *e = r->easy = curl_easy_init();
    if (!e) {
        free(r);
        return NULL;
    }
    int ok = 1, post = o->method && !strcmp(o->method, "POST");
    const char *cafile = getenv("SSL_CERT_FILE"), *cadir = getenv("SSL_CERT_DIR");
    SET(CURLOPT_URL, o->url);
    SET(CURLOPT_PRIVATE, (char *)r);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, r->err);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FAILONERROR, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open);
    SET(CURLOPT_OPENSOCKETDATA, r);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 60000L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000L);
    if (o->low_speed_bytes > 0 && o->low_speed_s > 0) {
        SET(CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
        SET(CURLOPT_LOW_SPEED_TIME, o->low_speed_s);
    }
    if (o->max_bytes)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes); /* refused at the headers when it says so */
    if (o->max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)o->max_redirects);
    }
    if (o->proxy && *o->proxy)
        SET(CURLOPT_PROXY, o->proxy); /* libcurl reads the scheme, the credentials and the port */
    if (cafile && *cafile)
        SET(CURLOPT_CAINFO, cafile);
    if (cadir && *cadir)
        SET(CURLOPT_CAPATH, cadir);
    if (post) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        SET(CURLOPT_READFUNCTION, on_read);
        SET(CURLOPT_READDATA, r);
        SET(CURLOPT_SEEKFUNCTION, on_seek);
        SET(CURLOPT_SEEKDATA, r);
        /* No "Expect: 100-continue" round trip before the body. */
        struct curl_slist *t = curl_slist_append(r->hdrs, "Expect:");
        ok &= t != NULL;
        r->hdrs = t ? t : r->hdrs;
    }
    for (const char *const *h = o->headers; h && *h; h++) {
        struct curl_slist *t = curl_slist_append(r->hdrs, *h);
        ok &= t != NULL;
        r->hdrs = t ? t : r->hdrs;
    }
    if (r->hdrs)
        SET(CURLOPT_HTTPHEADER, r->hdrs);
    if (!ok || curl_multi_add_handle(H.multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->hdrs);
        free(r);
        return NULL;
    }
    r->next = H.reqs;
    if (H.reqs)
        H.reqs->prev = r;
    H.reqs = r;
    H.n++;
    return r;
}

void http_cancel(struct http_req *r)
{
    if (r)
        req_free(r);
}

int http_in_flight(void)
{
    return H.n;
}

void http_client_shutdown(void)
{
    while (H.reqs)
        req_free(H.reqs);
    if (H.multi)
        curl_multi_cleanup(H.multi);
    if (H.timer)
        event_free(H.timer);
    memset(&H, 0, sizeof H);
    curl_global_cleanup();
}
