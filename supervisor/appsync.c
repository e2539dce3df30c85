/* App-state sync with our phone: see appsync.h. */
#include "appsync.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonw.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/metrics.h"
#include "events.h"
#include "media.h"
#include "media_fetch.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_appstate.h"
#include "wa/wa_appstate_iq.h"
#include "wa/wa_client.h"
#include "wa/wa_mediaconn.h"
#include "wa/wa_messaging.h"

#define NCOLL 5
static const char *const NAMES[NCOLL] = {"critical_block", "critical_unblock_low", "regular_high",
                                         "regular_low", "regular"};
_Static_assert(NCOLL == METRICS_APPSTATE_COLLECTIONS, "metrics name the collections in NAMES' order");

#define MAX_RESYNCS 3        /* per collection and connection; then it waits for the next connect */
#define RETRY_S 30           /* after a failure that may pass (database, network) */
#define BLOB_MAX (64u << 20) /* a snapshot or external patch larger than this is refused */
#define FETCH_TIMEOUT_MS 60000
#define MAX_KEYS 256
#define MAX_ASKED 32

/* The index MAC → value MAC map of a collection: open addressing, linear
 * probing, tombstones (used 2) for what was taken out. */
struct map {
    uint8_t (*e)[2 * WA_AS_MAC_LEN];
    uint8_t *used;
    size_t cap, n, dead;
};

static size_t map_slot(const uint8_t *im, size_t cap)
{
    size_t h;
    memcpy(&h, im, sizeof h); /* a MAC: already uniformly spread */
    return h & (cap - 1);
}

