/* Roles, permissions and key scopes (common/authz.c), and the router's
 * side of them (workers/http.c, included for its statics): every route of
 * the table names a permission, tables that do not are refused, and paths
 * resolve to the route they should. */
#include "common/authz.h"
#include "workers/http.c"
#include "t.h"
#include "workers/handlers.h"

static void test_roles(void)
{
    T_EQ_INT(authz_role_parse("admin"), ROLE_ADMIN, "role: admin");
    T_EQ_INT(authz_role_parse("member"), ROLE_MEMBER, "role: member");
    T_EQ_INT(authz_role_parse("user"), ROLE_MEMBER, "role: Better Auth's user is a member");
    T_EQ_INT(authz_role_parse("viewer"), ROLE_VIEWER, "role: viewer");
    T_EQ_INT(authz_role_parse("Admin"), ROLE_NONE, "role: names are exact");
    T_EQ_INT(authz_role_parse(NULL), ROLE_NONE, "role: none parses to none");
    T_EQ_INT(authz_role_of(NULL), ROLE_VIEWER, "role: a user without a role reads only");
    T_EQ_INT(authz_role_of("owner"), ROLE_VIEWER, "role: an unknown role reads only");
    perm_mask v = authz_role_perms(ROLE_VIEWER), m = authz_role_perms(ROLE_MEMBER),
              a = authz_role_perms(ROLE_ADMIN);
    T_CHECK((v & m) == v && v != m, "roles: a member can do what a viewer can, and more");
    T_CHECK((m & a) == m && m != a, "roles: an admin can do what a member can, and more");
    T_CHECK(a == PERM_ALL, "roles: an admin has every permission");
    T_EQ_INT(authz_role_perms(ROLE_NONE), 0, "roles: no role, no permission");
    T_CHECK(!(v & PERM_BIT(P_MESSAGES_SEND)) && (m & PERM_BIT(P_MESSAGES_SEND)),
            "roles: members send, viewers do not");
    T_CHECK(!(m & PERM_BIT(P_SESSION_CONTROL)) && !(m & PERM_BIT(P_WEBHOOKS_WRITE)) &&
                !(m & PERM_BIT(P_USERS_WRITE)),
            "roles: members control neither the session, webhooks nor users");
    T_CHECK(!(a & (PERM_BIT(PERM_UNSET) | PERM_BIT(PERM_PUBLIC) | PERM_BIT(PERM_SIGNED_IN))),
            "roles: the pseudo permissions are granted to no one");
}

static void test_names(void)
{
    int ok = 1;
    for (int p = P_SESSION_READ; p < PERM_COUNT; p++) {
        const char *n = authz_perm_name((enum perm)p);
        const char *colon = n ? strchr(n, ':') : NULL;
        if (!colon || (int)authz_perm_by_name(n, (size_t)(colon - n), colon + 1, strlen(colon + 1)) != p)
            ok = 0;
    }
    T_CHECK(ok, "names: every permission has a resource:action name that maps back to it");
    T_EQ_STR(authz_perm_name(P_MESSAGES_SEND), "messages:send", "names: messages:send");
    T_CHECK(authz_perm_name(PERM_UNSET) == NULL, "names: unset has none");
    T_EQ_INT(authz_perm_by_name("messages", 8, "fly", 3), PERM_UNSET, "names: unknown action");
}

