/* The end-to-end layer of a WhatsApp message, without any I/O: padding of
 * the v2 plaintext, Signal encryption and decryption of one device's copy
 * (pkmsg / msg) through a store context, and the Message protobuf as wapi
 * understands it (text, reply, reaction, edit, revoke, deviceSentMessage,
 * media, anything else "unsupported" with its field name). */
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
    WA_MSG_NONE,      /* nothing to store (a bare key distribution, protocol housekeeping) */
    WA_MSG_MEDIA,     /* an image, video, audio or voice note, document or sticker: media says which */
    WA_MSG_LOCATION,  /* a place, or a live location's update: location */
    WA_MSG_CONTACTS,  /* one or more contact cards: contacts */
    WA_MSG_PEER_DATA, /* a peer data operation's answer (from our own phone): peer_data */
    /* Never parsed: what the receive path stores for a message it could not
     * decrypt for good (a placeholder, filled when the phone sends it again). */
    WA_MSG_UNDECRYPTABLE,
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
    /* WA_MSG_PEER_DATA: the serialized peerDataOperationRequestResponseMessage
     * (wa_peerdata.h reads it), malloc'd */
    uint8_t *peer_data;
    size_t peer_data_len;
    int view_once; /* it came inside a view-once wrapper */
    int forwarded; /* contextInfo.isForwarded */
};

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
/* msg (a serialized Message) inside deviceSentMessage{dest}: the copy for our
 * own other devices. *out malloc'd. 0 or -1. */
int wa_msg_wrap_dsm(const uint8_t *msg, size_t n, const char *dest, uint8_t **out, size_t *outlen);
/* How a serialized Message goes on the wire: <message type> ("text",
 * "media", "reaction"), its edit attribute ("1" an edit, "7" our deletion or
 * a reaction taken back, "8" an admin's deletion; else NULL), and on each
 * <enc> the mediatype (vcard, contact_array, image, ...; else NULL) and
 * decrypt-fail="hide" (reactions, edits, deletions: nothing to show when one
 * cannot be read). */
struct wa_msg_stanza {
    const char *type, *edit, *mediatype;
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
