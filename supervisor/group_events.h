/* Changes to groups as events: each w:gp2 notice the client reads becomes
 * group.created, group.updated or group.participants, stored with the
 * notice's id in one statement (a notice told again makes no second event),
 * published after the commit, and only then acked to the server. A
 * group's disappearing timer is also kept on its chat. */
#ifndef WAPI_GROUP_EVENTS_H
#define WAPI_GROUP_EVENTS_H
#include <stdint.h>

#include "wa/wa_group.h"

/* wa_receive_events.on_group_event. */
int group_events_take(void *arg, const struct wa_group_event *ev, uint64_t token);
/* A group chat's disappearing timer (seconds, 0 = off) as the group's
 * metadata or a change notice says, set by by (NULL: not said), in the
 * background; chat.disappearing is raised when it changes. */
void group_events_chat_timer(const char *jid, uint32_t seconds, const char *by);

#endif
