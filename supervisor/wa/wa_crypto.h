/* The cryptographic primitives the WhatsApp client needs, on raw byte arrays:
 * X25519, HKDF-SHA256, AES-256-GCM, HMAC-SHA256, SHA-256, MD5 (OpenSSL 3) and
 * XEdDSA signatures on Curve25519 keys (libsignal-protocol-c).
 * Keys are the raw 32-byte forms used on the WhatsApp wire (no 0x05 prefix).
 * Every function returns 0 on success and -1 on failure unless it says
 * otherwise; none of them allocates memory the caller must free. */
#ifndef WAPI_WA_CRYPTO_H
#define WAPI_WA_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define WA_KEY_LEN 32
#define WA_SIG_LEN 64
#define WA_GCM_TAG_LEN 16
#define WA_GCM_IV_LEN 12
#define WA_SHA256_LEN 32
#define WA_MD5_LEN 16

/* Fills buf with len bytes from the OpenSSL CSPRNG. */
int wa_crypto_random(uint8_t *buf, size_t len);

/* A fresh X25519 key pair; the private key is clamped, so it is also a valid
 * XEdDSA signing key (libsignal uses the scalar as it is). */
int wa_crypto_x25519_keypair(uint8_t priv[WA_KEY_LEN], uint8_t pub[WA_KEY_LEN]);
/* The public key of a private key. */
int wa_crypto_x25519_pub(const uint8_t priv[WA_KEY_LEN], uint8_t pub[WA_KEY_LEN]);
/* Diffie-Hellman; fails on a low-order peer key (all-zero shared secret). */
int wa_crypto_x25519_dh(const uint8_t priv[WA_KEY_LEN], const uint8_t peer_pub[WA_KEY_LEN],
                        uint8_t shared[WA_KEY_LEN]);

/* HKDF-SHA256 (RFC 5869). salt may be NULL/0 (then HashLen zero bytes), info
 * may be NULL/0, ikm may be empty. out_len at most 255*32. */
int wa_crypto_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                          const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/* AES-256-GCM with a 12-byte IV and the 16-byte tag appended.
 * seal writes pt_len + 16 bytes to out; open writes ct_len - 16 bytes and
 * fails (writing nothing usable) when ct_len < 16 or the tag does not match.
 * out may alias pt/ct exactly. */
int wa_crypto_aes_gcm_seal(const uint8_t key[WA_KEY_LEN], const uint8_t iv[WA_GCM_IV_LEN], const uint8_t *ad,
                           size_t ad_len, const uint8_t *pt, size_t pt_len, uint8_t *out);
int wa_crypto_aes_gcm_open(const uint8_t key[WA_KEY_LEN], const uint8_t iv[WA_GCM_IV_LEN], const uint8_t *ad,
                           size_t ad_len, const uint8_t *ct, size_t ct_len, uint8_t *out);

int wa_crypto_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len,
                          uint8_t out[WA_SHA256_LEN]);
int wa_crypto_sha256(const uint8_t *data, size_t len, uint8_t out[WA_SHA256_LEN]);
/* SHA-256 of a ‖ b, the Noise MixHash step. */
int wa_crypto_sha256_2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                       uint8_t out[WA_SHA256_LEN]);
int wa_crypto_md5(const uint8_t *data, size_t len, uint8_t out[WA_MD5_LEN]);

/* XEdDSA as Signal and WhatsApp use it: the signature is over msg exactly as
 * given. verify returns 1 when valid, 0 when not (also on any bad input).
 * sign uses fresh randomness, so two signatures of one message differ. */
int wa_crypto_xeddsa_verify(const uint8_t pub[WA_KEY_LEN], const uint8_t *msg, size_t msg_len,
                            const uint8_t sig[WA_SIG_LEN]);
int wa_crypto_xeddsa_sign(const uint8_t priv[WA_KEY_LEN], const uint8_t *msg, size_t msg_len,
                          uint8_t sig[WA_SIG_LEN]);

#endif
