/* supervisor/media_fetch.c on a libevent loop, for t_media_fetch.mjs:
 *
 *   media_fetch_tool --host H [--host H2 ...] --path DIRECT_PATH --kind KIND
 *                    --key HEX [--enc-sha HEX] [--sha HEX] [--len N] [--max N]
 *                    [--out FILE]
 *
 * One JSON line: {"outcome":"ok|expired|corrupt|too_big|network|local",
 * "status":N,"error":...,"bytes":N,"sha256":HEX} (the plaintext written to
 * FILE when given). Exit 0 when the fetch ended, whatever the outcome. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "common/hex.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "supervisor/http_client.h"
#include "supervisor/media_fetch.h"

static struct event_base *base;
static const char *out_path;
static int ended;

static void on_done(void *arg, const struct media_fetch_result *r)
{
    (void)arg;
    static const char *const names[] = {"ok", "expired", "corrupt", "too_big", "network", "local"};
    uint64_t bytes = 0;
    char hex[65] = "";
    if (r->outcome == MEDIA_FETCH_OK) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        EVP_DigestInit_ex(c, EVP_sha256(), NULL);
        int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -1;
        static uint8_t buf[1 << 16];
        ssize_t n;
        while ((n = read(r->fd, buf, sizeof buf)) > 0) {
            EVP_DigestUpdate(c, buf, (size_t)n);
            if (out >= 0 && write(out, buf, (size_t)n) != n)
                break;
            bytes += (uint64_t)n;
        }
        uint8_t d[32];
        unsigned dl;
        EVP_DigestFinal_ex(c, d, &dl);
        EVP_MD_CTX_free(c);
        hex_encode(hex, d, 32, 0);
        if (out >= 0)
            close(out);
        close(r->fd);
    }
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kstr(&w, "outcome", names[r->outcome]);
    jw_kint(&w, "status", r->status);
    jw_kstr(&w, "error", r->error);
    jw_kuint(&w, "bytes", bytes);
    jw_kstr(&w, "sha256", hex[0] ? hex : NULL);
    jw_kuint(&w, "file_length", r->outcome == MEDIA_FETCH_OK ? r->sums.file_length : 0);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        printf("%.*s\n", (int)b.len, b.buf);
    sbuf_free(&b);
    ended = 1;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct media_fetch_req rq = {.kind = WA_MEDIA_KINDS, .done = on_done};
    const char *hosts[8];
    int ok = 1, have_key = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            ok = 0;
            break;
        }
        i++;
        if (!strcmp(a, "--host") && rq.nhosts < 8)
            hosts[rq.nhosts++] = v;
        else if (!strcmp(a, "--path"))
            rq.direct_path = v;
        else if (!strcmp(a, "--kind"))
            rq.kind = !strcmp(v, "image")      ? WA_MEDIA_IMAGE
                      : !strcmp(v, "video")    ? WA_MEDIA_VIDEO
                      : !strcmp(v, "audio")    ? WA_MEDIA_AUDIO
                      : !strcmp(v, "document") ? WA_MEDIA_DOCUMENT
                                               : WA_MEDIA_KINDS;
        else if (!strcmp(a, "--key"))
            ok &= (have_key = hex_decode(v, rq.media_key, 32) == 0);
        else if (!strcmp(a, "--enc-sha"))
            ok &= (rq.has_file_enc_sha256 = hex_decode(v, rq.file_enc_sha256, 32) == 0);
        else if (!strcmp(a, "--sha"))
            ok &= (rq.has_file_sha256 = hex_decode(v, rq.file_sha256, 32) == 0);
        else if (!strcmp(a, "--len"))
            rq.file_length = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max"))
            rq.max_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--out"))
            out_path = v;
        else
            ok = 0;
    }
    if (!ok || !have_key || !rq.nhosts || !rq.direct_path || rq.kind == WA_MEDIA_KINDS) {
        fprintf(stderr, "usage: see the top of media_fetch_tool.c\n");
        return 1;
    }
    rq.hosts = hosts;
    rq.tmp_dirfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    base = event_base_new();
    if (!base || http_client_init(base) != 0)
        return 1;
    if (!media_fetch_start(&rq)) {
        printf("{\"outcome\":\"not_started\"}\n");
        return 0;
    }
    event_base_dispatch(base);
    http_client_shutdown();
    event_base_free(base);
    close(rq.tmp_dirfd);
    return ended ? 0 : 3;
}
