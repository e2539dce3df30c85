#include "inbox.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/log.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "appsync.h"
#include "events.h"
#include "presence.h"
#include "calls.h"
#include "chat_merges.h"
#include "wa/wa_appstate.h"
#include "group_events.h"
#include "media_download.h"
#include "placeholder.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_crypto.h"
#include "wa/wa_history.h"
#include "wa/wa_messaging.h"

static void (*history_kick)(void); /* inbox_set_history_kick */

/* One row per element applied: its position (from 1) and its event. */
static const char SQL_STORE[] = "SELECT ord, event_id, event_type, data FROM wapi_incoming_store($1::jsonb)";
/* With polls or votes among them (common/sql/0030_polls.sql). */
static const char SQL_STORE_POLLS[] =
    "SELECT ord, event_id, event_type, data FROM wapi_incoming_store_polls($1::jsonb)";
/* The polls the votes of a batch are about: their secrets, who wrote them
 * and their options. */
static const char SQL_POLL_SECRETS[] =
    "SELECT m.id, encode(s.secret, 'hex'), m.from_me, m.sender_jid, m.sender_lid, m.content->'options' "
    "FROM wa_messages m JOIN wa_poll_secrets s ON s.message_id = m.id "
    "WHERE m.type = 'poll' AND m.id IN (SELECT jsonb_array_elements_text($1::jsonb))";

/* A vote of the batch, copied until its poll's secret is read. */
struct vote_copy {
    int idx;
    char id[64], chat[128], sender[128], lid[128];
    int from_me;
    int64_t ts_ms;
    uint64_t ev;
    struct wa_msg_poll_vote *v;
};

/* A poll of the batch with its secret, as SQL_POLL_SECRETS gives one (id,
 * secret in hex, from_me "t"/"f", sender, its LID, the options in JSON):
 * a vote in the same batch opens with it. */
struct poll_copy {
    char *col[6];
};

/* What the batch in flight is, for its answer. */
struct batch {
    uint64_t token;
    int n, np;                     /* messages; elements of the statement */
    int media;                     /* a media message among them: the download queue is woken */
    int history;                   /* a history sync notification: the history runner is woken */
    int keys;                      /* app-state keys among them: the sync is woken */
    char ids[WA_INCOMING_MAX][64]; /* the stanza ids, for the log */
    int at[WA_INCOMING_MAX];       /* the statement's element k is message at[k] of the batch */
    /* with votes: each element's JSON (NULL: a vote not counted) until the
     * polls' secrets are read */
    char *elems[WA_INCOMING_MAX];
    struct vote_copy *votes;
    int nvotes;
    struct poll_copy *polls;
    int npolls;
    /* each one's key: a placeholder stored is asked for by it */
    char chats[WA_INCOMING_MAX][128], senders[WA_INCOMING_MAX][128];
    unsigned char from_me[WA_INCOMING_MAX];
    unsigned char change[WA_INCOMING_MAX]; /* a pin or keep: its message.updated recovers nothing */
};

static void batch_free(struct batch *bt)
{
    for (int i = 0; i < bt->n; i++)
        free(bt->elems[i]);
    for (int i = 0; i < bt->nvotes; i++)
        wa_msg_poll_vote_free(bt->votes[i].v);
    free(bt->votes);
    for (int i = 0; i < bt->npolls; i++)
        for (int c = 0; c < 6; c++) {
            if (c == 1 && bt->polls[i].col[c])
                OPENSSL_cleanse(bt->polls[i].col[c], strlen(bt->polls[i].col[c]));
            free(bt->polls[i].col[c]);
        }
    free(bt->polls);
    free(bt);
}

#define THUMB_MAX (128 * 1024) /* a larger "thumbnail" is not kept */

static void add_hex(struct jsonw *w, const char *k, const uint8_t *p, size_t n)
{
    char *h = n ? malloc(2 * n + 1) : NULL;
    if (h)
        hex_encode(h, p, n, 0);
    jw_kstr(w, k, h); /* NULL (absent, or out of memory): null */
    free(h);
}

static void add_uint(struct jsonw *w, const char *k, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    jw_kstr(w, k, v ? num : NULL);
}

