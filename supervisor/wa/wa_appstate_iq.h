/* App-state sync on the wire, no I/O: the <iq xmlns="w:sync:app:state">
 * that asks for collections (or carries a patch of ours), the reading of
 * the server's answer (per collection: a snapshot reference, patches,
 * whether more follow, or the server's error), and the message that asks
 * our phone for sync keys we lack. Every input is untrusted: lengths and
 * counts are bounded, and what does not fit is an error, not a crash. */
#ifndef WAPI_WA_APPSTATE_IQ_H
#define WAPI_WA_APPSTATE_IQ_H

#include <stddef.h>
#include <stdint.h>

#include "wa_binary.h"

#define WA_ASIQ_MAX_COLLECTIONS 8    /* we ask for five */
#define WA_ASIQ_MAX_PATCHES 1024     /* in one answer for one collection */
#define WA_ASIQ_NAME_MAX 32          /* "critical_unblock_low" and its kind */
#define WA_ASIQ_PATCH_MAX (4u << 20) /* a patch larger than this is refused (large ones go external) */

/* One collection in a request: from version (0: none yet), a snapshot
 * asked for or not, and for a change of ours the SyncdPatch to apply. */
struct wa_asiq_req {
    const char *name;
    uint64_t version;
    int snapshot;
    const uint8_t *patch; /* NULL: a fetch */
    size_t patch_len;
};
/* <iq xmlns="w:sync:app:state" type="set"><sync><collection …/>…</sync></iq>
 * (id and to are added by wa_client_iq); NULL on OOM or a bad request. */
wa_node *wa_asiq_request(wa_arena *a, const struct wa_asiq_req *c, size_t n);

/* One collection in an answer; pointers borrow from the answer's tree. */
struct wa_asiq_coll {
    char name[WA_ASIQ_NAME_MAX + 1];
    uint64_t version;        /* the version attribute, 0 when absent */
    int error;               /* the server's error code for this collection (409: we are behind), else 0 */
    int has_more;            /* has_more_patches="true" */
    const uint8_t *snapshot; /* ExternalBlobReference bytes, or NULL */
    size_t snapshot_len;
    size_t npatches;
    const uint8_t **patches; /* SyncdPatch bytes each, arena-owned array */
    size_t *patch_lens;
};
/* Reads the answer to wa_asiq_request: 0 with *out (arena-owned) and *n,
 * or -1 with err (an <iq type=error>, no <sync>, a collection without a
 * known shape, over the bounds). */
int wa_asiq_parse(const wa_node *answer, wa_arena *a, struct wa_asiq_coll **out, size_t *n, char *err,
                  size_t errlen);

/* The collection names a <notification type="server_sync"> lists (each
 * <collection name>), up to cap of them, copied into names; how many. */
size_t wa_asiq_server_sync(const wa_node *n, char names[][WA_ASIQ_NAME_MAX + 1], size_t cap);

/* The Message (protocolMessage APP_STATE_SYNC_KEY_REQUEST) asking our
 * phone for the sync keys key_ids; *out malloc'd. 0, or -1 when the ids are
 * unusable or out of memory. */
int wa_asiq_key_request_message(const uint8_t *const *key_ids, const size_t *key_id_lens, size_t n,
                                uint8_t **out, size_t *out_len);

#endif
