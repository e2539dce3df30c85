/* Unit tests of the WhatsApp binary node codec: known vectors, string packing,
 * dictionaries, JID forms, length boundaries, compressed frames and hostile input. */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"

#include <zlib.h>

#include "tests/unit/t.h"

static const char PING_HEX[] = "00 f8 0a 19 08 ff 04 12 3b 45 a1 11 fa 00 03 04 29 16 57 f8 01 f8 01 56";

/* Hex (spaces allowed) into a malloc'd buffer the caller frees. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    uint8_t *out = malloc(strlen(hex) / 2 + 1);
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    *len = n;
    return out;
}

static int bytes_eq_hex(const uint8_t *p, size_t n, const char *hex)
{
    size_t m;
    uint8_t *want = unhex(hex, &m);
    int eq = m == n && memcmp(p, want, n) == 0;
    free(want);
    return eq;
}

/* Decodes a hex frame into a (caller's arena); returns the codec's code. */
static int decode_hex(const char *hex, wa_arena *a, wa_node **out)
{
    size_t n;
    uint8_t *p = unhex(hex, &n);
    int rc = wa_frame_decode(p, n, NULL, a, out);
    free(p);
    return rc;
}

/* Status of decoding a hex frame, for inputs that must fail. */
static int decode_rc(const char *hex)
{
    wa_arena *a = wa_arena_new();
    wa_node *n;
    int rc = decode_hex(hex, a, &n);
    wa_arena_free(a);
    return rc;
}

/* The bytes enc_string writes for s, compared with hex. */
static int string_encodes_as(const char *s, const char *hex)
{
    wbuf b = {0};
    int ok = enc_string(&b, s) == WA_OK && !b.oom && bytes_eq_hex(b.p, b.len, hex);
    free(b.p);
    return ok;
}

/* s decodes back to itself when sent as an attribute value and as string content. */
static int string_round_trips(const char *s)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = wa_node_new(a, "x"), *back = NULL;
    wa_node_add_attr(a, n, "v", s);
    wa_node_set_str(a, n, s);
    uint8_t *enc;
    size_t len;
    int ok = wa_node_encode(n, &enc, &len) == WA_OK;
    if (ok) {
        ok = wa_node_decode(enc, len, NULL, a, &back) == WA_OK &&
             strcmp(wa_node_attr_str(back, "v"), s) == 0 && wa_node_equal(n, back);
        free(enc);
    }
    wa_arena_free(a);
    return ok;
}

static void test_tokens(void)
{
    int sorted = 1;
    for (size_t i = 1; i < WA_TOKEN_COUNT; i++) {
        const char *prev = token_str(token_sorted[i - 1]), *cur = token_str(token_sorted[i]);
        if (token_cmp(prev, cur, strlen(cur)) >= 0)
            sorted = 0;
    }
    T_CHECK(sorted, "tokens: lookup index strictly sorted");
    T_EQ_INT(WA_TOKEN_COUNT, WA_SINGLE_TOKENS - 1 + WA_DICTS * WA_DICT_TOKENS,
             "tokens: index covers every token");

    int found = 1, dict, index;
    size_t maxlen = 0;
    for (int i = 1; i < WA_SINGLE_TOKENS; i++) {
        const char *s = wa_single_tokens[i];
        if (!wa_token_lookup(s, strlen(s), &dict, &index) || dict != -1 || index != i)
            found = 0;
        if (strlen(s) > maxlen)
            maxlen = strlen(s);
    }
    for (int d = 0; d < WA_DICTS; d++)
        for (int i = 0; i < WA_DICT_TOKENS; i++) {
            const char *s = wa_double_tokens[d][i];
            if (!wa_token_lookup(s, strlen(s), &dict, &index) || dict != d || index != i)
                found = 0;
            if (strlen(s) > maxlen)
                maxlen = strlen(s);
        }
    T_CHECK(found, "tokens: every table entry looks up to its own code");
    T_EQ_INT(maxlen, WA_TOKEN_MAX_LEN, "tokens: WA_TOKEN_MAX_LEN is the longest entry");
    T_EQ_STR(wa_single_tokens[0], "", "tokens: single 0 is empty");
    T_EQ_STR(wa_single_tokens[3], "s.whatsapp.net", "tokens: single 3");
    T_EQ_STR(wa_single_tokens[235], "screen_height", "tokens: single 235");
    T_EQ_STR(wa_double_tokens[0][0], "read-self", "tokens: dictionary 0 entry 0");
    T_EQ_STR(wa_double_tokens[1][0], "reject", "tokens: dictionary 1 entry 0");
    T_EQ_STR(wa_double_tokens[3][255], "1961", "tokens: dictionary 3 entry 255");
    T_CHECK(!wa_token_lookup("", 0, &dict, &index), "tokens: empty string is no token");
    T_CHECK(!wa_token_lookup("s.whatsapp", 10, &dict, &index), "tokens: a prefix is no token");
    T_CHECK(!wa_token_lookup("s.whatsapp.nett", 15, &dict, &index), "tokens: a longer string is no token");
    T_CHECK(!wa_token_lookup("iq\0x", 4, &dict, &index), "tokens: NUL inside is no token");
    T_CHECK(wa_token_lookup("iq\0x", 2, &dict, &index) && dict == -1 && index == 25,
            "tokens: length bounds s");
}

