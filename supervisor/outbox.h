/* The outbox dispatcher: sends the wa_outbox rows the API commits over the
 * WhatsApp connection. Wakes when a worker says it committed rows
 * (IPC_OUTBOX_KICK; the API is the only writer) and every POLL_S seconds as
 * a safety net (a worker that died between its commit and its kick). The message id
 * was fixed when the row was made, so a resend after a crash is the same
 * message. Server ack -> sent, receipts -> delivered / read, refusals ->
 * failed with the reason, transient failures retried with backoff; every
 * change is one statement with its wa_events row, published after commit. */
#ifndef WAPI_OUTBOX_H
#define WAPI_OUTBOX_H
#include <event2/event.h>

#include "common/db_params.h"
#include "wa/wa_client.h"

void outbox_init(struct event_base *base, const struct db_params *params, struct wa_client *c);
void outbox_shutdown(void);
/* A worker committed outbox rows: dispatch now (the poll is only a safety net). */
void outbox_kick(void);

#endif
