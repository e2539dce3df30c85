/* Outgoing attachments made ready (see media_send.h). */
#include "media_send.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "media.h"
#include "media_image.h"
#include "media_probe.h"
#include "media_upload.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_mediaconn.h"
#include "wa/wa_offload.h"

#define REUSE_S (24 * 3600)                /* a fresh upload of the same file is reused this long */
#define UPLOAD_TIMEOUT_MS (10 * 60 * 1000) /* per host: 64 MiB on a slow uplink */

/* The attachment and, when it was never uploaded, a fresh upload of the
 * same file for the same kind to take over. */
static const char SQL_ATT[] =
    "SELECT a.kind, a.media_id, f.sha256, coalesce(a.mimetype, f.mimetype), a.file_name, m.text, "
    "coalesce(a.width, f.width), coalesce(a.height, f.height), coalesce(a.seconds, f.seconds), "
    "encode(a.media_key, 'hex'), encode(a.file_sha256, 'hex'), encode(a.file_enc_sha256, 'hex'), "
    "a.file_length, "
    "a.direct_path, a.url, a.media_key_ts, encode(a.thumbnail, 'hex'), encode(a.waveform, 'hex'), "
    "r.message_id, a.pages "
    "FROM wa_message_media a JOIN wa_messages m ON m.id = a.message_id LEFT JOIN wa_media f ON f.id = "
    "a.media_id "
    "LEFT JOIN LATERAL (SELECT b.message_id FROM wa_message_media b WHERE a.direct_path IS NULL "
    "  AND b.media_id = a.media_id AND b.kind = a.kind AND b.uploaded_at > now() - make_interval(secs => "
    "$2::int) "
    "  ORDER BY b.uploaded_at DESC LIMIT 1) r ON true "
    "WHERE a.message_id = $1 AND m.from_me";
enum {
    C_KIND,
    C_MEDIA_ID,
    C_SHA,
    C_MIME,
    C_NAME,
    C_CAPTION,
    C_W,
    C_H,
    C_SECS,
    C_KEY,
    C_FSHA,
    C_ESHA,
    C_LEN,
    C_PATH,
    C_URL,
    C_KEYTS,
    C_THUMB,
    C_WAVE,
    C_REUSE,
    C_PAGES
};

/* Forwarding: the same key, sums and link as the upload taken over. */
static const char SQL_REUSE[] =
    "UPDATE wa_message_media a SET media_key = b.media_key, file_sha256 = b.file_sha256, "
    "file_enc_sha256 = b.file_enc_sha256, file_length = b.file_length, direct_path = b.direct_path, url = "
    "b.url, "
    "media_key_ts = b.media_key_ts, thumbnail = coalesce(a.thumbnail, b.thumbnail), waveform = b.waveform, "
    "width = coalesce(a.width, b.width), height = coalesce(a.height, b.height), "
    "seconds = coalesce(a.seconds, b.seconds), pages = b.pages, uploaded_at = b.uploaded_at, updated_at = "
    "now() "
    "FROM wa_message_media b WHERE a.message_id = $1 AND b.message_id = $2 AND a.direct_path IS NULL "
    "AND b.direct_path IS NOT NULL";

/* Committed (synchronously) before the stanza: a resend after a crash
 * sends these very bytes. */
static const char SQL_UPLOADED[] =
    "UPDATE wa_message_media SET media_key = decode($2, 'hex'), file_sha256 = decode($3, 'hex'), "
    "file_enc_sha256 = decode($4, 'hex'), file_length = $5::bigint, direct_path = $6, url = $7, "
    "media_key_ts = $8::bigint, thumbnail = coalesce(decode($9, 'hex'), thumbnail), "
    "waveform = decode($10, 'hex'), "
    "seconds = coalesce(seconds, $11::int), width = coalesce(width, $12::int), height = coalesce(height, "
    "$13::int), pages = $14::int, "
    "uploaded_at = now(), updated_at = now() WHERE message_id = $1 AND direct_path IS NULL";

