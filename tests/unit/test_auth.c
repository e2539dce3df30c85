/* Password hashing, signed cookies, tokens and input rules. The vectors
 * come from the published packages (node:crypto scrypt as better-auth calls
 * it, better-call's serializeSignedCookie); tests/auth re-checks them live. */
#include <stdlib.h>
#include <string.h>

#include "common/auth_cookie.h"
#include "common/auth_input.h"
#include "common/auth_token.h"
#include "common/password.h"
#include "t.h"

static const char SECRET[] = "a-secret-of-at-least-32-characters!!";

static void test_password(void)
{
    /* "pass" U+FB01 (the fi ligature) "word": NFKC makes it "passfiword". */
    const char *stored = "00112233445566778899aabbccddeeff:"
                         "7281beeb4d30cf6b1c99ec1dc06dac16d1d4005b33b309360130ef82832bcccba0b26f06945bd344c932b59b61"
                         "bef5e6d48ecad2aa0992af4a6cb572646957c7";
    T_EQ_INT(password_verify(stored, "pass\xef\xac\x81word", 11), 1, "password: Better Auth vector verifies");
    T_EQ_INT(password_verify(stored, "passfiword", 10), 1, "password: NFKC-equivalent input verifies");
    T_EQ_INT(password_verify(stored, "password", 8), 0, "password: wrong password refused");
    char h[PASSWORD_HASH_LEN];
    T_EQ_INT(password_hash("correct horse", 13, h), 0, "password: hash");
    T_EQ_INT(strlen(h), 161, "password: salt:key is 32+1+128 characters");
    T_CHECK(h[32] == ':' && strspn(h, "0123456789abcdef:") == 161, "password: lower-case hex");
    T_EQ_INT(password_verify(h, "correct horse", 13), 1, "password: own hash verifies");
    T_EQ_INT(password_verify(h, "correct horsf", 13), 0, "password: own hash refuses another");
    char h2[PASSWORD_HASH_LEN];
    password_hash("correct horse", 13, h2);
    T_CHECK(strcmp(h, h2) != 0, "password: salts differ");
    T_EQ_INT(password_verify("nonsense", "x", 1), 0, "password: malformed stored hash is no match");
    T_EQ_INT(password_verify(NULL, "x", 1), 0, "password: no stored hash is no match");
    T_EQ_INT(password_verify(stored, "\xff\xfe", 2), -1, "password: invalid UTF-8 refused");
    size_t n;
    char *s = password_nfkc("\xef\xac\x81", 3, &n);
    T_CHECK(s && n == 2 && memcmp(s, "fi", 2) == 0, "password: NFKC of U+FB01 is fi");
    free(s);
}