static void test_ping_vector(void)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = NULL;
    T_EQ_INT(decode_hex(PING_HEX, a, &n), WA_OK, "ping: decodes");
    if (!n) {
        wa_arena_free(a);
        return;
    }
    T_EQ_STR(n->tag, "iq", "ping: tag iq");
    T_EQ_INT(n->nattrs, 4, "ping: four attributes");
    T_EQ_STR(wa_node_attr_str(n, "id"), "123.45-1", "ping: id unpacked from nibbles");
    T_EQ_STR(wa_node_attr_str(n, "type"), "get", "ping: type get");
    T_EQ_STR(wa_node_attr_str(n, "xmlns"), "w:p", "ping: xmlns w:p");
    const wa_attr *to = wa_node_attr(n, "to");
    T_CHECK(to && to->type == WA_VAL_JID && to->jid.wire == WA_JID_PAIR && *to->jid.user == 0 &&
                strcmp(to->jid.server, "s.whatsapp.net") == 0,
            "ping: to is the server JID pair with no user");
    T_CHECK(n->content == WA_CONTENT_LIST && n->nchildren == 1 && strcmp(n->children[0]->tag, "ping") == 0 &&
                n->children[0]->content == WA_CONTENT_NONE && n->children[0]->nattrs == 0,
            "ping: one empty <ping/> child");
    T_CHECK(wa_node_child(n, "ping") != NULL && wa_node_child(n, "pong") == NULL, "ping: child lookup");
    uint8_t *enc;
    size_t len;
    T_EQ_INT(wa_frame_encode(n, &enc, &len), WA_OK, "ping: re-encodes");
    T_CHECK(bytes_eq_hex(enc, len, PING_HEX), "ping: re-encoding is byte-equal");
    free(enc);
    char *txt = wa_node_to_string(n, 1024);
    T_EQ_STR(txt, "<iq id=\"123.45-1\" to=\"s.whatsapp.net\" type=\"get\" xmlns=\"w:p\"><ping/></iq>",
             "ping: text dump");
    free(txt);

    /* The same stanza built by hand, with the server JID parsed from text. */
    wa_node *b = wa_node_new(a, "iq");
    wa_jid server;
    T_EQ_INT(wa_jid_parse(a, "@s.whatsapp.net", &server), WA_OK, "ping: parse @s.whatsapp.net");
    wa_node_add_attr(a, b, "id", "123.45-1");
    wa_node_add_attr_jid(a, b, "to", &server);
    wa_node_add_attr(a, b, "type", "get");
    wa_node_add_attr(a, b, "xmlns", "w:p");
    wa_node_add_child(a, b, wa_node_new(a, "ping"));
    T_EQ_INT(wa_frame_encode(b, &enc, &len), WA_OK, "ping: built stanza encodes");
    T_CHECK(bytes_eq_hex(enc, len, PING_HEX), "ping: built stanza gives the vector");
    free(enc);
    T_CHECK(wa_node_equal(n, b), "ping: decoded and built trees are equal");
    wa_arena_free(a);
}

static void test_packing(void)
{
    T_CHECK(string_encodes_as("123", "ff 82 12 3f"), "pack: odd nibble string, pad F");
    T_CHECK(string_encodes_as("1234", "ff 02 12 34"), "pack: even nibble string");
    T_CHECK(string_encodes_as("-.9", "ff 82 ab 9f"), "pack: dash and dot nibbles");
    T_CHECK(string_encodes_as("ABC1", "fb 02 ab c1"), "pack: even hex string");
    T_CHECK(string_encodes_as("1A2", "fb 82 1a 2f"), "pack: odd hex string");
    T_CHECK(string_encodes_as("abc1", "fc 04 61 62 63 31"), "pack: lower-case hex is raw");
    T_CHECK(string_encodes_as("12a", "fc 03 31 32 61"), "pack: not packable is raw");
    T_CHECK(string_encodes_as("1-A", "fc 03 31 2d 41"), "pack: nibble and hex mixed is raw");
    T_CHECK(string_encodes_as("", "fc 00"), "pack: empty string is raw");

    char s[260], hex[600];
    memset(s, '7', 127);
    s[127] = 0;
    size_t k = (size_t)sprintf(hex, "ff c0");
    for (int i = 0; i < 63; i++)
        k += (size_t)sprintf(hex + k, " 77");
    sprintf(hex + k, " 7f");
    T_CHECK(string_encodes_as(s, hex), "pack: 127 digits pack (odd, 64 bytes)");
    T_CHECK(string_round_trips(s), "pack: 127 digits round trip");
    memset(s, '7', 128);
    s[128] = 0;
    T_CHECK(string_encodes_as(s, "fc 80"
                                 " 37373737373737373737373737373737 37373737373737373737373737373737"
                                 " 37373737373737373737373737373737 37373737373737373737373737373737"
                                 " 37373737373737373737373737373737 37373737373737373737373737373737"
                                 " 37373737373737373737373737373737 37373737373737373737373737373737"),
            "pack: 128 digits are raw");
    T_CHECK(string_round_trips(s), "pack: 128 digits round trip");
    memset(s, 'E', 127);
    s[127] = 0;
    k = (size_t)sprintf(hex, "fb c0");
    for (int i = 0; i < 63; i++)
        k += (size_t)sprintf(hex + k, " ee");
    sprintf(hex + k, " ef");
    T_CHECK(string_encodes_as(s, hex), "pack: 127 hex chars pack");
    memset(s, 'E', 128);
    s[128] = 0;
    T_CHECK(string_round_trips(s), "pack: 128 hex chars round trip raw");
    T_CHECK(string_round_trips("9") && string_round_trips("99") && string_round_trips("F") &&
                string_round_trips("0.1-2") && string_round_trips("DEADBEEF0"),
            "pack: short strings round trip");

    wa_arena *a = wa_arena_new();
    wa_node *n;
    T_EQ_INT(decode_hex("00 f8 03 19 08 fb 81 f3", a, &n), WA_OK, "unpack: hex pad nibble is ignored");
    T_EQ_STR(wa_node_attr_str(n, "id"), "F", "unpack: hex F inside a string");
    T_EQ_INT(decode_hex("00 f8 03 19 08 ff 82 12 33", a, &n), WA_OK,
             "unpack: nibble pad other than F accepted");
    T_EQ_STR(wa_node_attr_str(n, "id"), "123", "unpack: nibble pad dropped");
    uint8_t *enc;
    size_t len;
    wa_node_encode(n, &enc, &len);
    T_CHECK(bytes_eq_hex(enc, len, "f8 03 19 08 ff 82 12 3f"), "unpack: re-encoded with pad F");
    free(enc);
    T_EQ_INT(decode_hex("00 f8 03 19 08 ff 00", a, &n), WA_OK, "unpack: empty packed string");
    T_EQ_STR(wa_node_attr_str(n, "id"), "", "unpack: empty packed string is empty");
    wa_arena_free(a);
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 80"), WA_ERR_MALFORMED, "unpack: odd flag with no bytes");
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 01 1c"), WA_ERR_MALFORMED, "unpack: nibble 12 refused");
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 01 f1"), WA_ERR_MALFORMED, "unpack: nibble 15 inside refused");
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 81 1d"), WA_ERR_MALFORMED, "unpack: pad nibble 13 refused");
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 82 12 3f"), WA_OK, "unpack: pad nibble F");
    T_EQ_INT(decode_rc("00 f8 03 19 08 ff 02 11"), WA_ERR_TRUNCATED, "unpack: packed length past the end");
}

