/* App-state sync core against an independent implementation: the vectors
 * come from Baileys and its whatsapp-rust-bridge, run by this test
 * (tests/wa/appstate_vectors.mjs): mutation keys, an LTHash step, patches
 * Baileys encoded (archive, pin, mute, read, contact, star, push name, an
 * overwrite, a REMOVE, several mutations in one patch, one without a
 * version) decoded with the state and actions Baileys got, a snapshot. Then
 * each MAC tampered with is refused with its own code and a wrong LTHash
 * with lthash_mismatch, the state untouched; and the patches we encode are
 * decoded by Baileys (same action, same LTHash) and by us. */
#include "supervisor/wa/wa_appstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/json.h"
#include "proto/appstate.pb-c.h"
#include "t.h"

static char *run(const char *cmd, size_t *len)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    if (pclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

/* A hex string of the vectors into a malloc'd buffer. */
static uint8_t *unhex(const char *s, size_t *n)
{
    if (!s)
        return NULL;
    *n = strlen(s) / 2;
    uint8_t *b = malloc(*n ? *n : 1);
    if (b && hex_decode(s, b, *n) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

static int eq_hex(const uint8_t *b, size_t n, const char *want)
{
    char h[1024];
    if (!want || n * 2 + 1 > sizeof h)
        return 0;
    hex_encode(h, b, n, 0);
    return strcmp(h, want) == 0;
}

static const char *sget(yajl_val v)
{
    const char *s = YAJL_GET_STRING(v);
    return s ? s : "";
}

/* ---- the io the decoder calls: one sync key, a map index MAC → value MAC ---- */

struct fake {
    uint8_t key_id[16];
    size_t key_id_len;
    uint8_t key[32];
    size_t n;
    uint8_t im[64][32], vm[64][32];
    int lookups;
};

static int get_key(void *ctx, const uint8_t *id, size_t len, uint8_t *data, size_t *dlen)
{
    struct fake *f = ctx;
    if (len != f->key_id_len || memcmp(id, f->key_id, len) != 0 || *dlen < 32)
        return -1;
    memcpy(data, f->key, 32);
    *dlen = 32;
    return 0;
}

static int prev_mac(void *ctx, const uint8_t im[32], uint8_t vm[32])
{
    struct fake *f = ctx;
    f->lookups++;
    for (size_t i = 0; i < f->n; i++)
        if (memcmp(f->im[i], im, 32) == 0) {
            memcpy(vm, f->vm[i], 32);
            return 1;
        }
    return 0;
}

static void fake_load_map(struct fake *f, yajl_val map)
{
    f->n = 0;
    if (!YAJL_IS_OBJECT(map))
        return;
    for (size_t i = 0; i < map->u.object.len && f->n < 64; i++) {
        const char *v = YAJL_GET_STRING(map->u.object.values[i]);
        if (hex_decode(map->u.object.keys[i], f->im[f->n], 32) == 0 && v &&
            hex_decode(v, f->vm[f->n], 32) == 0)
            f->n++;
    }
}

static void fake_apply(struct fake *f, const struct wa_as_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        size_t j = 0;
        while (j < f->n && memcmp(f->im[j], r->actions[i].index_mac, 32) != 0)
            j++;
        if (r->actions[i].op == WA_AS_REMOVE) {
            if (j < f->n) {
                memmove(f->im[j], f->im[f->n - 1], 32);
                memmove(f->vm[j], f->vm[f->n - 1], 32);
                f->n--;
            }
        } else if (j < 64) {
            memcpy(f->im[j], r->actions[i].index_mac, 32);
            memcpy(f->vm[j], r->actions[i].value_mac, 32);
            if (j == f->n)
                f->n++;
        }
    }
}

static int load_state(yajl_val st, struct wa_as_state *s)
{
    int64_t v = 0;
    if (json_int(st, "version", &v) != 1)
        return -1;
    s->version = (uint64_t)v;
    return hex_decode(json_str(st, "hash"), s->hash, WA_LTHASH_LEN);
}

static int index_is(const struct wa_as_action *a, yajl_val want)
{
    if (!YAJL_IS_ARRAY(want) || want->u.array.len != a->n_index)
        return 0;
    for (size_t i = 0; i < a->n_index; i++) {
        const char *w = YAJL_GET_STRING(want->u.array.values[i]);
        if (!w || strcmp(w, a->index[i]) != 0)
            return 0;
    }
    return 1;
}

static int64_t jint(yajl_val o, const char *path1, const char *path2)
{
    yajl_val x = json_member(o, path1);
    int64_t v = -12345;
    if (x && path2)
        json_int(x, path2, &v);
    return v;
}

/* The action's fields against Baileys' SyncActionValue as JSON. */
static int value_is(const struct wa_as_action *a, yajl_val v)
{
    yajl_val m;
    int64_t ts = 0;
    if (json_int(v, "timestamp", &ts) == 1 && ts != a->timestamp_ms)
        return 0;
    if ((m = json_member(v, "archiveChatAction")))
        return a->kind == WA_AS_ARCHIVE && a->flag == (json_bool(m, "archived") == 1) &&
               a->range_last_ts == jint(m, "messageRange", "lastMessageTimestamp");
    if ((m = json_member(v, "pinAction")))
        return a->kind == WA_AS_PIN && a->flag == (json_bool(m, "pinned") == 1);
    if ((m = json_member(v, "muteAction"))) {
        int64_t end = 0;
        json_int(m, "muteEndTimestamp", &end);
        return a->kind == WA_AS_MUTE && a->flag == (json_bool(m, "muted") == 1) && a->mute_end_ms == end;
    }
    if ((m = json_member(v, "markChatAsReadAction")))
        return a->kind == WA_AS_MARK_READ && a->flag == (json_bool(m, "read") == 1) &&
               a->range_last_ts == jint(m, "messageRange", "lastMessageTimestamp");
    if ((m = json_member(v, "contactAction")))
        return a->kind == WA_AS_CONTACT && a->name && strcmp(a->name, json_str(m, "fullName")) == 0 &&
               a->first_name && strcmp(a->first_name, json_str(m, "firstName")) == 0;
    if ((m = json_member(v, "starAction")))
        return a->kind == WA_AS_STAR && a->flag == (json_bool(m, "starred") == 1);
    if ((m = json_member(v, "labelEditAction"))) {
        int64_t color = -1;
        json_int(m, "color", &color);
        return a->kind == WA_AS_LABEL_EDIT && a->name && strcmp(a->name, json_str(m, "name")) == 0 &&
               a->color == color && a->flag == (json_bool(m, "deleted") == 1);
    }
    if ((m = json_member(v, "pushNameSetting")))
        return a->kind == WA_AS_PUSH_NAME && a->name && strcmp(a->name, json_str(m, "name")) == 0;
    return 0;
}

/* Re-encodes a patch after f changed it (the tampering tests). */
typedef void (*tamper_fn)(Wapi__Appstate__SyncdPatch *p);
static uint8_t *tampered(const uint8_t *in, size_t len, tamper_fn f, size_t *out_len)
{
    Wapi__Appstate__SyncdPatch *p = wapi__appstate__syncd_patch__unpack(NULL, len, in);
    if (!p)
        return NULL;
    f(p);
    uint8_t *buf = malloc(wapi__appstate__syncd_patch__get_packed_size(p));
    if (buf)
        *out_len = wapi__appstate__syncd_patch__pack(p, buf);
    wapi__appstate__syncd_patch__free_unpacked(p, NULL);
    return buf;
}
static void t_value_ct(Wapi__Appstate__SyncdPatch *p)
{
    p->mutations[0]->record->value->blob.data[20] ^= 1;
}
static void t_value_mac(Wapi__Appstate__SyncdPatch *p)
{
    ProtobufCBinaryData *b = &p->mutations[0]->record->value->blob;
    b->data[b->len - 1] ^= 1; /* the patch MAC covers it: refused there */
}
static void t_index(Wapi__Appstate__SyncdPatch *p)
{
    p->mutations[0]->record->index->blob.data[3] ^= 0x80;
}
static void t_patch_mac(Wapi__Appstate__SyncdPatch *p)
{
    p->patchmac.data[0] ^= 1;
}
static void t_snapshot_mac(Wapi__Appstate__SyncdPatch *p)
{
    p->snapshotmac.data[31] ^= 1;
}
static void t_key_id(Wapi__Appstate__SyncdPatch *p)
{
    p->keyid->id.data[0] ^= 1;
}
/* A value too short to hold IV, a block and a MAC, under a patch MAC
 * recomputed for it (else the patch MAC would refuse it first). */
static struct wa_as_keys g_keys;
static uint64_t g_version;
static const char *g_name;
static void t_short(Wapi__Appstate__SyncdPatch *p)
{
    ProtobufCBinaryData *b = &p->mutations[0]->record->value->blob;
    b->len = 40;
    wa_as_patch_mac(&g_keys, p->snapshotmac.data, b->data + b->len - 32, 1, g_version, g_name,
                    p->patchmac.data);
}
static void t_op(Wapi__Appstate__SyncdPatch *p)
{
    p->mutations[0]->operation = 7;
}

static void decode_patches(yajl_val vec, struct fake *f)
{
    yajl_val list = json_member(vec, "patches");
    T_CHECK(YAJL_IS_ARRAY(list) && list->u.array.len >= 9,
            "vectors: nine single-mutation patches from Baileys");
    if (!YAJL_IS_ARRAY(list))
        return;
    size_t ok = 0, states = 0, acts = 0, lookups_used = 0;
    for (size_t i = 0; i < list->u.array.len; i++) {
        yajl_val pv = list->u.array.values[i];
        struct wa_as_state before, after;
        size_t len;
        uint8_t *patch = unhex(json_str(pv, "patch"), &len);
        if (!patch || load_state(json_member(pv, "before"), &before) != 0 ||
            load_state(json_member(pv, "after"), &after) != 0) {
            free(patch);
            continue;
        }
        fake_load_map(f, json_member(json_member(pv, "before"), "map"));
        f->lookups = 0;
        struct wa_as_io io = {f, get_key, prev_mac};
        wa_arena *a = wa_arena_new();
        struct wa_as_result r;
        int rc = wa_as_decode_patch(json_str(pv, "name"), &before, patch, len, NULL, 0, &io, a, &r);
        int64_t op = -1;
        json_int(pv, "op", &op);
        if (rc == WA_AS_OK)
            ok++;
        else
            printf("# patch %zu (%s): %s\n", i, json_str(pv, "name"), wa_as_code(rc));
        if (rc == WA_AS_OK && r.state.version == after.version && memcmp(r.state.hash, after.hash, 128) == 0)
            states++;
        if (rc == WA_AS_OK && r.n == 1 && r.actions[0].op == op &&
            index_is(&r.actions[0], json_member(pv, "index")) &&
            (op == WA_AS_REMOVE || value_is(&r.actions[0], json_member(pv, "value"))))
            acts++;
        if (f->lookups == 1)
            lookups_used++;
        wa_arena_free(a);
        free(patch);
    }
    T_EQ_INT(ok, list->u.array.len,
             "every Baileys patch decodes (archive, pin, mute, read, contact, star, push name, overwrite, "
             "remove)");
    T_EQ_INT(states, list->u.array.len, "each gives Baileys' version and LTHash after it");
    T_EQ_INT(acts, list->u.array.len, "each gives Baileys' action: index, SET/REMOVE, timestamp and fields");
    T_EQ_INT(lookups_used, list->u.array.len, "each mutation asks the map for the value its index held once");
}

static void tamper(yajl_val vec, struct fake *f)
{
    /* The overwrite of the archive: a SET whose previous value must come from the map. */
    yajl_val pv = json_member(vec, "patches")->u.array.values[8];
    struct wa_as_state before, keep;
    size_t len;
    uint8_t *patch = unhex(json_str(pv, "patch"), &len);
    if (!patch || load_state(json_member(pv, "before"), &before) != 0) {
        T_CHECK(0, "tamper vector loads");
        free(patch);
        return;
    }
    keep = before;
    const char *name = json_str(pv, "name");
    struct wa_as_io io = {f, get_key, prev_mac};
    wa_as_keys_derive(f->key, 32, &g_keys);
    g_version = before.version + 1; /* this patch carries no version */
    g_name = name;
    static const struct {
        tamper_fn fn;
        int want;
        const char *what;
    } T[] = {
        {t_value_ct, WA_AS_BAD_VALUE_MAC, "a flipped ciphertext byte: bad_value_mac"},
        {t_value_mac, WA_AS_BAD_PATCH_MAC, "a flipped value MAC: bad_patch_mac (the patch MAC covers it)"},
        {t_index, WA_AS_BAD_INDEX_MAC, "a flipped index MAC: bad_index_mac"},
        {t_patch_mac, WA_AS_BAD_PATCH_MAC, "a flipped patch MAC: bad_patch_mac"},
        {t_snapshot_mac, WA_AS_BAD_PATCH_MAC, "a flipped snapshot MAC: bad_patch_mac"},
        {t_key_id, WA_AS_MISSING_KEY, "an unknown key id: missing_key"},
        {t_short, WA_AS_MALFORMED, "a value shorter than IV + block + MAC: malformed"},
        {t_op, WA_AS_MALFORMED, "an unknown operation: malformed"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        size_t tl = 0;
        uint8_t *t = tampered(patch, len, T[i].fn, &tl);
        fake_load_map(f, json_member(json_member(pv, "before"), "map"));
        wa_arena *a = wa_arena_new();
        struct wa_as_result r;
        int rc = t ? wa_as_decode_patch(name, &before, t, tl, NULL, 0, &io, a, &r) : 99;
        T_CHECK(rc == T[i].want && r.n == 0 && r.actions == NULL, T[i].what);
        wa_arena_free(a);
        free(t);
    }
    /* a wrong LTHash: the state before differs in one lane */
    {
        struct wa_as_state wrong = before;
        wrong.hash[5] ^= 1;
        fake_load_map(f, json_member(json_member(pv, "before"), "map"));
        wa_arena *a = wa_arena_new();
        struct wa_as_result r;
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &wrong, patch, len, NULL, 0, &io, a, &r)),
                 "lthash_mismatch", "a wrong LTHash before the patch: lthash_mismatch");
        wa_arena_free(a);
    }
    /* the previous value missing from the map: the subtraction is lost, caught by the snapshot MAC */
    {
        f->n = 0;
        wa_arena *a = wa_arena_new();
        struct wa_as_result r;
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &before, patch, len, NULL, 0, &io, a, &r)),
                 "lthash_mismatch", "a map without the overwritten value: lthash_mismatch");
        wa_arena_free(a);
    }
    /* a version not above the state's, a wrong collection name, a truncated patch */
    {
        wa_arena *a = wa_arena_new();
        struct wa_as_result r;
        struct wa_as_state ahead = before;
        ahead.version += 1; /* the patch has no version: taken as ahead + 1, so its MACs no longer match */
        fake_load_map(f, json_member(json_member(pv, "before"), "map"));
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &ahead, patch, len, NULL, 0, &io, a, &r)),
                 "bad_patch_mac", "the patch taken at another version: bad_patch_mac");
        T_EQ_STR(wa_as_code(wa_as_decode_patch("regular_high", &before, patch, len, NULL, 0, &io, a, &r)),
                 "bad_patch_mac", "the patch under another collection's name: bad_patch_mac");
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &before, patch, len - 3, NULL, 0, &io, a, &r)),
                 "malformed", "a truncated patch: malformed");
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &before, patch, len, patch, len, &io, a, &r)),
                 "malformed", "an external blob for a patch that names none: malformed");
        struct wa_as_io nokeys = {f, NULL, prev_mac};
        T_EQ_STR(wa_as_code(wa_as_decode_patch(name, &before, patch, len, NULL, 0, &nokeys, a, &r)),
                 "missing_key", "no key store: missing_key");
        T_CHECK(r.missing_key_id_len == f->key_id_len &&
                    memcmp(r.missing_key_id, f->key_id, f->key_id_len) == 0,
                "a missing key names the key id to ask the phone for");
        wa_arena_free(a);
    }
    T_CHECK(memcmp(&keep, &before, sizeof keep) == 0, "the state given is never changed by a refused patch");
    free(patch);
}

