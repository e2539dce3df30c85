/* App-state sync keys and MACs (see wa_appstate.h): the derivation of the
 * mutation keys, the four MACs, and the key share / key request messages. */
#include "wa_appstate.h"

#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#include "proto/appstate.pb-c.h"
#include "wa_crypto.h"

static const char KEYS_INFO[] = "WhatsApp Mutation Keys";

const char *wa_as_code(int rc)
{
    switch (rc) {
    case WA_AS_OK:
        return "ok";
    case WA_AS_MALFORMED:
        return "malformed";
    case WA_AS_MISSING_KEY:
        return "missing_key";
    case WA_AS_BAD_INDEX_MAC:
        return "bad_index_mac";
    case WA_AS_BAD_VALUE_MAC:
        return "bad_value_mac";
    case WA_AS_BAD_PATCH_MAC:
        return "bad_patch_mac";
    case WA_AS_BAD_SNAPSHOT_MAC:
        return "bad_snapshot_mac";
    case WA_AS_LTHASH_MISMATCH:
        return "lthash_mismatch";
    default:
        return "internal";
    }
}

int wa_as_keys_derive(const uint8_t *key_data, size_t len, struct wa_as_keys *out)
{
    uint8_t ex[160];
    if (!key_data || len == 0 || len > WA_AS_KEY_DATA_MAX)
        return -1;
    if (wa_crypto_hkdf_sha256(NULL, 0, key_data, len, (const uint8_t *)KEYS_INFO, sizeof KEYS_INFO - 1, ex,
                              sizeof ex) != 0)
        return -1;
    memcpy(out->index, ex, 32);
    memcpy(out->value_enc, ex + 32, 32);
    memcpy(out->value_mac, ex + 64, 32);
    memcpy(out->snapshot_mac, ex + 96, 32);
    memcpy(out->patch_mac, ex + 128, 32);
    OPENSSL_cleanse(ex, sizeof ex);
    return 0;
}

int wa_as_index_mac(const struct wa_as_keys *k, const uint8_t *index, size_t len, uint8_t out[WA_AS_MAC_LEN])
{
    return wa_crypto_hmac_sha256(k->index, sizeof k->index, index, len, out);
}

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)(v & 0xff);
}

/* HMAC over a list of parts, with digest md; out gets the first out_len bytes. */
static int hmac_parts(const EVP_MD *md, const uint8_t *key, size_t key_len, const uint8_t *const *parts,
                      const size_t *lens, size_t n, uint8_t *out, size_t out_len)
{
    uint8_t full[EVP_MAX_MD_SIZE];
    size_t full_len = 0;
    int ok = 0;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx && EVP_MAC_init(ctx, key, key_len, params) == 1) {
        ok = 1;
        for (size_t i = 0; i < n && ok; i++)
            if (lens[i] && EVP_MAC_update(ctx, parts[i], lens[i]) != 1)
                ok = 0;
        if (ok && (EVP_MAC_final(ctx, full, &full_len, sizeof full) != 1 || full_len < out_len))
            ok = 0;
    }
    if (ok)
        memcpy(out, full, out_len);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : -1;
}

int wa_as_value_mac(const struct wa_as_keys *k, int op, const uint8_t *key_id, size_t key_id_len,
                    const uint8_t *enc, size_t enc_len, uint8_t out[WA_AS_MAC_LEN])
{
    uint8_t opb = op == WA_AS_REMOVE ? 2 : 1, tail[8];
    if (op != WA_AS_SET && op != WA_AS_REMOVE)
        return -1;
    be64(tail, (uint64_t)key_id_len + 1);
    const uint8_t *parts[] = {&opb, key_id, enc, tail};
    const size_t lens[] = {1, key_id_len, enc_len, sizeof tail};
    return hmac_parts(EVP_sha512(), k->value_mac, sizeof k->value_mac, parts, lens, 4, out, WA_AS_MAC_LEN);
}

int wa_as_snapshot_mac(const struct wa_as_keys *k, const uint8_t hash[WA_LTHASH_LEN], uint64_t version,
                       const char *name, uint8_t out[WA_AS_MAC_LEN])
{
    uint8_t v[8];
    be64(v, version);
    const uint8_t *parts[] = {hash, v, (const uint8_t *)name};
    const size_t lens[] = {WA_LTHASH_LEN, sizeof v, strlen(name)};
    return hmac_parts(EVP_sha256(), k->snapshot_mac, sizeof k->snapshot_mac, parts, lens, 3, out,
                      WA_AS_MAC_LEN);
}

