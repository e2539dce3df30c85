/* The Message protobuf as wapi reads and writes it, for the interop test
 * with Baileys' own protobuf definitions:
 *
 *   wa_msg_tool parse < MESSAGE          one JSON line: what wa_msg_parse read
 *   wa_msg_tool build-media TYPE KEY SHA ENC LENGTH DIRECT_PATH [name=value...]
 *       > MESSAGE                         the Message wa_msg_build_media writes
 *
 * TYPE: image video audio voice document sticker; KEY, SHA, ENC: 32 bytes in
 * hex; names: url mimetype caption file_name width height seconds pages ts
 * animated gif thumbnail(hex) waveform(hex) reply_to reply_participant dsm.
 * build-poll, build-vote and open-vote: polls and votes (see polls()).
 *   wa_msg_tool build-disappearing SECONDS TS > MESSAGE   our change of a chat's timer
 *   wa_msg_tool mark [forwarded=N] [expiration=N] [view_once=1] < MESSAGE > MESSAGE
 *       the Message with wa_msg_mark's marks
 * Exit 0, 2 when parsing or building refused, 1 on bad usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "supervisor/wa/wa_message.h"

/* Hex of any even length up to cap bytes; *n the bytes read. */
static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap || hex_decode(s, out, len / 2) < 0)
        return -1;
    *n = len / 2;
    return 0;
}

static void khex(struct jsonw *w, const char *k, const uint8_t *p, size_t n, int has)
{
    if (!has) {
        jw_knull(w, k);
        return;
    }
    char *h = malloc(2 * n + 1);
    hex_encode(h, p, n, 0);
    jw_kstr(w, k, h);
    free(h);
}

