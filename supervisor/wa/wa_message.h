/* The end-to-end layer of a WhatsApp message, without any I/O: padding of
 * the v2 plaintext, Signal encryption and decryption of one device's copy
 * (pkmsg / msg) through a store context, and the Message protobuf as wapi
 * understands it (text, reply, reaction, edit, revoke, deviceSentMessage,
 * media, places, contact cards, polls and their sealed votes, anything else
 * "unsupported" with its field name). */
#ifndef WAPI_WA_MESSAGE_H
#define WAPI_WA_MESSAGE_H
#include <signal/signal_protocol.h>
#include <stddef.h>
#include <stdint.h>

#include "wa_media_cipher.h"

/* ---- padding (v2): N random-length bytes of value N, 1 <= N <= 15 ---- */
/* *out malloc'd. 0 or -1 (OOM). */
int wa_msg_pad(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen);
/* Length without the padding, or -1 when the padding is malformed. */
long wa_msg_unpad(const uint8_t *in, size_t n);

/* ---- Signal ---- */
enum { WA_ENC_MSG = 0, WA_ENC_PKMSG = 1 };

struct wa_bundle {
    uint32_t registration_id;
    uint8_t identity[32];
    uint32_t spk_id;
    uint8_t spk[32], spk_sig[64];
    int has_prekey;
    uint32_t prekey_id;
    uint8_t prekey[32];
};

/* The Signal address name of a JID user on a server: "user" on
 * s.whatsapp.net, "user_1" on lid (as WhatsApp clients do). */
void wa_msg_address_name(const char *user, const char *server, char *out, size_t cap);
/* Starts a session from a prekey bundle (signature checked). SG_* code. */
int wa_msg_session_from_bundle(signal_protocol_store_context *sc, signal_context *g, const char *name,
                               int32_t device, const struct wa_bundle *b);
/* Encrypts plain for name.device (a session must exist). *type is WA_ENC_*.
 * *out malloc'd. SG_* code. */
int wa_msg_encrypt(signal_protocol_store_context *sc, signal_context *g, const char *name, int32_t device,
                   const uint8_t *plain, size_t n, int *type, uint8_t **out, size_t *outlen);
/* Decrypts one <enc> (type WA_ENC_*) from name.device. *out malloc'd (still
 * padded). SG_* code: SG_ERR_DUPLICATE_MESSAGE means it was decrypted before. */
int wa_msg_decrypt(signal_protocol_store_context *sc, signal_context *g, const char *name, int32_t device,
                   int type, const uint8_t *ct, size_t n, uint8_t **out, size_t *outlen);

/* ---- content ---- */
enum wa_msg_kind {
    WA_MSG_TEXT,
    WA_MSG_REACTION,
    WA_MSG_EDIT,
    WA_MSG_REVOKE,
    WA_MSG_UNSUPPORTED,
    WA_MSG_NONE,          /* nothing to store (a bare key distribution, protocol housekeeping) */
    WA_MSG_MEDIA,         /* an image, video, audio or voice note, document or sticker: media says which */
    WA_MSG_LOCATION,      /* a place, or a live location's update: location */
    WA_MSG_CONTACTS,      /* one or more contact cards: contacts */
    WA_MSG_POLL,          /* a poll's creation: poll */
    WA_MSG_POLL_VOTE,     /* a vote on a poll, still encrypted: vote */
    WA_MSG_DISAPPEARING,  /* a chat's disappearing-messages timer set: expiration (0 = off) */
    WA_MSG_PIN,           /* target pinned (on, for on_seconds) or unpinned in its chat */
    WA_MSG_KEEP,          /* target kept in its disappearing chat (on) or no longer */
    WA_MSG_APPSTATE_KEYS, /* app-state sync keys shared by our phone: raw (an AppStateSyncKeyShare) */
    WA_MSG_PEER_DATA,     /* a peer data operation's answer (from our own phone): peer_data */
    WA_MSG_HISTORY_SYNC,  /* our phone's history sync notification: raw (for wa_hist_notif_parse) */
    /* Never parsed: what the receive path stores for a message it could not
     * decrypt for good (a placeholder, filled when the phone sends it again). */
    WA_MSG_UNDECRYPTABLE,
    /* Never parsed either: a message not decrypted whose sender a retry
     * receipt asks to send it again (remembered with the ack until it comes,
     * or long enough to become a placeholder), and a resend that decrypted
     * to nothing to store (its wait is over). */
    WA_MSG_RETRY_WAIT,
    WA_MSG_RETRY_DONE,
};

