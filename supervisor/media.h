/* The supervisor's media service: what workers ask of the media store over
 * their socket (the key of signed links, a file to serve, a temp file to
 * upload into, the publication of an upload), the store's size and quota,
 * and the metadata rows it writes. Publishing runs the store's slow steps
 * (fsync, SHA-256, libmagic) on a thread and its metadata steps on the loop;
 * a file is linked only once its hash and type are known to be right, and
 * its row is written only once it is durable. */
#ifndef WAPI_MEDIA_H
#define WAPI_MEDIA_H
#include <stdint.h>

#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "media_store.h"
#include "worker_table.h"

/* Opens the store (retried every minute while it cannot be) and registers
 * the IPC handlers. After sdb_init. */
void media_init(void);
/* The schema is up to date: load (or make) the key of signed links. */
void media_on_migrated(void);

/* IPC_MEDIA_KEY, IPC_MEDIA_OPEN, IPC_MEDIA_UPLOAD, IPC_MEDIA_PUBLISH, IPC_MEDIA_DISCARD. */
int media_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);

/* A file the supervisor made itself (a verified download, at offset 0;
 * fd is taken) published like an upload: copied, hashed (expect_hex, when
 * given, must match), typed (the declared type may be wrong: then the bytes
 * decide, within what the kind takes; strict: a sticker must be 512x512 as
 * for an upload, else any size is kept), linked and its row written; size is
 * reserved against the quota meanwhile. done runs once from the loop with
 * the new row's id, or with an error code and message. -1 with *why when it
 * cannot start (the quota: "media_store_full"); done is then not called. */
typedef void (*media_local_cb)(void *arg, const char *id, const char *code, const char *msg);
int media_publish_local(int fd, uint64_t size, const char *kind, const char *declared, const char *file_name,
                        const char *expect_hex, int strict, media_local_cb done, void *arg, const char **why);
/* For the sweep: the open store (NULL while it is not), and the files it
 * removed. */
struct media_store *media_store_ready(void);
void media_note_removed(uint64_t files, uint64_t bytes);
/* 1 once the store's size is known: before that, removals would make the
 * gauges (and the quota) drift. */
int media_measured(void);
/* Unlinks what was moved into the store's .trash/, on a thread. */
void media_empty_trash(void);
/* The members "ready", "bytes", … of the reply to `wapictl media`. */
void media_status_json(struct jsonw *w);

#endif