static int parse(void)
{
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    struct wa_msg_content mc;
    if (wa_msg_parse(buf, n, &mc) < 0)
        return 2;
    static const char *const kinds[] = {"text", "reaction",     "edit",     "revoke",   "unsupported",
                                        "none", "media",        "location", "contacts", "poll",
                                        "vote", "disappearing", "pin",      "keep",     "appstate_keys"};
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "kind", kinds[mc.kind]);
    jw_kstr(&w, "subtype", mc.subtype);
    jw_kstr(&w, "text", mc.text);
    jw_kstr(&w, "reply_to", mc.reply_to);
    jw_kstr(&w, "dsm_dest", mc.dsm_dest);
    jw_kbool(&w, "view_once", mc.view_once);
    jw_kstr(&w, "target", mc.target);
    if (mc.kind == WA_MSG_PIN || mc.kind == WA_MSG_KEEP) {
        jw_kbool(&w, "on", mc.on);
        jw_kuint(&w, "on_seconds", mc.on_seconds);
    }
    if (mc.has_expiration)
        jw_kuint(&w, "expiration", mc.expiration);
    else
        jw_knull(&w, "expiration");
    if (mc.location) {
        const struct wa_msg_location *l = mc.location;
        jw_key(&w, "location");
        jw_obj(&w);
        jw_key(&w, "latitude");
        jw_double(&w, "%.15g", l->latitude);
        jw_key(&w, "longitude");
        jw_double(&w, "%.15g", l->longitude);
        jw_kstr(&w, "name", l->name);
        jw_kstr(&w, "address", l->address);
        jw_kstr(&w, "url", l->url);
        jw_kstr(&w, "comment", l->comment);
        jw_kbool(&w, "live", l->live);
        jw_kuint(&w, "accuracy_m", l->accuracy_m);
        jw_kint(&w, "sequence", l->sequence);
        jw_obj_end(&w);
    }
    if (mc.kind == WA_MSG_CONTACTS) {
        jw_key(&w, "contacts");
        jw_arr(&w);
        for (size_t i = 0; i < mc.ncontacts; i++) {
            jw_obj(&w);
            jw_kstr(&w, "display_name", mc.contacts[i].display_name);
            jw_kstr(&w, "vcard", mc.contacts[i].vcard);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    if (mc.poll) {
        const struct wa_msg_poll *p = mc.poll;
        jw_key(&w, "poll");
        jw_obj(&w);
        jw_kstr(&w, "question", p->question);
        jw_key(&w, "options");
        jw_arr(&w);
        for (size_t i = 0; i < p->noptions; i++)
            jw_str(&w, p->options[i]);
        jw_arr_end(&w);
        jw_kbool(&w, "multiple", p->multiple);
        khex(&w, "secret", p->secret, sizeof p->secret, p->has_secret);
        jw_obj_end(&w);
    }
    if (mc.vote) {
        const struct wa_msg_poll_vote *v = mc.vote;
        jw_key(&w, "vote");
        jw_obj(&w);
        jw_kstr(&w, "poll_id", v->poll_id);
        jw_kstr(&w, "poll_chat", v->poll_chat);
        jw_kstr(&w, "poll_participant", v->poll_participant);
        jw_kbool(&w, "poll_from_me", v->poll_from_me);
        khex(&w, "iv", v->iv, sizeof v->iv, 1);
        khex(&w, "payload", v->payload, v->payload_len, 1);
        jw_kint(&w, "ts_ms", v->ts_ms);
        jw_obj_end(&w);
    }
    if (mc.media) {
        const struct wa_msg_media *m = mc.media;
        jw_key(&w, "media");
        jw_obj(&w);
        jw_kstr(&w, "type", wa_media_type_name(m->type));
        jw_kstr(&w, "url", m->url);
        jw_kstr(&w, "direct_path", m->direct_path);
        jw_kstr(&w, "mimetype", m->mimetype);
        jw_kstr(&w, "caption", m->caption);
        jw_kstr(&w, "file_name", m->file_name);
        khex(&w, "media_key", m->media_key, 32, m->has_media_key);
        khex(&w, "file_sha256", m->file_sha256, 32, m->has_file_sha256);
        khex(&w, "file_enc_sha256", m->file_enc_sha256, 32, m->has_file_enc_sha256);
        jw_kuint(&w, "file_length", m->file_length);
        jw_kuint(&w, "width", m->width);
        jw_kuint(&w, "height", m->height);
        jw_kuint(&w, "seconds", m->seconds);
        jw_kuint(&w, "pages", m->page_count);
        jw_kint(&w, "ts", m->media_key_ts);
        jw_kbool(&w, "animated", m->animated);
        jw_kbool(&w, "gif", m->gif);
        khex(&w, "thumbnail", m->thumbnail, m->thumbnail_len, m->thumbnail_len > 0);
        khex(&w, "waveform", m->waveform, m->waveform_len, m->waveform_len > 0);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
    int r = jw_finish(&w);
    if (r == 0)
        printf("%.*s\n", (int)b.len, b.buf);
    sbuf_free(&b);
    wa_msg_content_free(&mc);
    return r == 0 ? 0 : 1;
}

static int build(int argc, char **argv)
{
    struct wa_msg_media m = {0};
    static uint8_t thumb[1 << 16];
    size_t n = 0;
    const char *reply = NULL, *participant = NULL, *dsm = NULL;
    m.type = -1;
    for (int t = 0; t < WA_MT_COUNT; t++)
        if (!strcmp(argv[2], wa_media_type_name(t)))
            m.type = t;
    if (m.type < 0 || unhex(argv[3], m.media_key, 32, &n) || n != 32 ||
        unhex(argv[4], m.file_sha256, 32, &n) || n != 32 || unhex(argv[5], m.file_enc_sha256, 32, &n) ||
        n != 32)
        return 1;
    m.has_media_key = m.has_file_sha256 = m.has_file_enc_sha256 = 1;
    m.file_length = strtoull(argv[6], NULL, 10);
    m.direct_path = argv[7];
    for (int i = 8; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return 1;
        *eq = '\0';
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "url"))
            m.url = (char *)v;
        else if (!strcmp(k, "mimetype"))
            m.mimetype = (char *)v;
        else if (!strcmp(k, "caption"))
            m.caption = (char *)v;
        else if (!strcmp(k, "file_name"))
            m.file_name = (char *)v;
        else if (!strcmp(k, "width"))
            m.width = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "height"))
            m.height = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "seconds"))
            m.seconds = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "pages"))
            m.page_count = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "ts"))
            m.media_key_ts = strtoll(v, NULL, 10);
        else if (!strcmp(k, "animated"))
            m.animated = atoi(v);
        else if (!strcmp(k, "gif"))
            m.gif = atoi(v);
        else if (!strcmp(k, "thumbnail") && !unhex(v, thumb, sizeof thumb, &m.thumbnail_len))
            m.thumbnail = thumb;
        else if (!strcmp(k, "waveform") && !unhex(v, m.waveform, sizeof m.waveform, &m.waveform_len))
            ;
        else if (!strcmp(k, "reply_to"))
            reply = v;
        else if (!strcmp(k, "reply_participant"))
            participant = v;
        else if (!strcmp(k, "dsm"))
            dsm = v;
        else
            return 1;
    }
    uint8_t *out;
    size_t len;
    if (wa_msg_build_media(&m, reply, participant, NULL, dsm, &out, &len) < 0)
        return 2;
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

