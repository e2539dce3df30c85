/* The supervisor's media service (see media.h): the open store and its
 * size, blocks freed off the loop, the key of signed links, uploads handed
 * out to workers and their publication. One file (~900 lines) because the
 * reservations, the publication queue and the upload tokens are one piece
 * of state every IPC handler here reads and changes. */
#include "media.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/media_url.h"
#include "media_image.h"
#include "media_probe.h"
#include "media_type.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_offload.h"

#define MAX_UPLOADS 256 /* temp files handed out and not yet published or dropped, and publications */
#define MAX_UPLOADS_PER_WORKER 64
#define UPLOAD_TTL_MS (15 * 60 * 1000) /* a worker that never came back with its file */
#define HASHING_AT_ONCE 2              /* publications on threads at one time: the CPUs stay shared */
#define TICK_S 60
#define FILE_NAME_MAX 255

/* A temp file given to a worker: it may come back once, from that worker,
 * as that very file (device and inode). Its size is held against the quota
 * meanwhile. */
struct upload {
    uint64_t token;
    pid_t pid;
    uint32_t req_id; /* the UPLOAD request: a worker that never got the answer discards by it */
    dev_t dev;
    ino_t ino;
    char name[40]; /* a named temp file ("" for O_TMPFILE: nothing to remove) */
    uint64_t size;
    uint64_t created_ms;
};

/* One publication, from the worker's request to the answer. */
struct publish {
    struct publish *next;          /* waiting for a thread */
    struct publish *lprev, *lnext; /* every live one (DISCARD, a worker gone) */
    pid_t pid;
    uint32_t msg_id;
    uint64_t token;
    uint64_t deadline_ms; /* not hashing by then: the worker has given up waiting */
    int cancelled;        /* the worker gave up (DISCARD) or is gone: nothing more is done */
    int recording;        /* its row is being written: past the point of no return */
    int queued;
    int src_fd;         /* the worker's temp file (it may still write to it) */
    char src_name[40];  /* its name in .tmp/ ("" for O_TMPFILE) */
    struct media_tmp t; /* the copy only the supervisor writes: what is hashed and linked */
    uint64_t claimed, size, reserved, copied, replaced;
    enum media_kind kind;
    char declared[MEDIA_MIME_MAX], file_name[FILE_NAME_MAX + 1], expect[MEDIA_HEX_LEN + 1];
    /* filled on the thread */
    char hex[MEDIA_HEX_LEN + 1], detected[MEDIA_MIME_MAX];
    int err, type_rc;
    struct media_verdict v;
    int64_t width, height, seconds; /* -1: not known (not an image, video or voice, or not readable) */
    /* the row */
    char id[32], size_s[24], width_s[24], height_s[24], seconds_s[24];
    const char *params[9];
    /* a local publication (media_publish_local): told here, not a worker */
    media_local_cb done;
    void *done_arg;
    int strict; /* a local publication held to the upload rules (the sticker size) */
};

static struct {
    struct media_store st;
    int open;     /* st is usable */
    int scanned;  /* bytes and files are known */
    int scanning; /* the walk that measures them runs */
    int trash_running, trash_again;
    int closing; /* files being closed or removed on threads */
    int magic;   /* libmagic is loaded */
    uint64_t bytes, files, reserved;
    uint8_t key[MEDIA_KEY_LEN];
    int key_loaded, key_loading;
    struct upload up[MAX_UPLOADS];
    int nup;
    struct publish *qhead, *qtail;
    struct publish *live;
    int npub;
    int hashing;
    struct event *tick, *key_retry;
} M;

static void gauges(void)
{
    metrics_set(&S.shm->media_store_bytes, M.bytes);
    metrics_set(&S.shm->media_store_files, M.files);
}

/* ---- opening and measuring the store */

struct scan {
    uint64_t bytes, files;
    int err;
};

static int count_file(void *arg, const char *hex, uint64_t size, time_t mtime)
{
    (void)hex, (void)mtime;
    struct scan *sc = arg;
    sc->bytes += size;
    sc->files++;
    return 0;
}

static void scan_work(void *arg)
{
    struct scan *sc = arg;
    sc->err = media_store_walk(&M.st, 1, count_file, sc) < 0 ? errno : 0;
}

