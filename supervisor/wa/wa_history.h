/* History sync, protocol only: what our phone's historySyncNotification
 * says to download (or carries inline), and a streaming decoder of the
 * HistorySync blob. The blob (after media decryption with WA_MEDIA_HISTORY)
 * is a zlib stream of a HistorySync protobuf that may inflate to hundreds
 * of megabytes, so the decoder takes the compressed bytes in pieces of any
 * size, inflates them a window at a time and reads the HistorySync's top
 * level itself: each conversation, push name and phone number → LID mapping
 * is decoded alone, handed to a callback and freed. Memory is bounded by
 * the largest single entry (limits.max_field), never by the blob.
 *
 * Every input is untrusted: every length is checked, and a failure is one
 * of the WA_HIST_* codes, sticky for the rest of the decoder's life. An
 * entry is delivered once all of its bytes are in, but the blob as a whole
 * is only good once wa_history_decoder_finish returns WA_HIST_OK (and the
 * media MAC has verified): the caller imports in one transaction and
 * commits only then. No I/O, no database. */
#ifndef WAPI_WA_HISTORY_H
#define WAPI_WA_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "wa_media_cipher.h"

enum {
    WA_HIST_OK = 0,
    WA_HIST_MALFORMED = -1, /* not a HistorySync, or an entry protobuf-c refuses */
    WA_HIST_TOO_LARGE = -2, /* inflates past max_inflated, or one entry past max_field */
    WA_HIST_TRUNCATED = -3, /* the input ended inside the zlib stream or an entry */
    WA_HIST_ZLIB = -4,      /* not a zlib stream, a corrupt one, or bytes after its end */
    WA_HIST_NOMEM = -5,
    WA_HIST_ABORTED = -6, /* a callback returned non-zero */
};
/* "malformed", "too_large", ... for logs and metrics. */
const char *wa_hist_code(int rc);

/* HistorySync.syncType (also the notification's). */
enum wa_hist_type {
    WA_HIST_INITIAL_BOOTSTRAP = 0,
    WA_HIST_INITIAL_STATUS_V3 = 1,
    WA_HIST_FULL = 2,
    WA_HIST_RECENT = 3,
    WA_HIST_PUSH_NAME = 4,
    WA_HIST_NON_BLOCKING_DATA = 5,
    WA_HIST_ON_DEMAND = 6,
};
/* "initial_bootstrap", "recent", ...; NULL when unknown. */
const char *wa_hist_type_name(int type);

/* ---- the notification ---- */

#define WA_HIST_INLINE_MAX (16u << 20) /* an inline payload larger than this is refused */

struct wa_hist_notif {
    uint8_t media_key[WA_MEDIA_KEY_LEN], file_sha256[32], file_enc_sha256[32];
    int has_media_key, has_file_sha256, has_file_enc_sha256; /* present and 32 bytes */
    uint64_t file_length;
    char *direct_path; /* malloc'd; NULL when absent */
    int sync_type;     /* enum wa_hist_type; -1 when absent */
    uint32_t chunk_order, progress;
    int64_t oldest_msg_ts; /* oldestMsgInChunkTimestampSec, 0 when absent */
    char *original_message_id, *peer_data_request_session_id; /* malloc'd or NULL */
    uint8_t *inline_payload; /* malloc'd zlib stream of a HistorySync, or NULL */
    size_t inline_len;
};

/* Reads an unpadded Message (wrappers such as deviceSentMessage not
 * looked into: our phone sends the protocolMessage bare). 1 and out filled
 * when it is a protocolMessage HISTORY_SYNC_NOTIFICATION that names a blob
 * to download (media key, both sums and a direct path) or carries one
 * inline; 0 when it is no history sync notification; -1 when it is one
 * but unusable (no Message, sums of the wrong size, an inline payload over
 * WA_HIST_INLINE_MAX, out of memory). out is zeroed first and, on 1 only,
 * needs wa_hist_notif_free. */