/* A media message's attachment: what finds, decrypts and describes the
 * file, for the download queue (supervisor/media_download.c). */
static void add_media(struct jsonw *w, const struct wa_msg_media *md)
{
    jw_key(w, "media");
    jw_obj(w);
    jw_kstr(w, "kind", wa_media_type_name(md->type));
    jw_kstr(w, "mimetype", md->mimetype);
    jw_kstr(w, "file_name", md->file_name);
    add_uint(w, "width", md->width <= INT32_MAX ? md->width : 0);
    add_uint(w, "height", md->height <= INT32_MAX ? md->height : 0);
    add_uint(w, "seconds", md->seconds <= INT32_MAX ? md->seconds : 0);
    add_hex(w, "waveform", md->waveform, md->waveform_len);
    add_hex(w, "thumbnail", md->thumbnail, md->thumbnail_len <= THUMB_MAX ? md->thumbnail_len : 0);
    add_hex(w, "media_key", md->media_key, md->has_media_key ? 32 : 0);
    add_hex(w, "file_sha256", md->file_sha256, md->has_file_sha256 ? 32 : 0);
    add_hex(w, "file_enc_sha256", md->file_enc_sha256, md->has_file_enc_sha256 ? 32 : 0);
    add_uint(w, "file_length", md->file_length <= INT64_MAX ? md->file_length : 0);
    jw_kstr(w, "direct_path", md->direct_path);
    jw_kstr(w, "url", md->url);
    add_uint(w, "media_key_ts", md->media_key_ts > 0 ? (uint64_t)md->media_key_ts : 0);
    jw_obj_end(w);
}

/* "content": a place as the API shows it (common/sql/0026_message_content.sql). */
static void add_location(struct jsonw *w, const struct wa_msg_location *l)
{
    jw_key(w, "content");
    jw_obj(w);
    jw_key(w, "latitude");
    jw_double(w, "%.15g", l->latitude);
    jw_key(w, "longitude");
    jw_double(w, "%.15g", l->longitude);
    jw_kstr(w, "name", l->name);
    jw_kstr(w, "address", l->address);
    jw_kstr(w, "url", l->url);
    jw_kstr(w, "comment", l->comment);
    jw_kbool(w, "live", l->live);
    jw_key(w, "accuracy_m");
    if (l->accuracy_m)
        jw_uint(w, l->accuracy_m);
    else
        jw_null(w);
    jw_key(w, "sequence");
    if (l->live && l->sequence > 0)
        jw_int(w, l->sequence);
    else
        jw_null(w);
    jw_obj_end(w);
}

