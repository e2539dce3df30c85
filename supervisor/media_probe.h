/* What a media message says about its file besides the bytes: a video's
 * duration (from the MP4 container's movie header), a voice note's duration
 * and its 64-value waveform (decoded with libopusfile). Each reads a file
 * descriptor with bounded memory and may take a while on a long file: call
 * them off the event loop. The descriptor's offset is not used (pread). */
#ifndef WAPI_MEDIA_PROBE_H
#define WAPI_MEDIA_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MEDIA_WAVEFORM_LEN 64

/* Reads up to n bytes at off into buf; the bytes read, 0 at the end, -1 on
 * error. The MP4 walker reads through this, so a test or fuzzer can feed it
 * memory. */
typedef ssize_t (*media_read_fn)(void *ctx, void *buf, size_t n, uint64_t off);

/* An MP4/QuickTime file's duration in milliseconds, from moov/mvhd (either
 * version; the boxes are walked with every size checked, 64-bit sizes and
 * "to the end" included). -1 with err when there is no usable movie header. */
int media_probe_mp4_ms(media_read_fn rd, void *ctx, uint64_t file_size, uint64_t *ms, char *err,
                       size_t errlen);
int media_probe_mp4_fd(int fd, uint64_t *ms, char *err, size_t errlen);

/* An Ogg Opus file: its duration in milliseconds and its waveform (the mean
 * loudness of 64 equal slices, scaled so the loudest is 100; all 0 for
 * silence). -1 with err when it is not Ogg Opus or cannot be decoded. */
int media_probe_opus_fd(int fd, uint64_t *ms, uint8_t waveform[MEDIA_WAVEFORM_LEN], char *err, size_t errlen);

/* A PDF's page count when it is cheap to read: the largest /Count of a
 * /Type /Pages object written as plain text (the root of the page tree
 * holds the total) in the first and the last MEDIA_PDF_SCAN bytes. 0 when
 * none is found (a PDF that compresses its objects into object streams
 * shows none): the message then carries no count. */
#define MEDIA_PDF_SCAN (1u << 20)
uint32_t media_probe_pdf_pages(const uint8_t *p, size_t n);
uint32_t media_probe_pdf_pages_fd(int fd, uint64_t file_size);

#endif
