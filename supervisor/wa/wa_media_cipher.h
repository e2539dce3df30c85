/* WhatsApp media encryption, streamed: a random 32-byte media key expands
 * (HKDF-SHA256, no salt, the kind's info string, 112 bytes) into an IV, an
 * AES-256-CBC key and an HMAC key; the uploaded file is the ciphertext
 * followed by the first 10 bytes of HMAC-SHA256(macKey, iv ‖ ciphertext).
 * Both directions take the file in pieces of any size, so memory does not
 * grow with the file, and compute the sums the message carries
 * (fileSha256, fileEncSha256, fileLength) on the way. */
#ifndef WAPI_WA_MEDIA_CIPHER_H
#define WAPI_WA_MEDIA_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#define WA_MEDIA_KEY_LEN 32
#define WA_MEDIA_MAC_LEN 10
#define WA_MEDIA_BLOCK 16

/* What the keys are derived for: each has its own HKDF info string. */
enum wa_media_kind {
    WA_MEDIA_IMAGE, /* also stickers */
    WA_MEDIA_VIDEO,
    WA_MEDIA_AUDIO, /* also voice notes */
    WA_MEDIA_DOCUMENT,
    WA_MEDIA_HISTORY,  /* history sync blobs */
    WA_MEDIA_APPSTATE, /* app-state patches and snapshots */
    WA_MEDIA_KINDS
};

struct wa_media_keys {
    uint8_t iv[16];
    uint8_t cipher[32];
    uint8_t mac[32];
    uint8_t ref[32];
};

/* The sums of one file. */
struct wa_media_sums {
    uint8_t file_sha256[32];     /* of the plaintext */
    uint8_t file_enc_sha256[32]; /* of ciphertext ‖ mac */
    uint64_t file_length;        /* plaintext bytes */
    uint64_t enc_length;         /* ciphertext + mac bytes */
};

enum wa_media_err {
    WA_MEDIA_OK = 0,
    WA_MEDIA_ECRYPTO = -1, /* OpenSSL failed (out of memory) */
    WA_MEDIA_ESHORT = -2,  /* fewer bytes than one block and the MAC, or not whole blocks */
    WA_MEDIA_EMAC = -3,    /* the MAC does not match: tampered, truncated or another key */
    WA_MEDIA_EPAD = -4,    /* the MAC matched but the padding is wrong (a sender's bug) */
};

/* "WhatsApp Image Keys" and so on; NULL for an unknown kind. */
const char *wa_media_info(enum wa_media_kind kind);
int wa_media_derive(const uint8_t media_key[WA_MEDIA_KEY_LEN], enum wa_media_kind kind,
                    struct wa_media_keys *out);

struct wa_media_stream; /* one direction over one file; opaque */

/* NULL when out of memory or the kind is unknown. The key material is
 * wiped when the stream is freed. */
struct wa_media_stream *wa_media_encrypt_new(const uint8_t media_key[WA_MEDIA_KEY_LEN],
                                             enum wa_media_kind kind);
struct wa_media_stream *wa_media_decrypt_new(const uint8_t media_key[WA_MEDIA_KEY_LEN],
                                             enum wa_media_kind kind);
void wa_media_stream_free(struct wa_media_stream *s);

/* Feeds n bytes (plaintext when encrypting, the downloaded file when
 * decrypting); writes at most n + 16 bytes to out and returns how many, or a
 * negative wa_media_err. A decrypting stream holds back the last 10 bytes it
 * has seen (they may be the MAC). */
long wa_media_update(struct wa_media_stream *s, const uint8_t *in, size_t n, uint8_t *out);

/* Ends the file: writes at most 16 + 10 bytes to out (the last block, and
 * the MAC when encrypting) and returns how many, or a negative
 * wa_media_err; fills sums on success. When decrypting, everything written
 * before is only trustworthy once this returns >= 0: the MAC covers the
 * whole file, so the caller keeps the plaintext unpublished until then. */
long wa_media_final(struct wa_media_stream *s, uint8_t *out, struct wa_media_sums *sums);

#endif
