/* libFuzzer target for the MP4 box walker: an uploaded or downloaded video
 * is untrusted bytes. Whatever the input, the walker reads only inside it,
 * and a duration it returns is within a year. The same bytes are scanned as
 * a PDF for its page count, which stays within its bound. Built alone by clang (make
 * fuzzers). */
#include "supervisor/media_probe.c"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
    const uint8_t *p;
    size_t n;
};

static ssize_t mem_read(void *ctx, void *buf, size_t n, uint64_t off)
{
    const struct mem *m = ctx;
    if (off > m->n)
        abort(); /* the walker asked past the end it was told */
    if (n > m->n - off)
        n = m->n - (size_t)off;
    memcpy(buf, m->p + off, n);
    return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem m = {data, size};
    uint64_t ms = 0;
    char err[256];
    if (media_probe_mp4_ms(mem_read, &m, size, &ms, err, sizeof err) == 0 && ms > MAX_MS)
        abort();
    if (media_probe_pdf_pages(data, size) > PDF_MAX_PAGES)
        abort();
    return 0;
}