static void map_free(struct map *m)
{
    free(m->e);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static int map_put(struct map *m, const uint8_t *im, const uint8_t *vm);

static int map_grow(struct map *m)
{
    struct map g = {0};
    g.cap = m->cap ? m->cap * 2 : 64;
    while ((m->n + 1) * 2 > g.cap)
        g.cap *= 2;
    g.e = malloc(g.cap * sizeof *g.e);
    g.used = calloc(g.cap, 1);
    if (!g.e || !g.used) {
        map_free(&g);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->used[i] == 1)
            map_put(&g, m->e[i], m->e[i] + WA_AS_MAC_LEN);
    map_free(m);
    *m = g;
    return 0;
}

static int map_put(struct map *m, const uint8_t *im, const uint8_t *vm)
{
    if ((m->n + m->dead + 1) * 2 > m->cap && map_grow(m) < 0)
        return -1;
    size_t i = map_slot(im, m->cap), tomb = SIZE_MAX;
    for (;; i = (i + 1) & (m->cap - 1)) {
        if (m->used[i] == 1 && !memcmp(m->e[i], im, WA_AS_MAC_LEN)) {
            memcpy(m->e[i] + WA_AS_MAC_LEN, vm, WA_AS_MAC_LEN);
            return 0;
        }
        if (m->used[i] == 2 && tomb == SIZE_MAX)
            tomb = i;
        if (m->used[i] == 0)
            break;
    }
    if (tomb != SIZE_MAX)
        i = tomb, m->dead--;
    memcpy(m->e[i], im, WA_AS_MAC_LEN);
    memcpy(m->e[i] + WA_AS_MAC_LEN, vm, WA_AS_MAC_LEN);
    m->used[i] = 1;
    m->n++;
    return 0;
}

static const uint8_t *map_get(const struct map *m, const uint8_t *im)
{
    if (!m->cap)
        return NULL;
    for (size_t i = map_slot(im, m->cap), k = 0; k < m->cap && m->used[i]; i = (i + 1) & (m->cap - 1), k++)
        if (m->used[i] == 1 && !memcmp(m->e[i], im, WA_AS_MAC_LEN))
            return m->e[i] + WA_AS_MAC_LEN;
    return NULL;
}

static void map_del(struct map *m, const uint8_t *im)
{
    if (!m->cap)
        return;
    for (size_t i = map_slot(im, m->cap), k = 0; k < m->cap && m->used[i]; i = (i + 1) & (m->cap - 1), k++)
        if (m->used[i] == 1 && !memcmp(m->e[i], im, WA_AS_MAC_LEN)) {
            m->used[i] = 2;
            m->n--, m->dead++;
            return;
        }
}

struct coll {
    int loaded;      /* state and map read from the database on this connection */
    int want;        /* to be synced */
    int snapshot;    /* from a snapshot (first sync, or after a refused patch) */
    int waiting_key; /* a key it needs is asked of our phone */
    int resyncs;     /* on this connection */
    int paused;      /* failed for a reason that may pass: skipped until the retry timer */
    struct wa_as_state st;
    struct map m;
};

struct key {
    uint8_t id[WA_AS_KEY_ID_MAX];
    size_t id_len;
    uint8_t data[32];
};

/* A change of ours waiting to go (IPC_ACT_CHAT_STATE): whom to answer.
 * (Answered through workers_reply() here, not action_req.c, which sits
 * above the session and so above this module.) */
struct change {
    pid_t pid;
    uint32_t msg_id;
    char jid[128]; /* the chat; for WA_AS_PUSH_NAME our new name */
    enum wa_as_kind kind;
    int on, tries;
    int64_t mute_end_ms, last_ts;
    struct change *next;
};

static struct {
    struct event_base *base;
    struct wa_client *c;
    struct event *retry;
    uint64_t gen; /* the connection's number: answers of an earlier one are dropped */
    int busy, cur;
    struct coll co[NCOLL];
    struct key keys[MAX_KEYS];
    size_t nkeys;
    uint8_t asked[MAX_ASKED][WA_AS_KEY_ID_MAX];
    size_t asked_len[MAX_ASKED], nasked;
    /* the answer being worked through */
    wa_arena *ja;
    const uint8_t *snap_ref;
    size_t snap_ref_len;
    const uint8_t **patches;
    size_t *patch_lens;
    size_t npatches, next;
    int has_more;
    int dl_snapshot; /* the download in flight is the snapshot (else patch next's mutations) */
    struct media_fetch *fetch;
    uint64_t dl_size;
    /* the decoded patch or snapshot being applied */
    wa_arena *ra;
    struct wa_as_result res;
    int res_snap;
    /* a change of ours being sent (mode 1), else a sync (mode 0) */
    int mode;
    struct change *chg, *chq;
    struct wa_as_encoded enc;
} A;

static void run(void);
static void (*push_name_cb)(const char *name);

static void job_end(void)
{
    wa_arena_free(A.ja);
    wa_arena_free(A.ra);
    A.ja = A.ra = NULL;
    A.patches = NULL;
    A.npatches = A.next = 0;
    A.snap_ref = NULL;
    A.busy = 0;
    A.mode = 0;
}

static void answer(const struct change *c, uint32_t status, const struct sbuf *b)
{
    if (!b->oom && workers_reply(c->pid, c->msg_id, status, b->buf, b->len) < 0)
        log_info("answered after its worker left", LF_S("what", "chat state"), LF_I("pid", c->pid));
}

/* Answers the change being sent (or c) with an error, and drops it. */
static void chg_fail(struct change *c, uint32_t status, const char *code, const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    jw_error_body(&b, code, msg, NULL);
    answer(c, status, &b);
    sbuf_free(&b);
    if (c == A.chg)
        A.chg = NULL;
    free(c);
}

static void later(const char *why)
{
    if (A.mode == 1 && A.chg)
        chg_fail(A.chg, 503, "try_again", "the change could not be made now; try again");
    log_warn("app-state sync: trying again later", LF_S("collection", NAMES[A.cur]), LF_S("why", why),
             LF_I("in_s", RETRY_S));
    A.co[A.cur].paused = 1;
    job_end();
    struct timeval tv = {RETRY_S, 0};
    if (A.retry && !evtimer_pending(A.retry, NULL))
        evtimer_add(A.retry, &tv);
    run(); /* the others meanwhile */
}

/* ---- the keys and the map, for the decoder */

static int io_key(void *ctx, const uint8_t *id, size_t len, uint8_t *data, size_t *dlen)
{
    (void)ctx;
    for (size_t i = 0; i < A.nkeys; i++)
        if (A.keys[i].id_len == len && !memcmp(A.keys[i].id, id, len) && *dlen >= 32) {
            memcpy(data, A.keys[i].data, 32);
            *dlen = 32;
            return 0;
        }
    return -1;
}

static int io_prev(void *ctx, const uint8_t im[WA_AS_MAC_LEN], uint8_t vm[WA_AS_MAC_LEN])
{
    (void)ctx;
    const uint8_t *v = map_get(&A.co[A.cur].m, im);
    if (!v)
        return 0;
    memcpy(vm, v, WA_AS_MAC_LEN);
    return 1;
}

static const struct wa_as_io IO = {NULL, io_key, io_prev};

/* ---- refusals */

static int reason_of(int rc)
{
    switch (rc) {
    case WA_AS_BAD_INDEX_MAC:
    case WA_AS_BAD_VALUE_MAC:
    case WA_AS_BAD_PATCH_MAC:
    case WA_AS_BAD_SNAPSHOT_MAC:
        return METRICS_APPSTATE_BAD_MAC;
    case WA_AS_LTHASH_MISMATCH:
        return METRICS_APPSTATE_LTHASH;
    default:
        return METRICS_APPSTATE_MALFORMED;
    }
}

/* What the server sent does not check out: the collection again from a
 * snapshot (the state we hold stays until the snapshot replaces it). */
static void resync(int rc)
{
    struct coll *co = &A.co[A.cur];
    if (S.shm)
        metrics_add(&S.shm->wa_appstate_resyncs_total[A.cur][reason_of(rc)], 1);
    co->resyncs++;
    if (co->resyncs > MAX_RESYNCS) {
        log_error("app-state sync: the collection keeps failing its checks; left until the next connect",
                  LF_S("collection", NAMES[A.cur]), LF_S("why", wa_as_code(rc)),
                  LF_I("version", co->st.version));
        co->want = 0;
    } else {
        log_warn(
            "app-state sync: refused what the server sent; fetching the collection again from a snapshot",
            LF_S("collection", NAMES[A.cur]), LF_S("why", wa_as_code(rc)), LF_I("version", co->st.version));
        co->want = co->snapshot = 1;
    }
    job_end();
    run();
}

/* Asks our phone for a key (once per connection). */
static void ask_key(const uint8_t *id, size_t len)
{
    char h[2 * WA_AS_KEY_ID_MAX + 1];
    hex_encode(h, id, len, 0);
    for (size_t i = 0; i < A.nasked; i++)
        if (A.asked_len[i] == len && !memcmp(A.asked[i], id, len))
            return;
    uint8_t *msg = NULL;
    size_t ml = 0;
    const uint8_t *ids[1] = {id};
    size_t lens[1] = {len};
    if (wa_asiq_key_request_message(ids, lens, 1, &msg, &ml) < 0 ||
        wa_messaging_own_phone_send(msg, ml) < 0) {
        log_warn("app-state sync: cannot ask our phone for a key now; asked again at the next connect",
                 LF_S("key_id", h));
    } else {
        log_info("app-state sync: asked our phone for a key", LF_S("key_id", h),
                 LF_S("collection", NAMES[A.cur]));
        if (A.nasked < MAX_ASKED) {
            memcpy(A.asked[A.nasked], id, len);
            A.asked_len[A.nasked++] = len;
        }
    }
    free(msg);
}

/* ---- applying */

static const char SQL_APPLY[] =
    "WITH r AS (SELECT wapi_appstate_apply($1::jsonb) AS j) "
    "SELECT r.j->>'ok', r.j->>'version', e->>'id', e->>'type', (e->'data')::text FROM r "
    "LEFT JOIN LATERAL jsonb_array_elements(r.j->'events') e ON true";

static void next_patch(void);
static void change_done(void);

static void on_applied(void *ctx, const PGresult *res, const char *err)
{
    uint64_t gen = (uint64_t)(uintptr_t)ctx;
    struct coll *co = &A.co[A.cur];
    if (!res || PQntuples(res) < 1) {
        later(err ? err : "no answer from wapi_appstate_apply");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "true")) {
        /* The collection moved on under us (applied already, before a
         * restart): read it again and go on from there. */
        log_info("app-state sync: the stored collection is not where the patch starts; reading it again",
                 LF_S("collection", NAMES[A.cur]), LF_S("stored", PQgetvalue(res, 0, 1)));
        co->loaded = 0;
        if (A.mode == 1 && A.chg)
            chg_fail(A.chg, 503, "try_again", "the collection moved meanwhile; try again");
        job_end();
        run();
        return;
    }
    int nev = 0;
    for (int i = 0; i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, 2)) {
            events_publish(strtoull(PQgetvalue(res, i, 2), NULL, 10), PQgetvalue(res, i, 3),
                           PQgetvalue(res, i, 4));
            nev++;
        }
    /* Committed: the state held here follows. */
    if (A.res_snap) {
        map_free(&co->m);
        co->snapshot = 0;
    }
    int oom = 0;
    for (size_t i = 0; i < A.res.n; i++) {
        const struct wa_as_action *a = &A.res.actions[i];
        if (a->op == WA_AS_REMOVE)
            map_del(&co->m, a->index_mac);
        else
            oom |= map_put(&co->m, a->index_mac, a->value_mac) < 0;
    }
    co->st = A.res.state;
    for (size_t i = 0; i < A.res.n && push_name_cb; i++)
        if (A.res.actions[i].kind == WA_AS_PUSH_NAME && A.res.actions[i].op == WA_AS_SET &&
            A.res.actions[i].name && *A.res.actions[i].name)
            push_name_cb(A.res.actions[i].name);
    if (oom)
        co->loaded = 0; /* read back from the database next time */
    log_info(A.res_snap ? "app-state snapshot applied" : "app-state patch applied",
             LF_S("collection", NAMES[A.cur]), LF_I("version", co->st.version), LF_I("actions", A.res.n),
             LF_I("events", nev));
    wa_arena_free(A.ra);
    A.ra = NULL;
    if (gen != A.gen) {
        job_end(); /* the connection went meanwhile: the next one syncs again */
        run();
        return;
    }
    if (A.mode == 1) {
        change_done();
        return;
    }
    if (!A.res_snap)
        A.next++;
    next_patch();
}

