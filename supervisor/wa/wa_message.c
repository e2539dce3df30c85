#include "wa_message.h"

#include <signal/curve.h>
#include <signal/protocol.h>
#include <signal/session_builder.h>
#include <signal/session_cipher.h>
#include <signal/session_pre_key.h>
#include <math.h>
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

/* Field names of Message for what we store as unsupported (those our
 * e2e.proto names are parsed, never unknown). */
static const struct {
    uint32_t num;
    const char *name;
} msg_fields[] = {
    {10, "call"},
    {25, "templateMessage"},
    {28, "groupInviteMessage"},
    {36, "listMessage"},
    {42, "buttonsMessage"},
    {66, "ptvMessage"},
    {93, "pollCreationMessageV4"},
    {111, "pollCreationMessageV5"},
};

static const char *const MEDIA_TYPE_NAMES[WA_MT_COUNT] = {
    [WA_MT_IMAGE] = "image", [WA_MT_VIDEO] = "video",       [WA_MT_AUDIO] = "audio",
    [WA_MT_VOICE] = "voice", [WA_MT_DOCUMENT] = "document", [WA_MT_STICKER] = "sticker",
};

const char *wa_media_type_name(int type)
{
    return type >= 0 && type < WA_MT_COUNT ? MEDIA_TYPE_NAMES[type] : NULL;
}

int wa_media_type_parse(const char *name)
{
    for (int t = 0; t < WA_MT_COUNT; t++)
        if (name && !strcmp(MEDIA_TYPE_NAMES[t], name))
            return t;
    return -1;
}

enum wa_media_kind wa_media_type_keys(int type)
{
    switch (type) {
    case WA_MT_IMAGE:
    case WA_MT_STICKER:
        return WA_MEDIA_IMAGE;
    case WA_MT_VIDEO:
        return WA_MEDIA_VIDEO;
    case WA_MT_AUDIO:
    case WA_MT_VOICE:
        return WA_MEDIA_AUDIO;
    default:
        return WA_MEDIA_DOCUMENT;
    }
}

/* The fields the media messages share, whatever their numbers. */
struct mview {
    const char *url, *direct_path, *mimetype, *caption, *file_name;
    const ProtobufCBinaryData *key, *sha, *enc, *thumb, *wave; /* NULL when absent */
    uint64_t length;
    uint32_t width, height, seconds, pages;
    int64_t ts;
    int animated, gif;
    const Wapi__E2e__ContextInfo *ci;
};

#define OPT(has, v) ((has) ? (v) : 0)
#define OPTB(has, v) ((has) ? &(v) : NULL)

static int copy32(uint8_t out[32], const ProtobufCBinaryData *b)
{
    if (!b || b->len != 32)
        return 0;
    memcpy(out, b->data, 32);
    return 1;
}

#define MAX_MENTIONS 1024 /* a group's size */

/* Reply and mentions from a contextInfo (NULL: none). -1 when out of memory. */
static int context_fill(const Wapi__E2e__ContextInfo *ci, struct wa_msg_content *out)
{
    if (!ci)
        return 0;
    out->forwarded = ci->has_isforwarded && ci->isforwarded;
    if (ci->has_expiration && ci->expiration <= WA_MSG_EXPIRATION_MAX) {
        out->has_expiration = 1;
        out->expiration = ci->expiration;
    }
    if (ci->stanzaid && !(out->reply_to = sdup(ci->stanzaid)))
        return -1;
    size_t n = ci->n_mentionedjid < MAX_MENTIONS ? ci->n_mentionedjid : MAX_MENTIONS;
    if (n == 0)
        return 0;
    out->mentions = calloc(n, sizeof *out->mentions);
    if (!out->mentions)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!ci->mentionedjid[i] || !*ci->mentionedjid[i] || strlen(ci->mentionedjid[i]) > 128)
            continue; /* not a JID: left out */
        if (!(out->mentions[out->nmentions] = sdup(ci->mentionedjid[i])))
            return -1;
        out->nmentions++;
    }
    return 0;
}

/* Fills out as a WA_MSG_MEDIA of type from v; -1 on OOM. */
static int media_from_view(const struct mview *v, int type, const char *field, struct wa_msg_content *out)
{
    struct wa_msg_media *md = calloc(1, sizeof *md);
    if (!md)
        return -1;
    md->type = type;
    md->url = sdup(v->url);
    md->direct_path = sdup(v->direct_path);
    md->mimetype = sdup(v->mimetype);
    md->caption = sdup(v->caption);
    md->file_name = sdup(v->file_name);
    md->has_media_key = copy32(md->media_key, v->key);
    md->has_file_sha256 = copy32(md->file_sha256, v->sha);
    md->has_file_enc_sha256 = copy32(md->file_enc_sha256, v->enc);
    md->file_length = v->length;
    md->width = v->width;
    md->height = v->height;
    md->seconds = v->seconds;
    md->page_count = v->pages;
    md->media_key_ts = v->ts;
    md->animated = v->animated;
    md->gif = v->gif;
    if (v->thumb && v->thumb->len && (md->thumbnail = malloc(v->thumb->len))) {
        memcpy(md->thumbnail, v->thumb->data, v->thumb->len);
        md->thumbnail_len = v->thumb->len;
    }
    if (v->wave && v->wave->len > 0 &&
        v->wave->len <= WA_MSG_WAVEFORM_MAX) { /* an empty field may have no data */
        memcpy(md->waveform, v->wave->data, v->wave->len);
        md->waveform_len = v->wave->len;
    }
    out->kind = WA_MSG_MEDIA;
    out->media = md;
    out->subtype = sdup(field);
    if (context_fill(v->ci, out) < 0)
        return -1;
    return 0;
}

