#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/ipc.h"
#include "worker_table.h"

#define RING 1024

struct rec {
    uint64_t id;
    char type[32];
    char *json; /* owned */
};

static struct rec ring[RING];
static unsigned head, count;
static uint64_t last_id;

uint64_t events_next_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 1000;
    last_id = t > last_id ? t : last_id + 1;
    return last_id;
}

void events_publish(uint64_t id, const char *type, const char *data_json)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char at[64];
    snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
    struct sbuf b;
    sbuf_init(&b);
    sbuf_addf(&b, "{\"id\":\"%llu\",\"type\":", (unsigned long long)id);
    sbuf_add_json_str(&b, type, strlen(type));
    sbuf_addf(&b, ",\"at\":\"%s\",\"data\":%s}", at, data_json);
    struct rec *e;
    if (count == RING) {
        e = &ring[head];
        free(e->json);
        head = (head + 1) % RING;
    } else {
        e = &ring[(head + count) % RING];
        count++;
    }
    e->id = id;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->json = sbuf_steal(&b);
    struct sbuf p;
    sbuf_init(&p);
    ipc_wr_u64(&p, id);
    ipc_wr_bytes(&p, type, (uint32_t)strlen(type));
    ipc_wr_bytes(&p, e->json, (uint32_t)strlen(e->json));
    if (p.len <= IPC_MAX_PAYLOAD)
        workers_broadcast_payload(IPC_EVENT, p.buf, p.len);
    sbuf_free(&p);
}

void events_since(uint64_t after, int want_qr, struct sbuf *body)
{
    if (after == 0) {
        /* A new subscriber gets the present: the latest status (and QR). */
        int st = -1, qr = -1;
        for (unsigned i = 0; i < count; i++) {
            struct rec *e = &ring[(head + i) % RING];
            if (!strcmp(e->type, "session.status"))
                st = (int)i;
            else if (!strcmp(e->type, "session.qr"))
                qr = (int)i;
        }
        if (!want_qr)
            qr = -1;
        int order[2] = {qr < st ? qr : st, qr < st ? st : qr};
        for (int k = 0; k < 2; k++) {
            if (order[k] < 0)
                continue;
            struct rec *e = &ring[(head + (unsigned)order[k]) % RING];
            sbuf_addf(body, "%llu\t%s\t%s\n", (unsigned long long)e->id, e->type, e->json);
        }
        return;
    }
    for (unsigned i = 0; i < count; i++) {
        struct rec *e = &ring[(head + i) % RING];
        if (e->id <= after)
            continue;
        if (body->len + strlen(e->json) + 64 > IPC_MAX_PAYLOAD - 64)
            break; /* the client asks again from the last id it got */
        sbuf_addf(body, "%llu\t%s\t%s\n", (unsigned long long)e->id, e->type, e->json);
    }
}
