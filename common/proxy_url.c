/* Proxy URLs (see proxy_url.h). */
#include "proxy_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percent-decodes n bytes of s into out (cap with the NUL); -1 when it does
 * not fit, has a bad escape or would hold a NUL or a control character. */
static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int proxy_url_parse(const char *s, struct proxy_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return 0;
    static const struct {
        const char *prefix;
        enum proxy_kind kind;
        int port;
    } schemes[] = {{"socks5://", PROXY_SOCKS5, 1080},
                   {"socks5h://", PROXY_SOCKS5H, 1080},
                   {"http://", PROXY_HTTP, 8080}};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes && !p; i++)
        if (!strncmp(s, schemes[i].prefix, strlen(schemes[i].prefix))) {
            p = s + strlen(schemes[i].prefix);
            out->kind = schemes[i].kind;
            out->port = schemes[i].port;
        }
    if (!p) {
        snprintf(err, errlen,
                 "expected socks5://, socks5h:// or http:// followed by [user:password@]host[:port]");
        return -1;
    }
    size_t rest = strcspn(p, "/?#");
    if (p[rest] && strcmp(p + rest, "/")) {
        snprintf(err, errlen, "a proxy URL has no path, query or fragment");
        goto bad;
    }
    const char *at = memrchr(p, '@', rest), *hp = at ? at + 1 : p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (pct_decode(p, ulen, out->user, sizeof out->user) < 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof out->pass) < 0) ||
            !out->user[0]) {
            snprintf(err, errlen, "the proxy's user name or password is empty, too long or badly escaped");
            goto bad;
        }
    }
    size_t hlen = (size_t)(p + rest - hp);
    const char *port = NULL;
    if (hlen && hp[0] == '[') {
        const char *close = memchr(hp, ']', hlen);
        if (!close || close == hp + 1 || (size_t)(close - hp - 1) >= sizeof out->host) {
            snprintf(err, errlen, "a bracketed IPv6 proxy address is not closed");
            goto bad;
        }
        memcpy(out->host, hp + 1, (size_t)(close - hp - 1));
        if (close + 1 < hp + hlen) {
            if (close[1] != ':') {
                snprintf(err, errlen, "unexpected text after the proxy's address");
                goto bad;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', hlen);
        size_t nlen = colon ? (size_t)(colon - hp) : hlen;
        if (!nlen || nlen >= sizeof out->host) {
            snprintf(err, errlen, "the proxy URL names no host");
            goto bad;
        }
        memcpy(out->host, hp, nlen);
        for (size_t i = 0; i < nlen; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", out->host[i])) {
                snprintf(err, errlen, "the proxy's host name has characters a host name cannot have");
                goto bad;
            }
        if (colon)
            port = colon + 1;
    }
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (port == p + rest || end != p + rest || v < 1 || v > 65535) {
            snprintf(err, errlen, "the proxy's port must be 1..65535");
            goto bad;
        }
        out->port = (int)v;
    }
    return 0;
bad:
    memset(out, 0, sizeof *out);
    return -1;
}

void proxy_url_redacted(const struct proxy_url *p, char *buf, size_t len)
{
    static const char *const names[] = {"none", "socks5", "socks5h", "http"};
    int v6 = strchr(p->host, ':') != NULL, u = p->user[0] != 0;
    snprintf(buf, len, "%s://%s%s%s%s%s%s:%d", names[p->kind], u ? p->user : "",
             u && p->pass[0] ? ":***" : "", u ? "@" : "", v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
}