int wa_hist_notif_parse(const uint8_t *msg, size_t n, struct wa_hist_notif *out);
void wa_hist_notif_free(struct wa_hist_notif *nt);
/* Whether the decrypted blob's sums (wa_media_final) are the ones the
 * notification announced (constant-time compares; the length too). */
int wa_hist_notif_sums_match(const struct wa_hist_notif *nt, const struct wa_media_sums *sums);

/* ---- the decoder ---- */

struct wa_hist_limits {
    uint64_t max_inflated; /* 0: WA_HIST_DEFAULT_MAX_INFLATED */
    size_t max_field;      /* one entry (a conversation with all its messages); 0: the default */
    int raw;               /* the input is the inflated HistorySync already (tests, fuzzing) */
};
#define WA_HIST_DEFAULT_MAX_INFLATED (512ull << 20)
#define WA_HIST_DEFAULT_MAX_FIELD ((size_t)64 << 20)

/* One message of a conversation (or a status). Strings are NULL when
 * absent and live until the callback returns, like the message bytes. */
struct wa_hist_msg {
    const char *id, *remote_jid, *key_participant; /* the MessageKey */
    int from_me;
    const char *participant; /* WebMessageInfo.participant: a group message's author */
    const char *push_name;
    uint64_t timestamp; /* seconds, 0 when absent */
    int status;         /* ERROR 0 .. PLAYED 5; -1 when absent */
    int stub_type;      /* messageStubType (a system message), 0 when none */
    int starred;
    uint64_t order_id;      /* HistorySyncMsg.msgOrderId */
    const uint8_t *message; /* a serialized Message for wa_msg_parse; NULL when absent */
    size_t message_len;
};

struct wa_hist_conv {
    const char *id; /* never NULL: an entry without one is skipped and counted */
    const char *name, *display_name, *username, *new_jid, *old_jid, *pn_jid, *lid_jid;
    uint64_t last_msg_timestamp, conversation_timestamp, mute_end_time;
    uint32_t unread_count, pinned, ephemeral_expiration;
    int archived, marked_unread, read_only, end_of_history;
    const struct wa_hist_msg *msgs; /* in the blob's order */
    size_t nmsgs;
};

/* Each callback may be NULL; a non-zero return stops the decoder with
 * WA_HIST_ABORTED. info reports syncType (WA_HIST_INFO_TYPE), chunkOrder
 * and progress as they come. */
enum wa_hist_info { WA_HIST_INFO_TYPE, WA_HIST_INFO_CHUNK_ORDER, WA_HIST_INFO_PROGRESS };
struct wa_hist_callbacks {
    int (*info)(void *arg, enum wa_hist_info what, uint64_t value);
    int (*conversation)(void *arg, const struct wa_hist_conv *c);
    int (*status)(void *arg, const struct wa_hist_msg *m); /* statusV3Messages */
    int (*pushname)(void *arg, const char *jid, const char *name);
    int (*lid_mapping)(void *arg, const char *pn_jid, const char *lid_jid);
};

/* What a decoder has seen so far. */
struct wa_hist_stats {
    int sync_type; /* -1 until seen */
    uint32_t chunk_order, progress;
    uint64_t inflated; /* bytes of HistorySync */
    size_t conversations, messages, statuses, pushnames, lid_mappings;
    size_t skipped; /* entries without the fields that make them usable */
};

struct wa_hist_decoder;
/* NULL when out of memory. limits may be NULL (the defaults). */
struct wa_hist_decoder *wa_history_decoder_new(const struct wa_hist_limits *limits,
                                               const struct wa_hist_callbacks *cb, void *arg);
/* Feeds n bytes of the compressed blob (raw: of the HistorySync). WA_HIST_OK
 * or the decoder's error. */
int wa_history_decoder_feed(struct wa_hist_decoder *d, const uint8_t *p, size_t n);
/* Ends the input: WA_HIST_OK when the zlib stream and the last entry were
 * complete, else the error. */
int wa_history_decoder_finish(struct wa_hist_decoder *d);
void wa_history_decoder_stats(const struct wa_hist_decoder *d, struct wa_hist_stats *out);
void wa_history_decoder_free(struct wa_hist_decoder *d);

#endif
