/* Route handlers, by area; the route table is in routes.c. */
#ifndef WAPI_HANDLERS_H
#define WAPI_HANDLERS_H
#include "common/metrics.h"
#include "http.h"

extern const struct route worker_routes[];

void health_init(struct metrics_shm *shm, const struct wapi_config *cfg);
void h_healthz(struct rq *rq);
void h_readyz(struct rq *rq);
void h_metrics(struct rq *rq);
/* Every request on the metrics listener: GET|HEAD /metrics and /healthz. */
void h_metrics_listener(struct rq *rq);
void h_dashboard(struct rq *rq);
void h_asset(struct rq *rq);
void h_docs(struct rq *rq);    /* GET /docs: the API reference page */
void h_openapi(struct rq *rq); /* GET /api/openapi.json */

/* Accounts (auth.c, auth_guard.c, apikey.c). */
void auth_init(const struct wapi_config *cfg); /* installs the router's auth hook */
void h_auth_sign_up(struct rq *rq);
void h_auth_sign_in(struct rq *rq);
void h_auth_sign_out(struct rq *rq);
void h_auth_get_session(struct rq *rq);
void h_auth_create_user(struct rq *rq);
void h_apikey_create(struct rq *rq);
void h_apikey_list(struct rq *rq);
void h_apikey_get(struct rq *rq);
void h_apikey_delete(struct rq *rq);
void h_me(struct rq *rq);
void h_api_not_found(struct rq *rq);
void h_registration(struct rq *rq);
/* Everyone's keys, for admins (apikey.c). */
void h_keys_list_all(struct rq *rq);
void h_keys_revoke_any(struct rq *rq);

/* Users, roles and invitations (users.c). */
void h_users_list(struct rq *rq);
void h_users_set_role(struct rq *rq);
void h_users_remove(struct rq *rq);
void h_invitations_list(struct rq *rq);
void h_invitations_create(struct rq *rq);
void h_invitations_revoke(struct rq *rq);

/* GET /api/audit (audit.c) */
void h_audit_list(struct rq *rq);

/* /api/session* (session_api.c) */
void h_session_get(struct rq *rq);
void h_session_start(struct rq *rq);
void h_session_stop(struct rq *rq);
void h_session_logout(struct rq *rq);
void h_session_qr(struct rq *rq);
void h_session_pairing_code(struct rq *rq);
/* Asks the supervisor and answers the client with the {status, JSON body} it replies. */
void sup_ask_json(struct rq *rq, uint32_t type, const void *payload, size_t len, uint32_t timeout_ms);
/* The same for an IPC_ACTION request built in b (500 when b ran out of
 * memory); frees b. */
struct sbuf;
void sup_ask_action(struct rq *rq, struct sbuf *b, uint32_t timeout_ms);
/* An IPC_REPLY's {u32 status, bytes body}; -1 when m is NULL (no answer) or malformed. */
struct ipc_msg;
int sup_reply_read(const struct ipc_msg *m, uint32_t *status, const uint8_t **body, uint32_t *len);

/* /api/events (events.c) */
void events_init(h2o_loop_t *loop);
void h_events(struct rq *rq);
void events_on_push(const struct ipc_msg *m);
void events_tick(void);
void events_close_all(void);

/* /api/messages, /api/chats, /api/contacts (messages.c) */
void h_messages_send(struct rq *rq);
void h_message_get(struct rq *rq);
void h_message_read(struct rq *rq);
void h_message_react(struct rq *rq);
void h_contacts_list(struct rq *rq);
void h_contact_get(struct rq *rq);
/* A chat's settings that follow our phone (chat_state.c): POST and DELETE of
 * /api/chats/{jid}/archive, /pin, /mute ({until} or {seconds}; neither: for
 * ever) and /read (DELETE: mark unread). */
void h_chat_archive(struct rq *rq);
void h_chat_unarchive(struct rq *rq);
void h_chat_pin(struct rq *rq);
void h_chat_unpin(struct rq *rq);
void h_chat_mute(struct rq *rq);
void h_chat_unmute(struct rq *rq);
void h_chat_read(struct rq *rq);
void h_chat_unread(struct rq *rq);
/* GET /api/labels: a business account's labels with their chats (chat_state.c). */
void h_labels_list(struct rq *rq);
/* messages.c: a `to` (phone number as typed, or a JID of a person or group)
 * as a JID into jid; -1 when it is neither. */
