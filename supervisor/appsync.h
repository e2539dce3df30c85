/* App-state sync with our phone: the collections (critical_block,
 * critical_unblock_low, regular_high, regular_low, regular) fetched from the
 * server after each connect, when a sync key arrives and when the server
 * says one changed (server_sync); snapshots and large patches downloaded
 * like media; every patch decoded and checked (wa_appstate) and applied in
 * one statement with its effects and the collection's new state
 * (wapi_appstate_apply), then its events published. A bad MAC or LTHash
 * gets the collection again from a snapshot (counted in
 * wapi_appstate_resyncs_total); a missing key is asked of our phone and the
 * collection synced again once it arrives. One collection at a time. */
#ifndef WAPI_APPSYNC_H
#define WAPI_APPSYNC_H

struct wa_client;
struct event_base;

/* At start: the session's client, the loop for retry timers. */
void appsync_init(struct event_base *base, struct wa_client *c);
/* Logged in: every collection is synced. */
void appsync_connected(void);
/* Sync keys were stored: every collection is synced (those waiting for a key among them). */
void appsync_keys_arrived(void);
/* Our push name as our phone sets it (pushNameSetting), once committed, and
 * the stored one at each connect; cb gets it (borrowed for the call). */
void appsync_on_push_name(void (*cb)(const char *name));
/* The server names collections that changed. */
void appsync_server_sync(const char *const *names, int n);

/* IPC_ACT_CHAT_STATE: a change of ours (archive, pin, mute, read; our push
 * name, answered with {name}) sent as a
 * patch on top of the collection's current state, once the collection is
 * in step. Answered 202 with the chat once the server took the patch and
 * it is committed here; a conflict (the server is ahead) gets the server's
 * patches applied first, then ours built again on top (the server's win,
 * ours is re-applied), up to three times, then 409. */
#include <stdint.h>

#include "common/ipc.h"
#include "common/sbuf.h"
#include "worker_table.h"
int appsync_change_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

#endif