/* "content": the cards, in order. */
static void add_contacts(struct jsonw *w, const struct wa_msg_contact *c, size_t n)
{
    jw_key(w, "content");
    jw_arr(w);
    for (size_t i = 0; i < n; i++) {
        jw_obj(w);
        jw_kstr(w, "display_name", c[i].display_name);
        jw_kstr(w, "vcard", c[i].vcard);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

/* "content": a poll as the API shows it; its secret apart (never shown). */
static void add_poll(struct jsonw *w, const struct wa_msg_poll *p)
{
    jw_key(w, "content");
    jw_obj(w);
    jw_kstr(w, "question", p->question);
    jw_key(w, "options");
    jw_arr(w);
    for (size_t i = 0; i < p->noptions; i++)
        jw_str(w, p->options[i]);
    jw_arr_end(w);
    jw_kbool(w, "multiple", p->multiple);
    jw_obj_end(w);
    if (p->has_secret)
        add_hex(w, "poll_secret", p->secret, sizeof p->secret);
}

/* "k":"hs": what the history runner needs of our phone's notification
 * (supervisor/history.c); "off" when nothing is to be imported. */
static void add_history_job(struct jsonw *w, const struct wa_incoming *m)
{
    struct wa_hist_notif nt;
    int ok = wa_hist_notif_parse(m->content->raw, m->content->raw_len, &nt) == 1 && nt.sync_type >= 0;
    if (!ok)
        log_warn("history sync notification unusable: acknowledged, not imported", LF_S("id", m->id));
    jw_kstr(w, "k", "hs");
    jw_kstr(w, "id", m->id);
    jw_kint(w, "type", ok ? nt.sync_type : 0);
    jw_kuint(w, "chunk", ok ? nt.chunk_order : 0);
    jw_kuint(w, "progress", ok ? nt.progress : 0);
    int off = !ok || !strcmp(S.cfg.whatsapp.history, "off");
    jw_kbool(w, "off", off);
    if (ok && !off) { /* skipped: only the receipt is due, nothing of the blob is kept */
        add_hex(w, "media_key", nt.media_key, nt.has_media_key ? sizeof nt.media_key : 0);
        add_hex(w, "file_sha256", nt.file_sha256, nt.has_file_sha256 ? 32 : 0);
        add_hex(w, "file_enc_sha256", nt.file_enc_sha256, nt.has_file_enc_sha256 ? 32 : 0);
        add_uint(w, "file_length", nt.file_length <= INT64_MAX ? nt.file_length : 0);
        jw_kstr(w, "direct_path", nt.direct_path);
        add_hex(w, "inline", nt.inline_payload, nt.inline_len);
        add_uint(w, "oldest", nt.oldest_msg_ts > 0 ? (uint64_t)nt.oldest_msg_ts : 0);
        jw_kstr(w, "request", nt.peer_data_request_session_id);
    }
    if (ok)
        wa_hist_notif_free(&nt);
}

/* One element of the statement (see common/sql/0020_message_json.sql). */
static void add_element(struct jsonw *w, const struct wa_incoming *m, uint64_t ev)
{
    const struct wa_msg_content *mc = m->content;
    int reaction = mc->kind == WA_MSG_REACTION;
    char num[24];
    jw_obj(w);
    jw_kstr(w, "mid", m->id); /* what any element clears of the retry waits */
    if (mc->kind == WA_MSG_RETRY_WAIT || mc->kind == WA_MSG_RETRY_DONE) {
        /* common/sql/0040_retry_waits.sql */
        jw_kstr(w, "k", mc->kind == WA_MSG_RETRY_WAIT ? "w" : "wd");
        jw_kstr(w, "id", m->id);
        jw_kstr(w, "chat", m->chat);
        jw_kstr(w, "sender", m->sender);
        jw_kbool(w, "from_me", m->from_me);
        jw_kstr(w, "push_name", m->push_name);
        jw_kstr(w, "lid", m->lid);
    } else if (mc->kind == WA_MSG_DISAPPEARING) {
        /* The chat's timer, no message (common/sql/0031_ephemeral.sql). */
        jw_kstr(w, "k", "d");
        jw_kstr(w, "chat", m->chat);
        jw_kstr(w, "sender", m->sender);
        jw_kuint(w, "seconds", mc->expiration);
    } else if (mc->kind == WA_MSG_APPSTATE_KEYS) {
        /* Our phone's app-state keys, kept with the batch (common/sql/defs/wapi_incoming_store.sql). */
        wa_arena *a = wa_arena_new();
        struct wa_as_shared_key *keys = NULL;
        size_t nk = 0;
        jw_kstr(w, "k", "ak");
        jw_key(w, "keys");
        jw_arr(w);
        if (a && wa_as_key_share_parse(mc->raw, mc->raw_len, a, &keys, &nk) == 0) {
            for (size_t i = 0; i < nk; i++) {
                jw_obj(w);
                add_hex(w, "id", keys[i].key_id, keys[i].key_id_len);
                add_hex(w, "data", keys[i].key_data, keys[i].key_data_len);
                jw_kint(w, "ts_ms", keys[i].timestamp);
                jw_obj_end(w);
            }
        } else {
            log_warn("app-state key share not readable: ignored", LF_S("id", m->id));
        }
        jw_arr_end(w);
        wa_arena_free(a);
    } else if (mc->kind == WA_MSG_HISTORY_SYNC) {
        /* A history sync job, kept with the batch (common/sql/0037_history_sync.sql). */
        add_history_job(w, m);
    } else if (mc->kind == WA_MSG_PIN || mc->kind == WA_MSG_KEEP) {
        /* On the target message, no message of its own (common/sql/defs/wapi_incoming_store.sql). */
        jw_kstr(w, "k", mc->kind == WA_MSG_PIN ? "p" : "kp");
        jw_kstr(w, "target", mc->target);
        jw_kstr(w, "chat", m->chat);
        jw_kstr(w, "sender", m->sender);
        jw_kbool(w, "on", mc->on);
        jw_kuint(w, "secs", mc->on_seconds);
    } else if (mc->kind == WA_MSG_EDIT || mc->kind == WA_MSG_REVOKE) {
        jw_kstr(w, "k", mc->kind == WA_MSG_EDIT ? "e" : "r");
        jw_kstr(w, "target", mc->target);
        jw_kstr(w, "chat", m->chat);
        if (mc->kind == WA_MSG_EDIT)
            jw_kstr(w, "text", mc->text);
    } else {
        jw_kstr(w, "k", "m");
        jw_kstr(w, "id", m->id);
        jw_kstr(w, "chat", m->chat);
        jw_kstr(w, "sender", m->sender);
        jw_kbool(w, "from_me", m->from_me);
        const struct wa_msg_media *md = mc->kind == WA_MSG_MEDIA ? mc->media : NULL;
        const char *type = reaction                           ? "reaction"
                           : mc->kind == WA_MSG_TEXT          ? "text"
                           : mc->kind == WA_MSG_LOCATION      ? "location"
                           : mc->kind == WA_MSG_CONTACTS      ? "contacts"
                           : mc->kind == WA_MSG_POLL          ? "poll"
                           : mc->kind == WA_MSG_UNDECRYPTABLE ? "undecryptable"
                                                              : "unsupported";
        if (md && wa_media_type_name(md->type))
            type = wa_media_type_name(md->type);
        else
            md = NULL;
        jw_kstr(w, "type", type);
        jw_kstr(w, "subtype", mc->subtype);
        jw_kstr(w, "text", reaction ? NULL : md ? md->caption : mc->text);
        jw_kstr(w, "reply_to", mc->reply_to);
        jw_kstr(w, "reaction_to", reaction ? mc->target : NULL);
        jw_kstr(w, "reaction", reaction ? mc->text : NULL);
        jw_kstr(w, "push_name", m->push_name);
        jw_kstr(w, "lid", m->lid);
        jw_kstr(w, "et",
                m->fill                            ? "message.updated"
                : mc->kind == WA_MSG_UNDECRYPTABLE ? "message.undecryptable"
                : reaction                         ? "message.reaction"
                                                   : "message.received");
        if (m->fill)
            jw_kbool(w, "fill", 1);
        if (mc->forwarded)
            jw_kbool(w, "forwarded", 1);
        if (mc->view_once && md)
            jw_kbool(w, "view_once", 1);
        if (mc->has_expiration && !reaction) {
            snprintf(num, sizeof num, "%u", (unsigned)mc->expiration);
            jw_kstr(w, "exp", num);
        }
        if (mc->nmentions) {
            jw_key(w, "mentions");
            jw_arr(w);
            for (size_t i = 0; i < mc->nmentions; i++)
                jw_str(w, mc->mentions[i]);
            jw_arr_end(w);
        }
        if (md)
            add_media(w, md);
        if (mc->kind == WA_MSG_LOCATION && mc->location)
            add_location(w, mc->location);
        if (mc->kind == WA_MSG_CONTACTS)
            add_contacts(w, mc->contacts, mc->ncontacts);
        if (mc->kind == WA_MSG_POLL && mc->poll)
            add_poll(w, mc->poll);
    }
    /* as strings: the statement reads them with ->> and casts */
    snprintf(num, sizeof num, "%lld", (long long)m->ts);
    jw_kstr(w, "ts", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)ev);
    jw_kstr(w, "ev", num);
    jw_obj_end(w);
}

static void on_stored(void *ctx, const PGresult *res, const char *err)
{
    struct batch *bt = ctx;
    char applied[WA_INCOMING_MAX + 1];
    memset(applied, 'f', (size_t)bt->n);
    applied[bt->n] = '\0';
    for (int i = 0; res && i < PQntuples(res); i++) {
        long ord = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (ord < 1 || ord > bt->np || PQgetisnull(res, i, 1) || PQgetisnull(res, i, 3)) {
            res = NULL; /* not the answer asked for: treated as not stored */
            err = "unexpected answer from wapi_incoming_store";
            break;
        }
        applied[bt->at[ord - 1]] = 't';
    }
    if (res)
        for (int i = 0; i < PQntuples(res); i++) {
            long ord = strtol(PQgetvalue(res, i, 0), NULL, 10);
            const char *et = PQgetvalue(res, i, 2);
            events_publish(strtoull(PQgetvalue(res, i, 1), NULL, 10), et, PQgetvalue(res, i, 3));
            int j = bt->at[ord - 1]; /* the batch's message */
            int placeholder = !strcmp(et, "message.undecryptable"),
                recovered = !strcmp(et, "message.updated") && !bt->change[j];
            if (S.shm)
                metrics_add(placeholder ? &S.shm->wa_messages_undecryptable_total
                            : recovered ? &S.shm->wa_messages_recovered_total
                                        : &S.shm->wa_messages_received_total,
                            1);
            /* Committed: now our phone is asked for it (again at each connect
             * while it stays a placeholder, should this one be lost). */
            if (placeholder)
                placeholder_ask(bt->ids[j], bt->chats[j], bt->from_me[j],
                                bt->senders[j][0] ? bt->senders[j] : NULL);
            log_info("incoming message stored", LF_S("id", bt->ids[j]), LF_S("event", PQgetvalue(res, i, 2)),
                     LF_I("batch", bt->n));
        }
    if (bt->token) /* else stored for the supervisor itself (inbox_store) */
        wa_messaging_stored(bt->token, res ? applied : NULL, err);
    else if (!res)
        log_warn("cannot store messages", LF_S("error", err ? err : "?"));
    if (res && bt->media)
        media_download_kick();
    if (res && bt->history && history_kick)
        history_kick();
    if (res && bt->keys)
        appsync_keys_arrived();
    batch_free(bt);
}

static void votes_refused(int n)
{
    if (S.shm && n > 0)
        metrics_add(&S.shm->wa_poll_votes_refused_total, (uint64_t)n);
}

/* The batch's elements (those not NULL) as one statement; -1 when it could
 * not go (bt freed by the caller). */
static int store_elems(struct batch *bt)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "[", 1);
    bt->np = 0;
    for (int i = 0; i < bt->n; i++) {
        if (!bt->elems[i])
            continue;
        if (bt->np)
            sbuf_add(&b, ",", 1);
        sbuf_add(&b, bt->elems[i], strlen(bt->elems[i]));
        bt->at[bt->np++] = i;
    }
    sbuf_add(&b, "]", 1);
    const char *p[] = {b.buf};
    int ok = !b.oom && sdb_query(SQL_STORE_POLLS, 1, p, on_stored, bt) != NULL;
    sbuf_free(&b);
    return ok ? 0 : -1;
}

