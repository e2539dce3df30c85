#include "webhook_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int webhook_url_parse(const char *url, struct webhook_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(url);
    if (n == 0 || n >= WEBHOOK_URL_MAX) {
        snprintf(err, errlen, "url must be 1 to %d characters", WEBHOOK_URL_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f) {
            snprintf(err, errlen, "url must not contain spaces, control or non-ASCII characters");
            return -1;
        }
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        out->https = 1;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        snprintf(err, errlen, "url must start with http:// or https://");
        return -1;
    }
    size_t al = strcspn(p, "/?#");
    const char *rest = p + al;
    if (memchr(p, '@', al)) {
        snprintf(err, errlen, "url must not carry credentials");
        return -1;
    }
    const char *hs = p, *he;
    const char *portp = NULL;
    if (al > 0 && *p == '[') {
        const char *rb = memchr(p, ']', al);
        if (!rb) {
            snprintf(err, errlen, "url has an unterminated IPv6 address");
            return -1;
        }
        hs = p + 1;
        he = rb;
        if (rb + 1 < p + al) {
            if (rb[1] != ':') {
                snprintf(err, errlen, "url has a malformed host");
                return -1;
            }
            portp = rb + 2;
        }
        struct in6_addr a6;
        char tmp[64];
        size_t hl = (size_t)(he - hs);
        if (hl == 0 || hl >= sizeof tmp) {
            snprintf(err, errlen, "url has a malformed IPv6 address");
            return -1;
        }
        memcpy(tmp, hs, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1) {
            snprintf(err, errlen, "url has a malformed IPv6 address");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', al);
        he = colon ? colon : p + al;
        if (colon)
            portp = colon + 1;
        for (const char *c = hs; c < he; c++)
            if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '.' || *c == '_')) {
                snprintf(err, errlen, "url has a malformed host");
                return -1;
            }
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof out->host) {
        snprintf(err, errlen, "url needs a host");
        return -1;
    }
    memcpy(out->host, hs, hl);
    out->host[hl] = '\0';
    for (char *c = out->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    out->port = out->https ? 443 : 80;
    if (portp) {
        const char *pe = p + al;
        if (portp == pe || pe - portp > 5) {
            snprintf(err, errlen, "url has a malformed port");
            return -1;
        }
        int port = 0;
        for (const char *c = portp; c < pe; c++) {
            if (!isdigit((unsigned char)*c)) {
                snprintf(err, errlen, "url has a malformed port");
                return -1;
            }
            port = port * 10 + (*c - '0');
        }
        if (port < 1 || port > 65535) {
            snprintf(err, errlen, "url port must be 1 to 65535");
            return -1;
        }
        out->port = port;
    }
    if (strchr(rest, '#')) {
        snprintf(err, errlen, "url must not have a fragment");
        return -1;
    }
    snprintf(out->path, sizeof out->path, "%s%s", *rest == '/' ? "" : "/", rest);
    return 0;
}

static int v4_private(uint32_t a)
{
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe || /* 169.254/16 */
           (a >> 20) == 0xac1 ||                                                       /* 172.16/12 */
           (a >> 16) == 0xc0a8 ||                                                      /* 192.168/16 */
           (a >> 22) == (100u << 2 | 1) ||                                             /* 100.64/10 */
           (a >> 8) == 0xc00000 ||                                                     /* 192.0.0/24 */
           (a >> 17) == (0xc612u >> 1) ||                                              /* 198.18/15 */
           (a >> 28) >= 0xe;                                                           /* multicast, reserved */
}

/* family AF_INET: 4 bytes; AF_INET6: 16 bytes (network order). */
static int bytes_private(int family, const unsigned char *b)
{
    if (family == AF_INET)
        return v4_private((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    static const unsigned char zero[16];
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
        return 1; /* :: and ::1 */
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 ||
        (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)) /* mapped, compatible, 64:ff9b::/96 */
        return v4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    return (b[0] & 0xfe) == 0xfc ||                                   /* fc00::/7 unique local */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||                 /* fe80::/10 link-local */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||                 /* fec0::/10 site-local */
           b[0] == 0xff ||                                            /* multicast */
           (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8); /* documentation */
}

int webhook_addr_private(const struct sockaddr *sa)
{
    /* Copied out byte-wise: no aliasing assumptions about the caller's type. */
    sa_family_t fam;
    memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof fam);
    if (fam == AF_INET) {
        unsigned char b[4];
        memcpy(b, (const char *)sa + offsetof(struct sockaddr_in, sin_addr), 4);
        return bytes_private(AF_INET, b);
    }
    if (fam == AF_INET6) {
        unsigned char b[16];
        memcpy(b, (const char *)sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
        return bytes_private(AF_INET6, b);
    }
    return 1;
}

int webhook_host_private(const char *host)
{
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0 || (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
        return 1;
    unsigned char b[16];
    if (inet_pton(AF_INET, host, b) == 1)
        return bytes_private(AF_INET, b);
    if (inet_pton(AF_INET6, host, b) == 1)
        return bytes_private(AF_INET6, b);
    /* Numeric forms inet_pton does not take but resolvers do (0x7f.1, 2130706433). */
    int numeric = 1;
    for (const char *c = host; *c; c++)
        if (!(isxdigit((unsigned char)*c) || *c == '.' || *c == 'x' || *c == 'X'))
            numeric = 0;
    if (numeric && n > 0 && isdigit((unsigned char)host[n - 1]) && !strchr(host, '-')) {
        struct in_addr a;
        if (inet_aton(host, &a))
            return v4_private(ntohl(a.s_addr));
    }
    return 0;
}
