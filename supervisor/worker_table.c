#include "worker_table.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "sup.h"

enum wstate { WS_FREE, WS_STARTING, WS_RUNNING, WS_READY, WS_DRAINING };
static worker_msg_fn handlers[IPC_TYPE_MAX];
static int max_fds[IPC_TYPE_MAX];
#define MAX_GONE_HOOKS 4
static void (*gone_hooks[MAX_GONE_HOOKS])(pid_t);

static const char *const state_names[] = {"free", "starting", "running", "ready", "draining"};

struct worker {
    enum wstate st;
    pid_t pid;
    int fd;
    struct event *ev;
    unsigned gen;
    uint64_t started_ms, last_beat_ms, drain_started_ms;
};

#define WATCHDOG_MS 10000 /* no heartbeat for this long: the worker is hung */
#define YOUNG_MS 5000     /* an exit sooner than this after start counts toward a crash loop */
#define BACKOFF_MAX_MS 30000

static struct worker W[MAX_WORKERS];
static unsigned crash_streak;
static uint64_t next_spawn_ms;
static uint8_t rxbuf[IPC_HDR_LEN + IPC_MAX_PAYLOAD];
static struct event *respawn_timer;

static void on_respawn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    workers_reconcile();
}

static void close_link(struct worker *w)
{
    if (w->ev) {
        event_free(w->ev);
        w->ev = NULL;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
}

static void kill_worker(struct worker *w, const char *why)
{
    log_error("killing worker", LF_I("pid", w->pid), LF_I("slot", w - W), LF_S("why", why));
    if (w->pid > 0)
        kill(w->pid, SIGKILL);
    close_link(w);
}

static void send_welcome(struct worker *w, uint32_t id)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u32(&b, IPC_VERSION);
    ipc_wr_u32(&b, (uint32_t)(w - W));
    ipc_wr_u32(&b, w->gen);
    ipc_wr_bytes(&b, S.config_text, (uint32_t)strlen(S.config_text));
    if (b.oom || ipc_send(w->fd, IPC_WELCOME, id, b.buf, b.len, NULL, 0) < 0)
        kill_worker(w, "cannot send the configuration");
    sbuf_free(&b);
}

static int send_reply(struct worker *w, uint32_t id, uint32_t status, const char *body, size_t len, int fd)
{
    struct sbuf out;
    sbuf_init(&out);
    ipc_wr_u32(&out, status);
    ipc_wr_bytes(&out, body, (uint32_t)len);
    int r = 0;
    if (out.oom || out.len > IPC_MAX_PAYLOAD ||
        ipc_send(w->fd, IPC_REPLY, id, out.buf, out.len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0) < 0) {
        log_warn("cannot answer a worker", LF_I("pid", w->pid),
                 LF_S("error", out.oom ? "out of memory" : strerror(errno)));
        r = -1;
    }
    sbuf_free(&out);
    return r;
}

int workers_reply_fd(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len, int fd)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (W[i].st != WS_FREE && W[i].pid == pid && W[i].fd >= 0)
            return send_reply(&W[i], id, status, body, len, fd);
    return -1;
}

int workers_reply(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len)
{
    return workers_reply_fd(pid, id, status, body, len, -1);
}

