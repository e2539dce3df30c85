/* Peer data operations: the placeholder resend request read back field by
 * field with a protobuf walker of its own (field numbers as WhatsApp uses
 * them), and answers made by Baileys' encoder (proto.WebMessageInfo inside a
 * PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE) read through wa_msg_parse and
 * wa_pd_parse_response; malformed and truncated answers give nothing. */
#include "supervisor/wa/wa_peerdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"

/* ---- a minimal protobuf reader: the first field num of a message ---- */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Field num of the message p..p+n: for a varint *v; for bytes *b and *bl.
 * 0 found, -1 not found or malformed. */
static int field(const uint8_t *p, size_t n, uint32_t num, uint64_t *v, const uint8_t **b, size_t *bl)
{
    const uint8_t *end = p + n;
    while (p < end) {
        uint64_t key, x;
        if (varint(&p, end, &key) < 0)
            return -1;
        int wt = (int)(key & 7);
        if (wt == 0) {
            if (varint(&p, end, &x) < 0)
                return -1;
            if ((key >> 3) == num && v) {
                *v = x;
                return 0;
            }
        } else if (wt == 2) {
            if (varint(&p, end, &x) < 0 || x > (uint64_t)(end - p))
                return -1;
            if ((key >> 3) == num && b) {
                *b = p, *bl = (size_t)x;
                return 0;
            }
            p += x;
        } else if (wt == 1 || wt == 5) {
            p += wt == 1 ? 8 : 4;
        } else {
            return -1;
        }
    }
    return -1;
}

static int str_field(const uint8_t *p, size_t n, uint32_t num, char *out, size_t cap)
{
    const uint8_t *b;
    size_t bl;
    if (field(p, n, num, NULL, &b, &bl) < 0 || bl >= cap)
        return -1;
    memcpy(out, b, bl);
    out[bl] = '\0';
    return 0;
}

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = strlen(h) / 2;
    if (n > cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf(h + 2 * i, "%2x", &x);
        out[i] = (uint8_t)x;
    }
    return n;
}

/* The request for key k, read back: remoteJid, fromMe, id, participant. */
static void check_request(const struct wa_pd_key *k, const char *what)
{
    uint8_t *m = NULL;
    size_t ml = 0;
    char name[160];
    T_EQ_INT(wa_pd_build_placeholder_request(k, &m, &ml), 0, what);
    const uint8_t *pm, *rq, *one, *key;
    size_t pml, rql, onel, keyl;
    uint64_t type = 99, rtype = 99, fromme = 99;
    snprintf(name, sizeof name, "%s: Message.protocolMessage (12) and nothing else", what);
    T_CHECK(m && field(m, ml, 12, NULL, &pm, &pml) == 0 && pml + 2 + (pml > 127) == ml, name);
    snprintf(name, sizeof name, "%s: ProtocolMessage.type (2) is PEER_DATA_OPERATION_REQUEST_MESSAGE (16)",
             what);
    T_CHECK(field(pm, pml, 2, &type, NULL, NULL) == 0 && type == 16, name);
    snprintf(name, sizeof name, "%s: peerDataOperationRequestMessage is field 16", what);
    T_CHECK(field(pm, pml, 16, NULL, &rq, &rql) == 0, name);
    snprintf(name, sizeof name, "%s: request type (1) PLACEHOLDER_MESSAGE_RESEND (4)", what);
    T_CHECK(field(rq, rql, 1, &rtype, NULL, NULL) == 0 && rtype == 4, name);
    snprintf(name, sizeof name, "%s: placeholderMessageResendRequest (5) holds messageKey (1)", what);
    T_CHECK(field(rq, rql, 5, NULL, &one, &onel) == 0 && field(one, onel, 1, NULL, &key, &keyl) == 0, name);
    char jid[160] = "", id[80] = "", part[160] = "";
    snprintf(name, sizeof name, "%s: key remoteJid (1), fromMe (2), id (3)", what);
    T_CHECK(str_field(key, keyl, 1, jid, sizeof jid) == 0 && !strcmp(jid, k->chat) &&
                field(key, keyl, 2, &fromme, NULL, NULL) == 0 && fromme == (uint64_t)(k->from_me != 0) &&
                str_field(key, keyl, 3, id, sizeof id) == 0 && !strcmp(id, k->id),
            name);
    snprintf(name, sizeof name, "%s: participant (4) only when given", what);
    if (k->participant)
        T_CHECK(str_field(key, keyl, 4, part, sizeof part) == 0 && !strcmp(part, k->participant), name);
    else
        T_CHECK(str_field(key, keyl, 4, part, sizeof part) < 0, name);
    /* What we send parses as a Message that is nothing to store. */
    struct wa_msg_content mc;
    snprintf(name, sizeof name, "%s: parses as a Message with nothing to store", what);
    T_CHECK(wa_msg_parse(m, ml, &mc) == 0 && mc.kind == WA_MSG_NONE, name);
    wa_msg_content_free(&mc);
    free(m);
}

