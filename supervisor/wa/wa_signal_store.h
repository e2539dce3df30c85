/* The Signal protocol state libsignal-protocol-c works on, kept on the
 * sessions volume: our identity and registration id (from the creds), the
 * signed prekey (creds), the one-time prekeys (prekeys.bin, a used one is
 * removed), sessions and remote identities (trust on first use) in
 * signal.bin. Changes stay in memory until wa_signal_store_flush(), which
 * writes atomically and durably, so a caller decides when a state change
 * becomes permanent (after the message it belongs to was committed, before
 * a stanza that depends on it leaves). A corrupt file is reported, never
 * replaced. Sender keys are not kept yet (always not found). */
#ifndef WAPI_WA_SIGNAL_STORE_H
#define WAPI_WA_SIGNAL_STORE_H
#include <signal/signal_protocol.h>
#include <stddef.h>
#include <stdint.h>

#include "wa_store.h"

struct wa_signal_store;

/* Opens the store of dir. creds, *prekeys and *nprekeys are borrowed and
 * must outlive the store (the prekey array may be reallocated by its owner
 * between calls; removal goes through these pointers). NULL with err when
 * signal.bin is corrupt or unreadable. */
struct wa_signal_store *wa_signal_store_open(const char *dir, const struct wa_creds *creds, struct wa_prekey **prekeys,
                                             size_t *nprekeys, char *err, size_t errlen);
/* Installs every callback into a new store context for gctx. */
int wa_signal_store_context(struct wa_signal_store *st, signal_context *gctx, signal_protocol_store_context **out);
/* Something changed since the last flush. */
int wa_signal_store_dirty(const struct wa_signal_store *st);
/* Writes what changed (signal.bin, prekeys.bin); 0 or -1 with err. */
int wa_signal_store_flush(struct wa_signal_store *st, char *err, size_t errlen);
/* Drops unflushed changes by reloading from disk; 0 or -1 with err. */
int wa_signal_store_reload(struct wa_signal_store *st, char *err, size_t errlen);
/* How many times a known contact's identity key changed (and was accepted). */
uint64_t wa_signal_store_identity_changes(const struct wa_signal_store *st);
size_t wa_signal_store_session_count(const struct wa_signal_store *st);
/* 1 when a session with name.device exists. */
int wa_signal_store_has_session(const struct wa_signal_store *st, const char *name, int32_t device);
/* Removes signal.bin (logout). */
int wa_signal_store_wipe(const char *dir);
void wa_signal_store_free(struct wa_signal_store *st);

#endif
