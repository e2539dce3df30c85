/* ustar archives over a byte stream, plain or gzip-compressed (zlib): a
 * streaming writer for `wapictl backup` and a strict streaming reader for
 * `wapictl restore`. Only what backups need: regular files (and directory
 * entries, which the reader reports and the writer never makes), names up to
 * 255 bytes, sizes of any length (base-256 past 8 GiB, as GNU tar writes
 * them). GNU tar and bsdtar read what the writer makes. */
#ifndef WAPI_TAR_STREAM_H
#define WAPI_TAR_STREAM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#define TAR_NAME_MAX 255
#define TAR_BLOCK 512
#define TAR_RECORD (20 * TAR_BLOCK) /* tar's default blocking: the archive ends on a record */

struct tar_out {
    int fd;
    int gzip;
    z_stream z;
    unsigned char buf[1 << 16]; /* bytes on their way to fd */
    size_t buf_len;
    uint64_t pos;  /* uncompressed archive bytes so far */
    uint64_t out;  /* bytes written to fd (compressed when gzip) */
    uint64_t left; /* content bytes still due for the current member */
    char err[256];
};

/* gzip_level: 0 for a plain tar, else 1..9. */
int tar_out_open(struct tar_out *t, int fd, int gzip_level);
/* A regular file's header; then exactly size bytes with tar_out_data(). */
int tar_out_file(struct tar_out *t, const char *name, uint64_t size, unsigned mode, int64_t mtime);
int tar_out_data(struct tar_out *t, const void *p, size_t n);
/* End-of-archive blocks, record padding, the gzip trailer; everything
 * flushed to fd. Releases zlib's state whatever happens. */
int tar_out_close(struct tar_out *t);
void tar_out_abort(struct tar_out *t);

struct tar_entry {
    char name[TAR_NAME_MAX + 1];
    char type; /* '0' regular file, '5' directory */
    uint64_t size;
    unsigned mode;
    int64_t mtime;
};

struct tar_in {
    int fd;
    int gzip, z_live, z_end, eof;
    z_stream z;
    unsigned char in[1 << 16]; /* raw bytes read from fd, not consumed yet */
    size_t in_off, in_len;
    uint64_t left, pad; /* of the current member */
    uint64_t pos;       /* uncompressed archive bytes so far */
    char err[256];
};

/* Reads the first bytes to tell gzip from a plain tar. */
int tar_in_open(struct tar_in *t, int fd);
/* 1: *e is the next member; 0: the archive ended properly (end blocks, only
 * zero padding to a whole record, nothing after the gzip stream); -1: t->err says why
 * (truncated, corrupt, a member type backups never hold). Skips the rest of
 * the previous member's content. */
int tar_in_next(struct tar_in *t, struct tar_entry *e);
/* Content of the current member: bytes read, 0 at its end, -1 on error. */
ssize_t tar_in_read(struct tar_in *t, void *p, size_t n);
void tar_in_close(struct tar_in *t);

#endif