/* One vote opened with its poll's secret (row: as SQL_POLL_SECRETS gives
 * it, NULL for a null): the element to apply, or NULL when it does not open. The JIDs tried are the
 * ones each side may have been addressed by (phone number, LID): the key
 * binds them, so only the right pair opens it. */
static char *open_vote(const struct vote_copy *vc, const char *const *row, const char *own_pn,
                       const char *own_lid)
{
    uint8_t secret[WA_MSG_POLL_SECRET_LEN];
    if (!row[1] || hex_decode(row[1], secret, sizeof secret) < 0)
        return NULL;
    int poll_mine = row[2] && row[2][0] == 't';
    const char *creators[2] = {poll_mine ? own_pn : row[3], poll_mine ? own_lid : row[4]};
    const char *voters[2] = {vc->sender, vc->lid};
    uint8_t *sums = NULL;
    size_t ns = 0;
    int opened = 0;
    for (int c = 0; c < 2 && !opened; c++)
        for (int v = 0; v < 2 && !opened; v++)
            if (creators[c] && *creators[c] && *voters[v])
                opened = wa_msg_poll_vote_open(secret, vc->v->poll_id, creators[c], voters[v], vc->v, &sums,
                                               &ns) == 0;
    OPENSSL_cleanse(secret, sizeof secret);
    if (!opened)
        return NULL;
    /* the chosen names: each option of the poll whose sum is listed */
    char err[64];
    const char *oj = row[5] ? row[5] : "[]";
    yajl_val opts = json_parse(oj, strlen(oj), 1 << 20, err, sizeof err);
    struct sbuf b;
    struct jsonw w;
    char num[24];
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "k", "v");
    jw_kstr(&w, "id", vc->id);
    jw_kstr(&w, "poll", vc->v->poll_id);
    jw_kstr(&w, "voter", vc->sender[0] ? vc->sender : vc->lid);
    jw_key(&w, "options");
    jw_arr(&w);
    for (size_t i = 0; opts && YAJL_IS_ARRAY(opts) && i < opts->u.array.len; i++) {
        const char *name = YAJL_IS_STRING(opts->u.array.values[i]) ? opts->u.array.values[i]->u.string : NULL;
        uint8_t h[32];
        if (!name || wa_crypto_sha256((const uint8_t *)name, strlen(name), h) < 0)
            continue;
        for (size_t k = 0; k < ns; k++)
            if (!memcmp(sums + 32 * k, h, 32)) {
                jw_str(&w, name);
                break;
            }
    }
    jw_arr_end(&w);
    snprintf(num, sizeof num, "%lld", (long long)vc->ts_ms);
    jw_kstr(&w, "ts_ms", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)vc->ev);
    jw_kstr(&w, "ev", num);
    jw_obj_end(&w);
    free(sums);
    if (opts)
        yajl_tree_free(opts);
    char *out = jw_finish(&w) == 0 && b.buf ? strdup(b.buf) : NULL;
    sbuf_free(&b);
    return out;
}

