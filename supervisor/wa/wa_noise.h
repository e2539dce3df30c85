/* The WhatsApp transport: 3-byte length framing, the Noise XX handshake
 * (Noise_XX_25519_AESGCM_SHA256 with WhatsApp's certificate chain), and the
 * transport cipher that follows it. Pure state machines over byte buffers:
 * no sockets, no clock, no logging. The caller moves bytes and supplies "now".
 *
 * Client flow:
 *   wa_noise_init(&ns, &cfg)
 *   wa_noise_start(&ns, &out)                    send out (header + ClientHello)
 *   wa_noise_recv(&ns, in, n, &used, &frame)     until it yields a frame
 *   wa_noise_read_server_hello(&ns, frame, payload, now, &out)
 *                                                send out (ClientFinish); now in transport
 *   wa_noise_encrypt / wa_noise_recv + wa_noise_decrypt   for every later frame
 *   wa_noise_free(&ns)
 * Any failure but WA_NOISE_ERR_TOO_BIG from wa_noise_encrypt leaves ns failed
 * (keys wiped, every later call returns WA_NOISE_ERR_STATE);
 * wa_noise_reason() says why in a short phrase without secrets. */
#ifndef WAPI_WA_NOISE_H
#define WAPI_WA_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "wa_crypto.h"

#define WA_NOISE_HEADER_LEN 4  /* "WA", 6, dictionary version 3 */
#define WA_FRAME_HDR_LEN 3     /* big-endian body length */
#define WA_FRAME_MAX 0xFFFFFFu /* the largest length 3 bytes can express */
#define WA_NOISE_PATTERN "Noise_XX_25519_AESGCM_SHA256\0\0\0\0"

extern const uint8_t wa_noise_header[WA_NOISE_HEADER_LEN];

enum wa_noise_rc {
    WA_NOISE_OK = 0,
    WA_NOISE_ERR_STATE = -1,   /* wrong call for the state, or already failed */
    WA_NOISE_ERR_FRAME = -2,   /* a frame declared longer than the bound */
    WA_NOISE_ERR_PROTO = -3,   /* a malformed or incomplete handshake message */
    WA_NOISE_ERR_DECRYPT = -4, /* AES-GCM authentication failed */
    WA_NOISE_ERR_CERT = -5,    /* the server certificate chain was rejected */
    WA_NOISE_ERR_CRYPTO = -6,  /* a primitive failed (bad key, RNG, counter spent) */
    WA_NOISE_ERR_NOMEM = -7,
    WA_NOISE_ERR_TOO_BIG = -8, /* an outbound message does not fit in a frame */
};

/* Which check of the certificate chain failed. */
enum wa_cert_rc {
    WA_CERT_OK = 0,
    WA_CERT_MALFORMED,           /* not a CertChain, or parts missing / wrong sizes */
    WA_CERT_INTERMEDIATE_SIG,    /* intermediate not signed by the root key */
    WA_CERT_INTERMEDIATE_ISSUER, /* intermediate issuerSerial is not 0 */
    WA_CERT_LEAF_SIG,            /* leaf not signed by the intermediate key */
    WA_CERT_LEAF_ISSUER,         /* leaf issuerSerial != intermediate serial */
    WA_CERT_LEAF_KEY,            /* leaf key != the server's static key */
    WA_CERT_EXPIRED,             /* now > notAfter of either certificate */
    WA_CERT_NOT_YET_VALID,       /* now < notBefore of either certificate */
};

/* ---- Framing ---- */

/* Reassembles frames from a byte stream cut anywhere. Buffers at most one
 * frame (3 + max_frame bytes). */
struct wa_framer {
    uint8_t *buf; /* owned */
    size_t len, cap;
    size_t max_frame;
    int consumed; /* the frame in buf was handed out; drop it on the next feed */
    int failed;   /* a bad length was seen; the stream cannot be resynchronised */
};

/* max_frame 0 or above WA_FRAME_MAX means WA_FRAME_MAX. */
void wa_framer_init(struct wa_framer *f, size_t max_frame);
void wa_framer_free(struct wa_framer *f);
/* Consumes input until one frame is complete or the input is used up;
 * *used says how much was consumed (call again with the rest).
 * Returns 1 and sets *frame and *frame_len (borrowed: points into in or into
 * the framer, valid until the next call), 0 when more input is needed,
 * WA_NOISE_ERR_FRAME when a header declares more than max_frame, or
 * WA_NOISE_ERR_NOMEM. After an error the framer stays failed. */
int wa_framer_feed(struct wa_framer *f, const uint8_t *in, size_t in_len, size_t *used, const uint8_t **frame,
                   size_t *frame_len);
