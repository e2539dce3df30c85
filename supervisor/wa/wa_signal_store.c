/* The Signal store of one linked device: its entries (identity, sessions,
 * prekeys, signed prekeys, sender keys), the snapshot file, the journal of
 * changes appended at each flush, and the libsignal callbacks over them.
 * One file (~1,200 lines) on purpose: the journal records exactly the
 * entries the callbacks mark changed, and splitting the change tracking
 * from the entries it tracks would expose it to every caller. */
#include "wa_signal_store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal/curve.h>
#include <signal/session_pre_key.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "wa_crypto.h"

#define SIGNAL_FILE "signal.bin"
#define LOG_FILE "signal.log"
#define MAGIC "WAPISIG1"
#define LOG_MAGIC "WAPISLG1"
#define MAX_FILE (64u << 20)
#define MAX_NAME 128
#define MAX_RECORD (1u << 20)
#define MAX_PENDING 256
/* One batch holds at most what a snapshot may; the journal is compacted once
 * past max(LOG_MIN_BOUND, snapshot size), so a longer one is not ours. */
#define MAX_BATCH MAX_FILE
#define MAX_LOG (4u * MAX_FILE)
#define LOG_MIN_BOUND (256u << 10)
/* Batch: LOG_MAGIC, u32 body length, body, u32 body length again,
 * SHA-256 of everything before it. */
#define LOG_HEAD 12u
#define LOG_TAIL 36u

/* K_SENDER_KEY: a group's sender key of one sender device, named
 * "<group id> <sender name>" (neither has a space). K_SKDM_SENT: the devices
 * our own sender key for a group (the name) was given to. */
enum { K_SESSION = 1, K_IDENTITY = 2, K_SENDER_KEY = 3, K_SKDM_SENT = 4 };
#define KIND_OK(k) ((k) >= K_SESSION && (k) <= K_SKDM_SENT)
enum { OP_PUT = 1, OP_DEL = 2 };

struct entry {
    uint8_t kind;
    uint8_t dirty; /* changed since the last flush: goes into the next batch */
    int32_t device;
    char name[MAX_NAME];
    uint8_t *data;
    size_t len;
};

/* An entry removed since the last flush. */
struct tomb {
    uint8_t kind;
    int32_t device;
    char name[MAX_NAME];
};

/* How to undo the first change of a key since the mark: the entry as it was
 * (existed, its bytes and dirty flag) or its absence. */
struct undo {
    uint8_t kind;
    uint8_t existed, dirty;
    int32_t device;
    char name[MAX_NAME];
    uint8_t *data;
    size_t len;
};

struct wa_signal_store {
    char dir[4096];
    const struct wa_creds *creds;
    struct wa_prekey **prekeys;
    size_t *nprekeys;
    struct entry *e;
    size_t n, cap;
    /* An index of e by key (open addressing, linear probing): slot holds
     * the entry's position + 1, 0 when free; a power of two, at least
     * twice n. Rebuilt when it fills up and when an entry goes. */
    uint32_t *idx;
    size_t icap;
    struct tomb *t;
    size_t nt, tcap;
    uint32_t removed[MAX_PENDING]; /* prekeys used but not yet removed on disk */
    size_t nremoved;
    int changed;      /* some entry is dirty or some tomb is pending */
    int broken;       /* a reload found the files corrupt: never write over them */
    int log_fd;       /* signal.log, opened on the first append */
    size_t log_valid; /* end of the last complete batch: the next one goes here */
    size_t log_size;  /* size on disk as far as known; SIZE_MAX when unknown */
    size_t snap_size; /* size of signal.bin */
    uint64_t identity_changes;
    signal_context *gctx;
    /* wa_signal_store_mark(): changes since are recorded so they can be undone. */
    int marked;
    struct undo *u;
    size_t nu, ucap;
    size_t mark_nt, mark_nremoved;
    int mark_changed;
    uint64_t mark_identity_changes;
};

/* ---- entries ---- */

static void undo_clear(struct wa_signal_store *st)
{
    for (size_t i = 0; i < st->nu; i++) {
        OPENSSL_cleanse(st->u[i].data, st->u[i].len);
        free(st->u[i].data);
    }
    st->nu = 0;
}

static void mark_here(struct wa_signal_store *st);

/* Before the first change of a key since the mark: how to undo it. -1 (and
 * the change must not happen) when out of memory. */
/* arr with room for one more of its n elements of size sz (capacity *cap,
 * doubled when full); NULL when out of memory (arr unchanged). */
static void *grow(void *arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : 16;
    void *na = realloc(arr, c * sz);
    if (na)
        *cap = c;
    return na;
}

static int remember(struct wa_signal_store *st, uint8_t kind, const char *name, size_t nlen, int32_t dev,
                    const struct entry *x)
{
    if (!st->marked)
        return 0;
    for (size_t i = 0; i < st->nu; i++)
        if (st->u[i].kind == kind && st->u[i].device == dev && strlen(st->u[i].name) == nlen &&
            memcmp(st->u[i].name, name, nlen) == 0)
            return 0;
    struct undo *nu = grow(st->u, &st->ucap, st->nu, sizeof *st->u);
    if (!nu)
        return -1;
    st->u = nu;
    struct undo *u = &st->u[st->nu];
    memset(u, 0, sizeof *u);
    if (x) {
        u->data = malloc(x->len ? x->len : 1);
        if (!u->data)
            return -1;
        memcpy(u->data, x->data, x->len);
        u->len = x->len;
        u->existed = 1;
        u->dirty = x->dirty;
    }
    u->kind = kind;
    u->device = dev;
    memcpy(u->name, name, nlen);
    u->name[nlen] = '\0';
    st->nu++;
    return 0;
}

