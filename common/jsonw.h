/* JSON output: yajl's generator places every separator and refuses a value
 * where a key belongs; every string literal is written by
 * sbuf_add_json_str(), the tree's one escaper. A document is written
 * straight into the caller's sbuf and, when anything failed, cut back out
 * of it: the caller never sends half a document.
 *
 *   struct sbuf b;  sbuf_init(&b);
 *   struct jsonw w; jw_init(&w, &b);
 *   jw_obj(&w); jw_kstr(&w, "status", "ok"); jw_obj_end(&w);
 *   if (jw_finish(&w) < 0) ... answer 500 ...
 *
 * The writing calls return nothing: the first failure sticks and
 * jw_finish() reports it. */
#ifndef WAPI_JSONW_H
#define WAPI_JSONW_H
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

struct jw_gen;

struct jsonw {
    struct jw_gen *gen; /* owned from jw_init() to jw_finish() */
    struct sbuf *out;   /* borrowed; nothing else may append to it before jw_finish() */
    size_t start;       /* out->len at jw_init(): a failed document is cut back to it */
    uint64_t objs;      /* bit d: the container open at depth d + 1 is an object */
    unsigned depth;
    unsigned char key_open; /* a key was written, its value not yet */
    unsigned char done;     /* the top-level value is complete */
    unsigned char nl;       /* jw_newline(): a line break before the next token */
    unsigned char err;
};

void jw_init(struct jsonw *w, struct sbuf *out);
/* 0 when out holds one complete document; -1 (generator error, misuse,
 * out of memory, or an unfinished document) with out as before jw_init().
 * Releases the generator either way. */
int jw_finish(struct jsonw *w);

void jw_obj(struct jsonw *w);
void jw_obj_end(struct jsonw *w);
void jw_arr(struct jsonw *w);
void jw_arr_end(struct jsonw *w);
void jw_key(struct jsonw *w, const char *key);

void jw_str(struct jsonw *w, const char *s); /* NULL: null */
void jw_strn(struct jsonw *w, const char *s, size_t n);
void jw_int(struct jsonw *w, int64_t v);
void jw_uint(struct jsonw *w, uint64_t v);
void jw_bool(struct jsonw *w, int v);
void jw_null(struct jsonw *w);
/* fmt is one printf conversion of a double ("%.1f"); a value that is not
 * finite is written as null, JSON having no number for it. */
void jw_double(struct jsonw *w, const char *fmt, double v);
/* json is copied verbatim: the caller guarantees it is one valid JSON
 * value (a json column from PostgreSQL, a number already formatted).
 * NULL: null. */
void jw_raw(struct jsonw *w, const char *json);
/* Inside an object, before any member of it: the members of obj, one
 * valid JSON object the caller vouches for (PostgreSQL's), as if each had
 * been written here; more members may follow. */
void jw_raw_members(struct jsonw *w, const char *obj);
/* The caller could not make a value (out of memory): the document fails. */
void jw_fail(struct jsonw *w);
/* Layout only: the next token (after its comma, if any) starts a new line. */
void jw_newline(struct jsonw *w);

void jw_kstr(struct jsonw *w, const char *key, const char *s);
void jw_kint(struct jsonw *w, const char *key, int64_t v);
void jw_kuint(struct jsonw *w, const char *key, uint64_t v);
void jw_kbool(struct jsonw *w, const char *key, int v);
void jw_knull(struct jsonw *w, const char *key);
void jw_kraw(struct jsonw *w, const char *key, const char *json);

/* The member "error":{"code","message","field"?} of the API's error bodies
 * (field NULL: none). */
void jw_kerror(struct jsonw *w, const char *code, const char *message, const char *field);
/* Appends the API's error body {"error":{...}} to out; -1 when it failed. */
int jw_error_body(struct sbuf *out, const char *code, const char *message, const char *field);

#endif
