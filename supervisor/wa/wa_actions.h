/* One-shot things the API asks of the live connection: read receipts for
 * messages we received, typing indicators, and asking the server which phone
 * numbers are on WhatsApp. Stanzas only: callers own the bookkeeping. */
#ifndef WAPI_WA_ACTIONS_H
#define WAPI_WA_ACTIONS_H
#include <stddef.h>

#include "wa_client.h"

#define WA_ACT_MAX_PHONES 100

/* An <iq xmlns=usync type=get> whose <usync context mode=query> holds an empty
 * <query> and <list> for the caller to fill (both in a). */
wa_node *wa_usync_new(struct wa_client *c, wa_arena *a, const char *context, wa_node **query, wa_node **list);
/* The <list> of a usync answer; NULL when it is no result. */
const wa_node *wa_usync_list(const wa_node *answer);

/* One <receipt type=read> to chat for ids[0..n) (n >= 1; the first is the
 * stanza id, the rest a <list>). -1 when not connected or malformed. */
int wa_send_read(struct wa_client *c, const char *chat, const char *const *ids, size_t n);
/* <chatstate> to jid: typing -> <composing/>, paused -> <paused/>. */
int wa_send_chatstate(struct wa_client *c, const char *jid, int typing);
/* Our own availability: <presence type=available name> (contacts see us
 * online; the phone stops getting notifications) or unavailable. */
int wa_send_availability(struct wa_client *c, int available, const char *name);
/* Asks for a person's availability: the server answers with <presence>
 * now and on each change (wa_receive_events.on_presence). -1 when not
 * connected or jid is no person's. */
int wa_send_presence_subscribe(struct wa_client *c, const char *jid);

struct wa_contact_result {
    char phone[24]; /* digits, as asked */
    int on_whatsapp;
    char jid[96]; /* "" when the server gave none */
};
/* res is NULL (n 0) when the connection went away or the server refused;
 * why says which. res is only valid during the call. */
typedef void (*wa_contacts_cb)(void *arg, const struct wa_contact_result *res, size_t n, const char *why);
/* Asks with a usync contact query; phones are digits (international form).
 * -1 when not connected (cb will not run). */
int wa_query_contacts(struct wa_client *c, const char *const *phones, size_t n, wa_contacts_cb cb, void *arg);

#endif