static void on_secrets(void *ctx, const PGresult *res, const char *err)
{
    struct batch *bt = ctx;
    if (!res) {
        if (bt->token)
            wa_messaging_stored(bt->token, NULL, err);
        batch_free(bt);
        return;
    }
    char own_pn[128], own_lid[128];
    wa_messaging_own_jids(own_pn, sizeof own_pn, own_lid, sizeof own_lid);
    int refused = 0;
    for (int i = 0; i < bt->nvotes; i++) {
        const struct vote_copy *vc = &bt->votes[i];
        /* the poll as stored, else as it came in this batch */
        const char *row[6] = {NULL};
        int r = -1;
        for (int k = 0; k < PQntuples(res) && r < 0; k++)
            if (!strcmp(PQgetvalue(res, k, 0), vc->v->poll_id)) {
                r = k;
                for (int c = 0; c < 6; c++)
                    row[c] = PQgetisnull(res, k, c) ? NULL : PQgetvalue(res, k, c);
            }
        for (int k = 0; k < bt->npolls && r < 0; k++)
            if (!strcmp(bt->polls[k].col[0], vc->v->poll_id)) {
                r = k;
                memcpy(row, bt->polls[k].col, sizeof row);
            }
        bt->elems[vc->idx] = r >= 0 ? open_vote(vc, row, own_pn, own_lid) : NULL;
        if (!bt->elems[vc->idx]) {
            refused++;
            log_warn(r < 0 ? "a poll vote for a poll we do not have: not counted"
                           : "a poll vote that does not open with its poll's secret: not counted",
                     LF_S("id", vc->id), LF_S("poll", vc->v->poll_id), LF_S("voter", vc->sender));
        }
    }
    votes_refused(refused);
    if (store_elems(bt) < 0) {
        if (bt->token)
            wa_messaging_stored(bt->token, NULL, "out of memory");
        batch_free(bt);
    }
}

