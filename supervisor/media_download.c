/* Received media fetched into the store (see media_download.h). */
#include "media_download.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/log.h"
#include "events.h"
#include "media.h"
#include "media_fetch.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_client.h"
#include "wa/wa_mediaconn.h"
#include "wa/wa_message.h"

#define POLL_S 30
#define MAX_ATTEMPTS 10
#define FETCH_TIMEOUT_MS (10 * 60 * 1000)

/* The oldest attachment due. A sent message's row is 'stored' from the
 * start: only received ones wait here. */
static const char SQL_NEXT[] =
    "SELECT message_id, kind, mimetype, file_name, encode(media_key, 'hex'), encode(file_sha256, 'hex'), "
    "encode(file_enc_sha256, 'hex'), file_length, direct_path, attempts FROM wa_message_media "
    "WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at, created_at LIMIT 1";

static const char SQL_OUTCOME[] =
    "SELECT event_id, event_type, data FROM wapi_media_outcome($1, $2, $3, $4, $5)";

static const char SQL_LATER[] =
    "UPDATE wa_message_media SET attempts = attempts + 1, error = $2, updated_at = now(), "
    "next_attempt_at = now() + make_interval(secs => least(3600, power(2, attempts + 1)::int)) "
    "WHERE message_id = $1 AND state = 'pending'";

struct dl {
    char id[64], kind[16], mimetype[256], file_name[256];
    uint8_t key[32], sha[32], enc[32];
    char sha_hex[65];
    uint64_t length;
    char direct_path[1024];
    int attempts;
    struct media_fetch *fetch;
};

static struct {
    struct event *poll, *retry;
    struct wa_client *client;
    int busy;  /* a query or a download under way */
    int again; /* kicked meanwhile */
} D;

static void next(void);

static void done(struct dl *d)
{
    if (d) {
        OPENSSL_cleanse(d->key, sizeof d->key);
        free(d);
    }
    D.busy = 0;
    if (D.again) {
        D.again = 0;
        next();
    }
}

static void on_outcome(void *ctx, const PGresult *res, const char *err)
{
    struct dl *d = ctx;
    if (!res)
        log_error("media download: cannot record its outcome", LF_S("id", d->id), LF_S("error", err));
    for (int i = 0; res && i < PQntuples(res); i++)
        events_publish(strtoull(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                       PQgetvalue(res, i, 2));
    D.again = res != NULL; /* more may be waiting */
    done(d);
}

/* stored (media set), or failed / expired with why. */
static void outcome(struct dl *d, const char *media, const char *state, const char *why)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%llu", (unsigned long long)events_next_id());
    const char *p[] = {d->id, media, state, why, ev};
    if (media)
        log_info("received media stored", LF_S("id", d->id), LF_S("media", media));
    else
        log_warn("received media not downloaded", LF_S("id", d->id), LF_S("state", state), LF_S("why", why));
    if (!sdb_query(SQL_OUTCOME, 5, p, on_outcome, d))
        done(d);
}

static void on_later(void *ctx, const PGresult *res, const char *err)
{
    struct dl *d = ctx;
    if (!res)
        log_error("media download: cannot reschedule", LF_S("id", d->id), LF_S("error", err));
    D.again = res != NULL;
    done(d);
}

/* A failure worth trying again, until MAX_ATTEMPTS. */
static void later(struct dl *d, const char *why)
{
    if (d->attempts + 1 >= MAX_ATTEMPTS) {
        outcome(d, NULL, "failed", why);
        return;
    }
    log_warn("received media: download will be retried", LF_S("id", d->id), LF_S("why", why));
    /* As SQL_LATER schedules it: 2^(attempts+1) s, at most an hour. */
    long s = d->attempts + 1 >= 12 ? 3600 : 1L << (d->attempts + 1);
    struct timeval tv = {s > 3600 ? 3600 : s, 100000};
    if (D.retry && (!evtimer_pending(D.retry, NULL)))
        evtimer_add(D.retry, &tv);
    const char *p[] = {d->id, why};
    if (!sdb_query(SQL_LATER, 2, p, on_later, d))
        done(d);
}

static void on_published(void *arg, const char *media_id, const char *code, const char *msg)
{
    struct dl *d = arg;
    if (media_id) {
        outcome(d, media_id, "stored", NULL);
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "%s: %s", code ? code : "store_error", msg ? msg : "");
    if (code && (!strcmp(code, "unsupported_type") || !strcmp(code, "type_mismatch") ||
                 !strcmp(code, "sha256_mismatch") || !strcmp(code, "empty_file")))
        outcome(d, NULL, "failed", why);
    else
        later(d, why);
}

