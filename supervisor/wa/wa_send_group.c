/* The group parts of a send: the member list (cached, asked with w:g2,
 * dropped on a change), the members' devices (usync, in the device cache),
 * which devices have our sender key (kept in the Signal store, so a restart
 * does not hand it to everyone again), the key's distribution to the others
 * pairwise, one skmsg for all, the participant hash, and replacing our key
 * when someone leaves. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "wa_actions.h"
#include "wa_group.h"
#include "wa_group_cipher.h"
#include "wa_messaging_int.h"
#include "wa_signal_store.h"

#define GROUP_SLOTS 256
#define GROUP_TTL_MS (60 * 60 * 1000)
#define MAX_MEMBERS 1024
#define ROTATE_SLOTS 64

struct member {
    char user[64], server[32];
};

struct grp {
    char user[64]; /* the group's id ("" free) */
    int64_t fetched_ms;
    uint64_t used;
    int lid; /* LID-addressed: members and our key by LID */
    int n;
    struct member *m; /* malloc'd */
};

static struct grp G[GROUP_SLOTS];
static uint64_t use_clock;
/* Groups whose sender key of ours must be replaced (someone left) before
 * the next send; done as soon as the Signal store is free. */
static char rotate[ROTATE_SLOTS][64];

static struct grp *grp_find(const char *user)
{
    for (int i = 0; i < GROUP_SLOTS; i++)
        if (G[i].user[0] && !strcmp(G[i].user, user))
            return &G[i];
    return NULL;
}

static void grp_drop(struct grp *g)
{
    free(g->m);
    memset(g, 0, sizeof *g);
}

/* -- our sender key -- */

/* Our address in a group: by LID in a LID-addressed one (when we know our
 * LID), else by phone number. */
static int own_sender(int lid, char *name, size_t cap, int *dev)
{
    char own_user[64];
    if (wam_own_address(own_user, sizeof own_user, dev) < 0)
        return -1;
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (lid && cr && cr->lid[0]) {
        char lu[64];
        snprintf(lu, sizeof lu, "%.*s", (int)strcspn(cr->lid, ":@"), cr->lid);
        wa_msg_address_name(lu, "lid", name, cap);
    } else {
        wa_msg_address_name(own_user, "s.whatsapp.net", name, cap);
    }
    return 0;
}

static void queue_rotation(const char *user)
{
    for (int i = 0; i < ROTATE_SLOTS; i++)
        if (!rotate[i][0]) {
            snprintf(rotate[i], sizeof rotate[i], "%s", user);
            return;
        }
}

static int rotate_pending(const char *user)
{
    for (int i = 0; i < ROTATE_SLOTS; i++)
        if (rotate[i][0] && !strcmp(rotate[i], user))
            return 1;
    return 0;
}

/* Our keys for the group are forgotten with the list of who has them: the
 * next send makes a new key and gives it to every member. */
static int drop_own_key(struct wa_signal_store *st, const char *user)
{
    char gjid[96], name[96];
    int dev = 0;
    snprintf(gjid, sizeof gjid, "%.63s@g.us", user);
    for (int lid = 0; lid < 2; lid++)
        if (own_sender(lid, name, sizeof name, &dev) == 0 &&
            wa_signal_store_drop_sender_key(st, gjid, name, dev) < 0)
            return -1;
    return wa_signal_store_set_skdm_sent(st, gjid, NULL, 0);
}

void wam_group_rotate_pending(void)
{
    struct wa_signal sig;
    if (wam.busy || wam_send_holds_store() || wa_client_signal(wam.c, &sig) < 0)
        return;
    int done = 0;
    for (int i = 0; i < ROTATE_SLOTS; i++)
        if (rotate[i][0] && drop_own_key(sig.st, rotate[i]) == 0) {
            log_info("group: our sender key replaced (a member left)", LF_S("group", rotate[i]));
            rotate[i][0] = '\0';
            done++;
        }
    char err[200];
    if (done && wa_signal_store_flush(sig.st, err, sizeof err) < 0)
        log_error("cannot store the Signal state", LF_S("error", err));
}

