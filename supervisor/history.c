/* The history runner: see history.h. */
#include "history.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/db_params.h"
#include "common/hex.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/pgc.h"
#include "common/sbuf.h"
#include "chat_merges.h"
#include "events.h"
#include "inbox.h"
#include "media_fetch.h"
#include "media.h"
#include "media_store.h"
#include "pgc_libevent.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_client.h"
#include "wa/wa_history.h"
#include "wa/wa_mediaconn.h"
#include "wa/wa_message.h"
#include "wa/wa_messaging.h"

#define POLL_S 30
#define PIECE (16 * 1024)      /* compressed bytes fed at a time: at most a few MB inflate from it */
#define PIECES_PER_TURN 64     /* then the loop gets a turn */
#define BATCH_MSGS 500         /* messages per statement of the chunk's transaction */
#define BATCH_BYTES (1u << 20) /* or this much JSON */
#define FETCH_TIMEOUT_MS (10 * 60 * 1000)
#define MAX_BLOB_BYTES (256ull << 20) /* the encrypted blob; more is refused */

/* The oldest job due; when none is, the one due first (its wait in seconds,
 * column 11, sets the retry timer). */
static const char SQL_NEXT[] =
    "SELECT message_id, sync_type, chunk_order, progress, encode(media_key, 'hex'), direct_path, "
    "encode(file_sha256, 'hex'), encode(file_enc_sha256, 'hex'), file_length, encode(inline_payload, 'hex'), "
    "attempts, ceil(greatest(0, extract(epoch FROM next_attempt_at - now())))::int "
    "FROM wa_history_jobs WHERE state = 'pending' "
    "ORDER BY next_attempt_at > now(), CASE WHEN next_attempt_at <= now() THEN received_at END, "
    "next_attempt_at, chunk_order LIMIT 1";
#define NEXT_COLS 12

/* A try that failed: again after $4 s, or ($3) given up for good. */
static const char SQL_FAILED[] =
    "UPDATE wa_history_jobs SET attempts = attempts + 1, error = $2, updated_at = now(), "
    "state = CASE WHEN $3::boolean THEN 'failed' ELSE state END, "
    "media_key = CASE WHEN $3::boolean THEN NULL ELSE media_key END, "
    "inline_payload = CASE WHEN $3::boolean THEN NULL ELSE inline_payload END, "
    "next_attempt_at = now() + make_interval(secs => $4::int) WHERE message_id = $1 AND state = 'pending'";

/* whatsapp.history turned off since the job was stored: only its receipt is due. */
static const char SQL_SKIP[] = "UPDATE wa_history_jobs SET state = 'skipped', media_key = NULL, "
                               "inline_payload = NULL, updated_at = now() "
                               "WHERE message_id = $1 AND state = 'pending'";

static const char SQL_UNRECEIPTED[] = "SELECT message_id FROM wa_history_jobs WHERE state <> 'pending' AND "
                                      "receipted_at IS NULL ORDER BY received_at LIMIT 32";
static const char SQL_RECEIPTED[] =
    "UPDATE wa_history_jobs SET receipted_at = now() WHERE message_id = $1 AND receipted_at IS NULL";

/* On the runner's own connection, inside the chunk's transaction. */
static const char SQL_BATCH[] = "SELECT wapi_history_store($1::jsonb)";
static const char SQL_DONE[] = "SELECT event_id, event_type, data FROM wapi_history_done($1, $2, $3::jsonb, "
                               "$4::boolean, $5::bigint, $6::bigint)";

struct job {
    char id[128], direct_path[1024];
    int type, attempts;
    uint32_t chunk, progress;
    uint8_t key[32], sha[32], enc[32];
    uint64_t length;
    uint8_t *inl; /* the inline payload, or NULL: the downloaded file (fd) */
    size_t inl_len, inl_off;
    int fd;
    struct media_fetch *fetch;
    struct wa_hist_decoder *dec;
    /* the batch in the making: JSON elements, comma-separated */
    struct sbuf conv, msgs, names, lids;
    size_t bmsgs, belems;
    size_t nlids;    /* mappings sent to the database */
    int finished;    /* the decoder ended well: the rest is the last batch and the end */
    uint64_t stored; /* messages stored by this run */
    size_t skipped;  /* messages not storable (system stubs, edits, ...) */
    char events[2][24], *ev_type[2], *ev_data[2];
    int nev;
    char own_pn[128];
    uint64_t t0;
};