struct prep {
    char id[64];
    media_send_cb cb;
    void *arg;
    int load_only;          /* media_send_load: the stored attachment or nothing */
    int tries;              /* reads of the row (a reuse or an upload reads it again) */
    int auth_retried;       /* a refused token: one new media_conn */
    char sha[65], kind[16]; /* the file, the kind */
    int fd;
    uint64_t size;
    /* made on the thread */
    uint8_t *thumb;
    size_t thumb_len;
    uint8_t wave[MEDIA_WAVEFORM_LEN];
    int has_wave;
    uint64_t ms;
    uint32_t w, h;
    int pdf;
    uint32_t pages; /* a PDF's, when cheap to read */
    struct media_upload *up;
};

static struct {
    struct prep *cur;
    struct wa_client *client; /* the session's, for media_conn */
} MS;

void media_send_init(struct wa_client *c)
{
    MS.client = c;
}

static void finish(struct prep *p, const struct wa_msg_media *m, int permanent, const char *err)
{
    if (MS.cur == p)
        MS.cur = NULL;
    if (p->up)
        media_upload_cancel(p->up);
    if (p->fd >= 0)
        close(p->fd);
    free(p->thumb);
    if (!m)
        log_warn("media message not made ready", LF_S("id", p->id), LF_S("why", err),
                 LF_I("permanent", permanent));
    p->cb(p->arg, p->id, m, permanent, err);
    free(p);
}

static void read_row(struct prep *p);

static const char *col(const PGresult *r, int c)
{
    return PQgetisnull(r, 0, c) ? NULL : PQgetvalue(r, 0, c);
}

/* The row as the message carries it. */
static void send_from_row(struct prep *p, const PGresult *r)
{
    struct wa_msg_media m;
    memset(&m, 0, sizeof m);
    const char *key = col(r, C_KEY), *fsha = col(r, C_FSHA), *esha = col(r, C_ESHA), *thumb = col(r, C_THUMB),
               *wave = col(r, C_WAVE);
    m.type = wa_media_type_parse(PQgetvalue(r, 0, C_KIND));
    m.url = (char *)col(r, C_URL);
    m.direct_path = (char *)col(r, C_PATH);
    m.mimetype = (char *)col(r, C_MIME);
    m.caption = (char *)col(r, C_CAPTION);
    m.file_name = (char *)col(r, C_NAME);
    m.has_media_key = key && hex_decode(key, m.media_key, 32) == 0;
    m.has_file_sha256 = fsha && hex_decode(fsha, m.file_sha256, 32) == 0;
    m.has_file_enc_sha256 = esha && hex_decode(esha, m.file_enc_sha256, 32) == 0;
    m.file_length = col(r, C_LEN) ? strtoull(col(r, C_LEN), NULL, 10) : 0;
    m.width = col(r, C_W) ? (uint32_t)atoi(col(r, C_W)) : 0;
    m.height = col(r, C_H) ? (uint32_t)atoi(col(r, C_H)) : 0;
    m.seconds = col(r, C_SECS) ? (uint32_t)atoi(col(r, C_SECS)) : 0;
    m.media_key_ts = col(r, C_KEYTS) ? strtoll(col(r, C_KEYTS), NULL, 10) : 0;
    m.page_count = col(r, C_PAGES) ? (uint32_t)atoi(col(r, C_PAGES)) : 0;
    size_t tl = thumb ? strlen(thumb) / 2 : 0, wl = wave ? strlen(wave) / 2 : 0;
    uint8_t *tb = tl ? malloc(tl) : NULL;
    if (tb && hex_decode(thumb, tb, tl) == 0) {
        m.thumbnail = tb;
        m.thumbnail_len = tl;
    }
    if (wl && wl <= WA_MSG_WAVEFORM_MAX && hex_decode(wave, m.waveform, wl) == 0)
        m.waveform_len = wl;
    if (m.type < 0 || !m.has_media_key || !m.has_file_sha256 || !m.has_file_enc_sha256 || !m.direct_path)
        finish(p, NULL, 1, "the stored attachment is incomplete");
    else
        finish(p, &m, 0, NULL);
    free(tb);
    OPENSSL_cleanse(m.media_key, sizeof m.media_key);
}

static void on_written(void *ctx, const PGresult *res, const char *err)
{
    struct prep *p = ctx;
    if (!res) {
        finish(p, NULL, 0, err);
        return;
    }
    read_row(p); /* what is sent is what was committed */
}

