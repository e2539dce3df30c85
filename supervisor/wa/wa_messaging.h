/* Messaging on the live WhatsApp connection: the protocol side only (no
 * database; the application stores through the callbacks).
 * Receive: the <message> stanzas that arrived together, each decrypted
 * (Signal) and parsed, handed to the application as one batch; only when it
 * answers that the batch is committed is the Signal state made durable and
 * the receipts and acks sent; a failed decryption gets a retry receipt (at
 * most 5 per message).
 * Send: device list (usync, or a list fetched in the last minutes), prekey
 * bundles for devices without a session, one encrypted copy per device of
 * the recipient and of our other devices (deviceSentMessage), the stanza,
 * the server's ack; receipts reported. One message is prepared at a time, in
 * the order given, and up to a window of written stanzas await their ack
 * while the next is prepared. */
#ifndef WAPI_WA_MESSAGING_H
#define WAPI_WA_MESSAGING_H
#include <event2/event.h>
#include <stdint.h>

#include "wa_client.h"
#include "wa_call.h"
#include "wa_group.h"
#include "wa_presence.h"
#include "wa_message.h"
#include "wa_mediaretry.h"

/* WA_SEND_LOST: the connection went away before the server took the message
 * (or before its ack came): it goes again, with its id, on the next one. */
enum wa_send_result { WA_SEND_OK = 0, WA_SEND_TRANSIENT = 1, WA_SEND_FAILED = 2, WA_SEND_LOST = 3 };

/* A recipient's device could not decrypt a message we sent and asks for it
 * again (a retry receipt). Strings borrowed for the call. */
struct wa_retry_request {
    const char *id;            /* the message */
    const char *user, *server; /* the device that asked */
    int device;
    int count; /* its retry count, 1.. */
};

/* What the sending side (the outbox) is told. */
struct wa_send_events {
    /* The server took the message (or not); err says why when not ok. */
    void (*on_sent)(void *arg, const char *id, enum wa_send_result r, const char *err);
    /* status: delivered | read | played, for message ids we sent; from:
     * the chat (a person's device, or a group), participant: in a group,
     * the member's device that answered (else NULL). */
    void (*on_receipt)(void *arg, const char *id, const char *status, const char *from,
                       const char *participant);
    /* Logged in: sending can start. */
    void (*on_ready)(void *arg);
    /* Answer with wa_messaging_resend() when the message is ours and still
     * there, or not at all. */
    void (*on_retry)(void *arg, const struct wa_retry_request *r);
};

/* One decrypted incoming message, as the application stores it. Strings
 * borrowed for the call. */
struct wa_incoming {
    const char *id;                       /* the stanza's id */
    const char *chat;                     /* "user@server": the phone number's chat when known, the group's */
    const char *sender;                   /* "user@server", NULL when unknown */
    int from_me;                          /* sent by one of our other devices */
    int64_t ts;                           /* Unix seconds */
    const char *push_name, *lid;          /* the sender's, NULL when not told */
    const struct wa_msg_content *content; /* kind is never WA_MSG_NONE */
    /* Our phone sent it again (a placeholder resend): it fills the
     * placeholder stored under id (kind WA_MSG_UNDECRYPTABLE) and nothing
     * else; with no such placeholder it changes nothing. */
    int fill;
};

/* Incoming messages handed over together at most. */
#define WA_INCOMING_MAX 64

/* What the receiving side (the inbox) is told. */
struct wa_receive_events {
    /* Messages that arrived together, decrypted, in order: store them (one
     * transaction), then call wa_messaging_stored() with token. Until then
     * none of them is acknowledged and no Signal state they changed is made
     * durable. 0 when taken; -1 when not (as if the commit had failed). */
    int (*on_incoming)(void *arg, const struct wa_incoming *m, int n, uint64_t token);
    /* A phone number's LID, from a device list ("user@s.whatsapp.net", "user@lid"). */
    void (*on_lid)(void *arg, const char *pn, const char *lid);
    /* A message that could not be decrypted (a retry receipt goes out when
     * retries are left; when none are, or none can help, it is handed over
     * as a placeholder: content kind WA_MSG_UNDECRYPTABLE). */
    void (*on_undecryptable)(void *arg, const char *id, const char *from);
    /* Our phone answered a media retry request (wa_messaging_media_retry):
     * open it with wa_mediaretry_decrypt and the message's media key.
     * Borrowed for the call. */
    void (*on_media_retry)(void *arg, const struct wa_mediaretry_note *note);
    /* A contact's availability, or typing in a chat (borrowed for the call). */
    void (*on_presence)(void *arg, const struct wa_presence *p);
    /* A group's subject, as the server named it (its metadata, or a change). */
    void (*on_group_subject)(void *arg, const char *gjid, const char *subject);
    /* A change to a group (created, updated, participants): store it, then
     * call wa_messaging_held_done(token, stored); the notice is acked
     * only then (not stored: not acked, the server tells it again). 0 when
     * taken, -1 when not. ev borrowed for the call. */
    int (*on_group_event)(void *arg, const struct wa_group_event *ev, uint64_t token);
    /* Someone rings us (an offer): as on_group_event, acked once stored
     * (wa_messaging_held_done). call borrowed for the call. */
    int (*on_call)(void *arg, const struct wa_call *call, uint64_t token);
};

