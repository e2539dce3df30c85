#include "media_sweep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "media.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_offload.h"

#define FIRST_S 600    /* the first sweep, after start */
#define PERIOD_S 86400 /* then daily */
#define GRACE_S 3600   /* files modified this recently are kept */
#define BATCH 500      /* hashes per query */

static struct {
    struct event *timer;
    int running;
    char by[32];
    time_t started, not_after;
    uint64_t t0_ms;
    /* candidates: files older than not_after, found by the walk (thread) */
    char (*hex)[MEDIA_HEX_LEN + 1];
    size_t n, cap, pos;
    int walk_err;
    long long expired, removed, freed;
    /* the last sweep, for `wapictl media` */
    int have_last;
    struct {
        time_t at;
        char by[32];
        long long expired, removed, freed;
        double ms;
        int failed;
        char error[256]; /* when failed; a longer message is cut (the log has it whole) */
    } last;
} W;

static void schedule(long seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_del(W.timer);
    evtimer_add(W.timer, &tv);
}

static void finish(const char *error)
{
    free(W.hex);
    W.hex = NULL;
    W.n = W.cap = W.pos = 0;
    W.running = 0;
    double ms = (double)(now_ms() - W.t0_ms);
    W.last.at = W.started;
    memcpy(W.last.by, W.by, sizeof W.by);
    W.last.expired = W.expired;
    W.last.removed = W.removed;
    W.last.freed = W.freed;
    W.last.ms = ms;
    W.last.failed = error != NULL;
    snprintf(W.last.error, sizeof W.last.error, "%s", error ? error : "");
    W.have_last = 1;
    metrics_add(&S.shm->media_swept_files_total, (uint64_t)W.removed);
    if (error)
        log_error("media sweep failed", LF_S("error", error), LF_I("removed_files", W.removed));
    else
        log_info("media sweep done", LF_S("by", W.by), LF_I("expired_rows", W.expired),
                 LF_I("removed_files", W.removed), LF_I("freed_bytes", W.freed), LF_F("ms", ms));
    schedule(PERIOD_S);
}

/* Of these hashes, those no live row names. */
static const char SQL_UNREFERENCED[] =
    "SELECT h FROM unnest($1::text[]) AS h WHERE NOT EXISTS "
    "(SELECT 1 FROM wa_media m WHERE m.sha256 = h AND m.state IN ('pending', 'stored'))";

static void next_batch(void);

static void on_unreferenced(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        finish(err ? err : "database error");
        return;
    }
    struct media_store *st = media_store_ready();
    for (int i = 0; st && i < PQntuples(res); i++) {
        uint64_t freed = 0;
        /* On the loop, as publications link: a file published meanwhile has
         * a time past not_after and stays. */
        int r = media_store_remove(st, PQgetvalue(res, i, 0), W.not_after, &freed);
        if (r < 0)
            log_warn("media sweep: cannot remove a file", LF_S("sha256", PQgetvalue(res, i, 0)),
                     LF_S("error", strerror(errno)));
        if (r == 1) {
            W.removed++;
            W.freed += (long long)freed;
            media_note_removed(1, freed);
        }
    }
    media_empty_trash(); /* the removed files were moved there: freed off the loop */
    next_batch();
}

static void next_batch(void)
{
    if (W.pos >= W.n) {
        finish(NULL);
        return;
    }
    size_t k = W.n - W.pos < BATCH ? W.n - W.pos : BATCH;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addc(&b, '{');
    for (size_t i = 0; i < k; i++) {
        if (i)
            sbuf_addc(&b, ',');
        sbuf_add(&b, W.hex[W.pos + i], MEDIA_HEX_LEN); /* hex digits: nothing to quote */
    }
    sbuf_addc(&b, '}');
    W.pos += k;
    const char *p[1] = {b.buf};
    if (b.oom || !sdb_query(SQL_UNREFERENCED, 1, p, on_unreferenced, NULL))
        finish("out of memory");
    sbuf_free(&b);
}

