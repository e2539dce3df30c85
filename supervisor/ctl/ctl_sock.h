/* wapictl's side of the control socket (paths.run/wapi.sock). */
#ifndef WAPI_CTL_SOCK_H
#define WAPI_CTL_SOCK_H

/* A connected descriptor, or -1 with errno. */
int ctl_connect(const char *sock);

#endif
