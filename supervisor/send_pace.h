/* Send pacing (sending.*): an account-wide rate (a token bucket holding one
 * message, so sends are evenly spaced and the rate holds however long the
 * queue), a least gap between two messages to one chat, and how long to
 * show "typing" before a text. Pure bookkeeping on the times given; the
 * outbox asks before each message and waits, so queued messages are late,
 * never failed, and keep their order. */
#ifndef WAPI_SEND_PACE_H
#define WAPI_SEND_PACE_H

#include <stddef.h>
#include <stdint.h>

struct send_pace_config {
    int rate_per_minute;     /* 0: no limit */
    int min_gap_per_chat_ms; /* 0: none */
    int typing;
};

void send_pace_init(const struct send_pace_config *c);
/* Microseconds until a message to chat may go (0: now). */
int64_t send_pace_wait_us(const char *chat, int64_t now_us);
/* A message to chat went at now_us. */
void send_pace_sent(const char *chat, int64_t now_us);
/* How long to show "typing" before a text of n bytes; 0 when off. */
int send_pace_typing_ms(size_t n);
/* Chats whose gap is still running (tracked). */
size_t send_pace_tracked(void);
void send_pace_reset(void);

#endif
