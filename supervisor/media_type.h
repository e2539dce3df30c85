/* What a file is, from its bytes (libmagic), and whether it may be stored as
 * the kind asked for: WhatsApp sends an image, a sticker or a voice note
 * only in a few formats, and a file declared as one type must be that type.
 * The rules are pure; detection takes a lock (libmagic's handle is not
 * thread-safe) so it can run on any thread. */
#ifndef WAPI_MEDIA_TYPE_H
#define WAPI_MEDIA_TYPE_H
#include <stddef.h>

enum media_kind { MK_NONE = 0, MK_IMAGE, MK_VIDEO, MK_AUDIO, MK_VOICE, MK_DOCUMENT, MK_STICKER };

#define MEDIA_TYPE_HEAD (256 * 1024) /* bytes from the start of a file that detection looks at */
#define MEDIA_MIME_MAX 128

/* "image" ... "sticker"; NULL for MK_NONE. */
const char *media_kind_name(enum media_kind k);
/* The kind of that name; MK_NONE when it is not one. */
enum media_kind media_kind_parse(const char *s);

/* Loads libmagic's database (once, at start). 0, or -1 with err. */
int media_type_init(char *err, size_t errlen);
/* The MIME type of the bytes (the first ones of a file), lower case, e.g.
 * "image/png"; "application/octet-stream" when nothing matches. */
void media_type_detect(const unsigned char *head, size_t n, char mime[MEDIA_MIME_MAX]);

struct media_verdict {
    enum media_kind kind;          /* the kind asked for, or the one the type implies */
    char mimetype[MEDIA_MIME_MAX]; /* what is stored and served */
    const char *code;              /* on refusal: "type_mismatch" or "unsupported_type" */
    char message[320];             /* on refusal: for the 400's message */
};
/* declared: the client's Content-Type ("" or NULL: none); detected: from
 * media_type_detect; head: the first bytes (for what libmagic does not say,
 * e.g. that an Ogg stream is Opus). 0 with v filled, or -1 with v->code and
 * v->message. */
int media_type_check(const char *declared, const char *detected, enum media_kind kind,
                     const unsigned char *head, size_t n, struct media_verdict *v);

#endif
