/* The media store on disk (supervisor/media_store.c, included for its
 * statics): sharded names, a file visible only once whole (a reader racing
 * the writer never sees part of it), a hash mismatch never published, one
 * file per content, a damaged copy replaced, leftovers cleaned, the sweep's
 * removal sparing recent files, and the same with named temp files where
 * O_TMPFILE is not available. */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

/* Which folders were fsynced (media_store_sync's promise is about them). */
static char synced[16][PATH_MAX];
static int nsynced;
static int t_fsync(int fd)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    if (nsynced < 16) {
        ssize_t n = readlink(p, synced[nsynced], PATH_MAX - 1);
        synced[nsynced][n > 0 ? n : 0] = '\0';
        nsynced++;
    }
    return fsync(fd);
}
#define fsync t_fsync
#include "supervisor/media_store.c"
#undef fsync

#include <openssl/sha.h>
#include <signal.h>
#include <sys/wait.h>

#include "t.h"

static char root[256];

static void hex_of(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    SHA256(p, n, md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int write_all(int fd, const void *p, size_t n)
{
    return pwrite(fd, p, n, 0) == (ssize_t)n ? 0 : -1;
}

static int exists(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    return access(p, F_OK) == 0;
}

static size_t count_tmp(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/.tmp", root);
    DIR *d = opendir(p);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int count_cb(void *arg, const char *hex, uint64_t size, time_t mtime)
{
    (void)hex, (void)size, (void)mtime;
    (*(int *)arg)++;
    return 0;
}

static void test_names(void)
{
    char rel[MEDIA_REL_LEN];
    const char *h = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    media_store_rel(h, rel);
    T_EQ_STR(rel, "ab/cd/abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
             "names: two shard levels, then the whole hash");
    T_CHECK(media_store_hex_ok(h), "names: 64 lower-case hex digits are a name");
    T_CHECK(!media_store_hex_ok("ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"),
            "names: upper case is not");
    T_CHECK(!media_store_hex_ok("../cdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"),
            "names: a path is not");
    T_CHECK(!media_store_hex_ok("abc"), "names: a short one is not");
}

/* A reader polls for the name while the writer writes slowly, then puts:
 * whenever the name exists, the whole file is behind it. */
static void test_atomic(struct media_store *st, const char *mode)
{
    char name[128];
    size_t n = 4u << 20;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    char want[65], rel[MEDIA_REL_LEN], path[512];
    hex_of(data, n, want);
    media_store_rel(want, rel);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    uint64_t freed;
    media_store_remove(st, want, time(NULL) + 10, &freed); /* the previous mode's */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 200000; i++) {
            int fd = open(path, O_RDONLY);
            if (fd < 0) {
                usleep(50);
                continue;
            }
            struct stat sb;
            fstat(fd, &sb);
            unsigned char *got = malloc(n);
            ssize_t r = pread(fd, got, n, 0);
            char h[65];
            hex_of(got, r > 0 ? (size_t)r : 0, h);
            _exit((size_t)sb.st_size == n && !strcmp(h, want) ? 0 : 1);
        }
        _exit(2);
    }
    struct media_tmp t;
    snprintf(name, sizeof name, "atomic (%s): a temp file", mode);
    T_EQ_INT(media_store_tmp(st, &t), 0, name);
    int early = 0;
    for (size_t off = 0; off < n; off += 65536) {
        if (pwrite(t.fd, data + off, 65536, (off_t)off) != 65536)
            break;
        early |= exists(rel);
        usleep(200);
    }
    snprintf(name, sizeof name, "atomic (%s): the name does not exist while the file is written", mode);
    T_CHECK(!early, name);
    char hex[65];
    snprintf(name, sizeof name, "atomic (%s): put links it", mode);
    T_EQ_INT(media_store_put(st, &t, NULL, hex), MEDIA_NEW, name);
    media_store_tmp_discard(st, &t);
    T_EQ_STR(hex, want, "atomic: named by the SHA-256 of its bytes");
    int status = -1;
    waitpid(pid, &status, 0);
    snprintf(name, sizeof name, "atomic (%s): a reader racing the writer saw the whole file at once", mode);
    T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, name);
    snprintf(name, sizeof name, "atomic (%s): nothing left in .tmp/", mode);
    T_EQ_INT(count_tmp(), 0, name);
    free(data);
}

