/* Small file-system helpers shared by the supervisor and wapictl. */
#ifndef WAPI_COMMON_FSUTIL_H
#define WAPI_COMMON_FSUTIL_H
#include <sys/types.h>

/* mkdir -p: every missing folder of path with mode (existing ones are left
 * as they are). 0, or -1 with errno (ENAMETOOLONG past 4095 bytes). */
int mkdir_p(const char *path, mode_t mode);

#endif