static void entries_clear(struct wa_signal_store *st)
{
    for (size_t i = 0; i < st->n; i++) {
        OPENSSL_cleanse(st->e[i].data, st->e[i].len);
        free(st->e[i].data);
    }
    free(st->e);
    st->e = NULL;
    st->n = st->cap = 0;
    free(st->idx);
    st->idx = NULL;
    st->icap = 0;
    free(st->t);
    st->t = NULL;
    st->nt = st->tcap = 0;
    st->changed = 0;
    undo_clear(st); /* what it would undo is gone */
    st->marked = 0;
}

static uint64_t key_hash(uint8_t kind, const char *name, size_t nlen, int32_t dev)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    h = (h ^ kind) * 1099511628211ull;
    for (int i = 0; i < 4; i++)
        h = (h ^ (uint8_t)((uint32_t)dev >> (8 * i))) * 1099511628211ull;
    for (size_t i = 0; i < nlen; i++)
        h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
    return h;
}

static void index_put(struct wa_signal_store *st, size_t i)
{
    const struct entry *x = &st->e[i];
    size_t m = st->icap - 1, at = key_hash(x->kind, x->name, strlen(x->name), x->device) & m;
    while (st->idx[at])
        at = (at + 1) & m;
    st->idx[at] = (uint32_t)i + 1;
}

/* The index for n entries (and room to grow); -1 when out of memory (then
 * there is none and find scans). */
static int index_rebuild(struct wa_signal_store *st, size_t n)
{
    size_t cap = 64;
    while (cap < 2 * n + 2)
        cap *= 2;
    free(st->idx);
    st->idx = calloc(cap, sizeof *st->idx);
    st->icap = st->idx ? cap : 0;
    if (!st->idx)
        return -1;
    for (size_t i = 0; i < st->n; i++)
        index_put(st, i);
    return 0;
}

static struct entry *find(const struct wa_signal_store *st, uint8_t kind, const char *name, size_t nlen,
                          int32_t dev)
{
    if (st->idx) {
        size_t m = st->icap - 1;
        for (size_t at = key_hash(kind, name, nlen, dev) & m; st->idx[at]; at = (at + 1) & m) {
            struct entry *x = &st->e[st->idx[at] - 1];
            if (x->kind == kind && x->device == dev && memcmp(x->name, name, nlen) == 0 &&
                x->name[nlen] == '\0')
                return x;
        }
        return NULL;
    }
    for (size_t i = 0; i < st->n; i++) {
        struct entry *x = &st->e[i];
        if (x->kind == kind && x->device == dev && strlen(x->name) == nlen &&
            memcmp(x->name, name, nlen) == 0)
            return x;
    }
    return NULL;
}

/* dirty: a change of ours (flushed later), not one read from disk. */
static int put_entry(struct wa_signal_store *st, uint8_t kind, const char *name, size_t nlen, int32_t dev,
                     const uint8_t *data, size_t len, int dirty)
{
    if (nlen == 0 || nlen >= MAX_NAME || memchr(name, '\0', nlen) || len > MAX_RECORD)
        return -1;
    struct entry *x = find(st, kind, name, nlen, dev);
    if (dirty && remember(st, kind, name, nlen, dev, x) < 0)
        return -1;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    if (!x) {
        struct entry *ne = grow(st->e, &st->cap, st->n, sizeof *st->e);
        if (!ne) {
            free(copy);
            return -1;
        }
        st->e = ne;
        x = &st->e[st->n++];
        memset(x, 0, sizeof *x);
        x->kind = kind;
        x->device = dev;
        memcpy(x->name, name, nlen);
        x->name[nlen] = '\0';
        if (st->idx && 2 * st->n + 2 <= st->icap)
            index_put(st, st->n - 1);
        else
            index_rebuild(st, st->n); /* out of memory: find scans until the next rebuild */
    } else {
        OPENSSL_cleanse(x->data, x->len);
        free(x->data);
    }
    x->data = copy;
    x->len = len;
    if (dirty) {
        x->dirty = 1;
        st->changed = 1;
    }
    return 0;
}

static void drop_entry(struct wa_signal_store *st, struct entry *x)
{
    OPENSSL_cleanse(x->data, x->len);
    free(x->data);
    size_t i = (size_t)(x - st->e);
    memmove(&st->e[i], &st->e[i + 1], (st->n - i - 1) * sizeof *x);
    st->n--;
    index_rebuild(st, st->n); /* positions moved */
}

/* Drops an entry and remembers the deletion for the next batch; -1 (entry
 * kept) when out of memory. A tomb and a later put of the same key may both
 * be pending: a batch lists its deletions before its puts, so the put wins. */
static int delete_entry(struct wa_signal_store *st, struct entry *x)
{
    if (remember(st, x->kind, x->name, strlen(x->name), x->device, x) < 0)
        return -1;
    int known = 0;
    for (size_t i = 0; i < st->nt && !known; i++)
        known =
            st->t[i].kind == x->kind && st->t[i].device == x->device && strcmp(st->t[i].name, x->name) == 0;
    if (!known) {
        struct tomb *nt = grow(st->t, &st->tcap, st->nt, sizeof *st->t);
        if (!nt)
            return -1;
        st->t = nt;
        struct tomb *t = &st->t[st->nt++];
        t->kind = x->kind;
        t->device = x->device;
        memcpy(t->name, x->name, sizeof t->name);
    }
    drop_entry(st, x);
    st->changed = 1;
    return 0;
}

