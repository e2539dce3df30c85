#include "user_add.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/auth_input.h"
#include "common/auth_token.h"
#include "common/authz.h"
#include "common/config.h"
#include "common/db_params.h"
#include "common/jsonw.h"
#include "common/password.h"
#include "common/sbuf.h"

static void usage(void)
{
    fprintf(stderr, "usage: wapictl user add EMAIL [--name NAME] [--admin | --role admin|member|viewer]\n"
                    "  the password (8 to 128 characters) is read from standard input;\n"
                    "  the first user is always an admin, later ones members unless told\n");
}

/* Prints the result line {"ok":false,"error":msg} or
 * {"ok":true,"user":{"id","email","role"}} (msg NULL). */
static void result_json(const char *msg, const char *id, const char *email, const char *role)
{
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_obj(&w);
    jw_kbool(&w, "ok", !msg);
    if (msg) {
        jw_kstr(&w, "error", msg);
    } else {
        jw_key(&w, "user");
        jw_obj(&w);
        jw_kstr(&w, "id", id);
        jw_kstr(&w, "email", email);
        jw_kstr(&w, "role", role);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
    if (jw_finish(&w) == 0)
        printf("%s\n", b.buf);
    else
        fprintf(stderr, "wapictl user add: out of memory\n");
    sbuf_free(&b);
}

static int fail_json(const char *msg)
{
    result_json(msg, NULL, NULL, NULL);
    return 1;
}

/* One line from stdin, without echo on a terminal. */
static int read_password(char *out, size_t outlen)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, noecho;
    if (tty) {
        fprintf(stderr, "password: ");
        tcgetattr(STDIN_FILENO, &old);
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &noecho);
    }
    char *r = fgets(out, (int)outlen, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fputc('\n', stderr);
    }
    if (!r)
        return -1;
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n')
        out[--n] = '\0';
    if (n && out[n - 1] == '\r')
        out[--n] = '\0';
    return 0;
}

int ctl_user(const char *config_path, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "add") != 0) {
        usage();
        return 2;
    }
    const char *email = argv[1], *name = NULL;
    enum role role = ROLE_MEMBER;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--admin") == 0)
            role = ROLE_ADMIN;
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            if ((role = authz_role_parse(argv[++i])) == ROLE_NONE) {
                usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    char lower[256];
    if (!auth_email_ok(email, lower, sizeof lower))
        return fail_json("email: not a valid address (at most 254 characters)");
    if (!name)
        name = "";
    if (auth_js_length(name) > 100)
        return fail_json("name: at most 100 characters");
    char pw[PASSWORD_MAX_BYTES + 2];
    if (read_password(pw, sizeof pw) < 0)
        return fail_json("password: none given on standard input");
    size_t pl = auth_js_length(pw);
    if (pl < 8 || pl > 128) {
        OPENSSL_cleanse(pw, sizeof pw);
        return fail_json("password: 8 to 128 characters");
    }
    char hash[PASSWORD_HASH_LEN], id[AUTH_ID_LEN + 1], account[AUTH_ID_LEN + 1];
    int hr = password_hash(pw, strlen(pw), hash);
    OPENSSL_cleanse(pw, sizeof pw);
    if (hr < 0)
        return fail_json("password: not valid UTF-8");
    if (auth_random_string(id, AUTH_ID_LEN, 0) < 0 || auth_random_string(account, AUTH_ID_LEN, 0) < 0)
        return fail_json("no randomness");

    struct wapi_config cfg;
    char err[1024];
    if (config_load(&cfg, config_path ? config_path : "conf/wapi.conf", config_path == NULL, CONFIG_WITH_ENV,
                    err, sizeof err) < 0)
        return fail_json(err);
    struct db_params p;
    db_params_init(&p, &cfg, "wapictl");
    PGconn *c = PQconnectdbParams(p.keys, p.values, 1);
    int rc = 1;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, sizeof err, "database: %s", PQerrorMessage(c));
        fail_json(err);
        goto out;
    }
    /* Privileged: no policy, invitation or setup token applies; no actor:
     * the audit log says "command-line". */
    const char *params[14] = {
        id,   name,    lower, hash, account, cfg.auth.registration, "true", authz_role_name(role), NULL,
        NULL, "false", NULL,  NULL, NULL};
    PGresult *r = PQexecParams(c,
                               "SELECT wapi_create_user($1, $2, $3, $4, $5, $6, $7::boolean, $8, $9, $10, "
                               "$11::boolean, $12, $13, $14)",
                               14, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, sizeof err, "database: %s (is the schema migrated? run wapi --migrate)",
                 PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = ' ';
        fail_json(err);
    } else if (strcmp(PQgetvalue(r, 0, 0), "exists") == 0) {
        fail_json("a user with this email exists already");
    } else if (strncmp(PQgetvalue(r, 0, 0), "created:", 8) == 0) {
        result_json(NULL, id, lower, PQgetvalue(r, 0, 0) + 8);
        rc = 0;
    } else {
        fail_json(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
out:
    PQfinish(c);
    config_free(&cfg);
    OPENSSL_cleanse(hash, sizeof hash);
    return rc;
}
