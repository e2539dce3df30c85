/* The WhatsApp client's state and the helpers its files share: wa_client.c
 * (connection, login, dispatch), wa_client_pair.c (pairing) and
 * wa_client_prekeys.c (prekeys). Only wa_client*.c include this header;
 * everyone else goes through wa_client.h. The wac_ names are theirs alone. */
#ifndef WAPI_WA_CLIENT_INT_H
#define WAPI_WA_CLIENT_INT_H
#include <stddef.h>
#include <stdint.h>

#include "common/proxy_url.h"
#include "wa_binary.h"
#include "wa_client.h"
#include "wa_noise.h"
#include "wa_store.h"

#define SERVER "s.whatsapp.net"
#define MAX_REFS 8
#define MAX_IQS 32

enum iq_kind {
    IQ_NONE,
    IQ_CALLBACK,
    IQ_PREKEY_COUNT,
    IQ_PREKEY_UPLOAD,
    IQ_ACTIVE,
    IQ_PING,
    IQ_LOGOUT,
    IQ_PAIR_CODE,
    IQ_PAIR_FINISH
};

struct wa_client {
    struct wa_client_config cfg;
    char url[512], origin[256], version[64], sessions[4096];
    int history; /* WA_HISTORY_* */
    struct proxy_url proxy;
    struct wa_client_events ev;
    void *arg;
    enum wa_state st;
    int running; /* wanted connected */
    struct wa_ws *ws;
    struct wa_noise ns;
    int ns_live, in_transport;
    struct wa_creds creds;
    int have_creds;
    struct wa_prekey *prekeys;
    size_t nprekeys;
    char refs[MAX_REFS][160];
    int nrefs, ref_idx;
    struct event *qr_timer, *retry_timer, *ping_timer, *linger_timer;
    unsigned backoff_ms;
    int ping_outstanding;
    unsigned ids;
    char id_prefix[16];
    struct {
        char id[32];
        enum iq_kind kind;
        wa_iq_cb cb;
        void *cb_arg;
    } iqs[MAX_IQS];
    struct wa_signal_store *sig;
    signal_context *sig_g;
    signal_protocol_store_context *sig_sc;
    struct wa_client_hooks hooks;
    void *hooks_arg;
    unsigned conn_gen; /* bumped per connection: late work for an old one is dropped */
    struct {
        int active;
        unsigned conn_gen;
        uint8_t eph_priv[32], eph_pub[32];
        char code[9];
        char phone[24];
        uint8_t ref[128];
        size_t ref_len;
    } pc; /* pairing by phone number */
};

/* ---- wa_client.c ---- */
void wac_set_state(struct wa_client *c, enum wa_state st, const char *detail);
void wac_schedule_retry(struct wa_client *c, const char *why);
void wac_halt(struct wa_client *c, enum wa_state st, const char *why);
/* -1 when there is no transport or encoding fails. */
int wac_send_node(struct wa_client *c, const wa_node *n);
/* Routes the reply to iq id by kind (see on_iq_reply). */
void wac_remember_iq(struct wa_client *c, const char *id, enum iq_kind kind);
/* <iq id to=server type xmlns>; its id is written into id. */
wa_node *wac_iq_new(wa_arena *a, struct wa_client *c, const char *type, const char *xmlns, char *id,
                    size_t idlen);
wa_node *wac_child(wa_arena *a, wa_node *parent, const char *tag);
void wac_send_iq_result(struct wa_client *c, const wa_node *req);
void wac_send_iq_error(struct wa_client *c, const char *id, int code, const char *text);

/* ---- wa_client_pair.c ---- */
/* Forgets the QR refs and tells the owner the code is gone. */
void wac_pair_qr_clear(struct wa_client *c);
void wac_pair_on_qr_timer(evutil_socket_t fd, short what, void *arg);
/* <iq><pair-device>: the refs to show as QR codes, one after another. */
void wac_pair_device(struct wa_client *c, const wa_node *iq, const wa_node *pd);
/* <iq><pair-success>: the phone linked us (by QR or by code). */
void wac_pair_success(struct wa_client *c, const wa_node *iq, const wa_node *ps);
/* Replies to the companion_hello and companion_finish IQs. */
void wac_pair_code_registered(struct wa_client *c, const wa_node *n, int ok);
void wac_pair_code_finished(int ok);
/* <notification type=link_code_companion_reg>: the phone took the code. */
void wac_pair_code_primary_hello(struct wa_client *c, const wa_node *n);

/* ---- wa_client_prekeys.c ---- */
/* The reply to the prekey count query: uploads more when the server runs low. */
void wac_prekeys_count(struct wa_client *c, const wa_node *n, int ok);
void wac_prekeys_uploaded(struct wa_client *c, int ok);
/* The server asked for more (<notification type=encrypt><count>). */
void wac_prekeys_refill(struct wa_client *c);

#endif
