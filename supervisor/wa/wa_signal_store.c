#include "wa_signal_store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal/curve.h>
#include <signal/session_pre_key.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "wa_crypto.h"

#define SIGNAL_FILE "signal.bin"
#define MAGIC "WAPISIG1"
#define MAX_FILE (64u << 20)
#define MAX_NAME 128
#define MAX_RECORD (1u << 20)
#define MAX_PENDING 256

enum { K_SESSION = 1, K_IDENTITY = 2 };

struct entry {
    uint8_t kind;
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
    uint32_t removed[MAX_PENDING]; /* prekeys used but not yet removed on disk */
    size_t nremoved;
    int dirty;
    uint64_t identity_changes;
    signal_context *gctx;
};

/* ---- entries ---- */

static void entries_clear(struct wa_signal_store *st)
{
    for (size_t i = 0; i < st->n; i++) {
        OPENSSL_cleanse(st->e[i].data, st->e[i].len);
        free(st->e[i].data);
    }
    free(st->e);
    st->e = NULL;
    st->n = st->cap = 0;
}

static struct entry *find(const struct wa_signal_store *st, uint8_t kind, const char *name, size_t nlen, int32_t dev)
{
    for (size_t i = 0; i < st->n; i++) {
        struct entry *x = &st->e[i];
        if (x->kind == kind && x->device == dev && strlen(x->name) == nlen && memcmp(x->name, name, nlen) == 0)
            return x;
    }
    return NULL;
}

static int put_entry(struct wa_signal_store *st, uint8_t kind, const char *name, size_t nlen, int32_t dev,
                     const uint8_t *data, size_t len)
{
    if (nlen == 0 || nlen >= MAX_NAME || memchr(name, '\0', nlen) || len > MAX_RECORD)
        return -1;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, data, len);
    struct entry *x = find(st, kind, name, nlen, dev);
    if (!x) {
        if (st->n == st->cap) {
            size_t c = st->cap ? st->cap * 2 : 16;
            struct entry *ne = realloc(st->e, c * sizeof *ne);
            if (!ne) {
                free(copy);
                return -1;
            }
            st->e = ne;
            st->cap = c;
        }
        x = &st->e[st->n++];
        memset(x, 0, sizeof *x);
        x->kind = kind;
        x->device = dev;
        memcpy(x->name, name, nlen);
        x->name[nlen] = '\0';
    } else {
        OPENSSL_cleanse(x->data, x->len);
        free(x->data);
    }
    x->data = copy;
    x->len = len;
    return 0;
}

static void drop_entry(struct wa_signal_store *st, struct entry *x)
{
    OPENSSL_cleanse(x->data, x->len);
    free(x->data);
    size_t i = (size_t)(x - st->e);
    memmove(&st->e[i], &st->e[i + 1], (st->n - i - 1) * sizeof *x);
    st->n--;
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
        free(b.p);
        return -1;
    }
    int r = wa_store_write_file(st->dir, SIGNAL_FILE, b.p, b.n, err, errlen);
    OPENSSL_cleanse(b.p, b.n);
    free(b.p);
    return r;
}

