#include "authz.h"

#include <stdio.h>
#include <string.h>

#include "common/json.h"

/* The permissions by name ("resource:action"), in the order lists and
 * scopes are written. */
static const struct {
    enum perm p;
    const char *name;
} perms[] = {
    {P_SESSION_READ, "session:read"},     {P_SESSION_CONTROL, "session:control"},
    {P_MESSAGES_READ, "messages:read"},   {P_MESSAGES_SEND, "messages:send"},
    {P_CHATS_READ, "chats:read"},         {P_CONTACTS_READ, "contacts:read"},
    {P_CONTACTS_WRITE, "contacts:write"}, {P_MEDIA_READ, "media:read"},
    {P_MEDIA_WRITE, "media:write"},       {P_GROUPS_READ, "groups:read"},
    {P_GROUPS_WRITE, "groups:write"},     {P_EVENTS_READ, "events:read"},
    {P_WEBHOOKS_READ, "webhooks:read"},   {P_WEBHOOKS_WRITE, "webhooks:write"},
    {P_USERS_READ, "users:read"},         {P_USERS_WRITE, "users:write"},
    {P_KEYS_READ, "keys:read"},           {P_KEYS_WRITE, "keys:write"},
    {P_AUDIT_READ, "audit:read"},
};
#define NPERMS (sizeof perms / sizeof perms[0])

/* What each role may do. A member works with messages; a viewer reads;
 * only an admin controls the WhatsApp session, webhooks, users, everyone's
 * keys and the audit log. */
static const perm_mask viewer_perms =
    PERM_BIT(P_SESSION_READ) | PERM_BIT(P_MESSAGES_READ) | PERM_BIT(P_CHATS_READ) |
    PERM_BIT(P_CONTACTS_READ) | PERM_BIT(P_MEDIA_READ) | PERM_BIT(P_GROUPS_READ) | PERM_BIT(P_EVENTS_READ);
static const perm_mask member_extra = PERM_BIT(P_MESSAGES_SEND) | PERM_BIT(P_MEDIA_WRITE) |
                                      PERM_BIT(P_GROUPS_WRITE) | PERM_BIT(P_CONTACTS_WRITE);

static const char *const role_names[] = {
    [ROLE_NONE] = "none", [ROLE_VIEWER] = "viewer", [ROLE_MEMBER] = "member", [ROLE_ADMIN] = "admin"};

enum role authz_role_parse(const char *name)
{
    if (!name)
        return ROLE_NONE;
    if (!strcmp(name, "admin"))
        return ROLE_ADMIN;
    if (!strcmp(name, "member") || !strcmp(name, "user"))
        return ROLE_MEMBER;
    if (!strcmp(name, "viewer"))
        return ROLE_VIEWER;
    return ROLE_NONE;
}

enum role authz_role_of(const char *name)
{
    enum role r = authz_role_parse(name);
    return r == ROLE_NONE ? ROLE_VIEWER : r;
}

const char *authz_role_name(enum role r)
{
    return (unsigned)r < sizeof role_names / sizeof role_names[0] ? role_names[r] : "none";
}

perm_mask authz_role_perms(enum role r)
{
    switch (r) {
    case ROLE_ADMIN:
        return PERM_ALL;
    case ROLE_MEMBER:
        return viewer_perms | member_extra;
    case ROLE_VIEWER:
        return viewer_perms;
    default:
        return 0;
    }
}

/* The resource part of a name: its length. */
static size_t resource_len(const char *name)
{
    return (size_t)(strchr(name, ':') - name);
}

const char *authz_perm_name(enum perm p)
{
    if (p == PERM_PUBLIC)
        return "public";
    if (p == PERM_SIGNED_IN)
        return "signed-in";
    for (size_t i = 0; i < NPERMS; i++)
        if (perms[i].p == p)
            return perms[i].name;
    return NULL;
}

enum perm authz_perm_by_name(const char *resource, size_t rlen, const char *action, size_t alen)
{
    for (size_t i = 0; i < NPERMS; i++) {
        const char *n = perms[i].name;
        size_t nr = resource_len(n);
        if (nr == rlen && !memcmp(n, resource, rlen) && strlen(n + nr + 1) == alen &&
            !memcmp(n + nr + 1, action, alen))
            return perms[i].p;
    }
    return PERM_UNSET;
}

