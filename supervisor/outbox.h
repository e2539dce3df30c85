/* The outbox dispatcher: sends the wa_outbox rows the API commits over the
 * WhatsApp connection. Wakes when a worker says it committed rows
 * (IPC_OUTBOX_KICK; the API is the only writer) and every POLL_S seconds as
 * a safety net (a worker that died between its commit and its kick). The message id
 * was fixed when the row was made, so a resend after a crash is the same
 * message. Server ack -> sent, receipts -> delivered / read, refusals ->
 * failed with the reason, transient failures retried with backoff; every
 * change is one statement with its wa_events row, published after commit.
 * Messages go at the pace sending.* sets (send_pace.c): late, never failed,
 * in their order. */
#ifndef WAPI_OUTBOX_H
#define WAPI_OUTBOX_H
#include <event2/event.h>

#include "worker_table.h"

struct wa_client;
/* Takes the sending side of the WhatsApp client (wa_messaging_init first);
 * c sends "composing" when sending.typing is on. */
void outbox_init(struct event_base *base, struct wa_client *c);
void outbox_shutdown(void);
/* Outbox rows were committed: dispatch now (the poll is only a safety net). */
void outbox_kick(void);
/* IPC_OUTBOX_KICK from a worker (a worker_msg_fn). */
int outbox_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

#endif
