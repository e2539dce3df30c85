#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "worker_table.h"

#define RING 1024

struct rec {
    uint64_t id;
    uint64_t seq;
    char type[32];
    char *json; /* owned */
};

static struct rec ring[RING];
static unsigned head, count;
static uint64_t last_id, last_seq;

uint64_t events_next_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) * 1000;
    last_id = t > last_id ? t : last_id + 1;
    return last_id;
}

uint64_t events_reserve(unsigned n)
{
    uint64_t first = events_next_id();
    if (n > 1)
        last_id += n - 1;
    return first;
}

void events_publish(uint64_t id, const char *type, const char *data_json)
{
    char at[RFC3339_LEN];
    rfc3339_now_ms(at, sizeof at);
    char ids[24];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "id", ids);
    jw_kstr(&w, "type", type);
    jw_kstr(&w, "at", at);
    jw_kraw(&w, "data", data_json);
    jw_obj_end(&w);
    if (jw_finish(&w) < 0) {
        log_error("event lost: out of memory", LF_S("type", type));
        sbuf_free(&b);
        return;
    }
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
    e->seq = ++last_seq;
    snprintf(e->type, sizeof e->type, "%s", type);
    e->json = sbuf_steal(&b);
    struct sbuf p;
    sbuf_init(&p);
    ipc_wr_u64(&p, id);
    ipc_wr_u64(&p, e->seq);
    ipc_wr_bytes(&p, type, (uint32_t)strlen(type));
    ipc_wr_bytes(&p, e->json, (uint32_t)strlen(e->json));
    if (p.len <= IPC_MAX_PAYLOAD)
        workers_broadcast_payload(IPC_EVENT, p.buf, p.len);
    sbuf_free(&p);
}

static void add_line(struct sbuf *body, const struct rec *e)
{
    sbuf_addf(body, "%llu\t%llu\t%s\t%s\n", (unsigned long long)e->id, (unsigned long long)e->seq, e->type,
              e->json);
}

void events_since(uint64_t after_id, uint64_t after_seq, int want_qr, struct sbuf *body)
{
    if (after_id == 0 && after_seq == 0) {
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
            add_line(body, &ring[(head + (unsigned)order[k]) % RING]);
        }
        return;
    }
    /* Where to start: after a publication number, after the position of a
     * known id, or (an id from before this ring) after every smaller id. */
    int by_id = 0;
    if (!after_seq) {
        by_id = 1;
        for (unsigned i = count; i-- > 0;)
            if (ring[(head + i) % RING].id == after_id) {
                after_seq = ring[(head + i) % RING].seq;
                by_id = 0;
                break;
            }
    }
    for (unsigned i = 0; i < count; i++) {
        struct rec *e = &ring[(head + i) % RING];
        if (by_id ? e->id <= after_id : e->seq <= after_seq)
            continue;
        if (body->len + strlen(e->json) + 96 > IPC_MAX_PAYLOAD - 64)
            break; /* the client asks again from the last one it got */
        add_line(body, e);
    }
}
