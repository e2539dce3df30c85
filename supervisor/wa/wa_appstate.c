/* App-state patches and snapshots (see wa_appstate.h): decode and verify
 * them into actions and a new collection state; encode our own changes. */
#include "wa_appstate.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/appstate.pb-c.h"
#include "wa_crypto.h"

#define IV_LEN 16
#define MAX_MUTATIONS 200000 /* far above a real collection; bounds the work per call */
#define MAX_INDEX_PARTS 32
#define MAX_KEYS 8 /* distinct key ids in one patch or snapshot */

/* ---- index JSON (an array of strings, as JSON.stringify writes it) ---- */

static int put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x110000) {
        out[(*o)++] = (char)(0xf0 | cp >> 18);
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        return -1;
    }
    return 0;
}

static int hex4(const char *s, size_t n, size_t i, uint32_t *v)
{
    *v = 0;
    if (i + 4 > n)
        return -1;
    for (size_t j = i; j < i + 4; j++) {
        char c = s[j];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static void skip_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
        (*i)++;
}

/* One string element starting at s[*i] == '"', unescaped into the arena. */
static const char *parse_string(wa_arena *a, const char *s, size_t n, size_t *i)
{
    /* An unescaped string is never longer than its escaped form. */
    char *out = wa_arena_alloc(a, n - *i + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    (*i)++;
    while (*i < n) {
        unsigned char c = (unsigned char)s[*i];
        if (c == '"') {
            (*i)++;
            out[o] = 0;
            return out;
        }
        if (c < 0x20)
            return NULL;
        if (c != '\\') {
            out[o++] = (char)c;
            (*i)++;
            continue;
        }
        if (++(*i) >= n)
            return NULL;
        char e = s[(*i)++];
        uint32_t cp;
        switch (e) {
        case '"':
            out[o++] = '"';
            break;
        case '\\':
            out[o++] = '\\';
            break;
        case '/':
            out[o++] = '/';
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u':
            if (hex4(s, n, *i, &cp) != 0)
                return NULL;
            *i += 4;
            if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
                uint32_t lo;
                if (*i + 6 > n || s[*i] != '\\' || s[*i + 1] != 'u' || hex4(s, n, *i + 2, &lo) != 0 ||
                    lo < 0xdc00 || lo >= 0xe000)
                    return NULL;
                *i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return NULL;
            }
            if (cp == 0 || put_utf8(out, &o, cp) != 0) /* \u0000 would cut the C string */
                return NULL;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

static int parse_index(wa_arena *a, const char *s, size_t n, const char ***parts, size_t *count)
{
    const char **p = wa_arena_alloc(a, MAX_INDEX_PARTS * sizeof *p);
    size_t i = 0, k = 0;
    if (!p)
        return WA_AS_INTERNAL;
    skip_ws(s, n, &i);
    if (i >= n || s[i++] != '[')
        return WA_AS_MALFORMED;
    skip_ws(s, n, &i);
    if (i < n && s[i] == ']') {
        i++;
    } else {
        for (;;) {
            skip_ws(s, n, &i);
            if (i >= n || k == MAX_INDEX_PARTS)
                return WA_AS_MALFORMED;
            if (s[i] == '"') {
                if (!(p[k++] = parse_string(a, s, n, &i)))
                    return WA_AS_MALFORMED;
            } else { /* a bare literal (number, true, false, null) kept as its text */
                size_t st = i;
                while (i < n && (s[i] == '-' || s[i] == '+' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
                                 (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
                    i++;
                if (i == st || !(p[k++] = wa_arena_strndup(a, s + st, i - st)))
                    return i == st ? WA_AS_MALFORMED : WA_AS_INTERNAL;
            }
            skip_ws(s, n, &i);
            if (i < n && s[i] == ',') {
                i++;
                continue;
            }
            if (i < n && s[i] == ']') {
                i++;
                break;
            }
            return WA_AS_MALFORMED;
        }
    }
    skip_ws(s, n, &i);
    if (i != n || k == 0) /* an action always names itself first */
        return WA_AS_MALFORMED;
    *parts = p;
    *count = k;
    return WA_AS_OK;
}

/* JSON.stringify of an array of UTF-8 strings, byte for byte (the index MAC
 * of our change must be the one the phone computes for the same chat). */
static char *index_json(wa_arena *a, const char *const *parts, size_t n, size_t *len)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += strlen(parts[i]) * 6 + 3;
    char *out = wa_arena_alloc(a, cap);
    size_t o = 0;
    if (!out)
        return NULL;
    out[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[o++] = ',';
        out[o++] = '"';
        for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++) {
            switch (*c) {
            case '"':
                out[o++] = '\\';
                out[o++] = '"';
                break;
            case '\\':
                out[o++] = '\\';
                out[o++] = '\\';
                break;
            case '\b':
                out[o++] = '\\';
                out[o++] = 'b';
                break;
            case '\f':
                out[o++] = '\\';
                out[o++] = 'f';
                break;
            case '\n':
                out[o++] = '\\';
                out[o++] = 'n';
                break;
            case '\r':
                out[o++] = '\\';
                out[o++] = 'r';
                break;
            case '\t':
                out[o++] = '\\';
                out[o++] = 't';
                break;
            default:
                if (*c < 0x20)
                    o += (size_t)snprintf(out + o, 7, "\\u%04x", *c);
                else
                    out[o++] = (char)*c;
            }
        }
        out[o++] = '"';
    }
    out[o++] = ']';
    out[o] = 0;
    *len = o;
    return out;
}

/* ---- AES-256-CBC with PKCS#7 padding ---- */

static int cbc(int enc, const uint8_t key[32], const uint8_t iv[IV_LEN], const uint8_t *in, size_t in_len,
               uint8_t *out, size_t *out_len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0,
        ok = ctx && in_len <= INT32_MAX - 32 &&
             EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv, enc) == 1 &&
             EVP_CipherUpdate(ctx, out, &l1, in, (int)in_len) == 1 &&
             EVP_CipherFinal_ex(ctx, out + l1, &l2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return -1;
    *out_len = (size_t)l1 + (size_t)l2;
    return 0;
}

/* ---- the keys of one decode ---- */

struct keyring {
    const struct wa_as_io *io;
    uint8_t missing[WA_AS_KEY_ID_MAX]; /* the key id we lack, for a key request */
    size_t missing_len;
    size_t n;
    struct {
        uint8_t id[WA_AS_KEY_ID_MAX];
        size_t id_len;
        struct wa_as_keys keys;
    } e[MAX_KEYS];
};

static int keyring_get(struct keyring *r, const Wapi__Appstate__KeyId *kid, const struct wa_as_keys **out)
{
    if (!kid || !kid->has_id || kid->id.len == 0 || kid->id.len > WA_AS_KEY_ID_MAX)
        return WA_AS_MALFORMED;
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].id_len == kid->id.len && memcmp(r->e[i].id, kid->id.data, kid->id.len) == 0) {
            *out = &r->e[i].keys;
            return WA_AS_OK;
        }
    if (r->n == MAX_KEYS)
        return WA_AS_MALFORMED;
    uint8_t data[WA_AS_KEY_DATA_MAX];
    size_t len = sizeof data;
    if (!r->io || !r->io->get_key || r->io->get_key(r->io->ctx, kid->id.data, kid->id.len, data, &len) != 0 ||
        len == 0 || len > sizeof data) {
        memcpy(r->missing, kid->id.data, kid->id.len);
        r->missing_len = kid->id.len;
        return WA_AS_MISSING_KEY;
    }
    int rc = wa_as_keys_derive(data, len, &r->e[r->n].keys) == 0 ? WA_AS_OK : WA_AS_INTERNAL;
    OPENSSL_cleanse(data, sizeof data);
    if (rc != WA_AS_OK)
        return rc;
    memcpy(r->e[r->n].id, kid->id.data, kid->id.len);
    r->e[r->n].id_len = kid->id.len;
    *out = &r->e[r->n++].keys;
    return WA_AS_OK;
}

static void missing_out(const struct keyring *r, struct wa_as_result *out)
{
    memcpy(out->missing_key_id, r->missing, r->missing_len);
    out->missing_key_id_len = r->missing_len;
}

static void keyring_wipe(struct keyring *r)
{
    OPENSSL_cleanse(r->e, sizeof r->e);
}

/* ---- the index MAC → value MAC changes made by one decode ---- */

/* An open-addressing table over the actions decoded so far: the newest
 * action per index MAC, so a later mutation of the same index in the same
 * patch overwrites (or removes) the earlier one, not the stored value. */
struct seen {
    size_t cap;
    size_t *slot; /* action number + 1; 0 = empty */
};

static int seen_init(struct seen *s, wa_arena *a, size_t n)
{
    s->cap = 16;
    while (s->cap < n * 2)
        s->cap <<= 1;
    s->slot = wa_arena_alloc(a, s->cap * sizeof *s->slot);
    return s->slot ? 0 : -1;
}

static size_t *seen_find(struct seen *s, const struct wa_as_action *acts, const uint8_t mac[WA_AS_MAC_LEN])
{
    size_t h;
    memcpy(&h, mac, sizeof h); /* already a uniform HMAC output */
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
        if (s->slot[i] == 0 || memcmp(acts[s->slot[i] - 1].index_mac, mac, WA_AS_MAC_LEN) == 0)
            return &s->slot[i];
}

/* ---- one mutation ---- */

static enum wa_as_kind kind_of_index(const char *name)
{
    static const struct {
        const char *name;
        enum wa_as_kind kind;
    } T[] = {
        {"contact", WA_AS_CONTACT},
        {"setting_pushName", WA_AS_PUSH_NAME},
        {"archive", WA_AS_ARCHIVE},
        {"pin_v1", WA_AS_PIN},
        {"mute", WA_AS_MUTE},
        {"markChatAsRead", WA_AS_MARK_READ},
        {"star", WA_AS_STAR},
        {"deleteMessageForMe", WA_AS_DELETE_FOR_ME},
        {"clearChat", WA_AS_CLEAR_CHAT},
        {"deleteChat", WA_AS_DELETE_CHAT},
        {"label_edit", WA_AS_LABEL_EDIT},
        {"label_jid", WA_AS_LABEL_ASSOC},
        {"label_message", WA_AS_LABEL_ASSOC},
        {"setting_locale", WA_AS_LOCALE},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (strcmp(T[i].name, name) == 0)
            return T[i].kind;
    return WA_AS_OTHER;
}

const char *wa_as_kind_name(enum wa_as_kind kind)
{
    static const char *const N[] = {"other",       "contact",    "push_name",   "archive",       "pin",
                                    "mute",        "mark_read",  "star",        "delete_for_me", "clear_chat",
                                    "delete_chat", "label_edit", "label_assoc", "locale"};
    return (unsigned)kind < sizeof N / sizeof N[0] ? N[kind] : "other";
}

/* A copy in the arena; *oom set when s was there but could not be copied
 * (so an out-of-memory never reads as an absent name). */
static const char *dup_str(wa_arena *a, const char *s, int *oom)
{
    const char *c = s ? wa_arena_strndup(a, s, strlen(s)) : NULL;
    if (s && !c)
        *oom = 1;
    return c;
}

static int64_t range_ts(const Wapi__Appstate__SyncActionMessageRange *r)
{
    return r && r->has_lastmessagetimestamp ? r->lastmessagetimestamp : 0;
}

/* The fields of the value we apply. */
static int read_value(wa_arena *a, const Wapi__Appstate__SyncActionValue *v, struct wa_as_action *act)
{
    int oom = 0;
    act->kind = kind_of_index(act->index[0]);
    if (!v)
        return WA_AS_OK;
    act->timestamp_ms = v->has_timestamp ? v->timestamp : 0;
    if (v->contactaction) {
        act->kind = WA_AS_CONTACT;
        act->name = dup_str(a, v->contactaction->fullname, &oom);
        act->first_name = dup_str(a, v->contactaction->firstname, &oom);
        act->lid_jid = dup_str(a, v->contactaction->lidjid, &oom);
        act->pn_jid = dup_str(a, v->contactaction->pnjid, &oom);
        act->flag = v->contactaction->saveonprimaryaddressbook;
    } else if (v->pushnamesetting) {
        act->kind = WA_AS_PUSH_NAME;
        act->name = dup_str(a, v->pushnamesetting->name, &oom);
    } else if (v->archivechataction) {
        act->kind = WA_AS_ARCHIVE;
        act->flag = v->archivechataction->archived;
        act->range_last_ts = range_ts(v->archivechataction->messagerange);
    } else if (v->pinaction) {
        act->kind = WA_AS_PIN;
        act->flag = v->pinaction->pinned;
    } else if (v->muteaction) {
        act->kind = WA_AS_MUTE;
        act->flag = v->muteaction->muted;
        act->mute_end_ms = v->muteaction->has_muteendtimestamp ? v->muteaction->muteendtimestamp : 0;
    } else if (v->markchatasreadaction) {
        act->kind = WA_AS_MARK_READ;
        act->flag = v->markchatasreadaction->read;
        act->range_last_ts = range_ts(v->markchatasreadaction->messagerange);
    } else if (v->staraction) {
        act->kind = WA_AS_STAR;
        act->flag = v->staraction->starred;
    } else if (v->deletemessageformeaction) {
        act->kind = WA_AS_DELETE_FOR_ME;
        act->flag = v->deletemessageformeaction->deletemedia;
        act->message_ts = v->deletemessageformeaction->messagetimestamp;
    } else if (v->clearchataction) {
        act->kind = WA_AS_CLEAR_CHAT;
        act->range_last_ts = range_ts(v->clearchataction->messagerange);
    } else if (v->deletechataction) {
        act->kind = WA_AS_DELETE_CHAT;
        act->range_last_ts = range_ts(v->deletechataction->messagerange);
    } else if (v->labeleditaction) {
        act->kind = WA_AS_LABEL_EDIT;
        act->name = dup_str(a, v->labeleditaction->name, &oom);
        act->color = v->labeleditaction->color;
        act->flag = v->labeleditaction->deleted;
    } else if (v->labelassociationaction) {
        act->kind = WA_AS_LABEL_ASSOC;
        act->flag = v->labelassociationaction->labeled;
    } else if (v->localesetting) {
        act->kind = WA_AS_LOCALE;
        act->name = dup_str(a, v->localesetting->locale, &oom);
    }
    size_t sz = wapi__appstate__sync_action_value__get_packed_size(v);
    uint8_t *raw = wa_arena_alloc(a, sz ? sz : 1);
    if (!raw || oom)
        return WA_AS_INTERNAL;
    act->value_len = wapi__appstate__sync_action_value__pack(v, raw);
    act->value = raw;
    return WA_AS_OK;
}

struct decode {
    const char *name;
    wa_arena *a;
    struct keyring ring;
    struct wa_as_action *acts;
    size_t n;
    struct seen seen;
    uint8_t hash[WA_LTHASH_LEN];
    int use_store; /* consult io->prev_value_mac (patches, not snapshots) */
};

/* The value MAC index_mac held before this mutation: 1 found, 0 none, <0 error. */
static int prev_of(struct decode *d, const uint8_t index_mac[WA_AS_MAC_LEN], uint8_t out[WA_AS_MAC_LEN])
{
    size_t *slot = seen_find(&d->seen, d->acts, index_mac);
    if (*slot) {
        const struct wa_as_action *p = &d->acts[*slot - 1];
        if (p->op == WA_AS_REMOVE)
            return 0;
        memcpy(out, p->value_mac, WA_AS_MAC_LEN);
        return 1;
    }
    if (!d->use_store || !d->ring.io || !d->ring.io->prev_value_mac)
        return 0;
    int r = d->ring.io->prev_value_mac(d->ring.io->ctx, index_mac, out);
    return r < 0 ? WA_AS_INTERNAL : r > 0;
}

static int mutation(struct decode *d, int op, const Wapi__Appstate__SyncdRecord *rec)
{
    const struct wa_as_keys *k;
    if (!rec || !rec->index || !rec->index->has_blob || rec->index->blob.len != WA_AS_MAC_LEN ||
        !rec->value || !rec->value->has_blob)
        return WA_AS_MALFORMED;
    const ProtobufCBinaryData *blob = &rec->value->blob;
    /* IV, at least one cipher block, the MAC */
    if (blob->len < IV_LEN + 16 + WA_AS_MAC_LEN || (blob->len - IV_LEN - WA_AS_MAC_LEN) % 16 != 0)
        return WA_AS_MALFORMED;
    int rc = keyring_get(&d->ring, rec->keyid, &k);
    if (rc != WA_AS_OK)
        return rc;
    size_t enc_len = blob->len - WA_AS_MAC_LEN;
    struct wa_as_action *act = &d->acts[d->n];
    memset(act, 0, sizeof *act);
    act->op = op;
    if (wa_as_value_mac(k, op, rec->keyid->id.data, rec->keyid->id.len, blob->data, enc_len,
                        act->value_mac) != 0)
        return WA_AS_INTERNAL;
    if (CRYPTO_memcmp(act->value_mac, blob->data + enc_len, WA_AS_MAC_LEN) != 0)
        return WA_AS_BAD_VALUE_MAC;

    size_t pt_cap = enc_len - IV_LEN, pt_len = 0;
    uint8_t *pt = malloc(pt_cap + 16);
    if (!pt)
        return WA_AS_INTERNAL;
    Wapi__Appstate__SyncActionData *data = NULL;
    if (cbc(0, k->value_enc, blob->data, blob->data + IV_LEN, pt_cap, pt, &pt_len) != 0 ||
        !(data = wapi__appstate__sync_action_data__unpack(NULL, pt_len, pt))) {
        free(pt);
        return WA_AS_MALFORMED;
    }
    free(pt);
    uint8_t imac[WA_AS_MAC_LEN];
    rc = WA_AS_OK;
    if (!data->has_index || data->index.len == 0 || data->index.len > 65536)
        rc = WA_AS_MALFORMED;
    else if (wa_as_index_mac(k, data->index.data, data->index.len, imac) != 0)
        rc = WA_AS_INTERNAL;
    else if (CRYPTO_memcmp(imac, rec->index->blob.data, WA_AS_MAC_LEN) != 0)
        rc = WA_AS_BAD_INDEX_MAC;
    if (rc == WA_AS_OK) {
        memcpy(act->index_mac, imac, WA_AS_MAC_LEN);
        if (!(act->index_json = wa_arena_strndup(d->a, (const char *)data->index.data, data->index.len)))
            rc = WA_AS_INTERNAL;
        else if (strlen(act->index_json) != data->index.len)
            rc = WA_AS_MALFORMED; /* a NUL inside */
        else
            rc = parse_index(d->a, act->index_json, data->index.len, &act->index, &act->n_index);
    }
    if (rc == WA_AS_OK) {
        act->api_version = data->has_version ? data->version : 0;
        rc = read_value(d->a, data->value, act);
    }
    wapi__appstate__sync_action_data__free_unpacked(data, NULL);
    if (rc != WA_AS_OK)
        return rc;

    /* The LTHash: a SET adds its value, and both a SET and a REMOVE take
     * away the value the index held. A REMOVE of an index we never saw has
     * nothing to take away; the snapshot MAC check then tells whether our
     * state and the server's still agree. */
    uint8_t prev[WA_AS_MAC_LEN];
    int had = prev_of(d, act->index_mac, prev);
    if (had < 0)
        return had;
    if (had && wa_lthash_sub(d->hash, prev, sizeof prev) != 0)
        return WA_AS_INTERNAL;
    if (op == WA_AS_SET && wa_lthash_add(d->hash, act->value_mac, WA_AS_MAC_LEN) != 0)
        return WA_AS_INTERNAL;
    *seen_find(&d->seen, d->acts, act->index_mac) = d->n + 1;
    d->n++;
    return WA_AS_OK;
}

static int op_of(const Wapi__Appstate__SyncdMutation *m, int *op)
{
    if (!m->has_operation || m->operation == WAPI__APPSTATE__SYNCD_MUTATION__OPERATION__SET)
        *op = WA_AS_SET;
    else if (m->operation == WAPI__APPSTATE__SYNCD_MUTATION__OPERATION__REMOVE)
        *op = WA_AS_REMOVE;
    else
        return WA_AS_MALFORMED;
    return WA_AS_OK;
}

static int name_ok(const char *name)
{
    return name && name[0] && strlen(name) <= 64;
}

int wa_as_decode_patch(const char *name, const struct wa_as_state *state, const uint8_t *patch, size_t len,
                       const uint8_t *ext, size_t ext_len, const struct wa_as_io *io, wa_arena *a,
                       struct wa_as_result *out)
{
    memset(out, 0, sizeof *out);
    if (!name_ok(name) || !state || !patch || !a)
        return WA_AS_MALFORMED;
    Wapi__Appstate__SyncdPatch *p = wapi__appstate__syncd_patch__unpack(NULL, len, patch);
    if (!p)
        return WA_AS_MALFORMED;
    Wapi__Appstate__SyncdMutations *em = NULL;
    struct decode *d = calloc(1, sizeof *d);
    uint8_t *vmacs = NULL;
    int rc = d ? WA_AS_OK : WA_AS_INTERNAL;
    if (rc == WA_AS_OK && p->externalmutations) {
        if (!ext || !(em = wapi__appstate__syncd_mutations__unpack(NULL, ext_len, ext)))
            rc = WA_AS_MALFORMED;
    } else if (rc == WA_AS_OK && ext) {
        rc = WA_AS_MALFORMED; /* a blob for a patch that names none */
    }
    size_t n_in = p->n_mutations, n_ex = em ? em->n_mutations : 0, total = n_in + n_ex;
    uint64_t version = 0;
    if (rc == WA_AS_OK) {
        version = p->version && p->version->has_version ? p->version->version : state->version + 1;
        if (version <= state->version || !p->has_snapshotmac || p->snapshotmac.len != WA_AS_MAC_LEN ||
            !p->has_patchmac || p->patchmac.len != WA_AS_MAC_LEN || total > MAX_MUTATIONS)
            rc = WA_AS_MALFORMED;
    }
    const struct wa_as_keys *pk = NULL;
    if (rc == WA_AS_OK) {
        d->name = name;
        d->a = a;
        d->ring.io = io;
        d->use_store = 1;
        memcpy(d->hash, state->hash, WA_LTHASH_LEN);
        rc = keyring_get(&d->ring, p->keyid, &pk);
    }
    /* The patch MAC first: it covers every value MAC, so a patch that
     * passes it has exactly the mutations the server signed. */
    if (rc == WA_AS_OK && !(vmacs = malloc(total ? total * WA_AS_MAC_LEN : 1)))
        rc = WA_AS_INTERNAL;
    for (size_t i = 0; rc == WA_AS_OK && i < total; i++) {
        const Wapi__Appstate__SyncdMutation *m = i < n_in ? p->mutations[i] : em->mutations[i - n_in];
        const Wapi__Appstate__SyncdRecord *r = m->record;
        if (!r || !r->value || !r->value->has_blob || r->value->blob.len < WA_AS_MAC_LEN)
            rc = WA_AS_MALFORMED;
        else
            memcpy(vmacs + i * WA_AS_MAC_LEN, r->value->blob.data + r->value->blob.len - WA_AS_MAC_LEN,
                   WA_AS_MAC_LEN);
    }
    if (rc == WA_AS_OK) {
        uint8_t mac[WA_AS_MAC_LEN];
        if (wa_as_patch_mac(pk, p->snapshotmac.data, vmacs, total, version, name, mac) != 0)
            rc = WA_AS_INTERNAL;
        else if (CRYPTO_memcmp(mac, p->patchmac.data, WA_AS_MAC_LEN) != 0)
            rc = WA_AS_BAD_PATCH_MAC;
    }
    if (rc == WA_AS_OK && (!(d->acts = wa_arena_alloc(a, (total ? total : 1) * sizeof *d->acts)) ||
                           seen_init(&d->seen, a, total) != 0))
        rc = WA_AS_INTERNAL;
    for (size_t i = 0; rc == WA_AS_OK && i < total; i++) {
        const Wapi__Appstate__SyncdMutation *m = i < n_in ? p->mutations[i] : em->mutations[i - n_in];
        int op;
        rc = op_of(m, &op);
        if (rc == WA_AS_OK)
            rc = mutation(d, op, m->record);
    }
    if (rc == WA_AS_OK) {
        uint8_t mac[WA_AS_MAC_LEN];
        if (wa_as_snapshot_mac(pk, d->hash, version, name, mac) != 0)
            rc = WA_AS_INTERNAL;
        else if (CRYPTO_memcmp(mac, p->snapshotmac.data, WA_AS_MAC_LEN) != 0)
            rc = WA_AS_LTHASH_MISMATCH;
    }
    if (rc == WA_AS_OK) {
        out->state.version = version;
        memcpy(out->state.hash, d->hash, WA_LTHASH_LEN);
        out->actions = d->acts;
        out->n = d->n;
    }
    if (d && rc == WA_AS_MISSING_KEY)
        missing_out(&d->ring, out);
    if (d)
        keyring_wipe(&d->ring);
    free(d);
    free(vmacs);
    if (em)
        wapi__appstate__syncd_mutations__free_unpacked(em, NULL);
    wapi__appstate__syncd_patch__free_unpacked(p, NULL);
    return rc;
}

int wa_as_decode_snapshot(const char *name, const uint8_t *snap, size_t len, const struct wa_as_io *io,
                          wa_arena *a, struct wa_as_result *out)
{
    memset(out, 0, sizeof *out);
    if (!name_ok(name) || !snap || !a)
        return WA_AS_MALFORMED;
    Wapi__Appstate__SyncdSnapshot *s = wapi__appstate__syncd_snapshot__unpack(NULL, len, snap);
    if (!s)
        return WA_AS_MALFORMED;
    struct decode *d = calloc(1, sizeof *d);
    int rc = d ? WA_AS_OK : WA_AS_INTERNAL;
    if (rc == WA_AS_OK && (!s->version || !s->version->has_version || !s->has_mac ||
                           s->mac.len != WA_AS_MAC_LEN || s->n_records > MAX_MUTATIONS))
        rc = WA_AS_MALFORMED;
    const struct wa_as_keys *sk = NULL;
    if (rc == WA_AS_OK) {
        d->name = name;
        d->a = a;
        d->ring.io = io;
        rc = keyring_get(&d->ring, s->keyid, &sk);
    }
    if (rc == WA_AS_OK &&
        (!(d->acts = wa_arena_alloc(a, (s->n_records ? s->n_records : 1) * sizeof *d->acts)) ||
         seen_init(&d->seen, a, s->n_records) != 0))
        rc = WA_AS_INTERNAL;
    for (size_t i = 0; rc == WA_AS_OK && i < s->n_records; i++)
        rc = mutation(d, WA_AS_SET, s->records[i]);
    if (rc == WA_AS_OK) {
        uint8_t mac[WA_AS_MAC_LEN];
        if (wa_as_snapshot_mac(sk, d->hash, s->version->version, name, mac) != 0)
            rc = WA_AS_INTERNAL;
        else if (CRYPTO_memcmp(mac, s->mac.data, WA_AS_MAC_LEN) != 0)
            rc = WA_AS_BAD_SNAPSHOT_MAC;
    }
    if (rc == WA_AS_OK) {
        out->state.version = s->version->version;
        memcpy(out->state.hash, d->hash, WA_LTHASH_LEN);
        out->actions = d->acts;
        out->n = d->n;
    }
    if (d && rc == WA_AS_MISSING_KEY)
        missing_out(&d->ring, out);
    if (d)
        keyring_wipe(&d->ring);
    free(d);
    wapi__appstate__syncd_snapshot__free_unpacked(s, NULL);
    return rc;
}

static int blob_ref(const Wapi__Appstate__ExternalBlobReference *r, wa_arena *a, struct wa_as_blob_ref *out)
{
    memset(out, 0, sizeof *out);
    if (!r->has_mediakey || r->mediakey.len != 32 || !r->directpath || r->directpath[0] != '/' ||
        strlen(r->directpath) > 1024 || (r->has_filesha256 && r->filesha256.len != 32) ||
        (r->has_fileencsha256 && r->fileencsha256.len != 32))
        return WA_AS_MALFORMED;
    uint8_t *mk = wa_arena_alloc(a, 32), *sha = NULL, *esha = NULL;
    if (r->has_filesha256 && (sha = wa_arena_alloc(a, 32)))
        memcpy(sha, r->filesha256.data, 32);
    if (r->has_fileencsha256 && (esha = wa_arena_alloc(a, 32)))
        memcpy(esha, r->fileencsha256.data, 32);
    out->direct_path = wa_arena_strndup(a, r->directpath, strlen(r->directpath));
    if (!mk || !out->direct_path || (r->has_filesha256 && !sha) || (r->has_fileencsha256 && !esha))
        return WA_AS_INTERNAL;
    memcpy(mk, r->mediakey.data, 32);
    out->media_key = mk;
    out->media_key_len = 32;
    out->size = r->has_filesizebytes ? r->filesizebytes : 0;
    out->file_sha256 = sha;
    out->file_enc_sha256 = esha;
    return WA_AS_OK;
}

int wa_as_blob_ref_parse(const uint8_t *buf, size_t len, wa_arena *a, struct wa_as_blob_ref *out)
{
    Wapi__Appstate__ExternalBlobReference *r =
        wapi__appstate__external_blob_reference__unpack(NULL, len, buf);
    if (!r)
        return WA_AS_MALFORMED;
    int rc = blob_ref(r, a, out);
    wapi__appstate__external_blob_reference__free_unpacked(r, NULL);
    return rc;
}

int wa_as_patch_external(const uint8_t *patch, size_t len, wa_arena *a, struct wa_as_blob_ref *out)
{
    Wapi__Appstate__SyncdPatch *p = wapi__appstate__syncd_patch__unpack(NULL, len, patch);
    if (!p)
        return WA_AS_MALFORMED;
    int has = p->externalmutations != NULL;
    int rc = has ? blob_ref(p->externalmutations, a, out) : WA_AS_OK;
    wapi__appstate__syncd_patch__free_unpacked(p, NULL);
    return rc != WA_AS_OK ? rc : has;
}

/* ---- our own changes ---- */

const char *wa_as_change_collection(enum wa_as_kind kind)
{
    switch (kind) {
    case WA_AS_ARCHIVE:
    case WA_AS_PIN:
    case WA_AS_MARK_READ:
        return "regular_low";
    case WA_AS_MUTE:
        return "regular_high";
    case WA_AS_PUSH_NAME:
        return "critical_block";
    default:
        return NULL;
    }
}

int wa_as_encode_change(const struct wa_as_change *c, const struct wa_as_state *state, const uint8_t *key_id,
                        size_t key_id_len, const uint8_t *key_data, size_t key_len, const struct wa_as_io *io,
                        wa_arena *a, struct wa_as_encoded *out)
{
    memset(out, 0, sizeof *out);
    const char *coll = c ? wa_as_change_collection(c->kind) : NULL;
    if (!coll || !c->jid || !c->jid[0] || strlen(c->jid) > 256 || !state || state->version == UINT64_MAX ||
        !key_id || key_id_len == 0 || key_id_len > WA_AS_KEY_ID_MAX || !a)
        return WA_AS_MALFORMED;
    struct wa_as_keys k;
    if (wa_as_keys_derive(key_data, key_len, &k) != 0)
        return WA_AS_MALFORMED;

    /* The action, as the phone writes the same one (index and version). */
    Wapi__Appstate__SyncActionValue v = WAPI__APPSTATE__SYNC_ACTION_VALUE__INIT;
    Wapi__Appstate__ArchiveChatAction arch = WAPI__APPSTATE__ARCHIVE_CHAT_ACTION__INIT;
    Wapi__Appstate__PinAction pin = WAPI__APPSTATE__PIN_ACTION__INIT;
    Wapi__Appstate__MuteAction mute = WAPI__APPSTATE__MUTE_ACTION__INIT;
    Wapi__Appstate__MarkChatAsReadAction read = WAPI__APPSTATE__MARK_CHAT_AS_READ_ACTION__INIT;
    Wapi__Appstate__PushNameSetting pn = WAPI__APPSTATE__PUSH_NAME_SETTING__INIT;
    Wapi__Appstate__SyncActionMessageRange range = WAPI__APPSTATE__SYNC_ACTION_MESSAGE_RANGE__INIT;
    if (c->last_msg_ts > 0) {
        range.has_lastmessagetimestamp = 1;
        range.lastmessagetimestamp = c->last_msg_ts;
    }
    const char *parts[2] = {NULL, c->jid};
    size_t nparts = 2;
    int32_t api;
    v.has_timestamp = 1;
    v.timestamp = c->timestamp_ms;
    switch (c->kind) {
    case WA_AS_ARCHIVE:
        parts[0] = "archive";
        api = 3;
        arch.has_archived = 1;
        arch.archived = !!c->flag;
        arch.messagerange = &range;
        v.archivechataction = &arch;
        break;
    case WA_AS_PIN:
        parts[0] = "pin_v1";
        api = 5;
        pin.has_pinned = 1;
        pin.pinned = !!c->flag;
        v.pinaction = &pin;
        break;
    case WA_AS_MUTE:
        parts[0] = "mute";
        api = 2;
        mute.has_muted = 1;
        mute.muted = !!c->flag;
        if (c->flag && c->mute_end_ms) {
            mute.has_muteendtimestamp = 1;
            mute.muteendtimestamp = c->mute_end_ms;
        }
        v.muteaction = &mute;
        break;
    case WA_AS_PUSH_NAME: /* ["setting_pushName"], the name in the value alone */
        parts[0] = "setting_pushName";
        nparts = 1;
        api = 1;
        pn.name = (char *)c->jid;
        v.pushnamesetting = &pn;
        break;
    default: /* WA_AS_MARK_READ */
        parts[0] = "markChatAsRead";
        api = 3;
        read.has_read = 1;
        read.read = !!c->flag;
        read.messagerange = &range;
        v.markchatasreadaction = &read;
        break;
    }
    size_t ilen;
    char *index = index_json(a, parts, nparts, &ilen);
    if (!index)
        return WA_AS_INTERNAL;
    Wapi__Appstate__SyncActionData data = WAPI__APPSTATE__SYNC_ACTION_DATA__INIT;
    data.has_index = 1;
    data.index.data = (uint8_t *)index;
    data.index.len = ilen;
    data.value = &v;
    data.has_padding = 1; /* empty, as the phone writes it */
    data.padding.data = (uint8_t *)"";
    data.padding.len = 0;
    data.has_version = 1;
    data.version = api;
    size_t plen = wapi__appstate__sync_action_data__get_packed_size(&data);
    uint8_t *plain = wa_arena_alloc(a, plen ? plen : 1);
    /* IV ‖ ciphertext (at most one block of padding more) ‖ value MAC */
    uint8_t *blob = wa_arena_alloc(a, IV_LEN + plen + 16 + WA_AS_MAC_LEN);
    if (!plain || !blob)
        return WA_AS_INTERNAL;
    wapi__appstate__sync_action_data__pack(&data, plain);
    size_t ct_len;
    if (wa_crypto_random(blob, IV_LEN) != 0 ||
        cbc(1, k.value_enc, blob, plain, plen, blob + IV_LEN, &ct_len) != 0)
        return WA_AS_INTERNAL;
    size_t enc_len = IV_LEN + ct_len;
    if (wa_as_value_mac(&k, WA_AS_SET, key_id, key_id_len, blob, enc_len, out->value_mac) != 0 ||
        wa_as_index_mac(&k, (const uint8_t *)index, ilen, out->index_mac) != 0)
        return WA_AS_INTERNAL;
    memcpy(blob + enc_len, out->value_mac, WA_AS_MAC_LEN);

    /* The state once the server takes the patch: the overwritten value out,
     * ours in, one version on. */
    out->state = *state;
    out->state.version++;
    uint8_t prev[WA_AS_MAC_LEN];
    int had = io && io->prev_value_mac ? io->prev_value_mac(io->ctx, out->index_mac, prev) : 0;
    if (had < 0)
        return WA_AS_INTERNAL;
    if ((had && wa_lthash_sub(out->state.hash, prev, sizeof prev) != 0) ||
        wa_lthash_add(out->state.hash, out->value_mac, WA_AS_MAC_LEN) != 0)
        return WA_AS_INTERNAL;
    uint8_t smac[WA_AS_MAC_LEN], pmac[WA_AS_MAC_LEN];
    if (wa_as_snapshot_mac(&k, out->state.hash, out->state.version, coll, smac) != 0 ||
        wa_as_patch_mac(&k, smac, out->value_mac, 1, out->state.version, coll, pmac) != 0)
        return WA_AS_INTERNAL;
    OPENSSL_cleanse(&k, sizeof k);

    Wapi__Appstate__KeyId kid = WAPI__APPSTATE__KEY_ID__INIT;
    kid.has_id = 1;
    kid.id.data = (uint8_t *)key_id;
    kid.id.len = key_id_len;
    Wapi__Appstate__SyncdIndex sidx = WAPI__APPSTATE__SYNCD_INDEX__INIT;
    sidx.has_blob = 1;
    sidx.blob.data = out->index_mac;
    sidx.blob.len = WA_AS_MAC_LEN;
    Wapi__Appstate__SyncdValue sval = WAPI__APPSTATE__SYNCD_VALUE__INIT;
    sval.has_blob = 1;
    sval.blob.data = blob;
    sval.blob.len = enc_len + WA_AS_MAC_LEN;
    Wapi__Appstate__SyncdRecord rec = WAPI__APPSTATE__SYNCD_RECORD__INIT;
    rec.index = &sidx;
    rec.value = &sval;
    rec.keyid = &kid;
    Wapi__Appstate__SyncdMutation mut = WAPI__APPSTATE__SYNCD_MUTATION__INIT;
    mut.has_operation = 1;
    mut.operation = WAPI__APPSTATE__SYNCD_MUTATION__OPERATION__SET;
    mut.record = &rec;
    Wapi__Appstate__SyncdMutation *muts[1] = {&mut};
    /* No version in the patch: the IQ names the collection's version before
     * it, and the server numbers it (as the phone and WhatsApp Web send). */
    Wapi__Appstate__SyncdPatch p = WAPI__APPSTATE__SYNCD_PATCH__INIT;
    p.n_mutations = 1;
    p.mutations = muts;
    p.has_snapshotmac = 1;
    p.snapshotmac.data = smac;
    p.snapshotmac.len = WA_AS_MAC_LEN;
    p.has_patchmac = 1;
    p.patchmac.data = pmac;
    p.patchmac.len = WA_AS_MAC_LEN;
    p.keyid = &kid;
    size_t sz = wapi__appstate__syncd_patch__get_packed_size(&p);
    uint8_t *buf = wa_arena_alloc(a, sz);
    if (!buf)
        return WA_AS_INTERNAL;
    out->len = wapi__appstate__syncd_patch__pack(&p, buf);
    out->patch = buf;
    out->collection = coll;
    return WA_AS_OK;
}
