#include "wa_message.h"

#include <signal/curve.h>
#include <signal/protocol.h>
#include <signal/session_builder.h>
#include <signal/session_cipher.h>
#include <signal/session_pre_key.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proto/e2e.pb-c.h"
#include "wa_crypto.h"

/* ---- padding ---- */

int wa_msg_pad(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
    uint8_t r;
    if (wa_crypto_random(&r, 1) < 0)
        return -1;
    uint8_t pad = (uint8_t)(r & 0x0f);
    if (pad == 0)
        pad = 0x0f;
    uint8_t *p = malloc(n + pad);
    if (!p)
        return -1;
    memcpy(p, in, n);
    memset(p + n, pad, pad);
    *out = p;
    *outlen = n + pad;
    return 0;
}

long wa_msg_unpad(const uint8_t *in, size_t n)
{
    if (n == 0)
        return -1;
    uint8_t pad = in[n - 1];
    if (pad == 0 || pad > n)
        return -1;
    for (size_t i = n - pad; i < n; i++)
        if (in[i] != pad)
            return -1;
    return (long)(n - pad);
}

/* ---- Signal ---- */

void wa_msg_address_name(const char *user, const char *server, char *out, size_t cap)
{
    if (server && strcmp(server, "lid") == 0)
        snprintf(out, cap, "%s_1", user);
    else
        snprintf(out, cap, "%s", user);
}

static int pub_key(signal_context *g, const uint8_t k[32], ec_public_key **out)
{
    uint8_t p[33];
    p[0] = 5;
    memcpy(p + 1, k, 32);
    return curve_decode_point(out, p, 33, g);
}

int wa_msg_session_from_bundle(signal_protocol_store_context *sc, signal_context *g, const char *name,
                               int32_t device, const struct wa_bundle *b)
{
    ec_public_key *ik = NULL, *spk = NULL, *pk = NULL;
    session_pre_key_bundle *bundle = NULL;
    session_builder *builder = NULL;
    signal_protocol_address addr = {name, strlen(name), device};
    int r = pub_key(g, b->identity, &ik);
    if (r == 0)
        r = pub_key(g, b->spk, &spk);
    if (r == 0 && b->has_prekey)
        r = pub_key(g, b->prekey, &pk);
    if (r == 0)
        r = session_pre_key_bundle_create(&bundle, b->registration_id, device,
                                          b->has_prekey ? b->prekey_id : 0, pk, b->spk_id, spk, b->spk_sig,
                                          64, ik);
    if (r == 0)
        r = session_builder_create(&builder, sc, &addr, g);
    if (r == 0)
        r = session_builder_process_pre_key_bundle(builder, bundle);
    session_builder_free(builder);
    SIGNAL_UNREF(bundle);
    SIGNAL_UNREF(ik);
    SIGNAL_UNREF(spk);
    SIGNAL_UNREF(pk);
    return r;
}

int wa_msg_encrypt(signal_protocol_store_context *sc, signal_context *g, const char *name, int32_t device,
                   const uint8_t *plain, size_t n, int *type, uint8_t **out, size_t *outlen)
{
    signal_protocol_address addr = {name, strlen(name), device};
    session_cipher *cipher = NULL;
    ciphertext_message *msg = NULL;
    int r = session_cipher_create(&cipher, sc, &addr, g);
    if (r == 0)
        r = session_cipher_encrypt(cipher, plain, n, &msg);
    if (r == 0) {
        signal_buffer *s = ciphertext_message_get_serialized(msg);
        *type = ciphertext_message_get_type(msg) == CIPHERTEXT_PREKEY_TYPE ? WA_ENC_PKMSG : WA_ENC_MSG;
        size_t len = signal_buffer_len(s);
        *out = malloc(len ? len : 1);
        if (!*out)
            r = SG_ERR_NOMEM;
        else {
            memcpy(*out, signal_buffer_data(s), len);
            *outlen = len;
        }
    }
    SIGNAL_UNREF(msg);
    session_cipher_free(cipher);
    return r;
}

int wa_msg_decrypt(signal_protocol_store_context *sc, signal_context *g, const char *name, int32_t device,
                   int type, const uint8_t *ct, size_t n, uint8_t **out, size_t *outlen)
{
    signal_protocol_address addr = {name, strlen(name), device};
    session_cipher *cipher = NULL;
    signal_buffer *plain = NULL;
    int r = session_cipher_create(&cipher, sc, &addr, g);
    if (r == 0 && type == WA_ENC_PKMSG) {
        pre_key_signal_message *m = NULL;
        r = pre_key_signal_message_deserialize(&m, ct, n, g);
        if (r == 0)
            r = session_cipher_decrypt_pre_key_signal_message(cipher, m, NULL, &plain);
        SIGNAL_UNREF(m);
    } else if (r == 0) {
        signal_message *m = NULL;
        r = signal_message_deserialize(&m, ct, n, g);
        if (r == 0)
            r = session_cipher_decrypt_signal_message(cipher, m, NULL, &plain);
        SIGNAL_UNREF(m);
    }
    if (r == 0) {
        size_t len = signal_buffer_len(plain);
        *out = malloc(len ? len : 1);
        if (!*out)
            r = SG_ERR_NOMEM;
        else {
            memcpy(*out, signal_buffer_data(plain), len);
            *outlen = len;
        }
    }
    if (plain)
        signal_buffer_bzero_free(plain);
    session_cipher_free(cipher);
    return r;
}

/* ---- content ---- */

