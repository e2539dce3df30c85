#include "wa_history.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/e2e.pb-c.h"
#include "proto/history.pb-c.h"

const char *wa_hist_code(int rc)
{
    switch (rc) {
    case WA_HIST_OK:
        return "ok";
    case WA_HIST_MALFORMED:
        return "malformed";
    case WA_HIST_TOO_LARGE:
        return "too_large";
    case WA_HIST_TRUNCATED:
        return "truncated";
    case WA_HIST_ZLIB:
        return "zlib";
    case WA_HIST_NOMEM:
        return "nomem";
    case WA_HIST_ABORTED:
        return "aborted";
    }
    return "unknown";
}

const char *wa_hist_type_name(int type)
{
    static const char *const names[] = {"initial_bootstrap", "initial_status_v3", "full",     "recent",
                                        "push_name",         "non_blocking_data", "on_demand"};
    return type >= 0 && type < (int)(sizeof names / sizeof *names) ? names[type] : NULL;
}

/* ---- the notification ---- */

/* 1 when b holds exactly 32 bytes (copied), 0 when absent, -1 otherwise. */
static int take32(int has, const ProtobufCBinaryData *b, uint8_t out[32])
{
    if (!has)
        return 0;
    if (b->len != 32)
        return -1;
    memcpy(out, b->data, 32);
    return 1;
}

void wa_hist_notif_free(struct wa_hist_notif *nt)
{
    if (!nt)
        return;
    free(nt->direct_path);
    free(nt->original_message_id);
    free(nt->peer_data_request_session_id);
    free(nt->inline_payload);
    OPENSSL_cleanse(nt->media_key, sizeof nt->media_key);
    memset(nt, 0, sizeof *nt);
}

int wa_hist_notif_parse(const uint8_t *msg, size_t n, struct wa_hist_notif *out)
{
    memset(out, 0, sizeof *out);
    out->sync_type = -1;
    Wapi__E2e__Message *m = wapi__e2e__message__unpack(NULL, n, msg);
    if (!m)
        return -1;
    const Wapi__E2e__ProtocolMessage *p = m->protocolmessage;
    if (!p || !p->has_type || p->type != WAPI__E2E__PROTOCOL_MESSAGE__TYPE__HISTORY_SYNC_NOTIFICATION ||
        !p->historysyncnotification) {
        wapi__e2e__message__free_unpacked(m, NULL);
        return 0;
    }
    const Wapi__E2e__HistorySyncNotification *h = p->historysyncnotification;
    int rc = 1;
    int k = take32(h->has_mediakey, &h->mediakey, out->media_key);
    int s = take32(h->has_filesha256, &h->filesha256, out->file_sha256);
    int e = take32(h->has_fileencsha256, &h->fileencsha256, out->file_enc_sha256);
    out->has_media_key = k == 1, out->has_file_sha256 = s == 1, out->has_file_enc_sha256 = e == 1;
    if (k < 0 || s < 0 || e < 0)
        rc = -1;
    out->file_length = h->has_filelength ? h->filelength : 0;
    out->sync_type = h->has_synctype && h->synctype >= 0 ? h->synctype : -1;
    out->chunk_order = h->has_chunkorder ? h->chunkorder : 0;
    out->progress = h->has_progress ? h->progress : 0;
    out->oldest_msg_ts = h->has_oldestmsginchunktimestampsec ? h->oldestmsginchunktimestampsec : 0;
    const ProtobufCBinaryData *in = &h->initialhistbootstrapinlinepayload;
    if (rc == 1 && h->has_initialhistbootstrapinlinepayload && in->len > 0) {
        if (in->len > WA_HIST_INLINE_MAX || !(out->inline_payload = malloc(in->len)))
            rc = -1;
        else
            memcpy(out->inline_payload, in->data, in->len), out->inline_len = in->len;
    }
    if (rc == 1 && ((h->directpath && !(out->direct_path = strdup(h->directpath))) ||
                    (h->originalmessageid && !(out->original_message_id = strdup(h->originalmessageid))) ||
                    (h->peerdatarequestsessionid &&
                     !(out->peer_data_request_session_id = strdup(h->peerdatarequestsessionid)))))
        rc = -1;
    /* Nothing to read: neither a blob we can fetch and check nor an inline one. */
    if (rc == 1 && !out->inline_payload &&
        !(out->has_media_key && out->has_file_sha256 && out->has_file_enc_sha256 && out->direct_path &&
          out->direct_path[0]))
        rc = -1;
    wapi__e2e__message__free_unpacked(m, NULL);
    if (rc != 1)
        wa_hist_notif_free(out);
    return rc;
}

