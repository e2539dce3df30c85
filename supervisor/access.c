#include "access.h"

#include <openssl/crypto.h>
#include <string.h>

#include "common/auth_token.h"
#include "common/log.h"
#include "sdb.h"
#include "sup.h"

static char token[AUTH_TOKEN_LEN + 1];

/* Stored only while no user exists; replaces the token of an earlier start. */
static const char SQL_SETUP[] =
    "INSERT INTO wapi_setup_token (id, token_hash) SELECT 1, $1 WHERE NOT EXISTS (SELECT 1 FROM \"user\") "
    "ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, created_at = now() RETURNING 1";

static void on_setup(void *ctx, const PGresult *res, const char *err)
{
    (void)ctx;
    if (!res)
        log_warn("cannot store the setup token", LF_S("error", err ? err : "?"));
    else if (PQntuples(res) == 1)
        /* Deliberately in the log: whoever reads the pod's log owns the
         * deployment already; whoever only reaches the URL does not. */
        log_warn("no account exists yet: sign up the first admin with this one-time setup token "
                 "(or run wapictl user add EMAIL --admin)",
                 LF_S("setup_token", token));
    OPENSSL_cleanse(token, sizeof token);
}

void access_on_migrated(void)
{
    if (!S.cfg.production)
        return;
    if (!strcmp(S.cfg.auth.registration, "open"))
        log_warn(
            "auth.registration is \"open\": anyone who reaches this server can sign up and read and send "
            "messages; set WAPI_AUTH_REGISTRATION=invite");
    if (!strcmp(S.cfg.auth.registration, "closed"))
        return; /* the first admin comes from wapictl */
    char hash[APIKEY_HASH_LEN + 1];
    if (auth_random_string(token, AUTH_TOKEN_LEN, 0) < 0) {
        log_error("no randomness for the setup token");
        return;
    }
    auth_token_hash(token, strlen(token), hash);
    const char *p[1] = {hash};
    if (!sdb_query(SQL_SETUP, 1, p, on_setup, NULL))
        OPENSSL_cleanse(token, sizeof token);
}
