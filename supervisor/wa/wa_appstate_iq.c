/* App-state sync on the wire: see wa_appstate_iq.h. */
#include "wa_appstate_iq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/e2e.pb-c.h"
#include "wa_appstate.h"

static int coll_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > WA_ASIQ_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return 0;
    return 1;
}

wa_node *wa_asiq_request(wa_arena *a, const struct wa_asiq_req *c, size_t n)
{
    if (!a || !c || n == 0 || n > WA_ASIQ_MAX_COLLECTIONS)
        return NULL;
    wa_node *iq = wa_node_new(a, "iq"), *sync = wa_node_new(a, "sync");
    if (!iq || !sync || wa_node_add_attr(a, iq, "xmlns", "w:sync:app:state") != WA_OK ||
        wa_node_add_attr(a, iq, "type", "set") != WA_OK)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char v[24];
        if (!coll_name_ok(c[i].name) ||
            (c[i].patch && (c[i].patch_len == 0 || c[i].patch_len > WA_ASIQ_PATCH_MAX)))
            return NULL;
        snprintf(v, sizeof v, "%llu", (unsigned long long)c[i].version);
        wa_node *col = wa_node_new(a, "collection");
        if (!col || wa_node_add_attr(a, col, "name", c[i].name) != WA_OK ||
            wa_node_add_attr(a, col, "version", v) != WA_OK ||
            wa_node_add_attr(a, col, "return_snapshot", c[i].snapshot && !c[i].patch ? "true" : "false") !=
                WA_OK)
            return NULL;
        if (c[i].patch) {
            wa_node *p = wa_node_new(a, "patch");
            if (!p || wa_node_set_bytes(a, p, c[i].patch, c[i].patch_len) != WA_OK ||
                wa_node_add_child(a, col, p) != WA_OK)
                return NULL;
        }
        if (wa_node_add_child(a, sync, col) != WA_OK)
            return NULL;
    }
    return wa_node_add_child(a, iq, sync) == WA_OK ? iq : NULL;
}

/* The bytes a node holds (bytes, or a string the decoder made of them). */
static const uint8_t *node_bytes(const wa_node *n, size_t *len)
{
    if (n->content == WA_CONTENT_BYTES) {
        *len = n->nbytes;
        return n->bytes;
    }
    if (n->content == WA_CONTENT_STR && n->str) {
        *len = strlen(n->str);
        return (const uint8_t *)n->str;
    }
    return NULL;
}

static int err_code(const wa_node *n)
{
    const wa_node *e = wa_node_child(n, "error");
    const char *code = e ? wa_node_attr_str(e, "code") : NULL;
    long v = code ? strtol(code, NULL, 10) : 0;
    return v > 0 && v < 1000 ? (int)v : 500;
}

