/* History sync core against an independent implementation: the blobs come
 * from Baileys' proto.HistorySync encoder and node's zlib, written by
 * tests/wa/history_vectors.mjs which this test runs. Every conversation,
 * message (key, info, and what wa_msg_parse reads in its Message bytes),
 * push name, LID mapping and status is delivered as Baileys encoded it; the
 * same in pieces of 1, 7, 64 KiB bytes and all at once, and already
 * inflated; 20,000 messages in 400 chats digest to Baileys' digest; a cut
 * blob is truncated with only whole entries before the cut delivered;
 * corrupt zlib, over-limit sizes, malformed top levels and a callback's
 * abort each give their code; the notification our phone sends is read
 * (blob and inline), and a blob sealed with the history media keys
 * decrypts and decodes in one stream. */
#include "supervisor/wa/wa_history.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/json.h"
#include "supervisor/wa/wa_message.h"
#include "t.h"

/* ---- files ---- */

static uint8_t *slurp(const char *dir, const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        b[len] = 0, *n = (size_t)len;
    return b;
}

static yajl_val load_json(const char *dir, const char *name)
{
    size_t n;
    char *s = (char *)slurp(dir, name, &n);
    char err[128];
    yajl_val v = s ? json_parse(s, n, 1 << 24, err, sizeof err) : NULL;
    free(s);
    return v;
}

/* ---- a growing text: the canonical record of what was delivered ---- */

