#include "auth_input.h"

#include <ctype.h>
#include <string.h>

size_t auth_js_length(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            n += (*p >= 0xF0) ? 2 : 1; /* astral characters are two UTF-16 units */
    }
    return n;
}

static int alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int auth_email_ok(const char *email, char *out, size_t outlen)
{
    size_t n = strlen(email);
    if (n == 0 || n > 254 || n >= outlen || email[0] == '.' || strstr(email, ".."))
        return 0;
    const char *at = strchr(email, '@');
    if (!at || at == email || strchr(at + 1, '@'))
        return 0;
    for (const char *p = email; p < at; p++)
        if (!alnum(*p) && !strchr("_'+-.", *p))
            return 0;
    char last = at[-1];
    if (!alnum(last) && !strchr("_+-", last))
        return 0;
    /* domain: (label.)+ tld, label = alnum (alnum|-)*, tld = letters{2,} */
    const char *d = at + 1, *lastdot = strrchr(d, '.');
    if (!lastdot || lastdot == d)
        return 0;
    size_t tl = strlen(lastdot + 1);
    if (tl < 2)
        return 0;
    for (const char *p = lastdot + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    const char *p = d;
    while (p < lastdot) {
        if (!alnum(*p))
            return 0;
        while (p < lastdot && *p != '.') {
            if (!alnum(*p) && *p != '-')
                return 0;
            p++;
        }
        p++; /* the dot */
    }
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)email[i]);
    return 1;
}