static void on_fetched(void *arg, const struct media_fetch_result *r)
{
    struct dl *d = arg;
    d->fetch = NULL;
    switch (r->outcome) {
    case MEDIA_FETCH_OK: {
        const char *why;
        if (media_publish_local(r->fd, r->sums.file_length, d->kind, d->mimetype, d->file_name, d->sha_hex, 0,
                                on_published, d, &why) < 0) {
            if (!strcmp(why, "media_store_full"))
                outcome(d, NULL, "failed", "the media store is full (media.max_store_bytes)");
            else
                later(d, why);
        }
        return;
    }
    case MEDIA_FETCH_EXPIRED:
        /* The phone could upload it again (a media retry request); until
         * that is asked, it is gone. */
        outcome(d, NULL, "expired", r->error ? r->error : "no longer on the media hosts");
        return;
    case MEDIA_FETCH_CORRUPT:
    case MEDIA_FETCH_TOO_BIG:
        outcome(d, NULL, "failed", r->error ? r->error : "the file is not the one the message describes");
        return;
    default:
        later(d, r->error ? r->error : "download failed");
    }
}

static void on_mediaconn(void *arg, const struct wa_mediaconn *mc, const char *err)
{
    struct dl *d = arg;
    struct media_store *st = media_store_ready();
    if (!mc && wa_client_state(D.client) != WA_CONNECTED) {
        done(d); /* the connection went: no attempt spent, the next poll tries again */
        return;
    }
    if (!mc || !st) {
        later(d, !mc ? (err ? err : "no media_conn") : "the media store is not open");
        return;
    }
    const char *hosts[WA_MEDIACONN_MAX_HOSTS];
    for (int i = 0; i < mc->nhosts; i++)
        hosts[i] = mc->hosts[i];
    struct media_fetch_req rq = {
        .hosts = hosts,
        .nhosts = mc->nhosts,
        .direct_path = d->direct_path,
        .kind = wa_media_type_keys(wa_media_type_parse(d->kind)),
        .has_file_enc_sha256 = 1,
        .has_file_sha256 = 1,
        .file_length = d->length,
        .max_bytes = (uint64_t)S.cfg.media.max_upload_bytes + 64,
        .tmp_dirfd = st->tmpdfd,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .done = on_fetched,
        .arg = d,
    };
    memcpy(rq.media_key, d->key, 32);
    memcpy(rq.file_sha256, d->sha, 32);
    memcpy(rq.file_enc_sha256, d->enc, 32);
    d->fetch = media_fetch_start(&rq);
    OPENSSL_cleanse(rq.media_key, sizeof rq.media_key);
    if (!d->fetch)
        later(d, "cannot start the download");
}

static void on_next(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res || PQntuples(res) != 1) {
        if (!res)
            log_warn("media download: cannot read the queue", LF_S("error", err));
        done(NULL);
        return;
    }
    struct dl *d = calloc(1, sizeof *d);
    if (!d) {
        done(NULL);
        return;
    }
    const char *c[10];
    for (int i = 0; i < 10; i++)
        c[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    snprintf(d->id, sizeof d->id, "%s", c[0]);
    snprintf(d->kind, sizeof d->kind, "%s", c[1]);
    snprintf(d->mimetype, sizeof d->mimetype, "%s", c[2] ? c[2] : "");
    snprintf(d->file_name, sizeof d->file_name, "%s", c[3] ? c[3] : "");
    const char *path = c[8];
    int ok = c[4] && hex_decode(c[4], d->key, 32) == 0 && c[5] && hex_decode(c[5], d->sha, 32) == 0 && c[6] &&
             hex_decode(c[6], d->enc, 32) == 0 && path && path[0] == '/' &&
             strlen(path) < sizeof d->direct_path;
    if (ok) {
        snprintf(d->sha_hex, sizeof d->sha_hex, "%s", c[5]);
        snprintf(d->direct_path, sizeof d->direct_path, "%s", path);
    }
    d->length = c[7] ? strtoull(c[7], NULL, 10) : 0;
    d->attempts = c[9] ? atoi(c[9]) : 0;
    if (!ok) {
        outcome(d, NULL, "failed", "the message does not say where the file is or how to decrypt it");
        return;
    }
    if (d->length > (uint64_t)S.cfg.media.max_upload_bytes) {
        outcome(d, NULL, "failed", "larger than media.max_upload_bytes");
        return;
    }
    /* Not connected: nothing is spent; the poll (or the next kick) tries again. */
    if (!D.client || wa_mediaconn_get(D.client, (int64_t)now_ms(), on_mediaconn, d) < 0)
        done(d);
}

static void next(void)
{
    if (D.busy) {
        D.again = 1;
        return;
    }
    D.busy = 1;
    if (!sdb_query(SQL_NEXT, 0, NULL, on_next, NULL))
        D.busy = 0;
}

void media_download_kick(void)
{
    next();
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    next();
}

void media_download_init(struct event_base *base, struct wa_client *c)
{
    D.client = c;
    D.poll = event_new(base, -1, EV_PERSIST, on_poll, NULL);
    D.retry = evtimer_new(base, on_poll, NULL);
    struct timeval tv = {POLL_S, 0};
    if (D.poll)
        event_add(D.poll, &tv);
}
