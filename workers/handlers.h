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

#endif