static struct {
    struct event_base *base;
    struct wa_client *client;
    struct pgc *db;
    struct event *poll, *step, *retry;
    struct job *j;
    int busy, again, receipting;
} H;

static void next(void);
static void receipts(void);
static void pump(struct job *j);

static const char *type_name(int t)
{
    const char *n = wa_hist_type_name(t);
    return n ? n : "unknown";
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->fetch)
        media_fetch_cancel(j->fetch);
    if (j->fd >= 0)
        close(j->fd);
    wa_history_decoder_free(j->dec);
    free(j->inl);
    sbuf_free(&j->conv);
    sbuf_free(&j->msgs);
    sbuf_free(&j->names);
    sbuf_free(&j->lids);
    for (int i = 0; i < 2; i++)
        free(j->ev_type[i]), free(j->ev_data[i]);
    OPENSSL_cleanse(j->key, sizeof j->key);
    free(j);
}

/* The job is over for this run (done, failed, or to be tried later). */
static void release(struct job *j)
{
    if (H.j == j)
        H.j = NULL;
    job_free(j);
    H.busy = 0;
    receipts();
    if (H.again) {
        H.again = 0;
        next();
    }
}

/* ---- failures */

/* A failure recorded (or a job skipped): what else waits. */
static void on_failed(void *ctx, const PGresult *res, const char *err)
{
    struct job *j = ctx;
    if (!res)
        log_error("history: cannot record a job's state", LF_S("id", j->id), LF_S("error", err));
    H.again = 1; /* what else waits (a job failed for good is receipted first) */
    release(j);
}

/* corrupt: the blob is not what the notification describes (its sums, its
 * zlib stream, its protobuf) and will not get better by itself: a few
 * tries; else (network, disk) many, further apart. */
static void failed(struct job *j, int corrupt, const char *why)
{
    int tries = j->attempts + 1;
    int give_up = tries >= (corrupt ? HISTORY_MAX_CORRUPT : HISTORY_MAX_ATTEMPTS);
    int delay = corrupt ? 1 << (tries < 8 ? tries - 1 : 7) : (tries < 7 ? 5 << tries : 600);
    if (give_up)
        log_error("history: chunk given up", LF_S("id", j->id), LF_S("sync_type", type_name(j->type)),
                  LF_I("chunk", j->chunk), LF_I("attempts", tries), LF_S("error", why));
    else
        log_warn("history: chunk not imported, tried again later", LF_S("id", j->id),
                 LF_S("sync_type", type_name(j->type)), LF_I("chunk", j->chunk), LF_I("attempt", tries),
                 LF_I("retry_s", delay), LF_S("error", why));
    if (S.shm && corrupt)
        metrics_add(&S.shm->wa_history_refused_total, 1);
    char ds[16];
    snprintf(ds, sizeof ds, "%d", delay);
    const char *p[] = {j->id, why, give_up ? "true" : "false", ds};
    if (!sdb_query(SQL_FAILED, 4, p, on_failed, j))
        release(j);
}

/* ---- the import, on the runner's connection */

static void on_rolled_back(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)ctx, (void)res, (void)err,
        (void)sqlstate; /* a failed ROLLBACK: the connection is gone, and so is the transaction */
}

/* Stops the import: the transaction (if any) is rolled back, the try counted. */
static void abort_import(struct job *j, int corrupt, const char *why)
{
    if (H.db && pgc_idle(H.db))
        pgc_send(H.db, "ROLLBACK", 0, NULL, 0, on_rolled_back, NULL);
    failed(j, corrupt, why);
}

static int batch_empty(const struct job *j)
{
    return j->belems == 0;
}

