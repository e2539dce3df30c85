/* People's profiles: a contact's picture and about text, the block list
 * and (un)blocking, our own about text and picture. Each a request to the
 * supervisor, which asks WhatsApp and answers with its outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc.h"
#include "common/json.h"
#include "common/sbuf.h"
#include "common/utf8.h"
#include "handlers.h"
#include "op.h"
#include "rest.h"
#include "sup_link.h"

#define PROFILE_TIMEOUT_MS 15000
#define ABOUT_MAX_CHARS 139 /* WhatsApp's */

/* {jid} of a person (a phone number or a JID, never a group); NULL after
 * answering 404. */
static char *person(struct rq *rq)
{
    char *raw = http_param(rq, 0);
    char jid[160];
    if (!raw || parse_to(raw, jid, sizeof jid) < 0 || strstr(jid, "@g.us")) {
        http_error(rq, 404, "not_found",
                   "no such person (want a phone number or user@s.whatsapp.net / user@lid)", NULL);
        return NULL;
    }
    if (!strchr(jid, '@'))
        strncat(jid, "@s.whatsapp.net", sizeof jid - strlen(jid) - 1);
    char *out = h2o_mem_alloc_pool(&rq->req->pool, strlen(jid) + 1);
    memcpy(out, jid, strlen(jid) + 1);
    return out;
}

/* Sends b (IPC_ACTION) and answers with the supervisor's reply; frees b. */
static void ask(struct rq *rq, struct sbuf *b)
{
    sup_ask_action(rq, b, PROFILE_TIMEOUT_MS);
}

void h_contact_picture(struct rq *rq)
{
    char *jid = person(rq);
    if (jid)
        picture_get(rq, jid);
}

void h_contact_about(struct rq *rq)
{
    char *jid = person(rq);
    if (!jid)
        return;
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_ABOUT);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ask(rq, &b);
}

void h_blocklist(struct rq *rq)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_BLOCKLIST);
    ask(rq, &b);
}

/* ---- (un)blocking: WhatsApp wants the person's LID and, to block, their
 * number beside it; both looked up among the contacts we know. */

struct block_op {
    struct op_base b;
    int block;
    const char *jid;
    const char *params[1];
};

static void on_person(void *ctx, const PGresult *res, const char *err)
{
    struct block_op *o = ctx;
    if (!op_done(o, res, err))
        return;
    struct rq *rq = o->b.rq;
    rq->on_abort = NULL;
    const char *pn = NULL, *lid = NULL;
    if (PQntuples(res) == 1) {
        pn = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
        lid = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
    }
    /* By LID with the number when both are known; else as given. */
    const char *jid = lid ? lid : o->jid;
    const char *with = lid && pn ? pn : NULL;
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_ACT_BLOCK);
    ipc_wr_bytes(&b, jid, (uint32_t)strlen(jid));
    ipc_wr_u32(&b, (uint32_t)o->block);
    ipc_wr_u32(&b, with != NULL);
    if (with)
        ipc_wr_bytes(&b, with, (uint32_t)strlen(with));
    ask(rq, &b);
}

static void block(struct rq *rq, int on)
{
    char *jid = person(rq);
    if (!jid)
        return;
    struct block_op *o = op_alloc(rq, sizeof *o);
    o->block = on;
    o->jid = jid;
    o->params[0] = jid;
    op_run(o,
           "SELECT CASE WHEN jid LIKE '%@s.whatsapp.net' THEN jid END, lid FROM wa_contacts "
           "WHERE jid = $1 OR lid = $1 LIMIT 1",
           1, o->params, on_person);
}

void h_contact_block(struct rq *rq)
{
    block(rq, 1);
}

void h_contact_unblock(struct rq *rq)
{
    block(rq, 0);
}

/* ---- our own profile */

/* PUT /api/profile/about {about}: 1 to 139 characters. */
void h_profile_about(struct rq *rq)
{
    yajl_val body = rest_body(rq, REST_BODY_MAX);
    if (!body)
        return;
    const char *t = json_str(body, "about");
    long chars = t ? utf8_len(t, strlen(t)) : -1;
    if (chars < 1 || chars > ABOUT_MAX_CHARS || strspn(t, " \t\r\n") == strlen(t)) {
        http_error(rq, 400, "invalid_about", "about must be a string of 1 to 139 characters", "about");
    } else {
        struct sbuf b;
        sbuf_init(&b);
        ipc_wr_u32(&b, IPC_ACT_ABOUT_SET);
        ipc_wr_bytes(&b, t, (uint32_t)strlen(t));
        ask(rq, &b);
    }
    yajl_tree_free(body);
}

void h_profile_picture_set(struct rq *rq)
{
    picture_put(rq, "me");
}

void h_profile_picture_remove(struct rq *rq)
{
    picture_remove(rq, "me");
}
