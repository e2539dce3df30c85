/* libFuzzer target for what `wapictl restore` reads from an archive it did
 * not necessarily make: the gzip/ustar reader. Nothing may crash, read out of
 * bounds or hand out more content than a member's header announced; and a
 * stream that begins with a valid archive of ours is read back byte for byte. */
#include <stdlib.h>
#include <sys/mman.h>

#include "supervisor/ctl/tar_stream.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd_with(const void *p, size_t n)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (n && write(fd, p, n) != (ssize_t)n)
        abort();
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static void read_all(int fd)
{
    static struct tar_in in;
    if (tar_in_open(&in, fd) < 0)
        return;
    struct tar_entry e;
    int r;
    unsigned char buf[700];
    while ((r = tar_in_next(&in, &e)) == 1) {
        if (strlen(e.name) > TAR_NAME_MAX || (e.type != '0' && e.type != '5'))
            abort();
        uint64_t got = 0;
        ssize_t n;
        while ((n = tar_in_read(&in, buf, sizeof buf)) > 0)
            got += (uint64_t)n;
        if (n == 0 && got != e.size)
            abort();
        if (n < 0)
            break;
    }
    tar_in_close(&in);
}

/* Our own writer's output, with the input as member names and content. */
static void round_trip(const uint8_t *data, size_t size)
{
    static struct tar_out out;
    int fd = memfd_create("fuzz-out", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    char name[64];
    size_t nl = size < 40 ? size : 40;
    snprintf(name, sizeof name, "media/%zu", nl);
    if (tar_out_open(&out, fd, size & 1 ? 1 : 0) < 0 || tar_out_file(&out, name, size, 0644, 1) < 0 ||
        (size && tar_out_data(&out, data, size) < 0) || tar_out_close(&out) < 0)
        abort();
    lseek(fd, 0, SEEK_SET);
    static struct tar_in in;
    struct tar_entry e;
    if (tar_in_open(&in, fd) < 0 || tar_in_next(&in, &e) != 1 || strcmp(e.name, name) != 0 || e.size != size)
        abort();
    size_t off = 0;
    unsigned char buf[512];
    ssize_t n;
    while ((n = tar_in_read(&in, buf, sizeof buf)) > 0) {
        if (off + (size_t)n > size || memcmp(buf, data + off, (size_t)n) != 0)
            abort();
        off += (size_t)n;
    }
    if (n < 0 || off != size || tar_in_next(&in, &e) != 0)
        abort();
    tar_in_close(&in);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_with(data, size);
    read_all(fd);
    close(fd);
    round_trip(data, size);
    return 0;
}
