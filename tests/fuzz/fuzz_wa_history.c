/* libFuzzer target for the history sync decoder: the blob is our phone's,
 * but it arrives from a media server and is only trusted once its MAC has
 * verified, so the decoder must hold on anything. The input is fed as a
 * compressed blob and as an already-inflated HistorySync (both in pieces
 * whose size the first byte picks), and deflated by zlib here and fed
 * again so the top-level reader is reached through inflate too; every
 * delivered message's bytes go through wa_msg_parse; and the input is read
 * as a historySyncNotification. Results must be consistent (counts within
 * what the input could hold, an entry never past max_field, the same
 * deliveries whatever the piece size); nothing may crash or leak. Built
 * alone by clang (make fuzzers). */
#include "supervisor/wa/wa_history.c"
#include "supervisor/wa/wa_message.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/wa_media_cipher.c"
#include "supervisor/wa/proto/e2e.pb-c.c"
#include "supervisor/wa/proto/history.pb-c.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELD 4096

struct tally {
    size_t convs, msgs, names, maps, statuses;
    uint64_t sum; /* of delivered lengths: the same whatever the piece size */
};

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static void check_msg(struct tally *t, const struct wa_hist_msg *m)
{
    if (m->message_len > MAX_FIELD || (m->message == NULL) != (m->message_len == 0))
        abort();
    t->sum += m->message_len + slen(m->id) + slen(m->remote_jid) + slen(m->push_name) + slen(m->participant);
    if (m->message) {
        struct wa_msg_content mc;
        if (wa_msg_parse(m->message, m->message_len, &mc) == 0)
            wa_msg_content_free(&mc);
    }
}

static int on_conv(void *arg, const struct wa_hist_conv *c)
{
    struct tally *t = arg;
    if (!c->id || (c->nmsgs && !c->msgs) || c->nmsgs > MAX_FIELD)
        abort();
    t->convs++;
    t->msgs += c->nmsgs;
    t->sum += slen(c->id) + slen(c->name) + slen(c->pn_jid) + slen(c->lid_jid) + c->unread_count;
    for (size_t i = 0; i < c->nmsgs; i++)
        check_msg(t, &c->msgs[i]);
    return 0;
}

static int on_status(void *arg, const struct wa_hist_msg *m)
{
    struct tally *t = arg;
    t->statuses++;
    check_msg(t, m);
    return 0;
}

static int on_name(void *arg, const char *jid, const char *name)
{
    struct tally *t = arg;
    if (!jid || !name)
        abort();
    t->names++;
    t->sum += slen(jid) + slen(name);
    return 0;
}

static int on_map(void *arg, const char *pn, const char *lid)
{
    struct tally *t = arg;
    if (!pn || !lid || !pn[0] || !lid[0])
        abort();
    t->maps++;
    t->sum += slen(pn) + slen(lid);
    return 0;
}

static const struct wa_hist_callbacks CB = {NULL, on_conv, on_status, on_name, on_map};

static int run(const uint8_t *p, size_t n, int raw, size_t piece, struct tally *t)
{
    struct wa_hist_limits lim = {.raw = raw, .max_field = MAX_FIELD, .max_inflated = 1 << 20};
    struct wa_hist_decoder *d = wa_history_decoder_new(&lim, &CB, t);
    if (!d)
        return WA_HIST_NOMEM;
    int rc = WA_HIST_OK;
    for (size_t i = 0; i < n && rc == WA_HIST_OK; i += piece)
        rc = wa_history_decoder_feed(d, p + i, n - i < piece ? n - i : piece);
    int fin = wa_history_decoder_finish(d);
    if (rc != WA_HIST_OK && fin != rc)
        abort(); /* errors are sticky */
    struct wa_hist_stats st;
    wa_history_decoder_stats(d, &st);
    if (st.conversations != t->convs || st.messages != t->msgs || st.pushnames != t->names ||
        st.lid_mappings != t->maps || st.statuses != t->statuses || st.inflated > lim.max_inflated ||
        (raw && st.inflated > n))
        abort();
    wa_history_decoder_free(d);
    return fin;
}

/* The same input in two piece sizes: the same outcome, the same deliveries. */
static void both(const uint8_t *p, size_t n, int raw, size_t piece)
{
    struct tally a = {0}, b = {0};
    int ra = run(p, n, raw, piece, &a);
    int rb = run(p, n, raw, n ? n : 1, &b);
    if (ra != rb || a.convs != b.convs || a.msgs != b.msgs || a.names != b.names || a.maps != b.maps ||
        a.sum != b.sum)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t piece = size ? 1 + data[0] % 61 : 1;
    both(data, size, 0, piece);
    both(data, size, 1, piece);
    uLongf zn = compressBound(size);
    uint8_t *z = malloc(zn ? zn : 1);
    if (z && compress2(z, &zn, data, size, 1) == Z_OK) {
        both(z, zn, 0, piece);
        /* and cut short: truncated, never ok */
        struct tally t = {0};
        if (zn > 1 && run(z, zn - 1, 0, piece, &t) == WA_HIST_OK)
            abort();
    }
    free(z);
    struct wa_hist_notif nt;
    if (wa_hist_notif_parse(data, size, &nt) == 1) {
        if (!nt.inline_payload && !(nt.has_media_key && nt.direct_path))
            abort();
        wa_hist_notif_free(&nt);
    }
    return 0;
}
