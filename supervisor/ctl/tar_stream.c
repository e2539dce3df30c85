#include "tar_stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- ustar header fields ---- */

enum {
    H_NAME = 0, H_MODE = 100, H_UID = 108, H_GID = 116, H_SIZE = 124, H_MTIME = 136, H_CHKSUM = 148,
    H_TYPE = 156, H_MAGIC = 257, H_VERSION = 263, H_UNAME = 265, H_GNAME = 297, H_PREFIX = 345
};

static void put_octal(unsigned char *f, size_t width, uint64_t v)
{
    /* width-1 digits and a NUL */
    f[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0;) {
        f[i] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
}

static void put_number(unsigned char *f, size_t width, uint64_t v)
{
    if (width - 1 < 22 && v >> (3 * (width - 1))) {
        /* Too large for octal: base-256, the high bit of the first byte set. */
        memset(f, 0, width);
        f[0] = 0x80;
        for (size_t i = width; i-- > 1 && v;) {
            f[i] = (unsigned char)(v & 0xff);
            v >>= 8;
        }
        return;
    }
    put_octal(f, width, v);
}

/* -1 when the field is not a number. */
static int get_number(const unsigned char *f, size_t width, uint64_t *out)
{
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] != 0x80)
            return -1; /* negative, or more than 64 bits */
        for (size_t i = 1; i < width; i++) {
            if (v >> 56)
                return -1;
            v = v << 8 | f[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < width && f[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 61)
            return -1;
        v = v << 3 | (uint64_t)(f[i] - '0');
    }
    for (; i < width; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return -1;
    if (!digits)
        return -1;
    *out = v;
    return 0;
}

static unsigned checksum(const unsigned char *h)
{
    unsigned sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
    return sum;
}

/* Splits name into ustar's prefix (<= 155) and name (<= 100) at a slash. */
static int split_name(const char *name, unsigned char *h)
{
    size_t n = strlen(name);
    if (n == 0 || n > TAR_NAME_MAX)
        return -1;
    if (n <= 100) {
        memcpy(h + H_NAME, name, n);
        return 0;
    }
    for (size_t i = n - 1; i > 0; i--) {
        if (name[i] != '/' || i > 155 || n - i - 1 > 100 || n - i - 1 == 0)
            continue;
        memcpy(h + H_PREFIX, name, i);
        memcpy(h + H_NAME, name + i + 1, n - i - 1);
        return 0;
    }
    return -1;
}

/* ---- writer ---- */

static int write_all(struct tar_out *t, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(t->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(t->err, sizeof t->err, "write: %s", w < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        p += w;
        n -= (size_t)w;
        t->out += (uint64_t)w;
    }
    return 0;
}

static int flush_buf(struct tar_out *t)
{
    int rc = t->buf_len ? write_all(t, t->buf, t->buf_len) : 0;
    t->buf_len = 0;
    return rc;
}

/* Uncompressed archive bytes in; compressed (or not) bytes out to fd. */
static int emit(struct tar_out *t, const void *p, size_t n)
{
    t->pos += n;
    if (!t->gzip) {
        const unsigned char *q = p;
        while (n > 0) {
            size_t k = sizeof t->buf - t->buf_len;
            if (k > n)
                k = n;
            memcpy(t->buf + t->buf_len, q, k);
            t->buf_len += k;
            q += k;
            n -= k;
            if (t->buf_len == sizeof t->buf && flush_buf(t) < 0)
                return -1;
        }
        return 0;
    }
    t->z.next_in = (Bytef *)(uintptr_t)p;
    t->z.avail_in = (uInt)n;
    while (t->z.avail_in > 0) {
        t->z.next_out = t->buf + t->buf_len;
        t->z.avail_out = (uInt)(sizeof t->buf - t->buf_len);
        if (deflate(&t->z, Z_NO_FLUSH) == Z_STREAM_ERROR) {
            snprintf(t->err, sizeof t->err, "gzip: deflate failed");
            return -1;
        }
        t->buf_len = sizeof t->buf - t->z.avail_out;
        if (t->buf_len == sizeof t->buf && flush_buf(t) < 0)
            return -1;
    }
    return 0;
}

static int emit_zeros(struct tar_out *t, size_t n)
{
    static const unsigned char zero[TAR_BLOCK];
    while (n > 0) {
        size_t k = n < sizeof zero ? n : sizeof zero;
        if (emit(t, zero, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

int tar_out_open(struct tar_out *t, int fd, int gzip_level)
{
    memset(t, 0, sizeof *t);
    t->fd = fd;
    if (gzip_level > 0) {
        /* windowBits 15 + 16: a gzip wrapper, not zlib's. */
        if (deflateInit2(&t->z, gzip_level > 9 ? 9 : gzip_level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
            snprintf(t->err, sizeof t->err, "gzip: cannot initialise");
            return -1;
        }
        t->gzip = 1;
    }
    return 0;
}

static int end_member(struct tar_out *t)
{
    size_t pad = (size_t)((TAR_BLOCK - t->pos % TAR_BLOCK) % TAR_BLOCK);
    return emit_zeros(t, pad);
}

int tar_out_file(struct tar_out *t, const char *name, uint64_t size, unsigned mode, int64_t mtime)
{
    if (t->left) {
        snprintf(t->err, sizeof t->err, "internal: previous member short by %llu bytes", (unsigned long long)t->left);
        return -1;
    }
    unsigned char h[TAR_BLOCK] = {0};
    if (split_name(name, h) < 0) {
        snprintf(t->err, sizeof t->err, "name too long for the archive: %.80s", name);
        return -1;
    }
    put_octal(h + H_MODE, 8, mode & 07777);
    put_octal(h + H_UID, 8, 0);
    put_octal(h + H_GID, 8, 0);
    put_number(h + H_SIZE, 12, size);
    put_number(h + H_MTIME, 12, mtime > 0 ? (uint64_t)mtime : 0);
    h[H_TYPE] = '0';
    memcpy(h + H_MAGIC, "ustar", 6);
    memcpy(h + H_VERSION, "00", 2);
    memcpy(h + H_UNAME, "wapi", 4);
    memcpy(h + H_GNAME, "wapi", 4);
    /* six octal digits, NUL, space */
    unsigned sum = checksum(h);
    put_octal(h + H_CHKSUM, 7, sum);
    h[H_CHKSUM + 7] = ' ';
    if (emit(t, h, sizeof h) < 0)
        return -1;
    t->left = size;
    return 0;
}

int tar_out_data(struct tar_out *t, const void *p, size_t n)
{
    if (n > t->left) {
        snprintf(t->err, sizeof t->err, "internal: more content than the header said");
        return -1;
    }
    if (emit(t, p, n) < 0)
        return -1;
    t->left -= n;
    return t->left == 0 ? end_member(t) : 0;
}

void tar_out_abort(struct tar_out *t)
{
    if (t->gzip)
        deflateEnd(&t->z);
    t->gzip = 0;
}

int tar_out_close(struct tar_out *t)
{
    int rc = 0;
    if (t->left) {
        snprintf(t->err, sizeof t->err, "internal: last member short by %llu bytes", (unsigned long long)t->left);
        rc = -1;
    }
    /* Two zero blocks end the archive; tar's readers expect whole records. */
    if (rc == 0)
        rc = emit_zeros(t, 2 * TAR_BLOCK);
    if (rc == 0)
        rc = emit_zeros(t, (size_t)((TAR_RECORD - t->pos % TAR_RECORD) % TAR_RECORD));
    if (rc == 0 && t->gzip) {
        int zr;
        t->z.next_in = NULL;
        t->z.avail_in = 0;
        do {
            t->z.next_out = t->buf + t->buf_len;
            t->z.avail_out = (uInt)(sizeof t->buf - t->buf_len);
            zr = deflate(&t->z, Z_FINISH);
            t->buf_len = sizeof t->buf - t->z.avail_out;
            if ((t->buf_len == sizeof t->buf || zr == Z_STREAM_END) && flush_buf(t) < 0) {
                rc = -1;
                break;
            }
        } while (zr == Z_OK || zr == Z_BUF_ERROR);
        if (rc == 0 && zr != Z_STREAM_END) {
            snprintf(t->err, sizeof t->err, "gzip: cannot finish the stream");
            rc = -1;
        }
    }
    if (rc == 0)
        rc = flush_buf(t);
    tar_out_abort(t);
    return rc;
}

/* ---- reader ---- */

static int fill(struct tar_in *t)
{
    for (;;) {
        ssize_t r = read(t->fd, t->in, sizeof t->in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(t->err, sizeof t->err, "read: %s", strerror(errno));
            return -1;
        }
        t->in_off = 0;
        t->in_len = (size_t)r;
        if (r == 0)
            t->eof = 1;
        return 0;
    }
}

static ssize_t get_raw(struct tar_in *t, unsigned char *dst, size_t n);

/* Up to n archive (uncompressed) bytes: n unless the stream ended; -1 on error. */
static ssize_t get(struct tar_in *t, unsigned char *dst, size_t n)
{
    ssize_t r = get_raw(t, dst, n);
    if (r > 0)
        t->pos += (uint64_t)r;
    return r;
}

static ssize_t get_raw(struct tar_in *t, unsigned char *dst, size_t n)
{
    size_t got = 0;
    if (!t->gzip) {
        while (got < n) {
            if (t->in_off == t->in_len) {
                if (t->eof || fill(t) < 0)
                    return t->eof ? (ssize_t)got : -1;
                if (t->eof)
                    break;
            }
            size_t k = t->in_len - t->in_off;
            if (k > n - got)
                k = n - got;
            memcpy(dst + got, t->in + t->in_off, k);
            t->in_off += k;
            got += k;
        }
        return (ssize_t)got;
    }
    while (got < n && !t->z_end) {
        if (t->in_off == t->in_len) {
            if (t->eof) {
                snprintf(t->err, sizeof t->err, "truncated: the gzip stream ends early");
                return -1;
            }
            if (fill(t) < 0)
                return -1;
            continue;
        }
        t->z.next_in = t->in + t->in_off;
        t->z.avail_in = (uInt)(t->in_len - t->in_off);
        t->z.next_out = dst + got;
        t->z.avail_out = (uInt)(n - got);
        int zr = inflate(&t->z, Z_NO_FLUSH);
        t->in_off = t->in_len - t->z.avail_in;
        got = n - t->z.avail_out;
        if (zr == Z_STREAM_END) {
            t->z_end = 1;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            snprintf(t->err, sizeof t->err, "corrupt gzip stream: %s", t->z.msg ? t->z.msg : "inflate failed");
            return -1;
        }
    }
    return (ssize_t)got;
}

int tar_in_open(struct tar_in *t, int fd)
{
    memset(t, 0, sizeof *t);
    t->fd = fd;
    while (t->in_len < 2 && !t->eof) {
        ssize_t r = read(fd, t->in + t->in_len, sizeof t->in - t->in_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(t->err, sizeof t->err, "read: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            t->eof = 1;
        t->in_len += (size_t)r;
    }
    if (t->in_len == 0) {
        snprintf(t->err, sizeof t->err, "empty input");
        return -1;
    }
    if (t->in_len >= 2 && t->in[0] == 0x1f && t->in[1] == 0x8b) {
        /* windowBits 15 + 16: gzip only (a zlib or raw stream is not ours). */
        if (inflateInit2(&t->z, 15 + 16) != Z_OK) {
            snprintf(t->err, sizeof t->err, "gzip: cannot initialise");
            return -1;
        }
        t->gzip = t->z_live = 1;
    }
    return 0;
}

static int skip(struct tar_in *t, uint64_t n)
{
    unsigned char sink[4096];
    while (n > 0) {
        size_t k = n < sizeof sink ? (size_t)n : sizeof sink;
        ssize_t r = get(t, sink, k);
        if (r < 0)
            return -1;
        if ((size_t)r < k) {
            snprintf(t->err, sizeof t->err, "truncated: the archive ends inside a member");
            return -1;
        }
        n -= k;
    }
    return 0;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* After the end blocks: only zero padding, then the end of the gzip stream
 * and of the input. Anything else is not an archive we wrote. */
static int check_tail(struct tar_in *t)
{
    unsigned char b[TAR_BLOCK];
    for (;;) {
        ssize_t r = get(t, b, sizeof b);
        if (r < 0)
            return -1;
        if (!all_zero(b, (size_t)r)) {
            snprintf(t->err, sizeof t->err, "data after the end of the archive");
            return -1;
        }
        if ((size_t)r < sizeof b)
            break;
    }
    /* We always write whole records: a shorter tail was cut off. */
    if (t->pos % TAR_RECORD) {
        snprintf(t->err, sizeof t->err, "truncated: the archive does not end on a whole record");
        return -1;
    }
    if (t->gzip) {
        if (!t->z_end) {
            snprintf(t->err, sizeof t->err, "truncated: the gzip stream ends early");
            return -1;
        }
        if (t->in_off == t->in_len && !t->eof && fill(t) < 0)
            return -1;
        if (t->in_off != t->in_len) {
            snprintf(t->err, sizeof t->err, "data after the end of the gzip stream");
            return -1;
        }
    }
    return 0;
}

int tar_in_next(struct tar_in *t, struct tar_entry *e)
{
    if (skip(t, t->left + t->pad) < 0)
        return -1;
    t->left = t->pad = 0;
    unsigned char h[TAR_BLOCK];
    ssize_t r = get(t, h, sizeof h);
    if (r < 0)
        return -1;
    if (r < (ssize_t)sizeof h) {
        snprintf(t->err, sizeof t->err, "truncated: %s", r ? "a header is cut short" : "no end-of-archive marker");
        return -1;
    }
    if (all_zero(h, sizeof h)) {
        r = get(t, h, sizeof h);
        if (r < 0)
            return -1;
        if (r < (ssize_t)sizeof h || !all_zero(h, sizeof h)) {
            snprintf(t->err, sizeof t->err, "%s", r < (ssize_t)sizeof h ? "truncated: the end-of-archive marker is cut short"
                                                                         : "corrupt: a lone zero block");
            return -1;
        }
        return check_tail(t) < 0 ? -1 : 0;
    }
    uint64_t sum, size, mode, mtime;
    if (get_number(h + H_CHKSUM, 8, &sum) < 0 || sum != checksum(h)) {
        snprintf(t->err, sizeof t->err, "corrupt: a header's checksum does not match");
        return -1;
    }
    if (memcmp(h + H_MAGIC, "ustar", 5) != 0) {
        snprintf(t->err, sizeof t->err, "not a ustar archive");
        return -1;
    }
    if (get_number(h + H_SIZE, 12, &size) < 0 || get_number(h + H_MODE, 8, &mode) < 0 ||
        get_number(h + H_MTIME, 12, &mtime) < 0) {
        snprintf(t->err, sizeof t->err, "corrupt: a header field is not a number");
        return -1;
    }
    char type = h[H_TYPE] ? (char)h[H_TYPE] : '0';
    if (type != '0' && type != '5') {
        snprintf(t->err, sizeof t->err, "unsupported member type '%c' (backups hold only files and folders)",
                 type >= 0x20 && type < 0x7f ? type : '?');
        return -1;
    }
    /* name: prefix "/" name, each NUL-terminated or full length */
    size_t pl = strnlen((const char *)h + H_PREFIX, 155), nl = strnlen((const char *)h + H_NAME, 100);
    if (nl == 0 || pl + 1 + nl > TAR_NAME_MAX) {
        snprintf(t->err, sizeof t->err, "corrupt: a member has no name");
        return -1;
    }
    size_t o = 0;
    if (pl) {
        memcpy(e->name, h + H_PREFIX, pl);
        e->name[pl] = '/';
        o = pl + 1;
    }
    memcpy(e->name + o, h + H_NAME, nl);
    e->name[o + nl] = '\0';
    e->type = type;
    e->size = type == '0' ? size : 0;
    e->mode = (unsigned)(mode & 07777);
    e->mtime = (int64_t)(mtime > INT64_MAX ? 0 : mtime);
    t->left = e->size;
    t->pad = (TAR_BLOCK - e->size % TAR_BLOCK) % TAR_BLOCK;
    return 1;
}

ssize_t tar_in_read(struct tar_in *t, void *p, size_t n)
{
    if (t->left == 0)
        return 0;
    if (n > t->left)
        n = (size_t)t->left;
    ssize_t r = get(t, p, n);
    if (r < 0)
        return -1;
    if ((size_t)r < n) {
        snprintf(t->err, sizeof t->err, "truncated: the archive ends inside a member");
        return -1;
    }
    t->left -= n;
    return r;
}

void tar_in_close(struct tar_in *t)
{
    if (t->z_live)
        inflateEnd(&t->z);
    t->z_live = 0;
}
