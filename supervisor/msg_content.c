#include "msg_content.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/hex.h"
#include "common/json.h"
#include "supervisor/wa/wa_message.h"
#include "supervisor/wa/wa_messaging.h"

#define CONTENT_MAX (4u << 20) /* the API allows far less; a bound on what is parsed */

int msg_content_type(const char *type)
{
    static const char *const types[] = {"location", "contacts", "poll",   "vote",
                                        "reaction", "edit",     "revoke", "disappearing"};
    for (size_t i = 0; type && i < sizeof types / sizeof *types; i++)
        if (!strcmp(type, types[i]))
            return 1;
    return 0;
}

static int num(yajl_val o, const char *key, double *v)
{
    yajl_val x = json_member(o, key);
    if (!x || !YAJL_IS_NUMBER(x))
        return -1;
    *v = YAJL_GET_DOUBLE(x);
    return isfinite(*v) ? 0 : -1;
}

static int build_location(yajl_val o, const char *reply_to, uint8_t **out, size_t *outlen, const char **why)
{
    /* The strings stay the tree's: the builder only reads them. */
    struct wa_msg_location l = {0};
    if (!YAJL_IS_OBJECT(o) || num(o, "latitude", &l.latitude) < 0 || num(o, "longitude", &l.longitude) < 0) {
        *why = "the stored location has no coordinates";
        return -1;
    }
    l.name = (char *)json_str(o, "name");
    l.address = (char *)json_str(o, "address");
    l.url = (char *)json_str(o, "url");
    l.comment = (char *)json_str(o, "comment");
    if (wa_msg_build_location(&l, reply_to, NULL, out, outlen) < 0) {
        *why = "the stored location cannot be sent";
        return -1;
    }
    return 0;
}

static int build_contacts(yajl_val a, const char *reply_to, uint8_t **out, size_t *outlen, const char **why)
{
    size_t n = YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    if (n < 1 || n > WA_MSG_MAX_CONTACTS) {
        *why = "the stored contacts are not a list of 1 to 64 cards";
        return -1;
    }
    struct wa_msg_contact c[WA_MSG_MAX_CONTACTS];
    for (size_t i = 0; i < n; i++) {
        c[i].vcard = (char *)json_str(a->u.array.values[i], "vcard");
        c[i].display_name = (char *)json_str(a->u.array.values[i], "display_name");
        if (!c[i].vcard) {
            *why = "a stored contact has no vcard";
            return -1;
        }
    }
    if (wa_msg_build_contacts(c, n, NULL, reply_to, NULL, out, outlen) < 0) {
        *why = "the stored contacts cannot be sent";
        return -1;
    }
    return 0;
}

/* {question, options, multiple, secret (hex)}: the secret is the outbox
 * query's, added to the content the API shows. */
static int build_poll(yajl_val o, const char *reply_to, uint8_t **out, size_t *outlen, const char **why)
{
    struct wa_msg_poll p = {0};
    char *opts[WA_MSG_POLL_MAX_OPTIONS];
    yajl_val a = YAJL_IS_OBJECT(o) ? json_member(o, "options") : NULL, m = json_member(o, "multiple");
    const char *sec = YAJL_IS_OBJECT(o) ? json_str(o, "secret") : NULL;
    size_t n = a && YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    p.question = YAJL_IS_OBJECT(o) ? (char *)json_str(o, "question") : NULL;
    if (!p.question || n < WA_MSG_POLL_MIN_OPTIONS || n > WA_MSG_POLL_MAX_OPTIONS) {
        *why = "the stored poll has no question or not 2 to 12 options";
        return -1;
    }
    if (!sec || hex_decode(sec, p.secret, sizeof p.secret) < 0) {
        *why = "the poll's secret is missing";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        yajl_val x = a->u.array.values[i];
        if (!YAJL_IS_STRING(x)) {
            *why = "a stored poll option is not a string";
            OPENSSL_cleanse(p.secret, sizeof p.secret);
            return -1;
        }
        opts[i] = x->u.string;
    }
    p.options = opts;
    p.noptions = n;
    p.multiple = m && YAJL_IS_TRUE(m);
    p.has_secret = 1;
    int r = wa_msg_build_poll(&p, reply_to, NULL, out, outlen);
    OPENSSL_cleanse(p.secret, sizeof p.secret);
    if (r < 0)
        *why = "the stored poll cannot be sent";
    return r;
}

/* Our vote {options, secret (the poll's, hex)} on poll r->target. We vote
 * as the JID the chat is addressed by (LID chats: our LID; else our phone
 * number), and so are named as the creator of a poll of ours. */