static void handle(struct worker *w, struct ipc_msg *m)
{
    struct ipc_rd rd;
    ipc_rd_init(&rd, m);
    switch (m->h.type) {
    case IPC_HELLO: {
        uint32_t ver = ipc_rd_u32(&rd);
        if (ipc_rd_end(&rd) < 0 || w->st != WS_STARTING) {
            kill_worker(w, "malformed or repeated hello");
            return;
        }
        if (ver != IPC_VERSION) {
            kill_worker(w, "protocol version mismatch");
            return;
        }
        w->st = WS_RUNNING;
        w->last_beat_ms = now_ms();
        send_welcome(w, m->h.id);
        return;
    }
    case IPC_READY:
        if (ipc_rd_end(&rd) < 0 || w->st != WS_RUNNING) {
            kill_worker(w, "unexpected ready");
            return;
        }
        w->st = WS_READY;
        workers_reconcile();
        return;
    case IPC_HEARTBEAT:
        if (ipc_rd_end(&rd) < 0) {
            kill_worker(w, "malformed heartbeat");
            return;
        }
        w->last_beat_ms = now_ms();
        return;
    case IPC_PING: {
        if (ipc_rd_end(&rd) < 0) {
            kill_worker(w, "malformed ping");
            return;
        }
        uint32_t flags = S.migrated ? IPC_PONG_MIGRATED : 0;
        if (ipc_send(w->fd, IPC_PONG, m->h.id, &flags, sizeof flags, NULL, 0) < 0 && errno != EAGAIN)
            log_warn("cannot answer a worker", LF_I("pid", w->pid), LF_S("error", strerror(errno)));
        return;
    }
    default: {
        worker_msg_fn fn = m->h.type < IPC_TYPE_MAX ? handlers[m->h.type] : NULL;
        if (!fn) {
            kill_worker(w, "message type a worker may not send");
            return;
        }
        uint32_t status = 500;
        struct sbuf body;
        sbuf_init(&body);
        struct worker_msg wm = {w->pid, m->h.type, m->h.id, m->fds, m->nfds};
        int r = fn(&wm, &rd, &status, &body);
        for (int k = 0; k < m->nfds; k++)
            if (m->fds[k] >= 0)
                close(m->fds[k]); /* not taken by the handler */
        m->nfds = 0;
        if (r == WORKER_MALFORMED)
            kill_worker(w, "malformed request");
        else if (r == WORKER_ANSWER)
            send_reply(w, m->h.id, status, body.buf ? body.buf : "", body.len, -1);
        sbuf_free(&body);
        return;
    }
    }
}

void workers_handle(uint32_t type, worker_msg_fn fn)
{
    if (type < IPC_TYPE_MAX)
        handlers[type] = fn;
}

void workers_accept_fds(uint32_t type, int n)
{
    if (type < IPC_TYPE_MAX)
        max_fds[type] = n < IPC_MAX_FDS ? n : IPC_MAX_FDS;
}

void workers_on_gone(void (*fn)(pid_t pid))
{
    for (int i = 0; i < MAX_GONE_HOOKS; i++)
        if (!gone_hooks[i]) {
            gone_hooks[i] = fn;
            return;
        }
}

static void on_link(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct worker *w = arg;
    for (int i = 0; i < 64 && w->fd >= 0; i++) {
        struct ipc_msg m;
        const char *why = "";
        int r = ipc_recv(w->fd, rxbuf, sizeof rxbuf, &m, &why);
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r == 0 || r == -1) {
            close_link(w); /* the exit itself arrives as SIGCHLD */
            return;
        }
        if (r == -2) {
            kill_worker(w, why);
            return;
        }
        /* Descriptors only where the type takes them (an upload handed back). */
        if (m.nfds && (m.h.type >= IPC_TYPE_MAX || m.nfds > max_fds[m.h.type] || !handlers[m.h.type])) {
            for (int k = 0; k < m.nfds; k++)
                close(m.fds[k]);
            kill_worker(w, "unexpected file descriptors");
            return;
        }
        handle(w, &m);
    }
}

