/* The app-state sync request and the reading of the server's answer
 * (wa_appstate_iq): the request's exact shape (round trip through the
 * binary codec), answers with a snapshot, patches, has_more_patches and a
 * per-collection error read as they are, and malformed answers refused
 * (no <sync>, an <iq type=error>, a bad name or version, a patch that is no
 * bytes); a server_sync notification's names, deduplicated and bounded. */
#include "supervisor/wa/wa_appstate_iq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/e2e.pb-c.h"
#include "t.h"

static wa_node *node(wa_arena *a, const char *tag, const char *const *attrs)
{
    wa_node *n = wa_node_new(a, tag);
    for (size_t i = 0; attrs && attrs[i]; i += 2)
        wa_node_add_attr(a, n, attrs[i], attrs[i + 1]);
    return n;
}

/* Encoded and decoded again, as the answer would arrive. */
static const wa_node *wire(wa_arena *a, const wa_node *n)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    wa_node *out = NULL;
    if (wa_node_encode(n, &buf, &len) != WA_OK)
        return NULL;
    int r = wa_node_decode(buf, len, NULL, a, &out);
    free(buf);
    return r == WA_OK ? out : NULL;
}

int main(void)
{
    wa_arena *a = wa_arena_new();
    char err[160];

    /* ---- the request */
    static const uint8_t patch[] = {0x0a, 0x02, 0x08, 0x01};
    struct wa_asiq_req rq[2] = {{"regular_low", 7, 0, NULL, 0}, {"critical_block", 0, 1, NULL, 0}};
    wa_node *iq = wa_asiq_request(a, rq, 2);
    const wa_node *w = iq ? wire(a, iq) : NULL;
    const wa_node *sync = w ? wa_node_child(w, "sync") : NULL;
    T_CHECK(w && !strcmp(wa_node_attr_str(w, "xmlns"), "w:sync:app:state") &&
                !strcmp(wa_node_attr_str(w, "type"), "set") && sync && sync->nchildren == 2,
            "request: <iq xmlns=w:sync:app:state type=set><sync> with one <collection> each");
    const wa_node *c0 = sync ? sync->children[0] : NULL, *c1 = sync ? sync->children[1] : NULL;
    T_CHECK(c0 && !strcmp(wa_node_attr_str(c0, "name"), "regular_low") &&
                !strcmp(wa_node_attr_str(c0, "version"), "7") &&
                !strcmp(wa_node_attr_str(c0, "return_snapshot"), "false") && c0->content != WA_CONTENT_LIST,
            "request: name, version, return_snapshot=false, nothing inside for a fetch");
    T_CHECK(c1 && !strcmp(wa_node_attr_str(c1, "return_snapshot"), "true") &&
                !strcmp(wa_node_attr_str(c1, "version"), "0"),
            "request: a snapshot asked for from version 0");
    struct wa_asiq_req rp = {"regular_high", 12, 1, patch, sizeof patch};
    w = wire(a, wa_asiq_request(a, &rp, 1));
    const wa_node *col = w ? wa_node_child(wa_node_child(w, "sync"), "collection") : NULL;
    const wa_node *pn = col ? wa_node_child(col, "patch") : NULL;
    T_CHECK(pn && pn->content == WA_CONTENT_BYTES && pn->nbytes == sizeof patch &&
                !memcmp(pn->bytes, patch, sizeof patch) &&
                !strcmp(wa_node_attr_str(col, "return_snapshot"), "false"),
            "request: our patch inside its <collection>, return_snapshot=false even when asked");
    struct wa_asiq_req badn = {"Regular", 1, 0, NULL, 0}, empty = {"regular", 1, 0, patch, 0};
    T_CHECK(!wa_asiq_request(a, &badn, 1) && !wa_asiq_request(a, &empty, 1) && !wa_asiq_request(a, rq, 0),
            "request: a bad name, an empty patch, no collection: refused");

    /* ---- the answer */
    static const uint8_t ref[] = {0x0a, 0x01, 0x01};
    wa_node *ans = node(a, "iq", (const char *[]){"type", "result", "id", "1", NULL});
    wa_node *s = node(a, "sync", NULL);
    wa_node *cl =
        node(a, "collection",
             (const char *[]){"name", "regular_low", "version", "9", "has_more_patches", "true", NULL});
    wa_node *sn = node(a, "snapshot", NULL);
    wa_node_set_bytes(a, sn, ref, sizeof ref);
    wa_node *ps = node(a, "patches", NULL);
    for (int i = 0; i < 3; i++) {
        wa_node *p = node(a, "patch", NULL);
        uint8_t b[2] = {0x42, (uint8_t)i};
        wa_node_set_bytes(a, p, b, sizeof b);
        wa_node_add_child(a, ps, p);
    }
    wa_node_add_child(a, cl, sn);
    wa_node_add_child(a, cl, ps);
    wa_node *ce =
        node(a, "collection", (const char *[]){"name", "regular", "version", "3", "type", "error", NULL});
    wa_node_add_child(a, ce, node(a, "error", (const char *[]){"code", "409", "text", "conflict", NULL}));
    wa_node_add_child(a, s, cl);
    wa_node_add_child(a, s, ce);
    wa_node_add_child(a, ans, s);
    struct wa_asiq_coll *cs = NULL;
    size_t nc = 0;
    int r = wa_asiq_parse(wire(a, ans), a, &cs, &nc, err, sizeof err);
    T_CHECK(r == 0 && nc == 2, "answer: two collections read");
    T_CHECK(r == 0 && !strcmp(cs[0].name, "regular_low") && cs[0].version == 9 && cs[0].has_more &&
                cs[0].snapshot_len == sizeof ref && !memcmp(cs[0].snapshot, ref, sizeof ref) &&
                cs[0].npatches == 3 && cs[0].patch_lens[2] == 2 && cs[0].patches[2][1] == 2 && !cs[0].error,
            "answer: version, has_more_patches, the snapshot reference and the patches in order");
    T_CHECK(r == 0 && cs[1].error == 409 && !cs[1].npatches,
            "answer: a collection's error code (409: we are behind)");

    wa_node *e = node(a, "iq", (const char *[]){"type", "error", "id", "1", NULL});
    wa_node_add_child(a, e, node(a, "error", (const char *[]){"code", "500", NULL}));
    T_CHECK(wa_asiq_parse(e, a, &cs, &nc, err, sizeof err) < 0 && strstr(err, "500"),
            "answer: an <iq type=error> refused with its code");
    T_CHECK(wa_asiq_parse(node(a, "iq", (const char *[]){"type", "result", NULL}), a, &cs, &nc, err,
                          sizeof err) < 0,
            "answer: no <sync> refused");
    wa_node *bv = node(a, "iq", (const char *[]){"type", "result", NULL}), *bs = node(a, "sync", NULL);
    wa_node_add_child(a, bs,
                      node(a, "collection", (const char *[]){"name", "regular", "version", "-1", NULL}));
    wa_node_add_child(a, bv, bs);
    T_CHECK(wa_asiq_parse(bv, a, &cs, &nc, err, sizeof err) < 0,
            "answer: a version that is no number refused");
    wa_node *bp = node(a, "iq", (const char *[]){"type", "result", NULL}), *bps = node(a, "sync", NULL);
    wa_node *bc = node(a, "collection", (const char *[]){"name", "regular", "version", "1", NULL});
    wa_node *bpl = node(a, "patches", NULL);
    wa_node_add_child(a, bpl, node(a, "patch", NULL));
    wa_node_add_child(a, bc, bpl);
    wa_node_add_child(a, bps, bc);
    wa_node_add_child(a, bp, bps);
    T_CHECK(wa_asiq_parse(bp, a, &cs, &nc, err, sizeof err) < 0, "answer: a patch without bytes refused");

    /* ---- server_sync */
    wa_node *ss = node(a, "notification", (const char *[]){"type", "server_sync", NULL});
    const char *names[] = {"regular", "critical_block", "regular", "NOT valid", "regular_low"};
    for (size_t i = 0; i < 5; i++)
        wa_node_add_child(a, ss,
                          node(a, "collection", (const char *[]){"name", names[i], "version", "1", NULL}));
    char got[WA_ASIQ_MAX_COLLECTIONS][WA_ASIQ_NAME_MAX + 1];
    size_t k = wa_asiq_server_sync(wire(a, ss), got, WA_ASIQ_MAX_COLLECTIONS);
    T_CHECK(k == 3 && !strcmp(got[0], "regular") && !strcmp(got[1], "critical_block") &&
                !strcmp(got[2], "regular_low"),
            "server_sync: the names, once each, an invalid one left out");
    T_CHECK(wa_asiq_server_sync(ss, got, 1) == 1, "server_sync: bounded by the caller's room");

    /* ---- the key request */
    static const uint8_t kid[] = {0, 0, 0, 1, 0xab};
    const uint8_t *ids[] = {kid};
    size_t lens[] = {sizeof kid};
    uint8_t *msg = NULL;
    size_t ml = 0;
    Wapi__E2e__Message *m = wa_asiq_key_request_message(ids, lens, 1, &msg, &ml) == 0
                                ? wapi__e2e__message__unpack(NULL, ml, msg)
                                : NULL;
    T_CHECK(m && m->protocolmessage &&
                m->protocolmessage->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__APP_STATE_SYNC_KEY_REQUEST &&
                m->protocolmessage->has_appstatesynckeyrequest &&
                m->protocolmessage->appstatesynckeyrequest.len > 0,
            "key request: a protocolMessage APP_STATE_SYNC_KEY_REQUEST (7) with the request in field 8");
    if (m)
        wapi__e2e__message__free_unpacked(m, NULL);
    free(msg);
    size_t zero[] = {0};
    T_CHECK(wa_asiq_key_request_message(ids, zero, 1, &msg, &ml) < 0, "key request: an empty key id refused");

    wa_arena_free(a);
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}
