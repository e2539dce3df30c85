/* Metrics: slots sum into one exposition; histograms are cumulative. */
#include <stdio.h>
#include <stdlib.h>

#include "common/metrics.h"
#include "tests/unit/t.h"

static unsigned long long value_of(const char *text, const char *series)
{
    /* Sample lines only: a series name also appears in its # HELP line. */
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, series, strlen(series)) == 0)
            return strtoull(p + strlen(series), NULL, 10);
    }
    return ~0ull;
}

int main(void)
{
    struct metrics_shm *m;
    int fd = metrics_create(&m);
    T_CHECK(fd >= 0, "create");
    struct metrics_shm *w = metrics_attach(fd);
    T_CHECK(w != NULL, "attach");
    T_EQ_INT(metrics_route_of("/", 1), MR_ROOT, "route /");
    T_EQ_INT(metrics_route_of("/healthz", 8), MR_HEALTHZ, "route /healthz");
    T_EQ_INT(metrics_route_of("/api/x", 6), MR_API, "route /api/");
    T_EQ_INT(metrics_route_of("/healthzz", 9), MR_OTHER, "route other");
    metrics_observe_request(&w->slot[0], MR_HEALTHZ, 200, 300);
    metrics_observe_request(&w->slot[3], MR_HEALTHZ, 200, 3000);
    metrics_observe_request(&w->slot[3], MR_HEALTHZ, 404, 7000000);
    metrics_observe_request(&w->slot[5], MR_API, 299, 10);
    metrics_add(&w->worker_restarts_total, 2);
    w->slot[1].pid = 77;
    w->slot[2].pid = 78;
    metrics_set(&w->slot[2].db_connected, 3);
    struct sbuf b;
    sbuf_init(&b);
    metrics_render(m, &b);
    const char *t = b.buf;
    T_EQ_INT(value_of(t, "wapi_http_requests_total{route=\"/healthz\",status=\"200\"} "), 2,
             "summed over slots");
    T_EQ_INT(value_of(t, "wapi_http_requests_total{route=\"/healthz\",status=\"404\"} "), 1, "per status");
    T_EQ_INT(value_of(t, "wapi_http_requests_total{route=\"/api\",status=\"other\"} "), 1, "unlisted status");
    T_EQ_INT(value_of(t, "wapi_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} "), 1,
             "first bucket");
    T_EQ_INT(value_of(t, "wapi_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} "), 2,
             "cumulative bucket");
    T_EQ_INT(value_of(t, "wapi_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} "), 3,
             "+Inf");
    T_EQ_INT(value_of(t, "wapi_http_request_duration_seconds_count{route=\"/healthz\"} "), 3, "count");
    T_EQ_INT(value_of(t, "wapi_worker_restarts_total "), 2, "restarts");
    T_EQ_INT(value_of(t, "wapi_workers "), 2, "workers alive from pids");
    T_EQ_INT(value_of(t, "wapi_db_connections "), 3, "db gauge");
    metrics_clear_gauges(&w->slot[2]);
    sbuf_reset(&b);
    metrics_render(m, &b);
    T_EQ_INT(value_of(b.buf, "wapi_db_connections "), 0, "gauges cleared for a dead worker");
    T_EQ_INT(value_of(b.buf, "wapi_workers "), 1, "dead worker not counted");
    T_CHECK(strstr(b.buf, "# TYPE wapi_http_requests_total counter") != NULL, "TYPE lines");
    /* session state, webhook dead letters, outbox backlog */
    T_EQ_INT(value_of(b.buf, "wapi_wa_connected "), 0, "not connected at start (stopped)");
    T_EQ_INT(value_of(b.buf, "wapi_wa_session_state{state=\"stopped\"} "), 1,
             "stopped is the state at start");
    metrics_set(&w->wa_state, METRICS_WA_CONNECTED);
    metrics_add(&w->webhook_dead_letters_total, 3);
    metrics_set(&w->outbox_pending, 42);
    sbuf_reset(&b);
    metrics_render(m, &b);
    T_EQ_INT(value_of(b.buf, "wapi_wa_connected "), 1, "connected");
    T_EQ_INT(value_of(b.buf, "wapi_wa_session_state{state=\"connected\"} "), 1, "connected state is 1");
    T_EQ_INT(value_of(b.buf, "wapi_wa_session_state{state=\"stopped\"} "), 0, "stopped state is 0 now");
    unsigned ones = 0;
    for (unsigned i = 0; i < METRICS_WA_STATES; i++) {
        char series[96];
        snprintf(series, sizeof series, "wapi_wa_session_state{state=\"%s\"} ", METRICS_WA_STATE_NAMES[i]);
        unsigned long long v = value_of(b.buf, series);
        T_CHECK(v == 0 || v == 1, series);
        ones += (unsigned)v;
    }
    T_EQ_INT(ones, 1, "exactly one state is 1");
    metrics_set(&w->wa_state, 5); /* reconnecting */
    sbuf_reset(&b);
    metrics_render(m, &b);
    T_EQ_INT(value_of(b.buf, "wapi_wa_connected "), 0, "reconnecting is not connected");
    T_EQ_INT(value_of(b.buf, "wapi_wa_session_state{state=\"reconnecting\"} "), 1, "reconnecting state");
    T_EQ_INT(value_of(b.buf, "wapi_webhook_dead_letters_total "), 3, "dead letters");
    T_EQ_INT(value_of(b.buf, "wapi_outbox_pending "), 42, "outbox pending");
    T_CHECK(strstr(b.buf, "# TYPE wapi_webhook_dead_letters_total counter") != NULL,
            "dead letters is a counter");
    T_CHECK(strstr(b.buf, "# TYPE wapi_outbox_pending gauge") != NULL, "outbox pending is a gauge");
    sbuf_free(&b);
    T_DONE();
}
