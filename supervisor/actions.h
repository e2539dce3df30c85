/* The workers' IPC_ACTION requests: read receipts, typing indicators and
 * number checks, done on the session's WhatsApp connection. */
#ifndef WAPI_ACTIONS_H
#define WAPI_ACTIONS_H
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/sbuf.h"

/* 0: answered now (*status, body); 1: answered later through
 * workers_reply(pid, msg_id, ...); -1: malformed (the caller drops the worker). */
int actions_ipc(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

#endif
