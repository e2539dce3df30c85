/* Presence on the wire: a contact's availability (<presence from type last>)
 * and typing in a chat (<chatstate from [participant]><composing [media]/>
 * | <paused/></chatstate>), read into plain values. Protocol only. */
#ifndef WAPI_WA_PRESENCE_H
#define WAPI_WA_PRESENCE_H
#include <stdint.h>

#include "wa_binary.h"

enum wa_presence_kind { WA_PRESENCE_AVAILABILITY, WA_PRESENCE_CHATSTATE };

struct wa_presence {
    enum wa_presence_kind kind;
    char jid[96];      /* who (a person's JID, without device) */
    char chat[96];     /* chatstate: the chat (the person, or a group) */
    const char *state; /* "available", "unavailable"; "composing", "recording", "paused" (static) */
    int64_t last_seen; /* unavailable: when last seen (unix seconds), 0 unknown or hidden */
};

/* 0 and *out filled for a <presence> or <chatstate> from a person (or in a
 * group, naming the participant); -1 for anything else or malformed. */
int wa_presence_parse(const wa_node *n, struct wa_presence *out);

#endif