static void on_committed(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)sqlstate;
    struct job *j = ctx;
    if (!res) {
        abort_import(j, 0, err ? err : "commit failed");
        return;
    }
    for (int i = 0; i < j->nev; i++)
        events_publish(strtoull(j->events[i], NULL, 10), j->ev_type[i], j->ev_data[i]);
    if (j->nlids)
        chat_merges_kick(); /* a mapping may have merged a LID chat: announced now, not at the sweep */
    if (S.shm) {
        metrics_add(&S.shm->wa_history_chunks_total, 1);
        metrics_add(&S.shm->wa_history_messages_total, j->stored);
    }
    struct wa_hist_stats st;
    wa_history_decoder_stats(j->dec, &st);
    log_info("history: chunk imported", LF_S("id", j->id), LF_S("sync_type", type_name(j->type)),
             LF_I("chunk", j->chunk), LF_I("progress", j->progress), LF_I("conversations", st.conversations),
             LF_I("messages", j->stored), LF_I("skipped", j->skipped), LF_I("pushnames", st.pushnames),
             LF_I("lid_mappings", st.lid_mappings), LF_I("inflated", st.inflated),
             LF_I("ms", (long long)(now_ms() - j->t0)));
    H.again = 1;
    release(j);
}

static void on_done(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)sqlstate;
    struct job *j = ctx;
    if (!res || PQnfields(res) != 3) {
        abort_import(j, 0, err ? err : "unexpected answer from wapi_history_done");
        return;
    }
    /* No row: an earlier run imported it (this one added nothing): commit all the same. */
    for (int i = 0; i < PQntuples(res) && i < 2; i++) {
        snprintf(j->events[i], sizeof j->events[i], "%s", PQgetvalue(res, i, 0));
        j->ev_type[i] = strdup(PQgetvalue(res, i, 1));
        j->ev_data[i] = strdup(PQgetvalue(res, i, 2));
        if (j->ev_type[i] && j->ev_data[i])
            j->nev = i + 1;
    }
    if (pgc_send(H.db, "COMMIT", 0, NULL, 0, on_committed, j) < 0)
        failed(j, 0, "the database connection went");
}

static void send_done(struct job *j)
{
    struct wa_hist_stats st;
    wa_history_decoder_stats(j->dec, &st);
    if (st.progress > j->progress)
        j->progress = st.progress;
    int type = st.sync_type >= 0 ? st.sync_type : j->type;
    int completed = type == WA_HIST_ON_DEMAND ||
                    ((type == WA_HIST_INITIAL_BOOTSTRAP || type == WA_HIST_RECENT || type == WA_HIST_FULL) &&
                     j->progress >= 100);
    char counts[512], ev[24], ev2[24];
    snprintf(counts, sizeof counts,
             "{\"chunk_order\":%u,\"progress\":%u,\"conversations\":%zu,\"messages\":%llu,\"pushnames\":%zu,"
             "\"lid_mappings\":%zu,\"skipped\":%zu}",
             j->chunk, j->progress, st.conversations, (unsigned long long)j->stored, st.pushnames,
             st.lid_mappings, j->skipped + st.skipped);
    uint64_t id = events_reserve(2);
    snprintf(ev, sizeof ev, "%llu", (unsigned long long)id);
    snprintf(ev2, sizeof ev2, "%llu", (unsigned long long)(id + 1));
    const char *p[] = {j->id, type_name(type), counts, completed ? "true" : "false", ev, ev2};
    if (pgc_send(H.db, SQL_DONE, 6, p, 1, on_done, j) < 0)
        failed(j, 0, "the database connection went");
}

static void on_batch(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)sqlstate;
    struct job *j = ctx;
    if (!res || PQntuples(res) != 1) {
        abort_import(j, 0, err ? err : "unexpected answer from wapi_history_store");
        return;
    }
    j->stored += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    sbuf_reset(&j->conv);
    sbuf_reset(&j->msgs);
    sbuf_reset(&j->names);
    sbuf_reset(&j->lids);
    j->bmsgs = j->belems = 0;
    pump(j);
}

static void add_part(struct sbuf *b, const char *key, const struct sbuf *part, int first)
{
    sbuf_addf(b, "%s\"%s\":[", first ? "" : ",", key);
    if (part->len)
        sbuf_add(b, part->buf, part->len);
    sbuf_addc(b, ']');
}

