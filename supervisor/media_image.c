/* Image sizes and thumbnails (see media_image.h). */
#include "media_image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include "common/fdio.h"

#define WEBP_MAX_PIXELS (16u * 1024 * 1024) /* libwebp may hold the whole picture: keep that small */
#define INTERLACED_MAX_PIXELS (4u * 1024 * 1024)

/* 1 (err set) when the header's size is over limit: checked before any decoding. */
static int too_many_pixels(const struct media_image *info, uint32_t limit, char *err, size_t errlen)
{
    if ((uint64_t)info->width * info->height <= limit)
        return 0;
    snprintf(err, errlen, "a %ux%u picture is larger than %u pixels", info->width, info->height, limit);
    return 1;
}

static enum media_image_format sniff(const uint8_t *h, size_t n)
{
    if (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF)
        return MEDIA_IMG_JPEG;
    if (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8))
        return MEDIA_IMG_PNG;
    if (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4))
        return MEDIA_IMG_WEBP;
    return MEDIA_IMG_NONE;
}

/* ---- the thumbnail's box filter ---- */

struct box {
    uint32_t sw, sh, tw, th; /* source (as decoded) and output sizes */
    uint32_t x0, y0, cw, ch; /* the part of the source kept (all of it, or a centred square) */
    int quality;
    uint64_t *acc; /* tw*th*4: r, g, b, count */
};

/* What to make: the longer side at most side pixels, or a centred square of
 * side pixels at most; a JPEG of that quality. */
struct shape {
    uint32_t side;
    int square, quality;
};

static const struct shape THUMB = {MEDIA_THUMB_SIDE, 0, 60};
static const struct shape PICTURE = {MEDIA_PICTURE_SIDE, 1, 80};

static int box_init(struct box *b, uint32_t sw, uint32_t sh, const struct shape *want)
{
    b->sw = sw, b->sh = sh;
    b->x0 = b->y0 = 0, b->cw = sw, b->ch = sh;
    b->quality = want->quality;
    if (want->square) {
        uint32_t s = sw < sh ? sw : sh;
        b->x0 = (sw - s) / 2, b->y0 = (sh - s) / 2, b->cw = b->ch = s;
        b->tw = b->th = s < want->side ? s : want->side;
    } else if (sw >= sh) {
        b->tw = sw < want->side ? sw : want->side;
        b->th = (uint32_t)((uint64_t)sh * b->tw / sw);
    } else {
        b->th = sh < want->side ? sh : want->side;
        b->tw = (uint32_t)((uint64_t)sw * b->th / sh);
    }
    b->tw = b->tw ? b->tw : 1;
    b->th = b->th ? b->th : 1;
    b->acc = calloc((size_t)b->tw * b->th * 4, sizeof *b->acc);
    return b->acc ? 0 : -1;
}

/* One source row of RGB (3) or RGBA (4) pixels; alpha flattened on white. */
static void box_row(struct box *b, uint32_t y, const uint8_t *row, int channels)
{
    if (y < b->y0 || y - b->y0 >= b->ch)
        return;
    uint64_t *line = b->acc + (size_t)((uint64_t)(y - b->y0) * b->th / b->ch) * b->tw * 4;
    for (uint32_t x = 0; x < b->cw; x++) {
        const uint8_t *p = row + (size_t)(x + b->x0) * (size_t)channels;
        uint64_t *a = line + (size_t)((uint64_t)x * b->tw / b->cw) * 4;
        unsigned al = channels == 4 ? p[3] : 255;
        for (int c = 0; c < 3; c++)
            a[c] += (p[c] * al + 255 * (255 - al)) / 255;
        a[3]++;
    }
}

/* The box as JPEG; frees the box. */
static int box_jpeg(struct box *b, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    uint8_t *rgb = malloc((size_t)b->tw * b->th * 3);
    if (!rgb) {
        free(b->acc);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < (size_t)b->tw * b->th; i++)
        for (int c = 0; c < 3; c++)
            rgb[i * 3 + c] = b->acc[i * 4 + 3] ? (uint8_t)(b->acc[i * 4 + c] / b->acc[i * 4 + 3]) : 255;
    free(b->acc);
    b->acc = NULL;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *mem = NULL;
    unsigned long memlen = 0;
    c.err = jpeg_std_error(&jerr); /* compressing our own buffer to memory cannot meet bad input */
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &memlen);
    c.image_width = b->tw;
    c.image_height = b->th;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, b->quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = rgb + (size_t)c.next_scanline * b->tw * 3;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(rgb);
    *out = mem;
    *len = memlen;
    return 0;
}

