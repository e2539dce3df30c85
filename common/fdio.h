/* Whole reads and writes on a descriptor: the loops every caller of read and
 * write needs (short counts, EINTR), written once. */
#ifndef WAPI_FDIO_H
#define WAPI_FDIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes; 0, or -1 with errno (EIO when write returned 0). */
int fd_write_all(int fd, const void *p, size_t n);
/* Reads up to n bytes at off, stopping early only at the end of the file:
 * the bytes read, or -1 with errno. The descriptor's offset is not used. */
ssize_t fd_pread_all(int fd, void *buf, size_t n, off_t off);

#endif
