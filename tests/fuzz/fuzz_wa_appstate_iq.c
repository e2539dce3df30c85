/* libFuzzer target for the reader of the server's app-state sync answers
 * (wa_appstate_iq): arbitrary bytes decoded as a node are read as the
 * answer to <iq xmlns=w:sync:app:state> and as a server_sync notification;
 * every patch and snapshot reference it hands out must lie within the
 * input's tree and its bounds, and a request is built back from what was
 * read. No crash, no leak. */
#include "supervisor/wa/wa_tokens.c"
#include "supervisor/wa/wa_binary.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/wa_lthash.c"
#include "supervisor/wa/wa_appstate_keys.c"
#include "supervisor/wa/wa_appstate.c"
#include "supervisor/wa/wa_appstate_iq.c"
#include "supervisor/wa/proto/appstate.pb-c.c"
#include "supervisor/wa/proto/e2e.pb-c.c"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_arena *a = wa_arena_new();
    wa_node *n = NULL;
    if (!a)
        return 0;
    if (wa_node_decode(data, size, NULL, a, &n) == WA_OK && n) {
        struct wa_asiq_coll *cs = NULL;
        size_t nc = 0;
        char err[160];
        if (wa_asiq_parse(n, a, &cs, &nc, err, sizeof err) == 0) {
            if (nc > WA_ASIQ_MAX_COLLECTIONS)
                abort();
            struct wa_asiq_req rq[WA_ASIQ_MAX_COLLECTIONS];
            for (size_t i = 0; i < nc; i++) {
                if (cs[i].npatches > WA_ASIQ_MAX_PATCHES || strlen(cs[i].name) > WA_ASIQ_NAME_MAX)
                    abort();
                volatile uint8_t sum = 0;
                for (size_t k = 0; k < cs[i].npatches; k++) {
                    if (!cs[i].patches[k] || !cs[i].patch_lens[k] || cs[i].patch_lens[k] > WA_ASIQ_PATCH_MAX)
                        abort();
                    sum ^= cs[i].patches[k][0] ^ cs[i].patches[k][cs[i].patch_lens[k] - 1];
                    struct wa_as_blob_ref ref;
                    (void)wa_as_patch_external(cs[i].patches[k], cs[i].patch_lens[k], a, &ref);
                }
                if (cs[i].snapshot) {
                    sum ^= cs[i].snapshot[cs[i].snapshot_len - 1];
                    struct wa_as_blob_ref ref;
                    (void)wa_as_blob_ref_parse(cs[i].snapshot, cs[i].snapshot_len, a, &ref);
                }
                (void)sum;
                rq[i] = (struct wa_asiq_req){cs[i].name, cs[i].version, 1,
                                             cs[i].npatches ? cs[i].patches[0] : NULL,
                                             cs[i].npatches ? cs[i].patch_lens[0] : 0};
            }
            if (nc && !wa_asiq_request(a, rq, nc))
                abort(); /* what was read is always a valid request again */
        }
        char names[WA_ASIQ_MAX_COLLECTIONS][WA_ASIQ_NAME_MAX + 1];
        size_t k = wa_asiq_server_sync(n, names, WA_ASIQ_MAX_COLLECTIONS);
        for (size_t i = 0; i < k; i++)
            if (strlen(names[i]) == 0 || strlen(names[i]) > WA_ASIQ_NAME_MAX)
                abort();
    }
    wa_arena_free(a);
    return 0;
}
