/* Placeholders of undecryptable messages asked for again: see placeholder.h. */
#include "placeholder.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sdb.h"
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
