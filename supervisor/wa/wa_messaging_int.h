/* Internal to the messaging layer (wa_messaging.c, the receive side
 * wa_receive.c and the send side wa_send.c): their shared state and the
 * calls between them. Nothing else includes it. */
#ifndef WAPI_WA_MESSAGING_INT_H
#define WAPI_WA_MESSAGING_INT_H
#include <event2/event.h>
#include <stdint.h>

#include "wa_devcache.h"
#include "wa_messaging.h"

#define MAX_ENC (64u << 10)
#define MAX_QUEUE 4096
/* Past this many queued <message>s the socket is no longer read, so TCP
 * holds the server back instead of a stanza being dropped unacknowledged;
 * reading resumes once the queue is down to QUEUE_RESUME. What one read
 * delivers after the pause still fits below MAX_QUEUE. */
#define QUEUE_PAUSE 1024
#define QUEUE_RESUME 256
/* Incoming messages committed together at most (one statement, one flush). */
#define BATCH_MAX WA_INCOMING_MAX
#define MAX_DEVICES 64
#define MAX_RETRY_RECEIPTS 5
#define SEND_TIMEOUT_S 30
#define RETRY_SLOTS 64
/* Sends whose stanza is written and whose ack has not come yet, at most.
 * The next message is prepared meanwhile: against a server 100-300 ms away,
 * waiting for each ack before the next would cap sending at a few per second. */
#define SEND_WINDOW 16
/* Outgoing messages held at once: the window, the one being prepared and a
 * few accepted ahead, so that the outbox's next claim overlaps the sending. */
#define SEND_CAPACITY (SEND_WINDOW + 8)
/* Resends answering retry receipts that wait for their turn. */
#define MAX_RESENDS 16

struct qitem {
    wa_arena *a;
    wa_node *n;
};

struct device {
    char user[64], server[32];
    int dev;
    int own;  /* one of our other devices */
    int skdm; /* a group send: it gets our sender key (pairwise) in this one */
};

/* Devices one group send reaches at most (1,024 members, several devices each). */
#define MAX_SEND_DEVICES 8192

/* A send waiting for its turn: a message from the outbox, or (retry > 0) a
 * resend of one of ours to the one device that could not decrypt it. */
struct send_job {
    char id[64], to_user[64], to_server[32];
    char *text, *reply_to, *mentions; /* mentions: JIDs, newline-separated */
    struct wa_msg_media *media;       /* a media message instead of text (owned) */
    uint8_t *raw;                     /* or a serialized Message as built by the application (owned) */
    size_t raw_len;
    struct wa_msg_stanza raw_st; /* how raw goes on the wire, read once when queued */
    int retry;
    int peer;          /* a peer message to our own phone (raw; not from the outbox) */
    struct device dev; /* retry: the device that asked */
};

/* Encrypted, waiting for the flush of the Signal state before it is written. */
struct outgoing {
    wa_arena *a;
    wa_node *msg;
    char id[64], to_user[64];
    int retry, peer, devices, pkmsg;
    char phash[24]; /* a group send's participant hash ("" none) */
};

/* A stanza written whose ack has not come yet. */
struct awaiting {
    char id[64], to_user[64];
    int retry, peer;
    int64_t deadline_ms;
    char phash[24]; /* a group send's: the server's ack says whether it agrees */
};

/* A prekey bundle from the server, kept until the Signal state may change. */
struct bundle {
    char name[96];
    int dev;
    struct wa_bundle b;
};

struct wam {
    struct wa_client *c;
    struct event_base *base;
    struct wa_send_events sev;
    void *sarg;
    struct wa_receive_events rev;
    void *rarg;
    int connected;
    /* receive */
    struct qitem q[MAX_QUEUE];
    size_t qhead, qlen;
    int busy;       /* a batch of incoming messages is being committed */
    uint64_t token; /* that batch's, as given to on_incoming */
    int paused;     /* the socket is not read: the queue is long */
    struct {
        char id[64];
        int count;
    } retries[RETRY_SLOTS];
    uint64_t decrypt_failures;
    /* send: the one being prepared (device list, prekeys, encryption) */
    struct {
        int active;
        char id[64], to_user[64], to_server[32];
        char *text, *reply_to, *mentions;
        struct wa_msg_media *media;
        uint8_t *raw;
        size_t raw_len;
        struct wa_msg_stanza raw_st;
        struct device *devs; /* wam_dev_add() */
        int ndevs, devcap;
        int group; /* to a group (sender keys), not a resend */
        int retry; /* > 0: a resend for one device that asked (retry receipt), with this count */
        int peer;  /* a peer message to our own phone (device 0) */
        int64_t deadline_ms;
        unsigned gen;
        /* The server's answers are in, but an incoming message is committing:
         * the bundles wait here and the send goes on when the commit ends. */
        int deferred;
        struct bundle *bundles;
        int nbundles;
    } s;
    /* waiting to be prepared, in the order given (stanzas go out in it) */
    struct send_job jobs[SEND_CAPACITY + MAX_RESENDS];
    size_t jhead, jlen;
    int jmsgs; /* of them from the outbox (not resends, not peer messages) */
    /* written, ack awaited, oldest first */
    struct awaiting aw[SEND_WINDOW];
    int naw, awmsgs;
    struct outgoing batch[SEND_WINDOW];
    int nbatch;
    int pumping;
    struct event *send_timer, *pump_ev;
};
extern struct wam wam;