static void flush(struct job *j)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addc(&b, '{');
    add_part(&b, "l", &j->lids, 1);
    add_part(&b, "n", &j->names, 0);
    add_part(&b, "c", &j->conv, 0);
    add_part(&b, "m", &j->msgs, 0);
    sbuf_addc(&b, '}');
    int oom = b.oom || j->conv.oom || j->msgs.oom || j->names.oom || j->lids.oom;
    const char *p[] = {b.buf};
    int rc = oom ? -1 : pgc_send(H.db, SQL_BATCH, 1, p, 1, on_batch, j);
    sbuf_free(&b);
    if (rc < 0)
        abort_import(j, 0, oom ? "out of memory" : "the database connection went");
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (H.j)
        pump(H.j);
}

/* Feeds the blob a piece at a time; a full batch goes to the database (and
 * the feeding goes on from its answer), so memory holds one batch and the
 * decoder's window, never the chunk. */
static void pump(struct job *j)
{
    for (int turn = 0;; turn++) {
        if (j->bmsgs >= BATCH_MSGS || j->conv.len + j->msgs.len + j->names.len + j->lids.len >= BATCH_BYTES ||
            (j->finished && !batch_empty(j))) {
            flush(j);
            return;
        }
        if (j->finished) {
            send_done(j);
            return;
        }
        if (turn == PIECES_PER_TURN) {
            event_active(H.step, EV_TIMEOUT, 0);
            return;
        }
        uint8_t piece[PIECE];
        size_t n;
        if (j->inl) {
            n = j->inl_len - j->inl_off < sizeof piece ? j->inl_len - j->inl_off : sizeof piece;
            memcpy(piece, j->inl + j->inl_off, n);
            j->inl_off += n;
        } else {
            ssize_t r;
            do
                r = read(j->fd, piece, sizeof piece);
            while (r < 0 && errno == EINTR);
            if (r < 0) {
                abort_import(j, 0, "cannot read the downloaded blob");
                return;
            }
            n = (size_t)r;
        }
        int rc = n ? wa_history_decoder_feed(j->dec, piece, n) : wa_history_decoder_finish(j->dec);
        if (rc != WA_HIST_OK) {
            char why[160];
            snprintf(why, sizeof why, "the history blob is unreadable (%s)", wa_hist_code(rc));
            abort_import(j, rc != WA_HIST_NOMEM && rc != WA_HIST_ABORTED, why);
            return;
        }
        if (!n)
            j->finished = 1;
    }
}

/* ---- the decoder's entries, into the batch */

