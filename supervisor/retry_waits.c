/* Messages waiting for their sender's resend (common/sql/0040_retry_waits.sql):
 * see retry_waits.h. */
#include "retry_waits.h"

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

void retry_waits_init(void)
{
    W.timer = event_new(S.base, -1, EV_PERSIST, on_waits_timer, NULL);
    struct timeval tv = {WAITS_POLL_S, 0};
    if (!W.timer || evtimer_add(W.timer, &tv) < 0)
        fatal(1, "cannot start the retry-wait timer");
}
