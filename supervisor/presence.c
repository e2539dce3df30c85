#include "presence.h"

#include <string.h>
#include <time.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "common/timefmt.h"
#include "events.h"
#include "sup.h"
#include "wa/wa_actions.h"

void presence_event(void *arg, const struct wa_presence *p)
{
    (void)arg;
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    if (p->kind == WA_PRESENCE_AVAILABILITY) {
        jw_kstr(&w, "jid", p->jid);
        jw_kstr(&w, "state", p->state);
        jw_key(&w, "last_seen");
        if (p->last_seen > 0) {
            char ts[RFC3339_LEN];
            rfc3339_s((time_t)p->last_seen, ts, sizeof ts);
            jw_str(&w, ts);
        } else {
            jw_null(&w);
        }
    } else {
        jw_kstr(&w, "chat_jid", p->chat);
        jw_kstr(&w, "sender_jid", p->jid);
        jw_kstr(&w, "state", p->state);
    }
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        events_publish(events_next_id(),
                       p->kind == WA_PRESENCE_AVAILABILITY ? "presence.update" : "chat.typing", b.buf);
    else
        log_warn("presence event lost: out of memory", LF_S("jid", p->jid));
    sbuf_free(&b);
}

void presence_connected(struct wa_client *c, const char *name)
{
    int available = S.cfg.whatsapp.presence && !strcmp(S.cfg.whatsapp.presence, "available");
    if (wa_send_availability(c, available, name) < 0)
        log_warn("our availability was not sent", LF_S("presence", available ? "available" : "unavailable"));
}