static void test_dictionaries(void)
{
    T_CHECK(string_encodes_as("read-self", "ec 00"), "dict: dictionary 0 entry 0");
    T_CHECK(string_encodes_as("reject", "ed 00"), "dict: dictionary 1 entry 0");
    T_CHECK(string_encodes_as("1961", "ef ff"), "dict: token beats nibble packing");
    T_CHECK(string_encodes_as("iq", "19"), "dict: single-byte token");
    wa_arena *a = wa_arena_new();
    wa_node *n;
    T_EQ_INT(decode_hex("00 f8 03 ec 00 ee 10 ef ff", a, &n), WA_OK, "dict: decode tag/key/value");
    T_EQ_STR(n->tag, "read-self", "dict: tag from dictionary 0");
    T_EQ_STR(n->attrs[0].key, wa_double_tokens[2][16], "dict: key from dictionary 2");
    T_EQ_STR(n->attrs[0].str, "1961", "dict: value from dictionary 3");
    T_EQ_INT(decode_hex("00 f8 02 19 ed 05", a, &n), WA_OK, "dict: string content");
    T_CHECK(n->content == WA_CONTENT_STR && strcmp(n->str, wa_double_tokens[1][5]) == 0,
            "dict: content is str");
    wa_arena_free(a);
    T_EQ_INT(decode_rc("00 f8 01 ec"), WA_ERR_TRUNCATED, "dict: index missing");
    T_EQ_INT(decode_rc("00 f8 01 f0"), WA_ERR_MALFORMED, "dict: tag 0xF0 is nothing");
    T_EQ_INT(decode_rc("00 f8 01 f4"), WA_ERR_MALFORMED, "dict: tag 0xF4 is nothing");
}

/* The encoding of a node <x to=JID>, JID parsed from text, against hex (after "f8 03 19 11"). */
static int jid_encodes_as(const char *text, const char *hex)
{
    wa_arena *a = wa_arena_new();
    wa_jid j;
    int ok = wa_jid_parse(a, text, &j) == WA_OK;
    if (ok) {
        wa_node *n = wa_node_new(a, "iq");
        wa_node_add_attr_jid(a, n, "to", &j);
        uint8_t *enc;
        size_t len;
        char want[256];
        snprintf(want, sizeof(want), "f8 03 19 11 %s", hex);
        ok = wa_node_encode(n, &enc, &len) == WA_OK && bytes_eq_hex(enc, len, want);
        if (ok) {
            wa_node *back;
            ok = wa_node_decode(enc, len, NULL, a, &back) == WA_OK && back->attrs[0].type == WA_VAL_JID &&
                 wa_jid_equal(&back->attrs[0].jid, &j);
            char txt[128];
            wa_jid_format(&back->attrs[0].jid, txt, sizeof(txt));
            if (strcmp(txt, text) != 0 && !(text[0] == '@' && strcmp(txt, text + 1) == 0))
                ok = 0;
            free(enc);
        }
    }
    wa_arena_free(a);
    return ok;
}