/* The change to the application, acked once stored; 1 when n is kept. */
static int group_event(wa_node *n, wa_arena *a)
{
    struct wa_group_event ev;
    if (!wam.rev.on_group_event || wa_group_event_parse(n, &ev) < 0) {
        wa_client_ack(wam.c, n); /* nothing to store */
        return 0;
    }
    int kept = 0;
    uint64_t t = wam_hold(n, a);
    if (!t)
        log_warn("group notices: too many waiting; this one comes again", LF_S("group", ev.gjid));
    else if (wam.rev.on_group_event(wam.rarg, &ev, t) == 0)
        kept = 1;
    else
        wam_unhold(t); /* not taken: not acked, the server tells it again */
    wa_group_event_free(&ev);
    return kept;
}

int wam_handle_group_notification(wa_node *n, wa_arena *a)
{
    char buf[128];
    const char *from = wa_node_attr_text(n, "from", buf, sizeof buf); /* buf, or the attribute's own text */
    if (!from || !strstr(from, "@g.us")) {
        wa_client_ack(wam.c, n);
        return 0;
    }
    int changed = 0, left = 0;
    for (uint32_t i = 0; n->content == WA_CONTENT_LIST && i < n->nchildren; i++) {
        const char *t = n->children[i]->tag;
        const wa_node *grp = !strcmp(t, "create") ? wa_node_child(n->children[i], "group") : NULL;
        const char *subject = !strcmp(t, "subject") ? wa_node_attr_str(n->children[i], "subject")
                              : grp                 ? wa_node_attr_str(grp, "subject")
                                                    : NULL;
        if (subject && *subject && strlen(subject) <= 1024 && wam.rev.on_group_subject)
            wam.rev.on_group_subject(wam.rarg, from, subject);
        if (!strcmp(t, "remove") || !strcmp(t, "leave"))
            changed = left = 1;
        else if (!strcmp(t, "add") || !strcmp(t, "create") || !strcmp(t, "modify"))
            changed = 1;
    }
    if (changed) {
        log_info("group members changed", LF_S("group", from), LF_I("member_left", left));
        wa_messaging_group_changed(from, left);
    }
    return group_event(n, a);
}

void wa_messaging_group_changed(const char *gjid, int member_left)
{
    char user[64];
    size_t n = strcspn(gjid, "@");
    if (n == 0 || n >= sizeof user || strcmp(gjid + n, "@g.us") != 0)
        return;
    memcpy(user, gjid, n);
    user[n] = '\0';
    struct grp *g = grp_find(user);
    if (g)
        grp_drop(g); /* the members are asked again before the next send */
    if (!member_left || rotate_pending(user))
        return;
    queue_rotation(user);
    wam_group_rotate_pending();
}

void wam_group_disconnect(void)
{
    for (int i = 0; i < GROUP_SLOTS; i++)
        if (G[i].user[0])
            grp_drop(&G[i]);
}

void wam_group_phash_mismatch(const char *group_user)
{
    struct grp *g = grp_find(group_user);
    if (!g)
        return;
    log_info("group: the server's member list differs from ours; asking again", LF_S("group", group_user));
    for (int i = 0; i < g->n; i++)
        wa_devcache_forget(g->m[i].user);
    grp_drop(g);
}

int wam_group_own_skdm(const char *group_user, uint8_t **skdm, size_t *n)
{
    struct wa_signal sig;
    struct grp *g = grp_find(group_user);
    char gjid[96], name[96];
    int dev = 0;
    *skdm = NULL;
    snprintf(gjid, sizeof gjid, "%.63s@g.us", group_user);
    if (wa_client_signal(wam.c, &sig) < 0 || own_sender(g && g->lid, name, sizeof name, &dev) < 0 ||
        wa_gc_own_skdm(sig.sc, sig.g, gjid, name, dev, skdm, n) != 0) {
        free(*skdm);
        *skdm = NULL;
        return -1;
    }
    return 0;
}

/* -- members and their devices -- */

static void collect(void);

static int gen_ok(void *arg)
{
    return (unsigned)(uintptr_t)arg == wam.s.gen && wam.s.active && wam.s.group;
}

static void on_group_usync(void *arg, const wa_node *n)
{
    if (!wam_answer_wanted(arg, n, "connection lost while listing devices"))
        return;
    const wa_node *list = wa_usync_list(n);
    if (!list) {
        wam_send_done(WA_SEND_TRANSIENT, "device list query failed");
        return;
    }
    wam_usync_apply(list);
    collect();
}