static void test_mismatch_and_dedup(struct media_store *st)
{
    const char body[] = "some content";
    char hex[65], want[65], rel[MEDIA_REL_LEN];
    hex_of(body, sizeof body - 1, want);
    media_store_rel(want, rel);
    struct media_tmp t;
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    const char *other = "0000000000000000000000000000000000000000000000000000000000000000";
    T_EQ_INT(media_store_put(st, &t, other, hex), MEDIA_ERR_HASH,
             "mismatch: another expected hash is refused");
    media_store_tmp_discard(st, &t);
    T_CHECK(!exists(rel), "mismatch: ... and nothing is published under either name");
    media_store_rel(other, rel);
    T_CHECK(!exists(rel), "mismatch: ... not under the expected one either");
    T_EQ_INT(count_tmp(), 0, "mismatch: no temp file is left");

    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    T_EQ_INT(media_store_put(st, &t, want, hex), MEDIA_NEW, "dedup: the expected hash is published");
    media_store_tmp_discard(st, &t);
    media_store_rel(want, rel);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct stat a, b;
    stat(path, &a);
    struct timespec old[2] = {{1000, 0}, {1000, 0}};
    utimensat(AT_FDCWD, path, old, 0);
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    T_EQ_INT(media_store_put(st, &t, want, hex), MEDIA_EXISTED,
             "dedup: the same content again finds the file");
    media_store_tmp_discard(st, &t);
    stat(path, &b);
    T_CHECK(a.st_ino == b.st_ino, "dedup: ... and leaves it (one copy)");
    T_CHECK(b.st_mtime > 1000, "dedup: ... with its time refreshed (the sweep spares it)");

    /* A damaged copy (another size under the name) is replaced. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    T_CHECK(fd >= 0 && write(fd, "x", 1) == 1, "repair: the file is damaged (test setup)");
    close(fd);
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    T_EQ_INT(media_store_put(st, &t, want, hex), MEDIA_REPAIRED, "repair: a damaged file is replaced");
    media_store_tmp_discard(st, &t);
    uint64_t size = 0;
    fd = media_store_open_file(st, want, &size);
    char got[64] = "";
    T_CHECK(fd >= 0 && size == sizeof body - 1 &&
                pread(fd, got, sizeof got, 0) == (ssize_t)(sizeof body - 1) &&
                !memcmp(got, body, sizeof body - 1),
            "repair: ... by the good bytes");
    if (fd >= 0)
        close(fd);
    T_EQ_INT(media_store_open_file(st, other, &size), -1, "open: a name the store does not hold");
    T_EQ_INT(errno, ENOENT, "open: ... is ENOENT");
    T_EQ_INT(media_store_open_file(st, "../../etc/passwd", &size), -1, "open: a path is refused");
}

static void test_remove_and_walk(struct media_store *st)
{
    int n = 0;
    media_store_walk(st, 0, count_cb, &n);
    T_EQ_INT(n, 2, "walk: the store's files (the big one and the small one)");
    char stray[512];
    snprintf(stray, sizeof stray, "%s/ab/not-a-shard", root);
    mkdir_p(stray, 0700);
    snprintf(stray, sizeof stray, "%s/ab/cd/README", root);
    mkdir_p(stray, 0700); /* a folder where a file would be: skipped */
    n = 0;
    media_store_walk(st, 0, count_cb, &n);
    T_EQ_INT(n, 2, "walk: names that are not the store's are skipped");
    const char body[] = "some content";
    char want[65], rel[MEDIA_REL_LEN];
    hex_of(body, sizeof body - 1, want);
    media_store_rel(want, rel);
    uint64_t freed = 7;
    T_EQ_INT(media_store_remove(st, want, time(NULL) - 3600, &freed), 0,
             "remove: a file modified after not_after is kept");
    T_CHECK(exists(rel) && freed == 0, "remove: ... still there");
    T_EQ_INT(media_store_remove(st, want, time(NULL) + 10, &freed), 1, "remove: an older one goes");
    T_CHECK(!exists(rel) && freed == sizeof body - 1, "remove: ... and its size is reported");
    char sub[8];
    snprintf(sub, sizeof sub, "%.2s/%.2s", want, want + 2);
    T_CHECK(!exists(sub), "remove: its empty shard folder goes too");
    T_EQ_INT(media_store_remove(st, want, time(NULL) + 10, &freed), 0, "remove: an absent file is no error");
}

