/* A worker's IPC_ACTION request (actions.c, group_actions.c): its fields
 * read, its answer now or later through workers_reply(). */
#ifndef WAPI_ACTION_REQ_H
#define WAPI_ACTION_REQ_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/sbuf.h"

/* A worker's request answered later: whom to answer. The records of such
 * requests begin with it. */
struct later {
    pid_t pid;
    uint32_t msg_id;
};
/* A zeroed record of size bytes (struct later first) for pid's request
 * msg_id; NULL after answering 503 at once. */
void *action_req_later(size_t size, pid_t pid, uint32_t msg_id, uint32_t *status, struct sbuf *body);
/* Answers a request that waited (its worker may have left meanwhile). */
void action_req_answer(const void *rec, uint32_t status, const struct sbuf *b, const char *what);
/* Answers 409 not_connected now; returns 0. */
int action_req_not_connected(uint32_t *status, struct sbuf *body);
/* The session's client when it is connected; else NULL after answering 409
 * not_connected. */
struct wa_client;
struct wa_client *action_req_client(uint32_t *status, struct sbuf *body);
/* A bounded string field copied out of the payload; -1 when absent, empty or too long. */
int action_req_str(struct ipc_rd *rd, char *buf, size_t cap);

#endif
