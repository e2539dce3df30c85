#include "media_type.h"

#include <ctype.h>
#include <magic.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static magic_t cookie;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const kind_names[] = {NULL, "image", "video", "audio", "voice", "document", "sticker"};

const char *media_kind_name(enum media_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : NULL;
}

enum media_kind media_kind_parse(const char *s)
{
    for (int k = MK_IMAGE; s && k <= MK_STICKER; k++)
        if (!strcmp(s, kind_names[k]))
            return (enum media_kind)k;
    return MK_NONE;
}

int media_type_init(char *err, size_t errlen)
{
    if (cookie)
        return 0;
    /* No decompression: a type is what the bytes are, not what they unpack to. */
    magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_ERROR);
    if (!m || magic_load(m, NULL) != 0) {
        snprintf(err, errlen, "libmagic: %s",
                 m && magic_error(m) ? magic_error(m) : "cannot open its database");
        if (m)
            magic_close(m);
        return -1;
    }
    size_t max = MEDIA_TYPE_HEAD;
    magic_setparam(m, MAGIC_PARAM_BYTES_MAX, &max);
    cookie = m;
    return 0;
}

void media_type_detect(const unsigned char *head, size_t n, char mime[MEDIA_MIME_MAX])
{
    const char *r = NULL;
    pthread_mutex_lock(&lock);
    if (cookie)
        r = magic_buffer(cookie, head, n);
    snprintf(mime, MEDIA_MIME_MAX, "%s", r && *r ? r : "application/octet-stream");
    pthread_mutex_unlock(&lock);
    for (char *p = mime; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* Names one format goes by; the first is the one kept. */
static const char *const aliases[][2] = {
    {"image/jpg", "image/jpeg"},
    {"image/pjpeg", "image/jpeg"},
    {"audio/mp3", "audio/mpeg"},
    {"audio/x-mp3", "audio/mpeg"},
    {"audio/mpeg3", "audio/mpeg"},
    {"audio/x-mpeg", "audio/mpeg"},
    {"audio/x-wav", "audio/wav"},
    {"audio/wave", "audio/wav"},
    {"audio/vnd.wave", "audio/wav"},
    {"audio/x-m4a", "audio/mp4"},
    {"audio/m4a", "audio/mp4"},
    {"audio/opus", "audio/ogg"},
    {"audio/x-hx-aac-adts", "audio/aac"},
    {"audio/x-aac", "audio/aac"},
    {"video/x-m4v", "video/mp4"},
    {"application/x-pdf", "application/pdf"},
    {"application/x-zip-compressed", "application/zip"},
};

/* Lower case, parameters and spaces dropped, aliases resolved; "" when s is
 * not type/subtype. */
static void canonical(const char *s, char out[MEDIA_MIME_MAX])
{
    size_t o = 0;
    int slash = 0;
    out[0] = '\0';
    if (!s)
        return;
    while (*s == ' ' || *s == '\t')
        s++;
    for (; *s && *s != ';' && *s != ' ' && *s != '\t'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '/')
            slash++;
        else if (!(isalnum(c) || strchr("!#$&^_.+-", c)))
            slash = 99;
        if (o + 1 >= MEDIA_MIME_MAX) {
            out[0] = '\0';
            return;
        }
        out[o++] = (char)tolower(c);
    }
    out[o] = '\0';
    /* Only parameters may follow: "image/png garbage" is not image/png. */
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s && *s != ';')
        slash = 99;
    if (slash != 1 || out[0] == '/' || out[o - 1] == '/') {
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(out, aliases[i][0])) {
            snprintf(out, MEDIA_MIME_MAX, "%s", aliases[i][1]);
            return;
        }
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Text formats libmagic reports as text/plain. */
static int textual(const char *t)
{
    return starts(t, "text/") || !strcmp(t, "application/json") || !strcmp(t, "application/xml") ||
           !strcmp(t, "application/javascript") || !strcmp(t, "application/x-ndjson") ||
           !strcmp(t, "application/yaml") || !strcmp(t, "application/x-yaml") || ends(t, "+json") ||
           ends(t, "+xml");
}

/* Formats that are a zip archive inside, which libmagic may report as such. */
static int zip_based(const char *t)
{
    return starts(t, "application/vnd.openxmlformats-") || starts(t, "application/vnd.oasis.opendocument.") ||
           !strcmp(t, "application/epub+zip") || !strcmp(t, "application/java-archive") ||
           !strcmp(t, "application/vnd.android.package-archive") || starts(t, "application/vnd.ms-");
}

/* Whether the client's type may stand for what libmagic found: equal, or a
 * more precise name of a document format libmagic only knows roughly. Never
 * for images, audio or video: those are checked against the bytes. */
static int compatible(const char *declared, const char *detected)
{
    if (!strcmp(declared, detected))
        return 1;
    int media = starts(declared, "image/") || starts(declared, "audio/") || starts(declared, "video/");
    if (media)
        return 0;
    if (starts(detected, "text/")) /* libmagic guesses text formats (csv, x-c, …) from a sample */
        return textual(declared);
    if (!strcmp(detected, "application/zip"))
        return zip_based(declared);
    if (!strcmp(detected, "application/x-ole-storage") || !strcmp(detected, "application/cdfv2"))
        return !strcmp(declared, "application/msword") || starts(declared, "application/vnd.ms-");
    if (!strcmp(detected, "application/octet-stream"))
        return starts(declared, "application/") && !textual(declared);
    return 0;
}

/* An Ogg stream whose first packet is an Opus header (RFC 7845). */
static int ogg_opus(const unsigned char *h, size_t n)
{
    if (n < 28 || memcmp(h, "OggS", 4) != 0)
        return 0;
    size_t data = 27 + (size_t)h[26];
    return n >= data + 8 && memcmp(h + data, "OpusHead", 8) == 0;
}

static int refuse(struct media_verdict *v, const char *code, const char *fmt, const char *a, const char *b)
{
    v->code = code;
    snprintf(v->message, sizeof v->message, fmt, a, b);
    return -1;
}

static int one_of(const char *t, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(t, *list))
            return 1;
    return 0;
}

