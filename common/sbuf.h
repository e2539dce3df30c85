/* Growable byte buffer for building responses, log lines and frames. */
#ifndef WAPI_SBUF_H
#define WAPI_SBUF_H
#include <stdarg.h>
#include <stddef.h>

struct sbuf {
    char *buf; /* owned; always NUL-terminated when len > 0 or after any append */
    size_t len, cap;
    int oom; /* set once an allocation failed; later appends are no-ops */
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
void sbuf_add(struct sbuf *b, const void *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vaddf(struct sbuf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal with quotes; invalid UTF-8 becomes
 * \ufffd. The tree's one JSON string escaper: documents are written with
 * jsonw.h, which writes every key and string through this. */
void sbuf_add_json_str(struct sbuf *b, const char *s, size_t n);
/* Returns the buffer and leaves b empty; the caller frees it. */
char *sbuf_steal(struct sbuf *b);

#endif