/* ---- JPEG, streamed from the descriptor ---- */

struct jsrc {
    struct jpeg_source_mgr pub;
    int fd;
    off_t off;
    uint8_t buf[65536];
};

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
};

static void j_error_exit(j_common_ptr c)
{
    struct jerr *e = (struct jerr *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void j_no_message(j_common_ptr c)
{
    (void)c; /* warnings (a corrupt marker libjpeg steps over) are not logged */
}

static void j_init(j_decompress_ptr c)
{
    (void)c;
}

static boolean j_fill(j_decompress_ptr c)
{
    struct jsrc *s = (struct jsrc *)c->src;
    ssize_t n = fd_pread_all(s->fd, s->buf, sizeof s->buf, s->off);
    if (n <= 0) { /* the end: an EOI, as libjpeg's own sources do */
        s->buf[0] = 0xFF;
        s->buf[1] = JPEG_EOI;
        n = 2;
    } else {
        s->off += n;
    }
    s->pub.next_input_byte = s->buf;
    s->pub.bytes_in_buffer = (size_t)n;
    return TRUE;
}

static void j_skip(j_decompress_ptr c, long n)
{
    struct jsrc *s = (struct jsrc *)c->src;
    if (n <= 0)
        return;
    if ((size_t)n <= s->pub.bytes_in_buffer) {
        s->pub.next_input_byte += n;
        s->pub.bytes_in_buffer -= (size_t)n;
        return;
    }
    s->off += n - (long)s->pub.bytes_in_buffer;
    s->pub.bytes_in_buffer = 0;
    j_fill(c);
}

static void j_term(j_decompress_ptr c)
{
    (void)c;
}

/* Everything the JPEG path allocates, so a longjmp can free it. */
struct jwork {
    struct jpeg_decompress_struct c;
    struct jerr e;
    struct jsrc *src;
    uint8_t *row;
    struct box b;
};

static int jpeg_do(int fd, const struct shape *want, struct media_image *info, uint8_t **out, size_t *len,
                   char *err, size_t errlen)
{
    struct jwork *w = calloc(1, sizeof *w);
    volatile int rc = -1; /* set after setjmp */
    if (!w || !(w->src = calloc(1, sizeof *w->src))) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->c.err = jpeg_std_error(&w->e.pub);
    w->e.pub.error_exit = j_error_exit;
    w->e.pub.output_message = j_no_message;
    if (setjmp(w->e.jb)) {
        snprintf(err, errlen, "JPEG: %s", w->e.msg);
        goto done;
    }
    jpeg_create_decompress(&w->c);
    w->src->fd = fd;
    w->src->pub.init_source = j_init;
    w->src->pub.fill_input_buffer = j_fill;
    w->src->pub.skip_input_data = j_skip;
    w->src->pub.resync_to_restart = jpeg_resync_to_restart;
    w->src->pub.term_source = j_term;
    w->c.src = &w->src->pub;
    jpeg_read_header(&w->c, TRUE);
    info->format = MEDIA_IMG_JPEG;
    info->width = w->c.image_width;
    info->height = w->c.image_height;
    if (too_many_pixels(info, MEDIA_IMAGE_MAX_PIXELS, err, errlen))
        goto done;
    if (!want) {
        rc = 0;
        goto done;
    }
    if (w->c.jpeg_color_space == JCS_CMYK || w->c.jpeg_color_space == JCS_YCCK) {
        snprintf(err, errlen, "JPEG: CMYK pictures get no thumbnail");
        goto done;
    }
    w->c.out_color_space = JCS_RGB;
    /* Decode at 1/2..1/8 when the output is still twice as fine (the
     * shorter side is the one that counts for a square). */
    unsigned d = 8, w0 = w->c.image_width, h0 = w->c.image_height;
    unsigned longer = (w0 > h0) == !want->square ? w0 : h0;
    while (d > 1 && longer / d < 2 * want->side)
        d /= 2;
    w->c.scale_num = 1;
    w->c.scale_denom = d;
    jpeg_start_decompress(&w->c);
    if (box_init(&w->b, w->c.output_width, w->c.output_height, want) < 0 ||
        !(w->row = malloc((size_t)w->c.output_width * 3))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    while (w->c.output_scanline < w->c.output_height) {
        JSAMPROW r = w->row;
        uint32_t y = w->c.output_scanline;
        if (jpeg_read_scanlines(&w->c, &r, 1) != 1)
            break;
        box_row(&w->b, y, w->row, 3);
    }
    rc = box_jpeg(&w->b, out, len, err, errlen);
    w->b.acc = NULL;
done:
    jpeg_destroy_decompress(&w->c);
    free(w->b.acc);
    free(w->row);
    free(w->src);
    free(w);
    return rc;
}

/* ---- PNG, streamed from the descriptor ---- */

struct pwork {
    png_structp p;
    png_infop i;
    int fd;
    off_t off;
    char msg[200];
    uint8_t *row, *image;
    png_bytep *rows;
    struct box b;
};

static void p_read(png_structp p, png_bytep data, size_t n)
{
    struct pwork *w = png_get_io_ptr(p);
    ssize_t got = fd_pread_all(w->fd, data, n, w->off);
    if (got != (ssize_t)n)
        png_error(p, "the file ends early");
    w->off += got;
}

static void p_error(png_structp p, png_const_charp msg)
{
    struct pwork *w = png_get_error_ptr(p);
    snprintf(w->msg, sizeof w->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void p_warning(png_structp p, png_const_charp msg)
{
    (void)p, (void)msg;
}

static int png_do(int fd, const struct shape *want, struct media_image *info, uint8_t **out, size_t *len,
                  char *err, size_t errlen)
{
    struct pwork *w = calloc(1, sizeof *w);
    volatile int rc = -1; /* set after setjmp */
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->fd = fd;
    w->p = png_create_read_struct(PNG_LIBPNG_VER_STRING, w, p_error, p_warning);
    w->i = w->p ? png_create_info_struct(w->p) : NULL;
    if (!w->i) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(w->p))) {
        snprintf(err, errlen, "PNG: %s", w->msg);
        goto done;
    }
    png_set_read_fn(w->p, w, p_read);
    /* libpng's own cap, before any row buffer is sized from the header. */
    png_set_user_limits(w->p, 1u << 20, 1u << 20);
    png_read_info(w->p, w->i);
    info->format = MEDIA_IMG_PNG;
    info->width = png_get_image_width(w->p, w->i);
    info->height = png_get_image_height(w->p, w->i);
    if (too_many_pixels(info, MEDIA_IMAGE_MAX_PIXELS, err, errlen))
        goto done;
    if (!want) {
        rc = 0;
        goto done;
    }
    png_set_expand(w->p);
    png_set_strip_16(w->p);
    png_set_gray_to_rgb(w->p);
    int passes = png_set_interlace_handling(w->p);
    png_read_update_info(w->p, w->i);
    int ch = png_get_channels(w->p, w->i);
    if (ch != 3 && ch != 4) {
        snprintf(err, errlen, "PNG: %d channels after expansion", ch);
        goto done;
    }
    size_t rowbytes = png_get_rowbytes(w->p, w->i);
    if (box_init(&w->b, info->width, info->height, want) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (passes > 1) {
        /* Interlaced rows are complete only after the last pass. */
        if ((uint64_t)info->width * info->height > INTERLACED_MAX_PIXELS) {
            snprintf(err, errlen, "an interlaced PNG over %u pixels gets no thumbnail",
                     INTERLACED_MAX_PIXELS);
            goto done;
        }
        w->image = malloc(rowbytes * info->height);
        w->rows = w->image ? malloc(sizeof *w->rows * info->height) : NULL;
        if (!w->rows) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (uint32_t y = 0; y < info->height; y++)
            w->rows[y] = w->image + rowbytes * y;
        png_read_image(w->p, w->rows);
        for (uint32_t y = 0; y < info->height; y++)
            box_row(&w->b, y, w->rows[y], ch);
    } else {
        if (!(w->row = malloc(rowbytes))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (uint32_t y = 0; y < info->height; y++) {
            png_read_row(w->p, w->row, NULL);
            box_row(&w->b, y, w->row, ch);
        }
    }
    rc = box_jpeg(&w->b, out, len, err, errlen);
    w->b.acc = NULL;
done:
    png_destroy_read_struct(w->p ? &w->p : NULL, w->i ? &w->i : NULL, NULL);
    free(w->b.acc);
    free(w->row);
    free(w->rows);
    free(w->image);
    free(w);
    return rc;
}

/* ---- WebP: libwebp decodes from memory ---- */

static int webp_do(int fd, const struct shape *want, struct media_image *info, uint8_t **out, size_t *len,
                   char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > MEDIA_IMAGE_MAX_FILE) {
        snprintf(err, errlen, "WebP: the file is empty or over %u bytes", MEDIA_IMAGE_MAX_FILE);
        return -1;
    }
    uint8_t *data = malloc((size_t)st.st_size);
    if (!data || fd_pread_all(fd, data, (size_t)st.st_size, 0) != st.st_size) {
        free(data);
        snprintf(err, errlen, "WebP: cannot read the file");
        return -1;
    }
    WebPDecoderConfig cfg;
    int rc = -1;
    if (!WebPInitDecoderConfig(&cfg) ||
        WebPGetFeatures(data, (size_t)st.st_size, &cfg.input) != VP8_STATUS_OK) {
        snprintf(err, errlen, "WebP: malformed header");
        goto done;
    }
    info->format = MEDIA_IMG_WEBP;
    info->width = (uint32_t)cfg.input.width;
    info->height = (uint32_t)cfg.input.height;
    info->animated = cfg.input.has_animation;
    if (too_many_pixels(info, WEBP_MAX_PIXELS, err, errlen))
        goto done;
    if (!want) {
        rc = 0;
        goto done;
    }
    if (info->animated) {
        snprintf(err, errlen, "WebP: an animated picture gets no thumbnail");
        goto done;
    }
    struct box b;
    if (box_init(&b, info->width, info->height, want) < 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* libwebp crops and scales while decoding: the box then maps 1:1. */
    if (b.cw != b.sw || b.ch != b.sh) {
        cfg.options.use_cropping = 1;
        cfg.options.crop_left = (int)b.x0, cfg.options.crop_top = (int)b.y0;
        cfg.options.crop_width = (int)b.cw, cfg.options.crop_height = (int)b.ch;
    }
    cfg.options.use_scaling = 1;
    cfg.options.scaled_width = (int)b.tw;
    cfg.options.scaled_height = (int)b.th;
    cfg.output.colorspace = MODE_RGBA;
    if (WebPDecode(data, (size_t)st.st_size, &cfg) != VP8_STATUS_OK) {
        free(b.acc);
        snprintf(err, errlen, "WebP: cannot decode");
        goto done;
    }
    b.sw = b.cw = b.tw, b.sh = b.ch = b.th, b.x0 = b.y0 = 0;
    for (uint32_t y = 0; y < b.th; y++)
        box_row(&b, y, cfg.output.u.RGBA.rgba + (size_t)y * (size_t)cfg.output.u.RGBA.stride, 4);
    WebPFreeDecBuffer(&cfg.output);
    rc = box_jpeg(&b, out, len, err, errlen);
done:
    free(data);
    return rc;
}

static int run(int fd, const struct shape *want, struct media_image *info, uint8_t **out, size_t *len,
               char *err, size_t errlen)
{
    uint8_t h[16];
    memset(info, 0, sizeof *info);
    ssize_t n = fd_pread_all(fd, h, sizeof h, 0);
    switch (n < 0 ? MEDIA_IMG_NONE : sniff(h, (size_t)n)) {
    case MEDIA_IMG_JPEG:
        return jpeg_do(fd, want, info, out, len, err, errlen);
    case MEDIA_IMG_PNG:
        return png_do(fd, want, info, out, len, err, errlen);
    case MEDIA_IMG_WEBP:
        return webp_do(fd, want, info, out, len, err, errlen);
    default:
        snprintf(err, errlen, "not a JPEG, PNG or WebP picture");
        return -1;
    }
}

int media_image_probe(int fd, struct media_image *out, char *err, size_t errlen)
{
    return run(fd, NULL, out, NULL, NULL, err, errlen);
}

int media_image_thumbnail(int fd, uint8_t **jpeg, size_t *len, struct media_image *info, char *err,
                          size_t errlen)
{
    return run(fd, &THUMB, info, jpeg, len, err, errlen);
}

int media_image_picture(int fd, uint8_t **jpeg, size_t *len, struct media_image *info, char *err,
                        size_t errlen)
{
    return run(fd, &PICTURE, info, jpeg, len, err, errlen);
}