static void add_str_arr(struct jsonw *w, const char *key, const char *const *v, size_t n)
{
    jw_key(w, key);
    jw_arr(w);
    for (size_t i = 0; i < n; i++)
        jw_str(w, v[i]);
    jw_arr_end(w);
}

static void add_hexk(struct jsonw *w, const char *key, const uint8_t *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    if (!h) {
        jw_fail(w);
        return;
    }
    hex_encode(h, p, n, 0);
    jw_kstr(w, key, h);
    free(h);
}

/* The decoded result in A.res, from version from (a snapshot: replaces). */
static void apply(uint64_t from, int snap)
{
    struct sbuf b;
    struct jsonw w;
    uint64_t ev = events_reserve((unsigned)(2 * A.res.n + 1));
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "c", NAMES[A.cur]);
    jw_kbool(&w, "snap", snap);
    jw_kuint(&w, "from", from);
    jw_kuint(&w, "v", A.res.state.version);
    add_hexk(&w, "h", A.res.state.hash, sizeof A.res.state.hash);
    jw_kuint(&w, "ev", ev);
    jw_key(&w, "a");
    jw_arr(&w);
    for (size_t i = 0; i < A.res.n; i++) {
        const struct wa_as_action *a = &A.res.actions[i];
        jw_obj(&w);
        jw_kstr(&w, "op", a->op == WA_AS_REMOVE ? "r" : "s");
        add_hexk(&w, "im", a->index_mac, WA_AS_MAC_LEN);
        add_hexk(&w, "vm", a->value_mac, WA_AS_MAC_LEN);
        jw_kstr(&w, "ij", a->index_json ? a->index_json : "[]");
        add_str_arr(&w, "i", a->index, a->n_index);
        jw_kstr(&w, "kind", wa_as_kind_name(a->kind));
        jw_kint(&w, "ts", a->timestamp_ms);
        jw_kbool(&w, "f", a->flag);
        jw_kint(&w, "me", a->mute_end_ms);
        jw_kstr(&w, "n", a->name);
        jw_kstr(&w, "fn", a->first_name);
        jw_kint(&w, "col", a->color);
        if (a->value && a->value_len)
            add_hexk(&w, "val", a->value, a->value_len);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    A.res_snap = snap;
    const char *p[] = {b.buf};
    if (jw_finish(&w) < 0 || !sdb_query(SQL_APPLY, 1, p, on_applied, (void *)(uintptr_t)A.gen)) {
        sbuf_free(&b);
        later("out of memory");
        return;
    }
    sbuf_free(&b);
}

