/* Image sizes and thumbnails on pictures made here with libjpeg, libpng and
 * libwebp: sizes read, thumbnails no larger than 72 px with the aspect kept
 * and the colours where they were (transparency on white), interlaced and
 * 16-bit grey PNGs; headers claiming enormous pictures refused before
 * decoding; cut and foreign files refused or survived, never a crash; the
 * descriptor's offset untouched. */
#include "supervisor/media_image.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

#include "t.h"

static char dir[] = "/tmp/wapi-img-XXXXXX";

static int put_file(const char *name, const void *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
    int fd = open(path, O_RDONLY);
    lseek(fd, 3, SEEK_SET); /* the code under test must not care */
    return fd;
}

/* Left half red, right half blue; w x h. */
static uint8_t *two_colour(int w, int h, int ch, int alpha_bottom)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * ch;
            q[0] = x < w / 2 ? 220 : 10, q[1] = 10, q[2] = x < w / 2 ? 10 : 220;
            if (ch == 4)
                q[3] = alpha_bottom && y >= h / 2 ? 0 : 255;
        }
    return p;
}

static uint8_t *jpeg_of(const uint8_t *rgb, int w, int h, unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *mem = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, len);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h, c.input_components = 3,
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)rgb + (size_t)c.next_scanline * w * 3;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return mem;
}

/* Decodes a JPEG from memory: RGB, its size. */
static uint8_t *unjpeg(const uint8_t *p, size_t n, int *w, int *h)
{
    struct jpeg_decompress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, p, (unsigned long)n);
    jpeg_read_header(&c, TRUE);
    c.out_color_space = JCS_RGB;
    jpeg_start_decompress(&c);
    *w = (int)c.output_width, *h = (int)c.output_height;
    uint8_t *rgb = malloc((size_t)*w * *h * 3);
    while (c.output_scanline < c.output_height) {
        JSAMPROW r = rgb + (size_t)c.output_scanline * *w * 3;
        jpeg_read_scanlines(&c, &r, 1);
    }
    jpeg_finish_decompress(&c);
    jpeg_destroy_decompress(&c);
    return rgb;
}

static int png_file(const char *name, int w, int h, int colour_type, int depth, int interlace,
                    const uint8_t *rgba)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop i = png_create_info_struct(p);
    png_init_io(p, f);
    png_set_IHDR(p, i, (png_uint_32)w, (png_uint_32)h, depth, colour_type, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, i);
    int ch = colour_type == PNG_COLOR_TYPE_RGBA ? 4 : colour_type == PNG_COLOR_TYPE_RGB ? 3 : 1;
    int bpc = depth / 8;
    uint8_t *row = malloc((size_t)w * ch * bpc);
    int npass = png_set_interlace_handling(p);
    for (int pass = 0; pass < npass; pass++)
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++)
                for (int c = 0; c < ch * bpc; c++)
                    row[(size_t)x * ch * bpc + c] =
                        ch == 1 ? (uint8_t)(x < w / 2 ? 30 : 230) : rgba[((size_t)y * w + x) * 4 + c % 4];
            png_write_row(p, row);
        }
    png_write_end(p, i);
    png_destroy_write_struct(&p, &i);
    fclose(f);
    free(row);
    int fd = open(path, O_RDONLY);
    lseek(fd, 3, SEEK_SET);
    return fd;
}

/* The thumbnail of fd: its size, and the mean colour of its left and right
 * quarters and of its top and bottom rows. */
struct look {
    int rc, w, h;
    struct media_image info;
    int left[3], right[3], top[3], bottom[3];
    char err[200];
};

