#include "wa_devcache.h"

#include <stdio.h>
#include <string.h>

static struct wa_devcache cache[WA_DEVCACHE_SLOTS];
static uint64_t clock_;

struct wa_devcache *wa_devcache_find(const char *user, const char *server, int64_t now_ms)
{
    for (int i = 0; i < WA_DEVCACHE_SLOTS; i++) {
        struct wa_devcache *e = &cache[i];
        if (!e->user[0] || strcmp(e->user, user) || strcmp(e->server, server))
            continue;
        if (now_ms - e->fetched_ms >= WA_DEVCACHE_TTL_MS) {
            e->user[0] = '\0';
            return NULL;
        }
        e->used = ++clock_;
        return e;
    }
    return NULL;
}

void wa_devcache_put(const char *user, const char *server, const uint16_t *dev, int n, int64_t now_ms)
{
    if (n <= 0 || n > WA_DEVCACHE_MAX_DEVICES || strlen(user) >= sizeof cache[0].user ||
        strlen(server) >= sizeof cache[0].server)
        return;
    struct wa_devcache *slot = NULL;
    for (int i = 0; i < WA_DEVCACHE_SLOTS; i++) {
        struct wa_devcache *e = &cache[i];
        if (e->user[0] && !strcmp(e->user, user) && !strcmp(e->server, server)) {
            slot = e;
            break;
        }
        if (!slot || (slot->user[0] && (!e->user[0] || e->used < slot->used)))
            slot = e;
    }
    snprintf(slot->user, sizeof slot->user, "%s", user);
    snprintf(slot->server, sizeof slot->server, "%s", server);
    slot->fetched_ms = now_ms;
    slot->used = ++clock_;
    slot->n = n;
    memcpy(slot->dev, dev, (size_t)n * sizeof *dev);
}

void wa_devcache_forget(const char *user)
{
    for (int i = 0; i < WA_DEVCACHE_SLOTS; i++)
        if (cache[i].user[0] && !strcmp(cache[i].user, user))
            cache[i].user[0] = '\0';
}

void wa_devcache_clear(void)
{
    for (int i = 0; i < WA_DEVCACHE_SLOTS; i++)
        cache[i].user[0] = '\0';
}