/* Decodes (ext: a downloaded blob: the snapshot, or the current patch's mutations). */
static void decode(const uint8_t *ext, size_t ext_len, int snap)
{
    struct coll *co = &A.co[A.cur];
    wa_arena_free(A.ra);
    A.ra = wa_arena_new();
    memset(&A.res, 0, sizeof A.res);
    if (!A.ra) {
        later("out of memory");
        return;
    }
    uint64_t from = co->st.version;
    int rc = snap ? wa_as_decode_snapshot(NAMES[A.cur], ext, ext_len, &IO, A.ra, &A.res)
                  : wa_as_decode_patch(NAMES[A.cur], &co->st, A.patches[A.next], A.patch_lens[A.next], ext,
                                       ext_len, &IO, A.ra, &A.res);
    if (rc == WA_AS_OK) {
        apply(from, snap);
    } else if (rc == WA_AS_MISSING_KEY) {
        /* Until our phone shares it: then the collection is synced again. */
        ask_key(A.res.missing_key_id, A.res.missing_key_id_len);
        co->waiting_key = 1;
        job_end();
        run();
    } else if (rc == WA_AS_INTERNAL) {
        later("out of memory or a crypto failure");
    } else {
        resync(rc);
    }
}

/* ---- external blobs (the snapshot, a large patch's mutations) */

