/* libFuzzer target for our phone's peer data operation answers: a
 * decrypted plaintext is untrusted bytes. Arbitrary input is parsed as a
 * Message and, when it is a PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE, its
 * answer is read (wa_pd_parse_response); the input is also read as an answer
 * directly. Whatever is taken has an id and a chat no longer than the input,
 * a Message wapi knows, and a request can be built back from its key; all of
 * it frees cleanly. Built alone by clang (make fuzzers). */
#include "supervisor/wa/wa_message.c"
#include "supervisor/wa/wa_peerdata.c"
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/proto/e2e.pb-c.c"
#include "supervisor/wa/proto/peerdata.pb-c.c"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void answer(const uint8_t *p, size_t n)
{
    struct wa_pd_resent r[WA_PD_MAX_RESULTS];
    size_t nr = 99, skipped = 99;
    char err[128];
    if (wa_pd_parse_response(p, n, r, WA_PD_MAX_RESULTS, &nr, &skipped, err, sizeof err) < 0) {
        if (nr != 0 || !err[0])
            abort();
        return;
    }
    if (nr > WA_PD_MAX_RESULTS)
        abort();
    for (size_t i = 0; i < nr; i++) {
        const struct wa_pd_resent *x = &r[i];
        if (!x->id || !x->chat || !*x->id || strlen(x->id) > 63 || strlen(x->id) > n || strlen(x->chat) > n ||
            (x->participant && strlen(x->participant) > n) || (x->push_name && strlen(x->push_name) > n) ||
            x->ts < 0 || x->mc.kind < WA_MSG_TEXT || x->mc.kind > WA_MSG_PEER_DATA)
            abort();
        /* The key it names can be asked for again. */
        uint8_t *q = NULL;
        size_t ql = 0;
        struct wa_pd_key k = {x->chat, x->from_me, x->id, x->participant};
        if (wa_pd_build_placeholder_request(&k, &q, &ql) < 0)
            abort();
        struct wa_msg_content mc;
        if (wa_msg_parse(q, ql, &mc) < 0 || mc.kind != WA_MSG_NONE)
            abort();
        wa_msg_content_free(&mc);
        free(q);
    }
    for (size_t i = 0; i < nr; i++)
        wa_pd_resent_free(&r[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wa_msg_content mc;
    if (wa_msg_parse(data, size, &mc) == 0) {
        if ((mc.kind == WA_MSG_PEER_DATA) != (mc.peer_data != NULL) || mc.peer_data_len > size)
            abort();
        if (mc.kind == WA_MSG_PEER_DATA)
            answer(mc.peer_data, mc.peer_data_len);
        wa_msg_content_free(&mc);
    }
    answer(data, size);
    return 0;
}
