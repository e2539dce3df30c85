#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const int statuses[METRICS_STATUSES] = {200, 201, 202, 204, 206, 301, 302, 304, 400,
                                               401, 403, 404, 405, 408, 409, 410, 413, 415,
                                               416, 422, 429, 431, 500, 502, 503, 507, 0};
static const char *const route_names[MR_COUNT] = {"/",    "/healthz", "/readyz", "/metrics",
                                                  "/api", "static",   "other"};
/* seconds */
static const double lat_bounds[METRICS_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                       0.05,   0.1,   0.25,   0.5,   1,    5};
static const double rtt_bounds[METRICS_RTT_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005,
                                                       0.001,   0.0025, 0.01,    0.1};

int metrics_create(struct metrics_shm **out)
{
    int fd = memfd_create("wapi-metrics", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, sizeof(struct metrics_shm)) < 0) {
        close(fd);
        return -1;
    }
    struct metrics_shm *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        close(fd);
        return -1;
    }
    m->magic = METRICS_MAGIC;
    m->nslots = METRICS_SLOTS;
    m->start_time = (uint64_t)time(NULL);
    *out = m;
    return fd;
}

struct metrics_shm *metrics_attach(int fd)
{
    struct metrics_shm *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (m->magic != METRICS_MAGIC || m->nslots != METRICS_SLOTS) {
        munmap(m, sizeof *m);
        return NULL;
    }
    return m;
}

void metrics_clear_gauges(struct metrics_slot *s)
{
    metrics_set(&s->connections, 0);
    metrics_set(&s->db_connected, 0);
    metrics_set(&s->db_busy, 0);
    metrics_set(&s->db_waiting, 0);
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELAXED);
}

enum metrics_route metrics_route_of(const char *path, size_t len)
{
    if (len == 1 && path[0] == '/')
        return MR_ROOT;
    if (len == 8 && memcmp(path, "/healthz", 8) == 0)
        return MR_HEALTHZ;
    if (len == 7 && memcmp(path, "/readyz", 7) == 0)
        return MR_READYZ;
    if (len == 8 && memcmp(path, "/metrics", 8) == 0)
        return MR_METRICS;
    if (len >= 5 && memcmp(path, "/api/", 5) == 0)
        return MR_API;
    if (len >= 8 && memcmp(path, "/static/", 8) == 0)
        return MR_STATIC;
    return MR_OTHER;
}

static int status_index(int status)
{
    for (int i = 0; i < METRICS_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return METRICS_STATUSES - 1;
}

void metrics_observe_request(struct metrics_slot *s, enum metrics_route r, int status, uint64_t usec)
{
    metrics_add(&s->requests[r][status_index(status)], 1);
    double sec = (double)usec / 1e6;
    int b = 0;
    while (b < METRICS_LAT_BUCKETS && sec > lat_bounds[b])
        b++;
    metrics_add(&s->lat_bucket[r][b], 1);
    metrics_add(&s->lat_sum_us[r], usec);
}

void metrics_observe_rtt(struct metrics_slot *s, uint64_t usec)
{
    double sec = (double)usec / 1e6;
    int b = 0;
    while (b < METRICS_RTT_BUCKETS && sec > rtt_bounds[b])
        b++;
    metrics_add(&s->rtt_bucket[b], 1);
    metrics_add(&s->rtt_sum_us, usec);
    metrics_add(&s->rtt_count, 1);
}

const char *const METRICS_WA_STATE_NAMES[METRICS_WA_STATES] = {
    "stopped",      "connecting", "qr",     "pairing",  "connected",
    "reconnecting", "logged_out", "banned", "outdated", "locked"};

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#define SUM(field)                                                                                           \
    ({                                                                                                       \
        uint64_t s_ = 0;                                                                                     \
        for (int i_ = 0; i_ < METRICS_SLOTS; i_++)                                                           \
            s_ += ld(&m->slot[i_].field);                                                                    \
        s_;                                                                                                  \
    })

static void histogram(struct sbuf *o, const char *name, const char *labels, const double *bounds, int nb,
                      const uint64_t *buckets, uint64_t sum_us)
{
    uint64_t cum = 0;
    for (int b = 0; b <= nb; b++) {
        cum += buckets[b];
        if (b < nb)
            sbuf_addf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "", bounds[b],
                      (unsigned long long)cum);
        else
            sbuf_addf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
                      (unsigned long long)cum);
    }
    sbuf_addf(o, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
              (double)sum_us / 1e6);
    sbuf_addf(o, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
              (unsigned long long)cum);
}

