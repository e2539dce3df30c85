/* Media downloads, decrypted and verified on the way (see media_fetch.h). */
#include "media_fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/fdio.h"
#include "http_client.h"
#include "wa/wa_mediaconn.h"

#define PIECE_MAX (1u << 20) /* curl hands over at most CURL_MAX_WRITE_SIZE; room for more */

struct media_fetch {
    struct media_fetch_req rq;
    char **hosts; /* copies */
    char *direct_path;
    int host; /* the one being tried */
    struct http_req *http;
    struct wa_media_stream *dec;
    int fd;
    uint64_t written;
    uint8_t *out; /* decryption output, PIECE_MAX + 32 */
    int local_error, corrupt;
    long last_status;
    char error[256];
};

static void fetch_free(struct media_fetch *f)
{
    if (f->http)
        http_cancel(f->http);
    wa_media_stream_free(f->dec);
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; f->hosts && i < f->rq.nhosts; i++)
        free(f->hosts[i]);
    free(f->hosts);
    free(f->direct_path);
    free(f->out);
    OPENSSL_cleanse(f->rq.media_key, sizeof f->rq.media_key);
    free(f);
}

/* Tells the caller and frees f; the plaintext goes with an OK. */
static void finish(struct media_fetch *f, enum media_fetch_outcome o, const char *why,
                   const struct wa_media_sums *sums)
{
    struct media_fetch_result r = {.outcome = o, .fd = -1, .status = f->last_status, .error = why};
    if (o == MEDIA_FETCH_OK) {
        r.fd = f->fd;
        r.sums = *sums;
        f->fd = -1;
        lseek(r.fd, 0, SEEK_SET);
    }
    f->http = NULL; /* over already */
    f->rq.done(f->rq.arg, &r);
    fetch_free(f);
}

static int on_data(void *ctx, const void *p, size_t n)
{
    struct media_fetch *f = ctx;
    while (n) {
        size_t m = n > PIECE_MAX ? PIECE_MAX : n;
        long w = wa_media_update(f->dec, p, m, f->out);
        if (w < 0) {
            snprintf(f->error, sizeof f->error, "decryption failed");
            f->local_error = 1;
            return -1;
        }
        if (fd_write_all(f->fd, f->out, (size_t)w) < 0) {
            snprintf(f->error, sizeof f->error, "cannot write the download: %s", strerror(errno));
            f->local_error = 1;
            return -1;
        }
        f->written += (uint64_t)w;
        if (f->rq.file_length && f->written > f->rq.file_length + WA_MEDIA_BLOCK) {
            snprintf(f->error, sizeof f->error, "more bytes than the message said (%llu)",
                     (unsigned long long)f->rq.file_length);
            f->corrupt = 1;
            return -1;
        }
        p = (const uint8_t *)p + m;
        n -= m;
    }
    return 0;
}

static int try_host(struct media_fetch *f);

/* A fresh start for the next host: empty file, new decryption. */
static int reset(struct media_fetch *f)
{
    wa_media_stream_free(f->dec);
    f->dec = wa_media_decrypt_new(f->rq.media_key, f->rq.kind);
    f->written = 0;
    if (!f->dec || ftruncate(f->fd, 0) != 0 || lseek(f->fd, 0, SEEK_SET) != 0)
        return -1;
    return 0;
}

static void verify(struct media_fetch *f)
{
    uint8_t tail[32];
    struct wa_media_sums s;
    long w = wa_media_final(f->dec, tail, &s);
    if (w == WA_MEDIA_EMAC || w == WA_MEDIA_ESHORT || w == WA_MEDIA_EPAD) {
        finish(f, MEDIA_FETCH_CORRUPT,
               w == WA_MEDIA_EMAC   ? "the file's MAC does not match (tampered, cut, or another key)"
               : w == WA_MEDIA_EPAD ? "the file's padding is wrong"
                                    : "the file is not whole AES blocks and a MAC",
               NULL);
    } else if (w < 0 || fd_write_all(f->fd, tail, (size_t)w) < 0) {
        finish(f, MEDIA_FETCH_LOCAL, "cannot finish the download", NULL);
    } else if (f->rq.has_file_enc_sha256 &&
               CRYPTO_memcmp(s.file_enc_sha256, f->rq.file_enc_sha256, 32) != 0) {
        finish(f, MEDIA_FETCH_CORRUPT, "fileEncSha256 does not match", NULL);
    } else if (f->rq.has_file_sha256 && CRYPTO_memcmp(s.file_sha256, f->rq.file_sha256, 32) != 0) {
        finish(f, MEDIA_FETCH_CORRUPT, "fileSha256 does not match", NULL);
    } else if (f->rq.file_length && s.file_length != f->rq.file_length) {
        finish(f, MEDIA_FETCH_CORRUPT, "the length does not match the message", NULL);
    } else {
        finish(f, MEDIA_FETCH_OK, NULL, &s);
    }
}