/* The on-demand history request, read back: HISTORY_SYNC_ON_DEMAND (3) and
 * historySyncOnDemandRequest (4): chatJid (1), oldestMsgId (2),
 * oldestMsgFromMe (3), onDemandMsgCount (4), oldestMsgTimestampMs (5, in
 * seconds despite its name). */
static void check_history_request(void)
{
    uint8_t *m = NULL;
    size_t ml = 0;
    T_EQ_INT(wa_pd_build_history_request("4915112345678@s.whatsapp.net", "3EB0ANCHOR", 1, 1767225600, 120, &m,
                                         &ml),
             0, "history request: built");
    const uint8_t *pm = NULL, *rq = NULL, *h = NULL;
    size_t pml = 0, rql = 0, hl = 0;
    uint64_t type = 99, rtype = 99, fromme = 99, count = 0, ts = 0;
    T_CHECK(m && field(m, ml, 12, NULL, &pm, &pml) == 0 && field(pm, pml, 2, &type, NULL, NULL) == 0 &&
                type == 16 && field(pm, pml, 16, NULL, &rq, &rql) == 0,
            "history request: a protocolMessage PEER_DATA_OPERATION_REQUEST_MESSAGE");
    T_CHECK(rq && field(rq, rql, 1, &rtype, NULL, NULL) == 0 && rtype == 3,
            "history request: type HISTORY_SYNC_ON_DEMAND (3)");
    const uint8_t *x;
    size_t xl;
    T_CHECK(rq && field(rq, rql, 4, NULL, &h, &hl) == 0 && field(rq, rql, 5, NULL, &x, &xl) < 0,
            "history request: historySyncOnDemandRequest (4), no placeholder request");
    char jid[80] = "", id[40] = "";
    T_CHECK(h && str_field(h, hl, 1, jid, sizeof jid) == 0 && !strcmp(jid, "4915112345678@s.whatsapp.net") &&
                str_field(h, hl, 2, id, sizeof id) == 0 && !strcmp(id, "3EB0ANCHOR"),
            "history request: chatJid (1) and oldestMsgId (2)");
    T_CHECK(h && field(h, hl, 3, &fromme, NULL, NULL) == 0 && fromme == 1 &&
                field(h, hl, 4, &count, NULL, NULL) == 0 && count == 120 &&
                field(h, hl, 5, &ts, NULL, NULL) == 0 && ts == 1767225600,
            "history request: oldestMsgFromMe (3), onDemandMsgCount (4), the anchor's time in seconds (5)");
    struct wa_msg_content mc;
    T_CHECK(wa_msg_parse(m, ml, &mc) == 0 && mc.kind == WA_MSG_NONE,
            "history request: parses as a Message with nothing to store");
    wa_msg_content_free(&mc);
    free(m);
    m = NULL;
    T_EQ_INT(wa_pd_build_history_request("1@s.whatsapp.net", "3EB0", 0, 1, 0, &m, &ml), -1,
             "history request: count 0 refused");
    T_EQ_INT(wa_pd_build_history_request("1@s.whatsapp.net", "3EB0", 0, 1, WA_PD_HISTORY_MAX + 1, &m, &ml),
             -1, "history request: count over the maximum refused");
    T_EQ_INT(wa_pd_build_history_request("", "3EB0", 0, 1, 5, &m, &ml), -1,
             "history request: no chat refused");
    T_EQ_INT(wa_pd_build_history_request("1@s.whatsapp.net", "3EB0 X", 0, 1, 5, &m, &ml), -1,
             "history request: an id with a space refused");
    T_CHECK(m == NULL, "history request: nothing built when refused");
}