/* Writes the 3-byte length; fails for len > WA_FRAME_MAX. */
int wa_frame_put_len(uint8_t out[WA_FRAME_HDR_LEN], size_t len);

/* ---- Certificate chain ---- */

/* Verifies a serialized CertChain: intermediate signed by root_pub with
 * issuerSerial 0, leaf signed by the intermediate key with issuerSerial =
 * intermediate serial, leaf key == server_static, and both validity windows
 * contain now (unix seconds; a window bound that is absent is open).
 * Writes a short reason into reason (may be NULL) when it fails. */
enum wa_cert_rc wa_noise_verify_cert_chain(const uint8_t *chain, size_t chain_len,
                                           const uint8_t root_pub[WA_KEY_LEN],
                                           const uint8_t server_static[WA_KEY_LEN], uint64_t now,
                                           char *reason, size_t reason_cap);

/* ---- Handshake and transport ---- */

struct wa_noise_config {
    const uint8_t *root_pub;       /* 32 bytes: the key the intermediate must be signed by */
    const uint8_t *static_priv;    /* 32 bytes: our long-term noise key (copied) */
    const uint8_t *ephemeral_priv; /* 32 bytes, or NULL for a fresh random one (tests fix it) */
    size_t max_frame;              /* inbound and outbound bound; 0 = WA_FRAME_MAX */
};

/* Noise symmetric state during the handshake. */
struct wa_noise_hs {
    uint8_t h[WA_SHA256_LEN];
    uint8_t ck[WA_SHA256_LEN];
    uint8_t k[WA_KEY_LEN];
    uint64_t n;
    int has_key;
};

/* Declared here so callers can embed it; its fields are private. */
struct wa_noise {
    int state;
    struct wa_noise_hs hs;
    uint8_t root_pub[WA_KEY_LEN];
    uint8_t s_priv[WA_KEY_LEN], s_pub[WA_KEY_LEN];
    uint8_t e_priv[WA_KEY_LEN], e_pub[WA_KEY_LEN];
    uint8_t server_eph[WA_KEY_LEN], server_static[WA_KEY_LEN];
    uint8_t wkey[WA_KEY_LEN], rkey[WA_KEY_LEN];
    uint64_t wctr, rctr;
    int header_sent;
    size_t max_frame;
    struct wa_framer in;
    enum wa_cert_rc cert_rc;
    char reason[160];
};

/* Returns WA_NOISE_OK, or WA_NOISE_ERR_CRYPTO for bad keys / RNG failure. */
int wa_noise_init(struct wa_noise *ns, const struct wa_noise_config *cfg);
/* Wipes every key and frees the buffers; ns may be re-initialised after. */
void wa_noise_free(struct wa_noise *ns);

/* The first bytes to send: the 4-byte header and the framed ClientHello.
 * *out is malloc'd; the caller frees it. */
int wa_noise_start(struct wa_noise *ns, uint8_t **out, size_t *out_len);

/* wa_framer_feed on the inbound stream, with the session's bound. */
int wa_noise_recv(struct wa_noise *ns, const uint8_t *in, size_t in_len, size_t *used, const uint8_t **frame,
                  size_t *frame_len);

/* Processes the ServerHello frame body: authenticates the server, verifies its
 * certificate chain against root_pub at now, and returns the framed
 * ClientFinish carrying our static key and the caller's serialized
 * ClientPayload. On success the session is in transport mode.
 * *out is malloc'd; the caller frees it. */
int wa_noise_read_server_hello(struct wa_noise *ns, const uint8_t *frame, size_t frame_len,
                               const uint8_t *payload, size_t payload_len, uint64_t now, uint8_t **out,
                               size_t *out_len);

/* Transport: encrypt returns one complete frame (length + ciphertext);
 * decrypt takes one frame body and returns the plaintext (*out may be
 * non-NULL with *out_len 0). *out is malloc'd; the caller frees it. */
int wa_noise_encrypt(struct wa_noise *ns, const uint8_t *pt, size_t pt_len, uint8_t **out, size_t *out_len);
int wa_noise_decrypt(struct wa_noise *ns, const uint8_t *frame, size_t frame_len, uint8_t **out,
                     size_t *out_len);

int wa_noise_is_transport(const struct wa_noise *ns);
/* Why the session failed ("" while it has not); borrowed from ns. */
const char *wa_noise_reason(const struct wa_noise *ns);
/* The certificate check that failed, after WA_NOISE_ERR_CERT. */
enum wa_cert_rc wa_noise_cert_error(const struct wa_noise *ns);
/* Name of a return code, for logs. */
const char *wa_noise_rc_name(int rc);

#endif
