/* Messaging on the live WhatsApp connection, in the supervisor.
 * Receive: <message> stanzas one at a time — decrypt (Signal), parse,
 * commit to PostgreSQL (message, chat, contact, event in one statement),
 * only then make the Signal state change durable and send the receipt and
 * the ack; a failed decryption gets a retry receipt (at most 5 per message).
 * Send: device list (usync, or a list fetched in the last minutes), prekey
 * bundles for devices without a session, one encrypted copy per device of
 * the recipient and of our other devices (deviceSentMessage), the stanza,
 * the server's ack; receipts reported. One message is prepared at a time, in
 * the order given, and up to a window of written stanzas await their ack
 * while the next is prepared. */
#ifndef WAPI_WA_MESSAGING_H
#define WAPI_WA_MESSAGING_H
#include <stdint.h>

#include "wa_client.h"

/* WA_SEND_LOST: the connection went away before the server took the message
 * (or before its ack came): it goes again, with its id, on the next one. */
enum wa_send_result { WA_SEND_OK = 0, WA_SEND_TRANSIENT = 1, WA_SEND_FAILED = 2, WA_SEND_LOST = 3 };

struct wa_messaging_events {
    /* The server took the message (or not); err says why when not ok. */
    void (*on_sent)(void *arg, const char *id, enum wa_send_result r, const char *err);
    /* status: delivered | read | played, for message ids we sent. */
    void (*on_receipt)(void *arg, const char *id, const char *status, const char *from);
    /* Logged in: sending can start. */
    void (*on_ready)(void *arg);
};

void wa_messaging_init(struct wa_client *c, const struct wa_messaging_events *ev, void *arg);
/* Takes one text message to send after those given before (on_sent tells
 * how it went); -1 when full or not connected, -2 when to_jid is no JID. */
int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to);
/* How many more messages wa_messaging_send takes now (0 when not connected). */
int wa_messaging_room(void);
/* wa_messaging_room() == 0. */
int wa_messaging_busy(void);
int wa_messaging_ready(void);
/* Counters for logs and metrics. */
uint64_t wa_messaging_decrypt_failures(void);

#endif
