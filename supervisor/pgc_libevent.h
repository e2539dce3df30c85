/* The PostgreSQL driver (common/pgc.h) on the supervisor's libevent loop. */
#ifndef WAPI_SUP_PGC_LIBEVENT_H
#define WAPI_SUP_PGC_LIBEVENT_H
#include <event2/event.h>

#include "common/pgc.h"

/* Fills *out with functions driving the driver from base. */
void pgc_libevent(struct pgc_loop *out, struct event_base *base);

#endif
