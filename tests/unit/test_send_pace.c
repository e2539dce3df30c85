/* Send pacing on a clock of its own: the rate holds over a long queue (sends
 * as soon as allowed, late wake-ups not lowering it), no burst after an idle
 * spell, the gap per chat (other chats not held by it), chats dropped once
 * their gap is over, typing time growing with the text and capped, and
 * everything off by default. */
#include "supervisor/send_pace.h"

#include <stdio.h>

#include "t.h"

/* Sends n messages to chat as soon as pacing allows, waking late by
 * late_us each time; the time of the last one. */
static int64_t drain(int n, const char *chat, int64_t t, int64_t late_us)
{
    for (int i = 0; i < n; i++) {
        int64_t w = send_pace_wait_us(chat, t);
        if (w > 0)
            t += w + late_us;
        send_pace_sent(chat, t);
    }
    return t;
}

int main(void)
{
    struct send_pace_config off = {0, 0, 0};
    send_pace_init(&off);
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", 5) == 0 && send_pace_typing_ms(100) == 0,
            "off: never waits, no typing");
    send_pace_sent("a@s.whatsapp.net", 5);
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", 6) == 0 && send_pace_tracked() == 0, "off: nothing kept");

    struct send_pace_config rate = {600, 0, 0}; /* one every 100 ms */
    send_pace_init(&rate);
    int64_t t0 = 1000000000;
    int64_t end = drain(1000, "a@s.whatsapp.net", t0, 0);
    T_CHECK(end - t0 == 999 * 100000LL, "600/min: 1000 messages take 99.9 s, the first at once");
    send_pace_init(&rate);
    end = drain(1000, "a@s.whatsapp.net", t0, 3000);
    double per_min = 999 * 60e6 / (double)(end - t0);
    T_CHECK(per_min > 0.999 * 600 && per_min <= 600.0001,
            "a timer 3 ms late every time does not lower the rate (the bucket runs on its own time)");
    printf("# %.3f a minute with late wake-ups\n", per_min);
    int64_t idle = end + 3600000000LL;
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", idle) == 0, "after an idle hour: the next goes at once");
    send_pace_sent("a@s.whatsapp.net", idle);
    T_CHECK(send_pace_wait_us("b@s.whatsapp.net", idle + 1) == 99999,
            "... and the one after waits its interval (no burst saved up)");
    T_CHECK(send_pace_wait_us("c@s.whatsapp.net", idle + 1) ==
                send_pace_wait_us("b@s.whatsapp.net", idle + 1),
            "the rate is the account's, whatever the chat");

    struct send_pace_config gap = {0, 500, 0};
    send_pace_init(&gap);
    send_pace_sent("a@s.whatsapp.net", t0);
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", t0 + 100000) == 400000,
            "gap 500 ms: the same chat waits 400 ms");
    T_CHECK(send_pace_wait_us("b@s.whatsapp.net", t0 + 100000) == 0, "another chat does not");
    send_pace_sent("b@s.whatsapp.net", t0 + 100000);
    T_CHECK(send_pace_tracked() == 2, "two chats with a running gap");
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", t0 + 500000) == 0, "a chat's gap over: it goes");
    T_CHECK(send_pace_wait_us("x@s.whatsapp.net", t0 + 700000) == 0 && send_pace_tracked() == 0,
            "chats whose gap is over are forgotten");
    for (int i = 0; i < 1000; i++) {
        char c[32];
        snprintf(c, sizeof c, "%d@s.whatsapp.net", i);
        send_pace_sent(c, t0 + 1000000);
    }
    T_CHECK(send_pace_tracked() == 1000 && send_pace_wait_us("999@s.whatsapp.net", t0 + 1100000) == 400000,
            "a thousand chats at once are each held");
    send_pace_wait_us("x@s.whatsapp.net", t0 + 2000000);
    T_CHECK(send_pace_tracked() == 0, "... and forgotten together");

    struct send_pace_config both = {60, 2000, 1};
    send_pace_init(&both);
    send_pace_sent("a@s.whatsapp.net", t0);
    T_CHECK(send_pace_wait_us("a@s.whatsapp.net", t0) == 2000000 &&
                send_pace_wait_us("b@s.whatsapp.net", t0 + 500000) == 500000,
            "rate and gap together: the longer wait (the gap for that chat, the rate for another)");
    T_CHECK(send_pace_typing_ms(0) == 1000 && send_pace_typing_ms(40) == 2000 &&
                send_pace_typing_ms(10000) == 6000,
            "typing: 1 s, longer with the text (40 characters a second), at most 6 s");
    send_pace_reset();
    T_DONE();
}
