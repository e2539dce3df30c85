/* Durations and the voice-note waveform (see media_probe.h). */
#include "media_probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <opusfile.h>

#define MAX_BOXES 100000                   /* a file of more boxes than this is not a video we send */
#define MAX_MS (1000ULL * 3600 * 24 * 365) /* a year: anything longer is a broken header */

static int read_full(media_read_fn rd, void *ctx, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = rd(ctx, (char *)buf + got, n - got, off + got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* The first box of type among [start, end): its body's bounds. 0 found, 1
 * not there, -1 malformed (err set). */
static int find_box(media_read_fn rd, void *ctx, uint64_t start, uint64_t end, const char *type,
                    uint64_t *body, uint64_t *body_end, char *err, size_t errlen)
{
    uint64_t pos = start;
    for (int steps = 0; end - pos >= 8; steps++) {
        uint8_t h[16];
        if (steps >= MAX_BOXES) {
            snprintf(err, errlen, "more than %d boxes", MAX_BOXES);
            return -1;
        }
        if (read_full(rd, ctx, h, 8, pos) < 0) {
            snprintf(err, errlen, "cannot read a box header at %llu", (unsigned long long)pos);
            return -1;
        }
        uint64_t size = be32(h), hdr = 8;
        if (size == 1) { /* a 64-bit size follows the type */
            if (end - pos < 16 || read_full(rd, ctx, h + 8, 8, pos + 8) < 0) {
                snprintf(err, errlen, "a box's 64-bit size is cut off");
                return -1;
            }
            size = be64(h + 8);
            hdr = 16;
        } else if (size == 0) { /* to the end of the enclosing space */
            size = end - pos;
        }
        if (size < hdr || size > end - pos) {
            snprintf(err, errlen, "a box of %llu bytes at %llu does not fit", (unsigned long long)size,
                     (unsigned long long)pos);
            return -1;
        }
        if (memcmp(h + 4, type, 4) == 0) {
            *body = pos + hdr;
            *body_end = pos + size;
            return 0;
        }
        pos += size;
    }
    return 1;
}

int media_probe_mp4_ms(media_read_fn rd, void *ctx, uint64_t file_size, uint64_t *ms, char *err,
                       size_t errlen)
{
    uint64_t mb, me, hb, he;
    uint8_t h[32];
    int r = find_box(rd, ctx, 0, file_size, "moov", &mb, &me, err, errlen);
    if (r == 0)
        r = find_box(rd, ctx, mb, me, "mvhd", &hb, &he, err, errlen);
    if (r != 0) {
        if (r > 0)
            snprintf(err, errlen, "no movie header (moov/mvhd): not an MP4 video");
        return -1;
    }
    uint64_t len = he - hb;
    if (len < 1 || read_full(rd, ctx, h, 1, hb) < 0) {
        snprintf(err, errlen, "empty movie header");
        return -1;
    }
    uint32_t timescale;
    uint64_t duration, unknown;
    if (h[0] == 0) {
        if (len < 20 || read_full(rd, ctx, h, 20, hb) < 0)
            goto short_hdr;
        timescale = be32(h + 12);
        duration = be32(h + 16);
        unknown = UINT32_MAX;
    } else if (h[0] == 1) {
        if (len < 32 || read_full(rd, ctx, h, 32, hb) < 0)
            goto short_hdr;
        timescale = be32(h + 20);
        duration = be64(h + 24);
        unknown = UINT64_MAX;
    } else {
        snprintf(err, errlen, "movie header version %u", h[0]);
        return -1;
    }
    if (timescale == 0 || duration == unknown || duration == 0) {
        snprintf(err, errlen, "the movie header does not say the duration");
        return -1;
    }
    uint64_t whole = duration / timescale, part = duration % timescale;
    if (whole >= MAX_MS / 1000) { /* so that ms stays below MAX_MS */
        snprintf(err, errlen, "a duration of %llu s is not believable", (unsigned long long)whole);
        return -1;
    }
    *ms = whole * 1000 + part * 1000 / timescale;
    return 0;
short_hdr:
    snprintf(err, errlen, "the movie header is cut off");
    return -1;
}

static ssize_t fd_read(void *ctx, void *buf, size_t n, uint64_t off)
{
    ssize_t r;
    do
        r = pread(*(int *)ctx, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return r;
}

static int fd_size(int fd, uint64_t *size, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0) {
        snprintf(err, errlen, "cannot stat the file: %s", strerror(errno));
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

int media_probe_mp4_fd(int fd, uint64_t *ms, char *err, size_t errlen)
{
    uint64_t size;
    if (fd_size(fd, &size, err, errlen) < 0)
        return -1;
    return media_probe_mp4_ms(fd_read, &fd, size, ms, err, errlen);
}

/* opusfile reads through these: pread at our own position, so the caller's
 * descriptor offset is left alone. */
struct src {
    int fd;
    int64_t pos, size;
};

static int src_read(void *s, unsigned char *p, int n)
{
    struct src *x = s;
    ssize_t r = n > 0 ? fd_read(&x->fd, p, (size_t)n, (uint64_t)x->pos) : 0;
    if (r < 0)
        return -1;
    x->pos += r;
    return (int)r;
}

static int src_seek(void *s, opus_int64 off, int whence)
{
    struct src *x = s;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? x->pos : x->size;
    if ((whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) || off < -base ||
        base + off > INT64_MAX / 2)
        return -1;
    x->pos = base + off;
    return 0;
}

static opus_int64 src_tell(void *s)
{
    return ((struct src *)s)->pos;
}

int media_probe_opus_fd(int fd, uint64_t *ms, uint8_t waveform[MEDIA_WAVEFORM_LEN], char *err, size_t errlen)
{
    uint64_t size;
    if (fd_size(fd, &size, err, errlen) < 0)
        return -1;
    struct src s = {fd, 0, (int64_t)size};
    OpusFileCallbacks cb = {src_read, src_seek, src_tell, NULL};
    int e = 0;
    OggOpusFile *of = op_open_callbacks(&s, &cb, NULL, 0, &e);
    if (!of) {
        snprintf(err, errlen, "not an Ogg Opus file (opusfile error %d)", e);
        return -1;
    }
    ogg_int64_t total = op_pcm_total(of, -1); /* samples at 48 kHz */
    if (total <= 0) {
        op_free(of);
        snprintf(err, errlen, "the Ogg Opus file has no samples");
        return -1;
    }
    double sum[MEDIA_WAVEFORM_LEN] = {0};
    uint64_t count[MEDIA_WAVEFORM_LEN] = {0};
    enum { PCM = 2 * 5760 }; /* 120 ms of stereo: opusfile's largest packet */
    float *pcm = malloc(PCM * sizeof *pcm);
    ogg_int64_t at = 0;
    if (!pcm) {
        op_free(of);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (;;) {
        int n = op_read_float_stereo(of, pcm, PCM);
        if (n == OP_HOLE)
            continue; /* a gap in the stream: go on after it */
        if (n < 0) {
            snprintf(err, errlen, "the Ogg Opus stream cannot be decoded (opusfile error %d)", n);
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n; i++, at++) {
            ogg_int64_t b = at * MEDIA_WAVEFORM_LEN / total;
            if (b >= MEDIA_WAVEFORM_LEN)
                b = MEDIA_WAVEFORM_LEN - 1;
            sum[b] += (fabsf(pcm[2 * i]) + fabsf(pcm[2 * i + 1])) / 2;
            count[b]++;
        }
    }
    op_free(of);
    free(pcm);
    if (rc < 0)
        return -1;
    double mean[MEDIA_WAVEFORM_LEN], max = 0;
    for (int b = 0; b < MEDIA_WAVEFORM_LEN; b++) {
        mean[b] = count[b] ? sum[b] / (double)count[b] : 0;
        if (mean[b] > max)
            max = mean[b];
    }
    for (int b = 0; b < MEDIA_WAVEFORM_LEN; b++)
        waveform[b] = max > 1e-6 ? (uint8_t)lround(mean[b] * 100 / max) : 0;
    *ms = (uint64_t)total * 1000 / 48000;
    return 0;
}

/* ---- PDF page count */

#define PDF_MAX_PAGES 1000000u

static int pdf_delim(uint8_t c)
{
    return !c || strchr(" \t\r\n\f/<>[]()%", c) != NULL;
}

/* The last occurrence of needle that ends before end, or NULL. */
static const uint8_t *last_before(const uint8_t *lo, const uint8_t *end, const char *needle)
{
    size_t k = strlen(needle), n = (size_t)(end - lo);
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (!memcmp(lo + i, needle, k))
            return lo + i;
    return NULL;
}

uint32_t media_probe_pdf_pages(const uint8_t *p, size_t n)
{
    uint32_t best = 0;
    const uint8_t *end = p + n, *q = p;
    while ((q = memmem(q, (size_t)(end - q), "/Type", 5)) != NULL) {
        const uint8_t *v = q + 5;
        q = v;
        while (v < end && strchr(" \t\r\n\f", *v) && *v)
            v++;
        if (end - v < 7 || memcmp(v, "/Pages", 6) || !pdf_delim(v[6]))
            continue;
        /* The object holding it: from its "obj" to its "endobj". */
        const uint8_t *lo = last_before(p, q, "obj");
        const uint8_t *hi = memmem(v, (size_t)(end - v), "endobj", 6);
        if (!lo || !hi)
            continue;
        for (const uint8_t *c = lo; (c = memmem(c, (size_t)(hi - c), "/Count", 6)) != NULL;) {
            c += 6;
            const uint8_t *d = c;
            while (d < hi && strchr(" \t\r\n\f", *d) && *d)
                d++;
            uint64_t val = 0;
            int digits = 0;
            while (d < hi && *d >= '0' && *d <= '9' && val <= PDF_MAX_PAGES)
                val = val * 10 + (uint64_t)(*d++ - '0'), digits++;
            if (digits && val <= PDF_MAX_PAGES && (d == hi || pdf_delim(*d)) && val > best)
                best = (uint32_t)val;
        }
    }
    return best;
}

static uint32_t pdf_pages_at(int fd, uint64_t off, size_t n)
{
    uint8_t *buf = malloc(n);
    size_t got = 0;
    while (buf && got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    uint32_t pages = buf ? media_probe_pdf_pages(buf, got) : 0;
    free(buf);
    return pages;
}

uint32_t media_probe_pdf_pages_fd(int fd, uint64_t file_size)
{
    if (file_size <= 2 * (uint64_t)MEDIA_PDF_SCAN)
        return pdf_pages_at(fd, 0, (size_t)file_size);
    uint32_t a = pdf_pages_at(fd, 0, MEDIA_PDF_SCAN);
    uint32_t b = pdf_pages_at(fd, file_size - MEDIA_PDF_SCAN, MEDIA_PDF_SCAN);
    return a > b ? a : b;
}
