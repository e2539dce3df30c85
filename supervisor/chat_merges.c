#include "chat_merges.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "events.h"
#include "sdb.h"
#include "sup.h"

#define BATCH 64
#define BATCH_S "64"
#define POLL_S 2

static struct {
    struct event *timer;
    int busy, again;
} M;

static void announce(void);

static const char SQL_ANNOUNCE[] =
    "SELECT id, type, data FROM wapi_chat_merges_announce($1::bigint, " BATCH_S ")";

static void done(int more)
{
    M.busy = 0;
    if (M.again || more) {
        M.again = 0;
        announce();
    }
}

static void on_announced(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res) {
        log_warn("chat merges: announcing failed", LF_S("error", err ? err : "?"));
        done(0);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        events_publish(strtoull(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                       PQgetvalue(res, i, 2));
        log_info("chats merged", LF_S("chat", PQgetvalue(res, i, 2)));
    }
    done(PQntuples(res) == BATCH);
}

static void announce(void)
{
    if (!S.migrated)
        return;
    if (M.busy) {
        M.again = 1;
        return;
    }
    M.busy = 1;
    char first[24];
    snprintf(first, sizeof first, "%" PRIu64, events_reserve(BATCH));
    const char *p[1] = {first};
    if (!sdb_query(SQL_ANNOUNCE, 1, p, on_announced, NULL))
        done(0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    announce();
}

void chat_merges_init(void)
{
    M.timer = event_new(S.base, -1, EV_PERSIST, on_timer, NULL);
    struct timeval tv = {POLL_S, 0};
    if (M.timer)
        evtimer_add(M.timer, &tv);
}

void chat_merges_kick(void)
{
    announce();
}
