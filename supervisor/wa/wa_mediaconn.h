/* Where media goes up and comes down: the server's answer to
 * <iq xmlns="w:m" type="set"><media_conn/></iq> (an upload token and the
 * media hosts, valid for a TTL), kept while valid and asked again on expiry
 * or when a host refuses the token; and the upload and download URLs built
 * from it. */
#ifndef WAPI_WA_MEDIACONN_H
#define WAPI_WA_MEDIACONN_H

#include <stddef.h>
#include <stdint.h>

#include "wa_binary.h"
#include "wa_media_cipher.h"

#define WA_MEDIACONN_MAX_HOSTS 8
#define WA_MEDIACONN_AUTH_MAX 512
#define WA_MEDIACONN_HOST_MAX 256

struct wa_mediaconn {
    char auth[WA_MEDIACONN_AUTH_MAX];
    char hosts[WA_MEDIACONN_MAX_HOSTS][WA_MEDIACONN_HOST_MAX]; /* in the server's order: try them so */
    int nhosts;
    int64_t fetched_ms, expires_ms; /* expires: fetched + ttl (auth_ttl when shorter) */
};

struct wa_client;

/* The request (id and to are added by wa_client_iq); NULL on OOM. */
wa_node *wa_mediaconn_request(wa_arena *a);
/* Reads an answer; -1 with err when it is an error or malformed (no auth,
 * no host, a host or auth with characters a URL cannot carry, a TTL that is
 * not a positive number). */
int wa_mediaconn_parse(const wa_node *answer, int64_t now_ms, struct wa_mediaconn *out, char *err,
                       size_t errlen);

/* The upload URL: https://HOST/mms/TYPE/TOKEN?auth=AUTH&token=TOKEN with
 * TOKEN = base64url(fileEncSha256) unpadded and AUTH percent-encoded; TYPE
 * by the kind of keys (stickers go up as images, voice notes as audio).
 * -1 when it does not fit or the kind is unknown. */
int wa_media_upload_url(char *out, size_t cap, const char *host, enum wa_media_kind kind,
                        const uint8_t file_enc_sha256[32], const char *auth);
/* https://HOST + direct_path, for downloads; -1 when direct_path does not
 * start with '/' or has characters a URL cannot carry, or does not fit. */
int wa_media_download_url(char *out, size_t cap, const char *host, const char *direct_path);

/* The cached media_conn, or one asked for: cb runs once, at once when a
 * valid one is cached, else when the server answers (mc NULL and err set
 * when it failed or the connection dropped). Several callers asking at once
 * share one query. -1 (cb will not run) when not connected or OOM. */
typedef void (*wa_mediaconn_cb)(void *arg, const struct wa_mediaconn *mc, const char *err);
int wa_mediaconn_get(struct wa_client *c, int64_t now_ms, wa_mediaconn_cb cb, void *arg);
/* A host refused the token (401/403): the next get asks the server again. */
void wa_mediaconn_invalidate(void);
/* Drops a waiter that no longer wants its answer (its request was cancelled). */
void wa_mediaconn_forget(wa_mediaconn_cb cb, void *arg);

#endif
