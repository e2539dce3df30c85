#include "outbox.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "events.h"
#include "media_send.h"
#include "msg_content.h"
#include "sdb.h"
#include "send_pace.h"
#include "sup.h"
#include "wa/wa_actions.h"
#include "wa/wa_messaging.h"

#define POLL_S 2
#define MAX_ATTEMPTS 12
/* Rows claimed per query at most: fewer round trips while a burst drains. */
#define CLAIM_BATCH 8

/* A claimed row waiting its turn behind a media message being made ready:
 * stanzas go in claim (seq) order. */
struct held {
    struct held *next;
    char *id, *to, *text, *reply; /* owned */
    char *mentions;               /* owned: JIDs, newline-separated, or NULL */
    uint8_t *raw;                 /* owned: a location or contacts message, built at the claim */
    size_t raw_len;
    int media, attempts;
    int typed; /* "composing" was shown for it (sending.typing) */
    /* forwarded (POST /api/messages/{id}/forward), the chat's timer, view
     * once: see marked() */
    struct wa_msg_marks marks;
};

static struct {
    struct event *poll_timer;
    int claiming;  /* a claim query is out */
    int recovered; /* inflight rows of an earlier run put back */
    int kick;      /* woken while busy */
    struct held *head, *tail;
    struct held *preparing;   /* its attachment is being made ready (media_send) */
    struct event *pace_timer; /* armed while the head waits for its pace (send_pace) */
    struct wa_client *client; /* for "composing" */
} O;

static void dispatch(void);

/* ---- status changes ---- */

static void on_event_row(void *ctx, const PGresult *res, const char *err)
{
    const char *what = ctx;
    if (!res) {
        log_error("outbox update failed", LF_S("what", what), LF_S("error", err));
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, 0) && !PQgetisnull(res, i, 1)) {
            uint64_t id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
            events_publish(id, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        }
}

/* The rows of wa_messages a batch changes, locked in id order first: the
 * batches of acks and of receipts run on two connections at once and touch
 * the same messages, and two UPDATE ... FROM locking them in the join's
 * order deadlock (PostgreSQL then aborts one of them). */
#define LOCK_MESSAGES "SELECT w.id FROM wa_messages w JOIN x ON x.id = w.id ORDER BY w.id FOR UPDATE OF w"

/* Acks and receipts come in bursts: what arrives together is recorded in one
 * statement (one commit) per kind, from arrays of ids and event ids. A
 * delivery receipt may have committed first (it moves queued to delivered):
 * the status is not lowered, but message.sent is still recorded, once, when
 * the outbox row becomes done. updated_at never goes back: now() is the
 * transaction's start, and a statement that waited for the other's row lock
 * started earlier than the change it follows. */
