/* /api/messages, /api/chats, /api/contacts: sending (a durable outbox row,
 * committed before 202), reading with cursor pagination, and the actions
 * that need the WhatsApp connection. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/utf8.h"
#include "common/sbuf.h"
#include "db.h"
#include "handlers.h"
#include "media_api.h"
#include "multipart.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define TEXT_MAX_CHARS 4096
#define CAPTION_MAX_CHARS 1024
#define MEDIA_URL_MAX 2048
#define MEDIA_FETCH_TIMEOUT_MS 90000 /* the supervisor's fetch (60 s) and the publication */
#define IDEM_MAX 128
#define LIST_DEFAULT 50
#define LIST_MAX 200
#define ACTION_TIMEOUT_MS 5000
#define CONTACTS_TIMEOUT_MS 15000
#define STR_(x) #x
#define STR(x) STR_(x)

/* One message as JSON: wapi_message_json (common/sql/0020_message_json.sql),
 * the one definition REST bodies and event data share. */
#define MSG_JSON(m) "wapi_message_json(" m ")::text"

struct op {
    struct op_base b;
    int limit;
    const char *params[6];
    char id[24];
    char to[160];
    char *text;
    char reply_to[130];
    char *mentions; /* JIDs, newline-separated (pool), or NULL */
    char idem[IDEM_MAX + 1];
    /* a media message: its kind ("" for text), the stored file, a name */
    char kind[16];
    char media_id[65];
    char *media_url;            /* media {url}: fetched into the store by the supervisor first (pool) */
    char *thumb_hex;            /* thumbnail: the client's JPEG in hex (pool), or NULL */
    unsigned char *media_bytes; /* media {base64}: decoded (pool), stored first */
    size_t media_len;
    char file_name[MP_KEPT_NAME_MAX + 1];
    int retried;
    int view_once;       /* a view-once photo, video or voice note */
    int answer_status;   /* on_one's status: 200 for a replay, 202 for a new media message */
    const char *missing; /* on_one's 404 message: "no message with this id" unless set */
    char *ids;           /* '\n'-joined message ids (pool) */
    char *content; /* a location, contacts or poll message: its content as stored (pool), kind says which */
    char secret_hex[65]; /* a poll: the secret its votes are sealed with ("" for the other kinds) */
    /* POST /api/messages: waiting in the send queue, or in a batch in flight */
    struct op *qnext;
    int queued;
    struct send_batch *batch;
    int slot;
};

/* idempotency_key (optional) into o->idem; -1 after answering 400. */
static int parse_idem(struct rq *rq, yajl_val body, struct op *o)
{
    yajl_val v = json_member(body, "idempotency_key");
    if (!v || YAJL_IS_NULL(v))
        return 0;
    size_t il = YAJL_IS_STRING(v) ? strlen(v->u.string) : 0;
    if (il < 1 || il > IDEM_MAX || utf8_len(v->u.string, il) < 1) {
        http_error(rq, 400, "invalid_idempotency_key", "idempotency_key must be a string of 1 to 128 bytes",
                   "idempotency_key");
        return -1;
    }
    memcpy(o->idem, v->u.string, il + 1);
    return 0;
}

/* ---- recipients */

/* A group's JID: digits (an old group: creator-digits "-" creation time) @g.us. */
static int group_jid(const char *s, size_t ul)
{
    int dash = 0;
    if (ul < 5 || ul > 40 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[ul - 1]))
        return 0;
    for (size_t i = 0; i < ul; i++)
        if (s[i] == '-' ? dash++ : !isdigit((unsigned char)s[i]))
            return 0;
    return dash <= 1;
}

/* "+1 555-123-4567" or "15551234567" → digits; a JID of a person or a group as it is. */
int parse_to(const char *s, char *jid, size_t jidlen)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return -1;
    const char *at = strchr(s, '@');
    if (at && !strcmp(at + 1, "g.us")) {
        if (!group_jid(s, (size_t)(at - s)))
            return -1;
        snprintf(jid, jidlen, "%s", s);
        return 0;
    }
    if (at) {
        size_t ul = (size_t)(at - s);
        const char *server = at + 1;
        int lid = strcmp(server, "lid") == 0;
        if (!lid && strcmp(server, "s.whatsapp.net") != 0)
            return -1;
        if (ul < (lid ? 1u : 7u) || ul > (lid ? 24u : 15u))
            return -1;
        for (size_t i = 0; i < ul; i++)
            if (!isdigit((unsigned char)s[i]))
                return -1;
        if (s[0] == '0' && !lid)
            return -1;
        snprintf(jid, jidlen, "%s", s);
        return 0;
    }
    char digits[16];
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (isdigit((unsigned char)c)) {
            if (d >= 15)
                return -1;
            digits[d++] = c;
        } else if (c == '+' && i == 0) {
            continue;
        } else if ((c == ' ' || c == '-') && d > 0 && i + 1 < n) {
            continue;
        } else {
            return -1;
        }
    }
    if (d < 7 || digits[0] == '0')
        return -1;
    digits[d] = '\0';
    snprintf(jid, jidlen, "%s@s.whatsapp.net", digits);
    return 0;
}

/* 3EB0 + 18 upper-case hex of SHA-256(time, 16 random bytes): 22 chars. */
static int new_message_id(char out[23])
{
    unsigned char seed[16 + sizeof(struct timespec)], h[SHA256_DIGEST_LENGTH];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(seed, &ts, sizeof ts);
    if (getrandom(seed + sizeof ts, 16, 0) != 16)
        return -1;
    SHA256(seed, sizeof seed, h);
    memcpy(out, "3EB0", 4);
    hex_encode(out + 4, h, 9, 1);
    return 0;
}

/* mentions: newline-separated JIDs as a JSON array ("" or NULL: empty). */
static void mentions_json(struct jsonw *w, const char *mentions)
{
    jw_arr(w);
    for (const char *p = mentions; p && *p;) {
        size_t n = strcspn(p, "\n");
        jw_strn(w, p, n);
        p += n + (p[n] == '\n');
    }
    jw_arr_end(w);
}

#define MENTIONS_MAX 1024 /* a group's size */

/* "mentions": [jid or phone, ...] into o->mentions (JIDs of people); -1
 * after answering 400. */
static int parse_mentions(struct rq *rq, yajl_val body, struct op *o)
{
    yajl_val v = json_member(body, "mentions");
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_ARRAY(v) || v->u.array.len > MENTIONS_MAX) {
        http_error(rq, 400, "invalid_mentions",
                   "mentions must be an array of at most 1024 phone numbers or JIDs", "mentions");
        return -1;
    }
    if (v->u.array.len == 0)
        return 0;
    struct sbuf b;
    sbuf_init(&b);
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        char jid[160];
        if (!YAJL_IS_STRING(e) || parse_to(e->u.string, jid, sizeof jid) < 0 || strstr(jid, "@g.us")) {
            sbuf_free(&b);
            char msg[96];
            snprintf(msg, sizeof msg, "mentions[%zu] must be a person's phone number or JID", i);
            http_error(rq, 400, "invalid_mentions", msg, "mentions");
            return -1;
        }
        if (i)
            sbuf_addc(&b, '\n');
        sbuf_adds(&b, jid);
    }
    o->mentions = h2o_mem_alloc_pool(&rq->req->pool, b.len + 1);
    memcpy(o->mentions, b.buf, b.len + 1);
    sbuf_free(&b);
    return 0;
}

/* ---- POST /api/messages */

/* One statement per batch of sends (requests that arrive while earlier
 * batches commit wait and go together: one commit, one WAL flush, for many
 * messages). Per request: the message and its outbox row, the chat created
 * if new (never updated, so concurrent sends to one chat do not queue on its
 * row lock; reads take the last message from wa_messages), or the message an
 * earlier request with the same idempotency key created, or 'bad_reply'.
 * 'retry' means a request with the same key committed meanwhile (or is in
 * the same batch): a statement of its own then sees it. The dispatcher is
 * woken over the supervisor link once the batch has committed. */
static const char SQL_SEND_BATCH[] =
    "WITH r AS (SELECT e.ord, e.v->>'id' AS id, e.v->>'to' AS chat, e.v->>'text' AS text, "
    "  e.v->>'reply_to' AS reply_to, e.v->>'idem' AS idem, e.v->'mentions' AS mentions "
    "  FROM jsonb_array_elements($1::jsonb) WITH "
    "ORDINALITY AS e(v, ord)), "
    "ok AS (SELECT r.* FROM r WHERE r.reply_to IS NULL OR EXISTS (SELECT 1 FROM wa_messages x WHERE x.id = "
    "r.reply_to)), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, text, reply_to, status, ts, "
    "idempotency_key, mentions) "
    "  SELECT id, chat, true, 'text', text, reply_to, 'queued', now(), idem, "
    "  CASE WHEN mentions IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(mentions)) END "
    "  FROM ok ORDER BY ord "
    "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING *), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins), "
    "ch AS (INSERT INTO wa_chats (jid, last_message_id, last_message_at) SELECT DISTINCT ON (chat_jid) "
    "chat_jid, "
    "  id, ts FROM ins ORDER BY chat_jid, seq DESC ON CONFLICT (jid) DO NOTHING) "
    "SELECT x.ord, CASE WHEN x.new THEN 'new' WHEN x.j IS NOT NULL THEN 'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM ok WHERE ok.ord = x.ord) THEN 'bad_reply' ELSE 'retry' END, "
    /* ob and ch are not read: statements that modify run all the same */
    "  x.j, x.ts, x.eph, x.exp FROM ("
    /* A repeated key is a subquery per row (one index probe), never a join: a
     * generic plan must not hash every stored message. OFFSET 0 keeps it from
     * being evaluated twice. */
    "  SELECT r.ord, m.id IS NOT NULL AS new, " REST_TS(
        "m.ts") " AS ts, m.ephemeral_seconds AS eph, " REST_TS("m.ts + make_interval(secs => "
                                                               "m.ephemeral_seconds)") " AS exp, CASE WHEN "
                                                                                       "m.id IS NULL AND "
                                                                                       "  r.idem IS NOT NULL "
                                                                                       "THEN (SELECT o.id "
                                                                                       "FROM wa_messages o "
                                                                                       "WHERE "
                                                                                       "o.idempotency_key = "
                                                                                       "r.idem) "
                                                                                       "  END AS j FROM r "
                                                                                       "LEFT JOIN ins m ON "
                                                                                       "m.id = r.id OFFSET "
                                                                                       "0) x ORDER BY x.ord";

/* A media message, alone (one statement, one commit): the kind must fit the
 * stored file (a document may be any file, audio may be a voice note, the
 * other kinds need a file uploaded as that kind); the attachment row names
 * the file, the supervisor fills in the upload. Result columns as the
 * batch's; 'bad_media' when the file does not fit. */