static int collect(void *arg, const char *hex, uint64_t size, time_t mtime)
{
    (void)arg, (void)size;
    if (mtime >= W.not_after)
        return 0;
    if (W.n == W.cap) {
        size_t cap = W.cap ? W.cap * 2 : 1024;
        void *nh = realloc(W.hex, cap * sizeof *W.hex);
        if (!nh) {
            W.walk_err = ENOMEM;
            return 1;
        }
        W.hex = nh;
        W.cap = cap;
    }
    memcpy(W.hex[W.n++], hex, MEDIA_HEX_LEN + 1);
    return 0;
}

/* On a thread: the loop leaves W's candidates alone until walk_done. */
static void walk_work(void *arg)
{
    struct media_store *st = arg;
    if (media_store_walk(st, 0, collect, NULL) < 0 && !W.walk_err)
        W.walk_err = errno;
}

static void walk_done(void *arg)
{
    (void)arg;
    if (W.walk_err) {
        finish(strerror(W.walk_err));
        return;
    }
    next_batch();
}

static void walk(void)
{
    struct media_store *st = media_store_ready();
    W.walk_err = 0;
    if (!st || wa_offload_run(walk_work, walk_done, st) < 0)
        finish("the media store is not available");
}

static void on_expired(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res || PQntuples(res) != 1) {
        finish(err ? err : "database error");
        return;
    }
    W.expired = atoll(PQgetvalue(res, 0, 0));
    walk();
}

static const char SQL_EXPIRE[] =
    "WITH u AS (UPDATE wa_media SET state = 'expired', updated_at = now() WHERE state = 'stored' "
    "AND created_at < now() - make_interval(days => $1::int) RETURNING 1) SELECT count(*) FROM u";

int media_sweep_start(const char *by, const char **why)
{
    if (W.running) {
        *why = "a sweep is running";
        return -1;
    }
    if (!S.migrated || !media_store_ready()) {
        *why = "the media store or the database schema is not ready";
        return -1;
    }
    if (!media_measured()) {
        /* The initial walk adds what it finds: a removal before it ends
         * would be subtracted from a total that never counted it. */
        *why = "the media store is being measured";
        return -1;
    }
    W.running = 1;
    snprintf(W.by, sizeof W.by, "%s", by);
    W.started = time(NULL);
    W.not_after = W.started - GRACE_S;
    W.t0_ms = now_ms();
    W.expired = W.removed = W.freed = 0;
    evtimer_del(W.timer);
    if (S.cfg.media.retention_days > 0) {
        char days[16];
        snprintf(days, sizeof days, "%d", S.cfg.media.retention_days);
        const char *p[1] = {days};
        if (!sdb_query(SQL_EXPIRE, 1, p, on_expired, NULL))
            finish("out of memory");
        return 0;
    }
    walk();
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    const char *why;
    if (media_sweep_start("daily", &why) < 0) {
        log_warn("media sweep postponed an hour", LF_S("why", why));
        schedule(3600);
    }
}

void media_sweep_init(void)
{
    W.timer = evtimer_new(S.base, on_timer, NULL);
    if (W.timer)
        schedule(FIRST_S);
}

void media_sweep_status_json(struct jsonw *w)
{
    jw_obj(w);
    jw_kbool(w, "running", W.running);
    jw_key(w, "last");
    if (!W.have_last) {
        jw_null(w);
    } else {
        char at[RFC3339_LEN];
        rfc3339_s(W.last.at, at, sizeof at);
        jw_obj(w);
        jw_kstr(w, "at", at);
        jw_kstr(w, "by", W.last.by);
        jw_kint(w, "expired_rows", W.last.expired);
        jw_kint(w, "removed_files", W.last.removed);
        jw_kint(w, "freed_bytes", W.last.freed);
        jw_key(w, "ms");
        jw_double(w, "%.0f", W.last.ms);
        jw_kstr(w, "error", W.last.failed ? W.last.error : NULL);
        jw_obj_end(w);
    }
    jw_obj_end(w);
}