int wa_hist_notif_sums_match(const struct wa_hist_notif *nt, const struct wa_media_sums *sums)
{
    if (!nt->has_file_sha256 || !nt->has_file_enc_sha256)
        return 0;
    int ok = CRYPTO_memcmp(nt->file_sha256, sums->file_sha256, 32) == 0;
    ok &= CRYPTO_memcmp(nt->file_enc_sha256, sums->file_enc_sha256, 32) == 0;
    /* fileLength is optional in practice; when given it must agree. */
    if (nt->file_length)
        ok &= nt->file_length == sums->file_length;
    return ok;
}

/* ---- the decoder ---- */

/* HistorySync's top-level fields the decoder reads. */
enum {
    F_SYNC_TYPE = 1,
    F_CONVERSATIONS = 2,
    F_STATUS = 3,
    F_CHUNK_ORDER = 5,
    F_PROGRESS = 6,
    F_PUSHNAMES = 7,
    F_LID_MAPPINGS = 15,
};

enum st { ST_TAG, ST_VARINT, ST_LEN, ST_SKIP, ST_BODY };

#define OUT_WINDOW (64u << 10)
/* A buffer grown past this for one large entry is let go afterwards. */
#define KEEP_BUF (1u << 20)

struct wa_hist_decoder {
    struct wa_hist_limits lim;
    struct wa_hist_callbacks cb;
    void *arg;
    int err;
    z_stream z;
    int z_live, z_end;
    struct wa_hist_stats st;
    /* the top-level reader */
    enum st state;
    uint64_t acc; /* the varint being read */
    unsigned shift;
    uint32_t field;
    uint64_t remain; /* ST_SKIP: bytes left to skip */
    uint8_t *buf;    /* ST_BODY: the entry so far */
    size_t cap, have, need;
    uint8_t out[OUT_WINDOW];
};

static int fail(struct wa_hist_decoder *d, int rc)
{
    if (d->err == WA_HIST_OK)
        d->err = rc;
    return d->err;
}

struct wa_hist_decoder *wa_history_decoder_new(const struct wa_hist_limits *limits,
                                               const struct wa_hist_callbacks *cb, void *arg)
{
    struct wa_hist_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (limits)
        d->lim = *limits;
    if (!d->lim.max_inflated)
        d->lim.max_inflated = WA_HIST_DEFAULT_MAX_INFLATED;
    if (!d->lim.max_field)
        d->lim.max_field = WA_HIST_DEFAULT_MAX_FIELD;
    if (cb)
        d->cb = *cb;
    d->arg = arg;
    d->st.sync_type = -1;
    d->state = ST_TAG;
    if (!d->lim.raw) {
        if (inflateInit(&d->z) != Z_OK) {
            free(d);
            return NULL;
        }
        d->z_live = 1;
    }
    return d;
}

void wa_history_decoder_free(struct wa_hist_decoder *d)
{
    if (!d)
        return;
    if (d->z_live)
        inflateEnd(&d->z);
    free(d->buf);
    free(d);
}

void wa_history_decoder_stats(const struct wa_hist_decoder *d, struct wa_hist_stats *out)
{
    *out = d->st;
}

static void fill_msg(const Wapi__History__WebMessageInfo *w, uint64_t order_id, struct wa_hist_msg *m)
{
    memset(m, 0, sizeof *m);
    if (w->key) {
        m->id = w->key->id;
        m->remote_jid = w->key->remotejid;
        m->key_participant = w->key->participant;
        m->from_me = w->key->has_fromme && w->key->fromme;
    }
    m->participant = w->participant;
    m->push_name = w->pushname;
    m->timestamp = w->has_messagetimestamp ? w->messagetimestamp : 0;
    m->status = w->has_status ? w->status : -1;
    m->stub_type = w->has_messagestubtype ? w->messagestubtype : 0;
    m->starred = w->has_starred && w->starred;
    m->order_id = order_id;
    if (w->has_message && w->message.len) {
        m->message = w->message.data;
        m->message_len = w->message.len;
    }
}