static const char SQL_SENT[] =
    "WITH x AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) AS x(id, evid, voter)), "
    "l AS MATERIALIZED (" LOCK_MESSAGES "), "
    "o AS (UPDATE wa_outbox SET state = 'done', last_error = NULL FROM l WHERE message_id = l.id "
    "AND state <> 'done' RETURNING message_id), "
    "m AS (UPDATE wa_messages SET status = CASE WHEN status IN ('queued', 'failed') THEN 'sent' ELSE status "
    "END, error = NULL, updated_at = CASE WHEN status IN ('queued', 'failed') THEN greatest(updated_at, "
    "now()) "
    "ELSE updated_at END FROM o WHERE id = o.message_id "
    "RETURNING wa_messages.id, wa_messages.type, wa_messages.reaction_to, wa_messages.text, "
    "wa_messages.chat_jid, wa_messages.content, wapi_message_json(wa_messages, 'sent') AS j), "
    /* An edit or a deletion of ours takes effect on its message once the
     * server has it: the event is about that message. That message's row is
     * locked here, after the batch's (a deadlock with a receipt batch holding
     * it is retried). Locking it with the batch through
     * "w.id IN (SELECT ... UNION ALL ...)" lost rows under load: a row
     * whose lock waited for a receipt's update came back missing, and its
     * ack was never recorded (t_durability). */
    "tg AS (UPDATE wa_messages t SET text = CASE WHEN m.type = 'edit' THEN m.text ELSE t.text END, "
    "edited_at = CASE WHEN m.type = 'edit' THEN now() ELSE t.edited_at END, "
    "revoked_at = CASE WHEN m.type = 'revoke' THEN coalesce(t.revoked_at, now()) ELSE t.revoked_at END, "
    "updated_at = greatest(t.updated_at, now()) FROM m WHERE t.id = m.reaction_to AND m.type IN ('edit', "
    "'revoke') RETURNING m.id AS by_id, m.type AS by_type, wapi_message_json(t) AS j), "
    /* Our vote counts once the server has it, as our voter JID (x.voter:
     * our phone number's, as our phone's votes are counted); the event is
     * poll.vote, as for anyone's. */
    "vm AS (INSERT INTO wa_poll_vote_messages (id, poll_id) SELECT m.id, m.reaction_to FROM m "
    "WHERE m.type = 'vote' AND EXISTS (SELECT 1 FROM wa_messages p WHERE p.id = m.reaction_to) "
    "ON CONFLICT (id) DO NOTHING RETURNING id), "
    "pv AS (INSERT INTO wa_poll_votes AS v (poll_id, voter, vote_id, options, voted_at) "
    "SELECT m.reaction_to, x.voter, m.id, ARRAY(SELECT jsonb_array_elements_text(m.content->'options')), "
    "now() "
    "FROM m JOIN vm ON vm.id = m.id JOIN x ON x.id = m.id WHERE x.voter <> '' "
    "ON CONFLICT (poll_id, voter) DO UPDATE SET vote_id = EXCLUDED.vote_id, options = EXCLUDED.options, "
    "voted_at = EXCLUDED.voted_at, updated_at = now() WHERE v.voted_at <= EXCLUDED.voted_at "
    "RETURNING v.poll_id, v.voter, v.vote_id, v.voted_at), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT x.evid, 'message.sent', m.j::jsonb "
    "FROM m JOIN x ON x.id = m.id WHERE m.type NOT IN ('edit', 'revoke', 'vote', 'disappearing') "
    "UNION ALL SELECT x.evid, CASE tg.by_type WHEN 'edit' THEN 'message.edited' ELSE 'message.revoked' END, "
    "tg.j::jsonb FROM tg JOIN x ON x.id = tg.by_id "
    "UNION ALL SELECT x.evid, 'poll.vote', jsonb_build_object('message_id', pv.poll_id, 'chat_jid', "
    "m.chat_jid, "
    "'voter', pv.voter, 'options', coalesce(m.content->'options', '[]'::jsonb), 'vote_id', pv.vote_id, 'ts', "
    "to_char(pv.voted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) "
    "FROM pv JOIN m ON m.id = pv.vote_id JOIN x ON x.id = pv.vote_id RETURNING id, type, data::text), "
    /* Our change of a chat's timer takes effect once the server has it. */
    "d AS (SELECT x.evid AS id, 'chat.disappearing' AS type, wapi_chat_ephemeral(m.chat_jid, "
    "(m.content->>'seconds')::int, now(), NULL, x.evid) AS data FROM m JOIN x ON x.id = m.id "
    "WHERE m.type = 'disappearing') "
    "SELECT id, type, data FROM e UNION ALL SELECT id, type, data FROM d WHERE data IS NOT NULL ORDER BY id";

static const char SQL_FAILED[] =
    "WITH o AS (UPDATE wa_outbox SET state = 'failed', last_error = $3 WHERE message_id = $1 RETURNING 1), "
    "m AS (UPDATE wa_messages SET status = 'failed', error = $3, updated_at = now() "
    "WHERE id = $1 AND status IN ('queued') RETURNING wapi_message_json(wa_messages) AS j), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT $2::bigint, 'message.status', m.j::jsonb "
    "FROM m RETURNING id, type, data::text) SELECT id, type, data FROM e";

static const char SQL_RETRY[] =
    "UPDATE wa_outbox SET state = 'pending', last_error = $2, "
    "next_attempt_at = now() + make_interval(secs => least(300, power(2, attempts)::int)) "
    "WHERE message_id = $1 RETURNING attempts";

/* The connection went away with the message held: next connection, no
 * backoff, so it keeps its place (claims go in seq order). */
static const char SQL_REQUEUE[] =
    "UPDATE wa_outbox SET state = 'pending', last_error = $2, next_attempt_at = now() "
    "WHERE message_id = $1 RETURNING attempts";

/* One receipt per message in a batch (a message's second receipt waits for
 * the next batch: both make an event). Each is kept per recipient (the
 * first delivery, read and play of any of their devices); the message's
 * status moves on the first delivery and the first read. */
static const char SQL_RECEIPT[] =
    "WITH x AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS x(id, "
    "st, "
    "evid, chat, who)), "
    "l AS MATERIALIZED (" LOCK_MESSAGES "), "
    "r AS (INSERT INTO wa_message_receipts AS k (message_id, recipient, delivered_at, read_at, played_at) "
    "SELECT w.id, x.who, now(), CASE WHEN x.st IN ('read', 'played') THEN now() END, "
    "CASE WHEN x.st = 'played' THEN now() END FROM x JOIN l ON l.id = x.id JOIN wa_messages w ON w.id = x.id "
    "WHERE w.from_me AND w.chat_jid = x.chat AND x.who <> '' "
    "ON CONFLICT (message_id, recipient) DO UPDATE SET delivered_at = coalesce(k.delivered_at, "
    "EXCLUDED.delivered_at), read_at = coalesce(k.read_at, EXCLUDED.read_at), "
    "played_at = coalesce(k.played_at, EXCLUDED.played_at)), "
    "m AS (UPDATE wa_messages w SET status = CASE WHEN x.st = 'delivered' THEN 'delivered' ELSE 'read' END, "
    "updated_at = greatest(w.updated_at, now()) FROM x JOIN l ON l.id = x.id "
    "WHERE w.id = x.id AND w.from_me AND w.chat_jid = x.chat AND "
    "(CASE w.status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE "
    "9 "
    "END) < (CASE x.st WHEN 'delivered' THEN 2 ELSE 3 END) RETURNING wapi_message_json(w) AS j, x.evid), "
    "e AS (INSERT INTO wa_events (id, type, data) SELECT m.evid, 'message.status', m.j::jsonb "
    "FROM m RETURNING id, type, data::text) SELECT id, type, data FROM e ORDER BY id";

