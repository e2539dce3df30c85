/* libFuzzer target for media decryption: a downloaded file is untrusted
 * bytes. The first input byte picks the piece size, the rest is the file,
 * decrypted under a fixed key: every update writes at most its input + 16
 * bytes, the end at most 16, and a file is accepted only if it is what
 * encrypting its plaintext under that key gives back (so only a real MAC
 * passes). The input is also encrypted and decrypted back, which must be
 * the identity. Built alone by clang (make fuzzers). */
#include "supervisor/wa/wa_media_cipher.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[WA_MEDIA_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                              17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* in through a stream in pieces; returns the output length or -1. */
static long through(struct wa_media_stream *s, const uint8_t *in, size_t n, size_t piece, uint8_t *out)
{
    long total = 0;
    if (!s)
        abort();
    for (size_t off = 0; off < n; off += piece) {
        size_t m = n - off < piece ? n - off : piece;
        long w = wa_media_update(s, in + off, m, out + total);
        if (w > (long)m + 16)
            abort();
        if (w < 0) {
            wa_media_stream_free(s);
            return -1;
        }
        total += w;
    }
    struct wa_media_sums sums;
    long w = wa_media_final(s, out + total, &sums);
    wa_media_stream_free(s);
    if (w > 26)
        abort();
    return w < 0 ? -1 : total + w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] + 1;
    const uint8_t *file = data + 1;
    size_t n = size - 1;
    uint8_t *plain = malloc(n + 64), *again = malloc(n + 128), *back = malloc(n + 128);
    long pn = through(wa_media_decrypt_new(KEY, WA_MEDIA_DOCUMENT), file, n, piece, plain);
    if (pn >= 0) {
        /* Accepted: it must be exactly the encryption of what came out. */
        long en = through(wa_media_encrypt_new(KEY, WA_MEDIA_DOCUMENT), plain, (size_t)pn, 4096, again);
        if (en != (long)n || memcmp(again, file, n) != 0)
            abort();
    }
    long en = through(wa_media_encrypt_new(KEY, WA_MEDIA_IMAGE), file, n, piece, again);
    if (en < 0 || (size_t)en != (n / 16 + 1) * 16 + WA_MEDIA_MAC_LEN)
        abort();
    long dn = through(wa_media_decrypt_new(KEY, WA_MEDIA_IMAGE), again, (size_t)en, 4096 - piece, back);
    if (dn != (long)n || (n && memcmp(back, file, n) != 0))
        abort();
    free(plain);
    free(again);
    free(back);
    return 0;
}
