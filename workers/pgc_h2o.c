#include "pgc_h2o.h"

#include <fcntl.h>
#include <stdlib.h>

struct io {
    h2o_socket_t *sock; /* on a dup of libpq's socket: closing it never touches libpq's fd */
    int reading, writable_wanted, write_armed;
    void (*cb)(void *arg, int readable, int writable);
    void *arg;
};

struct timer {
    h2o_loop_t *loop;
    h2o_timeout_entry_t e;
    void (*cb)(void *arg);
    void *arg;
};

/* An h2o timeout has one duration, and must not be disposed of while the
 * loop may be running it (a timer restarted from its own callback): one per
 * duration in use, made once, kept. The durations are few (0, the tick, the
 * connect timeout, the backoff steps). */
#define DURATIONS 32
static struct {
    h2o_loop_t *loop;
    uint64_t ms;
    h2o_timeout_t to;
} durations[DURATIONS];
static int ndurations;

static h2o_timeout_t *duration(h2o_loop_t *loop, uint64_t ms)
{
    int longer = -1;
    for (int i = 0; i < ndurations; i++) {
        if (durations[i].loop == loop && durations[i].ms == ms)
            return &durations[i].to;
        if (durations[i].loop == loop && durations[i].ms > ms &&
            (longer < 0 || durations[i].ms < durations[longer].ms))
            longer = i;
    }
    if (ndurations < DURATIONS) {
        durations[ndurations].loop = loop;
        durations[ndurations].ms = ms;
        h2o_timeout_init(loop, &durations[ndurations].to, ms);
        return &durations[ndurations++].to;
    }
    return longer >= 0 ? &durations[longer].to : &durations[0].to; /* never reached with our few durations */
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct io *io = sock->data;
    io->cb(io->arg, 1, 0); /* may free io */
}

static void on_write(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct io *io = sock->data;
    io->write_armed = 0;
    if (io->writable_wanted)
        io->cb(io->arg, 0, 1);
}

static void *io_new(void *ctx, int fd, void (*cb)(void *, int, int), void *arg)
{
    struct io *io = calloc(1, sizeof *io);
    int d = io ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (d < 0) {
        free(io);
        return NULL;
    }
    io->cb = cb;
    io->arg = arg;
    io->sock = h2o_evloop_socket_create(ctx, d, H2O_SOCKET_FLAG_DONT_READ);
    io->sock->data = io;
    return io;
}

static void io_want(void *p, int readable, int writable)
{
    struct io *io = p;
    if (readable && !io->reading)
        h2o_socket_read_start(io->sock, on_read);
    else if (!readable && io->reading)
        h2o_socket_read_stop(io->sock);
    io->reading = readable;
    io->writable_wanted = writable;
    if (writable && !io->write_armed) {
        io->write_armed = 1;
        h2o_socket_notify_write(io->sock, on_write);
    }
}

static void io_free(void *p)
{
    struct io *io = p;
    h2o_socket_close(io->sock);
    free(io);
}

static void on_timeout(h2o_timeout_entry_t *e)
{
    struct timer *t = H2O_STRUCT_FROM_MEMBER(struct timer, e, e);
    t->cb(t->arg);
}

static void *timer_new(void *ctx, void (*cb)(void *), void *arg)
{
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->loop = ctx;
    t->cb = cb;
    t->arg = arg;
    t->e.cb = on_timeout;
    return t;
}

static void timer_stop(void *p)
{
    struct timer *t = p;
    if (h2o_timeout_is_linked(&t->e))
        h2o_timeout_unlink(&t->e);
}

static void timer_start(void *p, unsigned ms)
{
    struct timer *t = p;
    timer_stop(t);
    h2o_timeout_link(t->loop, duration(t->loop, ms), &t->e);
}

static void timer_free(void *p)
{
    struct timer *t = p;
    timer_stop(t);
    free(t);
}

static uint64_t clock_ms(void *ctx)
{
    return h2o_now((h2o_loop_t *)ctx);
}

void pgc_h2o(struct pgc_loop *out, h2o_loop_t *loop)
{
    *out = (struct pgc_loop){loop,        io_new,     io_want,    io_free, timer_new,
                             timer_start, timer_stop, timer_free, clock_ms};
}
