#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ipc_decode(const uint8_t *buf, size_t n, struct ipc_msg *m, const char **why)
{
    if (n < IPC_HDR_LEN) {
        *why = "frame shorter than its header";
        return -1;
    }
    memcpy(&m->h, buf, IPC_HDR_LEN);
    if (m->h.type == 0 || m->h.type >= IPC_TYPE_MAX) {
        *why = "unknown frame type";
        return -1;
    }
    if (m->h.len > IPC_MAX_PAYLOAD) {
        *why = "payload length over the limit";
        return -1;
    }
    if ((size_t)m->h.len != n - IPC_HDR_LEN) {
        *why = "payload length does not match the frame";
        return -1;
    }
    if (m->h.flags != 0) {
        *why = "unknown flags";
        return -1;
    }
    m->payload = buf + IPC_HDR_LEN;
    return 0;
}

int ipc_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t len, const int *fds, int nfds)
{
    if (len > IPC_MAX_PAYLOAD || nfds < 0 || nfds > IPC_MAX_FDS) {
        errno = EMSGSIZE;
        return -1;
    }
    struct ipc_hdr h = {type, (uint32_t)len, id, 0};
    struct iovec iov[2] = {{&h, IPC_HDR_LEN}, {(void *)payload, len}};
    struct msghdr mh = {0};
    mh.msg_iov = iov;
    mh.msg_iovlen = len ? 2 : 1;
    union {
        char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t r;
    do
        r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}

static void close_fds(struct ipc_msg *m)
{
    for (int i = 0; i < m->nfds; i++)
        close(m->fds[i]);
    m->nfds = 0;
}

int ipc_recv(int fd, uint8_t *buf, size_t bufsz, struct ipc_msg *m, const char **why)
{
    struct iovec iov = {buf, bufsz};
    union {
        char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    ssize_t r;
    do
        r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    m->nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (m->nfds < IPC_MAX_FDS)
                m->fds[m->nfds++] = f;
            else
                close(f);
        }
    }
    if (r == 0 && m->nfds == 0)
        return 0;
    if (mh.msg_flags & MSG_CTRUNC) {
        close_fds(m);
        *why = "too many file descriptors";
        return -2;
    }
    if ((size_t)r > bufsz || (mh.msg_flags & MSG_TRUNC)) {
        close_fds(m);
        *why = "frame larger than the receive buffer";
        return -2;
    }
    if (ipc_decode(buf, (size_t)r, m, why) < 0) {
        close_fds(m);
        return -2;
    }
    return 1;
}

void ipc_rd_init(struct ipc_rd *r, const struct ipc_msg *m)
{
    r->p = m->payload;
    r->n = m->h.len;
    r->off = 0;
    r->err = 0;
}

static const uint8_t *take(struct ipc_rd *r, size_t n)
{
    if (r->err || n > r->n - r->off) {
        r->err = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint32_t ipc_rd_u32(struct ipc_rd *r)
{
    uint32_t v = 0;
    const uint8_t *p = take(r, 4);
    if (p)
        memcpy(&v, p, 4);
    return v;
}

uint64_t ipc_rd_u64(struct ipc_rd *r)
{
    uint64_t v = 0;
    const uint8_t *p = take(r, 8);
    if (p)
        memcpy(&v, p, 8);
    return v;
}

const uint8_t *ipc_rd_bytes(struct ipc_rd *r, uint32_t *len)
{
    *len = ipc_rd_u32(r);
    const uint8_t *p = take(r, *len);
    if (!p)
        *len = 0;
    return p;
}

int ipc_rd_text(struct ipc_rd *r, char *out, size_t cap)
{
    uint32_t n;
    const uint8_t *p = ipc_rd_bytes(r, &n);
    if (!p || n >= cap)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int ipc_rd_end(const struct ipc_rd *r)
{
    return r->err || r->off != r->n ? -1 : 0;
}

void ipc_wr_u32(struct sbuf *b, uint32_t v)
{
    sbuf_add(b, &v, 4);
}

void ipc_wr_u64(struct sbuf *b, uint64_t v)
{
    sbuf_add(b, &v, 8);
}

void ipc_wr_bytes(struct sbuf *b, const void *p, uint32_t len)
{
    ipc_wr_u32(b, len);
    sbuf_add(b, p, len);
}
