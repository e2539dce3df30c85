/* A consistent copy of the session store for `wapictl backup`: every file of
 * the store read into memory in one go, on the supervisor's loop. The loop is
 * the store's only writer (wa_store writes synchronously from the client's
 * callbacks), so no write can land while this runs: the copy is the store at
 * one instant, never half of an update. The store is a few small files, so
 * the loop stalls for well under a millisecond. */
#ifndef WAPI_SNAPSHOT_H
#define WAPI_SNAPSHOT_H
#include <stddef.h>

#include "common/sbuf.h"

#define SNAPSHOT_MAX_FILES 4096
#define SNAPSHOT_MAX_BYTES (64u << 20)
#define SNAPSHOT_MAX_DEPTH 8
#define SNAPSHOT_NAME_MAX 200 /* a relative path in the store */

/* Appends, for each regular file under dir in name order (skipping names
 * that start with '.', names ending in ".tmp" — a write in progress — and
 * lost+found): "SIZE RELPATH\n" and then SIZE bytes. A missing dir is an
 * empty store. Returns 0 with *files and *bytes set, or -1 with err set and
 * out wiped and emptied. out holds private keys: release it with
 * snapshot_wipe_free(). */
int snapshot_dir(const char *dir, struct sbuf *out, unsigned *files, size_t *bytes, char *err, size_t errlen);

/* Wipes and frees a buffer taken from snapshot_dir's sbuf (an
 * evbuffer_ref_cleanup_cb, so it can release a reference evbuffer). */
void snapshot_wipe_free(const void *data, size_t len, void *arg);

#endif