/* ---- file ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->n + n)
            c *= 2;
        uint8_t *q = malloc(c);
        if (!q) {
            b->oom = 1;
            return;
        }
        if (b->p) {
            memcpy(q, b->p, b->n);
            OPENSSL_cleanse(b->p, b->n);
            free(b->p);
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void buf_wipe(struct buf *b)
{
    if (b->p)
        OPENSSL_cleanse(b->p, b->n);
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int r = fsync(dfd);
    close(dfd);
    return r;
}

/* The snapshot: every entry, written whole by the atomic path of wa_store. */
static int write_signal(struct wa_signal_store *st, char *err, size_t errlen)
{
    struct buf b = {0};
    put(&b, MAGIC, 8);
    put32(&b, (uint32_t)st->n);
    for (size_t i = 0; i < st->n; i++) {
        const struct entry *x = &st->e[i];
        uint8_t k = x->kind;
        put(&b, &k, 1);
        put32(&b, (uint32_t)x->device);
        put32(&b, (uint32_t)strlen(x->name));
        put(&b, x->name, strlen(x->name));
        put32(&b, (uint32_t)x->len);
        put(&b, x->data, x->len);
    }
    uint8_t h[32];
    if (!b.oom) {
        wa_crypto_sha256(b.p, b.n, h);
        put(&b, h, 32);
    }
    if (b.oom) {
        snprintf(err, errlen, "out of memory");
        buf_wipe(&b);
        return -1;
    }
    int r = wa_store_write_file(st->dir, SIGNAL_FILE, b.p, b.n, err, errlen);
    if (r == 0)
        st->snap_size = b.n;
    buf_wipe(&b);
    return r;
}

