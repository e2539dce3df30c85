#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/fdio.h"
#include "common/hex.h"
#include "common/fsutil.h"
#include "common/timefmt.h"
#include "common/config.h"
#include "common/json.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "ctl_sock.h"
#include "tar_stream.h"

#ifndef WAPI_VERSION
#define WAPI_VERSION "dev"
#endif

#define FORMAT "wapi-backup"
#define FORMAT_VERSION 1
#define MANIFEST "manifest.json"
#define REL_MAX 200               /* a path inside a store; "media/" + this fits ustar */
#define MANIFEST_MAX (256u << 20) /* ~1.5 million files */
#define FILES_MAX 1000000u
#define DEPTH_MAX 16
#define SNAP_REPLY_MAX ((64u << 20) + (1u << 20))
/* Media is already compressed (JPEG, MP4, Opus) and keys are random bytes:
 * the fastest level gives nearly the same size at a fraction of the CPU. */
#define GZIP_LEVEL 1

enum store { ST_SESSIONS, ST_MEDIA, ST_N };
static const char *const store_prefix[ST_N] = {"whatsapp_sessions/", "media/"};

struct rec {
    enum store store;
    char *rel; /* owned; path inside its store */
    uint64_t size;
    char sha[65];
};

struct recs {
    struct rec *v;
    size_t n, cap;
};

static int recs_add(struct recs *r, enum store st, const char *rel, uint64_t size, const char *sha)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct rec *v = r->n < FILES_MAX ? realloc(r->v, cap * sizeof *v) : NULL;
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    struct rec *e = &r->v[r->n];
    if (!(e->rel = strdup(rel)))
        return -1;
    e->store = st;
    e->size = size;
    memcpy(e->sha, sha, 65);
    r->n++;
    return 0;
}

static void recs_free(struct recs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].rel);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* A relative path we are willing to write: no empty, ".", ".." or hidden
 * component (the staging and kept-aside folders are hidden), no control
 * characters, bounded. */
static int rel_ok(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n > REL_MAX)
        return 0;
    for (const char *p = rel;;) {
        const char *s = strchr(p, '/');
        if (p[0] == '.' || p[0] == '/' || p[0] == '\0')
            return 0;
        if (!s)
            break;
        p = s + 1;
    }
    for (const unsigned char *q = (const unsigned char *)rel; *q; q++)
        if (*q < 0x20 || *q == 0x7f)
            return 0;
    return 1;
}

/* Names in a store folder that are not the store's: hidden ones (staging,
 * kept-aside stores), and the file system's lost+found at the top. */
static int foreign_name(const char *name, int top)
{
    return name[0] == '.' || (top && strcmp(name, "lost+found") == 0);
}

