/* Uploading one file for an outgoing media message: a fresh media key, the
 * file encrypted on a thread into a temporary file nobody else can see
 * (memory does not grow with the file), then POSTed to the media hosts in
 * order. What comes back is what the message carries: the key, the sums,
 * the length, the direct path and the URL. Failures are classified for the
 * caller: the hosts refused the upload token (ask for a new media_conn),
 * no host took it (try later), or our side failed. */
#ifndef WAPI_MEDIA_UPLOAD_H
#define WAPI_MEDIA_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "wa/wa_media_cipher.h"

enum media_upload_outcome {
    MEDIA_UPLOAD_OK,
    MEDIA_UPLOAD_AUTH,    /* 401/403: the media_conn auth is no longer good */
    MEDIA_UPLOAD_NETWORK, /* no host took it: try again later */
    MEDIA_UPLOAD_LOCAL,   /* our side failed (the file, the disk, memory) */
};

#define MEDIA_UPLOAD_PATH_MAX 1024

struct media_upload_result {
    enum media_upload_outcome outcome;
    const char *error; /* when not OK */
    long status;       /* the last HTTP status, 0 when none */
    uint8_t media_key[WA_MEDIA_KEY_LEN];
    struct wa_media_sums sums;
    char url[MEDIA_UPLOAD_PATH_MAX], direct_path[MEDIA_UPLOAD_PATH_MAX];
};

struct media_upload_req {
    int fd; /* the plaintext, read from offset 0 with pread; the caller's, open until done */
    enum wa_media_kind kind;
    const char *const *hosts; /* tried in order */
    int nhosts;
    const char *auth;   /* the media_conn auth */
    char proxy[512];    /* whatsapp.proxy, or "" */
    int tmp_dirfd;      /* where the encrypted file is made (the store's temp directory) */
    uint64_t max_bytes; /* of the plaintext; 0: no limit */
    long timeout_ms;    /* per host; 0: the client's default */
    void (*done)(void *arg, const struct media_upload_result *r); /* once, from the loop */
    void *arg;
};

struct media_upload;
/* Starts; NULL when it cannot (done is then not called). The request is
 * copied. http_client_init() and wa_offload_init() must have run. */
struct media_upload *media_upload_start(const struct media_upload_req *rq);
/* Stops one in flight: done is not called; the temporary file goes. */
void media_upload_cancel(struct media_upload *u);

/* The host's answer {"url": ..., "direct_path": ...}: 0, or -1 when it is
 * not JSON, lacks either, or they do not fit or are not plain URL text. */
int media_upload_parse_answer(const char *body, size_t len, char url[MEDIA_UPLOAD_PATH_MAX],
                              char direct_path[MEDIA_UPLOAD_PATH_MAX]);

#endif
