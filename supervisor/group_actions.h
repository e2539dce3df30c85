/* The group requests of IPC_ACTION (see actions.h). */
#ifndef WAPI_GROUP_ACTIONS_H
#define WAPI_GROUP_ACTIONS_H
#include <stdint.h>

#include "common/ipc.h"
#include "common/sbuf.h"
#include "worker_table.h"

/* act: the IPC_ACT_GROUP… code, rd past it. As actions_ipc. */
int group_actions_ipc(uint32_t act, const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                      struct sbuf *body);

#endif
