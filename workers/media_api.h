/* What the /api/media handlers (media_api.c, media_serve.c) share: the key
 * of signed links, asked of the supervisor once and kept, and the
 * configuration in force. */
#ifndef WAPI_MEDIA_API_H
#define WAPI_MEDIA_API_H
#include <h2o.h>
#include <stdint.h>

#include "common/config.h"
#include "common/ipc.h"
#include "http.h"

#define MEDIA_KEY_IPC_MS 3000

extern const struct wapi_config *media_cfg;

/* The key when this worker has it, else NULL. */
const uint8_t *media_key(void);
/* Keeps the key from the supervisor's answer to IPC_MEDIA_KEY: 0, or -1
 * after answering rq (503: no answer, or the supervisor has no key yet). */
int media_key_take(struct rq *rq, const struct ipc_msg *m);
/* The supervisor's answer to IPC_MEDIA_FETCH (a descriptor passed along is
 * closed): 1 with the published file's id in id (cap bytes), 0 when it
 * answered otherwise (its status and JSON body in *status, *body, *len),
 * -1 when it did not answer or its 201 is not understood. */
int media_fetch_reply(const struct ipc_msg *m, char *id, size_t cap, uint32_t *status, const uint8_t **body,
                      uint32_t *len);
/* The {id} of /api/media/{id}[/…]; NULL after answering 404. */
char *media_id_param(struct rq *rq);

#endif
