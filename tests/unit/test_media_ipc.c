/* The supervisor's media service (supervisor/media.c, with the store and
 * the off-loop helper, included for their statics) driven as a worker
 * would: the bytes linked are the bytes hashed even when the worker writes
 * to its file afterwards, a publication larger than its reservation is
 * refused, a queued publication past its deadline or discarded is dropped,
 * an upload whose answer never arrived is discarded by request id, a
 * failed scan is retried, a repair keeps the gauges right, large files are
 * never freed on the loop, no descriptor leaks, and the off-loop helper's
 * wake-up survives a full pipe. Replies and queries are captured here. */
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* Closing the last descriptor of an unlinked file frees its blocks: on the
 * loop thread that is a stall. Every close of media.c and the store is
 * looked at. */
#include <fcntl.h>
static pthread_t loop_thread;
static int closes_on_loop_freeing;
static int t_close(int fd)
{
    struct stat sb;
    if (pthread_equal(pthread_self(), loop_thread) && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
        sb.st_nlink == 0 && sb.st_size > 0)
        closes_on_loop_freeing++;
    return close(fd);
}

#define workers_reply t_workers_reply
#define workers_reply_fd t_workers_reply_fd
#define sdb_query t_sdb_query
#define close t_close
#include "supervisor/media_store.c"
#include "supervisor/media.c"
#undef close
#include "supervisor/wa/wa_offload.c"
/* The sweep too, its statics renamed where media.c has the same. */
#define W SW
#define finish sweep_finish
#include "supervisor/media_sweep.c"
#undef W
#undef finish

#include <openssl/sha.h>

#include "t.h"

static char root[256];

/* ---- what the supervisor sends back, captured */

static struct {
    int n;
    uint32_t status, id;
    char body[4096];
    int fd;
} R;

int t_workers_reply_fd(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len, int fd)
{
    (void)pid;
    R.n++;
    R.id = id;
    R.status = status;
    len = len < sizeof R.body - 1 ? len : sizeof R.body - 1;
    memcpy(R.body, body, len); /* binary (a token) as well as JSON */
    R.body[len] = '\0';
    if (R.fd >= 0)
        close(R.fd);
    R.fd = fd >= 0 ? dup(fd) : -1;
    return 0;
}

int t_workers_reply(pid_t pid, uint32_t id, uint32_t status, const char *body, size_t len)
{
    return t_workers_reply_fd(pid, id, status, body, len, -1);
}

static struct {
    int n;
    sdb_cb cb;
    void *ctx;
    char hex[65];
} Q;

struct pgq *t_sdb_query(const char *sql, int nparams, const char *const *params, sdb_cb cb, void *ctx)
{
    (void)sql;
    Q.n++;
    Q.cb = cb;
    Q.ctx = ctx;
    if (nparams >= 2 && params[1])
        snprintf(Q.hex, sizeof Q.hex, "%s", params[1]);
    return (struct pgq *)&Q;
}

/* The INSERT's answer: one row. */
static void answer_insert(void)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc a = {.name = "j", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1};
    PQsetResultAttrs(res, 1, &a);
    PQsetvalue(res, 0, 0, "{\"id\":\"m_x\"}", 12);
    sdb_cb cb = Q.cb;
    Q.cb = NULL;
    cb(Q.ctx, res, NULL);
    PQclear(res);
}

/* ---- a worker's side */

#define PID 4242

static int handle(uint32_t type, uint32_t id, const struct sbuf *b, int *fds, int nfds)
{
    struct ipc_msg m = {
        .h = {type, (uint32_t)b->len, id, 0}, .payload = (const uint8_t *)b->buf, .nfds = nfds};
    for (int i = 0; i < nfds; i++)
        m.fds[i] = fds[i];
    struct ipc_rd rd;
    ipc_rd_init(&rd, &m);
    struct worker_msg wm = {PID, type, id, m.fds, nfds};
    uint32_t status = 500;
    struct sbuf body;
    sbuf_init(&body);
    int r = media_ipc(&wm, &rd, &status, &body);
    if (r == WORKER_ANSWER) {
        R.n++;
        R.status = status;
        R.id = id;
        snprintf(R.body, sizeof R.body, "%.*s", (int)body.len, body.buf ? body.buf : "");
    }
    sbuf_free(&body);
    for (int i = 0; i < nfds; i++) /* as worker_table does */
        if (m.fds[i] >= 0)
            close(m.fds[i]);
    return r;
}

