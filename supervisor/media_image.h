/* Images for media messages: the size of a JPEG, PNG or WebP file and the
 * small JPEG thumbnail a WhatsApp image message carries, decoded with
 * libjpeg-turbo, libpng and libwebp. Memory stays bounded whatever the
 * image: the size is read from the header first and a picture of more than
 * MEDIA_IMAGE_MAX_PIXELS is refused before anything is decoded; JPEG is
 * decoded already scaled down (1/2 to 1/8) and PNG row by row, each into a
 * running box filter the size of the thumbnail. Slow on big images: call it
 * off the event loop. pread only: the descriptor's offset is left alone. */
#ifndef WAPI_MEDIA_IMAGE_H
#define WAPI_MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define MEDIA_IMAGE_MAX_PIXELS (64u * 1024 * 1024) /* 64 megapixels: bigger is not a photo */
#define MEDIA_THUMB_SIDE 72                        /* the thumbnail's longer side, in pixels */
#define MEDIA_PICTURE_SIDE 640                     /* a profile picture's side, as WhatsApp shows it */
#define MEDIA_IMAGE_MAX_FILE (64u * 1024 * 1024)   /* read into memory at most this much (PNG/WebP) */

enum media_image_format { MEDIA_IMG_NONE, MEDIA_IMG_JPEG, MEDIA_IMG_PNG, MEDIA_IMG_WEBP };

struct media_image {
    enum media_image_format format;
    uint32_t width, height;
    int animated; /* an animated WebP */
};

/* The format from the first bytes, then the size from the header. -1 with
 * err when it is none of the three, or the header is malformed. */
int media_image_probe(int fd, struct media_image *out, char *err, size_t errlen);

/* A JPEG thumbnail no larger than MEDIA_THUMB_SIDE on its longer side, the
 * aspect ratio kept, transparency flattened on white. *jpeg malloc'd. */
int media_image_thumbnail(int fd, uint8_t **jpeg, size_t *len, struct media_image *info, char *err,
                          size_t errlen);

/* A profile picture: the centred square of the image, at most
 * MEDIA_PICTURE_SIDE pixels a side, as JPEG. *jpeg malloc'd. */
int media_image_picture(int fd, uint8_t **jpeg, size_t *len, struct media_image *info, char *err,
                        size_t errlen);

#endif
