/* JSON input: yajl's tree parser behind limits (size, depth, NUL bytes,
 * UTF-8), and typed getters. Output: jsonw.h. */
#ifndef WAPI_JSON_H
#define WAPI_JSON_H
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#define JSON_MAX_DEPTH 32

/* Returns a tree the caller frees with yajl_tree_free(), or NULL with err set. */
yajl_val json_parse(const char *buf, size_t len, size_t max_len, char *err, size_t errlen);
/* Member of an object, or NULL (also when obj is not an object). */
yajl_val json_member(yajl_val obj, const char *key);
/* The string member, or NULL if absent or not a string. */
const char *json_str(yajl_val obj, const char *key);
/* 1 and *out set when the member is an integer, 0 when absent, -1 when another type. */
int json_int(yajl_val obj, const char *key, int64_t *out);
/* 1/0 for true/false, -1 absent, -2 another type. */
int json_bool(yajl_val obj, const char *key);

#endif
