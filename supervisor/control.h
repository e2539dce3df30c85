/* The control socket (run_dir/wapi.sock, owner-only): one command line in,
 * one JSON reply out. Used by wapictl. */
#ifndef WAPI_CONTROL_H
#define WAPI_CONTROL_H

int control_open(const char *run_dir);
void control_close(void);

#endif
