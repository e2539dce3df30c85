/* libFuzzer target for the binary node codec. Arbitrary bytes are decoded as a frame;
 * whatever decodes must encode, decode again to an equal tree, and encode again to the
 * same bytes. The same bytes, read as text, exercise JID parsing and formatting. */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const uint8_t *data, size_t size)
{
    wa_arena *a = wa_arena_new();
    if (!a)
        abort();
    wa_node *first, *second;
    if (wa_frame_decode(data, size, NULL, a, &first) == WA_OK) {
        uint8_t *enc, *enc2;
        size_t len, len2;
        if (wa_frame_encode(first, &enc, &len) != WA_OK)
            abort(); /* every tree the decoder builds has a wire form */
        if (wa_frame_decode(enc, len, NULL, a, &second) != WA_OK)
            abort();
        if (!wa_node_equal(first, second))
            abort();
        if (wa_frame_encode(second, &enc2, &len2) != WA_OK || len2 != len || memcmp(enc, enc2, len) != 0)
            abort(); /* the encoding is a function of the tree */
        char *text = wa_node_to_string(first, 4096);
        if (!text || strlen(text) > 4096)
            abort();
        free(text);
        free(enc);
        free(enc2);
    }
    wa_arena_free(a);
}

static void check_jid_text(const uint8_t *data, size_t size)
{
    char s[512];
    if (size >= sizeof(s))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    wa_arena *a = wa_arena_new();
    if (!a)
        abort();
    wa_jid j, k;
    if (wa_jid_parse(a, s, &j) == WA_OK) {
        char out[1100];
        int need = wa_jid_format(&j, out, sizeof(out));
        if (need < 0 || (size_t)need >= sizeof(out) || strlen(out) != (size_t)need)
            abort();
        if (wa_jid_parse(a, out, &k) != WA_OK || !wa_jid_equal(&j, &k))
            abort(); /* the text form reads back as the same JID */
    }
    wa_arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_frame(data, size);
    check_jid_text(data, size);
    return 0;
}