static const char SQL_SEND_MEDIA[] =
    "WITH f AS (SELECT id, mimetype FROM wa_media WHERE id = $7 AND state = 'stored' "
    "  AND (kind = $6 OR $6 = 'document' OR ($6 = 'audio' AND kind = 'voice'))), "
    "ok AS (SELECT f.* FROM f WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM wa_messages x WHERE x.id = "
    "$4)), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, text, reply_to, status, ts, "
    "idempotency_key, mentions, view_once) "
    "  SELECT $1, $2, true, $6, $3, $4, 'queued', now(), $5, string_to_array($10, E'\\n'), $11::boolean FROM "
    "ok "
    "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, chat_jid, ts), "
    "mm AS (INSERT INTO wa_message_media (message_id, kind, media_id, state, mimetype, file_name, thumbnail) "
    "  SELECT ins.id, $6, ok.id, 'stored', ok.mimetype, $8, decode($9, 'hex') FROM ins CROSS JOIN ok), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins), "
    "ch AS (INSERT INTO wa_chats (jid, last_message_id, last_message_at) SELECT chat_jid, id, ts FROM ins "
    "  ON CONFLICT (jid) DO NOTHING) "
    "SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' "
    "  WHEN $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM wa_messages o WHERE o.idempotency_key = $5) THEN "
    "'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM f) THEN 'bad_media' WHEN NOT EXISTS (SELECT 1 FROM ok) THEN "
    "'bad_reply' "
    "  ELSE 'retry' END, "
    "  (SELECT o.id FROM wa_messages o WHERE o.idempotency_key = $5), (SELECT " REST_TS("ts") " FROM ins)";

/* A location, contacts or poll message, alone: its content as the API
 * shows it (the supervisor builds the Message from it), a poll's secret
 * beside it. Result columns as the batch's. */
static const char SQL_SEND_CONTENT[] =
    "WITH ok AS (SELECT 1 WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM wa_messages x WHERE x.id = $4)), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, reply_to, status, ts, idempotency_key, "
    "content) "
    "  SELECT $1, $2, true, $6, $4, 'queued', now(), $5, $3::jsonb FROM ok "
    "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, chat_jid, ts), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins), "
    "sec AS (INSERT INTO wa_poll_secrets (message_id, secret) SELECT id, decode($7, 'hex') FROM ins "
    "  WHERE $7::text IS NOT NULL), "
    "ch AS (INSERT INTO wa_chats (jid, last_message_id, last_message_at) SELECT chat_jid, id, ts FROM ins "
    "  ON CONFLICT (jid) DO NOTHING) "
    "SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' "
    "  WHEN $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM wa_messages o WHERE o.idempotency_key = $5) THEN "
    "'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM ok) THEN 'bad_reply' ELSE 'retry' END, "
    "  (SELECT o.id FROM wa_messages o WHERE o.idempotency_key = $5), (SELECT " REST_TS("ts") " FROM ins)";

#define PLACE_NAME_MAX 256
#define PLACE_ADDRESS_MAX 512
#define PLACE_URL_MAX 2048
#define CONTACTS_MAX 64
#define VCARD_MAX 16384
#define CONTACT_NAME_MAX 256

/* a client's thumbnail (JPEG): WhatsApp's are a few KiB */
#define THUMB_MAX (48 * 1024)

#define BATCH_MAX 64
#define BATCHES_IN_FLIGHT 2 /* per worker: the others' queries still get connections */

struct send_batch {
    struct op *ops[BATCH_MAX]; /* NULL once its client left */
    int n;
};

static struct {
    struct op *head, *tail;
    int in_flight; /* batch statements out */
} SQ;

static void send_flush(void);
static void on_send_one(void *ctx, const PGresult *res, const char *err);

static void send_unqueue(struct op *o)
{
    struct op **pp = &SQ.head, *prev = NULL;
    while (*pp && *pp != o) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (!*pp)
        return;
    *pp = o->qnext;
    if (SQ.tail == o)
        SQ.tail = prev;
    o->queued = 0;
}

/* The client went away: what the op waits for besides its query. */
static void op_also_abort(struct op_base *b)
{
    struct op *o = (struct op *)b;
    if (o->queued)
        send_unqueue(o);
    if (o->batch)
        o->batch->ops[o->slot] = NULL; /* the batch commits anyway; nobody to answer */
}

static struct op *op_new(struct rq *rq)
{
    struct op *o = op_alloc(rq, sizeof *o);
    o->b.also_abort = op_also_abort;
    return o;
}

/* One request's element of the batch statement's array ("" as null). */
static void add_send_json(struct jsonw *w, const struct op *o)
{
    jw_obj(w);
    jw_kstr(w, "id", o->id[0] ? o->id : NULL);
    jw_kstr(w, "to", o->to[0] ? o->to : NULL);
    jw_kstr(w, "text", o->text && o->text[0] ? o->text : NULL);
    jw_kstr(w, "reply_to", o->reply_to[0] ? o->reply_to : NULL);
    jw_kstr(w, "idem", o->idem[0] ? o->idem : NULL);
    if (o->mentions) {
        jw_key(w, "mentions");
        mentions_json(w, o->mentions);
    }
    jw_obj_end(w);
}

/* The 202 body of a new message: what wapi_message_json() makes of the row
 * just inserted, written here from the request and the insert time. Building
 * it in the batch statement instead cost ~15% of the enqueue throughput
 * (make bench); t_messages compares this body with GET's field by field, so
 * the two cannot drift apart unnoticed. */
static int new_message_json(struct sbuf *b, const struct op *o, const char *ts, const char *eph,
                            const char *expires)
{
    struct jsonw w;
    jw_init(&w, b);
    jw_obj(&w);
    jw_kstr(&w, "id", o->id);
    jw_kstr(&w, "chat_jid", o->to);
    jw_knull(&w, "sender_jid");
    jw_knull(&w, "sender_pn");
    jw_knull(&w, "sender_lid");
    jw_kbool(&w, "from_me", 1);
    jw_kstr(&w, "type", "text");
    jw_knull(&w, "subtype");
    jw_kstr(&w, "text", o->text && o->text[0] ? o->text : NULL);
    jw_kstr(&w, "reply_to", o->reply_to[0] ? o->reply_to : NULL);
    jw_knull(&w, "reaction_to");
    jw_knull(&w, "reaction");
    jw_key(&w, "mentions");
    mentions_json(&w, o->mentions);
    jw_knull(&w, "location");
    jw_knull(&w, "contacts");
    jw_knull(&w, "poll");
    jw_kbool(&w, "forwarded", 0);
    jw_kbool(&w, "view_once", 0);
    jw_knull(&w, "pinned_at");
    jw_knull(&w, "pinned_until");
    jw_knull(&w, "pinned_by");
    jw_kbool(&w, "kept", 0);
    jw_key(&w, "ephemeral_seconds"); /* the chat's timer, taken when queued */
    if (eph)
        jw_int(&w, strtoll(eph, NULL, 10));
    else
        jw_null(&w);
    jw_kstr(&w, "expires_at", expires);
    jw_kstr(&w, "status", "queued");
    jw_knull(&w, "error");
    jw_kstr(&w, "ts", ts);
    jw_knull(&w, "edited_at");
    jw_knull(&w, "revoked_at");
    jw_kstr(&w, "created_at", ts); /* now(), as ts: one transaction */
    jw_kstr(&w, "updated_at", ts);
    jw_knull(&w, "read_at");
    jw_kstr(&w, "idempotency_key", o->idem[0] ? o->idem : NULL);
    jw_knull(&w, "media");
    jw_obj_end(&w);
    return jw_finish(&w);
}

static void on_one(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    o->b.q = NULL;
    o->b.rq->on_abort = NULL;
    const char *json = rest_one_row(o->b.rq, res, err, o->missing ? o->missing : "no message with this id");
    if (!json)
        return;
    http_json(o->b.rq, o->answer_status ? o->answer_status : 200, json, strlen(json));
}

static const char SQL_ONE[] = "SELECT " MSG_JSON("m") " FROM wa_messages m WHERE m.id = $1";

/* Answers one request from its result row; 1 when it must be retried alone. */
static int send_answer(struct op *o, const PGresult *res, int row)
{
    struct rq *rq = o->b.rq;
    const char *k = row >= 0 ? PQgetvalue(res, row, 1) : "retry";
    if (!strcmp(k, "bad_reply")) {
        rq->on_abort = NULL;
        http_error(rq, 400, "invalid_reply_to", "reply_to is not the id of a known message", "reply_to");
        return 0;
    }
    if (!strcmp(k, "bad_media")) {
        rq->on_abort = NULL;
        http_error(rq, 400, "invalid_media",
                   "media.id is not a stored file that can be sent as this kind (a document may be any file; "
                   "audio may be a voice note; the other kinds need a file uploaded as that kind)",
                   "media.id");
        return 0;
    }
    if (strcmp(k, "new") != 0 && strcmp(k, "old") != 0)
        return 1;
    rq->on_abort = NULL;
    if (k[0] == 'o' || o->kind[0]) {
        /* A replay: the stored message, read by its own statement. Building
         * it in the batch statement would cost every batch the planning of
         * wapi_message_json() (~70 us with force_custom_plan), replays or not. */
        const char *id = k[0] == 'o' ? PQgetvalue(res, row, 2) : o->id;
        o->answer_status = k[0] == 'o' ? 200 : 202; /* a new media message: its JSON names the file */
        op_run(o, SQL_ONE, 1, &id, on_one);         /* params are copied */
        return 0;
    }
    struct sbuf b;
    sbuf_init(&b);
    if (new_message_json(&b, o, PQgetvalue(res, row, 3),
                         PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4),
                         PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5)) < 0)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        http_json(rq, 202, b.buf, b.len);
    sbuf_free(&b);
    return 0;
}

static void send_one(struct op *o)
{
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_arr(&w);
    add_send_json(&w, o);
    jw_arr_end(&w);
    int oom = jw_finish(&w) < 0;
    char *p = h2o_mem_alloc_pool(&o->b.rq->req->pool, b.len + 1);
    memcpy(p, b.buf ? b.buf : "", b.len);
    p[b.len] = '\0';
    sbuf_free(&b);
    if (oom) {
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 500, NULL, "out of memory", NULL);
        return;
    }
    o->params[0] = p;
    op_run(o, SQL_SEND_BATCH, 1, o->params, on_send_one);
}

static void send_media(struct op *o)
{
    const char *p[] = {o->id,
                       o->to,
                       o->text && o->text[0] ? o->text : NULL,
                       o->reply_to[0] ? o->reply_to : NULL,
                       o->idem[0] ? o->idem : NULL,
                       o->kind,
                       o->media_id,
                       o->file_name[0] ? o->file_name : NULL,
                       o->thumb_hex,
                       o->mentions,
                       o->view_once ? "true" : "false"};
    op_run(o, SQL_SEND_MEDIA, 11, p, on_send_one);
}

static void send_content(struct op *o)
{
    const char *p[] = {o->id,
                       o->to,
                       o->content,
                       o->reply_to[0] ? o->reply_to : NULL,
                       o->idem[0] ? o->idem : NULL,
                       o->kind,
                       o->secret_hex[0] ? o->secret_hex : NULL};
    op_run(o, SQL_SEND_CONTENT, 7, p, on_send_one);
}