/* Text form of the JID in attribute 0 of the hex frame, or "" when it fails to decode. */
static const char *decoded_jid_text(const char *hex, char *buf, size_t cap, int *wire)
{
    wa_arena *a = wa_arena_new();
    wa_node *n;
    buf[0] = 0;
    *wire = -1;
    if (decode_hex(hex, a, &n) == WA_OK && n->nattrs && n->attrs[0].type == WA_VAL_JID) {
        wa_jid_format(&n->attrs[0].jid, buf, cap);
        *wire = n->attrs[0].jid.wire;
    }
    wa_arena_free(a);
    return buf;
}

static void test_jids(void)
{
    T_CHECK(jid_encodes_as("123@s.whatsapp.net", "fa ff 82 12 3f 03"), "jid: user pair");
    T_CHECK(jid_encodes_as("@s.whatsapp.net", "fa 00 03"), "jid: pair with empty user");
    T_CHECK(jid_encodes_as("s.whatsapp.net", "fa 00 03"), "jid: bare server");
    T_CHECK(jid_encodes_as("123:5@s.whatsapp.net", "f7 00 05 ff 82 12 3f"), "jid: AD with device");
    T_CHECK(jid_encodes_as("123:5@lid", "f7 01 05 ff 82 12 3f"), "jid: AD lid with device");
    T_CHECK(jid_encodes_as("123@lid", "fa ff 82 12 3f 76"), "jid: lid without device is a pair");
    T_CHECK(jid_encodes_as("123@hosted", "f7 80 00 ff 82 12 3f"), "jid: hosted is AD");
    T_CHECK(jid_encodes_as("123:7@hosted.lid", "f7 81 07 ff 82 12 3f"), "jid: hosted.lid is AD");
    T_CHECK(jid_encodes_as("123_2:3@s.whatsapp.net", "f7 02 03 ff 82 12 3f"),
            "jid: agent is the domain byte");
    T_CHECK(jid_encodes_as("123-456@g.us", "fa ff 84 12 3a 45 6f 1c"), "jid: group pair");
    T_CHECK(jid_encodes_as("5551234:1@msgr", "f6 ff 84 55 51 23 4f 00 01 cc"), "jid: msgr is FB_JID");
    T_CHECK(
        jid_encodes_as("3-5551234:1@interop", "f5 ff 84 55 51 23 4f 00 01 00 03 fc 07 69 6e 74 65 72 6f 70"),
        "jid: interop JID");

    char txt[128];
    int wire;
    decoded_jid_text("00 f8 03 19 11 f7 07 03 ff 82 12 3f", txt, sizeof(txt), &wire);
    T_EQ_STR(txt, "123_7:3@s.whatsapp.net", "jid: unknown domain kept as agent");
    decoded_jid_text("00 f8 03 19 11 f7 01 00 fc 00", txt, sizeof(txt), &wire);
    T_EQ_STR(txt, "lid", "jid: AD with empty user and device 0");
    T_EQ_INT(wire, WA_JID_AD, "jid: AD wire kept");
    decoded_jid_text("00 f8 03 19 11 f7 00 00 ff 82 12 3f", txt, sizeof(txt), &wire);
    T_CHECK(strcmp(txt, "123@s.whatsapp.net") == 0 && wire == WA_JID_AD, "jid: AD device 0 keeps its form");
    decoded_jid_text("00 f8 03 19 11 fa fc 00 03", txt, sizeof(txt), &wire);
    T_EQ_STR(txt, "s.whatsapp.net", "jid: raw empty user");
    decoded_jid_text("00 f8 03 19 11 f6 ff 81 5f 01 02 cc", txt, sizeof(txt), &wire);
    T_CHECK(strcmp(txt, "5:258@msgr") == 0 && wire == WA_JID_FB, "jid: FB_JID parsed");
    T_EQ_INT(decode_rc("00 f8 02 19 f5 ff 81 5f 00 01 00 03 fc 07 69 6e 74 65 72 6f 70"), WA_OK,
             "jid: INTEROP_JID content parsed");

    /* An AD JID read from the wire is written back in the same form, even where AUTO differs. */
    wa_arena *a = wa_arena_new();
    wa_node *n;
    size_t len;
    uint8_t *enc;
    T_EQ_INT(decode_hex("00 f8 05 19 11 f7 00 00 ff 82 12 3f 05 fa 00 fc 06 68 6f 73 74 65 64", a, &n), WA_OK,
             "jid: non-canonical forms decode");
    T_EQ_INT(wa_frame_encode(n, &enc, &len), WA_OK, "jid: non-canonical forms encode");
    T_CHECK(bytes_eq_hex(enc, len, "00 f8 05 19 11 f7 00 00 ff 82 12 3f 05 fa 00 fc 06 68 6f 73 74 65 64"),
            "jid: wire forms preserved byte for byte");
    free(enc);

    T_EQ_INT(decode_rc("00 f8 03 19 11 fa 00 00"), WA_ERR_MALFORMED, "jid: pair with empty server");
    T_EQ_INT(decode_rc("00 f8 03 19 11 fa fa 00 03 03"), WA_ERR_MALFORMED, "jid: nested JID refused");
    T_EQ_INT(decode_rc("00 f8 03 19 11 f7 00 05 f7 00 05 03"), WA_ERR_MALFORMED, "jid: nested AD refused");
    T_EQ_INT(decode_rc("00 f8 03 19 11 f6 03 00 01 03"), WA_ERR_MALFORMED, "jid: FB_JID off msgr");
    T_EQ_INT(decode_rc("00 f8 03 19 11 f5 03 00 01 00 02 03"), WA_ERR_MALFORMED, "jid: INTEROP off interop");
    T_EQ_INT(decode_rc("00 f8 03 19 11 f7 00"), WA_ERR_TRUNCATED, "jid: AD truncated");
    T_EQ_INT(decode_rc("00 f8 02 fa 00 03"), WA_ERR_MALFORMED, "jid: JID as tag refused");
    T_EQ_INT(decode_rc("00 f8 03 19 fa 00 03 03"), WA_ERR_MALFORMED, "jid: JID as key refused");

    static const char *const bad[] = {"",
                                      "a@",
                                      "a@b@c",
                                      "a:x@s.whatsapp.net",
                                      "a:70000@s.whatsapp.net",
                                      "a_300:1@s.whatsapp.net",
                                      "a:@lid",
                                      "x-1:1@interop"};
    int all_bad = 1;
    wa_jid j;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wa_jid_parse(a, bad[i], &j) != WA_ERR_MALFORMED)
            all_bad = 0;
    T_CHECK(all_bad, "jid: malformed texts refused");
    T_CHECK(wa_jid_parse(a, "a_b@g.us", &j) == WA_OK && strcmp(j.user, "a_b") == 0,
            "jid: underscore is part of the user off s.whatsapp.net");

    wa_node *x = wa_node_new(a, "x");
    wa_jid_parse(a, "1:300@s.whatsapp.net", &j);
    wa_node_add_attr_jid(a, x, "to", &j);
    T_EQ_INT(wa_node_encode(x, &enc, &len), WA_ERR_UNENCODABLE, "jid: AD device above 255 refused");
    x = wa_node_new(a, "x");
    wa_jid_parse(a, "1:3@g.us", &j);
    wa_node_add_attr_jid(a, x, "to", &j);
    T_EQ_INT(wa_node_encode(x, &enc, &len), WA_ERR_UNENCODABLE, "jid: pair cannot carry a device");
    x = wa_node_new(a, "x");
    wa_jid_parse(a, "1@g.us", &j);
    j.wire = WA_JID_AD;
    wa_node_add_attr_jid(a, x, "to", &j);
    T_EQ_INT(wa_node_encode(x, &enc, &len), WA_ERR_UNENCODABLE, "jid: AD needs a domain server");
    x = wa_node_new(a, "x");
    wa_jid_parse(a, "1_1:2@s.whatsapp.net", &j);
    wa_node_add_attr_jid(a, x, "to", &j);
    T_EQ_INT(wa_node_encode(x, &enc, &len), WA_ERR_UNENCODABLE, "jid: agent that reads back as lid refused");
    wa_arena_free(a);
}

