/* Authorization: roles, the permissions they grant, and API-key scopes.
 *
 * A permission is a (resource, action) pair, written "resource:action" and,
 * in an API key's "permissions" column, as Better Auth's api-key plugin
 * stores it: a JSON object of resource -> [actions], e.g.
 * {"messages":["read","send"]}. A principal holds a set of them (a bit
 * mask); a route names the one it needs. Deny by default: an unknown role
 * grants nothing beyond "viewer", an unknown permission name nothing. */
#ifndef WAPI_COMMON_AUTHZ_H
#define WAPI_COMMON_AUTHZ_H
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "common/jsonw.h"

enum perm {
    PERM_UNSET = 0, /* a route that names none: refused at start */
    PERM_PUBLIC,    /* no credentials needed */
    PERM_SIGNED_IN, /* any signed-in user or valid key, whatever its scopes */
    P_SESSION_READ,
    P_SESSION_CONTROL,
    P_MESSAGES_READ,
    P_MESSAGES_SEND,
    P_CHATS_READ,
    P_CONTACTS_READ,
    P_MEDIA_READ,
    P_MEDIA_WRITE,
    P_GROUPS_READ,
    P_GROUPS_WRITE,
    P_EVENTS_READ,
    P_WEBHOOKS_READ,
    P_WEBHOOKS_WRITE,
    P_USERS_READ,
    P_USERS_WRITE,
    P_KEYS_READ,
    P_KEYS_WRITE,
    P_AUDIT_READ,
    P_CONTACTS_WRITE, /* last: the others keep their bits */
    PERM_COUNT
};

typedef uint64_t perm_mask;
#define PERM_BIT(p) ((perm_mask)1 << (p))
/* Every real permission (P_*), without the pseudo ones. */
#define PERM_ALL                                                                                             \
    (((PERM_BIT(PERM_COUNT) - 1)) &                                                                          \
     ~(PERM_BIT(PERM_UNSET) | PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_SIGNED_IN)))

enum role { ROLE_NONE = 0, ROLE_VIEWER, ROLE_MEMBER, ROLE_ADMIN };

/* "admin", "member", "viewer"; Better Auth's admin-plugin role "user" is a
 * member. Anything else (NULL, a role another application invented) is a
 * viewer: signed in, read only. */
enum role authz_role_of(const char *name);
/* Exactly one of the three names, for input validation; ROLE_NONE otherwise
 * ("user" is accepted as member). */
enum role authz_role_parse(const char *name);
const char *authz_role_name(enum role r);
perm_mask authz_role_perms(enum role r);

/* "messages:send" for P_MESSAGES_SEND; "public" / "signed-in" for the
 * pseudo permissions; NULL for PERM_UNSET and out of range. */
const char *authz_perm_name(enum perm p);
/* The permission named "resource:action", or PERM_UNSET. */
enum perm authz_perm_by_name(const char *resource, size_t rlen, const char *action, size_t alen);

/* A key's permissions column. NULL or empty: the key has its owner's role
 * (keys made before scopes existed keep working). Otherwise the named
 * permissions; unknown resources and actions grant nothing. Returns 0, or -1
 * when json is not an object of string arrays (then *out = 0: nothing). When
 * strict, an unknown name is an error too, and *bad gets it (for a 400). */
int authz_parse_scopes(const char *json, size_t len, int strict, perm_mask *out, char *bad, size_t badlen);
/* The same from a parsed JSON value. */
int authz_scopes_of(yajl_val obj, int strict, perm_mask *out, char *bad, size_t badlen);
/* What a key may do: its scopes (or its owner's role when it has none),
 * never more than its owner's role now. */
perm_mask authz_key_perms(enum role owner, int has_scopes, perm_mask scopes);
/* The permission needed to see an event of this type on a live stream:
 * audit.* needs audit:read, session.qr session:control (it links a phone),
 * session.* session:read, message.* messages:read, the rest events:read. */
enum perm authz_event_perm(const char *type, size_t tlen);
/* Whose access an audit event changes: its target is a user (role changed,
 * user deleted) or an API key (revoked); AUTHZ_NO_CHANGE otherwise. */
enum authz_change { AUTHZ_NO_CHANGE, AUTHZ_USER_CHANGED, AUTHZ_KEY_CHANGED };
enum authz_change authz_access_change(const char *type, size_t tlen);

/* Writes the value {"resource":["action",...],...} in the table's order. */
void authz_scopes_json(struct jsonw *w, perm_mask m);
/* Writes the value ["resource:action",...]. */
void authz_perms_list_json(struct jsonw *w, perm_mask m);

#endif
