#include "profile_actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "action_req.h"
#include "common/jsonw.h"
#include "common/timefmt.h"
#include "wa/wa_profile.h"

#define MAX_JID 128

struct pending {
    struct later to; /* first */
    uint32_t act;
    int block;
    char jid[MAX_JID];
};

/* The server's refusal as the API's error. */
static void refused(struct sbuf *b, uint32_t *status, int code, const char *why)
{
    *status = code == 404                  ? 404
              : code == 401 || code == 403 ? 403
              : code == 400 || code == 406 ? 400
              : code                       ? 502
                                           : 503;
    jw_error_body(b,
                  code == 404                  ? "not_found"
                  : code == 401 || code == 403 ? "not_allowed"
                  : code == 400 || code == 406 ? "not_acceptable"
                  : code                       ? "whatsapp_error"
                                               : "whatsapp_unavailable",
                  why, NULL);
}

static void about_json(struct jsonw *w, const struct pending *p, const wa_node *answer, uint32_t *status,
                       struct sbuf *b)
{
    char *text;
    int64_t at;
    int r = wa_about_parse(answer, &text, &at);
    if (r < 0) {
        refused(b, status, 500, "the server's answer holds no about text");
        return;
    }
    if (r == 0) {
        *status = 404;
        jw_error_body(b, "about_hidden", "no about text, or it is hidden from us", NULL);
        return;
    }
    jw_init(w, b);
    jw_obj(w);
    jw_kstr(w, "jid", p->jid);
    jw_kstr(w, "about", text);
    jw_key(w, "set_at");
    if (at) {
        char ts[RFC3339_LEN];
        rfc3339_s((time_t)at, ts, sizeof ts);
        jw_str(w, ts);
    } else {
        jw_null(w);
    }
    jw_obj_end(w);
    free(text);
}

static void blocklist_json(struct jsonw *w, const wa_node *answer, uint32_t *status, struct sbuf *b)
{
    static char jids[WA_BLOCKLIST_MAX][96];
    int n = wa_blocklist_parse(answer, jids, WA_BLOCKLIST_MAX);
    if (n < 0) {
        refused(b, status, 500, "the server's answer holds no block list");
        return;
    }
    jw_init(w, b);
    jw_obj(w);
    jw_key(w, "data");
    jw_arr(w);
    for (int i = 0; i < n; i++)
        jw_str(w, jids[i]);
    jw_arr_end(w);
    jw_obj_end(w);
}

static void on_answer(void *arg, const wa_node *answer, int code, const char *why)
{
    struct pending *p = arg;
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    uint32_t status = 200;
    if (!answer) {
        refused(&b, &status, code, why);
    } else if (p->act == IPC_ACT_ABOUT) {
        about_json(&w, p, answer, &status, &b);
    } else if (p->act == IPC_ACT_BLOCKLIST) {
        blocklist_json(&w, answer, &status, &b);
    } else {
        jw_init(&w, &b);
        jw_obj(&w);
        if (p->act == IPC_ACT_BLOCK) {
            jw_kstr(&w, "jid", p->jid);
            jw_kbool(&w, "blocked", p->block);
        } else {
            jw_kbool(&w, "ok", 1);
        }
        jw_obj_end(&w);
    }
    if (status == 200)
        workers_answer_json(&w, &status, &b);
    action_req_answer(p, status, &b, "profile");
    sbuf_free(&b);
    free(p);
}

int profile_actions_ipc(uint32_t act, const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                        struct sbuf *body)
{
    char a1[WA_ABOUT_MAX + 1] = "", pn[MAX_JID] = "";
    uint32_t block = 0;
    if ((act == IPC_ACT_ABOUT || act == IPC_ACT_BLOCK) && action_req_str(rd, a1, MAX_JID) < 0)
        return -1;
    if (act == IPC_ACT_ABOUT_SET && action_req_str(rd, a1, sizeof a1) < 0)
        return -1;
    if (act == IPC_ACT_BLOCK) {
        block = ipc_rd_u32(rd);
        uint32_t has_pn = ipc_rd_u32(rd);
        if (block > 1 || has_pn > 1 || (has_pn && action_req_str(rd, pn, sizeof pn) < 0))
            return -1;
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = action_req_client(status, body);
    if (!c)
        return 0;
    struct pending *p = action_req_later(sizeof *p, m->pid, m->id, status, body);
    if (!p)
        return 0;
    p->act = act;
    p->block = (int)block;
    if (act != IPC_ACT_ABOUT_SET)
        snprintf(p->jid, sizeof p->jid, "%s", a1);
    int r = act == IPC_ACT_ABOUT       ? wa_about_get(c, a1, on_answer, p)
            : act == IPC_ACT_ABOUT_SET ? wa_about_set(c, a1, on_answer, p)
            : act == IPC_ACT_BLOCKLIST ? wa_blocklist_get(c, on_answer, p)
                                       : wa_blocklist_set(c, a1, pn[0] ? pn : NULL, (int)block, on_answer, p);
    if (r < 0) {
        free(p);
        return -1;
    }
    return 1;
}