/* 1 when m holds one of the media messages (out filled), 0 when not, -1 on OOM. */
static int fill_media(const Wapi__E2e__Message *m, struct wa_msg_content *out)
{
    struct mview v = {0};
    /* A view-once medium may come marked without a wrapper. */
    out->view_once |= (m->imagemessage && m->imagemessage->has_viewonce && m->imagemessage->viewonce) ||
                      (m->videomessage && m->videomessage->has_viewonce && m->videomessage->viewonce) ||
                      (m->audiomessage && m->audiomessage->has_viewonce && m->audiomessage->viewonce);
    if (m->imagemessage) {
        const Wapi__E2e__ImageMessage *x = m->imagemessage;
        v = (struct mview){x->url,
                           x->directpath,
                           x->mimetype,
                           x->caption,
                           NULL,
                           OPTB(x->has_mediakey, x->mediakey),
                           OPTB(x->has_filesha256, x->filesha256),
                           OPTB(x->has_fileencsha256, x->fileencsha256),
                           OPTB(x->has_jpegthumbnail, x->jpegthumbnail),
                           NULL,
                           OPT(x->has_filelength, x->filelength),
                           OPT(x->has_width, x->width),
                           OPT(x->has_height, x->height),
                           0,
                           0,
                           OPT(x->has_mediakeytimestamp, x->mediakeytimestamp),
                           0,
                           0,
                           x->contextinfo};
        return media_from_view(&v, WA_MT_IMAGE, "imageMessage", out) < 0 ? -1 : 1;
    }
    if (m->videomessage) {
        const Wapi__E2e__VideoMessage *x = m->videomessage;
        v = (struct mview){x->url,
                           x->directpath,
                           x->mimetype,
                           x->caption,
                           NULL,
                           OPTB(x->has_mediakey, x->mediakey),
                           OPTB(x->has_filesha256, x->filesha256),
                           OPTB(x->has_fileencsha256, x->fileencsha256),
                           OPTB(x->has_jpegthumbnail, x->jpegthumbnail),
                           NULL,
                           OPT(x->has_filelength, x->filelength),
                           OPT(x->has_width, x->width),
                           OPT(x->has_height, x->height),
                           OPT(x->has_seconds, x->seconds),
                           0,
                           OPT(x->has_mediakeytimestamp, x->mediakeytimestamp),
                           0,
                           OPT(x->has_gifplayback, x->gifplayback),
                           x->contextinfo};
        return media_from_view(&v, WA_MT_VIDEO, "videoMessage", out) < 0 ? -1 : 1;
    }
    if (m->audiomessage) {
        const Wapi__E2e__AudioMessage *x = m->audiomessage;
        v = (struct mview){x->url,
                           x->directpath,
                           x->mimetype,
                           NULL,
                           NULL,
                           OPTB(x->has_mediakey, x->mediakey),
                           OPTB(x->has_filesha256, x->filesha256),
                           OPTB(x->has_fileencsha256, x->fileencsha256),
                           NULL,
                           OPTB(x->has_waveform, x->waveform),
                           OPT(x->has_filelength, x->filelength),
                           0,
                           0,
                           OPT(x->has_seconds, x->seconds),
                           0,
                           OPT(x->has_mediakeytimestamp, x->mediakeytimestamp),
                           0,
                           0,
                           x->contextinfo};
        return media_from_view(&v, x->has_ptt && x->ptt ? WA_MT_VOICE : WA_MT_AUDIO, "audioMessage", out) < 0
                   ? -1
                   : 1;
    }
    if (m->documentmessage) {
        const Wapi__E2e__DocumentMessage *x = m->documentmessage;
        v = (struct mview){x->url,
                           x->directpath,
                           x->mimetype,
                           x->caption,
                           x->filename ? x->filename : x->title,
                           OPTB(x->has_mediakey, x->mediakey),
                           OPTB(x->has_filesha256, x->filesha256),
                           OPTB(x->has_fileencsha256, x->fileencsha256),
                           OPTB(x->has_jpegthumbnail, x->jpegthumbnail),
                           NULL,
                           OPT(x->has_filelength, x->filelength),
                           0,
                           0,
                           0,
                           OPT(x->has_pagecount, x->pagecount),
                           OPT(x->has_mediakeytimestamp, x->mediakeytimestamp),
                           0,
                           0,
                           x->contextinfo};
        return media_from_view(&v, WA_MT_DOCUMENT, "documentMessage", out) < 0 ? -1 : 1;
    }
    if (m->stickermessage) {
        const Wapi__E2e__StickerMessage *x = m->stickermessage;
        v = (struct mview){x->url,
                           x->directpath,
                           x->mimetype,
                           NULL,
                           NULL,
                           OPTB(x->has_mediakey, x->mediakey),
                           OPTB(x->has_filesha256, x->filesha256),
                           OPTB(x->has_fileencsha256, x->fileencsha256),
                           OPTB(x->has_pngthumbnail, x->pngthumbnail),
                           NULL,
                           OPT(x->has_filelength, x->filelength),
                           OPT(x->has_width, x->width),
                           OPT(x->has_height, x->height),
                           0,
                           0,
                           OPT(x->has_mediakeytimestamp, x->mediakeytimestamp),
                           OPT(x->has_isanimated, x->isanimated),
                           0,
                           x->contextinfo};
        return media_from_view(&v, WA_MT_STICKER, "stickerMessage", out) < 0 ? -1 : 1;
    }
    return 0;
}

/* A place from either message; its strings copied. Coordinates out of
 * range (or not numbers) make it no location: -2. */
static int location_fill(struct wa_msg_content *out, double lat, double lon, const char *name,
                         const char *address, const char *url, const char *comment, int live, uint32_t acc,
                         int64_t seq, const char *field)
{
    if (!isfinite(lat) || !isfinite(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180)
        return -2;
    struct wa_msg_location *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    out->location = l;
    out->kind = WA_MSG_LOCATION;
    l->latitude = lat, l->longitude = lon, l->live = live, l->accuracy_m = acc, l->sequence = seq;
    if ((name && !(l->name = sdup(name))) || (address && !(l->address = sdup(address))) ||
        (url && !(l->url = sdup(url))) || (comment && !(l->comment = sdup(comment))) ||
        !(out->subtype = sdup(field)))
        return -1;
    return 0;
}

static int contacts_fill(struct wa_msg_content *out, Wapi__E2e__ContactMessage *const *c, size_t n,
                         const char *field)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < WA_MSG_MAX_CONTACTS; i++)
        k += c[i] && c[i]->vcard && *c[i]->vcard;
    if (!k)
        return -2; /* no card in it */
    if (!(out->contacts = calloc(k, sizeof *out->contacts)) || !(out->subtype = sdup(field)))
        return -1;
    out->kind = WA_MSG_CONTACTS;
    for (size_t i = 0; i < n && out->ncontacts < k; i++) {
        if (!c[i] || !c[i]->vcard || !*c[i]->vcard)
            continue;
        struct wa_msg_contact *x = &out->contacts[out->ncontacts++];
        if (!(x->vcard = sdup(c[i]->vcard)) ||
            (c[i]->displayname && !(x->display_name = sdup(c[i]->displayname))))
            return -1;
    }
    return 0;
}

#define POLL_OPTIONS_READ 32     /* a received poll's options kept at most */
#define POLL_VOTE_MAX (4u << 10) /* a vote names at most a few dozen sums */

/* A poll from any of its versions: question, the options with a name
 * (duplicates once), the secret when it is 32 bytes. No option: -2. */
