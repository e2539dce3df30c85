/* multipart/form-data (workers/multipart.c): the boundary of a
 * Content-Type, parts with names, file names (also RFC 5987's filename*),
 * types and bytes that may hold anything but the delimiter, and the bodies
 * refused. */
#include "workers/multipart.h"

#include <string.h>

#include "t.h"

static int parse(const char *body, size_t n, const char *b, struct mp_part *parts, int *np, const char **err)
{
    return multipart_parse(body, n, b, parts, np, err);
}

static void test_boundary(void)
{
    char b[MP_BOUNDARY_MAX + 1];
    const char *ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
    T_EQ_INT(multipart_boundary(ct, strlen(ct), b), 0, "boundary: a browser's");
    T_EQ_STR(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW", "boundary: its value");
    ct = "Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\"";
    T_EQ_INT(multipart_boundary(ct, strlen(ct), b), 0, "boundary: quoted, after another parameter");
    T_EQ_STR(b, "a b:c", "boundary: ... unquoted");
    const char *bad[] = {"multipart/mixed; boundary=x",
                         "multipart/form-data",
                         "multipart/form-data; boundary=",
                         "multipart/form-data; boundary=\"ends with space \"",
                         "multipart/form-data; boundary=a\"b",
                         "multipart/form-datax; boundary=x",
                         "multipart/form-data; "
                         "boundary=0123456789012345678901234567890123456789012345678901234567890123456789x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        T_EQ_INT(multipart_boundary(bad[i], strlen(bad[i]), b), -1, "boundary: refused");
}

static void test_parse(void)
{
    static const char body[] =
        "preamble\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"kind\"\r\n\r\n"
        "image\r\n"
        "--XyZ  \r\n"
        "content-disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\n"
        "Content-Type: image/png\r\n"
        "\r\n"
        "\x89PNG\r\n--Xy\r\n\0bytes\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"other\"; filename=\"x\"; "
        "filename*=UTF-8''%C3%A9t%C3%A9.txt\r\n\r\n"
        "\r\n"
        "--XyZ--\r\nepilogue";
    struct mp_part parts[MP_MAX_PARTS];
    int n;
    const char *err = "";
    T_EQ_INT(parse(body, sizeof body - 1, "XyZ", parts, &n, &err), 0,
             "parse: a form with a preamble and epilogue");
    T_EQ_INT(n, 3, "parse: three parts");
    T_CHECK(!strcmp(parts[0].name, "kind") && parts[0].len == 5 && !memcmp(parts[0].data, "image", 5) &&
                !parts[0].has_filename,
            "parse: a field");
    T_CHECK(!strcmp(parts[1].name, "file") && !strcmp(parts[1].filename, "a \"b\".png") &&
                !strcmp(parts[1].type, "image/png"),
            "parse: a file's name (escapes undone) and type");
    T_CHECK(parts[1].len == 18 && !memcmp(parts[1].data, "\x89PNG\r\n--Xy\r\n\0bytes", 18),
            "parse: its bytes, CRLF, a near-delimiter and NUL included");
    T_EQ_STR(parts[2].filename, "\xc3\xa9t\xc3\xa9.txt", "parse: filename* wins, percent-decoded");
    T_EQ_INT(parts[2].len, 0, "parse: an empty part");
    static const char nopre[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--";
    T_EQ_INT(parse(nopre, sizeof nopre - 1, "b", parts, &n, &err), 0,
             "parse: the delimiter first, no CRLF at the end");
    T_CHECK(n == 1 && parts[0].len == 1, "parse: ... one part");
    static const char starfirst[] = "--b\r\nContent-Disposition: form-data; name=\"file\"; "
                                    "filename*=UTF-8''%C3%A9.txt; filename=\"plain.txt\"\r\n\r\n1\r\n--b--";
    T_EQ_INT(parse(starfirst, sizeof starfirst - 1, "b", parts, &n, &err), 0,
             "parse: filename* before filename");
    T_EQ_STR(parts[0].filename, "\xc3\xa9.txt", "parse: ... filename* still wins");
    static const char spaced[] = "--b\r\nContent-Disposition: form-data ; name=\"a\"\r\n\r\n1\r\n--b--";
    T_EQ_INT(parse(spaced, sizeof spaced - 1, "b", parts, &n, &err), 0,
             "parse: form-data, a space, then ';'");
}

static void test_refused(void)
{
    struct mp_part parts[MP_MAX_PARTS];
    int n;
    const char *err;
    static const char *const bad[] = {
        "no delimiter at all",
        "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nnever closed",
        "--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--",
        "--b\r\nno colon here\r\n\r\nx\r\n--b--",
        "--bjunk\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\nx\r\n--b--",
        /* a NUL in the name would cut "evil.html%00.jpg" to "evil.html" */
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%00b\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=\"file\"; "
        "filename*=UTF-8''evil.html%00.jpg\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-dataX; name=\"file\"\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data-ish; name=\"file\"\r\n\r\nx\r\n--b--",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = NULL;
        T_CHECK(parse(bad[i], strlen(bad[i]), "b", parts, &n, &err) == -1 && err && *err,
                "refused: a malformed body, with a reason");
    }
    char many[4096] = "";
    for (int i = 0; i <= MP_MAX_PARTS; i++)
        strcat(many, "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n");
    strcat(many, "--b--");
    T_EQ_INT(parse(many, strlen(many), "b", parts, &n, &err), -1, "refused: more parts than MP_MAX_PARTS");
    char longhdr[10000] = "--b\r\nX-Long: ";
    memset(longhdr + strlen(longhdr), 'a', 9000);
    strcat(longhdr, "\r\n\r\nx\r\n--b--");
    T_EQ_INT(parse(longhdr, strlen(longhdr), "b", parts, &n, &err), -1, "refused: headers over 8 KiB");
}

int main(void)
{
    test_boundary();
    test_parse();
    test_refused();
    T_DONE();
}
