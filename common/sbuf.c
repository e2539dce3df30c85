#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *b)
{
    b->buf = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void sbuf_free(struct sbuf *b)
{
    free(b->buf);
    sbuf_init(b);
}

void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

static int grow(struct sbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) {
        if (ncap > ((size_t)-1) / 2) {
            b->oom = 1;
            return -1;
        }
        ncap *= 2;
    }
    char *n = realloc(b->buf, ncap);
    if (!n) {
        b->oom = 1;
        return -1;
    }
    b->buf = n;
    b->cap = ncap;
    return 0;
}

void sbuf_add(struct sbuf *b, const void *p, size_t n)
{
    if (grow(b, n) < 0)
        return;
    if (n)
        memcpy(b->buf + b->len, p, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addc(struct sbuf *b, char c)
{
    sbuf_add(b, &c, 1);
}

void sbuf_vaddf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sbuf_add(b, tmp, (size_t)n);
        return;
    }
    if (grow(b, (size_t)n) < 0)
        return;
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_vaddf(b, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

void sbuf_add_json_str(struct sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\' && p[i] < 0x80)
        i++;
    if (i == n) { /* nothing to escape, the usual case: one copy */
        if (grow(b, n + 2) < 0)
            return;
        b->buf[b->len] = '"';
        memcpy(b->buf + b->len + 1, s, n);
        b->len += n + 2;
        b->buf[b->len - 1] = '"';
        b->buf[b->len] = '\0';
        return;
    }
    sbuf_addc(b, '"');
    sbuf_add(b, s, i);
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t j = i;
            while (j < n && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && p[j] < 0x80)
                j++;
            sbuf_add(b, s + i, j - i);
            i = j;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_seq(p + i, n - i);
            if (l == 0) {
                sbuf_adds(b, "\\ufffd");
                i++;
            } else {
                sbuf_add(b, s + i, l);
                i += l;
            }
            continue;
        }
        switch (c) {
        case '"':
            sbuf_adds(b, "\\\"");
            break;
        case '\\':
            sbuf_adds(b, "\\\\");
            break;
        case '\n':
            sbuf_adds(b, "\\n");
            break;
        case '\r':
            sbuf_adds(b, "\\r");
            break;
        case '\t':
            sbuf_adds(b, "\\t");
            break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sbuf_add(b, e, 6);
        }
        }
        i++;
    }
    sbuf_addc(b, '"');
}

char *sbuf_steal(struct sbuf *b)
{
    char *r = b->buf;
    if (!r)
        r = calloc(1, 1);
    sbuf_init(b);
    return r;
}
