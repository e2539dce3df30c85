/* App-state sync, protocol and crypto only: the mutation keys derived from a
 * sync key our phone shares, the MACs that protect every mutation, patch and
 * snapshot, the decoding of a patch or snapshot into a typed list of actions
 * with the collection's new state (version + LTHash), and the encoding of a
 * patch for a change of our own. No I/O: the caller supplies the sync keys
 * and the index MAC → value MAC map (which may live in a database) through
 * struct wa_as_io, and applies the result in one transaction.
 *
 * Every input is untrusted: each length and field is checked and a failure
 * is one of the WA_AS_* codes below, the state untouched. */
#ifndef WAPI_WA_APPSTATE_H
#define WAPI_WA_APPSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "wa_binary.h"
#include "wa_lthash.h"

#define WA_AS_MAC_LEN 32
#define WA_AS_KEY_ID_MAX 64   /* a key id longer than this is refused */
#define WA_AS_KEY_DATA_MAX 64 /* likewise a sync key's data (32 in practice) */

enum {
    WA_AS_OK = 0,
    WA_AS_MALFORMED = -1,
    WA_AS_MISSING_KEY = -2,
    WA_AS_BAD_INDEX_MAC = -3,
    WA_AS_BAD_VALUE_MAC = -4,
    WA_AS_BAD_PATCH_MAC = -5,
    WA_AS_BAD_SNAPSHOT_MAC = -6,
    WA_AS_LTHASH_MISMATCH = -7,
    WA_AS_INTERNAL = -8, /* out of memory, a crypto or lookup failure: retry later */
};
/* "malformed", "missing_key", "bad_index_mac", ... for logs and metrics. */
const char *wa_as_code(int rc);

/* The five keys of one sync key ("WhatsApp Mutation Keys", HKDF-SHA256 to 160 bytes). */
struct wa_as_keys {
    uint8_t index[32];
    uint8_t value_enc[32];
    uint8_t value_mac[32];
    uint8_t snapshot_mac[32];
    uint8_t patch_mac[32];
};
int wa_as_keys_derive(const uint8_t *key_data, size_t len, struct wa_as_keys *out);

enum { WA_AS_SET = 0, WA_AS_REMOVE = 1 };

/* HMAC-SHA256 of the index JSON under the index key. */
int wa_as_index_mac(const struct wa_as_keys *k, const uint8_t *index, size_t len, uint8_t out[WA_AS_MAC_LEN]);
/* HMAC-SHA512 under the value MAC key of op byte (SET 1, REMOVE 2) ‖ key id ‖
 * encrypted value (IV ‖ ciphertext) ‖ 8-byte big-endian length of op byte ‖
 * key id, truncated to 32 bytes. */
int wa_as_value_mac(const struct wa_as_keys *k, int op, const uint8_t *key_id, size_t key_id_len,
                    const uint8_t *enc, size_t enc_len, uint8_t out[WA_AS_MAC_LEN]);
/* HMAC-SHA256 under the snapshot MAC key of LTHash ‖ 8-byte big-endian version ‖ name. */
int wa_as_snapshot_mac(const struct wa_as_keys *k, const uint8_t hash[WA_LTHASH_LEN], uint64_t version,
                       const char *name, uint8_t out[WA_AS_MAC_LEN]);
/* HMAC-SHA256 under the patch MAC key of snapshot MAC ‖ each value MAC (n of
 * them, 32 bytes each, in order) ‖ 8-byte big-endian version ‖ name. */
int wa_as_patch_mac(const struct wa_as_keys *k, const uint8_t snapshot_mac[WA_AS_MAC_LEN],
                    const uint8_t *value_macs, size_t n, uint64_t version, const char *name,
                    uint8_t out[WA_AS_MAC_LEN]);

/* A collection's state: the version it is at and its LTHash. */
struct wa_as_state {
    uint64_t version;
    uint8_t hash[WA_LTHASH_LEN];
};

struct wa_as_io {
    void *ctx;
    /* The data of the sync key key_id: copies at most *len bytes to
     * key_data, sets *len and returns 0; -1 when we do not hold that key. */
    int (*get_key)(void *ctx, const uint8_t *key_id, size_t key_id_len, uint8_t *key_data, size_t *len);
    /* The value MAC the collection holds for index_mac: 1 and value_mac
     * filled, 0 when none, -1 on failure (then WA_AS_INTERNAL). May be NULL
     * for an empty map. Not called while decoding a snapshot. */
    int (*prev_value_mac)(void *ctx, const uint8_t index_mac[WA_AS_MAC_LEN],
                          uint8_t value_mac[WA_AS_MAC_LEN]);
};

/* What an action is, from the field its value carries (or, for a value with
 * none we know, from the index's first element). */
enum wa_as_kind {
    WA_AS_OTHER = 0, /* kept as a raw row */
    WA_AS_CONTACT,
    WA_AS_PUSH_NAME,
    WA_AS_ARCHIVE,
    WA_AS_PIN,
    WA_AS_MUTE,
    WA_AS_MARK_READ,
    WA_AS_STAR,
    WA_AS_DELETE_FOR_ME,
    WA_AS_CLEAR_CHAT,
    WA_AS_DELETE_CHAT,
    WA_AS_LABEL_EDIT,
    WA_AS_LABEL_ASSOC,
    WA_AS_LOCALE,
};
const char *wa_as_kind_name(enum wa_as_kind kind);

