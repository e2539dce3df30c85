/* What a file is and whether it may be stored as a kind
 * (supervisor/media_type.c): libmagic on bytes made here, the kinds' rules,
 * a declared type checked against the bytes, kinds inferred. */
#include "supervisor/media_type.h"

#include <stdio.h>
#include <string.h>

#include "t.h"

static const unsigned char PNG[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x02\0\0\0";
static const unsigned char JPEG[] =
    "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9";
static const unsigned char WEBP[] = "RIFF\x1e\0\0\0WEBPVP8L\x0a\0\0\0\x2f\0\0\0\0\0\0\0\0\0\0\0\0\0";
static const unsigned char MP4[] = "\0\0\0\x18"
                                   "ftypmp42\0\0\0\0mp42isom\0\0\0\x08"
                                   "free";
static unsigned char OPUS[64], VORBIS[64];

static void ogg(unsigned char *out, const char *head, size_t hl)
{
    memset(out, 0, 64);
    memcpy(out, "OggS\0\2", 6);
    out[14] = 1;
    out[26] = 1;
    out[27] = (unsigned char)hl;
    memcpy(out + 28, head, hl);
}

static const char *detect(const unsigned char *p, size_t n)
{
    static char mime[MEDIA_MIME_MAX];
    media_type_detect(p, n, mime);
    return mime;
}

/* 0 when accepted (then *kind and mimetype), else -1 and the code. */
static int verdict(const char *declared, const char *detected, enum media_kind k, const unsigned char *h,
                   size_t n, struct media_verdict *v)
{
    return media_type_check(declared, detected, k, h, n, v);
}

static void test_detect(void)
{
    char err[256];
    T_EQ_INT(media_type_init(err, sizeof err), 0, "libmagic loads its database");
    T_EQ_STR(detect(PNG, sizeof PNG - 1), "image/png", "detect: PNG");
    T_EQ_STR(detect(JPEG, sizeof JPEG - 1), "image/jpeg", "detect: JPEG");
    T_EQ_STR(detect(WEBP, sizeof WEBP - 1), "image/webp", "detect: WebP");
    T_EQ_STR(detect(MP4, sizeof MP4 - 1), "video/mp4", "detect: MP4");
    T_EQ_STR(detect(OPUS, sizeof OPUS), "audio/ogg", "detect: Ogg (Opus)");
    const unsigned char txt[] = "just some words\n";
    T_EQ_STR(detect(txt, sizeof txt - 1), "text/plain", "detect: text");
}

static void test_rules(void)
{
    struct media_verdict v;
    T_EQ_INT(verdict("image/png", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), 0, "png: accepted");
    T_CHECK(v.kind == MK_IMAGE && !strcmp(v.mimetype, "image/png"), "png: kind image inferred");
    T_EQ_INT(verdict("image/png", "image/png", MK_VOICE, PNG, sizeof PNG - 1, &v), -1,
             "png as voice: refused");
    T_EQ_STR(v.code, "unsupported_type", "png as voice: unsupported_type");
    T_CHECK(strstr(v.message, "voice") && strstr(v.message, "image/png"),
            "png as voice: the message says why");
    T_EQ_INT(verdict("image/png", "image/png", MK_STICKER, PNG, sizeof PNG - 1, &v), -1,
             "png as sticker: refused");
    T_EQ_INT(verdict(NULL, "image/webp", MK_STICKER, WEBP, sizeof WEBP - 1, &v), 0,
             "webp as sticker: accepted");
    T_EQ_INT(verdict("", "image/webp", MK_NONE, WEBP, sizeof WEBP - 1, &v), 0, "webp: accepted");
    T_CHECK(v.kind == MK_IMAGE, "webp: an image unless a sticker is asked for");
    T_EQ_INT(verdict("audio/ogg; codecs=opus", "audio/ogg", MK_VOICE, OPUS, sizeof OPUS, &v), 0,
             "ogg opus as voice: accepted");
    T_EQ_STR(v.mimetype, "audio/ogg; codecs=opus", "ogg opus: stored as audio/ogg; codecs=opus");
    T_EQ_INT(verdict("audio/ogg", "audio/ogg", MK_VOICE, VORBIS, sizeof VORBIS, &v), -1,
             "ogg vorbis as voice: refused");
    T_CHECK(strstr(v.message, "not Opus") != NULL, "ogg vorbis: the message says it is not Opus");
    T_EQ_INT(verdict("audio/ogg", "audio/ogg", MK_NONE, VORBIS, sizeof VORBIS, &v), 0, "ogg vorbis: audio");
    T_CHECK(v.kind == MK_AUDIO && !strcmp(v.mimetype, "audio/ogg"), "ogg vorbis: kind audio, audio/ogg");
    T_EQ_INT(verdict("video/mp4", "video/mp4", MK_VIDEO, MP4, sizeof MP4 - 1, &v), 0,
             "mp4 as video: accepted");
    T_EQ_INT(verdict(NULL, "video/quicktime", MK_VIDEO, MP4, 4, &v), -1, "quicktime as video: refused");
    T_EQ_INT(verdict(NULL, "video/quicktime", MK_NONE, MP4, 4, &v), 0, "quicktime: a document");
    T_CHECK(v.kind == MK_DOCUMENT, "quicktime: kind document");
    T_EQ_INT(verdict("audio/mp3", "audio/mpeg", MK_AUDIO, NULL, 0, &v), 0, "audio/mp3 is audio/mpeg");
    T_EQ_STR(v.mimetype, "audio/mpeg", "aliases: stored under the usual name");
    T_EQ_INT(verdict("image/jpg", "image/jpeg", MK_IMAGE, JPEG, sizeof JPEG - 1, &v), 0,
             "image/jpg is image/jpeg");
}

static void test_declared(void)
{
    struct media_verdict v;
    const unsigned char txt[] = "words";
    T_EQ_INT(verdict("image/jpeg", "text/plain", MK_NONE, txt, 5, &v), -1, "text declared jpeg: refused");
    T_EQ_STR(v.code, "type_mismatch", "text declared jpeg: type_mismatch");
    T_CHECK(strstr(v.message, "text/plain") && strstr(v.message, "image/jpeg"),
            "text declared jpeg: both named");
    T_EQ_INT(verdict("image/png", "image/jpeg", MK_IMAGE, JPEG, sizeof JPEG - 1, &v), -1,
             "jpeg declared png: refused");
    T_EQ_INT(verdict("image/jpeg", "application/octet-stream", MK_NONE, txt, 5, &v), -1,
             "unknown bytes declared jpeg: refused");
    T_EQ_INT(verdict("application/octet-stream", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), 0,
             "octet-stream declared: the bytes decide");
    T_EQ_STR(v.mimetype, "image/png", "octet-stream declared: stored as what the bytes are");
    T_EQ_INT(verdict("text/csv", "text/plain", MK_DOCUMENT, txt, 5, &v), 0, "csv on text: accepted");
    T_EQ_STR(v.mimetype, "text/csv", "csv on text: the precise name kept");
    T_EQ_INT(verdict("text/plain", "text/csv", MK_NONE, txt, 5, &v), 0,
             "text on what libmagic calls csv: accepted");
    T_EQ_INT(verdict("application/json", "text/plain", MK_NONE, txt, 5, &v), 0, "json on text: accepted");
    T_EQ_INT(verdict("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                     "application/zip", MK_NONE, txt, 5, &v),
             0, "docx on zip: accepted");
    T_EQ_INT(verdict("application/x-foo", "application/octet-stream", MK_DOCUMENT, txt, 5, &v), 0,
             "an application type on unknown bytes: a document of that type");
    T_EQ_INT(verdict("text/html", "application/octet-stream", MK_NONE, txt, 5, &v), -1,
             "text declared on binary bytes: refused");
    T_EQ_INT(verdict("image/png", "image/png", (enum media_kind)MK_DOCUMENT, PNG, sizeof PNG - 1, &v), 0,
             "anything as a document");
    T_EQ_INT(verdict("image/png garbage", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), -1,
             "a declared type with words after it: refused");
    T_EQ_STR(v.code, "type_mismatch", "... as type_mismatch");
    T_EQ_INT(verdict("image/png ; charset=x", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), 0,
             "a declared type with parameters after a space: accepted");
    T_EQ_STR(v.mimetype, "image/png", "... as the type alone");
    T_EQ_INT(verdict("not a type", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), -1,
             "a malformed type: refused");
    T_EQ_INT(verdict("IMAGE/PNG ; charset=x", "image/png", MK_NONE, PNG, sizeof PNG - 1, &v), 0,
             "case and parameters do not matter");
}

static void test_kinds(void)
{
    T_EQ_INT(media_kind_parse("voice"), MK_VOICE, "kinds: voice");
    T_EQ_INT(media_kind_parse("Voice"), MK_NONE, "kinds: names are exact");
    T_EQ_INT(media_kind_parse(NULL), MK_NONE, "kinds: none");
    int ok = 1;
    for (int k = MK_IMAGE; k <= MK_STICKER; k++)
        ok &= (int)media_kind_parse(media_kind_name((enum media_kind)k)) == k;
    T_CHECK(ok, "kinds: every name maps back");
}

int main(void)
{
    ogg(OPUS, "OpusHead\1\1\x38\1\x80\xbb\0\0\0\0\0", 19);
    ogg(VORBIS, "\1vorbis\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 30);
    test_detect();
    test_rules();
    test_declared();
    test_kinds();
    T_DONE();
}
