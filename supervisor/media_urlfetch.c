/* Media fetched from a URL for a message (see media_urlfetch.h). */
#include "media_urlfetch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "http_client.h"
#include "media.h"
#include "media_store.h"
#include "sup.h"
#include "worker_table.h"

#define URL_MAX 2048
#define FETCH_TIMEOUT_MS 60000
#define AT_ONCE 4

struct fetch {
    pid_t pid;
    uint32_t msg_id;
    char url[URL_MAX + 1], kind[16], file_name[256], ctype[128];
    int fd;
    uint64_t size;
    int write_failed;
    struct http_req *http;
};

static int in_flight;

static void reply(struct fetch *f, uint32_t status, const char *code, const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    if (jw_error_body(&b, code, msg, "media.url") == 0)
        workers_reply(f->pid, f->msg_id, status, b.buf, b.len);
    sbuf_free(&b);
}

static void fetch_free(struct fetch *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f);
    in_flight--;
}

static void on_published(void *arg, const char *id, const char *code, const char *msg)
{
    struct fetch *f = arg;
    if (id) {
        struct sbuf b;
        struct jsonw w;
        sbuf_init(&b);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "id", id);
        jw_obj_end(&w);
        if (jw_finish(&w) == 0)
            workers_reply(f->pid, f->msg_id, 201, b.buf, b.len);
        sbuf_free(&b);
    } else {
        int bad = code && (!strcmp(code, "unsupported_type") || !strcmp(code, "type_mismatch") ||
                           !strcmp(code, "empty_file") || !strcmp(code, "invalid_sticker"));
        char m[300];
        snprintf(m, sizeof m, "the file at media.url cannot be sent: %s", msg ? msg : "not stored");
        reply(f, bad ? 400 : 503, bad ? "invalid_media" : (code ? code : "store_error"), m);
    }
    fetch_free(f);
}

static int on_data(void *ctx, const void *p, size_t n)
{
    struct fetch *f = ctx;
    if (fd_write_all(f->fd, p, n) < 0) {
        f->write_failed = errno ? errno : EIO;
        return -1;
    }
    f->size += n;
    return 0;
}

static void on_done(void *ctx, const struct http_result *r)
{
    struct fetch *f = ctx;
    f->http = NULL;
    char m[400];
    if (f->write_failed) {
        int full = f->write_failed == ENOSPC || f->write_failed == EDQUOT;
        reply(f, full ? 507 : 503, full ? "media_store_full" : "store_error",
              full ? "the media volume is full" : "the file could not be written; try again");
        fetch_free(f);
        return;
    }
    if (!r->ok) {
        int refused = r->error && strstr(r->error, "private");
        int big = r->error && strstr(r->error, "larger than");
        snprintf(m, sizeof m, "media.url could not be fetched: %s", r->error ? r->error : "failed");
        reply(f, refused || big ? 400 : 502,
              refused ? "url_not_allowed"
              : big   ? "file_too_large"
                      : "fetch_failed",
              m);
        fetch_free(f);
        return;
    }
    if (r->status < 200 || r->status > 299) {
        snprintf(m, sizeof m, "media.url answered HTTP %ld", r->status);
        reply(f, 502, "fetch_failed", m);
        fetch_free(f);
        return;
    }
    if (f->size == 0) {
        reply(f, 400, "empty_file", "the file at media.url is empty");
        fetch_free(f);
        return;
    }
    if (r->content_type)
        snprintf(f->ctype, sizeof f->ctype, "%s", r->content_type);
    const char *why;
    int fd = f->fd;
    f->fd = -1; /* taken by the publication */
    if (lseek(fd, 0, SEEK_SET) != 0 || media_publish_local(fd, f->size, f->kind, f->ctype, f->file_name, NULL,
                                                           1, on_published, f, &why) < 0) {
        int full = why && !strcmp(why, "media_store_full");
        reply(f, full ? 507 : 503, full ? "media_store_full" : "media_unavailable",
              full ? "the media store is full (media.max_store_bytes)" : "the media store is not available");
        fetch_free(f);
    }
}

static int fetch_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    struct fetch *f = calloc(1, sizeof *f);
    if (!f)
        return WORKER_MALFORMED;
    f->fd = -1;
    in_flight++;
    if (ipc_rd_text(rd, f->url, sizeof f->url) < 0 || ipc_rd_text(rd, f->kind, sizeof f->kind) < 0 ||
        ipc_rd_text(rd, f->file_name, sizeof f->file_name) < 0 || ipc_rd_end(rd) < 0) {
        fetch_free(f);
        return WORKER_MALFORMED;
    }
    f->pid = m->pid;
    f->msg_id = m->id;
    struct media_store *st = media_store_ready();
    const char *code = NULL, *msg = NULL;
    if (strncmp(f->url, "https://", 8) != 0 && strncmp(f->url, "http://", 7) != 0) {
        code = "invalid_media";
        msg = "media.url must be an http:// or https:// URL";
    } else if (in_flight > AT_ONCE) {
        code = "busy";
        msg = "too many URL fetches in progress; try again";
    } else if (!st || (f->fd = openat(st->tmpdfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
        code = "media_unavailable";
        msg = "the media store is not available";
    }
    struct http_opts o = {
        .method = "GET",
        .url = f->url,
        .body_fd = -1,
        .on_data = on_data,
        .max_bytes = (uint64_t)S.cfg.media.max_upload_bytes,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .max_redirects = 5,
        .refuse_private = !S.cfg.webhooks.allow_private,
        .done = on_done,
        .ctx = f,
    };
    if (!code && !(f->http = http_request(&o))) {
        code = "invalid_media";
        msg = "media.url cannot be fetched";
    }
    if (code) {
        *status = !strcmp(code, "invalid_media") ? 400 : 503;
        jw_error_body(body, code, msg, "media.url");
        fetch_free(f);
        return WORKER_ANSWER;
    }
    log_info("media: fetching a URL for a message", LF_I("pid", f->pid));
    return WORKER_ANSWER_LATER;
}

void media_urlfetch_init(void)
{
    workers_handle(IPC_MEDIA_FETCH, fetch_ipc);
}
