/* The attachment of an outgoing media message, made ready for the stanza:
 * read from the message's wa_message_media row; when it was not uploaded
 * yet, a fresh upload of the same file for the same kind (made within the
 * reuse window) is taken over, else the file is encrypted and uploaded
 * (media_upload.c), with a thumbnail (images) or waveform (voice notes).
 * The key, sums and link are committed to the row before the caller gets
 * them, so a resend after a crash is byte-identical. One preparation at a
 * time: the next message of the same file finds the first one's upload. */
#ifndef WAPI_MEDIA_SEND_H
#define WAPI_MEDIA_SEND_H

#include "wa/wa_message.h"

struct wa_client;
/* The session's client (media_conn is asked on its connection). */
void media_send_init(struct wa_client *c);

/* m: the attachment, valid during the call (NULL on failure); permanent:
 * the message can never be sent (the file is gone), else a failure is
 * worth retrying later. */
typedef void (*media_send_cb)(void *arg, const char *id, const struct wa_msg_media *m, int permanent,
                              const char *err);
/* Starts; cb runs once from the loop. -1 (cb will not run) when one is
 * already under way or out of memory. */
int media_send_prepare(const char *id, media_send_cb cb, void *arg);
/* The attachment as committed, for a resend (a retry receipt): cb gets it,
 * or NULL when it was never uploaded. Any number at once. -1 on OOM. */
int media_send_load(const char *id, media_send_cb cb, void *arg);

#endif