static char *sdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Field names of Message for what we store as unsupported. */
static const struct {
    uint32_t num;
    const char *name;
} msg_fields[] = {
    {3, "imageMessage"},
    {4, "contactMessage"},
    {5, "locationMessage"},
    {7, "documentMessage"},
    {8, "audioMessage"},
    {9, "videoMessage"},
    {10, "call"},
    {13, "contactsArrayMessage"},
    {18, "liveLocationMessage"},
    {26, "stickerMessage"},
    {28, "templateMessage"},
    {37, "listMessage"},
    {42, "buttonsMessage"},
    {49, "pollCreationMessage"},
    {50, "pollUpdateMessage"},
    {53, "ephemeralMessage"},
    {55, "viewOnceMessage"},
    {60, "pollCreationMessageV2"},
};

static int fill(const Wapi__E2e__Message *m, struct wa_msg_content *out, int depth)
{
    if (m->devicesentmessage && m->devicesentmessage->message && depth == 0) {
        out->dsm_dest = sdup(m->devicesentmessage->destinationjid);
        return fill(m->devicesentmessage->message, out, depth + 1);
    }
    if (m->conversation) {
        out->kind = WA_MSG_TEXT;
        out->subtype = sdup("conversation");
        out->text = sdup(m->conversation);
        return 0;
    }
    if (m->extendedtextmessage) {
        out->kind = WA_MSG_TEXT;
        out->subtype = sdup("extendedTextMessage");
        out->text = sdup(m->extendedtextmessage->text ? m->extendedtextmessage->text : "");
        if (m->extendedtextmessage->contextinfo && m->extendedtextmessage->contextinfo->stanzaid)
            out->reply_to = sdup(m->extendedtextmessage->contextinfo->stanzaid);
        return 0;
    }
    if (m->reactionmessage) {
        out->kind = WA_MSG_REACTION;
        out->subtype = sdup("reactionMessage");
        out->text = sdup(m->reactionmessage->text ? m->reactionmessage->text : "");
        out->target = sdup(m->reactionmessage->key ? m->reactionmessage->key->id : NULL);
        return 0;
    }
    if (m->protocolmessage) {
        const Wapi__E2e__ProtocolMessage *p = m->protocolmessage;
        out->subtype = sdup("protocolMessage");
        out->target = sdup(p->key ? p->key->id : NULL);
        if (p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__REVOKE && out->target) {
            out->kind = WA_MSG_REVOKE;
            return 0;
        }
        if (p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__MESSAGE_EDIT && out->target &&
            p->editedmessage && depth < 2) {
            struct wa_msg_content inner = {0};
            fill(p->editedmessage, &inner, depth + 1);
            out->kind = WA_MSG_EDIT;
            out->text = inner.text;
            inner.text = NULL;
            wa_msg_content_free(&inner);
            if (!out->text)
                out->text = sdup("");
            return 0;
        }
        out->kind = WA_MSG_NONE; /* history sync, app state keys, ...: not a chat message */
        return 0;
    }
    for (size_t i = 0; i < m->base.n_unknown_fields; i++) {
        uint32_t tag = m->base.unknown_fields[i].tag;
        if (tag == 35) /* messageContextInfo rides along with real content */
            continue;
        char buf[32];
        const char *name = NULL;
        for (size_t j = 0; j < sizeof msg_fields / sizeof msg_fields[0]; j++)
            if (msg_fields[j].num == tag)
                name = msg_fields[j].name;
        if (!name) {
            snprintf(buf, sizeof buf, "field%u", tag);
            name = buf;
        }
        out->kind = WA_MSG_UNSUPPORTED;
        out->subtype = sdup(name);
        return 0;
    }
    out->kind = WA_MSG_NONE; /* e.g. only a sender key distribution */
    return 0;
}

int wa_msg_parse(const uint8_t *p, size_t n, struct wa_msg_content *out)
{
    memset(out, 0, sizeof *out);
    Wapi__E2e__Message *m = wapi__e2e__message__unpack(NULL, n, p);
    if (!m)
        return -1;
    int r = fill(m, out, 0);
    wapi__e2e__message__free_unpacked(m, NULL);
    return r;
}

void wa_msg_content_free(struct wa_msg_content *c)
{
    free(c->text);
    free(c->reply_to);
    free(c->target);
    free(c->subtype);
    free(c->dsm_dest);
    memset(c, 0, sizeof *c);
}

int wa_msg_build_text(const char *text, const char *reply_to, const char *reply_participant,
                      const char *dsm_dest, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message inner = WAPI__E2E__MESSAGE__INIT, outer = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ExtendedTextMessage ext = WAPI__E2E__EXTENDED_TEXT_MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    Wapi__E2e__DeviceSentMessage dsm = WAPI__E2E__DEVICE_SENT_MESSAGE__INIT;
    if (reply_to && *reply_to) {
        ci.stanzaid = (char *)reply_to;
        ci.participant = (char *)reply_participant;
        ext.text = (char *)text;
        ext.contextinfo = &ci;
        inner.extendedtextmessage = &ext;
    } else {
        inner.conversation = (char *)text;
    }
    const Wapi__E2e__Message *m = &inner;
    if (dsm_dest) {
        dsm.destinationjid = (char *)dsm_dest;
        dsm.message = &inner;
        outer.devicesentmessage = &dsm;
        m = &outer;
    }
    size_t len = wapi__e2e__message__get_packed_size(m);
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return -1;
    wapi__e2e__message__pack(m, b);
    *out = b;
    *outlen = len;
    return 0;
}
