/* Proxy URLs: each scheme with its default port, credentials percent-decoded,
 * IPv6 in brackets, and every malformed URL refused with a reason that
 * never holds the password; the redacted form hides it. */
#include "common/proxy_url.h"

#include <stdio.h>
#include <string.h>

#include "t.h"

int main(void)
{
    struct proxy_url p;
    char err[200], red[400];
    T_CHECK(proxy_url_parse("", &p, err, sizeof err) == 0 && p.kind == PROXY_NONE, "\"\": no proxy");
    T_CHECK(proxy_url_parse("socks5://10.0.0.1", &p, err, sizeof err) == 0 && p.kind == PROXY_SOCKS5 &&
                !strcmp(p.host, "10.0.0.1") && p.port == 1080 && !p.user[0],
            "socks5://host: port 1080, no credentials");
    T_CHECK(proxy_url_parse("socks5h://proxy.example:9050/", &p, err, sizeof err) == 0 &&
                p.kind == PROXY_SOCKS5H && !strcmp(p.host, "proxy.example") && p.port == 9050,
            "socks5h://host:port/ (a trailing slash is fine)");
    T_CHECK(proxy_url_parse("http://squid:3128", &p, err, sizeof err) == 0 && p.kind == PROXY_HTTP &&
                p.port == 3128,
            "http://host:port");
    T_CHECK(proxy_url_parse("http://corp", &p, err, sizeof err) == 0 && p.port == 8080,
            "http: port 8080 by default");
    T_CHECK(proxy_url_parse("socks5h://al%40ice:p%3Ass%40w0rd@127.0.0.1:1080", &p, err, sizeof err) == 0 &&
                !strcmp(p.user, "al@ice") && !strcmp(p.pass, "p:ss@w0rd") && !strcmp(p.host, "127.0.0.1"),
            "credentials percent-decoded (an @ and a : inside them)");
    proxy_url_redacted(&p, red, sizeof red);
    T_CHECK(!strcmp(red, "socks5h://al@ice:***@127.0.0.1:1080") && !strstr(red, "w0rd"),
            "the redacted form hides the password");
    T_CHECK(proxy_url_parse("socks5://[::1]:1081", &p, err, sizeof err) == 0 && !strcmp(p.host, "::1") &&
                p.port == 1081,
            "IPv6 in brackets");
    proxy_url_redacted(&p, red, sizeof red);
    T_CHECK(!strcmp(red, "socks5://[::1]:1081"), "... written back in brackets");
    T_CHECK(proxy_url_parse("http://user@h", &p, err, sizeof err) == 0 && !strcmp(p.user, "user") &&
                !p.pass[0],
            "a user without a password");

    static const char *const bad[] = {"https://proxy:443",  "socks4://h",        "socks5://",
                                      "socks5://h:0",       "socks5://h:65536",  "socks5://h:12x",
                                      "socks5://h:",        "http://h/path",     "http://h?x=1",
                                      "socks5://[::1",      "socks5://[]:1",     "socks5://[::1]x",
                                      "socks5://:secret@h", "socks5://u:p%zz@h", "socks5://u:p%4@h",
                                      "socks5://u:a%00b@h", "socks5://ho st:1",  "proxy.example:1080"};
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int r = proxy_url_parse(bad[i], &p, err, sizeof err);
        if (r == -1 && err[0] && !strstr(err, "secret") && p.kind == PROXY_NONE)
            refused++;
        else
            printf("# accepted or bad error: %s (%s)\n", bad[i], err);
    }
    T_CHECK(refused == (int)(sizeof bad / sizeof *bad),
            "refused with a reason (never the password): another scheme, no host, ports 0 / 65536 / junk / "
            "empty, a "
            "path or query, broken brackets, an empty user, bad escapes, a NUL, a space, no scheme");
    char longu[600];
    memset(longu, 'a', sizeof longu);
    memcpy(longu, "socks5://", 9);
    strcpy(longu + 500, "@h");
    T_CHECK(proxy_url_parse(longu, &p, err, sizeof err) == -1, "a user name over 255 bytes is refused");
    T_DONE();
}