/* A poll of the batch, for a vote that follows it in the batch. */
static int poll_copy(struct poll_copy *pc, const struct wa_incoming *m)
{
    const struct wa_msg_poll *p = m->content->poll;
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_arr(&w);
    for (size_t i = 0; i < p->noptions; i++)
        jw_str(&w, p->options[i]);
    jw_arr_end(&w);
    pc->col[5] = jw_finish(&w) == 0 && b.buf ? strdup(b.buf) : NULL;
    sbuf_free(&b);
    pc->col[0] = strdup(m->id);
    pc->col[1] = malloc(2 * sizeof p->secret + 1);
    if (pc->col[1])
        hex_encode(pc->col[1], p->secret, sizeof p->secret, 0);
    pc->col[2] = strdup(m->from_me ? "t" : "f");
    pc->col[3] = m->sender ? strdup(m->sender) : NULL;
    pc->col[4] = m->lid ? strdup(m->lid) : NULL;
    return pc->col[0] && pc->col[1] && pc->col[2] && pc->col[5] && (!m->sender || pc->col[3]) &&
                   (!m->lid || pc->col[4])
               ? 0
               : -1;
}

/* A batch with votes: the other elements are written now, the votes kept
 * until their polls' secrets are read (then opened, and all stored in one
 * statement). */