struct sb {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *s)
{
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            abort();
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

static void sb_s(struct sb *b, const char *s)
{
    sb_add(b, s ? s : "~");
    sb_add(b, "|");
}

static void sb_u(struct sb *b, long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%lld|", v);
    sb_add(b, t);
}

/* What wa_msg_parse makes of a Message: kind, its text, reply, field name. */
static void sb_meaning(struct sb *b, const uint8_t *msg, size_t n)
{
    if (!msg) {
        sb_s(b, NULL), sb_s(b, NULL), sb_s(b, NULL), sb_s(b, NULL);
        return;
    }
    struct wa_msg_content c = {0};
    if (wa_msg_parse(msg, n, &c) != 0) {
        sb_s(b, "unparsable"), sb_s(b, NULL), sb_s(b, NULL), sb_s(b, NULL);
        return;
    }
    const char *kind = c.kind == WA_MSG_TEXT       ? "text"
                       : c.kind == WA_MSG_MEDIA    ? "media"
                       : c.kind == WA_MSG_LOCATION ? "location"
                                                   : "other";
    const char *text = c.kind == WA_MSG_MEDIA      ? c.media->caption
                       : c.kind == WA_MSG_LOCATION ? c.location->name
                                                   : c.text;
    sb_s(b, kind), sb_s(b, text), sb_s(b, c.reply_to), sb_s(b, c.subtype);
    wa_msg_content_free(&c);
}

static void sb_msg(struct sb *b, const struct wa_hist_msg *m)
{
    sb_s(b, m->id), sb_s(b, m->remote_jid), sb_u(b, m->from_me), sb_s(b, m->key_participant);
    sb_s(b, m->participant), sb_s(b, m->push_name), sb_u(b, (long long)m->timestamp), sb_u(b, m->status);
    sb_u(b, m->stub_type), sb_u(b, m->starred), sb_u(b, (long long)m->order_id);
    char *h = malloc(m->message_len * 2 + 1);
    if (m->message)
        hex_encode(h, m->message, m->message_len, 0);
    sb_s(b, m->message ? h : NULL);
    free(h);
    sb_meaning(b, m->message, m->message_len);
    sb_add(b, "\n");
}

/* The same record from the vectors' JSON. */
static const char *js(yajl_val o, const char *k)
{
    return json_str(o, k);
}
static long long ji(yajl_val o, const char *k)
{
    int64_t v = 0;
    if (json_int(o, k, &v) == 1)
        return v;
    return json_bool(o, k) == 1;
}

static void sb_want_msg(struct sb *b, yajl_val m)
{
    sb_s(b, js(m, "id")), sb_s(b, js(m, "remoteJid")), sb_u(b, json_bool(m, "fromMe") == 1);
    sb_s(b, js(m, "keyParticipant")), sb_s(b, js(m, "participant")), sb_s(b, js(m, "pushName"));
    sb_u(b, ji(m, "timestamp")), sb_u(b, ji(m, "status")), sb_u(b, ji(m, "stubType"));
    sb_u(b, json_bool(m, "starred") == 1), sb_u(b, ji(m, "orderId")), sb_s(b, js(m, "message"));
    sb_s(b, js(m, "kind")), sb_s(b, js(m, "text")), sb_s(b, js(m, "replyTo")), sb_s(b, js(m, "subtype"));
    sb_add(b, "\n");
}

static char *want_small(yajl_val w)
{
    struct sb b = {0};
    yajl_val convs = json_member(w, "conversations");
    for (size_t i = 0; convs && i < convs->u.array.len; i++) {
        yajl_val c = convs->u.array.values[i];
        sb_add(&b, "C ");
        sb_s(&b, js(c, "id")), sb_s(&b, js(c, "name")), sb_s(&b, js(c, "displayName")),
            sb_s(&b, js(c, "pnJid"));
        sb_s(&b, js(c, "lidJid")), sb_s(&b, js(c, "newJid")), sb_s(&b, js(c, "oldJid"));
        sb_u(&b, ji(c, "unreadCount")), sb_u(&b, ji(c, "lastMsgTimestamp")),
            sb_u(&b, ji(c, "conversationTimestamp"));
        sb_u(&b, ji(c, "archived")), sb_u(&b, ji(c, "pinned")), sb_u(&b, ji(c, "muteEndTime"));
        sb_u(&b, ji(c, "markedAsUnread")), sb_u(&b, ji(c, "endOfHistoryTransfer"));
        yajl_val ms = json_member(c, "messages");
        sb_u(&b, ms ? (long long)ms->u.array.len : -1);
        sb_add(&b, "\n");
        for (size_t j = 0; ms && j < ms->u.array.len; j++) {
            sb_add(&b, "M ");
            sb_want_msg(&b, ms->u.array.values[j]);
        }
    }
    yajl_val st = json_member(w, "statuses");
    for (size_t i = 0; st && i < st->u.array.len; i++) {
        sb_add(&b, "S ");
        sb_want_msg(&b, st->u.array.values[i]);
    }
    yajl_val pn = json_member(w, "pushnames");
    for (size_t i = 0; pn && i < pn->u.array.len; i++) {
        sb_add(&b, "P ");
        sb_s(&b, js(pn->u.array.values[i], "id")), sb_s(&b, js(pn->u.array.values[i], "pushname"));
        sb_add(&b, "\n");
    }
    yajl_val lm = json_member(w, "lidMappings");
    for (size_t i = 0; lm && i < lm->u.array.len; i++) {
        sb_add(&b, "L ");
        sb_s(&b, js(lm->u.array.values[i], "pnJid")), sb_s(&b, js(lm->u.array.values[i], "lidJid"));
        sb_add(&b, "\n");
    }
    return b.p;
}

/* ---- the callbacks: a record of everything, or a digest for the large blobs ---- */

struct got {
    struct sb log;
    int digest_mode;
    EVP_MD_CTX *md;
    size_t replies, unparsed, infos;
    int abort_at; /* abort on this conversation (1-based), 0: never */
    size_t convs;
    long long info[3];
};

static int on_info(void *arg, enum wa_hist_info what, uint64_t v)
{
    struct got *g = arg;
    g->infos++;
    if ((unsigned)what < 3)
        g->info[what] = (long long)v;
    return 0;
}

static int on_conv(void *arg, const struct wa_hist_conv *c)
{
    struct got *g = arg;
    g->convs++;
    if (g->abort_at && (int)g->convs == g->abort_at)
        return 1;
    if (g->digest_mode) {
        for (size_t i = 0; i < c->nmsgs; i++) {
            const struct wa_hist_msg *m = &c->msgs[i];
            struct wa_msg_content mc = {0};
            if (!m->message || wa_msg_parse(m->message, m->message_len, &mc) != 0 || mc.kind != WA_MSG_TEXT) {
                g->unparsed++;
                wa_msg_content_free(&mc);
                continue;
            }
            g->replies += mc.reply_to != NULL;
            char head[512];
            snprintf(head, sizeof head, "%s|%s|%d|%llu|", c->id, m->id ? m->id : "~", m->from_me,
                     (unsigned long long)m->timestamp);
            EVP_DigestUpdate(g->md, head, strlen(head));
            EVP_DigestUpdate(g->md, mc.text, strlen(mc.text));
            EVP_DigestUpdate(g->md, "\n", 1);
            wa_msg_content_free(&mc);
        }
        return 0;
    }
    struct sb *b = &g->log;
    sb_add(b, "C ");
    sb_s(b, c->id), sb_s(b, c->name), sb_s(b, c->display_name), sb_s(b, c->pn_jid), sb_s(b, c->lid_jid);
    sb_s(b, c->new_jid), sb_s(b, c->old_jid), sb_u(b, c->unread_count),
        sb_u(b, (long long)c->last_msg_timestamp);
    sb_u(b, (long long)c->conversation_timestamp), sb_u(b, c->archived), sb_u(b, c->pinned);
    sb_u(b, (long long)c->mute_end_time), sb_u(b, c->marked_unread), sb_u(b, c->end_of_history);
    sb_u(b, (long long)c->nmsgs);
    sb_add(b, "\n");
    for (size_t i = 0; i < c->nmsgs; i++) {
        sb_add(b, "M ");
        sb_msg(b, &c->msgs[i]);
    }
    return 0;
}

static int on_status(void *arg, const struct wa_hist_msg *m)
{
    struct got *g = arg;
    if (!g->digest_mode) {
        sb_add(&g->log, "S ");
        sb_msg(&g->log, m);
    }
    return 0;
}

static int on_pushname(void *arg, const char *jid, const char *name)
{
    struct got *g = arg;
    sb_add(&g->log, "P ");
    sb_s(&g->log, jid), sb_s(&g->log, name);
    sb_add(&g->log, "\n");
    return 0;
}

static int on_lid(void *arg, const char *pn, const char *lid)
{
    struct got *g = arg;
    sb_add(&g->log, "L ");
    sb_s(&g->log, pn), sb_s(&g->log, lid);
    sb_add(&g->log, "\n");
    return 0;
}

static const struct wa_hist_callbacks CB = {on_info, on_conv, on_status, on_pushname, on_lid};

struct run {
    int feed_rc, rc;
    struct wa_hist_stats st;
};

/* Decodes b[0..n) fed in pieces of chunk bytes (0: all at once). */
static struct run decode(const uint8_t *b, size_t n, size_t chunk, const struct wa_hist_limits *lim,
                         struct got *g)
{
    struct run r = {0};
    struct wa_hist_decoder *d = wa_history_decoder_new(lim, &CB, g);
    if (!d) {
        r.rc = r.feed_rc = WA_HIST_NOMEM;
        return r;
    }
    if (!chunk)
        chunk = n ? n : 1;
    for (size_t i = 0; i < n && r.feed_rc == WA_HIST_OK; i += chunk)
        r.feed_rc = wa_history_decoder_feed(d, b + i, n - i < chunk ? n - i : chunk);
    r.rc = wa_history_decoder_finish(d);
    wa_history_decoder_stats(d, &r.st);
    wa_history_decoder_free(d);
    return r;
}

static void got_init(struct got *g, int digest)
{
    memset(g, 0, sizeof *g);
    g->digest_mode = digest;
    if (digest) {
        g->md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(g->md, EVP_sha256(), NULL);
    }
    sb_add(&g->log, "");
}

static void got_digest(struct got *g, char out[65])
{
    uint8_t h[32];
    unsigned hl = 0;
    EVP_DigestFinal_ex(g->md, h, &hl);
    hex_encode(out, h, 32, 0);
}

static void got_free(struct got *g)
{
    free(g->log.p);
    EVP_MD_CTX_free(g->md);
}

/* ---- the tests ---- */

static void test_small(const char *dir)
{
    size_t zn = 0, pn = 0;
    uint8_t *zz = slurp(dir, "small.zz", &zn), *pb = slurp(dir, "small.pb", &pn);
    yajl_val w = load_json(dir, "small.json");
    T_CHECK(zz && pb && w, "small: Baileys' blob and its description are there");
    if (!zz || !pb || !w)
        return;
    char *want = want_small(w);

    static const size_t chunks[] = {0, 1, 7, 65536};
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        char name[160];
        struct got g;
        got_init(&g, 0);
        struct run r = decode(zz, zn, chunks[k], NULL, &g);
        snprintf(name, sizeof name, "small, chunks of %zu: decodes ok", chunks[k]);
        T_EQ_INT(r.rc, WA_HIST_OK, name);
        snprintf(name, sizeof name,
                 "small, chunks of %zu: every conversation, message, status, push name, mapping as Baileys "
                 "encoded it",
                 chunks[k]);
        T_EQ_STR(g.log.p, want, name);
        snprintf(name, sizeof name, "small, chunks of %zu: syncType, chunkOrder, progress reported",
                 chunks[k]);
        T_CHECK(g.infos == 3 && g.info[WA_HIST_INFO_TYPE] == ji(w, "syncType") &&
                    g.info[WA_HIST_INFO_CHUNK_ORDER] == ji(w, "chunkOrder") &&
                    g.info[WA_HIST_INFO_PROGRESS] == ji(w, "progress") &&
                    r.st.sync_type == ji(w, "syncType") &&
                    r.st.chunk_order == (uint32_t)ji(w, "chunkOrder") &&
                    r.st.progress == (uint32_t)ji(w, "progress"),
                name);
        snprintf(name, sizeof name, "small, chunks of %zu: counts, skipped entries and inflated size",
                 chunks[k]);
        T_CHECK(r.st.conversations == 4 && r.st.messages == 8 && r.st.statuses == 1 && r.st.pushnames == 2 &&
                    r.st.lid_mappings == 2 && (long long)r.st.skipped == ji(w, "skipped") &&
                    (long long)r.st.inflated == ji(w, "inflated"),
                name);
        got_free(&g);
    }
    {
        struct got g;
        got_init(&g, 0);
        struct wa_hist_limits raw = {.raw = 1};
        struct run r = decode(pb, pn, 7, &raw, &g);
        T_EQ_INT(r.rc, WA_HIST_OK, "small, already inflated: decodes ok");
        T_EQ_STR(g.log.p, want, "small, already inflated: the same deliveries");
        got_free(&g);
        got_init(&g, 0);
        r = decode(pb, pn / 2, 0, &raw, &g);
        T_EQ_INT(r.rc, WA_HIST_TRUNCATED, "small, already inflated and cut in half: truncated");
        T_CHECK(strncmp(want, g.log.p, g.log.n) == 0 && g.log.n < strlen(want),
                "small, already inflated and cut: only whole entries before the cut delivered");
        got_free(&g);
    }

