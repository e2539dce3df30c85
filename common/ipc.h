/* Supervisor <-> worker messages over SOCK_SEQPACKET: a fixed header
 * {u32 type, u32 len, u32 id, u32 flags} (host order: both ends are the same
 * binary build on one machine) + payload, file descriptors via SCM_RIGHTS.
 * One datagram is one frame; nothing is ever reassembled. */
#ifndef WAPI_IPC_H
#define WAPI_IPC_H
#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

#define IPC_VERSION 3
#define IPC_HDR_LEN 16
#define IPC_MAX_PAYLOAD (60 * 1024)
#define IPC_MAX_FDS 4
#define IPC_FD 3                /* the worker's end of its socketpair */
#define IPC_LISTEN_FD 4         /* the shared listen socket */
#define IPC_METRICS_FD 5        /* shared metrics memory */
#define IPC_METRICS_LISTEN_FD 6 /* the metrics listener, only when metrics.listen is set */

enum ipc_type {
    IPC_HELLO = 1,    /* W->S {u32 version} */
    IPC_WELCOME,      /* S->W {u32 version, u32 slot, u32 generation, str config} */
    IPC_HEARTBEAT,    /* W->S {} every second */
    IPC_PING,         /* W->S {} request */
    IPC_PONG,         /* S->W {u32 flags} reply: IPC_PONG_* */
    IPC_DRAIN,        /* S->W {} stop accepting, finish, exit */
    IPC_REOPEN_LOGS,  /* S->W {} */
    IPC_READY,        /* W->S {} listening; the old generation may retire */
    IPC_REPLY,        /* S->W {u32 status, bytes body} answer to a request below */
    IPC_SESSION_GET,  /* W->S {} -> session JSON */
    IPC_SESSION_CMD,  /* W->S {u32 cmd, bytes arg, bytes actor user, key, ip} -> {status, JSON} */
    IPC_QR_GET,       /* W->S {} -> {200, QR text} or {404, ""} */
    IPC_EVENTS_SINCE, /* W->S {u64 after_id, u64 after_seq} -> {200, lines "id\tseq\ttype\tjson\n"} */
    IPC_EVENT,        /* S->W {u64 id, u64 seq, bytes type, bytes json} pushed to every worker */
    IPC_ACTION,       /* W->S {u32 action, ...} -> {status, JSON}; see enum ipc_action */
    IPC_OUTBOX_KICK,  /* W->S {} outbox rows were committed: send them (no reply) */
    IPC_AUDIT_KICK,   /* W->S {} audit rows were committed: publish them (no reply) */
    /* The media store (supervisor/media.c). Workers never open it by path:
     * they get descriptors, and give uploads back the same way. */
    IPC_MEDIA_KEY,     /* W->S {} -> {200, the 32-byte key of signed links} or {503, JSON} */
    IPC_MEDIA_OPEN,    /* W->S {bytes sha256 hex} -> {200, ""} + a read-only fd, or {404|503, JSON} */
    IPC_MEDIA_UPLOAD,  /* W->S {u64 size} -> {200, u64 token} + an empty temp file in the store, or {507|503,
                          JSON} */
    IPC_MEDIA_PUBLISH, /* W->S {u64 token, u64 size, bytes mimetype, kind, file_name, sha256, u32
                        * start_within_ms} + that fd -> {201, the row's JSON} or {400|410|413|503|507,
                        * JSON}; the file is copied out of the worker's reach, hashed, its type checked,
                        * and only then linked into the store; not started within start_within_ms:
                        * dropped (503) */
    IPC_MEDIA_DISCARD, /* W->S {u64 token, u32 request id} the upload (or its publication) was abandoned;
                        * token 0: the upload made by the UPLOAD request of that id (no reply) */
    IPC_MEDIA_FETCH,   /* W->S {bytes url, kind, file_name} -> {201, {"id"}} once the file the URL
                        * serves is published into the store, or {400|502|503|507, JSON naming media.url} */
    IPC_DOWNLOAD_KICK, /* W->S {} a received attachment was put back in the download queue (no reply) */
    IPC_TYPE_MAX
};

#define IPC_PONG_MIGRATED 0x1u /* the schema is up to date */

enum ipc_session_cmd { IPC_CMD_START = 1, IPC_CMD_STOP, IPC_CMD_LOGOUT, IPC_CMD_PAIR_PHONE };

