/* supervisor/media_probe.c on a file, for t_media_probe.py:
 *
 *   media_probe_tool mp4|opus FILE
 *
 * One JSON line: {"ms":N} (mp4) or {"ms":N,"waveform":[64 numbers]} (opus),
 * or {"error":"..."} and exit 2. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonw.h"
#include "common/sbuf.h"
#include "supervisor/media_probe.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "mp4") && strcmp(argv[1], "opus"))) {
        fprintf(stderr, "usage: media_probe_tool mp4|opus FILE\n");
        return 1;
    }
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    /* The probes must not use the descriptor's offset: move it on purpose. */
    lseek(fd, 7, SEEK_SET);
    uint64_t ms = 0;
    uint8_t wave[MEDIA_WAVEFORM_LEN];
    char err[256];
    int opus = !strcmp(argv[1], "opus");
    int r = opus ? media_probe_opus_fd(fd, &ms, wave, err, sizeof err)
                 : media_probe_mp4_fd(fd, &ms, err, sizeof err);
    int moved = lseek(fd, 0, SEEK_CUR) != 7;
    close(fd);
    struct sbuf b;
    struct jsonw w;
    sbuf_init(&b);
    jw_init(&w, &b);
    jw_obj(&w);
    if (r < 0) {
        jw_kstr(&w, "error", err);
    } else {
        jw_kuint(&w, "ms", ms);
        if (opus) {
            jw_key(&w, "waveform");
            jw_arr(&w);
            for (int i = 0; i < MEDIA_WAVEFORM_LEN; i++)
                jw_uint(&w, wave[i]);
            jw_arr_end(&w);
        }
    }
    jw_kbool(&w, "offset_moved", moved);
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        printf("%.*s\n", (int)b.len, b.buf);
    sbuf_free(&b);
    return r < 0 ? 2 : 0;
}
