/* The OpenSSL-backed crypto provider libsignal-protocol-c needs (random,
 * HMAC-SHA256, SHA-512, AES-CBC/CTR), and a helper that makes a ready
 * signal_context with it. */
#ifndef WAPI_WA_SIGNAL_CRYPTO_H
#define WAPI_WA_SIGNAL_CRYPTO_H

#include <signal/signal_protocol.h>

/* A provider filled with our callbacks (user_data NULL). */
void wa_signal_crypto_provider(signal_crypto_provider *out);

/* A new signal_context using that provider; the caller owns it and releases
 * it with signal_context_destroy(). Returns NULL on failure. */
signal_context *wa_signal_context_new(void);

#endif