static int with_votes(struct batch *bt, const struct wa_incoming *m, int n, uint64_t ev)
{
    struct sbuf ids;
    struct jsonw iw;
    sbuf_init(&ids);
    jw_init(&iw, &ids);
    jw_arr(&iw);
    if (!(bt->votes = calloc((size_t)n, sizeof *bt->votes)) ||
        !(bt->polls = calloc((size_t)n, sizeof *bt->polls)))
        goto fail;
    for (int i = 0; i < n; i++) {
        const struct wa_msg_content *mc = m[i].content;
        if (mc->kind == WA_MSG_POLL && mc->poll && mc->poll->has_secret &&
            poll_copy(&bt->polls[bt->npolls++], &m[i]) < 0)
            goto fail;
        if (mc->kind == WA_MSG_POLL_VOTE && mc->vote) {
            struct vote_copy *vc = &bt->votes[bt->nvotes++];
            const struct wa_msg_poll_vote *v = mc->vote;
            vc->idx = i;
            snprintf(vc->id, sizeof vc->id, "%s", m[i].id);
            snprintf(vc->chat, sizeof vc->chat, "%s", m[i].chat);
            snprintf(vc->sender, sizeof vc->sender, "%s", m[i].sender ? m[i].sender : "");
            snprintf(vc->lid, sizeof vc->lid, "%s", m[i].lid ? m[i].lid : "");
            vc->from_me = m[i].from_me;
            vc->ts_ms = v->ts_ms > 0 ? v->ts_ms : m[i].ts * 1000;
            vc->ev = ev + (uint64_t)i;
            if (!(vc->v = calloc(1, sizeof *vc->v)) || !(vc->v->poll_id = strdup(v->poll_id)) ||
                !(vc->v->payload = malloc(v->payload_len)))
                goto fail;
            memcpy(vc->v->payload, v->payload, v->payload_len);
            vc->v->payload_len = v->payload_len;
            memcpy(vc->v->iv, v->iv, sizeof v->iv);
            jw_str(&iw, v->poll_id);
            continue;
        }
        struct sbuf b;
        struct jsonw w;
        sbuf_init(&b);
        jw_init(&w, &b);
        add_element(&w, &m[i], ev + (uint64_t)i);
        bt->elems[i] = jw_finish(&w) == 0 && b.buf ? strdup(b.buf) : NULL;
        sbuf_free(&b);
        if (!bt->elems[i])
            goto fail;
    }
    jw_arr_end(&iw);
    if (jw_finish(&iw) < 0)
        goto fail;
    const char *p[] = {ids.buf};
    if (!sdb_query(SQL_POLL_SECRETS, 1, p, on_secrets, bt))
        goto fail;
    sbuf_free(&ids);
    return 0;
fail:
    sbuf_free(&ids);
    batch_free(bt);
    return -1;
}