int wa_as_patch_mac(const struct wa_as_keys *k, const uint8_t snapshot_mac[WA_AS_MAC_LEN],
                    const uint8_t *value_macs, size_t n, uint64_t version, const char *name,
                    uint8_t out[WA_AS_MAC_LEN])
{
    uint8_t v[8];
    be64(v, version);
    if (n > SIZE_MAX / WA_AS_MAC_LEN)
        return -1;
    const uint8_t *parts[] = {snapshot_mac, value_macs, v, (const uint8_t *)name};
    const size_t lens[] = {WA_AS_MAC_LEN, n * WA_AS_MAC_LEN, sizeof v, strlen(name)};
    return hmac_parts(EVP_sha256(), k->patch_mac, sizeof k->patch_mac, parts, lens, 4, out, WA_AS_MAC_LEN);
}

int wa_as_key_share_parse(const uint8_t *buf, size_t len, wa_arena *a, struct wa_as_shared_key **keys,
                          size_t *n)
{
    *keys = NULL;
    *n = 0;
    Wapi__Appstate__AppStateSyncKeyShare *s =
        wapi__appstate__app_state_sync_key_share__unpack(NULL, len, buf);
    if (!s)
        return WA_AS_MALFORMED;
    int rc = WA_AS_OK;
    struct wa_as_shared_key *out = NULL;
    if (s->n_keys) {
        out = wa_arena_alloc(a, s->n_keys * sizeof *out);
        if (!out)
            rc = WA_AS_INTERNAL;
    }
    for (size_t i = 0; rc == WA_AS_OK && i < s->n_keys; i++) {
        const Wapi__Appstate__AppStateSyncKey *k = s->keys[i];
        if (!k->keyid || !k->keyid->has_keyid || !k->keydata || !k->keydata->has_keydata)
            continue;
        const ProtobufCBinaryData *id = &k->keyid->keyid, *d = &k->keydata->keydata;
        if (id->len == 0 || id->len > WA_AS_KEY_ID_MAX || d->len == 0 || d->len > WA_AS_KEY_DATA_MAX)
            continue;
        uint8_t *idc = wa_arena_alloc(a, id->len), *dc = wa_arena_alloc(a, d->len);
        if (!idc || !dc) {
            rc = WA_AS_INTERNAL;
            break;
        }
        memcpy(idc, id->data, id->len);
        memcpy(dc, d->data, d->len);
        out[*n] = (struct wa_as_shared_key){idc, id->len, dc, d->len, k->keydata->timestamp};
        (*n)++;
    }
    wapi__appstate__app_state_sync_key_share__free_unpacked(s, NULL);
    if (rc != WA_AS_OK)
        *n = 0;
    else
        *keys = out;
    return rc;
}

int wa_as_key_request_encode(const uint8_t *const *key_ids, const size_t *key_id_lens, size_t n, wa_arena *a,
                             const uint8_t **out, size_t *out_len)
{
    if (n == 0 || n > 1024)
        return WA_AS_MALFORMED;
    Wapi__Appstate__AppStateSyncKeyRequest req = WAPI__APPSTATE__APP_STATE_SYNC_KEY_REQUEST__INIT;
    Wapi__Appstate__AppStateSyncKeyId *ids = wa_arena_alloc(a, n * sizeof *ids);
    Wapi__Appstate__AppStateSyncKeyId **ptrs = wa_arena_alloc(a, n * sizeof *ptrs);
    if (!ids || !ptrs)
        return WA_AS_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        if (!key_ids[i] || key_id_lens[i] == 0 || key_id_lens[i] > WA_AS_KEY_ID_MAX)
            return WA_AS_MALFORMED;
        wapi__appstate__app_state_sync_key_id__init(&ids[i]);
        ids[i].has_keyid = 1;
        ids[i].keyid.data = (uint8_t *)key_ids[i];
        ids[i].keyid.len = key_id_lens[i];
        ptrs[i] = &ids[i];
    }
    req.n_keyids = n;
    req.keyids = ptrs;
    size_t sz = wapi__appstate__app_state_sync_key_request__get_packed_size(&req);
    uint8_t *buf = wa_arena_alloc(a, sz ? sz : 1);
    if (!buf)
        return WA_AS_INTERNAL;
    *out_len = wapi__appstate__app_state_sync_key_request__pack(&req, buf);
    *out = buf;
    return WA_AS_OK;
}
