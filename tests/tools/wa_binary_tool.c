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

#include "common/jsonw.h"
#include "common/sbuf.h"
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

static void add_hex(struct sbuf *o, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char h[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
        sbuf_add(o, h, 2);
    }
}

/* Decoded strings are raw bytes. The driver compares them with Baileys',
 * which reads bytes as Node does (an ill-formed sequence's maximal subpart
 * becomes one U+FFFD, WHATWG's rule), while jsonw would make each invalid
 * byte one U+FFFD: so a string is first repaired here the way Node would
 * read it, and reaches jsonw as valid UTF-8, written unchanged. */
static void add_as_node_reads(struct sbuf *o, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
        if (c < 0x80)
            need = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            need = SIZE_MAX; /* never a lead byte */
        size_t j = i + 1, k = 0;
        if (need != SIZE_MAX)
            for (; k < need && j < n; j++, k++)
                if (s[j] < (k ? 0x80 : lo) || s[j] > (k ? 0xbf : hi))
                    break;
        if (k == need)
            sbuf_add(o, s + i, j - i);
        else
            sbuf_adds(o, "\xef\xbf\xbd");
        i = j;
    }
}

static void node_str(struct jsonw *w, const char *s)
{
    struct sbuf t;
    sbuf_init(&t);
    add_as_node_reads(&t, s);
    if (t.oom)
        jw_fail(w);
    else
        jw_strn(w, t.buf ? t.buf : "", t.len);
    sbuf_free(&t);
}

static void json_jid(struct jsonw *w, const wa_jid *j)
{
    static const char *const wires[] = {"auto", "pair", "ad", "fb", "interop"};
    jw_obj(w);
    jw_key(w, "user");
    node_str(w, j->user);
    jw_key(w, "server");
    node_str(w, j->server);
    jw_kuint(w, "device", j->device);
    jw_kuint(w, "agent", j->agent);
    jw_kuint(w, "integrator", j->integrator);
    jw_kstr(w, "wire", j->wire < 5 ? wires[j->wire] : "?");
    jw_obj_end(w);
}

static void json_node(struct jsonw *w, const wa_node *n)
{
    jw_obj(w);
    jw_key(w, "tag");
    node_str(w, n->tag);
    jw_key(w, "attrs");
    jw_arr(w);
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const wa_attr *at = &n->attrs[i];
        jw_arr(w);
        node_str(w, at->key);
        jw_obj(w);
        if (at->type == WA_VAL_JID) {
            jw_key(w, "jid");
            json_jid(w, &at->jid);
        } else {
            jw_key(w, "s");
            node_str(w, at->str);
        }
        jw_obj_end(w);
        jw_arr_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "content");
    switch (n->content) {
    case WA_CONTENT_NONE:
        jw_null(w);
        break;
    case WA_CONTENT_LIST:
        jw_obj(w);
        jw_key(w, "list");
        jw_arr(w);
        for (uint32_t i = 0; i < n->nchildren; i++)
            json_node(w, n->children[i]);
        jw_arr_end(w);
        jw_obj_end(w);
        break;
    case WA_CONTENT_BYTES: {
        struct sbuf h;
        sbuf_init(&h);
        add_hex(&h, n->bytes, n->nbytes);
        jw_obj(w);
        jw_key(w, "bytes");
        if (h.oom)
            jw_fail(w);
        else
            jw_strn(w, h.buf ? h.buf : "", h.len);
        jw_obj_end(w);
        sbuf_free(&h);
        break;
    }
    case WA_CONTENT_STR:
        jw_obj(w);
        jw_key(w, "s");
        node_str(w, n->str);
        jw_obj_end(w);
        break;
    case WA_CONTENT_JID:
        jw_obj(w);
        jw_key(w, "jid");
        json_jid(w, &n->jid);
        jw_obj_end(w);
        break;
    }
    jw_obj_end(w);
}

/* Prints o and a newline, or ERR when the line could not be made. */
static void print_line(struct sbuf *o, int ok)
{
    if (ok && !o->oom)
        printf("%s\n", o->buf ? o->buf : "");
    else
        puts("ERR out of memory");
    sbuf_free(o);
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
        struct sbuf o;
        sbuf_init(&o);
        struct jsonw w;
        jw_init(&w, &o);
        json_node(&w, root);
        print_line(&o, jw_finish(&w) == 0);
    } else {
        uint8_t *out;
        size_t outlen;
        rc = wa_frame_encode(root, &out, &outlen);
        if (rc != WA_OK) {
            print_err(rc);
        } else {
            struct sbuf o;
            sbuf_init(&o);
            add_hex(&o, out, outlen);
            print_line(&o, 1);
            free(out);
        }
    }
    wa_arena_free(a);
}

static void print_tokens(void)
{
    struct sbuf o;
    sbuf_init(&o);
    struct jsonw w;
    jw_init(&w, &o);
    jw_obj(&w);
    jw_key(&w, "single");
    jw_arr(&w);
    for (int i = 0; i < WA_SINGLE_TOKENS; i++)
        jw_str(&w, wa_single_tokens[i]);
    jw_arr_end(&w);
    jw_key(&w, "double");
    jw_arr(&w);
    for (int d = 0; d < WA_DICTS; d++) {
        jw_arr(&w);
        for (int i = 0; i < WA_DICT_TOKENS; i++)
            jw_str(&w, wa_double_tokens[d][i]);
        jw_arr_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    print_line(&o, jw_finish(&w) == 0);
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