static void on_uploaded(void *arg, const struct media_upload_result *r)
{
    struct prep *p = arg;
    p->up = NULL;
    if (r->outcome == MEDIA_UPLOAD_AUTH && !p->auth_retried++) {
        wa_mediaconn_invalidate();
        read_row(p); /* again from the row: asks for a new media_conn */
        return;
    }
    if (r->outcome != MEDIA_UPLOAD_OK) {
        finish(p, NULL, 0, r->error ? r->error : "upload failed");
        return;
    }
    char key[65], fsha[65], esha[65], len[24], ts[24], secs[24], w[16], h[16], pages[16];
    hex_encode(key, r->media_key, 32, 0);
    hex_encode(fsha, r->sums.file_sha256, 32, 0);
    hex_encode(esha, r->sums.file_enc_sha256, 32, 0);
    snprintf(len, sizeof len, "%llu", (unsigned long long)r->sums.file_length);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    snprintf(secs, sizeof secs, "%llu", (unsigned long long)((p->ms + 999) / 1000));
    snprintf(w, sizeof w, "%u", p->w);
    snprintf(h, sizeof h, "%u", p->h);
    snprintf(pages, sizeof pages, "%u", p->pages);
    char *thumb = p->thumb_len ? malloc(p->thumb_len * 2 + 1) : NULL;
    char wave[MEDIA_WAVEFORM_LEN * 2 + 1];
    if (thumb)
        hex_encode(thumb, p->thumb, p->thumb_len, 0);
    if (p->has_wave)
        hex_encode(wave, p->wave, MEDIA_WAVEFORM_LEN, 0);
    const char *v[] = {p->id,
                       key,
                       fsha,
                       esha,
                       len,
                       r->direct_path,
                       r->url,
                       ts,
                       thumb,
                       p->has_wave ? wave : NULL,
                       p->ms ? secs : NULL,
                       p->w ? w : NULL,
                       p->h ? h : NULL,
                       p->pages ? pages : NULL};
    if (strcmp(fsha, p->sha) != 0) { /* the store names files by their hash: never */
        finish(p, NULL, 0, "the stored file does not match its name");
        OPENSSL_cleanse(key, sizeof key);
        free(thumb);
        return;
    }
    if (!sdb_query(SQL_UPLOADED, 14, v, on_written, p))
        finish(p, NULL, 0, "out of memory");
    OPENSSL_cleanse(key, sizeof key);
    free(thumb);
}

static void on_mediaconn(void *arg, const struct wa_mediaconn *mc, const char *err)
{
    struct prep *p = arg;
    if (!mc) {
        finish(p, NULL, 0, err ? err : "no media_conn");
        return;
    }
    struct media_store *st = media_store_ready();
    if (!st) {
        finish(p, NULL, 0, "the media store is not open");
        return;
    }
    const char *hosts[WA_MEDIACONN_MAX_HOSTS];
    for (int i = 0; i < mc->nhosts; i++)
        hosts[i] = mc->hosts[i];
    struct media_upload_req rq = {
        .fd = p->fd,
        .kind = wa_media_type_keys(wa_media_type_parse(p->kind)),
        .hosts = hosts,
        .nhosts = mc->nhosts,
        .auth = mc->auth,
        .tmp_dirfd = st->tmpdfd,
        .timeout_ms = UPLOAD_TIMEOUT_MS,
        .done = on_uploaded,
        .arg = p,
    };
    snprintf(rq.proxy, sizeof rq.proxy, "%s", S.cfg.whatsapp.proxy);
    p->up = media_upload_start(&rq);
    if (!p->up)
        finish(p, NULL, 0, "cannot start the upload");
}

static void ask_mediaconn(struct prep *p)
{
    if (!MS.client || wa_mediaconn_get(MS.client, (int64_t)now_ms(), on_mediaconn, p) < 0)
        finish(p, NULL, 0, "not connected");
}

