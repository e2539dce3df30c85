/* auth_tool: wapi's password hashing, cookie signing and API-key hashing
 * on the command line, so the Better Auth cross-checks (tests/auth) can run
 * them against the published packages.
 *   auth_tool hash PASSWORD           -> salt:key
 *   auth_tool verify HASH PASSWORD    -> ok | no      (exit 0 | 1)
 *   auth_tool sign SECRET VALUE       -> encoded signed cookie value
 *   auth_tool unsign SECRET COOKIE    -> the value | refused (exit 0 | 1)
 *   auth_tool apikey-hash KEY         -> base64url(SHA-256(KEY))
 *   auth_tool nfkc TEXT               -> NFKC(TEXT) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth_cookie.h"
#include "common/auth_token.h"
#include "common/password.h"

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hash") == 0) {
        char out[PASSWORD_HASH_LEN];
        if (password_hash(argv[2], strlen(argv[2]), out) < 0)
            return 2;
        puts(out);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "verify") == 0) {
        int r = password_verify(argv[2], argv[3], strlen(argv[3]));
        puts(r == 1 ? "ok" : "no");
        return r == 1 ? 0 : 1;
    }
    if (argc == 4 && strcmp(argv[1], "sign") == 0) {
        char out[AUTH_COOKIE_MAX];
        if (auth_cookie_sign(argv[2], argv[3], strlen(argv[3]), out, sizeof out) < 0)
            return 2;
        puts(out);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "unsign") == 0) {
        char tok[AUTH_COOKIE_TOKEN_MAX + 1];
        if (auth_cookie_verify(argv[2], argv[3], strlen(argv[3]), tok, sizeof tok) < 0) {
            puts("refused");
            return 1;
        }
        puts(tok);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "apikey-hash") == 0) {
        char out[APIKEY_HASH_LEN + 1];
        apikey_hash(argv[2], strlen(argv[2]), out);
        puts(out);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "nfkc") == 0) {
        size_t n;
        char *s = password_nfkc(argv[2], strlen(argv[2]), &n);
        if (!s)
            return 2;
        fwrite(s, 1, n, stdout);
        putchar('\n');
        free(s);
        return 0;
    }
    fprintf(stderr, "usage: auth_tool hash|verify|sign|unsign|apikey-hash|nfkc ...\n");
    return 2;
}