static void multi(yajl_val vec, struct fake *f)
{
    yajl_val mv = json_member(vec, "multi");
    struct wa_as_state before, after;
    size_t len;
    uint8_t *patch = unhex(json_str(mv, "patch"), &len);
    if (!patch || load_state(json_member(mv, "before"), &before) ||
        load_state(json_member(mv, "after"), &after)) {
        T_CHECK(0, "multi vector loads");
        free(patch);
        return;
    }
    fake_load_map(f, json_member(json_member(mv, "before"), "map"));
    struct wa_as_io io = {f, get_key, prev_mac};
    wa_arena *a = wa_arena_new();
    struct wa_as_result r;
    int rc = wa_as_decode_patch(json_str(mv, "name"), &before, patch, len, NULL, 0, &io, a, &r);
    T_EQ_STR(wa_as_code(rc), "ok", "a patch of three mutations (SET, SET, REMOVE of the first) decodes");
    T_CHECK(rc == 0 && r.n == 3 && r.actions[0].op == WA_AS_SET && r.actions[1].op == WA_AS_SET &&
                r.actions[2].op == WA_AS_REMOVE && r.actions[0].kind == WA_AS_MUTE &&
                r.actions[0].mute_end_ms == -1 && r.actions[1].kind == WA_AS_DELETE_FOR_ME &&
                r.actions[1].flag == 1 && memcmp(r.actions[0].index_mac, r.actions[2].index_mac, 32) == 0,
            "its actions in order: mute for ever, delete for me (media too), the mute removed");
    T_CHECK(rc == 0 && r.state.version == after.version && memcmp(r.state.hash, after.hash, 128) == 0,
            "its LTHash is Baileys' (the REMOVE took away the SET of the same patch)");
    wa_arena_free(a);
    free(patch);
}

