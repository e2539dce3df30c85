/* Drives supervisor/http_client.c on a libevent loop for t_http_client.py:
 *
 *   http_client_tool [--post FILE] [--max N] [--timeout MS] [--redirects N]
 *                    [--refuse-private] [--parallel N] [--stop-after N]
 *                    [--header "Name: value"] URL
 *
 * Runs the request (N times at once with --parallel) and prints one line per
 * answer: "ok=1 status=200 received=N sha256=HEX type=T" or
 * "ok=0 status=S received=N error=...". --stop-after N: the receiver stops
 * after N bytes. Exit 0 when every request ended (whatever the result). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "common/hex.h"
#include "supervisor/http_client.h"

struct one {
    EVP_MD_CTX *sha;
    uint64_t got, stop_after;
};

static int pending;
static struct event_base *base;

static int on_data(void *ctx, const void *p, size_t n)
{
    struct one *o = ctx;
    o->got += n;
    if (o->stop_after && o->got >= o->stop_after)
        return -1;
    return EVP_DigestUpdate(o->sha, p, n) == 1 ? 0 : -1;
}

static void on_done(void *ctx, const struct http_result *r)
{
    struct one *o = ctx;
    unsigned char d[32];
    char h[65];
    unsigned dl = 0;
    EVP_DigestFinal_ex(o->sha, d, &dl);
    hex_encode(h, d, 32, 0);
    if (r->ok)
        printf("ok=1 status=%ld received=%llu sha256=%s type=%s\n", r->status,
               (unsigned long long)r->received, h, r->content_type ? r->content_type : "-");
    else
        printf("ok=0 status=%ld received=%llu error=%s\n", r->status, (unsigned long long)r->received,
               r->error);
    fflush(stdout);
    EVP_MD_CTX_free(o->sha);
    free(o);
    if (--pending == 0)
        event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct http_opts o = {.body_fd = -1, .on_data = on_data, .done = on_done};
    const char *headers[9] = {0};
    int nh = 0, parallel = 1;
    uint64_t stop_after = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--post") && v) {
            struct stat st;
            o.body_fd = open(v, O_RDONLY | O_CLOEXEC);
            if (o.body_fd < 0 || fstat(o.body_fd, &st) != 0)
                return 1;
            o.method = "POST";
            o.body_len = (uint64_t)st.st_size;
            i++;
        } else if (!strcmp(a, "--max") && v) {
            o.max_bytes = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--timeout") && v) {
            o.timeout_ms = atol(v), i++;
        } else if (!strcmp(a, "--redirects") && v) {
            o.max_redirects = atoi(v), i++;
        } else if (!strcmp(a, "--parallel") && v) {
            parallel = atoi(v), i++;
        } else if (!strcmp(a, "--stop-after") && v) {
            stop_after = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--header") && v && nh < 8) {
            headers[nh++] = v, i++;
        } else if (!strcmp(a, "--refuse-private")) {
            o.refuse_private = 1;
        } else if (a[0] != '-' && !o.url) {
            o.url = a;
        } else {
            fprintf(stderr, "usage: see the top of http_client_tool.c\n");
            return 1;
        }
    }
    if (!o.url || parallel < 1 || parallel > 1000)
        return 1;
    o.headers = headers;
    base = event_base_new();
    if (!base || http_client_init(base) != 0)
        return 1;
    for (int i = 0; i < parallel; i++) {
        struct one *one = calloc(1, sizeof *one);
        one->sha = EVP_MD_CTX_new();
        one->stop_after = stop_after;
        EVP_DigestInit_ex(one->sha, EVP_sha256(), NULL);
        o.ctx = one;
        if (!http_request(&o)) {
            printf("ok=0 status=0 received=0 error=could not start\n");
            EVP_MD_CTX_free(one->sha);
            free(one);
            continue;
        }
        pending++;
    }
    if (pending)
        event_base_dispatch(base);
    int left = http_in_flight();
    http_client_shutdown();
    event_base_free(base);
    return left == 0 ? 0 : 3;
}
