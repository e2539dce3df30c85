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
/* Names a chat (a group by its subject), in the background. */
void inbox_chat_name(const char *jid, const char *name);
/* A chat's disappearing timer (seconds, 0 = off) as a group's metadata or
 * change notice says, set by by (NULL: not said), in the background;
 * chat.disappearing is raised when it changes. */
void inbox_chat_ephemeral(const char *jid, uint32_t seconds, const char *by);

#endif
