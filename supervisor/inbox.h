/* The inbox: stores what the WhatsApp client receives, the mirror of the
 * outbox. Each batch of decrypted incoming messages is one statement
 * (wapi_incoming_store: messages, chats, contacts and their events in one
 * transaction); only after its commit are the events published and the
 * client told (wa_messaging_stored), which then makes the Signal state
 * durable and sends the receipts and acks. Also records the phone number
 * <-> LID mappings the client learns, names group chats by their subject
 * and counts undecryptable messages. */
#ifndef WAPI_INBOX_H
#define WAPI_INBOX_H

#include <stdint.h>

void inbox_init(void);
struct jsonw;
struct wa_incoming;
/* One message as the batch statement takes it (common/sql/0020_message_json.sql),
 * for the history import, which stores messages as the live path does. */
void inbox_element(struct jsonw *w, const struct wa_incoming *m, uint64_t ev);
/* Called after the commit of a batch that stored a history sync job (the
 * history runner's kick; it includes this module, not the other way). */
void inbox_set_history_kick(void (*kick)(void));
/* Names a chat (a group by its subject), in the background. */
void inbox_chat_name(const char *jid, const char *name);
/* Stores messages as the receive path would (events, placeholders asked
 * for), for the supervisor's own purposes: no batch of the messaging layer
 * waits for it. 0, or -1 when it could not go (logged by the caller). */
struct wa_incoming;
int inbox_store(const struct wa_incoming *m, int n);

#endif
