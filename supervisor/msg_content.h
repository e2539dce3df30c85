/* The messages the outbox builds from a row (a place, contact cards from
 * the API's JSON kept in wa_messages.content; a reaction from its columns;
 * our change of a chat's disappearing timer)
 * into WhatsApp's Message: what it sends and resends. */
#ifndef WAPI_MSG_CONTENT_H
#define WAPI_MSG_CONTENT_H
#include <stddef.h>
#include <stdint.h>

/* A row of wa_messages as the outbox reads it (strings borrowed). */
struct msg_row {
    const char *type, *content, *reply_to;
    const char *text; /* an edit's new text */
    const char *chat;
    const char *target, *reaction; /* a reaction: the message it is about, its emoji ("" takes it back) */
    int target_from_me;            /* that message is ours */
    const char *target_sender;     /* else who wrote it (a group member), or NULL */
    long long ts_ms;               /* when it was accepted */
};

/* 1 when a row of this type ("location", "contacts", "poll", "vote",
 * "reaction", "edit", "revoke", "disappearing") is sent
 * through msg_content_build. */
int msg_content_type(const char *type);
/* The Message for the row. *out malloc'd. 0, or -1 with *why set (the row
 * cannot be sent: it does not become sendable later). */
int msg_content_build(const struct msg_row *r, uint8_t **out, size_t *outlen, const char **why);

#endif