/* A node <x> whose content is len bytes of 0xAB: encodes with the given header hex and decodes back. */
static int bytes_content_boundary(size_t len, const char *header)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = wa_node_new(a, "x"), *back;
    uint8_t *data = malloc(len ? len : 1);
    memset(data, 0xAB, len);
    wa_node_set_bytes(a, n, data, len);
    uint8_t *enc;
    size_t elen;
    int ok = wa_node_encode(n, &enc, &elen) == WA_OK;
    if (ok) {
        size_t hl;
        uint8_t *h = unhex(header, &hl);
        ok = elen == hl + len && memcmp(enc, h, hl) == 0;
        free(h);
        ok = ok && wa_node_decode(enc, elen, NULL, a, &back) == WA_OK && back->content == WA_CONTENT_BYTES &&
             back->nbytes == len && (len == 0 || memcmp(back->bytes, data, len) == 0);
        free(enc);
    }
    free(data);
    wa_arena_free(a);
    return ok;
}

static void test_binary_lengths(void)
{
    T_CHECK(bytes_content_boundary(0, "f8 02 fc 01 78 fc 00"), "binary: empty bytes BINARY_8");
    T_CHECK(bytes_content_boundary(255, "f8 02 fc 01 78 fc ff"), "binary: 255 bytes BINARY_8");
    T_CHECK(bytes_content_boundary(256, "f8 02 fc 01 78 fd 00 01 00"), "binary: 256 bytes BINARY_20");
    T_CHECK(bytes_content_boundary((1u << 20) - 1, "f8 02 fc 01 78 fd 0f ff ff"),
            "binary: 2^20-1 bytes BINARY_20");
    T_CHECK(bytes_content_boundary(1u << 20, "f8 02 fc 01 78 fe 00 10 00 00"),
            "binary: 2^20 bytes BINARY_32");
    char s[300];
    memset(s, 'x', 256);
    s[256] = 0;
    T_CHECK(string_round_trips(s), "binary: 256-char string as BINARY_20");

    wa_arena *a = wa_arena_new();
    wa_node *n;
    T_EQ_INT(decode_hex("00 f8 02 19 fd f0 00 01 41", a, &n), WA_OK, "binary: BINARY_20 top nibble ignored");
    T_CHECK(n->content == WA_CONTENT_BYTES && n->nbytes == 1 && n->bytes[0] == 0x41, "binary: 20-bit length");
    T_EQ_INT(decode_hex("00 f8 02 19 fe 00 00 00 02 00 01", a, &n), WA_OK, "binary: BINARY_32 small");
    T_CHECK(n->nbytes == 2 && n->bytes[0] == 0 && n->bytes[1] == 1, "binary: NUL bytes fine in content");
    wa_arena_free(a);
    T_EQ_INT(decode_rc("00 f8 02 19 fe ff ff ff ff 00"), WA_ERR_TRUNCATED, "binary: 4 GiB length refused");
    T_EQ_INT(decode_rc("00 f8 02 19 fd 0f ff ff 00"), WA_ERR_TRUNCATED, "binary: 1 MiB length past the end");
    T_EQ_INT(decode_rc("00 f8 02 19 fc 05 00"), WA_ERR_TRUNCATED, "binary: BINARY_8 past the end");
    T_EQ_INT(decode_rc("00 f8 02 19 fe 00 00"), WA_ERR_TRUNCATED, "binary: BINARY_32 length cut");
    T_EQ_INT(decode_rc("00 f8 03 19 08 fc 02 41 00"), WA_ERR_MALFORMED, "binary: NUL in a string refused");
}

