/* The workers' IPC_ACTION requests: read receipts, typing indicators and
 * number checks, done on the session's WhatsApp connection. */
#ifndef WAPI_ACTIONS_H
#define WAPI_ACTIONS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/sbuf.h"
#include "worker_table.h"

/* IPC_ACTION (a worker_msg_fn): answered now, or later through
 * workers_reply() once WhatsApp has answered. */
int actions_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

/* For the modules that answer some of these requests (group_actions.c). */

/* A worker's request answered later: whom to answer. The records of such
 * requests begin with it. */
struct later {
    pid_t pid;
    uint32_t msg_id;
};
/* A zeroed record of size bytes (struct later first) for pid's request
 * msg_id; NULL after answering 503 at once. */
void *actions_later_new(size_t size, pid_t pid, uint32_t msg_id, uint32_t *status, struct sbuf *body);
/* Answers a request that waited (its worker may have left meanwhile). */
void actions_answer_later(const void *rec, uint32_t status, const struct sbuf *b, const char *what);
/* Answers 409 not_connected now; returns 0. */
int actions_not_connected(uint32_t *status, struct sbuf *body);
/* A bounded string field copied out of the payload; -1 when absent, empty or too long. */
int actions_rd_str(struct ipc_rd *rd, char *buf, size_t cap);

#endif
