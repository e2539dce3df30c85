/* WhatsApp binary nodes ("binary XML"): the tree model, an encoder, a decoder for
 * untrusted bytes, the decrypted-frame helpers (flag byte, zlib) and a text dump.
 *
 * Ownership: every node, string and byte buffer of a tree lives in one wa_arena;
 * wa_arena_free() releases the whole tree at once. Strings that are tokens point at
 * the static token tables instead. Nothing here keeps pointers into the caller's input. */
#ifndef WAPI_WA_BINARY_H
#define WAPI_WA_BINARY_H

#include <stddef.h>
#include <stdint.h>

enum wa_err {
    WA_OK = 0,
    WA_ERR_TRUNCATED = -1,   /* input ends inside an item */
    WA_ERR_MALFORMED = -2,   /* bad tag byte, nibble, JID, empty node tag, NUL in a string */
    WA_ERR_TRAILING = -3,    /* bytes left after the root node */
    WA_ERR_DEPTH = -4,       /* nesting deeper than the limit */
    WA_ERR_LIMIT = -5,       /* more nodes or memory than the limits allow */
    WA_ERR_INFLATE = -6,     /* broken zlib stream in a compressed frame */
    WA_ERR_TOO_BIG = -7,     /* compressed frame inflates beyond the limit */
    WA_ERR_NOMEM = -8,       /* allocation failed */
    WA_ERR_UNENCODABLE = -9, /* the tree has no wire form (empty tag, list too long, bad JID) */
};
/* Static text for an error code. */
const char *wa_strerror(int err);

/* ---- arena: one per tree ---- */
typedef struct wa_arena wa_arena;
wa_arena *wa_arena_new(void);                                 /* NULL on OOM; free with wa_arena_free */
void wa_arena_free(wa_arena *a);                              /* frees all a handed out; NULL is a no-op */
void *wa_arena_alloc(wa_arena *a, size_t n);                  /* zeroed, aligned, owned by a */
char *wa_arena_strndup(wa_arena *a, const char *s, size_t n); /* NUL-terminated copy owned by a */
size_t wa_arena_bytes(const wa_arena *a);                     /* bytes handed out so far */

/* ---- JIDs ---- */
enum wa_jid_wire {
    WA_JID_AUTO = 0, /* encoder picks the form from server/device/agent */
    WA_JID_PAIR,     /* JID_PAIR 0xFA: user (or empty) and server */
    WA_JID_AD,       /* AD_JID 0xF7: domain type, device (0..255), user */
    WA_JID_FB,       /* FB_JID 0xF6: user, 16-bit device, server "msgr" */
    WA_JID_INTEROP,  /* INTEROP_JID 0xF5: user, device, integrator, server "interop" */
};
/* AD_JID domain types and the servers they stand for. */
enum {
    WA_DOMAIN_WHATSAPP = 0,     /* s.whatsapp.net */
    WA_DOMAIN_LID = 1,          /* lid */
    WA_DOMAIN_HOSTED = 128,     /* hosted */
    WA_DOMAIN_HOSTED_LID = 129, /* hosted.lid */
};

typedef struct wa_jid {
    const char *user;    /* never NULL, "" when absent; borrowed (arena or token table) */
    const char *server;  /* never NULL; non-empty in a valid JID */
    uint16_t device;     /* 0 = the main device */
    uint16_t integrator; /* INTEROP only */
    uint8_t agent;       /* raw AD domain byte on s.whatsapp.net when not a known domain, else 0 */
    uint8_t wire;        /* enum wa_jid_wire: the form it was read in or will be written in */
} wa_jid;

/* Parses "user@server", "user:device@server", "user_agent:device@server" (agent only on
 * s.whatsapp.net), "integrator-user:device@interop", "@server" or a bare "server".
 * Strings are copied into a; the wire form is WA_JID_AUTO. Returns WA_ERR_MALFORMED if s is no JID. */
int wa_jid_parse(wa_arena *a, const char *s, wa_jid *out);
/* Writes the text form (the inverse of wa_jid_parse) snprintf-style: returns the length
 * it needs, writes at most cap bytes including the NUL. */
int wa_jid_format(const wa_jid *j, char *buf, size_t cap);
/* "user[:device]@server" as "user@server" for a person (s.whatsapp.net, lid)
 * or a group (g.us); -1 when it is none of those or does not fit cap. */
int wa_jid_text_bare(const char *in, char *out, size_t cap);
/* The same address: user, server, device, agent, integrator (the wire form is ignored). */
int wa_jid_equal(const wa_jid *x, const wa_jid *y);

/* ---- nodes ---- */
enum wa_val_type { WA_VAL_STR = 0, WA_VAL_JID = 1 };

