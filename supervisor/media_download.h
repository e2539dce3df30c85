/* The download queue of received media: attachments stored with their
 * message (state pending) are fetched one at a time from the media hosts
 * (media_fetch.c), verified, published into the media store (media.c) and
 * their row marked stored, with a message.media_stored event, in one
 * transaction. A file the hosts no longer have (403/404/410) is asked of
 * our phone again (a media retry request); its answer names a new path, or
 * says it cannot. What cannot be had ends failed or expired, with
 * message.media_failed and the reason. The queue is PostgreSQL's
 * (wa_message_media), so a crash mid-download only means it starts again.
 * Which kinds are downloaded unasked, and up to what size, is the policy
 * (media.auto_download, media.max_download_bytes) written at start. */
#ifndef WAPI_MEDIA_DOWNLOAD_H
#define WAPI_MEDIA_DOWNLOAD_H

#include <event2/event.h>
#include <stdint.h>

#include "worker_table.h"

struct wa_client;
/* The session's client (media_conn is asked on its connection), and the
 * loop for the safety poll. */
void media_download_init(struct event_base *base, struct wa_client *c);
/* Something may be waiting (a batch with media committed, the connection
 * came up). */
void media_download_kick(void);
/* IPC_DOWNLOAD_KICK from a worker. */
int media_download_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status,
                            struct sbuf *body);
/* The schema is there: writes the download policy from the configuration. */
void media_download_on_migrated(void);
struct wa_mediaretry_note;
/* Our phone's answer to a media retry request (wa_receive_events). */
void media_download_answer(void *arg, const struct wa_mediaretry_note *note);

#endif
