/* Calls offered to us: each becomes a call.received event (stored with
 * the call in one statement, published after the commit, and only then is
 * the stanza acked) and, with whatsapp.reject_calls, is turned down. */
#ifndef WAPI_CALLS_H
#define WAPI_CALLS_H
#include <stdint.h>

#include "wa/wa_call.h"

/* wa_receive_events.on_call. */
int calls_take(void *arg, const struct wa_call *call, uint64_t token);

#endif
