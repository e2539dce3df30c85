/* Media the CDN no longer has (a 403/404/410 on download) is asked for again
 * from our phone, as WhatsApp Web does: a <receipt type="server-error"> to
 * our own account carrying the message id, AES-GCM-encrypted under
 * HKDF(media key, "WhatsApp Media Retry Notification") with the id as
 * associated data; the phone uploads the file again and answers with a
 * <notification type="mediaretry"> holding the new direct path, encrypted
 * the same way (or an <error code>: 2 means the phone no longer has it). */
#ifndef WAPI_WA_MEDIARETRY_H
#define WAPI_WA_MEDIARETRY_H

#include <stddef.h>
#include <stdint.h>

#include "wa_binary.h"

/* The receipt. own_jid: our account without device ("user@s.whatsapp.net");
 * chat_jid: the message's chat; participant: its sender in a group, else
 * NULL. NULL on a bad argument or OOM. */
wa_node *wa_mediaretry_request(wa_arena *a, const char *msg_id, const char *own_jid, const char *chat_jid,
                               int from_me, const char *participant, const uint8_t media_key[32]);

enum wa_mediaretry_result {
    WA_MR_GENERAL_ERROR = 0,
    WA_MR_SUCCESS = 1,
    WA_MR_NOT_FOUND = 2,
    WA_MR_DECRYPTION_ERROR = 3,
    WA_MR_PHONE_ERROR = -1, /* an <error code> instead of an answer; code in phone_error */
};

struct wa_mediaretry_answer {
    int result;             /* enum wa_mediaretry_result */
    int phone_error;        /* WA_MR_PHONE_ERROR: the code (2: not on the phone any more) */
    char direct_path[2048]; /* WA_MR_SUCCESS: where to download it now */
};

/* The id the notification is about (to find the media key), or NULL when
 * n is no mediaretry notification. Borrowed from n. */
const char *wa_mediaretry_id(const wa_node *n);
/* Opens the notification with the message's media key: 0 with out filled,
 * -1 with err (malformed, or it does not decrypt under this key and id, or
 * the answer is about another message). */
int wa_mediaretry_open(const wa_node *n, const uint8_t media_key[32], struct wa_mediaretry_answer *out,
                       char *err, size_t errlen);

#endif