static void snapshot(yajl_val vec, struct fake *f)
{
    yajl_val sv = json_member(vec, "snapshot");
    size_t len;
    uint8_t *snap = unhex(json_str(sv, "snapshot"), &len);
    int64_t version = 0;
    json_int(sv, "version", &version);
    struct wa_as_io io = {f, get_key, prev_mac};
    wa_arena *a = wa_arena_new();
    struct wa_as_result r;
    f->lookups = 0;
    int rc = snap ? wa_as_decode_snapshot(json_str(sv, "name"), snap, len, &io, a, &r) : 99;
    T_EQ_STR(wa_as_code(rc), "ok", "Baileys' snapshot of four records decodes");
    T_CHECK(rc == 0 && r.state.version == (uint64_t)version &&
                eq_hex(r.state.hash, 128, json_str(sv, "hash")),
            "the snapshot's version and LTHash are Baileys'");
    T_CHECK(rc == 0 && r.n == 4 && r.actions[0].kind == WA_AS_ARCHIVE && r.actions[1].kind == WA_AS_PIN &&
                r.actions[2].kind == WA_AS_LOCALE && strcmp(r.actions[2].name, "de_DE") == 0 &&
                r.actions[3].kind == WA_AS_LABEL_EDIT && strcmp(r.actions[3].name, "Kunden") == 0 &&
                r.actions[3].color == 4 &&
                index_is(&r.actions[3], json_member(sv, "indexes")->u.array.values[3]),
            "its records: archive, pin, locale de_DE, label Kunden colour 4");
    T_EQ_INT(f->lookups, 0, "a snapshot never asks the map (it starts a fresh state)");
    if (snap) {
        snap[len - 5] ^= 1; /* inside the key id: tamper the MAC instead */
        snap[len - 5] ^= 1;
        Wapi__Appstate__SyncdSnapshot *s = wapi__appstate__syncd_snapshot__unpack(NULL, len, snap);
        if (s) {
            s->mac.data[0] ^= 1;
            uint8_t *b = malloc(len);
            size_t bl = wapi__appstate__syncd_snapshot__pack(s, b);
            T_EQ_STR(wa_as_code(wa_as_decode_snapshot(json_str(sv, "name"), b, bl, &io, a, &r)),
                     "bad_snapshot_mac", "a flipped snapshot MAC: bad_snapshot_mac");
            s->mac.data[0] ^= 1;
            s->records[1]->value->blob.data[30] ^= 1;
            bl = wapi__appstate__syncd_snapshot__pack(s, b);
            T_EQ_STR(wa_as_code(wa_as_decode_snapshot(json_str(sv, "name"), b, bl, &io, a, &r)),
                     "bad_value_mac", "a snapshot record with a flipped byte: bad_value_mac");
            s->records[1]->value->blob.data[30] ^= 1;
            s->n_records = 3; /* a record left out: the LTHash no longer matches the MAC */
            bl = wapi__appstate__syncd_snapshot__pack(s, b);
            T_EQ_STR(wa_as_code(wa_as_decode_snapshot(json_str(sv, "name"), b, bl, &io, a, &r)),
                     "bad_snapshot_mac", "a snapshot missing a record: bad_snapshot_mac");
            s->n_records = 4;
            free(b);
            wapi__appstate__syncd_snapshot__free_unpacked(s, NULL);
        }
    }
    wa_arena_free(a);
    free(snap);
}