/* ---- the batches of sent acks and receipts, flushed from the loop */

#define BATCH_CAP 256

struct batch {
    int n, ncols;
    char *col[5][BATCH_CAP]; /* owned strings */
};

static struct {
    struct batch sent, receipts;
    struct event *flush;
} B = {.sent.ncols = 3, .receipts.ncols = 5};

static void batch_clear(struct batch *b)
{
    for (int c = 0; c < b->ncols; c++)
        for (int i = 0; i < b->n; i++)
            free(b->col[c][i]);
    b->n = 0;
}

/* A PostgreSQL array literal of column c: every element quoted and escaped. */
static void array_lit(struct sbuf *out, const struct batch *b, int c)
{
    sbuf_addc(out, '{');
    for (int i = 0; i < b->n; i++) {
        sbuf_adds(out, i ? ",\"" : "\"");
        for (const char *p = b->col[c][i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sbuf_addc(out, '\\');
            sbuf_addc(out, *p);
        }
        sbuf_addc(out, '"');
    }
    sbuf_addc(out, '}');
}

/* A batch's statement, kept until it commits: one that fails (a deadlock
 * with another writer, the database gone) runs again, with the same event
 * ids, after a pause. Dropping it would leave messages the server took
 * in flight with no message.sent, or receipts unrecorded, until a restart. */
struct batch_query {
    const char *sql, *what;
    int ncols;
    char *p[5]; /* owned array literals */
    unsigned delay_ms;
    struct event *timer;
};

static void batch_query_free(struct batch_query *q)
{
    for (int c = 0; c < q->ncols; c++)
        free(q->p[c]);
    if (q->timer)
        event_free(q->timer);
    free(q);
}

static void batch_query_run(struct batch_query *q);

static void on_batch_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    batch_query_run(arg);
}

static void on_batch_row(void *ctx, const PGresult *res, const char *err)
{
    struct batch_query *q = ctx;
    if (res) {
        on_event_row((void *)q->what, res, err);
        batch_query_free(q);
        return;
    }
    q->delay_ms = q->delay_ms ? (q->delay_ms >= 2500 ? 5000 : q->delay_ms * 2) : 50;
    log_warn("outbox update failed; trying again", LF_S("what", q->what), LF_S("error", err),
             LF_I("retry_ms", q->delay_ms));
    if (!q->timer)
        q->timer = evtimer_new(S.base, on_batch_again, q);
    struct timeval tv = {q->delay_ms / 1000, (q->delay_ms % 1000) * 1000};
    if (!q->timer || evtimer_add(q->timer, &tv) != 0) {
        log_error("outbox update lost", LF_S("what", q->what), LF_S("error", "out of memory"));
        batch_query_free(q);
    }
}

static void batch_query_run(struct batch_query *q)
{
    if (!sdb_query(q->sql, q->ncols, (const char *const *)q->p, on_batch_row, q))
        on_batch_row(q, NULL, "out of memory");
}

