/* People's profiles on the wire: someone's about text (a usync status
 * query), the block list (<iq xmlns=blocklist>) and our own about text
 * (<iq xmlns=status>). Stanzas and the reading of their answers only. */
#ifndef WAPI_WA_PROFILE_H
#define WAPI_WA_PROFILE_H
#include <stddef.h>
#include <stdint.h>

#include "wa_client.h"

#define WA_ABOUT_MAX 1024     /* bytes of an about text we keep (WhatsApp allows 139 characters) */
#define WA_BLOCKLIST_MAX 4096 /* entries of the block list we read */

/* answer NULL on failure: code the server's (or 0: the connection went
 * away), why says which; else the answer with code 200. */
typedef void (*wa_profile_cb)(void *arg, const wa_node *answer, int code, const char *why);

/* jid's about text: read the answer with wa_about_parse. -1 when not
 * connected or jid is no person's (cb not called). */
int wa_about_get(struct wa_client *c, const char *jid, wa_profile_cb cb, void *arg);
/* The about text of an answer: 1 with *text (malloc'd) and *set_at (Unix
 * seconds, 0 unknown); 0 when hidden from us or none; -1 when malformed. */
int wa_about_parse(const wa_node *answer, char **text, int64_t *set_at);
/* Our own about text (1..WA_ABOUT_MAX bytes). */
int wa_about_set(struct wa_client *c, const char *text, wa_profile_cb cb, void *arg);
/* The block list: read with wa_blocklist_parse. */
int wa_blocklist_get(struct wa_client *c, wa_profile_cb cb, void *arg);
/* The JIDs of a block list answer into out (at most max): their count, or
 * -1 when malformed. */
int wa_blocklist_parse(const wa_node *answer, char (*out)[96], size_t max);
/* Blocks (block 1) or unblocks jid. pn: the person's phone number JID when
 * jid is their LID (the server wants both to block), else NULL. */
int wa_blocklist_set(struct wa_client *c, const char *jid, const char *pn, int block, wa_profile_cb cb,
                     void *arg);

#endif