int parse_to(const char *s, char *jid, size_t jidlen);
void h_group_get(struct rq *rq);
void h_groups_list(struct rq *rq);
void h_group_create(struct rq *rq);
void h_group_participants(struct rq *rq);
void h_group_leave(struct rq *rq);
void h_group_patch(struct rq *rq);
/* A group's disappearing timer (0, or one of WhatsApp's), answered as
 * PATCH /api/groups/{jid} answers (PUT /api/chats/{jid}/disappearing). */
void group_set_timer(struct rq *rq, const char *gjid, int64_t seconds);
void h_group_invite(struct rq *rq);
void h_group_invite_revoke(struct rq *rq);
void h_group_join(struct rq *rq);
/* groups.c: where jid's picture is (GET ?type=image|preview); sets (PUT
 * {media_id}: an uploaded image) or removes the picture of target (a
 * group's JID, or "me": ours), answering the request. */
void picture_get(struct rq *rq, const char *jid);
void picture_put(struct rq *rq, const char *target);
void picture_remove(struct rq *rq, const char *target);
void h_group_picture(struct rq *rq);
void h_group_picture_set(struct rq *rq);
void h_group_picture_remove(struct rq *rq);
void h_contact_subscribe(struct rq *rq);
void h_contact_picture(struct rq *rq);
void h_contact_about(struct rq *rq);
void h_contact_business(struct rq *rq);
void h_contact_block(struct rq *rq);
void h_contact_unblock(struct rq *rq);
void h_blocklist(struct rq *rq);
void h_profile_about(struct rq *rq);
void h_profile_name(struct rq *rq);
void h_profile_picture_set(struct rq *rq);
void h_profile_picture_remove(struct rq *rq);
void h_lid_get(struct rq *rq);
void h_lid_by_pn(struct rq *rq);
void h_message_forward(struct rq *rq);
void h_message_edit(struct rq *rq);
void h_message_delete(struct rq *rq);
void h_message_receipts(struct rq *rq);
void h_message_poll(struct rq *rq);
void h_message_vote(struct rq *rq);
void h_message_media_download(struct rq *rq);
void h_chats_list(struct rq *rq);
void h_chat_get(struct rq *rq);
void h_chat_disappearing(struct rq *rq);
void h_history_list(struct rq *rq);
void h_chat_history(struct rq *rq);
void h_chat_messages(struct rq *rq);
void h_chat_presence(struct rq *rq);
void h_contacts_check(struct rq *rq);

/* /api/media (media_api.c, media_serve.c) */
void media_api_init(h2o_loop_t *loop, const struct wapi_config *cfg);
void h_media_upload(struct rq *rq);
/* 1 for image, video, audio, voice, document, sticker. */
int media_kind_ok(const char *kind);
/* Bytes in memory (alive until done; the request's) stored as POST /api/media
 * stores an upload, kind and file name given, the type read from the bytes;
 * done gets the supervisor's answer (201 and the row's JSON, or an error's
 * status and JSON) instead of the client. rq->state is the upload's until
 * then: the caller takes it back in done. */
typedef void (*media_put_cb)(void *ctx, uint32_t status, const char *body, size_t len);
void media_put(struct rq *rq, const void *data, size_t len, const char *kind, const char *file_name,
               media_put_cb done, void *ctx);
void h_media_list(struct rq *rq);
void h_media_get(struct rq *rq);
void h_media_url(struct rq *rq);
void h_media_delete(struct rq *rq);

/* /api/webhooks (webhooks.c) */
void webhooks_api_init(const struct wapi_config *cfg);
void h_webhooks_list(struct rq *rq);
void h_webhooks_create(struct rq *rq);
void h_webhook_get(struct rq *rq);
void h_webhook_patch(struct rq *rq);
void h_webhook_delete(struct rq *rq);
void h_webhook_deliveries(struct rq *rq);
void h_webhook_redeliver(struct rq *rq);

#endif