/* UPLOAD: the token, and the temp file in *fd (-1 when refused). */
static uint64_t upload(uint32_t id, uint64_t size, int *fd)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, size);
    R.n = 0;
    handle(IPC_MEDIA_UPLOAD, id, &b, NULL, 0);
    sbuf_free(&b);
    *fd = -1;
    uint64_t token = 0;
    if (R.n == 1 && R.status == 200 && R.fd >= 0) {
        memcpy(&token, R.body, sizeof token);
        *fd = R.fd;
        R.fd = -1;
    }
    return token;
}

static int publish(uint32_t id, uint64_t token, uint64_t size, int fd, uint32_t start_ms)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, token);
    ipc_wr_u64(&b, size);
    ipc_wr_bytes(&b, "application/pdf", 15);
    ipc_wr_bytes(&b, "", 0);
    ipc_wr_bytes(&b, "", 0);
    ipc_wr_bytes(&b, "", 0);
    ipc_wr_u32(&b, start_ms);
    int fds[1] = {dup(fd)};
    R.n = 0;
    int r = handle(IPC_MEDIA_PUBLISH, id, &b, fds, 1);
    sbuf_free(&b);
    return r;
}

static void discard(uint64_t token, uint32_t req_id)
{
    struct sbuf b;
    sbuf_init(&b);
    ipc_wr_u64(&b, token);
    ipc_wr_u32(&b, req_id);
    handle(IPC_MEDIA_DISCARD, 1, &b, NULL, 0);
    sbuf_free(&b);
}

/* Runs the loop until cond() or 10 s. */
static int loop_until(int (*cond)(void))
{
    for (int i = 0; i < 10000 && !cond(); i++)
        event_base_loop(S.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    return cond();
}

static int have_reply(void)
{
    return R.n > 0;
}
static int have_query(void)
{
    return Q.cb != NULL;
}
static int scanned(void)
{
    return M.scanned;
}
static int idle(void)
{
    return M.npub == 0 && !M.trash_running && M.hashing == 0 && M.closing == 0;
}
/* The hashing thread finished and waits for the loop (its done not run
 * yet). */
static int digest_finished(void)
{
    pthread_mutex_lock(&mu);
    int found = 0;
    for (struct job *j = finished; j; j = j->next)
        found |= j->done == digest_done;
    pthread_mutex_unlock(&mu);
    return found;
}

static void sha_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    SHA256(p, n, md);
    hex_encode(out, md, 32, 0);
}

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

static char *stored_path(const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.2s/%.2s/%s", root, hex, hex + 2, hex);
    return out;
}

static int file_hashes_to_name(const char *hex)
{
    char p[512], got[65];
    int fd = open(stored_path(hex, p, sizeof p), O_RDONLY);
    if (fd < 0)
        return 0;
    struct stat sb;
    fstat(fd, &sb);
    char *buf = malloc((size_t)sb.st_size + 1);
    ssize_t n = pread(fd, buf, (size_t)sb.st_size, 0);
    close(fd);
    sha_hex(buf, n > 0 ? (size_t)n : 0, got);
    free(buf);
    return !strcmp(got, hex);
}

static const char PDF1[] = "%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";

/* A publication whose worker rewrites its file after the supervisor hashed
 * it: what is linked is what was hashed. */
