/* WhatsApp binary node codec. The decoder treats its input as hostile: every length is
 * checked against what is left before use, nesting and node counts are bounded, and
 * strings that would carry NUL bytes or nested JIDs are refused. Encoder and decoder
 * stay in one file (~1,300 lines): they share the token tables, the JID forms and the
 * packed-string rules, and must not drift apart. */
#include "wa_binary.h"

#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "wa_tokens.h"

/* Wire tags that are not single-byte tokens. */
enum {
    TAG_LIST_EMPTY = 0x00,
    TAG_DICTIONARY_0 = 0xEC,
    TAG_DICTIONARY_3 = 0xEF,
    TAG_INTEROP_JID = 0xF5,
    TAG_FB_JID = 0xF6,
    TAG_AD_JID = 0xF7,
    TAG_LIST_8 = 0xF8,
    TAG_LIST_16 = 0xF9,
    TAG_JID_PAIR = 0xFA,
    TAG_HEX_8 = 0xFB,
    TAG_BINARY_8 = 0xFC,
    TAG_BINARY_20 = 0xFD,
    TAG_BINARY_32 = 0xFE,
    TAG_NIBBLE_8 = 0xFF,
};
#define PACKED_MAX 127 /* longest string the encoder packs */

static const char SERVER_WHATSAPP[] = "s.whatsapp.net";
static const char SERVER_LID[] = "lid";
static const char SERVER_HOSTED[] = "hosted";
static const char SERVER_HOSTED_LID[] = "hosted.lid";
static const char SERVER_MSGR[] = "msgr";
static const char SERVER_INTEROP[] = "interop";

const wa_limits wa_limits_default = {
    .max_depth = WA_MAX_DEPTH,
    .max_nodes = 100000,
    .max_bytes = 64u << 20,
    .max_inflated = 8u << 20,
};

const char *wa_strerror(int err)
{
    switch (err) {
    case WA_OK:
        return "ok";
    case WA_ERR_TRUNCATED:
        return "truncated input";
    case WA_ERR_MALFORMED:
        return "malformed node";
    case WA_ERR_TRAILING:
        return "trailing bytes after node";
    case WA_ERR_DEPTH:
        return "nesting too deep";
    case WA_ERR_LIMIT:
        return "node or memory limit exceeded";
    case WA_ERR_INFLATE:
        return "bad zlib stream";
    case WA_ERR_TOO_BIG:
        return "inflated frame too large";
    case WA_ERR_NOMEM:
        return "out of memory";
    case WA_ERR_UNENCODABLE:
        return "node cannot be encoded";
    }
    return "unknown error";
}

/* ------------------------------------------------------------------ arena */

struct wa_chunk {
    struct wa_chunk *next;
    size_t cap, used;
    max_align_t data[]; /* cap bytes; the element type only provides the alignment */
};

struct wa_arena {
    struct wa_chunk *head; /* the chunk being filled; older and dedicated chunks follow */
    size_t bytes;
};

#define CHUNK_FIRST 4096u
#define CHUNK_MAX (1u << 20)

wa_arena *wa_arena_new(void)
{
    return calloc(1, sizeof(wa_arena));
}

void wa_arena_free(wa_arena *a)
{
    if (!a)
        return;
    struct wa_chunk *c = a->head;
    while (c) {
        struct wa_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

size_t wa_arena_bytes(const wa_arena *a)
{
    return a->bytes;
}

static struct wa_chunk *chunk_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(struct wa_chunk))
        return NULL;
    struct wa_chunk *c = malloc(sizeof(struct wa_chunk) + cap);
    if (c) {
        c->next = NULL;
        c->cap = cap;
        c->used = 0;
    }
    return c;
}