static void batch_send(struct batch *b, const char *sql, const char *what)
{
    if (b->n == 0)
        return;
    struct batch_query *q = calloc(1, sizeof *q);
    if (q) {
        q->sql = sql, q->what = what, q->ncols = b->ncols;
        for (int c = 0; c < b->ncols; c++) {
            struct sbuf a;
            sbuf_init(&a);
            array_lit(&a, b, c);
            q->p[c] = sbuf_steal(&a);
        }
        batch_query_run(q);
    } else {
        log_error("outbox update lost", LF_S("what", what), LF_S("error", "out of memory"));
    }
    batch_clear(b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    batch_send(&B.sent, SQL_SENT, "sent");
    batch_send(&B.receipts, SQL_RECEIPT, "receipt");
}

/* Adds a row; a full batch, or one that has this id already, goes first. */
static void batch_add(struct batch *b, const char *sql, const char *what, const char *const *v)
{
    int seen = 0;
    for (int i = 0; i < b->n && !seen; i++)
        seen = !strcmp(b->col[0][i], v[0]);
    if (seen || b->n == BATCH_CAP)
        batch_send(b, sql, what);
    for (int c = 0; c < b->ncols; c++)
        b->col[c][b->n] = strdup(v[c] ? v[c] : "");
    b->n++;
    /* Everything the loop reads in this pass joins the batch. */
    struct timeval zero = {0, 0};
    if (!evtimer_pending(B.flush, NULL))
        evtimer_add(B.flush, &zero);
}

static void on_retry_row(void *ctx, const PGresult *res, const char *err)
{
    char *id = ctx;
    if (!res)
        log_error("outbox retry update failed", LF_S("id", id), LF_S("error", err));
    free(id);
    struct timeval tv = {0, 0};
    evtimer_add(O.poll_timer, &tv);
}

static void on_sent(void *arg, const char *id, enum wa_send_result r, const char *err)
{
    (void)arg;
    char evid[24];
    snprintf(evid, sizeof evid, "%llu", (unsigned long long)events_next_id());
    if (r == WA_SEND_OK) {
        char pn[128], lid[128];
        wa_messaging_own_jids(pn, sizeof pn, lid, sizeof lid); /* the voter, when it is our vote */
        const char *v[] = {id, evid, pn};
        batch_add(&B.sent, SQL_SENT, "sent", v);
        if (S.shm)
            metrics_add(&S.shm->wa_messages_sent_total, 1);
        log_info("outgoing message accepted by the server", LF_S("id", id));
    } else if (r == WA_SEND_FAILED) {
        const char *p[] = {id, evid, err ? err : "failed"};
        sdb_query(SQL_FAILED, 3, p, on_event_row, "failed");
        log_warn("outgoing message failed", LF_S("id", id), LF_S("why", err));
    } else {
        const char *p[] = {id, err ? err : "transient failure"};
        char *copy = strdup(id);
        if (!sdb_query(r == WA_SEND_LOST ? SQL_REQUEUE : SQL_RETRY, 2, p, on_retry_row, copy))
            free(copy);
        log_warn("outgoing message will be retried", LF_S("id", id), LF_S("why", err));
        return;
    }
    struct timeval tv = {0, 0};
    evtimer_add(O.poll_timer, &tv);
}

/* "user@server" of a JID, the device dropped. */
static void user_of(const char *jid, char *out, size_t cap)
{
    snprintf(out, cap, "%s", jid ? jid : "");
    char *colon = strchr(out, ':'), *at = strchr(out, '@');
    if (colon && at && colon < at)
        memmove(colon, at, strlen(at) + 1);
}

static void on_receipt(void *arg, const char *id, const char *status, const char *from,
                       const char *participant)
{
    (void)arg;
    char chat[160], who[160];
    user_of(from, chat, sizeof chat);
    /* In a group the member who answers is the participant. */
    user_of(strstr(chat, "@g.us") ? participant : from, who, sizeof who);
    char evid[24];
    snprintf(evid, sizeof evid, "%llu", (unsigned long long)events_next_id());
    const char *v[] = {id, status, evid, chat, who};
    batch_add(&B.receipts, SQL_RECEIPT, "receipt", v);
}

/* ---- claiming ---- */

static const char SQL_RECOVER[] =
    "UPDATE wa_outbox SET state = 'pending', next_attempt_at = now() WHERE state = 'inflight'";

/* A message's content as the outbox builds it: a poll's, or a vote's, with
 * the poll's secret (kept apart from what the API shows). */
#define M_CONTENT                                                                                            \
    "(CASE WHEN m.type IN ('poll', 'vote') THEN m.content || (SELECT jsonb_build_object('secret', "          \
    "encode(ps.secret, 'hex')) FROM wa_poll_secrets ps "                                                     \
    "WHERE ps.message_id = CASE m.type WHEN 'vote' THEN m.reaction_to ELSE m.id END) ELSE m.content "        \
    "END)::text"

/* Claimed rows are marked inflight with an asynchronous commit: a crash
 * that undoes the claim leaves them pending, which is what a restart makes
 * of inflight rows anyway (they go again, with their ids); the commit that
 * records them sent is synchronous and flushes the claim with it. */
static const char SQL_CLAIM[] =
    "WITH " SDB_ASYNC_COMMIT
    ", c AS (SELECT o.message_id FROM wa_outbox o JOIN wa_messages m ON m.id = o.message_id "
    "WHERE o.state = 'pending' AND o.next_attempt_at <= now() ORDER BY m.seq LIMIT $1 FOR UPDATE OF o SKIP "
    "LOCKED), "
    "u AS (UPDATE wa_outbox o SET state = 'inflight', attempts = o.attempts + 1 FROM c "
    "WHERE o.message_id = c.message_id RETURNING o.message_id, o.to_jid, o.attempts) "
    "SELECT u.message_id, u.to_jid, m.text, m.reply_to, u.attempts, m.type <> 'text', "
    "array_to_string(m.mentions, E'\\n'), m.type, " M_CONTENT ", m.reaction_to, m.reaction, t.from_me, "
    "t.sender_jid, (extract(epoch FROM m.created_at) * 1000)::bigint, m.forwarded, m.ephemeral_seconds, "
    "m.view_once FROM sc CROSS JOIN u "
    "JOIN wa_messages m ON m.id = u.message_id LEFT JOIN wa_messages t ON t.id = m.reaction_to ORDER BY "
    "m.seq";

static void held_free(struct held *h)
{
    if (!h)
        return;
    free(h->id);
    free(h->to);
    free(h->text);
    free(h->reply);
    free(h->mentions);
    free(h->raw);
    free(h);
}

static void drain(void);

/* Whether h goes as a built Message with marks on its content (forwarded,
 * the chat's disappearing timer, view once). */
static int marked(const struct held *h)
{
    return h->marks.forwarding_score || h->marks.expiration || h->marks.view_once;
}

/* msg (NULL: the text message of text, reply and mentions) with mk
 * applied. *out malloc'd; 0 or -1. */
static int marked_message(const uint8_t *msg, size_t n, const char *text, const char *reply,
                          const char *mentions, const struct wa_msg_marks *mk, uint8_t **out, size_t *outlen)
{
    uint8_t *b = NULL;
    size_t bl = 0;
    if (!msg) {
        if (wa_msg_build_text(text ? text : "", reply, NULL, mentions, NULL, &b, &bl) < 0)
            return -1;
        msg = b, n = bl;
    }
    int r = wa_msg_mark(msg, n, mk, out, outlen);
    free(b);
    return r;
}

/* A media Message with mk applied: as marked_message. */
static int marked_media(const struct wa_msg_media *m, const char *reply, const char *mentions,
                        const struct wa_msg_marks *mk, uint8_t **out, size_t *outlen)
{
    uint8_t *b = NULL;
    size_t bl = 0;
    int r = wa_msg_build_media(m, reply, NULL, mentions, NULL, &b, &bl) < 0
                ? -1
                : wa_msg_mark(b, bl, mk, out, outlen);
    free(b);
    return r;
}

/* Sends h's text or built Message with its marks: as wa_messaging_send. */
static int send_marked(const struct held *h)
{
    uint8_t *f = NULL;
    size_t fl = 0;
    if (marked_message(h->raw, h->raw_len, h->text, h->reply, h->mentions, &h->marks, &f, &fl) < 0)
        return -3;
    int r = wa_messaging_send_raw(h->id, h->to, f, fl);
    free(f);
    return r;
}

static void on_prepared(void *arg, const char *id, const struct wa_msg_media *m, int permanent,
                        const char *err)
{
    (void)arg;
    struct held *h = O.preparing;
    O.preparing = NULL;
    if (!h || strcmp(h->id, id) != 0) {
        held_free(h);
        drain();
        return;
    }
    if (!m) {
        on_sent(NULL, id, permanent ? WA_SEND_FAILED : WA_SEND_TRANSIENT, err);
    } else {
        int r;
        if (marked(h)) {
            uint8_t *f = NULL;
            size_t fl = 0;
            r = marked_media(m, h->reply, h->mentions, &h->marks, &f, &fl) < 0
                    ? -3
                    : wa_messaging_send_raw(id, h->to, f, fl);
            free(f);
        } else {
            r = wa_messaging_send_media(id, h->to, m, h->reply, h->mentions);
        }
        if (r == -3)
            on_sent(NULL, id, WA_SEND_FAILED, "the file cannot be sent with its marks");
        else if (r == -2)
            on_sent(NULL, id, WA_SEND_FAILED, "recipient is not a valid JID");
        else if (r < 0)
            on_sent(NULL, id, WA_SEND_LOST, "not connected");
    }
    held_free(h);
    drain();
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pace_for(int64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(O.pace_timer, &tv);
}

/* The head may go now (1), or waits for its pace or its "typing" (0, the
 * timer armed). Typing: <composing/> now, <paused/> when it ends. */
static int paced(struct held *h)
{
    if (evtimer_pending(O.pace_timer, NULL))
        return 0;
    int64_t now = now_us(), w = send_pace_wait_us(h->to, now);
    if (w > 0 && !h->typed) {
        pace_for(w);
        return 0;
    }
    if (!h->media && !h->typed) {
        int ms = send_pace_typing_ms(strlen(h->text));
        if (ms > 0 && wa_send_chatstate(O.client, h->to, 1) == 0) {
            h->typed = 1;
            pace_for((int64_t)ms * 1000);
            return 0;
        }
    }
    if (h->typed)
        wa_send_chatstate(O.client, h->to, 0);
    send_pace_sent(h->to, now);
    return 1;
}

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    drain();
}

/* Sends the held rows in order; stops at a media message until its
 * attachment is ready, and at one that waits for its pace. */
static void drain(void)
{
    while (O.head && !O.preparing) {
        struct held *h = O.head;
        if (h->attempts <= MAX_ATTEMPTS && wa_messaging_ready() && !paced(h))
            return;
        O.head = h->next;
        if (!O.head)
            O.tail = NULL;
        if (h->attempts > MAX_ATTEMPTS) {
            on_sent(NULL, h->id, WA_SEND_FAILED, "gave up after repeated transient failures");
        } else if (h->media) {
            O.preparing = h;
            if (media_send_prepare(h->id, on_prepared, NULL) < 0) {
                O.preparing = NULL;
                on_sent(NULL, h->id, WA_SEND_TRANSIENT, "out of memory");
            } else {
                return;
            }
        } else {
            int r = marked(h) ? send_marked(h)
                    : h->raw  ? wa_messaging_send_raw(h->id, h->to, h->raw, h->raw_len)
                              : wa_messaging_send(h->id, h->to, h->text, h->reply, h->mentions);
            if (r == -3)
                on_sent(NULL, h->id, WA_SEND_FAILED, "the message cannot be built with its marks");
            else if (r == -2)
                on_sent(NULL, h->id, WA_SEND_FAILED, "recipient is not a valid JID");
            else if (r < 0)
                on_sent(NULL, h->id, WA_SEND_LOST, "not connected");
        }
        held_free(h);
    }
    if (!O.head && !O.preparing && O.kick) {
        O.kick = 0;
        dispatch();
    }
}

/* The row's type, content, reaction_to, reaction, the target's from_me and
 * sender, the time accepted: columns c.. of the claim and of the retry
 * query. */
static void row_of(const PGresult *res, int i, int c, struct msg_row *r)
{
#define COL(k) (PQgetisnull(res, i, c + (k)) ? NULL : PQgetvalue(res, i, c + (k)))
    memset(r, 0, sizeof *r);
    r->type = COL(0);
    r->content = COL(1);
    r->target = COL(2);
    r->reaction = COL(3);
    r->target_from_me = COL(4) && COL(4)[0] == 't';
    r->target_sender = COL(5);
    const char *ts = COL(6);
    r->ts_ms = ts ? strtoll(ts, NULL, 10) : 0;
#undef COL
}

static void on_claim(void *ctx, const PGresult *res, const char *err)
{
    int asked = (int)(intptr_t)ctx;
    O.claiming = 0;
    if (!res) {
        log_warn("outbox claim failed", LF_S("error", err));
        return;
    }
    int n = PQntuples(res);
    /* In seq order: the messaging layer writes the stanzas in the order given. */
    for (int i = 0; i < n; i++) {
        struct held *h = calloc(1, sizeof *h);
        if (h) {
            h->id = strdup(PQgetvalue(res, i, 0));
            h->to = strdup(PQgetvalue(res, i, 1));
            h->text = strdup(PQgetisnull(res, i, 2) ? "" : PQgetvalue(res, i, 2));
            h->reply = PQgetisnull(res, i, 3) ? NULL : strdup(PQgetvalue(res, i, 3));
            h->attempts = atoi(PQgetvalue(res, i, 4));
            h->media = PQgetvalue(res, i, 5)[0] == 't';
            h->mentions = PQgetisnull(res, i, 6) ? NULL : strdup(PQgetvalue(res, i, 6));
            h->marks.forwarding_score = PQgetvalue(res, i, 14)[0] == 't';
            h->marks.expiration =
                PQgetisnull(res, i, 15) ? 0 : (uint32_t)strtoul(PQgetvalue(res, i, 15), NULL, 10);
            h->marks.view_once = PQgetvalue(res, i, 16)[0] == 't';
        }
        const char *why = NULL;
        if (h && msg_content_type(PQgetvalue(res, i, 7))) {
            h->media = 0;
            struct msg_row r;
            row_of(res, i, 7, &r);
            r.reply_to = h->reply;
            r.text = h->text;
            r.chat = h->to;
            if (msg_content_build(&r, &h->raw, &h->raw_len, &why) < 0) {
                held_free(h);
                on_sent(NULL, PQgetvalue(res, i, 0), WA_SEND_FAILED, why);
                continue;
            }
        }
        if (!h || !h->id || !h->to || !h->text || (!PQgetisnull(res, i, 3) && !h->reply) ||
            (!PQgetisnull(res, i, 6) && !h->mentions)) {
            held_free(h);
            on_sent(NULL, PQgetvalue(res, i, 0), WA_SEND_LOST, "out of memory");
            continue;
        }
        if (O.tail)
            O.tail->next = h;
        else
            O.head = h;
        O.tail = h;
    }
    /* A full batch: more may be waiting. */
    if (n > 0 && n == asked)
        O.kick = 1;
    drain();
}

static void on_recovered(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    O.claiming = 0;
    if (!res) {
        log_warn("outbox recovery failed", LF_S("error", err));
        return;
    }
    O.recovered = 1;
    const char *n = PQcmdTuples((PGresult *)res);
    if (n && atoi(n) > 0)
        log_info("outbox: messages in flight at the last stop will be sent again with their ids",
                 LF_S("count", n));
    dispatch();
}

static void dispatch(void)
{
    if (!wa_messaging_ready())
        return;
    if (O.claiming || O.head || O.preparing || wa_messaging_busy()) {
        O.kick = 1;
        return;
    }
    O.claiming = 1;
    O.kick = 0;
    if (!O.recovered) {
        if (!sdb_query(SQL_RECOVER, 0, NULL, on_recovered, NULL))
            O.claiming = 0;
        return;
    }
    int k = wa_messaging_room();
    if (k > CLAIM_BATCH)
        k = CLAIM_BATCH;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", k);
    const char *p[] = {lim};
    if (!sdb_query(SQL_CLAIM, 1, p, on_claim, (void *)(intptr_t)k))
        O.claiming = 0;
}

/* wapi_outbox_pending: counted at each poll (a cheap index-only count of
 * the unsent rows) rather than kept by hand across claims, acks and restarts. */
static const char SQL_PENDING[] = "SELECT count(*) FROM wa_outbox WHERE state IN ('pending', 'inflight')";
static int counting;

static void on_pending_count(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    counting = 0;
    if (res && PQntuples(res) == 1)
        metrics_set(&S.shm->outbox_pending, strtoull(PQgetvalue(res, 0, 0), NULL, 10));
    else
        log_warn("outbox: pending count failed", LF_S("error", err ? err : "?"));
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    dispatch();
    if (!counting && sdb_query(SQL_PENDING, 0, NULL, on_pending_count, NULL))
        counting = 1;
    struct timeval tv = {POLL_S, 0};
    if (!evtimer_pending(O.poll_timer, NULL))
        evtimer_add(O.poll_timer, &tv);
}

static void on_ready(void *arg)
{
    (void)arg;
    dispatch();
}

/* ---- retry receipts: our text again, to the one device that asked */

static const char SQL_RETRY_MSG[] =
    "SELECT m.text, m.reply_to, m.chat_jid, "
    "m.type NOT IN ('text', 'location', 'contacts', 'poll', 'vote', 'reaction', 'edit', 'revoke', 'disappearing'), "
    "array_to_string(m.mentions, E'\\n'), m.type, " M_CONTENT ", m.reaction_to, m.reaction, t.from_me, "
    "t.sender_jid, (extract(epoch FROM m.created_at) * 1000)::bigint, m.forwarded, m.ephemeral_seconds, "
    "m.view_once FROM wa_messages m "
    "LEFT JOIN wa_messages t ON t.id = m.reaction_to "
    "WHERE m.id = $1 AND m.from_me AND m.revoked_at IS NULL "
    "AND m.type IN ('text', 'image', 'video', 'audio', 'voice', 'document', 'sticker', 'location', "
    "'contacts', 'poll', 'vote', 'reaction', 'edit', 'revoke', 'disappearing')";

struct retry_req {
    char id[64], user[64], server[32];
    int device, count;
    char *chat, *reply, *mentions; /* owned: for a media resend, once the attachment is read */
    struct wa_msg_marks marks;     /* as it was sent (see marked()) */
};

static void retry_req_free(struct retry_req *rr)
{
    free(rr->chat);
    free(rr->reply);
    free(rr->mentions);
    free(rr);
}

static void on_retry_media(void *arg, const char *id, const struct wa_msg_media *m, int permanent,
                           const char *err)
{
    (void)id, (void)permanent;
    struct retry_req *rr = arg;
    struct wa_retry_request r = {rr->id, rr->user, rr->server, rr->device, rr->count};
    int failed = !m;
    if (m && (rr->marks.forwarding_score || rr->marks.expiration || rr->marks.view_once)) {
        uint8_t *f = NULL;
        size_t fl = 0;
        failed = marked_media(m, rr->reply, rr->mentions, &rr->marks, &f, &fl) < 0 ||
                 wa_messaging_resend_raw(&r, rr->chat, f, fl) < 0;
        free(f);
    } else if (m) {
        failed = wa_messaging_resend(&r, rr->chat, NULL, m, rr->reply, rr->mentions) < 0;
    }
    if (failed)
        log_warn("retry receipt not answered", LF_S("id", rr->id),
                 LF_S("why", m ? "not connected, or too many resends waiting" : err));
    retry_req_free(rr);
}

static void on_retry_msg(void *ctx, const PGresult *res, const char *err)
{
    struct retry_req *rr = ctx;
    const char *why = !res ? err : PQntuples(res) != 1 ? "no such message of ours" : NULL;
    if (!why) {
        rr->marks.forwarding_score = PQgetvalue(res, 0, 12)[0] == 't';
        rr->marks.expiration =
            PQgetisnull(res, 0, 13) ? 0 : (uint32_t)strtoul(PQgetvalue(res, 0, 13), NULL, 10);
        rr->marks.view_once = PQgetvalue(res, 0, 14)[0] == 't';
    }
    int mk = !why && (rr->marks.forwarding_score || rr->marks.expiration || rr->marks.view_once);
    if (!why && PQgetvalue(res, 0, 3)[0] == 't') {
        rr->chat = strdup(PQgetvalue(res, 0, 2));
        rr->reply = PQgetisnull(res, 0, 1) ? NULL : strdup(PQgetvalue(res, 0, 1));
        rr->mentions = PQgetisnull(res, 0, 4) ? NULL : strdup(PQgetvalue(res, 0, 4));
        if (rr->chat && media_send_load(rr->id, on_retry_media, rr) == 0)
            return; /* answered when the attachment is read */
        why = "out of memory";
    } else if (!why && msg_content_type(PQgetvalue(res, 0, 5))) {
        struct wa_retry_request r = {rr->id, rr->user, rr->server, rr->device, rr->count};
        uint8_t *raw = NULL;
        size_t rl = 0;
        struct msg_row mr;
        row_of(res, 0, 5, &mr);
        mr.reply_to = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
        mr.chat = PQgetvalue(res, 0, 2);
        mr.text = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
        uint8_t *f = NULL;
        size_t fl = 0;
        if (msg_content_build(&mr, &raw, &rl, &why) == 0) {
            if (mk && marked_message(raw, rl, NULL, NULL, NULL, &rr->marks, &f, &fl) < 0)
                why = "the message cannot be built with its marks";
            else if (wa_messaging_resend_raw(&r, PQgetvalue(res, 0, 2), f ? f : raw, f ? fl : rl) < 0)
                why = "not connected, or too many resends waiting";
        }
        free(raw);
        free(f);
    } else if (mk) {
        struct wa_retry_request r = {rr->id, rr->user, rr->server, rr->device, rr->count};
        uint8_t *f = NULL;
        size_t fl = 0;
        if (marked_message(NULL, 0, PQgetvalue(res, 0, 0),
                           PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
                           PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4), &rr->marks, &f, &fl) < 0 ||
            wa_messaging_resend_raw(&r, PQgetvalue(res, 0, 2), f, fl) < 0)
            why = "not connected, or too many resends waiting";
        free(f);
    } else if (!why) {
        struct wa_retry_request r = {rr->id, rr->user, rr->server, rr->device, rr->count};
        if (wa_messaging_resend(&r, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0), NULL,
                                PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
                                PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4)) < 0)
            why = "not connected, or too many resends waiting";
    }
    if (why)
        log_warn("retry receipt not answered", LF_S("id", rr->id), LF_S("why", why));
    retry_req_free(rr);
}