static void test_leftovers(void)
{
    struct media_store st;
    unsigned removed;
    char err[256], p[512];
    snprintf(p, sizeof p, "%s/.tmp/up-0011223344556677", root);
    int fd = open(p, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0 && write(fd, "half", 4) == 4, "leftovers: a temp file is left (test setup)");
    close(fd);
    snprintf(p, sizeof p, "%s/ab/cd/abcd.tmp", root);
    fd = open(p, O_CREAT | O_WRONLY, 0600);
    T_CHECK(fd >= 0, "leftovers: a repair's leftover (test setup)");
    close(fd);
    T_EQ_INT(media_store_open(&st, root, &removed, err, sizeof err), 0, "leftovers: the store opens again");
    T_EQ_INT(removed, 1, "leftovers: the temp file an interrupted upload left is removed");
    T_EQ_INT(count_tmp(), 0, "leftovers: .tmp/ is empty");
    int n = 0;
    media_store_walk(&st, 1, count_cb, &n);
    T_CHECK(access(p, F_OK) != 0, "leftovers: a walk with clean removes a repair's leftover");
    media_store_close(&st);
}

/* The same steps with named temp files (a file system without O_TMPFILE). */
static void test_named(void)
{
    struct media_store st;
    unsigned removed;
    char err[256];
    media_store_open(&st, root, &removed, err, sizeof err);
    st.use_tmpfile = 0;
    struct media_tmp t;
    T_EQ_INT(media_store_tmp(&st, &t), 0, "named: a temp file");
    T_CHECK(t.name[0] && count_tmp() == 1, "named: it has a name in .tmp/");
    const char body[] = "named content";
    write_all(t.fd, body, sizeof body - 1);
    char hex[65], want[65], rel[MEDIA_REL_LEN];
    hex_of(body, sizeof body - 1, want);
    T_EQ_INT(media_store_put(&st, &t, NULL, hex), MEDIA_NEW, "named: put links it");
    media_store_tmp_discard(&st, &t);
    media_store_rel(want, rel);
    T_CHECK(exists(rel) && count_tmp() == 0, "named: published, and the temp name is gone");
    media_store_tmp(&st, &t);
    write_all(t.fd, "x", 1);
    media_store_tmp_discard(&st, &t);
    T_EQ_INT(count_tmp(), 0, "named: a discarded upload leaves nothing");
    media_store_close(&st);
}