static int poll_fill(struct wa_msg_content *out, const Wapi__E2e__PollCreationMessage *pc,
                     const Wapi__E2e__MessageContextInfo *mci, const char *field)
{
    struct wa_msg_poll *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    out->poll = p;
    size_t n = pc->n_options < POLL_OPTIONS_READ ? pc->n_options : POLL_OPTIONS_READ;
    if (!(p->options = calloc(n ? n : 1, sizeof *p->options)) ||
        !(p->question = sdup(pc->name ? pc->name : "")) || !(out->subtype = sdup(field)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *o = pc->options[i] ? pc->options[i]->optionname : NULL;
        int dup = !o || !*o;
        for (size_t j = 0; !dup && j < p->noptions; j++)
            dup = !strcmp(p->options[j], o);
        if (dup)
            continue;
        if (!(p->options[p->noptions] = sdup(o)))
            return -1;
        p->noptions++;
    }
    if (!p->noptions)
        return -2;
    p->multiple = !pc->has_selectableoptionscount || pc->selectableoptionscount != 1;
    if (mci && mci->has_messagesecret && mci->messagesecret.len == WA_MSG_POLL_SECRET_LEN) {
        memcpy(p->secret, mci->messagesecret.data, WA_MSG_POLL_SECRET_LEN);
        p->has_secret = 1;
    }
    out->kind = WA_MSG_POLL;
    return context_fill(pc->contextinfo, out);
}

/* A vote: the poll's key and the sealed PollVoteMessage (a 12-byte IV, a
 * tag at least). Anything else: -2. */
static int vote_fill(struct wa_msg_content *out, const Wapi__E2e__PollUpdateMessage *pu)
{
    const Wapi__E2e__MessageKey *k = pu->pollcreationmessagekey;
    const Wapi__E2e__PollEncValue *e = pu->vote;
    if (!k || !k->id || !*k->id || strlen(k->id) > 128 || !e || !e->has_encpayload || !e->has_enciv ||
        e->enciv.len != 12 || e->encpayload.len < 16 || e->encpayload.len > POLL_VOTE_MAX)
        return -2;
    struct wa_msg_poll_vote *v = calloc(1, sizeof *v);
    if (!v)
        return -1;
    out->vote = v;
    if (!(v->poll_id = sdup(k->id)) || (k->remotejid && !(v->poll_chat = sdup(k->remotejid))) ||
        (k->participant && !(v->poll_participant = sdup(k->participant))) ||
        !(v->payload = malloc(e->encpayload.len)) || !(out->subtype = sdup("pollUpdateMessage")))
        return -1;
    memcpy(v->payload, e->encpayload.data, e->encpayload.len);
    v->payload_len = e->encpayload.len;
    memcpy(v->iv, e->enciv.data, 12);
    v->poll_from_me = k->has_fromme && k->fromme;
    v->ts_ms = pu->has_sendertimestampms ? pu->sendertimestampms : 0;
    out->kind = WA_MSG_POLL_VOTE;
    return 0;
}

/* The message inside a wrapper (disappearing, view once, a newer client's
 * edit), or NULL; *view_once set for the view-once ones. */
static const Wapi__E2e__Message *unwrap(const Wapi__E2e__Message *m, int *view_once)
{
    const Wapi__E2e__FutureProofMessage *w = m->ephemeralmessage ? m->ephemeralmessage
                                             : m->editedmessage  ? m->editedmessage
                                                                 : NULL;
    if (!w) {
        w = m->viewoncemessage     ? m->viewoncemessage
            : m->viewoncemessagev2 ? m->viewoncemessagev2
                                   : m->viewoncemessagev2extension;
        *view_once = w != NULL;
    }
    return w ? w->message : NULL;
}

static int fill(const Wapi__E2e__Message *m, struct wa_msg_content *out, int depth);

/* mci: the messageContextInfo of the message wrapping m (a poll's secret
 * may sit beside the wrapper rather than inside), or NULL. */
static int fill_in(const Wapi__E2e__Message *m, struct wa_msg_content *out, int depth,
                   const Wapi__E2e__MessageContextInfo *mci)
{
    if (m->messagecontextinfo)
        mci = m->messagecontextinfo;
    if (m->devicesentmessage && m->devicesentmessage->message && depth == 0) {
        out->dsm_dest = sdup(m->devicesentmessage->destinationjid);
        return fill_in(m->devicesentmessage->message, out, depth + 1, mci);
    }
    int vo = 0;
    const Wapi__E2e__Message *wrapped = unwrap(m, &vo);
    if (wrapped && depth < 4) {
        out->view_once |= vo;
        return fill_in(wrapped, out, depth + 1, mci);
    }
    if (m->locationmessage || m->livelocationmessage) {
        const Wapi__E2e__LocationMessage *l = m->locationmessage;
        const Wapi__E2e__LiveLocationMessage *v = m->livelocationmessage;
        int r =
            /* neither coordinate: no place (one alone may be a zero left out) */
            (l && !l->has_degreeslatitude && !l->has_degreeslongitude) ||
                    (v && !v->has_degreeslatitude && !v->has_degreeslongitude)
                ? -2
            : l ? location_fill(out, l->degreeslatitude, l->degreeslongitude, l->name, l->address, l->url,
                                l->comment, l->has_islive && l->islive, l->accuracyinmeters, 0,
                                "locationMessage")
                : location_fill(out, v->degreeslatitude, v->degreeslongitude, NULL, NULL, NULL, v->caption, 1,
                                v->accuracyinmeters, v->sequencenumber, "liveLocationMessage");
        if (r == -2) {
            out->kind = WA_MSG_UNSUPPORTED; /* kept, never dropped, but no place to show */
            out->subtype = sdup(l ? "locationMessage" : "liveLocationMessage");
            return out->subtype ? 0 : -1;
        }
        return r < 0 ? -1 : context_fill(l ? l->contextinfo : v->contextinfo, out);
    }
    if (m->contactmessage || m->contactsarraymessage) {
        const Wapi__E2e__ContactsArrayMessage *a = m->contactsarraymessage;
        Wapi__E2e__ContactMessage *one[1] = {m->contactmessage};
        int r = m->contactmessage ? contacts_fill(out, one, 1, "contactMessage")
                                  : contacts_fill(out, a->contacts, a->n_contacts, "contactsArrayMessage");
        if (r == -2) {
            out->kind = WA_MSG_UNSUPPORTED;
            out->subtype = sdup(m->contactmessage ? "contactMessage" : "contactsArrayMessage");
            return out->subtype ? 0 : -1;
        }
        return r < 0 ? -1
                     : context_fill(m->contactmessage ? m->contactmessage->contextinfo : a->contextinfo, out);
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
        return context_fill(m->extendedtextmessage->contextinfo, out);
    }
    if (m->reactionmessage) {
        out->kind = WA_MSG_REACTION;
        out->subtype = sdup("reactionMessage");
        out->text = sdup(m->reactionmessage->text ? m->reactionmessage->text : "");
        out->target = sdup(m->reactionmessage->key ? m->reactionmessage->key->id : NULL);
        return 0;
    }
    if (m->pininchatmessage || m->keepinchatmessage) {
        /* On a message: the target's key; type 1 pins (keeps), 2 undoes. */
        const Wapi__E2e__MessageKey *k =
            m->pininchatmessage ? m->pininchatmessage->key : m->keepinchatmessage->key;
        int32_t t = m->pininchatmessage
                        ? (m->pininchatmessage->has_type ? m->pininchatmessage->type : 0)
                        : (m->keepinchatmessage->has_keeptype ? m->keepinchatmessage->keeptype : 0);
        out->subtype = sdup(m->pininchatmessage ? "pinInChatMessage" : "keepInChatMessage");
        if (!k || !k->id || !*k->id || (t != 1 && t != 2)) {
            out->kind = WA_MSG_UNSUPPORTED; /* kept, never dropped */
            return out->subtype ? 0 : -1;
        }
        out->kind = m->pininchatmessage ? WA_MSG_PIN : WA_MSG_KEEP;
        out->target = sdup(k->id);
        out->on = t == 1;
        if (m->pininchatmessage && mci && mci->has_messageaddondurationinsecs &&
            mci->messageaddondurationinsecs <= 366u * 86400)
            out->on_seconds = mci->messageaddondurationinsecs;
        return out->subtype && out->target ? 0 : -1;
    }
    const Wapi__E2e__PollCreationMessage *pc = m->pollcreationmessage     ? m->pollcreationmessage
                                               : m->pollcreationmessagev3 ? m->pollcreationmessagev3
                                                                          : m->pollcreationmessagev2;
    if (pc || m->pollupdatemessage) {
        const char *field = !pc                        ? "pollUpdateMessage"
                            : m->pollcreationmessage   ? "pollCreationMessage"
                            : m->pollcreationmessagev3 ? "pollCreationMessageV3"
                                                       : "pollCreationMessageV2";
        int r = pc ? poll_fill(out, pc, mci, field) : vote_fill(out, m->pollupdatemessage);
        if (r == -2) { /* kept, never dropped, but nothing to count on */
            wa_msg_poll_free(out->poll);
            wa_msg_poll_vote_free(out->vote);
            out->poll = NULL, out->vote = NULL;
            free(out->subtype);
            out->kind = WA_MSG_UNSUPPORTED;
            out->subtype = sdup(field);
            return out->subtype ? 0 : -1;
        }
        return r;
    }
    int media = fill_media(m, out);
    if (media)
        return media < 0 ? -1 : 0;
    if (m->documentwithcaptionmessage && m->documentwithcaptionmessage->message && depth < 2) {
        int r = fill(m->documentwithcaptionmessage->message, out, depth + 1);
        if (r == 0 && out->kind == WA_MSG_MEDIA) {
            free(out->subtype);
            out->subtype = sdup("documentWithCaptionMessage");
        }
        return r;
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
        if (p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__EPHEMERAL_SETTING) {
            uint32_t e = p->has_ephemeralexpiration ? p->ephemeralexpiration : 0;
            out->kind = WA_MSG_DISAPPEARING;
            out->has_expiration = 1;
            out->expiration = e <= WA_MSG_EXPIRATION_MAX ? e : 0;
            return 0;
        }
        if (p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__APP_STATE_SYNC_KEY_SHARE &&
            p->has_appstatesynckeyshare && p->appstatesynckeyshare.len > 0 &&
            p->appstatesynckeyshare.len <= WA_MSG_APPSTATE_SHARE_MAX) {
            out->kind = WA_MSG_APPSTATE_KEYS;
            out->raw = malloc(p->appstatesynckeyshare.len);
            if (!out->raw)
                return -1;
            memcpy(out->raw, p->appstatesynckeyshare.data, p->appstatesynckeyshare.len);
            out->raw_len = p->appstatesynckeyshare.len;
            return 0;
        }
        if (p->has_type &&
            p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE &&
            p->has_peerdataoperationrequestresponsemessage && depth == 0) {
            /* Kept as it came: only our own phone's is read (wa_peerdata.h). */
            const ProtobufCBinaryData *b = &p->peerdataoperationrequestresponsemessage;
            out->kind = WA_MSG_PEER_DATA;
            out->peer_data = malloc(b->len ? b->len : 1);
            if (!out->peer_data)
                return -1;
            if (b->len)
                memcpy(out->peer_data, b->data, b->len);
            out->peer_data_len = b->len;
            return 0;
        }
        if (p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__HISTORY_SYNC_NOTIFICATION &&
            p->historysyncnotification && depth == 0) {
            /* Kept as a Message of the notification alone: only our own
             * phone's is read (wa_history.h). */
            Wapi__E2e__Message w = WAPI__E2E__MESSAGE__INIT;
            w.protocolmessage = (Wapi__E2e__ProtocolMessage *)p;
            size_t len = wapi__e2e__message__get_packed_size(&w);
            out->kind = WA_MSG_HISTORY_SYNC;
            if (!(out->raw = malloc(len ? len : 1)))
                return -1;
            out->raw_len = wapi__e2e__message__pack(&w, out->raw);
            return 0;
        }
        out->kind = WA_MSG_NONE; /* ...: not a chat message */
        return 0;
    }
    for (size_t i = 0; i < m->base.n_unknown_fields; i++) {
        uint32_t tag = m->base.unknown_fields[i].tag;
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

static int fill(const Wapi__E2e__Message *m, struct wa_msg_content *out, int depth)
{
    return fill_in(m, out, depth, NULL);
}

int wa_msg_parse(const uint8_t *p, size_t n, struct wa_msg_content *out)
{
    memset(out, 0, sizeof *out);
    Wapi__E2e__Message *m = wapi__e2e__message__unpack(NULL, n, p);
    if (!m)
        return -1;
    int r = fill(m, out, 0);
    const Wapi__E2e__SenderKeyDistributionMessage *k = m->senderkeydistributionmessage;
    if (r == 0 && k && k->groupid && *k->groupid && k->has_axolotlsenderkeydistributionmessage &&
        k->axolotlsenderkeydistributionmessage.len > 0 &&
        k->axolotlsenderkeydistributionmessage.len <= 1024) {
        out->skdm_group = sdup(k->groupid);
        out->skdm = malloc(k->axolotlsenderkeydistributionmessage.len);
        if (!out->skdm_group || !out->skdm)
            r = -1;
        else {
            memcpy(out->skdm, k->axolotlsenderkeydistributionmessage.data,
                   k->axolotlsenderkeydistributionmessage.len);
            out->skdm_len = k->axolotlsenderkeydistributionmessage.len;
        }
    }
    if (r < 0)
        wa_msg_content_free(out);
    wapi__e2e__message__free_unpacked(m, NULL);
    return r;
}

void wa_msg_content_free(struct wa_msg_content *c)
{
    free(c->text);
    free(c->reply_to);
    free(c->target);
    if (c->raw)
        OPENSSL_cleanse(c->raw, c->raw_len);
    free(c->raw);
    free(c->subtype);
    free(c->dsm_dest);
    wa_msg_media_free(c->media);
    for (size_t i = 0; i < c->nmentions; i++)
        free(c->mentions[i]);
    free(c->mentions);
    free(c->skdm_group);
    if (c->skdm)
        OPENSSL_cleanse(c->skdm, c->skdm_len);
    free(c->skdm);
    wa_msg_location_free(c->location);
    wa_msg_poll_free(c->poll);
    wa_msg_poll_vote_free(c->vote);
    for (size_t i = 0; i < c->ncontacts; i++) {
        free(c->contacts[i].display_name);
        free(c->contacts[i].vcard);
    }
    free(c->contacts);
    free(c->peer_data);
    memset(c, 0, sizeof *c);
}

void wa_msg_location_free(struct wa_msg_location *l)
{
    if (!l)
        return;
    free(l->name);
    free(l->address);
    free(l->url);
    free(l->comment);
    free(l);
}

void wa_msg_poll_free(struct wa_msg_poll *p)
{
    if (!p)
        return;
    free(p->question);
    for (size_t i = 0; i < p->noptions; i++)
        free(p->options[i]);
    free(p->options);
    OPENSSL_cleanse(p->secret, sizeof p->secret);
    free(p);
}

void wa_msg_poll_vote_free(struct wa_msg_poll_vote *v)
{
    if (!v)
        return;
    free(v->poll_id);
    free(v->poll_chat);
    free(v->poll_participant);
    free(v->payload);
    free(v);
}

void wa_msg_media_free(struct wa_msg_media *m)
{
    if (!m)
        return;
    free(m->url);
    free(m->direct_path);
    free(m->mimetype);
    free(m->caption);
    free(m->file_name);
    free(m->thumbnail);
    OPENSSL_cleanse(m->media_key, sizeof m->media_key);
    free(m);
}

struct wa_msg_media *wa_msg_media_dup(const struct wa_msg_media *m)
{
    struct wa_msg_media *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    *d = *m;
    d->url = sdup(m->url);
    d->direct_path = sdup(m->direct_path);
    d->mimetype = sdup(m->mimetype);
    d->caption = sdup(m->caption);
    d->file_name = sdup(m->file_name);
    d->thumbnail = m->thumbnail_len ? malloc(m->thumbnail_len) : NULL;
    if (d->thumbnail)
        memcpy(d->thumbnail, m->thumbnail, m->thumbnail_len);
    if ((m->url && !d->url) || (m->direct_path && !d->direct_path) || (m->mimetype && !d->mimetype) ||
        (m->caption && !d->caption) || (m->file_name && !d->file_name) ||
        (m->thumbnail_len && !d->thumbnail)) {
        wa_msg_media_free(d);
        return NULL;
    }
    return d;
}

const char *wa_msg_media_enc_type(const struct wa_msg_media *m)
{
    switch (m->type) {
    case WA_MT_VIDEO:
        return m->gif ? "gif" : "video";
    case WA_MT_VOICE:
        return "ptt";
    default:
        return wa_media_type_name(m->type);
    }
}

/* ci's mentionedJid from a newline-separated list (NULL or "": none): the
 * copy the pointers point into in *buf (free both). -1 when out of memory. */
static int mentions_in(Wapi__E2e__ContextInfo *ci, const char *mentions, char **buf, char ***v)
{
    *buf = NULL, *v = NULL;
    if (!mentions || !*mentions)
        return 0;
    size_t n = 1;
    for (const char *p = mentions; *p; p++)
        n += *p == '\n';
    if (n > MAX_MENTIONS || !(*buf = strdup(mentions)) || !(*v = calloc(n, sizeof **v))) {
        free(*buf);
        *buf = NULL;
        return -1;
    }
    for (char *p = *buf, *nl; p; p = nl) {
        nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        if (*p)
            (*v)[ci->n_mentionedjid++] = p;
    }
    ci->mentionedjid = *v;
    return 0;
}

int wa_msg_build_text(const char *text, const char *reply_to, const char *reply_participant,
                      const char *mentions, const char *dsm_dest, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message inner = WAPI__E2E__MESSAGE__INIT, outer = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ExtendedTextMessage ext = WAPI__E2E__EXTENDED_TEXT_MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    Wapi__E2e__DeviceSentMessage dsm = WAPI__E2E__DEVICE_SENT_MESSAGE__INIT;
    char *mbuf, **mv;
    if (mentions_in(&ci, mentions, &mbuf, &mv) < 0)
        return -1;
    if ((reply_to && *reply_to) || ci.n_mentionedjid) {
        if (reply_to && *reply_to) {
            ci.stanzaid = (char *)reply_to;
            ci.participant = (char *)reply_participant;
        }
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
    if (b)
        wapi__e2e__message__pack(m, b);
    free(mbuf);
    free(mv);
    if (!b)
        return -1;
    *out = b;
    *outlen = len;
    return 0;
}

#define SETB(x, field, has, src, n)                                                                          \
    do {                                                                                                     \
        (x).has = 1;                                                                                         \
        (x).field.data = (uint8_t *)(src);                                                                   \
        (x).field.len = (n);                                                                                 \
    } while (0)

int wa_msg_build_media(const struct wa_msg_media *m, const char *reply_to, const char *reply_participant,
                       const char *mentions, const char *dsm_dest, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message inner = WAPI__E2E__MESSAGE__INIT, outer = WAPI__E2E__MESSAGE__INIT,
                       wrapped = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    Wapi__E2e__DeviceSentMessage dsm = WAPI__E2E__DEVICE_SENT_MESSAGE__INIT;
    Wapi__E2e__FutureProofMessage fp = WAPI__E2E__FUTURE_PROOF_MESSAGE__INIT;
    Wapi__E2e__ImageMessage im = WAPI__E2E__IMAGE_MESSAGE__INIT;
    Wapi__E2e__VideoMessage vm = WAPI__E2E__VIDEO_MESSAGE__INIT;
    Wapi__E2e__AudioMessage am = WAPI__E2E__AUDIO_MESSAGE__INIT;
    Wapi__E2e__DocumentMessage dm = WAPI__E2E__DOCUMENT_MESSAGE__INIT;
    Wapi__E2e__StickerMessage sm = WAPI__E2E__STICKER_MESSAGE__INIT;
    Wapi__E2e__ContextInfo *ctx = NULL;
    if (!m->has_media_key || !m->has_file_sha256 || !m->has_file_enc_sha256 || !m->direct_path ||
        !*m->direct_path)
        return -1;
    char *mbuf = NULL, **mv = NULL;
    if (reply_to && *reply_to) {
        ci.stanzaid = (char *)reply_to;
        ci.participant = (char *)reply_participant;
        ctx = &ci;
    }
    if (mentions_in(&ci, mentions, &mbuf, &mv) < 0)
        return -1;
    if (ci.n_mentionedjid)
        ctx = &ci;
    switch (m->type) {
    case WA_MT_IMAGE:
        im.url = m->url, im.directpath = m->direct_path, im.mimetype = m->mimetype, im.caption = m->caption;
        SETB(im, mediakey, has_mediakey, m->media_key, 32);
        SETB(im, filesha256, has_filesha256, m->file_sha256, 32);
        SETB(im, fileencsha256, has_fileencsha256, m->file_enc_sha256, 32);
        im.has_filelength = 1, im.filelength = m->file_length;
        im.has_width = m->width > 0, im.width = m->width;
        im.has_height = m->height > 0, im.height = m->height;
        im.has_mediakeytimestamp = m->media_key_ts > 0, im.mediakeytimestamp = m->media_key_ts;
        if (m->thumbnail_len)
            SETB(im, jpegthumbnail, has_jpegthumbnail, m->thumbnail, m->thumbnail_len);
        im.contextinfo = ctx;
        inner.imagemessage = &im;
        break;
    case WA_MT_VIDEO:
        vm.url = m->url, vm.directpath = m->direct_path, vm.mimetype = m->mimetype, vm.caption = m->caption;
        SETB(vm, mediakey, has_mediakey, m->media_key, 32);
        SETB(vm, filesha256, has_filesha256, m->file_sha256, 32);
        SETB(vm, fileencsha256, has_fileencsha256, m->file_enc_sha256, 32);
        vm.has_filelength = 1, vm.filelength = m->file_length;
        vm.has_seconds = 1, vm.seconds = m->seconds;
        vm.has_width = m->width > 0, vm.width = m->width;
        vm.has_height = m->height > 0, vm.height = m->height;
        vm.has_gifplayback = m->gif != 0, vm.gifplayback = m->gif != 0;
        vm.has_mediakeytimestamp = m->media_key_ts > 0, vm.mediakeytimestamp = m->media_key_ts;
        if (m->thumbnail_len)
            SETB(vm, jpegthumbnail, has_jpegthumbnail, m->thumbnail, m->thumbnail_len);
        vm.contextinfo = ctx;
        inner.videomessage = &vm;
        break;
    case WA_MT_AUDIO:
    case WA_MT_VOICE:
        am.url = m->url, am.directpath = m->direct_path, am.mimetype = m->mimetype;
        SETB(am, mediakey, has_mediakey, m->media_key, 32);
        SETB(am, filesha256, has_filesha256, m->file_sha256, 32);
        SETB(am, fileencsha256, has_fileencsha256, m->file_enc_sha256, 32);
        am.has_filelength = 1, am.filelength = m->file_length;
        am.has_seconds = 1, am.seconds = m->seconds;
        am.has_ptt = m->type == WA_MT_VOICE, am.ptt = m->type == WA_MT_VOICE;
        am.has_mediakeytimestamp = m->media_key_ts > 0, am.mediakeytimestamp = m->media_key_ts;
        if (m->waveform_len)
            SETB(am, waveform, has_waveform, m->waveform, m->waveform_len);
        am.contextinfo = ctx;
        inner.audiomessage = &am;
        break;
    case WA_MT_DOCUMENT:
        dm.url = m->url, dm.directpath = m->direct_path, dm.mimetype = m->mimetype, dm.caption = m->caption;
        dm.filename = m->file_name, dm.title = m->file_name;
        SETB(dm, mediakey, has_mediakey, m->media_key, 32);
        SETB(dm, filesha256, has_filesha256, m->file_sha256, 32);
        SETB(dm, fileencsha256, has_fileencsha256, m->file_enc_sha256, 32);
        dm.has_filelength = 1, dm.filelength = m->file_length;
        dm.has_pagecount = m->page_count > 0, dm.pagecount = m->page_count;
        dm.has_mediakeytimestamp = m->media_key_ts > 0, dm.mediakeytimestamp = m->media_key_ts;
        if (m->thumbnail_len)
            SETB(dm, jpegthumbnail, has_jpegthumbnail, m->thumbnail, m->thumbnail_len);
        dm.contextinfo = ctx;
        inner.documentmessage = &dm;
        break;
    case WA_MT_STICKER:
        sm.url = m->url, sm.directpath = m->direct_path, sm.mimetype = m->mimetype;
        SETB(sm, mediakey, has_mediakey, m->media_key, 32);
        SETB(sm, filesha256, has_filesha256, m->file_sha256, 32);
        SETB(sm, fileencsha256, has_fileencsha256, m->file_enc_sha256, 32);
        sm.has_filelength = 1, sm.filelength = m->file_length;
        sm.has_width = m->width > 0, sm.width = m->width;
        sm.has_height = m->height > 0, sm.height = m->height;
        sm.has_isanimated = m->animated != 0, sm.isanimated = m->animated != 0;
        sm.has_mediakeytimestamp = m->media_key_ts > 0, sm.mediakeytimestamp = m->media_key_ts;
        if (m->thumbnail_len)
            SETB(sm, pngthumbnail, has_pngthumbnail, m->thumbnail, m->thumbnail_len);
        sm.contextinfo = ctx;
        inner.stickermessage = &sm;
        break;
    default:
        free(mbuf);
        free(mv);
        return -1;
    }
    Wapi__E2e__Message *content = &inner;
    if (m->type == WA_MT_DOCUMENT && m->caption && *m->caption) {
        /* What WhatsApp clients send for a captioned document. */
        fp.message = &inner;
        wrapped.documentwithcaptionmessage = &fp;
        content = &wrapped;
    }
    const Wapi__E2e__Message *msg = content;
    if (dsm_dest) {
        dsm.destinationjid = (char *)dsm_dest;
        dsm.message = content;
        outer.devicesentmessage = &dsm;
        msg = &outer;
    }
    size_t len = wapi__e2e__message__get_packed_size(msg);
    uint8_t *b = malloc(len ? len : 1);
    if (b)
        wapi__e2e__message__pack(msg, b);
    free(mbuf);
    free(mv);
    if (!b)
        return -1;
    *out = b;
    *outlen = len;
    return 0;
}

int wa_msg_append_skdm(const uint8_t *msg, size_t n, const char *group, const uint8_t *skdm, size_t skdm_len,
                       uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__SenderKeyDistributionMessage k = WAPI__E2E__SENDER_KEY_DISTRIBUTION_MESSAGE__INIT;
    k.groupid = (char *)group;
    k.has_axolotlsenderkeydistributionmessage = 1;
    k.axolotlsenderkeydistributionmessage = (ProtobufCBinaryData){skdm_len, (uint8_t *)skdm};
    m.senderkeydistributionmessage = &k;
    size_t extra = wapi__e2e__message__get_packed_size(&m);
    *out = malloc(n + extra);
    if (!*out)
        return -1;
    /* A Message's fields may come in any order: the key's field after the
     * rest is the same Message with it set. */
    if (n)
        memcpy(*out, msg, n);
    wapi__e2e__message__pack(&m, *out + n);
    *outlen = n + extra;
    return 0;
}

static int pack_message(const Wapi__E2e__Message *m, uint8_t **out, size_t *outlen)
{
    size_t len = wapi__e2e__message__get_packed_size(m);
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return -1;
    wapi__e2e__message__pack(m, b);
    *out = b;
    *outlen = len;
    return 0;
}

int wa_msg_build_location(const struct wa_msg_location *l, const char *reply_to,
                          const char *reply_participant, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__LocationMessage lm = WAPI__E2E__LOCATION_MESSAGE__INIT;
    Wapi__E2e__LiveLocationMessage lv = WAPI__E2E__LIVE_LOCATION_MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    if (!isfinite(l->latitude) || !isfinite(l->longitude) || fabs(l->latitude) > 90 ||
        fabs(l->longitude) > 180)
        return -1;
    Wapi__E2e__ContextInfo *ctx = NULL;
    if (reply_to && *reply_to) {
        ci.stanzaid = (char *)reply_to;
        ci.participant = (char *)reply_participant;
        ctx = &ci;
    }
    if (l->live) {
        lv.has_degreeslatitude = lv.has_degreeslongitude = 1;
        lv.degreeslatitude = l->latitude, lv.degreeslongitude = l->longitude;
        lv.caption = l->comment;
        lv.has_accuracyinmeters = l->accuracy_m > 0, lv.accuracyinmeters = l->accuracy_m;
        lv.has_sequencenumber = l->sequence > 0, lv.sequencenumber = l->sequence;
        lv.contextinfo = ctx;
        m.livelocationmessage = &lv;
    } else {
        lm.has_degreeslatitude = lm.has_degreeslongitude = 1;
        lm.degreeslatitude = l->latitude, lm.degreeslongitude = l->longitude;
        lm.name = l->name, lm.address = l->address, lm.url = l->url, lm.comment = l->comment;
        lm.has_accuracyinmeters = l->accuracy_m > 0, lm.accuracyinmeters = l->accuracy_m;
        lm.contextinfo = ctx;
        m.locationmessage = &lm;
    }
    return pack_message(&m, out, outlen);
}

int wa_msg_build_contacts(const struct wa_msg_contact *c, size_t n, const char *display_name,
                          const char *reply_to, const char *reply_participant, uint8_t **out, size_t *outlen)
{
    if (n < 1 || n > WA_MSG_MAX_CONTACTS)
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ContactsArrayMessage am = WAPI__E2E__CONTACTS_ARRAY_MESSAGE__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    Wapi__E2e__ContactMessage cm[WA_MSG_MAX_CONTACTS];
    Wapi__E2e__ContactMessage *cp[WA_MSG_MAX_CONTACTS];
    Wapi__E2e__ContextInfo *ctx = NULL;
    if (reply_to && *reply_to) {
        ci.stanzaid = (char *)reply_to;
        ci.participant = (char *)reply_participant;
        ctx = &ci;
    }
    for (size_t i = 0; i < n; i++) {
        if (!c[i].vcard || !*c[i].vcard)
            return -1;
        wapi__e2e__contact_message__init(&cm[i]);
        cm[i].displayname = c[i].display_name;
        cm[i].vcard = c[i].vcard;
        cp[i] = &cm[i];
    }
    char title[32];
    if (n == 1) {
        cm[0].contextinfo = ctx;
        m.contactmessage = &cm[0];
    } else {
        if (!display_name) {
            snprintf(title, sizeof title, "%zu contacts", n);
            display_name = title;
        }
        am.displayname = (char *)display_name;
        am.n_contacts = n;
        am.contacts = cp;
        am.contextinfo = ctx;
        m.contactsarraymessage = &am;
    }
    return pack_message(&m, out, outlen);
}

int wa_msg_wrap_dsm(const uint8_t *msg, size_t n, const char *dest, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message *inner = wapi__e2e__message__unpack(NULL, n, msg);
    if (!inner)
        return -1;
    Wapi__E2e__Message outer = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__DeviceSentMessage dsm = WAPI__E2E__DEVICE_SENT_MESSAGE__INIT;
    dsm.destinationjid = (char *)dest;
    dsm.message = inner;
    outer.devicesentmessage = &dsm;
    int r = pack_message(&outer, out, outlen);
    wapi__e2e__message__free_unpacked(inner, NULL);
    return r;
}

int wa_msg_stanza_type(const uint8_t *msg, size_t n, struct wa_msg_stanza *st)
{
    Wapi__E2e__Message *top = wapi__e2e__message__unpack(NULL, n, msg);
    if (!top)
        return -1;
    /* The content inside a disappearing or view-once wrapper says the type. */
    const Wapi__E2e__Message *m = top;
    for (int d = 0; d < 2; d++) {
        const Wapi__E2e__FutureProofMessage *w = m->ephemeralmessage    ? m->ephemeralmessage
                                                 : m->viewoncemessagev2 ? m->viewoncemessagev2
                                                                        : m->viewoncemessage;
        if (w && w->message)
            m = w->message;
    }
    const Wapi__E2e__AudioMessage *au = m->audiomessage;
    const Wapi__E2e__VideoMessage *vi = m->videomessage;
    const char *mt = m->contactmessage                                     ? "vcard"
                     : m->contactsarraymessage                             ? "contact_array"
                     : m->imagemessage                                     ? "image"
                     : m->stickermessage                                   ? "sticker"
                     : m->documentmessage || m->documentwithcaptionmessage ? "document"
                     : au ? (au->has_ptt && au->ptt ? "ptt" : "audio")
                     : vi ? (vi->has_gifplayback && vi->gifplayback ? "gif" : "video")
                          : NULL;
    memset(st, 0, sizeof *st);
    st->mediatype = mt;
    st->type = mt ? "media" : "text";
    if (m->pollcreationmessage || m->pollcreationmessagev2 || m->pollcreationmessagev3 ||
        m->pollupdatemessage) {
        st->type = "poll";
        st->polltype = m->pollupdatemessage ? "vote" : "creation";
    }
    if (m->reactionmessage) {
        st->type = "reaction";
        st->polltype = NULL;
        st->hide_on_failure = 1;
        if (!m->reactionmessage->text || !*m->reactionmessage->text)
            st->edit = "7";
    }
    const Wapi__E2e__ProtocolMessage *p = m->protocolmessage;
    if (p && p->key && p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__REVOKE) {
        st->edit = p->key->has_fromme && p->key->fromme ? "7" : "8";
        st->hide_on_failure = 1;
    } else if (p && p->key && p->has_type && p->type == WAPI__E2E__PROTOCOL_MESSAGE__TYPE__MESSAGE_EDIT &&
               p->editedmessage) {
        st->edit = "1";
        st->hide_on_failure = 1;
    }
    wapi__e2e__message__free_unpacked(top, NULL);
    return 0;
}

/* The key of message target_id in chat: ours, or (in a group) participant's. */
static void key_of(Wapi__E2e__MessageKey *k, const char *chat, const char *target_id, int from_me,
                   const char *participant)
{
    k->remotejid = (char *)chat;
    k->has_fromme = 1, k->fromme = from_me != 0;
    k->id = (char *)target_id;
    k->participant = from_me ? NULL : (char *)participant;
}

int wa_msg_build_reaction(const char *chat, const char *target_id, int target_from_me,
                          const char *participant, const char *emoji, int64_t ts_ms, uint8_t **out,
                          size_t *outlen)
{
    if (!chat || !target_id || !*target_id || !emoji)
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ReactionMessage r = WAPI__E2E__REACTION_MESSAGE__INIT;
    Wapi__E2e__MessageKey k = WAPI__E2E__MESSAGE_KEY__INIT;
    key_of(&k, chat, target_id, target_from_me, participant);
    r.key = &k;
    r.text = (char *)emoji;
    r.has_sendertimestampms = 1, r.sendertimestampms = ts_ms;
    m.reactionmessage = &r;
    return pack_message(&m, out, outlen);
}

int wa_msg_build_edit(const char *chat, const char *target_id, const char *text, int64_t ts_ms, uint8_t **out,
                      size_t *outlen)
{
    if (!chat || !target_id || !*target_id || !text)
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT, edited = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ProtocolMessage p = WAPI__E2E__PROTOCOL_MESSAGE__INIT;
    Wapi__E2e__MessageKey k = WAPI__E2E__MESSAGE_KEY__INIT;
    key_of(&k, chat, target_id, 1, NULL);
    edited.conversation = (char *)text;
    p.key = &k;
    p.has_type = 1, p.type = WAPI__E2E__PROTOCOL_MESSAGE__TYPE__MESSAGE_EDIT;
    p.editedmessage = &edited;
    p.has_timestampms = 1, p.timestampms = ts_ms;
    m.protocolmessage = &p;
    return pack_message(&m, out, outlen);
}

int wa_msg_build_revoke(const char *chat, const char *target_id, int target_from_me, const char *participant,
                        uint8_t **out, size_t *outlen)
{
    if (!chat || !target_id || !*target_id || (!target_from_me && (!participant || !*participant)))
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__ProtocolMessage p = WAPI__E2E__PROTOCOL_MESSAGE__INIT;
    Wapi__E2e__MessageKey k = WAPI__E2E__MESSAGE_KEY__INIT;
    key_of(&k, chat, target_id, target_from_me, participant);
    p.key = &k;
    p.has_type = 1, p.type = WAPI__E2E__PROTOCOL_MESSAGE__TYPE__REVOKE;
    m.protocolmessage = &p;
    return pack_message(&m, out, outlen);
}

int wa_msg_mark_forwarded(const uint8_t *msg, size_t n, uint32_t score, uint8_t **out, size_t *outlen)
{
    struct wa_msg_marks mk = {score ? score : 1, 0, 0};
    return wa_msg_mark(msg, n, &mk, out, outlen);
}

int wa_msg_mark(const uint8_t *msg, size_t n, const struct wa_msg_marks *mk, uint8_t **out, size_t *outlen)
{
    Wapi__E2e__Message *m = wapi__e2e__message__unpack(NULL, n, msg);
    if (!m)
        return -1;
    Wapi__E2e__ContextInfo fresh = WAPI__E2E__CONTEXT_INFO__INIT;
    Wapi__E2e__ExtendedTextMessage ext = WAPI__E2E__EXTENDED_TEXT_MESSAGE__INIT;
    Wapi__E2e__Message outer = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__FutureProofMessage vo = WAPI__E2E__FUTURE_PROOF_MESSAGE__INIT;
    Wapi__E2e__ContextInfo **ci = NULL;
    char *conv = NULL;
    Wapi__E2e__ExtendedTextMessage *had = m->extendedtextmessage; /* restored before the tree is freed */
    if (m->conversation && !had) { /* carried over to an extendedTextMessage, which has a contextInfo */
        conv = m->conversation;
        ext.text = conv;
        m->conversation = NULL;
        m->extendedtextmessage = &ext;
    }
    Wapi__E2e__Message *c = m->documentwithcaptionmessage && m->documentwithcaptionmessage->message
                                ? m->documentwithcaptionmessage->message
                                : m;
    ci = c->extendedtextmessage    ? &c->extendedtextmessage->contextinfo
         : c->imagemessage         ? &c->imagemessage->contextinfo
         : c->videomessage         ? &c->videomessage->contextinfo
         : c->audiomessage         ? &c->audiomessage->contextinfo
         : c->documentmessage      ? &c->documentmessage->contextinfo
         : c->stickermessage       ? &c->stickermessage->contextinfo
         : c->locationmessage      ? &c->locationmessage->contextinfo
         : c->contactmessage       ? &c->contactmessage->contextinfo
         : c->contactsarraymessage ? &c->contactsarraymessage->contextinfo
                                   : NULL;
    /* View once: photos, videos and voice notes only. */
    int vo_ok =
        c == m && (m->imagemessage ||
                   (m->videomessage && !(m->videomessage->has_gifplayback && m->videomessage->gifplayback)) ||
                   (m->audiomessage && m->audiomessage->has_ptt && m->audiomessage->ptt));
    int r = -1;
    if (ci && (!mk->view_once || vo_ok)) {
        Wapi__E2e__ContextInfo *was = *ci;
        int need = mk->forwarding_score || mk->expiration;
        if (!*ci && need)
            *ci = &fresh;
        if (mk->forwarding_score) {
            (*ci)->has_isforwarded = 1, (*ci)->isforwarded = 1;
            (*ci)->has_forwardingscore = 1, (*ci)->forwardingscore = mk->forwarding_score;
        }
        if (mk->expiration)
            (*ci)->has_expiration = 1, (*ci)->expiration = mk->expiration;
        const Wapi__E2e__Message *top = m;
        if (mk->view_once) {
            if (m->imagemessage)
                m->imagemessage->has_viewonce = 1, m->imagemessage->viewonce = 1;
            else if (m->videomessage)
                m->videomessage->has_viewonce = 1, m->videomessage->viewonce = 1;
            else
                m->audiomessage->has_viewonce = 1, m->audiomessage->viewonce = 1;
            vo.message = m;
            outer.viewoncemessagev2 = &vo;
            top = &outer;
        }
        r = pack_message(top, out, outlen);
        *ci = was; /* the unpacked tree is freed as it came */
    }
    if (conv) {
        m->conversation = conv;
        m->extendedtextmessage = had;
    }
    wapi__e2e__message__free_unpacked(m, NULL);
    return r;
}

int wa_msg_build_poll(const struct wa_msg_poll *p, const char *reply_to, const char *reply_participant,
                      uint8_t **out, size_t *outlen)
{
    if (!p->has_secret || !p->question || p->noptions < 1 || p->noptions > WA_MSG_POLL_MAX_OPTIONS)
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__PollCreationMessage pc = WAPI__E2E__POLL_CREATION_MESSAGE__INIT;
    Wapi__E2e__PollCreationMessage__Option opt[WA_MSG_POLL_MAX_OPTIONS];
    Wapi__E2e__PollCreationMessage__Option *optp[WA_MSG_POLL_MAX_OPTIONS];
    Wapi__E2e__MessageContextInfo mci = WAPI__E2E__MESSAGE_CONTEXT_INFO__INIT;
    Wapi__E2e__ContextInfo ci = WAPI__E2E__CONTEXT_INFO__INIT;
    for (size_t i = 0; i < p->noptions; i++) {
        wapi__e2e__poll_creation_message__option__init(&opt[i]);
        opt[i].optionname = p->options[i];
        optp[i] = &opt[i];
    }
    pc.name = p->question;
    pc.options = optp;
    pc.n_options = p->noptions;
    /* Single choice goes as V3 with 1, as the phones send it; any number as
     * the first version with 0, which every client reads. */
    pc.has_selectableoptionscount = 1;
    pc.selectableoptionscount = p->multiple ? 0 : 1;
    if (reply_to && *reply_to) {
        ci.stanzaid = (char *)reply_to;
        ci.participant = (char *)reply_participant;
        pc.contextinfo = &ci;
    }
    if (p->multiple)
        m.pollcreationmessage = &pc;
    else
        m.pollcreationmessagev3 = &pc;
    mci.has_messagesecret = 1;
    mci.messagesecret.data = (uint8_t *)p->secret;
    mci.messagesecret.len = WA_MSG_POLL_SECRET_LEN;
    m.messagecontextinfo = &mci;
    return pack_message(&m, out, outlen);
}

int wa_msg_poll_vote_key(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *poll_id,
                         const char *creator, const char *voter, uint8_t key[32], uint8_t **ad, size_t *adlen)
{
    static const char use[] = "Poll Vote";
    size_t il = strlen(poll_id), cl = strlen(creator), vl = strlen(voter);
    uint8_t *info = malloc(il + cl + vl + sizeof use);
    *ad = malloc(il + 1 + vl);
    if (!info || !*ad) {
        free(info);
        free(*ad);
        *ad = NULL;
        return -1;
    }
    memcpy(info, poll_id, il);
    memcpy(info + il, creator, cl);
    memcpy(info + il + cl, voter, vl);
    memcpy(info + il + cl + vl, use, sizeof use - 1);
    int r = wa_crypto_hkdf_sha256(NULL, 0, secret, WA_MSG_POLL_SECRET_LEN, info,
                                  il + cl + vl + sizeof use - 1, key, 32);
    free(info);
    memcpy(*ad, poll_id, il);
    (*ad)[il] = 0;
    memcpy(*ad + il + 1, voter, vl);
    *adlen = il + 1 + vl;
    if (r < 0) {
        free(*ad);
        *ad = NULL;
        OPENSSL_cleanse(key, 32);
    }
    return r < 0 ? -1 : 0;
}

int wa_msg_poll_vote_open(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *poll_id,
                          const char *creator, const char *voter, const struct wa_msg_poll_vote *v,
                          uint8_t **hashes, size_t *n)
{
    uint8_t key[32], *ad = NULL;
    size_t adlen = 0;
    *hashes = NULL, *n = 0;
    if (v->payload_len < WA_GCM_TAG_LEN || v->payload_len > POLL_VOTE_MAX ||
        wa_msg_poll_vote_key(secret, poll_id, creator, voter, key, &ad, &adlen) < 0)
        return -1;
    uint8_t *plain = malloc(v->payload_len);
    int r = plain ? wa_crypto_aes_gcm_open(key, v->iv, ad, adlen, v->payload, v->payload_len, plain) : -1;
    OPENSSL_cleanse(key, sizeof key);
    free(ad);
    Wapi__E2e__PollVoteMessage *pv =
        r == 0 ? wapi__e2e__poll_vote_message__unpack(NULL, v->payload_len - WA_GCM_TAG_LEN, plain) : NULL;
    free(plain);
    if (!pv)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < pv->n_selectedoptions; i++)
        k += pv->selectedoptions[i].len == 32;
    if (k && !(*hashes = malloc(32 * k))) {
        wapi__e2e__poll_vote_message__free_unpacked(pv, NULL);
        return -1;
    }
    for (size_t i = 0; i < pv->n_selectedoptions; i++)
        if (pv->selectedoptions[i].len == 32)
            memcpy(*hashes + 32 * (*n)++, pv->selectedoptions[i].data, 32);
    wapi__e2e__poll_vote_message__free_unpacked(pv, NULL);
    return 0;
}

int wa_msg_build_poll_vote(const uint8_t secret[WA_MSG_POLL_SECRET_LEN], const char *chat,
                           const char *poll_id, int poll_from_me, const char *creator, const char *voter,
                           const char *const *options, size_t n, int64_t ts_ms, uint8_t **out, size_t *outlen)
{
    if (n > WA_MSG_POLL_MAX_OPTIONS)
        return -1;
    uint8_t sums[WA_MSG_POLL_MAX_OPTIONS][32];
    ProtobufCBinaryData sel[WA_MSG_POLL_MAX_OPTIONS];
    for (size_t i = 0; i < n; i++) {
        if (wa_crypto_sha256((const uint8_t *)options[i], strlen(options[i]), sums[i]) < 0)
            return -1;
        sel[i].data = sums[i], sel[i].len = 32;
    }
    Wapi__E2e__PollVoteMessage pv = WAPI__E2E__POLL_VOTE_MESSAGE__INIT;
    pv.selectedoptions = sel;
    pv.n_selectedoptions = n;
    size_t pl = wapi__e2e__poll_vote_message__get_packed_size(&pv);
    uint8_t *plain = malloc(pl ? pl : 1), *ct = malloc(pl + WA_GCM_TAG_LEN), *ad = NULL;
    uint8_t key[32], iv[12];
    size_t adlen = 0;
    int r = -1;
    if (plain && ct && wa_crypto_random(iv, sizeof iv) == 0 &&
        wa_msg_poll_vote_key(secret, poll_id, creator, voter, key, &ad, &adlen) == 0) {
        wapi__e2e__poll_vote_message__pack(&pv, plain);
        r = wa_crypto_aes_gcm_seal(key, iv, ad, adlen, plain, pl, ct);
        OPENSSL_cleanse(key, sizeof key);
    }
    free(plain);
    free(ad);
    if (r == 0) {
        Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT;
        Wapi__E2e__PollUpdateMessage pu = WAPI__E2E__POLL_UPDATE_MESSAGE__INIT;
        Wapi__E2e__PollEncValue ev = WAPI__E2E__POLL_ENC_VALUE__INIT;
        Wapi__E2e__MessageKey k = WAPI__E2E__MESSAGE_KEY__INIT;
        key_of(&k, chat, poll_id, poll_from_me, creator);
        ev.has_encpayload = 1, ev.encpayload.data = ct, ev.encpayload.len = pl + WA_GCM_TAG_LEN;
        ev.has_enciv = 1, ev.enciv.data = iv, ev.enciv.len = sizeof iv;
        pu.pollcreationmessagekey = &k;
        pu.vote = &ev;
        pu.has_sendertimestampms = ts_ms > 0, pu.sendertimestampms = ts_ms;
        m.pollupdatemessage = &pu;
        r = pack_message(&m, out, outlen);
    }
    free(ct);
    return r;
}

int wa_msg_build_disappearing(uint32_t seconds, int64_t ts_s, uint8_t **out, size_t *outlen)
{
    if (seconds > WA_MSG_EXPIRATION_MAX)
        return -1;
    Wapi__E2e__Message m = WAPI__E2E__MESSAGE__INIT, inner = WAPI__E2E__MESSAGE__INIT;
    Wapi__E2e__FutureProofMessage w = WAPI__E2E__FUTURE_PROOF_MESSAGE__INIT;
    Wapi__E2e__ProtocolMessage p = WAPI__E2E__PROTOCOL_MESSAGE__INIT;
    p.has_type = 1, p.type = WAPI__E2E__PROTOCOL_MESSAGE__TYPE__EPHEMERAL_SETTING;
    p.has_ephemeralexpiration = 1, p.ephemeralexpiration = seconds;
    p.has_ephemeralsettingtimestamp = ts_s > 0, p.ephemeralsettingtimestamp = ts_s;
    inner.protocolmessage = &p;
    w.message = &inner;
    m.ephemeralmessage = &w;
    return pack_message(&m, out, outlen);
}
