/* libFuzzer target for the phone's answer to a media retry request: the
 * notification and its sealed answer are untrusted bytes. The input is
 * decoded as a frame and, if it decodes, read as a mediaretry notification
 * and opened under a fixed key (only a real tag passes, so the sealed part
 * is mostly refused). To reach the answer's decoder, the input is also
 * sealed under that key as the answer of a well-formed notification and
 * opened back: whatever it yields must be bounded, a success must carry an
 * absolute path, and nothing may crash. Built alone by clang (make fuzzers). */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/wa_mediaretry.c"
#include "supervisor/wa/proto/mmsretry.pb-c.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

static void check_answer(const struct wa_mediaretry_answer *ans, int rc)
{
    if (rc != 0)
        return;
    if (memchr(ans->direct_path, 0, sizeof ans->direct_path) == NULL)
        abort();
    if (ans->result == WA_MR_SUCCESS && ans->direct_path[0] != '/')
        abort();
}

static void as_frame(const uint8_t *data, size_t size)
{
    wa_arena *a = wa_arena_new();
    if (!a)
        abort();
    wa_node *n;
    if (wa_frame_decode(data, size, NULL, a, &n) == WA_OK) {
        struct wa_mediaretry_answer ans;
        char err[160];
        check_answer(&ans, wa_mediaretry_open(n, KEY, &ans, err, sizeof err));
    }
    wa_arena_free(a);
}

static void as_answer(const uint8_t *data, size_t size)
{
    static struct wa_mediaretry_note note;
    if (size + WA_GCM_TAG_LEN > sizeof note.sealed)
        return;
    memset(&note, 0, sizeof note);
    strcpy(note.id, "3EB0FUZZ");
    strcpy(note.chat, "15550001111@s.whatsapp.net");
    uint8_t key[32];
    if (retry_key(KEY, key) < 0 || wa_crypto_aes_gcm_seal(key, note.iv, (const uint8_t *)note.id,
                                                          strlen(note.id), data, size, note.sealed) < 0)
        abort();
    note.nsealed = size + WA_GCM_TAG_LEN;
    struct wa_mediaretry_answer ans;
    char err[160];
    int rc = wa_mediaretry_decrypt(&note, KEY, &ans, err, sizeof err);
    check_answer(&ans, rc);
    note.sealed[0] ^= 1; /* one bit off: never opens */
    if (wa_mediaretry_decrypt(&note, KEY, &ans, err, sizeof err) == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_frame(data, size);
    as_answer(data, size);
    return 0;
}