    /* Cut anywhere: truncated, and what was delivered is a prefix of the whole. */
    size_t cuts = 0, prefix_ok = 0, trunc_ok = 0;
    for (size_t cut = 0; cut < zn; cut += 1 + cut / 16) {
        struct got g;
        got_init(&g, 0);
        struct run r = decode(zz, cut, 0, NULL, &g);
        cuts++;
        trunc_ok += r.rc == WA_HIST_TRUNCATED;
        prefix_ok += strncmp(want, g.log.p, g.log.n) == 0 && (g.log.n == 0 || g.log.p[g.log.n - 1] == '\n') &&
                     (cut > zn * 3 / 4 || g.log.n < strlen(want));
        got_free(&g);
    }
    char name[160];
    snprintf(name, sizeof name, "small cut at %zu places: each truncated", cuts);
    T_EQ_INT(trunc_ok, cuts, name);
    snprintf(name, sizeof name, "small cut at %zu places: only whole entries from before the cut delivered",
             cuts);
    T_EQ_INT(prefix_ok, cuts, name);

    /* Corrupt zlib: each a zlib error, never a crash or a success. */
    uint8_t *bad = malloc(zn + 4);
    struct {
        const char *what;
        size_t at;
        uint8_t x;
    } flips[] = {{"header", 0, 0xff},
                 {"block type (the reserved 11)", 2, (uint8_t)(~zz[2] & 0x06)},
                 {"Adler-32 trailer", zn - 1, 0x01}};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        memcpy(bad, zz, zn);
        bad[flips[i].at] ^= flips[i].x;
        struct got g;
        got_init(&g, 0);
        struct run r = decode(bad, zn, 0, NULL, &g);
        snprintf(name, sizeof name, "small with a corrupt %s: zlib error", flips[i].what);
        T_EQ_INT(r.rc, WA_HIST_ZLIB, name);
        got_free(&g);
    }
    memcpy(bad, zz, zn);
    memcpy(bad + zn, "junk", 4);
    {
        struct got g;
        got_init(&g, 0);
        struct run r = decode(bad, zn + 4, 0, NULL, &g);
        T_EQ_INT(r.rc, WA_HIST_ZLIB, "small with bytes after the zlib stream: zlib error");
        got_free(&g);
        got_init(&g, 0);
        r = decode(pb, pn, 0, NULL, &g);
        T_EQ_INT(r.rc, WA_HIST_ZLIB, "an inflated HistorySync fed as compressed: zlib error");
        got_free(&g);
        got_init(&g, 0);
        r = decode(zz, 0, 0, NULL, &g);
        T_EQ_INT(r.rc, WA_HIST_TRUNCATED, "nothing at all: truncated");
        got_free(&g);
    }
    free(bad);

    /* The size limit: the exact size passes, one byte less is too large. */
    {
        struct got g;
        got_init(&g, 0);
        struct wa_hist_limits lim = {.max_inflated = (uint64_t)ji(w, "inflated")};
        struct run r = decode(zz, zn, 0, &lim, &g);
        T_EQ_INT(r.rc, WA_HIST_OK, "small with max_inflated its exact size: ok");
        got_free(&g);
        got_init(&g, 0);
        lim.max_inflated--;
        r = decode(zz, zn, 0, &lim, &g);
        T_EQ_INT(r.rc, WA_HIST_TOO_LARGE, "small with max_inflated one byte less: too_large");
        got_free(&g);
    }
    /* A callback's no stops the decoder, for good. */
    {
        struct got g;
        got_init(&g, 0);
        g.abort_at = 2;
        struct run r = decode(zz, zn, 7, NULL, &g);
        T_EQ_INT(r.rc, WA_HIST_ABORTED, "a callback returning non-zero: aborted");
        T_EQ_INT(g.convs, 2, "after the abort nothing more is delivered");
        got_free(&g);
    }
    free(want);
    free(zz);
    free(pb);
    yajl_tree_free(w);
}

