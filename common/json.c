#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* yajl frees trees recursively: bound nesting before it ever builds one.
 * And refuse \u0000 in a string: yajl would decode it into a NUL that cuts
 * the C string it hands over, so what is checked would not be what was
 * sent. 0, -1 (too deep) or -2 (an escaped NUL). */
static int scan(const char *s, size_t n)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4))
                    return -2;
                i++;
            } else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return -1;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return 0;
}

yajl_val json_parse(const char *buf, size_t len, size_t max_len, char *err, size_t errlen)
{
    if (len > max_len) {
        snprintf(err, errlen, "JSON body larger than %zu bytes", max_len);
        return NULL;
    }
    if (len == 0) {
        snprintf(err, errlen, "empty body; expected JSON");
        return NULL;
    }
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "NUL byte in JSON");
        return NULL;
    }
    int sc = scan(buf, len);
    if (sc == -1) {
        snprintf(err, errlen, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        return NULL;
    }
    if (sc == -2) {
        snprintf(err, errlen, "a NUL character (\\u0000) in a JSON string");
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, buf, len);
    copy[len] = '\0';
    char yerr[256];
    yerr[0] = '\0';
    yajl_val v = yajl_tree_parse(copy, yerr, sizeof yerr); /* validates UTF-8 */
    free(copy);
    if (!v) {
        char *nl = strchr(yerr, '\n');
        if (nl)
            *nl = '\0';
        snprintf(err, errlen, "invalid JSON: %s", yerr[0] ? yerr : "parse error");
    }
    return v;
}

yajl_val json_member(yajl_val obj, const char *key)
{
    if (!obj || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

const char *json_str(yajl_val obj, const char *key)
{
    yajl_val v = json_member(obj, key);
    return v && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

int json_int(yajl_val obj, const char *key, int64_t *out)
{
    yajl_val v = json_member(obj, key);
    if (!v)
        return 0;
    if (!YAJL_IS_INTEGER(v))
        return -1;
    *out = YAJL_GET_INTEGER(v);
    return 1;
}

int json_bool(yajl_val obj, const char *key)
{
    yajl_val v = json_member(obj, key);
    if (!v)
        return -1;
    if (YAJL_IS_TRUE(v))
        return 1;
    if (YAJL_IS_FALSE(v))
        return 0;
    return -2;
}