/* Things done on the live WhatsApp connection for the API. */
enum ipc_action {
    IPC_ACT_READ = 1,     /* {bytes chat, u32 n, n x bytes message id}: one read receipt for them */
    IPC_ACT_PRESENCE,     /* {bytes jid, bytes state "typing"|"paused"} */
    IPC_ACT_CONTACTS,     /* {u32 n, n x bytes phone digits}: which are on WhatsApp (answered later) */
    IPC_ACT_SUBSCRIBE,    /* {bytes jid}: ask for a person's availability (presence.update events) */
    IPC_ACT_GROUP,        /* {bytes group jid}: its metadata from WhatsApp (answered later) */
    IPC_ACT_GROUPS,       /* {}: the groups we are in, from WhatsApp (answered later) */
    IPC_ACT_GROUP_CHANGE, /* {u32 op (1 create, 2 add, 3 remove, 4 promote, 5 demote, 6 leave), bytes group
                             jid or subject, u32 n, n x bytes jid} (answered later) */
    IPC_ACT_PICTURE,      /* {bytes jid, u32 preview}: where its profile picture is (answered later) */
    IPC_ACT_PICTURE_SET, /* {bytes group jid or "me", u32 remove, [bytes sha256 of a stored image]} (later) */
    IPC_ACT_ABOUT,       /* {bytes jid}: a person's about text (answered later) */
    IPC_ACT_ABOUT_SET,   /* {bytes text}: our own about text (answered later) */
    IPC_ACT_BLOCKLIST,   /* {}: the people we blocked (answered later) */
    IPC_ACT_BLOCK,       /* {bytes jid, u32 block, u32 has_pn, [bytes pn jid]} (answered later) */
    IPC_ACT_BUSINESS,    /* {bytes jid}: a business account's profile (answered later) */
    IPC_ACT_HISTORY, /* {bytes chat, bytes anchor id, u32 from_me, u64 anchor ts, u32 count}: older history */
    IPC_ACT_CHAT_STATE, /* {bytes chat jid (what 5: our name), u32 what (1 archive, 2 pin, 3 mute, 4 read,
                           5 our push name), u32 on,
                           u64 mute end ms (int64; -1 for ever), u64 last message (Unix s, 0 none)}:
                           an app-state change of ours (answered later) */
};
#define IPC_ACT_MAX_IDS 256
#define IPC_ACT_MAX_PHONES 100

struct ipc_hdr {
    uint32_t type, len, id, flags;
};

struct ipc_msg {
    struct ipc_hdr h;
    const uint8_t *payload; /* points into the caller's buffer */
    int fds[IPC_MAX_FDS];
    int nfds;
};

/* Validates one received datagram; 0 or -1 with *why set (static string). */
int ipc_decode(const uint8_t *buf, size_t n, struct ipc_msg *m, const char **why);
/* Sends one frame; -1 with errno (EAGAIN when the peer is slow). */
int ipc_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t len, const int *fds, int nfds);
/* Receives one frame into buf (>= IPC_HDR_LEN + IPC_MAX_PAYLOAD bytes).
 * Returns 1 on a frame, 0 on EOF, -1 on EAGAIN/error (errno), -2 malformed
 * (*why set; any fds received were closed). */
int ipc_recv(int fd, uint8_t *buf, size_t bufsz, struct ipc_msg *m, const char **why);

/* Typed payload reading with an explicit end check. */
struct ipc_rd {
    const uint8_t *p;
    size_t n, off;
    int err;
};
void ipc_rd_init(struct ipc_rd *r, const struct ipc_msg *m);
uint32_t ipc_rd_u32(struct ipc_rd *r);
uint64_t ipc_rd_u64(struct ipc_rd *r);
/* A u32 length then bytes; returns a pointer into the payload (not NUL-terminated). */
const uint8_t *ipc_rd_bytes(struct ipc_rd *r, uint32_t *len);
/* ipc_rd_bytes as a C string in out (cap bytes with the NUL): -1 when it
 * does not fit or holds a control character (NUL included). */
int ipc_rd_text(struct ipc_rd *r, char *out, size_t cap);
/* 0 when everything was read and nothing was left over. */
int ipc_rd_end(const struct ipc_rd *r);

void ipc_wr_u32(struct sbuf *b, uint32_t v);
void ipc_wr_u64(struct sbuf *b, uint64_t v);
void ipc_wr_bytes(struct sbuf *b, const void *p, uint32_t len);

#endif