static void test_scopes(void)
{
    perm_mask m;
    char bad[64];
    const char *j = "{\"messages\":[\"read\",\"send\"],\"chats\":[\"read\"]}";
    T_EQ_INT(authz_parse_scopes(j, strlen(j), 1, &m, bad, sizeof bad), 0,
             "scopes: Better Auth's shape parses");
    T_CHECK(m == (PERM_BIT(P_MESSAGES_READ) | PERM_BIT(P_MESSAGES_SEND) | PERM_BIT(P_CHATS_READ)),
            "scopes: exactly the named permissions");
    struct sbuf b;
    sbuf_init(&b);
    struct jsonw w;
    jw_init(&w, &b);
    authz_scopes_json(&w, m);
    T_EQ_INT(jw_finish(&w), 0, "scopes: written");
    T_EQ_STR(b.buf, "{\"messages\":[\"read\",\"send\"],\"chats\":[\"read\"]}",
             "scopes: written back the same way");
    sbuf_reset(&b);
    jw_init(&w, &b);
    authz_perms_list_json(&w, PERM_BIT(P_AUDIT_READ) | PERM_BIT(P_SESSION_READ));
    T_EQ_INT(jw_finish(&w), 0, "scopes: list written");
    T_EQ_STR(b.buf, "[\"session:read\",\"audit:read\"]", "scopes: as a list of names");
    sbuf_free(&b);
    const char *u = "{\"messages\":[\"read\",\"fly\"],\"files\":[\"write\"]}";
    T_EQ_INT(authz_parse_scopes(u, strlen(u), 0, &m, NULL, 0), 0,
             "scopes: unknown names are ignored when reading");
    T_CHECK(m == PERM_BIT(P_MESSAGES_READ), "scopes: ... and grant nothing");
    T_EQ_INT(authz_parse_scopes(u, strlen(u), 1, &m, bad, sizeof bad), -1, "scopes: refused when strict");
    T_EQ_STR(bad, "messages:fly", "scopes: the unknown one is named");
    const char *bads[] = {"[]", "{\"messages\":\"read\"}", "{\"messages\":[1]}", "nope",
                          "{\"messages\":[\"read\""};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        m = 7;
        T_CHECK(authz_parse_scopes(bads[i], strlen(bads[i]), 0, &m, NULL, 0) == -1 && m == 0,
                "scopes: malformed JSON grants nothing");
    }
    perm_mask send = PERM_BIT(P_MESSAGES_SEND) | PERM_BIT(P_WEBHOOKS_WRITE);
    T_CHECK(authz_key_perms(ROLE_MEMBER, 1, send) == PERM_BIT(P_MESSAGES_SEND),
            "keys: scopes never exceed the owner's role");
    T_CHECK(authz_key_perms(ROLE_VIEWER, 1, send) == 0,
            "keys: a demoted owner takes the key's powers with them");
    T_CHECK(authz_key_perms(ROLE_MEMBER, 0, 0) == authz_role_perms(ROLE_MEMBER),
            "keys: no scopes: the owner's role");
}

static void test_events(void)
{
    static const struct {
        const char *type;
        enum perm need;
    } ev[] = {{"audit.webhook.created", P_AUDIT_READ}, {"session.qr", P_SESSION_CONTROL},
              {"session.qrx", P_SESSION_READ},         {"session.status", P_SESSION_READ},
              {"message.received", P_MESSAGES_READ},   {"history.progress", P_EVENTS_READ}};
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
        T_EQ_INT(authz_event_perm(ev[i].type, strlen(ev[i].type)), ev[i].need, ev[i].type);
    T_CHECK(!(authz_role_perms(ROLE_MEMBER) & PERM_BIT(authz_event_perm("session.qr", 10))),
            "events: a member's stream never carries the QR code");
    static const struct {
        const char *type;
        enum authz_change ch;
    } ac[] = {{"audit.user.role_changed", AUTHZ_USER_CHANGED}, {"audit.user.deleted", AUTHZ_USER_CHANGED},
              {"audit.apikey.revoked", AUTHZ_KEY_CHANGED},     {"audit.apikey.created", AUTHZ_NO_CHANGE},
              {"audit.user.created", AUTHZ_NO_CHANGE},         {"audit.user.deleted.x", AUTHZ_NO_CHANGE}};
    for (size_t i = 0; i < sizeof ac / sizeof ac[0]; i++)
        T_EQ_INT(authz_access_change(ac[i].type, strlen(ac[i].type)), ac[i].ch, ac[i].type);
}

static void noop(struct rq *rq)
{
    (void)rq;
}