static void scan_done(void *arg)
{
    struct scan *sc = arg;
    M.scanning = 0;
    if (sc->err) {
        log_error("media store: cannot measure it; the quota waits (retried every minute)",
                  LF_S("error", strerror(sc->err)));
    } else {
        /* With a quota nothing is published before this point; without one,
         * a file published while the walk ran may be counted twice (the
         * gauges drift by that until the next start). */
        M.bytes += sc->bytes;
        M.files += sc->files;
        M.scanned = 1;
        gauges();
        log_info("media store measured", LF_I("files", (long long)M.files),
                 LF_I("bytes", (long long)M.bytes));
    }
    free(sc);
}

/* The walk that measures the store; retried by the tick until it works. */
static void start_scan(void)
{
    struct scan *sc = calloc(1, sizeof *sc);
    if (!sc || wa_offload_run(scan_work, scan_done, sc) < 0) {
        free(sc);
        log_error("media store: cannot start measuring it; the quota waits");
        return;
    }
    M.scanning = 1;
}

/* ---- freeing blocks off the loop: closing the last descriptor of a large
 * unlinked file, or unlinking a large file, can take long on some file
 * systems, and the loop also carries the WhatsApp connection. */

static void trash_work(void *arg)
{
    (void)arg;
    unsigned n;
    media_store_empty_trash(&M.st, &n);
}

static void trash_done(void *arg)
{
    (void)arg;
    M.trash_running = 0;
    if (M.trash_again)
        media_empty_trash();
}

void media_empty_trash(void)
{
    if (!M.open)
        return;
    if (M.trash_running) {
        M.trash_again = 1;
        return;
    }
    M.trash_again = 0;
    M.trash_running = wa_offload_run(trash_work, trash_done, NULL) == 0;
}

struct closing {
    int fd;
    char name[40]; /* a named temp file in .tmp/ to remove too */
};

static void close_work(void *arg)
{
    struct closing *c = arg;
    if (c->fd >= 0)
        close(c->fd);
    if (c->name[0])
        unlinkat(M.st.tmpdfd, c->name, 0);
}

static void close_done(void *arg)
{
    M.closing--;
    free(arg);
}

/* Closes fd and removes the temp name off the loop (at once when no thread
 * can be had). */
static void close_later(int fd, const char *name)
{
    if (fd < 0 && (!name || !name[0]))
        return;
    struct closing *c = malloc(sizeof *c);
    if (c) {
        c->fd = fd;
        snprintf(c->name, sizeof c->name, "%s", name && M.open ? name : "");
        if (wa_offload_run(close_work, close_done, c) == 0) {
            M.closing++;
            return;
        }
    }
    free(c);
    if (fd >= 0)
        close(fd);
    if (name && name[0] && M.open)
        unlinkat(M.st.tmpdfd, name, 0);
}

static void try_open(void)
{
    if (!M.magic) {
        char err[256];
        if (media_type_init(err, sizeof err) == 0)
            M.magic = 1;
        else
            log_error("media: cannot load libmagic; uploads wait for it", LF_S("error", err));
    }
    if (M.open)
        return;
    char err[600];
    unsigned removed = 0;
    if (media_store_open(&M.st, S.cfg.paths.media, &removed, err, sizeof err) < 0) {
        log_error("media store unavailable; retrying every minute", LF_S("error", err));
        return;
    }
    M.open = 1;
    log_info("media store open", LF_S("path", S.cfg.paths.media), LF_I("o_tmpfile", M.st.use_tmpfile),
             LF_I("leftover_temp_files_removed", removed));
    media_empty_trash(); /* the leftovers were moved there */
    start_scan();
}

struct media_store *media_store_ready(void)
{
    return M.open ? &M.st : NULL;
}

int media_measured(void)
{
    return M.scanned;
}

void media_note_removed(uint64_t files, uint64_t bytes)
{
    M.files = files > M.files ? 0 : M.files - files;
    M.bytes = bytes > M.bytes ? 0 : M.bytes - bytes;
    gauges();
}

void media_status_json(struct jsonw *w)
{
    jw_kbool(w, "ready", M.open && M.magic);
    jw_kbool(w, "o_tmpfile", M.st.use_tmpfile);
    jw_kbool(w, "measured", M.scanned);
    jw_kuint(w, "bytes", M.bytes);
    jw_kuint(w, "files", M.files);
    jw_kuint(w, "reserved", M.reserved);
    jw_kint(w, "uploads_open", M.nup);
    jw_kint(w, "publishing", M.hashing);
    jw_kint(w, "max_store_bytes", S.cfg.media.max_store_bytes);
}

