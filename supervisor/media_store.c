#include "media_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdatomic.h>

#include "common/fsutil.h"
#include "common/hex.h"

#define FILE_MODE 0640
#define DIR_MODE 0750
#define READ_CHUNK (1u << 20)

/* Names in .trash/ are unique in this process (a hex removed twice). */
static atomic_uint trash_seq;

static int is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int media_store_hex_ok(const char *s)
{
    return s && strlen(s) == MEDIA_HEX_LEN && is_hex_lower(s, MEDIA_HEX_LEN);
}

void media_store_rel(const char *hex, char out[MEDIA_REL_LEN])
{
    snprintf(out, MEDIA_REL_LEN, "%.2s/%.2s/%.64s", hex, hex + 2, hex);
}

/* A folder below dfd, opened anew (its own read position). */
static DIR *open_sub(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d)
        close(fd);
    return d;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Moves every entry of the .tmp/ folder (uploads a crash interrupted) into
 * .trash/: renaming is quick, the unlink that frees the blocks is
 * media_store_empty_trash's, off the supervisor's loop. */
static int clean_tmp(int tmpdfd, int trashdfd, unsigned *removed)
{
    DIR *d = open_sub(tmpdfd, ".");
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char to[64];
        snprintf(to, sizeof to, "tmp-%u-%d", atomic_fetch_add(&trash_seq, 1), (int)getpid());
        if (renameat(tmpdfd, de->d_name, trashdfd, to) == 0 || unlinkat(tmpdfd, de->d_name, 0) == 0)
            (*removed)++;
    }
    closedir(d);
    return 0;
}

int media_store_trash(struct media_store *st, int dfd, const char *name)
{
    const char *base = strrchr(name, '/');
    char to[96];
    snprintf(to, sizeof to, "%.64s-%u", base ? base + 1 : name, atomic_fetch_add(&trash_seq, 1));
    if (st->trashdfd >= 0 && renameat(dfd, name, st->trashdfd, to) == 0)
        return 0;
    if (errno == ENOENT)
        return -1;
    return unlinkat(dfd, name, 0); /* no trash folder: at once */
}

int media_store_empty_trash(struct media_store *st, unsigned *removed)
{
    *removed = 0;
    if (st->trashdfd < 0)
        return 0;
    DIR *d = open_sub(st->trashdfd, ".");
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (unlinkat(st->trashdfd, de->d_name, 0) == 0)
            (*removed)++;
    }
    closedir(d);
    return 0;
}

/* Whether an O_TMPFILE made here can be given a name (the file system has
 * O_TMPFILE, and /proc is there for linkat). */
