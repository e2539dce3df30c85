/* The media sweep, once a day (and on `wapictl media sweep`): rows older
 * than media.retention_days become `expired`, then each file of the store
 * that no pending or stored row names is removed, unless something was
 * published to it within the last hour (a publication refreshes the file's
 * time before its row is written, so a file about to be named is never
 * taken). Deleting a row frees its file here, not at once. */
#ifndef WAPI_MEDIA_SWEEP_H
#define WAPI_MEDIA_SWEEP_H

#include "common/jsonw.h"

void media_sweep_init(void);
/* Starts a sweep now; -1 with *why when one is running or the store or the
 * schema is not ready. by names who asked, for the log. */
int media_sweep_start(const char *by, const char **why);
/* Writes the value {"running":…,"last":{"at","by","expired_rows",
 * "removed_files","freed_bytes","ms","error"} or null}. */
void media_sweep_status_json(struct jsonw *w);

#endif