#define WA_MSG_POLL_MIN_OPTIONS 2
#define WA_MSG_POLL_MAX_OPTIONS 12
#define WA_MSG_POLL_SECRET_LEN 32

/* A poll: its question, options (distinct names), whether any number of
 * them may be chosen (selectableOptionsCount 0) or one, and the secret its
 * votes are encrypted with (messageContextInfo.messageSecret). Strings
 * malloc'd. */
struct wa_msg_poll {
    char *question;
    char **options;
    size_t noptions;
    int multiple;
    uint8_t secret[WA_MSG_POLL_SECRET_LEN];
    int has_secret;
};

/* A vote as it arrives: the poll it is about (its key) and the encrypted
 * PollVoteMessage. Strings and payload malloc'd. */
struct wa_msg_poll_vote {
    char *poll_id, *poll_chat, *poll_participant;
    int poll_from_me;
    uint8_t *payload; /* ciphertext with its 16-byte tag */
    size_t payload_len;
    uint8_t iv[12];
    int64_t ts_ms; /* senderTimestampMs, 0 when not said */
};

/* A place (WGS 84 degrees). Strings malloc'd, NULL when not given. */
struct wa_msg_location {
    double latitude, longitude;
    char *name, *address, *url, *comment;
    int live;            /* a live location or one of its updates */
    uint32_t accuracy_m; /* 0: not said */
    int64_t sequence;    /* a live location's update number */
};

/* A contact card: vCard text and the name to show. Strings malloc'd. */
struct wa_msg_contact {
    char *display_name, *vcard;
};

#define WA_MSG_MAX_CONTACTS 64

/* What wapi calls the kinds of media (the API's "kind"). */
enum wa_media_type {
    WA_MT_IMAGE,
    WA_MT_VIDEO,
    WA_MT_AUDIO,
    WA_MT_VOICE,
    WA_MT_DOCUMENT,
    WA_MT_STICKER,
    WA_MT_COUNT
};
/* "image", "video", "audio", "voice", "document", "sticker"; NULL when unknown. */
const char *wa_media_type_name(int type);
/* The type of such a name, or -1. */
int wa_media_type_parse(const char *name);
/* Whose keys a type's file is encrypted with (stickers as images, voice
 * notes as audio). */
enum wa_media_kind wa_media_type_keys(int type);

#define WA_MSG_WAVEFORM_MAX 64

/* One media message's attachment. Strings and the thumbnail are malloc'd
 * (wa_msg_content_free frees them); absent ones are NULL / 0. */
struct wa_msg_media {
    int type; /* enum wa_media_type */
    char *url, *direct_path, *mimetype, *caption, *file_name;
    uint8_t media_key[32], file_sha256[32], file_enc_sha256[32];
    int has_media_key, has_file_sha256, has_file_enc_sha256; /* present and 32 bytes */
    uint64_t file_length;
    uint32_t width, height, seconds, page_count;
    int64_t media_key_ts;
    int animated, gif;  /* sticker isAnimated, video gifPlayback */
    uint8_t *thumbnail; /* JPEG (PNG for stickers) */
    size_t thumbnail_len;
    uint8_t waveform[WA_MSG_WAVEFORM_MAX];
    size_t waveform_len;
};

struct wa_msg_content {
    enum wa_msg_kind kind;
    char *text;     /* text, new text of an edit, reaction emoji ("" = removed) */
    char *reply_to; /* quoted stanza id */
    char *target;   /* message a reaction/edit/revoke is about */
    char *subtype;  /* Message field name (conversation, extendedTextMessage, imageMessage, ...) */
    char *dsm_dest; /* deviceSentMessage: the chat our other device sent to */
    struct wa_msg_media *media; /* WA_MSG_MEDIA: malloc'd */
    /* contextInfo.mentionedJid: the JIDs a group message mentions */
    char **mentions;
    size_t nmentions;
    /* senderKeyDistributionMessage (a pairwise copy in a group): the
     * sender's key for group skdm_group; it may ride with content or alone
     * (kind WA_MSG_NONE). */
    char *skdm_group;
    uint8_t *skdm;
    size_t skdm_len;
    struct wa_msg_location *location; /* WA_MSG_LOCATION: malloc'd */
    struct wa_msg_contact *contacts;  /* WA_MSG_CONTACTS: ncontacts of them, malloc'd */
    size_t ncontacts;
    struct wa_msg_poll *poll;      /* WA_MSG_POLL: malloc'd */
    struct wa_msg_poll_vote *vote; /* WA_MSG_POLL_VOTE: malloc'd */
    int view_once;                 /* it came inside a view-once wrapper, or its media says viewOnce */
    int forwarded;                 /* contextInfo.isForwarded */
    /* contextInfo.expiration (the chat's timer the message was sent with,
     * seconds), or WA_MSG_DISAPPEARING's new timer; has_expiration when told. */
    int has_expiration;
    uint32_t expiration;
    /* WA_MSG_PIN / WA_MSG_KEEP: pinned or kept (1), or undone (0); how long
     * a pin holds (seconds, 0 when not said). */
    int on;
    uint32_t on_seconds;
    uint8_t *raw; /* APPSTATE_KEYS: the share's bytes; HISTORY_SYNC: a Message; malloc'd */
    size_t raw_len;
    /* WA_MSG_PEER_DATA: the serialized peerDataOperationRequestResponseMessage
     * (wa_peerdata.h reads it), malloc'd */
    uint8_t *peer_data;
    size_t peer_data_len;
};

