/* The structured messages (a place, contact cards) between the API's JSON,
 * as kept in wa_messages.content, and WhatsApp's Message: what the outbox
 * sends and resends. */
#ifndef WAPI_MSG_CONTENT_H
#define WAPI_MSG_CONTENT_H
#include <stddef.h>
#include <stdint.h>

/* 1 when type ("location", "contacts") is sent through msg_content_build. */
int msg_content_type(const char *type);
/* The Message for a row of that type: content its JSON, reply_to the quoted
 * id (or NULL/""). *out malloc'd. 0, or -1 with *why set (the row cannot be
 * sent: it does not become sendable later). */
int msg_content_build(const char *type, const char *content, const char *reply_to, uint8_t **out,
                      size_t *outlen, const char **why);

#endif
