/* A worker's IPC_ACTION request: its fields read, its answer now or later. */
#include "action_req.h"

#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"
#include "common/log.h"
#include "session.h"
#include "wa/wa_client.h"
#include "worker_table.h"

int action_req_not_connected(uint32_t *status, struct sbuf *body)
{
    *status = 409;
    jw_error_body(body, "not_connected", "the WhatsApp session is not connected", NULL);
    return 0;
}

int action_req_str(struct ipc_rd *rd, char *buf, size_t cap)
{
    uint32_t len;
    const uint8_t *p = ipc_rd_bytes(rd, &len);
    if (!p || len == 0 || len >= cap || memchr(p, 0, len))
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return 0;
}

void action_req_answer(const void *rec, uint32_t status, const struct sbuf *b, const char *what)
{
    const struct later *l = rec;
    if (!b->oom && workers_reply(l->pid, l->msg_id, status, b->buf, b->len) < 0)
        log_info("answered after its worker left", LF_S("what", what), LF_I("pid", l->pid));
}

void *action_req_later(size_t size, pid_t pid, uint32_t msg_id, uint32_t *status, struct sbuf *body)
{
    struct later *l = calloc(1, size);
    if (!l) {
        *status = 503;
        jw_error_body(body, "out_of_memory", "try again", NULL);
        return NULL;
    }
    l->pid = pid, l->msg_id = msg_id;
    return l;
}

struct wa_client *action_req_client(uint32_t *status, struct sbuf *body)
{
    struct wa_client *c = session_client();
    if (c && wa_client_state(c) == WA_CONNECTED)
        return c;
    action_req_not_connected(status, body);
    return NULL;
}
