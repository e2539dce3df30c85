/* The worker's end of its socketpair with the supervisor: handshake,
 * heartbeats, requests with replies matched by id, pushed commands. */
#ifndef WAPI_SUP_LINK_H
#define WAPI_SUP_LINK_H
#include <h2o.h>
#include <stdint.h>

#include "common/ipc.h"
#include "common/metrics.h"

/* m is NULL when the supervisor did not answer in time or the link is down.
 * The descriptors a reply carries (m->fds) are the callback's to close. */
typedef void (*sup_reply_cb)(void *ctx, const struct ipc_msg *m);

struct sup_handlers {
    void (*on_drain)(void);
    void (*on_reopen_logs)(void);
    void (*on_lost)(void);                     /* the supervisor is gone */
    void (*on_event)(const struct ipc_msg *m); /* IPC_EVENT pushed to every worker */
};

/* Start-up, blocking with a timeout (before the loop runs): HELLO, then the
 * WELCOME with our slot, generation and the configuration text (owned by the
 * caller, free()). */
int sup_handshake(int fd, uint32_t *slot, uint32_t *generation, char **config_text);
void sup_link_start(h2o_loop_t *loop, int fd, const struct sup_handlers *h, struct metrics_slot *m);
/* Returns a request id (0 on failure: the callback will not run). */
uint32_t sup_request(uint32_t type, const void *payload, size_t len, uint32_t timeout_ms, sup_reply_cb cb,
                     void *ctx);
/* The same with a descriptor passed along (SCM_RIGHTS); the caller keeps
 * its own copy and closes it. */
uint32_t sup_request_fd(uint32_t type, const void *payload, size_t len, int fd, uint32_t timeout_ms,
                        sup_reply_cb cb, void *ctx);
void sup_cancel(uint32_t id);
/* The descriptor a reply carries (the first; any others are closed), or -1. */
int sup_reply_fd(const struct ipc_msg *m);
int sup_notify(uint32_t type, const void *payload, size_t len);
void sup_link_tick(void); /* every 100 ms: timeouts, heartbeat */

#endif