static int probe_tmpfile(int tmpdfd)
{
    int fd = openat(tmpdfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, FILE_MODE);
    if (fd < 0)
        return 0;
    char proc[64], name[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    snprintf(name, sizeof name, "probe-%d", (int)getpid());
    int ok = linkat(AT_FDCWD, proc, tmpdfd, name, AT_SYMLINK_FOLLOW) == 0;
    if (ok)
        unlinkat(tmpdfd, name, 0);
    close(fd);
    return ok;
}

int media_store_open(struct media_store *st, const char *root, unsigned *removed, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->dfd = st->tmpdfd = st->trashdfd = -1;
    *removed = 0;
    if ((size_t)snprintf(st->root, sizeof st->root, "%s", root) >= sizeof st->root) {
        snprintf(err, errlen, "the media path is too long");
        return -1;
    }
    if (mkdir_p(root, DIR_MODE) < 0 || (st->dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s: %s", root, strerror(errno));
        return -1;
    }
    if ((mkdirat(st->dfd, MEDIA_TMP_DIR, DIR_MODE) < 0 && errno != EEXIST) ||
        (st->tmpdfd = openat(st->dfd, MEDIA_TMP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s/%s: %s", root, MEDIA_TMP_DIR, strerror(errno));
        media_store_close(st);
        return -1;
    }
    if ((mkdirat(st->dfd, MEDIA_TRASH_DIR, DIR_MODE) < 0 && errno != EEXIST) ||
        (st->trashdfd = openat(st->dfd, MEDIA_TRASH_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
            0) {
        snprintf(err, errlen, "%s/%s: %s", root, MEDIA_TRASH_DIR, strerror(errno));
        media_store_close(st);
        return -1;
    }
    if (clean_tmp(st->tmpdfd, st->trashdfd, removed) < 0) {
        snprintf(err, errlen, "%s/%s: cannot list: %s", root, MEDIA_TMP_DIR, strerror(errno));
        media_store_close(st);
        return -1;
    }
    st->use_tmpfile = probe_tmpfile(st->tmpdfd);
    return 0;
}

void media_store_close(struct media_store *st)
{
    close_fd(&st->dfd);
    close_fd(&st->tmpdfd);
    close_fd(&st->trashdfd);
}

int media_store_tmp(struct media_store *st, struct media_tmp *t)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    if (st->use_tmpfile) {
        t->fd = openat(st->tmpdfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, FILE_MODE);
    } else {
        for (int tries = 0; tries < 8 && t->fd < 0; tries++) {
            unsigned char r[8];
            if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
                return -1;
            memcpy(t->name, "up-", 3);
            hex_encode(t->name + 3, r, sizeof r, 0);
            t->fd =
                openat(st->tmpdfd, t->name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, FILE_MODE);
            if (t->fd < 0 && errno != EEXIST)
                break;
        }
    }
    if (t->fd < 0) {
        t->name[0] = '\0';
        return -1;
    }
    struct stat sb;
    if (fstat(t->fd, &sb) < 0) {
        int e = errno;
        media_store_tmp_discard(st, t);
        errno = e;
        return -1;
    }
    t->dev = sb.st_dev;
    t->ino = sb.st_ino;
    return 0;
}

void media_store_tmp_discard(struct media_store *st, struct media_tmp *t)
{
    close_fd(&t->fd);
    if (t->name[0] && st->tmpdfd >= 0)
        unlinkat(st->tmpdfd, t->name, 0);
    t->name[0] = '\0';
}

int media_store_copy(int src, int dst, uint64_t limit, uint64_t *copied)
{
    *copied = 0;
    uint64_t want = limit + 1; /* one byte more tells a file over the limit */
    int plain = 0;
    unsigned char *buf = NULL;
    while (*copied < want) {
        size_t step = want - *copied < READ_CHUNK ? (size_t)(want - *copied) : READ_CHUNK;
        ssize_t n;
        if (!plain) {
            /* In the kernel (a reflink where the file system has them). */
            loff_t in = (loff_t)*copied, out = (loff_t)*copied;
            n = copy_file_range(src, &in, dst, &out, step, 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
                plain = 1;
                continue;
            }
        } else {
            if (!buf && !(buf = malloc(READ_CHUNK))) {
                errno = ENOMEM;
                return -1;
            }
            n = pread(src, buf, step, (off_t)*copied);
            if (n > 0) {
                for (ssize_t w = 0; w < n;) {
                    ssize_t k = pwrite(dst, buf + w, (size_t)(n - w), (off_t)*copied + w);
                    if (k < 0 && errno == EINTR)
                        continue;
                    if (k <= 0) {
                        int e = k < 0 ? errno : EIO;
                        free(buf);
                        errno = e;
                        return -1;
                    }
                    w += k;
                }
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        *copied += (uint64_t)n;
    }
    free(buf);
    return 0;
}

int media_store_digest(int fd, uint64_t *size, char hex[MEDIA_HEX_LEN + 1], unsigned char *head,
                       size_t headcap, size_t *headlen)
{
    *size = 0;
    *headlen = 0;
    if (fsync(fd) < 0)
        return -1;
    unsigned char *buf = malloc(READ_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;
    if (!buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        errno = ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, READ_CHUNK, (off_t)*size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (*headlen < headcap) {
            size_t k = headcap - *headlen < (size_t)n ? headcap - *headlen : (size_t)n;
            memcpy(head + *headlen, buf, k);
            *headlen += k;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            errno = EIO;
            goto out;
        }
        *size += (uint64_t)n;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        errno = EIO;
        goto out;
    }
    hex_encode(hex, md, sizeof md, 0);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* Gives the temp file the name dst (relative to the store's folder): the
 * very inode t->fd holds, whose bytes were the ones hashed, never whatever
 * a named temp file's name points at by now. */
static int link_tmp(struct media_store *st, const struct media_tmp *t, const char *dst)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
    if (!t->name[0])
        return linkat(AT_FDCWD, proc, st->dfd, dst, AT_SYMLINK_FOLLOW);
    if (!st->no_proc) {
        if (linkat(AT_FDCWD, proc, st->dfd, dst, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != ENOENT) /* ENOENT: no /proc; by name then */
            return -1;
    }
    /* By name, only while the name holds our inode, checked again after. */
    struct stat a, b;
    if (fstatat(st->tmpdfd, t->name, &a, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    if (a.st_dev != t->dev || a.st_ino != t->ino) {
        errno = ESTALE;
        return -1;
    }
    if (linkat(st->tmpdfd, t->name, st->dfd, dst, 0) < 0)
        return -1;
    if (fstatat(st->dfd, dst, &b, AT_SYMLINK_NOFOLLOW) < 0 || b.st_dev != t->dev || b.st_ino != t->ino) {
        unlinkat(st->dfd, dst, 0); /* ours: linkat made it */
        errno = ESTALE;
        return -1;
    }
    return 0;
}

static int make_dir(int dfd, const char *rel)
{
    return mkdirat(dfd, rel, DIR_MODE) == 0 || errno == EEXIST ? 0 : -1;
}

int media_store_link(struct media_store *st, const struct media_tmp *t, const char *hex, uint64_t size,
                     uint64_t *replaced)
{
    *replaced = 0;
    if (!media_store_hex_ok(hex)) {
        errno = EINVAL;
        return -1;
    }
    char rel[MEDIA_REL_LEN], top[3], sub[6];
    media_store_rel(hex, rel);
    snprintf(top, sizeof top, "%.2s", hex);
    snprintf(sub, sizeof sub, "%.2s/%.2s", hex, hex + 2);
    if (make_dir(st->dfd, top) < 0 || make_dir(st->dfd, sub) < 0)
        return -1;
    /* A sweep may remove the file between our EEXIST and the touch (another
     * process; ours runs on the same loop): then link again. */
    for (int tries = 0; tries < 3; tries++) {
        if (link_tmp(st, t, rel) == 0)
            return MEDIA_NEW;
        if (errno != EEXIST)
            return -1;
        struct stat sb;
        if (fstatat(st->dfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return -1;
        }
        if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == size) {
            /* The same content (the name is its hash). Its new time keeps the
             * sweep from taking it while the new row is being written. */
            if (utimensat(st->dfd, rel, NULL, AT_SYMLINK_NOFOLLOW) == 0)
                return MEDIA_EXISTED;
            if (errno == ENOENT)
                continue;
            return -1;
        }
        /* Another size under this hash: a damaged copy. Ours replaces it
         * atomically (link aside, rename over). */
        char aside[MEDIA_REL_LEN + 8];
        snprintf(aside, sizeof aside, "%s.tmp", rel);
        unlinkat(st->dfd, aside, 0);
        if (link_tmp(st, t, aside) < 0)
            return -1;
        if (renameat(st->dfd, aside, st->dfd, rel) < 0) {
            int e = errno;
            unlinkat(st->dfd, aside, 0);
            errno = e;
            return -1;
        }
        *replaced = (uint64_t)sb.st_size;
        return MEDIA_REPAIRED;
    }
    errno = EAGAIN;
    return -1;
}

static int fsync_at(int dfd, const char *rel)
{
    int fd = openat(dfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int media_store_sync(struct media_store *st, const char *hex)
{
    /* All three levels, whoever made them: a publication that found the
     * file or its folders (another one made them, maybe not yet synced, or
     * a failed one made them and synced nothing) must not answer before
     * they are durable. Three fsyncs of folders are cheap. */
    char top[3], sub[6];
    snprintf(top, sizeof top, "%.2s", hex);
    snprintf(sub, sizeof sub, "%.2s/%.2s", hex, hex + 2);
    if (fsync_at(st->dfd, sub) < 0 || fsync_at(st->dfd, top) < 0 || fsync(st->dfd) < 0)
        return -1;
    return 0;
}

int media_store_put(struct media_store *st, struct media_tmp *t, const char *expect_hex,
                    char hex[MEDIA_HEX_LEN + 1])
{
    uint64_t size;
    size_t hl;
    unsigned char head[1];
    if (media_store_digest(t->fd, &size, hex, head, 0, &hl) < 0)
        return -1;
    if (expect_hex && strcmp(expect_hex, hex) != 0)
        return MEDIA_ERR_HASH;
    uint64_t replaced;
    int r = media_store_link(st, t, hex, size, &replaced);
    if (r < 0 || media_store_sync(st, hex) < 0)
        return -1;
    return r;
}

int media_store_open_file(struct media_store *st, const char *hex, uint64_t *size)
{
    if (!media_store_hex_ok(hex)) {
        errno = EINVAL;
        return -1;
    }
    char rel[MEDIA_REL_LEN];
    media_store_rel(hex, rel);
    int fd = openat(st->dfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        errno = ENOENT;
        return -1;
    }
    *size = (uint64_t)sb.st_size;
    return fd;
}

int media_store_remove(struct media_store *st, const char *hex, time_t not_after, uint64_t *freed)
{
    *freed = 0;
    if (!media_store_hex_ok(hex))
        return 0;
    char rel[MEDIA_REL_LEN], top[3], sub[6];
    media_store_rel(hex, rel);
    struct stat sb;
    if (fstatat(st->dfd, rel, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISREG(sb.st_mode) || sb.st_mtime >= not_after)
        return 0;
    /* Into .trash/: the name goes now, the blocks when the trash is emptied
     * (off the loop). */
    if (media_store_trash(st, st->dfd, rel) < 0)
        return errno == ENOENT ? 0 : -1;
    *freed = (uint64_t)sb.st_size;
    snprintf(top, sizeof top, "%.2s", hex);
    snprintf(sub, sizeof sub, "%.2s/%.2s", hex, hex + 2);
    if (unlinkat(st->dfd, sub, AT_REMOVEDIR) == 0) /* fails while other files are there: fine */
        unlinkat(st->dfd, top, AT_REMOVEDIR);
    return 1;
}

/* A shard folder name: two lower-case hex digits. */
static int shard_ok(const char *n)
{
    return strlen(n) == 2 && is_hex_lower(n, 2);
}

int media_store_walk(struct media_store *st, int clean,
                     int (*fn)(void *arg, const char *hex, uint64_t size, time_t mtime), void *arg)
{
    DIR *d0 = open_sub(st->dfd, ".");
    if (!d0)
        return -1;
    int stop = 0;
    struct dirent *a;
    while (!stop && (a = readdir(d0)) != NULL) {
        if (!shard_ok(a->d_name))
            continue;
        DIR *d1 = open_sub(dirfd(d0), a->d_name);
        struct dirent *b;
        while (!stop && d1 && (b = readdir(d1)) != NULL) {
            if (!shard_ok(b->d_name))
                continue;
            DIR *d2 = open_sub(dirfd(d1), b->d_name);
            struct dirent *c;
            while (!stop && d2 && (c = readdir(d2)) != NULL) {
                const char *n = c->d_name;
                size_t l = strlen(n);
                if (clean && l > 4 && !strcmp(n + l - 4, ".tmp")) {
                    unlinkat(dirfd(d2), n, 0); /* a repair a crash interrupted */
                    continue;
                }
                if (l != MEDIA_HEX_LEN || !is_hex_lower(n, l) || memcmp(n, a->d_name, 2) ||
                    memcmp(n + 2, b->d_name, 2))
                    continue;
                struct stat sb;
                if (fstatat(dirfd(d2), n, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
                    continue;
                stop = fn(arg, n, (uint64_t)sb.st_size, sb.st_mtime);
            }
            if (d2)
                closedir(d2);
        }
        if (d1)
            closedir(d1);
    }
    closedir(d0);
    return 0;
}