static void test_large(const char *dir)
{
    size_t zn = 0;
    uint8_t *zz = slurp(dir, "large.zz", &zn);
    yajl_val w = load_json(dir, "large.json");
    T_CHECK(zz && w, "large: Baileys' blob of 20,000 messages is there");
    if (!zz || !w)
        return;
    static const size_t chunks[] = {0, 1, 7, 65536};
    char first[65] = "";
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        struct got g;
        got_init(&g, 1);
        struct run r = decode(zz, zn, chunks[k], NULL, &g);
        char dg[65], name[160];
        got_digest(&g, dg);
        snprintf(name, sizeof name,
                 "large, chunks of %zu: ok, %lld chats, %lld messages, %lld push names, %lld mappings",
                 chunks[k], ji(w, "conversations"), ji(w, "messages"), ji(w, "pushnames"),
                 ji(w, "lidMappings"));
        T_CHECK(r.rc == WA_HIST_OK && (long long)r.st.conversations == ji(w, "conversations") &&
                    (long long)r.st.messages == ji(w, "messages") &&
                    (long long)r.st.pushnames == ji(w, "pushnames") &&
                    (long long)r.st.lid_mappings == ji(w, "lidMappings") &&
                    (long long)r.st.inflated == ji(w, "inflated") && r.st.sync_type == WA_HIST_RECENT &&
                    r.st.progress == 100,
                name);
        snprintf(name, sizeof name,
                 "large, chunks of %zu: every message's key, time and text (wa_msg_parse) digest as Baileys'",
                 chunks[k]);
        T_EQ_STR(dg, json_str(w, "digest"), name);
        snprintf(name, sizeof name, "large, chunks of %zu: every reply read as one, none unparsable",
                 chunks[k]);
        T_CHECK(g.unparsed == 0 && (long long)g.replies == ji(w, "messages") / 5, name);
        if (k == 0)
            memcpy(first, dg, 65);
        got_free(&g);
    }
    /* One entry over max_field: too large; at exactly the largest: fine. */
    struct wa_hist_limits lim = {.max_field = (size_t)ji(w, "maxConversation")};
    struct got g;
    got_init(&g, 1);
    struct run r = decode(zz, zn, 65536, &lim, &g);
    T_EQ_INT(r.rc, WA_HIST_OK, "large with max_field the largest conversation: ok");
    got_free(&g);
    lim.max_field--;
    got_init(&g, 1);
    r = decode(zz, zn, 65536, &lim, &g);
    T_EQ_INT(r.rc, WA_HIST_TOO_LARGE,
             "large with max_field one byte under the largest conversation: too_large");
    got_free(&g);
    /* Cut in the middle: truncated, fewer chats than the whole. */
    got_init(&g, 1);
    r = decode(zz, zn / 2, 4096, NULL, &g);
    T_CHECK(r.rc == WA_HIST_TRUNCATED && r.st.conversations > 0 &&
                (long long)r.st.conversations < ji(w, "conversations"),
            "large cut in half: truncated, only the chats before the cut delivered");
    got_free(&g);
    free(zz);
    yajl_tree_free(w);
}

