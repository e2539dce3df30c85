/* Media encryption over stdin/stdout for the interop test with Baileys:
 *
 *   wa_media_tool encrypt|decrypt KIND KEYHEX [PIECE]
 *
 * KIND: image video audio document history appstate; KEYHEX: the 32-byte
 * media key; PIECE: bytes per update (default 65536). The output file goes to
 * stdout; on success one JSON line with the sums goes to stderr:
 *   {"fileSha256":HEX,"fileEncSha256":HEX,"fileLength":N,"encLength":N}
 * Exit: 0 done, 2 the stream refused the file ("ERROR <code>" on stderr),
 * 1 bad usage or I/O. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "supervisor/wa/wa_media_cipher.h"

static const char *const KINDS[WA_MEDIA_KINDS] = {
    [WA_MEDIA_IMAGE] = "image",       [WA_MEDIA_VIDEO] = "video",     [WA_MEDIA_AUDIO] = "audio",
    [WA_MEDIA_DOCUMENT] = "document", [WA_MEDIA_HISTORY] = "history", [WA_MEDIA_APPSTATE] = "appstate",
};

int main(int argc, char **argv)
{
    uint8_t key[WA_MEDIA_KEY_LEN];
    int kind = -1;
    if (argc < 4 || argc > 5 || (strcmp(argv[1], "encrypt") && strcmp(argv[1], "decrypt")) ||
        hex_decode(argv[3], key, sizeof key)) {
        fprintf(stderr, "usage: wa_media_tool encrypt|decrypt KIND KEYHEX [PIECE]\n");
        return 1;
    }
    for (int i = 0; i < WA_MEDIA_KINDS; i++)
        if (!strcmp(argv[2], KINDS[i]))
            kind = i;
    long piece = argc == 5 ? atol(argv[4]) : 65536;
    if (kind < 0 || piece <= 0 || piece > (1 << 24)) {
        fprintf(stderr, "bad kind or piece size\n");
        return 1;
    }
    struct wa_media_stream *s = !strcmp(argv[1], "encrypt")
                                    ? wa_media_encrypt_new(key, (enum wa_media_kind)kind)
                                    : wa_media_decrypt_new(key, (enum wa_media_kind)kind);
    uint8_t *in = malloc((size_t)piece), *out = malloc((size_t)piece + 32);
    if (!s || !in || !out)
        return 1;
    size_t n;
    long w = 0;
    while ((n = fread(in, 1, (size_t)piece, stdin)) > 0) {
        if ((w = wa_media_update(s, in, n, out)) < 0)
            break;
        if (fwrite(out, 1, (size_t)w, stdout) != (size_t)w)
            return 1;
    }
    struct wa_media_sums sums;
    if (w >= 0)
        w = wa_media_final(s, out, &sums);
    if (w < 0) {
        fprintf(stderr, "ERROR %ld\n", w);
        wa_media_stream_free(s);
        free(in);
        free(out);
        return 2;
    }
    if (fwrite(out, 1, (size_t)w, stdout) != (size_t)w || fflush(stdout))
        return 1;
    char a[65], b[65];
    hex_encode(a, sums.file_sha256, 32, 0);
    hex_encode(b, sums.file_enc_sha256, 32, 0);
    fprintf(stderr,
            "{\"fileSha256\":\"%s\",\"fileEncSha256\":\"%s\",\"fileLength\":%" PRIu64
            ",\"encLength\":%" PRIu64 "}\n",
            a, b, sums.file_length, sums.enc_length);
    wa_media_stream_free(s);
    free(in);
    free(out);
    return 0;
}
