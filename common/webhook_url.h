/* Webhook targets: URL parsing and the private-address rule (loopback,
 * private, link-local, CGNAT, unique-local, unspecified, multicast), used when
 * a webhook is created and again by the dispatcher after DNS resolution. */
#ifndef WAPI_WEBHOOK_URL_H
#define WAPI_WEBHOOK_URL_H
#include <stddef.h>
#include <sys/socket.h>

#define WEBHOOK_URL_MAX 2048

struct webhook_url {
    int https;
    char host[256]; /* without brackets for IPv6 */
    int port;
    char path[WEBHOOK_URL_MAX]; /* path and query, at least "/" */
};

/* 0, or -1 with err saying what is wrong. */
int webhook_url_parse(const char *url, struct webhook_url *out, char *err, size_t errlen);
/* 1 when the address is not a public unicast one. */
int webhook_addr_private(const struct sockaddr *sa);
/* 1 when host is an IP literal that is private, or a localhost name. */
int webhook_host_private(const char *host);

#endif