/* build-location LAT LON [name=] [address=] [url=] [live=1] [reply_to=]; build-contacts
 * reply_to|- VCARD [VCARD...] (display names from FN); stanza-type: the
 * <message type> and <enc mediatype> of a Message read from stdin. */
static int build_other(int argc, char **argv)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int r = -1;
    if (!strcmp(argv[1], "build-location")) {
        struct wa_msg_location l = {.latitude = strtod(argv[2], NULL), .longitude = strtod(argv[3], NULL)};
        const char *reply = NULL;
        for (int i = 4; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq)
                return 1;
            *eq = '\0';
            if (!strcmp(argv[i], "name"))
                l.name = eq + 1;
            else if (!strcmp(argv[i], "address"))
                l.address = eq + 1;
            else if (!strcmp(argv[i], "url"))
                l.url = eq + 1;
            else if (!strcmp(argv[i], "live"))
                l.live = atoi(eq + 1);
            else if (!strcmp(argv[i], "reply_to"))
                reply = eq + 1;
            else
                return 1;
        }
        r = wa_msg_build_location(&l, reply, NULL, &out, &len);
    } else {
        struct wa_msg_contact c[WA_MSG_MAX_CONTACTS];
        size_t n = 0;
        for (int i = 3; i < argc && n < WA_MSG_MAX_CONTACTS; i++)
            c[n++] = (struct wa_msg_contact){.vcard = argv[i]};
        r = wa_msg_build_contacts(c, n, NULL, strcmp(argv[2], "-") ? argv[2] : NULL, NULL, &out, &len);
    }
    if (r < 0)
        return 2;
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

/* build-poll MULTIPLE(0|1) SECRET-HEX QUESTION OPTION...: a poll Message.
 * build-vote SECRET-HEX CHAT POLL-ID POLL-FROM-ME CREATOR VOTER OPTION...: a
 * vote Message. open-vote SECRET-HEX POLL-ID CREATOR VOTER < Message: the
 * chosen options' SHA-256 sums in hex, one a line (exit 3: does not open). */