/* On a thread: what the message shows before it is downloaded. */
static void meta_work(void *arg)
{
    struct prep *p = arg;
    char err[128];
    if (!strcmp(p->kind, "image")) {
        struct media_image info;
        if (media_image_thumbnail(p->fd, &p->thumb, &p->thumb_len, &info, err, sizeof err) == 0) {
            p->w = info.width;
            p->h = info.height;
        }
    } else if (!strcmp(p->kind, "voice")) {
        p->has_wave = media_probe_opus_fd(p->fd, &p->ms, p->wave, err, sizeof err) == 0;
    } else if (!strcmp(p->kind, "document") && p->pdf) {
        p->pages = media_probe_pdf_pages_fd(p->fd, p->size);
    }
}

static void meta_done(void *arg)
{
    ask_mediaconn(arg);
}

static void upload(struct prep *p, const PGresult *r)
{
    const char *sha = col(r, C_SHA);
    struct media_store *st = media_store_ready();
    if (!sha || !col(r, C_MEDIA_ID)) {
        finish(p, NULL, 1, "the message's file is no longer in the media store");
        return;
    }
    if (!st) {
        finish(p, NULL, 0, "the media store is not open");
        return;
    }
    if (p->fd < 0) {
        snprintf(p->sha, sizeof p->sha, "%s", sha);
        snprintf(p->kind, sizeof p->kind, "%s", PQgetvalue(r, 0, C_KIND));
        p->pdf = col(r, C_MIME) && !strcmp(col(r, C_MIME), "application/pdf");
        p->fd = media_store_open_file(st, sha, &p->size);
        if (p->fd < 0) {
            int gone = errno == ENOENT;
            finish(p, NULL, gone,
                   gone ? "the message's file is no longer in the media store"
                        : "cannot open the message's file");
            return;
        }
        if (wa_offload_run(meta_work, meta_done, p) < 0)
            finish(p, NULL, 0, "out of memory");
        return;
    }
    ask_mediaconn(p); /* after a refused token: the thumbnail is made */
}

static void on_reused(void *ctx, const PGresult *res, const char *err)
{
    struct prep *p = ctx;
    if (!res) {
        finish(p, NULL, 0, err);
        return;
    }
    read_row(p);
}

static void on_row(void *ctx, const PGresult *res, const char *err)
{
    struct prep *p = ctx;
    if (!res) {
        finish(p, NULL, 0, err);
        return;
    }
    if (PQntuples(res) != 1) {
        finish(p, NULL, 1, "the message has no attachment");
        return;
    }
    if (col(res, C_PATH)) {
        send_from_row(p, res);
        return;
    }
    if (p->load_only) {
        finish(p, NULL, 1, "the attachment was never uploaded");
        return;
    }
    if (++p->tries > 4) {
        finish(p, NULL, 0, "the attachment did not stay written");
        return;
    }
    if (col(res, C_REUSE)) {
        const char *v[] = {p->id, col(res, C_REUSE)};
        log_info("media: an upload of the same file is reused", LF_S("id", p->id), LF_S("from", v[1]));
        if (!sdb_query(SQL_REUSE, 2, v, on_reused, p))
            finish(p, NULL, 0, "out of memory");
        return;
    }
    upload(p, res);
}

static void read_row(struct prep *p)
{
    char reuse[24];
    snprintf(reuse, sizeof reuse, "%d", REUSE_S);
    const char *v[] = {p->id, reuse};
    if (!sdb_query(SQL_ATT, 2, v, on_row, p))
        finish(p, NULL, 0, "out of memory");
}

static struct prep *prep_new(const char *id, media_send_cb cb, void *arg)
{
    struct prep *p = strlen(id) < sizeof p->id ? calloc(1, sizeof *p) : NULL;
    if (!p)
        return NULL;
    snprintf(p->id, sizeof p->id, "%s", id);
    p->cb = cb;
    p->arg = arg;
    p->fd = -1;
    return p;
}

int media_send_prepare(const char *id, media_send_cb cb, void *arg)
{
    struct prep *p = MS.cur ? NULL : prep_new(id, cb, arg);
    if (!p)
        return -1;
    MS.cur = p;
    read_row(p);
    return 0;
}

int media_send_load(const char *id, media_send_cb cb, void *arg)
{
    struct prep *p = prep_new(id, cb, arg);
    if (!p)
        return -1;
    p->load_only = 1;
    read_row(p);
    return 0;
}
