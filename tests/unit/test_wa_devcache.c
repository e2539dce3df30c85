/* The device-list cache: found until the TTL, least recently used evicted
 * when full, forget drops every server's entry of a user, bad input ignored. */
#include "supervisor/wa/wa_devcache.h"

#include <stdio.h>

#include "t.h"

int main(void)
{
    uint16_t d[3] = {0, 7, 12};
    int64_t t = 1000;
    wa_devcache_put("15550001", "s.whatsapp.net", d, 3, t);
    struct wa_devcache *e = wa_devcache_find("15550001", "s.whatsapp.net", t + 10);
    T_CHECK(e && e->n == 3 && e->dev[1] == 7 && e->dev[2] == 12, "a list put is found with its devices");
    T_CHECK(!wa_devcache_find("15550001", "lid", t + 10), "another server's entry is another entry");
    T_CHECK(wa_devcache_find("15550001", "s.whatsapp.net", t + WA_DEVCACHE_TTL_MS - 1) != NULL,
            "found until the TTL");
    T_CHECK(!wa_devcache_find("15550001", "s.whatsapp.net", t + WA_DEVCACHE_TTL_MS), "gone at the TTL");
    T_CHECK(!wa_devcache_find("15550001", "s.whatsapp.net", t), "and stays gone");

    wa_devcache_put("15550002", "s.whatsapp.net", d, 1, t);
    wa_devcache_put("15550002", "lid", d, 2, t);
    wa_devcache_put("15550003", "s.whatsapp.net", d, 1, t);
    wa_devcache_forget("15550002");
    T_CHECK(!wa_devcache_find("15550002", "s.whatsapp.net", t) && !wa_devcache_find("15550002", "lid", t),
            "forget drops the user under every server");
    T_CHECK(wa_devcache_find("15550003", "s.whatsapp.net", t) != NULL, "and no one else");
    wa_devcache_put("15550003", "s.whatsapp.net", d + 1, 2, t);
    e = wa_devcache_find("15550003", "s.whatsapp.net", t);
    T_CHECK(e && e->n == 2 && e->dev[0] == 7, "a second put replaces the list");

    uint16_t many[WA_DEVCACHE_MAX_DEVICES + 1] = {0};
    wa_devcache_put("15550004", "s.whatsapp.net", many, WA_DEVCACHE_MAX_DEVICES + 1, t);
    wa_devcache_put("15550005", "s.whatsapp.net", d, 0, t);
    char long_user[80];
    memset(long_user, '9', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    wa_devcache_put(long_user, "s.whatsapp.net", d, 1, t);
    T_CHECK(!wa_devcache_find("15550004", "s.whatsapp.net", t) &&
                !wa_devcache_find("15550005", "s.whatsapp.net", t) &&
                !wa_devcache_find(long_user, "s.whatsapp.net", t),
            "too many devices, none, or a name too long: not recorded");

    /* Full: the least recently used entry makes room. */
    wa_devcache_clear();
    char u[32];
    for (int i = 0; i < WA_DEVCACHE_SLOTS; i++) {
        snprintf(u, sizeof u, "1666%06d", i);
        wa_devcache_put(u, "s.whatsapp.net", d, 1, t);
    }
    T_CHECK(wa_devcache_find("1666000000", "s.whatsapp.net", t) != NULL,
            "the first is found (and now recently used)");
    wa_devcache_put("17770000", "s.whatsapp.net", d, 1, t);
    T_CHECK(wa_devcache_find("17770000", "s.whatsapp.net", t) != NULL, "a new entry fits in a full cache");
    T_CHECK(wa_devcache_find("1666000000", "s.whatsapp.net", t) != NULL, "the recently used one stayed");
    T_CHECK(!wa_devcache_find("1666000001", "s.whatsapp.net", t), "the least recently used one went");
    int left = 0;
    for (int i = 2; i < WA_DEVCACHE_SLOTS; i++) {
        snprintf(u, sizeof u, "1666%06d", i);
        left += wa_devcache_find(u, "s.whatsapp.net", t) != NULL;
    }
    T_EQ_INT(left, WA_DEVCACHE_SLOTS - 2, "every other entry stayed");
    wa_devcache_clear();
    T_CHECK(!wa_devcache_find("17770000", "s.whatsapp.net", t), "clear empties it");
    T_DONE();
}