/* zlib-compresses node bytes into a frame with flag 0x02 (plus extra flag bits); caller frees. */
static uint8_t *deflate_frame(const uint8_t *node, size_t n, uint8_t flag, size_t *outlen)
{
    uLongf zl = compressBound((uLong)n);
    uint8_t *out = malloc(zl + 1);
    out[0] = flag;
    compress2(out + 1, &zl, node, (uLong)n, 9);
    *outlen = zl + 1;
    return out;
}

static void test_zlib(void)
{
    size_t n, flen;
    uint8_t *ping = unhex(PING_HEX, &n);
    uint8_t *frame = deflate_frame(ping + 1, n - 1, 0x02, &flen);
    wa_arena *a = wa_arena_new();
    wa_node *node;
    T_EQ_INT(wa_frame_decode(frame, flen, NULL, a, &node), WA_OK, "zlib: compressed ping decodes");
    uint8_t *enc;
    size_t len;
    wa_frame_encode(node, &enc, &len);
    T_CHECK(bytes_eq_hex(enc, len, PING_HEX), "zlib: re-encoded uncompressed");
    free(enc);
    frame[0] = 0x06;
    T_EQ_INT(wa_frame_decode(frame, flen, NULL, a, &node), WA_OK, "zlib: other flag bits ignored");

    wa_limits lim = wa_limits_default;
    lim.max_inflated = n - 1;
    frame[0] = 0x02;
    T_EQ_INT(wa_frame_decode(frame, flen, &lim, a, &node), WA_OK, "zlib: inflated size exactly at limit");
    lim.max_inflated = n - 2;
    T_EQ_INT(wa_frame_decode(frame, flen, &lim, a, &node), WA_ERR_TOO_BIG, "zlib: one byte over the limit");
    T_EQ_INT(wa_frame_decode(frame, flen - 3, NULL, a, &node), WA_ERR_INFLATE, "zlib: cut stream");
    frame[3] ^= 0x55;
    T_CHECK(wa_frame_decode(frame, flen, NULL, a, &node) != WA_OK, "zlib: corrupt stream");
    free(frame);

    frame = deflate_frame(ping + 1, n - 1, 0x02, &flen);
    uint8_t *trail = malloc(flen + 1);
    memcpy(trail, frame, flen);
    trail[flen] = 0x00;
    T_EQ_INT(wa_frame_decode(trail, flen + 1, NULL, a, &node), WA_ERR_TRAILING,
             "zlib: bytes after the stream");
    free(trail);
    free(frame);
    T_EQ_INT(decode_rc("02"), WA_ERR_INFLATE, "zlib: empty compressed body");
    T_EQ_INT(decode_rc("02 00 01 02 03"), WA_ERR_INFLATE, "zlib: garbage body");

    /* A bomb: 64 MiB of zeros in a few KiB stops at the 8 MiB limit. */
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    frame = deflate_frame(zeros, big, 0x02, &flen);
    free(zeros);
    T_CHECK(flen < 100000, "zlib: bomb is small");
    T_EQ_INT(wa_frame_decode(frame, flen, NULL, a, &node), WA_ERR_TOO_BIG, "zlib: bomb refused");
    free(frame);
    wa_arena_free(a);
    free(ping);
}

/* A frame that uses every feature, for the cut-at-every-offset test. Caller frees. */
static uint8_t *rich_frame(size_t *len)
{
    wa_arena *a = wa_arena_new();
    wa_node *root = wa_node_new(a, "message");
    wa_jid j;
    wa_node_add_attr(a, root, "id", "3EB0C4A1B2");
    wa_jid_parse(a, "4915123456789:12@s.whatsapp.net", &j);
    wa_node_add_attr_jid(a, root, "from", &j);
    wa_jid_parse(a, "123456789012345:3@lid", &j);
    wa_node_add_attr_jid(a, root, "participant", &j);
    wa_jid_parse(a, "120363000000000000@g.us", &j);
    wa_node_add_attr_jid(a, root, "to", &j);
    wa_node_add_attr(a, root, "t", "1700000000");
    wa_node_add_attr(a, root, "notify", "Zoë <&>");
    wa_node_add_attr(a, root, "read-self", "");
    wa_node *enc = wa_node_new(a, "enc");
    wa_node_add_attr(a, enc, "v", "2");
    wa_node_add_attr(a, enc, "type", "pkmsg");
    uint8_t blob[300];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7);
    wa_node_set_bytes(a, enc, blob, sizeof(blob));
    wa_node_add_child(a, root, enc);
    wa_node *list = wa_node_new(a, "participants");
    for (int i = 0; i < 3; i++) {
        wa_node *u = wa_node_new(a, "user");
        char buf[64];
        snprintf(buf, sizeof(buf), "%d:%d@hosted", 100 + i, i);
        wa_jid_parse(a, buf, &j);
        wa_node_add_attr_jid(a, u, "jid", &j);
        wa_node_add_child(a, list, u);
    }
    wa_node_add_child(a, root, list);
    wa_node *empty = wa_node_new(a, "list");
    empty->content = WA_CONTENT_LIST; /* no children: LIST_EMPTY content */
    wa_node_add_child(a, root, empty);
    wa_node *txt = wa_node_new(a, "body");
    wa_node_set_str(a, txt, "ABCDEF");
    wa_node_add_child(a, root, txt);
    wa_node *jc = wa_node_new(a, "jid");
    wa_jid_parse(a, "7:1@msgr", &j);
    wa_node_set_jid(a, jc, &j);
    wa_node_add_child(a, root, jc);
    uint8_t *out;
    wa_frame_encode(root, &out, len);
    wa_arena_free(a);
    return out;
}

