/* Sender keys over libsignal-protocol-c's group cipher and group session
 * builder; the store callbacks are wa_signal_store.c's. */
#include "wa_group_cipher.h"

#include <signal/group_cipher.h>
#include <signal/group_session_builder.h>
#include <signal/protocol.h>
#include <signal/sender_key_record.h>
#include <signal/sender_key_state.h>
#include <stdlib.h>
#include <string.h>

static signal_protocol_sender_key_name key_name(const char *group, const char *name, int32_t device)
{
    return (signal_protocol_sender_key_name){group, strlen(group), {name, strlen(name), device}};
}

/* *out = a malloc'd copy of b (NULL b: SG_ERR_NOMEM). */
static int take(const signal_buffer *b, uint8_t **out, size_t *outlen)
{
    if (!b)
        return SG_ERR_NOMEM;
    size_t len = signal_buffer_len((signal_buffer *)b);
    *out = malloc(len ? len : 1);
    if (!*out)
        return SG_ERR_NOMEM;
    memcpy(*out, signal_buffer_const_data(b), len);
    *outlen = len;
    return 0;
}

/* Whether the sender's record already holds the chain m hands over (same
 * chain id, same signing key). Then the SKDM changes nothing: a sender
 * repeats it (with a retry's resend, say) at its chain's current
 * iteration, and taking it would put a state in front that starts there,
 * so the messages sent before it, still on their way, would all look
 * decrypted before. The state we hold derives every later key as well. */
static int holds_chain(signal_protocol_store_context *sc, const signal_protocol_sender_key_name *kn,
                       sender_key_distribution_message *m)
{
    sender_key_record *rec = NULL;
    sender_key_state *st = NULL;
    int held = 0;
    if (signal_protocol_sender_key_load_key(sc, &rec, kn) == 0 && rec && !sender_key_record_is_empty(rec) &&
        sender_key_record_get_sender_key_state_by_id(rec, &st, sender_key_distribution_message_get_id(m)) ==
            0 &&
        st)
        held = ec_public_key_compare(sender_key_state_get_signing_key_public(st),
                                     sender_key_distribution_message_get_signature_key(m)) == 0;
    SIGNAL_UNREF(rec);
    return held;
}

int wa_gc_process_skdm(signal_protocol_store_context *sc, signal_context *g, const char *group,
                       const char *name, int32_t device, const uint8_t *skdm, size_t n)
{
    signal_protocol_sender_key_name kn = key_name(group, name, device);
    sender_key_distribution_message *m = NULL;
    group_session_builder *b = NULL;
    int r = sender_key_distribution_message_deserialize(&m, skdm, n, g);
    if (r == 0 && holds_chain(sc, &kn, m)) {
        SIGNAL_UNREF(m);
        return 0;
    }
    if (r == 0)
        r = group_session_builder_create(&b, sc, g);
    if (r == 0)
        r = group_session_builder_process_session(b, &kn, m);
    group_session_builder_free(b);
    SIGNAL_UNREF(m);
    return r;
}

int wa_gc_decrypt(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                  int32_t device, const uint8_t *ct, size_t n, uint8_t **out, size_t *outlen)
{
    signal_protocol_sender_key_name kn = key_name(group, name, device);
    sender_key_message *m = NULL;
    group_cipher *c = NULL;
    signal_buffer *plain = NULL;
    int r = sender_key_message_deserialize(&m, ct, n, g);
    if (r == 0)
        r = group_cipher_create(&c, sc, &kn, g);
    if (r == 0)
        r = group_cipher_decrypt(c, m, NULL, &plain);
    if (r == 0)
        r = take(plain, out, outlen);
    if (plain)
        signal_buffer_bzero_free(plain);
    group_cipher_free(c);
    SIGNAL_UNREF(m);
    return r;
}

int wa_gc_own_skdm(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                   int32_t device, uint8_t **skdm, size_t *n)
{
    signal_protocol_sender_key_name kn = key_name(group, name, device);
    group_session_builder *b = NULL;
    sender_key_distribution_message *m = NULL;
    int r = group_session_builder_create(&b, sc, g);
    if (r == 0)
        r = group_session_builder_create_session(b, &m, &kn);
    if (r == 0)
        r = take(ciphertext_message_get_serialized((ciphertext_message *)m), skdm, n);
    SIGNAL_UNREF(m);
    group_session_builder_free(b);
    return r;
}

int wa_gc_encrypt(signal_protocol_store_context *sc, signal_context *g, const char *group, const char *name,
                  int32_t device, const uint8_t *plain, size_t n, uint8_t **out, size_t *outlen)
{
    signal_protocol_sender_key_name kn = key_name(group, name, device);
    group_cipher *c = NULL;
    ciphertext_message *m = NULL;
    int r = group_cipher_create(&c, sc, &kn, g);
    if (r == 0)
        r = group_cipher_encrypt(c, plain, n, &m);
    if (r == 0)
        r = take(ciphertext_message_get_serialized(m), out, outlen);
    SIGNAL_UNREF(m);
    group_cipher_free(c);
    return r;
}