static void test_cookie(void)
{
    char v[AUTH_COOKIE_MAX], tok[AUTH_COOKIE_TOKEN_MAX + 1];
    T_EQ_INT(auth_cookie_sign(SECRET, "abcDEF123", 9, v, sizeof v), 0, "cookie: sign");
    T_EQ_STR(v, "abcDEF123.7P%2BRGCJv%2FB7%2FvmNFyNLUvJpJFFPjannT08t5VAvtG5U%3D", "cookie: better-call's encoding");
    T_EQ_INT(auth_cookie_verify(SECRET, v, strlen(v), tok, sizeof tok), 9, "cookie: verify");
    T_EQ_STR(tok, "abcDEF123", "cookie: token out");
    const char *raw = "abcDEF123.7P+RGCJv/B7/vmNFyNLUvJpJFFPjannT08t5VAvtG5U=";
    T_EQ_INT(auth_cookie_verify(SECRET, raw, strlen(raw), tok, sizeof tok), 9, "cookie: undecoded value verifies");
    char bad[AUTH_COOKIE_MAX];
    strcpy(bad, v);
    bad[0] = 'b';
    T_EQ_INT(auth_cookie_verify(SECRET, bad, strlen(bad), tok, sizeof tok), -1, "cookie: tampered token refused");
    strcpy(bad, v);
    bad[12] ^= 1;
    T_EQ_INT(auth_cookie_verify(SECRET, bad, strlen(bad), tok, sizeof tok), -1, "cookie: tampered signature refused");
    T_EQ_INT(auth_cookie_verify("another-secret-another-secret-xx", v, strlen(v), tok, sizeof tok), -1,
             "cookie: other secret refused");
    T_EQ_INT(auth_cookie_verify(SECRET, "abc", 3, tok, sizeof tok), -1, "cookie: no signature refused");
    T_EQ_INT(auth_cookie_verify(SECRET, ".x", 2, tok, sizeof tok), -1, "cookie: empty token refused");
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    T_EQ_INT(auth_cookie_verify(SECRET, big, strlen(big), tok, sizeof tok), -1, "cookie: oversized refused");
    size_t vl;
    const char *hdr = "a=1; better-auth.session_token=\"tok.sig\" ;b=2";
    const char *f = auth_cookie_find(hdr, strlen(hdr), "better-auth.session_token", &vl);
    T_CHECK(f && vl == 7 && memcmp(f, "tok.sig", 7) == 0, "cookie: found in header, quotes stripped");
    T_CHECK(!auth_cookie_find(hdr, strlen(hdr), "better-auth.session", &vl), "cookie: no prefix match");
    char name[64];
    auth_cookie_name("https://x.example", "session_token", name, sizeof name);
    T_EQ_STR(name, "__Secure-better-auth.session_token", "cookie: __Secure- prefix on https");
    auth_cookie_name("http://localhost:3000", "session_token", name, sizeof name);
    T_EQ_STR(name, "better-auth.session_token", "cookie: no prefix on http");
}

static void test_tokens(void)
{
    char h[APIKEY_HASH_LEN + 1];
    apikey_hash("abc", 3, h);
    T_EQ_STR(h, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", "apikey: base64url(SHA-256) without padding");
    char a[AUTH_ID_LEN + 1], b[APIKEY_RANDOM_LEN + 1];
    T_EQ_INT(auth_random_string(a, AUTH_ID_LEN, 0), 0, "token: id");
    T_CHECK(strlen(a) == 32 && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 32,
            "token: id alphabet");
    auth_random_string(b, APIKEY_RANDOM_LEN, 1);
    T_CHECK(strlen(b) == 64 && strspn(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == 64,
            "token: api key letters only, like the plugin");
}

static void test_input(void)
{
    char out[256];
    T_CHECK(auth_email_ok("Ann.Lee+x@Example.co.uk", out, sizeof out) && strcmp(out, "ann.lee+x@example.co.uk") == 0,
            "email: valid, lower-cased");
    static const char *const bad[] = {"", "a", "a@b", "@b.co", "a@.co", "a@b.c", ".a@b.co", "a..b@c.co", "a.@b.co",
                                      "a@b@c.co", "a b@c.co", "a@-b.co", "a@b.c0m", "a@b..co"};
    int all = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (auth_email_ok(bad[i], out, sizeof out)) {
            all = 0;
            printf("# accepted %s\n", bad[i]);
        }
    T_CHECK(all, "email: invalid ones refused");
    char longe[300];
    memset(longe, 'a', 250);
    strcpy(longe + 250, "@b.co");
    T_CHECK(!auth_email_ok(longe, out, sizeof out), "email: over 254 refused");
    T_EQ_INT(auth_js_length("abc"), 3, "length: ASCII");
    T_EQ_INT(auth_js_length("\xc3\xa9\xe2\x82\xac"), 2, "length: two BMP characters");
    T_EQ_INT(auth_js_length("\xf0\x9f\x98\x80"), 2, "length: an emoji is two UTF-16 units");
}

int main(void)
{
    test_password();
    test_cookie();
    test_tokens();
    test_input();
    T_DONE();
}