/* Our own patches, decoded by Baileys (decodePatches, MACs checked) and by us. */
static void encode(struct fake *f)
{
    static const struct {
        enum wa_as_kind kind;
        int flag;
        int64_t mute_end;
        const char *idx, *field, *flagname;
    } C[] = {
        {WA_AS_ARCHIVE, 1, 0, "archive", "archiveChatAction", "archived"},
        {WA_AS_PIN, 1, 0, "pin_v1", "pinAction", "pinned"},
        {WA_AS_MUTE, 1, 1733600000000, "mute", "muteAction", "muted"},
        {WA_AS_MARK_READ, 0, 0, "markChatAsRead", "markChatAsReadAction", "read"},
        {WA_AS_ARCHIVE, 0, 0, "archive", "archiveChatAction", "archived"}, /* an overwrite of the first */
    };
    struct wa_as_state st[2] = {{0}, {0}}; /* regular_low, regular_high */
    struct fake ours[2] = {*f, *f};
    ours[0].n = ours[1].n = 0;
    size_t baileys_ok = 0, same_action = 0, same_hash = 0, our_ok = 0;
    const char *jid = "4915112345678@s.whatsapp.net";
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        int h = C[i].kind == WA_AS_MUTE;
        struct wa_as_change ch = {C[i].kind,     jid,        C[i].flag,
                                  C[i].mute_end, 1733400000, 1733400100000 + (int64_t)i};
        struct wa_as_io io = {&ours[h], get_key, prev_mac};
        wa_arena *a = wa_arena_new();
        struct wa_as_encoded e;
        int rc = wa_as_encode_change(&ch, &st[h], f->key_id, f->key_id_len, f->key, 32, &io, a, &e);
        if (rc != WA_AS_OK) {
            printf("# encode %zu: %s\n", i, wa_as_code(rc));
            wa_arena_free(a);
            continue;
        }
        /* Baileys decodes it on top of the same state */
        char path[] = "/tmp/wapi-appstate-XXXXXX";
        int fd = mkstemp(path);
        FILE *o = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (o) {
            char hx[WA_LTHASH_LEN * 2 + 1], kid[64], key[65];
            char *ph = malloc(e.len * 2 + 1);
            hex_encode(hx, st[h].hash, WA_LTHASH_LEN, 0);
            hex_encode(kid, f->key_id, f->key_id_len, 0);
            hex_encode(key, f->key, 32, 0);
            hex_encode(ph, e.patch, e.len, 0);
            fprintf(o,
                    "{\"name\":\"%s\",\"keyId\":\"%s\",\"keyData\":\"%s\",\"version\":%llu,\"hash\":\"%s\","
                    "\"map\":{",
                    e.collection, kid, key, (unsigned long long)st[h].version, hx);
            for (size_t j = 0; j < ours[h].n; j++) {
                char im[65], vm[65];
                hex_encode(im, ours[h].im[j], 32, 0);
                hex_encode(vm, ours[h].vm[j], 32, 0);
                fprintf(o, "%s\"%s\":\"%s\"", j ? "," : "", im, vm);
            }
            fprintf(o, "},\"patch\":\"%s\"}", ph);
            fclose(o);
            free(ph);
            char cmd[256];
            snprintf(cmd, sizeof cmd, "node tests/wa/appstate_vectors.mjs decode %s", path);
            size_t dl;
            char *dj = run(cmd, &dl);
            char err[128];
            yajl_val d = dj ? json_parse(dj, dl, 1 << 20, err, sizeof err) : NULL;
            if (d && json_bool(d, "ok") == 1)
                baileys_ok++;
            else
                printf("# Baileys on our patch %zu: %s\n", i, dj ? dj : "(no answer)");
            yajl_val acts = json_member(d, "actions");
            if (YAJL_IS_ARRAY(acts) && acts->u.array.len == 1) {
                yajl_val ba = acts->u.array.values[0], idx = json_member(ba, "index");
                yajl_val v = json_member(ba, "value"), act = json_member(v, C[i].field);
                int64_t ts = 0, end = 0;
                json_int(v, "timestamp", &ts);
                json_int(act, "muteEndTimestamp", &end);
                if (YAJL_IS_ARRAY(idx) && idx->u.array.len == 2 &&
                    strcmp(sget(idx->u.array.values[0]), C[i].idx) == 0 &&
                    strcmp(sget(idx->u.array.values[1]), jid) == 0 && act &&
                    json_bool(act, C[i].flagname) == (C[i].flag ? 1 : 0) && ts == ch.timestamp_ms &&
                    end == C[i].mute_end &&
                    (C[i].kind == WA_AS_PIN || C[i].kind == WA_AS_MUTE ||
                     jint(act, "messageRange", "lastMessageTimestamp") == 1733400000))
                    same_action++;
            }
            int64_t bv = 0;
            if (d && json_int(d, "version", &bv) == 1 && (uint64_t)bv == e.state.version &&
                eq_hex(e.state.hash, WA_LTHASH_LEN, json_str(d, "hash")))
                same_hash++;
            if (d)
                yajl_tree_free(d);
            free(dj);
            unlink(path);
        }
        /* and we decode it too */
        struct wa_as_result r;
        if (wa_as_decode_patch(e.collection, &st[h], e.patch, e.len, NULL, 0, &io, a, &r) == WA_AS_OK &&
            r.n == 1 && r.actions[0].kind == C[i].kind && r.actions[0].flag == C[i].flag &&
            memcmp(r.state.hash, e.state.hash, 128) == 0 && r.state.version == e.state.version &&
            memcmp(r.actions[0].index_mac, e.index_mac, 32) == 0) {
            our_ok++;
            fake_apply(&ours[h], &r);
        }
        st[h] = e.state;
        wa_arena_free(a);
    }
    size_t n = sizeof C / sizeof C[0];
    T_EQ_INT(baileys_ok, n,
             "Baileys decodes each patch we encode (archive, pin, mute, read, unarchive) with its MACs and "
             "LTHash checks");
    T_EQ_INT(same_action, n, "Baileys sees the same action: index, flag, timestamp, mute end, message range");
    T_EQ_INT(same_hash, n, "Baileys' LTHash after each of our patches is ours");
    T_EQ_INT(our_ok, n, "we decode our own patches to the same action and state");

    struct wa_as_change bad = {WA_AS_STAR, "x@s.whatsapp.net", 1, 0, 0, 0};
    struct wa_as_io io = {f, get_key, prev_mac};
    wa_arena *a = wa_arena_new();
    struct wa_as_encoded e;
    T_EQ_STR(wa_as_code(wa_as_encode_change(&bad, &st[0], f->key_id, f->key_id_len, f->key, 32, &io, a, &e)),
             "malformed", "a change we do not send (star) is refused");
    bad.kind = WA_AS_PIN;
    bad.jid = "";
    T_EQ_STR(wa_as_code(wa_as_encode_change(&bad, &st[0], f->key_id, f->key_id_len, f->key, 32, &io, a, &e)),
             "malformed", "a change without a chat is refused");
    wa_arena_free(a);
}

