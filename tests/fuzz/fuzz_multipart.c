/* libFuzzer target for multipart/form-data bodies (POST /api/media): the
 * parser must never read outside the body, and every part it returns must
 * lie inside it, in order, with NUL-terminated names. The input is a
 * Content-Type line, a newline, then the body. */
#include "workers/multipart.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *nl = memchr(in, '\n', size);
    if (!nl)
        return 0;
    char boundary[MP_BOUNDARY_MAX + 1];
    if (multipart_boundary(in, (size_t)(nl - in), boundary) < 0)
        return 0;
    if (strlen(boundary) == 0 || strlen(boundary) > MP_BOUNDARY_MAX)
        abort();
    /* A copy of exactly the body's size, so reading past it is caught. */
    size_t n = size - (size_t)(nl + 1 - in);
    char *body = malloc(n ? n : 1);
    memcpy(body, nl + 1, n);
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
        prev = p->data + p->len;
    }
    free(body);
    return 0;
}
