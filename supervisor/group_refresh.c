#include "group_refresh.h"

#include <stddef.h>

#include "common/log.h"
#include "group_events.h"
#include "inbox.h"
#include "wa/wa_group.h"

static size_t seen; /* groups in the answer being read */

static void on_participating(void *arg, const struct wa_group_info *g, int code, const char *why)
{
    (void)arg;
    if (g) {
        seen++;
        if (g->subject && *g->subject)
            inbox_chat_name(g->jid, g->subject);
        group_events_chat_timer(g->jid, g->ephemeral_seconds, NULL); /* one changed while away */
    } else if (code == 200) {
        log_info("groups refreshed", LF_I("groups", seen));
    } else {
        log_warn("the groups we are in could not be listed", LF_I("code", code), LF_S("why", why));
    }
}

void group_refresh(struct wa_client *c)
{
    seen = 0;
    if (wa_group_participating(c, on_participating, NULL) < 0)
        log_warn("the groups we are in could not be asked for", LF_S("why", "not connected"));
}
