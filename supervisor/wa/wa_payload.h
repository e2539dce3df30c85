/* The ClientPayload our Noise handshake carries: "register" for a new
 * companion (before pairing), "login" once paired. Only builds bytes. */
#ifndef WAPI_WA_PAYLOAD_H
#define WAPI_WA_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct wa_payload_opts {
    const char *version;   /* WhatsApp Web version "2.3000.N" (required; changes every few weeks) */
    const char *push_name; /* our display name, or NULL to omit */
    const char *os_name;   /* DeviceProps.os, the name the phone lists the device under */
    int platform_type;     /* DeviceProps.PlatformType (1 = CHROME, 7 = DESKTOP, ...) */
    const char *lang;      /* ISO 639-1, e.g. "en" */
    const char *country;   /* ISO 3166-1 alpha-2, e.g. "US" */
    int lid_db_migrated;   /* login: tell the server we store LID mappings */
    int history;           /* WA_HISTORY_*: what history the phone is asked for when registering */
};

/* What the phone sends when we link: its recent window (the default), or
 * everything it has (requireFullSync and the full-sync limits). Off asks
 * for the recent window too: the phone sends its bootstrap regardless, and
 * it is acknowledged without being imported. */
enum { WA_HISTORY_OFF = 0, WA_HISTORY_RECENT = 1, WA_HISTORY_FULL = 2 };
#define WA_HISTORY_FULL_DAYS 3650     /* ten years: all a phone keeps */
#define WA_HISTORY_FULL_SIZE_MB 10240 /* as the storage quota */

/* Our Signal identity and signed prekey, announced when registering. */
struct wa_register_keys {
    uint32_t registration_id;
    uint8_t identity_pub[32];
    uint32_t signed_prekey_id; /* must fit in 3 bytes */
    uint8_t signed_prekey_pub[32];
    uint8_t signed_prekey_sig[64]; /* XEdDSA by the identity key over 0x05 || signed_prekey_pub */
};

/* Defaults: os "wapi", CHROME, "en", "US", no push name; version stays NULL. */
void wa_payload_defaults(struct wa_payload_opts *o);

/* Parses "A.B.C" (decimal, no sign, no leading zeros, each fits 32 bits).
 * Returns 0, or -1 for anything else. */
int wa_version_parse(const char *s, uint32_t v[3]);

/* Serialized ClientPayload. *out is malloc'd; the caller frees it.
 * Return 0, or -1 with a short reason in err (may be NULL). */
int wa_payload_register(const struct wa_payload_opts *o, const struct wa_register_keys *k, uint8_t **out,
                        size_t *out_len, char *err, size_t err_cap);
/* username: the account's phone number; device: our device number under it. */
int wa_payload_login(const struct wa_payload_opts *o, uint64_t username, uint32_t device, uint8_t **out,
                     size_t *out_len, char *err, size_t err_cap);

#endif