static void on_send_one(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    o->b.q = NULL;
    if (!res) {
        o->b.rq->on_abort = NULL;
        rest_db_error(o->b.rq, err);
        return;
    }
    if (PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 1), "new"))
        sup_notify(IPC_OUTBOX_KICK, NULL, 0);
    if (send_answer(o, res, PQntuples(res) == 1 ? 0 : -1)) {
        if (o->kind[0] && !o->retried++) {
            /* a request with the same key committed meanwhile: now it is seen */
            if (o->content)
                send_content(o);
            else
                send_media(o);
            return;
        }
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 500, NULL, "the message could not be stored", NULL);
    }
}

static void on_send_batch(void *ctx, const PGresult *res, const char *err)
{
    struct send_batch *bt = ctx;
    SQ.in_flight--;
    int rows = res ? PQntuples(res) : 0, kick = 0;
    for (int i = 0; i < rows; i++)
        kick |= !strcmp(PQgetvalue(res, i, 1), "new");
    if (kick)
        sup_notify(IPC_OUTBOX_KICK, NULL, 0);
    for (int i = 0; i < bt->n; i++) {
        struct op *o = bt->ops[i];
        if (!o)
            continue;
        o->batch = NULL;
        if (!res) {
            o->b.rq->on_abort = NULL;
            rest_db_error(o->b.rq, err);
            continue;
        }
        /* Rows come in request order (ord = i + 1). */
        int row = i < rows && atoi(PQgetvalue(res, i, 0)) == i + 1 ? i : -1;
        if (send_answer(o, res, row))
            send_one(o); /* alone, it sees the other request's row */
    }
    free(bt);
    send_flush();
}

/* Sends what waits, while fewer than BATCHES_IN_FLIGHT batches are out. */
static void send_flush(void)
{
    while (SQ.head && SQ.in_flight < BATCHES_IN_FLIGHT) {
        struct send_batch *bt = calloc(1, sizeof *bt);
        struct sbuf b;
        struct jsonw w;
        sbuf_init(&b);
        jw_init(&w, &b);
        jw_arr(&w);
        while (bt && SQ.head && bt->n < BATCH_MAX) {
            struct op *o = SQ.head;
            send_unqueue(o);
            add_send_json(&w, o);
            o->batch = bt;
            o->slot = bt->n;
            bt->ops[bt->n++] = o;
        }
        jw_arr_end(&w);
        int failed = jw_finish(&w) < 0;
        const char *p[] = {b.buf};
        if (!bt || failed || !db_query(SQL_SEND_BATCH, 1, p, on_send_batch, bt)) {
            for (int i = 0; bt && i < bt->n; i++) {
                bt->ops[i]->batch = NULL;
                bt->ops[i]->b.rq->on_abort = NULL;
                http_error(bt->ops[i]->b.rq, 500, NULL, "out of memory", NULL);
            }
            free(bt);
            sbuf_free(&b);
            return;
        }
        sbuf_free(&b);
        SQ.in_flight++;
    }
}

static void send_enqueue(struct op *o)
{
    o->qnext = NULL;
    o->queued = 1;
    if (SQ.tail)
        SQ.tail->qnext = o;
    else
        SQ.head = o;
    SQ.tail = o;
    op_wait(o);
    send_flush();
}

/* The supervisor's answer to IPC_MEDIA_FETCH: {"id"} of the file it
 * published, then the message is stored as for media {id}; else its error
 * as it is. */
static void on_media_fetched(void *ctx, const struct ipc_msg *m)
{
    struct op *o = ctx;
    uint32_t status, len;
    const uint8_t *body;
    int r = media_fetch_reply(m, o->media_id, sizeof o->media_id, &status, &body, &len);
    if (r <= 0) {
        o->b.rq->on_abort = NULL;
        if (r == 0)
            http_json(o->b.rq, (int)status, (const char *)body, len);
        else
            http_error(o->b.rq, 503, "supervisor_unavailable",
                       "the supervisor did not answer (or not so it "
                       "was understood)",
                       NULL);
        return;
    }
    send_media(o);
}

static void fetch_media(struct op *o)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_bytes(&b, o->media_url, (uint32_t)strlen(o->media_url));
    ipc_wr_bytes(&b, o->kind, (uint32_t)strlen(o->kind));
    ipc_wr_bytes(&b, o->file_name, (uint32_t)strlen(o->file_name));
    if (b.oom) {
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 500, NULL, "out of memory", NULL);
    } else {
        op_ask(o, IPC_MEDIA_FETCH, b.buf, b.len, -1, MEDIA_FETCH_TIMEOUT_MS, on_media_fetched);
    }
    sbuf_free(&b);
}

/* media.base64 into o->media_bytes (the request's pool): the standard
 * alphabet with padding, optionally after "data:TYPE;base64,". -1 when it is
 * not that. */
static int decode_base64(struct rq *rq, yajl_val v, unsigned char **out, size_t *len)
{
    if (!YAJL_IS_STRING(v))
        return -1;
    const char *p = v->u.string;
    size_t n = strlen(p);
    if (n > 5 && !strncmp(p, "data:", 5)) {
        const char *c = strstr(p, ";base64,");
        if (!c)
            return -1;
        n -= (size_t)(c + 8 - p);
        p = c + 8;
    }
    if (n % 4)
        return -1;
    size_t pad = n && p[n - 1] == '=' ? (n > 1 && p[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '+' && p[i] != '/')
            return -1;
    *out = h2o_mem_alloc_pool(&rq->req->pool, n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(*out, (const unsigned char *)p, (int)n) : 0;
    if (got < 0 || (size_t)got < pad)
        return -1;
    *len = (size_t)got - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    return 0;
}

/* thumbnail: a JPEG the client made for a video or a document (an image's
 * is made from the picture), base64 like media.base64; into o->thumb_hex
 * (the request's pool). 0, or -1 once answered 400. */
static int parse_thumbnail(struct rq *rq, yajl_val body, struct op *o)
{
    yajl_val v = json_member(body, "thumbnail");
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (strcmp(o->kind, "video") && strcmp(o->kind, "document")) {
        http_error(rq, 400, "invalid_thumbnail",
                   "thumbnail is for videos and documents (an image's is made from the picture)",
                   "thumbnail");
        return -1;
    }
    unsigned char *jpg;
    size_t n;
    if (decode_base64(rq, v, &jpg, &n) < 0 || n < 4 || n > THUMB_MAX || jpg[0] != 0xff || jpg[1] != 0xd8 ||
        jpg[2] != 0xff) {
        http_error(rq, 400, "invalid_thumbnail", "thumbnail must be a JPEG of at most 48 KiB in base64",
                   "thumbnail");
        return -1;
    }
    o->thumb_hex = h2o_mem_alloc_pool(&rq->req->pool, n * 2 + 1);
    hex_encode(o->thumb_hex, jpg, n, 0);
    return 0;
}

/* The file of media.base64 is stored: its id, then as for media {id}; a
 * refusal keeps its status and code and names media.base64. */
static void on_b64_stored(void *ctx, uint32_t status, const char *body, size_t len)
{
    struct op *o = ctx;
    struct rq *rq = o->b.rq;
    rq->state = o;
    char err[64];
    yajl_val v = json_parse(body, len, 65536, err, sizeof err);
    yajl_val id = v && status == 201 ? json_member(v, "id") : NULL;
    if (id && YAJL_IS_STRING(id) && strlen(id->u.string) < sizeof o->media_id) {
        snprintf(o->media_id, sizeof o->media_id, "%s", id->u.string);
        yajl_tree_free(v);
        send_media(o);
        return;
    }
    yajl_val e = v ? json_member(v, "error") : NULL;
    yajl_val code = e ? json_member(e, "code") : NULL, msg = e ? json_member(e, "message") : NULL;
    rq->on_abort = NULL;
    http_error(rq, status >= 400 && status < 600 ? (int)status : 503,
               code && YAJL_IS_STRING(code) ? code->u.string : "media_unavailable",
               msg && YAJL_IS_STRING(msg) ? msg->u.string : "the file could not be stored", "media.base64");
    yajl_tree_free(v);
}

/* kind, media {id}, file_name of a media message (o->kind stays "" for a
 * text); caption is read by the caller. 0, or -1 once answered 400. */
/* A string member of at most max characters: 1 with *out set, 0 when absent
 * or null, -1 when another type or too long. */
static int opt_str(yajl_val obj, const char *key, size_t max, const char **out)
{
    yajl_val v = json_member(obj, key);
    *out = NULL;
    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_STRING(v))
        return -1;
    long n = utf8_len(v->u.string, strlen(v->u.string));
    if (n < 1 || (size_t)n > max)
        return -1;
    *out = v->u.string;
    return 1;
}

static int coordinate(yajl_val obj, const char *key, double lim, double *out)
{
    yajl_val v = json_member(obj, key);
    if (!v || !YAJL_IS_NUMBER(v))
        return -1;
    *out = YAJL_GET_DOUBLE(v);
    return isfinite(*out) && *out >= -lim && *out <= lim ? 0 : -1;
}

static char *pool_copy(struct rq *rq, const struct sbuf *b)
{
    char *p = h2o_mem_alloc_pool(&rq->req->pool, b->len + 1);
    memcpy(p, b->buf ? b->buf : "", b->len);
    p[b->len] = '\0';
    return p;
}

static int parse_location(struct rq *rq, yajl_val body, struct op *o, struct jsonw *w)
{
    yajl_val l = json_member(body, "location");
    double lat, lon;
    const char *name, *address, *url;
    if (!l || !YAJL_IS_OBJECT(l)) {
        http_error(rq, 400, "invalid_location",
                   "a location message needs location: {latitude, longitude, name?, address?, url?}",
                   "location");
        return -1;
    }
    if (coordinate(l, "latitude", 90, &lat) < 0) {
        http_error(rq, 400, "invalid_location", "location.latitude must be a number from -90 to 90",
                   "location.latitude");
        return -1;
    }
    if (coordinate(l, "longitude", 180, &lon) < 0) {
        http_error(rq, 400, "invalid_location", "location.longitude must be a number from -180 to 180",
                   "location.longitude");
        return -1;
    }
    if (opt_str(l, "name", PLACE_NAME_MAX, &name) < 0) {
        http_error(rq, 400, "invalid_location", "location.name must be a string of 1 to 256 characters",
                   "location.name");
        return -1;
    }
    if (opt_str(l, "address", PLACE_ADDRESS_MAX, &address) < 0) {
        http_error(rq, 400, "invalid_location", "location.address must be a string of 1 to 512 characters",
                   "location.address");
        return -1;
    }
    if (opt_str(l, "url", PLACE_URL_MAX, &url) < 0 ||
        (url && strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)) {
        http_error(rq, 400, "invalid_location",
                   "location.url must be an http(s) URL of at most 2048 characters", "location.url");
        return -1;
    }
    (void)o;
    jw_obj(w);
    jw_key(w, "latitude");
    jw_double(w, "%.15g", lat);
    jw_key(w, "longitude");
    jw_double(w, "%.15g", lon);
    jw_kstr(w, "name", name);
    jw_kstr(w, "address", address);
    jw_kstr(w, "url", url);
    jw_knull(w, "comment");
    jw_kbool(w, "live", 0);
    jw_knull(w, "accuracy_m");
    jw_knull(w, "sequence");
    jw_obj_end(w);
    return 0;
}

/* The FN (formatted name) of a vCard, copied into out ("" when none). */
static void vcard_name(const char *vcard, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = vcard; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncasecmp(p, "FN", 2) != 0 || (p[2] != ':' && p[2] != ';'))
            continue;
        const char *c = strchr(p, ':'), *e = strpbrk(p, "\r\n");
        if (c && (!e || c < e)) {
            size_t n = e ? (size_t)(e - c - 1) : strlen(c + 1);
            snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), c + 1);
        }
        return;
    }
}