typedef struct wa_attr {
    const char *key; /* borrowed from the tree's arena or the token table */
    uint8_t type;    /* enum wa_val_type */
    union {
        const char *str; /* WA_VAL_STR; borrowed like key */
        wa_jid jid;      /* WA_VAL_JID */
    };
} wa_attr;

enum wa_content {
    WA_CONTENT_NONE = 0,
    WA_CONTENT_LIST,  /* child nodes (possibly zero) */
    WA_CONTENT_BYTES, /* raw bytes (BINARY_8/20/32) */
    WA_CONTENT_STR,   /* a token or packed string */
    WA_CONTENT_JID,
};

typedef struct wa_node {
    const char *tag; /* non-empty; borrowed from the arena or the token table */
    wa_attr *attrs;  /* nattrs entries in wire order; owned by the arena */
    uint32_t nattrs, attr_cap;
    uint8_t content; /* enum wa_content */
    union {
        struct {
            struct wa_node **children; /* nchildren pointers; array and nodes owned by the arena */
            uint32_t nchildren, child_cap;
        };
        struct {
            const uint8_t *bytes; /* owned by the arena */
            size_t nbytes;
        };
        const char *str;
        wa_jid jid;
    };
} wa_node;

/* Building: each call copies its strings and bytes into a; the node belongs to a.
 * Functions returning int give WA_OK or WA_ERR_NOMEM. */
wa_node *wa_node_new(wa_arena *a, const char *tag);
int wa_node_add_attr(wa_arena *a, wa_node *n, const char *key, const char *value);
int wa_node_add_attr_jid(wa_arena *a, wa_node *n, const char *key, const wa_jid *jid);
/* Appends child (which must live in a, or outlive it) and makes n's content a list. */
int wa_node_add_child(wa_arena *a, wa_node *n, wa_node *child);
int wa_node_set_bytes(wa_arena *a, wa_node *n, const void *p, size_t len);
int wa_node_set_str(wa_arena *a, wa_node *n, const char *s);
int wa_node_set_jid(wa_arena *a, wa_node *n, const wa_jid *jid);

/* Reading: results borrow from n's tree. */
const wa_attr *wa_node_attr(const wa_node *n, const char *key); /* first attr with key, or NULL */
const char *wa_node_attr_str(const wa_node *n,
                             const char *key); /* its string value, NULL if absent or a JID */
/* Its text whether it came as a string or a JID (a JID is written into buf);
 * NULL if absent or buf is too small. */
const char *wa_node_attr_text(const wa_node *n, const char *key, char *buf, size_t len);
const wa_node *wa_node_child(const wa_node *n, const char *tag); /* first child with tag, or NULL */
/* The text of a node holding a string or bytes (no NUL in them), into buf;
 * NULL when it holds neither or does not fit. */
const char *wa_node_text(const wa_node *n, char *buf, size_t cap);

/* Equal as the wire can tell: same tags, attributes in order, JIDs with their wire
 * forms, and content; raw string content and byte content with the same bytes are equal. */
int wa_node_equal(const wa_node *x, const wa_node *y);

/* ---- codec ---- */
typedef struct wa_limits {
    unsigned max_depth;  /* root = 1 */
    size_t max_nodes;    /* in one tree */
    size_t max_bytes;    /* arena bytes one decode may use */
    size_t max_inflated; /* size of a decompressed frame */
} wa_limits;
#define WA_MAX_DEPTH 64
/* Used when a function gets lim == NULL: depth 64, 100000 nodes, 64 MiB, 8 MiB. */
extern const wa_limits wa_limits_default;

/* Decodes one node that fills p[0..n) exactly, into a new tree in a (which the caller
 * owns; on error a may hold partial allocations, freed with it). */
int wa_node_decode(const uint8_t *p, size_t n, const wa_limits *lim, wa_arena *a, wa_node **out);
/* Decodes a decrypted frame: a flag byte (bit 0x02: the rest is zlib-deflated), then a node. */
int wa_frame_decode(const uint8_t *p, size_t n, const wa_limits *lim, wa_arena *a, wa_node **out);

/* Encodes n; *out is malloc'd and the caller frees it. Nesting is limited to WA_MAX_DEPTH. */
int wa_node_encode(const wa_node *n, uint8_t **out, size_t *outlen);
/* The same with the uncompressed-frame flag byte 0 in front. */
int wa_frame_encode(const wa_node *n, uint8_t **out, size_t *outlen);

/* XML-ish one-line dump for logs and tests, at most max bytes (cut with "..."); bytes
 * content as hex, shortened. malloc'd, caller frees; NULL on OOM. */
char *wa_node_to_string(const wa_node *n, size_t max);

#endif
