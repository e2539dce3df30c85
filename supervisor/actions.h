/* The workers' IPC_ACTION requests: read receipts, typing indicators and
 * number checks, done on the session's WhatsApp connection. */
#ifndef WAPI_ACTIONS_H
#define WAPI_ACTIONS_H
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/sbuf.h"
#include "worker_table.h"

/* IPC_ACTION (a worker_msg_fn): answered now, or later through
 * workers_reply() once WhatsApp has answered. */
int actions_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

#endif
