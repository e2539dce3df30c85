/* Shared-memory metrics: the supervisor creates one memfd with a slot per
 * worker; each worker is the only writer of its slot, any worker sums all
 * slots to answer /metrics. Counters survive worker restarts (a new worker
 * inherits its slot), gauges are cleared by the supervisor when a worker dies. */
#ifndef WAPI_METRICS_H
#define WAPI_METRICS_H
#include <stdint.h>

#include "sbuf.h"

#define METRICS_SLOTS 64
#define METRICS_MAGIC 0x77617069u /* "wapi" */

enum metrics_route { MR_ROOT, MR_HEALTHZ, MR_READYZ, MR_METRICS, MR_API, MR_STATIC, MR_OTHER, MR_COUNT };
#define METRICS_STATUSES 27
#define METRICS_LAT_BUCKETS 12 /* + Inf */
#define METRICS_RTT_BUCKETS 8
/* enum wa_state's names in its order (common/ does not see supervisor/wa;
 * session.c checks the count). */
#define METRICS_WA_STATES 10
extern const char *const METRICS_WA_STATE_NAMES[METRICS_WA_STATES];
#define METRICS_WA_CONNECTED 4u

struct metrics_slot {
    /* counters */
    uint64_t requests[MR_COUNT][METRICS_STATUSES];
    uint64_t lat_bucket[MR_COUNT][METRICS_LAT_BUCKETS + 1];
    uint64_t lat_sum_us[MR_COUNT];
    uint64_t rtt_bucket[METRICS_RTT_BUCKETS + 1];
    uint64_t rtt_sum_us, rtt_count;
    uint64_t connections_total, db_queries_total, db_errors_total, db_reconnects_total;
    uint64_t media_refused_too_large_total; /* POST /api/media over media.max_upload_bytes */
    uint64_t media_refused_full_total;      /* the media volume full (ENOSPC) as the worker wrote */
    /* gauges (this worker's part) */
    uint64_t connections, db_connected, db_busy, db_waiting;
    int32_t pid;
    uint32_t pad;
};

/* App-state sync (supervisor/appsync.c): its collections and why one is fetched again. */
#define METRICS_APPSTATE_COLLECTIONS 5
enum {
    METRICS_APPSTATE_BAD_MAC,
    METRICS_APPSTATE_LTHASH,
    METRICS_APPSTATE_MALFORMED,
    METRICS_APPSTATE_REASONS
};
extern const char *const METRICS_APPSTATE_COLLECTION_NAMES[METRICS_APPSTATE_COLLECTIONS];

struct metrics_shm {
    uint32_t magic, nslots;
    uint64_t worker_restarts_total, worker_crashes_total, workers_alive;
    uint64_t start_time;
    /* WhatsApp messaging (the supervisor writes these) */
    uint64_t wa_messages_received_total, wa_messages_sent_total, wa_decrypt_failures_total;
    /* placeholders stored for messages that could not be decrypted, and filled later */
    uint64_t wa_messages_undecryptable_total, wa_messages_recovered_total;
    /* the media store (the supervisor writes these) */
    uint64_t media_store_bytes, media_store_files; /* gauges */
    uint64_t media_uploads_total, media_refused_full_total, media_refused_invalid_total,
        media_swept_files_total;
    /* the WhatsApp session, webhooks and the outbox (the supervisor writes these) */
    uint64_t wa_state;                    /* gauge: enum wa_state's value, in METRICS_WA_STATE_NAMES order */
    uint64_t webhook_dead_letters_total;  /* deliveries given up after their last attempt */
    uint64_t outbox_pending;              /* gauge: messages accepted, not yet taken by WhatsApp */
    uint64_t wa_poll_votes_refused_total; /* votes for a poll we do not have, or that did not open */
    /* history sync: chunks imported, messages stored by them, blobs refused (a try each) */
    uint64_t wa_history_chunks_total, wa_history_messages_total, wa_history_refused_total;
    /* app-state collections fetched again from a snapshot, by collection and reason */
    uint64_t wa_appstate_resyncs_total[METRICS_APPSTATE_COLLECTIONS][METRICS_APPSTATE_REASONS];
    struct metrics_slot slot[METRICS_SLOTS];
};

/* Supervisor: creates and maps the region; returns the fd (or -1). */
int metrics_create(struct metrics_shm **out);
/* Worker: maps the inherited fd. */
struct metrics_shm *metrics_attach(int fd);
void metrics_clear_gauges(struct metrics_slot *s);

static inline void metrics_add(uint64_t *c, uint64_t v)
{
    __atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}
static inline void metrics_set(uint64_t *g, uint64_t v)
{
    __atomic_store_n(g, v, __ATOMIC_RELAXED);
}

enum metrics_route metrics_route_of(const char *path, size_t len);
void metrics_observe_request(struct metrics_slot *s, enum metrics_route r, int status, uint64_t usec);
void metrics_observe_rtt(struct metrics_slot *s, uint64_t usec);
/* Prometheus text exposition of the sum over all slots. */
void metrics_render(const struct metrics_shm *m, struct sbuf *out);

#endif
