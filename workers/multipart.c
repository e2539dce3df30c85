#include "multipart.h"

#include <ctype.h>
#include <string.h>

#include "common/utf8.h"

#define HEADERS_MAX 8192 /* of one part */

static int lc_prefix(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n < k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* A token or a quoted-string at *pp (before e) into out (cap with the NUL);
 * *pp moves past it. -1 when malformed or too long. */
static int param_value(const char **pp, const char *e, char *out, size_t cap)
{
    const char *p = *pp;
    size_t o = 0;
    if (p < e && *p == '"') {
        for (p++; p < e && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < e)
                p++;
            if (o + 1 >= cap)
                return -1;
            out[o++] = *p;
        }
        if (p >= e)
            return -1;
        p++;
    } else {
        for (; p < e && *p != ';' && *p != ' ' && *p != '\t'; p++) {
            if (o + 1 >= cap || *p == '"')
                return -1;
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    *pp = p;
    return 0;
}

/* Calls fn for each "key=value" parameter after the first ';' of [p, e). */
static int each_param(const char *p, const char *e,
                      int (*fn)(void *arg, const char *k, size_t kl, const char **vp, const char *e),
                      void *arg)
{
    while (p < e) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        if (!semi)
            return 0;
        p = skip_ws(semi + 1, e);
        const char *k = p;
        while (p < e && *p != '=' && *p != ';')
            p++;
        if (p >= e || *p != '=')
            continue;
        size_t kl = (size_t)(p - k);
        while (kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
            kl--;
        p = skip_ws(p + 1, e);
        if (fn(arg, k, kl, &p, e) < 0)
            return -1;
    }
    return 0;
}

static int boundary_param(void *arg, const char *k, size_t kl, const char **vp, const char *e)
{
    char *out = arg;
    char v[MP_BOUNDARY_MAX + 2];
    if (kl != 8 || !lc_prefix(k, kl, "boundary")) {
        char skip[256];
        return param_value(vp, e, skip, sizeof skip) < 0 ? -1 : 0;
    }
    if (param_value(vp, e, v, sizeof v) < 0)
        return -1;
    size_t n = strlen(v);
    if (n == 0 || n > MP_BOUNDARY_MAX || v[n - 1] == ' ')
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && !strchr("'()+_,-./:=? ", v[i]))
            return -1;
    memcpy(out, v, n + 1);
    return 0;
}

int multipart_boundary(const char *ctype, size_t n, char out[MP_BOUNDARY_MAX + 1])
{
    const char *e = ctype + n, *p = skip_ws(ctype, e);
    out[0] = '\0';
    if (!lc_prefix(p, (size_t)(e - p), "multipart/form-data"))
        return -1;
    p += 19;
    p = skip_ws(p, e);
    if (p < e && *p != ';')
        return -1;
    if (each_param(p, e, boundary_param, out) < 0)
        return -1;
    return out[0] ? 0 : -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

struct disp {
    struct mp_part *part;
    int star; /* filename came from filename* */
};

static int disp_param(void *arg, const char *k, size_t kl, const char **vp, const char *e)
{
    struct disp *d = arg;
    char v[MP_FILENAME_MAX * 3];
    if (param_value(vp, e, v, sizeof v) < 0)
        return -1;
    struct mp_part *pt = d->part;
    if (kl == 4 && lc_prefix(k, kl, "name")) {
        if (strlen(v) >= sizeof pt->name)
            return -1;
        strcpy(pt->name, v);
    } else if (kl == 8 && lc_prefix(k, kl, "filename") && !d->star) {
        if (strlen(v) >= sizeof pt->filename)
            return -1;
        strcpy(pt->filename, v);
        pt->has_filename = 1;
    } else if (kl == 9 && lc_prefix(k, kl, "filename*")) {
        /* RFC 5987: UTF-8''percent-encoded (the only charset taken). */
        if (!lc_prefix(v, strlen(v), "utf-8'"))
            return 0;
        const char *q = strchr(v + 6, '\'');
        if (!q)
            return -1;
        size_t o = 0;
        for (q++; *q; q++) {
            char c = *q;
            if (c == '%') {
                int hi = hexval(q[1]), lo = hi >= 0 ? hexval(q[2]) : -1;
                if (lo < 0)
                    return -1;
                c = (char)(hi << 4 | lo);
                q += 2;
                if (c == '\0')
                    return -1; /* "evil.html%00.jpg" would end at the NUL */
            }
            if (o + 1 >= sizeof pt->filename)
                return -1;
            pt->filename[o++] = c;
        }
        pt->filename[o] = '\0';
        pt->has_filename = 1;
        d->star = 1;
    }
    return 0;
}

/* One header line [p, e) of a part. */
static int part_header(struct mp_part *pt, const char *p, const char *e)
{
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (!colon)
        return -1;
    size_t nl = (size_t)(colon - p);
    const char *v = skip_ws(colon + 1, e);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (nl == 19 && lc_prefix(p, nl, "content-disposition")) {
        if (!lc_prefix(v, (size_t)(e - v), "form-data"))
            return -1;
        const char *after = skip_ws(v + 9, e); /* "form-data" alone or with parameters, not "form-dataX" */
        if (after < e && *after != ';')
            return -1;
        struct disp d = {pt, 0};
        return each_param(v, e, disp_param, &d);
    }
    if (nl == 12 && lc_prefix(p, nl, "content-type")) {
        size_t n = (size_t)(e - v);
        if (n >= sizeof pt->type)
            return -1;
        memcpy(pt->type, v, n);
        pt->type[n] = '\0';
    }
    return 0;
}

int multipart_parse(const char *body, size_t n, const char *boundary, struct mp_part *parts, int *nparts,
                    const char **err)
{
    char delim[MP_BOUNDARY_MAX + 5]; /* CRLF "--" boundary */
    size_t bl = strlen(boundary);
    *nparts = 0;
    if (bl == 0 || bl > MP_BOUNDARY_MAX) {
        *err = "invalid boundary";
        return -1;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, bl);
    size_t dl = bl + 4;
    const char *e = body + n, *p;
    /* The first delimiter opens the body, or follows a preamble and CRLF. */
    if (n >= dl - 2 && !memcmp(body, delim + 2, dl - 2)) {
        p = body + dl - 2;
    } else {
        const char *q = memmem(body, n, delim, dl);
        if (!q) {
            *err = "the body has no part with the boundary of its Content-Type";
            return -1;
        }
        p = q + dl;
    }
    for (;;) {
        if (e - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0; /* the close delimiter; the epilogue is ignored */
        p = skip_ws(p, e);
        if (e - p < 2 || p[0] != '\r' || p[1] != '\n') {
            *err = "malformed multipart delimiter";
            return -1;
        }
        p += 2;
        if (*nparts >= MP_MAX_PARTS) {
            *err = "too many parts";
            return -1;
        }
        struct mp_part *pt = &parts[*nparts];
        memset(pt, 0, sizeof *pt);
        const char *hstart = p;
        for (;;) {
            const char *eol = memmem(p, (size_t)(e - p), "\r\n", 2);
            if (!eol || eol - hstart > HEADERS_MAX) {
                *err = "malformed or too long part headers";
                return -1;
            }
            if (eol == p) {
                p += 2;
                break;
            }
            if (part_header(pt, p, eol) < 0) {
                *err = "malformed part header";
                return -1;
            }
            p = eol + 2;
        }
        const char *q = memmem(p, (size_t)(e - p), delim, dl);
        if (!q) {
            *err = "a part is not closed by the boundary";
            return -1;
        }
        pt->data = p;
        pt->len = (size_t)(q - p);
        (*nparts)++;
        p = q + dl;
    }
}

/* A small text field: -1 when too long or holding a NUL. */
static int part_text(const struct mp_part *p, char *out, size_t cap)
{
    if (p->len >= cap || memchr(p->data, 0, p->len))
        return -1;
    memcpy(out, p->data, p->len);
    out[p->len] = '\0';
    return 0;
}

int multipart_form(const struct mp_part *parts, int n, struct mp_form *f, const char **bad)
{
    memset(f, 0, sizeof *f);
    *bad = NULL;
    for (int i = 0; i < n && !*bad; i++) {
        const struct mp_part *p = &parts[i];
        if (!strcmp(p->name, "file")) {
            if (f->file)
                *bad = "file";
            f->file = p;
        } else if (!strcmp(p->name, "kind")) {
            *bad = part_text(p, f->kind, sizeof f->kind) < 0 ? "kind" : NULL;
        } else if (!strcmp(p->name, "file_name")) {
            *bad = part_text(p, f->file_name, sizeof f->file_name) < 0 ? "file_name" : NULL;
        } else if (!strcmp(p->name, "sha256")) {
            *bad = part_text(p, f->sha256, sizeof f->sha256) < 0 ? "sha256" : NULL;
        }
    }
    return *bad ? -1 : 0;
}

int multipart_url_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0 || (hi | lo) == 0)
                return -1;
            c = hi << 4 | lo;
            p += 2;
        }
        *o++ = (char)c;
    }
    *o = '\0';
    return 0;
}

int multipart_file_name(const char *in, char out[MP_KEPT_NAME_MAX + 1])
{
    const char *base = in;
    for (const char *p = in; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    while (*base == ' ')
        base++;
    size_t n = strlen(base);
    while (n && base[n - 1] == ' ')
        n--;
    if (n > MP_KEPT_NAME_MAX || utf8_len(base, n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)base[i] < 0x20 || base[i] == 0x7f)
            return -1;
    if ((n == 1 && base[0] == '.') || (n == 2 && !memcmp(base, "..", 2)))
        n = 0;
    memcpy(out, base, n);
    out[n] = '\0';
    return 0;
}
