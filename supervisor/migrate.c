#include "migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "common/db_params.h"
#include "common/hex.h"
#include "common/log.h"

#define MIGRATE_LOCK_KEY "7761706900000001" /* "wapi" + 1: one key for every wapi */

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    int ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* Each definition whose SHA-256 differs from the one recorded, in its own
 * transaction with the new digest. The number applied, or -1 with err. */
static int apply_definitions(PGconn *c, char *err, size_t errlen)
{
    int applied = 0;
    if (exec_ok(c,
                "CREATE TABLE IF NOT EXISTS wapi_schema_definitions (name text PRIMARY KEY, sha256 text NOT "
                "NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < n_definitions; i++) {
        const struct migration *m = &definitions[i];
        unsigned char sum[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        SHA256((const unsigned char *)m->sql, strlen(m->sql), sum);
        hex_encode(hex, sum, sizeof sum, 0);
        const char *params[2] = {m->name, hex};
        PGresult *r = PQexecParams(c, "SELECT 1 FROM wapi_schema_definitions WHERE name = $1 AND sha256 = $2",
                                   2, NULL, params, NULL, NULL, 0);
        int st = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;
        if (st < 0)
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        if (st < 0)
            return -1;
        if (st > 0)
            continue; /* as recorded */
        if (exec_ok(c, "BEGIN", err, errlen) < 0)
            return -1;
        if (exec_ok(c, m->sql, err, errlen) < 0) {
            char e2[64], what[512];
            exec_ok(c, "ROLLBACK", e2, sizeof e2);
            snprintf(what, sizeof what, "definition %s: %s", m->name, err);
            snprintf(err, errlen, "%s", what);
            return -1;
        }
        r = PQexecParams(
            c,
            "INSERT INTO wapi_schema_definitions (name, sha256) VALUES ($1, $2) ON CONFLICT (name) "
            "DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
            2, NULL, params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok || exec_ok(c, "COMMIT", err, errlen) < 0)
            return -1;
        log_info("definition applied", LF_S("name", m->name), LF_S("sha256", hex));
        applied++;
    }
    return applied;
}

int migrate_run(const struct wapi_config *cfg, char *err, size_t errlen)
{
    struct db_params p;
    db_params_init(&p, cfg, "wapi-migrate");
    PGconn *c = PQconnectdbParams(p.keys, p.values, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        trim(err);
        PQfinish(c);
        return -1;
    }
    int applied = 0;
    if (exec_ok(c, "SET client_min_messages = warning", err, errlen) < 0 ||
        exec_ok(c, "SELECT pg_advisory_lock(x'" MIGRATE_LOCK_KEY "'::bigint)", err, errlen) < 0 ||
        exec_ok(c,
                "CREATE TABLE IF NOT EXISTS wapi_schema_migrations (version integer PRIMARY KEY, name text "
                "NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen) < 0)
        goto fail;
    for (unsigned i = 0; i < n_migrations; i++) {
        const struct migration *m = &migrations[i];
        char v[16];
        snprintf(v, sizeof v, "%d", m->version);
        const char *params[2] = {v, m->name};
        PGresult *r = PQexecParams(c, "SELECT name FROM wapi_schema_migrations WHERE version = $1", 1, NULL,
                                   params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
            PQclear(r);
            goto fail;
        }
        int done = PQntuples(r) > 0;
        /* A version recorded under another name was applied by a different
         * build: going on would skip this build's migration silently. */
        if (done && strcmp(PQgetvalue(r, 0, 0), m->name) != 0) {
            snprintf(
                err, errlen,
                "migration %04d is recorded as \"%.64s\" but this build's %04d is \"%s\": the database was "
                "migrated by a different build",
                m->version, PQgetvalue(r, 0, 0), m->version, m->name);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
        if (done)
            continue;
        if (exec_ok(c, "BEGIN", err, errlen) < 0)
            goto fail;
        if (exec_ok(c, m->sql, err, errlen) < 0) {
            char e2[64];
            exec_ok(c, "ROLLBACK", e2, sizeof e2);
            char what[512];
            snprintf(what, sizeof what, "migration %04d_%s: %s", m->version, m->name, err);
            snprintf(err, errlen, "%s", what);
            goto fail;
        }
        r = PQexecParams(c, "INSERT INTO wapi_schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                         params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok || exec_ok(c, "COMMIT", err, errlen) < 0)
            goto fail;
        log_info("migration applied", LF_I("version", m->version), LF_S("name", m->name));
        applied++;
    }
    int d = apply_definitions(c, err, errlen);
    if (d < 0)
        goto fail;
    applied += d;
    exec_ok(c, "SELECT pg_advisory_unlock(x'" MIGRATE_LOCK_KEY "'::bigint)", err, errlen);
    PQfinish(c);
    return applied;
fail:
    trim(err);
    PQfinish(c); /* closing the session releases the advisory lock */
    return -1;
}