static int was_synced(const char *rel)
{
    char p[PATH_MAX], real[PATH_MAX];
    snprintf(p, sizeof p, "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (!realpath(p, real))
        return 0;
    for (int i = 0; i < nsynced; i++)
        if (!strcmp(synced[i], real))
            return 1;
    return 0;
}

/* A publication that finds the file (another made it, maybe not yet
 * durable) still makes every level durable before it answers. */
static void test_sync_levels(struct media_store *st)
{
    const char body[] = "synced content";
    char hex[65], rel[MEDIA_REL_LEN], top[3], sub[6];
    struct media_tmp t;
    T_EQ_INT(media_store_tmp(st, &t), 0, "sync: a temp file");
    write_all(t.fd, body, sizeof body - 1);
    T_EQ_INT(media_store_put(st, &t, NULL, hex), MEDIA_NEW, "sync: published");
    media_store_tmp_discard(st, &t);
    media_store_rel(hex, rel);
    snprintf(top, sizeof top, "%.2s", hex);
    snprintf(sub, sizeof sub, "%.2s/%.2s", hex, hex + 2);
    T_EQ_INT(media_store_tmp(st, &t), 0, "sync: another temp file, same bytes");
    write_all(t.fd, body, sizeof body - 1);
    nsynced = 0;
    T_EQ_INT(media_store_put(st, &t, NULL, hex), MEDIA_EXISTED, "sync: the second finds the file");
    media_store_tmp_discard(st, &t);
    T_CHECK(was_synced(sub) && was_synced(top) && was_synced(""),
            "sync: ... and still fsyncs its folder, the shard folder and the store's root");
    uint64_t freed;
    media_store_remove(st, hex, time(NULL) + 10, &freed);
}

/* Named temp files: the inode linked is the one hashed, even when the name
 * in .tmp/ was pointed at another file meanwhile. */
static void test_named_swap(int no_proc)
{
    struct media_store st;
    unsigned removed;
    char err[256], name[128];
    const char *mode = no_proc ? "without /proc" : "with /proc";
    T_EQ_INT(media_store_open(&st, root, &removed, err, sizeof err), 0, "swap: the store opens");
    st.use_tmpfile = 0;
    st.no_proc = no_proc;
    const char good[] = "the bytes that were hashed";
    const char evil[] = "the bytes put there later!";
    struct media_tmp t;
    T_EQ_INT(media_store_tmp(&st, &t), 0, "swap: a named temp file");
    write_all(t.fd, good, sizeof good - 1);
    uint64_t size;
    char hex[65], other[512], path[512];
    unsigned char head[1];
    size_t hl;
    T_EQ_INT(media_store_digest(t.fd, &size, hex, head, 0, &hl), 0, "swap: hashed");
    /* Another file takes the temp name. */
    snprintf(other, sizeof other, "%s/.tmp/evil", root);
    int fd = open(other, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    T_CHECK(fd >= 0 && write(fd, evil, sizeof evil - 1) == (ssize_t)(sizeof evil - 1), "swap: setup");
    close(fd);
    snprintf(path, sizeof path, "%s/.tmp/%s", root, t.name);
    T_EQ_INT(rename(other, path), 0, "swap: the name now points at other bytes");
    uint64_t replaced;
    int r = media_store_link(&st, &t, hex, size, &replaced);
    char rel[MEDIA_REL_LEN];
    media_store_rel(hex, rel);
    if (no_proc) {
        snprintf(name, sizeof name, "swap (%s): the link is refused (ESTALE), nothing published", mode);
        T_CHECK(r < 0 && errno == ESTALE && !exists(rel), name);
    } else {
        char got[64] = "";
        uint64_t sz = 0;
        int rfd = media_store_open_file(&st, hex, &sz);
        ssize_t n = rfd >= 0 ? pread(rfd, got, sizeof got, 0) : -1;
        if (rfd >= 0)
            close(rfd);
        /* The rename unlinked the hashed inode: it cannot get a name again,
         * so the link is refused; never are the name's bytes published. */
        snprintf(name, sizeof name, "swap (%s): the hashed inode is linked or nothing is, never the name's",
                 mode);
        T_CHECK((r == MEDIA_NEW && n == (ssize_t)(sizeof good - 1) && !memcmp(got, good, sizeof good - 1)) ||
                    (r < 0 && !exists(rel)),
                name);
    }
    media_store_tmp_discard(&st, &t);
    uint64_t freed;
    media_store_remove(&st, hex, time(NULL) + 10, &freed);
    media_store_close(&st);
}

/* A damaged copy's size is reported, for the gauges. */
static void test_replaced(struct media_store *st)
{
    const char body[] = "replaced content";
    char hex[65], want[65], path[512], rel[MEDIA_REL_LEN];
    hex_of(body, sizeof body - 1, want);
    struct media_tmp t;
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    media_store_put(st, &t, NULL, hex);
    media_store_tmp_discard(st, &t);
    media_store_rel(want, rel);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    T_EQ_INT(truncate(path, 3), 0, "replaced: the copy is damaged (3 bytes)");
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    uint64_t replaced = 0;
    T_EQ_INT(media_store_link(st, &t, want, sizeof body - 1, &replaced), MEDIA_REPAIRED,
             "replaced: repaired");
    T_EQ_INT(replaced, 3, "replaced: ... and the damaged copy's size is reported");
    media_store_tmp_discard(st, &t);
    uint64_t freed;
    media_store_remove(st, want, time(NULL) + 10, &freed);
}

/* Removal moves into .trash/; emptying it frees the blocks. */
static void test_trash(struct media_store *st)
{
    const char body[] = "trashed content";
    char hex[65];
    struct media_tmp t;
    media_store_tmp(st, &t);
    write_all(t.fd, body, sizeof body - 1);
    media_store_put(st, &t, NULL, hex);
    media_store_tmp_discard(st, &t);
    uint64_t freed;
    T_EQ_INT(media_store_remove(st, hex, time(NULL) + 10, &freed), 1, "trash: removed");
    unsigned n = 0;
    T_EQ_INT(media_store_empty_trash(st, &n), 0, "trash: emptied");
    T_CHECK(n >= 1, "trash: ... the removed file was there, and is freed now");
    T_EQ_INT(media_store_empty_trash(st, &n), 0, "trash: emptied again");
    T_EQ_INT(n, 0, "trash: ... nothing left");
}

static void test_copy(void)
{
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/../copy-src", root);
    snprintf(p2, sizeof p2, "%s/../copy-dst", root);
    int a = open(p1, O_CREAT | O_RDWR | O_TRUNC, 0600), b = open(p2, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_CHECK(a >= 0 && b >= 0, "copy: two files");
    char buf[3000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)i;
    write_all(a, buf, sizeof buf);
    uint64_t n = 0;
    T_EQ_INT(media_store_copy(a, b, sizeof buf, &n), 0, "copy: within the limit");
    char got[3000];
    T_CHECK(n == sizeof buf && pread(b, got, sizeof got, 0) == (ssize_t)sizeof got &&
                !memcmp(got, buf, sizeof buf),
            "copy: ... every byte");
    T_EQ_INT(ftruncate(b, 0), 0, "copy: emptied");
    T_EQ_INT(media_store_copy(a, b, 100, &n), 0, "copy: over the limit");
    T_EQ_INT(n, 101, "copy: ... stops one byte past it (the caller refuses)");
    close(a);
    close(b);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/wapi-test-media-%d/store", (int)getpid());
    test_names();
    struct media_store st;
    unsigned removed = 9;
    char err[256];
    T_EQ_INT(media_store_open(&st, root, &removed, err, sizeof err), 0, "open: creates the store and .tmp/");
    T_EQ_INT(removed, 0, "open: nothing to clean in a new store");
    T_CHECK(st.use_tmpfile, "open: O_TMPFILE works on this file system");
    test_atomic(&st, "O_TMPFILE");
    st.use_tmpfile = 0;
    test_atomic(&st, "named temp file");
    st.no_proc = 1;
    test_atomic(&st, "named, without /proc");
    st.use_tmpfile = 1;
    st.no_proc = 0;
    test_sync_levels(&st);
    test_replaced(&st);
    test_trash(&st);
    test_copy();
    test_mismatch_and_dedup(&st);
    test_remove_and_walk(&st);
    media_store_close(&st);
    test_leftovers();
    test_named();
    test_named_swap(0);
    test_named_swap(1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/wapi-test-media-%d", (int)getpid());
    if (system(cmd) != 0)
        printf("# could not remove the test folder\n");
    T_DONE();
}
