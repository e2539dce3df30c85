/* Descriptors a worker sends with media requests, through the supervisor's
 * real dispatch (supervisor/worker_table.c, on_link) into its media service
 * (supervisor/media.c), both included for their statics: PUBLISH carries
 * exactly one, its own upload's temp file; any other (two or none on
 * PUBLISH, one on UPLOAD or KEY, another upload's file, a file from outside
 * the store) gets the worker killed, and an expired upload is answered 410.
 * Whatever the outcome, every descriptor received is closed (counted in
 * /proc/self/fd). The "worker" is a child that only sleeps, so the kill is
 * real and harmless. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* No database here: a row is never written (the publication is answered 503). */
#define sdb_query t_sdb_query
#include "supervisor/worker_table.c"
#include "supervisor/media_store.c"
#include "supervisor/media.c"
#undef sdb_query
#include "supervisor/wa/wa_offload.c"

#include "t.h"

struct pgq *t_sdb_query(const char *sql, int nparams, const char *const *params, sdb_cb cb, void *ctx)
{
    (void)sql, (void)nparams, (void)params, (void)cb, (void)ctx;
    return NULL;
}

static char root[256];
static int peer = -1; /* the worker's end of the link */
static uint8_t buf[IPC_HDR_LEN + IPC_MAX_PAYLOAD];

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

static void loop_idle(void)
{
    for (int i = 0; i < 5000 && (M.closing || M.trash_running || M.hashing || M.npub); i++)
        event_base_loop(S.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
}

/* A fresh worker: a sleeping child, a socketpair, slot 0 ready. */
static void worker_up(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    pid_t pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    W[0] = (struct worker){.st = WS_READY, .pid = pid, .fd = sv[0], .ev = NULL, .gen = 1};
    peer = sv[1];
}

/* The worker goes (killed already, or now): its link closed, the child
 * reaped, the media service told as the SIGCHLD path would. Returns
 * whether it had been killed by the supervisor. */
static int worker_down(void)
{
    int killed = W[0].fd < 0;
    pid_t pid = W[0].pid;
    if (!killed)
        kill(pid, SIGKILL);
    close_link(&W[0]);
    waitpid(pid, NULL, 0);
    on_worker_gone(pid);
    W[0].st = WS_FREE;
    close(peer);
    peer = -1;
    loop_idle();
    return killed;
}

/* Sends one request with fds (the sender's copies are closed after), and
 * lets the supervisor read it. */
static void send_req(uint32_t type, uint32_t id, const struct sbuf *b, const int *fds, int nfds)
{
    if (ipc_send(peer, type, id, b ? b->buf : "", b ? b->len : 0, fds, nfds) < 0)
        abort();
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    on_link(W[0].fd, EV_READ, &W[0]);
    loop_idle();
}

/* The reply waiting on the worker's end: its status, and its descriptor in
 * *fd (-1 when none). 0 when there is no reply. */
static uint32_t reply(int *fd, uint8_t *body, uint32_t *blen)
{
    struct ipc_msg m;
    const char *why;
    *fd = -1;
    if (ipc_recv(peer, buf, sizeof buf, &m, &why) != 1 || m.h.type != IPC_REPLY)
        return 0;
    for (int i = 1; i < m.nfds; i++)
        close(m.fds[i]);
    if (m.nfds)
        *fd = m.fds[0];
    struct ipc_rd rd;
    ipc_rd_init(&rd, &m);
    uint32_t status = ipc_rd_u32(&rd), n = 0;
    const uint8_t *p = ipc_rd_bytes(&rd, &n);
    if (body && p && n <= *blen) {
        memcpy(body, p, n);
        *blen = n;
    }
    return status;
}

/* UPLOAD of size bytes: the token, and the temp file in *fd. */
static uint64_t upload(uint32_t id, uint64_t size, int *fd)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, size);
    send_req(IPC_MEDIA_UPLOAD, id, &b, NULL, 0);
    sbuf_free(&b);
    uint8_t body[64];
    uint32_t blen = sizeof body;
    uint64_t token = 0;
    if (reply(fd, body, &blen) == 200 && blen == sizeof token)
        memcpy(&token, body, sizeof token);
    return token;
}

static void publish_payload(struct sbuf *b, uint64_t token, uint64_t size)
{
    sbuf_init(b);
    ipc_wr_u64(b, token);
    ipc_wr_u64(b, size);
    ipc_wr_bytes(b, "application/pdf", 15);
    ipc_wr_bytes(b, "", 0);
    ipc_wr_bytes(b, "", 0);
    ipc_wr_bytes(b, "", 0);
    ipc_wr_u32(b, 60000);
}

