/* A proxy named by URL: socks5://, socks5h:// (the proxy resolves names)
 * or http:// (CONNECT), with optional user:password@ and a port (1080 for
 * SOCKS, 8080 for HTTP by default). The password is for the handshake only:
 * proxy_url_redacted() is what logs and errors show. */
#ifndef WAPI_PROXY_URL_H
#define WAPI_PROXY_URL_H

#include <stddef.h>

enum proxy_kind { PROXY_NONE = 0, PROXY_SOCKS5, PROXY_SOCKS5H, PROXY_HTTP };

struct proxy_url {
    enum proxy_kind kind;
    char host[256]; /* a name, an IPv4 or an IPv6 address (without brackets) */
    int port;
    char user[256], pass[256]; /* percent-decoded; "" when none */
};

/* "" is no proxy (kind PROXY_NONE, 0). -1 with err when s is no usable
 * proxy URL; err never holds the password. */
int proxy_url_parse(const char *s, struct proxy_url *out, char *err, size_t errlen);
/* "socks5h://user:***@host:port" (or without credentials) into buf. */
void proxy_url_redacted(const struct proxy_url *p, char *buf, size_t len);

#endif