static int deliver_conversation(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    Wapi__History__Conversation *c = wapi__history__conversation__unpack(NULL, n, p);
    if (!c)
        return fail(d, WA_HIST_MALFORMED);
    int rc = WA_HIST_OK;
    if (!c->id) {
        d->st.skipped++;
        goto out;
    }
    struct wa_hist_msg *msgs = c->n_messages ? calloc(c->n_messages, sizeof *msgs) : NULL;
    if (c->n_messages && !msgs) {
        rc = fail(d, WA_HIST_NOMEM);
        goto out;
    }
    size_t nm = 0;
    for (size_t i = 0; i < c->n_messages; i++) {
        const Wapi__History__HistorySyncMsg *hm = c->messages[i];
        if (!hm->message) {
            d->st.skipped++;
            continue;
        }
        fill_msg(hm->message, hm->has_msgorderid ? hm->msgorderid : 0, &msgs[nm++]);
    }
    struct wa_hist_conv v = {
        .id = c->id,
        .name = c->name,
        .display_name = c->displayname,
        .username = c->username,
        .new_jid = c->newjid,
        .old_jid = c->oldjid,
        .pn_jid = c->pnjid,
        .lid_jid = c->lidjid,
        .last_msg_timestamp = c->has_lastmsgtimestamp ? c->lastmsgtimestamp : 0,
        .conversation_timestamp = c->has_conversationtimestamp ? c->conversationtimestamp : 0,
        .mute_end_time = c->has_muteendtime ? c->muteendtime : 0,
        .unread_count = c->has_unreadcount ? c->unreadcount : 0,
        .pinned = c->has_pinned ? c->pinned : 0,
        .ephemeral_expiration = c->has_ephemeralexpiration ? c->ephemeralexpiration : 0,
        .archived = c->has_archived && c->archived,
        .marked_unread = c->has_markedasunread && c->markedasunread,
        .read_only = c->has_readonly && c->readonly,
        .end_of_history = c->has_endofhistorytransfer && c->endofhistorytransfer,
        .msgs = msgs,
        .nmsgs = nm,
    };
    d->st.conversations++;
    d->st.messages += nm;
    if (d->cb.conversation && d->cb.conversation(d->arg, &v) != 0)
        rc = fail(d, WA_HIST_ABORTED);
    free(msgs);
out:
    wapi__history__conversation__free_unpacked(c, NULL);
    return rc;
}

static int deliver_status(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    Wapi__History__WebMessageInfo *w = wapi__history__web_message_info__unpack(NULL, n, p);
    if (!w)
        return fail(d, WA_HIST_MALFORMED);
    struct wa_hist_msg m;
    fill_msg(w, 0, &m);
    d->st.statuses++;
    int rc = WA_HIST_OK;
    if (d->cb.status && d->cb.status(d->arg, &m) != 0)
        rc = fail(d, WA_HIST_ABORTED);
    wapi__history__web_message_info__free_unpacked(w, NULL);
    return rc;
}

static int deliver_pushname(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    Wapi__History__Pushname *pn = wapi__history__pushname__unpack(NULL, n, p);
    if (!pn)
        return fail(d, WA_HIST_MALFORMED);
    int rc = WA_HIST_OK;
    if (!pn->id || !pn->pushname) {
        d->st.skipped++;
    } else {
        d->st.pushnames++;
        if (d->cb.pushname && d->cb.pushname(d->arg, pn->id, pn->pushname) != 0)
            rc = fail(d, WA_HIST_ABORTED);
    }
    wapi__history__pushname__free_unpacked(pn, NULL);
    return rc;
}

