/* The messaging layer's entry points and shared state: the client's hooks
 * (stanzas to the receive or the send side, connection up and down), the
 * callbacks the application registers, and small helpers both sides use. */
#include "wa_messaging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "wa_appstate_iq.h"
#include "wa_messaging_int.h"

struct wam wam;

int wa_messaging_room(void)
{
    if (!wam.connected)
        return 0;
    int held = wam.jmsgs + (wam.s.active && !wam.s.retry && !wam.s.peer) + wam.awmsgs;
    for (int i = 0; i < wam.nbatch; i++)
        held += !wam.batch[i].retry && !wam.batch[i].peer;
    return held < SEND_CAPACITY ? SEND_CAPACITY - held : 0;
}

int wa_messaging_busy(void)
{
    return wa_messaging_room() == 0;
}

int wa_messaging_ready(void)
{
    return wam.connected;
}

/* Own user and device from creds.jid ("user:dev@server"). */
int wam_own_address(char *user, size_t ucap, int *dev)
{
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (!cr || !cr->jid[0])
        return -1;
    const char *at = strchr(cr->jid, '@'), *colon = strchr(cr->jid, ':');
    if (!at)
        return -1;
    const char *end = colon && colon < at ? colon : at;
    if ((size_t)(end - cr->jid) >= ucap)
        return -1;
    memcpy(user, cr->jid, (size_t)(end - cr->jid));
    user[end - cr->jid] = '\0';
    *dev = colon && colon < at ? atoi(colon + 1) : 0;
    return 0;
}

/* 1 when own ("user[:device]@server", from the creds) names the user of j. */
static int same_user(const char *own, const wa_jid *j)
{
    size_t n = strcspn(own, ":@");
    return own[n] && j->user[0] && strlen(j->user) == n && strncmp(own, j->user, n) == 0;
}

int wam_is_own(const wa_jid *j)
{
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (!cr)
        return 0;
    if (strcmp(j->server, "s.whatsapp.net") == 0)
        return same_user(cr->jid, j);
    return strcmp(j->server, "lid") == 0 && same_user(cr->lid, j);
}

static void own_as(const char *own, const char *server, char *out, size_t len)
{
    size_t n = strcspn(own, ":@");
    if (n && own[n])
        snprintf(out, len, "%.*s@%s", (int)n, own, server);
    else if (len)
        out[0] = '\0';
}

void wa_messaging_own_jids(char *pn, size_t pnlen, char *lid, size_t lidlen)
{
    const struct wa_creds *cr = wam.c ? wa_client_creds(wam.c) : NULL;
    own_as(cr ? cr->jid : "", "s.whatsapp.net", pn, pnlen);
    own_as(cr ? cr->lid : "", "lid", lid, lidlen);
}

/* The attribute key as "user@server" (device dropped) when it is a JID on server; else NULL. */
const char *wam_alt_jid(const wa_node *n, wa_arena *a, const char *key, const char *server, char *buf,
                        size_t len)
{
    char tb[128];
    const char *v = wa_node_attr_text(n, key, tb, sizeof tb);
    wa_jid j;
    if (!v || wa_jid_parse(a, v, &j) != WA_OK || strcmp(j.server, server) != 0 || !j.user[0] ||
        strlen(j.user) > 32)
        return NULL;
    for (const char *c = j.user; *c; c++)
        if (*c < '0' || *c > '9')
            return NULL;
    snprintf(buf, len, "%s@%s", j.user, j.server);
    return buf;
}

int64_t wam_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Our phone's answer to a media retry request: to the application, which
 * holds the media key it opens with. */
static void handle_media_retry(const wa_node *n)
{
    char err[160];
    struct wa_mediaretry_note *note = malloc(sizeof *note);
    if (!note)
        return;
    if (wa_mediaretry_parse(n, note, err, sizeof err) < 0)
        log_warn("whatsapp: a media retry notification is unusable", LF_S("error", err));
    else if (wam.rev.on_media_retry)
        wam.rev.on_media_retry(wam.rarg, note);
    free(note);
}

int wa_messaging_media_retry(const char *id, const char *chat_jid, int from_me, const char *participant,
                             const uint8_t media_key[32])
{
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (!wam.connected || !cr)
        return -1;
    wa_arena *a = wa_arena_new();
    wa_jid me;
    char own[128];
    int r = -1;
    if (a && wa_jid_parse(a, cr->jid, &me) == WA_OK && me.user[0] &&
        (size_t)snprintf(own, sizeof own, "%s@s.whatsapp.net", me.user) < sizeof own) {
        wa_node *rq = wa_mediaretry_request(a, id, own, chat_jid, from_me, participant, media_key);
        r = rq ? wa_client_send_node(wam.c, rq) : -1;
    }
    wa_arena_free(a);
    return r < 0 ? -1 : 0;
}

/* ---- stanzas held until the application stored what they told */

#define HELD_SLOTS 64
static struct {
    uint64_t token;
    wa_node *n;
    wa_arena *a;
} held[HELD_SLOTS];
static uint64_t held_tokens;