/* Messaging on client c; timers on base. */
void wa_messaging_init(struct wa_client *c, struct event_base *base);
void wa_messaging_set_send_events(const struct wa_send_events *ev, void *arg);
void wa_messaging_set_receive_events(const struct wa_receive_events *ev, void *arg);
/* The batch given with token is stored (applied: one 't' or 'f' per message,
 * in order: 't' when it made a change) or not (applied NULL, err says why:
 * nothing of the batch is acknowledged, the connection is dropped so the
 * server resends it, and its Signal state is undone so it decrypts again). */
void wa_messaging_stored(uint64_t token, const char *applied, const char *err);
/* Turns down a call on_call was given; -1 when not connected. */
int wa_messaging_call_reject(const struct wa_call *call);
/* What on_group_event or on_call was given is stored (1: its stanza is
 * acked) or not (0: not acked, the server tells it again). */
void wa_messaging_held_done(uint64_t token, int stored);
/* Our account as "user@s.whatsapp.net" and "user@lid" (no device); "" when
 * not known (not linked, no LID yet). */
void wa_messaging_own_jids(char *pn, size_t pnlen, char *lid, size_t lidlen);
/* Takes one text message to send after those given before (on_sent tells
 * how it went); -1 when full or not connected, -2 when to_jid is no JID.
 * to_jid may be a group's. mentions: the JIDs it mentions, newline-separated
 * (NULL or "": none). */
int wa_messaging_send(const char *id, const char *to_jid, const char *text, const char *reply_to,
                      const char *mentions);
/* The same for a media message: media is the attachment as uploaded
 * (media key, both sums, direct path; copied). */
int wa_messaging_send_media(const char *id, const char *to_jid, const struct wa_msg_media *media,
                            const char *reply_to, const char *mentions);
/* The same for a Message the application built with wa_msg_build_location /
 * _contacts (msg: serialized, copied; sent as is, and inside
 * deviceSentMessage to our other devices). */
int wa_messaging_send_raw(const char *id, const char *to_jid, const uint8_t *msg, size_t n);
/* Answers a retry request: the message (our text, or our media, in chat_jid)
 * again, to the device that asked only, in a new session. -1 when it cannot
 * be queued. */
int wa_messaging_resend(const struct wa_retry_request *r, const char *chat_jid, const char *text,
                        const struct wa_msg_media *media, const char *reply_to, const char *mentions);
int wa_messaging_resend_raw(const struct wa_retry_request *r, const char *chat_jid, const uint8_t *msg,
                            size_t n);
/* Asks our phone to upload a received message's media again (the media
 * hosts no longer have it): its answer comes to on_media_retry. chat_jid:
 * the message's chat; participant: its sender in a group, else NULL. -1 when
 * not connected or the arguments are unusable. */
int wa_messaging_media_retry(const char *id, const char *chat_jid, int from_me, const char *participant,
                             const uint8_t media_key[32]);
/* Asks our phone (device 0 of our account, a peer message) to send again a
 * message we could not decrypt: its id, chat, whether we sent it, and its
 * sender in a group (else NULL). The answer arrives as an incoming message
 * (on_incoming, fill set). 0 when queued; -1 when not connected, full, or
 * the key is unusable. */
int wa_messaging_placeholder_resend(const char *id, const char *chat_jid, int from_me,
                                    const char *participant);
/* Asks our phone for up to count messages of chat_jid older than its
 * message id (from_me, ts in Unix seconds): a peer message
 * (HISTORY_SYNC_ON_DEMAND) whose id goes to request_id; the answer comes as
 * a history sync notification of type ON_DEMAND. 0 when queued; -1 when
 * not connected, full, or the arguments are unusable. */
int wa_messaging_history_request(const char *chat_jid, const char *id, int from_me, int64_t ts, int count,
                                 char *request_id, size_t rlen);
/* Tells our phone a history sync notification was processed (imported,
 * or refused for good): <receipt id type="hist_sync" to="OUR_NUMBER@s.whatsapp.net"/>.
 * 0 when sent; -1 when not connected. */
int wa_messaging_hist_sync_receipt(const char *id);
/* Sends msg (a serialized Message, copied) to our own phone (device 0) as a
 * peer message, e.g. a request for app-state sync keys. 0 when queued; -1
 * when not connected, full or out of memory. */
int wa_messaging_own_phone_send(const uint8_t *msg, size_t len);
/* <notification type="server_sync"> (acked already): the collections it
 * names, to cb (names borrowed for the call). */
void wa_messaging_set_server_sync(void (*cb)(void *arg, const char *const *names, size_t n), void *arg);
/* A group's membership changed (a w:gp2 notification or our own management
 * call): its participant list is fetched again before the next send, and
 * when someone left or was removed (member_left) our sender key for it is
 * replaced, so a former member cannot read what follows. gjid: "…@g.us". */
void wa_messaging_group_changed(const char *gjid, int member_left);
/* How many more messages wa_messaging_send takes now (0 when not connected). */
int wa_messaging_room(void);
/* wa_messaging_room() == 0. */
int wa_messaging_busy(void);
int wa_messaging_ready(void);

#endif
