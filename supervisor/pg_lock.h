/* A PostgreSQL advisory lock held on a dedicated connection of the
 * supervisor, driven by libevent (never blocking): while it is held, no
 * other wapi on the same database runs the same WhatsApp session. */
#ifndef WAPI_PG_LOCK_H
#define WAPI_PG_LOCK_H
#include <event2/event.h>
#include <stdint.h>

#include "common/db_params.h"

enum pg_lock_event {
    PG_LOCK_HELD,  /* ours until released or lost */
    PG_LOCK_BUSY,  /* another session holds it */
    PG_LOCK_ERROR, /* could not ask (database unreachable); detail says why */
    PG_LOCK_LOST,  /* the connection holding it broke: it is no longer ours */
};

typedef void (*pg_lock_cb)(void *arg, enum pg_lock_event ev, const char *detail);

/* Starts one attempt; the callback reports its outcome (and later a loss). */
int pg_lock_acquire(struct event_base *base, const struct db_params *params, int64_t key, pg_lock_cb cb, void *arg);
/* Releases (closing the connection frees the lock) and cancels any attempt. */
void pg_lock_release(void);
int pg_lock_held(void);

#endif