static int on_incoming(void *arg, const struct wa_incoming *m, int n, uint64_t token)
{
    (void)arg;
    struct batch *bt = calloc(1, sizeof *bt);
    if (!bt || n < 1 || n > (int)(sizeof bt->ids / sizeof bt->ids[0])) {
        free(bt);
        return -1;
    }
    bt->token = token;
    bt->n = n;
    uint64_t ev = events_reserve((unsigned)n);
    int polls = 0, votes = 0;
    for (int i = 0; i < n; i++) {
        snprintf(bt->ids[i], sizeof bt->ids[i], "%s", m[i].id);
        snprintf(bt->chats[i], sizeof bt->chats[i], "%s", m[i].chat);
        snprintf(bt->senders[i], sizeof bt->senders[i], "%s", m[i].sender ? m[i].sender : "");
        bt->from_me[i] = m[i].from_me != 0;
        bt->change[i] = m[i].content->kind == WA_MSG_PIN || m[i].content->kind == WA_MSG_KEEP;
        bt->media |= m[i].content->kind == WA_MSG_MEDIA;
        bt->history |= m[i].content->kind == WA_MSG_HISTORY_SYNC;
        bt->keys |= m[i].content->kind == WA_MSG_APPSTATE_KEYS;
        polls |= m[i].content->kind == WA_MSG_POLL;
        votes |= m[i].content->kind == WA_MSG_POLL_VOTE;
        bt->at[i] = i;
    }
    bt->np = n;
    if (votes)
        return with_votes(bt, m, n, ev);
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_arr(&w);
    for (int i = 0; i < n; i++)
        add_element(&w, &m[i], ev + (uint64_t)i);
    jw_arr_end(&w);
    int failed = jw_finish(&w) < 0;
    const char *p[] = {b.buf};
    if (failed || !sdb_query(polls ? SQL_STORE_POLLS : SQL_STORE, 1, p, on_stored, bt)) {
        sbuf_free(&b);
        free(bt);
        return -1;
    }
    sbuf_free(&b);
    return 0;
}

void inbox_element(struct jsonw *w, const struct wa_incoming *m, uint64_t ev)
{
    add_element(w, m, ev);
}

void inbox_set_history_kick(void (*kick)(void))
{
    history_kick = kick;
}

int inbox_store(const struct wa_incoming *m, int n)
{
    return on_incoming(NULL, m, n, 0);
}

/* A LID is recorded unless another contact holds it already (the unique
 * index must never fail), and only when it changes. */
static const char SQL_LID[] =
    "INSERT INTO wa_contacts (jid, lid, updated_at) SELECT $1, $2, now() "
    "WHERE NOT EXISTS (SELECT 1 FROM wa_contacts x WHERE x.lid = $2 AND x.jid <> $1) "
    "ON CONFLICT (jid) DO UPDATE SET lid = EXCLUDED.lid, updated_at = now() "
    "WHERE wa_contacts.lid IS DISTINCT FROM EXCLUDED.lid";

static void on_lid_saved(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("cannot record a phone number's LID", LF_S("error", err));
    else if (PQcmdTuples((PGresult *)res)[0] != '0')
        chat_merges_kick(); /* a new mapping may have merged two chats */
}

static void on_lid(void *arg, const char *pn, const char *lid)
{
    (void)arg;
    const char *p[] = {pn, lid};
    if (!sdb_query(SQL_LID, 2, p, on_lid_saved, NULL))
        log_warn("cannot record a phone number's LID", LF_S("error", "out of memory"));
}

static void on_undecryptable(void *arg, const char *id, const char *from)
{
    (void)arg, (void)id, (void)from;
    if (S.shm)
        metrics_add(&S.shm->wa_decrypt_failures_total, 1);
}

/* A group chat is named by its subject (the chat list shows it). */
static const char SQL_CHAT_NAME[] =
    "INSERT INTO wa_chats (jid, name) VALUES ($1, $2) "
    "ON CONFLICT (jid) DO UPDATE SET name = EXCLUDED.name, updated_at = now() "
    "WHERE wa_chats.name IS DISTINCT FROM EXCLUDED.name";

static void on_chat_named(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("cannot record a group's subject", LF_S("error", err));
}

void inbox_chat_name(const char *jid, const char *name)
{
    const char *p[] = {jid, name};
    if (!sdb_query(SQL_CHAT_NAME, 2, p, on_chat_named, NULL))
        log_warn("cannot record a group's subject", LF_S("error", "out of memory"));
}

static void on_group_subject(void *arg, const char *gjid, const char *subject)
{
    (void)arg;
    inbox_chat_name(gjid, subject);
}

void inbox_init(void)
{
    struct wa_receive_events ev = {on_incoming,    on_lid,           on_undecryptable,  media_download_answer,
                                   presence_event, on_group_subject, group_events_take, calls_take};
    wa_messaging_set_receive_events(&ev, NULL);
}
