/* Media uploads, encrypted on the way up (see media_upload.h). */
#include "media_upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/fdio.h"
#include "common/json.h"
#include "http_client.h"
#include "wa/wa_mediaconn.h"
#include "wa/wa_offload.h"

#define PIECE (256u * 1024)
#define ANSWER_MAX (64u * 1024)

struct media_upload {
    struct media_upload_req rq;
    char **hosts; /* copies */
    char *auth;
    int host; /* the one being tried */
    int tmp;  /* the encrypted file */
    int on_thread, cancelled;
    struct http_req *http;
    struct media_upload_result res;
    char answer[ANSWER_MAX + 1];
    size_t answer_len;
    int thread_failed; /* set on the thread */
    char error[256];
};

static void upload_free(struct media_upload *u)
{
    if (u->http)
        http_cancel(u->http);
    if (u->tmp >= 0)
        close(u->tmp);
    for (int i = 0; u->hosts && i < u->rq.nhosts; i++)
        free(u->hosts[i]);
    free(u->hosts);
    free(u->auth);
    OPENSSL_cleanse(&u->res, sizeof u->res);
    free(u);
}

static void finish(struct media_upload *u, enum media_upload_outcome o, const char *why)
{
    u->res.outcome = o;
    u->res.error = o == MEDIA_UPLOAD_OK ? NULL : why;
    u->http = NULL;
    u->rq.done(u->rq.arg, &u->res);
    upload_free(u);
}

/* Plain URL text only: what goes into the message and later into a URL. */
static int url_text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

int media_upload_parse_answer(const char *body, size_t len, char url[MEDIA_UPLOAD_PATH_MAX],
                              char direct_path[MEDIA_UPLOAD_PATH_MAX])
{
    char err[64];
    yajl_val v = json_parse(body, len, ANSWER_MAX, err, sizeof err);
    if (!v)
        return -1;
    yajl_val a = json_member(v, "url"), b = json_member(v, "direct_path");
    int ok = a && b && YAJL_IS_STRING(a) && YAJL_IS_STRING(b) && a->u.string[0] == 'h' &&
             b->u.string[0] == '/' && strlen(a->u.string) < MEDIA_UPLOAD_PATH_MAX &&
             strlen(b->u.string) < MEDIA_UPLOAD_PATH_MAX && url_text_ok(a->u.string) &&
             url_text_ok(b->u.string) && strncmp(a->u.string, "https://", 8) == 0;
    if (ok) {
        snprintf(url, MEDIA_UPLOAD_PATH_MAX, "%s", a->u.string);
        snprintf(direct_path, MEDIA_UPLOAD_PATH_MAX, "%s", b->u.string);
    }
    yajl_tree_free(v);
    return ok ? 0 : -1;
}

/* ---- the encryption, on a thread */