static void test_rewrite_after_hash(void)
{
    int fd;
    loop_until(idle);
    uint64_t token = upload(10, sizeof PDF1 - 1, &fd);
    T_CHECK(token && fd >= 0, "upload: a token and a temp file");
    pwrite(fd, PDF1, sizeof PDF1 - 1, 0);
    publish(11, token, sizeof PDF1 - 1, fd, 60000);
    for (int i = 0; i < 10000 && !digest_finished(); i++)
        usleep(1000);
    /* The hash is done, the link not yet (it runs on the loop): the worker
     * now writes other bytes of the same size. */
    char evil[sizeof PDF1];
    memcpy(evil, PDF1, sizeof PDF1);
    evil[10] = 'X';
    pwrite(fd, evil, sizeof PDF1 - 1, 0);
    close(fd);
    T_CHECK(loop_until(have_query), "rewrite: the publication reaches its INSERT");
    if (!Q.cb) {
        printf("# reply %d %u %s\n", R.n, R.status, R.body);
        return;
    }
    char want[65];
    sha_hex(PDF1, sizeof PDF1 - 1, want);
    T_EQ_STR(Q.hex, want, "rewrite: the row names the hash of the bytes sent");
    T_CHECK(file_hashes_to_name(want), "rewrite: the linked file holds exactly those bytes, not the rewrite");
    answer_insert();
    T_EQ_INT(R.status, 201, "rewrite: 201");
    loop_until(idle);
    T_EQ_INT(M.reserved, 0, "rewrite: nothing stays reserved");
}

/* A worker reserving 10 bytes and publishing 100. */
static void test_over_reservation(void)
{
    int fd;
    char big[100];
    memcpy(big, PDF1, sizeof PDF1 - 1);
    memset(big + sizeof PDF1 - 1, 'a', sizeof big - (sizeof PDF1 - 1));
    uint64_t token = upload(20, 10, &fd);
    pwrite(fd, big, sizeof big, 0);
    Q.n = 0;
    publish(21, token, sizeof big, fd, 60000);
    close(fd);
    loop_until(have_reply);
    T_EQ_INT(R.status, 413, "over: publishing more than was reserved at UPLOAD is 413");
    T_EQ_INT(Q.n, 0, "over: ... and no row is written");
    loop_until(idle);
    T_EQ_INT(M.reserved, 0, "over: ... and nothing stays reserved");

    /* Claiming the reserved size but having written more. */
    token = upload(22, 10, &fd);
    pwrite(fd, big, sizeof big, 0);
    publish(23, token, 10, fd, 60000);
    close(fd);
    loop_until(have_reply);
    T_CHECK(R.status == 413 || R.status == 400, "over: a file longer than claimed and reserved is refused");

    T_EQ_INT(Q.n, 0, "over: ... and no row is written");
    loop_until(idle);
}

/* A publication waiting for a thread past its deadline, or discarded. */
static void test_queue_deadline_and_discard(void)
{
    int fd;
    uint64_t token = upload(30, sizeof PDF1 - 1, &fd);
    pwrite(fd, PDF1, sizeof PDF1 - 1, 0);
    int busy = M.hashing;
    M.hashing = HASHING_AT_ONCE; /* every thread taken */
    publish(31, token, sizeof PDF1 - 1, fd, 1);
    close(fd);
    T_CHECK(M.qhead != NULL && R.n == 0, "queue: the publication waits for a thread");
    usleep(5000);
    M.hashing = busy;
    Q.n = 0;
    run_queue();
    T_CHECK(R.n == 1 && R.status == 503, "deadline: not started in time, it is dropped (503)");
    loop_until(idle);
    T_CHECK(Q.n == 0 && M.qhead == NULL && M.reserved == 0,
            "deadline: ... no row, nothing queued or reserved");

    token = upload(32, sizeof PDF1 - 1, &fd);
    pwrite(fd, PDF1, sizeof PDF1 - 1, 0);
    M.hashing = HASHING_AT_ONCE;
    publish(33, token, sizeof PDF1 - 1, fd, 60000);
    close(fd);
    R.n = 0;
    discard(token, 0);
    T_CHECK(M.qhead == NULL && M.npub == 0 && M.reserved == 0,
            "discard: a worker that gave up waiting cancels its queued publication");

    M.hashing = busy;
    run_queue();
    loop_until(idle);
    T_CHECK(R.n == 0 && Q.n == 0, "discard: ... no answer, no row");

    /* A worker gone: its queued publication goes too. */
    token = upload(34, sizeof PDF1 - 1, &fd);
    pwrite(fd, PDF1, sizeof PDF1 - 1, 0);
    M.hashing = HASHING_AT_ONCE;
    publish(35, token, sizeof PDF1 - 1, fd, 60000);
    close(fd);
    on_worker_gone(PID);
    M.hashing = busy;
    run_queue();
    loop_until(idle);
    T_CHECK(M.npub == 0 && M.reserved == 0 && Q.n == 0, "gone: a dead worker's publication is not stored");
}

