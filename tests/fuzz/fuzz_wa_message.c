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
    if (mc.kind < WA_MSG_TEXT || mc.kind > WA_MSG_MEDIA || (mc.kind == WA_MSG_MEDIA) != (mc.media != NULL))
        abort();
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
