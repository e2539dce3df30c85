/* The download queue of received media: attachments stored with their
 * message (state pending) are fetched one at a time from the media hosts
 * (media_fetch.c), verified, published into the media store (media.c) and
 * their row marked stored, with a message.media_stored event, in one
 * transaction. What cannot be had ends failed or expired, with
 * message.media_failed and the reason. The queue is PostgreSQL's
 * (wa_message_media), so a crash mid-download only means it starts again. */
#ifndef WAPI_MEDIA_DOWNLOAD_H
#define WAPI_MEDIA_DOWNLOAD_H

#include <event2/event.h>

struct wa_client;
/* The session's client (media_conn is asked on its connection), and the
 * loop for the safety poll. */
void media_download_init(struct event_base *base, struct wa_client *c);
/* Something may be waiting (a batch with media committed, the connection
 * came up). */
void media_download_kick(void);

#endif
