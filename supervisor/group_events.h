/* Changes to groups as events: each w:gp2 notice the client reads becomes
 * group.created, group.updated or group.participants, stored with the
 * notice's id in one statement (a notice told again makes no second event),
 * published after the commit, and only then acked to the server. */
#ifndef WAPI_GROUP_EVENTS_H
#define WAPI_GROUP_EVENTS_H
#include <stdint.h>

#include "wa/wa_group.h"

/* wa_receive_events.on_group_event. */
int group_events_take(void *arg, const struct wa_group_event *ev, uint64_t token);

#endif