/* Uninitialised memory; the callers that do not overwrite it all use wa_arena_alloc. */
static void *arena_take(wa_arena *a, size_t n)
{
    const size_t al = alignof(max_align_t);
    if (n > SIZE_MAX - al)
        return NULL;
    size_t need = n ? (n + al - 1) & ~(al - 1) : al;
    struct wa_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = c ? c->cap * 2 : CHUNK_FIRST;
        if (cap > CHUNK_MAX)
            cap = CHUNK_MAX;
        if (need > cap / 2) {
            /* A big block gets a chunk of its own behind the head, whose free space stays in use. */
            struct wa_chunk *big = chunk_new(need);
            if (!big)
                return NULL;
            if (c) {
                big->next = c->next;
                c->next = big;
            } else {
                a->head = big;
            }
            c = big;
        } else {
            c = chunk_new(cap);
            if (!c)
                return NULL;
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += need;
    a->bytes += need;
    return p;
}

void *wa_arena_alloc(wa_arena *a, size_t n)
{
    void *p = arena_take(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *wa_arena_strndup(wa_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = arena_take(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *arena_strdup(wa_arena *a, const char *s)
{
    return wa_arena_strndup(a, s, strlen(s));
}

/* ------------------------------------------------------------------ growable output buffer */

typedef struct wbuf {
    uint8_t *p; /* malloc'd; handed to the caller on success */
    size_t len, cap;
    int oom; /* sticky: once set, writes are dropped and the result is WA_ERR_NOMEM */
} wbuf;

static void wb_reserve(wbuf *b, size_t k)
{
    if (b->oom || b->cap - b->len >= k)
        return;
    if (k > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < k)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void wb_put(wbuf *b, const void *src, size_t k)
{
    wb_reserve(b, k);
    if (!b->oom && k) {
        memcpy(b->p + b->len, src, k);
        b->len += k;
    }
}

static void wb_byte(wbuf *b, uint8_t v)
{
    wb_put(b, &v, 1);
}

static void wb_be(wbuf *b, uint32_t v, int k)
{
    for (int i = k - 1; i >= 0; i--)
        wb_byte(b, (uint8_t)(v >> (8 * i)));
}

static void wb_str(wbuf *b, const char *s)
{
    wb_put(b, s, strlen(s));
}

/* ------------------------------------------------------------------ JIDs */

/* The AD_JID domain type a server stands for, or -1 for any other server. */
static int server_domain(const char *server)
{
    if (strcmp(server, SERVER_WHATSAPP) == 0)
        return WA_DOMAIN_WHATSAPP;
    if (strcmp(server, SERVER_LID) == 0)
        return WA_DOMAIN_LID;
    if (strcmp(server, SERVER_HOSTED) == 0)
        return WA_DOMAIN_HOSTED;
    if (strcmp(server, SERVER_HOSTED_LID) == 0)
        return WA_DOMAIN_HOSTED_LID;
    return -1;
}

/* Unknown domain types are agents on the default server. */
static const char *domain_server(uint8_t domain)
{
    switch (domain) {
    case WA_DOMAIN_LID:
        return SERVER_LID;
    case WA_DOMAIN_HOSTED:
        return SERVER_HOSTED;
    case WA_DOMAIN_HOSTED_LID:
        return SERVER_HOSTED_LID;
    default:
        return SERVER_WHATSAPP;
    }
}

/* The concrete wire form: the stored one, or for WA_JID_AUTO the one the server and
 * device call for (device-specific users and hosted accounts need AD_JID). */
static int jid_wire(const wa_jid *j)
{
    if (j->wire != WA_JID_AUTO)
        return j->wire;
    switch (server_domain(j->server)) {
    case WA_DOMAIN_WHATSAPP:
        return j->device || j->agent ? WA_JID_AD : WA_JID_PAIR;
    case WA_DOMAIN_LID:
        return j->device ? WA_JID_AD : WA_JID_PAIR;
    case WA_DOMAIN_HOSTED:
    case WA_DOMAIN_HOSTED_LID:
        return WA_JID_AD;
    }
    if (strcmp(j->server, SERVER_MSGR) == 0)
        return WA_JID_FB;
    if (strcmp(j->server, SERVER_INTEROP) == 0)
        return WA_JID_INTEROP;
    return WA_JID_PAIR;
}

/* Digits only, 1..5 of them, value <= max. */
static int parse_small_uint(const char *p, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int wa_jid_parse(wa_arena *a, const char *s, wa_jid *out)
{
    memset(out, 0, sizeof(*out));
    const char *at = strchr(s, '@');
    if (!at) {
        if (!*s)
            return WA_ERR_MALFORMED;
        out->user = "";
        out->server = arena_strdup(a, s);
        return out->server ? WA_OK : WA_ERR_NOMEM;
    }
    const char *server = at + 1;
    if (!*server || strchr(server, '@'))
        return WA_ERR_MALFORMED;
    const char *u = s;
    size_t ulen = (size_t)(at - s);
    unsigned v;
    if (strcmp(server, SERVER_INTEROP) == 0) {
        const char *dash = memchr(u, '-', ulen);
        if (dash) {
            if (parse_small_uint(u, (size_t)(dash - u), UINT16_MAX, &v) != 0)
                return WA_ERR_MALFORMED;
            out->integrator = (uint16_t)v;
            ulen -= (size_t)(dash + 1 - u);
            u = dash + 1;
        }
    }
    const char *colon = memchr(u, ':', ulen);
    if (colon) {
        if (parse_small_uint(colon + 1, ulen - (size_t)(colon + 1 - u), UINT16_MAX, &v) != 0)
            return WA_ERR_MALFORMED;
        out->device = (uint16_t)v;
        ulen = (size_t)(colon - u);
    }
    if (strcmp(server, SERVER_WHATSAPP) == 0) {
        const char *us = memchr(u, '_', ulen);
        if (us) {
            if (parse_small_uint(us + 1, ulen - (size_t)(us + 1 - u), UINT8_MAX, &v) != 0)
                return WA_ERR_MALFORMED;
            out->agent = (uint8_t)v;
            ulen = (size_t)(us - u);
        }
    }
    out->user = wa_arena_strndup(a, u, ulen);
    out->server = arena_strdup(a, server);
    return out->user && out->server ? WA_OK : WA_ERR_NOMEM;
}

int wa_jid_format(const wa_jid *j, char *buf, size_t cap)
{
    const char *user = j->user ? j->user : "", *server = j->server ? j->server : "";
    if (strcmp(server, SERVER_INTEROP) == 0)
        return snprintf(buf, cap, "%u-%s:%u@%s", j->integrator, user, j->device, server);
    if (j->agent)
        return snprintf(buf, cap, "%s_%u:%u@%s", user, j->agent, j->device, server);
    if (j->device)
        return snprintf(buf, cap, "%s:%u@%s", user, j->device, server);
    if (*user)
        return snprintf(buf, cap, "%s@%s", user, server);
    return snprintf(buf, cap, "%s", server);
}

int wa_jid_equal(const wa_jid *x, const wa_jid *y)
{
    return strcmp(x->user, y->user) == 0 && strcmp(x->server, y->server) == 0 && x->device == y->device &&
           x->agent == y->agent && x->integrator == y->integrator;
}

static int jid_copy(wa_arena *a, wa_jid *dst, const wa_jid *src)
{
    *dst = *src;
    dst->user = arena_strdup(a, src->user ? src->user : "");
    dst->server = arena_strdup(a, src->server ? src->server : "");
    return dst->user && dst->server ? WA_OK : WA_ERR_NOMEM;
}

/* ------------------------------------------------------------------ building and reading */

wa_node *wa_node_new(wa_arena *a, const char *tag)
{
    wa_node *n = wa_arena_alloc(a, sizeof(*n));
    if (!n || !(n->tag = arena_strdup(a, tag)))
        return NULL;
    return n;
}

static wa_attr *attr_push(wa_arena *a, wa_node *n)
{
    if (n->nattrs == n->attr_cap) {
        if (n->attr_cap > UINT32_MAX / 2)
            return NULL;
        uint32_t cap = n->attr_cap ? n->attr_cap * 2 : 4;
        wa_attr *v = wa_arena_alloc(a, (size_t)cap * sizeof(*v));
        if (!v)
            return NULL;
        if (n->nattrs)
            memcpy(v, n->attrs, n->nattrs * sizeof(*v));
        n->attrs = v;
        n->attr_cap = cap;
    }
    wa_attr *at = &n->attrs[n->nattrs];
    memset(at, 0, sizeof(*at));
    return at;
}

int wa_node_add_attr(wa_arena *a, wa_node *n, const char *key, const char *value)
{
    wa_attr *at = attr_push(a, n);
    if (!at || !(at->key = arena_strdup(a, key)) || !(at->str = arena_strdup(a, value)))
        return WA_ERR_NOMEM;
    at->type = WA_VAL_STR;
    n->nattrs++;
    return WA_OK;
}

int wa_node_add_attr_jid(wa_arena *a, wa_node *n, const char *key, const wa_jid *jid)
{
    wa_attr *at = attr_push(a, n);
    if (!at || !(at->key = arena_strdup(a, key)) || jid_copy(a, &at->jid, jid) != WA_OK)
        return WA_ERR_NOMEM;
    at->type = WA_VAL_JID;
    n->nattrs++;
    return WA_OK;
}

int wa_node_add_child(wa_arena *a, wa_node *n, wa_node *child)
{
    if (n->content != WA_CONTENT_LIST) {
        n->content = WA_CONTENT_LIST;
        n->children = NULL;
        n->nchildren = n->child_cap = 0;
    }
    if (n->nchildren == n->child_cap) {
        if (n->child_cap > UINT32_MAX / 2)
            return WA_ERR_NOMEM;
        uint32_t cap = n->child_cap ? n->child_cap * 2 : 4;
        wa_node **v = arena_take(a, (size_t)cap * sizeof(*v));
        if (!v)
            return WA_ERR_NOMEM;
        if (n->nchildren)
            memcpy(v, n->children, n->nchildren * sizeof(*v));
        n->children = v;
        n->child_cap = cap;
    }
    n->children[n->nchildren++] = child;
    return WA_OK;
}

int wa_node_set_bytes(wa_arena *a, wa_node *n, const void *p, size_t len)
{
    uint8_t *copy = arena_take(a, len);
    if (!copy)
        return WA_ERR_NOMEM;
    if (len)
        memcpy(copy, p, len);
    n->content = WA_CONTENT_BYTES;
    n->bytes = copy;
    n->nbytes = len;
    return WA_OK;
}

int wa_node_set_str(wa_arena *a, wa_node *n, const char *s)
{
    const char *copy = arena_strdup(a, s);
    if (!copy)
        return WA_ERR_NOMEM;
    n->content = WA_CONTENT_STR;
    n->str = copy;
    return WA_OK;
}

int wa_node_set_jid(wa_arena *a, wa_node *n, const wa_jid *jid)
{
    wa_jid copy;
    if (jid_copy(a, &copy, jid) != WA_OK)
        return WA_ERR_NOMEM;
    n->content = WA_CONTENT_JID;
    n->jid = copy;
    return WA_OK;
}

const wa_attr *wa_node_attr(const wa_node *n, const char *key)
{
    for (uint32_t i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].key, key) == 0)
            return &n->attrs[i];
    return NULL;
}

const char *wa_node_attr_str(const wa_node *n, const char *key)
{
    const wa_attr *at = wa_node_attr(n, key);
    return at && at->type == WA_VAL_STR ? at->str : NULL;
}

const char *wa_node_attr_text(const wa_node *n, const char *key, char *buf, size_t len)
{
    const wa_attr *a = wa_node_attr(n, key);
    if (!a)
        return NULL;
    if (a->type == WA_VAL_STR)
        return a->str;
    return wa_jid_format(&a->jid, buf, len) < (int)len ? buf : NULL;
}

const wa_node *wa_node_child(const wa_node *n, const char *tag)
{
    if (n->content != WA_CONTENT_LIST)
        return NULL;
    for (uint32_t i = 0; i < n->nchildren; i++)
        if (strcmp(n->children[i]->tag, tag) == 0)
            return n->children[i];
    return NULL;
}

static int jid_same_wire(const wa_jid *x, const wa_jid *y)
{
    return wa_jid_equal(x, y) && jid_wire(x) == jid_wire(y);
}

/* Raw strings are written as BINARY items, which read back as bytes: the two are one thing. */
static int content_as_bytes(const wa_node *n, const uint8_t **p, size_t *len)
{
    if (n->content == WA_CONTENT_BYTES) {
        *p = n->bytes;
        *len = n->nbytes;
        return 1;
    }
    if (n->content == WA_CONTENT_STR) {
        *p = (const uint8_t *)n->str;
        *len = strlen(n->str);
        return 1;
    }
    return 0;
}

int wa_node_equal(const wa_node *x, const wa_node *y)
{
    if (strcmp(x->tag, y->tag) != 0 || x->nattrs != y->nattrs)
        return 0;
    for (uint32_t i = 0; i < x->nattrs; i++) {
        const wa_attr *ax = &x->attrs[i], *ay = &y->attrs[i];
        if (strcmp(ax->key, ay->key) != 0 || ax->type != ay->type)
            return 0;
        if (ax->type == WA_VAL_STR ? strcmp(ax->str, ay->str) != 0 : !jid_same_wire(&ax->jid, &ay->jid))
            return 0;
    }
    const uint8_t *px, *py;
    size_t lx, ly;
    if (content_as_bytes(x, &px, &lx) && content_as_bytes(y, &py, &ly))
        return lx == ly && (lx == 0 || memcmp(px, py, lx) == 0);
    if (x->content != y->content)
        return 0;
    switch (x->content) {
    case WA_CONTENT_NONE:
        return 1;
    case WA_CONTENT_JID:
        return jid_same_wire(&x->jid, &y->jid);
    case WA_CONTENT_LIST:
        if (x->nchildren != y->nchildren)
            return 0;
        for (uint32_t i = 0; i < x->nchildren; i++)
            if (!wa_node_equal(x->children[i], y->children[i]))
                return 0;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ decoder */

typedef struct dec {
    const uint8_t *p;
    size_t n, off;
    wa_arena *a;
    size_t arena_start; /* wa_arena_bytes() when this decode began */
    const wa_limits *lim;
    size_t nodes;
} dec;

static size_t dec_left(const dec *d)
{
    return d->n - d->off;
}

static int dec_u8(dec *d, uint8_t *v)
{
    if (d->off >= d->n)
        return WA_ERR_TRUNCATED;
    *v = d->p[d->off++];
    return WA_OK;
}

static int dec_be(dec *d, int k, uint32_t *v)
{
    if (dec_left(d) < (size_t)k)
        return WA_ERR_TRUNCATED;
    uint32_t r = 0;
    for (int i = 0; i < k; i++)
        r = (r << 8) | d->p[d->off++];
    *v = r;
    return WA_OK;
}

/* Uninitialised arena memory within the decode's byte budget; NULL with *rc set if not. */
static void *dec_alloc(dec *d, size_t n, int *rc)
{
    size_t used = wa_arena_bytes(d->a) - d->arena_start;
    if (n > d->lim->max_bytes || used > d->lim->max_bytes - n) {
        *rc = WA_ERR_LIMIT;
        return NULL;
    }
    void *p = arena_take(d->a, n);
    if (!p)
        *rc = WA_ERR_NOMEM;
    return p;
}

#define TRY(expr)                                                                                            \
    do {                                                                                                     \
        int try_rc_ = (expr);                                                                                \
        if (try_rc_ != WA_OK)                                                                                \
            return try_rc_;                                                                                  \
    } while (0)

static int is_jid_tag(uint8_t t)
{
    return t == TAG_JID_PAIR || t == TAG_AD_JID || t == TAG_FB_JID || t == TAG_INTEROP_JID;
}

static int is_binary_tag(uint8_t t)
{
    return t == TAG_BINARY_8 || t == TAG_BINARY_20 || t == TAG_BINARY_32;
}

/* The length after a BINARY_* tag, checked against the input left. */
static int dec_binary_len(dec *d, uint8_t t, size_t *len)
{
    uint32_t v;
    if (t == TAG_BINARY_8)
        TRY(dec_be(d, 1, &v));
    else if (t == TAG_BINARY_20) {
        TRY(dec_be(d, 3, &v));
        v &= 0x0FFFFF; /* the top nibble is not part of the length */
    } else
        TRY(dec_be(d, 4, &v));
    if (v > dec_left(d))
        return WA_ERR_TRUNCATED;
    *len = v;
    return WA_OK;
}

static int dec_packed(dec *d, uint8_t t, const char **out)
{
    uint8_t head;
    TRY(dec_u8(d, &head));
    size_t nb = head & 0x7F, odd = head >> 7;
    if (odd && nb == 0)
        return WA_ERR_MALFORMED;
    if (nb > dec_left(d))
        return WA_ERR_TRUNCATED;
    size_t nch = nb * 2 - odd;
    int rc;
    char *s = dec_alloc(d, nch + 1, &rc);
    if (!s)
        return rc;
    const uint8_t *src = d->p + d->off;
    for (size_t i = 0; i < nb * 2; i++) {
        unsigned v = i & 1 ? src[i / 2] & 0x0F : src[i / 2] >> 4;
        char c;
        if (t == TAG_HEX_8)
            c = (char)(v < 10 ? '0' + v : 'A' + v - 10);
        else if (v < 10)
            c = (char)('0' + v);
        else if (v == 10)
            c = '-';
        else if (v == 11)
            c = '.';
        else if (v == 15 && i == nch)
            c = 0; /* the pad of an odd length */
        else
            return WA_ERR_MALFORMED; /* 12..14 mean nothing, and a NUL may not enter a string */
        if (i < nch)
            s[i] = c;
    }
    s[nch] = '\0';
    d->off += nb;
    *out = s;
    return WA_OK;
}

/* A plain string item (token, dictionary entry, packed, raw, or LIST_EMPTY meaning "")
 * whose tag byte t has been read. Lists and JIDs are refused: no input can nest here. */
static int dec_string(dec *d, uint8_t t, const char **out)
{
    if (t == TAG_LIST_EMPTY) {
        *out = "";
        return WA_OK;
    }
    if (t < WA_SINGLE_TOKENS) {
        *out = wa_single_tokens[t];
        return WA_OK;
    }
    if (t >= TAG_DICTIONARY_0 && t <= TAG_DICTIONARY_3) {
        uint8_t i;
        TRY(dec_u8(d, &i));
        *out = wa_double_tokens[t - TAG_DICTIONARY_0][i];
        return WA_OK;
    }
    if (t == TAG_NIBBLE_8 || t == TAG_HEX_8)
        return dec_packed(d, t, out);
    if (is_binary_tag(t)) {
        size_t len;
        TRY(dec_binary_len(d, t, &len));
        const uint8_t *src = d->p + d->off;
        if (memchr(src, 0, len))
            return WA_ERR_MALFORMED;
        int rc;
        char *s = dec_alloc(d, len + 1, &rc);
        if (!s)
            return rc;
        memcpy(s, src, len);
        s[len] = '\0';
        d->off += len;
        *out = s;
        return WA_OK;
    }
    return WA_ERR_MALFORMED;
}

static int dec_next_string(dec *d, const char **out)
{
    uint8_t t;
    TRY(dec_u8(d, &t));
    return dec_string(d, t, out);
}

static int dec_jid(dec *d, uint8_t t, wa_jid *j)
{
    memset(j, 0, sizeof(*j));
    uint32_t v;
    switch (t) {
    case TAG_JID_PAIR:
        j->wire = WA_JID_PAIR;
        TRY(dec_next_string(d, &j->user));
        TRY(dec_next_string(d, &j->server));
        return *j->server ? WA_OK : WA_ERR_MALFORMED;
    case TAG_AD_JID: {
        uint8_t domain, device;
        TRY(dec_u8(d, &domain));
        TRY(dec_u8(d, &device));
        TRY(dec_next_string(d, &j->user));
        j->wire = WA_JID_AD;
        j->device = device;
        j->server = domain_server(domain);
        j->agent = j->server == SERVER_WHATSAPP ? domain : 0;
        return WA_OK;
    }
    case TAG_FB_JID:
        j->wire = WA_JID_FB;
        TRY(dec_next_string(d, &j->user));
        TRY(dec_be(d, 2, &v));
        j->device = (uint16_t)v;
        TRY(dec_next_string(d, &j->server));
        return strcmp(j->server, SERVER_MSGR) == 0 ? WA_OK : WA_ERR_MALFORMED;
    case TAG_INTEROP_JID:
        j->wire = WA_JID_INTEROP;
        TRY(dec_next_string(d, &j->user));
        TRY(dec_be(d, 2, &v));
        j->device = (uint16_t)v;
        TRY(dec_be(d, 2, &v));
        j->integrator = (uint16_t)v;
        TRY(dec_next_string(d, &j->server));
        return strcmp(j->server, SERVER_INTEROP) == 0 ? WA_OK : WA_ERR_MALFORMED;
    }
    return WA_ERR_MALFORMED;
}

static int dec_node(dec *d, unsigned depth, wa_node **out);

static int dec_list(dec *d, uint8_t t, unsigned depth, wa_node *parent)
{
    uint32_t count = 0;
    if (t == TAG_LIST_8)
        TRY(dec_be(d, 1, &count));
    else if (t == TAG_LIST_16)
        TRY(dec_be(d, 2, &count));
    /* Every child takes at least 3 bytes (list tag, size, tag): refuse before allocating. */
    if ((size_t)count * 3 > dec_left(d))
        return WA_ERR_TRUNCATED;
    wa_node **kids = NULL;
    int rc;
    if (count && !(kids = dec_alloc(d, count * sizeof(*kids), &rc)))
        return rc;
    for (uint32_t i = 0; i < count; i++)
        TRY(dec_node(d, depth + 1, &kids[i]));
    parent->content = WA_CONTENT_LIST;
    parent->children = kids;
    parent->nchildren = parent->child_cap = count;
    return WA_OK;
}

static int dec_content(dec *d, unsigned depth, wa_node *n)
{
    uint8_t t;
    TRY(dec_u8(d, &t));
    if (t == TAG_LIST_EMPTY || t == TAG_LIST_8 || t == TAG_LIST_16)
        return dec_list(d, t, depth, n);
    if (is_binary_tag(t)) {
        size_t len;
        int rc;
        TRY(dec_binary_len(d, t, &len));
        uint8_t *b = dec_alloc(d, len, &rc);
        if (!b)
            return rc;
        if (len)
            memcpy(b, d->p + d->off, len);
        d->off += len;
        n->content = WA_CONTENT_BYTES;
        n->bytes = b;
        n->nbytes = len;
        return WA_OK;
    }
    if (is_jid_tag(t)) {
        n->content = WA_CONTENT_JID;
        return dec_jid(d, t, &n->jid);
    }
    n->content = WA_CONTENT_STR;
    return dec_string(d, t, &n->str);
}

static int dec_node(dec *d, unsigned depth, wa_node **out)
{
    if (depth > d->lim->max_depth)
        return WA_ERR_DEPTH;
    if (++d->nodes > d->lim->max_nodes)
        return WA_ERR_LIMIT;
    uint8_t t;
    uint32_t size;
    TRY(dec_u8(d, &t));
    if (t == TAG_LIST_8)
        TRY(dec_be(d, 1, &size));
    else if (t == TAG_LIST_16)
        TRY(dec_be(d, 2, &size));
    else
        return WA_ERR_MALFORMED;
    if (size == 0)
        return WA_ERR_MALFORMED;

    int rc;
    wa_node *n = dec_alloc(d, sizeof(*n), &rc);
    if (!n)
        return rc;
    memset(n, 0, sizeof(*n));
    TRY(dec_next_string(d, &n->tag));
    if (!*n->tag)
        return WA_ERR_MALFORMED;

    uint32_t nattrs = (size - 1) / 2;
    if ((size_t)nattrs * 2 > dec_left(d)) /* a key and a value take a byte each at least */
        return WA_ERR_TRUNCATED;
    if (nattrs) {
        if (!(n->attrs = dec_alloc(d, nattrs * sizeof(wa_attr), &rc)))
            return rc;
        memset(n->attrs, 0, nattrs * sizeof(wa_attr));
    }
    for (uint32_t i = 0; i < nattrs; i++) {
        wa_attr *at = &n->attrs[i];
        TRY(dec_next_string(d, &at->key));
        uint8_t vt;
        TRY(dec_u8(d, &vt));
        if (is_jid_tag(vt)) {
            at->type = WA_VAL_JID;
            TRY(dec_jid(d, vt, &at->jid));
        } else {
            at->type = WA_VAL_STR;
            TRY(dec_string(d, vt, &at->str));
        }
        n->nattrs = n->attr_cap = i + 1;
    }
    if (size % 2 == 0)
        TRY(dec_content(d, depth, n));
    *out = n;
    return WA_OK;
}

int wa_node_decode(const uint8_t *p, size_t n, const wa_limits *lim, wa_arena *a, wa_node **out)
{
    dec d = {.p = p, .n = n, .a = a, .arena_start = wa_arena_bytes(a), .lim = lim ? lim : &wa_limits_default};
    wa_node *root;
    TRY(dec_node(&d, 1, &root));
    if (d.off != d.n)
        return WA_ERR_TRAILING;
    *out = root;
    return WA_OK;
}

/* Inflates a zlib stream into a malloc'd buffer (caller frees), refusing output beyond max. */
static int inflate_bounded(const uint8_t *p, size_t n, size_t max, uint8_t **out, size_t *outlen)
{
    if (n > UINT_MAX)
        return WA_ERR_LIMIT;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int zrc = inflateInit(&zs);
    if (zrc != Z_OK)
        return zrc == Z_MEM_ERROR ? WA_ERR_NOMEM : WA_ERR_INFLATE;
    /* One byte past the limit tells "exactly max" apart from "more than max". */
    size_t limit = max < SIZE_MAX ? max + 1 : max;
    size_t cap = n < limit / 4 ? n * 4 + 64 : limit;
    if (cap > limit)
        cap = limit;
    uint8_t *buf = malloc(cap);
    int rc = buf ? WA_OK : WA_ERR_NOMEM;
    size_t len = 0;
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    while (rc == WA_OK) {
        if (len == cap) {
            if (cap == limit) {
                rc = WA_ERR_TOO_BIG;
                break;
            }
            size_t ncap = cap > limit / 2 ? limit : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = WA_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t room = cap - len;
        if (room > UINT_MAX)
            room = UINT_MAX;
        zs.next_out = buf + len;
        zs.avail_out = (uInt)room;
        zrc = inflate(&zs, Z_NO_FLUSH);
        len += room - zs.avail_out;
        if (zrc == Z_STREAM_END) {
            if (len > max)
                rc = WA_ERR_TOO_BIG;
            else if (zs.avail_in != 0)
                rc = WA_ERR_TRAILING;
            break;
        }
        if (zrc == Z_MEM_ERROR)
            rc = WA_ERR_NOMEM;
        else if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            rc = WA_ERR_INFLATE;
        else if (zs.avail_out != 0 && zs.avail_in == 0)
            rc = WA_ERR_INFLATE; /* all input used, stream unfinished */
    }
    inflateEnd(&zs);
    if (rc != WA_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return WA_OK;
}

int wa_frame_decode(const uint8_t *p, size_t n, const wa_limits *lim, wa_arena *a, wa_node **out)
{
    if (!lim)
        lim = &wa_limits_default;
    if (n < 1)
        return WA_ERR_TRUNCATED;
    if (!(p[0] & 0x02))
        return wa_node_decode(p + 1, n - 1, lim, a, out);
    uint8_t *plain;
    size_t plen;
    TRY(inflate_bounded(p + 1, n - 1, lim->max_inflated, &plain, &plen));
    int rc = wa_node_decode(plain, plen, lim, a, out);
    free(plain);
    return rc;
}

/* ------------------------------------------------------------------ encoder */

static int enc_binary_len(wbuf *b, size_t len)
{
    if (len < 256) {
        wb_byte(b, TAG_BINARY_8);
        wb_byte(b, (uint8_t)len);
    } else if (len < (1u << 20)) {
        wb_byte(b, TAG_BINARY_20);
        wb_be(b, (uint32_t)len, 3);
    } else if (len <= UINT32_MAX) {
        wb_byte(b, TAG_BINARY_32);
        wb_be(b, (uint32_t)len, 4);
    } else {
        return WA_ERR_UNENCODABLE;
    }
    return WA_OK;
}

static int packable(const char *s, size_t n, int hex)
{
    if (n == 0 || n > PACKED_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= '0' && c <= '9') || (hex ? (c >= 'A' && c <= 'F') : (c == '-' || c == '.'));
        if (!ok)
            return 0;
    }
    return 1;
}

static unsigned pack_nibble(char c)
{
    if (c == '-')
        return 10;
    if (c == '.')
        return 11;
    if (c >= 'A' && c <= 'F')
        return (unsigned)(c - 'A' + 10);
    return (unsigned)(c - '0');
}

static void enc_packed(wbuf *b, uint8_t tag, const char *s, size_t n)
{
    wb_byte(b, tag);
    wb_byte(b, (uint8_t)((n + 1) / 2 | (n % 2 ? 0x80 : 0)));
    for (size_t i = 0; i < n; i += 2) {
        unsigned lo = i + 1 < n ? pack_nibble(s[i + 1]) : 0x0F;
        wb_byte(b, (uint8_t)(pack_nibble(s[i]) << 4 | lo));
    }
}

/* The shortest form: single-byte token, dictionary entry, nibble- or hex-packed, raw. */
static int enc_string(wbuf *b, const char *s)
{
    if (!s)
        return WA_ERR_UNENCODABLE;
    size_t n = strlen(s);
    int dict, index;
    if (wa_token_lookup(s, n, &dict, &index)) {
        if (dict >= 0)
            wb_byte(b, (uint8_t)(TAG_DICTIONARY_0 + dict));
        wb_byte(b, (uint8_t)index);
        return WA_OK;
    }
    if (packable(s, n, 0)) {
        enc_packed(b, TAG_NIBBLE_8, s, n);
        return WA_OK;
    }
    if (packable(s, n, 1)) {
        enc_packed(b, TAG_HEX_8, s, n);
        return WA_OK;
    }
    TRY(enc_binary_len(b, n));
    wb_put(b, s, n);
    return WA_OK;
}

/* Refuses JIDs whose fields the chosen form cannot carry, so decoding gives them back. */
static int enc_jid(wbuf *b, const wa_jid *j)
{
    if (!j->user || !j->server || !*j->server)
        return WA_ERR_UNENCODABLE;
    switch (jid_wire(j)) {
    case WA_JID_PAIR:
        if (j->device || j->agent || j->integrator)
            return WA_ERR_UNENCODABLE;
        wb_byte(b, TAG_JID_PAIR);
        if (*j->user)
            TRY(enc_string(b, j->user));
        else
            wb_byte(b, TAG_LIST_EMPTY);
        return enc_string(b, j->server);
    case WA_JID_AD: {
        int domain = server_domain(j->server);
        if (domain < 0 || j->device > UINT8_MAX || j->integrator)
            return WA_ERR_UNENCODABLE;
        if (domain == WA_DOMAIN_WHATSAPP) {
            if (strcmp(domain_server(j->agent), SERVER_WHATSAPP) != 0)
                return WA_ERR_UNENCODABLE; /* that agent byte would read back as another server */
            domain = j->agent;
        } else if (j->agent) {
            return WA_ERR_UNENCODABLE;
        }
        wb_byte(b, TAG_AD_JID);
        wb_byte(b, (uint8_t)domain);
        wb_byte(b, (uint8_t)j->device);
        return enc_string(b, j->user);
    }
    case WA_JID_FB:
        if (strcmp(j->server, SERVER_MSGR) != 0 || j->agent || j->integrator)
            return WA_ERR_UNENCODABLE;
        wb_byte(b, TAG_FB_JID);
        TRY(enc_string(b, j->user));
        wb_be(b, j->device, 2);
        return enc_string(b, j->server);
    case WA_JID_INTEROP:
        if (strcmp(j->server, SERVER_INTEROP) != 0 || j->agent)
            return WA_ERR_UNENCODABLE;
        wb_byte(b, TAG_INTEROP_JID);
        TRY(enc_string(b, j->user));
        wb_be(b, j->device, 2);
        wb_be(b, j->integrator, 2);
        return enc_string(b, j->server);
    }
    return WA_ERR_UNENCODABLE;
}

static int enc_list_start(wbuf *b, size_t n)
{
    if (n == 0) {
        wb_byte(b, TAG_LIST_EMPTY);
    } else if (n < 256) {
        wb_byte(b, TAG_LIST_8);
        wb_byte(b, (uint8_t)n);
    } else if (n <= UINT16_MAX) {
        wb_byte(b, TAG_LIST_16);
        wb_be(b, (uint32_t)n, 2);
    } else {
        return WA_ERR_UNENCODABLE;
    }
    return WA_OK;
}

static int enc_node(wbuf *b, const wa_node *n, unsigned depth)
{
    if (depth > WA_MAX_DEPTH)
        return WA_ERR_DEPTH;
    if (!n || !n->tag || !*n->tag)
        return WA_ERR_UNENCODABLE;
    size_t size = 1 + 2 * (size_t)n->nattrs + (n->content != WA_CONTENT_NONE);
    if (size > UINT16_MAX)
        return WA_ERR_UNENCODABLE;
    TRY(enc_list_start(b, size));
    TRY(enc_string(b, n->tag));
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const wa_attr *at = &n->attrs[i];
        TRY(enc_string(b, at->key));
        if (at->type == WA_VAL_JID)
            TRY(enc_jid(b, &at->jid));
        else if (at->type == WA_VAL_STR)
            TRY(enc_string(b, at->str));
        else
            return WA_ERR_UNENCODABLE;
    }
    switch (n->content) {
    case WA_CONTENT_NONE:
        return WA_OK;
    case WA_CONTENT_LIST:
        TRY(enc_list_start(b, n->nchildren));
        for (uint32_t i = 0; i < n->nchildren; i++)
            TRY(enc_node(b, n->children[i], depth + 1));
        return WA_OK;
    case WA_CONTENT_BYTES:
        if (!n->bytes && n->nbytes)
            return WA_ERR_UNENCODABLE;
        TRY(enc_binary_len(b, n->nbytes));
        wb_put(b, n->bytes, n->nbytes);
        return WA_OK;
    case WA_CONTENT_STR:
        return enc_string(b, n->str);
    case WA_CONTENT_JID:
        return enc_jid(b, &n->jid);
    }
    return WA_ERR_UNENCODABLE;
}

static int encode_with_prefix(const wa_node *n, int frame, uint8_t **out, size_t *outlen)
{
    wbuf b = {0};
    if (frame)
        wb_byte(&b, 0);
    int rc = enc_node(&b, n, 1);
    if (rc == WA_OK && b.oom)
        rc = WA_ERR_NOMEM;
    if (rc != WA_OK) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *outlen = b.len;
    return WA_OK;
}

int wa_node_encode(const wa_node *n, uint8_t **out, size_t *outlen)
{
    return encode_with_prefix(n, 0, out, outlen);
}

int wa_frame_encode(const wa_node *n, uint8_t **out, size_t *outlen)
{
    return encode_with_prefix(n, 1, out, outlen);
}

/* ------------------------------------------------------------------ text dump */

#define DUMP_BYTES 64 /* bytes content shown as hex before it is cut */

/* Text escaped for an XML-ish attribute or body; control bytes as \xNN. */
static void dump_text(wbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '&')
            wb_str(b, "&amp;");
        else if (c == '<')
            wb_str(b, "&lt;");
        else if (c == '>')
            wb_str(b, "&gt;");
        else if (c == '"')
            wb_str(b, "&quot;");
        else if (c < 0x20 || c == 0x7F) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            wb_put(b, e, 4);
        } else
            wb_byte(b, c);
    }
}

static void dump_jid(wbuf *b, const wa_jid *j)
{
    char small[128];
    int need = wa_jid_format(j, small, sizeof(small));
    if (need < 0)
        return;
    if ((size_t)need < sizeof(small)) {
        dump_text(b, small, (size_t)need);
        return;
    }
    char *big = malloc((size_t)need + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    wa_jid_format(j, big, (size_t)need + 1);
    dump_text(b, big, (size_t)need);
    free(big);
}

static void dump_node(wbuf *b, const wa_node *n, unsigned depth, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    if (b->oom || b->len > max)
        return;
    if (depth > WA_MAX_DEPTH) {
        wb_str(b, "...");
        return;
    }
    wb_byte(b, '<');
    dump_text(b, n->tag, strlen(n->tag));
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const wa_attr *at = &n->attrs[i];
        wb_byte(b, ' ');
        dump_text(b, at->key, strlen(at->key));
        wb_str(b, "=\"");
        if (at->type == WA_VAL_JID)
            dump_jid(b, &at->jid);
        else
            dump_text(b, at->str, strlen(at->str));
        wb_byte(b, '"');
    }
    if (n->content == WA_CONTENT_NONE) {
        wb_str(b, "/>");
        return;
    }
    wb_byte(b, '>');
    switch (n->content) {
    case WA_CONTENT_LIST:
        for (uint32_t i = 0; i < n->nchildren && b->len <= max; i++)
            dump_node(b, n->children[i], depth + 1, max);
        break;
    case WA_CONTENT_BYTES:
        for (size_t i = 0; i < n->nbytes && i < DUMP_BYTES; i++) {
            char h[2] = {hex[n->bytes[i] >> 4], hex[n->bytes[i] & 15]};
            wb_put(b, h, 2);
        }
        if (n->nbytes > DUMP_BYTES) {
            char note[48];
            int k = snprintf(note, sizeof(note), "...(%zu bytes)", n->nbytes);
            wb_put(b, note, (size_t)k);
        }
        break;
    case WA_CONTENT_STR:
        dump_text(b, n->str, strlen(n->str));
        break;
    case WA_CONTENT_JID:
        dump_jid(b, &n->jid);
        break;
    }
    wb_str(b, "</");
    dump_text(b, n->tag, strlen(n->tag));
    wb_byte(b, '>');
}

char *wa_node_to_string(const wa_node *n, size_t max)
{
    if (max < 16)
        max = 16;
    wbuf b = {0};
    dump_node(&b, n, 1, max);
    if (b.len > max) {
        b.len = max - 3; /* room for the "..." that marks the cut */
        wb_str(&b, "...");
    }
    wb_byte(&b, 0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return (char *)b.p;
}

int wa_jid_text_bare(const char *in, char *out, size_t cap)
{
    const char *at = in ? strchr(in, '@') : NULL;
    if (!at || at == in)
        return -1;
    size_t ul = strcspn(in, ":@");
    const char *server = at + 1;
    if (strcmp(server, "s.whatsapp.net") && strcmp(server, "lid") && strcmp(server, "g.us"))
        return -1;
    int n = snprintf(out, cap, "%.*s@%s", (int)ul, in, server);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

const char *wa_node_text(const wa_node *n, char *buf, size_t cap)
{
    if (n->content == WA_CONTENT_STR && strlen(n->str) < cap) {
        snprintf(buf, cap, "%s", n->str);
        return buf;
    }
    if (n->content == WA_CONTENT_BYTES && n->nbytes < cap && !memchr(n->bytes, 0, n->nbytes)) {
        memcpy(buf, n->bytes, n->nbytes);
        buf[n->nbytes] = '\0';
        return buf;
    }
    return NULL;
}
