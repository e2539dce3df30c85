/* The header logic of GET /api/media/{id} (workers/media_serve.c, included
 * for its statics): one Range (first bytes, suffix, open end, past the
 * end), what is ignored (several ranges, bad syntax, another unit), 416,
 * If-None-Match lists, and RFC 6266 Content-Disposition of hostile names. */
#include "workers/media_serve.c"

#include "t.h"

static int range(const char *v, uint64_t size, uint64_t *s, uint64_t *l)
{
    return parse_range(v, strlen(v), size, s, l);
}

static void test_range(void)
{
    uint64_t s = 0, l = 0;
    T_CHECK(range("bytes=0-99", 1000, &s, &l) == 1 && s == 0 && l == 100, "range: the first 100 bytes");
    T_CHECK(range("bytes=-100", 1000, &s, &l) == 1 && s == 900 && l == 100, "range: the last 100 (suffix)");
    T_CHECK(range("bytes=-5000", 1000, &s, &l) == 1 && s == 0 && l == 1000,
            "range: a suffix longer than the file");
    T_CHECK(range("bytes=990-", 1000, &s, &l) == 1 && s == 990 && l == 10, "range: an open end");
    T_CHECK(range("bytes=990-5000", 1000, &s, &l) == 1 && s == 990 && l == 10,
            "range: an end past the file is cut");
    T_CHECK(range("bytes=999-999", 1000, &s, &l) == 1 && s == 999 && l == 1, "range: the last byte");
    T_EQ_INT(range("bytes=1000-", 1000, &s, &l), -1, "range: starting at the end is unsatisfiable");
    T_EQ_INT(range("bytes=-0", 1000, &s, &l), -1, "range: an empty suffix is unsatisfiable");
    T_EQ_INT(range("bytes=0-9,20-29", 1000, &s, &l), 0, "range: several ranges: the whole body");
    T_EQ_INT(range("bytes=9-0", 1000, &s, &l), 0, "range: reversed: ignored");
    T_EQ_INT(range("items=0-9", 1000, &s, &l), 0, "range: another unit: ignored");
    T_EQ_INT(range("bytes=a-9", 1000, &s, &l), 0, "range: not digits: ignored");
    T_EQ_INT(range("bytes=-", 1000, &s, &l), 0, "range: nothing: ignored");
    T_EQ_INT(range("bytes=99999999999999999999-", 1000, &s, &l), 0, "range: an absurd number: ignored");
    T_CHECK(range("bytes=0-0", 1, &s, &l) == 1 && s == 0 && l == 1, "range: the one byte of a 1-byte file");
    T_EQ_INT(range("bytes=1-", 1, &s, &l), -1, "range: past a 1-byte file is unsatisfiable");
    T_CHECK(range("bytes=0-999999999999999999", 1000, &s, &l) == 1 && s == 0 && l == 1000,
            "range: an 18-digit end is read (and cut to the file)");
    T_EQ_INT(range("bytes=999999999999999999-", 1000, &s, &l), -1, "range: an 18-digit start is read");
    T_CHECK(range("bytes=-999999999999999999", 1000, &s, &l) == 1 && s == 0 && l == 1000,
            "range: an 18-digit suffix is read");
    T_EQ_INT(range("bytes=0-9999999999999999999", 1000, &s, &l), 0, "range: a 19-digit end: ignored");
    T_EQ_INT(range("bytes=1000000000000000000-", 1000, &s, &l), 0, "range: a 19-digit start: ignored");
    T_EQ_INT(range("bytes=-9999999999999999999", 1000, &s, &l), 0, "range: a 19-digit suffix: ignored");
    T_CHECK(range("Bytes=0-9", 1000, &s, &l) == 1 && s == 0 && l == 10,
            "range: the unit in any case (Bytes=)");
    T_CHECK(range("BYTES=-1", 1000, &s, &l) == 1 && s == 999 && l == 1, "range: ... BYTES=");
}

static void test_etag(void)
{
    const char *e = "\"abc\"";
    T_CHECK(etag_listed("\"abc\"", 5, e), "if-none-match: the etag");
    T_CHECK(etag_listed("W/\"abc\"", 7, e), "if-none-match: weakly compared");
    T_CHECK(etag_listed("\"x\", \"abc\"", 10, e), "if-none-match: in a list");
    T_CHECK(etag_listed("*", 1, e), "if-none-match: *");
    T_CHECK(!etag_listed("\"abcd\"", 6, e), "if-none-match: another");
    T_CHECK(!etag_listed("abc", 3, e), "if-none-match: unquoted is another");
}

static void test_disposition(void)
{
    struct sbuf b;
    sbuf_init(&b);
    content_disposition(&b, 0, "e\"vil\\;\r\nname=x.exe é.pdf");
    T_EQ_STR(b.buf,
             "attachment; filename=\"e_vil_;__name=x.exe _.pdf\"; "
             "filename*=UTF-8''e%22vil%5C%3B%0D%0Aname%3Dx.exe%20%C3%A9.pdf",
             "disposition: quotes, backslashes, CR LF and non-ASCII never reach the header raw");
    sbuf_reset(&b);
    content_disposition(&b, 1, "");
    T_EQ_STR(b.buf, "inline", "disposition: no name");
    sbuf_free(&b);
    T_CHECK(shown_inline("image/png") && shown_inline("audio/ogg; codecs=opus") && shown_inline("video/mp4"),
            "inline: images, audio, video");
    T_CHECK(!shown_inline("text/html") && !shown_inline("image/svg+xml") &&
                !shown_inline("application/pdf") && !shown_inline("image/pngx"),
            "inline: never pages, SVG, PDF or look-alikes");
}

int main(void)
{
    test_range();
    test_etag();
    test_disposition();
    T_DONE();
}