/* wa_messaging.c */
/* Own user and device from creds.jid ("user:dev@server"). */
int wam_own_address(char *user, size_t ucap, int *dev);
/* 1 when j is an address of our account (any of its devices): our phone
 * number on s.whatsapp.net, or our LID on lid. */
int wam_is_own(const wa_jid *j);
/* The attribute key as "user@server" (device dropped) when it is a JID on server; else NULL. */
const char *wam_alt_jid(const wa_node *n, wa_arena *a, const char *key, const char *server, char *buf,
                        size_t len);
int64_t wam_now_ms(void);

/* wa_receive.c */
int wam_receive_stanza(wa_node *n, wa_arena *a);
/* Takes the next batch of what has arrived, unless one is committing or a
 * send holds the Signal store. */
void wam_process_next(void);
void wam_receive_disconnect(void);

/* wa_send.c */
/* A new device of the send being prepared (zeroed), or NULL when full. */
struct device *wam_dev_add(void);
/* The send being prepared ends before its stanza was written. */
void wam_send_done(enum wa_send_result r, const char *err);
/* How the one being prepared goes on the wire (wa_msg_stanza_type). */
void wam_stanza_type(struct wa_msg_stanza *st);
/* 1 when an answer (n) is for the send being prepared (arg: its gen). */
int wam_answer_wanted(void *arg, const wa_node *n, const char *lost);
/* Prekeys for the devices without a session (of a group send: those that
 * get our key), then encryption. */
void wam_fetch_prekeys_or_send(void);
/* The users of a usync answer's list into the device cache (and their
 * LIDs to the application). */
void wam_usync_apply(const wa_node *list);
/* An encrypted stanza joins the batch written after the next flush; the
 * preparation ends. */
void wam_queue_outgoing(wa_arena *a, wa_node *msg, int devices, int pkmsg, const char *phash);
void wam_dev_jid(const struct device *d, char *buf, size_t cap);

/* wa_send_group.c: the group parts of a send */
/* Participants (cached, or asked), their devices, then prekeys. */
void wam_group_start(void);
/* Encrypts and queues the prepared group message (plain: the unpadded
 * Message). */
void wam_group_encrypt_and_send(const uint8_t *plain, size_t plen);
/* The server's ack named another participant hash than ours: the group's
 * member list and its members' devices are fetched again. */
void wam_group_phash_mismatch(const char *group_user);
/* A resend to one device of a group: our key rides with the message. 0, or
 * -1 (then *skdm is NULL). *skdm malloc'd. */
int wam_group_own_skdm(const char *group_user, uint8_t **skdm, size_t *n);
/* <notification type=w:gp2>: members added, removed or gone change whom the
 * next send goes to (and a removal rotates our sender key); the change goes
 * to the application and is acked once stored. 1 when n (and a) are kept. */
int wam_handle_group_notification(wa_node *n, wa_arena *a);
/* The connection went: group notices waiting for their store are dropped
 * (the server tells them again). */
/* Stanzas acked only once the application stored what they told (group
 * notices, calls): wam_hold keeps n (and its arena) under a new token, 0
 * when too many wait (n is then not kept: the server tells it again);
 * wam_unhold forgets one the application did not take, unacked;
 * wam_held_drop forgets them all (the connection went away). */
uint64_t wam_hold(wa_node *n, wa_arena *a);
void wam_unhold(uint64_t token);
void wam_held_drop(void);
/* Replacements of our sender key that waited for the Signal store. */
void wam_group_rotate_pending(void);
void wam_group_disconnect(void);
void wam_send_init(struct event_base *base);
void wam_handle_ack(const wa_node *n);
void wam_handle_receipt(const wa_node *n);
void wam_handle_devices_notification(const wa_node *n);
/* A send holds the Signal store (see wa_receive.c). */
int wam_send_holds_store(void);
/* An incoming batch ended: the send side's turn. */
void wam_next_turn(void);
void wam_send_disconnect(void);

#endif
