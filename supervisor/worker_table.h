/* The table of worker processes: spawn, supervise, respawn with backoff,
 * retire old generations, talk to each over its socketpair. What workers ask
 * of the rest of the supervisor goes to the handler registered for its type
 * (workers_handle(), at start): this module knows processes, not sessions. */
#ifndef WAPI_WORKER_TABLE_H
#define WAPI_WORKER_TABLE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/sbuf.h"

#define MAX_WORKERS 64

/* A message from a worker: who sent it, and the request id to answer. The
 * descriptors it carried (types registered with workers_accept_fds) belong
 * to the handler once it sets their slot to -1; the others are closed after
 * it returns. */
struct worker_msg {
    pid_t pid;
    uint32_t type, id;
    int *fds;
    int nfds;
};
enum { WORKER_MALFORMED = -1, WORKER_ANSWER = 0, WORKER_ANSWER_LATER = 1, WORKER_NO_ANSWER = 2 };
/* Reads the payload from rd (checking its end); returns WORKER_ANSWER with
 * *status and body set, WORKER_ANSWER_LATER (then workers_reply()),
 * WORKER_NO_ANSWER for a notification, or WORKER_MALFORMED (the worker is
 * killed). */
typedef int (*worker_msg_fn)(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                             struct sbuf *body);
/* Registers the handler of one message type (before workers start). */
void workers_handle(uint32_t type, worker_msg_fn fn);
/* Messages of this type may carry up to n descriptors (others carry none: a
 * worker that sends one anyway is killed). */
void workers_accept_fds(uint32_t type, int n);
/* fn(pid) runs when a worker has exited (after its link is closed), for
 * state kept per worker. */
void workers_on_gone(void (*fn)(pid_t pid));

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
/* Writes the value [{"slot","pid","state","generation","uptime_s"},...]. */
void workers_status_json(struct jsonw *w);
/* Finishes a handler's answer written with w into body: *status as it is,
 * or 500 and an error body when it could not be written (out of memory). */
void workers_answer_json(struct jsonw *w, uint32_t *status, struct sbuf *body);
/* Answers request `id` of the worker with this pid (IPC_REPLY {status, body}),
 * for requests answered after the handler returned. -1 when that worker is
 * gone or its link is full: the worker's own timeout answers its client. */
int workers_reply(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len);
/* The same with one descriptor passed along (SCM_RIGHTS); the caller still
 * owns fd and closes it. */
int workers_reply_fd(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len, int fd);

#endif