static void key_share(void)
{
    uint8_t id1[6] = {0, 0, 0, 1, 2, 3}, d1[32] = {9};
    Wapi__Appstate__AppStateSyncKeyId kid = WAPI__APPSTATE__APP_STATE_SYNC_KEY_ID__INIT;
    kid.has_keyid = 1;
    kid.keyid = (ProtobufCBinaryData){sizeof id1, id1};
    Wapi__Appstate__AppStateSyncKeyData kd = WAPI__APPSTATE__APP_STATE_SYNC_KEY_DATA__INIT;
    kd.has_keydata = 1;
    kd.keydata = (ProtobufCBinaryData){sizeof d1, d1};
    kd.has_timestamp = 1;
    kd.timestamp = 1733400000;
    Wapi__Appstate__AppStateSyncKey k1 = WAPI__APPSTATE__APP_STATE_SYNC_KEY__INIT, k2 = k1;
    k1.keyid = &kid;
    k1.keydata = &kd;
    k2.keyid = &kid; /* no data: left out */
    Wapi__Appstate__AppStateSyncKey *ks[2] = {&k1, &k2};
    Wapi__Appstate__AppStateSyncKeyShare share = WAPI__APPSTATE__APP_STATE_SYNC_KEY_SHARE__INIT;
    share.n_keys = 2;
    share.keys = ks;
    uint8_t buf[256];
    size_t n = wapi__appstate__app_state_sync_key_share__pack(&share, buf);
    wa_arena *a = wa_arena_new();
    struct wa_as_shared_key *keys;
    size_t nk;
    int rc = wa_as_key_share_parse(buf, n, a, &keys, &nk);
    T_CHECK(rc == 0 && nk == 1 && keys[0].key_id_len == 6 && memcmp(keys[0].key_id, id1, 6) == 0 &&
                keys[0].key_data_len == 32 && keys[0].key_data[0] == 9 && keys[0].timestamp == 1733400000,
            "a key share gives its one complete key (the one without data left out)");
    T_EQ_INT(wa_as_key_share_parse(buf, n - 1, a, &keys, &nk), WA_AS_MALFORMED,
             "a truncated key share: malformed");
    const uint8_t *ids[1] = {id1};
    size_t lens[1] = {6};
    const uint8_t *req;
    size_t rl;
    rc = wa_as_key_request_encode(ids, lens, 1, a, &req, &rl);
    Wapi__Appstate__AppStateSyncKeyRequest *r =
        rc == 0 ? wapi__appstate__app_state_sync_key_request__unpack(NULL, rl, req) : NULL;
    T_CHECK(r && r->n_keyids == 1 && r->keyids[0]->keyid.len == 6 &&
                memcmp(r->keyids[0]->keyid.data, id1, 6) == 0,
            "a key request names the key id asked for");
    if (r)
        wapi__appstate__app_state_sync_key_request__free_unpacked(r, NULL);
    wa_arena_free(a);
}

