#include "msg_content.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "supervisor/wa/wa_message.h"

#define CONTENT_MAX (4u << 20) /* the API allows far less; a bound on what is parsed */

int msg_content_type(const char *type)
{
    static const char *const types[] = {"location", "contacts", "reaction", "edit", "revoke", "disappearing"};
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
                                          : build_contacts(v, reply, out, outlen, why);
    yajl_tree_free(v);
    return rc;
}
