/* Peer data operations between a companion and its own phone, without any
 * I/O: the request to send again a message the companion could not decrypt
 * (PLACEHOLDER_MESSAGE_RESEND, inside a protocolMessage), and the phone's
 * answer: the message as the phone stored it (WebMessageInfo). */
#ifndef WAPI_WA_PEERDATA_H
#define WAPI_WA_PEERDATA_H
#include <stddef.h>
#include <stdint.h>

#include "wa_message.h"

/* A message key: its chat ("user@server"), whether we sent it, its id, and
 * in a group its sender (else NULL). */
struct wa_pd_key {
    const char *chat;
    int from_me;
    const char *id;
    const char *participant;
};

/* The Message (protocolMessage PEER_DATA_OPERATION_REQUEST_MESSAGE) asking
 * our phone to send k's message again. *out malloc'd. 0, or -1 when k is
 * unusable (no chat or id) or out of memory. */
int wa_pd_build_placeholder_request(const struct wa_pd_key *k, uint8_t **out, size_t *outlen);

/* The Message asking our phone for up to count messages of chat older than
 * its message anchor (id, from_me, ts in Unix seconds): HISTORY_SYNC_ON_DEMAND.
 * *out malloc'd. 0, or -1 when unusable (no chat or id, count outside
 * 1..WA_PD_HISTORY_MAX) or out of memory. */
#define WA_PD_HISTORY_MAX 500
int wa_pd_build_history_request(const char *chat, const char *id, int from_me, int64_t ts, int count,
                                uint8_t **out, size_t *outlen);

/* A message the phone sent again. Strings malloc'd (NULL when not told). */
struct wa_pd_resent {
    char *id, *chat, *participant, *push_name;
    int from_me;
    int64_t ts;               /* Unix seconds, 0 when not told */
    struct wa_msg_content mc; /* parsed as any received Message */
};

#define WA_PD_MAX_RESULTS 16

/* Reads a peerDataOperationRequestResponseMessage (as WA_MSG_PEER_DATA
 * carries it): each placeholder resend result whose WebMessageInfo has a
 * key with an id and a Message that parses goes into out (at most cap);
 * the others are skipped and counted in *skipped. 0, or -1 when p is no
 * such answer (err says why). Free with wa_pd_resent_free. */
int wa_pd_parse_response(const uint8_t *p, size_t n, struct wa_pd_resent *out, size_t cap, size_t *nout,
                         size_t *skipped, char *err, size_t errlen);
void wa_pd_resent_free(struct wa_pd_resent *r);

#endif
