#include "inbox.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "events.h"
#include "presence.h"
#include "calls.h"
#include "group_events.h"
#include "media_download.h"
#include "placeholder.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_messaging.h"

/* One row per element applied: its position (from 1) and its event. */
static const char SQL_STORE[] = "SELECT ord, event_id, event_type, data FROM wapi_incoming_store($1::jsonb)";

/* What the batch in flight is, for its answer. */
struct batch {
    uint64_t token;
    int n;
    int media;                     /* a media message among them: the download queue is woken */
    char ids[WA_INCOMING_MAX][64]; /* the stanza ids, for the log */
    /* each one's key: a placeholder stored is asked for by it */
    char chats[WA_INCOMING_MAX][128], senders[WA_INCOMING_MAX][128];
    unsigned char from_me[WA_INCOMING_MAX];
};

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

/* One element of the statement (see common/sql/0020_message_json.sql). */
static void add_element(struct jsonw *w, const struct wa_incoming *m, uint64_t ev)
{
    const struct wa_msg_content *mc = m->content;
    int reaction = mc->kind == WA_MSG_REACTION;
    char num[24];
    jw_obj(w);
    if (mc->kind == WA_MSG_EDIT || mc->kind == WA_MSG_REVOKE) {
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
        if (ord < 1 || ord > bt->n || PQgetisnull(res, i, 1) || PQgetisnull(res, i, 3)) {
            res = NULL; /* not the answer asked for: treated as not stored */
            err = "unexpected answer from wapi_incoming_store";
            break;
        }
        applied[ord - 1] = 't';
    }
    if (res)
        for (int i = 0; i < PQntuples(res); i++) {
            long ord = strtol(PQgetvalue(res, i, 0), NULL, 10);
            const char *et = PQgetvalue(res, i, 2);
            events_publish(strtoull(PQgetvalue(res, i, 1), NULL, 10), et, PQgetvalue(res, i, 3));
            int placeholder = !strcmp(et, "message.undecryptable"),
                recovered = !strcmp(et, "message.updated");
            if (S.shm)
                metrics_add(placeholder ? &S.shm->wa_messages_undecryptable_total
                            : recovered ? &S.shm->wa_messages_recovered_total
                                        : &S.shm->wa_messages_received_total,
                            1);
            /* Committed: now our phone is asked for it (again at each connect
             * while it stays a placeholder, should this one be lost). */
            if (placeholder)
                placeholder_ask(bt->ids[ord - 1], bt->chats[ord - 1], bt->from_me[ord - 1],
                                bt->senders[ord - 1][0] ? bt->senders[ord - 1] : NULL);
            log_info("incoming message stored", LF_S("id", bt->ids[ord - 1]),
                     LF_S("event", PQgetvalue(res, i, 2)), LF_I("batch", bt->n));
        }
    wa_messaging_stored(bt->token, res ? applied : NULL, err);
    if (res && bt->media)
        media_download_kick();
    free(bt);
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
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_arr(&w);
    for (int i = 0; i < n; i++) {
        snprintf(bt->ids[i], sizeof bt->ids[i], "%s", m[i].id);
        snprintf(bt->chats[i], sizeof bt->chats[i], "%s", m[i].chat);
        snprintf(bt->senders[i], sizeof bt->senders[i], "%s", m[i].sender ? m[i].sender : "");
        bt->from_me[i] = m[i].from_me != 0;
        bt->media |= m[i].content->kind == WA_MSG_MEDIA;
        add_element(&w, &m[i], ev + (uint64_t)i);
    }
    jw_arr_end(&w);
    int failed = jw_finish(&w) < 0;
    const char *p[] = {b.buf};
    if (failed || !sdb_query(SQL_STORE, 1, p, on_stored, bt)) {
        sbuf_free(&b);
        free(bt);
        return -1;
    }
    sbuf_free(&b);
    return 0;
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
