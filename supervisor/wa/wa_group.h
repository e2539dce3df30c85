/* Groups on the wire (w:g2): a group's metadata as the server answers
 * <iq xmlns=w:g2 type=get><query request=interactive/>. Protocol only. */
#ifndef WAPI_WA_GROUP_H
#define WAPI_WA_GROUP_H
#include <stddef.h>
#include <stdint.h>

#include "wa_client.h"

struct wa_group_participant {
    char jid[96]; /* as listed: user@s.whatsapp.net or user@lid */
    char pn[96];  /* user@s.whatsapp.net when known */
    char lid[96]; /* user@lid when known */
    int role;     /* 0 member, 1 admin, 2 superadmin */
};

struct wa_group_info {
    char jid[96];
    char *subject, *description; /* valid during the callback */
    char description_id[64];     /* what a change of it names as prev */
    char owner[96];
    int64_t created, subject_time;
    int lid_addressing;
    int announce, locked;
    uint32_t ephemeral_seconds;
    size_t n;
    struct wa_group_participant *p;
};

/* g NULL on error: code = the server's error code (403, 404, …) or 0 when
 * the connection went away; why says which. */
typedef void (*wa_group_cb)(void *arg, const struct wa_group_info *g, int code, const char *why);
/* Asks for gjid's metadata; -1 when not connected (cb not called). */
int wa_group_query(struct wa_client *c, const char *gjid, wa_group_cb cb, void *arg);
/* The groups we are in (<participating> with participants and
 * descriptions): cb once per group, then once with g NULL and code 200 at
 * the end; on failure once with g NULL and the code as for wa_group_query.
 * -1 when not connected (cb not called). */
int wa_group_participating(struct wa_client *c, wa_group_cb cb, void *arg);
/* Changes to groups (<iq xmlns=w:g2 type=set>). cb gets the answer's first
 * child (the new <group>; the <add|remove|promote|demote> list of
 * <participant jid [error]>; the <leave> list of <group id [error]>) with code
 * 200, or NULL and the server's code (0: the connection went away). jids
 * are people's JIDs (user@s.whatsapp.net, user@lid). -1 when not connected
 * or the arguments are unusable (cb not called). */
typedef void (*wa_group_change_cb)(void *arg, const wa_node *answer, int code, const char *why);
/* key: a fresh id for the request (the server echoes it in the notice). */
int wa_group_create(struct wa_client *c, const char *subject, const char *key, const char *const *jids,
                    size_t n, wa_group_change_cb cb, void *arg);
/* action: add, remove, promote or demote. */
int wa_group_members(struct wa_client *c, const char *gjid, const char *action, const char *const *jids,
                     size_t n, wa_group_change_cb cb, void *arg);
int wa_group_leave(struct wa_client *c, const char *gjid, wa_group_change_cb cb, void *arg);
/* One setting: tag subject (value the text), announcement / not_announcement,
 * locked / unlocked, ephemeral (value the seconds) / not_ephemeral. */
int wa_group_setting(struct wa_client *c, const char *gjid, const char *tag, const char *value,
                     wa_group_change_cb cb, void *arg);
/* Sets the description to text (NULL or "": deletes it). prev: the current
 * description's id (wa_group_info.description_id; "" when there is none):
 * the server refuses a change that names another (409), so two admins do
 * not overwrite each other unknowingly. new_id: a fresh id. */
int wa_group_describe(struct wa_client *c, const char *gjid, const char *text, const char *prev,
                      const char *new_id, wa_group_change_cb cb, void *arg);
/* The invite link's code (<invite code>), or (revoke) a new one. */
int wa_group_invite(struct wa_client *c, const char *gjid, int revoke, wa_group_change_cb cb, void *arg);
/* Joins by an invite code: the answer is <group jid>. */
int wa_group_join(struct wa_client *c, const char *code, wa_group_change_cb cb, void *arg);
/* A change to a group as <notification type=w:gp2> tells it (the first
 * child that is a change). kind: "created" (subject, participants),
 * "participants" (action add|remove|promote|demote, participants) or
 * "updated" (any of subject, description ("" deleted), announce, locked,
 * ephemeral_seconds, invite_revoked; -1 / NULL when not part of it). */
struct wa_group_event {
    char gjid[96], actor[96], id[64];
    const char *kind, *action;   /* static strings */
    char *subject, *description; /* malloc'd or NULL */
    int announce, locked, invite_revoked;
    int64_t ephemeral_seconds;
    size_t n;
    char (*participants)[96]; /* n of them, malloc'd */
};
/* 0 with ev filled (wa_group_event_free), -1 when n holds no change we tell. */
int wa_group_event_parse(const wa_node *n, struct wa_group_event *ev);
void wa_group_event_free(struct wa_group_event *ev);
/* The metadata in a <group> node (the query's answer's child); -1 when it is
 * not one. g's strings and participants are malloc'd: wa_group_info_free. */
int wa_group_parse(const wa_node *group, struct wa_group_info *g);
void wa_group_info_free(struct wa_group_info *g);

#endif