static void on_retry(void *arg, const struct wa_retry_request *r)
{
    (void)arg;
    struct retry_req *rr = calloc(1, sizeof *rr);
    if (!rr || strlen(r->id) >= sizeof rr->id || strlen(r->user) >= sizeof rr->user ||
        strlen(r->server) >= sizeof rr->server) {
        free(rr);
        return;
    }
    snprintf(rr->id, sizeof rr->id, "%s", r->id);
    snprintf(rr->user, sizeof rr->user, "%s", r->user);
    snprintf(rr->server, sizeof rr->server, "%s", r->server);
    rr->device = r->device;
    rr->count = r->count;
    const char *p[] = {rr->id};
    if (!sdb_query(SQL_RETRY_MSG, 1, p, on_retry_msg, rr))
        retry_req_free(rr);
}

void outbox_init(struct event_base *base, struct wa_client *c)
{
    O.client = c;
    O.pace_timer = evtimer_new(base, on_pace, NULL);
    struct send_pace_config pc = {S.cfg.sending.rate_per_minute, S.cfg.sending.min_gap_per_chat_ms,
                                  S.cfg.sending.typing};
    send_pace_init(&pc);
    O.poll_timer = evtimer_new(base, on_poll, NULL);
    B.flush = evtimer_new(base, on_flush, NULL);
    struct wa_send_events ev = {on_sent, on_receipt, on_ready, on_retry};
    wa_messaging_set_send_events(&ev, NULL);
    struct timeval tv = {POLL_S, 0};
    evtimer_add(O.poll_timer, &tv);
}

void outbox_shutdown(void)
{
    while (O.head) {
        struct held *h = O.head;
        O.head = h->next;
        held_free(h); /* inflight rows: the next start sends them again */
    }
    O.tail = NULL;
    if (O.poll_timer)
        evtimer_del(O.poll_timer);
    if (O.pace_timer)
        evtimer_del(O.pace_timer);
    if (B.flush) {
        evtimer_del(B.flush);
        on_flush(-1, 0, NULL); /* what the loop read last is still recorded */
    }
}

void outbox_kick(void)
{
    dispatch();
}

int outbox_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    (void)m, (void)status, (void)body;
    if (ipc_rd_end(rd) < 0)
        return WORKER_MALFORMED;
    dispatch();
    return WORKER_NO_ANSWER;
}
