/* POST /api/messages with media {url}: the supervisor fetches the URL
 * (the webhook target rules: no loopback, private or link-local address,
 * redirects included, unless webhooks.allow_private; at most 5 redirects;
 * a size limit of media.max_upload_bytes; a timeout) into an unlinked temp
 * file in the store and publishes it like an upload; the worker gets the
 * new media id, or an error naming media.url. */
#ifndef WAPI_MEDIA_URLFETCH_H
#define WAPI_MEDIA_URLFETCH_H

/* Registers the IPC_MEDIA_FETCH handler. After media_init. */
void media_urlfetch_init(void);

#endif
