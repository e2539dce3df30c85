#include "wa_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/fsutil.h"
#include "wa_crypto.h"

#define wa_crypto_wipe(p, n) OPENSSL_cleanse((p), (n))

#define CREDS_FILE "creds.bin"
#define PREKEYS_FILE "prekeys.bin"
#define MAGIC "WAPISTO1"
#define KIND_CREDS 1u
#define KIND_PREKEYS 2u
#define MAX_FILE (1u << 20)

/* ---- atomic, durable file writes ---- */

int wa_store_write_file(const char *dir, const char *name, const uint8_t *data, size_t len, char *err,
                        size_t errlen)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (mkdir_p(dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        snprintf(err, errlen, "cannot sync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
}

/* 1 read, 0 absent, -1 error. *out malloc'd. */
static int read_file(const char *dir, const char *name, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > MAX_FILE) {
        snprintf(err, errlen, "%s: unreadable or too large", path);
        close(fd);
        return -1;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t off = 0;
    while (buf && off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    if (!buf || off != (size_t)st.st_size) {
        free(buf);
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    *out = buf;
    *len = off;
    return 1;
}

/* ---- typed records: MAGIC, u32 kind, u32 body length, body, SHA-256(all before) ---- */

struct wr {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct wr *w, const void *d, size_t n)
{
    if (w->n + n > w->cap) {
        size_t c = w->cap ? w->cap * 2 : 4096;
        while (c < w->n + n)
            c *= 2;
        uint8_t *q = realloc(w->p, c);
        if (!q)
            abort(); /* a few KiB: the supervisor cannot go on without memory anyway */
        w->p = q;
        w->cap = c;
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}

static void put32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(w, b, 4);
}

static void put_str(struct wr *w, const char *s)
{
    put32(w, (uint32_t)strlen(s));
    put(w, s, strlen(s));
}

struct rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t get32(struct rd *r)
{
    const uint8_t *b = take(r, 4);
    return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
}

static void get_fixed(struct rd *r, void *dst, size_t n)
{
    const uint8_t *b = take(r, n);
    if (b)
        memcpy(dst, b, n);
}

static void get_str(struct rd *r, char *dst, size_t cap)
{
    uint32_t n = get32(r);
    if (n >= cap) {
        r->bad = 1;
        dst[0] = '\0';
        return;
    }
    const uint8_t *b = take(r, n);
    if (!b) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, b, n);
    dst[n] = '\0';
    if (memchr(dst, '\0', n))
        r->bad = 1;
}

static void seal(struct wr *w, uint32_t kind, const struct wr *body)
{
    put(w, MAGIC, 8);
    put32(w, kind);
    put32(w, (uint32_t)body->n);
    put(w, body->p, body->n);
    uint8_t h[32];
    wa_crypto_sha256(w->p, w->n, h);
    put(w, h, 32);
}

/* Checks the envelope; on success *body points into buf. */
static int unseal(const uint8_t *buf, size_t len, uint32_t kind, const uint8_t **body, size_t *blen,
                  const char **why)
{
    if (len < 8 + 8 + 32 || memcmp(buf, MAGIC, 8) != 0) {
        *why = len < 48 ? "truncated" : "not a wapi store file (bad magic)";
        return -1;
    }
    uint32_t k = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
    uint32_t n = (uint32_t)buf[12] << 24 | (uint32_t)buf[13] << 16 | (uint32_t)buf[14] << 8 | buf[15];
    if (k != kind) {
        *why = "wrong record kind";
        return -1;
    }
    if ((size_t)n != len - 16 - 32) {
        *why = "length does not match (truncated or extended)";
        return -1;
    }
    uint8_t h[32];
    wa_crypto_sha256(buf, len - 32, h);
    if (memcmp(h, buf + len - 32, 32) != 0) {
        *why = "checksum mismatch";
        return -1;
    }
    *body = buf + 16;
    *blen = n;
    return 0;
}

int wa_store_new_creds(struct wa_creds *c)
{
    memset(c, 0, sizeof *c);
    uint8_t r[4];
    if (wa_crypto_x25519_keypair(c->noise_priv, c->noise_pub) < 0 ||
        wa_crypto_x25519_keypair(c->ident_priv, c->ident_pub) < 0 ||
        wa_crypto_x25519_keypair(c->spk_priv, c->spk_pub) < 0 || wa_crypto_random(c->adv_secret, 32) < 0 ||
        wa_crypto_random(r, sizeof r) < 0)
        return -1;
    c->registration_id = ((uint32_t)r[0] << 8 | r[1]) % 16380 + 1; /* Signal's range 1..16380 */
    c->spk_id = 1;
    /* The signed prekey is signed over its 33-byte serialized form (type 5). */
    uint8_t msg[33];
    msg[0] = 5;
    memcpy(msg + 1, c->spk_pub, 32);
    if (wa_crypto_xeddsa_sign(c->ident_priv, msg, sizeof msg, c->spk_sig) < 0)
        return -1;
    c->next_prekey_id = 1;
    c->uploaded_upto = 1;
    return 0;
}

int wa_store_save(const char *dir, const struct wa_creds *c, char *err, size_t errlen)
{
    struct wr b = {0}, w = {0};
    put32(&b, 1); /* field layout version */
    put(&b, c->noise_priv, 32);
    put(&b, c->noise_pub, 32);
    put(&b, c->ident_priv, 32);
    put(&b, c->ident_pub, 32);
    put32(&b, c->registration_id);
    put32(&b, c->spk_id);
    put(&b, c->spk_priv, 32);
    put(&b, c->spk_pub, 32);
    put(&b, c->spk_sig, 64);
    put(&b, c->adv_secret, 32);
    put32(&b, c->next_prekey_id);
    put32(&b, c->uploaded_upto);
    put32(&b, (uint32_t)c->paired);
    put_str(&b, c->jid);
    put_str(&b, c->lid);
    put_str(&b, c->platform);
    put_str(&b, c->business);
    put_str(&b, c->push_name);
    put32(&b, (uint32_t)c->account_len);
    put(&b, c->account, c->account_len);
    seal(&w, KIND_CREDS, &b);
    int r = wa_store_write_file(dir, CREDS_FILE, w.p, w.n, err, errlen);
    /* Private keys were in these buffers. */
    wa_crypto_wipe(b.p, b.n);
    wa_crypto_wipe(w.p, w.n);
    free(b.p);
    free(w.p);
    return r;
}

int wa_store_load(const char *dir, struct wa_creds *c, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = read_file(dir, CREDS_FILE, &buf, &len, err, errlen);
    if (r <= 0)
        return r;
    const uint8_t *body;
    size_t blen;
    const char *why = "";
    memset(c, 0, sizeof *c);
    if (unseal(buf, len, KIND_CREDS, &body, &blen, &why) < 0) {
        snprintf(err, errlen, "%s/%s is corrupt: %s", dir, CREDS_FILE, why);
        free(buf);
        return -1;
    }
    struct rd rd = {body, blen, 0, 0};
    uint32_t ver = get32(&rd);
    get_fixed(&rd, c->noise_priv, 32);
    get_fixed(&rd, c->noise_pub, 32);
    get_fixed(&rd, c->ident_priv, 32);
    get_fixed(&rd, c->ident_pub, 32);
    c->registration_id = get32(&rd);
    c->spk_id = get32(&rd);
    get_fixed(&rd, c->spk_priv, 32);
    get_fixed(&rd, c->spk_pub, 32);
    get_fixed(&rd, c->spk_sig, 64);
    get_fixed(&rd, c->adv_secret, 32);
    c->next_prekey_id = get32(&rd);
    c->uploaded_upto = get32(&rd);
    c->paired = (int)get32(&rd);
    get_str(&rd, c->jid, sizeof c->jid);
    get_str(&rd, c->lid, sizeof c->lid);
    get_str(&rd, c->platform, sizeof c->platform);
    get_str(&rd, c->business, sizeof c->business);
    get_str(&rd, c->push_name, sizeof c->push_name);
    uint32_t al = get32(&rd);
    if (al > sizeof c->account)
        rd.bad = 1;
    else {
        get_fixed(&rd, c->account, al);
        c->account_len = al;
    }
    wa_crypto_wipe(buf, len);
    free(buf);
    if (rd.bad || rd.off != rd.n || ver != 1) {
        snprintf(err, errlen, "%s/%s is corrupt: %s", dir, CREDS_FILE,
                 ver != 1 ? "unknown layout version" : "fields do not match their lengths");
        return -1;
    }
    return 1;
}

int wa_store_prekeys_save(const char *dir, const struct wa_prekey *k, size_t n, char *err, size_t errlen)
{
    struct wr b = {0}, w = {0};
    put32(&b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put32(&b, k[i].id);
        put(&b, k[i].priv, 32);
        put(&b, k[i].pub, 32);
    }
    seal(&w, KIND_PREKEYS, &b);
    int r = wa_store_write_file(dir, PREKEYS_FILE, w.p, w.n, err, errlen);
    wa_crypto_wipe(b.p, b.n);
    wa_crypto_wipe(w.p, w.n);
    free(b.p);
    free(w.p);
    return r;
}

int wa_store_prekeys_load(const char *dir, struct wa_prekey **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = read_file(dir, PREKEYS_FILE, &buf, &len, err, errlen);
    if (r <= 0)
        return r;
    const uint8_t *body;
    size_t blen;
    const char *why = "";
    if (unseal(buf, len, KIND_PREKEYS, &body, &blen, &why) < 0) {
        snprintf(err, errlen, "%s/%s is corrupt: %s", dir, PREKEYS_FILE, why);
        free(buf);
        return -1;
    }
    struct rd rd = {body, blen, 0, 0};
    uint32_t cnt = get32(&rd);
    if (cnt > WA_STORE_PREKEYS_MAX || (size_t)cnt * 68 != blen - 4) {
        snprintf(err, errlen, "%s/%s is corrupt: bad count", dir, PREKEYS_FILE);
        free(buf);
        return -1;
    }
    struct wa_prekey *k = calloc(cnt ? cnt : 1, sizeof *k);
    for (uint32_t i = 0; k && i < cnt; i++) {
        k[i].id = get32(&rd);
        get_fixed(&rd, k[i].priv, 32);
        get_fixed(&rd, k[i].pub, 32);
    }
    wa_crypto_wipe(buf, len);
    free(buf);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = k;
    *n = cnt;
    return 1;
}

int wa_store_wipe(const char *dir)
{
    static const char *const files[] = {CREDS_FILE, PREKEYS_FILE, CREDS_FILE ".tmp", PREKEYS_FILE ".tmp"};
    int rc = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (unlink(path) < 0 && errno != ENOENT)
            rc = -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return rc;
}
