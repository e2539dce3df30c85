#include "pgc_libevent.h"

#include <stdlib.h>
#include <time.h>

struct io {
    struct event_base *base;
    struct event *ev;
    evutil_socket_t fd;
    short cur; /* EV_READ|EV_WRITE now watched */
    void (*cb)(void *arg, int readable, int writable);
    void *arg;
};

struct timer {
    struct event *ev;
    void (*cb)(void *arg);
    void *arg;
};

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct io *io = arg;
    io->cb(io->arg, (what & EV_READ) != 0, (what & EV_WRITE) != 0); /* may free io */
}

static void *io_new(void *ctx, int fd, void (*cb)(void *, int, int), void *arg)
{
    struct io *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    io->base = ctx;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    if (!(io->ev = event_new(io->base, fd, EV_PERSIST, on_io, io))) {
        free(io);
        return NULL;
    }
    return io;
}

static void io_want(void *p, int readable, int writable)
{
    struct io *io = p;
    short want = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (want == io->cur)
        return;
    event_del(io->ev);
    io->cur = want;
    if (want && event_assign(io->ev, io->base, io->fd, want | EV_PERSIST, on_io, io) == 0)
        event_add(io->ev, NULL);
}

static void io_free(void *p)
{
    struct io *io = p;
    event_free(io->ev);
    free(io);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct timer *t = arg;
    t->cb(t->arg);
}

static void *timer_new(void *ctx, void (*cb)(void *), void *arg)
{
    struct timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cb = cb;
    t->arg = arg;
    if (!(t->ev = evtimer_new((struct event_base *)ctx, on_timer, t))) {
        free(t);
        return NULL;
    }
    return t;
}

static void timer_start(void *p, unsigned ms)
{
    struct timer *t = p;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t->ev, &tv);
}

static void timer_stop(void *p)
{
    evtimer_del(((struct timer *)p)->ev);
}

static void timer_free(void *p)
{
    struct timer *t = p;
    event_free(t->ev);
    free(t);
}

static uint64_t clock_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void pgc_libevent(struct pgc_loop *out, struct event_base *base)
{
    *out = (struct pgc_loop){base,        io_new,     io_want,    io_free, timer_new,
                             timer_start, timer_stop, timer_free, clock_ms};
}
