/* The JSON writer: strings byte for byte as sbuf_add_json_str() writes them
 * (keys and values alike), structure checked, failures leave nothing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "tests/unit/t.h"

struct tricky {
    const char *name;
    const char *s;
    size_t n;
    const char *decoded; /* what a parser reads back; NULL: s itself */
};

#define S(lit) lit, sizeof lit - 1

static const struct tricky tricky[] = {
    {"empty", S(""), NULL},
    {"plain", S("hello, world"), NULL},
    {"quote and backslash", S("a\"b\\c\\\\\"\""), NULL},
    {"solidus kept", S("</script>/a//b"), NULL},
    {"short escapes", S("\n\r\t"), NULL},
    {"backspace and form feed as \\u", S("\b\f"), NULL},
    {"other control bytes", S("\x01\x02\x0b\x0e\x1b\x1f"), NULL},
    {"DEL passed through",
     S("a\x7f"
       "b"),
     NULL},
    {"embedded NUL", S("a\0b\0"), "a"},
    {"two-byte UTF-8", S("caf\xc3\xa9 \xc2\x80"), NULL},
    {"three-byte UTF-8", S("\xe2\x82\xac \xef\xbf\xbd \xe2\x80\xa8\xe2\x80\xa9"), NULL},
    {"four-byte UTF-8", S("\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"), NULL},
    {"lone continuation byte",
     S("a\x80"
       "b"),
     "a\xef\xbf\xbd"
     "b"},
    {"bytes never in UTF-8", S("\xfe\xff"), "\xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong two-byte", S("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong three-byte", S("\xe0\x80\xaf"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate", S("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"above U+10FFFF", S("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"truncated at the end", S("x\xe2\x82"), "x\xef\xbf\xbd\xef\xbf\xbd"},
    {"truncated before ASCII",
     S("\xe2\x82"
       "A\""),
     "\xef\xbf\xbd\xef\xbf\xbd"
     "A\""},
    {"five-byte form", S("\xf8\x88\x80\x80\x80"),
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"mixed", S("\"\xc3\xa9\x01\xff/\\\n"), "\"\xc3\xa9\x01\xef\xbf\xbd/\\\n"},
};

/* What sbuf_add_json_str() writes for s (the reference). */
static char *escaped(const char *s, size_t n)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add_json_str(&b, s, n);
    return sbuf_steal(&b);
}

static void strings_match(void)
{
    char name[160];
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
        const struct tricky *t = &tricky[i];
        char *ref = escaped(t->s, t->n);

        /* As a value: the document is the literal itself. */
        struct sbuf b;
        sbuf_init(&b);
        struct jsonw w;
        jw_init(&w, &b);
        jw_strn(&w, t->s, t->n);
        int rc = jw_finish(&w);
        snprintf(name, sizeof name, "value %s: same bytes as sbuf_add_json_str", t->name);
        T_CHECK(rc == 0 && b.len == strlen(ref) && memcmp(b.buf, ref, b.len) == 0, name);

        /* As a value in an object, read back by the parser. */
        sbuf_reset(&b);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_key(&w, "k");
        jw_strn(&w, t->s, t->n);
        jw_obj_end(&w);
        rc = jw_finish(&w);
        char err[128];
        yajl_val v = rc == 0 ? json_parse(b.buf, b.len, 1 << 20, err, sizeof err) : NULL;
        /* An escaped NUL is refused by the parser (it would cut the string). */
        int has_nul = memchr(t->s, '\0', t->n) != NULL;
        snprintf(name, sizeof name, "value %s: %s", t->name,
                 has_nul ? "refused by the parser (an escaped NUL)" : "parses back to the expected text");
        if (has_nul)
            T_CHECK(v == NULL, name);
        else
            T_EQ_STR(v ? json_str(v, "k") : NULL, t->decoded ? t->decoded : t->s, name);
        yajl_tree_free(v);

        /* As a key (keys are C strings: up to the first NUL). */
        size_t kn = strnlen(t->s, t->n);
        char *key = strndup(t->s, kn);
        char *kref = escaped(key, kn);
        struct sbuf want;
        sbuf_init(&want);
        sbuf_addc(&want, '{');
        sbuf_adds(&want, kref);
        sbuf_adds(&want, ":1}");
        sbuf_reset(&b);
        jw_init(&w, &b);
        jw_obj(&w);
        jw_kint(&w, key, 1);
        jw_obj_end(&w);
        rc = jw_finish(&w);
        snprintf(name, sizeof name, "key %s: same bytes as sbuf_add_json_str", t->name);
        T_CHECK(rc == 0 && b.len == want.len && memcmp(b.buf, want.buf, b.len) == 0, name);
        sbuf_free(&want);
        free(kref);
        free(key);
        free(ref);
        sbuf_free(&b);
    }

    /* Spelled out once, so the reference itself cannot drift unnoticed. */
    char *e = escaped("\b\f\x1f\x7f\xff", 5);
    T_EQ_STR(e, "\"\\u0008\\u000c\\u001f\x7f\\ufffd\"", "escapes are lower-case \\u, no \\b or \\f");
    free(e);

    /* Long enough to grow the buffer several times mid-literal. */
    char big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = "a\"\\\x01\xc3\xa9\xff/"[i % 8];
    char *ref = escaped(big, sizeof big);
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    jw_arr(&w);
    jw_strn(&w, big, sizeof big);
    jw_arr_end(&w);
    T_EQ_INT(jw_finish(&w), 0, "long string written");
    T_CHECK(b.len == strlen(ref) + 2 && memcmp(b.buf + 1, ref, strlen(ref)) == 0, "long string: same bytes");
    free(ref);
    sbuf_free(&b);
}

/* Runs a document writer; returns jw_finish()'s result, the text in *out. */
static int doc(void (*fn)(struct jsonw *), struct sbuf *out)
{
    struct jsonw w;
    jw_init(&w, out);
    fn(&w);
    return jw_finish(&w);
}

static void d_all_types(struct jsonw *w)
{
    jw_obj(w);
    jw_kstr(w, "s", "x");
    jw_kstr(w, "nul", NULL);
    jw_kint(w, "i", -42);
    jw_kint(w, "min", INT64_MIN);
    jw_kuint(w, "max", UINT64_MAX);
    jw_kbool(w, "t", 1);
    jw_kbool(w, "f", 0);
    jw_knull(w, "n");
    jw_kraw(w, "raw", "{\"a\":[1,2.5e3]}");
    jw_kraw(w, "rawnull", NULL);
    jw_key(w, "d");
    jw_double(w, "%.1f", 2.25);
    jw_key(w, "nan");
    jw_double(w, "%.6g", NAN);
    jw_key(w, "arr");
    jw_arr(w);
    jw_int(w, 0);
    jw_arr(w);
    jw_arr_end(w);
    jw_obj(w);
    jw_obj_end(w);
    jw_str(w, "");
    jw_arr_end(w);
    jw_obj_end(w);
}

static void d_members(struct jsonw *w)
{
    jw_obj(w);
    jw_raw_members(w, " {\"id\":\"h1\",\"events\":[\"*\"]}\n");
    jw_kstr(w, "secret", "whsec_x");
    jw_obj_end(w);
}

static void d_members_empty(struct jsonw *w)
{
    jw_obj(w);
    jw_raw_members(w, "{ }");
    jw_kint(w, "a", 1);
    jw_obj_end(w);
}

static void d_lines(struct jsonw *w)
{
    jw_obj(w);
    jw_key(w, "files");
    jw_arr(w);
    for (int i = 0; i < 2; i++) {
        jw_newline(w);
        jw_obj(w);
        jw_kint(w, "n", i);
        jw_obj_end(w);
    }
    jw_newline(w);
    jw_arr_end(w);
    jw_obj_end(w);
}

static void d_unfinished(struct jsonw *w)
{
    jw_obj(w);
    jw_kint(w, "a", 1);
}
static void d_value_for_key(struct jsonw *w)
{
    jw_obj(w);
    jw_int(w, 1);
    jw_obj_end(w);
}
static void d_key_in_array(struct jsonw *w)
{
    jw_arr(w);
    jw_key(w, "k");
    jw_int(w, 1);
    jw_arr_end(w);
}
static void d_key_twice(struct jsonw *w)
{
    jw_obj(w);
    jw_key(w, "a");
    jw_key(w, "b");
    jw_int(w, 1);
    jw_obj_end(w);
}
static void d_dangling_key(struct jsonw *w)
{
    jw_obj(w);
    jw_key(w, "a");
    jw_obj_end(w);
}
static void d_wrong_close(struct jsonw *w)
{
    jw_obj(w);
    jw_arr_end(w);
}
static void d_two_values(struct jsonw *w)
{
    jw_int(w, 1);
    jw_int(w, 2);
}
static void d_nothing(struct jsonw *w)
{
    (void)w;
}
static void d_empty_raw(struct jsonw *w)
{
    jw_raw(w, "");
}
static void d_members_late(struct jsonw *w)
{
    jw_obj(w);
    jw_kint(w, "a", 1);
    jw_raw_members(w, "{\"b\":2}");
    jw_obj_end(w);
}
static void d_members_not_object(struct jsonw *w)
{
    jw_obj(w);
    jw_raw_members(w, "[1]");
    jw_obj_end(w);
}
static void d_caller_failed(struct jsonw *w)
{
    jw_obj(w);
    jw_fail(w);
    jw_obj_end(w);
}
static void d_too_deep(struct jsonw *w)
{
    for (int i = 0; i < 65; i++)
        jw_arr(w);
    for (int i = 0; i < 65; i++)
        jw_arr_end(w);
}

static void structure(void)
{
    struct sbuf b;
    sbuf_init(&b);
    T_EQ_INT(doc(d_all_types, &b), 0, "every value type");
    T_EQ_STR(b.buf,
             "{\"s\":\"x\",\"nul\":null,\"i\":-42,\"min\":-9223372036854775808,\"max\":18446744073709551615,"
             "\"t\":true,\"f\":false,\"n\":null,\"raw\":{\"a\":[1,2.5e3]},\"rawnull\":null,\"d\":2.2,"
             "\"nan\":null,\"arr\":[0,[],{},\"\"]}",
             "every value type: exact bytes");
    sbuf_reset(&b);
    T_EQ_INT(doc(d_members, &b), 0, "members of a serialized object");
    T_EQ_STR(b.buf, "{\"id\":\"h1\",\"events\":[\"*\"],\"secret\":\"whsec_x\"}", "members then more");
    sbuf_reset(&b);
    T_EQ_INT(doc(d_members_empty, &b), 0, "members of {}");
    T_EQ_STR(b.buf, "{\"a\":1}", "members of {}: none");
    sbuf_reset(&b);
    T_EQ_INT(doc(d_lines, &b), 0, "line breaks");
    T_EQ_STR(b.buf, "{\"files\":[\n{\"n\":0},\n{\"n\":1}\n]}", "line breaks after the comma");

    static const struct {
        const char *name;
        void (*fn)(struct jsonw *);
    } bad[] = {
        {"unfinished document", d_unfinished},
        {"value where a key belongs", d_value_for_key},
        {"key in an array", d_key_in_array},
        {"two keys in a row", d_key_twice},
        {"key without a value", d_dangling_key},
        {"object closed as an array", d_wrong_close},
        {"two top-level values", d_two_values},
        {"no value at all", d_nothing},
        {"empty raw text", d_empty_raw},
        {"members after a member", d_members_late},
        {"members of a non-object", d_members_not_object},
        {"nested too deep", d_too_deep},
        {"the caller failed", d_caller_failed},
    };
    char name[160];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sbuf_reset(&b);
        sbuf_adds(&b, "kept:");
        snprintf(name, sizeof name, "refused: %s", bad[i].name);
        T_EQ_INT(doc(bad[i].fn, &b), -1, name);
        snprintf(name, sizeof name, "refused: %s: nothing of it left", bad[i].name);
        T_EQ_STR(b.buf, "kept:", name);
    }

    sbuf_reset(&b);
    sbuf_adds(&b, "x");
    b.oom = 1;
    T_EQ_INT(doc(d_members, &b), -1, "out of memory reported");
    sbuf_free(&b);
}

/* A document opened while another is (a log line in the middle of a
 * response) and many in a row (the kept generator) both come out whole. */
static void reuse(void)
{
    struct sbuf a, b;
    sbuf_init(&a);
    sbuf_init(&b);
    struct jsonw wa, wb;
    jw_init(&wa, &a);
    jw_obj(&wa);
    jw_kstr(&wa, "outer", "1");
    jw_init(&wb, &b);
    jw_arr(&wb);
    jw_str(&wb, "inner");
    jw_arr_end(&wb);
    T_EQ_INT(jw_finish(&wb), 0, "inner document");
    jw_kint(&wa, "after", 2);
    jw_obj_end(&wa);
    T_EQ_INT(jw_finish(&wa), 0, "outer document");
    T_EQ_STR(a.buf, "{\"outer\":\"1\",\"after\":2}", "outer document whole");
    T_EQ_STR(b.buf, "[\"inner\"]", "inner document whole");
    int ok = 1;
    for (int i = 0; i < 1000 && ok; i++) {
        sbuf_reset(&a);
        struct jsonw w;
        jw_init(&w, &a);
        jw_obj(&w);
        jw_kint(&w, "i", i);
        if (i % 3 == 0)
            jw_int(&w, 1); /* a failure in between must not stick */
        jw_obj_end(&w);
        int rc = jw_finish(&w);
        char want[32];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        ok = i % 3 == 0 ? rc == -1 && a.len == 0 : rc == 0 && strcmp(a.buf, want) == 0;
    }
    T_CHECK(ok, "a thousand documents in a row, every third refused");
    sbuf_free(&a);
    sbuf_free(&b);
}

static void error_body(void)
{
    struct sbuf b;
    sbuf_init(&b);
    T_EQ_INT(jw_error_body(&b, "not_found", "no \"such\" thing", NULL), 0, "error body");
    T_EQ_STR(b.buf, "{\"error\":{\"code\":\"not_found\",\"message\":\"no \\\"such\\\" thing\"}}",
             "error body without field");
    sbuf_reset(&b);
    T_EQ_INT(jw_error_body(&b, "invalid", "bad\n", "phone"), 0, "error body with field");
    T_EQ_STR(b.buf, "{\"error\":{\"code\":\"invalid\",\"message\":\"bad\\n\",\"field\":\"phone\"}}",
             "error body with field: exact bytes");
    sbuf_free(&b);
}

int main(void)
{
    strings_match();
    structure();
    reuse();
    error_body();
    T_DONE();
}