static int parse_contacts(struct rq *rq, yajl_val body, struct jsonw *w)
{
    yajl_val a = json_member(body, "contacts");
    size_t n = a && YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    if (n < 1 || n > CONTACTS_MAX) {
        http_error(rq, 400, "invalid_contacts",
                   "a contacts message needs contacts: a list of 1 to 64 {vcard, display_name?}", "contacts");
        return -1;
    }
    jw_arr(w);
    for (size_t i = 0; i < n; i++) {
        yajl_val c = a->u.array.values[i];
        char field[48];
        const char *vcard = YAJL_IS_OBJECT(c) ? json_str(c, "vcard") : NULL, *name = NULL;
        size_t vl = vcard ? strlen(vcard) : 0;
        const char *b = vcard;
        while (b && (*b == ' ' || *b == '\r' || *b == '\n' || *b == '\t'))
            b++;
        if (!vcard || vl > VCARD_MAX || utf8_len(vcard, vl) < 0 || strncasecmp(b, "BEGIN:VCARD", 11) != 0 ||
            !strcasestr(vcard, "END:VCARD")) {
            snprintf(field, sizeof field, "contacts[%zu].vcard", i);
            http_error(
                rq, 400, "invalid_contacts",
                "each contact needs vcard: vCard text (BEGIN:VCARD ... END:VCARD) of at most 16384 bytes",
                field);
            return -1;
        }
        if (opt_str(c, "display_name", CONTACT_NAME_MAX, &name) < 0) {
            snprintf(field, sizeof field, "contacts[%zu].display_name", i);
            http_error(rq, 400, "invalid_contacts", "display_name must be a string of 1 to 256 characters",
                       field);
            return -1;
        }
        char fn[CONTACT_NAME_MAX * 4 + 1];
        if (!name) {
            vcard_name(vcard, fn, sizeof fn);
            name = fn[0] ? fn : NULL;
        }
        jw_obj(w);
        jw_kstr(w, "display_name", name);
        jw_kstr(w, "vcard", vcard);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    return 0;
}

#define POLL_QUESTION_MAX 255
#define POLL_OPTION_MAX 100

/* poll: {question, options: 2 to 12 distinct names, multiple?}. Its secret
 * (32 random bytes) is made here, stored beside the message. */
static int parse_poll(struct rq *rq, yajl_val body, struct op *o, struct jsonw *w)
{
    yajl_val p = json_member(body, "poll");
    const char *q;
    if (!p || !YAJL_IS_OBJECT(p)) {
        http_error(rq, 400, "invalid_poll", "a poll message needs poll: {question, options, multiple?}",
                   "poll");
        return -1;
    }
    if (opt_str(p, "question", POLL_QUESTION_MAX, &q) < 1) {
        http_error(rq, 400, "invalid_poll", "poll.question must be a string of 1 to 255 characters",
                   "poll.question");
        return -1;
    }
    yajl_val a = json_member(p, "options"), m = json_member(p, "multiple");
    size_t n = a && YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    if (n < 2 || n > 12) {
        http_error(rq, 400, "invalid_poll", "poll.options must be a list of 2 to 12 option names",
                   "poll.options");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val x = a->u.array.values[i];
        long c = YAJL_IS_STRING(x) ? utf8_len(x->u.string, strlen(x->u.string)) : -1;
        int dup = 0;
        for (size_t j = 0; c > 0 && j < i; j++)
            dup |= !strcmp(a->u.array.values[j]->u.string, x->u.string);
        if (c < 1 || c > POLL_OPTION_MAX || dup) {
            char field[32];
            snprintf(field, sizeof field, "poll.options[%zu]", i);
            http_error(rq, 400, "invalid_poll",
                       dup ? "poll options must be distinct"
                           : "each poll option must be a string of 1 to 100 characters",
                       field);
            return -1;
        }
    }
    if (m && !YAJL_IS_NULL(m) && !YAJL_IS_TRUE(m) && !YAJL_IS_FALSE(m)) {
        http_error(rq, 400, "invalid_poll", "poll.multiple must be true or false", "poll.multiple");
        return -1;
    }
    unsigned char sec[32];
    if (getrandom(sec, sizeof sec, 0) != (ssize_t)sizeof sec) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        return -1;
    }
    hex_encode(o->secret_hex, sec, sizeof sec, 0);
    OPENSSL_cleanse(sec, sizeof sec);
    jw_obj(w);
    jw_kstr(w, "question", q);
    jw_key(w, "options");
    jw_arr(w);
    for (size_t i = 0; i < n; i++)
        jw_str(w, a->u.array.values[i]->u.string);
    jw_arr_end(w);
    jw_kbool(w, "multiple", m && YAJL_IS_TRUE(m));
    jw_obj_end(w);
    return 0;
}

/* kind location, contacts or poll: 1 with o->kind and o->content set, 0
 * for the other kinds, -1 when answered with an error. */
static int parse_structured(struct rq *rq, yajl_val body, struct op *o)
{
    const char *k = json_str(body, "kind");
    if (!k || (strcmp(k, "location") != 0 && strcmp(k, "contacts") != 0 && strcmp(k, "poll") != 0))
        return 0;
    static const char *const not_here[] = {"text", "caption", "media", "file_name", "thumbnail", "mentions"};
    for (size_t i = 0; i < sizeof not_here / sizeof *not_here; i++) {
        yajl_val x = json_member(body, not_here[i]);
        if (x && !YAJL_IS_NULL(x)) {
            http_error(rq, 400, "invalid_field",
                       "a location, contacts or poll message takes none of text, caption, "
                       "media, file_name, thumbnail, mentions",
                       not_here[i]);
            return -1;
        }
    }
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    int r = !strcmp(k, "location") ? parse_location(rq, body, o, &w)
            : !strcmp(k, "poll")   ? parse_poll(rq, body, o, &w)
                                   : parse_contacts(rq, body, &w);
    if (r < 0) {
        jw_fail(&w);
        jw_finish(&w);
        sbuf_free(&b);
        return -1;
    }
    if (jw_finish(&w) < 0) {
        sbuf_free(&b);
        http_error(rq, 500, NULL, "out of memory", NULL);
        return -1;
    }
    o->content = pool_copy(rq, &b);
    sbuf_free(&b);
    snprintf(o->kind, sizeof o->kind, "%s", k);
    return 1;
}

static int parse_kind_media(struct rq *rq, yajl_val body, struct op *o)
{
    yajl_val k = json_member(body, "kind"), m = json_member(body, "media");
    int has_kind = k && !YAJL_IS_NULL(k), has_media = m && !YAJL_IS_NULL(m);
    if (has_kind && YAJL_IS_STRING(k) && !strcmp(k->u.string, "text"))
        has_kind = 0;
    else if (has_kind) {
        if (!YAJL_IS_STRING(k) || !media_kind_ok(k->u.string)) {
            http_error(rq, 400, "invalid_kind",
                       "kind must be one of text, image, video, audio, voice, document, sticker, location, "
                       "contacts, "
                       "poll",
                       "kind");
            return -1;
        }
        snprintf(o->kind, sizeof o->kind, "%s", k->u.string);
    }
    if (!has_kind && !has_media) {
        static const char *const media_only[] = {"caption", "file_name", "thumbnail"};
        for (size_t i = 0; i < sizeof media_only / sizeof *media_only; i++) {
            yajl_val x = json_member(body, media_only[i]);
            if (x && !YAJL_IS_NULL(x)) {
                http_error(rq, 400, "invalid_field",
                           "caption, file_name and thumbnail go with a media message (kind, media)",
                           media_only[i]);
                return -1;
            }
        }
        return 0;
    }
    if (!has_kind) {
        http_error(rq, 400, "invalid_kind",
                   "a media message needs kind: image, video, audio, voice, document or sticker", "kind");
        return -1;
    }
    if (!has_media || !YAJL_IS_OBJECT(m)) {
        http_error(rq, 400, "invalid_media",
                   "media must be an object: {\"id\": \"m_...\"} of a file uploaded with POST /api/media",
                   "media");
        return -1;
    }
    yajl_val t = json_member(body, "text");
    if (t && !YAJL_IS_NULL(t)) {
        http_error(rq, 400, "invalid_text", "a media message takes caption, not text", "text");
        return -1;
    }
    yajl_val id = json_member(m, "id"), url = json_member(m, "url"), b64 = json_member(m, "base64");
    int sources = (id && !YAJL_IS_NULL(id)) + (url && !YAJL_IS_NULL(url)) + (b64 && !YAJL_IS_NULL(b64));
    if (sources != 1) {
        http_error(rq, 400, "invalid_media", "media must hold exactly one of id and url", "media");
        return -1;
    }
    if (b64 && !YAJL_IS_NULL(b64)) {
        if (decode_base64(rq, b64, &o->media_bytes, &o->media_len) < 0) {
            http_error(rq, 400, "invalid_media",
                       "media.base64 must be the file in base64 (standard alphabet, padded; a data: URL "
                       "prefix is allowed)",
                       "media.base64");
            return -1;
        }
        if (o->media_len == 0) {
            http_error(rq, 400, "empty_file", "the file is empty", "media.base64");
            return -1;
        }
    }
    if (o->media_bytes) {
        /* decoded above */
    } else if (url && !YAJL_IS_NULL(url)) {
        size_t ul = YAJL_IS_STRING(url) ? strlen(url->u.string) : 0;
        int ok = ul > 0 && ul <= MEDIA_URL_MAX &&
                 (!strncmp(url->u.string, "https://", 8) || !strncmp(url->u.string, "http://", 7));
        for (size_t i = 0; ok && i < ul; i++)
            ok = (unsigned char)url->u.string[i] > ' ' && url->u.string[i] != 0x7f;
        if (!ok) {
            http_error(rq, 400, "invalid_media",
                       "media.url must be an http:// or https:// URL of at most 2048 bytes", "media.url");
            return -1;
        }
        o->media_url = h2o_mem_alloc_pool(&rq->req->pool, ul + 1);
        memcpy(o->media_url, url->u.string, ul + 1);
    } else if (!YAJL_IS_STRING(id) || !http_id_ok(id->u.string, strlen(id->u.string), 64)) {
        http_error(rq, 400, "invalid_media",
                   "media.id must be the id of a file uploaded with POST /api/media", "media.id");
        return -1;
    }
    if (!o->media_url && !o->media_bytes)
        snprintf(o->media_id, sizeof o->media_id, "%s", id->u.string);
    yajl_val fn = json_member(body, "file_name");
    if (fn && !YAJL_IS_NULL(fn)) {
        if (strcmp(o->kind, "document") != 0) {
            http_error(rq, 400, "invalid_file_name", "file_name is for documents", "file_name");
            return -1;
        }
        if (!YAJL_IS_STRING(fn) || strlen(fn->u.string) > MP_KEPT_NAME_MAX ||
            multipart_file_name(fn->u.string, o->file_name) < 0 || !o->file_name[0]) {
            http_error(rq, 400, "invalid_file_name",
                       "file_name must be valid UTF-8 of at most 255 bytes without control characters",
                       "file_name");
            return -1;
        }
    }
    return parse_thumbnail(rq, body, o);
}

