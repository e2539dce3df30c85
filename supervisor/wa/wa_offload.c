#include "wa_offload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

struct job {
    struct job *next;
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
};

/* Finished jobs wait in a list; the pipe only wakes the loop. A byte is
 * written when the list goes from empty to not empty, and a write that
 * finds the pipe full (EAGAIN) loses nothing: a byte is already there, so
 * the loop wakes and takes the whole list. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct job *finished;
static int wake[2] = {-1, -1};
static struct event *ev;

static void *run(void *p)
{
    struct job *j = p;
    j->work(j->arg);
    pthread_mutex_lock(&mu);
    int first = finished == NULL;
    j->next = finished;
    finished = j;
    pthread_mutex_unlock(&mu);
    if (first) {
        char c = 1;
        while (write(wake[1], &c, 1) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&mu);
    struct job *list = finished;
    finished = NULL;
    pthread_mutex_unlock(&mu);
    /* Oldest first (the list was built newest first). */
    struct job *rev = NULL;
    while (list) {
        struct job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct job *n = rev->next;
        rev->done(rev->arg);
        free(rev);
        rev = n;
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
    *j = (struct job){NULL, work, done, arg};
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
