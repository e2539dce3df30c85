/* The profile requests of IPC_ACTION: someone's about text, the block list
 * and (un)blocking, our own about text; each asked of WhatsApp and answered
 * when it answers. */
#ifndef WAPI_PROFILE_ACTIONS_H
#define WAPI_PROFILE_ACTIONS_H
#include <stdint.h>

#include "common/ipc.h"
#include "common/sbuf.h"
#include "worker_table.h"

/* act: an IPC_ACT_ABOUT… or IPC_ACT_BLOCK… code, rd past it. As actions_ipc. */
int profile_actions_ipc(uint32_t act, const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                        struct sbuf *body);

#endif
