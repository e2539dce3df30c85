#include "hashpool.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

#define QUEUE_MAX 64   /* waiting jobs per worker; beyond that, 503 */
#define THREAD_NICE 19 /* hashing yields the CPU to request handling */

struct hashpool_job {
    struct hashpool_job *next;
    int verify;
    int cancelled; /* under the lock */
    int ok;
    char *pw;
    size_t pwlen;
    char stored[PASSWORD_HASH_LEN + 96]; /* verify: the stored hash (bounded) */
    int has_stored;
    char out[PASSWORD_HASH_LEN];
    hashpool_cb cb;
    void *ctx;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hashpool_job *head, *tail; /* waiting */
    struct hashpool_job *done;        /* finished, for the loop */
    unsigned waiting;
    int efd;
    h2o_socket_t *sock;
} HP = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1};

static void job_free(struct hashpool_job *j)
{
    if (j->pw) {
        OPENSSL_cleanse(j->pw, j->pwlen);
        free(j->pw);
    }
    OPENSSL_cleanse(j->out, sizeof j->out);
    free(j);
}

static void *worker_main(void *arg)
{
    (void)arg;
    /* Linux applies a nice value to one thread when given its tid. On top,
     * SCHED_IDLE: a request-handling thread that wakes up always preempts a
     * hashing thread at once, instead of waiting out its time slice. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), THREAD_NICE) < 0)
        log_warn("cannot lower the hashing thread's priority", LF_S("error", strerror(errno)));
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        log_warn("cannot give the hashing thread the idle scheduling class");
    for (;;) {
        pthread_mutex_lock(&HP.mu);
        while (!HP.head)
            pthread_cond_wait(&HP.cv, &HP.mu);
        struct hashpool_job *j = HP.head;
        HP.head = j->next;
        if (!HP.head)
            HP.tail = NULL;
        HP.waiting--;
        int skip = j->cancelled;
        pthread_mutex_unlock(&HP.mu);
        if (!skip) {
            if (j->verify)
                j->ok = password_verify(j->has_stored ? j->stored : NULL, j->pw, j->pwlen);
            else
                j->ok = password_hash(j->pw, j->pwlen, j->out);
        }
        OPENSSL_cleanse(j->pw, j->pwlen);
        pthread_mutex_lock(&HP.mu);
        j->next = HP.done;
        HP.done = j;
        pthread_mutex_unlock(&HP.mu);
        uint64_t one = 1;
        ssize_t w = write(HP.efd, &one, sizeof one);
        (void)w; /* the counter saturating still leaves the fd readable */
    }
    return NULL;
}

static void on_done(h2o_socket_t *sock, const char *err)
{
    (void)sock, (void)err;
    uint64_t n;
    ssize_t r = read(HP.efd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&HP.mu);
    struct hashpool_job *list = HP.done;
    HP.done = NULL;
    pthread_mutex_unlock(&HP.mu);
    /* Oldest first: the list was built newest first. */
    struct hashpool_job *rev = NULL;
    while (list) {
        struct hashpool_job *nx = list->next;
        list->next = rev;
        rev = list;
        list = nx;
    }
    while (rev) {
        struct hashpool_job *j = rev;
        rev = j->next;
        pthread_mutex_lock(&HP.mu);
        int cancelled = j->cancelled;
        pthread_mutex_unlock(&HP.mu);
        if (!cancelled && j->cb)
            j->cb(j->ctx, j->ok, !j->verify && j->ok == 0 ? j->out : NULL);
        job_free(j);
    }
}

int hashpool_init(h2o_loop_t *loop, int threads)
{
    /* scrypt takes 16 MiB a time. malloc keeps that block for the next
     * hash after the first one (its mmap threshold adapts), so a busy
     * worker does not map, fault in and unmap 16 MiB per sign-in, which
     * costs a third of the hash's time and takes the process's memory-map
     * lock the request thread may need. */
    HP.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (HP.efd < 0)
        return -1;
    int d = dup(HP.efd); /* the socket owns (and closes) its own copy */
    if (d < 0)
        return -1;
    HP.sock = h2o_evloop_socket_create(loop, d, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(HP.sock, on_done);
    close(HP.efd);
    HP.efd = d;
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 256 * 1024);
        int e = pthread_create(&t, &a, worker_main, NULL);
        pthread_attr_destroy(&a);
        if (e)
            return -1;
    }
    return 0;
}

static struct hashpool_job *submit(struct hashpool_job *j)
{
    pthread_mutex_lock(&HP.mu);
    if (HP.waiting >= QUEUE_MAX) {
        pthread_mutex_unlock(&HP.mu);
        job_free(j);
        return NULL;
    }
    if (HP.tail)
        HP.tail->next = j;
    else
        HP.head = j;
    HP.tail = j;
    HP.waiting++;
    pthread_cond_signal(&HP.cv);
    pthread_mutex_unlock(&HP.mu);
    return j;
}

static struct hashpool_job *job_new(const char *pw, size_t len, hashpool_cb cb, void *ctx)
{
    if (len > PASSWORD_MAX_BYTES)
        return NULL;
    struct hashpool_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->pw = malloc(len + 1);
    if (!j->pw) {
        free(j);
        return NULL;
    }
    memcpy(j->pw, pw, len);
    j->pw[len] = '\0';
    j->pwlen = len;
    j->cb = cb;
    j->ctx = ctx;
    j->ok = -1;
    return j;
}

struct hashpool_job *hashpool_hash(const char *pw, size_t len, hashpool_cb cb, void *ctx)
{
    struct hashpool_job *j = job_new(pw, len, cb, ctx);
    return j ? submit(j) : NULL;
}

struct hashpool_job *hashpool_verify(const char *stored, const char *pw, size_t len, hashpool_cb cb, void *ctx)
{
    struct hashpool_job *j = job_new(pw, len, cb, ctx);
    if (!j)
        return NULL;
    j->verify = 1;
    if (stored && strlen(stored) < sizeof j->stored) {
        strcpy(j->stored, stored);
        j->has_stored = 1;
    }
    return submit(j);
}

void hashpool_cancel(struct hashpool_job *job)
{
    if (!job)
        return;
    pthread_mutex_lock(&HP.mu);
    job->cancelled = 1;
    pthread_mutex_unlock(&HP.mu);
}