/* dup2 onto fixed numbers without clobbering: move everything high first. */
static void child_exec(int link, int slot)
{
    int srcs[4] = {link, S.listen_fd, S.metrics_fd, S.metrics_listen_fd};
    int n = S.metrics_listen_fd >= 0 ? 4 : 3; /* the metrics listener only when metrics.listen is set */
    int hi[4];
    for (int i = 0; i < n; i++)
        if ((hi[i] = fcntl(srcs[i], F_DUPFD, 16)) < 0)
            _exit(126);
    for (int i = 0; i < n; i++)
        if (dup2(hi[i], IPC_FD + i) < 0)
            _exit(126);
    close_range((unsigned)(IPC_FD + n), ~0U, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    char slotarg[16];
    snprintf(slotarg, sizeof slotarg, "%d", slot);
    char *argv[] = {"wapi-worker", slotarg, NULL};
    execv(S.worker_bin, argv);
    _exit(127);
}

static int spawn(int slot)
{
    struct worker *w = &W[slot];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
        log_error("socketpair failed", LF_S("error", strerror(errno)));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed", LF_S("error", strerror(errno)));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0)
        child_exec(sv[1], slot);
    close(sv[1]);
    memset(w, 0, sizeof *w);
    w->st = WS_STARTING;
    w->pid = pid;
    w->fd = sv[0];
    w->gen = S.generation;
    w->started_ms = w->last_beat_ms = now_ms();
    w->ev = event_new(S.base, w->fd, EV_READ | EV_PERSIST, on_link, w);
    event_add(w->ev, NULL);
    __atomic_store_n(&S.shm->slot[slot].pid, (int32_t)pid, __ATOMIC_RELAXED);
    log_info("worker started", LF_I("pid", pid), LF_I("slot", slot), LF_I("generation", S.generation));
    return 0;
}

static void drain(struct worker *w)
{
    if (w->st == WS_DRAINING || w->st == WS_FREE)
        return;
    w->st = WS_DRAINING;
    w->drain_started_ms = now_ms();
    /* The command over the link, and TERM in case the link is jammed. */
    if (w->fd < 0 || ipc_send(w->fd, IPC_DRAIN, 0, NULL, 0, NULL, 0) < 0)
        kill(w->pid, SIGTERM);
}

void workers_init(void)
{
    respawn_timer = evtimer_new(S.base, on_respawn_timer, NULL);
    for (int i = 0; i < MAX_WORKERS; i++)
        W[i].fd = -1;
}

void workers_reconcile(void)
{
    if (S.stopping)
        return;
    int current = 0, ready = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (W[i].gen != S.generation || W[i].st == WS_FREE || W[i].st == WS_DRAINING)
            continue;
        current++;
        ready += W[i].st == WS_READY;
    }
    uint64_t now = now_ms();
    for (int i = 0; i < MAX_WORKERS && current < S.want && now >= next_spawn_ms; i++) {
        if (W[i].st != WS_FREE)
            continue;
        if (spawn(i) == 0)
            current++;
        else
            next_spawn_ms = now + 1000;
    }
    /* Too many (TTOU, workers N): retire the newest of this generation. */
    for (int i = MAX_WORKERS - 1; i >= 0 && current > S.want; i--) {
        if (W[i].gen == S.generation &&
            (W[i].st == WS_RUNNING || W[i].st == WS_READY || W[i].st == WS_STARTING)) {
            drain(&W[i]);
            current--;
        }
    }
    /* Older generations retire once the new one serves at full strength. */
    if (ready >= S.want) {
        for (int i = 0; i < MAX_WORKERS; i++)
            if (W[i].st != WS_FREE && W[i].st != WS_DRAINING && W[i].gen != S.generation)
                drain(&W[i]);
    }
}

