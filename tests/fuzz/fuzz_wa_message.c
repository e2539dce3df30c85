/* libFuzzer target for the end-to-end message layer's decoders: a peer's
 * decrypted plaintext is untrusted bytes. Arbitrary input is unpadded and
 * parsed as a Message; whatever parses must give a kind wapi knows, strings
 * no longer than the input, and free cleanly. The raw bytes are parsed too
 * (a plaintext whose padding happens to be valid). Built alone by clang
 * (make fuzzers), so it includes the sources it needs. */
#include "supervisor/wa/wa_message.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/proto/e2e.pb-c.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(const uint8_t *p, size_t n)
{
    struct wa_msg_content mc;
    if (wa_msg_parse(p, n, &mc) < 0)
        return;
    /* The kinds wa_msg_parse gives (UNDECRYPTABLE and the retry waits are never parsed). */
    if (mc.kind < WA_MSG_TEXT || mc.kind > WA_MSG_HISTORY_SYNC ||
        (mc.kind == WA_MSG_PEER_DATA) != (mc.peer_data != NULL) ||
        (mc.kind == WA_MSG_APPSTATE_KEYS || mc.kind == WA_MSG_HISTORY_SYNC) != (mc.raw != NULL) ||
        ((mc.kind == WA_MSG_PIN || mc.kind == WA_MSG_KEEP) && (!mc.target || !*mc.target)) ||
        (mc.kind == WA_MSG_DISAPPEARING && !mc.has_expiration) ||
        (mc.has_expiration && mc.expiration > WA_MSG_EXPIRATION_MAX) ||
        (mc.kind == WA_MSG_MEDIA) != (mc.media != NULL) || (mc.kind == WA_MSG_POLL) != (mc.poll != NULL) ||
        (mc.kind == WA_MSG_POLL_VOTE) != (mc.vote != NULL) ||
        (mc.kind == WA_MSG_LOCATION) != (mc.location != NULL) ||
        (mc.kind == WA_MSG_CONTACTS) != (mc.ncontacts > 0) || mc.ncontacts > WA_MSG_MAX_CONTACTS)
        abort();
    if (mc.location) {
        const struct wa_msg_location *l = mc.location;
        if (!(l->latitude >= -90 && l->latitude <= 90 && l->longitude >= -180 && l->longitude <= 180))
            abort();
        const char *ls[] = {l->name, l->address, l->url, l->comment};
        for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
            if (ls[i] && strlen(ls[i]) > n)
                abort();
    }
    for (size_t i = 0; i < mc.ncontacts; i++)
        if (!mc.contacts[i].vcard || strlen(mc.contacts[i].vcard) > n ||
            (mc.contacts[i].display_name && strlen(mc.contacts[i].display_name) > n))
            abort();
    /* A poll: 1 to 32 distinct named options, each from the input. */
    if (mc.poll) {
        const struct wa_msg_poll *q = mc.poll;
        if (!q->question || strlen(q->question) > n || q->noptions < 1 || q->noptions > 32)
            abort();
        for (size_t i = 0; i < q->noptions; i++) {
            if (!q->options[i] || !*q->options[i] || strlen(q->options[i]) > n)
                abort();
            for (size_t j = 0; j < i; j++)
                if (!strcmp(q->options[i], q->options[j]))
                    abort();
        }
    }
    /* A vote: its poll's id and a sealed payload with a tag, no longer than
     * the input; opening it with a key it was not sealed for fails cleanly. */
    if (mc.vote) {
        const struct wa_msg_poll_vote *v = mc.vote;
        static const uint8_t secret[WA_MSG_POLL_SECRET_LEN];
        uint8_t *sums = (uint8_t *)1;
        size_t ns = 1;
        if (!v->poll_id || !*v->poll_id || strlen(v->poll_id) > 128 || v->payload_len < 16 ||
            v->payload_len > n || v->payload_len > 4096)
            abort();
        if (wa_msg_poll_vote_open(secret, v->poll_id, "1@s.whatsapp.net", "2@lid", v, &sums, &ns) == 0)
            free(sums); /* the all-zero secret's vote, if the input is one */
        else if (sums || ns)
            abort();
    }
    /* What parses can be sent again: its stanza type, and the copy for our
     * other devices, which parses too (one wrapper deeper, so its kind may
     * differ where the depth bounds cut in). */
    struct wa_msg_stanza st;
    uint8_t *w = NULL;
    size_t wl = 0;
    if (wa_msg_stanza_type(p, n, &st) < 0 ||
        (strcmp(st.type, "text") && strcmp(st.type, "media") && strcmp(st.type, "reaction") &&
         strcmp(st.type, "poll")) ||
        (!strcmp(st.type, "poll") != (st.polltype != NULL)))
        abort();
    if (wa_msg_wrap_dsm(p, n, "1@s.whatsapp.net", &w, &wl) == 0) {
        struct wa_msg_content again;
        if (wa_msg_parse(w, wl, &again) == 0) {
            if (again.kind < WA_MSG_TEXT || again.kind > WA_MSG_PEER_DATA)
                abort();
            wa_msg_content_free(&again);
        }
        free(w);
    }
    /* The marks an outgoing message may get (forwarded, a chat's timer, view
     * once): what they give parses, carries the timer, and is view once when
     * asked. */
    struct wa_msg_marks mk = {3, 604800, mc.kind == WA_MSG_MEDIA};
    if (wa_msg_mark(p, n, &mk, &w, &wl) == 0) {
        struct wa_msg_content again;
        if (wa_msg_parse(w, wl, &again) < 0 || again.kind < WA_MSG_TEXT || again.kind > WA_MSG_PEER_DATA)
            abort();
        if (mk.view_once && again.kind == WA_MSG_MEDIA && !again.view_once)
            abort();
        wa_msg_content_free(&again);
        free(w);
    }
    if (mc.media) {
        const struct wa_msg_media *m = mc.media;
        const char *ms[] = {m->url, m->direct_path, m->mimetype, m->caption, m->file_name};
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            if (ms[i] && strlen(ms[i]) > n)
                abort();
        if (m->thumbnail_len > n || m->waveform_len > WA_MSG_WAVEFORM_MAX || !wa_media_type_name(m->type))
            abort();
    }
    /* What comes from the input is no longer than it (subtype is a name of
     * wapi's own: a Message field's). */
    const char *s[] = {mc.text, mc.reply_to, mc.target, mc.dsm_dest};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i] && strlen(s[i]) > n)
            abort();
    if (mc.subtype && strlen(mc.subtype) > 128)
        abort();
    wa_msg_content_free(&mc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long ulen = wa_msg_unpad(data, size);
    if (ulen > (long)size)
        abort();
    if (ulen >= 0)
        parse(data, (size_t)ulen);
    parse(data, size);
    return 0;
}