void h_messages_send(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    rq->on_abort = NULL;
    yajl_val v = json_member(body, "to");
    if (!v || !YAJL_IS_STRING(v) || parse_to(v->u.string, o->to, sizeof o->to) < 0) {
        http_error(rq, 400, "invalid_to",
                   "to must be a phone number in international form (e.g. +15551234567) or a JID "
                   "(user@s.whatsapp.net, user@lid, group@g.us)",
                   "to");
        goto out;
    }
    int structured = parse_structured(rq, body, o);
    if (structured < 0 || (!structured && parse_kind_media(rq, body, o) < 0))
        goto out;
    /* View once: what WhatsApp offers it for (a photo, a video, a voice note). */
    o->view_once = json_bool(body, "view_once");
    if (o->view_once == -2 || (o->view_once == 1 && strcmp(o->kind, "image") && strcmp(o->kind, "video") &&
                               strcmp(o->kind, "voice"))) {
        http_error(rq, 400, "invalid_view_once",
                   "view_once must be true or false, and true only for kind image, video or voice",
                   "view_once");
        goto out;
    }
    o->view_once = o->view_once == 1;
    v = structured ? NULL : json_member(body, o->kind[0] ? "caption" : "text");
    if (structured) {
        /* no text */
    } else if (o->kind[0] && (!v || YAJL_IS_NULL(v))) {
        v = NULL; /* no caption */
    } else {
        size_t max = o->kind[0] ? CAPTION_MAX_CHARS : TEXT_MAX_CHARS;
        long chars = v && YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
        if (chars < 1 || (size_t)chars > max) {
            if (o->kind[0])
                http_error(rq, 400, "invalid_caption",
                           "caption must be a non-empty string of at most 1024 characters", "caption");
            else
                http_error(rq, 400, "invalid_text",
                           "text must be a non-empty string of at most 4096 characters", "text");
            goto out;
        }
        if (o->kind[0] && !strcmp(o->kind, "sticker")) {
            http_error(rq, 400, "invalid_caption", "a sticker has no caption", "caption");
            goto out;
        }
        size_t tl = strlen(v->u.string);
        o->text = h2o_mem_alloc_pool(&rq->req->pool, tl + 1);
        memcpy(o->text, v->u.string, tl + 1);
    }
    v = json_member(body, "reply_to");
    if (v && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_STRING(v) || !rest_id_ok(v->u.string, strlen(v->u.string))) {
            http_error(rq, 400, "invalid_reply_to", "reply_to must be the id of a known message", "reply_to");
            goto out;
        }
        snprintf(o->reply_to, sizeof o->reply_to, "%s", v->u.string);
    }
    if (parse_mentions(rq, body, o) < 0)
        goto out;
    if (parse_idem(rq, body, o) < 0)
        goto out;
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    if (o->content) {
        send_content(o);
    } else if (o->media_bytes) {
        media_put(rq, o->media_bytes, o->media_len, o->kind, o->file_name, on_b64_stored, o);
    } else if (o->media_url) {
        fetch_media(o);
    } else if (o->kind[0]) {
        send_media(o);
    } else {
        send_enqueue(o);
    }
out:
    yajl_tree_free(body);
}

/* ---- GET /api/messages/{id} */

/* ---- POST /api/messages/{id}/read: a read receipt for the message and the
 * unread ones before it in its chat (at most IPC_ACT_MAX_IDS, newest first),
 * sent first, then marked read; the chat's unread count is recomputed. */

static const char SQL_READ_FIND[] =
    "SELECT m.chat_jid, m.from_me, u.id FROM wa_messages m LEFT JOIN LATERAL (SELECT x.id, x.seq "
    "  FROM wa_messages x WHERE x.chat_jid = m.chat_jid AND NOT x.from_me AND x.read_at IS NULL "
    "  AND x.type <> 'reaction' AND x.seq <= m.seq AND x.id ~ '^[A-Za-z0-9._:-]{1,63}$' "
    "  ORDER BY x.seq DESC LIMIT " STR(IPC_ACT_MAX_IDS) ") u ON true WHERE m.id = $1 ORDER BY u.seq DESC";

static const char SQL_READ_MARK[] =
    "WITH u AS (UPDATE wa_messages SET read_at = now(), updated_at = now() "
    "  WHERE id = ANY (string_to_array($1, E'\\n')) AND read_at IS NULL RETURNING id), "
    "c AS (UPDATE wa_chats SET updated_at = now(), unread_count = (SELECT count(*) FROM wa_messages x "
    "  WHERE x.chat_jid = $2 AND NOT x.from_me AND x.read_at IS NULL AND x.type <> 'reaction' "
    "  AND x.id NOT IN (SELECT id FROM u)) WHERE jid = $2 RETURNING unread_count) "
    "SELECT json_build_object('id', $3::text, 'chat_jid', $2::text, 'marked_read', (SELECT count(*) FROM u), "
    "  'unread_count', coalesce((SELECT unread_count FROM c), 0))::text";

static void on_read_marked(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    const char *json = PQgetvalue(res, 0, 0);
    http_json(o->b.rq, 200, json, strlen(json));
}

static void mark_read(struct op *o)
{
    o->params[1] = o->to;
    o->params[2] = o->params[0];
    o->params[0] = o->ids;
    op_run(o, SQL_READ_MARK, 3, o->params, on_read_marked);
}

static void on_read_sent(void *ctx, const struct ipc_msg *m)
{
    struct op *o = ctx;
    uint32_t status, blen;
    const uint8_t *body;
    if (sup_reply_read(m, &status, &body, &blen) < 0) {
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 503, "supervisor_unavailable", "the supervisor did not answer", NULL);
        return;
    }
    if (status != 200) {
        o->b.rq->on_abort = NULL;
        http_json(o->b.rq, (int)status, (const char *)body, blen);
        return;
    }
    mark_read(o);
}

static void on_read_found(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    o->b.q = NULL;
    if (!res) {
        o->b.rq->on_abort = NULL;
        rest_db_error(o->b.rq, err);
        return;
    }
    int rows = PQntuples(res);
    if (rows == 0 || PQgetvalue(res, 0, 1)[0] == 't') {
        o->b.rq->on_abort = NULL;
        if (rows == 0)
            http_error(o->b.rq, 404, "not_found", "no such message", NULL);
        else
            http_error(o->b.rq, 409, "own_message",
                       "this message was sent by us; only received messages can be read", NULL);
        return;
    }
    snprintf(o->to, sizeof o->to, "%s", PQgetvalue(res, 0, 0));
    struct sbuf ipc, ids;
    sbuf_init(&ipc);
    sbuf_init(&ids);
    uint32_t n = 0;
    for (int i = 0; i < rows; i++)
        if (!PQgetisnull(res, i, 2))
            n++;
    ipc_wr_u32(&ipc, IPC_ACT_READ);
    ipc_wr_bytes(&ipc, o->to, (uint32_t)strlen(o->to));
    ipc_wr_u32(&ipc, n);
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 2))
            continue;
        const char *id = PQgetvalue(res, i, 2);
        ipc_wr_bytes(&ipc, id, (uint32_t)strlen(id));
        if (ids.len)
            sbuf_addc(&ids, '\n');
        sbuf_adds(&ids, id);
    }
    o->ids = h2o_mem_alloc_pool(&o->b.rq->req->pool, ids.len + 1);
    memcpy(o->ids, ids.len ? ids.buf : "", ids.len);
    o->ids[ids.len] = '\0';
    if (ipc.oom || ids.oom) {
        o->b.rq->on_abort = NULL;
        http_error(o->b.rq, 500, NULL, "out of memory", NULL);
    } else if (n == 0) {
        mark_read(o); /* nothing unread: just the current counts */
    } else {
        op_ask(o, IPC_ACTION, ipc.buf, ipc.len, -1, ACTION_TIMEOUT_MS, on_read_sent);
    }
    sbuf_free(&ipc);
    sbuf_free(&ids);
}

/* The {id} of /api/messages/{id}[/read]; NULL after answering 404. */
static char *message_id(struct rq *rq)
{
    char *id = http_param(rq, 0);
    if (!id || !rest_id_ok(id, strlen(id))) {
        http_error(rq, 404, "not_found", "no message with this id", NULL);
        return NULL;
    }
    return id;
}

/* ---- POST /api/messages/{id}/reaction {emoji}: our reaction to a message
 * (any of the chat's, ours too), a message of its own through the outbox,
 * committed before 202; "" takes ours back. The same idempotency key gives
 * the first one (200). */

#define EMOJI_MAX_CHARS 16 /* one emoji may be several code points (skin tones, joiners, flags) */

static const char SQL_REACT[] =
    "WITH t AS (SELECT id, chat_jid FROM wa_messages WHERE id = $2 AND type <> 'reaction' AND revoked_at IS "
    "NULL), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, reaction_to, reaction, status, ts, "
    "idempotency_key) "
    "  SELECT $1, t.chat_jid, true, 'reaction', t.id, $3, 'queued', now(), $4 FROM t "
    "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, chat_jid), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' "
    "  WHEN $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM wa_messages o WHERE o.idempotency_key = $4) THEN "
    "'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM t) THEN 'not_found' ELSE 'retry' END, "
    "  (SELECT o.id FROM wa_messages o WHERE o.idempotency_key = $4)";

/* A statement's verdict k ("new", "old", or a refusal): a refusal in t is
 * answered with its error; else the stored message (ours, new: 202, the
 * outbox woken; an earlier request's with the same key, old_id: 200). */
struct refusal {
    const char *k;
    int status;
    const char *code, *msg;
};

static void answer_verdict(struct op *o, const char *k, const char *old_id, const struct refusal *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, t[i].k)) {
            http_error(o->b.rq, t[i].status, t[i].code, t[i].msg, NULL);
            return;
        }
    int fresh = !strcmp(k, "new");
    if (fresh)
        sup_notify(IPC_OUTBOX_KICK, NULL, 0);
    o->answer_status = fresh ? 202 : 200;
    const char *id = fresh ? o->id : old_id;
    op_run(o, SQL_ONE, 1, &id, on_one);
}