static void on_done(void *ctx, const struct http_result *r)
{
    struct media_fetch *f = ctx;
    f->http = NULL;
    f->last_status = r->status;
    if (f->local_error) {
        finish(f, MEDIA_FETCH_LOCAL, f->error, NULL);
        return;
    }
    if (f->corrupt) {
        finish(f, MEDIA_FETCH_TOO_BIG, f->error, NULL);
        return;
    }
    if (r->ok && r->status >= 200 && r->status < 300) {
        verify(f);
        return;
    }
    if (r->ok && (r->status == 403 || r->status == 404 || r->status == 410)) {
        snprintf(f->error, sizeof f->error, "the media host answered %ld: no longer on the CDN", r->status);
        finish(f, MEDIA_FETCH_EXPIRED, f->error, NULL);
        return;
    }
    if (!r->ok && r->error && strstr(r->error, "larger than")) {
        snprintf(f->error, sizeof f->error, "%s", r->error);
        finish(f, MEDIA_FETCH_TOO_BIG, f->error, NULL);
        return;
    }
    /* A 5xx, another status, or no answer: the next host. */
    if (r->ok)
        snprintf(f->error, sizeof f->error, "%s answered %ld", f->hosts[f->host], r->status);
    else
        snprintf(f->error, sizeof f->error, "%s: %s", f->hosts[f->host], r->error ? r->error : "failed");
    f->host++;
    if (f->host >= f->rq.nhosts) {
        finish(f, MEDIA_FETCH_NETWORK, f->error, NULL);
        return;
    }
    if (try_host(f) < 0)
        finish(f, MEDIA_FETCH_LOCAL, f->error, NULL);
}

/* Starts on f->hosts[f->host]; -1 with f->error when it cannot. */
static int try_host(struct media_fetch *f)
{
    char url[4096];
    static const char *const headers[] = {"Origin: https://web.whatsapp.com", NULL};
    if (reset(f) < 0) {
        snprintf(f->error, sizeof f->error, "cannot reset the download");
        return -1;
    }
    if (wa_media_download_url(url, sizeof url, f->hosts[f->host], f->direct_path) < 0) {
        snprintf(f->error, sizeof f->error, "the direct path or host cannot make a URL");
        return -1;
    }
    struct http_opts o = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .body_fd = -1,
        .on_data = on_data,
        .max_bytes = f->rq.max_bytes,
        .timeout_ms = f->rq.timeout_ms,
        .low_speed_bytes = 1024,
        .low_speed_s = 30,
        .proxy = f->rq.proxy,
        .done = on_done,
        .ctx = f,
    };
    f->http = http_request(&o);
    if (!f->http) {
        snprintf(f->error, sizeof f->error, "cannot start the request");
        return -1;
    }
    return 0;
}

struct media_fetch *media_fetch_start(const struct media_fetch_req *rq)
{
    if (!rq->done || rq->nhosts <= 0 || !rq->direct_path)
        return NULL;
    struct media_fetch *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rq = *rq;
    f->fd = openat(rq->tmp_dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    f->hosts = calloc((size_t)rq->nhosts, sizeof *f->hosts);
    f->direct_path = strdup(rq->direct_path);
    f->out = malloc(PIECE_MAX + 32);
    int ok = f->fd >= 0 && f->hosts && f->direct_path && f->out;
    for (int i = 0; ok && i < rq->nhosts; i++)
        ok = (f->hosts[i] = strdup(rq->hosts[i])) != NULL;
    if (!ok) {
        f->rq.nhosts = f->hosts ? rq->nhosts : 0;
        fetch_free(f);
        return NULL;
    }
    f->rq.hosts = NULL; /* the copies are used */
    f->rq.direct_path = NULL;
    if (try_host(f) < 0) {
        fetch_free(f);
        return NULL;
    }
    return f;
}

struct media_fetch *media_fetch_start_on(const struct wa_mediaconn *mc, struct media_fetch_req *rq)
{
    const char *hosts[WA_MEDIACONN_MAX_HOSTS];
    for (int i = 0; i < mc->nhosts && i < WA_MEDIACONN_MAX_HOSTS; i++)
        hosts[i] = mc->hosts[i];
    rq->hosts = hosts;
    rq->nhosts = mc->nhosts < WA_MEDIACONN_MAX_HOSTS ? mc->nhosts : WA_MEDIACONN_MAX_HOSTS;
    struct media_fetch *f = media_fetch_start(rq); /* copies the hosts */
    rq->hosts = NULL;
    OPENSSL_cleanse(rq->media_key, sizeof rq->media_key);
    return f;
}

void media_fetch_cancel(struct media_fetch *f)
{
    if (f)
        fetch_free(f);
}