/* The UPLOAD answer never reached the worker: it discards by request id. */
static void test_discard_by_request(void)
{
    int fd;
    uint64_t token = upload(40, 1000, &fd);
    close(fd);
    T_CHECK(token && M.nup == 1 && M.reserved == 1000, "discard: an upload holds its size");
    discard(0, 39);
    T_EQ_INT(M.nup, 1, "discard: another request id leaves it");
    discard(0, 40);
    T_CHECK(M.nup == 0 && M.reserved == 0,
            "discard: by the UPLOAD's request id, the reservation goes at once");
}

static void test_scan_retry(void)
{
    M.scanned = 0;
    M.scanning = 0;
    uint64_t bytes = M.bytes;
    M.bytes = M.files = 0;
    on_tick(-1, 0, NULL);
    T_CHECK(M.scanning || M.scanned, "scan: the tick restarts a measurement that failed");
    T_CHECK(loop_until(scanned), "scan: ... which completes");
    T_EQ_INT(M.bytes, bytes, "scan: ... and finds the store's bytes");
}

static void test_repair_gauges(void)
{
    char want[65], p[512];
    sha_hex(PDF1, sizeof PDF1 - 1, want);
    loop_until(idle);
    int fd = open(stored_path(want, p, sizeof p), O_WRONLY | O_TRUNC);
    T_CHECK(fd >= 0 && write(fd, "x", 1) == 1, "repair: the stored file is damaged (1 byte)");
    close(fd);
    M.bytes = 1; /* as a scan would have measured it */
    M.files = 1;
    uint64_t token = upload(50, sizeof PDF1 - 1, &fd);
    pwrite(fd, PDF1, sizeof PDF1 - 1, 0);
    Q.cb = NULL;
    publish(51, token, sizeof PDF1 - 1, fd, 60000);
    close(fd);
    loop_until(have_query);
    answer_insert();
    loop_until(idle);
    T_EQ_INT(M.bytes, sizeof PDF1 - 1, "repair: the gauge loses the damaged size and gains the good one");
    T_EQ_INT(M.files, 1, "repair: ... still one file");
}

/* The answer to the sweep's query: these hashes are named by no live row
 * (as its snapshot, taken before a publication's row, would say). */
static void answer_unreferenced(sdb_cb cb, void *ctx, const char *hex)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc a = {.name = "h", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1};
    PQsetResultAttrs(res, 1, &a);
    PQsetvalue(res, 0, 0, (char *)hex, (int)strlen(hex));
    cb(ctx, res, NULL);
    PQclear(res);
}

static int sweep_done(void)
{
    return !SW.running;
}

static void age(const char *hex, time_t t)
{
    char p[512];
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    utimensat(AT_FDCWD, stored_path(hex, p, sizeof p), ts, 0);
}

/* The sweep found an unreferenced file (old, its rows deleted), asked the
 * database, and before it answers the same content is uploaded again: the
 * new publication refreshes the file, and the sweep's late "no row names
 * it" must not take the file its new row names. Then, left alone, the
 * sweep does take such a file (the control). */
