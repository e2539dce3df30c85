/* Placeholders of undecryptable messages asked for again: see placeholder.h. */
#include "placeholder.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "inbox.h"
#include "sdb.h"
#include "sup.h"
#include "wa/wa_message.h"
#include "wa/wa_messaging.h"

/* A phone keeps what it may send again for a while; older placeholders are
 * left as they are (bounded work at each connect). */
static const char SQL_UNFILLED[] = "SELECT id, chat_jid, from_me, coalesce(sender_jid, '') FROM wa_messages "
                                   "WHERE type = 'undecryptable' AND created_at > now() - interval '1 day' "
                                   "ORDER BY created_at DESC LIMIT 100";

void placeholder_ask(const char *id, const char *chat, int from_me, const char *sender)
{
    /* The key names the sender only in a group (or a status): in a direct
     * chat the chat is the sender. */
    size_t cl = strlen(chat);
    int group =
        (cl > 5 && !strcmp(chat + cl - 5, "@g.us")) || (cl > 10 && !strcmp(chat + cl - 10, "@broadcast"));
    const char *participant = group && !from_me && sender && *sender ? sender : NULL;
    if (wa_messaging_placeholder_resend(id, chat, from_me, participant) < 0)
        log_warn("cannot ask our phone for an undecryptable message now; asked again at the next connect",
                 LF_S("id", id));
}

static void on_unfilled(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        log_warn("cannot list the placeholders to ask our phone for", LF_S("error", err));
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        placeholder_ask(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2)[0] == 't',
                        PQgetvalue(res, i, 3));
    if (n > 0)
        log_info("asked our phone again for undecryptable messages", LF_I("count", n));
}

void placeholder_connected(void)
{
    if (!sdb_query(SQL_UNFILLED, 0, NULL, on_unfilled, NULL))
        log_warn("cannot list the placeholders to ask our phone for", LF_S("error", "out of memory"));
}

/* ---- retry waits (common/sql/0040_retry_waits.sql) */

#define WAITS_BATCH 64
#define WAITS_POLL_S 5

static const char SQL_EXPIRED[] =
    "SELECT id, chat_jid, sender_jid, sender_lid, from_me, push_name, extract(epoch FROM ts)::bigint "
    "FROM wa_retry_waits WHERE failed_at < now() - make_interval(secs => $1::int) "
    "ORDER BY failed_at LIMIT 64"; /* WAITS_BATCH */

static struct {
    struct event *timer;
    int busy;
} W;

static const char *col(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

/* Messages whose senders did not answer the retry receipt in time: stored
 * as placeholders (the inbox asks our phone for each once committed); the
 * statement that stores them ends their waits. A resend arriving later
 * fills the placeholder in place. */
static void on_expired(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    W.busy = 0;
    if (!res) {
        log_warn("cannot read the messages waiting for a resend", LF_S("error", err ? err : "?"));
        return;
    }
    int n = PQntuples(res);
    if (n == 0)
        return;
    static const struct wa_msg_content ph = {.kind = WA_MSG_UNDECRYPTABLE};
    struct wa_incoming in[WAITS_BATCH];
    for (int i = 0; i < n && i < WAITS_BATCH; i++) {
        const char *sender = col(res, i, 2);
        in[i] = (struct wa_incoming){col(res, i, 0),
                                     col(res, i, 1),
                                     sender && *sender ? sender : NULL,
                                     PQgetvalue(res, i, 4)[0] == 't',
                                     strtoll(PQgetvalue(res, i, 6), NULL, 10),
                                     col(res, i, 5),
                                     col(res, i, 3),
                                     &ph,
                                     0};
        log_warn("no resend came for a message that did not decrypt: stored as a placeholder",
                 LF_S("id", in[i].id), LF_S("chat", in[i].chat));
    }
    if (inbox_store(in, n < WAITS_BATCH ? n : WAITS_BATCH) < 0)
        log_warn("cannot store placeholders for messages that waited for a resend; will retry");
}

static void on_waits_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (W.busy || !S.migrated)
        return;
    char secs[16];
    snprintf(secs, sizeof secs, "%d",
             S.cfg.whatsapp.retry_wait_seconds > 0 ? S.cfg.whatsapp.retry_wait_seconds : 60);
    const char *p[] = {secs};
    if (sdb_query(SQL_EXPIRED, 1, p, on_expired, NULL))
        W.busy = 1;
}

void placeholder_init(void)
{
    W.timer = event_new(S.base, -1, EV_PERSIST, on_waits_timer, NULL);
    struct timeval tv = {WAITS_POLL_S, 0};
    if (!W.timer || evtimer_add(W.timer, &tv) < 0)
        fatal(1, "cannot start the retry-wait timer");
}