/* Reads path whole: 1 read, 0 absent, -1 unreadable or longer than max. */
static int read_whole(const char *path, size_t max, uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size < 0 || (uint64_t)sb.st_size > max) {
        close(fd);
        snprintf(err, errlen, "%s: unreadable or too large", path);
        return -1;
    }
    size_t len = (size_t)sb.st_size, off = 0;
    uint8_t *p = malloc(len ? len : 1);
    while (p && off < len) {
        ssize_t r = read(fd, p + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    if (!p || off != len) {
        if (p)
            OPENSSL_cleanse(p, off);
        free(p);
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    *out = p;
    *outlen = len;
    return 1;
}

static int load_signal(struct wa_signal_store *st, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", st->dir, SIGNAL_FILE);
    uint8_t *p = NULL;
    size_t len = 0;
    int rr = read_whole(path, MAX_FILE, &p, &len, err, errlen);
    if (rr <= 0)
        return rr;
    const char *why = NULL;
    uint8_t h[32];
    if (len < 8 + 4 + 32 || memcmp(p, MAGIC, 8) != 0)
        why = "not a signal store file (bad magic or truncated)";
    else {
        wa_crypto_sha256(p, len - 32, h);
        if (memcmp(h, p + len - 32, 32) != 0)
            why = "checksum mismatch";
    }
    size_t end = why ? 0 : len - 32, at = 12;
    uint32_t cnt = why ? 0 : rd32(p + 8);
    for (uint32_t i = 0; !why && i < cnt; i++) {
        if (end - at < 1 + 4 + 4) {
            why = "truncated entry";
            break;
        }
        uint8_t kind = p[at];
        int32_t dev = (int32_t)rd32(p + at + 1);
        uint32_t nl = rd32(p + at + 5);
        at += 9;
        if (!KIND_OK(kind) || nl == 0 || nl >= MAX_NAME || end - at < (size_t)nl + 4) {
            why = "bad entry header";
            break;
        }
        const char *name = (const char *)p + at;
        at += nl;
        uint32_t dl = rd32(p + at);
        at += 4;
        if (dl > MAX_RECORD || end - at < dl) {
            why = "bad entry length";
            break;
        }
        if (find(st, kind, name, nl, dev)) {
            why = "duplicate entry";
            break;
        }
        if (put_entry(st, kind, name, nl, dev, p + at, dl, 0) < 0) {
            why = "bad entry";
            break;
        }
        at += dl;
    }
    if (!why && at != end)
        why = "trailing bytes";
    OPENSSL_cleanse(p, len);
    free(p);
    if (why) {
        entries_clear(st);
        snprintf(err, errlen, "%s is corrupt: %s", path, why);
        return -1;
    }
    st->snap_size = len;
    return 1;
}

/* ---- journal ----
 * signal.log holds the changes flushed since signal.bin was written, one
 * batch per flush: LOG_MAGIC, u32 L, L bytes of body, u32 L, SHA-256 of all
 * that. Body: u32 count, then records {u8 op, u8 kind, u32 device, u32 name
 * length, name, and for a put u32 length, data}, deletions before puts.
 * A record carries the whole new value of its key, so replaying a batch
 * never depends on what the key held before. */

/* The length of the complete, intact batch at p[off..size), or 0. */
static size_t batch_at(const uint8_t *p, size_t size, size_t off)
{
    size_t rem = size - off;
    if (rem < LOG_HEAD + LOG_TAIL || memcmp(p + off, LOG_MAGIC, 8) != 0)
        return 0;
    uint32_t bl = rd32(p + off + 8);
    if (bl > MAX_BATCH || rem - LOG_HEAD - LOG_TAIL < bl || rd32(p + off + LOG_HEAD + bl) != bl)
        return 0;
    uint8_t h[32];
    wa_crypto_sha256(p + off, LOG_HEAD + bl + 4, h);
    if (memcmp(h, p + off + LOG_HEAD + bl + 4, 32) != 0)
        return 0;
    return LOG_HEAD + bl + LOG_TAIL;
}

/* Applies one intact batch body; NULL or why it is malformed. */
static const char *apply_batch(struct wa_signal_store *st, const uint8_t *b, size_t n)
{
    if (n < 4)
        return "batch without a count";
    uint32_t cnt = rd32(b);
    size_t at = 4;
    for (uint32_t i = 0; i < cnt; i++) {
        if (n - at < 10)
            return "truncated record";
        uint8_t op = b[at], kind = b[at + 1];
        int32_t dev = (int32_t)rd32(b + at + 2);
        uint32_t nl = rd32(b + at + 6);
        at += 10;
        if ((op != OP_PUT && op != OP_DEL) || !KIND_OK(kind) || nl == 0 || nl >= MAX_NAME || n - at < nl ||
            memchr(b + at, '\0', nl))
            return "bad record header";
        const char *name = (const char *)b + at;
        at += nl;
        if (op == OP_DEL) {
            struct entry *x = find(st, kind, name, nl, dev);
            if (x)
                drop_entry(st, x);
            continue;
        }
        if (n - at < 4)
            return "truncated record";
        uint32_t dl = rd32(b + at);
        at += 4;
        if (dl > MAX_RECORD || n - at < dl)
            return "bad record length";
        if (put_entry(st, kind, name, nl, dev, b + at, dl, 0) < 0)
            return "bad record";
        at += dl;
    }
    return at == n ? NULL : "trailing bytes in a batch";
}

/* Replays signal.log onto the snapshot already loaded. A crash during an
 * append leaves at most one incomplete batch, at the end (appends go only
 * after the last intact batch, and a stale tail is cut off durably before
 * one): it was never acknowledged as flushed, so it is ignored here and cut
 * off by the next append. A damaged batch with more bytes after it cannot
 * come from a crash: corruption, reported, and nothing is written. */
static int load_log(struct wa_signal_store *st, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", st->dir, LOG_FILE);
    uint8_t *p = NULL;
    size_t len = 0;
    int rr = read_whole(path, MAX_LOG, &p, &len, err, errlen);
    if (rr <= 0) {
        st->log_valid = st->log_size = 0;
        return rr;
    }
    size_t off = 0;
    const char *why = NULL;
    while (off < len) {
        size_t tot = batch_at(p, len, off);
        if (tot) {
            if ((why = apply_batch(st, p + off + LOG_HEAD, tot - LOG_HEAD - LOG_TAIL)))
                break;
            off += tot;
            continue;
        }
        size_t rem = len - off;
        if (rem >= LOG_HEAD && memcmp(p + off, LOG_MAGIC, 8) == 0 && rd32(p + off + 8) <= MAX_BATCH) {
            /* The header is readable, so is where the batch should end. */
            if ((size_t)LOG_HEAD + rd32(p + off + 8) + LOG_TAIL < rem)
                why = "a damaged batch is followed by more data";
        } else if (rem >= LOG_HEAD) {
            /* Unreadable header: a torn append whose first block never
             * reached the disk, unless an intact batch follows. */
            const uint8_t *q = p + off + 1;
            while (!why && (q = memmem(q, (size_t)(p + len - q), LOG_MAGIC, 8)) != NULL) {
                if (batch_at(p, len, (size_t)(q - p)))
                    why = "unreadable bytes before an intact batch";
                q++;
            }
        }
        if (!why)
            log_warn("the Signal journal ends in an incomplete batch (an interrupted write); ignoring it",
                     LF_S("path", path), LF_I("offset", (long long)off), LF_I("bytes", (long long)rem));
        break;
    }
    OPENSSL_cleanse(p, len);
    free(p);
    if (why) {
        snprintf(err, errlen, "%s is corrupt: %s (at byte %zu)", path, why, off);
        return -1;
    }
    st->log_valid = off;
    st->log_size = len;
    return 1;
}

/* Snapshot, then journal; on failure nothing is kept. */
static int load_all(struct wa_signal_store *st, char *err, size_t errlen)
{
    entries_clear(st);
    st->snap_size = 0;
    if (load_signal(st, err, errlen) < 0 || load_log(st, err, errlen) < 0) {
        entries_clear(st);
        return -1;
    }
    return 0;
}

static int log_open(struct wa_signal_store *st, char *err, size_t errlen)
{
    if (st->log_fd >= 0)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", st->dir, LOG_FILE);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        /* fdatasync covers the file's bytes, not its name. */
        if (fd >= 0 && sync_dir(st->dir) < 0) {
            snprintf(err, errlen, "cannot sync directory %s: %s", st->dir, strerror(errno));
            close(fd);
            return -1;
        }
    }
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Shorter than what was read from it: someone else's file now. */
    if ((uint64_t)sb.st_size < st->log_valid) {
        snprintf(err, errlen, "%s shrank below its last intact batch; not writing", path);
        close(fd);
        return -1;
    }
    st->log_fd = fd;
    st->log_size = (size_t)sb.st_size;
    return 0;
}

/* Writes one batch after the last intact one, durably. */
static int log_append(struct wa_signal_store *st, const uint8_t *b, size_t n, char *err, size_t errlen)
{
    if (log_open(st, err, errlen) < 0)
        return -1;
    if (n > MAX_LOG - st->log_valid) {
        snprintf(err, errlen, "%s/%s is full", st->dir, LOG_FILE);
        return -1;
    }
    if (st->log_size != st->log_valid) {
        /* An interrupted batch goes first, and durably: new bytes over a
         * longer stale tail could otherwise, after a crash, read as a
         * damaged batch followed by more data. */
        if (ftruncate(st->log_fd, (off_t)st->log_valid) < 0 || fdatasync(st->log_fd) < 0) {
            snprintf(err, errlen, "cannot cut %s/%s: %s", st->dir, LOG_FILE, strerror(errno));
            return -1;
        }
        st->log_size = st->log_valid;
    }
    st->log_size = SIZE_MAX; /* unknown until the batch is durable */
    size_t off = 0;
    while (off < n) {
        ssize_t w = pwrite(st->log_fd, b + off, n - off, (off_t)(st->log_valid + off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write %s/%s: %s", st->dir, LOG_FILE,
                     w < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        off += (size_t)w;
    }
    if (fdatasync(st->log_fd) < 0) {
        snprintf(err, errlen, "cannot sync %s/%s: %s", st->dir, LOG_FILE, strerror(errno));
        return -1;
    }
    st->log_valid += n;
    st->log_size = st->log_valid;
    return 0;
}

/* The batch of everything changed since the last flush. */
static int build_batch(const struct wa_signal_store *st, struct buf *b, char *err, size_t errlen)
{
    uint32_t cnt = (uint32_t)st->nt;
    for (size_t i = 0; i < st->n; i++)
        cnt += st->e[i].dirty;
    put(b, LOG_MAGIC, 8);
    put32(b, 0); /* the body length, set below */
    put32(b, cnt);
    for (size_t i = 0; i < st->nt; i++) {
        const struct tomb *t = &st->t[i];
        uint8_t hd[2] = {OP_DEL, t->kind};
        put(b, hd, 2);
        put32(b, (uint32_t)t->device);
        put32(b, (uint32_t)strlen(t->name));
        put(b, t->name, strlen(t->name));
    }
    for (size_t i = 0; i < st->n; i++) {
        const struct entry *x = &st->e[i];
        if (!x->dirty)
            continue;
        uint8_t hd[2] = {OP_PUT, x->kind};
        put(b, hd, 2);
        put32(b, (uint32_t)x->device);
        put32(b, (uint32_t)strlen(x->name));
        put(b, x->name, strlen(x->name));
        put32(b, (uint32_t)x->len);
        put(b, x->data, x->len);
    }
    if (b->oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t bl = b->n - LOG_HEAD;
    if (bl > MAX_BATCH) {
        snprintf(err, errlen, "too many Signal changes for one flush (%zu bytes)", bl);
        return -1;
    }
    b->p[8] = (uint8_t)(bl >> 24), b->p[9] = (uint8_t)(bl >> 16), b->p[10] = (uint8_t)(bl >> 8),
    b->p[11] = (uint8_t)bl;
    put32(b, (uint32_t)bl);
    uint8_t h[32];
    if (!b->oom) {
        wa_crypto_sha256(b->p, b->n, h);
        put(b, h, 32);
    }
    if (b->oom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Folds the journal into a fresh snapshot: signal.bin is replaced first
 * (written, fsynced, renamed, directory fsynced), the journal emptied after.
 * Only called with nothing pending, right after an append, so the snapshot
 * is exactly the state after the journal's last batch, S_k = S_0 + B_1..B_k.
 * A crash between the two steps leaves S_k with B_1..B_k still in the
 * journal, and replaying them onto S_k gives S_k again: each key touched
 * ends with the value of the last batch that touched it, which is its value
 * in S_k as no later batch changed it; untouched keys keep S_k's value.
 * The same holds when emptying the journal fails and later batches are
 * appended behind B_k: B_1..B_k replay to S_k, the rest moves forward from
 * there. A snapshot holding changes the journal does not end with would
 * break this, hence the refusal below. */
static int compact(struct wa_signal_store *st, char *err, size_t errlen)
{
    if (st->changed) {
        snprintf(err, errlen, "unflushed changes");
        return -1;
    }
    if (log_open(st, err, errlen) < 0 || write_signal(st, err, errlen) < 0)
        return -1;
    if (ftruncate(st->log_fd, 0) < 0 || fdatasync(st->log_fd) < 0) {
        snprintf(err, errlen, "cannot empty %s/%s: %s", st->dir, LOG_FILE, strerror(errno));
        st->log_size = SIZE_MAX;
        return -1;
    }
    st->log_valid = st->log_size = 0;
    return 0;
}

static size_t log_bound(const struct wa_signal_store *st)
{
    return st->snap_size > LOG_MIN_BOUND ? st->snap_size : LOG_MIN_BOUND;
}

/* ---- public ---- */

struct wa_signal_store *wa_signal_store_open(const char *dir, const struct wa_creds *creds,
                                             struct wa_prekey **prekeys, size_t *nprekeys, char *err,
                                             size_t errlen)
{
    struct wa_signal_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    st->creds = creds;
    st->prekeys = prekeys;
    st->nprekeys = nprekeys;
    st->log_fd = -1;
    if (load_all(st, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    return st;
}

int wa_signal_store_dirty(const struct wa_signal_store *st)
{
    return st->changed || st->nremoved > 0;
}

int wa_signal_store_flush(struct wa_signal_store *st, char *err, size_t errlen)
{
    if (st->broken) {
        snprintf(err, errlen, "the Signal store in %s did not reload; not writing over it", st->dir);
        return -1;
    }
    if (st->nremoved) {
        struct wa_prekey *k = *st->prekeys;
        size_t n = *st->nprekeys, w = 0;
        for (size_t i = 0; i < n; i++) {
            int gone = 0;
            for (size_t j = 0; j < st->nremoved; j++)
                gone |= k[i].id == st->removed[j];
            if (gone)
                OPENSSL_cleanse(&k[i], sizeof k[i]);
            else
                k[w++] = k[i];
        }
        *st->nprekeys = w;
        st->nremoved = 0;
        if (wa_store_prekeys_save(st->dir, k, w, err, errlen) < 0)
            return -1;
    }
    if (st->changed) {
        struct buf b = {0};
        int r = build_batch(st, &b, err, errlen);
        if (r == 0)
            r = log_append(st, b.p, b.n, err, errlen);
        buf_wipe(&b);
        if (r < 0)
            return -1; /* everything stays pending for the next flush */
        for (size_t i = 0; i < st->n; i++)
            st->e[i].dirty = 0;
        st->nt = 0;
        st->changed = 0;
        if (st->marked)
            mark_here(st); /* durable now: never undone */
        /* The changes are durable now; a failed compaction only delays it. */
        char cerr[4608]; /* room for the paths in its messages */
        if (st->log_valid > log_bound(st) && compact(st, cerr, sizeof cerr) < 0)
            log_warn("cannot compact the Signal journal; will retry", LF_S("error", cerr));
    }
    return 0;
}

static void mark_here(struct wa_signal_store *st)
{
    undo_clear(st);
    st->mark_nt = st->nt;
    st->mark_nremoved = st->nremoved;
    st->mark_changed = st->changed;
    st->mark_identity_changes = st->identity_changes;
}

void wa_signal_store_mark(struct wa_signal_store *st)
{
    st->marked = 1;
    mark_here(st);
}

void wa_signal_store_unmark(struct wa_signal_store *st)
{
    undo_clear(st);
    st->marked = 0;
}

int wa_signal_store_rollback(struct wa_signal_store *st)
{
    if (!st->marked)
        return -1;
    for (size_t i = 0; i < st->nu; i++) {
        struct undo *u = &st->u[i];
        size_t nlen = strlen(u->name);
        struct entry *x = find(st, u->kind, u->name, nlen, u->device);
        if (!u->existed) {
            if (x)
                drop_entry(st, x);
            continue;
        }
        if (!x) {
            /* Deleted since the mark: back in its place (as it was, below). */
            if (put_entry(st, u->kind, u->name, nlen, u->device, u->data, u->len, 0) < 0)
                return -1; /* out of memory: the caller reloads */
            x = find(st, u->kind, u->name, nlen, u->device);
        }
        OPENSSL_cleanse(x->data, x->len);
        free(x->data);
        x->data = u->data; /* the saved bytes move back */
        x->len = u->len;
        x->dirty = u->dirty;
        u->data = NULL;
        u->len = 0;
    }
    /* Tombs and used prekeys are only ever appended: those since the mark go. */
    st->nt = st->mark_nt;
    st->nremoved = st->mark_nremoved;
    st->changed = st->mark_changed;
    st->identity_changes = st->mark_identity_changes;
    undo_clear(st);
    return 0;
}

int wa_signal_store_reload(struct wa_signal_store *st, char *err, size_t errlen)
{
    st->nremoved = 0;
    /* What is in memory then is not what is on disk: no flush may replace it. */
    st->broken = load_all(st, err, errlen) < 0;
    return st->broken ? -1 : 0;
}

size_t wa_signal_store_session_count(const struct wa_signal_store *st)
{
    size_t c = 0;
    for (size_t i = 0; i < st->n; i++)
        c += st->e[i].kind == K_SESSION;
    return c;
}

int wa_signal_store_has_session(const struct wa_signal_store *st, const char *name, int32_t device)
{
    return find(st, K_SESSION, name, strlen(name), device) != NULL;
}

/* The journal goes first: a snapshot left alone is an older, whole state. */
int wa_signal_store_wipe(const char *dir)
{
    static const char *const files[] = {LOG_FILE, SIGNAL_FILE, SIGNAL_FILE ".tmp"};
    int r = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (unlink(path) < 0 && errno != ENOENT && i < 2)
            r = -1;
    }
    sync_dir(dir);
    return r;
}

void wa_signal_store_free(struct wa_signal_store *st)
{
    if (!st)
        return;
    entries_clear(st);
    free(st->u);
    if (st->log_fd >= 0)
        close(st->log_fd);
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
}

/* ---- libsignal callbacks ---- */

static int s_load_session(signal_buffer **record, signal_buffer **user_record,
                          const signal_protocol_address *a, void *ud)
{
    struct wa_signal_store *st = ud;
    *user_record = NULL;
    struct entry *x = find(st, K_SESSION, a->name, a->name_len, a->device_id);
    if (!x)
        return 0;
    *record = signal_buffer_create(x->data, x->len);
    return *record ? 1 : SG_ERR_NOMEM;
}

static int s_sub_device_sessions(signal_int_list **sessions, const char *name, size_t name_len, void *ud)
{
    struct wa_signal_store *st = ud;
    signal_int_list *l = signal_int_list_alloc();
    if (!l)
        return SG_ERR_NOMEM;
    int c = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct entry *x = &st->e[i];
        if (x->kind == K_SESSION && strlen(x->name) == name_len && memcmp(x->name, name, name_len) == 0 &&
            x->device != 1) {
            signal_int_list_push_back(l, x->device);
            c++;
        }
    }
    *sessions = l;
    return c;
}

static int s_store_session(const signal_protocol_address *a, uint8_t *record, size_t len, uint8_t *urec,
                           size_t ulen, void *ud)
{
    (void)urec, (void)ulen;
    struct wa_signal_store *st = ud;
    if (put_entry(st, K_SESSION, a->name, a->name_len, a->device_id, record, len, 1) < 0)
        return SG_ERR_NOMEM;
    return 0;
}

static int s_contains_session(const signal_protocol_address *a, void *ud)
{
    return find(ud, K_SESSION, a->name, a->name_len, a->device_id) != NULL;
}

static int s_delete_session(const signal_protocol_address *a, void *ud)
{
    struct wa_signal_store *st = ud;
    struct entry *x = find(st, K_SESSION, a->name, a->name_len, a->device_id);
    if (!x)
        return 0;
    return delete_entry(st, x) < 0 ? SG_ERR_NOMEM : 1;
}

static int s_delete_all_sessions(const char *name, size_t name_len, void *ud)
{
    struct wa_signal_store *st = ud;
    int c = 0;
    for (size_t i = 0; i < st->n;) {
        struct entry *x = &st->e[i];
        if (x->kind == K_SESSION && strlen(x->name) == name_len && memcmp(x->name, name, name_len) == 0) {
            if (delete_entry(st, x) < 0)
                return SG_ERR_NOMEM;
            c++;
        } else
            i++;
    }
    return c;
}

static int make_pair(signal_context *g, const uint8_t priv[32], const uint8_t pub[32], ec_key_pair **out)
{
    uint8_t p33[33];
    p33[0] = 5;
    memcpy(p33 + 1, pub, 32);
    ec_public_key *pk = NULL;
    ec_private_key *sk = NULL;
    int r = curve_decode_point(&pk, p33, 33, g);
    if (r == 0)
        r = curve_decode_private_point(&sk, priv, 32, g);
    if (r == 0)
        r = ec_key_pair_create(out, pk, sk);
    SIGNAL_UNREF(pk);
    SIGNAL_UNREF(sk);
    return r;
}

static int p_load(signal_buffer **record, uint32_t id, void *ud)
{
    struct wa_signal_store *st = ud;
    for (size_t j = 0; j < st->nremoved; j++)
        if (st->removed[j] == id)
            return SG_ERR_INVALID_KEY_ID;
    const struct wa_prekey *k = *st->prekeys;
    for (size_t i = 0; i < *st->nprekeys; i++) {
        if (k[i].id != id)
            continue;
        ec_key_pair *pair = NULL;
        session_pre_key *pk = NULL;
        int r = make_pair(st->gctx, k[i].priv, k[i].pub, &pair);
        if (r == 0)
            r = session_pre_key_create(&pk, id, pair);
        if (r == 0)
            r = session_pre_key_serialize(record, pk);
        SIGNAL_UNREF(pk);
        SIGNAL_UNREF(pair);
        return r < 0 ? r : SG_SUCCESS;
    }
    return SG_ERR_INVALID_KEY_ID;
}

static int p_store(uint32_t id, uint8_t *record, size_t len, void *ud)
{
    (void)id, (void)record, (void)len, (void)ud;
    return SG_ERR_UNKNOWN; /* prekeys are made by the client's generator, never by libsignal */
}

static int p_contains(uint32_t id, void *ud)
{
    struct wa_signal_store *st = ud;
    for (size_t j = 0; j < st->nremoved; j++)
        if (st->removed[j] == id)
            return 0;
    for (size_t i = 0; i < *st->nprekeys; i++)
        if ((*st->prekeys)[i].id == id)
            return 1;
    return 0;
}

static int p_remove(uint32_t id, void *ud)
{
    struct wa_signal_store *st = ud;
    if (!p_contains(id, ud))
        return 0;
    if (st->nremoved == MAX_PENDING) {
        /* Under a mark nothing may become durable before its commit. */
        char err[200];
        if (st->marked || wa_signal_store_flush(st, err, sizeof err) < 0)
            return SG_ERR_UNKNOWN;
    }
    st->removed[st->nremoved++] = id;
    return 0;
}

static int sp_load(signal_buffer **record, uint32_t id, void *ud)
{
    struct wa_signal_store *st = ud;
    if (id != st->creds->spk_id)
        return SG_ERR_INVALID_KEY_ID;
    ec_key_pair *pair = NULL;
    session_signed_pre_key *sk = NULL;
    int r = make_pair(st->gctx, st->creds->spk_priv, st->creds->spk_pub, &pair);
    if (r == 0)
        r = session_signed_pre_key_create(&sk, id, 0, pair, st->creds->spk_sig, 64);
    if (r == 0)
        r = session_signed_pre_key_serialize(record, sk);
    SIGNAL_UNREF(sk);
    SIGNAL_UNREF(pair);
    return r < 0 ? r : SG_SUCCESS;
}

static int sp_store(uint32_t id, uint8_t *record, size_t len, void *ud)
{
    (void)id, (void)record, (void)len, (void)ud;
    return SG_ERR_UNKNOWN;
}

static int sp_contains(uint32_t id, void *ud)
{
    return id == ((struct wa_signal_store *)ud)->creds->spk_id;
}

static int sp_remove(uint32_t id, void *ud)
{
    (void)id, (void)ud;
    return 0;
}

static int i_get_pair(signal_buffer **pub, signal_buffer **priv, void *ud)
{
    struct wa_signal_store *st = ud;
    uint8_t p33[33];
    p33[0] = 5;
    memcpy(p33 + 1, st->creds->ident_pub, 32);
    *pub = signal_buffer_create(p33, 33);
    *priv = signal_buffer_create(st->creds->ident_priv, 32);
    if (!*pub || !*priv) {
        signal_buffer_free(*pub);
        signal_buffer_bzero_free(*priv);
        return SG_ERR_NOMEM;
    }
    return 0;
}

static int i_get_regid(void *ud, uint32_t *rid)
{
    *rid = ((struct wa_signal_store *)ud)->creds->registration_id;
    return 0;
}

static int i_save(const signal_protocol_address *a, uint8_t *key, size_t len, void *ud)
{
    struct wa_signal_store *st = ud;
    if (!key) {
        struct entry *x = find(st, K_IDENTITY, a->name, a->name_len, a->device_id);
        if (x && delete_entry(st, x) < 0)
            return SG_ERR_NOMEM;
        return 0;
    }
    struct entry *x = find(st, K_IDENTITY, a->name, a->name_len, a->device_id);
    if (x && x->len == len && memcmp(x->data, key, len) == 0)
        return 0;
    if (put_entry(st, K_IDENTITY, a->name, a->name_len, a->device_id, key, len, 1) < 0)
        return SG_ERR_NOMEM;
    return 0;
}

/* A changed identity key is accepted, as WhatsApp's own clients do (they show
 * "security code changed"): refusing it would silently lose every later
 * message from a contact who reinstalled. The change is logged and counted. */
static int i_trusted(const signal_protocol_address *a, uint8_t *key, size_t len, void *ud)
{
    struct wa_signal_store *st = ud;
    struct entry *x = find(st, K_IDENTITY, a->name, a->name_len, a->device_id);
    if (x && (x->len != len || memcmp(x->data, key, len) != 0)) {
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(a->name_len < 95 ? a->name_len : 95), a->name);
        st->identity_changes++;
        log_warn("a contact's identity key changed; trusting the new key", LF_S("address", name),
                 LF_I("device", a->device_id));
    }
    return 1;
}

uint64_t wa_signal_store_identity_changes(const struct wa_signal_store *st)
{
    return st->identity_changes;
}

/* The entry name of a sender key; -1 when it does not fit. */
static int sk_name(const signal_protocol_sender_key_name *n, char *out, size_t cap)
{
    if (n->group_id_len == 0 || n->sender.name_len == 0 || n->group_id_len + 1 + n->sender.name_len >= cap ||
        memchr(n->group_id, ' ', n->group_id_len) || memchr(n->group_id, 0, n->group_id_len) ||
        memchr(n->sender.name, 0, n->sender.name_len))
        return -1;
    memcpy(out, n->group_id, n->group_id_len);
    out[n->group_id_len] = ' ';
    memcpy(out + n->group_id_len + 1, n->sender.name, n->sender.name_len);
    out[n->group_id_len + 1 + n->sender.name_len] = '\0';
    return (int)(n->group_id_len + 1 + n->sender.name_len);
}

static int sk_store(const signal_protocol_sender_key_name *n, uint8_t *record, size_t len, uint8_t *urec,
                    size_t ulen, void *ud)
{
    (void)urec, (void)ulen;
    char name[MAX_NAME];
    int nl = sk_name(n, name, sizeof name);
    if (nl < 0)
        return SG_ERR_INVAL;
    if (put_entry(ud, K_SENDER_KEY, name, (size_t)nl, n->sender.device_id, record, len, 1) < 0)
        return SG_ERR_NOMEM;
    return 0;
}

static int sk_load(signal_buffer **record, signal_buffer **urec, const signal_protocol_sender_key_name *n,
                   void *ud)
{
    *urec = NULL;
    char name[MAX_NAME];
    int nl = sk_name(n, name, sizeof name);
    struct entry *x = nl < 0 ? NULL : find(ud, K_SENDER_KEY, name, (size_t)nl, n->sender.device_id);
    if (!x)
        return 0;
    *record = signal_buffer_create(x->data, x->len);
    return *record ? 1 : SG_ERR_NOMEM;
}

int wa_signal_store_drop_sender_key(struct wa_signal_store *st, const char *group, const char *sender,
                                    int32_t device)
{
    char name[MAX_NAME];
    int nl = snprintf(name, sizeof name, "%s %s", group, sender);
    if (nl < 0 || (size_t)nl >= sizeof name)
        return -1;
    struct entry *x = find(st, K_SENDER_KEY, name, (size_t)nl, device);
    return x ? delete_entry(st, x) : 0;
}

const uint8_t *wa_signal_store_skdm_sent(const struct wa_signal_store *st, const char *group, size_t *len)
{
    struct entry *x = find(st, K_SKDM_SENT, group, strlen(group), 0);
    *len = x ? x->len : 0;
    return x ? x->data : NULL;
}

int wa_signal_store_set_skdm_sent(struct wa_signal_store *st, const char *group, const uint8_t *list,
                                  size_t len)
{
    size_t nl = strlen(group);
    if (nl == 0 || nl >= MAX_NAME || len > MAX_RECORD)
        return -1;
    if (len == 0) {
        struct entry *x = find(st, K_SKDM_SENT, group, nl, 0);
        return x ? delete_entry(st, x) : 0;
    }
    return put_entry(st, K_SKDM_SENT, group, nl, 0, list, len, 1);
}

size_t wa_signal_store_sender_key_count(const struct wa_signal_store *st)
{
    size_t c = 0;
    for (size_t i = 0; i < st->n; i++)
        c += st->e[i].kind == K_SENDER_KEY;
    return c;
}

int wa_signal_store_context(struct wa_signal_store *st, signal_context *gctx,
                            signal_protocol_store_context **out)
{
    st->gctx = gctx;
    signal_protocol_store_context *sc = NULL;
    if (signal_protocol_store_context_create(&sc, gctx) != 0)
        return -1;
    signal_protocol_session_store ss = {s_load_session,
                                        s_sub_device_sessions,
                                        s_store_session,
                                        s_contains_session,
                                        s_delete_session,
                                        s_delete_all_sessions,
                                        NULL,
                                        st};
    signal_protocol_pre_key_store ps = {p_load, p_store, p_contains, p_remove, NULL, st};
    signal_protocol_signed_pre_key_store sps = {sp_load, sp_store, sp_contains, sp_remove, NULL, st};
    signal_protocol_identity_key_store is = {i_get_pair, i_get_regid, i_save, i_trusted, NULL, st};
    signal_protocol_sender_key_store sks = {sk_store, sk_load, NULL, st};
    if (signal_protocol_store_context_set_session_store(sc, &ss) ||
        signal_protocol_store_context_set_pre_key_store(sc, &ps) ||
        signal_protocol_store_context_set_signed_pre_key_store(sc, &sps) ||
        signal_protocol_store_context_set_identity_key_store(sc, &is) ||
        signal_protocol_store_context_set_sender_key_store(sc, &sks)) {
        signal_protocol_store_context_destroy(sc);
        return -1;
    }
    *out = sc;
    return 0;
}