static void test_sweep_interleaved(void)
{
    static const char PDF2[] = "%PDF-1.4\n2 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n";
    char want[65], p[512];
    struct stat sb;
    sha_hex(PDF2, sizeof PDF2 - 1, want);
    loop_until(idle);
    int fd;
    uint64_t token = upload(60, sizeof PDF2 - 1, &fd);
    pwrite(fd, PDF2, sizeof PDF2 - 1, 0);
    Q.cb = NULL;
    publish(61, token, sizeof PDF2 - 1, fd, 60000);
    close(fd);
    loop_until(have_query);
    answer_insert();
    loop_until(idle);
    T_CHECK(stat(stored_path(want, p, sizeof p), &sb) == 0, "sweep: a file stored");
    age(want, time(NULL) - 7200); /* last used two hours ago; its row then deleted */

    S.migrated = 1;
    media_sweep_init();
    const char *why = "";
    Q.cb = NULL;
    T_EQ_INT(media_sweep_start("test", &why), 0, "sweep: starts");
    T_CHECK(loop_until(have_query), "sweep: the walk found candidates and asks the database");
    sdb_cb scb = Q.cb;
    void *sctx = Q.ctx;
    Q.cb = NULL;

    token = upload(62, sizeof PDF2 - 1, &fd);
    pwrite(fd, PDF2, sizeof PDF2 - 1, 0);
    publish(63, token, sizeof PDF2 - 1, fd, 60000);
    close(fd);
    T_CHECK(loop_until(have_query), "sweep: meanwhile the same content is published again");
    answer_insert();
    T_EQ_INT(R.status, 201, "sweep: ... 201");
    loop_until(idle);

    answer_unreferenced(scb, sctx, want);
    loop_until(idle);
    T_CHECK(loop_until(sweep_done), "sweep: done");
    T_CHECK(stat(stored_path(want, p, sizeof p), &sb) == 0,
            "sweep: the file a publication used during the sweep stays");
    T_EQ_INT(SW.last.removed, 0, "sweep: ... nothing removed");

    /* Left alone: an old file no row names goes. */
    age(want, time(NULL) - 7200);
    uint64_t bytes = M.bytes;
    Q.cb = NULL;
    T_EQ_INT(media_sweep_start("test", &why), 0, "sweep: a second one starts");
    T_CHECK(loop_until(have_query), "sweep: ... asks the database");
    scb = Q.cb;
    sctx = Q.ctx;
    Q.cb = NULL;
    answer_unreferenced(scb, sctx, want);
    loop_until(idle);
    T_CHECK(loop_until(sweep_done), "sweep: ... done");
    T_CHECK(stat(stored_path(want, p, sizeof p), &sb) < 0 && SW.last.removed == 1,
            "sweep: an old file no row names is removed");
    T_EQ_INT(M.bytes, bytes - (sizeof PDF2 - 1), "sweep: ... and the gauge follows");
    S.migrated = 0;
}

static int n_done;
static void count_work(void *a)
{
    (void)a;
}
static void count_done(void *a)
{
    (void)a;
    n_done++;
}
static int five_done(void)
{
    return n_done == 5;
}

/* The wake-up pipe full: completions are not lost. */
static void test_wake_full(void)
{
    char junk[4096];
    memset(junk, 0, sizeof junk);
    while (write(wake[1], junk, sizeof junk) > 0)
        ;
    while (write(wake[1], junk, 1) > 0)
        ;
    for (int i = 0; i < 5; i++)
        wa_offload_run(count_work, count_done, NULL);
    T_CHECK(loop_until(five_done), "offload: with the wake-up pipe full, every completion still runs");
}

int main(void)
{
    loop_thread = pthread_self();
    snprintf(root, sizeof root, "/tmp/wapi-test-media-ipc-%d/store", (int)getpid());
    R.fd = -1;
    S.base = event_base_new();
    S.shm = calloc(1, sizeof *S.shm);
    S.cfg.paths.media = root;
    S.cfg.media.max_upload_bytes = 1 << 20;
    S.cfg.media.max_store_bytes = 0;
    wa_offload_init(S.base);
    try_open();
    T_CHECK(M.open && M.magic, "the store opens and libmagic loads");
    T_CHECK(loop_until(scanned), "the store is measured");
    int fds0 = count_fds();
    test_rewrite_after_hash();
    test_over_reservation();
    test_queue_deadline_and_discard();
    test_discard_by_request();
    test_scan_retry();
    test_repair_gauges();
    test_sweep_interleaved();
    loop_until(idle);
    T_EQ_INT(closes_on_loop_freeing, 0, "no file was freed by a close on the loop");
    T_EQ_INT(count_fds(), fds0, "no descriptor leaked");
    media_store_close(&M.st);
    M.open = 0;
    test_wake_full();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/wapi-test-media-ipc-%d", (int)getpid());
    if (system(cmd) != 0)
        printf("# could not remove the test folder\n");
    T_DONE();
}