#define RETRY_REFUSAL                                                                                        \
    {                                                                                                        \
        "retry", 409, "conflict", "a request with the same idempotency key is being stored; try again"       \
    }

static void on_reacted(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    static const struct refusal refusals[] = {
        {"not_found", 404, "not_found", "no message with this id to react to"}, RETRY_REFUSAL};
    answer_verdict(o, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "retry",
                   PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : NULL, refusals,
                   sizeof refusals / sizeof *refusals);
}

void h_message_react(struct rq *rq)
{
    char *target = message_id(rq);
    if (!target)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    yajl_val v = json_member(body, "emoji");
    long chars = v && YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
    if (chars < 0 || chars > EMOJI_MAX_CHARS) {
        http_error(rq, 400, "invalid_emoji", "emoji must be a string: one emoji, or \"\" to take ours back",
                   "emoji");
        goto out;
    }
    size_t el = strlen(v->u.string);
    o->text = h2o_mem_alloc_pool(&rq->req->pool, el + 1);
    memcpy(o->text, v->u.string, el + 1);
    if (parse_idem(rq, body, o) < 0)
        goto out;
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    const char *p[] = {o->id, target, o->text, o->idem[0] ? o->idem : NULL};
    op_run(o, SQL_REACT, 4, p, on_reacted);
out:
    yajl_tree_free(body);
}

/* ---- PATCH /api/messages/{id} {text} and DELETE /api/messages/{id}: our
 * edit of our text message, and a deletion for everyone. Each is a message
 * of its own (type edit / revoke, reaction_to the message) through the
 * outbox, committed before 202; the message itself changes once WhatsApp
 * has taken it (message.edited / message.revoked then). These rows are not
 * listed in chats. */

#define EDIT_WINDOW_S (20 * 60) /* WhatsApp's clients offer an edit for 20 minutes */

static const char SQL_EDIT[] =
    "WITH t AS (SELECT * FROM wa_messages WHERE id = $2), "
    "ok AS (SELECT t.* FROM t WHERE t.from_me AND t.type = 'text' AND t.revoked_at IS NULL "
    "  AND t.status IN ('sent', 'delivered', 'read') AND t.ts > now() - make_interval(secs => " STR(
        EDIT_WINDOW_S) ")), "
                       "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, text, reaction_to, "
                       "status, ts) "
                       "  SELECT $1, ok.chat_jid, true, 'edit', $3, ok.id, 'queued', now() FROM ok RETURNING "
                       "id, "
                       "chat_jid), "
                       "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins) "
                       "SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' WHEN NOT EXISTS (SELECT 1 "
                       "FROM t) THEN "
                       "'not_found' "
                       "  WHEN NOT (SELECT from_me FROM t) THEN 'not_own' WHEN (SELECT type FROM t) <> "
                       "'text' THEN "
                       "'not_text' "
                       "  WHEN (SELECT revoked_at FROM t) IS NOT NULL THEN 'revoked' "
                       "  WHEN (SELECT status FROM t) NOT IN ('sent', 'delivered', 'read') THEN 'not_sent' "
                       "ELSE 'window' END";

static const char SQL_REVOKE[] =
    "WITH t AS (SELECT * FROM wa_messages WHERE id = $2), "
    "ok AS (SELECT t.* FROM t WHERE (t.from_me OR t.chat_jid LIKE '%@g.us') AND t.revoked_at IS NULL "
    "  AND t.type NOT IN ('edit', 'revoke', 'vote', 'disappearing') AND (NOT t.from_me OR t.status IN "
    "('sent', "
    "'delivered', 'read')) "
    "  AND NOT EXISTS (SELECT 1 FROM wa_messages r JOIN wa_outbox o ON o.message_id = r.id "
    "    WHERE r.reaction_to = t.id AND r.type = 'revoke' AND o.state IN ('pending', 'inflight'))), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, reaction_to, status, ts) "
    "  SELECT $1, ok.chat_jid, true, 'revoke', ok.id, 'queued', now() FROM ok RETURNING id, chat_jid), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' WHEN NOT EXISTS (SELECT 1 FROM t) THEN "
    "'not_found' "
    "  WHEN (SELECT type FROM t) IN ('edit', 'revoke', 'vote', 'disappearing') THEN 'not_found' "
    "  WHEN (SELECT revoked_at FROM t) IS NOT NULL THEN 'revoked' "
    "  WHEN NOT (SELECT from_me FROM t) THEN 'not_own' "
    "  WHEN (SELECT status FROM t) NOT IN ('sent', 'delivered', 'read') THEN 'not_sent' ELSE 'pending' END";

static void on_changed(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    static const struct refusal refusals[] = {
        {"not_found", 404, "not_found", "no message with this id"},
        {"not_own", 409, "not_own",
         "only our own messages (and, as a group admin, a member's) can be changed"},
        {"not_text", 409, "not_editable", "only text messages can be edited"},
        {"revoked", 409, "revoked", "the message was deleted"},
        {"not_sent", 409, "not_sent", "the message has not been sent yet"},
        {"window", 409, "edit_window_passed", "WhatsApp allows an edit for 20 minutes after sending"},
        {"pending", 409, "pending", "a deletion of this message is already queued"},
    };
    answer_verdict(o, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "not_found", NULL, refusals,
                   sizeof refusals / sizeof *refusals);
}

void h_message_edit(struct rq *rq)
{
    char *target = message_id(rq);
    if (!target)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    yajl_val v = json_member(body, "text");
    long chars = v && YAJL_IS_STRING(v) ? utf8_len(v->u.string, strlen(v->u.string)) : -1;
    if (chars < 1 || chars > TEXT_MAX_CHARS) {
        http_error(rq, 400, "invalid_text", "text must be a non-empty string of at most 4096 characters",
                   "text");
    } else if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
    } else {
        const char *p[] = {o->id, target, v->u.string};
        op_run(o, SQL_EDIT, 3, p, on_changed); /* params are copied */
    }
    yajl_tree_free(body);
}

void h_message_delete(struct rq *rq)
{
    char *target = message_id(rq);
    if (!target)
        return;
    struct op *o = op_new(rq);
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        return;
    }
    const char *p[] = {o->id, target};
    op_run(o, SQL_REVOKE, 2, p, on_changed);
}

/* ---- POST /api/messages/{id}/forward {to, idempotency_key?}: a copy of a
 * message (text, a stored file with its caption, a place, contact cards)
 * to another chat, marked forwarded, through the outbox. A file is sent
 * from the media store (its upload is reused while WhatsApp still has it). */

#define FORWARDABLE                                                                                          \
    "'text', 'image', 'video', 'audio', 'voice', 'document', 'sticker', 'location', 'contacts'"

static const char SQL_FORWARD[] =
    "WITH s AS (SELECT * FROM wa_messages WHERE id = $2), "
    "sm AS (SELECT a.*, f.state AS fstate FROM wa_message_media a JOIN s ON s.id = a.message_id "
    "  LEFT JOIN wa_media f ON f.id = a.media_id), "
    "ok AS (SELECT s.* FROM s WHERE s.revoked_at IS NULL AND s.type IN (" FORWARDABLE ") "
    "  AND (s.type IN ('text', 'location', 'contacts') OR EXISTS (SELECT 1 FROM sm WHERE sm.media_id IS NOT "
    "NULL "
    "  AND sm.fstate = 'stored'))), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, text, content, forwarded, status, ts, "
    "idempotency_key) "
    "  SELECT $1, $3, true, ok.type, ok.text, ok.content, true, 'queued', now(), $4 FROM ok "
    "  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, chat_jid, ts), "
    "mm AS (INSERT INTO wa_message_media (message_id, kind, media_id, state, mimetype, file_name, thumbnail) "
    "  SELECT ins.id, sm.kind, sm.media_id, 'stored', sm.mimetype, sm.file_name, sm.thumbnail FROM ins "
    "  CROSS JOIN sm WHERE sm.media_id IS NOT NULL), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins), "
    "ch AS (INSERT INTO wa_chats (jid, last_message_id, last_message_at) SELECT chat_jid, id, ts FROM ins "
    "  ON CONFLICT (jid) DO NOTHING) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' "
    "  WHEN $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM wa_messages o WHERE o.idempotency_key = $4) THEN "
    "'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM s) THEN 'not_found' WHEN (SELECT revoked_at FROM s) IS NOT NULL THEN "
    "'revoked' "
    "  WHEN (SELECT type FROM s) NOT IN (" FORWARDABLE ") THEN 'not_forwardable' "
    "  WHEN NOT EXISTS (SELECT 1 FROM ok) THEN 'media_not_stored' ELSE 'retry' END, "
    "  (SELECT o.id FROM wa_messages o WHERE o.idempotency_key = $4)";

static void on_forwarded(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    static const struct refusal refusals[] = {
        {"not_found", 404, "not_found", "no message with this id"},
        {"revoked", 409, "revoked", "the message was deleted"},
        {"not_forwardable", 409, "not_forwardable",
         "only texts, media, locations and contact cards can be forwarded"},
        {"media_not_stored", 409, "media_not_stored",
         "the message's file is not in the media store yet (POST /api/messages/{id}/media/download)"},
        RETRY_REFUSAL,
    };
    answer_verdict(o, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "retry",
                   PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : NULL, refusals,
                   sizeof refusals / sizeof *refusals);
}

void h_message_forward(struct rq *rq)
{
    char *source = message_id(rq);
    if (!source)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    yajl_val v = json_member(body, "to");
    if (!v || !YAJL_IS_STRING(v) || parse_to(v->u.string, o->to, sizeof o->to) < 0) {
        http_error(rq, 400, "invalid_to",
                   "to must be a phone number in international form (e.g. +15551234567) or a JID "
                   "(user@s.whatsapp.net, user@lid, group@g.us)",
                   "to");
        goto out;
    }
    if (parse_idem(rq, body, o) < 0)
        goto out;
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    const char *p[] = {o->id, source, o->to, o->idem[0] ? o->idem : NULL};
    op_run(o, SQL_FORWARD, 4, p, on_forwarded);
out:
    yajl_tree_free(body);
}

/* ---- GET /api/contacts, /api/contacts/{jid}, /api/lids/{lid},
 * /api/lids/pn/{phone}: the people wapi has heard from, and the phone
 * number behind a LID (and back) where WhatsApp has told it. */

#define CONTACT_JSON(c)                                                                                      \
    "json_build_object('jid', " c ".jid, 'phone', CASE WHEN " c ".jid LIKE '%@s.whatsapp.net' THEN '+' || "  \
    "split_part(" c ".jid, '@', 1) END, 'lid', " c ".lid, 'push_name', " c ".push_name, 'saved_name', " c    \
    ".saved_name, 'name', coalesce(" c ".saved_name, " c                                                     \
    ".push_name), 'updated_at', " REST_TS(c ".updated_at") ")::text"

static void on_list(void *ctx, const PGresult *res, const char *err);