struct paths {
    char sessions[4096], media[4096], sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static int load_paths(const char *config_path, const char *sock, struct paths *p)
{
    struct wapi_config cfg;
    char err[1024];
    if (config_load(&cfg, config_path ? config_path : "conf/wapi.conf", config_path == NULL, CONFIG_WITH_ENV,
                    err, sizeof err) < 0) {
        fprintf(stderr, "wapictl: %s\n", err);
        config_free(&cfg);
        return -1;
    }
    int bad =
        (size_t)snprintf(p->sessions, sizeof p->sessions, "%s", cfg.paths.sessions) >= sizeof p->sessions ||
        (size_t)snprintf(p->media, sizeof p->media, "%s", cfg.paths.media) >= sizeof p->media ||
        (size_t)(sock ? snprintf(p->sock, sizeof p->sock, "%s", sock)
                      : snprintf(p->sock, sizeof p->sock, "%s/wapi.sock", cfg.paths.run)) >= sizeof p->sock;
    config_free(&cfg);
    if (bad) {
        fprintf(stderr, "wapictl: a configured path is too long\n");
        return -1;
    }
    return 0;
}

/* ======================= backup ======================= */

struct snap {
    char *buf; /* the supervisor's whole reply; holds private keys */
    size_t len, cap;
};

static void snap_free(struct snap *s)
{
    if (s->buf) {
        OPENSSL_cleanse(s->buf, s->cap);
        free(s->buf);
    }
    memset(s, 0, sizeof *s);
}

static int fetch_snapshot(const char *sock, struct snap *s, char *err, size_t errlen)
{
    int fd = ctl_connect(sock);
    if (fd < 0) {
        snprintf(err, errlen, "cannot reach wapi at %s: %s (a backup is taken from the running server)", sock,
                 strerror(errno));
        return -1;
    }
    if (fd_write_all(fd, "snapshot\n", 9) < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        close(fd);
        return -1;
    }
    for (;;) {
        if (s->len == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 1u << 16;
            /* grown by hand so no copy of the keys is left behind in freed memory */
            char *nb = cap <= SNAP_REPLY_MAX ? malloc(cap) : NULL;
            if (!nb) {
                snprintf(err, errlen, "the session store snapshot is too large");
                close(fd);
                return -1;
            }
            if (s->buf) {
                memcpy(nb, s->buf, s->len);
                OPENSSL_cleanse(s->buf, s->cap);
                free(s->buf);
            }
            s->buf = nb;
            s->cap = cap;
        }
        ssize_t r = read(fd, s->buf + s->len, s->cap - s->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "control socket: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        s->len += (size_t)r;
    }
    close(fd);
    return 0;
}

struct snap_it {
    const char *p, *end;
    int64_t files_left;
};

/* Checks the reply's first line; positions it on the first file. */
static int snap_begin(const struct snap *s, struct snap_it *it, int64_t *bytes, char *err, size_t errlen)
{
    const char *nl = s->len ? memchr(s->buf, '\n', s->len) : NULL;
    if (!nl) {
        snprintf(err, errlen, "no answer from wapi to `snapshot` (is it an older version?)");
        return -1;
    }
    char jerr[128];
    yajl_val v = json_parse(s->buf, (size_t)(nl - s->buf), 4096, jerr, sizeof jerr);
    if (!v) {
        snprintf(err, errlen, "unreadable answer to `snapshot`: %s", jerr);
        return -1;
    }
    int rc = 0;
    if (json_bool(v, "ok") != 1) {
        const char *e = json_str(v, "error");
        snprintf(err, errlen, "wapi could not snapshot the session store: %s", e ? e : "no reason given");
        rc = -1;
    } else if (json_int(v, "files", &it->files_left) != 1 || json_int(v, "bytes", bytes) != 1 ||
               it->files_left < 0) {
        snprintf(err, errlen, "unreadable answer to `snapshot`");
        rc = -1;
    }
    yajl_tree_free(v);
    it->p = nl + 1;
    it->end = s->buf + s->len;
    return rc;
}

/* 1: the next file; 0: done (and nothing left over); -1: malformed. */
static int snap_next(struct snap_it *it, char *rel, size_t relcap, const char **data, uint64_t *size)
{
    if (it->files_left == 0)
        return it->p == it->end ? 0 : -1;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    if (!nl)
        return -1;
    char *sp;
    errno = 0;
    unsigned long long n = strtoull(it->p, &sp, 10);
    if (errno || sp == it->p || *sp != ' ' || sp >= nl || (size_t)(nl - sp - 1) >= relcap)
        return -1;
    memcpy(rel, sp + 1, (size_t)(nl - sp - 1));
    rel[nl - sp - 1] = '\0';
    if (!rel_ok(rel) || n > (unsigned long long)(it->end - nl - 1))
        return -1;
    *data = nl + 1;
    *size = n;
    it->p = nl + 1 + n;
    it->files_left--;
    return 1;
}

struct bk {
    struct tar_out t;
    struct recs recs;
    uint64_t bytes[ST_N];
    size_t files[ST_N];
    int64_t now;
    char err[512];
};

static int archive_mem(struct bk *b, enum store st, const char *rel, const void *data, size_t size)
{
    char name[TAR_NAME_MAX + 1], sha[65];
    unsigned char md[32];
    snprintf(name, sizeof name, "%s%s", store_prefix[st], rel);
    if (tar_out_file(&b->t, name, size, 0600, b->now) < 0 || (size && tar_out_data(&b->t, data, size) < 0)) {
        snprintf(b->err, sizeof b->err, "%s", b->t.err);
        return -1;
    }
    EVP_Digest(data, size, md, NULL, EVP_sha256(), NULL);
    hex_encode(sha, md, 32, 0);
    if (recs_add(&b->recs, st, rel, size, sha) < 0) {
        snprintf(b->err, sizeof b->err, "out of memory (or more than %u files)", FILES_MAX);
        return -1;
    }
    b->files[st]++;
    b->bytes[st] += size;
    return 0;
}

static int archive_fd(struct bk *b, enum store st, const char *rel, int fd, const struct stat *sb)
{
    char name[TAR_NAME_MAX + 1], sha[65];
    unsigned char md[32], buf[1 << 16];
    snprintf(name, sizeof name, "%s%s", store_prefix[st], rel);
    uint64_t left = (uint64_t)sb->st_size;
    if (tar_out_file(&b->t, name, left, sb->st_mode & 0777, (int64_t)sb->st_mtime) < 0) {
        snprintf(b->err, sizeof b->err, "%s", b->t.err);
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        snprintf(b->err, sizeof b->err, "SHA-256 unavailable");
        return -1;
    }
    int rc = 0;
    while (left > 0) {
        ssize_t r = read(fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* Media files never change once written; one that shrinks is not ours to guess about. */
            snprintf(b->err, sizeof b->err, "cannot read %s%s: %s", store_prefix[st], rel,
                     r < 0 ? strerror(errno) : "it shrank while being read");
            rc = -1;
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        if (tar_out_data(&b->t, buf, (size_t)r) < 0) {
            snprintf(b->err, sizeof b->err, "%s", b->t.err);
            rc = -1;
            break;
        }
        left -= (uint64_t)r;
    }
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (rc < 0)
        return -1;
    hex_encode(sha, md, 32, 0);
    if (recs_add(&b->recs, st, rel, (uint64_t)sb->st_size, sha) < 0) {
        snprintf(b->err, sizeof b->err, "out of memory (or more than %u files)", FILES_MAX);
        return -1;
    }
    b->files[st]++;
    b->bytes[st] += (uint64_t)sb->st_size;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The media store in name order. dfd is consumed; prefix is "" or "a/b/". */
static int walk_media(struct bk *b, int dfd, const char *prefix, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        snprintf(b->err, sizeof b->err, "cannot list media/%s: %s", prefix, strerror(errno));
        close(dfd);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        /* hidden and temporary names are uploads in progress, not the store */
        if (foreign_name(de->d_name, depth == 0) || (l >= 4 && strcmp(de->d_name + l - 4, ".tmp") == 0))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = cap <= 2 * (size_t)FILES_MAX ? realloc(names, cap * sizeof *names) : NULL;
            if (!nn) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    if (rc < 0)
        snprintf(b->err, sizeof b->err, "out of memory listing media/%s", prefix);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char rel[REL_MAX + 2];
        if ((size_t)snprintf(rel, sizeof rel, "%s%s", prefix, names[i]) > REL_MAX || !rel_ok(rel)) {
            snprintf(b->err, sizeof b->err, "a media path is too long or unusual: media/%.80s", rel);
            rc = -1;
            break;
        }
        int fd = openat(dirfd(d), names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            if (errno == ENOENT) /* removed since the listing */
                continue;
            if (errno == ELOOP) {
                fprintf(stderr, "wapictl backup: skipping the symbolic link media/%s\n", rel);
                continue;
            }
            snprintf(b->err, sizeof b->err, "cannot open media/%s: %s", rel, strerror(errno));
            rc = -1;
            break;
        }
        struct stat sb;
        if (fstat(fd, &sb) < 0) {
            snprintf(b->err, sizeof b->err, "cannot stat media/%s: %s", rel, strerror(errno));
            rc = -1;
            close(fd);
        } else if (S_ISREG(sb.st_mode)) {
            rc = archive_fd(b, ST_MEDIA, rel, fd, &sb);
            close(fd);
        } else if (S_ISDIR(sb.st_mode) && depth + 1 < DEPTH_MAX) {
            char sub[REL_MAX + 3];
            snprintf(sub, sizeof sub, "%s/", rel);
            rc = walk_media(b, fd, sub, depth + 1);
        } else {
            fprintf(stderr, "wapictl backup: skipping media/%s (not a regular file)\n", rel);
            close(fd);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

/* A command's one-line summary {"ok":true,...}: summary_begin() opens it,
 * the caller adds its members, summary_print() prints it to f. */
static void summary_begin(struct jsonw *w, struct sbuf *o)
{
    sbuf_init(o);
    jw_init(w, o);
    jw_obj(w);
    jw_kbool(w, "ok", 1);
}

static void summary_print(struct jsonw *w, struct sbuf *o, FILE *f)
{
    jw_obj_end(w);
    if (jw_finish(w) == 0)
        fprintf(f, "%s\n", o->buf);
    sbuf_free(o);
}

/* The value {"files":N,"bytes":N} of one store. */
static void store_json(struct jsonw *w, const struct bk *b, int store)
{
    jw_obj(w);
    jw_kuint(w, "files", b->files[store]);
    jw_kuint(w, "bytes", b->bytes[store]);
    jw_obj_end(w);
}

/* One file per line, so that a manifest reads well with tar xOf. -1 when
 * it could not be written. */
static int manifest_json(struct sbuf *m, const struct bk *b, const char *created)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct jsonw w;
    jw_init(&w, m);
    jw_obj(&w);
    jw_kstr(&w, "format", FORMAT);
    jw_kint(&w, "format_version", FORMAT_VERSION);
    jw_kstr(&w, "wapi_version", WAPI_VERSION);
    jw_kstr(&w, "created", created);
    jw_kstr(&w, "host", host);
    jw_key(&w, "stores");
    jw_obj(&w);
    jw_key(&w, "whatsapp_sessions");
    store_json(&w, b, ST_SESSIONS);
    jw_key(&w, "media");
    store_json(&w, b, ST_MEDIA);
    jw_obj_end(&w);
    jw_kuint(&w, "file_count", b->recs.n);
    jw_kuint(&w, "total_bytes", b->bytes[ST_SESSIONS] + b->bytes[ST_MEDIA]);
    jw_key(&w, "files");
    jw_arr(&w);
    for (size_t i = 0; i < b->recs.n; i++) {
        const struct rec *e = &b->recs.v[i];
        char path[TAR_NAME_MAX + 1];
        snprintf(path, sizeof path, "%s%s", store_prefix[e->store], e->rel);
        jw_newline(&w);
        jw_obj(&w);
        jw_kstr(&w, "path", path);
        jw_kuint(&w, "size", e->size);
        jw_kstr(&w, "sha256", e->sha);
        jw_obj_end(&w);
    }
    jw_newline(&w);
    jw_arr_end(&w);
    jw_obj_end(&w);
    if (jw_finish(&w) < 0)
        return -1;
    sbuf_addc(m, '\n');
    return 0;
}

static void usage_backup(void)
{
    fprintf(stderr, "usage: wapictl backup --output FILE|- [--no-gzip]\n"
                    "  a consistent archive of the session and media stores of the running server\n");
}

int ctl_backup(const char *config_path, const char *sock, int argc, char **argv)
{
    const char *output = NULL;
    int gzip = 1;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--output") || !strcmp(argv[i], "-o")) && i + 1 < argc)
            output = argv[++i];
        else if (!strncmp(argv[i], "--output=", 9))
            output = argv[i] + 9;
        else if (!strcmp(argv[i], "--no-gzip"))
            gzip = 0;
        else {
            usage_backup();
            return 2;
        }
    }
    if (!output || !*output) {
        usage_backup();
        return 2;
    }
    int to_stdout = !strcmp(output, "-");
    if (to_stdout && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "wapictl backup: standard output is a terminal; redirect it or use --output FILE\n");
        return 2;
    }
    struct paths p;
    if (load_paths(config_path, sock, &p) < 0)
        return 2;
    /* A reader that goes away (kubectl exec cut) must fail the backup, not kill it silently. */
    signal(SIGPIPE, SIG_IGN);

    static struct bk b; /* 64 KiB buffers: not on the stack */
    memset(&b, 0, sizeof b);
    b.now = (int64_t)time(NULL);
    char created[32], part[4200] = "";
    rfc3339_s(time(NULL), created, sizeof created);
    struct snap s = {0};
    struct snap_it it;
    int64_t snap_bytes = 0;
    int fd = -1, rc = -1, opened = 0;

    /* 1. The session store, from the supervisor, checked whole before anything is written. */
    if (fetch_snapshot(p.sock, &s, b.err, sizeof b.err) < 0 ||
        snap_begin(&s, &it, &snap_bytes, b.err, sizeof b.err) < 0)
        goto out;
    {
        struct snap_it chk = it;
        char rel[REL_MAX + 1];
        const char *data;
        uint64_t size, total = 0;
        int r;
        while ((r = snap_next(&chk, rel, sizeof rel, &data, &size)) == 1)
            total += size;
        if (r < 0 || total != (uint64_t)snap_bytes) {
            snprintf(b.err, sizeof b.err, "the session store snapshot from wapi is malformed or incomplete");
            goto out;
        }
    }
    if (to_stdout) {
        fd = STDOUT_FILENO;
    } else {
        if ((size_t)snprintf(part, sizeof part, "%s.part", output) >= sizeof part) {
            snprintf(b.err, sizeof b.err, "output path too long");
            goto out;
        }
        /* Exclusively: a link planted there is not followed, and a file someone
         * else made would keep its owner and mode while holding the keys. */
        fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                snprintf(
                    b.err, sizeof b.err,
                    "%s already exists (another backup is writing it, or one was interrupted; if neither, "
                    "remove it and try again)",
                    part);
            else
                snprintf(b.err, sizeof b.err, "cannot create %s: %s", part, strerror(errno));
            part[0] = '\0'; /* not ours: never removed */
            goto out;
        }
        /* 0600 whatever the umask */
        if (fchmod(fd, 0600) < 0) {
            snprintf(b.err, sizeof b.err, "cannot make %s private: %s", part, strerror(errno));
            goto out;
        }
    }
    if (tar_out_open(&b.t, fd, gzip ? GZIP_LEVEL : 0) < 0) {
        snprintf(b.err, sizeof b.err, "%s", b.t.err);
        goto out;
    }
    opened = 1;
    {
        char rel[REL_MAX + 1];
        const char *data;
        uint64_t size;
        while (snap_next(&it, rel, sizeof rel, &data, &size) == 1)
            if (archive_mem(&b, ST_SESSIONS, rel, data, (size_t)size) < 0)
                goto out;
    }
    snap_free(&s);

    /* 2. The media store, straight from disk: content-addressed files never change. */
    int mfd = open(p.media, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0 && errno != ENOENT) {
        snprintf(b.err, sizeof b.err, "cannot open the media store %.300s: %s", p.media, strerror(errno));
        goto out;
    }
    if (mfd >= 0 && walk_media(&b, mfd, "", 0) < 0)
        goto out;

    /* 3. The manifest, last: an archive that has it is complete. */
    {
        struct sbuf m;
        sbuf_init(&m);
        int bad = manifest_json(&m, &b, created) < 0 || m.oom ||
                  tar_out_file(&b.t, MANIFEST, m.len, 0644, b.now) < 0 ||
                  tar_out_data(&b.t, m.buf, m.len) < 0;
        sbuf_free(&m);
        if (bad) {
            snprintf(b.err, sizeof b.err, "%s", b.t.err[0] ? b.t.err : "out of memory");
            goto out;
        }
    }
    opened = 0;
    if (tar_out_close(&b.t) < 0) {
        snprintf(b.err, sizeof b.err, "%s", b.t.err);
        goto out;
    }
    if (!to_stdout) {
        if (fsync(fd) < 0 || close(fd) < 0) {
            fd = -1;
            snprintf(b.err, sizeof b.err, "cannot write %s: %s", part, strerror(errno));
            goto out;
        }
        fd = -1;
        if (rename(part, output) < 0) {
            snprintf(b.err, sizeof b.err, "cannot rename %s: %s", part, strerror(errno));
            goto out;
        }
        part[0] = '\0';
    }
    rc = 0;
out:
    if (opened)
        tar_out_abort(&b.t);
    snap_free(&s);
    if (fd >= 0 && !to_stdout)
        close(fd);
    if (part[0])
        unlink(part);
    if (rc < 0) {
        fprintf(stderr, "wapictl backup: %s\n", b.err);
    } else {
        struct sbuf o;
        struct jsonw w;
        summary_begin(&w, &o);
        jw_kstr(&w, "created", created);
        jw_key(&w, "sessions");
        store_json(&w, &b, ST_SESSIONS);
        jw_key(&w, "media");
        store_json(&w, &b, ST_MEDIA);
        jw_kuint(&w, "archive_bytes", b.t.out);
        summary_print(&w, &o, to_stdout ? stderr : stdout); /* where the archive does not go */
    }
    recs_free(&b.recs);
    return rc < 0 ? 1 : 0;
}

/* ======================= restore ======================= */

struct target {
    const char *dir;     /* the configured store folder; may itself be a link (a mounted volume) */
    int root;            /* dir, opened: everything inside the store is reached from it, never by path */
    int stage;           /* the staging folder, opened; -1 when none */
    char stage_name[64]; /* its name in dir, empty when none */
    int aside_top;       /* the store's own entries are moved aside before the restore */
    int own;             /* running as root: give new files the store folder's owner */
    uid_t uid;
    gid_t gid;
    dev_t dev;
    mode_t file_mode, dir_mode;
};

/* Deeper than any path restore makes (a component and a slash each). */
#define RM_DEPTH_MAX (REL_MAX / 2 + 2)

/* Removes name below dfd and all it holds, never following a link. */
static int rm_tree_at(int dfd, const char *name, int depth)
{
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -1;
    if (depth > RM_DEPTH_MAX) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc;
    /* Entries removed while listing can hide others from readdir: list again. */
    for (int pass = 0;; pass++) {
        struct dirent *de;
        rc = 0;
        while (rc == 0 && (de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                rc = rm_tree_at(dirfd(d), de->d_name, depth + 1);
        if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            rc = -1;
        if (rc == 0 || errno != ENOTEMPTY || pass == 3)
            break;
        rewinddir(d);
    }
    int e = errno;
    closedir(d);
    errno = e;
    return rc;
}

static void give(const struct target *t, int fd, const char *rel)
{
    if (t->own && fchown(fd, t->uid, t->gid) < 0)
        fprintf(stderr, "wapictl restore: cannot give %s (in %s) to %u:%u: %s\n", rel, t->dir,
                (unsigned)t->uid, (unsigned)t->gid, strerror(errno));
}

/* The folder that holds rel's last component, reached from base one
 * component at a time with O_NOFOLLOW, so a link or a file on the way fails
 * (ELOOP, ENOTDIR) instead of being followed; with create, missing folders
 * are made. On failure *bad is the length of rel's prefix that failed. */
static int open_parent(const struct target *t, int base, const char *rel, int create, size_t *bad)
{
    int cur = fcntl(base, F_DUPFD_CLOEXEC, 0);
    *bad = 0;
    for (const char *p = rel, *s; cur >= 0 && (s = strchr(p, '/')) != NULL; p = s + 1) {
        char name[REL_MAX + 1];
        size_t n = (size_t)(s - p);
        int nfd = -1, made = 0;
        if (n >= sizeof name) {
            errno = ENAMETOOLONG;
        } else {
            memcpy(name, p, n);
            name[n] = '\0';
            made = create && mkdirat(cur, name, t->dir_mode) == 0;
            if (made || !create || errno == EEXIST)
                nfd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = errno;
        close(cur);
        if (nfd < 0) {
            *bad = (size_t)(s - rel);
            errno = e;
            return -1;
        }
        if (made)
            give(t, nfd, rel);
        cur = nfd;
    }
    return cur;
}

static const char *last_component(const char *rel)
{
    const char *s = strrchr(rel, '/');
    return s ? s + 1 : rel;
}

/* The store's own entries (up to max names listed into first). */
static int store_entries(const char *dir, char *first, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int n = 0;
    struct dirent *de;
    first[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        if (foreign_name(de->d_name, 1))
            continue;
        if (n < 3 && strlen(first) + strlen(de->d_name) + 3 < len) {
            if (n)
                strcat(first, ", ");
            strcat(first, de->d_name);
        }
        n++;
    }
    closedir(d);
    return n;
}

/* A restore that was interrupted left hidden staging folders; nothing
 * else creates them, and the server is stopped. */
static void remove_stale_stages(const struct target *t)
{
    int fd = openat(t->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".restore-", 9) != 0)
            continue;
        if (rm_tree_at(t->root, de->d_name, 0) == 0)
            fprintf(stderr, "wapictl restore: removed %s/%s, left by an interrupted restore\n", t->dir,
                    de->d_name);
    }
    closedir(d);
}

static int stage_init(struct target *t, char *err, size_t errlen)
{
    struct stat sb;
    if (mkdir_p(t->dir, t->dir_mode) < 0 ||
        (t->root = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(t->root, &sb) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", t->dir, strerror(errno));
        return -1;
    }
    t->own = geteuid() == 0;
    t->uid = sb.st_uid;
    t->gid = sb.st_gid;
    t->dev = sb.st_dev;
    remove_stale_stages(t);
    /* mkdirat neither follows nor reuses: a taken name is skipped */
    for (unsigned i = 0;; i++) {
        snprintf(t->stage_name, sizeof t->stage_name, ".restore-%ld-%u", (long)getpid(), i);
        if (mkdirat(t->root, t->stage_name, 0700) == 0)
            break;
        if (errno != EEXIST || i >= 100) {
            snprintf(err, errlen, "cannot create a staging folder in %s: %s", t->dir, strerror(errno));
            t->stage_name[0] = '\0';
            return -1;
        }
    }
    if ((t->stage = openat(t->root, t->stage_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open %s/%s: %s", t->dir, t->stage_name, strerror(errno));
        return -1;
    }
    give(t, t->stage, t->stage_name);
    return 0;
}

/* One archive member into the staging folder, hashed on the way. */
static int stage_file(struct tar_in *in, const struct target *t, const char *rel, uint64_t size, char *sha,
                      char *err, size_t errlen)
{
    size_t bad;
    int dfd = open_parent(t, t->stage, rel, 1, &bad);
    if (dfd < 0) {
        if (errno == ENOTDIR)
            snprintf(err, errlen, "the archive holds %.*s both as a file and as a folder", (int)bad, rel);
        else
            snprintf(err, errlen, "cannot create folders for %s: %s", rel, strerror(errno));
        return -1;
    }
    int fd =
        openat(dfd, last_component(rel), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, t->file_mode);
    int e = errno;
    close(dfd);
    if (fd < 0) {
        if (e == EEXIST)
            snprintf(err, errlen, "the archive holds %s twice (or as a file and as a folder)", rel);
        else
            snprintf(err, errlen, "cannot write %s into %s/%s: %s", rel, t->dir, t->stage_name, strerror(e));
        return -1;
    }
    give(t, fd, rel);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        snprintf(err, errlen, "SHA-256 unavailable");
        return -1;
    }
    static unsigned char buf[1 << 16];
    uint64_t got = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = tar_in_read(in, buf, sizeof buf);
        if (r < 0) {
            snprintf(err, errlen, "%s", in->err);
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)r);
        if (fd_write_all(fd, buf, (size_t)r) < 0) {
            snprintf(err, errlen, "cannot write %s into %s/%s: %s", rel, t->dir, t->stage_name,
                     strerror(errno));
            rc = -1;
            break;
        }
        got += (uint64_t)r;
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc == 0 && got != size) {
        snprintf(err, errlen, "%s: %llu bytes, expected %llu", rel, (unsigned long long)got,
                 (unsigned long long)size);
        rc = -1;
    }
    /* Durable before the rename that publishes it. */
    if (rc == 0 && fsync(fd) < 0) {
        snprintf(err, errlen, "cannot sync %s in %s/%s: %s", rel, t->dir, t->stage_name, strerror(errno));
        rc = -1;
    }
    close(fd);
    hex_encode(sha, md, 32, 0);
    return rc;
}

/* The manifest lists exactly the members read, in the same order, with the
 * same sizes and digests. */
static int verify_manifest(const char *text, size_t len, const struct recs *r, char *created, size_t clen,
                           char *version, size_t vlen, char *err, size_t errlen)
{
    char jerr[128];
    yajl_val v = json_parse(text, len, MANIFEST_MAX, jerr, sizeof jerr);
    if (!v) {
        snprintf(err, errlen, "the manifest is not valid JSON (%s)", jerr);
        return -1;
    }
    int rc = -1;
    int64_t ver = 0, count = -1;
    const char *fmt = json_str(v, "format");
    yajl_val files = json_member(v, "files");
    if (!fmt || strcmp(fmt, FORMAT) != 0) {
        snprintf(err, errlen, "not a wapi backup (manifest format %s)", fmt ? fmt : "missing");
    } else if (json_int(v, "format_version", &ver) != 1 || ver != FORMAT_VERSION) {
        snprintf(err, errlen, "backup format version %lld is not one this wapictl reads (%d)", (long long)ver,
                 FORMAT_VERSION);
    } else if (!YAJL_IS_ARRAY(files) || json_int(v, "file_count", &count) != 1 ||
               (size_t)count != files->u.array.len) {
        snprintf(err, errlen, "the manifest's file list is malformed");
    } else if (files->u.array.len != r->n) {
        snprintf(err, errlen, "the manifest lists %zu files, the archive holds %zu", files->u.array.len,
                 r->n);
    } else {
        rc = 0;
        for (size_t i = 0; i < r->n && rc == 0; i++) {
            yajl_val f = files->u.array.values[i];
            const struct rec *e = &r->v[i];
            const char *path = json_str(f, "path"), *sha = json_str(f, "sha256");
            int64_t size = -1;
            char want[TAR_NAME_MAX + 1];
            snprintf(want, sizeof want, "%s%s", store_prefix[e->store], e->rel);
            if (!path || strcmp(path, want) != 0) {
                snprintf(err, errlen, "the manifest does not list %s (member %zu)", want, i + 1);
                rc = -1;
            } else if (json_int(f, "size", &size) != 1 || (uint64_t)size != e->size) {
                snprintf(err, errlen, "%s: size %llu, the manifest says %lld", want,
                         (unsigned long long)e->size, (long long)size);
                rc = -1;
            } else if (!sha || strcmp(sha, e->sha) != 0) {
                snprintf(err, errlen, "%s: SHA-256 mismatch (the file is damaged)", want);
                rc = -1;
            }
        }
    }
    const char *c = json_str(v, "created"), *wv = json_str(v, "wapi_version");
    snprintf(created, clen, "%s", c ? c : "");
    snprintf(version, vlen, "%s", wv ? wv : "");
    yajl_tree_free(v);
    return rc;
}

static int read_all_member(struct tar_in *in, uint64_t size, char **out, char *err, size_t errlen)
{
    if (size > MANIFEST_MAX) {
        snprintf(err, errlen, "the manifest is too large");
        return -1;
    }
    char *m = malloc((size_t)size + 1);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = tar_in_read(in, m + got, (size_t)size - got);
        if (r < 0) {
            snprintf(err, errlen, "%s", in->err);
            free(m);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    m[got] = '\0';
    *out = m;
    return 0;
}

/* Whether the file rel can be moved into t's store without following a link
 * or removing anything but an entry of the same name that is not a folder:
 * every folder on its way is a real folder on the store's file system, or
 * missing (then made); its own place is not a folder; and the deepest folder
 * that exists is writable. Run for every file before the first one moves, so
 * that a conflict refuses the restore with both stores as they were. A link
 * where a folder is needed is refused, not followed (it would write outside
 * the store) nor replaced (it may be the operator's, e.g. to another disk). */
static int preflight(const struct target *t, const char *rel, char *err, size_t errlen)
{
    int cur = fcntl(t->root, F_DUPFD_CLOEXEC, 0);
    if (cur < 0) {
        snprintf(err, errlen, "cannot open %s: %s", t->dir, strerror(errno));
        return -1;
    }
    const char *p = rel;
    int rc = 0;
    for (;;) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        int upto = (int)(p - rel + n);
        char name[REL_MAX + 1];
        struct stat sb;
        if (n >= sizeof name) {
            snprintf(err, errlen, "a path is too long: %.80s", rel);
            rc = -1;
            break;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (p == rel && t->aside_top && !foreign_name(name, 1))
            break; /* moved aside before anything is restored */
        if (fstatat(cur, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                break; /* made new */
            snprintf(err, errlen, "cannot examine %s/%.*s: %s", t->dir, upto, rel, strerror(errno));
            rc = -1;
            break;
        }
        if (!s) {
            /* rename() replaces a file, or a link itself; a folder cannot be */
            if (S_ISDIR(sb.st_mode)) {
                snprintf(err, errlen,
                         "%s/%s is a folder, but the archive has a file there; move it away first", t->dir,
                         rel);
                rc = -1;
            }
            break;
        }
        if (S_ISLNK(sb.st_mode))
            snprintf(
                err, errlen,
                "%s/%.*s is a symbolic link, but the archive has a folder there, and restore does not follow "
                "links inside a store; replace the link by a real folder first",
                t->dir, upto, rel);
        else if (!S_ISDIR(sb.st_mode))
            snprintf(err, errlen,
                     "%s/%.*s is not a folder, but the archive has a folder there; move it away first",
                     t->dir, upto, rel);
        else if (sb.st_dev != t->dev)
            snprintf(err, errlen, "%s/%.*s is another file system; restore moves files by renaming them",
                     t->dir, upto, rel);
        if (!S_ISDIR(sb.st_mode) || sb.st_dev != t->dev) {
            rc = -1;
            break;
        }
        int nfd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            snprintf(err, errlen, "cannot open %s/%.*s: %s", t->dir, upto, rel, strerror(errno));
            rc = -1;
            break;
        }
        close(cur);
        cur = nfd;
        p = s + 1;
    }
    /* what is made or replaced goes into the deepest folder that exists */
    if (rc == 0 && faccessat(cur, ".", W_OK | X_OK, AT_EACCESS) < 0) {
        snprintf(err, errlen, "cannot write in %s%s%.*s: %s", t->dir, p == rel ? "" : "/",
                 p == rel ? 0 : (int)(p - rel - 1), rel, strerror(errno));
        rc = -1;
    }
    close(cur);
    return rc;
}

/* Moves the current session store aside into dir/.pre-restore-TIME. */
static int keep_aside(const struct target *t, char *aside, size_t alen, char *err, size_t errlen)
{
    char ts[32], name[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    for (int i = 0;; i++) {
        if (i == 0)
            snprintf(name, sizeof name, ".pre-restore-%s", ts);
        else
            snprintf(name, sizeof name, ".pre-restore-%s-%d", ts, i);
        if (mkdirat(t->root, name, 0700) == 0)
            break;
        if (errno != EEXIST || i > 100) {
            snprintf(err, errlen, "cannot create %s/%s: %s", t->dir, name, strerror(errno));
            return -1;
        }
    }
    snprintf(aside, alen, "%s/%s", t->dir, name);
    int afd = openat(t->root, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int lfd = afd >= 0 ? openat(t->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", afd < 0 ? aside : t->dir, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        if (afd >= 0)
            close(afd);
        return -1;
    }
    give(t, afd, name);
    int rc = 0;
    /* Entries renamed while listing can hide others from readdir: list again
     * until a pass finds none, so nothing of the old store is overwritten. */
    for (int pass = 0, moved = 1; rc == 0 && moved && pass < 5; pass++) {
        struct dirent *de;
        moved = 0;
        rewinddir(d);
        while (rc == 0 && (de = readdir(d)) != NULL) {
            if (foreign_name(de->d_name, 1))
                continue;
            if (renameat(t->root, de->d_name, afd, de->d_name) < 0) {
                snprintf(err, errlen, "cannot move %s/%s aside: %s", t->dir, de->d_name, strerror(errno));
                rc = -1;
            }
            moved = 1;
        }
    }
    closedir(d);
    close(afd);
    return rc;
}

/* One staged file into its store, folders made as needed; neither tree is
 * walked through a link. */
static int move_into_place(const struct target *t, const char *rel, char *err, size_t errlen)
{
    const char *last = last_component(rel);
    size_t bad;
    int from = open_parent(t, t->stage, rel, 0, &bad), to = -1, rc = -1;
    if (from < 0)
        snprintf(err, errlen, "cannot open the staged %s: %s", rel, strerror(errno));
    else if ((to = open_parent(t, t->root, rel, 1, &bad)) < 0)
        snprintf(err, errlen, "cannot open or make the folder %s/%.*s: %s", t->dir, (int)bad, rel,
                 strerror(errno));
    else if (renameat(from, last, to, last) < 0)
        snprintf(err, errlen, "cannot move %s/%s into place: %s", t->dir, rel, strerror(errno));
    else
        rc = 0;
    if (from >= 0)
        close(from);
    if (to >= 0)
        close(to);
    return rc;
}

static void usage_restore(void)
{
    fprintf(
        stderr,
        "usage: wapictl restore --input FILE|- [--force]\n"
        "  loads a backup into the configured session and media stores; the server must be stopped.\n"
        "  --force replaces a session store that is not empty (the old one is kept in .pre-restore-TIME/)\n");
}

int ctl_restore(const char *config_path, const char *sock, int argc, char **argv)
{
    const char *input = NULL;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--input") || !strcmp(argv[i], "-i")) && i + 1 < argc)
            input = argv[++i];
        else if (!strncmp(argv[i], "--input=", 8))
            input = argv[i] + 8;
        else if (!strcmp(argv[i], "--force"))
            force = 1;
        else {
            usage_restore();
            return 2;
        }
    }
    if (!input || !*input) {
        usage_restore();
        return 2;
    }
    struct paths p;
    if (load_paths(config_path, sock, &p) < 0)
        return 2;

    /* Offline only: a running supervisor holds the store in memory and would
     * write it back over the restored files. */
    int cfd = ctl_connect(p.sock);
    if (cfd >= 0) {
        close(cfd);
        fprintf(stderr,
                "wapictl restore: wapi is running (its control socket %s answers); stop it first: restore "
                "replaces the stores of a stopped server. Nothing was changed.\n",
                p.sock);
        return 1;
    }
    char names[256];
    int existing = store_entries(p.sessions, names, sizeof names);
    if (existing < 0) {
        fprintf(stderr, "wapictl restore: cannot list %s: %s\n", p.sessions, strerror(errno));
        return 1;
    }
    if (existing > 0 && !force) {
        fprintf(stderr,
                "wapictl restore: the session store %s is not empty (%s%s); add --force to replace it (the "
                "current "
                "files are then kept in %s/.pre-restore-TIME/). Nothing was changed.\n",
                p.sessions, names, existing > 3 ? ", ..." : "", p.sessions);
        return 1;
    }
    int in_fd = STDIN_FILENO;
    if (!strcmp(input, "-")) {
        if (isatty(STDIN_FILENO)) {
            fprintf(
                stderr,
                "wapictl restore: standard input is a terminal; pipe the archive in or use --input FILE\n");
            return 2;
        }
    } else if ((in_fd = open(input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "wapictl restore: cannot open %s: %s\n", input, strerror(errno));
        return 1;
    }

    struct target tg[ST_N] = {{.dir = p.sessions,
                               .root = -1,
                               .stage = -1,
                               .aside_top = existing > 0,
                               .file_mode = 0600,
                               .dir_mode = 0700},
                              {.dir = p.media, .root = -1, .stage = -1, .file_mode = 0640, .dir_mode = 0750}};
    static struct tar_in in;
    struct recs recs = {0};
    char err[1200] = "", created[64] = "", version[128] = "", aside[4400] = "";
    char *manifest = NULL;
    size_t manifest_len = 0;
    uint64_t bytes = 0;
    size_t nfiles[ST_N] = {0, 0};
    int rc = -1, committing = 0;

    if (stage_init(&tg[ST_SESSIONS], err, sizeof err) < 0 || stage_init(&tg[ST_MEDIA], err, sizeof err) < 0)
        goto out;
    if (tar_in_open(&in, in_fd) < 0) {
        snprintf(err, sizeof err, "%s", in.err);
        goto out;
    }
    /* 1. Unpack into the staging folders, hashing every file. */
    for (;;) {
        struct tar_entry e;
        int r = tar_in_next(&in, &e);
        if (r < 0) {
            snprintf(err, sizeof err, "%s", in.err);
            goto out;
        }
        if (r == 0)
            break;
        if (manifest) {
            snprintf(err, sizeof err, "%s follows the manifest (the manifest must be last)", e.name);
            goto out;
        }
        if (e.type == '0' && !strcmp(e.name, MANIFEST)) {
            if (read_all_member(&in, e.size, &manifest, err, sizeof err) < 0)
                goto out;
            manifest_len = (size_t)e.size;
            continue;
        }
        enum store st = ST_N;
        for (int k = 0; k < ST_N; k++)
            if (!strncmp(e.name, store_prefix[k], strlen(store_prefix[k])))
                st = (enum store)k;
        const char *rel = st < ST_N ? e.name + strlen(store_prefix[st]) : "";
        size_t rl = strlen(rel);
        if (e.type == '5' && rl && rel[rl - 1] == '/') /* a folder entry: made as files need it */
            rl--;
        char relbuf[TAR_NAME_MAX + 1];
        snprintf(relbuf, sizeof relbuf, "%.*s", (int)rl, rel);
        if (st == ST_N || (!rel_ok(relbuf) && !(e.type == '5' && rl == 0))) {
            snprintf(err, sizeof err, "unexpected member %.200s (not a wapi backup?)", e.name);
            goto out;
        }
        if (e.type == '5')
            continue;
        char sha[65];
        if (stage_file(&in, &tg[st], relbuf, e.size, sha, err, sizeof err) < 0 ||
            recs_add(&recs, st, relbuf, e.size, sha) < 0) {
            if (!err[0])
                snprintf(err, sizeof err, "out of memory");
            goto out;
        }
        nfiles[st]++;
        bytes += e.size;
    }
    /* 2. Every file against the manifest. */
    if (!manifest) {
        snprintf(err, sizeof err, "the archive has no manifest (truncated, or not made by wapictl backup)");
        goto out;
    }
    if (verify_manifest(manifest, manifest_len, &recs, created, sizeof created, version, sizeof version, err,
                        sizeof err) < 0)
        goto out;
    /* 3. Every destination, before anything moves: a conflict found half-way
     * would leave the session store moved aside and the media store partial. */
    for (size_t i = 0; i < recs.n; i++)
        if (preflight(&tg[recs.v[i].store], recs.v[i].rel, err, sizeof err) < 0)
            goto out;

    /* 4. Into place. From here only an I/O error (or a change made meanwhile)
     * can leave a partial store. */
    committing = 1;
    if (existing > 0 && keep_aside(&tg[ST_SESSIONS], aside, sizeof aside, err, sizeof err) < 0)
        goto out;
    for (size_t i = 0; i < recs.n; i++)
        if (move_into_place(&tg[recs.v[i].store], recs.v[i].rel, err, sizeof err) < 0)
            goto out;
    for (int k = 0; k < ST_N; k++) {
        if (syncfs(tg[k].root) < 0) {
            snprintf(err, sizeof err, "cannot sync %s: %s", tg[k].dir, strerror(errno));
            goto out;
        }
    }
    rc = 0;
out:
    tar_in_close(&in);
    if (in_fd != STDIN_FILENO)
        close(in_fd);
    for (int k = 0; k < ST_N; k++) {
        if (tg[k].stage >= 0)
            close(tg[k].stage);
        if (tg[k].stage_name[0] && rm_tree_at(tg[k].root, tg[k].stage_name, 0) < 0)
            fprintf(stderr, "wapictl restore: cannot remove %s/%s: %s\n", tg[k].dir, tg[k].stage_name,
                    strerror(errno));
        if (tg[k].root >= 0)
            close(tg[k].root);
    }
    free(manifest);
    recs_free(&recs);
    if (rc < 0) {
        if (committing)
            fprintf(
                stderr,
                "wapictl restore: failed while moving files into place: %s. The stores may be incomplete: "
                "run the restore again with --force%s%s%s.\n",
                err, aside[0] ? " (the previous session store is in " : "", aside, aside[0] ? ")" : "");
        else
            fprintf(stderr, "wapictl restore: refused: %s. Nothing was changed.\n", err);
        return 1;
    }
    struct sbuf o;
    struct jsonw w;
    summary_begin(&w, &o);
    jw_key(&w, "backup");
    jw_obj(&w);
    jw_kstr(&w, "created", created);
    jw_kstr(&w, "wapi_version", version);
    jw_obj_end(&w);
    jw_key(&w, "sessions");
    jw_obj(&w);
    jw_kuint(&w, "files", nfiles[ST_SESSIONS]);
    jw_obj_end(&w);
    jw_key(&w, "media");
    jw_obj(&w);
    jw_kuint(&w, "files", nfiles[ST_MEDIA]);
    jw_obj_end(&w);
    jw_kuint(&w, "bytes", bytes);
    jw_kstr(&w, "previous_sessions", aside[0] ? aside : NULL);
    summary_print(&w, &o, stdout);
    return 0;
}
