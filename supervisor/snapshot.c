#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

struct walk {
    struct sbuf *out;
    unsigned files;
    size_t bytes;
    char *err;
    size_t errlen;
};

/* Not part of the store: hidden names (a restore's leftovers, editors'
 * files), a write in progress, the file system's own folder. */
static int skipped(const char *name, int top)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n >= 4 && strcmp(name + n - 4, ".tmp") == 0) ||
           (top && strcmp(name, "lost+found") == 0);
}

static int name_ok(const char *rel)
{
    if (strlen(rel) > SNAPSHOT_NAME_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++)
        if (*p < 0x20 || *p == 0x7f) /* the reply frames entries by lines */
            return 0;
    return 1;
}

static int add_file(struct walk *w, int fd, const char *rel, const struct stat *st)
{
    if (w->files >= SNAPSHOT_MAX_FILES || (size_t)st->st_size > SNAPSHOT_MAX_BYTES - w->bytes) {
        snprintf(w->err, w->errlen, "the session store is larger than a snapshot may be (%u files, %u bytes)",
                 SNAPSHOT_MAX_FILES, SNAPSHOT_MAX_BYTES);
        return -1;
    }
    sbuf_addf(w->out, "%lld %s\n", (long long)st->st_size, rel);
    unsigned char chunk[16384];
    size_t left = (size_t)st->st_size;
    while (left > 0) {
        ssize_t n = read(fd, chunk, left < sizeof chunk ? left : sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Store files change only on this loop (replaced by rename, or the
             * Signal journal appended to), never while this read runs. */
            snprintf(w->err, w->errlen, "cannot read %s: %s", rel, n < 0 ? strerror(errno) : "it shrank");
            OPENSSL_cleanse(chunk, sizeof chunk);
            return -1;
        }
        sbuf_add(w->out, chunk, (size_t)n);
        left -= (size_t)n;
    }
    OPENSSL_cleanse(chunk, sizeof chunk);
    w->files++;
    w->bytes += (size_t)st->st_size;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dfd is consumed. prefix is "" or "sub/dir/". */
static int walk_dir(struct walk *w, int dfd, const char *prefix, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        snprintf(w->err, w->errlen, "cannot list %s: %s", *prefix ? prefix : "the session store", strerror(errno));
        close(dfd);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (skipped(de->d_name, depth == 0))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = cap <= SNAPSHOT_MAX_FILES * 2 ? realloc(names, cap * sizeof *names) : NULL;
            if (!nn) {
                snprintf(w->err, w->errlen, "too many entries in the session store");
                rc = -1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            snprintf(w->err, w->errlen, "out of memory");
            rc = -1;
            break;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char rel[SNAPSHOT_NAME_MAX + 2];
        if ((size_t)snprintf(rel, sizeof rel, "%s%s", prefix, names[i]) >= sizeof rel || !name_ok(rel)) {
            snprintf(w->err, w->errlen, "unexpected name in the session store: %.60s", names[i]);
            rc = -1;
            break;
        }
        int fd = openat(dirfd(d), names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            if (errno == ENOENT || errno == ELOOP) /* gone, or a symlink: not the store's */
                continue;
            snprintf(w->err, w->errlen, "cannot open %s: %s", rel, strerror(errno));
            rc = -1;
            break;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            snprintf(w->err, w->errlen, "cannot stat %s: %s", rel, strerror(errno));
            close(fd);
            rc = -1;
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(w, fd, rel, &st);
            close(fd);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= SNAPSHOT_MAX_DEPTH) {
                snprintf(w->err, w->errlen, "the session store is nested too deeply at %s", rel);
                close(fd);
                rc = -1;
            } else {
                char sub[SNAPSHOT_NAME_MAX + 3];
                snprintf(sub, sizeof sub, "%s/", rel);
                rc = walk_dir(w, fd, sub, depth + 1);
            }
        } else {
            close(fd); /* sockets, fifos: not the store's */
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int snapshot_dir(const char *dir, struct sbuf *out, unsigned *files, size_t *bytes, char *err, size_t errlen)
{
    struct walk w = {out, 0, 0, err, errlen};
    *files = 0;
    *bytes = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot open the session store %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = walk_dir(&w, dfd, "", 0);
    if (rc == 0 && out->oom) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc < 0) {
        if (out->buf)
            OPENSSL_cleanse(out->buf, out->cap);
        sbuf_free(out);
        sbuf_init(out);
        return -1;
    }
    *files = w.files;
    *bytes = w.bytes;
    return 0;
}

void snapshot_wipe_free(const void *data, size_t len, void *arg)
{
    (void)arg;
    if (data) {
        OPENSSL_cleanse((void *)data, len);
        free((void *)data);
    }
}
