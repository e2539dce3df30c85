/* libFuzzer target for app-state patches and snapshots: untrusted bytes from
 * the server (or an external blob). The input is decoded as a patch (also
 * with itself as the external mutations blob) and as a snapshot; those
 * rarely pass the patch MAC, so to reach the mutation decoder the input is
 * also taken as the plaintext SyncActionData of a mutation (first byte odd:
 * the rest is the index JSON of one), sealed under a fixed sync key with
 * every MAC right, and decoded back as a patch and as a snapshot. Whatever
 * decodes must be bounded and consistent; nothing may crash. Built alone by
 * clang (make fuzzers). */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/wa_lthash.c"
#include "supervisor/wa/wa_appstate_keys.c"
#include "supervisor/wa/wa_appstate.c"
#include "supervisor/wa/proto/appstate.pb-c.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_ID[6] = {0, 0, 0, 0, 0x7a, 0x01};
static const char NAME[] = "regular_low";

static int get_key(void *ctx, const uint8_t *id, size_t len, uint8_t *out, size_t *olen)
{
    (void)ctx;
    if (len != sizeof KEY_ID || memcmp(id, KEY_ID, len) != 0 || *olen < sizeof KEY)
        return -1;
    memcpy(out, KEY, sizeof KEY);
    *olen = sizeof KEY;
    return 0;
}

/* The map holds one value for every index: its MAC with the first byte flipped. */
static int prev_mac(void *ctx, const uint8_t im[32], uint8_t vm[32])
{
    (void)ctx;
    memcpy(vm, im, 32);
    vm[0] ^= 0xff;
    return im[1] & 1;
}

static void check(int rc, const struct wa_as_result *r, uint64_t min_version)
{
    if (rc != WA_AS_OK) {
        if (r->n != 0 || r->actions != NULL || rc < WA_AS_INTERNAL || rc > WA_AS_MALFORMED)
            abort();
        return;
    }
    if (r->state.version < min_version)
        abort();
    for (size_t i = 0; i < r->n; i++) {
        const struct wa_as_action *a = &r->actions[i];
        if ((a->op != WA_AS_SET && a->op != WA_AS_REMOVE) || a->n_index == 0 ||
            a->n_index > MAX_INDEX_PARTS || !a->index_json)
            abort();
        for (size_t j = 0; j < a->n_index; j++)
            if (!a->index[j])
                abort();
        (void)strlen(wa_as_kind_name(a->kind));
        if (a->name)
            (void)strlen(a->name);
    }
}

static void decode_all(const uint8_t *data, size_t size)
{
    static const struct wa_as_io io = {NULL, get_key, prev_mac};
    struct wa_as_state st = {0};
    struct wa_as_result r;
    wa_arena *a = wa_arena_new();
    if (!a)
        abort();
    check(wa_as_decode_patch(NAME, &st, data, size, NULL, 0, &io, a, &r), &r, 1);
    check(wa_as_decode_patch(NAME, &st, data, size, data, size, &io, a, &r), &r, 1);
    check(wa_as_decode_snapshot(NAME, data, size, &io, a, &r), &r, 0);
    struct wa_as_blob_ref ref;
    (void)wa_as_patch_external(data, size, a, &ref);
    (void)wa_as_blob_ref_parse(data, size, a, &ref);
    struct wa_as_shared_key *keys;
    size_t n;
    (void)wa_as_key_share_parse(data, size, a, &keys, &n);
    wa_arena_free(a);
}

/* plain sealed as one SET mutation with all MACs right: a patch at version 1
 * on an empty state, and a snapshot at version 1. */