static void test_table_checks(void)
{
    char err[160];
    T_EQ_INT(http_routes_check(worker_routes, err, sizeof err), 0,
             "router: every route of the table names a permission");
    const struct route unset[] = {
        {M_GET, "/a", PERM_PUBLIC, noop, 0}, {M_GET, "/b", PERM_UNSET, noop, 0}, {0}};
    T_EQ_INT(http_routes_check(unset, err, sizeof err), -1,
             "router: a route without a permission is refused");
    T_CHECK(strstr(err, "/b") && strstr(err, "permission"), "router: ... naming it");
    const struct route bad[][2] = {
        {{M_GET, "a", PERM_PUBLIC, noop, 0}, {0}},
        {{M_GET, "/a//b", PERM_PUBLIC, noop, 0}, {0}},
        {{M_GET, "/*/b", PERM_PUBLIC, noop, 0}, {0}},
        {{M_GET, "/{a", PERM_PUBLIC, noop, 0}, {0}},
        {{M_GET, "/a", PERM_PUBLIC, NULL, 0}, {0}},
        {{0, "/a", PERM_PUBLIC, noop, 0}, {0}},
        {{M_GET, "/a", (enum perm)PERM_COUNT, noop, 0}, {0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        T_EQ_INT(http_routes_check(bad[i], err, sizeof err), -1, "router: a malformed route is refused");
    const struct route twice[] = {
        {M_GET | M_POST, "/a", P_CHATS_READ, noop, 0}, {M_POST, "/a", P_MESSAGES_SEND, noop, 0}, {0}};
    T_EQ_INT(http_routes_check(twice, err, sizeof err), -1, "router: a method routed twice is refused");
}

/* route_find without the parameters. */
static const struct route *route_find_t(const char *path, size_t n, int mbit, int *allowed)
{
    h2o_iovec_t params[HTTP_MAX_PARAMS];
    return route_find(path, n, mbit, allowed, params);
}

static void test_matching(void)
{
    H.routes = worker_routes;
    static const struct {
        const char *method, *path;
        http_handler want;
        int want_allowed; /* when want is NULL */
    } cases[] = {
        {"GET", "/", h_dashboard, 0},
        {"GET", "/assets/pages/keys.js", h_asset, 0},
        {"GET", "/api/messages/ABC", h_message_get, 0},
        {"POST", "/api/messages/ABC/read", h_message_read, 0},
        {"POST", "/api/messages/ABC", NULL, M_GET | M_PATCH | M_DELETE},
        {"PATCH", "/api/messages/ABC", h_message_edit, 0},
        {"DELETE", "/api/messages/ABC", h_message_delete, 0},
        {"POST", "/api/messages/ABC/forward", h_message_forward, 0},
        {"GET", "/api/messages/ABC/poll", h_message_poll, 0},
        {"POST", "/api/messages/ABC/poll", NULL, M_GET},
        {"POST", "/api/messages/ABC/vote", h_message_vote, 0},
        {"GET", "/api/messages/ABC/vote", NULL, M_POST},
        {"GET", "/api/groups/1203630@g.us", h_group_get, 0},
        {"GET", "/api/groups", h_groups_list, 0},
        {"POST", "/api/groups", h_group_create, 0},
        {"POST", "/api/groups/1203630@g.us/participants", h_group_participants, 0},
        {"POST", "/api/groups/1203630@g.us/leave", h_group_leave, 0},
        {"POST", "/api/groups/join", h_group_join, 0},
        {"PATCH", "/api/groups/1203630@g.us", h_group_patch, 0},
        {"DELETE", "/api/groups/1203630@g.us/invite", h_group_invite_revoke, 0},
        {"GET", "/api/groups/1203630@g.us/picture", h_group_picture, 0},
        {"PUT", "/api/groups/1203630@g.us/picture", h_group_picture_set, 0},
        {"DELETE", "/api/groups/1203630@g.us/picture", h_group_picture_remove, 0},
        {"POST", "/api/groups/1203630@g.us/picture", NULL, M_GET | M_PUT | M_DELETE},
        {"GET", "/api/lids/pn/15550001", h_lid_by_pn, 0},
        {"GET", "/api/contacts/15550001@s.whatsapp.net/picture", h_contact_picture, 0},
        {"GET", "/api/contacts/15550001/about", h_contact_about, 0},
        {"GET", "/api/contacts/15550001/business", h_contact_business, 0},
        {"POST", "/api/contacts/15550001/block", h_contact_block, 0},
        {"DELETE", "/api/contacts/15550001/block", h_contact_unblock, 0},
        {"GET", "/api/blocklist", h_blocklist, 0},
        {"PUT", "/api/profile/about", h_profile_about, 0},
        {"PUT", "/api/profile/name", h_profile_name, 0},
        {"PUT", "/api/profile/picture", h_profile_picture_set, 0},
        {"DELETE", "/api/profile/picture", h_profile_picture_remove, 0},
        {"POST", "/api/messages", h_messages_send, 0},
        {"GET", "/api/messages", NULL, M_POST},
        {"GET", "/api/messages/ABC/other", h_api_not_found, 0},
        {"GET", "/api/chats/", h_api_not_found, 0},
        {"GET", "/api/chats/1@s.whatsapp.net/messages", h_chat_messages, 0},
        {"GET", "/api/chats/1@s.whatsapp.net", h_chat_get, 0},
        {"PUT", "/api/chats/1@s.whatsapp.net/disappearing", h_chat_disappearing, 0},
        {"POST", "/api/chats/1@s.whatsapp.net/disappearing", NULL, M_PUT},
        {"PUT", "/api/chats/1@s.whatsapp.net", NULL, M_GET},
        {"POST", "/api/chats/1@s.whatsapp.net/history", h_chat_history, 0},
        {"GET", "/api/chats/1@s.whatsapp.net/history", NULL, M_POST},
        {"GET", "/api/history", h_history_list, 0},
        {"POST", "/api/history", NULL, M_GET},
        {"POST", "/api/chats/1@s.whatsapp.net/archive", h_chat_archive, 0},
        {"DELETE", "/api/chats/1@s.whatsapp.net/archive", h_chat_unarchive, 0},
        {"POST", "/api/chats/1@s.whatsapp.net/pin", h_chat_pin, 0},
        {"DELETE", "/api/chats/1@s.whatsapp.net/pin", h_chat_unpin, 0},
        {"POST", "/api/chats/1@s.whatsapp.net/mute", h_chat_mute, 0},
        {"DELETE", "/api/chats/1@s.whatsapp.net/mute", h_chat_unmute, 0},
        {"POST", "/api/chats/1@s.whatsapp.net/read", h_chat_read, 0},
        {"DELETE", "/api/chats/1@s.whatsapp.net/read", h_chat_unread, 0},
        {"PUT", "/api/chats/1@s.whatsapp.net/archive", NULL, M_POST | M_DELETE},
        {"GET", "/api/labels", h_labels_list, 0},
        {"DELETE", "/api/webhooks/wh_1", h_webhook_delete, 0},
        {"PUT", "/api/webhooks/wh_1", NULL, M_GET | M_PATCH | M_DELETE},
        {"POST", "/api/webhooks/wh_1/deliveries/9/redeliver", h_webhook_redeliver, 0},
        {"GET", "/api/auth/anything", h_api_not_found, 0},
        {"POST", "/api/auth/admin/set-role", h_users_set_role, 0},
        {"POST", "/api/media", h_media_upload, 0},
        {"GET", "/api/media", h_media_list, 0},
        {"GET", "/api/media/m_1", h_media_get, 0},
        {"HEAD", "/api/media/m_1", h_media_get, 0},
        {"DELETE", "/api/media/m_1", h_media_delete, 0},
        {"GET", "/api/media/m_1/url", h_media_url, 0},
        {"PUT", "/api/media/m_1", NULL, M_GET | M_HEAD | M_DELETE},
        {"POST", "/api/media/m_1/url", NULL, M_GET},
        {"GET", "/nowhere", NULL, 0},
        {"GET", "/apix", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int allowed;
        const struct route *r =
            route_find_t(cases[i].path, strlen(cases[i].path),
                         method_bit(h2o_iovec_init(cases[i].method, strlen(cases[i].method))), &allowed);
        char name[160];
        snprintf(name, sizeof name, "router: %s %s", cases[i].method, cases[i].path);
        if (cases[i].want)
            T_CHECK(r && r->handler == cases[i].want, name);
        else
            T_CHECK(!r && allowed == cases[i].want_allowed, name);
    }
    const struct route *r;
    int allowed;
    r = route_find_t("/api/auth/sign-in/email", 23, M_POST, &allowed);
    T_CHECK(r && r->perm == PERM_PUBLIC, "router: sign-in needs no credentials");
    r = route_find_t("/api/session/logout", 19, M_POST, &allowed);
    T_CHECK(r && r->perm == P_SESSION_CONTROL, "router: logging the session out needs session:control");
    h2o_iovec_t params[HTTP_MAX_PARAMS];
    const char *rd = "/api/webhooks/wh_1/deliveries/9/redeliver";
    r = route_find(rd, strlen(rd), M_POST, &allowed, params);
    T_CHECK(r && params[0].len == 4 && !memcmp(params[0].base, "wh_1", 4) && params[1].len == 1 &&
                params[1].base[0] == '9',
            "router: the {name} segments of the route chosen, in order");
    const char *pr = "/api/chats/1@s.whatsapp.net/presence";
    r = route_find(pr, strlen(pr), M_POST, &allowed, params);
    T_CHECK(r && r->handler == h_chat_presence && params[0].len == 16 &&
                !memcmp(params[0].base, "1@s.whatsapp.net", 16),
            "router: ... not those of a less specific route that also matched");
    const char *dis = "/api/chats/1@s.whatsapp.net/disappearing";
    r = route_find_t(dis, strlen(dis), M_PUT, &allowed);
    T_CHECK(r && r->perm == P_MESSAGES_SEND,
            "router: a chat's disappearing timer is a chat write (messages:send, as presence)");
    r = route_find_t("/api/chats/1@s.whatsapp.net/history", 35, M_POST, &allowed);
    T_CHECK(r && r->perm == P_MESSAGES_READ,
            "router: asking our phone for a chat's older messages is a read (messages:read)");
    r = route_find_t("/api/history", 12, M_GET, &allowed);
    T_CHECK(r && r->perm == P_CHATS_READ, "router: the history sync chunks need chats:read");
    const char *const settings[] = {"/api/chats/1@s.whatsapp.net/archive", "/api/chats/1@s.whatsapp.net/pin",
                                    "/api/chats/1@s.whatsapp.net/mute", "/api/chats/1@s.whatsapp.net/read"};
    for (size_t i = 0; i < 4; i++) {
        const struct route *a = route_find_t(settings[i], strlen(settings[i]), M_POST, &allowed);
        const struct route *d = route_find_t(settings[i], strlen(settings[i]), M_DELETE, &allowed);
        T_CHECK(a && d && a->perm == P_MESSAGES_SEND && d->perm == P_MESSAGES_SEND,
                "router: a chat's archive/pin/mute/read and their undo are chat writes (messages:send)");
    }
    r = route_find_t("/api/chats/1@s.whatsapp.net", 27, M_GET, &allowed);
    T_CHECK(r && r->perm == P_CHATS_READ, "router: one chat needs chats:read");
    r = route_find_t("/api/media", 10, M_POST, &allowed);
    T_CHECK(r && r->perm == P_MEDIA_WRITE && !(r->flags & ROUTE_SIGNED_LINK),
            "router: uploading needs media:write");
    r = route_find_t("/api/media/m_1", 14, M_DELETE, &allowed);
    T_CHECK(r && r->perm == P_MEDIA_WRITE, "router: deleting media needs media:write");
    r = route_find_t("/api/media/m_1", 14, M_GET, &allowed);
    T_CHECK(r && r->perm == P_MEDIA_READ && (r->flags & ROUTE_SIGNED_LINK),
            "router: the bytes need media:read, or a signed link instead");
    int signed_routes = 0;
    for (const struct route *q = worker_routes; q->path; q++)
        signed_routes += (q->flags & ROUTE_SIGNED_LINK) != 0;
    T_EQ_INT(signed_routes, 1, "router: a signed link stands for credentials on that one route only");
    T_CHECK(authz_role_perms(ROLE_VIEWER) & PERM_BIT(P_MEDIA_READ) &&
                !(authz_role_perms(ROLE_VIEWER) & PERM_BIT(P_MEDIA_WRITE)) &&
                authz_role_perms(ROLE_MEMBER) & PERM_BIT(P_MEDIA_WRITE),
            "roles: viewers read media, members (and admins) write it");
    r = route_find_t("/api/unknown", 12, M_GET, &allowed);
    T_CHECK(r && r->perm == PERM_SIGNED_IN, "router: an unknown /api/ path needs credentials before its 404");
}

int main(void)
{
    test_roles();
    test_names();
    test_scopes();
    test_events();
    test_table_checks();
    test_matching();
    T_DONE();
}