static int parse_version(const char *s, uint64_t *out)
{
    char *end;
    if (!s) {
        *out = 0;
        return 0;
    }
    if (!*s || *s == '-' || strlen(s) > 19)
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_coll(const wa_node *c, wa_arena *a, struct wa_asiq_coll *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    const char *name = wa_node_attr_str(c, "name");
    if (!coll_name_ok(name)) {
        snprintf(err, errlen, "a collection without a usable name");
        return -1;
    }
    snprintf(o->name, sizeof o->name, "%s", name);
    if (parse_version(wa_node_attr_str(c, "version"), &o->version) < 0) {
        snprintf(err, errlen, "collection %s: version is no number", o->name);
        return -1;
    }
    const char *type = wa_node_attr_str(c, "type");
    if ((type && !strcmp(type, "error")) || wa_node_child(c, "error")) {
        o->error = err_code(c);
        return 0;
    }
    const char *more = wa_node_attr_str(c, "has_more_patches");
    o->has_more = more && !strcmp(more, "true");
    const wa_node *snap = wa_node_child(c, "snapshot");
    if (snap) {
        o->snapshot = node_bytes(snap, &o->snapshot_len);
        if (!o->snapshot || o->snapshot_len == 0 || o->snapshot_len > 65536) {
            snprintf(err, errlen, "collection %s: a snapshot reference that is no bytes", o->name);
            return -1;
        }
    }
    const wa_node *ps = wa_node_child(c, "patches");
    size_t np = 0;
    for (uint32_t i = 0; ps && ps->content == WA_CONTENT_LIST && i < ps->nchildren; i++)
        np += !strcmp(ps->children[i]->tag, "patch");
    if (np > WA_ASIQ_MAX_PATCHES) {
        snprintf(err, errlen, "collection %s: %zu patches in one answer", o->name, np);
        return -1;
    }
    if (np) {
        o->patches = wa_arena_alloc(a, np * sizeof *o->patches);
        o->patch_lens = wa_arena_alloc(a, np * sizeof *o->patch_lens);
        if (!o->patches || !o->patch_lens) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    for (uint32_t i = 0; ps && ps->content == WA_CONTENT_LIST && i < ps->nchildren; i++) {
        const wa_node *p = ps->children[i];
        if (strcmp(p->tag, "patch"))
            continue;
        size_t len = 0;
        const uint8_t *b = node_bytes(p, &len);
        if (!b || len == 0 || len > WA_ASIQ_PATCH_MAX) {
            snprintf(err, errlen, "collection %s: a patch that is no bytes or too large", o->name);
            return -1;
        }
        o->patches[o->npatches] = b;
        o->patch_lens[o->npatches++] = len;
    }
    return 0;
}

int wa_asiq_parse(const wa_node *answer, wa_arena *a, struct wa_asiq_coll **out, size_t *n, char *err,
                  size_t errlen)
{
    *out = NULL;
    *n = 0;
    const char *type = answer ? wa_node_attr_str(answer, "type") : NULL;
    if (!answer || strcmp(answer->tag, "iq") || !type || strcmp(type, "result")) {
        snprintf(err, errlen, "the server refused the sync (error %d)", answer ? err_code(answer) : 0);
        return -1;
    }
    const wa_node *sync = wa_node_child(answer, "sync");
    if (!sync || sync->content != WA_CONTENT_LIST) {
        snprintf(err, errlen, "an answer without <sync>");
        return -1;
    }
    size_t nc = 0;
    for (uint32_t i = 0; i < sync->nchildren; i++)
        nc += !strcmp(sync->children[i]->tag, "collection");
    if (nc > WA_ASIQ_MAX_COLLECTIONS) {
        snprintf(err, errlen, "%zu collections in one answer", nc);
        return -1;
    }
    struct wa_asiq_coll *cs = nc ? wa_arena_alloc(a, nc * sizeof *cs) : NULL;
    if (nc && !cs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < sync->nchildren; i++)
        if (!strcmp(sync->children[i]->tag, "collection") &&
            parse_coll(sync->children[i], a, &cs[k++], err, errlen) < 0)
            return -1;
    *out = cs;
    *n = k;
    return 0;
}

size_t wa_asiq_server_sync(const wa_node *n, char names[][WA_ASIQ_NAME_MAX + 1], size_t cap)
{
    size_t k = 0;
    for (uint32_t i = 0; n && n->content == WA_CONTENT_LIST && i < n->nchildren && k < cap; i++) {
        const wa_node *c = n->children[i];
        const char *name = wa_node_attr_str(c, "name");
        if (strcmp(c->tag, "collection") || !coll_name_ok(name))
            continue;
        int dup = 0;
        for (size_t j = 0; j < k; j++)
            dup |= !strcmp(names[j], name);
        if (!dup)
            snprintf(names[k++], WA_ASIQ_NAME_MAX + 1, "%s", name);
    }
    return k;
}

int wa_asiq_key_request_message(const uint8_t *const *key_ids, const size_t *key_id_lens, size_t n,
                                uint8_t **out, size_t *out_len)
{
    wa_arena *a = wa_arena_new();
    const uint8_t *rq = NULL;
    size_t rl = 0;
    if (!a || wa_as_key_request_encode(key_ids, key_id_lens, n, a, &rq, &rl) != WA_AS_OK) {
        wa_arena_free(a);
        return -1;
    }
    Wapi__E2e__ProtocolMessage pm = WAPI__E2E__PROTOCOL_MESSAGE__INIT;
    pm.has_type = 1, pm.type = WAPI__E2E__PROTOCOL_MESSAGE__TYPE__APP_STATE_SYNC_KEY_REQUEST;
    pm.has_appstatesynckeyrequest = 1;
    pm.appstatesynckeyrequest.data = (uint8_t *)rq;
    pm.appstatesynckeyrequest.len = rl;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    m.protocolmessage = &pm;
    size_t len = wapi__e2e__message__get_packed_size(&m);
    uint8_t *b = malloc(len ? len : 1);
    if (b)
        wapi__e2e__message__pack(&m, b);
    wa_arena_free(a);
    if (!b)
        return -1;
    *out = b;
    *out_len = len;
    return 0;
}
