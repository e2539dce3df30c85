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
#include "wa/wa_mediaretry.h"
#include "wa/wa_message.h"
#include "wa/wa_messaging.h"

#define POLL_S 30
#define MAX_ATTEMPTS 10
#define FETCH_TIMEOUT_MS (10 * 60 * 1000)
/* Our phone is asked at most this often for one file, and given this long to
 * answer before the file is tried (and, still gone, asked for) again. */
#define MAX_PHONE_ASKS 2
#define PHONE_WAIT_S 120

/* The oldest attachment due. A sent message's row is 'stored' from the
 * start: only received ones wait here. */
static const char SQL_NEXT[] =
    "SELECT a.message_id, a.kind, a.mimetype, a.file_name, encode(a.media_key, 'hex'), "
    "encode(a.file_sha256, 'hex'), encode(a.file_enc_sha256, 'hex'), a.file_length, a.direct_path, "
    "a.attempts, "
    "a.phone_asks, m.chat_jid, m.from_me, m.sender_jid "
    "FROM wa_message_media a JOIN wa_messages m ON m.id = a.message_id "
    "WHERE a.state = 'pending' AND a.next_attempt_at <= now() ORDER BY a.next_attempt_at, a.created_at LIMIT "
    "1";
#define NEXT_COLS 14

/* The phone was asked: wait for its answer (media_download_answer). */
static const char SQL_ASKED[] =
    "UPDATE wa_message_media SET phone_asks = phone_asks + 1, error = $2, updated_at = now(), "
    "next_attempt_at = now() + make_interval(secs => $3::int) WHERE message_id = $1 AND state = 'pending'";

/* A received attachment's key, to open the phone's answer about it. */
static const char SQL_KEY[] =
    "SELECT encode(media_key, 'hex') FROM wa_message_media WHERE message_id = $1 AND uploaded_at IS NULL "
    "AND media_key IS NOT NULL AND state IN ('pending', 'expired')";

/* The phone uploaded it again: download from the new path now (an
 * attachment already given up as expired comes back). */
static const char SQL_NEW_PATH[] =
    "UPDATE wa_message_media SET direct_path = $2, state = 'pending', error = NULL, attempts = 0, "
    "next_attempt_at = now(), updated_at = now() WHERE message_id = $1 AND state IN ('pending', 'expired')";

static const char SQL_POLICY[] = "INSERT INTO wapi_media_policy (id, auto_kinds, max_download_bytes) "
                                 "VALUES (1, string_to_array(nullif($1, ''), ','), $2::bigint) "
                                 "ON CONFLICT (id) DO UPDATE SET auto_kinds = EXCLUDED.auto_kinds, "
                                 "max_download_bytes = EXCLUDED.max_download_bytes, updated_at = now()";

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
    int attempts, phone_asks, from_me;
    char chat[128], sender[128];
    struct media_fetch *fetch;
};

static struct {
    struct event *poll, *retry;
    struct wa_client *client;
    int busy;  /* a query or a download under way */
    int again; /* kicked meanwhile */
} D;

static void next(void);
static void ask_phone(struct dl *d, const char *host_error);

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

static void on_asked(void *ctx, const PGresult *res, const char *err)
{
    struct dl *d = ctx;
    if (!res)
        log_error("media download: cannot record the request to the phone", LF_S("id", d->id),
                  LF_S("error", err));
    D.again = res != NULL;
    done(d);
}

/* The hosts no longer have the file: our phone may upload it again (it
 * answers with a new path, media_download_answer). Asked MAX_PHONE_ASKS
 * times without an answer that helps, the file is expired. */
