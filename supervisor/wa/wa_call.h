/* Calls on the wire: a <call> stanza (someone rings us, gives up, or the
 * call ends) read into plain values, and the <call><reject/></call> that
 * turns an offer down. wapi takes no calls: it tells the application and,
 * when asked to, rejects them. Protocol only. */
#ifndef WAPI_WA_CALL_H
#define WAPI_WA_CALL_H
#include <stdint.h>

#include "wa_binary.h"
#include "wa_client.h"

struct wa_call {
    char stanza_id[64];
    char call_id[64];
    char from[96];      /* who rings (a person's JID, no device) */
    char creator[128];  /* call-creator as sent (with device): what a reject names */
    int creator_ad;     /* ... and it came as a device JID (device 0 too): named back so */
    char caller_pn[96]; /* the caller's phone number's JID when the call comes by LID ("" unknown) */
    char group_jid[96]; /* a group call's group ("" for a 1:1 call) */
    const char *status; /* "offer", "terminate", "timeout", "reject", "accept", or "other" (static) */
    int video, offline; /* offline: the server kept it while we were away */
    int64_t ts;         /* Unix seconds (0 unknown) */
};

/* 0 and *out filled for a <call> with one child and a call-id; -1 for
 * anything else or malformed. */
int wa_call_parse(const wa_node *n, struct wa_call *out);
/* Turns down the offer call (as parsed); -1 when not connected. */
int wa_call_reject(struct wa_client *c, const struct wa_call *call);

#endif
