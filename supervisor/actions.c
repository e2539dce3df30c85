#include "actions.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "session.h"
#include "wa/wa_actions.h"
#include "worker_table.h"

#define MAX_ID 64
#define MAX_JID 128

static int not_connected(uint32_t *status, struct sbuf *body)
{
    *status = 409;
    sbuf_add_json_error(body, "not_connected", "the WhatsApp session is not connected", NULL);
    return 0;
}

/* A bounded string field copied out of the payload; -1 when absent or too long. */
static int rd_str(struct ipc_rd *rd, char *buf, size_t cap)
{
    uint32_t len;
    const uint8_t *p = ipc_rd_bytes(rd, &len);
    if (!p || len == 0 || len >= cap || memchr(p, 0, len))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return 0;
}

static int do_read(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char chat[MAX_JID];
    static char ids[IPC_ACT_MAX_IDS][MAX_ID];
    const char *idp[IPC_ACT_MAX_IDS];
    if (rd_str(rd, chat, sizeof chat) < 0)
        return -1;
    uint32_t n = ipc_rd_u32(rd);
    if (n == 0 || n > IPC_ACT_MAX_IDS)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(rd, ids[i], sizeof ids[i]) < 0)
            return -1;
        idp[i] = ids[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    if (wa_send_read(c, chat, idp, n) < 0) {
        *status = 503;
        sbuf_add_json_error(body, "send_failed", "the read receipt could not be sent; try again", NULL);
        return 0;
    }
    *status = 200;
    sbuf_addf(body, "{\"receipts\":%u}", n);
    return 0;
}

static int do_presence(struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char jid[MAX_JID], state[16];
    if (rd_str(rd, jid, sizeof jid) < 0 || rd_str(rd, state, sizeof state) < 0 || ipc_rd_end(rd) < 0)
        return -1;
    int typing = strcmp(state, "typing") == 0;
    if (!typing && strcmp(state, "paused") != 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    if (wa_send_chatstate(c, jid, typing) < 0) {
        *status = 503;
        sbuf_add_json_error(body, "send_failed", "the presence update could not be sent; try again", NULL);
        return 0;
    }
    *status = 200;
    sbuf_addf(body, "{\"state\":\"%s\"}", state);
    return 0;
}

struct pending_contacts {
    pid_t pid;
    uint32_t msg_id;
};

static void on_contacts(void *arg, const struct wa_contact_result *res, size_t n, const char *why)
{
    struct pending_contacts *p = arg;
    struct sbuf b;
    sbuf_init(&b);
    uint32_t status = 200;
    if (!res) {
        status = 503;
        sbuf_add_json_error(&b, "whatsapp_unavailable", why ? why : "no answer from WhatsApp", NULL);
    } else {
        sbuf_adds(&b, "{\"data\":[");
        for (size_t i = 0; i < n; i++) {
            sbuf_addf(&b, "%s{\"phone\":\"%s\",\"on_whatsapp\":%s,\"jid\":", i ? "," : "", res[i].phone,
                      res[i].on_whatsapp ? "true" : "false");
            if (res[i].jid[0])
                sbuf_add_json_str(&b, res[i].jid, strlen(res[i].jid));
            else
                sbuf_adds(&b, "null");
            sbuf_addc(&b, '}');
        }
        sbuf_adds(&b, "]}");
    }
    if (!b.oom && workers_reply(p->pid, p->msg_id, status, b.buf, b.len) < 0)
        log_info("number check answered after its worker left", LF_I("pid", p->pid));
    sbuf_free(&b);
    free(p);
}

static int do_contacts(pid_t pid, uint32_t msg_id, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    char phones[WA_ACT_MAX_PHONES][24];
    const char *pp[WA_ACT_MAX_PHONES];
    uint32_t n = ipc_rd_u32(rd);
    if (n == 0 || n > WA_ACT_MAX_PHONES || n > IPC_ACT_MAX_PHONES)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (rd_str(rd, phones[i], sizeof phones[i]) < 0 ||
            strspn(phones[i], "0123456789") != strlen(phones[i]))
            return -1;
        pp[i] = phones[i];
    }
    if (ipc_rd_end(rd) < 0)
        return -1;
    struct wa_client *c = session_client();
    if (!c || wa_client_state(c) != WA_CONNECTED)
        return not_connected(status, body);
    struct pending_contacts *p = malloc(sizeof *p);
    if (!p) {
        *status = 503;
        sbuf_add_json_error(body, "out_of_memory", "try again", NULL);
        return 0;
    }
    p->pid = pid;
    p->msg_id = msg_id;
    if (wa_query_contacts(c, pp, n, on_contacts, p) < 0) {
        free(p);
        *status = 503;
        sbuf_add_json_error(body, "send_failed", "the query could not be sent; try again", NULL);
        return 0;
    }
    return 1;
}

int actions_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body)
{
    switch (ipc_rd_u32(rd)) {
    case IPC_ACT_READ:
        return do_read(rd, status, body);
    case IPC_ACT_PRESENCE:
        return do_presence(rd, status, body);
    case IPC_ACT_CONTACTS:
        return do_contacts(m->pid, m->id, rd, status, body);
    default:
        return -1;
    }
}