static void on_fetched(void *arg, const struct media_fetch_result *r)
{
    (void)arg;
    A.fetch = NULL;
    if (r->outcome != MEDIA_FETCH_OK) {
        if (r->outcome == MEDIA_FETCH_CORRUPT || r->outcome == MEDIA_FETCH_TOO_BIG)
            resync(WA_AS_MALFORMED); /* not the blob the reference describes */
        else
            later(r->error ? r->error : "download failed");
        return;
    }
    uint64_t n = r->sums.file_length;
    uint8_t *buf = n <= BLOB_MAX ? malloc(n ? n : 1) : NULL;
    size_t got = 0;
    while (buf && got < n) {
        ssize_t k = pread(r->fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(r->fd);
    if (!buf || got != n) {
        free(buf);
        later("cannot read the downloaded blob");
        return;
    }
    decode(buf, n, A.dl_snapshot);
    free(buf);
}

static struct wa_as_blob_ref dl_ref;

static void on_mediaconn(void *arg, const struct wa_mediaconn *mc, const char *err)
{
    (void)arg;
    struct media_store *st = media_store_ready();
    if (!mc || !st) {
        later(!mc ? (err ? err : "no media_conn") : "the media store is not open");
        return;
    }
    struct media_fetch_req rq = {
        .direct_path = dl_ref.direct_path,
        .kind = WA_MEDIA_APPSTATE,
        .has_file_enc_sha256 = dl_ref.file_enc_sha256 != NULL,
        .has_file_sha256 = dl_ref.file_sha256 != NULL,
        .file_length = dl_ref.size,
        .max_bytes = BLOB_MAX + 64,
        .tmp_dirfd = st->tmpdfd,
        .timeout_ms = FETCH_TIMEOUT_MS,
        .done = on_fetched,
    };
    snprintf(rq.proxy, sizeof rq.proxy, "%s", S.cfg.whatsapp.proxy);
    memcpy(rq.media_key, dl_ref.media_key, 32);
    if (dl_ref.file_sha256)
        memcpy(rq.file_sha256, dl_ref.file_sha256, 32);
    if (dl_ref.file_enc_sha256)
        memcpy(rq.file_enc_sha256, dl_ref.file_enc_sha256, 32);
    A.fetch = media_fetch_start_on(mc, &rq);
    if (!A.fetch)
        later("cannot start the download");
}

static void download(const struct wa_as_blob_ref *ref, int snap)
{
    if (!ref->media_key || ref->media_key_len != 32 || !ref->direct_path || ref->direct_path[0] != '/' ||
        ref->size > BLOB_MAX) {
        resync(WA_AS_MALFORMED);
        return;
    }
    dl_ref = *ref; /* its strings live in A.ja or A.ra until the download ends */
    A.dl_snapshot = snap;
    /* the clock media_download.c asks with: the cached media_conn's expiry is on it */
    if (wa_mediaconn_get(A.c, (int64_t)now_ms(), on_mediaconn, NULL) < 0)
        later("not connected");
}

/* ---- fetching */

static void send_fetch(void);

static void next_patch(void)
{
    struct coll *co = &A.co[A.cur];
    if (A.next >= A.npatches) {
        if (A.has_more) {
            wa_arena_free(A.ja);
            A.ja = NULL;
            A.npatches = A.next = 0;
            send_fetch();
            return;
        }
        co->want = 0;
        log_info("app-state collection in step", LF_S("collection", NAMES[A.cur]),
                 LF_I("version", co->st.version));
        job_end();
        run();
        return;
    }
    struct wa_as_blob_ref ref;
    int ext = wa_as_patch_external(A.patches[A.next], A.patch_lens[A.next], A.ja, &ref);
    if (ext < 0) {
        resync(ext);
        return;
    }
    if (ext == 1)
        download(&ref, 0);
    else
        decode(NULL, 0, 0);
}

static void on_answer(void *arg, const wa_node *n)
{
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    struct coll *co = &A.co[A.cur];
    if (!n || gen != A.gen) {
        job_end(); /* the connection went: the next one syncs again */
        run();
        return;
    }
    char err[160];
    struct wa_asiq_coll *cs = NULL;
    size_t nc = 0;
    wa_arena *a = wa_arena_new();
    if (!a || wa_asiq_parse(n, a, &cs, &nc, err, sizeof err) < 0) {
        if (a)
            log_warn("app-state sync: the server's answer is unusable", LF_S("collection", NAMES[A.cur]),
                     LF_S("why", err));
        wa_arena_free(a);
        later(a ? err : "out of memory");
        return;
    }
    const struct wa_asiq_coll *c = NULL;
    for (size_t i = 0; i < nc; i++)
        if (!strcmp(cs[i].name, NAMES[A.cur]))
            c = &cs[i];
    if (!c || c->error) {
        log_warn("app-state sync: the server did not give the collection", LF_S("collection", NAMES[A.cur]),
                 LF_I("error", c ? c->error : 0));
        wa_arena_free(a);
        co->want = 0;
        job_end();
        run();
        return;
    }
    /* The answer's bytes are the client's: copied into the job's arena. */
    A.ja = a; /* the parse's arrays live there; the bytes are copied next */
    A.npatches = c->npatches;
    A.next = 0;
    A.has_more = c->has_more;
    A.patches = c->patches;
    A.patch_lens = c->patch_lens;
    int oom = 0;
    for (size_t i = 0; i < c->npatches; i++) {
        uint8_t *p = wa_arena_alloc(a, c->patch_lens[i]);
        if (p)
            memcpy(p, c->patches[i], c->patch_lens[i]);
        oom |= !p;
        A.patches[i] = p;
    }
    struct wa_as_blob_ref ref;
    int snap = 0;
    if (c->snapshot) {
        snap = wa_as_blob_ref_parse(c->snapshot, c->snapshot_len, a, &ref);
        if (snap != WA_AS_OK) {
            resync(WA_AS_MALFORMED);
            return;
        }
    }
    if (oom) {
        later("out of memory");
        return;
    }
    log_info("app-state sync: answer", LF_S("collection", NAMES[A.cur]),
             LF_I("snapshot", c->snapshot != NULL), LF_I("patches", c->npatches), LF_I("more", c->has_more));
    if (!c->snapshot)
        co->snapshot = 0; /* none given (an empty collection): its patches from the start */
    if (c->snapshot)
        download(&ref, 1);
    else
        next_patch();
}

static void send_fetch(void)
{
    struct coll *co = &A.co[A.cur];
    wa_arena *a = wa_arena_new();
    struct wa_asiq_req rq = {NAMES[A.cur], co->snapshot ? 0 : co->st.version,
                             co->snapshot || co->st.version == 0, NULL, 0};
    if (rq.snapshot)
        co->snapshot = 1;
    wa_node *iq = a ? wa_asiq_request(a, &rq, 1) : NULL;
    int r = iq ? wa_client_iq(A.c, a, iq, on_answer, (void *)(uintptr_t)A.gen) : -1;
    wa_arena_free(a);
    if (r < 0) {
        job_end(); /* not connected: the next connect syncs */
        return;
    }
}

/* ---- changes of ours */

static const char SQL_CHAT_EVENT[] = "SELECT wapi_chat_event($1)::text";

static void on_chat_event(void *ctx, const PGresult *res, const char *err)
{
    struct change *c = ctx;
    struct sbuf b;
    sbuf_init(&b);
    if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        sbuf_add(&b, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
    else
        sbuf_addf(&b, "{\"jid\":\"%s\"}", c->jid); /* committed all the same */
    (void)err;
    answer(c, 202, &b);
    sbuf_free(&b);
    free(c);
}

/* Ours is committed: answered with the chat as it is now. */
static void change_done(void)
{
    struct change *c = A.chg;
    A.chg = NULL;
    log_info("app-state change of ours taken", LF_S("collection", NAMES[A.cur]), LF_S("jid", c->jid),
             LF_S("what", wa_as_kind_name(c->kind)), LF_I("on", c->on),
             LF_I("version", A.co[A.cur].st.version));
    if (c->kind == WA_AS_PUSH_NAME) { /* answered with the name (the session took it as it was applied) */
        struct sbuf b;
        struct jsonw w;
        sbuf_init(&b);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kstr(&w, "name", c->jid);
        jw_obj_end(&w);
        if (jw_finish(&w) < 0)
            b.oom = 1;
        answer(c, 202, &b);
        sbuf_free(&b);
        free(c);
    } else {
        const char *p[] = {c->jid};
        if (!sdb_query(SQL_CHAT_EVENT, 1, p, on_chat_event, c))
            chg_fail(c, 503, "try_again", "out of memory");
    }
    job_end();
    run();
}

static const char *index_name(enum wa_as_kind k)
{
    return k == WA_AS_ARCHIVE     ? "archive"
           : k == WA_AS_PIN       ? "pin_v1"
           : k == WA_AS_MUTE      ? "mute"
           : k == WA_AS_PUSH_NAME ? "setting_pushName"
                                  : "markChatAsRead";
}

/* The patch the server took, as the decoder would have read it: one SET. */
static int own_result(const struct change *c, int64_t now)
{
    struct wa_as_action *a = wa_arena_alloc(A.ra, sizeof *a);
    const char **idx = wa_arena_alloc(A.ra, 2 * sizeof *idx);
    char ij[256];
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    int named = c->kind == WA_AS_PUSH_NAME; /* ["setting_pushName"]: the name is in the value */
    jw_arr(&w);
    jw_str(&w, index_name(c->kind));
    if (!named)
        jw_str(&w, c->jid);
    jw_arr_end(&w);
    int bad = jw_finish(&w) < 0 || b.len >= sizeof ij;
    if (!bad)
        memcpy(ij, b.buf, b.len + 1);
    sbuf_free(&b);
    if (!a || !idx || bad)
        return -1;
    idx[0] = index_name(c->kind);
    idx[1] = wa_arena_strndup(A.ra, c->jid, strlen(c->jid));
    a->index_json = wa_arena_strndup(A.ra, ij, strlen(ij));
    if (!idx[1] || !a->index_json)
        return -1;
    a->op = WA_AS_SET;
    memcpy(a->index_mac, A.enc.index_mac, WA_AS_MAC_LEN);
    memcpy(a->value_mac, A.enc.value_mac, WA_AS_MAC_LEN);
    a->index = idx;
    a->n_index = named ? 1 : 2;
    if (named)
        a->name = idx[1];
    a->kind = c->kind;
    a->flag = c->on;
    a->mute_end_ms = c->mute_end_ms;
    a->timestamp_ms = now;
    memset(&A.res, 0, sizeof A.res);
    A.res.state = A.enc.state;
    A.res.actions = a;
    A.res.n = 1;
    return 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_change_answer(void *arg, const wa_node *n)
{
    uint64_t gen = (uint64_t)(uintptr_t)arg;
    struct coll *co = &A.co[A.cur];
    struct change *c = A.chg;
    if (!n || gen != A.gen) {
        /* Taken or not, the next sync tells; the caller tries again. */
        chg_fail(c, 503, "try_again", "the connection went before the server answered; try again");
        co->want = 1;
        job_end();
        run();
        return;
    }
    char err[160];
    struct wa_asiq_coll *cs = NULL;
    size_t nc = 0;
    wa_arena *a = wa_arena_new();
    const struct wa_asiq_coll *got = NULL;
    int parsed = a && wa_asiq_parse(n, a, &cs, &nc, err, sizeof err) == 0;
    for (size_t i = 0; parsed && i < nc; i++)
        if (!strcmp(cs[i].name, NAMES[A.cur]))
            got = &cs[i];
    int code = !parsed ? 502 : !got ? 502 : got->error;
    wa_arena_free(a);
    if (code == 409) {
        /* The server is ahead: its patches first (they win), then ours again on top. */
        log_info("app-state change of ours: the server is ahead; syncing, then sending it again",
                 LF_S("collection", NAMES[A.cur]), LF_S("jid", c->jid), LF_I("try", c->tries + 1));
        A.chg = NULL;
        co->want = 1;
        if (++c->tries >= 3) {
            chg_fail(c, 409, "conflict", "the chat's settings kept changing on the phone; try again");
        } else {
            c->next = A.chq;
            A.chq = c;
        }
        job_end();
        run();
        return;
    }
    if (code) {
        log_warn("app-state change of ours refused", LF_S("collection", NAMES[A.cur]), LF_I("code", code),
                 LF_S("why", parsed ? "" : err));
        chg_fail(c, 502, "whatsapp_refused", "WhatsApp's server refused the change");
        job_end();
        run();
        return;
    }
    if (own_result(c, wall_ms()) < 0) {
        later("out of memory");
        return;
    }
    apply(co->st.version, 0);
}

static void send_change(void)
{
    struct coll *co = &A.co[A.cur];
    struct change *c = A.chg;
    int64_t now = wall_ms();
    struct wa_as_change ch = {c->kind, c->jid, c->on, c->mute_end_ms, c->last_ts, now};
    wa_arena_free(A.ra);
    A.ra = wa_arena_new();
    /* Sealed under the newest key our phone shared (first in A.keys). */
    int rc = A.ra ? wa_as_encode_change(&ch, &co->st, A.keys[0].id, A.keys[0].id_len, A.keys[0].data, 32, &IO,
                                        A.ra, &A.enc)
                  : WA_AS_INTERNAL;
    if (rc != WA_AS_OK) {
        log_warn("app-state change of ours: cannot build the patch", LF_S("why", wa_as_code(rc)));
        chg_fail(c, 500, "internal", "the change could not be built");
        job_end();
        run();
        return;
    }
    struct wa_asiq_req rq = {NAMES[A.cur], co->st.version, 0, A.enc.patch, A.enc.len};
    wa_arena *a = wa_arena_new();
    wa_node *iq = a ? wa_asiq_request(a, &rq, 1) : NULL;
    int r = iq ? wa_client_iq(A.c, a, iq, on_change_answer, (void *)(uintptr_t)A.gen) : -1;
    wa_arena_free(a);
    if (r < 0) {
        chg_fail(c, 409, "not_connected", "the WhatsApp session is not connected");
        job_end();
    }
}

int appsync_change_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[128];
    uint32_t jl;
    const uint8_t *jp = ipc_rd_bytes(rd, &jl);
    if (!jp || jl == 0 || jl >= sizeof jid || memchr(jp, 0, jl))
        return -1;
    memcpy(jid, jp, jl);
    jid[jl] = '\0';
    uint32_t what = ipc_rd_u32(rd), on = ipc_rd_u32(rd);
    int64_t mute_end = (int64_t)ipc_rd_u64(rd), last = (int64_t)ipc_rd_u64(rd);
    if (ipc_rd_end(rd) < 0 || what < 1 || what > 5 || on > 1)
        return -1;
    if (!A.c || wa_client_state(A.c) != WA_CONNECTED) {
        *status = 409;
        jw_error_body(body, "not_connected", "the WhatsApp session is not connected", NULL);
        return 0;
    }
    struct change *c = calloc(1, sizeof *c);
    if (!c) {
        *status = 503;
        jw_error_body(body, "out_of_memory", "try again", NULL);
        return 0;
    }
    c->pid = m->pid, c->msg_id = m->id;
    static const enum wa_as_kind K[] = {WA_AS_OTHER, WA_AS_ARCHIVE,   WA_AS_PIN,
                                        WA_AS_MUTE,  WA_AS_MARK_READ, WA_AS_PUSH_NAME};
    snprintf(c->jid, sizeof c->jid, "%s", jid);
    c->kind = K[what];
    c->on = (int)on;
    c->mute_end_ms = mute_end;
    c->last_ts = last > 0 ? last : 0;
    struct change **t = &A.chq;
    while (*t)
        t = &(*t)->next;
    *t = c;
    run();
    return 1;
}

/* ---- reading what is stored */

static const char SQL_KEYS[] = "SELECT encode(key_id, 'hex'), encode(key_data, 'hex') FROM wa_appstate_keys "
                               "ORDER BY stored_at DESC LIMIT 256";
static const char SQL_STATE[] =
    "SELECT c.version, encode(c.hash, 'hex'), NULL, NULL FROM wa_appstate_collections c WHERE c.name = $1 "
    "UNION ALL SELECT NULL, NULL, encode(m.index_mac, 'hex'), encode(m.value_mac, 'hex') "
    "FROM wa_appstate_map m WHERE m.collection = $1";

/* A key id in hex (its length varies) into out, at most cap bytes. */
static int unhex_id(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 > cap || hex_decode(s, out, n / 2) < 0)
        return -1;
    *len = n / 2;
    return 0;
}

static void send_change(void);

/* The state is read: on with the sync, or with the change. */
static void proceed(void)
{
    if (A.mode == 1)
        send_change();
    else
        send_fetch();
}

static void on_state(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    struct coll *co = &A.co[A.cur];
    if (!res) {
        later(err);
        return;
    }
    map_free(&co->m);
    memset(&co->st, 0, sizeof co->st);
    for (int i = 0; i < PQntuples(res); i++) {
        uint8_t im[WA_AS_MAC_LEN], vm[WA_AS_MAC_LEN];
        if (!PQgetisnull(res, i, 0)) {
            co->st.version = strtoull(PQgetvalue(res, i, 0), NULL, 10);
            if (hex_decode(PQgetvalue(res, i, 1), co->st.hash, WA_LTHASH_LEN) < 0) {
                later("a stored LTHash is unreadable");
                return;
            }
        } else if (hex_decode(PQgetvalue(res, i, 2), im, sizeof im) < 0 ||
                   hex_decode(PQgetvalue(res, i, 3), vm, sizeof vm) < 0 || map_put(&co->m, im, vm) < 0) {
            later("the stored map is unreadable, or out of memory");
            return;
        }
    }
    co->loaded = 1;
    proceed();
}

static void on_keys(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        later(err);
        return;
    }
    A.nkeys = 0;
    for (int i = 0; i < PQntuples(res) && A.nkeys < MAX_KEYS; i++) {
        struct key *k = &A.keys[A.nkeys];
        if (unhex_id(PQgetvalue(res, i, 0), k->id, sizeof k->id, &k->id_len) == 0 &&
            hex_decode(PQgetvalue(res, i, 1), k->data, 32) == 0)
            A.nkeys++;
    }
    if (!A.nkeys) {
        /* Our phone shares its keys after linking: everything waits for them. */
        for (int i = 0; i < NCOLL; i++)
            if (A.co[i].want)
                A.co[i].waiting_key = 1;
        log_info("app-state sync: no sync key yet; waiting for our phone to share one");
        if (A.mode == 1 && A.chg)
            chg_fail(A.chg, 409, "not_synced", "our phone has not shared its app-state keys yet");
        job_end();
        return;
    }
    if (A.co[A.cur].loaded) {
        proceed();
        return;
    }
    const char *p[] = {NAMES[A.cur]};
    if (!sdb_query(SQL_STATE, 1, p, on_state, NULL))
        later("out of memory");
}

static int coll_index(const char *name)
{
    for (int i = 0; i < NCOLL; i++)
        if (name && !strcmp(name, NAMES[i]))
            return i;
    return -1;
}

/* Every collection in step: the next change of ours goes. */
static void run_change(void)
{
    while (A.chq) {
        struct change *c = A.chq;
        int ci = coll_index(wa_as_change_collection(c->kind));
        A.chq = c->next;
        if (ci < 0) {
            chg_fail(c, 500, "internal", "no collection for this change");
            continue;
        }
        if (A.co[ci].waiting_key || A.co[ci].want) {
            /* want: left until the next connect after failing its checks */
            chg_fail(c, 409, "not_synced",
                     A.co[ci].waiting_key
                         ? "waiting for our phone to share an app-state key"
                         : "the chat settings are not in step with the phone; try again later");
            continue;
        }
        if (A.co[ci].paused) {
            chg_fail(c, 503, "try_again", "the chat settings cannot be synced now; try again");
            continue;
        }
        A.busy = 1;
        A.mode = 1;
        A.cur = ci;
        A.chg = c;
        if (!sdb_query(SQL_KEYS, 0, NULL, on_keys, NULL))
            later("out of memory");
        return;
    }
}

static void run(void)
{
    if (A.busy || !A.c || wa_client_state(A.c) != WA_CONNECTED)
        return;
    int i;
    for (i = 0; i < NCOLL; i++)
        if (A.co[i].want && !A.co[i].waiting_key && !A.co[i].paused)
            break;
    if (i == NCOLL) {
        run_change();
        return;
    }
    A.busy = 1;
    A.cur = i;
    if (!sdb_query(SQL_KEYS, 0, NULL, on_keys, NULL))
        later("out of memory");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (int i = 0; i < NCOLL; i++)
        A.co[i].paused = 0;
    run();
}

static void on_server_sync(void *arg, const char *const *names, size_t n)
{
    (void)arg;
    appsync_server_sync(names, (int)n);
}

void appsync_init(struct event_base *base, struct wa_client *c)
{
    A.base = base;
    A.c = c;
    A.retry = evtimer_new(base, on_retry, NULL);
    wa_messaging_set_server_sync(on_server_sync, NULL);
}

void appsync_on_push_name(void (*cb)(const char *name))
{
    push_name_cb = cb;
}

static const char SQL_PUSH_NAME[] = "SELECT value FROM wa_appstate_settings WHERE name = 'push_name'";

static void on_push_name(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx, (void)err;
    if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && *PQgetvalue(res, 0, 0) && push_name_cb)
        push_name_cb(PQgetvalue(res, 0, 0));
}