void metrics_render(const struct metrics_shm *m, struct sbuf *o)
{
    sbuf_adds(o, "# HELP wapi_http_requests_total HTTP requests answered, by route and status.\n"
                 "# TYPE wapi_http_requests_total counter\n");
    for (int r = 0; r < MR_COUNT; r++)
        for (int s = 0; s < METRICS_STATUSES; s++) {
            uint64_t v = SUM(requests[r][s]);
            if (!v)
                continue;
            if (statuses[s])
                sbuf_addf(o, "wapi_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[r],
                          statuses[s], (unsigned long long)v);
            else
                sbuf_addf(o, "wapi_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", route_names[r],
                          (unsigned long long)v);
        }
    sbuf_adds(o, "# HELP wapi_http_request_duration_seconds Time from request to response, by route.\n"
                 "# TYPE wapi_http_request_duration_seconds histogram\n");
    for (int r = 0; r < MR_COUNT; r++) {
        uint64_t b[METRICS_LAT_BUCKETS + 1];
        for (int k = 0; k <= METRICS_LAT_BUCKETS; k++)
            b[k] = SUM(lat_bucket[r][k]);
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"", route_names[r]);
        histogram(o, "wapi_http_request_duration_seconds", labels, lat_bounds, METRICS_LAT_BUCKETS, b,
                  SUM(lat_sum_us[r]));
    }
    {
        uint64_t b[METRICS_RTT_BUCKETS + 1];
        for (int k = 0; k <= METRICS_RTT_BUCKETS; k++)
            b[k] = SUM(rtt_bucket[k]);
        sbuf_adds(o, "# HELP wapi_ipc_roundtrip_seconds Worker to supervisor request round trip.\n"
                     "# TYPE wapi_ipc_roundtrip_seconds histogram\n");
        histogram(o, "wapi_ipc_roundtrip_seconds", "", rtt_bounds, METRICS_RTT_BUCKETS, b, SUM(rtt_sum_us));
    }
    uint64_t alive = 0;
    for (int i = 0; i < METRICS_SLOTS; i++)
        if (__atomic_load_n(&m->slot[i].pid, __ATOMIC_RELAXED) > 0)
            alive++;
    sbuf_addf(
        o,
        "# HELP wapi_http_connections_total Connections accepted.\n"
        "# TYPE wapi_http_connections_total counter\nwapi_http_connections_total %llu\n"
        "# HELP wapi_http_connections Open client connections.\n"
        "# TYPE wapi_http_connections gauge\nwapi_http_connections %llu\n"
        "# HELP wapi_workers Worker processes alive.\n"
        "# TYPE wapi_workers gauge\nwapi_workers %llu\n"
        "# HELP wapi_worker_restarts_total Workers started again after one exited or was killed.\n"
        "# TYPE wapi_worker_restarts_total counter\nwapi_worker_restarts_total %llu\n"
        "# HELP wapi_worker_crashes_total Workers that exited unexpectedly.\n"
        "# TYPE wapi_worker_crashes_total counter\nwapi_worker_crashes_total %llu\n"
        "# HELP wapi_db_connections Database connections open, over all workers.\n"
        "# TYPE wapi_db_connections gauge\nwapi_db_connections %llu\n"
        "# HELP wapi_db_connections_busy Database connections running a query.\n"
        "# TYPE wapi_db_connections_busy gauge\nwapi_db_connections_busy %llu\n"
        "# HELP wapi_db_queries_waiting Queries queued for a free connection.\n"
        "# TYPE wapi_db_queries_waiting gauge\nwapi_db_queries_waiting %llu\n"
        "# HELP wapi_db_queries_total Database queries run.\n"
        "# TYPE wapi_db_queries_total counter\nwapi_db_queries_total %llu\n"
        "# HELP wapi_db_errors_total Database queries that failed.\n"
        "# TYPE wapi_db_errors_total counter\nwapi_db_errors_total %llu\n"
        "# HELP wapi_db_reconnects_total Database connection attempts after a loss.\n"
        "# TYPE wapi_db_reconnects_total counter\nwapi_db_reconnects_total %llu\n"
        "# HELP wapi_start_time_seconds When the supervisor started (Unix time).\n"
        "# TYPE wapi_start_time_seconds gauge\nwapi_start_time_seconds %llu\n"
        "# HELP wapi_wa_messages_received_total Incoming WhatsApp messages stored.\n"
        "# TYPE wapi_wa_messages_received_total counter\nwapi_wa_messages_received_total %llu\n"
        "# HELP wapi_wa_messages_sent_total Outgoing WhatsApp messages the server accepted.\n"
        "# TYPE wapi_wa_messages_sent_total counter\nwapi_wa_messages_sent_total %llu\n"
        "# HELP wapi_wa_decrypt_failures_total Incoming WhatsApp messages that could not be decrypted.\n"
        "# TYPE wapi_wa_decrypt_failures_total counter\nwapi_wa_decrypt_failures_total %llu\n"
        "# HELP wapi_wa_messages_undecryptable_total Incoming WhatsApp messages stored as placeholders (not "
        "decryptable).\n"
        "# TYPE wapi_wa_messages_undecryptable_total counter\nwapi_wa_messages_undecryptable_total %llu\n"
        "# HELP wapi_wa_messages_recovered_total Placeholders filled with the message (resent by our "
        "phone).\n"
        "# TYPE wapi_wa_messages_recovered_total counter\nwapi_wa_messages_recovered_total %llu\n",
        (unsigned long long)SUM(connections_total), (unsigned long long)SUM(connections),
        (unsigned long long)alive, (unsigned long long)ld(&m->worker_restarts_total),
        (unsigned long long)ld(&m->worker_crashes_total), (unsigned long long)SUM(db_connected),
        (unsigned long long)SUM(db_busy), (unsigned long long)SUM(db_waiting),
        (unsigned long long)SUM(db_queries_total), (unsigned long long)SUM(db_errors_total),
        (unsigned long long)SUM(db_reconnects_total), (unsigned long long)m->start_time,
        (unsigned long long)ld(&m->wa_messages_received_total),
        (unsigned long long)ld(&m->wa_messages_sent_total),
        (unsigned long long)ld(&m->wa_decrypt_failures_total),
        (unsigned long long)ld(&m->wa_messages_undecryptable_total),
        (unsigned long long)ld(&m->wa_messages_recovered_total));
    sbuf_addf(o,
              "# HELP wapi_media_store_bytes Bytes of the files in the media store.\n"
              "# TYPE wapi_media_store_bytes gauge\nwapi_media_store_bytes %llu\n"
              "# HELP wapi_media_store_files Files in the media store (one per content).\n"
              "# TYPE wapi_media_store_files gauge\nwapi_media_store_files %llu\n"
              "# HELP wapi_media_uploads_total Uploads stored (POST /api/media answered 201).\n"
              "# TYPE wapi_media_uploads_total counter\nwapi_media_uploads_total %llu\n"
              "# HELP wapi_media_refusals_total Uploads refused: the store full (507), the file too large "
              "(413), or not the type it must be (400).\n"
              "# TYPE wapi_media_refusals_total counter\n"
              "wapi_media_refusals_total{reason=\"store_full\"} %llu\n"
              "wapi_media_refusals_total{reason=\"too_large\"} %llu\n"
              "wapi_media_refusals_total{reason=\"invalid_type\"} %llu\n"
              "# HELP wapi_media_swept_files_total Files the media sweep removed.\n"
              "# TYPE wapi_media_swept_files_total counter\nwapi_media_swept_files_total %llu\n",
              (unsigned long long)ld(&m->media_store_bytes), (unsigned long long)ld(&m->media_store_files),
              (unsigned long long)ld(&m->media_uploads_total),
              (unsigned long long)(ld(&m->media_refused_full_total) + SUM(media_refused_full_total)),
              (unsigned long long)SUM(media_refused_too_large_total),
              (unsigned long long)ld(&m->media_refused_invalid_total),
              (unsigned long long)ld(&m->media_swept_files_total));
    uint64_t st = ld(&m->wa_state);
    sbuf_addf(o,
              "# HELP wapi_wa_connected 1 while the WhatsApp session is connected, else 0.\n"
              "# TYPE wapi_wa_connected gauge\nwapi_wa_connected %d\n"
              "# HELP wapi_wa_session_state The WhatsApp session's state (1 for the current one).\n"
              "# TYPE wapi_wa_session_state gauge\n",
              st == METRICS_WA_CONNECTED);
    for (unsigned i = 0; i < METRICS_WA_STATES; i++)
        sbuf_addf(o, "wapi_wa_session_state{state=\"%s\"} %d\n", METRICS_WA_STATE_NAMES[i], st == i);
    sbuf_addf(o,
              "# HELP wapi_webhook_dead_letters_total Webhook deliveries given up after their last attempt "
              "(state dead).\n"
              "# TYPE wapi_webhook_dead_letters_total counter\nwapi_webhook_dead_letters_total %llu\n"
              "# HELP wapi_outbox_pending Outgoing messages accepted and not yet taken by WhatsApp.\n"
              "# TYPE wapi_outbox_pending gauge\nwapi_outbox_pending %llu\n"
              "# HELP wapi_wa_poll_votes_refused_total Poll votes not counted: for a poll we do not have, "
              "or not opened with its secret.\n"
              "# TYPE wapi_wa_poll_votes_refused_total counter\nwapi_wa_poll_votes_refused_total %llu\n",
              (unsigned long long)ld(&m->webhook_dead_letters_total),
              (unsigned long long)ld(&m->outbox_pending),
              (unsigned long long)ld(&m->wa_poll_votes_refused_total));
    sbuf_addf(o,
              "# HELP wapi_wa_history_chunks_total History sync chunks imported.\n"
              "# TYPE wapi_wa_history_chunks_total counter\nwapi_wa_history_chunks_total %llu\n"
              "# HELP wapi_wa_history_messages_total Messages stored by history sync imports.\n"
              "# TYPE wapi_wa_history_messages_total counter\nwapi_wa_history_messages_total %llu\n"
              "# HELP wapi_wa_history_refused_total History sync blobs refused (not the blob announced, or "
              "unreadable); each try counts.\n"
              "# TYPE wapi_wa_history_refused_total counter\nwapi_wa_history_refused_total %llu\n",
              (unsigned long long)ld(&m->wa_history_chunks_total),
              (unsigned long long)ld(&m->wa_history_messages_total),
              (unsigned long long)ld(&m->wa_history_refused_total));
    static const char *const why[METRICS_APPSTATE_REASONS] = {"bad_mac", "lthash_mismatch", "malformed"};
    sbuf_addf(o, "# HELP wapi_appstate_resyncs_total App-state collections fetched again from a snapshot "
                 "after the server's data failed a check.\n"
                 "# TYPE wapi_appstate_resyncs_total counter\n");
    for (unsigned c = 0; c < METRICS_APPSTATE_COLLECTIONS; c++)
        for (unsigned r = 0; r < METRICS_APPSTATE_REASONS; r++)
            sbuf_addf(o, "wapi_appstate_resyncs_total{collection=\"%s\",reason=\"%s\"} %llu\n",
                      METRICS_APPSTATE_COLLECTION_NAMES[c], why[r],
                      (unsigned long long)ld(&m->wa_appstate_resyncs_total[c][r]));
}

const char *const METRICS_APPSTATE_COLLECTION_NAMES[METRICS_APPSTATE_COLLECTIONS] = {
    "critical_block", "critical_unblock_low", "regular_high", "regular_low", "regular"};
