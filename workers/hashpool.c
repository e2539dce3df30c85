#include "hashpool.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

/* Jobs travel as pointers through two pipes: loop -> threads, threads ->
 * loop. No lock is shared with the hashing threads, so the loop can never
 * wait for one of them (they run at the lowest priority and may be off the
 * CPU for long while holding anything). */

#define QUEUE_MAX 64   /* jobs per worker not yet finished; beyond that, 503 */
#define THREAD_NICE 19 /* hashing yields the CPU to request handling */

struct hashpool_job {
    int verify;
    atomic_int cancelled;
    int ok;
    char *pw;
    size_t pwlen;
    char stored[PASSWORD_HASH_LEN + 96]; /* verify: the stored hash (bounded) */
    int has_stored;
    char out[PASSWORD_HASH_LEN];
    hashpool_cb cb;
    void *ctx;
};

#define MAX_SLOTS 8

static struct {
    char slot_path[MAX_SLOTS][256]; /* lock files: one hash at a time each, across all workers */
    int nslots;
    int job_w, job_r;   /* loop writes (non-blocking), threads read (blocking) */
    int done_w, done_r; /* threads write (blocking), the loop reads (non-blocking) */
    h2o_socket_t *sock;
    unsigned pending; /* loop side only */
} HP = {.job_w = -1, .job_r = -1, .done_w = -1, .done_r = -1};

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
    /* (Each hash maps 32 MiB, scrypt's 128*r*N bytes, and gives it back
     * when done: an idle worker stays small.) */
    /* This thread's own open files: flock() locks belong to an open file. */
    int slot[MAX_SLOTS], nslot = 0;
    for (int i = 0; i < HP.nslots; i++) {
        int fd = open(HP.slot_path[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            slot[nslot++] = fd;
    }
    unsigned turn = (unsigned)gettid();
    for (;;) {
        struct hashpool_job *j;
        ssize_t r = read(HP.job_r, &j, sizeof j); /* pointer-sized writes: never split */
        if (r != (ssize_t)sizeof j) {
            if (r < 0 && errno == EINTR)
                continue;
            return NULL;
        }
        if (!atomic_load(&j->cancelled)) {
            /* Take a free slot, else wait for one: at most nslots hashes run
             * at once over all workers, so a CPU stays free for requests. */
            int held = -1;
            for (int i = 0; i < nslot && held < 0; i++)
                if (flock(slot[i], LOCK_EX | LOCK_NB) == 0)
                    held = slot[i];
            if (held < 0 && nslot > 0) {
                held = slot[turn++ % (unsigned)nslot];
                while (flock(held, LOCK_EX) < 0 && errno == EINTR)
                    ;
            }
            if (j->verify)
                j->ok = password_verify(j->has_stored ? j->stored : NULL, j->pw, j->pwlen);
            else
                j->ok = password_hash(j->pw, j->pwlen, j->out);
            if (held >= 0)
                flock(held, LOCK_UN);
        }
        OPENSSL_cleanse(j->pw, j->pwlen);
        while (write(HP.done_w, &j, sizeof j) < 0 && errno == EINTR)
            ;
    }
}

static void on_done(h2o_socket_t *sock, const char *err)
{
    (void)sock, (void)err;
    struct hashpool_job *batch[64];
    for (;;) {
        ssize_t r = read(HP.done_r, batch, sizeof batch);
        if (r <= 0)
            return;
        for (size_t i = 0; i < (size_t)r / sizeof batch[0]; i++) {
            struct hashpool_job *j = batch[i];
            HP.pending--;
            if (!atomic_load(&j->cancelled) && j->cb)
                j->cb(j->ctx, j->ok, !j->verify && j->ok == 0 ? j->out : NULL);
            job_free(j);
        }
    }
}

int hashpool_init(h2o_loop_t *loop, int threads, const char *run_dir, int slots)
{
    if (slots > MAX_SLOTS)
        slots = MAX_SLOTS;
    for (int i = 0; run_dir && i < slots; i++) {
        snprintf(HP.slot_path[i], sizeof HP.slot_path[i], "%s/hash-slot-%d.lock", run_dir, i);
        int fd = open(HP.slot_path[i], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            log_warn("no hashing slot files; hashes are not limited across workers", LF_S("dir", run_dir),
                     LF_S("error", strerror(errno)));
            HP.nslots = 0;
            break;
        }
        close(fd);
        HP.nslots = i + 1;
    }
    int jp[2], dp[2];
    if (pipe2(jp, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(dp, O_CLOEXEC) < 0)
        return -1;
    HP.job_r = jp[0], HP.job_w = jp[1], HP.done_r = dp[0], HP.done_w = dp[1];
    if (fcntl(HP.job_w, F_SETFL, O_NONBLOCK) < 0 || fcntl(HP.done_r, F_SETFL, O_NONBLOCK) < 0)
        return -1;
    /* The socket owns its own copy of the descriptor. */
    int d = fcntl(HP.done_r, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return -1;
    HP.sock = h2o_evloop_socket_create(loop, d, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(HP.sock, on_done);
    close(HP.done_r);
    HP.done_r = d;
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
    if (HP.pending >= QUEUE_MAX || write(HP.job_w, &j, sizeof j) != (ssize_t)sizeof j) {
        job_free(j);
        return NULL;
    }
    HP.pending++;
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
    atomic_init(&j->cancelled, 0);
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
    if (job)
        atomic_store(&job->cancelled, 1);
}
