/* IPC framing: round trips with descriptors, and every malformed shape a
 * worker could send is refused without harm. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ipc.h"
#include "tests/unit/t.h"

static uint8_t buf[IPC_HDR_LEN + IPC_MAX_PAYLOAD];

static int raw_send(int fd, const void *p, size_t n)
{
    return (int)send(fd, p, n, MSG_DONTWAIT);
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

int main(void)
{
    int sv[2];
    T_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0, "socketpair");
    struct ipc_msg m;
    const char *why = NULL;

    /* Round trip with payload and two descriptors. */
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, 7);
    ipc_wr_u64(&b, 0x1122334455667788ull);
    ipc_wr_bytes(&b, "hello", 5);
    int p[2];
    T_CHECK(pipe(p) == 0, "pipe");
    T_EQ_INT(ipc_send(sv[0], IPC_PING, 42, b.buf, b.len, p, 2), 0, "send with fds");
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), 1, "recv frame");
    T_EQ_INT(m.h.type, IPC_PING, "type kept");
    T_EQ_INT(m.h.id, 42, "id kept");
    T_EQ_INT(m.nfds, 2, "two fds arrive");
    struct ipc_rd rd;
    ipc_rd_init(&rd, &m);
    T_EQ_INT(ipc_rd_u32(&rd), 7, "u32");
    T_CHECK(ipc_rd_u64(&rd) == 0x1122334455667788ull, "u64");
    uint32_t n;
    const uint8_t *s = ipc_rd_bytes(&rd, &n);
    T_CHECK(s && n == 5 && memcmp(s, "hello", 5) == 0, "bytes");
    T_EQ_INT(ipc_rd_end(&rd), 0, "fully consumed");
    T_CHECK(write(m.fds[1], "x", 1) == 1, "received fd is usable");
    for (int i = 0; i < m.nfds; i++)
        close(m.fds[i]);
    close(p[0]);
    close(p[1]);

    /* Reader bounds. */
    ipc_rd_init(&rd, &m);
    ipc_rd_u32(&rd);
    T_CHECK(ipc_rd_end(&rd) < 0, "leftover payload is an error");
    struct ipc_msg fake = {0};
    uint8_t lenonly[4] = {0xff, 0xff, 0xff, 0x7f};
    fake.payload = lenonly;
    fake.h.len = 4;
    ipc_rd_init(&rd, &fake);
    s = ipc_rd_bytes(&rd, &n);
    T_CHECK(!s && n == 0 && ipc_rd_end(&rd) < 0, "length past the end is refused");
    fake.h.len = 2;
    ipc_rd_init(&rd, &fake);
    ipc_rd_u32(&rd);
    T_CHECK(ipc_rd_end(&rd) < 0, "u32 from 2 bytes is refused");

    /* Text fields. */
    {
        struct sbuf t;
        sbuf_init(&t);
        ipc_wr_bytes(&t, "image/png", 9);
        ipc_wr_bytes(&t, "four", 4);
        ipc_wr_bytes(&t, "a\nb", 3);
        ipc_wr_bytes(&t, "a\0b", 3);
        struct ipc_msg tm = {0};
        tm.payload = (uint8_t *)t.buf;
        tm.h.len = (uint32_t)t.len;
        char out[5];
        char big[16];
        ipc_rd_init(&rd, &tm);
        T_CHECK(ipc_rd_text(&rd, big, sizeof big) == 0 && !strcmp(big, "image/png"),
                "text: read as a C string");
        T_CHECK(ipc_rd_text(&rd, out, 4) < 0, "text: four bytes do not fit in four with the NUL");
        T_CHECK(ipc_rd_text(&rd, out, sizeof out) < 0, "text: a control character is refused");
        T_CHECK(ipc_rd_text(&rd, out, sizeof out) < 0, "text: a NUL is refused");
        T_EQ_INT(ipc_rd_end(&rd), 0, "text: each field consumed");
        sbuf_free(&t);
    }

    /* Malformed frames. */
    uint8_t raw[64] = {0};
    T_EQ_INT(raw_send(sv[0], raw, 8), 8, "send short frame");
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "short frame refused");
    struct ipc_hdr h = {IPC_PING, 10, 1, 0};
    memcpy(raw, &h, sizeof h);
    T_EQ_INT(raw_send(sv[0], raw, IPC_HDR_LEN + 4), IPC_HDR_LEN + 4, "send lying length");
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "length mismatch refused");
    h = (struct ipc_hdr){999, 0, 1, 0};
    memcpy(raw, &h, sizeof h);
    raw_send(sv[0], raw, IPC_HDR_LEN);
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "unknown type refused");
    h = (struct ipc_hdr){IPC_PING, 0, 1, 8};
    memcpy(raw, &h, sizeof h);
    raw_send(sv[0], raw, IPC_HDR_LEN);
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "unknown flags refused");
    h = (struct ipc_hdr){IPC_PING, 0, 1, 0};
    memcpy(raw, &h, sizeof h);
    raw_send(sv[0], raw, IPC_HDR_LEN);
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), 1, "a good frame after garbage still works");

    /* Oversized datagram: larger than the receive buffer. */
    size_t big = IPC_HDR_LEN + IPC_MAX_PAYLOAD + 100;
    uint8_t *bigbuf = calloc(1, big);
    h = (struct ipc_hdr){IPC_PING, (uint32_t)(big - IPC_HDR_LEN), 1, 0};
    memcpy(bigbuf, &h, sizeof h);
    int sb = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
    T_EQ_INT(raw_send(sv[0], bigbuf, big), (int)big, "send oversized");
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "oversized refused");
    T_EQ_INT(ipc_send(sv[0], IPC_PING, 1, bigbuf, IPC_MAX_PAYLOAD + 1, NULL, 0), -1,
             "sender refuses oversize");
    free(bigbuf);

    /* Too many descriptors: the extras are closed, the frame refused. */
    int fds[8];
    for (int i = 0; i < 8; i += 2)
        pipe(fds + i);
    {
        struct iovec iov = {raw, IPC_HDR_LEN};
        h = (struct ipc_hdr){IPC_PING, 0, 1, 0};
        memcpy(raw, &h, sizeof h);
        union {
            char c[CMSG_SPACE(sizeof(int) * 8)];
            struct cmsghdr a;
        } ctl;
        struct msghdr mh = {0};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.c;
        mh.msg_controllen = sizeof ctl.c;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * 8);
        memcpy(CMSG_DATA(c), fds, sizeof fds);
        T_CHECK(sendmsg(sv[0], &mh, 0) == IPC_HDR_LEN, "send 8 fds");
    }
    int before = 0;
    for (int fd = 0; fd < 256; fd++)
        before += fd_open(fd);
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), -2, "too many fds refused");
    int after = 0;
    for (int fd = 0; fd < 256; fd++)
        after += fd_open(fd);
    T_EQ_INT(after, before, "no descriptor leaked from a refused frame");
    for (int i = 0; i < 8; i++)
        close(fds[i]);

    /* Garbage: random bytes never crash the decoder, and anything it
     * accepts is self-consistent. */
    srand(12345);
    int accepted = 0, bad = 0;
    for (int i = 0; i < 200000; i++) {
        uint8_t g[64];
        size_t len = (size_t)(rand() % 64);
        for (size_t k = 0; k < len; k++)
            g[k] = (uint8_t)rand();
        if (len >= 16 && rand() % 2) { /* plausible headers too */
            uint32_t t = (uint32_t)(rand() % (IPC_TYPE_MAX + 2)), l = (uint32_t)(len - 16), z = 0;
            memcpy(g, &t, 4);
            memcpy(g + 4, &l, 4);
            memcpy(g + 12, &z, 4);
        }
        if (ipc_decode(g, len, &m, &why) == 0) {
            accepted++;
            if (m.h.len != len - IPC_HDR_LEN || m.h.type == 0 || m.h.type >= IPC_TYPE_MAX)
                bad++;
        }
    }
    T_CHECK(accepted > 0 && bad == 0, "random frames: decoder accepts only well-formed ones");

    /* EOF. */
    close(sv[0]);
    T_EQ_INT(ipc_recv(sv[1], buf, sizeof buf, &m, &why), 0, "EOF reported");
    close(sv[1]);
    sbuf_free(&b);
    T_DONE();
}
