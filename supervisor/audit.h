/* The audit log's publisher. Workers, wapictl and the supervisor write rows
 * into wapi_audit in the statements that do what they record; this turns
 * each new row into an audit.<action> event (SSE for those allowed to read
 * the audit log, and webhooks) with one JSON log line, exactly once: the
 * row's event_id and the wa_events row are written in one statement. Woken
 * by IPC_AUDIT_KICK, once the schema is migrated, and every few seconds (a
 * worker may die between its commit and its kick). */
#ifndef WAPI_SUP_AUDIT_H
#define WAPI_SUP_AUDIT_H

#include "worker_table.h"

void audit_init(void);
void audit_kick(void);
/* IPC_AUDIT_KICK from a worker (a worker_msg_fn). */
int audit_ipc_kick(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);
/* Who acted, as a worker reported it; any field may be NULL or "". */
struct audit_who {
    const char *user, *key, *ip;
};
/* Records an action (by who; NULL: the server itself), then publishes.
 * target and detail_json (one JSON object) may be NULL. */
void audit_record(const struct audit_who *who, const char *action, const char *target,
                  const char *detail_json);

#endif