int media_type_check(const char *declared, const char *detected, enum media_kind kind,
                     const unsigned char *head, size_t n, struct media_verdict *v)
{
    static const char *const images[] = {"image/jpeg", "image/png", "image/webp", NULL};
    static const char *const videos[] = {"video/mp4", "video/3gpp", NULL};
    memset(v, 0, sizeof *v);
    char dec[MEDIA_MIME_MAX], det[MEDIA_MIME_MAX];
    canonical(declared, dec);
    canonical(detected, det);
    if (!det[0])
        snprintf(det, sizeof det, "application/octet-stream");
    if (declared && *declared && !dec[0])
        return refuse(v, "type_mismatch", "the declared type \"%.60s\" is not a MIME type%s", declared, "");
    const char *type = det;
    if (dec[0] && strcmp(dec, "application/octet-stream") != 0) {
        if (!compatible(dec, det))
            return refuse(v, "type_mismatch", "the file is %.100s, not %.100s as declared", det, dec);
        type = dec;
    }
    int opus = !strcmp(det, "audio/ogg") && ogg_opus(head, n);
    if (kind == MK_NONE) {
        if (one_of(type, images))
            kind = MK_IMAGE;
        else if (one_of(type, videos))
            kind = MK_VIDEO;
        else if (starts(type, "audio/"))
            kind = MK_AUDIO;
        else
            kind = MK_DOCUMENT;
    }
    int ok = 1;
    const char *allowed = "";
    switch (kind) {
    case MK_IMAGE:
        ok = one_of(type, images);
        allowed = "image/jpeg, image/png or image/webp";
        break;
    case MK_STICKER:
        ok = !strcmp(type, "image/webp");
        allowed = "image/webp";
        break;
    case MK_VIDEO:
        ok = one_of(type, videos);
        allowed = "video/mp4 or video/3gpp";
        break;
    case MK_AUDIO:
        ok = starts(type, "audio/");
        allowed = "audio";
        break;
    case MK_VOICE:
        ok = opus;
        allowed = "audio/ogg with the Opus codec";
        break;
    default:
        break;
    }
    if (!ok) {
        char what[MEDIA_MIME_MAX + 16];
        snprintf(what, sizeof what, "%s%s", type, !strcmp(type, "audio/ogg") && !opus ? " (not Opus)" : "");
        v->code = "unsupported_type";
        snprintf(v->message, sizeof v->message, "kind %s takes %s; the file is %s", media_kind_name(kind),
                 allowed, what);
        return -1;
    }
    v->kind = kind;
    snprintf(v->mimetype, sizeof v->mimetype, "%s", opus ? "audio/ogg; codecs=opus" : type);
    return 0;
}