static int build_vote(const struct msg_row *r, yajl_val o, uint8_t **out, size_t *outlen, const char **why)
{
    uint8_t secret[WA_MSG_POLL_SECRET_LEN];
    const char *opts[WA_MSG_POLL_MAX_OPTIONS];
    yajl_val a = YAJL_IS_OBJECT(o) ? json_member(o, "options") : NULL;
    const char *sec = YAJL_IS_OBJECT(o) ? json_str(o, "secret") : NULL;
    size_t n = a && YAJL_IS_ARRAY(a) ? a->u.array.len : 0;
    char pn[128], lid[128];
    wa_messaging_own_jids(pn, sizeof pn, lid, sizeof lid);
    size_t cl = r->chat ? strlen(r->chat) : 0;
    const char *me = cl > 4 && !strcmp(r->chat + cl - 4, "@lid") && lid[0] ? lid : pn;
    const char *creator = r->target_from_me ? me : r->target_sender ? r->target_sender : r->chat;
    if (!r->target || !r->chat || !a || !YAJL_IS_ARRAY(a) || n > WA_MSG_POLL_MAX_OPTIONS) {
        *why = "the vote's poll is gone";
        return -1;
    }
    if (!sec || hex_decode(sec, secret, sizeof secret) < 0 || !me[0]) {
        *why = !me[0] ? "our own JID is not known yet" : "the poll's secret is missing";
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!(opts[i] = YAJL_IS_STRING(a->u.array.values[i]) ? a->u.array.values[i]->u.string : NULL)) {
            *why = "a stored vote option is not a string";
            OPENSSL_cleanse(secret, sizeof secret);
            return -1;
        }
    int rc = wa_msg_build_poll_vote(secret, r->chat, r->target, r->target_from_me, creator, me, opts, n,
                                    r->ts_ms, out, outlen);
    OPENSSL_cleanse(secret, sizeof secret);
    if (rc < 0)
        *why = "the vote cannot be sent";
    return rc;
}

int msg_content_build(const struct msg_row *r, uint8_t **out, size_t *outlen, const char **why)
{
    char err[128];
    *why = "the message has no content";
    if (!msg_content_type(r->type))
        return -1;
    if (!strcmp(r->type, "reaction")) {
        if (!r->target || !r->reaction || !r->chat) {
            *why = "the reaction's message is gone";
            return -1;
        }
        if (wa_msg_build_reaction(r->chat, r->target, r->target_from_me, r->target_sender, r->reaction,
                                  r->ts_ms, out, outlen) < 0) {
            *why = "the reaction cannot be sent";
            return -1;
        }
        return 0;
    }
    if (!strcmp(r->type, "edit") || !strcmp(r->type, "revoke")) {
        int e = !strcmp(r->type, "edit");
        if (!r->target || !r->chat || (e && !r->text)) {
            *why = "the message it is about is gone";
            return -1;
        }
        if ((e ? wa_msg_build_edit(r->chat, r->target, r->text, r->ts_ms, out, outlen)
               : wa_msg_build_revoke(r->chat, r->target, r->target_from_me, r->target_sender, out, outlen)) <
            0) {
            *why = e ? "the edit cannot be sent" : "the deletion cannot be sent";
            return -1;
        }
        return 0;
    }
    if (!r->content)
        return -1;
    yajl_val v = json_parse(r->content, strlen(r->content), CONTENT_MAX, err, sizeof err);
    if (!v) {
        *why = "the stored content is not JSON";
        return -1;
    }
    if (!strcmp(r->type, "disappearing")) {
        /* Our change of a 1:1 chat's timer: {"seconds": N}. */
        double secs = -1;
        int bad = num(v, "seconds", &secs) < 0 || secs < 0 || secs > WA_MSG_EXPIRATION_MAX ||
                  wa_msg_build_disappearing((uint32_t)secs, r->ts_ms / 1000, out, outlen) < 0;
        yajl_tree_free(v);
        if (bad)
            *why = "the stored timer cannot be sent";
        return bad ? -1 : 0;
    }
    const char *reply = r->reply_to && *r->reply_to ? r->reply_to : NULL;
    int rc = !strcmp(r->type, "location") ? build_location(v, reply, out, outlen, why)
             : !strcmp(r->type, "poll")   ? build_poll(v, reply, out, outlen, why)
             : !strcmp(r->type, "vote")   ? build_vote(r, v, out, outlen, why)
                                          : build_contacts(v, reply, out, outlen, why);
    yajl_tree_free(v);
    return rc;
}