int main(void)
{
    size_t len;
    char *js = run("node tests/wa/appstate_vectors.mjs", &len);
    T_CHECK(js != NULL, "the vectors come from Baileys (node tests/wa/appstate_vectors.mjs)");
    if (!js)
        return 1;
    char err[128];
    yajl_val vec = json_parse(js, len, 1 << 24, err, sizeof err);
    T_CHECK(vec != NULL, "the vectors parse");
    if (!vec)
        return 1;

    struct fake f = {0};
    f.key_id_len = strlen(json_str(vec, "keyId")) / 2;
    T_CHECK(f.key_id_len <= sizeof f.key_id &&
                hex_decode(json_str(vec, "keyId"), f.key_id, f.key_id_len) == 0 &&
                hex_decode(json_str(vec, "syncKey"), f.key, 32) == 0,
            "sync key and key id");

    struct wa_as_keys k;
    yajl_val kv = json_member(vec, "keys");
    T_CHECK(wa_as_keys_derive(f.key, 32, &k) == 0 && eq_hex(k.index, 32, json_str(kv, "index")) &&
                eq_hex(k.value_enc, 32, json_str(kv, "valueEnc")) &&
                eq_hex(k.value_mac, 32, json_str(kv, "valueMac")) &&
                eq_hex(k.snapshot_mac, 32, json_str(kv, "snapshotMac")) &&
                eq_hex(k.patch_mac, 32, json_str(kv, "patchMac")),
            "the five mutation keys of a sync key are the bridge's (expandAppStateKeys)");
    T_CHECK(wa_as_keys_derive(f.key, 0, &k) != 0 && wa_as_keys_derive(f.key, 65, &k) != 0,
            "an empty or oversized sync key is refused");

    yajl_val lv = json_member(vec, "lthash");
    uint8_t h[WA_LTHASH_LEN], item[32];
    int lt_ok = hex_decode(json_str(lv, "start"), h, sizeof h) == 0;
    yajl_val subs = json_member(lv, "subs"), adds = json_member(lv, "adds");
    for (size_t i = 0; lt_ok && YAJL_IS_ARRAY(subs) && i < subs->u.array.len; i++)
        lt_ok = hex_decode(YAJL_GET_STRING(subs->u.array.values[i]), item, 32) == 0 &&
                wa_lthash_sub(h, item, 32) == 0;
    for (size_t i = 0; lt_ok && YAJL_IS_ARRAY(adds) && i < adds->u.array.len; i++)
        lt_ok = hex_decode(YAJL_GET_STRING(adds->u.array.values[i]), item, 32) == 0 &&
                wa_lthash_add(h, item, 32) == 0;
    T_CHECK(lt_ok && eq_hex(h, sizeof h, json_str(lv, "result")),
            "an LTHash step (two out, three in) is the bridge's (LTHashAntiTampering)");
    uint8_t h2[WA_LTHASH_LEN];
    memcpy(h2, h, sizeof h);
    wa_lthash_add(h2, item, 32);
    wa_lthash_sub(h2, item, 32);
    T_CHECK(memcmp(h, h2, sizeof h) == 0, "LTHash: adding then taking away a value is the identity");

    decode_patches(vec, &f);
    multi(vec, &f);
    snapshot(vec, &f);
    tamper(vec, &f);
    encode(&f);
    key_share();

    yajl_tree_free(vec);
    free(js);
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