uint64_t wam_hold(wa_node *n, wa_arena *a)
{
    for (int i = 0; i < HELD_SLOTS; i++)
        if (!held[i].token) {
            held[i].token = ++held_tokens, held[i].n = n, held[i].a = a;
            return held[i].token;
        }
    return 0;
}

/* Releases token's slot; acks its stanza first when ack. */
static void release(uint64_t token, int ack)
{
    for (int i = 0; i < HELD_SLOTS; i++)
        if (token && held[i].token == token) {
            if (ack)
                wa_client_ack(wam.c, held[i].n);
            wa_arena_free(held[i].a);
            held[i].token = 0;
            return;
        }
}

void wam_unhold(uint64_t token)
{
    release(token, 0);
}

void wam_held_drop(void)
{
    for (int i = 0; i < HELD_SLOTS; i++)
        if (held[i].token) {
            wa_arena_free(held[i].a);
            held[i].token = 0;
        }
}

void wa_messaging_held_done(uint64_t token, int stored)
{
    release(token, stored);
}

int wa_messaging_call_reject(const struct wa_call *call)
{
    return wam.connected ? wa_call_reject(wam.c, call) : -1;
}

/* A call: offers go to the application (acked once it stored them), the
 * rest is acked at once. 1 when n is kept. */
static int handle_call(wa_node *n, wa_arena *a)
{
    struct wa_call call;
    if (!wam.rev.on_call || wa_call_parse(n, &call) < 0 || strcmp(call.status, "offer")) {
        wa_client_ack(wam.c, n);
        return 0;
    }
    uint64_t t = wam_hold(n, a);
    if (!t) {
        log_warn("calls: too many waiting; this one comes again", LF_S("call", call.call_id));
        return 0;
    }
    if (wam.rev.on_call(wam.rarg, &call, t) == 0)
        return 1;
    wam_unhold(t);
    return 0;
}

static void (*server_sync_cb)(void *arg, const char *const *names, size_t n);
static void *server_sync_arg;

void wa_messaging_set_server_sync(void (*cb)(void *arg, const char *const *names, size_t n), void *arg)
{
    server_sync_cb = cb;
    server_sync_arg = arg;
}

/* The server says app-state collections changed (on another device). */
static void handle_server_sync(const wa_node *n)
{
    char names[WA_ASIQ_MAX_COLLECTIONS][WA_ASIQ_NAME_MAX + 1];
    const char *ptrs[WA_ASIQ_MAX_COLLECTIONS];
    size_t k = wa_asiq_server_sync(n, names, WA_ASIQ_MAX_COLLECTIONS);
    for (size_t i = 0; i < k; i++)
        ptrs[i] = names[i];
    if (k && server_sync_cb)
        server_sync_cb(server_sync_arg, ptrs, k);
}

static int on_stanza(void *arg, wa_node *n, wa_arena *a)
{
    (void)arg;
    if (!strcmp(n->tag, "ack")) {
        wam_handle_ack(n);
        return 0;
    }
    if (!strcmp(n->tag, "receipt")) {
        wam_handle_receipt(n);
        return 0;
    }
    if (!strcmp(n->tag, "presence") || !strcmp(n->tag, "chatstate")) {
        struct wa_presence pr;
        if (wa_presence_parse(n, &pr) == 0 && wam.rev.on_presence)
            wam.rev.on_presence(wam.rarg, &pr);
        return 0;
    }
    if (!strcmp(n->tag, "call"))
        return handle_call(n, a);
    if (!strcmp(n->tag, "notification")) {
        const char *type = wa_node_attr_str(n, "type");
        if (type && !strcmp(type, "devices"))
            wam_handle_devices_notification(n);
        else if (type && !strcmp(type, "mediaretry"))
            handle_media_retry(n);
        else if (type && !strcmp(type, "server_sync"))
            handle_server_sync(n);
        else if (type && !strcmp(type, "w:gp2"))
            return wam_handle_group_notification(n, a);
        return 0;
    }
    if (strcmp(n->tag, "message"))
        return 0;
    return wam_receive_stanza(n, a);
}

static void on_connected(void *arg)
{
    (void)arg;
    wam.connected = 1;
    if (wam.sev.on_ready)
        wam.sev.on_ready(wam.sarg);
}

static void on_disconnect(void *arg)
{
    (void)arg;
    wam.connected = 0;
    wam_receive_disconnect();
    wam_send_disconnect();
    wam_held_drop();
}

void wa_messaging_init(struct wa_client *c, struct event_base *base)
{
    wam.c = c;
    wam.base = base;
    wam_send_init(base);
    struct wa_client_hooks h = {on_stanza, on_connected, on_disconnect};
    wa_client_set_hooks(c, &h, NULL);
}

void wa_messaging_set_send_events(const struct wa_send_events *ev, void *arg)
{
    wam.sev = *ev;
    wam.sarg = arg;
}

void wa_messaging_set_receive_events(const struct wa_receive_events *ev, void *arg)
{
    wam.rev = *ev;
    wam.rarg = arg;
}
