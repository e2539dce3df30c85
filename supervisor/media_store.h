/* The media store on disk (paths.media): files named by the SHA-256 of their
 * bytes, two directory levels deep (ab/cd/abcd…), so one content is one file
 * however many rows name it. A file is written to a temp file in the store
 * (O_TMPFILE in .tmp/ where the file system has it, else a named file there),
 * fsynced, hashed, and only then linked under its hash, and the directory is
 * fsynced: no name ever points at a half-written or unverified file. Files
 * are never changed once linked; removing one is the sweep's job.
 *
 * Every function blocks on the file system. The supervisor runs the slow ones
 * (digest, sync, walk) off its loop and the quick metadata steps (link,
 * remove) on it, so that publishing and sweeping one name never interleave.
 * Nothing here knows the database or the workers. */
#ifndef WAPI_MEDIA_STORE_H
#define WAPI_MEDIA_STORE_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define MEDIA_HEX_LEN 64
#define MEDIA_REL_LEN (3 + 3 + MEDIA_HEX_LEN + 1) /* "ab/cd/" + hex + NUL */
#define MEDIA_TMP_DIR ".tmp"                      /* hidden: backups and walks skip it */
#define MEDIA_TRASH_DIR ".trash"                  /* names removed, their blocks not yet freed */

struct media_store {
    int dfd;         /* the store's directory */
    int tmpdfd;      /* its .tmp/ */
    int trashdfd;    /* its .trash/ */
    int use_tmpfile; /* O_TMPFILE + linkat works here */
    int no_proc;     /* link named temp files by name, not by /proc (tests: a system without /proc) */
    char root[4096];
};

/* A temp file being written: fd open read-write; name is "" for an
 * O_TMPFILE (it has none until linked), else its name in .tmp/. */
struct media_tmp {
    int fd;
    dev_t dev;
    ino_t ino;
    char name[40];
};

enum {
    MEDIA_NEW = 0,      /* media_store_link: linked under its hash */
    MEDIA_EXISTED = 1,  /* the same content was there already (its time refreshed) */
    MEDIA_REPAIRED = 2, /* a damaged file had the name (another size): replaced */
};
/* media_store_put: the bytes do not hash to the name the caller expected. */
#define MEDIA_ERR_HASH (-2)

/* Creates the folder, .tmp/ and .trash/ when missing, moves what an
 * interrupted upload left in .tmp/ into .trash/ (*removed counts it), and
 * finds out whether O_TMPFILE can be used. 0, or -1 with err. */
int media_store_open(struct media_store *st, const char *root, unsigned *removed, char *err, size_t errlen);
void media_store_close(struct media_store *st);

/* "ab/cd/<hex>" for a hash of 64 lower-case hex digits. */
void media_store_rel(const char *hex, char out[MEDIA_REL_LEN]);
/* 1 when s is 64 lower-case hex digits (a name the store can hold). */
int media_store_hex_ok(const char *s);

/* A new, empty temp file in the store (mode 0640). 0, or -1 with errno. */
int media_store_tmp(struct media_store *st, struct media_tmp *t);
/* Closes t->fd (when >= 0) and removes a named temp file: nothing is left. */
void media_store_tmp_discard(struct media_store *st, struct media_tmp *t);

/* Moves name (below dfd) into .trash/, where media_store_empty_trash
 * frees it: renaming is quick, unlinking a large file is not (the loop
 * does the first, a thread the second). 0, or -1 with errno. */
int media_store_trash(struct media_store *st, int dfd, const char *name);
/* Unlinks everything in .trash/ (slow: off the loop). */
int media_store_empty_trash(struct media_store *st, unsigned *removed);

/* Copies the file src (from its start, up to limit + 1 bytes: *copied >
 * limit says there was more) into dst, a temp file only the caller writes,
 * so that what is hashed, checked and linked is what nobody else can change
 * meanwhile. 0, or -1 with errno. */
int media_store_copy(int src, int dst, uint64_t limit, uint64_t *copied);

/* Makes the file durable (fsync), then reads it whole: its size, the hex
 * SHA-256, and the first headcap bytes into head (*headlen). 0, or -1 with
 * errno. */
int media_store_digest(int fd, uint64_t *size, char hex[MEDIA_HEX_LEN + 1], unsigned char *head,
                       size_t headcap, size_t *headlen);
/* Links the temp file (already digested to hex) into the store: MEDIA_NEW,
 * MEDIA_EXISTED or MEDIA_REPAIRED (*replaced: the damaged copy's size), or
 * -1 with errno. The inode linked is t->fd's, also for a named temp file.
 * The temp file itself is left for media_store_tmp_discard. */
int media_store_link(struct media_store *st, const struct media_tmp *t, const char *hex, uint64_t size,
                     uint64_t *replaced);
/* fsyncs the folder holding hex, its shard folder and the store's root. */
int media_store_sync(struct media_store *st, const char *hex);
/* Digest, compare with expect_hex (when not NULL: MEDIA_ERR_HASH on a
 * mismatch, nothing linked), link and sync in one call. hex gets the name.
 * For callers that may block (tests, tools). */
int media_store_put(struct media_store *st, struct media_tmp *t, const char *expect_hex,
                    char hex[MEDIA_HEX_LEN + 1]);

/* The file named hex, read-only: an fd, or -1 with errno (ENOENT when the
 * store does not hold it). *size gets its size. */
int media_store_open_file(struct media_store *st, const char *hex, uint64_t *size);
/* Removes (into .trash/) the file named hex unless it was modified at or after not_after
 * (a publish refreshes the time of a file it finds, so a file in use right
 * now is never taken). 1 removed (*freed its size), 0 kept or absent, -1
 * error. Empty shard folders go with it. */
int media_store_remove(struct media_store *st, const char *hex, time_t not_after, uint64_t *freed);
/* Calls fn for every file of the store (name, size, modification time); a
 * non-zero return stops the walk. Names that are not the store's are
 * skipped; with clean set, the "*.tmp" a repair left behind are removed.
 * 0, or -1 with errno. */
int media_store_walk(struct media_store *st, int clean,
                     int (*fn)(void *arg, const char *hex, uint64_t size, time_t mtime), void *arg);

#endif