/* The devices of the members, from the cache; members not in it are asked
 * first (once: a member the answer lists no devices of is left out). */
static void devices(int asked)
{
    struct grp *g = grp_find(wam.s.to_user);
    if (!g) {
        wam_send_done(WA_SEND_TRANSIENT, "the group's member list is gone");
        return;
    }
    if (asked) {
        collect();
        return;
    }
    wa_arena *a = wa_arena_new();
    wa_node *query, *list;
    wa_node *iq = a ? wa_usync_new(wam.c, a, "message", &query, &list) : NULL;
    int missing = 0;
    for (int i = 0; iq && i < g->n; i++) {
        if (wa_devcache_find(g->m[i].user, g->m[i].server, wam_now_ms()))
            continue;
        char jb[128];
        wa_jid j;
        snprintf(jb, sizeof jb, "%s@%s", g->m[i].user, g->m[i].server);
        wa_node *u = wa_node_new(a, "user");
        if (wa_jid_parse(a, jb, &j) != WA_OK)
            continue;
        wa_node_add_attr_jid(a, u, "jid", &j);
        wa_node_add_child(a, list, u);
        missing++;
    }
    if (!iq || missing == 0) {
        wa_arena_free(a);
        if (!iq)
            wam_send_done(WA_SEND_TRANSIENT, "out of memory");
        else
            collect();
        return;
    }
    wa_node *dv = wa_node_new(a, "devices");
    wa_node_add_attr(a, dv, "version", "2");
    wa_node_add_child(a, query, dv);
    wa_node_add_child(a, query, wa_node_new(a, "lid"));
    int r = wa_client_iq(wam.c, a, iq, on_group_usync, (void *)(uintptr_t)wam.s.gen);
    wa_arena_free(a);
    if (r < 0)
        wam_send_done(WA_SEND_LOST, "not connected");
}

/* 1 when name (a device JID) is in the NUL-separated list. */
static int listed(const uint8_t *list, size_t len, const char *name)
{
    size_t nl = strlen(name) + 1;
    for (size_t at = 0; at < len;) {
        const uint8_t *end = memchr(list + at, 0, len - at);
        if (!end)
            return 0;
        size_t el = (size_t)(end - (list + at)) + 1;
        if (el == nl && !memcmp(list + at, name, nl))
            return 1;
        at += el;
    }
    return 0;
}

/* 1 when a device in the list (who got our key) belongs to none of g's
 * members now. */
static int stale_holder(const struct grp *g, const uint8_t *list, size_t len)
{
    for (size_t at = 0; at < len;) {
        const char *e = (const char *)list + at;
        const uint8_t *end = memchr(list + at, 0, len - at);
        if (!end)
            return 0;
        size_t ul = strcspn(e, ":@"), el = (size_t)(end - (list + at)) + 1;
        int member = 0;
        for (int i = 0; i < g->n && !member; i++)
            member = strlen(g->m[i].user) == ul && !memcmp(g->m[i].user, e, ul);
        if (!member)
            return 1;
        at += el;
    }
    return 0;
}

/* Every device of every member (ours but this one), marking those that do
 * not have our current key; then prekeys for them. */
