#include "wa_offload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

struct job {
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
};

static int wake[2] = {-1, -1};
static struct event *ev;

static void *run(void *p)
{
    struct job *j = p;
    j->work(j->arg);
    /* A pointer fits in one pipe write (< PIPE_BUF): the loop reads it whole. */
    while (write(wake[1], &j, sizeof j) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    struct job *j;
    while (read(fd, &j, sizeof j) == (ssize_t)sizeof j) {
        j->done(j->arg);
        free(j);
    }
}

int wa_offload_init(struct event_base *base)
{
    if (ev)
        return 0;
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    ev = event_new(base, wake[0], EV_READ | EV_PERSIST, on_wake, NULL);
    return ev && event_add(ev, NULL) == 0 ? 0 : -1;
}

int wa_offload_run(void (*work)(void *), void (*done)(void *), void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return -1;
    *j = (struct job){work, done, arg};
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, run, j);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        log_error("cannot start a worker thread", LF_I("errno", rc));
        free(j);
        return -1;
    }
    return 0;
}
