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

/* A mediaretry notification as it arrived, copied out of its stanza so the
 * application can look the media key up before opening it. */
#define WA_MEDIARETRY_MAX_SEALED 4096 /* an answer is a path and an id: anything longer is not one */
struct wa_mediaretry_note {
    char id[257];          /* the message */
    char chat[128];        /* <rmr jid> */
    char participant[128]; /* <rmr participant>, "" when none */
    int from_me;           /* <rmr from_me> */
    int phone_error;       /* <error code> instead of an answer: the code (non-zero), else 0 */
    uint8_t iv[12];
    uint8_t sealed[WA_MEDIARETRY_MAX_SEALED];
    size_t nsealed;
};

/* The id the notification is about (to find the media key), or NULL when
 * n is no mediaretry notification. Borrowed from n. */
const char *wa_mediaretry_id(const wa_node *n);
/* Copies n into out: 0, or -1 with err when it is no well-formed mediaretry
 * notification (no id, no <rmr jid>, neither <error> nor <encrypt>). */
int wa_mediaretry_parse(const wa_node *n, struct wa_mediaretry_note *out, char *err, size_t errlen);
/* Opens a parsed notification with the message's media key: 0 with out
 * filled, -1 with err (it does not decrypt under this key and id, or the
 * answer is about another message, or a success names no usable path). */
int wa_mediaretry_decrypt(const struct wa_mediaretry_note *note, const uint8_t media_key[32],
                          struct wa_mediaretry_answer *out, char *err, size_t errlen);
/* wa_mediaretry_parse then wa_mediaretry_decrypt. */
int wa_mediaretry_open(const wa_node *n, const uint8_t media_key[32], struct wa_mediaretry_answer *out,
                       char *err, size_t errlen);

#endif