static void collect(void)
{
    struct grp *g = grp_find(wam.s.to_user);
    struct wa_signal sig;
    char own_user[64], gjid[96];
    int own_dev = 0;
    if (!g || wa_client_signal(wam.c, &sig) < 0 || wam_own_address(own_user, sizeof own_user, &own_dev) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "the group's member list is gone");
        return;
    }
    snprintf(gjid, sizeof gjid, "%s@g.us", g->user);
    size_t kl = 0;
    const uint8_t *have = rotate_pending(g->user) ? NULL : wa_signal_store_skdm_sent(sig.st, gjid, &kl);
    if (have && stale_holder(g, have, kl)) {
        /* Someone who has our key is no longer a member (removed while we
         * were not listening, or before a restart): the key goes first. */
        log_info("group: a former member has our sender key; replacing it", LF_S("group", g->user));
        queue_rotation(g->user);
        have = NULL, kl = 0;
    }
    wam.s.ndevs = 0;
    for (int i = 0; i < g->n; i++) {
        struct wa_devcache *e = wa_devcache_find(g->m[i].user, g->m[i].server, wam_now_ms());
        wa_jid mj = {.user = g->m[i].user, .server = g->m[i].server};
        int own = wam_is_own(&mj);
        for (int k = 0; e && k < e->n; k++) {
            if (own && e->dev[k] == own_dev)
                continue; /* this device */
            struct device *d = wam_dev_add();
            if (!d) {
                wam_send_done(WA_SEND_FAILED, "the group has too many devices");
                return;
            }
            snprintf(d->user, sizeof d->user, "%s", g->m[i].user);
            snprintf(d->server, sizeof d->server, "%s", g->m[i].server);
            d->dev = e->dev[k];
            d->own = own;
            char dj[160];
            wam_dev_jid(d, dj, sizeof dj);
            d->skdm = !listed(have, kl, dj);
        }
    }
    wam_fetch_prekeys_or_send();
}

static void on_meta(void *arg, const struct wa_group_info *info, int code, const char *why)
{
    if (!gen_ok(arg))
        return;
    if (!info) {
        char err[160];
        if (code == 0) {
            wam.connected = 0;
            wam_send_done(WA_SEND_LOST, "connection lost while asking for the group's members");
            return;
        }
        snprintf(err, sizeof err, "the group's members could not be listed (server error %d: %.80s)", code,
                 why ? why : "");
        /* Not a member (any more), or no such group: sending cannot work. */
        wam_send_done(code == 403 || code == 404 || code == 406 ? WA_SEND_FAILED : WA_SEND_TRANSIENT, err);
        return;
    }
    struct grp *g = grp_find(wam.s.to_user);
    if (!g) {
        for (int i = 0; i < GROUP_SLOTS && !g; i++)
            if (!G[i].user[0])
                g = &G[i];
        for (int i = 0; i < GROUP_SLOTS && !g; i++)
            if (!g || G[i].used < g->used)
                g = &G[i];
    }
    grp_drop(g);
    if (info->subject && *info->subject && wam.rev.on_group_subject) {
        char gj[96];
        snprintf(gj, sizeof gj, "%s@g.us", wam.s.to_user);
        wam.rev.on_group_subject(wam.rarg, gj, info->subject);
    }
    size_t n = info->n < MAX_MEMBERS ? info->n : MAX_MEMBERS;
    g->m = n ? calloc(n, sizeof *g->m) : NULL;
    if (n && !g->m) {
        wam_send_done(WA_SEND_TRANSIENT, "out of memory");
        return;
    }
    snprintf(g->user, sizeof g->user, "%s", wam.s.to_user);
    g->lid = info->lid_addressing;
    g->fetched_ms = wam_now_ms();
    g->used = ++use_clock;
    for (size_t i = 0; i < n; i++) {
        const char *jid = info->p[i].jid;
        size_t ul = strcspn(jid, "@");
        if (!jid[ul] || ul == 0 || ul >= sizeof g->m[0].user || strlen(jid + ul + 1) >= sizeof g->m[0].server)
            continue;
        memcpy(g->m[g->n].user, jid, ul);
        g->m[g->n].user[ul] = '\0';
        snprintf(g->m[g->n].server, sizeof g->m[0].server, "%s", jid + ul + 1);
        g->n++;
    }
    devices(0);
}

void wam_group_start(void)
{
    struct grp *g = grp_find(wam.s.to_user);
    if (g && wam_now_ms() - g->fetched_ms < GROUP_TTL_MS) {
        g->used = ++use_clock;
        devices(0);
        return;
    }
    char gjid[96];
    snprintf(gjid, sizeof gjid, "%s@g.us", wam.s.to_user);
    if (wa_group_query(wam.c, gjid, on_meta, (void *)(uintptr_t)wam.s.gen) < 0)
        wam_send_done(WA_SEND_LOST, "not connected");
}

/* -- the stanza -- */

/* The participant-list hash: "2:" and the unpadded base64 of the first 6
 * bytes of SHA-256 over the sorted device JIDs in their long form
 * (user.agent:device@server), our own sending device included, as the server
 * compares it: the ack names the server's when they differ. */
