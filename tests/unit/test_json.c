/* JSON helpers: escaping on output, limits on input. */
#include <stdlib.h>

#include "common/json.h"
#include "common/sbuf.h"
#include "tests/unit/t.h"

static const char *esc(const char *s, size_t n)
{
    static struct sbuf b;
    sbuf_free(&b);
    sbuf_add_json_str(&b, s, n);
    return b.buf;
}

int main(void)
{
    T_EQ_STR(esc("plain", 5), "\"plain\"", "plain string");
    T_EQ_STR(esc("a\"b\\c", 5), "\"a\\\"b\\\\c\"", "quote and backslash");
    T_EQ_STR(esc("\n\r\t\x01\x1f", 5), "\"\\n\\r\\t\\u0001\\u001f\"", "control characters");
    T_EQ_STR(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14),
             "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "valid UTF-8 kept");
    T_EQ_STR(esc("a\xff"
                 "b",
                 3),
             "\"a\\ufffdb\"", "invalid byte replaced");
    T_EQ_STR(esc("\xc0\xaf", 2), "\"\\ufffd\\ufffd\"", "overlong encoding replaced");
    T_EQ_STR(esc("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"", "surrogate replaced");
    T_EQ_STR(esc("\xe2\x82", 2), "\"\\ufffd\\ufffd\"", "truncated sequence replaced");
    T_EQ_STR(esc("a\0b", 3), "\"a\\u0000b\"", "NUL escaped");

    char err[256];
    const char *doc = "{\"name\":\"wapi\",\"n\":42,\"ok\":true,\"nested\":{\"x\":[1,2]}}";
    yajl_val v = json_parse(doc, strlen(doc), 1024, err, sizeof err);
    T_CHECK(v != NULL, "parse object");
    T_EQ_STR(json_str(v, "name"), "wapi", "string member");
    int64_t n = 0;
    T_EQ_INT(json_int(v, "n", &n), 1, "int member present");
    T_EQ_INT(n, 42, "int value");
    T_EQ_INT(json_int(v, "name", &n), -1, "int of a string is a type error");
    T_EQ_INT(json_int(v, "absent", &n), 0, "absent int");
    T_EQ_INT(json_bool(v, "ok"), 1, "bool member");
    T_EQ_INT(json_bool(v, "n"), -2, "bool of an int is a type error");
    T_CHECK(json_str(v, "n") == NULL, "str of an int is NULL");
    T_CHECK(json_member(json_member(v, "nested"), "x") != NULL, "nested member");
    yajl_tree_free(v);

    T_CHECK(json_parse("{\"a\":", 5, 1024, err, sizeof err) == NULL, "truncated JSON refused");
    T_CHECK(strstr(err, "invalid JSON") != NULL, "error says invalid JSON");
    T_CHECK(json_parse("", 0, 1024, err, sizeof err) == NULL, "empty body refused");
    {
        static const char nul[] = "{\"a\":\"x\\u0000y\"}";
        T_CHECK(json_parse(nul, strlen(nul), 1024, err, sizeof err) == NULL && strstr(err, "NUL"),
                "an escaped NUL in a string refused (yajl would cut the string there)");
        static const char bs[] = "{\"a\":\"x\\\\u0000y\"}"; /* an escaped backslash, then text */
        yajl_val ok = json_parse(bs, strlen(bs), 1024, err, sizeof err);
        T_CHECK(ok && !strcmp(json_member(ok, "a")->u.string, "x\\u0000y"),
                "an escaped backslash before u0000 is text");
        yajl_tree_free(ok);
    }
    T_CHECK(json_parse("{\"a\":1}", 7, 5, err, sizeof err) == NULL, "over the size limit refused");
    T_CHECK(json_parse("{\"a\":\"x\0y\"}", 11, 1024, err, sizeof err) == NULL, "NUL byte refused");
    T_CHECK(json_parse("{\"a\":\"\xff\"}", 9, 1024, err, sizeof err) == NULL, "invalid UTF-8 refused");
    T_CHECK(json_parse("{} {}", 5, 1024, err, sizeof err) == NULL, "two documents refused");
    size_t deep = 100000;
    char *bomb = malloc(deep);
    memset(bomb, '[', deep);
    T_CHECK(json_parse(bomb, deep, deep, err, sizeof err) == NULL, "nesting bomb refused before parsing");
    T_CHECK(strstr(err, "nested deeper") != NULL, "nesting error says so");
    memset(bomb, '[', JSON_MAX_DEPTH);
    memset(bomb + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
    v = json_parse(bomb, 2 * JSON_MAX_DEPTH, deep, err, sizeof err);
    T_CHECK(v != NULL, "nesting at the limit accepted");
    yajl_tree_free(v);
    const char *tricky = "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}";
    v = json_parse(tricky, strlen(tricky), 1024, err, sizeof err);
    T_CHECK(v != NULL, "brackets inside strings do not count as depth");
    yajl_tree_free(v);
    free(bomb);
    T_DONE();
}