/* ---- the key of signed links */

static void load_key(void);

static void on_key_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    load_key();
}

static void on_key(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    M.key_loading = 0;
    if (res && PQntuples(res) == 1 && strlen(PQgetvalue(res, 0, 0)) == 2 * MEDIA_KEY_LEN &&
        hex_decode(PQgetvalue(res, 0, 0), M.key, MEDIA_KEY_LEN) == 0) {
        M.key_loaded = 1;
        log_info("media: the key of signed links is loaded");
        return;
    }
    log_warn("media: cannot load the key of signed links; retrying", LF_S("error", res   ? "no row"
                                                                                   : err ? err
                                                                                         : "?"));
    struct timeval tv = {2, 0};
    evtimer_add(M.key_retry, &tv);
}

/* Ours unless one exists (then that one comes back). The base URL and the
 * lifetime of links are recorded with it for wapi_media_link(), which
 * signs the links in message JSON. */
static const char SQL_KEY[] =
    "INSERT INTO wapi_media_secret (id, secret, base_url, url_ttl_seconds) VALUES (1, $1, $2, $3::int) "
    "ON CONFLICT (id) DO UPDATE SET base_url = EXCLUDED.base_url, url_ttl_seconds = EXCLUDED.url_ttl_seconds "
    "RETURNING secret";

static void load_key(void)
{
    if (M.key_loaded || M.key_loading || !S.migrated)
        return;
    uint8_t k[MEDIA_KEY_LEN];
    char hex[2 * MEDIA_KEY_LEN + 1];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        log_error("media: no randomness for the key of signed links");
        return;
    }
    hex_encode(hex, k, sizeof k, 0);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", S.cfg.media.url_ttl_seconds);
    const char *p[3] = {hex, S.cfg.base_url, ttl};
    M.key_loading = sdb_query(SQL_KEY, 3, p, on_key, NULL) != NULL;
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(hex, sizeof hex);
}

void media_on_migrated(void)
{
    load_key();
}

/* ---- uploads handed out */

static int find_upload(uint64_t token, pid_t pid)
{
    for (int i = 0; i < M.nup; i++)
        if (M.up[i].token == token && M.up[i].pid == pid)
            return i;
    return -1;
}

/* Forgets upload i; its temp file goes unless keep_file (a publication
 * takes it over). */
static void drop_upload(int i, int keep_file)
{
    struct upload *u = &M.up[i];
    if (!keep_file && u->name[0] && M.open && media_store_trash(&M.st, M.st.tmpdfd, u->name) == 0)
        media_empty_trash();
    M.reserved -= u->size;
    M.up[i] = M.up[--M.nup];
}

static void cancel_publish(struct publish *p);