static void test_malformed(void)
{
    size_t len;
    uint8_t *frame = rich_frame(&len);
    wa_arena *a = wa_arena_new();
    wa_node *n;
    T_EQ_INT(wa_frame_decode(frame, len, NULL, a, &n), WA_OK, "malformed: rich frame decodes whole");
    uint8_t *again;
    size_t alen;
    T_EQ_INT(wa_frame_encode(n, &again, &alen), WA_OK, "malformed: rich frame re-encodes");
    T_CHECK(alen == len && memcmp(again, frame, len) == 0, "malformed: rich frame byte-equal round trip");
    free(again);
    wa_arena_free(a);

    int all_fail = 1, any_crash_code = 0;
    for (size_t cut = 0; cut < len; cut++) {
        a = wa_arena_new();
        int rc = wa_frame_decode(frame, cut, NULL, a, &n);
        if (rc == WA_OK)
            all_fail = 0;
        if (rc != WA_ERR_TRUNCATED && rc != WA_ERR_MALFORMED)
            any_crash_code = 1;
        wa_arena_free(a);
    }
    T_CHECK(all_fail, "malformed: every truncation of the rich frame fails");
    T_CHECK(!any_crash_code, "malformed: truncations fail as truncated or malformed");
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, frame, len);
    longer[len] = 0x19;
    T_EQ_INT(decode_rc("00 f8 01 19 19"), WA_ERR_TRAILING, "malformed: trailing byte");
    a = wa_arena_new();
    T_EQ_INT(wa_frame_decode(longer, len + 1, NULL, a, &n), WA_ERR_TRAILING,
             "malformed: rich frame + garbage");
    wa_arena_free(a);
    free(longer);
    free(frame);

    T_EQ_INT(decode_rc(""), WA_ERR_TRUNCATED, "malformed: empty frame");
    T_EQ_INT(decode_rc("00"), WA_ERR_TRUNCATED, "malformed: flag byte only");
    T_EQ_INT(decode_rc("00 19"), WA_ERR_MALFORMED, "malformed: node not a list");
    T_EQ_INT(decode_rc("00 00"), WA_ERR_MALFORMED, "malformed: node is LIST_EMPTY");
    T_EQ_INT(decode_rc("00 f8 00"), WA_ERR_MALFORMED, "malformed: node list of size 0");
    T_EQ_INT(decode_rc("00 f8 01 fc 00"), WA_ERR_MALFORMED, "malformed: empty tag");
    T_EQ_INT(decode_rc("00 f8 01 00"), WA_ERR_MALFORMED, "malformed: LIST_EMPTY tag");
    T_EQ_INT(decode_rc("00 f8 03 19 08 f8 01"), WA_ERR_MALFORMED, "malformed: list as attribute value");
    T_EQ_INT(decode_rc("00 f8 02 19 f9 ff ff"), WA_ERR_TRUNCATED, "malformed: 65535 children announced");
    T_EQ_INT(decode_rc("00 f9 ff ff 19"), WA_ERR_TRUNCATED, "malformed: 32767 attributes announced");
    T_EQ_INT(decode_rc("00 f8 02 19 f8 02 f8 01 19"), WA_ERR_TRUNCATED, "malformed: child missing");

    /* Depth: the limit is reachable exactly, one more level fails, a deep bomb fails fast. */
    char *deep = malloc(5000 * 16 + 16);
    for (int levels = 64; levels <= 65; levels++) {
        size_t k = (size_t)sprintf(deep, "00");
        for (int i = 1; i < levels; i++)
            k += (size_t)sprintf(deep + k, " f8 02 19 f8 01");
        sprintf(deep + k, " f8 01 19");
        T_EQ_INT(decode_rc(deep), levels == 64 ? WA_OK : WA_ERR_DEPTH,
                 levels == 64 ? "depth: 64 levels decode" : "depth: 65 levels refused");
    }
    size_t k = (size_t)sprintf(deep, "00");
    for (int i = 0; i < 5000; i++)
        k += (size_t)sprintf(deep + k, "f8 02 19 f8 01 ");
    T_EQ_INT(decode_rc(deep), WA_ERR_DEPTH, "depth: 5000-level bomb refused");
    free(deep);

    /* The encoder keeps the same limit, so what it writes can always be read. */
    a = wa_arena_new();
    wa_node *root = wa_node_new(a, "x"), *cur = root;
    for (int i = 1; i < 64; i++) {
        wa_node *c = wa_node_new(a, "x");
        wa_node_add_child(a, cur, c);
        cur = c;
    }
    uint8_t *enc;
    size_t elen;
    T_EQ_INT(wa_node_encode(root, &enc, &elen), WA_OK, "depth: encoder writes 64 levels");
    free(enc);
    wa_node_add_child(a, cur, wa_node_new(a, "x"));
    T_EQ_INT(wa_node_encode(root, &enc, &elen), WA_ERR_DEPTH, "depth: encoder refuses 65 levels");

    /* Node and memory budgets. */
    wa_limits lim = wa_limits_default;
    lim.max_nodes = 2;
    size_t pl;
    uint8_t *pp = unhex("f8 02 19 f8 02 f8 01 19 f8 01 19", &pl);
    T_EQ_INT(wa_node_decode(pp, pl, &lim, a, &n), WA_ERR_LIMIT, "limits: node count");
    lim.max_nodes = 3;
    T_EQ_INT(wa_node_decode(pp, pl, &lim, a, &n), WA_OK, "limits: node count exactly");
    lim = wa_limits_default;
    lim.max_bytes = 64;
    T_EQ_INT(wa_node_decode(pp, pl, &lim, a, &n), WA_ERR_LIMIT, "limits: arena bytes");
    free(pp);

    /* Unencodable trees. */
    wa_node *bad = wa_node_new(a, "");
    T_EQ_INT(wa_node_encode(bad, &enc, &elen), WA_ERR_UNENCODABLE, "encode: empty tag refused");
    bad = wa_node_new(a, "x");
    for (int i = 0; i < 32767; i++)
        wa_node_add_attr(a, bad, "k", "v");
    T_EQ_INT(wa_node_encode(bad, &enc, &elen), WA_OK, "encode: 32767 attributes fit LIST_16");
    size_t attrs_len = elen;
    wa_node *back;
    T_EQ_INT(wa_node_decode(enc, elen, NULL, a, &back), WA_OK, "encode: 32767 attributes decode");
    T_CHECK(back->nattrs == 32767 && enc[0] == 0xF9 && attrs_len > 65534, "encode: LIST_16 node header");
    free(enc);
    wa_node_set_str(a, bad, "c");
    T_EQ_INT(wa_node_encode(bad, &enc, &elen), WA_ERR_UNENCODABLE, "encode: list size 65536 refused");
    wa_arena_free(a);
}

