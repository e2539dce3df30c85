/* libFuzzer target for what a client controls in account requests: the
 * Cookie header (finding and verifying the signed session cookie), e-mail
 * addresses and lengths. Nothing may crash, read out of bounds or accept a
 * cookie whose signature was not made with the secret. */
#include "common/auth_cookie.c"
#include "common/auth_input.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SECRET[] = "fuzz-secret-fuzz-secret-fuzz-secret!";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *hdr = (const char *)data;
    size_t vl;
    const char *v = auth_cookie_find(hdr, size, "better-auth.session_token", &vl);
    char tok[AUTH_COOKIE_TOKEN_MAX + 1];
    if (v) {
        if (v < hdr || v + vl > hdr + size)
            abort();
        int n = auth_cookie_verify(SECRET, v, vl, tok, sizeof tok);
        if (n >= 0) {
            /* Accepted: it must be exactly what we would have signed. */
            char again[AUTH_COOKIE_MAX];
            if (auth_cookie_sign(SECRET, tok, (size_t)n, again, sizeof again) < 0)
                abort();
            char tok2[AUTH_COOKIE_TOKEN_MAX + 1];
            if (auth_cookie_verify(SECRET, again, strlen(again), tok2, sizeof tok2) != n || strcmp(tok, tok2) != 0)
                abort();
        }
    }
    auth_cookie_verify(SECRET, hdr, size, tok, sizeof tok);
    char s[1024], out[256];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    if (auth_email_ok(s, out, sizeof out) && (strlen(out) > 254 || !strchr(out, '@')))
        abort();
    if (auth_js_length(s) > 2 * n) /* (an exact count only for valid UTF-8) */
        abort();
    return 0;
}