static int load_signal(struct wa_signal_store *st, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", st->dir, SIGNAL_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size > MAX_FILE) {
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
        free(p);
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    const char *why = NULL;
    uint8_t h[32];
    if (len < 8 + 4 + 32 || memcmp(p, MAGIC, 8) != 0)
        why = "not a signal store file (bad magic or truncated)";
    else {
        wa_crypto_sha256(p, len - 32, h);
        if (memcmp(h, p + len - 32, 32) != 0)
            why = "checksum mismatch";
    }
    size_t end = len - 32, at = 12;
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
        if ((kind != K_SESSION && kind != K_IDENTITY) || nl == 0 || nl >= MAX_NAME || end - at < (size_t)nl + 4) {
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
        if (put_entry(st, kind, name, nl, dev, p + at, dl) < 0) {
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
    return 1;
}

/* ---- public ---- */

struct wa_signal_store *wa_signal_store_open(const char *dir, const struct wa_creds *creds, struct wa_prekey **prekeys,
                                             size_t *nprekeys, char *err, size_t errlen)
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
    if (load_signal(st, err, errlen) < 0) {
        free(st);
        return NULL;
    }
    return st;
}

int wa_signal_store_dirty(const struct wa_signal_store *st)
{
    return st->dirty || st->nremoved > 0;
}

int wa_signal_store_flush(struct wa_signal_store *st, char *err, size_t errlen)
{
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
    if (st->dirty) {
        if (write_signal(st, err, errlen) < 0)
            return -1;
        st->dirty = 0;
    }
    return 0;
}

int wa_signal_store_reload(struct wa_signal_store *st, char *err, size_t errlen)
{
    entries_clear(st);
    st->nremoved = 0;
    st->dirty = 0;
    return load_signal(st, err, errlen) < 0 ? -1 : 0;
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

int wa_signal_store_wipe(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SIGNAL_FILE);
    int r = unlink(path) < 0 && errno != ENOENT ? -1 : 0;
    snprintf(path, sizeof path, "%s/%s.tmp", dir, SIGNAL_FILE);
    unlink(path);
    return r;
}

void wa_signal_store_free(struct wa_signal_store *st)
{
    if (!st)
        return;
    entries_clear(st);
    OPENSSL_cleanse(st, sizeof *st);
    free(st);
}

/* ---- libsignal callbacks ---- */

static int s_load_session(signal_buffer **record, signal_buffer **user_record, const signal_protocol_address *a,
                          void *ud)
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
    if (put_entry(st, K_SESSION, a->name, a->name_len, a->device_id, record, len) < 0)
        return SG_ERR_NOMEM;
    st->dirty = 1;
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
    drop_entry(st, x);
    st->dirty = 1;
    return 1;
}

static int s_delete_all_sessions(const char *name, size_t name_len, void *ud)
{
    struct wa_signal_store *st = ud;
    int c = 0;
    for (size_t i = 0; i < st->n;) {
        struct entry *x = &st->e[i];
        if (x->kind == K_SESSION && strlen(x->name) == name_len && memcmp(x->name, name, name_len) == 0) {
            drop_entry(st, x);
            c++;
        } else
            i++;
    }
    if (c)
        st->dirty = 1;
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
        char err[200];
        if (wa_signal_store_flush(st, err, sizeof err) < 0)
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
        if (x) {
            drop_entry(st, x);
            st->dirty = 1;
        }
        return 0;
    }
    struct entry *x = find(st, K_IDENTITY, a->name, a->name_len, a->device_id);
    if (x && x->len == len && memcmp(x->data, key, len) == 0)
        return 0;
    if (put_entry(st, K_IDENTITY, a->name, a->name_len, a->device_id, key, len) < 0)
        return SG_ERR_NOMEM;
    st->dirty = 1;
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

static int sk_store(const signal_protocol_sender_key_name *n, uint8_t *record, size_t len, uint8_t *urec,
                    size_t ulen, void *ud)
{
    (void)n, (void)record, (void)len, (void)urec, (void)ulen, (void)ud;
    return 0;
}

static int sk_load(signal_buffer **record, signal_buffer **urec, const signal_protocol_sender_key_name *n, void *ud)
{
    (void)record, (void)n, (void)ud;
    *urec = NULL;
    return 0;
}

int wa_signal_store_context(struct wa_signal_store *st, signal_context *gctx, signal_protocol_store_context **out)
{
    st->gctx = gctx;
    signal_protocol_store_context *sc = NULL;
    if (signal_protocol_store_context_create(&sc, gctx) != 0)
        return -1;
    signal_protocol_session_store ss = {s_load_session, s_sub_device_sessions, s_store_session, s_contains_session,
                                        s_delete_session, s_delete_all_sessions, NULL, st};
    signal_protocol_pre_key_store ps = {p_load, p_store, p_contains, p_remove, NULL, st};
    signal_protocol_signed_pre_key_store sps = {sp_load, sp_store, sp_contains, sp_remove, NULL, st};
    signal_protocol_identity_key_store is = {i_get_pair, i_get_regid, i_save, i_trusted, NULL, st};
    signal_protocol_sender_key_store sks = {sk_store, sk_load, NULL, st};
    if (signal_protocol_store_context_set_session_store(sc, &ss) || signal_protocol_store_context_set_pre_key_store(sc, &ps) ||
        signal_protocol_store_context_set_signed_pre_key_store(sc, &sps) ||
        signal_protocol_store_context_set_identity_key_store(sc, &is) ||
        signal_protocol_store_context_set_sender_key_store(sc, &sks)) {
        signal_protocol_store_context_destroy(sc);
        return -1;
    }
    *out = sc;
    return 0;
}