static void test_model(void)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = wa_node_new(a, "a\"<b>");
    wa_node_add_attr(a, n, "k", "x&y\n");
    uint8_t data[100];
    memset(data, 0xFE, sizeof(data));
    wa_node_set_bytes(a, n, data, sizeof(data));
    char *s = wa_node_to_string(n, 4096);
    T_CHECK(s && strstr(s, "<a&quot;&lt;b&gt; k=\"x&amp;y\\x0a\">fefe") == s, "dump: escapes tag and value");
    T_CHECK(s && strstr(s, "fe...(100 bytes)</a&quot;&lt;b&gt;>") != NULL, "dump: long bytes shortened");
    free(s);
    s = wa_node_to_string(n, 20);
    T_CHECK(s && strlen(s) == 20 && strcmp(s + 17, "...") == 0, "dump: cut to max with ...");
    free(s);

    wa_node *x = wa_node_new(a, "x"), *y = wa_node_new(a, "x");
    wa_node_set_str(a, x, "hello");
    wa_node_set_bytes(a, y, "hello", 5);
    T_CHECK(wa_node_equal(x, y), "equal: raw string and bytes content alike");
    wa_node_set_bytes(a, y, "hellp", 5);
    T_CHECK(!wa_node_equal(x, y), "equal: different bytes");
    wa_node_add_attr(a, x, "k", "v");
    T_CHECK(!wa_node_equal(x, y), "equal: attribute count");
    wa_jid j1, j2;
    wa_jid_parse(a, "1:2@s.whatsapp.net", &j1);
    j2 = j1;
    j2.wire = WA_JID_AD;
    T_CHECK(wa_jid_equal(&j1, &j2) && jid_same_wire(&j1, &j2), "equal: AUTO resolves to AD");
    j2.wire = WA_JID_PAIR;
    T_CHECK(!jid_same_wire(&j1, &j2), "equal: wire form compared");
    T_EQ_STR(wa_node_attr_str(x, "k"), "v", "attr: string lookup");
    T_CHECK(wa_node_attr_str(x, "nope") == NULL, "attr: missing");
    wa_node_add_attr_jid(a, x, "j", &j1);
    T_CHECK(wa_node_attr_str(x, "j") == NULL && wa_node_attr(x, "j")->type == WA_VAL_JID,
            "attr: JID is not a str");
    T_EQ_STR(wa_strerror(WA_ERR_DEPTH), "nesting too deep", "strerror");
    wa_arena_free(a);
}

int main(void)
{
    test_tokens();
    test_ping_vector();
    test_packing();
    test_dictionaries();
    test_jids();
    test_binary_lengths();
    test_zlib();
    test_malformed();
    test_model();
    T_DONE();
}