static void sep(struct sbuf *b)
{
    if (b->len)
        sbuf_addc(b, ',');
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A JID as WhatsApp writes them: short, printable, with a server. */
static int plausible_jid(const char *s)
{
    if (!s || !*s || strlen(s) > 127 || !strchr(s, '@'))
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

static void add_message(struct job *j, const struct wa_hist_conv *c, const struct wa_hist_msg *m)
{
    if (!m->id || !*m->id || strlen(m->id) > 63 || !m->message || m->stub_type) {
        j->skipped++;
        return;
    }
    struct wa_msg_content mc;
    memset(&mc, 0, sizeof mc);
    if (wa_msg_parse(m->message, m->message_len, &mc) < 0) {
        j->skipped++;
        return;
    }
    switch (mc.kind) {
    case WA_MSG_TEXT:
    case WA_MSG_REACTION:
    case WA_MSG_MEDIA:
    case WA_MSG_LOCATION:
    case WA_MSG_CONTACTS:
    case WA_MSG_POLL:
    case WA_MSG_UNSUPPORTED:
        break;
    default: /* protocol messages, edits, revokes, votes: the history has their result */
        j->skipped++;
        wa_msg_content_free(&mc);
        return;
    }
    int group = ends_with(c->id, "@g.us");
    const char *author = m->key_participant ? m->key_participant : m->participant;
    const char *sender = m->from_me ? (j->own_pn[0] ? j->own_pn : NULL) : group ? author : c->id;
    if (sender && !plausible_jid(sender))
        sender = NULL;
    struct wa_incoming im = {
        .id = m->id,
        .chat = c->id,
        .sender = sender,
        .from_me = m->from_me,
        .ts = m->timestamp <= 32503680000ULL ? (int64_t)m->timestamp : 0,
        .push_name = m->from_me ? NULL : m->push_name,
        .lid = sender && ends_with(sender, "@lid") ? sender : NULL,
        .content = &mc,
    };
    sep(&j->msgs);
    struct jsonw w;
    jw_init(&w, &j->msgs);
    inbox_element(&w, &im, 0);
    if (jw_finish(&w) == 0) {
        j->bmsgs++;
        j->belems++;
    } else if (j->msgs.len && j->msgs.buf[j->msgs.len - 1] == ',') {
        j->msgs.buf[--j->msgs.len] = '\0';
    }
    wa_msg_content_free(&mc);
}

static int on_conversation(void *arg, const struct wa_hist_conv *c)
{
    struct job *j = arg;
    if (!plausible_jid(c->id) || ends_with(c->id, "@broadcast")) {
        j->skipped += c->nmsgs;
        return 0;
    }
    uint64_t mute = c->mute_end_time;
    if (mute > 100000000000ULL) /* milliseconds */
        mute /= 1000;
    sep(&j->conv);
    struct jsonw w;
    jw_init(&w, &j->conv);
    jw_obj(&w);
    jw_kstr(&w, "jid", c->id);
    jw_kstr(&w, "name", c->name ? c->name : c->display_name);
    jw_kuint(&w, "unread", c->unread_count <= INT32_MAX ? c->unread_count : 0);
    jw_kbool(&w, "archived", c->archived);
    jw_kuint(&w, "pinned_at", c->pinned); /* when it was pinned (Unix s), 0 when not */
    jw_kuint(&w, "mute", mute <= 32503680000ULL ? mute : 0);
    jw_kbool(&w, "marked_unread", c->marked_unread);
    jw_kuint(&w, "exp", c->ephemeral_expiration <= WA_MSG_EXPIRATION_MAX ? c->ephemeral_expiration : 0);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        j->belems++;
    for (size_t i = 0; i < c->nmsgs; i++)
        add_message(j, c, &c->msgs[i]);
    return 0;
}

static int on_pushname(void *arg, const char *jid, const char *name)
{
    struct job *j = arg;
    if (!plausible_jid(jid) || !name || !*name)
        return 0;
    sep(&j->names);
    struct jsonw w;
    jw_init(&w, &j->names);
    jw_obj(&w);
    jw_kstr(&w, "jid", jid);
    jw_kstr(&w, "name", name);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        j->belems++;
    return 0;
}

static int on_lid_mapping(void *arg, const char *pn, const char *lid)
{
    struct job *j = arg;
    if (!plausible_jid(pn) || !plausible_jid(lid) || !ends_with(pn, "@s.whatsapp.net") ||
        !ends_with(lid, "@lid"))
        return 0;
    sep(&j->lids);
    struct jsonw w;
    jw_init(&w, &j->lids);
    jw_obj(&w);
    jw_kstr(&w, "pn", pn);
    jw_kstr(&w, "lid", lid);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        j->belems++, j->nlids++;
    return 0;
}

static void on_begun(void *ctx, const PGresult *res, const char *err, const char *sqlstate)
{
    (void)sqlstate;
    struct job *j = ctx;
    if (!res) {
        failed(j, 0, err ? err : "BEGIN failed");
        return;
    }
    pump(j);
}

static void start_import(struct job *j)
{
    static const struct wa_hist_callbacks cb = {
        .conversation = on_conversation, .pushname = on_pushname, .lid_mapping = on_lid_mapping};
    char lid[128];
    wa_messaging_own_jids(j->own_pn, sizeof j->own_pn, lid, sizeof lid);
    if (!H.db || !pgc_idle(H.db)) {
        /* The runner's connection is not there yet: nothing spent, tried again soon. */
        struct timeval tv = {2, 0};
        if (H.retry)
            evtimer_add(H.retry, &tv);
        release(j);
        return;
    }
    if (!(j->dec = wa_history_decoder_new(NULL, &cb, j))) {
        failed(j, 0, "out of memory");
        return;
    }
    /* ROLLBACK first: a transaction left open by a failed run ends here. */
    if (pgc_send(H.db, "ROLLBACK; BEGIN", 0, NULL, 0, on_begun, j) < 0)
        failed(j, 0, "the database connection went");
}

/* ---- the blob */

static void on_fetched(void *arg, const struct media_fetch_result *r)
{
    struct job *j = arg;
    j->fetch = NULL;
    switch (r->outcome) {
    case MEDIA_FETCH_OK:
        j->fd = r->fd;
        start_import(j);
        return;
    case MEDIA_FETCH_CORRUPT:
    case MEDIA_FETCH_TOO_BIG:
    case MEDIA_FETCH_EXPIRED: {
        char why[300];
        snprintf(why, sizeof why, "the history blob %s: %s",
                 r->outcome == MEDIA_FETCH_EXPIRED ? "is gone from the media hosts"
                                                   : "is not the one the notification describes",
                 r->error ? r->error : "");
        failed(j, 1, why);
        return;
    }
    default:
        failed(j, 0, r->error ? r->error : "download failed");
    }
}

static void on_mediaconn(void *arg, const struct wa_mediaconn *mc, const char *err)
{
    struct job *j = arg;
    struct media_store *st = media_store_ready();
    if (!mc || !st) {
        if (!mc && wa_client_state(H.client) != WA_CONNECTED) {
            release(j); /* the connection went: nothing spent; tried again at the next connect */
            return;
        }
        failed(j, 0, !mc ? (err ? err : "no media_conn") : "the media store is not open");
        return;
    }
    struct media_fetch_req rq = {
        .direct_path = j->direct_path,
        .kind = WA_MEDIA_HISTORY,
        .has_file_enc_sha256 = 1,
        .has_file_sha256 = 1,
        .file_length = j->length,
        .max_bytes = MAX_BLOB_BYTES,
        .tmp_dirfd = st->tmpdfd,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .done = on_fetched,
        .arg = j,
    };
    snprintf(rq.proxy, sizeof rq.proxy, "%s", S.cfg.whatsapp.proxy);
    memcpy(rq.media_key, j->key, 32);
    memcpy(rq.file_sha256, j->sha, 32);
    memcpy(rq.file_enc_sha256, j->enc, 32);
    j->fetch = media_fetch_start_on(mc, &rq);
    if (!j->fetch)
        failed(j, 0, "cannot start the download");
}

static void on_next(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res || PQntuples(res) != 1 || PQnfields(res) != NEXT_COLS) {
        if (!res)
            log_warn("history: cannot read the jobs", LF_S("error", err));
        H.busy = 0;
        return;
    }
    int wait_s = atoi(PQgetvalue(res, 0, 11));
    if (wait_s > 0) {
        /* Nothing due yet: woken when the first one is (the poll is slower). */
        struct timeval tv = {wait_s < POLL_S ? wait_s : POLL_S, 0};
        if (H.retry)
            evtimer_add(H.retry, &tv);
        H.busy = 0;
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        H.busy = 0;
        return;
    }
    j->fd = -1;
    j->t0 = now_ms();
    sbuf_init(&j->conv);
    sbuf_init(&j->msgs);
    sbuf_init(&j->names);
    sbuf_init(&j->lids);
    H.j = j;
    const char *c[NEXT_COLS];
    for (int i = 0; i < NEXT_COLS; i++)
        c[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    snprintf(j->id, sizeof j->id, "%s", c[0]);
    if (!strcmp(S.cfg.whatsapp.history, "off")) {
        log_info("history: chunk skipped (whatsapp.history is off)", LF_S("id", j->id));
        const char *p[] = {j->id};
        if (!sdb_query(SQL_SKIP, 1, p, on_failed, j))
            release(j);
        return;
    }
    j->type = atoi(c[1]);
    j->chunk = (uint32_t)strtoul(c[2], NULL, 10);
    j->progress = (uint32_t)strtoul(c[3], NULL, 10);
    j->length = c[8] ? strtoull(c[8], NULL, 10) : 0;
    j->attempts = atoi(c[10]);
    if (c[9] && *c[9]) {
        size_t hl = strlen(c[9]);
        j->inl_len = hl / 2;
        if (!(j->inl = malloc(j->inl_len ? j->inl_len : 1)) || hex_decode(c[9], j->inl, j->inl_len) != 0) {
            failed(j, 0, "out of memory");
            return;
        }
        log_info("history: importing an inline chunk", LF_S("id", j->id),
                 LF_S("sync_type", type_name(j->type)), LF_I("chunk", j->chunk), LF_I("bytes", j->inl_len));
        start_import(j);
        return;
    }
    int ok = c[4] && hex_decode(c[4], j->key, 32) == 0 && c[6] && hex_decode(c[6], j->sha, 32) == 0 && c[7] &&
             hex_decode(c[7], j->enc, 32) == 0 && c[5] && c[5][0] == '/' &&
             strlen(c[5]) < sizeof j->direct_path;
    if (!ok) {
        j->attempts = HISTORY_MAX_ATTEMPTS; /* nothing to try again */
        failed(j, 1, "the notification says neither where the blob is nor how to open it");
        return;
    }
    snprintf(j->direct_path, sizeof j->direct_path, "%s", c[5]);
    log_info("history: downloading a chunk", LF_S("id", j->id), LF_S("sync_type", type_name(j->type)),
             LF_I("chunk", j->chunk), LF_I("bytes", j->length), LF_I("attempt", j->attempts + 1));
    /* Not connected: nothing spent; the next connect (or poll) tries again. */
    if (!H.client || wa_mediaconn_get(H.client, (int64_t)now_ms(), on_mediaconn, j) < 0)
        release(j);
}

static void next(void)
{
    if (H.busy) {
        H.again = 1;
        return;
    }
    H.busy = 1;
    if (!sdb_query(SQL_NEXT, 0, NULL, on_next, NULL))
        H.busy = 0;
}

/* ---- receipts, after the commit */

static void on_receipted(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("history: cannot record a receipt sent", LF_S("error", err));
}

static void on_unreceipted(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    H.receipting = 0;
    if (!res) {
        log_warn("history: cannot list the receipts due", LF_S("error", err));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        if (wa_messaging_hist_sync_receipt(id) < 0)
            return; /* not connected: at the next connect */
        log_info("history: hist_sync receipt sent", LF_S("id", id));
        const char *p[] = {id};
        if (!sdb_query(SQL_RECEIPTED, 1, p, on_receipted, NULL))
            return;
    }
}

static void receipts(void)
{
    if (H.receipting || !H.client || wa_client_state(H.client) != WA_CONNECTED)
        return;
    H.receipting = 1;
    if (!sdb_query(SQL_UNRECEIPTED, 0, NULL, on_unreceipted, NULL))
        H.receipting = 0;
}

void history_kick(void)
{
    receipts();
    next();
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    history_kick();
}

static void on_db_up(void *arg, struct pgc *c)
{
    (void)arg, (void)c;
    if (!H.busy)
        next();
}

static void on_db_down(void *arg, struct pgc *c, const char *why)
{
    (void)arg, (void)c;
    log_warn("history: the import connection went down", LF_S("why", why));
}

void history_init(struct event_base *base, struct wa_client *c)
{
    static struct db_params params;
    db_params_init(&params, &S.cfg, "wapi-history");
    H.base = base;
    H.client = c;
    H.poll = event_new(base, -1, EV_PERSIST, on_poll, NULL);
    H.step = event_new(base, -1, 0, on_step, NULL);
    H.retry = evtimer_new(base, on_poll, NULL);
    struct timeval tv = {POLL_S, 0};
    if (H.poll)
        event_add(H.poll, &tv);
    static struct pgc_loop loop;
    pgc_libevent(&loop, base);
    struct pgc_opts o = {.params = &params,
                         .setup_sql = PG_SESSION_SETUP,
                         .reconnect = 1,
                         .backoff_min_ms = 500,
                         .backoff_max_ms = 10000,
                         .max_prepared = 4,
                         .on_up = on_db_up,
                         .on_down = on_db_down};
    if (!(H.db = pgc_new(&loop, &o)))
        log_error("history: cannot open the import connection", LF_S("error", "out of memory"));
    inbox_set_history_kick(history_kick);
}
