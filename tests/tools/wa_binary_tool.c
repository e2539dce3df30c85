/* Drives the binary node codec for cross-checks against other implementations.
 *
 *   wa_binary_tool [roundtrip]  each stdin line: a hex frame; prints the frame decoded and
 *                               re-encoded (flag 0) as hex, or "ERR <code> <text>"
 *   wa_binary_tool json         each line: a hex frame; prints the decoded tree as JSON
 *   wa_binary_tool reparse      like roundtrip, but every JID goes through its text form
 *                               and wa_jid_parse first, so the encoder picks its wire form
 *   wa_binary_tool tokens       prints the token tables as JSON
 *
 * One output line per input line, so a driver can pair them up. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/wa/wa_binary.h"
#include "supervisor/wa/wa_tokens.h"

enum mode { MODE_ROUNDTRIP, MODE_JSON, MODE_REPARSE };

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex in place into line; returns the byte count or -1 on a bad digit. */
static long unhex_inplace(char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len % 2)
        return -1;
    uint8_t *out = (uint8_t *)line;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval((unsigned char)line[i]), lo = hexval((unsigned char)line[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

static void put_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 15]);
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7F)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_jid(const wa_jid *j)
{
    static const char *const wires[] = {"auto", "pair", "ad", "fb", "interop"};
    fputs("{\"user\":", stdout);
    json_str(j->user);
    fputs(",\"server\":", stdout);
    json_str(j->server);
    printf(",\"device\":%u,\"agent\":%u,\"integrator\":%u,\"wire\":\"%s\"}", j->device, j->agent,
           j->integrator, j->wire < 5 ? wires[j->wire] : "?");
}

static void json_node(const wa_node *n)
{
    fputs("{\"tag\":", stdout);
    json_str(n->tag);
    fputs(",\"attrs\":[", stdout);
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const wa_attr *at = &n->attrs[i];
        fputs(i ? ",[" : "[", stdout);
        json_str(at->key);
        if (at->type == WA_VAL_JID) {
            fputs(",{\"jid\":", stdout);
            json_jid(&at->jid);
        } else {
            fputs(",{\"s\":", stdout);
            json_str(at->str);
        }
        fputs("}]", stdout);
    }
    fputs("],\"content\":", stdout);
    switch (n->content) {
    case WA_CONTENT_NONE:
        fputs("null", stdout);
        break;
    case WA_CONTENT_LIST:
        fputs("{\"list\":[", stdout);
        for (uint32_t i = 0; i < n->nchildren; i++) {
            if (i)
                putchar(',');
            json_node(n->children[i]);
        }
        fputs("]}", stdout);
        break;
    case WA_CONTENT_BYTES:
        fputs("{\"bytes\":\"", stdout);
        put_hex(n->bytes, n->nbytes);
        fputs("\"}", stdout);
        break;
    case WA_CONTENT_STR:
        fputs("{\"s\":", stdout);
        json_str(n->str);
        putchar('}');
        break;
    case WA_CONTENT_JID:
        fputs("{\"jid\":", stdout);
        json_jid(&n->jid);
        putchar('}');
        break;
    }
    putchar('}');
}

/* Replaces j by the parse of its own text form (wire form AUTO). */
static int reparse_jid(wa_arena *a, wa_jid *j)
{
    int need = wa_jid_format(j, NULL, 0);
    char *text = malloc((size_t)need + 1);
    if (!text)
        return WA_ERR_NOMEM;
    wa_jid_format(j, text, (size_t)need + 1);
    int rc = wa_jid_parse(a, text, j);
    free(text);
    return rc;
}

static int reparse_tree(wa_arena *a, wa_node *n)
{
    for (uint32_t i = 0; i < n->nattrs; i++)
        if (n->attrs[i].type == WA_VAL_JID) {
            int rc = reparse_jid(a, &n->attrs[i].jid);
            if (rc != WA_OK)
                return rc;
        }
    if (n->content == WA_CONTENT_JID)
        return reparse_jid(a, &n->jid);
    if (n->content == WA_CONTENT_LIST)
        for (uint32_t i = 0; i < n->nchildren; i++) {
            int rc = reparse_tree(a, n->children[i]);
            if (rc != WA_OK)
                return rc;
        }
    return WA_OK;
}

static void print_err(int rc)
{
    printf("ERR %d %s\n", rc, wa_strerror(rc));
}

static void one_line(enum mode mode, char *line, size_t len)
{
    long n = unhex_inplace(line, len);
    if (n < 0) {
        puts("ERR hex");
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *root;
    int rc = a ? wa_frame_decode((const uint8_t *)line, (size_t)n, NULL, a, &root) : WA_ERR_NOMEM;
    if (rc == WA_OK && mode == MODE_REPARSE)
        rc = reparse_tree(a, root);
    if (rc != WA_OK) {
        print_err(rc);
    } else if (mode == MODE_JSON) {
        json_node(root);
        putchar('\n');
    } else {
        uint8_t *out;
        size_t outlen;
        rc = wa_frame_encode(root, &out, &outlen);
        if (rc != WA_OK) {
            print_err(rc);
        } else {
            put_hex(out, outlen);
            putchar('\n');
            free(out);
        }
    }
    wa_arena_free(a);
}

static void print_tokens(void)
{
    fputs("{\"single\":[", stdout);
    for (int i = 0; i < WA_SINGLE_TOKENS; i++) {
        if (i)
            putchar(',');
        json_str(wa_single_tokens[i]);
    }
    fputs("],\"double\":[", stdout);
    for (int d = 0; d < WA_DICTS; d++) {
        fputs(d ? ",[" : "[", stdout);
        for (int i = 0; i < WA_DICT_TOKENS; i++) {
            if (i)
                putchar(',');
            json_str(wa_double_tokens[d][i]);
        }
        putchar(']');
    }
    fputs("]}\n", stdout);
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "roundtrip";
    enum mode mode;
    if (strcmp(m, "tokens") == 0) {
        print_tokens();
        return 0;
    } else if (strcmp(m, "roundtrip") == 0) {
        mode = MODE_ROUNDTRIP;
    } else if (strcmp(m, "json") == 0) {
        mode = MODE_JSON;
    } else if (strcmp(m, "reparse") == 0) {
        mode = MODE_REPARSE;
    } else {
        fprintf(stderr, "usage: %s [roundtrip|json|reparse|tokens] < hex-lines\n", argv[0]);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0)
        one_line(mode, line, (size_t)len);
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}
