/* libpq connection parameters from the configuration: database.url (a URI or
 * key=value string) and, when set, database.password (DATABASE_AUTH_TOKEN). */
#ifndef WAPI_DB_PARAMS_H
#define WAPI_DB_PARAMS_H

#include "config.h"

struct db_params {
    const char *keys[6];
    const char *values[6]; /* point into the copies below */
    char url[4096], password[1024], app[64];
};

/* Copies what it needs from cfg (a reload may free cfg later). */
void db_params_init(struct db_params *p, const struct wapi_config *cfg, const char *application_name);

#endif
