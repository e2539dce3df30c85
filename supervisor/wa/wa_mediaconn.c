/* The media_conn query, its cache, and the media URLs (see wa_mediaconn.h). */
#include "wa_mediaconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "wa_client.h"

#define TTL_MAX_S (7 * 24 * 3600) /* a longer TTL is the server's mistake: ask a week later */
#define EXPIRY_MARGIN_MS 5000     /* never hand out a token about to expire mid-upload */

struct waiter {
    wa_mediaconn_cb cb;
    void *arg;
    struct waiter *next;
};

static struct {
    struct wa_mediaconn mc;
    int valid;
    int asking;             /* a query is out */
    struct waiter *waiters; /* callers of that query, newest first */
} M;

wa_node *wa_mediaconn_request(wa_arena *a)
{
    wa_node *iq = wa_node_new(a, "iq"), *mc = wa_node_new(a, "media_conn");
    if (!iq || !mc || wa_node_add_attr(a, iq, "xmlns", "w:m") < 0 ||
        wa_node_add_attr(a, iq, "type", "set") < 0 || wa_node_add_child(a, iq, mc) < 0)
        return NULL;
    return iq;
}

/* Characters a host name (with an optional :port) may have. */
static int host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n >= WA_MEDIACONN_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '-' || ch == ':'))
            return 0;
    }
    return 1;
}

/* Printable ASCII without spaces: the auth is percent-encoded into a URL. */
static int token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

static long seconds(const char *s)
{
    if (!s || !*s || strlen(s) > 9)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

int wa_mediaconn_parse(const wa_node *answer, int64_t now_ms, struct wa_mediaconn *out, char *err,
                       size_t errlen)
{
    const char *type = answer ? wa_node_attr_str(answer, "type") : NULL;
    const wa_node *mc = answer ? wa_node_child(answer, "media_conn") : NULL;
    memset(out, 0, sizeof *out);
    if (!type || strcmp(type, "result") != 0 || !mc) {
        const wa_node *e = answer ? wa_node_child(answer, "error") : NULL;
        const char *code = e ? wa_node_attr_str(e, "code") : NULL;
        snprintf(err, errlen, "media_conn refused%s%s", code ? ": error " : "", code ? code : "");
        return -1;
    }
    const char *auth = wa_node_attr_str(mc, "auth");
    long ttl = seconds(wa_node_attr_str(mc, "ttl"));
    long auth_ttl = seconds(wa_node_attr_str(mc, "auth_ttl"));
    if (!auth || !token_ok(auth, sizeof out->auth)) {
        snprintf(err, errlen, "media_conn without a usable auth");
        return -1;
    }
    if (ttl <= 0) {
        snprintf(err, errlen, "media_conn without a positive ttl");
        return -1;
    }
    if (auth_ttl > 0 && auth_ttl < ttl)
        ttl = auth_ttl;
    if (ttl > TTL_MAX_S)
        ttl = TTL_MAX_S;
    for (uint32_t i = 0; mc->content == WA_CONTENT_LIST && i < mc->nchildren; i++) {
        const wa_node *h = mc->children[i];
        const char *name = strcmp(h->tag, "host") == 0 ? wa_node_attr_str(h, "hostname") : NULL;
        if (!name)
            continue;
        if (!host_ok(name)) {
            snprintf(err, errlen, "media_conn host with characters a URL cannot carry");
            return -1;
        }
        if (out->nhosts < WA_MEDIACONN_MAX_HOSTS)
            snprintf(out->hosts[out->nhosts++], WA_MEDIACONN_HOST_MAX, "%s", name);
    }
    if (!out->nhosts) {
        snprintf(err, errlen, "media_conn without a host");
        return -1;
    }
    snprintf(out->auth, sizeof out->auth, "%s", auth);
    out->fetched_ms = now_ms;
    out->expires_ms = now_ms + (int64_t)ttl * 1000;
    return 0;
}

static const char *const MMS_TYPE[WA_MEDIA_KINDS] = {
    [WA_MEDIA_IMAGE] = "image",         [WA_MEDIA_VIDEO] = "video",
    [WA_MEDIA_AUDIO] = "audio",         [WA_MEDIA_DOCUMENT] = "document",
    [WA_MEDIA_HISTORY] = "md-msg-hist", [WA_MEDIA_APPSTATE] = "md-app-state",
};

int wa_media_upload_url(char *out, size_t cap, const char *host, enum wa_media_kind kind,
                        const uint8_t file_enc_sha256[32], const char *auth)
{
    unsigned char b64[48];
    char tok[48], q[3 * WA_MEDIACONN_AUTH_MAX];
    if ((unsigned)kind >= WA_MEDIA_KINDS || !host_ok(host) || !token_ok(auth, WA_MEDIACONN_AUTH_MAX))
        return -1;
    int n = EVP_EncodeBlock(b64, file_enc_sha256, 32); /* 44 characters, one '=' */
    size_t t = 0;
    for (int i = 0; i < n && b64[i] != '='; i++)
        tok[t++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    tok[t] = '\0';
    size_t k = 0;
    for (const char *p = auth; *p; p++) {
        char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '_' || ch == '.' || ch == '~') {
            q[k++] = ch;
        } else {
            snprintf(q + k, 4, "%%%02X", (unsigned char)ch);
            k += 3;
        }
    }
    q[k] = '\0';
    int w = snprintf(out, cap, "https://%s/mms/%s/%s?auth=%s&token=%s", host, MMS_TYPE[kind], tok, q, tok);
    return w > 0 && (size_t)w < cap ? 0 : -1;
}

int wa_media_download_url(char *out, size_t cap, const char *host, const char *direct_path)
{
    if (!host_ok(host) || !direct_path || direct_path[0] != '/' ||
        !token_ok(direct_path, cap > 16384 ? 16384 : cap))
        return -1;
    int w = snprintf(out, cap, "https://%s%s", host, direct_path);
    return w > 0 && (size_t)w < cap ? 0 : -1;
}

static void answer_all(const struct wa_mediaconn *mc, const char *err)
{
    struct waiter *w = M.waiters;
    M.waiters = NULL;
    M.asking = 0;
    /* Oldest first: they asked first. */
    struct waiter *rev = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->next = rev;
        rev = w;
        w = next;
    }
    while (rev) {
        struct waiter *next = rev->next;
        rev->cb(rev->arg, mc, err);
        free(rev);
        rev = next;
    }
}

