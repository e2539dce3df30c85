/* Profile pictures on the wire (<iq xmlns=w:profile:picture>): where a
 * person's or a group's picture is, and setting or removing a group's or
 * our own. Protocol only. */
#ifndef WAPI_WA_PICTURE_H
#define WAPI_WA_PICTURE_H
#include <stddef.h>
#include <stdint.h>

#include "wa_client.h"

#define WA_PICTURE_MAX (1024u * 1024) /* a 640×640 JPEG is ~100 KB; the frame limit is far above */

struct wa_picture {
    char id[64];
    char type[16];  /* image or preview */
    char url[1024]; /* where to fetch it (no key: pictures are not encrypted) */
    char direct_path[512];
};

/* pic NULL on failure: code the server's (404 none, 401 hidden from us,
 * 403 …) or 0 when the connection went away; why says which. */
typedef void (*wa_picture_cb)(void *arg, const struct wa_picture *pic, int code, const char *why);

/* The picture of jid (a person or a group): the 640 px image or the 96 px
 * preview. -1 when not connected or jid is none (cb not called). */
int wa_picture_get(struct wa_client *c, const char *jid, int preview, wa_picture_cb cb, void *arg);
/* Sets target's picture (a group, or NULL for our own) to jpeg, or removes it
 * (jpeg NULL). cb gets the new picture's id (empty when removed). -1 when not
 * connected or the arguments are unusable (cb not called). */
int wa_picture_set(struct wa_client *c, const char *target, const uint8_t *jpeg, size_t len, wa_picture_cb cb,
                   void *arg);

#endif