static const char SQL_CONTACTS[] =
    "SELECT " CONTACT_JSON("c") ", 0, c.jid FROM wa_contacts c WHERE ($1::text IS NULL OR c.jid > $1) "
                                "AND ($3::text IS NULL OR strpos(lower(c.jid || ' ' || coalesce(c.lid, '') "
                                "|| ' ' || coalesce(c.push_name, "
                                "'')), lower($3)) > 0) ORDER BY c.jid LIMIT $2";
static const char SQL_CONTACT[] =
    "SELECT " CONTACT_JSON("c") " FROM wa_contacts c WHERE c.jid = $1 OR c.lid = $1";
static const char SQL_LID[] =
    "SELECT json_build_object('lid', lid, 'pn', jid)::text FROM wa_contacts "
    "WHERE (lid = $1 OR jid = $1) AND lid IS NOT NULL AND jid LIKE '%@s.whatsapp.net'";

void h_contacts_list(struct rq *rq)
{
    int limit = rest_limit(rq, LIST_DEFAULT, LIST_MAX);
    if (limit < 0)
        return;
    int64_t cur = 0;
    char jid[160], q[129];
    int has = rest_cursor(rq, &cur, jid, sizeof jid);
    if (has < 0)
        return;
    int ql = rest_query(rq, "q", q, sizeof q);
    if (ql == -2 || ql == 0) {
        http_error(rq, 400, "invalid_q", "q must be 1 to 128 characters (part of a number, LID or name)",
                   "q");
        return;
    }
    struct op *o = op_new(rq);
    o->limit = limit;
    char *p0 = h2o_mem_alloc_pool(&rq->req->pool, sizeof jid), *p1 = h2o_mem_alloc_pool(&rq->req->pool, 16),
         *p2 = h2o_mem_alloc_pool(&rq->req->pool, sizeof q);
    snprintf(p0, sizeof jid, "%s", jid);
    snprintf(p1, 16, "%d", limit + 1);
    snprintf(p2, sizeof q, "%s", q);
    o->params[0] = has ? p0 : NULL;
    o->params[1] = p1;
    o->params[2] = ql > 0 ? p2 : NULL;
    op_run(o, SQL_CONTACTS, 3, o->params, on_list);
}

/* {jid} of a person: a phone number or a JID (user@s.whatsapp.net, user@lid). */
static char *person_param(struct rq *rq, int lid_only)
{
    char *s = http_param(rq, 0);
    char jid[160];
    if (!s || parse_to(s, jid, sizeof jid) < 0 || strstr(jid, "@g.us") ||
        (lid_only && !strstr(jid, "@lid"))) {
        http_error(rq, 404, "not_found", lid_only ? "no such LID (want digits@lid)" : "no such contact",
                   NULL);
        return NULL;
    }
    char *out = h2o_mem_alloc_pool(&rq->req->pool, strlen(jid) + 1);
    memcpy(out, jid, strlen(jid) + 1);
    return out;
}

static void person_lookup(struct rq *rq, const char *sql, int lid_only, int lids)
{
    char *jid = person_param(rq, lid_only);
    if (!jid)
        return;
    if (lids && !lid_only && !strstr(jid, "@s.whatsapp.net")) {
        http_error(rq, 404, "not_found", "no such phone number", NULL);
        return;
    }
    struct op *o = op_new(rq);
    o->missing =
        lids ? "WhatsApp has not told us this number's LID (or the LID's number)" : "no such contact";
    o->params[0] = jid;
    op_run(o, sql, 1, o->params, on_one);
}

/* POST /api/contacts/{jid}/presence/subscribe: presence.update events for
 * this person from now on (WhatsApp answers at once, then on each change). */
void h_contact_subscribe(struct rq *rq)
{
    char *jid = person_param(rq, 0);
    if (!jid)
        return;
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_SUBSCRIBE);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    if (b.oom)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        sup_ask_json(rq, IPC_ACTION, b.buf, b.len, ACTION_TIMEOUT_MS);
    sbuf_free(&b);
}

void h_contact_get(struct rq *rq)
{
    person_lookup(rq, SQL_CONTACT, 0, 0);
}

void h_lid_get(struct rq *rq)
{
    person_lookup(rq, SQL_LID, 1, 1);
}

void h_lid_by_pn(struct rq *rq)
{
    person_lookup(rq, SQL_LID, 0, 1);
}

void h_message_get(struct rq *rq)
{
    char *id = message_id(rq);
    if (!id)
        return;
    struct op *o = op_new(rq);
    o->params[0] = id;
    op_run(o, SQL_ONE, 1, o->params, on_one);
}

/* ---- GET /api/messages/{id}/receipts: who got and read a message we
 * sent (per recipient: a group's members each, a person in a 1:1 chat). */

static const char SQL_RECEIPTS[] =
    "SELECT json_build_object('message_id', m.id, 'chat_jid', m.chat_jid, 'status', m.status, 'receipts', "
    "coalesce((SELECT json_agg(json_build_object('recipient', r.recipient, "
    "'delivered_at', " REST_TS("r.delivered_at") ", 'read_at', " REST_TS(
        "r.read_at") ", "
                     "'played_at', " REST_TS("r.played_at") ") ORDER BY r.recipient) "
                                                            "FROM wa_message_receipts r WHERE r.message_id = "
                                                            "m.id), '[]'::json))::text "
                                                            "FROM wa_messages m WHERE m.id = $1";

void h_message_receipts(struct rq *rq)
{
    char *id = message_id(rq);
    if (!id)
        return;
    struct op *o = op_new(rq);
    o->params[0] = id;
    op_run(o, SQL_RECEIPTS, 1, o->params, on_one);
}

/* ---- POST /api/messages/{id}/vote {options}: our vote on a poll (ours or
 * received), a message of its own (type vote, reaction_to the poll, content
 * {options}) through the outbox, committed before 202; it counts in the
 * tally once WhatsApp has it. [] withdraws ours. The same idempotency key
 * gives the first one (200). */

static const char SQL_VOTE[] =
    "WITH t AS (SELECT id, chat_jid, content FROM wa_messages WHERE id = $2 AND type = 'poll' "
    "  AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM wa_poll_secrets s WHERE s.message_id = $2)), "
    "ok AS (SELECT 1 FROM t WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text($3::jsonb) AS c(name) "
    "  WHERE NOT (t.content->'options') ? c.name) "
    "  AND (coalesce((t.content->>'multiple')::boolean, false) OR jsonb_array_length($3::jsonb) <= 1)), "
    "ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, reaction_to, content, status, ts, "
    "idempotency_key) "
    "  SELECT $1, t.chat_jid, true, 'vote', t.id, jsonb_build_object('options', $3::jsonb), 'queued', now(), "
    "$4 "
    "  FROM t, ok ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, chat_jid), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'new' "
    "  WHEN $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM wa_messages o WHERE o.idempotency_key = $4) THEN "
    "'old' "
    "  WHEN NOT EXISTS (SELECT 1 FROM t) THEN 'not_found' WHEN NOT EXISTS (SELECT 1 FROM ok) THEN "
    "'bad_options' ELSE 'retry' END, "
    "  (SELECT o.id FROM wa_messages o WHERE o.idempotency_key = $4)";

static void on_voted(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    if (PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "bad_options")) {
        http_error(o->b.rq, 400, "invalid_options",
                   "options must name options of the poll (at most one for a single-choice poll)", "options");
        return;
    }
    static const struct refusal refusals[] = {
        {"not_found", 404, "not_found", "no poll with this id to vote on"}, RETRY_REFUSAL};
    answer_verdict(o, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "retry",
                   PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : NULL, refusals,
                   sizeof refusals / sizeof *refusals);
}

void h_message_vote(struct rq *rq)
{
    char *poll = message_id(rq);
    if (!poll)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    struct op *o = op_new(rq);
    yajl_val a = json_member(body, "options");
    size_t n = a && YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    if (!a || !YAJL_IS_ARRAY(a) || n > 12) {
        http_error(rq, 400, "invalid_options",
                   "options must be a list of 0 to 12 option names ([] withdraws ours)", "options");
        goto out;
    }
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_arr(&w);
    for (size_t i = 0; i < n; i++) {
        yajl_val x = a->u.array.values[i];
        long c = YAJL_IS_STRING(x) ? utf8_len(x->u.string, strlen(x->u.string)) : -1;
        int dup = 0;
        for (size_t j = 0; c > 0 && j < i; j++)
            dup |= !strcmp(a->u.array.values[j]->u.string, x->u.string);
        if (c < 1 || c > POLL_OPTION_MAX || dup) {
            char field[32];
            snprintf(field, sizeof field, "options[%zu]", i);
            http_error(rq, 400, "invalid_options",
                       dup ? "options must be distinct" : "each option must be a name of 1 to 100 characters",
                       field);
            jw_fail(&w);
            jw_finish(&w);
            sbuf_free(&b);
            goto out;
        }
        jw_str(&w, x->u.string);
    }
    jw_arr_end(&w);
    if (jw_finish(&w) < 0) {
        sbuf_free(&b);
        http_error(rq, 500, NULL, "out of memory", NULL);
        goto out;
    }
    o->content = pool_copy(rq, &b);
    sbuf_free(&b);
    if (parse_idem(rq, body, o) < 0)
        goto out;
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        goto out;
    }
    const char *p[] = {o->id, poll, o->content, o->idem[0] ? o->idem : NULL};
    op_run(o, SQL_VOTE, 4, p, on_voted);
out:
    yajl_tree_free(body);
}

/* ---- GET /api/messages/{id}/poll: a poll's tally (wapi_poll_json,
 * common/sql/0030_polls.sql); 404 when the id is no poll. */

static const char SQL_POLL[] =
    "SELECT wapi_poll_json(m)::text FROM wa_messages m WHERE m.id = $1 AND m.type = 'poll'";

void h_message_poll(struct rq *rq)
{
    char *id = message_id(rq);
    if (!id)
        return;
    struct op *o = op_new(rq);
    o->params[0] = id;
    o->missing = "no poll with this id";
    op_run(o, SQL_POLL, 1, o->params, on_one);
}

void h_message_read(struct rq *rq)
{
    char *id = message_id(rq);
    if (!id)
        return;
    struct op *o = op_new(rq);
    o->params[0] = id;
    op_run(o, SQL_READ_FIND, 1, o->params, on_read_found);
}

/* ---- POST /api/messages/{id}/media/download: a received attachment that
 * was not downloaded (skipped by media.auto_download, failed, expired) goes
 * back to the download queue. 202 with the message (media.state pending),
 * 200 when it is stored already. */

static const char SQL_DOWNLOAD[] = "SELECT before, message FROM wapi_media_download_request($1)";

static void on_download(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct rq *rq = o->b.rq;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
        http_error(rq, 404, "not_found", "no received media message with this id", NULL);
        return;
    }
    const char *before = PQgetvalue(res, 0, 0), *json = PQgetvalue(res, 0, 1);
    if (!strcmp(before, "too_large")) {
        http_error(rq, 413, "too_large",
                   "the file is larger than media.max_download_bytes; raise the limit to download it", NULL);
        return;
    }
    if (strcmp(before, "stored") && strcmp(before, "pending"))
        sup_notify(IPC_DOWNLOAD_KICK, NULL, 0);
    http_json(rq, strcmp(before, "stored") ? 202 : 200, json, strlen(json));
}

