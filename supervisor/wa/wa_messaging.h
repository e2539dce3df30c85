/* Messaging on the live WhatsApp connection, in the supervisor.
 * Receive: <message> stanzas one at a time — decrypt (Signal), parse,
 * commit to PostgreSQL (message, chat, contact, event in one statement),
 * only then make the Signal state change durable and send the receipt and
 * the ack; a failed decryption gets a retry receipt (at most 5 per message).
 * Send: device list (usync), prekey bundles for devices without a session,
 * one encrypted copy per device of the recipient and of our other devices
 * (deviceSentMessage), the stanza, the server's ack; receipts reported. */
#ifndef WAPI_WA_MESSAGING_H
#define WAPI_WA_MESSAGING_H
#include <stdint.h>

#include "wa_client.h"

enum wa_send_result { WA_SEND_OK = 0, WA_SEND_TRANSIENT = 1, WA_SEND_FAILED = 2 };

struct wa_messaging_events {
    /* The server took the message (or not); err says why when not ok. */
    void (*on_sent)(void *arg, const char *id, enum wa_send_result r, const char *err);
    /* status: delivered | read | played, for message ids we sent. */
    void (*on_receipt)(void *arg, const char *id, const char *status, const char *from);
    /* Logged in: sending can start. */
    void (*on_ready)(void *arg);
};

void wa_messaging_init(struct wa_client *c, const struct wa_messaging_events *ev, void *arg);
/* Starts sending one text message (one at a time); -1 when busy or not connected. */
int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to);
int wa_messaging_busy(void);
int wa_messaging_ready(void);
/* Counters for logs and metrics. */
uint64_t wa_messaging_decrypt_failures(void);

#endif
