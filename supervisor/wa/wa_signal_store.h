/* The Signal protocol state libsignal-protocol-c works on, kept on the
 * sessions volume: our identity and registration id (from the creds), the
 * signed prekey (creds), the one-time prekeys (prekeys.bin, a used one is
 * removed), sessions and remote identities (trust on first use) in
 * signal.bin, a snapshot, plus signal.log, a journal of the changes flushed
 * since. Changes stay in memory until wa_signal_store_flush(), which appends
 * the entries changed since the last flush as one checksummed batch and
 * syncs it, so its cost follows what changed rather than how many contacts
 * there are; a journal grown past max(256 KiB, snapshot) is folded into a
 * fresh snapshot. A caller decides when a state change becomes permanent
 * (after the message it belongs to was committed, before a stanza that
 * depends on it leaves). A batch cut short by a crash at the journal's end
 * was never reported flushed and is dropped; any other damage, in either
 * file, is reported, and nothing is written over it. Sender keys are not
 * kept yet (always not found). */
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
 * signal.bin or signal.log is corrupt or unreadable. */
struct wa_signal_store *wa_signal_store_open(const char *dir, const struct wa_creds *creds,
                                             struct wa_prekey **prekeys, size_t *nprekeys, char *err,
                                             size_t errlen);
/* Installs every callback into a new store context for gctx. */
int wa_signal_store_context(struct wa_signal_store *st, signal_context *gctx,
                            signal_protocol_store_context **out);
/* Something changed since the last flush. */
int wa_signal_store_dirty(const struct wa_signal_store *st);
/* Makes what changed durable (a batch on signal.log, prekeys.bin); 0 or -1
 * with err, and then every change is still pending. */
int wa_signal_store_flush(struct wa_signal_store *st, char *err, size_t errlen);
/* Drops unflushed changes by reloading from disk (snapshot and journal); 0
 * or -1 with err, after which flushes fail until a reload succeeds (the
 * files were not what they should be, so nothing replaces them). */
int wa_signal_store_reload(struct wa_signal_store *st, char *err, size_t errlen);
/* A savepoint in memory: from wa_signal_store_mark() on, every change is
 * recorded so that wa_signal_store_rollback() can undo what changed since
 * (sessions, identities, deletions, used prekeys), leaving earlier unflushed
 * changes pending; a flush moves the mark to what it made durable. Marking
 * again moves it; unmark stops recording. Rollback is -1 when there is no
 * mark or memory ran out (then reload). Lets one message of several whose
 * changes wait for a common flush be undone alone. */
void wa_signal_store_mark(struct wa_signal_store *st);
int wa_signal_store_rollback(struct wa_signal_store *st);
void wa_signal_store_unmark(struct wa_signal_store *st);
/* How many times a known contact's identity key changed (and was accepted). */
uint64_t wa_signal_store_identity_changes(const struct wa_signal_store *st);
size_t wa_signal_store_session_count(const struct wa_signal_store *st);
/* 1 when a session with name.device exists. */
int wa_signal_store_has_session(const struct wa_signal_store *st, const char *name, int32_t device);
/* Removes signal.log and signal.bin (logout). */
/* Forgets a group's sender key of sender (the address name) device (ours:
 * the next group send makes a new one). 0 also when there was none; -1 when
 * out of memory or the name does not fit. */
int wa_signal_store_drop_sender_key(struct wa_signal_store *st, const char *group, const char *sender,
                                    int32_t device);
/* The devices our sender key for group was handed to: "user:dev@server"
 * names, each followed by a NUL; NULL (len 0) when none. Valid until the
 * store changes. Set replaces the list (len 0 removes it); like every
 * change it is durable at the next flush and undone by a rollback. -1 when
 * out of memory or too long. */
const uint8_t *wa_signal_store_skdm_sent(const struct wa_signal_store *st, const char *group, size_t *len);
int wa_signal_store_set_skdm_sent(struct wa_signal_store *st, const char *group, const uint8_t *list,
                                  size_t len);
size_t wa_signal_store_sender_key_count(const struct wa_signal_store *st);
int wa_signal_store_wipe(const char *dir);
void wa_signal_store_free(struct wa_signal_store *st);

#endif
