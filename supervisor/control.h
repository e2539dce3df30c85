/* The control socket (run_dir/wapi.sock, owner-only): one command line in,
 * one JSON reply out. Used by wapictl. */
#ifndef WAPI_CONTROL_H
#define WAPI_CONTROL_H

#include <stddef.h>

/* What the control socket asks of the supervisor's core. */
struct control_ops {
    /* Re-read the configuration: 0, or -1 with why in err. */
    int (*reload)(char *err, size_t errlen);
};

int control_open(const char *run_dir, const struct control_ops *ops);
void control_close(void);

#endif
