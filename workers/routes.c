/* The router table: every method and path the worker serves, the handler,
 * and the permission each needs (common/authz.h). A route that names no
 * permission stops the worker at start (http_routes_check); the access
 * matrix test reads this table through `wapi-worker --routes`. */
#include "handlers.h"

#define ANY (M_GET | M_HEAD | M_POST | M_PUT | M_PATCH | M_DELETE | M_OPTIONS)
#define GET (M_GET | M_HEAD)

const struct route worker_routes[] = {
    {GET, "/", PERM_PUBLIC, h_dashboard, 0},
    {GET, "/healthz", PERM_PUBLIC, h_healthz, 0},
    {GET, "/readyz", PERM_PUBLIC, h_readyz, 0},
    {GET, "/metrics", PERM_PUBLIC, h_metrics, 0},
    {GET, "/assets/*", PERM_PUBLIC, h_asset, 0},
    /* The API reference page, rendered from the OpenAPI document. */
    {GET, "/docs", PERM_PUBLIC, h_docs, 0},

    /* Better Auth's endpoints (email and password, admin and api-key plugins). */
    {M_POST, "/api/auth/sign-up/email", PERM_PUBLIC, h_auth_sign_up, 0},
    {M_POST, "/api/auth/sign-in/email", PERM_PUBLIC, h_auth_sign_in, 0},
    {M_POST, "/api/auth/sign-out", PERM_PUBLIC, h_auth_sign_out, 0},
    {GET, "/api/auth/get-session", PERM_PUBLIC, h_auth_get_session, 0},
    /* An account outlives any key: only a signed-in admin makes one or
     * changes a role. */
    {M_POST, "/api/auth/admin/create-user", P_USERS_WRITE, h_auth_create_user, ROUTE_SESSION_ONLY},
    {M_POST, "/api/auth/admin/set-role", P_USERS_WRITE, h_users_set_role, ROUTE_SESSION_ONLY},
    {M_POST, "/api/auth/admin/remove-user", P_USERS_WRITE, h_users_remove, 0},
    {GET, "/api/auth/admin/list-users", P_USERS_READ, h_users_list, 0},
    /* One's own keys; a key never has more than its owner's role. */
    {M_POST, "/api/auth/api-key/create", PERM_SIGNED_IN, h_apikey_create, ROUTE_SESSION_ONLY},
    {GET, "/api/auth/api-key/list", PERM_SIGNED_IN, h_apikey_list, 0},
    {GET, "/api/auth/api-key/get", PERM_SIGNED_IN, h_apikey_get, 0},
    {M_POST, "/api/auth/api-key/delete", PERM_SIGNED_IN, h_apikey_delete, ROUTE_SESSION_ONLY},
    {ANY, "/api/auth/*", PERM_PUBLIC, h_api_not_found, 0},

    {GET, "/api/registration", PERM_PUBLIC, h_registration, 0},
    /* The API's contract (docs/openapi.json), public like the docs page. */
    {GET, "/api/openapi.json", PERM_PUBLIC, h_openapi, 0},
    {GET, "/api/me", PERM_SIGNED_IN, h_me, 0},
    {M_GET, "/api/invitations", P_USERS_READ, h_invitations_list, 0},
    {M_POST, "/api/invitations", P_USERS_WRITE, h_invitations_create, ROUTE_SESSION_ONLY},
    {M_DELETE, "/api/invitations/{id}", P_USERS_WRITE, h_invitations_revoke, 0},
    {M_GET, "/api/keys", P_KEYS_READ, h_keys_list_all, 0},
    {M_DELETE, "/api/keys/{id}", P_KEYS_WRITE, h_keys_revoke_any, 0},
    {M_GET, "/api/audit", P_AUDIT_READ, h_audit_list, 0},

    {M_GET, "/api/session", P_SESSION_READ, h_session_get, 0},
    {M_POST, "/api/session/start", P_SESSION_CONTROL, h_session_start, 0},
    {M_POST, "/api/session/stop", P_SESSION_CONTROL, h_session_stop, 0},
    {M_POST, "/api/session/logout", P_SESSION_CONTROL, h_session_logout, 0},
    /* Whoever sees the QR code or the pairing code can link their own phone. */
    {M_GET, "/api/session/qr", P_SESSION_CONTROL, h_session_qr, 0},
    {M_POST, "/api/session/pairing-code", P_SESSION_CONTROL, h_session_pairing_code, 0},
    {M_GET, "/api/events", P_EVENTS_READ, h_events, 0},

    {M_POST, "/api/messages", P_MESSAGES_SEND, h_messages_send, 0},
    {M_GET, "/api/messages/{id}", P_MESSAGES_READ, h_message_get, 0},
    {M_PATCH, "/api/messages/{id}", P_MESSAGES_SEND, h_message_edit, 0},
    {M_DELETE, "/api/messages/{id}", P_MESSAGES_SEND, h_message_delete, 0},
    {M_GET, "/api/messages/{id}/receipts", P_MESSAGES_READ, h_message_receipts, 0},
    {M_GET, "/api/messages/{id}/poll", P_MESSAGES_READ, h_message_poll, 0},
    {M_POST, "/api/messages/{id}/vote", P_MESSAGES_SEND, h_message_vote, 0},
    /* Read receipts and typing go out to the contact: acting, not reading. */
    {M_POST, "/api/messages/{id}/read", P_MESSAGES_SEND, h_message_read, 0},
    {M_POST, "/api/messages/{id}/reaction", P_MESSAGES_SEND, h_message_react, 0},
    {M_POST, "/api/messages/{id}/forward", P_MESSAGES_SEND, h_message_forward, 0},
    /* Fetching a received file into the store. */
    {M_POST, "/api/messages/{id}/media/download", P_MEDIA_WRITE, h_message_media_download, 0},
    {M_GET, "/api/chats", P_CHATS_READ, h_chats_list, 0},
    {M_GET, "/api/chats/{jid}/messages", P_MESSAGES_READ, h_chat_messages, 0},
    {M_POST, "/api/chats/{jid}/presence", P_MESSAGES_SEND, h_chat_presence, 0},
    /* The chat's disappearing timer: sent to the contact (or the group). */
    {M_PUT, "/api/chats/{jid}/disappearing", P_MESSAGES_SEND, h_chat_disappearing, 0},
    /* Settings that follow our phone (app-state sync): the chat actions' permission. */
    {M_POST, "/api/chats/{jid}/archive", P_MESSAGES_SEND, h_chat_archive, 0},
    {M_DELETE, "/api/chats/{jid}/archive", P_MESSAGES_SEND, h_chat_unarchive, 0},
    {M_POST, "/api/chats/{jid}/pin", P_MESSAGES_SEND, h_chat_pin, 0},
    {M_DELETE, "/api/chats/{jid}/pin", P_MESSAGES_SEND, h_chat_unpin, 0},
    {M_POST, "/api/chats/{jid}/mute", P_MESSAGES_SEND, h_chat_mute, 0},
    {M_DELETE, "/api/chats/{jid}/mute", P_MESSAGES_SEND, h_chat_unmute, 0},
    {M_POST, "/api/chats/{jid}/read", P_MESSAGES_SEND, h_chat_read, 0},
    {M_DELETE, "/api/chats/{jid}/read", P_MESSAGES_SEND, h_chat_unread, 0},
    {M_GET, "/api/chats/{jid}", P_CHATS_READ, h_chat_get, 0},
    /* History sync: the chunks our phone sent; older messages of a chat asked of it. */
    {M_GET, "/api/history", P_CHATS_READ, h_history_list, 0},
    {M_POST, "/api/chats/{jid}/history", P_MESSAGES_READ, h_chat_history, 0},
    {M_GET, "/api/labels", P_CHATS_READ, h_labels_list, 0},
    {M_GET, "/api/groups", P_GROUPS_READ, h_groups_list, 0},
    {M_POST, "/api/groups", P_GROUPS_WRITE, h_group_create, 0},
    {M_POST, "/api/groups/{jid}/participants", P_GROUPS_WRITE, h_group_participants, 0},
    {M_POST, "/api/groups/{jid}/leave", P_GROUPS_WRITE, h_group_leave, 0},
    {M_POST, "/api/groups/join", P_GROUPS_WRITE, h_group_join, 0},
    {M_PATCH, "/api/groups/{jid}", P_GROUPS_WRITE, h_group_patch, 0},
    {M_GET, "/api/groups/{jid}/invite", P_GROUPS_READ, h_group_invite, 0},
    {M_DELETE, "/api/groups/{jid}/invite", P_GROUPS_WRITE, h_group_invite_revoke, 0},
    {M_GET, "/api/groups/{jid}/picture", P_GROUPS_READ, h_group_picture, 0},
    {M_PUT, "/api/groups/{jid}/picture", P_GROUPS_WRITE, h_group_picture_set, 0},
    {M_DELETE, "/api/groups/{jid}/picture", P_GROUPS_WRITE, h_group_picture_remove, 0},
    {M_GET, "/api/groups/{jid}", P_GROUPS_READ, h_group_get, 0},
    {M_GET, "/api/contacts", P_CONTACTS_READ, h_contacts_list, 0},
    {M_GET, "/api/contacts/{jid}", P_CONTACTS_READ, h_contact_get, 0},
    {M_POST, "/api/contacts/{jid}/presence/subscribe", P_CONTACTS_READ, h_contact_subscribe, 0},
    {M_POST, "/api/contacts/check", P_CONTACTS_READ, h_contacts_check, 0},
    {M_GET, "/api/contacts/{jid}/picture", P_CONTACTS_READ, h_contact_picture, 0},
    {M_GET, "/api/contacts/{jid}/about", P_CONTACTS_READ, h_contact_about, 0},
    {M_GET, "/api/contacts/{jid}/business", P_CONTACTS_READ, h_contact_business, 0},
    {M_POST, "/api/contacts/{jid}/block", P_CONTACTS_WRITE, h_contact_block, 0},
    {M_DELETE, "/api/contacts/{jid}/block", P_CONTACTS_WRITE, h_contact_unblock, 0},
    {M_GET, "/api/blocklist", P_CONTACTS_READ, h_blocklist, 0},
    {M_PUT, "/api/profile/about", P_SESSION_CONTROL, h_profile_about, 0},
    {M_PUT, "/api/profile/name", P_SESSION_CONTROL, h_profile_name, 0},
    {M_PUT, "/api/profile/picture", P_SESSION_CONTROL, h_profile_picture_set, 0},
    {M_DELETE, "/api/profile/picture", P_SESSION_CONTROL, h_profile_picture_remove, 0},
    {M_GET, "/api/lids/{lid}", P_CONTACTS_READ, h_lid_get, 0},
    {M_GET, "/api/lids/pn/{phone}", P_CONTACTS_READ, h_lid_by_pn, 0},

    {M_POST, "/api/media", P_MEDIA_WRITE, h_media_upload, 0},
    {M_GET, "/api/media", P_MEDIA_READ, h_media_list, 0},
    /* The bytes: with credentials, or with a signed link instead of them. */
    {GET, "/api/media/{id}", P_MEDIA_READ, h_media_get, ROUTE_SIGNED_LINK},
    {M_DELETE, "/api/media/{id}", P_MEDIA_WRITE, h_media_delete, 0},
    {M_GET, "/api/media/{id}/url", P_MEDIA_READ, h_media_url, 0},

    {M_GET, "/api/webhooks", P_WEBHOOKS_READ, h_webhooks_list, 0},
    {M_POST, "/api/webhooks", P_WEBHOOKS_WRITE, h_webhooks_create, 0},
    {M_GET, "/api/webhooks/{id}", P_WEBHOOKS_READ, h_webhook_get, 0},
    {M_PATCH, "/api/webhooks/{id}", P_WEBHOOKS_WRITE, h_webhook_patch, 0},
    {M_DELETE, "/api/webhooks/{id}", P_WEBHOOKS_WRITE, h_webhook_delete, 0},
    {M_GET, "/api/webhooks/{id}/deliveries", P_WEBHOOKS_READ, h_webhook_deliveries, 0},
    {M_POST, "/api/webhooks/{id}/deliveries/{delivery}/redeliver", P_WEBHOOKS_WRITE, h_webhook_redeliver, 0},

    /* Anything else under /api/: 401 without credentials, 404 with. */
    {ANY, "/api/*", PERM_SIGNED_IN, h_api_not_found, 0},
    {0, NULL, PERM_UNSET, NULL, 0},
};