/* Made by Baileys 7's encoder (tests/wa: proto.Message / proto.WebMessageInfo). */
static const char DIRECT[] = "627910118a017408041216334542304141424243434444454546463030313132321a5822560a540"
                             "a360a1a3135353530303039393939"
                             "40732e77686174736170702e6e657410001a1633454230313131313131313131313131313131313"
                             "131120d0a0b68656c6c6f20616761"
                             "696e1880f2d6ca069a010450656572";
static const char GROUP[] = "628f0110118a01890108041216334542304141424243434444454546463030313132321a6d226b0a"
                            "690a4f0a17313230333633303030"
                            "30303030303030303140672e757310001a1633454230323232323232323232323232323232323232"
                            "221a313535353030303838383840"
                            "732e77686174736170702e6e65741210320e0a0c696e207468652067726f75701881f2d6ca06";
/* a WebMessageInfo that is no protobuf, a result without any, then DIRECT's */
static const char MIXED[] = "62860110118a01800108041216334542304141424243434444454546463030313132321a0822060a"
                            "040affff011a001a5822560a540a"
                            "360a1a313535353030303939393940732e77686174736170702e6e657410001a1633454230313131"
                            "313131313131313131313131313131"
                            "120d0a0b68656c6c6f20616761696e1880f2d6ca069a010450656572";
/* DIRECT answering another kind of request (HISTORY_SYNC_ON_DEMAND, 3) */
static const char WRONGTYPE[] = "627910118a017408031216334542304141424243434444454546463030313132321a5822560a"
                                "540a360a1a3135353530303039393939"
                                "40732e77686174736170702e6e657410001a1633454230313131313131313131313131313131"
                                "313131120d0a0b68656c6c6f20616761"
                                "696e1880f2d6ca069a010450656572";

/* wa_msg_parse and wa_pd_parse_response of hex h: the parse's result. */
static int answer(const char *h, struct wa_pd_resent *r, size_t *nr, size_t *skipped)
{
    uint8_t b[512];
    size_t n = unhex(h, b, sizeof b);
    struct wa_msg_content mc;
    char err[128];
    if (wa_msg_parse(b, n, &mc) < 0)
        return -2;
    if (mc.kind != WA_MSG_PEER_DATA) {
        wa_msg_content_free(&mc);
        return -3;
    }
    int rc = wa_pd_parse_response(mc.peer_data, mc.peer_data_len, r, WA_PD_MAX_RESULTS, nr, skipped, err,
                                  sizeof err);
    wa_msg_content_free(&mc);
    return rc;
}