static void encrypt_work(void *arg)
{
    struct media_upload *u = arg;
    uint8_t *in = malloc(PIECE), *out = malloc(PIECE + 2 * WA_MEDIA_BLOCK + WA_MEDIA_MAC_LEN);
    struct wa_media_stream *s = wa_media_encrypt_new(u->res.media_key, u->rq.kind);
    off_t off = 0;
    if (!in || !out || !s) {
        snprintf(u->error, sizeof u->error, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t n = fd_pread_all(u->rq.fd, in, PIECE, off);
        if (n < 0) {
            snprintf(u->error, sizeof u->error, "cannot read the file: %s", strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        off += n;
        if (u->rq.max_bytes && (uint64_t)off > u->rq.max_bytes) {
            snprintf(u->error, sizeof u->error, "the file is larger than %llu bytes",
                     (unsigned long long)u->rq.max_bytes);
            goto fail;
        }
        long w = wa_media_update(s, in, (size_t)n, out);
        if (w < 0 || fd_write_all(u->tmp, out, (size_t)w) < 0) {
            snprintf(u->error, sizeof u->error, "cannot write the encrypted file: %s",
                     w < 0 ? "encryption failed" : strerror(errno));
            goto fail;
        }
    }
    if (off == 0) {
        snprintf(u->error, sizeof u->error, "the file is empty");
        goto fail;
    }
    long w = wa_media_final(s, out, &u->res.sums);
    if (w < 0 || fd_write_all(u->tmp, out, (size_t)w) < 0) {
        snprintf(u->error, sizeof u->error, "cannot finish the encrypted file");
        goto fail;
    }
    wa_media_stream_free(s);
    free(in);
    free(out);
    return;
fail:
    u->thread_failed = 1;
    wa_media_stream_free(s);
    free(in);
    free(out);
}

static int try_host(struct media_upload *u);

static void encrypt_done(void *arg)
{
    struct media_upload *u = arg;
    u->on_thread = 0;
    if (u->cancelled) {
        upload_free(u);
        return;
    }
    if (u->thread_failed) {
        finish(u, MEDIA_UPLOAD_LOCAL, u->error);
        return;
    }
    if (try_host(u) < 0)
        finish(u, MEDIA_UPLOAD_LOCAL, u->error);
}

/* ---- the upload */

static int on_data(void *ctx, const void *p, size_t n)
{
    struct media_upload *u = ctx;
    if (n > ANSWER_MAX - u->answer_len)
        return -1;
    memcpy(u->answer + u->answer_len, p, n);
    u->answer_len += n;
    return 0;
}

static void on_done(void *ctx, const struct http_result *r)
{
    struct media_upload *u = ctx;
    u->http = NULL;
    u->res.status = r->status;
    if (r->ok && r->status >= 200 && r->status < 300) {
        if (media_upload_parse_answer(u->answer, u->answer_len, u->res.url, u->res.direct_path) == 0) {
            finish(u, MEDIA_UPLOAD_OK, NULL);
            return;
        }
        snprintf(u->error, sizeof u->error, "%s answered without a usable url and direct_path",
                 u->hosts[u->host]);
    } else if (r->ok && (r->status == 401 || r->status == 403)) {
        snprintf(u->error, sizeof u->error, "%s refused the upload token (%ld)", u->hosts[u->host],
                 r->status);
        finish(u, MEDIA_UPLOAD_AUTH, u->error);
        return;
    } else if (r->ok) {
        snprintf(u->error, sizeof u->error, "%s answered %ld", u->hosts[u->host], r->status);
    } else {
        snprintf(u->error, sizeof u->error, "%s: %s", u->hosts[u->host], r->error ? r->error : "failed");
    }
    if (++u->host >= u->rq.nhosts) {
        finish(u, MEDIA_UPLOAD_NETWORK, u->error);
        return;
    }
    if (try_host(u) < 0)
        finish(u, MEDIA_UPLOAD_LOCAL, u->error);
}

static int try_host(struct media_upload *u)
{
    char url[4096];
    static const char *const headers[] = {"Origin: https://web.whatsapp.com",
                                          "Content-Type: application/octet-stream", NULL};
    u->answer_len = 0;
    if (wa_media_upload_url(url, sizeof url, u->hosts[u->host], u->rq.kind, u->res.sums.file_enc_sha256,
                            u->auth) < 0) {
        snprintf(u->error, sizeof u->error, "the host or auth cannot make an upload URL");
        return -1;
    }
    struct http_opts o = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body_fd = u->tmp,
        .body_len = u->res.sums.enc_length,
        .on_data = on_data,
        .max_bytes = ANSWER_MAX,
        .timeout_ms = u->rq.timeout_ms,
        .low_speed_bytes = 1024,
        .low_speed_s = 30,
        .proxy = u->rq.proxy,
        .done = on_done,
        .ctx = u,
    };
    u->http = http_request(&o);
    if (!u->http) {
        snprintf(u->error, sizeof u->error, "cannot start the request");
        return -1;
    }
    return 0;
}

struct media_upload *media_upload_start(const struct media_upload_req *rq)
{
    if (!rq->done || rq->nhosts <= 0 || !rq->auth || rq->fd < 0 || !wa_media_info(rq->kind))
        return NULL;
    struct media_upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->rq = *rq;
    u->tmp = openat(rq->tmp_dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    u->hosts = calloc((size_t)rq->nhosts, sizeof *u->hosts);
    u->auth = strdup(rq->auth);
    int ok = u->tmp >= 0 && u->hosts && u->auth && RAND_bytes(u->res.media_key, WA_MEDIA_KEY_LEN) == 1;
    for (int i = 0; ok && i < rq->nhosts; i++)
        ok = (u->hosts[i] = strdup(rq->hosts[i])) != NULL;
    u->rq.nhosts = u->hosts ? rq->nhosts : 0;
    u->rq.hosts = NULL; /* the copies are used */
    u->rq.auth = NULL;
    if (!ok || wa_offload_run(encrypt_work, encrypt_done, u) < 0) {
        upload_free(u);
        return NULL;
    }
    u->on_thread = 1;
    return u;
}

void media_upload_cancel(struct media_upload *u)
{
    if (!u)
        return;
    if (u->on_thread) {
        u->cancelled = 1; /* encrypt_done frees it */
        return;
    }
    upload_free(u);
}