/* Hand-made top levels (already inflated). */
static void test_malformed(void)
{
    static const struct {
        const char *what;
        const char *hex;
        int rc;
    } cases[] = {
        {"empty HistorySync", "", WA_HIST_OK},
        {"field number 0", "00", WA_HIST_MALFORMED},
        {"a group (wire type 3)", "4b", WA_HIST_MALFORMED},
        {"wire type 7", "0f", WA_HIST_MALFORMED},
        {"conversations as a varint", "1001", WA_HIST_MALFORMED},
        {"syncType as bytes", "0a0100", WA_HIST_MALFORMED},
        {"a conversation protobuf-c refuses", "1202ffff", WA_HIST_MALFORMED},
        {"a varint of 11 bytes", "08ffffffffffffffffffff01", WA_HIST_MALFORMED},
        {"a 10-byte varint over 64 bits", "08ffffffffffffffffff02", WA_HIST_MALFORMED},
        {"unknown fields skipped (bytes, fixed64, fixed32)", "4a036162632101020304050607082501020304",
         WA_HIST_OK},
        {"an empty conversation (no id): skipped", "1200", WA_HIST_OK},
        {"a length past the end", "4a05616263", WA_HIST_TRUNCATED},
        {"a tag cut", "f8", WA_HIST_TRUNCATED},
        {"a huge length of an unknown field", "4affffffffffffffff7f", WA_HIST_TRUNCATED},
        {"a conversation over max_field", "12ffffffff0f", WA_HIST_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t b[64];
        size_t n = strlen(cases[i].hex) / 2;
        hex_decode(cases[i].hex, b, n);
        struct got g;
        got_init(&g, 0);
        struct wa_hist_limits raw = {.raw = 1};
        struct run r = decode(b, n, 1, &raw, &g);
        char name[160];
        snprintf(name, sizeof name, "already inflated, %s: %s", cases[i].what, wa_hist_code(cases[i].rc));
        T_EQ_INT(r.rc, cases[i].rc, name);
        got_free(&g);
    }
}

static int eqhex(const uint8_t *b, size_t n, const char *want)
{
    char h[256];
    if (!want || n * 2 + 1 > sizeof h)
        return 0;
    hex_encode(h, b, n, 0);
    return strcmp(h, want) == 0;
}

static void test_notif(const char *dir)
{
    yajl_val w = load_json(dir, "notif.json");
    T_CHECK(w != NULL, "notification vectors from Baileys");
    if (!w)
        return;
    yajl_val bl = json_member(w, "blob");
    uint8_t m[4096];
    size_t n = strlen(json_str(bl, "message")) / 2;
    hex_decode(json_str(bl, "message"), m, n);
    struct wa_hist_notif nt;
    T_EQ_INT(wa_hist_notif_parse(m, n, &nt), 1, "a historySyncNotification naming a blob is one");
    T_CHECK(nt.has_media_key && eqhex(nt.media_key, 32, json_str(bl, "mediaKey")) && nt.has_file_sha256 &&
                eqhex(nt.file_sha256, 32, json_str(bl, "fileSha256")) && nt.has_file_enc_sha256 &&
                eqhex(nt.file_enc_sha256, 32, json_str(bl, "fileEncSha256")) &&
                (long long)nt.file_length == ji(bl, "fileLength"),
            "its media key, both sums and length");
    T_CHECK(nt.direct_path && strcmp(nt.direct_path, json_str(bl, "directPath")) == 0 &&
                nt.sync_type == ji(bl, "syncType") && (long long)nt.chunk_order == ji(bl, "chunkOrder") &&
                (long long)nt.progress == ji(bl, "progress") && nt.oldest_msg_ts == ji(bl, "oldest") &&
                nt.original_message_id &&
                strcmp(nt.original_message_id, json_str(bl, "originalMessageId")) == 0 &&
                nt.peer_data_request_session_id &&
                strcmp(nt.peer_data_request_session_id, json_str(bl, "session")) == 0 && !nt.inline_payload,
            "its direct path, type, chunk, progress, oldest time, ids");
    struct wa_media_sums sums = {0};
    memcpy(sums.file_sha256, nt.file_sha256, 32);
    memcpy(sums.file_enc_sha256, nt.file_enc_sha256, 32);
    sums.file_length = nt.file_length;
    T_CHECK(wa_hist_notif_sums_match(&nt, &sums), "the announced sums match themselves");
    sums.file_enc_sha256[31] ^= 1;
    T_CHECK(!wa_hist_notif_sums_match(&nt, &sums), "one bit off in fileEncSha256: no match");
    sums.file_enc_sha256[31] ^= 1;
    sums.file_length++;
    T_CHECK(!wa_hist_notif_sums_match(&nt, &sums), "another length: no match");
    /* The receive path keeps it as WA_MSG_HISTORY_SYNC: the Message it keeps
     * (raw) says the same. */
    struct wa_msg_content mc;
    struct wa_hist_notif again;
    T_CHECK(wa_msg_parse(m, n, &mc) == 0 && mc.kind == WA_MSG_HISTORY_SYNC && mc.raw &&
                wa_hist_notif_parse(mc.raw, mc.raw_len, &again) == 1,
            "wa_msg_parse: a history sync notification, kept whole");
    T_CHECK(
        mc.kind == WA_MSG_HISTORY_SYNC && again.direct_path && !strcmp(again.direct_path, nt.direct_path) &&
            !memcmp(again.media_key, nt.media_key, 32) && !memcmp(again.file_sha256, nt.file_sha256, 32) &&
            !memcmp(again.file_enc_sha256, nt.file_enc_sha256, 32) && again.file_length == nt.file_length &&
            again.sync_type == nt.sync_type && again.chunk_order == nt.chunk_order &&
            again.progress == nt.progress && again.peer_data_request_session_id &&
            !strcmp(again.peer_data_request_session_id, nt.peer_data_request_session_id),
        "... its key, sums, path, type, chunk, progress and session as received");
    if (mc.kind == WA_MSG_HISTORY_SYNC)
        wa_hist_notif_free(&again);
    wa_msg_content_free(&mc);
    wa_hist_notif_free(&nt);

    yajl_val in = json_member(w, "inline");
    n = strlen(json_str(in, "message")) / 2;
    hex_decode(json_str(in, "message"), m, n);
    T_EQ_INT(wa_hist_notif_parse(m, n, &nt), 1, "an inline bootstrap notification is one");
    T_CHECK(nt.inline_payload && eqhex(nt.inline_payload, nt.inline_len, json_str(in, "payload")) &&
                nt.sync_type == WA_HIST_INITIAL_BOOTSTRAP,
            "its inline payload as sent");
    struct got g;
    got_init(&g, 0);
    struct run r = decode(nt.inline_payload, nt.inline_len, 0, NULL, &g);
    T_CHECK(r.rc == WA_HIST_OK && strcmp(g.log.p, "P a@s.whatsapp.net|A|\n") == 0,
            "the inline payload decodes (zlib, like a blob)");
    got_free(&g);
    wa_hist_notif_free(&nt);

    static const struct {
        const char *key, *what;
        int rc;
    } others[] = {
        {"badKey", "a media key of 31 bytes: unusable", -1},
        {"nothing", "neither a blob nor a payload: unusable", -1},
        {"revoke", "a revoke: no history sync", 0},
        {"text", "a text: no history sync", 0},
    };
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        const char *h = json_str(w, others[i].key);
        n = h ? strlen(h) / 2 : 0;
        if (h)
            hex_decode(h, m, n);
        T_EQ_INT(wa_hist_notif_parse(m, n, &nt), others[i].rc, others[i].what);
    }
    T_EQ_INT(wa_hist_notif_parse((const uint8_t *)"\xff\xff\xff", 3, &nt), -1, "garbage: no Message");
    yajl_tree_free(w);
}

