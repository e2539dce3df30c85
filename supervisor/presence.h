/* Presence: contacts' availability and typing, published as live events
 * (SSE only: they are moments, not records), and our own availability sent
 * once connected (whatsapp.presence). */
#ifndef WAPI_PRESENCE_H
#define WAPI_PRESENCE_H

#include "wa/wa_client.h"
#include "wa/wa_presence.h"

/* wa_receive_events.on_presence: presence.update {jid, state, last_seen}
 * or chat.typing {chat_jid, sender_jid, state}. */
void presence_event(void *arg, const struct wa_presence *p);
/* Logged in: our availability as configured; name is our push name. */
void presence_connected(struct wa_client *c, const char *name);

#endif