/* A timer larger than this is no timer (what the database and the API keep). */
#define WA_MSG_EXPIRATION_MAX 0x7fffffffu
#define WA_MSG_APPSTATE_SHARE_MAX 65536 /* a share holds a few 32-byte keys; far above that is no share */

/* A deep copy (NULL on OOM), and its release (NULL is a no-op). */
struct wa_msg_media *wa_msg_media_dup(const struct wa_msg_media *m);
void wa_msg_media_free(struct wa_msg_media *m);
/* The <enc mediatype> of an attachment: image, video (gif), audio, ptt,
 * document, sticker. */
const char *wa_msg_media_enc_type(const struct wa_msg_media *m);

/* Decodes an unpadded Message. 0, or -1 when it is no Message. */
int wa_msg_parse(const uint8_t *p, size_t n, struct wa_msg_content *out);
void wa_msg_content_free(struct wa_msg_content *c);
/* A text Message (extendedTextMessage with context when reply_to or
 * mentions are set), wrapped in deviceSentMessage{dsm_dest} when dsm_dest
 * is set. mentions: JIDs, newline-separated (NULL or "": none). *out malloc'd. */
int wa_msg_build_text(const char *text, const char *reply_to, const char *reply_participant,
                      const char *mentions, const char *dsm_dest, uint8_t **out, size_t *outlen);
/* A locationMessage (liveLocationMessage when l->live), or a contactMessage
 * for one card and a contactsArrayMessage (display_name: its title, NULL for
 * "N contacts") for more, with the reply context as for text. *out malloc'd.
 * 0 or -1. */
int wa_msg_build_location(const struct wa_msg_location *l, const char *reply_to,
                          const char *reply_participant, uint8_t **out, size_t *outlen);
int wa_msg_build_contacts(const struct wa_msg_contact *c, size_t n, const char *display_name,
                          const char *reply_to, const char *reply_participant, uint8_t **out, size_t *outlen);
/* msg (a serialized Message) with its content marked forwarded
 * (contextInfo.isForwarded, forwardingScore score); a plain conversation
 * becomes an extendedTextMessage to carry it. *out malloc'd. 0, or -1 when
 * msg is no Message or has nothing to mark. */
int wa_msg_mark_forwarded(const uint8_t *msg, size_t n, uint32_t score, uint8_t **out, size_t *outlen);
/* What wa_msg_mark sets on a Message's content: forwarded (score > 0), the
 * chat's disappearing timer (contextInfo.expiration, > 0), view once (a photo,
 * video or voice note marked viewOnce and wrapped in viewOnceMessageV2, as
 * WhatsApp clients send it). */
struct wa_msg_marks {
    uint32_t forwarding_score, expiration;
    int view_once;
};
/* msg with the marks applied (a conversation becomes an extendedTextMessage
 * to carry a context). *out malloc'd. 0, or -1 when msg is no Message, has
 * no content that takes a context, or is no photo, video or voice note for
 * view once. */
int wa_msg_mark(const uint8_t *msg, size_t n, const struct wa_msg_marks *mk, uint8_t **out, size_t *outlen);
/* Our change of a 1:1 chat's disappearing timer (seconds, 0 = off):
 * protocolMessage EPHEMERAL_SETTING inside ephemeralMessage, as WhatsApp
 * clients send it. *out malloc'd. 0 or -1. */
int wa_msg_build_disappearing(uint32_t seconds, int64_t ts_s, uint8_t **out, size_t *outlen);
/* msg (a serialized Message) inside deviceSentMessage{dest}: the copy for our
 * own other devices. *out malloc'd. 0 or -1. */
