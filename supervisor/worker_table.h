/* The table of worker processes: spawn, supervise, respawn with backoff,
 * retire old generations, talk to each over its socketpair. */
#ifndef WAPI_WORKER_TABLE_H
#define WAPI_WORKER_TABLE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/sbuf.h"

#define MAX_WORKERS 64

void workers_init(void);
/* Brings the table toward S.want workers of S.generation. */
void workers_reconcile(void);
/* A child exited: returns 1 if it was a worker. */
int workers_on_exit(pid_t pid, int status);
void workers_drain_all(void);
void workers_signal_all(int sig);
void workers_broadcast(unsigned type);
void workers_broadcast_payload(unsigned type, const void *payload, size_t len);
int workers_alive(void);
void workers_tick(void); /* every second: watchdog, deadlines */
void workers_status_json(struct sbuf *out);
/* Answers request `id` of the worker with this pid (IPC_REPLY {status, body}),
 * for requests answered after the handler returned. -1 when that worker is
 * gone or its link is full: the worker's own timeout answers its client. */
int workers_reply(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len);

#endif