static void on_worker_gone(pid_t pid)
{
    for (int i = M.nup - 1; i >= 0; i--)
        if (M.up[i].pid == pid)
            drop_upload(i, 0);
    /* Nobody waits for their answer: a file published now would be a row
     * the client never heard of. */
    for (struct publish *p = M.live, *n; p; p = n) {
        n = p->lnext;
        if (p->pid == pid) {
            log_info("media: publication of a worker that is gone cancelled", LF_I("pid", pid),
                     LF_I("in_time", !p->recording));
            cancel_publish(p);
        }
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    try_open();
    if (M.open && !M.scanned && !M.scanning)
        start_scan(); /* the first walk failed */
    load_key();
    uint64_t now = now_ms();
    for (int i = M.nup - 1; i >= 0; i--)
        if (now - M.up[i].created_ms > UPLOAD_TTL_MS) {
            log_warn("media: an upload was never completed; dropped", LF_I("pid", M.up[i].pid));
            drop_upload(i, 0);
        }
}

static int answer(uint32_t *status, struct sbuf *body, uint32_t st, const char *code, const char *msg,
                  const char *field)
{
    *status = st;
    jw_error_body(body, code, msg, field);
    return WORKER_ANSWER;
}

static int unavailable(uint32_t *status, struct sbuf *body)
{
    return answer(status, body, 503, "media_unavailable", "the media store is not available; try again",
                  NULL);
}

static int do_key(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    if (!M.key_loaded)
        return unavailable(status, body);
    workers_reply(m->pid, m->id, 200, (const char *)M.key, MEDIA_KEY_LEN);
    return WORKER_ANSWER_LATER;
}

/* A hash in the payload, checked. */
static int rd_hex(struct ipc_rd *rd, char hex[MEDIA_HEX_LEN + 1], int optional)
{
    uint32_t n;
    const uint8_t *p = ipc_rd_bytes(rd, &n);
    hex[0] = '\0';
    if (optional && p && n == 0)
        return 0;
    if (!p || n != MEDIA_HEX_LEN)
        return -1;
    memcpy(hex, p, n);
    hex[n] = '\0';
    return media_store_hex_ok(hex) ? 0 : -1;
}

static int do_open(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char hex[MEDIA_HEX_LEN + 1];
    if (rd_hex(rd, hex, 0) < 0 || ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    if (!M.open)
        return unavailable(status, body);
    uint64_t size;
    int fd = media_store_open_file(&M.st, hex, &size);
    if (fd < 0) {
        if (errno != ENOENT) {
            log_error("media: cannot open a stored file", LF_S("sha256", hex),
                      LF_S("error", strerror(errno)));
            return unavailable(status, body);
        }
        log_warn("media: a row names a file the store does not hold", LF_S("sha256", hex));
        return answer(status, body, 404, "not_found", "the file is not in the media store", NULL);
    }
    workers_reply_fd(m->pid, m->id, 200, "", 0, fd);
    close(fd); /* the worker has its own now */
    return WORKER_ANSWER_LATER;
}

/* size more would take the store past media.max_store_bytes (counting what
 * is reserved): counted and logged. */
static int store_full(uint64_t size)
{
    uint64_t max = (uint64_t)S.cfg.media.max_store_bytes;
    if (!max || (M.bytes + M.reserved <= max && size <= max - M.bytes - M.reserved))
        return 0;
    metrics_add(&S.shm->media_refused_full_total, 1);
    log_warn("media: a new file refused, the store is full", LF_I("size", (long long)size),
             LF_I("bytes", (long long)M.bytes), LF_I("max_store_bytes", (long long)max));
    return 1;
}

static int do_upload(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    uint64_t size = ipc_rd_u64(rd);
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    if (!M.open || !M.magic)
        return unavailable(status, body);
    if (size == 0 || size > (uint64_t)S.cfg.media.max_upload_bytes) /* a worker of an older configuration */
        return answer(status, body, 413, "payload_too_large",
                      "the file is larger than media.max_upload_bytes", "file");
    uint64_t max = (uint64_t)S.cfg.media.max_store_bytes;
    if (max && !M.scanned)
        return answer(status, body, 503, "media_unavailable", "the media store is being measured; try again",
                      NULL);
    if (store_full(size))
        return answer(status, body, 507, "media_store_full",
                      "the media store is full (media.max_store_bytes); delete media or raise the limit",
                      "file");
    int mine = 0;
    for (int i = 0; i < M.nup; i++)
        mine += M.up[i].pid == m->pid;
    for (struct publish *p = M.live; p; p = p->lnext)
        mine += p->pid == m->pid;
    if (M.nup + M.npub >= MAX_UPLOADS || mine >= MAX_UPLOADS_PER_WORKER)
        return answer(status, body, 503, "busy", "too many uploads in progress; try again", NULL);
    struct media_tmp t;
    uint64_t token = 0;
    if (media_store_tmp(&M.st, &t) < 0) {
        log_error("media: cannot make a temp file in the store", LF_S("error", strerror(errno)));
        return unavailable(status, body);
    }
    while (token == 0)
        if (getrandom(&token, sizeof token, 0) != (ssize_t)sizeof token) {
            media_store_tmp_discard(&M.st, &t);
            return unavailable(status, body);
        }
    struct upload *u = &M.up[M.nup++];
    *u = (struct upload){token, m->pid, m->id, t.dev, t.ino, "", size, now_ms()};
    snprintf(u->name, sizeof u->name, "%s", t.name);
    M.reserved += size;
    if (workers_reply_fd(m->pid, m->id, 200, (const char *)&token, sizeof token, t.fd) < 0)
        drop_upload(M.nup - 1, 0);
    close(t.fd); /* the worker writes through its own copy */
    return WORKER_ANSWER_LATER;
}

/* {token, request id}: the upload with that token, or the publication of
 * it (the worker stopped waiting for the answer), or, with token 0, the
 * upload the UPLOAD request of that id made (its answer never arrived). */
static int do_discard(const struct worker_msg *m, struct ipc_rd *rd)
{
    uint64_t token = ipc_rd_u64(rd);
    uint32_t req_id = ipc_rd_u32(rd);
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    for (int i = 0; i < M.nup; i++)
        if (M.up[i].pid == m->pid && (token ? M.up[i].token == token : M.up[i].req_id == req_id)) {
            drop_upload(i, 0);
            return WORKER_NO_ANSWER;
        }
    for (struct publish *p = M.live; token && p; p = p->lnext)
        if (p->pid == m->pid && p->token == token) {
            cancel_publish(p);
            break;
        }
    return WORKER_NO_ANSWER;
}

/* ---- publishing */

static void run_queue(void);

static void finish(struct publish *p)
{
    M.reserved -= p->reserved;
    if (p->lprev)
        p->lprev->lnext = p->lnext;
    else
        M.live = p->lnext;
    if (p->lnext)
        p->lnext->lprev = p->lprev;
    M.npub--;
    /* Linked by now, or refused (then up to a gigabyte to free): either way
     * the temp files go off the loop. */
    close_later(p->src_fd, p->src_name);
    close_later(p->t.fd, p->t.name);
    free(p);
}

static void reply_error(struct publish *p, uint32_t status, const char *code, const char *msg,
                        const char *field)
{
    if (p->done) {
        if (!p->cancelled)
            p->done(p->done_arg, NULL, code, msg);
        finish(p);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    if (!p->cancelled && jw_error_body(&b, code, msg, field) == 0) /* else the worker's timeout answers */
        workers_reply(p->pid, p->msg_id, status, b.buf, b.len);
    sbuf_free(&b);
    finish(p);
}

/* The worker gave up waiting, or is gone. A queued publication goes now;
 * one on a thread is dropped when it comes back; one whose row is being
 * written is past the point of no return (its answer is then ignored). */
static void cancel_publish(struct publish *p)
{
    p->cancelled = 1;
    if (!p->queued)
        return;
    struct publish **pp = &M.qhead, *prev = NULL;
    while (*pp && *pp != p) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = p->next;
        if (M.qtail == p)
            M.qtail = prev;
    }
    p->queued = 0;
    finish(p);
}

static void on_inserted(void *ctx, const PGresult *res, const char *err)
{
    struct publish *p = ctx;
    if (!res || PQntuples(res) != 1) {
        /* The file stays linked without a row: the sweep takes it. */
        log_error("media: cannot record an upload", LF_S("error", err ? err : "no row"));
        reply_error(p, 503, "database_unavailable", "the database is unavailable; try again", NULL);
        return;
    }
    const char *json = PQgetvalue(res, 0, 0);
    if (!p->done)
        metrics_add(&S.shm->media_uploads_total, 1);
    log_info("media stored", LF_S("id", p->id), LF_S("sha256", p->hex), LF_I("size", (long long)p->size),
             LF_S("kind", media_kind_name(p->v.kind)), LF_S("mimetype", p->v.mimetype));
    if (p->done)
        p->done(p->done_arg, p->id, NULL, NULL);
    else
        workers_reply(p->pid, p->msg_id, 201, json, strlen(json));
    finish(p);
}

static const char SQL_INSERT[] =
    "INSERT INTO wa_media (id, sha256, size, mimetype, kind, file_name, width, height, seconds, state) "
    "VALUES ($1, $2, $3::bigint, $4, $5, $6, $7::integer, $8::integer, $9::integer, 'stored') "
    "RETURNING wapi_media_json(wa_media)::text";

static void sync_work(void *arg)
{
    struct publish *p = arg;
    p->err = media_store_sync(&M.st, p->hex) < 0 ? errno : 0;
}

static void sync_done(void *arg)
{
    struct publish *p = arg;
    if (p->cancelled) { /* linked without a row: the sweep takes it */
        finish(p);
        return;
    }
    if (p->err) {
        log_error("media: cannot make a published file durable", LF_S("sha256", p->hex),
                  LF_S("error", strerror(p->err)));
        reply_error(p, 503, "store_error", "the file could not be stored; try again", NULL);
        return;
    }
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        reply_error(p, 503, "store_error", "no randomness available", NULL);
        return;
    }
    memcpy(p->id, "m_", 2);
    hex_encode(p->id + 2, r, sizeof r, 0);
    snprintf(p->size_s, sizeof p->size_s, "%" PRIu64, p->size);
    p->params[0] = p->id;
    p->params[1] = p->hex;
    p->params[2] = p->size_s;
    p->params[3] = p->v.mimetype;
    p->params[4] = media_kind_name(p->v.kind);
    p->params[5] = p->file_name[0] ? p->file_name : NULL;
    p->params[6] = p->params[7] = p->params[8] = NULL;
    if (p->width > 0 && p->height > 0) {
        snprintf(p->width_s, sizeof p->width_s, "%" PRId64, p->width);
        snprintf(p->height_s, sizeof p->height_s, "%" PRId64, p->height);
        p->params[6] = p->width_s;
        p->params[7] = p->height_s;
    }
    if (p->seconds >= 0) {
        snprintf(p->seconds_s, sizeof p->seconds_s, "%" PRId64, p->seconds);
        p->params[8] = p->seconds_s;
    }
    p->recording = 1;
    if (!sdb_query(SQL_INSERT, 9, p->params, on_inserted, p))
        reply_error(p, 503, "store_error", "out of memory", NULL);
}

static int starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* On the thread, for a file whose type is accepted: an image's size, a
 * video's or an Opus stream's duration (for the row and the messages that
 * send it). A file they cannot read is stored all the same, without them. */
static void probe(struct publish *p)
{
    char err[160];
    p->width = p->height = p->seconds = -1;
    const char *t = p->v.mimetype;
    if (!strcmp(t, "image/jpeg") || !strcmp(t, "image/png") || !strcmp(t, "image/webp")) {
        struct media_image im;
        if (media_image_probe(p->t.fd, &im, err, sizeof err) == 0 && im.width && im.height) {
            p->width = im.width;
            p->height = im.height;
        }
        return;
    }
    uint64_t ms = 0;
    int r = -1;
    if (starts_with(t, "video/mp4") || starts_with(t, "video/quicktime") || starts_with(t, "video/3gpp"))
        r = media_probe_mp4_fd(p->t.fd, &ms, err, sizeof err);
    else if (starts_with(t, "audio/ogg") || starts_with(t, "audio/opus")) {
        uint8_t wave[MEDIA_WAVEFORM_LEN];
        r = media_probe_opus_fd(p->t.fd, &ms, wave, err, sizeof err);
    }
    /* Whole seconds, rounded; a sound shorter than half a second is 1, not 0. */
    if (r == 0 && ms <= (uint64_t)INT32_MAX * 1000)
        p->seconds = ms == 0 ? 0 : ms < 500 ? 1 : (int64_t)((ms + 500) / 1000);
}

/* On a thread: copied out of the worker's reach, durable, hashed, typed.
 * The worker's file is closed (and its name removed) here: freeing it may
 * take long. */
static void digest_work(void *arg)
{
    struct publish *p = arg;
    unsigned char *head = malloc(MEDIA_TYPE_HEAD);
    size_t hl = 0;
    if (!head) {
        p->err = ENOMEM;
        return;
    }
    p->err = 0;
    if (media_store_tmp(&M.st, &p->t) < 0 ||
        media_store_copy(p->src_fd, p->t.fd, p->reserved, &p->copied) < 0)
        p->err = errno ? errno : EIO;
    close(p->src_fd);
    p->src_fd = -1;
    if (p->src_name[0])
        unlinkat(M.st.tmpdfd, p->src_name, 0);
    p->src_name[0] = '\0';
    if (p->err || p->copied > p->reserved) {
        free(head);
        return;
    }
    p->err = media_store_digest(p->t.fd, &p->size, p->hex, head, MEDIA_TYPE_HEAD, &hl) < 0 ? errno : 0;
    if (!p->err) {
        media_type_detect(head, hl, p->detected);
        p->type_rc = media_type_check(p->declared, p->detected, p->kind, head, hl, &p->v);
        /* What a sender declared for a file it sent us: the bytes decide. */
        if (p->type_rc < 0 && p->done)
            p->type_rc = media_type_check("", p->detected, p->kind, head, hl, &p->v);
        if (p->type_rc == 0)
            probe(p);
    }
    free(head);
}

static void digest_done(void *arg)
{
    struct publish *p = arg;
    M.hashing--;
    run_queue();
    if (p->cancelled) {
        finish(p);
        return;
    }
    if (!p->err && p->copied > p->reserved) {
        reply_error(p, 413, "payload_too_large", "the file is larger than the upload that was reserved",
                    "file");
        return;
    }
    if (p->err) {
        log_error("media: cannot read an upload", LF_S("error", strerror(p->err)));
        reply_error(p, 503, "store_error", "the file could not be stored; try again", NULL);
        return;
    }
    if (p->size == 0) {
        reply_error(p, 400, "empty_file", "the file is empty", "file");
        return;
    }
    if (p->size != p->claimed) {
        reply_error(p, 400, "upload_incomplete", "the file is not the size that was sent", "file");
        return;
    }
    if (p->expect[0] && strcmp(p->expect, p->hex) != 0) {
        reply_error(p, 400, "sha256_mismatch", "the file's SHA-256 is not the one given", "sha256");
        return;
    }
    if (p->type_rc < 0) {
        metrics_add(&S.shm->media_refused_invalid_total, 1);
        reply_error(p, 400, p->v.code, p->v.message, "file");
        return;
    }
    /* WhatsApp shows stickers at 512x512 and its clients send no other size. */
    if (p->kind == MK_STICKER && (!p->done || p->strict) && (p->width != 512 || p->height != 512)) {
        metrics_add(&S.shm->media_refused_invalid_total, 1);
        reply_error(p, 400, "invalid_sticker", "a sticker must be a 512x512 WebP picture", "file");
        return;
    }
    /* On the loop, like the sweep's removals: the two never interleave. */
    int r = media_store_link(&M.st, &p->t, p->hex, p->size, &p->replaced);
    if (r < 0) {
        log_error("media: cannot link a file into the store", LF_S("sha256", p->hex),
                  LF_S("error", strerror(errno)));
        reply_error(p, 503, "store_error", "the file could not be stored; try again", NULL);
        return;
    }
    if (r == MEDIA_REPAIRED) {
        log_warn("media: a damaged file was replaced by a good copy", LF_S("sha256", p->hex));
        M.bytes = (p->replaced > M.bytes ? 0 : M.bytes - p->replaced) + p->size;
        gauges();
    }
    if (r == MEDIA_NEW) {
        M.bytes += p->size;
        M.files++;
        gauges();
    }
    if (wa_offload_run(sync_work, sync_done, p) < 0)
        reply_error(p, 503, "store_error", "the file could not be stored; try again", NULL);
}

static void run_queue(void)
{
    while (M.qhead && M.hashing < HASHING_AT_ONCE) {
        struct publish *p = M.qhead;
        M.qhead = p->next;
        if (!M.qhead)
            M.qtail = NULL;
        p->queued = 0;
        if (now_ms() > p->deadline_ms) {
            /* The worker has given up (or will before this is done): a row
             * stored now would be one its client never heard of. */
            log_warn("media: a publication waited too long for a thread; dropped", LF_I("pid", p->pid));
            reply_error(p, 503, "busy", "the media store is busy; try again", NULL);
            continue;
        }
        M.hashing++;
        if (wa_offload_run(digest_work, digest_done, p) < 0) {
            M.hashing--;
            reply_error(p, 503, "store_error", "the file could not be stored; try again", NULL);
        }
    }
}

/* A new publication: live (a worker gone or DISCARD finds it) and queued
 * for a hashing thread. */
static void enqueue(struct publish *p)
{
    p->lnext = M.live;
    if (M.live)
        M.live->lprev = p;
    M.live = p;
    M.npub++;
    p->queued = 1;
    if (M.qtail)
        M.qtail->next = p;
    else
        M.qhead = p;
    M.qtail = p;
    run_queue();
}

static int do_publish(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    uint64_t token = ipc_rd_u64(rd), size = ipc_rd_u64(rd);
    char declared[MEDIA_MIME_MAX], kind[16], name[FILE_NAME_MAX + 1], expect[MEDIA_HEX_LEN + 1];
    if (ipc_rd_text(rd, declared, sizeof declared) < 0 || ipc_rd_text(rd, kind, sizeof kind) < 0 ||
        ipc_rd_text(rd, name, sizeof name) < 0 || rd_hex(rd, expect, 1) < 0)
        return WORKER_MALFORMED;
    uint32_t start_within_ms = ipc_rd_u32(rd);
    if (ipc_rd_end(rd) < 0 || m->nfds != 1 || (kind[0] && media_kind_parse(kind) == MK_NONE))
        return WORKER_MALFORMED;
    int i = find_upload(token, m->pid);
    if (i < 0) {
        close_later(m->fds[0], NULL); /* maybe the last reference to a large file */
        m->fds[0] = -1;
        return answer(status, body, 410, "upload_expired", "the upload took too long; send it again", NULL);
    }
    struct stat sb;
    if (fstat(m->fds[0], &sb) < 0 || sb.st_dev != M.up[i].dev || sb.st_ino != M.up[i].ino)
        return WORKER_MALFORMED; /* not the file it was given */
    if (size > M.up[i].size) {
        /* More than was reserved at UPLOAD (the quota, max_upload_bytes). */
        drop_upload(i, 0);
        close_later(m->fds[0], NULL);
        m->fds[0] = -1;
        return answer(status, body, 413, "payload_too_large",
                      "the file is larger than the upload that was reserved", "file");
    }
    struct publish *p = calloc(1, sizeof *p);
    if (!p)
        return unavailable(status, body);
    p->pid = m->pid;
    p->width = p->height = p->seconds = -1;
    p->msg_id = m->id;
    p->token = token;
    p->deadline_ms = now_ms() + start_within_ms;
    p->src_fd = m->fds[0];
    m->fds[0] = -1;
    p->t.fd = -1;
    snprintf(p->src_name, sizeof p->src_name, "%s", M.up[i].name);
    p->claimed = size;
    p->reserved = M.up[i].size;
    M.reserved += p->reserved; /* moves from the upload to the publication */
    drop_upload(i, 1);
    p->kind = media_kind_parse(kind);
    snprintf(p->declared, sizeof p->declared, "%s", declared);
    snprintf(p->file_name, sizeof p->file_name, "%s", name);
    snprintf(p->expect, sizeof p->expect, "%s", expect);
    enqueue(p);
    return WORKER_ANSWER_LATER;
}

int media_publish_local(int fd, uint64_t size, const char *kind, const char *declared, const char *file_name,
                        const char *expect_hex, int strict, media_local_cb done, void *arg, const char **why)
{
    *why = NULL;
    enum media_kind k = media_kind_parse(kind);
    uint64_t max = (uint64_t)S.cfg.media.max_store_bytes;
    if (!M.open || !M.magic || k == MK_NONE || (max && !M.scanned))
        *why = "the media store is not open yet";
    else if (store_full(size))
        *why = "media_store_full";
    struct publish *p = *why ? NULL : calloc(1, sizeof *p);
    if (!p) {
        if (!*why)
            *why = "out of memory";
        close_later(fd, NULL);
        return -1;
    }
    p->width = p->height = p->seconds = -1;
    p->deadline_ms = now_ms() + 10 * 60 * 1000;
    p->src_fd = fd;
    p->t.fd = -1;
    p->claimed = size;
    p->reserved = size;
    M.reserved += size;
    p->kind = k;
    snprintf(p->declared, sizeof p->declared, "%s", declared ? declared : "");
    snprintf(p->file_name, sizeof p->file_name, "%s", file_name ? file_name : "");
    snprintf(p->expect, sizeof p->expect, "%s", expect_hex ? expect_hex : "");
    p->done = done;
    p->done_arg = arg;
    p->strict = strict;
    enqueue(p);
    return 0;
}

int media_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    switch (m->type) {
    case IPC_MEDIA_KEY:
        return do_key(m, rd, status, body);
    case IPC_MEDIA_OPEN:
        return do_open(m, rd, status, body);
    case IPC_MEDIA_UPLOAD:
        return do_upload(m, rd, status, body);
    case IPC_MEDIA_PUBLISH:
        return do_publish(m, rd, status, body);
    case IPC_MEDIA_DISCARD:
        return do_discard(m, rd);
    default:
        return WORKER_MALFORMED;
    }
}

void media_init(void)
{
    static const uint32_t types[] = {IPC_MEDIA_KEY, IPC_MEDIA_OPEN, IPC_MEDIA_UPLOAD, IPC_MEDIA_PUBLISH,
                                     IPC_MEDIA_DISCARD};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        workers_handle(types[i], media_ipc);
    workers_accept_fds(IPC_MEDIA_PUBLISH, 1);
    workers_on_gone(on_worker_gone);
    if (wa_offload_init(S.base) < 0)
        log_error("media: cannot start the off-loop helper");
    M.tick = event_new(S.base, -1, EV_PERSIST, on_tick, NULL);
    M.key_retry = evtimer_new(S.base, on_key_retry, NULL);
    struct timeval tv = {TICK_S, 0};
    if (M.tick)
        evtimer_add(M.tick, &tv);
    try_open();
}
