/* Account input rules shared by the workers and wapictl. */
#ifndef WAPI_AUTH_INPUT_H
#define WAPI_AUTH_INPUT_H
#include <stddef.h>

/* Better Auth's (zod's) e-mail check, at most 254 bytes; on success the
 * address lower-cased (as Better Auth stores it) into out (>= 255 bytes). */
int auth_email_ok(const char *email, char *out, size_t outlen);
/* The length JavaScript would report: UTF-16 units of valid UTF-8. */
size_t auth_js_length(const char *s);

#endif
