/* Peak memory of the history sync decoder on a large blob:
 *
 *   node tests/wa/history_vectors.mjs DIR big 50    (a blob inflating to ~50 MB)
 *   wa_history_rss DIR/big.zz DIR/big.json [MAX_RSS_MB]
 *
 * Reads the compressed blob from the file 64 KiB at a time (as a download
 * would arrive), decodes it, reads every message with wa_msg_parse and
 * digests key, time and text as the vector script did. Prints one JSON line
 * (counts, inflated bytes, peak RSS from getrusage, seconds). Exit 0 when
 * the decode and digest agree with the JSON and the peak RSS is under
 * MAX_RSS_MB (default 64), 2 otherwise, 1 on bad usage. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/hex.h"
#include "common/json.h"
#include "supervisor/wa/wa_history.h"
#include "supervisor/wa/wa_message.h"

struct ctx {
    EVP_MD_CTX *md;
    size_t msgs, bad;
};

static int on_conv(void *arg, const struct wa_hist_conv *c)
{
    struct ctx *x = arg;
    for (size_t i = 0; i < c->nmsgs; i++) {
        const struct wa_hist_msg *m = &c->msgs[i];
        struct wa_msg_content mc = {0};
        x->msgs++;
        if (!m->message || wa_msg_parse(m->message, m->message_len, &mc) != 0 || !mc.text) {
            x->bad++;
            wa_msg_content_free(&mc);
            continue;
        }
        char head[512];
        snprintf(head, sizeof head, "%s|%s|%d|%llu|", c->id, m->id ? m->id : "~", m->from_me,
                 (unsigned long long)m->timestamp);
        EVP_DigestUpdate(x->md, head, strlen(head));
        EVP_DigestUpdate(x->md, mc.text, strlen(mc.text));
        EVP_DigestUpdate(x->md, "\n", 1);
        wa_msg_content_free(&mc);
    }
    return 0;
}

static long rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BLOB.zz BLOB.json [MAX_RSS_MB]\n", argv[0]);
        return 1;
    }
    long max_mb = argc > 3 ? atol(argv[3]) : 64;
    FILE *jf = fopen(argv[2], "rb");
    char jbuf[4096];
    size_t jn = jf ? fread(jbuf, 1, sizeof jbuf - 1, jf) : 0;
    if (jf)
        fclose(jf);
    char err[128];
    yajl_val want = json_parse(jbuf, jn, sizeof jbuf, err, sizeof err);
    FILE *f = fopen(argv[1], "rb");
    if (!want || !f) {
        fprintf(stderr, "cannot read %s or %s\n", argv[1], argv[2]);
        return 1;
    }
    long before = rss_kb();
    struct ctx x = {.md = EVP_MD_CTX_new()};
    EVP_DigestInit_ex(x.md, EVP_sha256(), NULL);
    struct wa_hist_callbacks cb = {.conversation = on_conv};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct wa_hist_decoder *d = wa_history_decoder_new(NULL, &cb, &x);
    static uint8_t buf[64 << 10];
    int rc = d ? WA_HIST_OK : WA_HIST_NOMEM;
    size_t n, compressed = 0;
    while (rc == WA_HIST_OK && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        compressed += n;
        rc = wa_history_decoder_feed(d, buf, n);
    }
    fclose(f);
    if (rc == WA_HIST_OK)
        rc = wa_history_decoder_finish(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct wa_hist_stats st = {0};
    if (d)
        wa_history_decoder_stats(d, &st);
    wa_history_decoder_free(d);
    uint8_t h[32];
    unsigned hl = 0;
    char dg[65];
    EVP_DigestFinal_ex(x.md, h, &hl);
    EVP_MD_CTX_free(x.md);
    hex_encode(dg, h, 32, 0);
    long peak = rss_kb();
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const char *wd = json_str(want, "digest");
    int64_t wm = 0, wi = 0;
    json_int(want, "messages", &wm);
    json_int(want, "inflated", &wi);
    int ok = rc == WA_HIST_OK && wd && strcmp(dg, wd) == 0 && (int64_t)st.messages == wm &&
             (int64_t)st.inflated == wi && x.bad == 0 && peak < max_mb * 1024;
    printf(
        "{\"rc\":\"%s\",\"compressed\":%zu,\"inflated\":%llu,\"conversations\":%zu,\"messages\":%zu,"
        "\"digest_ok\":%s,\"rss_before_kb\":%ld,\"peak_rss_kb\":%ld,\"seconds\":%.2f,\"msgs_per_s\":%.0f}\n",
        wa_hist_code(rc), compressed, (unsigned long long)st.inflated, st.conversations, st.messages,
        wd && strcmp(dg, wd) == 0 ? "true" : "false", before, peak, secs, secs > 0 ? st.messages / secs : 0);
    yajl_tree_free(want);
    return ok ? 0 : 2;
}
