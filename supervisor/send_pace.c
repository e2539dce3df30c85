/* Send pacing (see send_pace.h). */
#include "send_pace.h"

#include <stdlib.h>
#include <string.h>

/* Chats with a gap still running; expired ones are dropped as they are met,
 * so this holds only the chats written to within the last gap. */
struct chat_gap {
    char *chat;
    int64_t until_us;
};

static struct {
    struct send_pace_config c;
    int64_t interval_us; /* 60 s / rate */
    int64_t next_us;     /* the bucket's next token; 0: one is there */
    struct chat_gap *gaps;
    size_t n, cap;
} P;

void send_pace_init(const struct send_pace_config *c)
{
    send_pace_reset();
    P.c = *c;
    P.interval_us = c->rate_per_minute > 0 ? 60000000LL / c->rate_per_minute : 0;
}

void send_pace_reset(void)
{
    for (size_t i = 0; i < P.n; i++)
        free(P.gaps[i].chat);
    free(P.gaps);
    memset(&P, 0, sizeof P);
}

static void prune(int64_t now_us)
{
    size_t j = 0;
    for (size_t i = 0; i < P.n; i++) {
        if (P.gaps[i].until_us > now_us)
            P.gaps[j++] = P.gaps[i];
        else
            free(P.gaps[i].chat);
    }
    P.n = j;
}

static struct chat_gap *find(const char *chat)
{
    for (size_t i = 0; i < P.n; i++)
        if (!strcmp(P.gaps[i].chat, chat))
            return &P.gaps[i];
    return NULL;
}

int64_t send_pace_wait_us(const char *chat, int64_t now_us)
{
    int64_t w = P.interval_us && P.next_us > now_us ? P.next_us - now_us : 0;
    if (P.c.min_gap_per_chat_ms > 0) {
        prune(now_us);
        struct chat_gap *g = find(chat);
        if (g && g->until_us - now_us > w)
            w = g->until_us - now_us;
    }
    return w;
}

void send_pace_sent(const char *chat, int64_t now_us)
{
    /* From the token's own time while the queue is full, so waking late
     * never lowers the rate; from now after an idle spell (no burst). */
    if (P.interval_us)
        P.next_us = (P.next_us > now_us - P.interval_us ? P.next_us : now_us) + P.interval_us;
    if (P.c.min_gap_per_chat_ms <= 0)
        return;
    int64_t until = now_us + (int64_t)P.c.min_gap_per_chat_ms * 1000;
    struct chat_gap *g = find(chat);
    if (g) {
        g->until_us = until;
        return;
    }
    if (P.n == P.cap) {
        size_t cap = P.cap ? P.cap * 2 : 16;
        struct chat_gap *ng = realloc(P.gaps, cap * sizeof *ng);
        if (!ng)
            return; /* out of memory: this chat's gap is not kept */
        P.gaps = ng, P.cap = cap;
    }
    char *c = strdup(chat);
    if (!c)
        return;
    P.gaps[P.n++] = (struct chat_gap){c, until};
}

int send_pace_typing_ms(size_t n)
{
    if (!P.c.typing)
        return 0;
    /* About 40 characters a second after a second's start, at most 6 s. */
    size_t ms = 1000 + n * 25;
    return ms > 6000 ? 6000 : (int)ms;
}

size_t send_pace_tracked(void)
{
    return P.n;
}
