/* Sender keys: the Signal group cipher WhatsApp uses for group and status
 * messages. A sender makes one key per group and hands it to every member
 * device in a pairwise message (a SenderKeyDistributionMessage); then one
 * encryption (an skmsg) serves every member. The keys live in the session's
 * Signal store (wa_signal_store.c), under the group's JID and the sender's
 * address (name as wa_msg_address_name makes it, device). */
#ifndef WAPI_WA_GROUP_CIPHER_H
#define WAPI_WA_GROUP_CIPHER_H
#include <signal/signal_protocol.h>
#include <stddef.h>
#include <stdint.h>

/* Takes a sender's key for group from a distribution message (bytes as the
 * Message carries them). SG_* code (0 ok; a repeated one is harmless). */
int wa_gc_process_skdm(signal_protocol_store_context *sc, signal_context *g, const char *group,
                       const char *name, int32_t device, const uint8_t *skdm, size_t n);
/* Decrypts an skmsg from name.device in group. *out malloc'd (still padded).
 * SG_ERR_NO_SESSION: no key of that sender yet (ask with a retry receipt);
 * SG_ERR_DUPLICATE_MESSAGE: decrypted before. */
int wa_gc_decrypt(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                  int32_t device, const uint8_t *ct, size_t n, uint8_t **out, size_t *outlen);
/* Our own key for group (made when there is none): its distribution
 * message, serialized, in *skdm (malloc'd). SG_* code. */
int wa_gc_own_skdm(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                   int32_t device, uint8_t **skdm, size_t *n);
/* Encrypts padded plain with our key for group (wa_gc_own_skdm first).
 * *out malloc'd. SG_* code. */
int wa_gc_encrypt(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                  int32_t device, const uint8_t *plain, size_t n, uint8_t **out, size_t *outlen);

#endif