static void on_answer(void *arg, const wa_node *n)
{
    (void)arg;
    char err[160];
    struct wa_mediaconn mc;
    if (!n) {
        answer_all(NULL, "the connection dropped before media_conn was answered");
        return;
    }
    int64_t now = M.mc.fetched_ms; /* set when asked: the TTL runs from the question */
    if (wa_mediaconn_parse(n, now, &mc, err, sizeof err) < 0) {
        answer_all(NULL, err);
        return;
    }
    M.mc = mc;
    M.valid = 1;
    answer_all(&M.mc, NULL);
}

int wa_mediaconn_get(struct wa_client *c, int64_t now_ms, wa_mediaconn_cb cb, void *arg)
{
    if (M.valid && now_ms + EXPIRY_MARGIN_MS < M.mc.expires_ms) {
        cb(arg, &M.mc, NULL);
        return 0;
    }
    struct waiter *w = malloc(sizeof *w);
    if (!w)
        return -1;
    if (!M.asking) {
        wa_arena *a = wa_arena_new();
        wa_node *iq = a ? wa_mediaconn_request(a) : NULL;
        int r = iq ? wa_client_iq(c, a, iq, on_answer, NULL) : -1;
        wa_arena_free(a);
        if (r < 0) {
            free(w);
            return -1;
        }
        M.valid = 0;
        M.asking = 1;
        M.mc.fetched_ms = now_ms;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = M.waiters;
    M.waiters = w;
    return 0;
}

void wa_mediaconn_invalidate(void)
{
    M.valid = 0;
}

void wa_mediaconn_forget(wa_mediaconn_cb cb, void *arg)
{
    for (struct waiter **p = &M.waiters; *p;) {
        if ((*p)->cb == cb && (*p)->arg == arg) {
            struct waiter *dead = *p;
            *p = dead->next;
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
}
