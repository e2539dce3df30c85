/* The WhatsApp session as the rest of wapi sees it: state, the linked
 * account, the current QR code, and an event log with stable ids that the
 * workers stream to clients. Owns the client and the exclusivity lock. */
#ifndef WAPI_SESSION_H
#define WAPI_SESSION_H
#include <stdint.h>

#include "common/ipc.h"
#include "common/jsonw.h"
#include "common/sbuf.h"
#include "worker_table.h"

void session_init(void);
/* Applies whatsapp.autostart once the supervisor is up. */
void session_autostart(void);
void session_shutdown(void);
/* Writes the value {"state","me","since","last_error"}. */
void session_json(struct jsonw *w);
/* IPC_SESSION_GET, _CMD, IPC_QR_GET, IPC_EVENTS_SINCE (a worker_msg_fn):
 * answered at once. */
int session_ipc(const struct worker_msg *m, struct ipc_rd *rd, uint32_t *status, struct sbuf *body);
struct wa_client;
/* The session's WhatsApp client (owned by the session). */
struct wa_client *session_client(void);
/* Control-socket commands: "", "start", "stop", "logout", "qr". Writes the
 * reply's members ("qr"?, "session") into the object open in w; -1 (and
 * nothing written) for an unknown command. */
int session_command(const char *cmd, struct jsonw *w);

#endif