static int sealed(const uint8_t *plain, size_t plen, const uint8_t *index, size_t ilen)
{
    struct wa_as_keys k;
    if (wa_as_keys_derive(KEY, sizeof KEY, &k) != 0)
        abort();
    uint8_t *blob = malloc(16 + plen + 16 + 32);
    size_t ct = 0;
    memset(blob, 0x42, 16); /* a fixed IV keeps runs reproducible */
    if (!blob || cbc(1, k.value_enc, blob, plain, plen, blob + 16, &ct) != 0) {
        free(blob);
        return WA_AS_MALFORMED;
    }
    uint8_t vmac[32], imac[32], hash[WA_LTHASH_LEN] = {0}, smac[32], pmac[32];
    wa_as_value_mac(&k, WA_AS_SET, KEY_ID, sizeof KEY_ID, blob, 16 + ct, vmac);
    memcpy(blob + 16 + ct, vmac, 32);
    wa_as_index_mac(&k, index, ilen, imac);
    uint8_t prev[32];
    if (prev_mac(NULL, imac, prev))
        wa_lthash_sub(hash, prev, 32);
    wa_lthash_add(hash, vmac, 32);
    wa_as_snapshot_mac(&k, hash, 1, NAME, smac);
    wa_as_patch_mac(&k, smac, vmac, 1, 1, NAME, pmac);

    Wapi__Appstate__KeyId kid = WAPI__APPSTATE__KEY_ID__INIT;
    kid.has_id = 1;
    kid.id = (ProtobufCBinaryData){sizeof KEY_ID, (uint8_t *)KEY_ID};
    Wapi__Appstate__SyncdIndex si = WAPI__APPSTATE__SYNCD_INDEX__INIT;
    si.has_blob = 1;
    si.blob = (ProtobufCBinaryData){32, imac};
    Wapi__Appstate__SyncdValue sv = WAPI__APPSTATE__SYNCD_VALUE__INIT;
    sv.has_blob = 1;
    sv.blob = (ProtobufCBinaryData){16 + ct + 32, blob};
    Wapi__Appstate__SyncdRecord rec = WAPI__APPSTATE__SYNCD_RECORD__INIT;
    rec.index = &si;
    rec.value = &sv;
    rec.keyid = &kid;
    Wapi__Appstate__SyncdMutation m = WAPI__APPSTATE__SYNCD_MUTATION__INIT;
    m.record = &rec;
    Wapi__Appstate__SyncdMutation *ms[1] = {&m};
    Wapi__Appstate__SyncdPatch p = WAPI__APPSTATE__SYNCD_PATCH__INIT;
    p.n_mutations = 1;
    p.mutations = ms;
    p.has_snapshotmac = 1;
    p.snapshotmac = (ProtobufCBinaryData){32, smac};
    p.has_patchmac = 1;
    p.patchmac = (ProtobufCBinaryData){32, pmac};
    p.keyid = &kid;
    uint8_t *buf = malloc(wapi__appstate__syncd_patch__get_packed_size(&p));
    size_t n = wapi__appstate__syncd_patch__pack(&p, buf);

    static const struct wa_as_io io = {NULL, get_key, prev_mac};
    struct wa_as_state st = {0};
    struct wa_as_result r;
    wa_arena *a = wa_arena_new();
    int rc1 = wa_as_decode_patch(NAME, &st, buf, n, NULL, 0, &io, a, &r);
    check(rc1, &r, 1);
    free(buf);

    /* the same record as a snapshot (a fresh state: nothing to take away) */
    memset(hash, 0, sizeof hash);
    wa_lthash_add(hash, vmac, 32);
    Wapi__Appstate__SyncdVersion ver = WAPI__APPSTATE__SYNCD_VERSION__INIT;
    ver.has_version = 1;
    ver.version = 1;
    Wapi__Appstate__SyncdRecord *rs[1] = {&rec};
    Wapi__Appstate__SyncdSnapshot s = WAPI__APPSTATE__SYNCD_SNAPSHOT__INIT;
    s.version = &ver;
    s.n_records = 1;
    s.records = rs;
    s.has_mac = 1;
    wa_as_snapshot_mac(&k, hash, 1, NAME, smac);
    s.mac = (ProtobufCBinaryData){32, smac};
    s.keyid = &kid;
    buf = malloc(wapi__appstate__syncd_snapshot__get_packed_size(&s));
    n = wapi__appstate__syncd_snapshot__pack(&s, buf);
    int rc2 = wa_as_decode_snapshot(NAME, buf, n, &io, a, &r);
    check(rc2, &r, 1);
    free(buf);
    wa_arena_free(a);
    free(blob);
    /* Sealed with every MAC right: the only refusal left is the content. */
    if ((rc1 != WA_AS_OK && rc1 != WA_AS_MALFORMED) || rc1 != rc2)
        abort();
    return rc1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    decode_all(data, size);
    if (size == 0)
        return 0;
    if (data[0] & 1) { /* the rest is an index JSON: wrap it in a SyncActionData */
        Wapi__Appstate__SyncActionData d = WAPI__APPSTATE__SYNC_ACTION_DATA__INIT;
        Wapi__Appstate__SyncActionValue v = WAPI__APPSTATE__SYNC_ACTION_VALUE__INIT;
        d.has_index = 1;
        d.index = (ProtobufCBinaryData){size - 1, (uint8_t *)data + 1};
        d.value = &v;
        uint8_t *plain = malloc(wapi__appstate__sync_action_data__get_packed_size(&d) + 1);
        size_t n = wapi__appstate__sync_action_data__pack(&d, plain);
        (void)sealed(plain, n, data + 1, size - 1);
        free(plain);
    } else { /* the rest is the SyncActionData itself */
        Wapi__Appstate__SyncActionData *d =
            wapi__appstate__sync_action_data__unpack(NULL, size - 1, data + 1);
        if (d) {
            if (d->has_index)
                (void)sealed(data + 1, size - 1, d->index.data, d->index.len);
            wapi__appstate__sync_action_data__free_unpacked(d, NULL);
        }
    }
    return 0;
}