int main(void)
{
    check_request(&(struct wa_pd_key){"15550009999@s.whatsapp.net", 0, "3EB0111111111111111111", NULL},
                  "direct chat");
    check_request(&(struct wa_pd_key){"120363000000000001@g.us", 0, "3EB0222222222222222222",
                                      "15550008888@s.whatsapp.net"},
                  "group");
    check_request(&(struct wa_pd_key){"15550009999@s.whatsapp.net", 1, "ABCDEF0123", NULL},
                  "our own message");

    check_history_request();

    uint8_t *m = (uint8_t *)"x";
    size_t ml = 0;
    T_EQ_INT(wa_pd_build_placeholder_request(&(struct wa_pd_key){NULL, 0, "3EB0", NULL}, &m, &ml), -1,
             "no chat: refused");
    T_EQ_INT(wa_pd_build_placeholder_request(&(struct wa_pd_key){"1@s.whatsapp.net", 0, "", NULL}, &m, &ml),
             -1, "empty id: refused");
    T_EQ_INT(
        wa_pd_build_placeholder_request(&(struct wa_pd_key){"1@s.whatsapp.net", 0, "3EB0 1", NULL}, &m, &ml),
        -1, "an id with a space: refused");
    T_EQ_INT(
        wa_pd_build_placeholder_request(&(struct wa_pd_key){"1@s.whatsapp.net", 0, "3EB0", "a\nb"}, &m, &ml),
        -1, "a participant with a control character: refused");

    struct wa_pd_resent r[WA_PD_MAX_RESULTS];
    size_t nr = 0, skipped = 0;
    T_EQ_INT(answer(DIRECT, r, &nr, &skipped), 0, "direct answer: read");
    T_CHECK(nr == 1 && skipped == 0, "direct answer: one result");
    if (nr == 1) {
        T_EQ_STR(r[0].id, "3EB0111111111111111111", "direct answer: the key's id");
        T_EQ_STR(r[0].chat, "15550009999@s.whatsapp.net", "direct answer: the key's chat");
        T_CHECK(r[0].participant == NULL && r[0].from_me == 0, "direct answer: no participant, not ours");
        T_EQ_INT(r[0].ts, 1767225600, "direct answer: the message's time");
        T_EQ_STR(r[0].push_name, "Peer", "direct answer: the push name");
        T_CHECK(r[0].mc.kind == WA_MSG_TEXT && r[0].mc.text && !strcmp(r[0].mc.text, "hello again") &&
                    !strcmp(r[0].mc.subtype, "conversation"),
                "direct answer: the message, parsed as any received one");
    }
    for (size_t i = 0; i < nr; i++)
        wa_pd_resent_free(&r[i]);

    T_EQ_INT(answer(GROUP, r, &nr, &skipped), 0, "group answer: read");
    T_CHECK(nr == 1 && r[0].participant && !strcmp(r[0].participant, "15550008888@s.whatsapp.net") &&
                !strcmp(r[0].chat, "120363000000000001@g.us") && r[0].push_name == NULL,
            "group answer: the sender as participant, the group as chat, no push name");
    T_CHECK(nr == 1 && r[0].mc.kind == WA_MSG_TEXT && !strcmp(r[0].mc.text, "in the group") &&
                !strcmp(r[0].mc.subtype, "extendedTextMessage"),
            "group answer: its extendedTextMessage");
    for (size_t i = 0; i < nr; i++)
        wa_pd_resent_free(&r[i]);

    T_EQ_INT(answer(MIXED, r, &nr, &skipped), 0, "mixed answer: read");
    T_CHECK(nr == 1 && skipped == 2 && !strcmp(r[0].id, "3EB0111111111111111111"),
            "mixed answer: the malformed result and the empty one skipped, the good one kept");
    for (size_t i = 0; i < nr; i++)
        wa_pd_resent_free(&r[i]);

    T_EQ_INT(answer(WRONGTYPE, r, &nr, &skipped), -1, "an answer to another kind of request: refused");
    T_CHECK(nr == 0, "and nothing taken from it");

    /* Every truncation of an answer: no crash, no result with a missing key. */
    uint8_t b[512];
    size_t n = unhex(DIRECT, b, sizeof b);
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        struct wa_msg_content mc;
        if (wa_msg_parse(b, cut, &mc) < 0)
            continue;
        if (mc.kind == WA_MSG_PEER_DATA) {
            char err[64];
            if (wa_pd_parse_response(mc.peer_data, mc.peer_data_len, r, WA_PD_MAX_RESULTS, &nr, &skipped, err,
                                     sizeof err) == 0)
                for (size_t i = 0; i < nr; i++) {
                    bad |= !r[i].id || !r[i].chat;
                    wa_pd_resent_free(&r[i]);
                }
        }
        wa_msg_content_free(&mc);
    }
    T_CHECK(!bad, "every truncated answer read safely");

    /* The answer's bytes read directly (not as a Message) are no answer. */
    char err[64];
    T_EQ_INT(wa_pd_parse_response((const uint8_t *)"\x08\x03", 2, r, WA_PD_MAX_RESULTS, &nr, &skipped, err,
                                  sizeof err),
             -1, "a response naming another request type: refused");
    T_EQ_INT(wa_pd_parse_response((const uint8_t *)"\xff", 1, r, WA_PD_MAX_RESULTS, &nr, &skipped, err,
                                  sizeof err),
             -1, "no protobuf: refused");
    return t_failed ? 1 : 0;
}