/* The whole path but the download: sealed with the history media keys,
 * decrypted a piece at a time straight into the decoder. */
static void test_media_pipeline(const char *dir)
{
    size_t zn = 0;
    uint8_t *zz = slurp(dir, "large.zz", &zn);
    yajl_val w = load_json(dir, "large.json");
    if (!zz || !w) {
        T_CHECK(0, "pipeline: vectors");
        return;
    }
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    uint8_t *enc = malloc(zn + 64);
    size_t en = 0;
    struct wa_media_stream *s = wa_media_encrypt_new(key, WA_MEDIA_HISTORY);
    long k = wa_media_update(s, zz, zn, enc);
    en = k > 0 ? (size_t)k : 0;
    struct wa_media_sums sent;
    k = wa_media_final(s, enc + en, &sent);
    en += k > 0 ? (size_t)k : 0;
    wa_media_stream_free(s);

    struct got g;
    got_init(&g, 1);
    struct wa_hist_decoder *d = wa_history_decoder_new(NULL, &CB, &g);
    s = wa_media_decrypt_new(key, WA_MEDIA_HISTORY);
    uint8_t out[4096 + 32];
    int rc = WA_HIST_OK;
    for (size_t i = 0; i < en && rc == WA_HIST_OK; i += 4096) {
        long got = wa_media_update(s, enc + i, en - i < 4096 ? en - i : 4096, out);
        rc = got < 0 ? WA_HIST_MALFORMED : wa_history_decoder_feed(d, out, (size_t)got);
    }
    struct wa_media_sums sums;
    long last = wa_media_final(s, out, &sums);
    if (rc == WA_HIST_OK && last > 0)
        rc = wa_history_decoder_feed(d, out, (size_t)last);
    if (rc == WA_HIST_OK)
        rc = wa_history_decoder_finish(d);
    char dg[65];
    got_digest(&g, dg);
    T_CHECK(last >= 0 && rc == WA_HIST_OK && memcmp(sums.file_enc_sha256, sent.file_enc_sha256, 32) == 0 &&
                strcmp(dg, json_str(w, "digest")) == 0,
            "a blob sealed with \"WhatsApp History Keys\" decrypts and decodes in one stream, digest as "
            "Baileys'");
    wa_history_decoder_free(d);
    wa_media_stream_free(s);
    got_free(&g);
    free(enc);
    free(zz);
    yajl_tree_free(w);
}

int main(void)
{
    char dir[] = "/tmp/wapi-hist-XXXXXX";
    if (!mkdtemp(dir)) {
        T_CHECK(0, "a temporary directory");
        T_DONE();
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "node tests/wa/history_vectors.mjs %s", dir);
    T_CHECK(system(cmd) == 0, "the blobs come from Baileys (node tests/wa/history_vectors.mjs)");
    test_small(dir);
    test_large(dir);
    test_malformed();
    test_notif(dir);
    test_media_pipeline(dir);
    T_CHECK(wa_hist_type_name(WA_HIST_ON_DEMAND) &&
                strcmp(wa_hist_type_name(WA_HIST_ON_DEMAND), "on_demand") == 0 && !wa_hist_type_name(7) &&
                !wa_hist_type_name(-1),
            "sync type names");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        T_CHECK(0, "clean up");
    T_DONE();
}
