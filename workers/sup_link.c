#include "sup_link.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "http.h"

#define MAX_PENDING 1024

struct pending {
    uint32_t id;
    sup_reply_cb cb;
    void *ctx;
    uint64_t sent_us, deadline_ms;
};

static struct {
    h2o_loop_t *loop;
    int fd;
    h2o_socket_t *sock;
    struct sup_handlers h;
    struct metrics_slot *m;
    struct pending pend[MAX_PENDING];
    unsigned npend;
    uint32_t next_id;
    uint64_t last_heartbeat_ms;
    int lost;
    uint8_t buf[IPC_HDR_LEN + IPC_MAX_PAYLOAD];
} S;

int sup_handshake(int fd, uint32_t *slot, uint32_t *generation, char **config_text)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_VERSION);
    int r = ipc_send(fd, IPC_HELLO, 0, b.buf, b.len, NULL, 0);
    sbuf_free(&b);
    if (r < 0)
        return -1;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 10000) != 1)
        return -1;
    struct ipc_msg m;
    const char *why = "";
    if (ipc_recv(fd, S.buf, sizeof S.buf, &m, &why) != 1 || m.h.type != IPC_WELCOME)
        return -1;
    struct ipc_rd rd;
    ipc_rd_init(&rd, &m);
    uint32_t ver = ipc_rd_u32(&rd);
    *slot = ipc_rd_u32(&rd);
    *generation = ipc_rd_u32(&rd);
    uint32_t n;
    const uint8_t *txt = ipc_rd_bytes(&rd, &n);
    if (ipc_rd_end(&rd) < 0 || ver != IPC_VERSION || !txt)
        return -1;
    *config_text = malloc(n + 1);
    if (!*config_text)
        return -1;
    memcpy(*config_text, txt, n);
    (*config_text)[n] = '\0';
    return 0;
}

static void lost(const char *why)
{
    if (S.lost)
        return;
    S.lost = 1;
    log_warn("supervisor link lost", LF_S("why", why));
    for (unsigned i = 0; i < S.npend; i++)
        S.pend[i].cb(S.pend[i].ctx, NULL);
    S.npend = 0;
    if (S.sock) {
        h2o_socket_read_stop(S.sock);
    }
    if (S.h.on_lost)
        S.h.on_lost();
}

static void take_reply(const struct ipc_msg *m)
{
    for (unsigned i = 0; i < S.npend; i++) {
        if (S.pend[i].id != m->h.id)
            continue;
        struct pending p = S.pend[i];
        S.pend[i] = S.pend[--S.npend];
        metrics_observe_rtt(S.m, http_now_us() - p.sent_us);
        p.cb(p.ctx, m);
        return;
    }
    /* A reply after its timeout: nothing waits for it any more. */
    for (int k = 0; k < m->nfds; k++)
        close(m->fds[k]);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    (void)sock, (void)err;
    for (int i = 0; i < 64 && !S.lost; i++) {
        struct ipc_msg m;
        const char *why = "";
        int r = ipc_recv(S.fd, S.buf, sizeof S.buf, &m, &why);
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r == 0) {
            lost("supervisor closed the link");
            return;
        }
        if (r < 0) {
            lost(r == -2 ? why : strerror(errno));
            return;
        }
        if (m.h.type != IPC_REPLY) {
            for (int k = 0; k < m.nfds; k++)
                close(m.fds[k]); /* only replies carry descriptors (media files) */
            m.nfds = 0;
        }
        switch (m.h.type) {
        case IPC_PONG:
        case IPC_REPLY:
            take_reply(&m);
            break;
        case IPC_EVENT:
            if (S.h.on_event)
                S.h.on_event(&m);
            break;
        case IPC_DRAIN:
            if (S.h.on_drain)
                S.h.on_drain();
            break;
        case IPC_REOPEN_LOGS:
            if (S.h.on_reopen_logs)
                S.h.on_reopen_logs();
            break;
        default:
            log_warn("unexpected message from supervisor", LF_I("type", m.h.type));
            break;
        }
    }
}

void sup_link_start(h2o_loop_t *loop, int fd, const struct sup_handlers *h, struct metrics_slot *m)
{
    S.loop = loop;
    S.fd = fd;
    S.h = *h;
    S.m = m;
    S.next_id = 1;
    /* h2o only reports readiness (DONT_READ): we read whole datagrams ourselves. */
    S.sock = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(S.sock, on_readable);
    S.last_heartbeat_ms = h2o_now(loop);
}

uint32_t sup_request_fd(uint32_t type, const void *payload, size_t len, int fd, uint32_t timeout_ms,
                        sup_reply_cb cb, void *ctx)
{
    if (S.lost || S.npend >= MAX_PENDING)
        return 0;
    uint32_t id = S.next_id++;
    if (id == 0)
        id = S.next_id++;
    if (ipc_send(S.fd, type, id, payload, len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0) < 0)
        return 0;
    S.pend[S.npend++] = (struct pending){id, cb, ctx, http_now_us(), h2o_now(S.loop) + timeout_ms};
    return id;
}

uint32_t sup_request(uint32_t type, const void *payload, size_t len, uint32_t timeout_ms, sup_reply_cb cb,
                     void *ctx)
{
    return sup_request_fd(type, payload, len, -1, timeout_ms, cb, ctx);
}

void sup_cancel(uint32_t id)
{
    for (unsigned i = 0; i < S.npend; i++)
        if (S.pend[i].id == id) {
            S.pend[i] = S.pend[--S.npend];
            return;
        }
}

int sup_reply_fd(const struct ipc_msg *m)
{
    for (int k = 1; m && k < m->nfds; k++)
        close(m->fds[k]);
    return m && m->nfds ? m->fds[0] : -1;
}

int sup_notify(uint32_t type, const void *payload, size_t len)
{
    if (S.lost)
        return -1;
    return ipc_send(S.fd, type, 0, payload, len, NULL, 0);
}

void sup_link_tick(void)
{
    uint64_t now = h2o_now(S.loop);
    for (unsigned i = 0; i < S.npend;) {
        if (now >= S.pend[i].deadline_ms) {
            struct pending p = S.pend[i];
            S.pend[i] = S.pend[--S.npend];
            p.cb(p.ctx, NULL);
            continue;
        }
        i++;
    }
    if (now - S.last_heartbeat_ms >= 1000) {
        S.last_heartbeat_ms = now;
        if (sup_notify(IPC_HEARTBEAT, NULL, 0) < 0 && errno != EAGAIN && !S.lost)
            lost(strerror(errno));
    }
}
