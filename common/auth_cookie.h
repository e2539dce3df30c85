/* Better Auth's signed cookies (better-call signCookieValue/getSignedCookie):
 * value = encodeURIComponent(token + "." + base64(HMAC-SHA256(secret, token)))
 * with standard, padded base64 (44 characters). */
#ifndef WAPI_AUTH_COOKIE_H
#define WAPI_AUTH_COOKIE_H
#include <stddef.h>

#define AUTH_COOKIE_MAX 512        /* a signed value we produce or accept, encoded */
#define AUTH_COOKIE_TOKEN_MAX 255  /* the token inside */
#define AUTH_SECRET_DEFAULT "better-auth-secret-12345678901234567890" /* Better Auth's, outside production */

/* Writes the encoded signed value into out; 0, or -1 if it does not fit. */
int auth_cookie_sign(const char *secret, const char *token, size_t toklen, char *out, size_t outlen);
/* Checks an encoded signed value (as found in a Cookie header); on success
 * copies the token into tok (NUL-terminated) and returns its length, else -1. */
int auth_cookie_verify(const char *secret, const char *val, size_t len, char *tok, size_t toklen);
/* Finds cookie `name` in a Cookie header (first occurrence, as better-call);
 * returns a pointer into hdr and sets *vlen, or NULL. Quotes are stripped. */
const char *auth_cookie_find(const char *hdr, size_t len, const char *name, size_t *vlen);
/* The cookie name for a base URL: "__Secure-better-auth.<name>" for https. */
void auth_cookie_name(const char *base_url, const char *name, char *out, size_t outlen);

#endif