static struct look make(int fd, int picture)
{
    struct look l;
    memset(&l, 0, sizeof l);
    uint8_t *j = NULL;
    size_t n = 0;
    l.rc = picture ? media_image_picture(fd, &j, &n, &l.info, l.err, sizeof l.err)
                   : media_image_thumbnail(fd, &j, &n, &l.info, l.err, sizeof l.err);
    if (l.rc == 0) {
        uint8_t *rgb = unjpeg(j, n, &l.w, &l.h);
        int cl = 0, cr = 0, ct = 0, cb = 0;
        for (int y = 0; y < l.h; y++)
            for (int x = 0; x < l.w; x++) {
                const uint8_t *q = rgb + ((size_t)y * l.w + x) * 3;
                for (int c = 0; c < 3; c++) {
                    if (x < l.w / 4)
                        l.left[c] += q[c], cl += !c;
                    if (x >= l.w * 3 / 4)
                        l.right[c] += q[c], cr += !c;
                    if (y < l.h / 4)
                        l.top[c] += q[c], ct += !c;
                    if (y >= l.h * 3 / 4)
                        l.bottom[c] += q[c], cb += !c;
                }
            }
        for (int c = 0; c < 3; c++) {
            l.left[c] /= cl ? cl : 1, l.right[c] /= cr ? cr : 1;
            l.top[c] /= ct ? ct : 1, l.bottom[c] /= cb ? cb : 1;
        }
        free(rgb);
    }
    free(j);
    if (lseek(fd, 0, SEEK_CUR) != 3)
        l.rc = -99; /* the offset moved */
    return l;
}

static struct look thumb(int fd)
{
    return make(fd, 0);
}

/* Four vertical bands: green, red, blue, green (a square crop of a 2:1
 * picture keeps only the red and blue). */
static uint8_t *bands(int w, int h, int ch)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = p + ((size_t)y * w + x) * ch;
            int band = x * 4 / w;
            q[0] = band == 1 ? 220 : 10, q[1] = band == 0 || band == 3 ? 220 : 10,
            q[2] = band == 2 ? 220 : 10;
            if (ch == 4)
                q[3] = 255;
        }
    return p;
}