static int deliver_mapping(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    Wapi__History__PhoneNumberToLIDMapping *mp =
        wapi__history__phone_number_to_lidmapping__unpack(NULL, n, p);
    if (!mp)
        return fail(d, WA_HIST_MALFORMED);
    int rc = WA_HIST_OK;
    if (!mp->pnjid || !mp->lidjid || !mp->pnjid[0] || !mp->lidjid[0]) {
        d->st.skipped++;
    } else {
        d->st.lid_mappings++;
        if (d->cb.lid_mapping && d->cb.lid_mapping(d->arg, mp->pnjid, mp->lidjid) != 0)
            rc = fail(d, WA_HIST_ABORTED);
    }
    wapi__history__phone_number_to_lidmapping__free_unpacked(mp, NULL);
    return rc;
}

static int deliver_entry(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    switch (d->field) {
    case F_CONVERSATIONS:
        return deliver_conversation(d, p, n);
    case F_STATUS:
        return deliver_status(d, p, n);
    case F_PUSHNAMES:
        return deliver_pushname(d, p, n);
    case F_LID_MAPPINGS:
        return deliver_mapping(d, p, n);
    }
    return WA_HIST_OK;
}

static int is_entry(uint32_t f)
{
    return f == F_CONVERSATIONS || f == F_STATUS || f == F_PUSHNAMES || f == F_LID_MAPPINGS;
}

static int is_scalar(uint32_t f)
{
    return f == F_SYNC_TYPE || f == F_CHUNK_ORDER || f == F_PROGRESS;
}

static int scalar_done(struct wa_hist_decoder *d, uint64_t v)
{
    enum wa_hist_info what;
    switch (d->field) {
    case F_SYNC_TYPE:
        what = WA_HIST_INFO_TYPE;
        d->st.sync_type = v <= 0x7fffffff ? (int)v : -1;
        break;
    case F_CHUNK_ORDER:
        what = WA_HIST_INFO_CHUNK_ORDER;
        d->st.chunk_order = (uint32_t)v; /* uint32 on the wire: the low bits, as protobuf does */
        v = d->st.chunk_order;
        break;
    case F_PROGRESS:
        what = WA_HIST_INFO_PROGRESS;
        d->st.progress = (uint32_t)v;
        v = d->st.progress;
        break;
    default:
        return WA_HIST_OK; /* a field we do not read */
    }
    if (d->cb.info && d->cb.info(d->arg, what, v) != 0)
        return fail(d, WA_HIST_ABORTED);
    return WA_HIST_OK;
}

/* A tag has been read: what follows it. */
static int tag_done(struct wa_hist_decoder *d, uint64_t tag)
{
    uint64_t field = tag >> 3;
    unsigned wt = tag & 7;
    if (field == 0 || field > 0x1fffffff)
        return fail(d, WA_HIST_MALFORMED);
    d->field = (uint32_t)field;
    /* A field we read must come with the wire type it has. */
    if ((is_entry(d->field) && wt != 2) || (is_scalar(d->field) && wt != 0))
        return fail(d, WA_HIST_MALFORMED);
    switch (wt) {
    case 0:
        d->state = ST_VARINT;
        break;
    case 1:
        d->state = ST_SKIP, d->remain = 8;
        break;
    case 2:
        d->state = ST_LEN;
        break;
    case 5:
        d->state = ST_SKIP, d->remain = 4;
        break;
    default:
        return fail(d, WA_HIST_MALFORMED); /* groups: not in a HistorySync */
    }
    return WA_HIST_OK;
}

/* A length has been read: skip the field or gather the entry. */
static int len_done(struct wa_hist_decoder *d, uint64_t len)
{
    if (!is_entry(d->field)) {
        d->state = len ? ST_SKIP : ST_TAG;
        d->remain = len;
        return WA_HIST_OK;
    }
    if (len > d->lim.max_field)
        return fail(d, WA_HIST_TOO_LARGE);
    if (len == 0) {
        d->state = ST_TAG;
        return deliver_entry(d, NULL, 0);
    }
    if (len > d->cap) {
        free(d->buf);
        d->cap = 0;
        if (!(d->buf = malloc(len)))
            return fail(d, WA_HIST_NOMEM);
        d->cap = len;
    }
    d->have = 0;
    d->need = len;
    d->state = ST_BODY;
    return WA_HIST_OK;
}