void h_message_media_download(struct rq *rq)
{
    char *id = message_id(rq);
    if (!id)
        return;
    struct op *o = op_new(rq);
    o->params[0] = id;
    op_run(o, SQL_DOWNLOAD, 1, o->params, on_download);
}

/* ---- GET /api/chats */

static void on_list(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    /* columns: json, cursor number, cursor text (NULL when none) */
    rest_answer_page(o->b.rq, res, 0, o->limit, 0, 1, 2);
}

/* Newest activity first; the cursor is (last message seq, jid). */
/* status@broadcast (status updates) only when asked: include=status. */
/* A chat as the API shows it: c its wa_chats row, lm its last message; a
 * person's chat without a name of its own takes the contact's push name. */
#define CHAT_TS_UPDATED REST_TS("c.updated_at")
#define CHAT_TS_LAST REST_TS("coalesce(lm.ts, c.last_message_at)")
#define CHAT_TS_EPH REST_TS("c.ephemeral_set_at")
/* The name and the synced state (archived, pinned, muted, ...) come from
 * common/sql/defs/wapi_appstate_apply.sql, as in chat.updated. */
#define CHAT_JSON                                                                                            \
    "(jsonb_build_object('jid', c.jid, 'name', wapi_chat_name(c), 'unread_count', c.unread_count, "          \
    "  'last_message_at', " CHAT_TS_LAST ", "                                                                \
    "  'updated_at', " CHAT_TS_UPDATED ", 'ephemeral_seconds', c.ephemeral_seconds, "                        \
    "  'ephemeral_set_at', " CHAT_TS_EPH                                                                     \
    ", 'ephemeral_set_by', c.ephemeral_set_by, 'last_message', lm.j) || wapi_chat_state(c))::text"
#define CHAT_LAST_MESSAGE                                                                                    \
    "LEFT JOIN LATERAL (SELECT m.seq, m.ts, wapi_message_json(m) AS j FROM wa_messages m "                   \
    "  WHERE m.chat_jid = c.jid AND m.type NOT IN ('edit', 'revoke', 'vote', 'disappearing') ORDER BY "      \
    "m.seq DESC "                                                                                            \
    "  LIMIT 1) lm ON true "

static const char SQL_CHATS[] =
    "SELECT " CHAT_JSON ", coalesce(lm.seq, 0), c.jid FROM wa_chats c " CHAT_LAST_MESSAGE
    "WHERE ($1::bigint IS NULL OR (coalesce(lm.seq, 0), c.jid) < ($1::bigint, $2::text)) "
    "  AND ($4::boolean OR c.jid <> 'status@broadcast') "
    "ORDER BY coalesce(lm.seq, 0) DESC, c.jid DESC LIMIT $3";

static const char SQL_CHAT[] = "SELECT " CHAT_JSON " FROM wa_chats c " CHAT_LAST_MESSAGE "WHERE c.jid = $1";

void h_chats_list(struct rq *rq)
{
    int limit = rest_limit(rq, LIST_DEFAULT, LIST_MAX);
    if (limit < 0)
        return;
    int64_t cur = 0;
    char jid[160];
    int has = rest_cursor(rq, &cur, jid, sizeof jid);
    if (has < 0)
        return;
    char inc[32];
    int il = rest_query(rq, "include", inc, sizeof inc);
    if (il == -2 || (il >= 0 && strcmp(inc, "status") != 0)) {
        http_error(rq, 400, "invalid_include", "include must be \"status\" (the chat of status updates)",
                   "include");
        return;
    }
    int status = il >= 0;
    struct op *o = op_new(rq);
    o->limit = limit;
    char *p0 = h2o_mem_alloc_pool(&rq->req->pool, 24), *p1 = h2o_mem_alloc_pool(&rq->req->pool, sizeof jid),
         *p2 = h2o_mem_alloc_pool(&rq->req->pool, 16);
    snprintf(p0, 24, "%" PRId64, cur);
    snprintf(p1, sizeof jid, "%s", has ? jid : "");
    snprintf(p2, 16, "%d", limit + 1);
    o->params[0] = has ? p0 : NULL;
    o->params[1] = p1;
    o->params[2] = p2;
    o->params[3] = status ? "true" : "false";
    op_run(o, SQL_CHATS, 4, o->params, on_list);
}

/* ---- /api/chats/{jid}/messages, /api/chats/{jid}/presence */

/* Newest first; the cursor is the seq of the last one shown, so messages
 * arriving meanwhile never shift a page. */
static const char SQL_CHAT_MESSAGES[] = "SELECT " MSG_JSON(
    "m") ", m.seq, NULL FROM wa_messages m "
         "WHERE m.chat_jid = $1 AND ($2::bigint IS NULL OR m.seq < $2::bigint) "
         "AND m.type NOT IN ('edit', 'revoke', 'vote', 'disappearing') ORDER BY m.seq DESC LIMIT $3";

/* The {jid} of /api/chats/{jid}/...; NULL after answering 404. */
static char *chat_jid(struct rq *rq)
{
    char *jid = http_param(rq, 0);
    if (!jid || !rest_jid_ok(jid, strlen(jid))) {
        http_error(rq, 404, "not_found", "no chat with this JID", NULL);
        return NULL;
    }
    return jid;
}

void h_chat_messages(struct rq *rq)
{
    char *jid = chat_jid(rq);
    if (!jid)
        return;
    int limit;
    int64_t cur;
    int has = rest_page(rq, LIST_DEFAULT, LIST_MAX, &limit, &cur);
    if (has < 0)
        return;
    struct op *o = op_new(rq);
    o->limit = limit;
    char *p1 = h2o_mem_alloc_pool(&rq->req->pool, 24), *p2 = h2o_mem_alloc_pool(&rq->req->pool, 16);
    snprintf(p1, 24, "%" PRId64, cur);
    snprintf(p2, 16, "%d", limit + 1);
    o->params[0] = jid;
    o->params[1] = has ? p1 : NULL;
    o->params[2] = p2;
    op_run(o, SQL_CHAT_MESSAGES, 3, o->params, on_list);
}

void h_chat_presence(struct rq *rq)
{
    char *raw = chat_jid(rq);
    if (!raw)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    const char *st = json_str(body, "state");
    int ok = st && (!strcmp(st, "typing") || !strcmp(st, "paused"));
    int typing = ok && !strcmp(st, "typing");
    yajl_tree_free(body);
    if (!ok) {
        http_error(rq, 400, "invalid_state", "state must be \"typing\" or \"paused\"", "state");
        return;
    }
    char jid[160];
    if (parse_to(raw, jid, sizeof jid) < 0) {
        http_error(rq, 400, "invalid_jid", "the chat must be a person's or a group's JID, or a phone number",
                   "jid");
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_PRESENCE);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_bytes(&b, typing ? "typing" : "paused", 6);
    if (b.oom)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        sup_ask_json(rq, IPC_ACTION, b.buf, b.len, ACTION_TIMEOUT_MS);
    sbuf_free(&b);
}

/* ---- GET /api/chats/{jid}, PUT /api/chats/{jid}/disappearing */

void h_chat_get(struct rq *rq)
{
    char *raw = chat_jid(rq);
    if (!raw)
        return;
    struct op *o = op_new(rq);
    o->params[0] = raw;
    o->missing = "no chat with this JID";
    op_run(o, SQL_CHAT, 1, o->params, on_one);
}

/* Our change of a 1:1 chat's timer: a row (type disappearing) for the
 * outbox; the chat's timer changes once WhatsApp has taken it. */
static const char SQL_DISAPPEARING[] =
    "WITH ins AS (INSERT INTO wa_messages (id, chat_jid, from_me, type, status, ts, content) "
    "  VALUES ($1, $2, true, 'disappearing', 'queued', now(), jsonb_build_object('seconds', $3::int)) "
    "  RETURNING id, chat_jid), "
    "ob AS (INSERT INTO wa_outbox (message_id, to_jid) SELECT id, chat_jid FROM ins) "
    "SELECT 'new' FROM ins";

static void on_disappearing(void *ctx, const PGresult *res, const char *err)
{
    struct op *o = ctx;
    if (!op_done(o, res, err))
        return;
    answer_verdict(o, PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "not_found", NULL, NULL, 0);
}

/* PUT /api/chats/{jid}/disappearing {seconds}: WhatsApp's timers only. A
 * group's goes as PATCH /api/groups/{jid} {ephemeral_seconds} (answered
 * with the group), a person's as a message through the outbox (202). */
void h_chat_disappearing(struct rq *rq)
{
    char *raw = chat_jid(rq);
    if (!raw)
        return;
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    int64_t secs = -1;
    int hs = json_int(body, "seconds", &secs);
    yajl_tree_free(body);
    if (hs != 1 || (secs != 0 && secs != 86400 && secs != 604800 && secs != 7776000)) {
        http_error(rq, 400, "invalid_seconds",
                   "seconds must be 0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days)",
                   "seconds");
        return;
    }
    char jid[160];
    if (parse_to(raw, jid, sizeof jid) < 0 || strstr(jid, "@broadcast") || strstr(jid, "@newsletter")) {
        http_error(rq, 400, "invalid_jid", "the chat must be a person's or a group's JID, or a phone number",
                   "jid");
        return;
    }
    if (strstr(jid, "@g.us")) {
        group_set_timer(rq, jid, secs);
        return;
    }
    struct op *o = op_new(rq);
    if (new_message_id(o->id) < 0) {
        http_error(rq, 500, NULL, "no randomness available", NULL);
        return;
    }
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)secs);
    const char *p[] = {o->id, jid, n};
    op_run(o, SQL_DISAPPEARING, 3, p, on_disappearing); /* params are copied */
}

/* ---- POST /api/contacts/check */

void h_contacts_check(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    yajl_val v = json_member(body, "phones");
    int ok = v && YAJL_IS_ARRAY(v) && v->u.array.len >= 1 && v->u.array.len <= IPC_ACT_MAX_PHONES;
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_CONTACTS);
    ipc_wr_u32(&b, ok ? (uint32_t)v->u.array.len : 0);
    for (size_t i = 0; ok && i < v->u.array.len; i++) {
        yajl_val p = v->u.array.values[i];
        char jid[160];
        ok = YAJL_IS_STRING(p) && !strchr(p->u.string, '@') && parse_to(p->u.string, jid, sizeof jid) == 0;
        if (ok)
            ipc_wr_bytes(&b, jid, (uint32_t)(strchr(jid, '@') - jid));
    }
    yajl_tree_free(body);
    if (!ok)
        http_error(rq, 400, "invalid_phones",
                   "phones must be an array of 1 to 100 phone numbers in international form", "phones");
    else if (b.oom)
        http_error(rq, 500, NULL, "out of memory", NULL);
    else
        sup_ask_json(rq, IPC_ACTION, b.buf, b.len, CONTACTS_TIMEOUT_MS);
    sbuf_free(&b);
}