static int by_name(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static char *long_jid(const char *user, int dev, const char *server)
{
    char b[200];
    snprintf(b, sizeof b, "%s.0:%d@%s", user, dev, server);
    return strdup(b);
}

static void participant_hash(int lid, char *out, size_t cap)
{
    out[0] = '\0';
    char **names = calloc((size_t)wam.s.ndevs + 1, sizeof *names);
    if (!names)
        return;
    int n = 0, own_dev = 0, ok = 1;
    char own[64];
    const struct wa_creds *cr = wa_client_creds(wam.c);
    if (wam_own_address(own, sizeof own, &own_dev) < 0)
        ok = 0;
    else if (lid && cr && cr->lid[0])
        snprintf(own, sizeof own, "%.*s", (int)strcspn(cr->lid, ":@"), cr->lid);
    if (ok && !(names[n++] = long_jid(own, own_dev, lid ? "lid" : "s.whatsapp.net")))
        ok = 0;
    for (int i = 0; ok && i < wam.s.ndevs; i++)
        if (!(names[n++] = long_jid(wam.s.devs[i].user, wam.s.devs[i].dev, wam.s.devs[i].server)))
            ok = 0;
    EVP_MD_CTX *md = ok ? EVP_MD_CTX_new() : NULL;
    uint8_t h[32];
    unsigned hl = 0;
    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        qsort(names, (size_t)n, sizeof *names, by_name);
        for (int i = 0; i < n; i++)
            EVP_DigestUpdate(md, names[i], strlen(names[i]));
        if (EVP_DigestFinal_ex(md, h, &hl) && hl == 32) {
            unsigned char b64[12];
            EVP_EncodeBlock(b64, h, 6); /* 6 bytes: 8 characters, no padding */
            snprintf(out, cap, "2:%s", (const char *)b64);
        }
    }
    EVP_MD_CTX_free(md);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void wam_group_encrypt_and_send(const uint8_t *plain, size_t plen)
{
    struct wa_signal sig;
    struct grp *g = grp_find(wam.s.to_user);
    char gjid[96], name[96];
    int own_dev = 0;
    if (!g || wa_client_signal(wam.c, &sig) < 0 || own_sender(g->lid, name, sizeof name, &own_dev) < 0) {
        wam_send_done(WA_SEND_TRANSIENT, "the group's member list is gone");
        return;
    }
    snprintf(gjid, sizeof gjid, "%s@g.us", g->user);
    if (rotate_pending(g->user)) {
        /* Our turn on the store: the old key goes now, flushed with this
         * message's encryption (the store may hold others' not yet flushed). */
        if (drop_own_key(sig.st, g->user) < 0) {
            wam_send_done(WA_SEND_TRANSIENT, "out of memory");
            return;
        }
        for (int i = 0; i < ROTATE_SLOTS; i++)
            if (!strcmp(rotate[i], g->user))
                rotate[i][0] = '\0';
        log_info("group: our sender key replaced (a member left)", LF_S("group", g->user));
        for (int i = 0; i < wam.s.ndevs; i++)
            wam.s.devs[i].skdm = 1;
    }
    uint8_t *skdm = NULL, *kmsg = NULL, *padded = NULL, *ct = NULL;
    size_t skl = 0, kml = 0, pl = 0, cl = 0;
    if (wa_gc_own_skdm(sig.sc, sig.g, gjid, name, own_dev, &skdm, &skl) != 0 ||
        wa_msg_append_skdm(NULL, 0, gjid, skdm, skl, &kmsg, &kml) != 0 ||
        wa_msg_pad(plain, plen, &padded, &pl) < 0 ||
        wa_gc_encrypt(sig.sc, sig.g, gjid, name, own_dev, padded, pl, &ct, &cl) != 0) {
        free(skdm);
        free(kmsg);
        free(padded);
        wam_send_done(WA_SEND_FAILED, "cannot encrypt with our sender key");
        return;
    }
    OPENSSL_cleanse(padded, pl);
    free(padded);
    OPENSSL_cleanse(skdm, skl);
    free(skdm);
    struct wa_msg_stanza st;
    wam_stanza_type(&st);
    const char *mediatype = st.mediatype;
    wa_arena *a = wa_arena_new();
    wa_node *msg = wa_node_new(a, "message");
    wa_node *parts = wa_node_new(a, "participants");
    wa_jid j;
    wa_node_add_attr(a, msg, "id", wam.s.id);
    wa_jid_parse(a, gjid, &j);
    wa_node_add_attr_jid(a, msg, "to", &j);
    wa_node_add_attr(a, msg, "type", st.type);
    if (st.edit)
        wa_node_add_attr(a, msg, "edit", st.edit);
    wa_node_add_attr(a, msg, "addressing_mode", g->lid ? "lid" : "pn");
    /* The key, pairwise, to the devices that do not have it; who got it is
     * recorded in the same flush as the encryption. */
    size_t kl = 0;
    const uint8_t *had = wa_signal_store_skdm_sent(sig.st, gjid, &kl);
    struct sbuf list;
    sbuf_init(&list);
    if (had)
        sbuf_add(&list, had, kl);
    int any_pk = 0, nkey = 0;
    for (int i = 0; i < wam.s.ndevs; i++) {
        struct device *d = &wam.s.devs[i];
        char dn[96], dj[160];
        if (!d->skdm)
            continue;
        wa_msg_address_name(d->user, d->server, dn, sizeof dn);
        if (!wa_signal_store_has_session(sig.st, dn, d->dev))
            continue; /* no bundle came for it: it asks with a retry receipt */
        uint8_t *kp = NULL, *kc = NULL;
        size_t kpl = 0, kcl = 0;
        int type = 0;
        if (wa_msg_pad(kmsg, kml, &kp, &kpl) < 0)
            continue;
        int r = wa_msg_encrypt(sig.sc, sig.g, dn, d->dev, kp, kpl, &type, &kc, &kcl);
        OPENSSL_cleanse(kp, kpl);
        free(kp);
        if (r != 0) {
            log_warn("cannot encrypt for a device", LF_S("id", wam.s.id), LF_I("device", d->dev),
                     LF_I("code", r));
            continue;
        }
        wam_dev_jid(d, dj, sizeof dj);
        wa_node *tn = wa_node_new(a, "to");
        wa_jid_parse(a, dj, &j);
        wa_node_add_attr_jid(a, tn, "jid", &j);
        wa_node *en = wa_node_new(a, "enc");
        wa_node_add_attr(a, en, "v", "2");
        wa_node_add_attr(a, en, "type", type == WA_ENC_PKMSG ? "pkmsg" : "msg");
        if (mediatype)
            wa_node_add_attr(a, en, "mediatype", mediatype);
        wa_node_set_bytes(a, en, kc, kcl);
        free(kc);
        wa_node_add_child(a, tn, en);
        wa_node_add_child(a, parts, tn);
        if (!listed(had, kl, dj))
            sbuf_add(&list, dj, strlen(dj) + 1);
        any_pk |= type == WA_ENC_PKMSG;
        nkey++;
    }
    OPENSSL_cleanse(kmsg, kml);
    free(kmsg);
    if (nkey)
        wa_node_add_child(a, msg, parts);
    wa_node *sk = wa_node_new(a, "enc");
    wa_node_add_attr(a, sk, "v", "2");
    wa_node_add_attr(a, sk, "type", "skmsg");
    if (mediatype)
        wa_node_add_attr(a, sk, "mediatype", mediatype);
    if (st.hide_on_failure)
        wa_node_add_attr(a, sk, "decrypt-fail", "hide");
    wa_node_set_bytes(a, sk, ct, cl);
    free(ct);
    wa_node_add_child(a, msg, sk);
    if (list.len != kl &&
        wa_signal_store_set_skdm_sent(sig.st, gjid, (const uint8_t *)list.buf, list.len) < 0)
        log_warn("group: cannot record who has our sender key; it goes to them again", LF_S("group", gjid));
    sbuf_free(&list);
    char phash[24];
    participant_hash(g && g->lid, phash, sizeof phash);
    if (phash[0])
        wa_node_add_attr(a, msg, "phash", phash);
    log_info("group message encrypted", LF_S("id", wam.s.id), LF_S("group", gjid),
             LF_I("devices", wam.s.ndevs), LF_I("key_to", nkey));
    wam_queue_outgoing(a, msg, wam.s.ndevs, any_pk, phash);
}
