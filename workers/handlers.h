/* Route handlers, by area; the route table is in main.c. */
#ifndef WAPI_HANDLERS_H
#define WAPI_HANDLERS_H
#include "common/metrics.h"
#include "http.h"

void health_init(struct metrics_shm *shm);
void h_healthz(struct rq *rq);
void h_readyz(struct rq *rq);
void h_metrics(struct rq *rq);
void h_dashboard(struct rq *rq);

/* /api/session* (session_api.c) */
void h_session_get(struct rq *rq);
void h_session_start(struct rq *rq);
void h_session_stop(struct rq *rq);
void h_session_logout(struct rq *rq);
void h_session_qr(struct rq *rq);
void h_session_pairing_code(struct rq *rq);

/* /api/events (events.c) */
struct ipc_msg;
void events_init(h2o_loop_t *loop);
void h_events(struct rq *rq);
void events_on_push(const struct ipc_msg *m);
void events_tick(void);
void events_close_all(void);

#endif