int wa_msg_wrap_dsm(const uint8_t *msg, size_t n, const char *dest, uint8_t **out, size_t *outlen);
/* How a serialized Message goes on the wire: <message type> ("text",
 * "media", "reaction", "poll"), its edit attribute ("1" an edit, "7" our deletion or
 * a reaction taken back, "8" an admin's deletion; else NULL), and on each
 * <enc> the mediatype (vcard, contact_array, image, ...; else NULL) and
 * decrypt-fail="hide" (reactions, edits, deletions: nothing to show when one
 * cannot be read). */
struct wa_msg_stanza {
    const char *type, *edit, *mediatype;
    const char *polltype; /* "creation" or "vote": a <meta polltype> child; else NULL */
    int hide_on_failure;
};
/* -1 when msg is no Message. */
int wa_msg_stanza_type(const uint8_t *msg, size_t n, struct wa_msg_stanza *st);
/* Our edit of our text message target_id in chat (protocolMessage
 * MESSAGE_EDIT with the new text), and a deletion for everyone of
 * target_id (REVOKE: ours, or as a group admin someone else's, participant
 * naming its author). *out malloc'd. 0 or -1. */
int wa_msg_build_edit(const char *chat, const char *target_id, const char *text, int64_t ts_ms, uint8_t **out,
                      size_t *outlen);
int wa_msg_build_revoke(const char *chat, const char *target_id, int target_from_me, const char *participant,
                        uint8_t **out, size_t *outlen);
/* A reactionMessage: emoji ("" takes ours back) on message target_id in
 * chat, written by us (target_from_me) or by participant (a group member's
 * JID, else NULL). *out malloc'd. 0 or -1. */
int wa_msg_build_reaction(const char *chat, const char *target_id, int target_from_me,
                          const char *participant, const char *emoji, int64_t ts_ms, uint8_t **out,
                          size_t *outlen);
void wa_msg_location_free(struct wa_msg_location *l);
void wa_msg_poll_free(struct wa_msg_poll *p);
void wa_msg_poll_vote_free(struct wa_msg_poll_vote *v);
/* A poll (pollCreationMessage with selectableOptionsCount 0 when multiple,
 * else pollCreationMessageV3 with 1, as WhatsApp's phones send them) with
 * messageContextInfo.messageSecret = p->secret (required). *out malloc'd.
 * 0 or -1. */
int wa_msg_build_poll(const struct wa_msg_poll *p, const char *reply_to, const char *reply_participant,
                      uint8_t **out, size_t *outlen);
/* The key and additional data a vote is sealed with: HKDF-SHA256 (no salt)
 * of the poll's secret with info = poll id ‖ creator ‖ voter ‖ "Poll Vote",
 * 32 bytes; ad = poll id ‖ 0x00 ‖ voter (JIDs as user@server, no device).
 * *ad malloc'd. 0 or -1. */
int wa_msg_poll_vote_key(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *poll_id,
                         const char *creator, const char *voter, uint8_t key[32], uint8_t **ad,
                         size_t *adlen);
/* Opens a vote with that key: the SHA-256 sums of the chosen options'
 * names, n of them (*hashes malloc'd, 32 bytes each; none for a vote
 * withdrawn). 0; -1 when the tag does not match or the plaintext is no
 * PollVoteMessage. */
int wa_msg_poll_vote_open(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *poll_id,
                          const char *creator, const char *voter, const struct wa_msg_poll_vote *v,
                          uint8_t **hashes, size_t *n);
/* A pollUpdateMessage: our vote (the options' names, n of them) on poll_id
 * in chat, written by creator (poll_from_me: by us), sealed for voter with
 * a fresh IV. *out malloc'd. 0 or -1. */
int wa_msg_build_poll_vote(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *chat,
                           const char *poll_id, int poll_from_me, const char *creator, const char *voter,
                           const char *const *options, size_t n, int64_t ts_ms, uint8_t **out,
                           size_t *outlen);
/* The serialized Message msg with a senderKeyDistributionMessage{group,
 * skdm} added. *out malloc'd. */
int wa_msg_append_skdm(const uint8_t *msg, size_t n, const char *group, const uint8_t *skdm, size_t skdm_len,
                       uint8_t **out, size_t *outlen);
/* A media Message of m->type (documentWithCaptionMessage for a document
 * with a caption; audioMessage with ptt for a voice note), with the reply
 * context and the deviceSentMessage wrapper as for text. m->has_media_key,
 * both sums and direct_path are required. *out malloc'd. 0 or -1. */
int wa_msg_build_media(const struct wa_msg_media *m, const char *reply_to, const char *reply_participant,
                       const char *mentions, const char *dsm_dest, uint8_t **out, size_t *outlen);

#endif
