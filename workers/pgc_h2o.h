/* The PostgreSQL driver (common/pgc.h) on a worker's h2o evloop. */
#ifndef WAPI_WORKER_PGC_H2O_H
#define WAPI_WORKER_PGC_H2O_H
#include <h2o.h>

#include "common/pgc.h"

/* Fills *out with functions driving the driver from loop. */
void pgc_h2o(struct pgc_loop *out, h2o_loop_t *loop);

#endif
