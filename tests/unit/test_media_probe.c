/* The MP4 box walker on files built here box by box: both movie-header
 * versions, a 64-bit box size, a box "to the end", the header after a large
 * mdat; and every malformed case refused with a reason (a size past the end,
 * a size smaller than its header, no moov, a cut header, a zero timescale,
 * an unknown duration, a year-long duration). */
#include "supervisor/media_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

static uint8_t file[1 << 16];
static size_t flen;

static ssize_t mem_read(void *ctx, void *buf, size_t n, uint64_t off)
{
    (void)ctx;
    if (off >= flen)
        return 0;
    if (n > flen - off)
        n = flen - (size_t)off;
    memcpy(buf, file + off, n);
    return (ssize_t)n;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* Appends a box with a 32-bit size (size0: write 0, "to the end"). */
static size_t box(const char *type, const uint8_t *body, size_t n, int size0)
{
    size_t at = flen;
    put32(file + flen, size0 ? 0 : (uint32_t)(8 + n));
    memcpy(file + flen + 4, type, 4);
    memcpy(file + flen + 8, body, n);
    flen += 8 + n;
    return at;
}

static size_t mvhd(uint8_t *b, int version, uint32_t timescale, uint64_t duration)
{
    memset(b, 0, 100);
    b[0] = (uint8_t)version;
    if (version == 0) {
        put32(b + 12, timescale);
        put32(b + 16, (uint32_t)duration);
        return 100;
    }
    put32(b + 20, timescale);
    put64(b + 24, duration);
    return 100;
}

/* ftyp, an mdat of mdat_len, then moov{mvhd}. */
static void movie(int version, uint32_t timescale, uint64_t duration, size_t mdat_len)
{
    uint8_t mv[100], inner[200], ft[8] = {'i', 's', 'o', 'm', 0, 0, 2, 0};
    static uint8_t zeros[1 << 15];
    flen = 0;
    box("ftyp", ft, sizeof ft, 0);
    box("mdat", zeros, mdat_len, 0);
    size_t n = mvhd(mv, version, timescale, duration);
    put32(inner, (uint32_t)(8 + n));
    memcpy(inner + 4, "mvhd", 4);
    memcpy(inner + 8, mv, n);
    box("moov", inner, 8 + n, 0);
}

static int probe(uint64_t *ms, char *err)
{
    return media_probe_mp4_ms(mem_read, NULL, flen, ms, err, 200);
}

int main(void)
{
    uint64_t ms = 0;
    char err[200];
    movie(0, 600, 600 * 42 + 300, 1000);
    T_CHECK(probe(&ms, err) == 0 && ms == 42500, "version 0: 42.5 s after an mdat");
    movie(1, 90000, 90000ULL * 3600 * 5, 20000);
    T_CHECK(probe(&ms, err) == 0 && ms == 5ULL * 3600 * 1000, "version 1 (64-bit duration): 5 h");
    movie(0, 1000, 1, 0);
    T_CHECK(probe(&ms, err) == 0 && ms == 1, "1 ms");

    /* mdat with a 64-bit size. */
    {
        uint8_t mv[100], inner[200], ft[8] = {0};
        flen = 0;
        box("ftyp", ft, 8, 0);
        put32(file + flen, 1);
        memcpy(file + flen + 4, "mdat", 4);
        put64(file + flen + 8, 16 + 500);
        memset(file + flen + 16, 0, 500);
        flen += 16 + 500;
        size_t n = mvhd(mv, 0, 30, 30 * 7);
        put32(inner, (uint32_t)(8 + n));
        memcpy(inner + 4, "mvhd", 4);
        memcpy(inner + 8, mv, n);
        box("moov", inner, 8 + n, 1); /* the last box: size 0, to the end */
        T_CHECK(probe(&ms, err) == 0 && ms == 7000, "a 64-bit mdat size and a moov sized 'to the end': 7 s");
    }

    struct {
        const char *name, *why;
        void (*make)(void);
    } bad[] = {
        {"a box past the end", "does not fit", NULL}, {"a box smaller than its header", "does not fit", NULL},
        {"no moov", "no movie header", NULL},         {"a cut movie header", "cut off", NULL},
        {"timescale 0", "does not say", NULL},        {"duration unknown (all ones)", "does not say", NULL},
        {"a year and a day", "not believable", NULL}, {"a cut 64-bit size", "cut off", NULL},
        {"movie header version 2", "version", NULL},
    };
    int ok = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        switch (i) {
        case 0:
            movie(0, 600, 600, 100);
            put32(file + 16, 0x7fffffff); /* the mdat's size */
            break;
        case 1:
            movie(0, 600, 600, 100);
            put32(file + 16, 4);
            break;
        case 2:
            flen = 0;
            box("ftyp", (const uint8_t *)"isom\0\0\0\0", 8, 0);
            box("free", (const uint8_t *)"xxxxxxxx", 8, 0);
            break;
        case 3:
            movie(0, 600, 600, 100);
            /* shrink mvhd to 10 bytes of body, and moov with it */
            put32(file + flen - 116, 8 + 8 + 10); /* moov */
            put32(file + flen - 108, 8 + 10);     /* mvhd */
            flen -= 90;
            break;
        case 4:
            movie(0, 0, 600, 100);
            break;
        case 5:
            movie(0, 600, UINT32_MAX, 100);
            break;
        case 6:
            movie(1, 1, 366ULL * 24 * 3600, 100);
            break;
        case 7:
            flen = 0;
            put32(file, 1);
            memcpy(file + 4, "mdat", 4);
            flen = 12;
            break;
        case 8:
            movie(2, 600, 600, 100);
            break;
        }
        if (probe(&ms, err) == -1 && strstr(err, bad[i].why))
            ok++;
        else
            printf("# %s: %s\n", bad[i].name, err);
    }
    T_CHECK(ok == (int)(sizeof bad / sizeof *bad),
            "refused with a reason: a box past the end, one smaller than its header, no moov, a cut header, "
            "timescale 0, an unknown duration, a year, a cut 64-bit size, version 2");
    flen = 0;
    T_CHECK(probe(&ms, err) == -1, "an empty file: no movie header");

    /* PDF page counts */
#define PAGES(s) media_probe_pdf_pages((const uint8_t *)(s), strlen(s))
    const char *flat = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>\nendobj\n"
                       "2 0 obj\n<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>\nendobj\n"
                       "3 0 obj\n<< /Type /Page /Parent 2 0 R >>\nendobj\n"
                       "5 0 obj\n<< /Type /Outlines /Count 12 >>\nendobj\n%%EOF\n";
    T_EQ_INT((int)PAGES(flat), 2, "a flat page tree: its /Count; an outline's /Count is not a page count");
    const char *tree = "1 0 obj<</Type/Pages/Kids[2 0 R 3 0 R]/Count 7>>endobj\n"
                       "2 0 obj<</Type/Pages/Parent 1 0 R/Kids[4 0 R]/Count\n3>>endobj\n"
                       "3 0 obj<</Type /Pages/Parent 1 0 R/Count 4>>endobj";
    T_EQ_INT((int)PAGES(tree), 7, "a nested tree, no spaces, a line break: the root's total");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /PagesX /Count 9 >> endobj"), 0, "/PagesX is not /Pages");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /Page /Count 9 >> endobj"), 0, "/Page is not /Pages");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /Pages /Count 99999999999 >> endobj"), 0,
             "an absurd count is no count");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /Pages /Count 5"), 0, "an object cut before endobj: none");
    T_EQ_INT((int)PAGES("<< /Type /Pages /Count 5 >>"), 0, "outside an object: none");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /Pages /Count 5x >> endobj"), 0, "a count that is no number: none");
    T_EQ_INT((int)PAGES("1 0 obj << /Type /ObjStm /N 3 >> stream\nxx\nendstream endobj"), 0,
             "compressed objects: none");
    T_EQ_INT((int)PAGES("/Type"), 0, "a cut key: none");
    char tmpl[] = "/tmp/wapi-pdf-XXXXXX";
    int fd = mkstemp(tmpl);
    size_t big = 3 * MEDIA_PDF_SCAN;
    char *pdf = calloc(1, big);
    int fd_ok = fd >= 0 && pdf;
    if (fd_ok) {
        memset(pdf, ' ', big);
        const char *tail = "9 0 obj << /Type /Pages /Count 41 >> endobj";
        memcpy(pdf + big - strlen(tail) - 10, tail, strlen(tail));
        const char *mid = "8 0 obj << /Type /Pages /Count 99 >> endobj";
        memcpy(pdf + big / 2, mid, strlen(mid));
        fd_ok = write(fd, pdf, big) == (ssize_t)big;
    }
    T_CHECK(fd_ok && media_probe_pdf_pages_fd(fd, big) == 41,
            "a 3 MiB file: the end is read (41), the middle is not (it is not cheap)");
    if (fd >= 0)
        close(fd), unlink(tmpl);
    free(pdf);
    T_DONE();
}