static void set_bad(char *bad, size_t badlen, const char *r, const char *a)
{
    if (bad && badlen)
        snprintf(bad, badlen, "%s%s%s", r, a ? ":" : "", a ? a : "");
}

int authz_scopes_of(yajl_val t, int strict, perm_mask *out, char *bad, size_t badlen)
{
    *out = 0;
    if (bad && badlen)
        bad[0] = '\0';
    if (!t || !YAJL_IS_OBJECT(t))
        return -1;
    perm_mask m = 0;
    for (size_t i = 0; i < t->u.object.len; i++) {
        const char *r = t->u.object.keys[i];
        yajl_val acts = t->u.object.values[i];
        if (!YAJL_IS_ARRAY(acts)) {
            set_bad(bad, badlen, r, NULL);
            return -1;
        }
        for (size_t k = 0; k < acts->u.array.len; k++) {
            yajl_val a = acts->u.array.values[k];
            if (!YAJL_IS_STRING(a)) {
                set_bad(bad, badlen, r, NULL);
                return -1;
            }
            enum perm p = authz_perm_by_name(r, strlen(r), a->u.string, strlen(a->u.string));
            if (p != PERM_UNSET)
                m |= PERM_BIT(p);
            else if (strict) {
                set_bad(bad, badlen, r, a->u.string);
                return -1;
            }
        }
    }
    *out = m;
    return 0;
}

int authz_parse_scopes(const char *json, size_t len, int strict, perm_mask *out, char *bad, size_t badlen)
{
    char err[64];
    yajl_val t = json_parse(json, len, 65536, err, sizeof err);
    int rc = authz_scopes_of(t, strict, out, bad, badlen);
    yajl_tree_free(t);
    return rc;
}

perm_mask authz_key_perms(enum role owner, int has_scopes, perm_mask scopes)
{
    perm_mask role = authz_role_perms(owner);
    return has_scopes ? scopes & role : role;
}

/* type (tlen bytes, not terminated) is exactly name / begins with prefix. */
static int is(const char *type, size_t tlen, const char *name)
{
    return tlen == strlen(name) && !memcmp(type, name, tlen);
}

static int begins(const char *type, size_t tlen, const char *prefix)
{
    size_t n = strlen(prefix);
    return tlen >= n && !memcmp(type, prefix, n);
}

enum perm authz_event_perm(const char *type, size_t tlen)
{
    if (begins(type, tlen, "audit."))
        return P_AUDIT_READ;
    if (is(type, tlen, "session.qr"))
        return P_SESSION_CONTROL;
    if (begins(type, tlen, "session."))
        return P_SESSION_READ;
    if (begins(type, tlen, "message."))
        return P_MESSAGES_READ;
    return P_EVENTS_READ;
}

enum authz_change authz_access_change(const char *type, size_t tlen)
{
    if (is(type, tlen, "audit.user.role_changed") || is(type, tlen, "audit.user.deleted"))
        return AUTHZ_USER_CHANGED;
    if (is(type, tlen, "audit.apikey.revoked"))
        return AUTHZ_KEY_CHANGED;
    return AUTHZ_NO_CHANGE;
}

void authz_scopes_json(struct jsonw *w, perm_mask m)
{
    jw_obj(w);
    const char *open = NULL; /* the name whose resource is open */
    for (size_t i = 0; i < NPERMS; i++) {
        if (!(m & PERM_BIT(perms[i].p)))
            continue;
        const char *n = perms[i].name;
        size_t nr = resource_len(n);
        if (!open || resource_len(open) != nr || memcmp(open, n, nr)) {
            if (open)
                jw_arr_end(w);
            char res[64];
            snprintf(res, sizeof res, "%.*s", (int)nr, n);
            jw_key(w, res);
            jw_arr(w);
            open = n;
        }
        jw_str(w, n + nr + 1);
    }
    if (open)
        jw_arr_end(w);
    jw_obj_end(w);
}

void authz_perms_list_json(struct jsonw *w, perm_mask m)
{
    jw_arr(w);
    for (size_t i = 0; i < NPERMS; i++)
        if (m & PERM_BIT(perms[i].p))
            jw_str(w, perms[i].name);
    jw_arr_end(w);
}