/* Profile pictures: the centred square, at most 640 px a side. */
static void pictures(void)
{
    uint8_t *rgb = bands(1600, 800, 3);
    unsigned long jl = 0;
    uint8_t *jp = jpeg_of(rgb, 1600, 800, &jl);
    int fd = put_file("p.jpg", jp, jl);
    struct look l = make(fd, 1);
    T_CHECK(l.rc == 0 && l.w == 640 && l.h == 640, "picture of a 1600x800 JPEG: 640x640");
    T_CHECK(l.left[0] > 180 && l.left[1] < 60 && l.right[2] > 180 && l.right[1] < 60,
            "the centred square: red left, blue right, none of the green sides");
    close(fd);
    free(jp);
    free(rgb);
    uint8_t *rgba = bands(300, 500, 4);
    for (int y = 0; y < 500; y++) /* top 100 rows white: cropped away from a 300x500 */
        for (int x = 0; x < 300 && y < 100; x++)
            memset(rgba + ((size_t)y * 300 + x) * 4, 255, 3);
    fd = png_file("p.png", 300, 500, PNG_COLOR_TYPE_RGBA, 8, PNG_INTERLACE_NONE, rgba);
    l = make(fd, 1);
    T_CHECK(l.rc == 0 && l.w == 300 && l.h == 300, "picture of a 300x500 PNG: 300x300, never enlarged");
    T_CHECK(l.top[0] < 250 || l.top[1] < 250 || l.top[2] < 250, "its white top rows cropped away");
    close(fd);
    free(rgba);
    uint8_t *st = bands(1200, 600, 3), *out = NULL;
    size_t n = WebPEncodeRGB(st, 1200, 600, 1200 * 3, 90, &out);
    fd = put_file("p.webp", out, n);
    l = make(fd, 1);
    T_CHECK(l.rc == 0 && l.w == 600 && l.h == 600 && l.left[0] > 180 && l.left[1] < 60 && l.right[2] > 180 &&
                l.right[1] < 60,
            "picture of a 1200x600 WebP: 600x600, the centred square");
    close(fd);
    WebPFree(out);
    free(st);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    struct media_image mi;
    char err[200];

    uint8_t *rgb = two_colour(1600, 800, 3, 0);
    unsigned long jl = 0;
    uint8_t *jp = jpeg_of(rgb, 1600, 800, &jl);
    int fd = put_file("a.jpg", jp, jl);
    T_CHECK(media_image_probe(fd, &mi, err, sizeof err) == 0 && mi.format == MEDIA_IMG_JPEG &&
                mi.width == 1600 && mi.height == 800,
            "JPEG 1600x800: its size");
    struct look l = thumb(fd);
    T_CHECK(l.rc == 0 && l.w == 72 && l.h == 36, "JPEG thumbnail: 72x36, the aspect kept");
    T_CHECK(l.left[0] > 180 && l.left[2] < 60 && l.right[2] > 180 && l.right[0] < 60,
            "and red on the left, blue on the right");
    close(fd);

    /* A JPEG whose header claims 60000x60000: refused before decoding. */
    {
        uint8_t *big = malloc(jl);
        memcpy(big, jp, jl);
        for (unsigned long i = 0; i + 9 < jl; i++)
            if (big[i] == 0xFF && (big[i + 1] == 0xC0 || big[i + 1] == 0xC2)) {
                big[i + 5] = 0xEA, big[i + 6] = 0x60, big[i + 7] = 0xEA, big[i + 8] = 0x60;
                break;
            }
        fd = put_file("big.jpg", big, jl);
        l = thumb(fd);
        T_CHECK(l.rc == -1 && strstr(l.err, "larger than") && l.info.width == 60000,
                "a 60000x60000 JPEG header: refused");
        close(fd);
        fd = put_file("cut.jpg", jp, jl / 3);
        l = thumb(fd);
        T_CHECK(l.rc == 0 || l.rc == -1,
                "a JPEG cut at a third: a thumbnail of what is there, or refused; no crash");
        close(fd);
        free(big);
    }
    free(jp);
    free(rgb);

    /* PNG: RGBA with a transparent bottom half, flattened on white. */
    uint8_t *rgba = two_colour(300, 600, 4, 1);
    fd = png_file("a.png", 300, 600, PNG_COLOR_TYPE_RGBA, 8, PNG_INTERLACE_NONE, rgba);
    l = thumb(fd);
    T_CHECK(l.rc == 0 && l.info.format == MEDIA_IMG_PNG && l.info.width == 300 && l.info.height == 600 &&
                l.w == 36 && l.h == 72,
            "PNG 300x600: a 36x72 thumbnail");
    T_CHECK(l.top[0] > 100 && l.bottom[0] > 240 && l.bottom[1] > 240 && l.bottom[2] > 240,
            "transparency is white, the opaque half keeps its colour");
    close(fd);
    uint8_t *rgba2 = two_colour(200, 100, 4, 0);
    fd = png_file("i.png", 200, 100, PNG_COLOR_TYPE_RGBA, 8, PNG_INTERLACE_ADAM7, rgba2);
    free(rgba2);
    l = thumb(fd);
    T_CHECK(l.rc == 0 && l.w == 72 && l.h == 36 && l.left[0] > 180 && l.right[2] > 180,
            "an interlaced PNG: 72x36, colours in place");
    close(fd);
    fd = png_file("g.png", 50, 40, PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, NULL);
    l = thumb(fd);
    T_CHECK(l.rc == 0 && l.w == 50 && l.h == 40 && l.left[0] < 60 && l.right[0] > 180 &&
                l.right[0] == l.right[2],
            "a small 16-bit grey PNG: its own size, grey");
    close(fd);
    free(rgba);

    /* A PNG header claiming 100000x100000 (a valid IHDR, CRC and all). */
    {
        /* IHDR, then the start of an IDAT: libpng reads the header up to there. */
        uint8_t png[8 + 25 + 14] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                    0,    0,   0,   13,  'I',  'H',  'D',  'R'};
        static const uint8_t idat[] = {0, 0, 0, 2, 'I', 'D', 'A', 'T', 0x78, 0x9c};
        memcpy(png + 33, idat, sizeof idat);
        uint32_t icrc = (uint32_t)crc32(0, idat + 4, 6);
        png[43] = (uint8_t)(icrc >> 24), png[44] = (uint8_t)(icrc >> 16), png[45] = (uint8_t)(icrc >> 8),
        png[46] = (uint8_t)icrc;
        uint32_t w = 100000, h = 100000;
        uint8_t *d = png + 16;
        d[0] = (uint8_t)(w >> 24), d[1] = (uint8_t)(w >> 16), d[2] = (uint8_t)(w >> 8), d[3] = (uint8_t)w;
        d[4] = (uint8_t)(h >> 24), d[5] = (uint8_t)(h >> 16), d[6] = (uint8_t)(h >> 8), d[7] = (uint8_t)h;
        d[8] = 8, d[9] = 6, d[10] = 0, d[11] = 0, d[12] = 0;
        uint32_t crc = (uint32_t)crc32(0, png + 12, 17);
        png[29] = (uint8_t)(crc >> 24), png[30] = (uint8_t)(crc >> 16), png[31] = (uint8_t)(crc >> 8),
        png[32] = (uint8_t)crc;
        fd = put_file("huge.png", png, sizeof png);
        l = thumb(fd);
        T_CHECK(l.rc == -1 && strstr(l.err, "larger than") && l.info.width == 100000,
                "a 100000x100000 PNG header: refused before decoding");
        close(fd);
        w = 3000000;
        d[0] = (uint8_t)(w >> 24), d[1] = (uint8_t)(w >> 16), d[2] = (uint8_t)(w >> 8), d[3] = (uint8_t)w;
        crc = (uint32_t)crc32(0, png + 12, 17);
        png[29] = (uint8_t)(crc >> 24), png[30] = (uint8_t)(crc >> 16), png[31] = (uint8_t)(crc >> 8),
        png[32] = (uint8_t)crc;
        fd = put_file("wide.png", png, sizeof png);
        l = thumb(fd);
        T_CHECK(l.rc == -1 && strstr(l.err, "PNG:"), "a 3,000,000 px wide PNG: refused by libpng's limit");
        close(fd);
    }

    /* WebP, as stickers are. */
    {
        uint8_t *st = two_colour(512, 512, 3, 0), *out = NULL;
        size_t n = WebPEncodeRGB(st, 512, 512, 512 * 3, 80, &out);
        fd = put_file("s.webp", out, n);
        T_CHECK(media_image_probe(fd, &mi, err, sizeof err) == 0 && mi.format == MEDIA_IMG_WEBP &&
                    mi.width == 512 && mi.height == 512 && !mi.animated,
                "WebP 512x512: its size, not animated");
        l = thumb(fd);
        T_CHECK(l.rc == 0 && l.w == 72 && l.h == 72 && l.left[0] > 180 && l.right[2] > 180,
                "WebP thumbnail: 72x72, colours in place");
        close(fd);
        fd = put_file("cut.webp", out, n / 2);
        l = thumb(fd);
        T_CHECK(l.rc == -1, "half a WebP: refused");
        close(fd);
        WebPFree(out);
        free(st);
    }

    pictures();

    fd = put_file("x.txt", "hello, not a picture", 20);
    T_CHECK(media_image_probe(fd, &mi, err, sizeof err) == -1 && strstr(err, "not a JPEG"),
            "text: not a picture");
    close(fd);
    fd = put_file("empty", "", 0);
    T_CHECK(media_image_probe(fd, &mi, err, sizeof err) == -1, "an empty file: not a picture");
    close(fd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    T_DONE();
}
