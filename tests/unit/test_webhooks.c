/* Webhooks: the Standard Webhooks signature against the published vector,
 * the backoff schedule, URL parsing and the private-address rule. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/webhook_url.h"
#include "supervisor/sup.h"
#include "supervisor/webhooks.h"
#include "tests/unit/t.h"

struct sup S; /* the dispatcher's loop state; unused here */
uint64_t now_ms(void)
{
    return 0;
}

static int priv(const char *host)
{
    return webhook_host_private(host);
}

int main(void)
{
    char sig[64];
    const char *body = "{\"test\": 2432232314}";
    int rc = webhooks_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                           strlen(body), sig, sizeof sig);
    T_EQ_INT(rc, 0, "sign: the vector's secret is accepted");
    T_EQ_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "sign: the Standard Webhooks test vector");
    T_CHECK(webhooks_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "x", 1, "", 0, sig, sizeof sig) < 0,
            "sign: a secret without whsec_ is refused");
    T_CHECK(webhooks_sign("whsec_abc", "x", 1, "", 0, sig, sizeof sig) < 0, "sign: malformed base64 is refused");

    T_EQ_INT(webhooks_backoff_ms(1, 5000), 5000, "backoff: 5 s after the 1st attempt");
    T_EQ_INT(webhooks_backoff_ms(2, 5000), 20000, "backoff: 20 s after the 2nd");
    T_EQ_INT(webhooks_backoff_ms(4, 5000), 320000, "backoff: 5 min 20 s after the 4th");
    T_EQ_INT(webhooks_backoff_ms(7, 5000), 20480000, "backoff: 5 h 41 min after the 7th");
    T_EQ_INT(webhooks_backoff_ms(8, 5000), 6 * 3600 * 1000, "backoff: capped at 6 h");
    T_EQ_INT(webhooks_backoff_ms(40, 5000), 6 * 3600 * 1000, "backoff: no overflow");

    struct webhook_url u;
    char err[128];
    T_EQ_INT(webhook_url_parse("https://Example.com/hook?x=1", &u, err, sizeof err), 0, "url: https");
    T_CHECK(u.https && u.port == 443 && !strcmp(u.host, "example.com") && !strcmp(u.path, "/hook?x=1"),
            "url: host lower-cased, default port, path with query");
    T_EQ_INT(webhook_url_parse("http://[::1]:8080", &u, err, sizeof err), 0, "url: IPv6 literal with port");
    T_CHECK(!u.https && u.port == 8080 && !strcmp(u.host, "::1") && !strcmp(u.path, "/"), "url: IPv6 parts");
    const char *bad[] = {"ftp://x/", "http://", "http://a b/", "http://u:p@x/", "http://x:0/", "http://x:65536/",
                         "http://x/#frag", "http://[::1/", "http://x:12a/", "//x/", "http://ex\x01.com/"};
    int all = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (webhook_url_parse(bad[i], &u, err, sizeof err) == 0) {
            printf("accepted %s\n", bad[i]);
            all = 0;
        }
    T_CHECK(all, "url: malformed ones are refused");

    T_CHECK(priv("127.0.0.1") && priv("10.0.0.1") && priv("172.16.5.4") && priv("172.31.255.255") &&
                priv("192.168.0.1") && priv("169.254.169.254") && priv("100.64.0.1") && priv("0.0.0.0") &&
                priv("224.0.0.1") && priv("255.255.255.255"),
            "private: IPv4 loopback, private, link-local, CGNAT, unspecified, multicast");
    T_CHECK(priv("::1") && priv("::") && priv("fe80::1") && priv("fd12::1") && priv("::ffff:10.0.0.1") &&
                priv("::ffff:127.0.0.1") && priv("ff02::1"),
            "private: IPv6 loopback, link-local, unique-local, mapped, multicast");
    T_CHECK(priv("localhost") && priv("api.localhost") && priv("0x7f.0.0.1") && priv("2130706433") &&
                priv("017700000001"),
            "private: localhost names and numeric IPv4 spellings");
    T_CHECK(!priv("8.8.8.8") && !priv("172.32.0.1") && !priv("100.128.0.1") && !priv("2606:4700::1111") &&
                !priv("example.com") && !priv("10.example.com"),
            "public: addresses and names that are not private");
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.168.1.1", &s6.sin6_addr);
    T_CHECK(webhook_addr_private((struct sockaddr *)&s6), "resolved: a mapped private IPv4 is private");
    inet_pton(AF_INET6, "2a00:1450::1", &s6.sin6_addr);
    T_CHECK(!webhook_addr_private((struct sockaddr *)&s6), "resolved: a global IPv6 is public");
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
