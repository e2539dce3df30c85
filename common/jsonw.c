#include "jsonw.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

/* The print callback's context must stay put while the generator lives, so
 * the pointer to the current document's buffer lives beside it. */
struct jw_gen {
    yajl_gen g;       /* owned */
    struct sbuf *out; /* borrowed: the document being written */
};

/* One generator kept between documents: a fresh one costs three mallocs and
 * a free (~50 ns of a ~500 ns access-log line), and the access log writes a
 * document per request. Taken by atomic exchange because the hashing
 * threads log too; a document begun while another is open (a log line)
 * simply gets a fresh one. */
static _Atomic(struct jw_gen *) spare;

/* Deeper than any document the API writes; one bit per level in objs. */
#define MAX_DEPTH 64

/* yajl prints a document a byte or two at a time (a comma, a quote, a
 * brace): copy in place while the buffer has room, leave growing to
 * sbuf_add(). The terminating NUL is left to the next sbuf append or to
 * jw_finish(). */
static void print_cb(void *ctx, const char *s, size_t n)
{
    struct sbuf *o = ((struct jw_gen *)ctx)->out;
    if (!n)
        return;
    if (o->len + n >= o->cap || o->oom) {
        sbuf_add(o, s, n);
        return;
    }
    if (n == 1)
        o->buf[o->len] = *s;
    else
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static struct jw_gen *gen_take(void)
{
    struct jw_gen *jg = atomic_exchange(&spare, NULL);
    if (jg) {
        yajl_gen_reset(jg->g, NULL);
        return jg;
    }
    jg = malloc(sizeof *jg);
    if (!jg)
        return NULL;
    jg->g = yajl_gen_alloc(NULL);
    if (!jg->g || !yajl_gen_config(jg->g, yajl_gen_print_callback, print_cb, jg)) {
        if (jg->g)
            yajl_gen_free(jg->g);
        free(jg);
        return NULL;
    }
    return jg;
}

static void gen_give_back(struct jw_gen *jg)
{
    struct jw_gen *none = NULL;
    if (!atomic_compare_exchange_strong(&spare, &none, jg)) {
        yajl_gen_free(jg->g);
        free(jg);
    }
}

void jw_init(struct jsonw *w, struct sbuf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->start = out->len;
    w->gen = gen_take();
    if (w->gen)
        w->gen->out = out;
    else
        w->err = 1;
}

int jw_finish(struct jsonw *w)
{
    if (w->gen) {
        gen_give_back(w->gen);
        w->gen = NULL;
    }
    struct sbuf *o = w->out;
    int ok = !w->err && w->done && !o->oom;
    if (!ok)
        o->len = o->len < w->start ? o->len : w->start;
    if (o->buf)
        o->buf[o->len] = '\0';
    return ok ? 0 : -1;
}

static int in_obj(const struct jsonw *w)
{
    return w->depth && (w->objs >> (w->depth - 1) & 1);
}

/* A value may go here: alone at the top, in an array, or after a key. */
static int value_here(struct jsonw *w)
{
    if (!w->err && (w->depth ? !in_obj(w) || w->key_open : !w->done))
        return 1;
    w->err = 1;
    return 0;
}

/* yajl has just written a token of n bytes (after its separator): a line
 * break asked for goes between the two. */
static void line_break(struct jsonw *w, size_t n)
{
    struct sbuf *o = w->out;
    if (!w->nl || o->oom)
        return;
    w->nl = 0;
    sbuf_addc(o, '\n');
    if (o->oom)
        return;
    memmove(o->buf + o->len - n, o->buf + o->len - n - 1, n);
    o->buf[o->len - n - 1] = '\n';
}

static void value_done(struct jsonw *w, yajl_gen_status st, size_t n)
{
    if (st != yajl_gen_status_ok) {
        w->err = 1;
        return;
    }
    w->key_open = 0;
    if (!w->depth)
        w->done = 1;
    line_break(w, n);
}

/* Strings are not escaped by yajl: its escaper is not the one the API has
 * always sent (\b and \f, upper-case hex, invalid UTF-8 passed through),
 * and two escapers would drift. yajl places the separator and moves its
 * state on; the literal is written by sbuf_add_json_str(). For a value,
 * yajl_gen_number() with no text writes just the separator; a key can only
 * be given as a string, so the empty literal yajl writes is taken back.
 * Returns the literal's length, or 0 on error. */
static size_t put_string(struct jsonw *w, const char *s, size_t n, int key)
{
    struct sbuf *o = w->out;
    yajl_gen g = w->gen->g;
    if ((key ? yajl_gen_string(g, (const unsigned char *)"", 0) : yajl_gen_number(g, "", 0)) !=
        yajl_gen_status_ok) {
        w->err = 1;
        return 0;
    }
    if (o->oom)
        return 0; /* jw_finish() reports it */
    if (key) {
        if (o->len < w->start + 2 || o->buf[o->len - 1] != '"' || o->buf[o->len - 2] != '"') {
            w->err = 1; /* not the yajl this was written against */
            return 0;
        }
        o->len -= 2;
    }
    size_t at = o->len;
    sbuf_add_json_str(o, s, n);
    return o->len - at;
}

void jw_key(struct jsonw *w, const char *key)
{
    if (w->err)
        return;
    if (!in_obj(w) || w->key_open) {
        w->err = 1;
        return;
    }
    size_t n = put_string(w, key, strlen(key), 1);
    if (!n)
        return;
    w->key_open = 1;
    line_break(w, n);
}

void jw_strn(struct jsonw *w, const char *s, size_t n)
{
    if (!value_here(w))
        return;
    size_t len = put_string(w, s, n, 0);
    if (len)
        value_done(w, yajl_gen_status_ok, len);
}

void jw_str(struct jsonw *w, const char *s)
{
    if (s)
        jw_strn(w, s, strlen(s));
    else
        jw_null(w);
}

static void put_number(struct jsonw *w, const char *s, size_t n)
{
    if (value_here(w))
        value_done(w, yajl_gen_number(w->gen->g, s, n), n);
}

/* Digits of v ending at end; returns where they start. */
static char *u64_digits(char *end, uint64_t v)
{
    do
        *--end = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return end;
}

void jw_uint(struct jsonw *w, uint64_t v)
{
    char buf[24], *end = buf + sizeof buf, *p = u64_digits(end, v);
    put_number(w, p, (size_t)(end - p));
}

void jw_int(struct jsonw *w, int64_t v)
{
    char buf[24], *end = buf + sizeof buf;
    char *p = u64_digits(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
    if (v < 0)
        *--p = '-';
    put_number(w, p, (size_t)(end - p));
}

void jw_double(struct jsonw *w, const char *fmt, double v)
{
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char buf[64];
    int n = snprintf(buf, sizeof buf, fmt, v);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        w->err = 1;
        return;
    }
    put_number(w, buf, (size_t)n);
}

void jw_bool(struct jsonw *w, int v)
{
    if (value_here(w))
        value_done(w, yajl_gen_bool(w->gen->g, v), v ? 4 : 5);
}

void jw_null(struct jsonw *w)
{
    if (value_here(w))
        value_done(w, yajl_gen_null(w->gen->g), 4);
}

void jw_raw(struct jsonw *w, const char *json)
{
    if (!json)
        jw_null(w);
    else if (!*json)
        w->err = 1; /* no value at all */
    else
        put_number(w, json, strlen(json));
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void jw_raw_members(struct jsonw *w, const char *obj)
{
    struct sbuf *o = w->out;
    if (w->err || o->oom)
        return;
    /* Only an object just opened: its '{' is the last byte written. */
    if (!in_obj(w) || w->key_open || o->len <= w->start || o->buf[o->len - 1] != '{') {
        w->err = 1;
        return;
    }
    size_t a = 0, b = strlen(obj);
    while (a < b && is_ws(obj[a]))
        a++;
    while (b > a && is_ws(obj[b - 1]))
        b--;
    if (b - a < 2 || obj[a] != '{' || obj[b - 1] != '}') {
        w->err = 1;
        return;
    }
    a++, b--;
    while (a < b && is_ws(obj[a]))
        a++;
    if (a == b)
        return; /* {}: nothing to add */
    /* One placeholder member through yajl, so that the next key gets its
     * comma; its bytes are then replaced by obj's members. */
    size_t at = o->len;
    if (yajl_gen_string(w->gen->g, (const unsigned char *)"", 0) != yajl_gen_status_ok ||
        yajl_gen_null(w->gen->g) != yajl_gen_status_ok) {
        w->err = 1;
        return;
    }
    if (o->oom)
        return;
    o->len = at;
    sbuf_add(o, obj + a, b - a);
}

void jw_fail(struct jsonw *w)
{
    w->err = 1;
}

void jw_newline(struct jsonw *w)
{
    w->nl = 1;
}

static void open_container(struct jsonw *w, int obj)
{
    if (!value_here(w))
        return;
    if (w->depth == MAX_DEPTH) {
        w->err = 1;
        return;
    }
    yajl_gen_status st = obj ? yajl_gen_map_open(w->gen->g) : yajl_gen_array_open(w->gen->g);
    if (st != yajl_gen_status_ok) {
        w->err = 1;
        return;
    }
    w->objs = (w->objs & ~(UINT64_C(1) << w->depth)) | (uint64_t)obj << w->depth;
    w->depth++;
    w->key_open = 0;
    line_break(w, 1);
}

static void close_container(struct jsonw *w, int obj)
{
    if (w->err)
        return;
    if (!w->depth || in_obj(w) != obj || w->key_open) {
        w->err = 1;
        return;
    }
    w->depth--;
    value_done(w, obj ? yajl_gen_map_close(w->gen->g) : yajl_gen_array_close(w->gen->g), 1);
}

void jw_obj(struct jsonw *w)
{
    open_container(w, 1);
}

void jw_obj_end(struct jsonw *w)
{
    close_container(w, 1);
}

void jw_arr(struct jsonw *w)
{
    open_container(w, 0);
}

void jw_arr_end(struct jsonw *w)
{
    close_container(w, 0);
}

void jw_kstr(struct jsonw *w, const char *key, const char *s)
{
    jw_key(w, key);
    jw_str(w, s);
}

void jw_kint(struct jsonw *w, const char *key, int64_t v)
{
    jw_key(w, key);
    jw_int(w, v);
}

void jw_kuint(struct jsonw *w, const char *key, uint64_t v)
{
    jw_key(w, key);
    jw_uint(w, v);
}

void jw_kbool(struct jsonw *w, const char *key, int v)
{
    jw_key(w, key);
    jw_bool(w, v);
}

void jw_knull(struct jsonw *w, const char *key)
{
    jw_key(w, key);
    jw_null(w);
}

void jw_kraw(struct jsonw *w, const char *key, const char *json)
{
    jw_key(w, key);
    jw_raw(w, json);
}

void jw_kerror(struct jsonw *w, const char *code, const char *message, const char *field)
{
    jw_key(w, "error");
    jw_obj(w);
    jw_kstr(w, "code", code);
    jw_kstr(w, "message", message);
    if (field)
        jw_kstr(w, "field", field);
    jw_obj_end(w);
}

int jw_error_body(struct sbuf *out, const char *code, const char *message, const char *field)
{
    struct jsonw w;
    jw_init(&w, out);
    jw_obj(&w);
    jw_kerror(&w, code, message, field);
    jw_obj_end(&w);
    return jw_finish(&w);
}
