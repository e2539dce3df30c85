/* libFuzzer target for multipart/form-data bodies (POST /api/media): the
 * parser must never read outside the Content-Type or the body, and every
 * part it returns must lie inside the body, in order, with NUL-terminated
 * names. The form's fields, each part's file name as kept, and the body as
 * a query parameter (URL-decoded) go through what the upload handler does
 * with them, whose results are checked too. The input is a Content-Type
 * line, a newline, then the body. */
#include "common/utf8.c"
#include "workers/multipart.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A file name as kept: short, one segment, no control characters, UTF-8. */
static void check_kept(const char *in)
{
    char out[MP_KEPT_NAME_MAX + 1];
    if (multipart_file_name(in, out) < 0)
        return;
    size_t n = strlen(out);
    if (n > MP_KEPT_NAME_MAX || strchr(out, '/') || strchr(out, '\\') || utf8_len(out, n) < 0 ||
        !strcmp(out, ".") || !strcmp(out, ".."))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            abort();
}

/* The body as a query parameter: decoding never lengthens it. */
static void check_url_decode(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    size_t before = strlen(s);
    if (multipart_url_decode(s) == 0) {
        if (strlen(s) > before)
            abort();
        check_kept(s);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *nl = memchr(in, '\n', size);
    if (!nl)
        return 0;
    /* Copies of exactly their sizes, so reading past either is caught. */
    size_t cl = (size_t)(nl - in);
    char *ctype = malloc(cl ? cl : 1);
    memcpy(ctype, in, cl);
    size_t n = size - cl - 1;
    char *body = malloc(n ? n : 1);
    memcpy(body, nl + 1, n);
    check_url_decode(body, n < 4096 ? n : 4096);
    char boundary[MP_BOUNDARY_MAX + 1];
    int rb = multipart_boundary(ctype, cl, boundary);
    free(ctype);
    if (rb < 0) {
        free(body);
        return 0;
    }
    if (strlen(boundary) == 0 || strlen(boundary) > MP_BOUNDARY_MAX)
        abort();
    static struct mp_part parts[MP_MAX_PARTS];
    int np = -1;
    const char *err = NULL;
    int r = multipart_parse(body, n, boundary, parts, &np, &err);
    if (r < 0 && !err)
        abort();
    if (np < 0 || np > MP_MAX_PARTS)
        abort();
    const char *prev = body;
    for (int i = 0; r == 0 && i < np; i++) {
        const struct mp_part *p = &parts[i];
        if (p->data < prev || p->data + p->len > body + n || memchr(p->name, 0, sizeof p->name) == NULL ||
            memchr(p->type, 0, sizeof p->type) == NULL || memchr(p->filename, 0, sizeof p->filename) == NULL)
            abort();
        check_kept(p->filename);
        prev = p->data + p->len;
    }
    if (r == 0) {
        static struct mp_form f;
        const char *bad = "";
        int rf = multipart_form(parts, np, &f, &bad);
        if ((rf < 0) != (bad != NULL))
            abort();
        if (rf == 0 && (strlen(f.kind) >= sizeof f.kind || strlen(f.sha256) >= sizeof f.sha256 ||
                        strlen(f.file_name) >= sizeof f.file_name))
            abort();
        if (rf == 0 && f.file && (f.file < parts || f.file >= parts + np || strcmp(f.file->name, "file")))
            abort();
        if (rf == 0)
            check_kept(f.file_name);
    }
    free(body);
    return 0;
}