static int polls(int argc, char **argv)
{
    uint8_t secret[WA_MSG_POLL_SECRET_LEN], *out = NULL;
    size_t n = 0, len = 0;
    int r = -1;
    if (!strcmp(argv[1], "build-poll")) {
        if (unhex(argv[3], secret, sizeof secret, &n) || n != sizeof secret)
            return 1;
        struct wa_msg_poll p = {.question = argv[4],
                                .options = argv + 5,
                                .noptions = (size_t)(argc - 5),
                                .multiple = atoi(argv[2]),
                                .has_secret = 1};
        memcpy(p.secret, secret, sizeof secret);
        r = wa_msg_build_poll(&p, NULL, NULL, &out, &len);
    } else if (!strcmp(argv[1], "build-vote")) {
        if (unhex(argv[2], secret, sizeof secret, &n) || n != sizeof secret)
            return 1;
        r = wa_msg_build_poll_vote(secret, argv[3], argv[4], atoi(argv[5]), argv[6], argv[7],
                                   (const char *const *)argv + 8, (size_t)(argc - 8), 1700000000000, &out,
                                   &len);
    } else {
        static uint8_t buf[1 << 16];
        size_t bn = fread(buf, 1, sizeof buf, stdin);
        struct wa_msg_content mc;
        if (unhex(argv[2], secret, sizeof secret, &n) || n != sizeof secret || wa_msg_parse(buf, bn, &mc) < 0)
            return 1;
        uint8_t *sums = NULL;
        size_t ns = 0;
        r = mc.vote ? wa_msg_poll_vote_open(secret, argv[3], argv[4], argv[5], mc.vote, &sums, &ns) : -1;
        for (size_t i = 0; r == 0 && i < ns; i++) {
            for (size_t k = 0; k < 32; k++)
                printf("%02x", sums[32 * i + k]);
            printf("\n");
        }
        free(sums);
        wa_msg_content_free(&mc);
        return r == 0 ? 0 : 3;
    }
    if (r < 0)
        return 2;
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

/* build-disappearing and mark. */
static int marks(int argc, char **argv)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int r;
    if (!strcmp(argv[1], "build-disappearing")) {
        r = wa_msg_build_disappearing((uint32_t)strtoul(argv[2], NULL, 10), strtoll(argv[3], NULL, 10), &out,
                                      &len);
    } else {
        static uint8_t buf[1 << 22];
        size_t n = fread(buf, 1, sizeof buf, stdin);
        struct wa_msg_marks mk = {0, 0, 0};
        for (int i = 2; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq)
                return 1;
            *eq = '\0';
            if (!strcmp(argv[i], "forwarded"))
                mk.forwarding_score = (uint32_t)strtoul(eq + 1, NULL, 10);
            else if (!strcmp(argv[i], "expiration"))
                mk.expiration = (uint32_t)strtoul(eq + 1, NULL, 10);
            else if (!strcmp(argv[i], "view_once"))
                mk.view_once = atoi(eq + 1);
            else
                return 1;
        }
        r = wa_msg_mark(buf, n, &mk, &out, &len);
    }
    if (r < 0)
        return 2;
    fwrite(out, 1, len, stdout);
    free(out);
    return 0;
}

static int stanza_type(void)
{
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    struct wa_msg_stanza st;
    if (wa_msg_stanza_type(buf, n, &st) < 0)
        return 2;
    printf("%s %s%s%s%s%s%s\n", st.type, st.mediatype ? st.mediatype : "-", st.edit ? " edit=" : "",
           st.edit ? st.edit : "", st.hide_on_failure ? " hide" : "", st.polltype ? " polltype=" : "",
           st.polltype ? st.polltype : "");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "stanza-type"))
        return stanza_type();
    if ((argc >= 4 && !strcmp(argv[1], "build-location")) ||
        (argc >= 4 && !strcmp(argv[1], "build-contacts")))
        return build_other(argc, argv);
    if ((argc == 4 && !strcmp(argv[1], "build-disappearing")) || (argc >= 2 && !strcmp(argv[1], "mark")))
        return marks(argc, argv);
    if (argc == 2 && !strcmp(argv[1], "parse"))
        return parse();
    if ((argc >= 5 && !strcmp(argv[1], "build-poll")) || (argc >= 8 && !strcmp(argv[1], "build-vote")) ||
        (argc == 6 && !strcmp(argv[1], "open-vote")))
        return polls(argc, argv);
    if (argc >= 8 && !strcmp(argv[1], "build-media"))
        return build(argc, argv);
    fprintf(stderr, "usage: see the top of wa_msg_tool.c\n");
    return 1;
}