/* Feeds n bytes of HistorySync to the top-level reader. */
static int parse(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && d->err == WA_HIST_OK) {
        switch (d->state) {
        case ST_TAG:
        case ST_VARINT:
        case ST_LEN: {
            uint8_t b = p[i++];
            /* A varint is at most 10 bytes and 64 bits. */
            if (d->shift > 63 || (d->shift == 63 && (b & 0x7e)))
                return fail(d, WA_HIST_MALFORMED);
            d->acc |= (uint64_t)(b & 0x7f) << d->shift;
            d->shift += 7;
            if (b & 0x80)
                break;
            uint64_t v = d->acc;
            d->acc = 0, d->shift = 0;
            if (d->state == ST_TAG) {
                tag_done(d, v);
            } else if (d->state == ST_VARINT) {
                d->state = ST_TAG;
                scalar_done(d, v);
            } else {
                len_done(d, v);
            }
            break;
        }
        case ST_SKIP: {
            size_t k = n - i;
            if (k > d->remain)
                k = (size_t)d->remain;
            d->remain -= k;
            i += k;
            if (d->remain == 0)
                d->state = ST_TAG;
            break;
        }
        case ST_BODY: {
            size_t k = n - i;
            if (k > d->need - d->have)
                k = d->need - d->have;
            memcpy(d->buf + d->have, p + i, k);
            d->have += k;
            i += k;
            if (d->have == d->need) {
                d->state = ST_TAG;
                deliver_entry(d, d->buf, d->need);
                if (d->cap > KEEP_BUF) {
                    free(d->buf);
                    d->buf = NULL, d->cap = 0;
                }
            }
            break;
        }
        }
    }
    return d->err;
}

/* Counts n more bytes of HistorySync against the limit, then reads them. */
static int take(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    if (n > d->lim.max_inflated - d->st.inflated)
        return fail(d, WA_HIST_TOO_LARGE);
    d->st.inflated += n;
    return parse(d, p, n);
}

int wa_history_decoder_feed(struct wa_hist_decoder *d, const uint8_t *p, size_t n)
{
    if (d->err != WA_HIST_OK || n == 0)
        return d->err;
    if (d->lim.raw)
        return take(d, p, n);
    if (d->z_end)
        return fail(d, WA_HIST_ZLIB); /* bytes after the end of the stream */
    d->z.next_in = (Bytef *)p;
    while (n > 0) {
        /* zlib counts in uInt: feed very large inputs a piece at a time. */
        uInt part = n > 0x40000000u ? 0x40000000u : (uInt)n;
        d->z.avail_in = part;
        for (;;) {
            d->z.next_out = d->out;
            d->z.avail_out = sizeof d->out;
            uInt in_before = d->z.avail_in;
            int r = inflate(&d->z, Z_NO_FLUSH);
            size_t got = sizeof d->out - d->z.avail_out;
            if (r == Z_MEM_ERROR)
                return fail(d, WA_HIST_NOMEM);
            /* What inflated before a corrupt spot is read first, so the
             * outcome does not depend on how the input was cut up. */
            if (got && take(d, d->out, got) != WA_HIST_OK)
                return d->err;
            if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
                return fail(d, WA_HIST_ZLIB);
            if (r == Z_STREAM_END) {
                d->z_end = 1;
                if (d->z.avail_in > 0 || n > part)
                    return fail(d, WA_HIST_ZLIB);
                return WA_HIST_OK;
            }
            /* More output may be pending only when the window filled up. */
            if (d->z.avail_out != 0 && d->z.avail_in == 0)
                break;
            /* No progress with input and room left: zlib's contract says
             * this cannot happen; never spin on it. */
            if (got == 0 && d->z.avail_in == in_before)
                return fail(d, WA_HIST_ZLIB);
        }
        n -= part;
    }
    return d->err;
}

int wa_history_decoder_finish(struct wa_hist_decoder *d)
{
    if (d->err != WA_HIST_OK)
        return d->err;
    if (d->z_live && !d->z_end)
        return fail(d, WA_HIST_TRUNCATED);
    if (d->state != ST_TAG || d->shift != 0)
        return fail(d, WA_HIST_TRUNCATED);
    return WA_HIST_OK;
}