void appsync_connected(void)
{
    A.gen++;
    while (A.chq) {
        struct change *c = A.chq;
        A.chq = c->next;
        chg_fail(c, 503, "try_again", "the connection was lost; try again");
    }
    A.nasked = 0;
    for (int i = 0; i < NCOLL; i++) {
        A.co[i].want = 1;
        A.co[i].waiting_key = 0;
        A.co[i].resyncs = 0;
        A.co[i].loaded = 0; /* read again: another process may have moved it */
        A.co[i].paused = 0;
    }
    /* The name our phone set last (the session store keeps the one from linking). */
    sdb_query(SQL_PUSH_NAME, 0, NULL, on_push_name, NULL);
    run();
}

void appsync_keys_arrived(void)
{
    /* Every collection: a new key is also how our phone starts the sync after linking. */
    for (int i = 0; i < NCOLL; i++) {
        A.co[i].waiting_key = 0;
        A.co[i].want = 1;
    }
    run();
}

void appsync_server_sync(const char *const *names, int n)
{
    for (int k = 0; k < n; k++)
        for (int i = 0; i < NCOLL; i++)
            if (!strcmp(names[k], NAMES[i])) {
                A.co[i].want = 1;
                log_info("app-state sync: the server says a collection changed",
                         LF_S("collection", NAMES[i]));
            }
    run();
}