/* One decoded mutation; every pointer owned by the arena given to the decoder. */
struct wa_as_action {
    int op; /* WA_AS_SET or WA_AS_REMOVE */
    uint8_t index_mac[WA_AS_MAC_LEN];
    uint8_t value_mac[WA_AS_MAC_LEN];
    const char *index_json; /* as received, NUL-terminated */
    const char **index;     /* its elements, e.g. {"archive", "123@s.whatsapp.net"} */
    size_t n_index;
    int32_t api_version;  /* SyncActionData.version */
    int64_t timestamp_ms; /* SyncActionValue.timestamp, 0 when absent */
    enum wa_as_kind kind;
    /* archived, pinned, muted, read, starred, labeled, label deleted,
     * delete media, contact saved on the phone's address book */
    int flag;
    int64_t mute_end_ms;    /* MuteAction.muteEndTimestamp */
    int64_t message_ts;     /* DeleteMessageForMeAction.messageTimestamp */
    int64_t range_last_ts;  /* the message range's last message timestamp */
    const char *name;       /* contact full name, push name, label name, locale */
    const char *first_name; /* contact */
    const char *lid_jid;    /* contact */
    const char *pn_jid;     /* contact */
    int32_t color;          /* label */
    const uint8_t *value;   /* SyncActionValue re-encoded (unknown fields kept), for raw rows */
    size_t value_len;
};

/* The outcome of a decode. Apply the actions in order: SET maps index_mac to
 * value_mac, REMOVE deletes index_mac; then store state. */
struct wa_as_result {
    struct wa_as_state state;
    struct wa_as_action *actions;
    size_t n;
    /* On WA_AS_MISSING_KEY: the key id to ask our phone for. */
    uint8_t missing_key_id[WA_AS_KEY_ID_MAX];
    size_t missing_key_id_len;
};

/* An external blob (a snapshot, or the mutations of a large patch) to fetch
 * like media ("md-app-state"); the strings and bytes are arena-owned. */
struct wa_as_blob_ref {
    const uint8_t *media_key;
    size_t media_key_len;
    const char *direct_path;
    uint64_t size;
    const uint8_t *file_sha256, *file_enc_sha256; /* 32 bytes each, or NULL when absent */
};
/* An ExternalBlobReference (the content of a <snapshot> node). */
int wa_as_blob_ref_parse(const uint8_t *buf, size_t len, wa_arena *a, struct wa_as_blob_ref *out);
/* Whether a patch names external mutations: 1 (out filled), 0, or an error code. */
int wa_as_patch_external(const uint8_t *patch, size_t len, wa_arena *a, struct wa_as_blob_ref *out);

/* Decodes the SyncdPatch patch of collection name on top of *state: the
 * patch MAC, each mutation's value and index MAC, and after applying, the
 * LTHash against the patch's snapshot MAC. ext/ext_len: the downloaded
 * SyncdMutations blob of a patch that names one (its mutations follow the
 * patch's own), else NULL/0. A patch without a version is taken as
 * state->version + 1; one not above state->version is malformed. */
int wa_as_decode_patch(const char *name, const struct wa_as_state *state, const uint8_t *patch, size_t len,
                       const uint8_t *ext, size_t ext_len, const struct wa_as_io *io, wa_arena *a,
                       struct wa_as_result *out);
/* Decodes a downloaded SyncdSnapshot: a fresh state at its version, every
 * record a SET, its MAC checked. */
int wa_as_decode_snapshot(const char *name, const uint8_t *snap, size_t len, const struct wa_as_io *io,
                          wa_arena *a, struct wa_as_result *out);

/* A change of our own, to send to the server as a patch: a chat's setting,
 * or our push name. */
struct wa_as_change {
    enum wa_as_kind kind; /* WA_AS_ARCHIVE, WA_AS_PIN, WA_AS_MUTE, WA_AS_MARK_READ or WA_AS_PUSH_NAME */
    const char *jid;      /* the chat; for WA_AS_PUSH_NAME the name */
    int flag;             /* archived / pinned / muted / read */
    int64_t mute_end_ms;  /* WA_AS_MUTE when muted (-1: for ever) */
    int64_t last_msg_ts;  /* the chat's last message (seconds), for archive and read; 0 = none */
    int64_t timestamp_ms; /* when the change was made */
};
/* The collection a change belongs to ("regular_low", "regular_high" or
 * "critical_block"), NULL for an unsupported kind. */
const char *wa_as_change_collection(enum wa_as_kind kind);

struct wa_as_encoded {
    const uint8_t *patch; /* SyncdPatch bytes, arena-owned */
    size_t len;
    const char *collection;
    struct wa_as_state state; /* the collection's state once the server takes it */
    uint8_t index_mac[WA_AS_MAC_LEN];
    uint8_t value_mac[WA_AS_MAC_LEN];
};
/* Builds the patch for change on top of *state (of change's collection),
 * encrypted under the sync key key_id with a fresh IV; io->prev_value_mac
 * gives the value it overwrites. The patch carries no version: it is sent
 * in a <collection> whose version attribute is state->version. */
int wa_as_encode_change(const struct wa_as_change *change, const struct wa_as_state *state,
                        const uint8_t *key_id, size_t key_id_len, const uint8_t *key_data, size_t key_len,
                        const struct wa_as_io *io, wa_arena *a, struct wa_as_encoded *out);

/* One key of an AppStateSyncKeyShare (ProtocolMessage field 7). */
struct wa_as_shared_key {
    const uint8_t *key_id;
    size_t key_id_len;
    const uint8_t *key_data;
    size_t key_data_len;
    int64_t timestamp;
};
/* Keys without an id or data, or over the limits above, are left out. */
int wa_as_key_share_parse(const uint8_t *buf, size_t len, wa_arena *a, struct wa_as_shared_key **keys,
                          size_t *n);
/* An AppStateSyncKeyRequest (ProtocolMessage field 8) for n key ids. */
int wa_as_key_request_encode(const uint8_t *const *key_ids, const size_t *key_id_lens, size_t n, wa_arena *a,
                             const uint8_t **out, size_t *out_len);

#endif