static int devnull(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* A PUBLISH of a live upload with these descriptors; the upload's own file
 * is closed here. Returns whether the worker was killed. */
static int publish_with(int nfds, int which)
{
    worker_up();
    int fa = -1, fb = -1, fds[2];
    uint64_t ta = upload(1, 10, &fa), tb = upload(2, 10, &fb);
    T_CHECK(ta && tb && fa >= 0 && fb >= 0 && W[0].fd >= 0, "two uploads handed out");
    int foreign = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char fname[300];
    snprintf(fname, sizeof fname, "%s/../foreign", root);
    int ff = open(fname, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    close(foreign);
    fds[0] = which == 0 ? dup(fa) : which == 1 ? dup(fb) : dup(ff);
    fds[1] = dup(fa);
    close(ff);
    close(fa);
    close(fb);
    struct sbuf b;
    publish_payload(&b, ta, 10);
    if (nfds < 2)
        close(fds[1]);
    if (nfds < 1)
        close(fds[0]);
    send_req(IPC_MEDIA_PUBLISH, 3, &b, fds, nfds);
    sbuf_free(&b);
    return worker_down();
}

static void test_refused(void)
{
    int fds0 = count_fds();
    T_CHECK(publish_with(2, 0), "PUBLISH with two descriptors: the worker is killed");
    T_EQ_INT(count_fds(), fds0, "... every descriptor received closed");
    T_CHECK(publish_with(0, 0), "PUBLISH with no descriptor: the worker is killed");
    T_EQ_INT(count_fds(), fds0, "... nothing left open");
    T_CHECK(publish_with(1, 1), "PUBLISH with another upload's file: the worker is killed");
    T_EQ_INT(count_fds(), fds0, "... every descriptor received closed");
    T_CHECK(publish_with(1, 2), "PUBLISH with a file from outside the store: the worker is killed");
    T_EQ_INT(count_fds(), fds0, "... every descriptor received closed");
    T_CHECK(M.nup == 0 && M.npub == 0 && M.reserved == 0, "... nothing stays reserved");

    static const uint32_t types[] = {IPC_MEDIA_UPLOAD, IPC_MEDIA_KEY, IPC_MEDIA_OPEN, IPC_MEDIA_DISCARD};
    static const char *const names[] = {"UPLOAD", "KEY", "OPEN", "DISCARD"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        worker_up();
        struct sbuf b;
        sbuf_init(&b);
        if (types[i] == IPC_MEDIA_UPLOAD)
            ipc_wr_u64(&b, 10);
        int fd[1] = {devnull()};
        send_req(types[i], 7, &b, fd, 1);
        sbuf_free(&b);
        int rfd;
        uint32_t st = reply(&rfd, NULL, NULL);
        if (rfd >= 0)
            close(rfd);
        char name[96];
        snprintf(name, sizeof name, "%s with a descriptor: the worker is killed, unanswered", names[i]);
        T_CHECK(worker_down() && st == 0, name);
        T_EQ_INT(count_fds(), fds0, "... the descriptor received closed");
        T_CHECK(M.nup == 0 && M.reserved == 0, "... nothing handed out or reserved");
    }
}

/* An upload that expired (or never was): 410, the descriptor closed. */
static void test_expired(void)
{
    int fds0 = count_fds();
    worker_up();
    struct sbuf b;
    publish_payload(&b, 0x1234, 10);
    int fd[1] = {devnull()};
    send_req(IPC_MEDIA_PUBLISH, 9, &b, fd, 1);
    sbuf_free(&b);
    int rfd;
    uint32_t st = reply(&rfd, NULL, NULL);
    T_EQ_INT(st, 410, "PUBLISH of an unknown token: 410");
    T_CHECK(rfd < 0 && W[0].fd >= 0, "... no descriptor back, the worker kept");
    T_CHECK(!worker_down(), "... and not killed");
    T_EQ_INT(count_fds(), fds0, "... the descriptor received closed");

    /* Its own file, the right token: taken (a control for the cases above). */
    worker_up();
    int fa;
    uint64_t ta = upload(1, 10, &fa);
    pwrite(fa, "%PDF-1.4\n\n", 10, 0);
    publish_payload(&b, ta, 10);
    int own[1] = {fa};
    send_req(IPC_MEDIA_PUBLISH, 2, &b, own, 1);
    sbuf_free(&b);
    st = reply(&rfd, NULL, NULL);
    T_CHECK(W[0].fd >= 0 && st == 503, "PUBLISH of its own file: taken and answered (503: no database here)");
    T_CHECK(!worker_down(), "... and the worker was not killed");
    T_EQ_INT(count_fds(), fds0, "... and, the worker gone, its publication's files closed");
    T_CHECK(M.npub == 0 && M.reserved == 0, "... nothing stays reserved");
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/wapi-test-media-fds-%d/store", (int)getpid());
    S.base = event_base_new();
    S.shm = calloc(1, sizeof *S.shm);
    S.cfg.paths.media = root;
    S.cfg.media.max_upload_bytes = 1 << 20;
    S.cfg.media.max_store_bytes = 0;
    media_init();
    T_CHECK(M.open && M.magic, "the store opens and libmagic loads");
    for (int i = 0; i < 5000 && !M.scanned; i++)
        event_base_loop(S.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    test_refused();
    test_expired();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/wapi-test-media-fds-%d", (int)getpid());
    if (system(cmd) != 0)
        printf("# could not remove the test folder\n");
    T_DONE();
}
