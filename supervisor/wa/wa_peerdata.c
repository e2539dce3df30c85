/* Peer data operations: see wa_peerdata.h. */
#include "wa_peerdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/e2e.pb-c.h"
#include "proto/peerdata.pb-c.h"

/* A JID or message id as WhatsApp has them: short, printable, no spaces. */
static int plausible(const char *s, size_t max)
{
    if (!s || !*s)
        return 0;
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* The request rq in a protocolMessage PEER_DATA_OPERATION_REQUEST_MESSAGE; *out malloc'd. */
static int wrap_request(const Wapi__Pd__Request *rq, uint8_t **out, size_t *outlen)
{
    size_t rl = wapi__pd__request__get_packed_size(rq);
    uint8_t *rb = malloc(rl ? rl : 1);
    if (!rb)
        return -1;
    wapi__pd__request__pack(rq, rb);
    Wapi__E2e__ProtocolMessage pm = WAPI__E2E__PROTOCOL_MESSAGE__INIT;
    pm.has_type = 1, pm.type = WAPI__E2E__PROTOCOL_MESSAGE__TYPE__PEER_DATA_OPERATION_REQUEST_MESSAGE;
    pm.has_peerdataoperationrequestmessage = 1;
    pm.peerdataoperationrequestmessage.data = rb;
    pm.peerdataoperationrequestmessage.len = rl;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    m.protocolmessage = &pm;
    size_t len = wapi__e2e__message__get_packed_size(&m);
    uint8_t *b = malloc(len ? len : 1);
    if (!b) {
        free(rb);
        return -1;
    }
    wapi__e2e__message__pack(&m, b);
    free(rb);
    *out = b;
    *outlen = len;
    return 0;
}

int wa_pd_build_placeholder_request(const struct wa_pd_key *k, uint8_t **out, size_t *outlen)
{
    if (!k || !plausible(k->chat, 127) || !plausible(k->id, 63) ||
        (k->participant && !plausible(k->participant, 127)))
        return -1;
    Wapi__Pd__Key key = WAPI__PD__KEY__INIT;
    key.remotejid = (char *)k->chat;
    key.has_fromme = 1, key.fromme = k->from_me != 0;
    key.id = (char *)k->id;
    key.participant = (char *)k->participant;
    Wapi__Pd__PlaceholderResendRequest one = WAPI__PD__PLACEHOLDER_RESEND_REQUEST__INIT;
    one.messagekey = &key;
    Wapi__Pd__PlaceholderResendRequest *list[1] = {&one};
    Wapi__Pd__Request rq = WAPI__PD__REQUEST__INIT;
    rq.has_peerdataoperationrequesttype = 1;
    rq.peerdataoperationrequesttype = WAPI__PD__REQUEST_TYPE__PLACEHOLDER_MESSAGE_RESEND;
    rq.n_placeholdermessageresendrequest = 1;
    rq.placeholdermessageresendrequest = list;
    return wrap_request(&rq, out, outlen);
}

int wa_pd_build_history_request(const char *chat, const char *id, int from_me, int64_t ts, int count,
                                uint8_t **out, size_t *outlen)
{
    if (!plausible(chat, 127) || !plausible(id, 63) || count < 1 || count > WA_PD_HISTORY_MAX || ts < 0)
        return -1;
    Wapi__Pd__HistorySyncOnDemandRequest h = WAPI__PD__HISTORY_SYNC_ON_DEMAND_REQUEST__INIT;
    h.chatjid = (char *)chat;
    h.oldestmsgid = (char *)id;
    h.has_oldestmsgfromme = 1, h.oldestmsgfromme = from_me != 0;
    h.has_ondemandmsgcount = 1, h.ondemandmsgcount = count;
    h.has_oldestmsgtimestampms = 1, h.oldestmsgtimestampms = ts;
    Wapi__Pd__Request rq = WAPI__PD__REQUEST__INIT;
    rq.has_peerdataoperationrequesttype = 1;
    rq.peerdataoperationrequesttype = WAPI__PD__REQUEST_TYPE__HISTORY_SYNC_ON_DEMAND;
    rq.historysyncondemandrequest = &h;
    return wrap_request(&rq, out, outlen);
}

static char *pd_sdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void wa_pd_resent_free(struct wa_pd_resent *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->chat);
    free(r->participant);
    free(r->push_name);
    wa_msg_content_free(&r->mc);
    memset(r, 0, sizeof *r);
}

/* One WebMessageInfo into r: 0, or -1 when it is unusable. */
static int read_info(const ProtobufCBinaryData *b, struct wa_pd_resent *r)
{
    memset(r, 0, sizeof *r);
    Wapi__Pd__WebMessageInfo *w = wapi__pd__web_message_info__unpack(NULL, b->len, b->data);
    if (!w)
        return -1;
    int ok = w->key && plausible(w->key->id, 63) && plausible(w->key->remotejid, 127) && w->has_message &&
             (!w->key->participant || plausible(w->key->participant, 127)) &&
             (!w->participant || plausible(w->participant, 127)) &&
             wa_msg_parse(w->message.data, w->message.len, &r->mc) == 0;
    if (ok) {
        /* the sender in a group: the key's, else the info's */
        const char *part = w->key->participant ? w->key->participant : w->participant;
        r->id = pd_sdup(w->key->id);
        r->chat = pd_sdup(w->key->remotejid);
        r->participant = pd_sdup(part);
        r->push_name = pd_sdup(w->pushname);
        r->from_me = w->key->has_fromme && w->key->fromme;
        r->ts = w->has_messagetimestamp && w->messagetimestamp <= 32503680000ULL
                    ? (int64_t)w->messagetimestamp
                    : 0;
        ok = r->id && r->chat && (!part || r->participant) && (!w->pushname || r->push_name);
    }
    wapi__pd__web_message_info__free_unpacked(w, NULL);
    if (!ok)
        wa_pd_resent_free(r);
    return ok ? 0 : -1;
}

int wa_pd_parse_response(const uint8_t *p, size_t n, struct wa_pd_resent *out, size_t cap, size_t *nout,
                         size_t *skipped, char *err, size_t errlen)
{
    *nout = 0;
    *skipped = 0;
    Wapi__Pd__Response *rs = wapi__pd__response__unpack(NULL, n, p);
    if (!rs) {
        snprintf(err, errlen, "not a peer data operation answer");
        return -1;
    }
    if (!rs->has_peerdataoperationrequesttype ||
        rs->peerdataoperationrequesttype != WAPI__PD__REQUEST_TYPE__PLACEHOLDER_MESSAGE_RESEND) {
        snprintf(err, errlen, "not an answer to a placeholder resend request");
        wapi__pd__response__free_unpacked(rs, NULL);
        return -1;
    }
    for (size_t i = 0; i < rs->n_peerdataoperationresult; i++) {
        const Wapi__Pd__Result *x = rs->peerdataoperationresult[i];
        const Wapi__Pd__PlaceholderResendResponse *pr = x ? x->placeholdermessageresendresponse : NULL;
        if (!pr || !pr->has_webmessageinfobytes || *nout == cap ||
            read_info(&pr->webmessageinfobytes, &out[*nout]) < 0) {
            (*skipped)++;
            continue;
        }
        (*nout)++;
    }
    wapi__pd__response__free_unpacked(rs, NULL);
    return 0;
}
