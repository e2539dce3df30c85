/* SQL migrations: versioned files from common/sql embedded at build time,
 * each applied in its own transaction, serialized across processes by an
 * advisory lock. Blocking: runs in a child process or at the command line. */
#ifndef WAPI_MIGRATE_H
#define WAPI_MIGRATE_H
#include <stddef.h>

#include "common/config.h"

struct migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct migration migrations[];
extern const unsigned n_migrations;
/* Definitions (common/sql/defs: functions and triggers kept whole in one
 * file each, version 0): applied after the migrations whenever their text
 * differs from the one recorded, so a change is made in one place instead
 * of a migration repeating a whole function. */
extern const struct migration definitions[];
extern const unsigned n_definitions;

/* Returns the number of migrations and definitions applied (>= 0), or -1
 * with err set. */
int migrate_run(const struct wapi_config *cfg, char *err, size_t errlen);

#endif
