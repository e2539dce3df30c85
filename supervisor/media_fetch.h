/* Downloading one media file from the WhatsApp media hosts: the encrypted
 * file streams through the decryption into a temporary file that nobody
 * else can see (O_TMPFILE in the given directory), and is handed over only
 * once the MAC, fileEncSha256, fileSha256 and the length all match what the
 * message said. The hosts are tried in order; what went wrong is classified
 * for the caller: gone from the CDN (ask the phone), corrupt (do not retry
 * the same bytes), too big, or a network failure (retry later). */
#ifndef WAPI_MEDIA_FETCH_H
#define WAPI_MEDIA_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "wa/wa_media_cipher.h"

enum media_fetch_outcome {
    MEDIA_FETCH_OK,
    MEDIA_FETCH_EXPIRED, /* 403, 404 or 410 from a host: the phone must upload it again */
    MEDIA_FETCH_CORRUPT, /* the bytes are not the file the message describes */
    MEDIA_FETCH_TOO_BIG, /* larger than the limit or than the message said */
    MEDIA_FETCH_NETWORK, /* no host answered usefully: try again later */
    MEDIA_FETCH_LOCAL,   /* our side failed (disk, memory) */
};

struct media_fetch_result {
    enum media_fetch_outcome outcome;
    int fd;      /* MEDIA_FETCH_OK: the plaintext, an unlinked file at offset 0; the callee's to close */
    long status; /* the last HTTP status, 0 when none */
    const char *error;
    struct wa_media_sums sums;
};

struct media_fetch_req {
    const char *const *hosts; /* "mmg.whatsapp.net", ...; tried in order */
    int nhosts;
    const char *direct_path; /* "/v/t62...": appended to https://HOST */
    char proxy[512];         /* whatsapp.proxy, or "" */
    enum wa_media_kind kind;
    uint8_t media_key[32];
    uint8_t file_enc_sha256[32], file_sha256[32];
    int has_file_enc_sha256, has_file_sha256;
    uint64_t file_length; /* 0: not said */
    uint64_t max_bytes;   /* of the encrypted file; 0: no limit */
    int tmp_dirfd;        /* where the plaintext is written (the store's temp directory) */
    long timeout_ms;      /* per host; 0: the client's default */
    void (*done)(void *arg, const struct media_fetch_result *r); /* once, from the loop */
    void *arg;
};

struct media_fetch;
/* Starts; NULL when it cannot (done is then not called). The request is
 * copied. http_client_init() must have run. */
struct media_fetch *media_fetch_start(const struct media_fetch_req *rq);
/* media_fetch_start on the hosts of a media_conn answer (rq->hosts and
 * nhosts are set here); rq->media_key is wiped either way. */
struct wa_mediaconn;
struct media_fetch *media_fetch_start_on(const struct wa_mediaconn *mc, struct media_fetch_req *rq);
/* Stops one in flight: done is not called, the temporary file is dropped. */
void media_fetch_cancel(struct media_fetch *f);

#endif