static void ask_phone(struct dl *d, const char *host_error)
{
    char why[400];
    if (d->phone_asks >= MAX_PHONE_ASKS) {
        snprintf(why, sizeof why, "%s; the phone did not upload it again",
                 host_error ? host_error : "no longer on the media hosts");
        outcome(d, NULL, "expired", why);
        return;
    }
    int group = strstr(d->chat, "@g.us") != NULL;
    if (wa_messaging_media_retry(d->id, d->chat, d->from_me, group && d->sender[0] ? d->sender : NULL,
                                 d->key) < 0) {
        if (wa_client_state(D.client) != WA_CONNECTED)
            done(d); /* asked once connected again */
        else
            outcome(d, NULL, "expired", host_error ? host_error : "no longer on the media hosts");
        return;
    }
    log_info("received media: asked the phone to upload it again", LF_S("id", d->id),
             LF_I("asks", d->phone_asks + 1));
    snprintf(why, sizeof why, "%s; asked the phone to upload it again",
             host_error ? host_error : "no longer on the media hosts");
    char wait[16];
    snprintf(wait, sizeof wait, "%d", PHONE_WAIT_S);
    const char *p[] = {d->id, why, wait};
    if (!sdb_query(SQL_ASKED, 3, p, on_asked, d))
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
        ask_phone(d, r->error);
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
    struct media_fetch_req rq = {
        .direct_path = d->direct_path,
        .kind = wa_media_type_keys(wa_media_type_parse(d->kind)),
        .has_file_enc_sha256 = 1,
        .has_file_sha256 = 1,
        .file_length = d->length,
        .max_bytes = (uint64_t)S.cfg.media.max_download_bytes + 64,
        .tmp_dirfd = st->tmpdfd,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .done = on_fetched,
        .arg = d,
    };
    snprintf(rq.proxy, sizeof rq.proxy, "%s", S.cfg.whatsapp.proxy);
    memcpy(rq.media_key, d->key, 32);
    memcpy(rq.file_sha256, d->sha, 32);
    memcpy(rq.file_enc_sha256, d->enc, 32);
    d->fetch = media_fetch_start_on(mc, &rq);
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
    const char *c[NEXT_COLS];
    for (int i = 0; i < NEXT_COLS; i++)
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
    d->phone_asks = c[10] ? atoi(c[10]) : 0;
    snprintf(d->chat, sizeof d->chat, "%s", c[11] ? c[11] : "");
    d->from_me = c[12] && c[12][0] == 't';
    snprintf(d->sender, sizeof d->sender, "%s", c[13] ? c[13] : "");
    if (!ok) {
        outcome(d, NULL, "failed", "the message does not say where the file is or how to decrypt it");
        return;
    }
    if (d->length > (uint64_t)S.cfg.media.max_download_bytes) {
        outcome(d, NULL, "failed", "larger than media.max_download_bytes");
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

int media_download_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                            struct sbuf *body)
{
    (void)m, (void)status, (void)body;
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    next();
    return WORKER_NO_ANSWER;
}

/* ---- the phone's answer to a media retry request */

struct answer {
    struct wa_mediaretry_note note;
    char why[200];
};

static void on_answer_done(void *ctx, const PGresult *res, const char *err)
{
    struct answer *an = ctx;
    if (!res)
        log_error("media download: cannot record the phone's answer", LF_S("id", an->note.id),
                  LF_S("error", err));
    for (int i = 0; res && i < PQntuples(res) && PQnfields(res) == 3; i++)
        events_publish(strtoull(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                       PQgetvalue(res, i, 2));
    if (res)
        next(); /* a new path is downloaded now; after an outcome, what else waits */
    free(an);
}

static void on_answer_key(void *ctx, const PGresult *res, const char *err)
{
    struct answer *an = ctx;
    uint8_t key[32];
    if (!res || PQntuples(res) != 1 || hex_decode(PQgetvalue(res, 0, 0), key, 32) != 0) {
        if (!res)
            log_error("media download: cannot read the media key", LF_S("error", err));
        else
            log_warn("media retry: an answer about no attachment waiting for one", LF_S("id", an->note.id));
        free(an);
        return;
    }
    struct wa_mediaretry_answer ans;
    char e[160];
    int rc = wa_mediaretry_decrypt(&an->note, key, &ans, e, sizeof e);
    OPENSSL_cleanse(key, sizeof key);
    if (rc < 0) {
        log_warn("media retry: the phone's answer is unusable", LF_S("id", an->note.id), LF_S("error", e));
        free(an);
        return;
    }
    if (ans.result == WA_MR_SUCCESS) {
        log_info("received media: the phone uploaded it again", LF_S("id", an->note.id));
        const char *p[] = {an->note.id, ans.direct_path};
        if (!sdb_query(SQL_NEW_PATH, 2, p, on_answer_done, an))
            free(an);
        return;
    }
    if (ans.result == WA_MR_PHONE_ERROR && ans.phone_error == 2)
        snprintf(an->why, sizeof an->why, "no longer on the media hosts, and the phone no longer has it");
    else if (ans.result == WA_MR_NOT_FOUND)
        snprintf(an->why, sizeof an->why, "no longer on the media hosts, and the phone did not find it");
    else if (ans.result == WA_MR_PHONE_ERROR)
        snprintf(an->why, sizeof an->why, "no longer on the media hosts; the phone answered error %d",
                 ans.phone_error);
    else
        snprintf(an->why, sizeof an->why, "no longer on the media hosts; the phone could not upload it (%s)",
                 ans.result == WA_MR_DECRYPTION_ERROR ? "decryption error" : "general error");
    char ev[24];
    snprintf(ev, sizeof ev, "%llu", (unsigned long long)events_next_id());
    const char *p[] = {an->note.id, NULL, "expired", an->why, ev};
    log_warn("received media not downloaded", LF_S("id", an->note.id), LF_S("state", "expired"),
             LF_S("why", an->why));
    if (!sdb_query(SQL_OUTCOME, 5, p, on_answer_done, an))
        free(an);
}

void media_download_answer(void *arg, const struct wa_mediaretry_note *note)
{
    (void)arg;
    struct answer *an = malloc(sizeof *an);
    if (!an)
        return;
    an->note = *note;
    an->why[0] = 0;
    const char *p[] = {an->note.id};
    if (!sdb_query(SQL_KEY, 1, p, on_answer_key, an))
        free(an);
}

/* ---- the policy */

static void on_policy(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_error("media: cannot write the download policy", LF_S("error", err));
}

void media_download_on_migrated(void)
{
    char max[24];
    snprintf(max, sizeof max, "%lld", S.cfg.media.max_download_bytes);
    const char *p[] = {S.cfg.media.auto_download, max};
    if (!sdb_query(SQL_POLICY, 2, p, on_policy, NULL))
        log_error("media: cannot write the download policy", LF_S("error", "out of memory"));
}