int workers_on_exit(pid_t pid, int status)
{
    struct worker *w = NULL;
    for (int i = 0; i < MAX_WORKERS; i++)
        if (W[i].st != WS_FREE && W[i].pid == pid)
            w = &W[i];
    if (!w)
        return 0;
    int slot = (int)(w - W);
    uint64_t now = now_ms(), up = now - w->started_ms;
    int expected = w->st == WS_DRAINING || S.stopping;
    char how[64];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof how, "status %d", WEXITSTATUS(status));
    close_link(w);
    metrics_clear_gauges(&S.shm->slot[slot]);
    w->st = WS_FREE;
    w->pid = 0;
    for (int i = 0; i < MAX_GONE_HOOKS && gone_hooks[i]; i++)
        gone_hooks[i](pid);
    if (expected && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        log_info("worker exited", LF_I("pid", pid), LF_I("slot", slot), LF_S("how", how));
    } else {
        metrics_add(&S.shm->worker_crashes_total, 1);
        if (up < YOUNG_MS) {
            crash_streak++;
            uint64_t delay = 100ull << (crash_streak > 9 ? 9 : crash_streak - 1);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            next_spawn_ms = now + delay;
            struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
            evtimer_del(respawn_timer);
            evtimer_add(respawn_timer, &tv);
            log_error("worker died young; backing off", LF_I("pid", pid), LF_I("slot", slot),
                      LF_S("how", how), LF_I("uptime_ms", up), LF_I("crash_streak", crash_streak),
                      LF_I("retry_in_ms", delay));
        } else {
            crash_streak = 0;
            log_error("worker died; restarting", LF_I("pid", pid), LF_I("slot", slot), LF_S("how", how),
                      LF_I("uptime_ms", up));
        }
        if (!S.stopping && !expected)
            metrics_add(&S.shm->worker_restarts_total, 1);
    }
    workers_reconcile();
    return 1;
}

void workers_drain_all(void)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        drain(&W[i]);
}

void workers_signal_all(int sig)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if (W[i].st != WS_FREE && W[i].pid > 0)
            kill(W[i].pid, sig);
}

void workers_broadcast(unsigned type)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if ((W[i].st == WS_RUNNING || W[i].st == WS_READY || W[i].st == WS_DRAINING) && W[i].fd >= 0)
            ipc_send(W[i].fd, type, 0, NULL, 0, NULL, 0);
}

void workers_broadcast_payload(unsigned type, const void *payload, size_t len)
{
    for (int i = 0; i < MAX_WORKERS; i++)
        if ((W[i].st == WS_RUNNING || W[i].st == WS_READY) && W[i].fd >= 0 &&
            ipc_send(W[i].fd, type, 0, payload, len, NULL, 0) < 0 && errno == EAGAIN)
            log_warn("worker link full; event not delivered (clients resume with Last-Event-ID)",
                     LF_I("pid", W[i].pid));
}

int workers_alive(void)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        n += W[i].st != WS_FREE;
    return n;
}

void workers_tick(void)
{
    uint64_t now = now_ms();
    for (int i = 0; i < MAX_WORKERS; i++) {
        struct worker *w = &W[i];
        if (w->st == WS_FREE)
            continue;
        if (w->st == WS_DRAINING) {
            if (now - w->drain_started_ms > (uint64_t)S.cfg.shutdown_timeout * 1000 + 2000)
                kill_worker(w, "drain took longer than shutdown_timeout");
            continue;
        }
        if (now - w->last_beat_ms > WATCHDOG_MS && w->fd >= 0)
            kill_worker(w, w->st == WS_STARTING ? "no hello from a new worker" : "no heartbeat: hung");
        else if (w->fd < 0 && now - w->last_beat_ms > WATCHDOG_MS)
            kill_worker(w, "link closed but the process lives");
    }
    workers_reconcile();
}

void workers_status_json(struct jsonw *w)
{
    uint64_t now = now_ms();
    jw_arr(w);
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (W[i].st == WS_FREE)
            continue;
        jw_obj(w);
        jw_kint(w, "slot", i);
        jw_kint(w, "pid", W[i].pid);
        jw_kstr(w, "state", state_names[W[i].st]);
        jw_kuint(w, "generation", W[i].gen);
        jw_key(w, "uptime_s");
        jw_double(w, "%.1f", (double)(now - W[i].started_ms) / 1000.0);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

void workers_answer_json(struct jsonw *w, uint32_t *status, struct sbuf *body)
{
    if (jw_finish(w) < 0) {
        *status = 500;
        jw_error_body(body, "out_of_memory", "try again", NULL);
    }
}
