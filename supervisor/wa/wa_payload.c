/* Builds the ClientPayload bytes; the values mirror what WhatsApp Web sends. */
#include "wa_payload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wa.pb-c.h"
#include "wa_crypto.h"

void wa_payload_defaults(struct wa_payload_opts *o)
{
    memset(o, 0, sizeof *o);
    o->os_name = "wapi";
    o->platform_type = WAPI__WA__DEVICE_PROPS__PLATFORM_TYPE__CHROME;
    o->lang = "en";
    o->country = "US";
    o->history = WA_HISTORY_RECENT;
}

static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...)
{
    if (!buf || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

int wa_version_parse(const char *s, uint32_t v[3])
{
    if (!s)
        return -1;
    for (int i = 0; i < 3; i++) {
        const char *start = s;
        uint64_t x = 0;
        while (*s >= '0' && *s <= '9') {
            x = x * 10 + (uint64_t)(*s - '0');
            if (x > UINT32_MAX)
                return -1;
            s++;
        }
        /* Leading zeros would change the string the build hash is made of. */
        if (s == start || (s - start > 1 && *start == '0'))
            return -1;
        v[i] = (uint32_t)x;
        if (i < 2 && *s++ != '.')
            return -1;
    }
    return *s == '\0' ? 0 : -1;
}

/* The parts both payloads share. Strings point into o (borrowed); protobuf-c
 * declares them non-const but only reads them when packing. */
struct common {
    Wapi__Wa__ClientPayload p;
    Wapi__Wa__ClientPayload__UserAgent ua;
    Wapi__Wa__ClientPayload__UserAgent__AppVersion av;
    Wapi__Wa__ClientPayload__WebInfo web;
};

static int common_init(struct common *c, const struct wa_payload_opts *o, uint32_t ver[3], char *err,
                       size_t err_cap)
{
    if (!o || wa_version_parse(o->version, ver) != 0) {
        say(err, err_cap, "version \"%s\" is not of the form 2.3000.N", o && o->version ? o->version : "");
        return -1;
    }
    Wapi__Wa__ClientPayload p = WAPI__WA__CLIENT_PAYLOAD__INIT;
    Wapi__Wa__ClientPayload__UserAgent ua = WAPI__WA__CLIENT_PAYLOAD__USER_AGENT__INIT;
    Wapi__Wa__ClientPayload__UserAgent__AppVersion av =
        WAPI__WA__CLIENT_PAYLOAD__USER_AGENT__APP_VERSION__INIT;
    Wapi__Wa__ClientPayload__WebInfo web = WAPI__WA__CLIENT_PAYLOAD__WEB_INFO__INIT;
    c->p = p;
    c->ua = ua;
    c->av = av;
    c->web = web;

    c->av.has_primary = c->av.has_secondary = c->av.has_tertiary = 1;
    c->av.primary = ver[0];
    c->av.secondary = ver[1];
    c->av.tertiary = ver[2];
    c->ua.has_platform = 1;
    c->ua.platform = WAPI__WA__CLIENT_PAYLOAD__USER_AGENT__PLATFORM__WEB;
    c->ua.app_version = &c->av;
    c->ua.mcc = (char *)"000";
    c->ua.mnc = (char *)"000";
    c->ua.os_version = (char *)"0.1";
    c->ua.device = (char *)"Desktop";
    c->ua.os_build_number = (char *)"0.1";
    c->ua.has_release_channel = 1;
    c->ua.release_channel = WAPI__WA__CLIENT_PAYLOAD__USER_AGENT__RELEASE_CHANNEL__RELEASE;
    c->ua.locale_language_iso_639_1 = (char *)(o->lang ? o->lang : "en");
    c->ua.locale_country_iso_3166_1_alpha_2 = (char *)(o->country ? o->country : "US");
    c->web.has_web_sub_platform = 1;
    c->web.web_sub_platform = WAPI__WA__CLIENT_PAYLOAD__WEB_INFO__WEB_SUB_PLATFORM__WEB_BROWSER;

    c->p.user_agent = &c->ua;
    c->p.web_info = &c->web;
    c->p.has_connect_type = 1;
    c->p.connect_type = WAPI__WA__CLIENT_PAYLOAD__CONNECT_TYPE__WIFI_UNKNOWN;
    c->p.has_connect_reason = 1;
    c->p.connect_reason = WAPI__WA__CLIENT_PAYLOAD__CONNECT_REASON__USER_ACTIVATED;
    if (o->push_name && *o->push_name)
        c->p.push_name = (char *)o->push_name;
    return 0;
}

static int pack(const Wapi__Wa__ClientPayload *p, uint8_t **out, size_t *out_len, char *err, size_t err_cap)
{
    size_t n = wapi__wa__client_payload__get_packed_size(p);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        say(err, err_cap, "out of memory");
        return -1;
    }
    wapi__wa__client_payload__pack(p, buf);
    *out = buf;
    *out_len = n;
    return 0;
}

static void put_be(uint8_t *dst, uint32_t v, int nbytes)
{
    for (int i = nbytes - 1; i >= 0; i--) {
        dst[i] = (uint8_t)v;
        v >>= 8;
    }
}

int wa_payload_register(const struct wa_payload_opts *o, const struct wa_register_keys *k, uint8_t **out,
                        size_t *out_len, char *err, size_t err_cap)
{
    struct common c;
    uint32_t ver[3];
    *out = NULL;
    *out_len = 0;
    if (common_init(&c, o, ver, err, err_cap) != 0)
        return -1;
    if (k->signed_prekey_id > 0xFFFFFF) {
        say(err, err_cap, "signed prekey id %u does not fit in 3 bytes", (unsigned)k->signed_prekey_id);
        return -1;
    }
    /* The build hash is MD5 of the canonical version text, so re-print it. */
    char vtext[40];
    snprintf(vtext, sizeof vtext, "%u.%u.%u", (unsigned)ver[0], (unsigned)ver[1], (unsigned)ver[2]);
    uint8_t build_hash[WA_MD5_LEN];
    if (wa_crypto_md5((const uint8_t *)vtext, strlen(vtext), build_hash) != 0) {
        say(err, err_cap, "MD5 failed");
        return -1;
    }

    Wapi__Wa__DeviceProps__AppVersion dav = WAPI__WA__DEVICE_PROPS__APP_VERSION__INIT;
    dav.has_primary = dav.has_secondary = dav.has_tertiary = 1;
    dav.primary = 0;
    dav.secondary = 1;
    dav.tertiary = 0;
    Wapi__Wa__DeviceProps__HistorySyncConfig hsc = WAPI__WA__DEVICE_PROPS__HISTORY_SYNC_CONFIG__INIT;
    hsc.has_storage_quota_mb = 1;
    hsc.storage_quota_mb = 10240;
    hsc.has_inline_initial_payload_in_e2ee_msg = 1;
    hsc.inline_initial_payload_in_e2ee_msg = 1;
    hsc.has_support_call_log_history = 1;
    hsc.support_call_log_history = 0;
    Wapi__Wa__DeviceProps dp = WAPI__WA__DEVICE_PROPS__INIT;
    dp.os = (char *)(o->os_name ? o->os_name : "wapi");
    dp.version = &dav;
    dp.has_platform_type = 1;
    dp.platform_type = (Wapi__Wa__DeviceProps__PlatformType)o->platform_type;
    dp.has_require_full_sync = 1;
    dp.require_full_sync = o->history == WA_HISTORY_FULL;
    if (o->history == WA_HISTORY_FULL) {
        hsc.has_full_sync_days_limit = hsc.has_full_sync_size_mb_limit = 1;
        hsc.full_sync_days_limit = WA_HISTORY_FULL_DAYS;
        hsc.full_sync_size_mb_limit = WA_HISTORY_FULL_SIZE_MB;
    }
    dp.history_sync_config = &hsc;
    uint8_t props[256];
    size_t props_len = wapi__wa__device_props__get_packed_size(&dp);
    if (props_len > sizeof props) {
        say(err, err_cap, "device name too long");
        return -1;
    }
    wapi__wa__device_props__pack(&dp, props);

    uint8_t regid[4], keytype[1] = {0x05}, skey_id[3];
    put_be(regid, k->registration_id, 4);
    put_be(skey_id, k->signed_prekey_id, 3);
    Wapi__Wa__ClientPayload__DevicePairingRegistrationData d =
        WAPI__WA__CLIENT_PAYLOAD__DEVICE_PAIRING_REGISTRATION_DATA__INIT;
#define SET_BYTES(field, ptr, n)                                                                             \
    do {                                                                                                     \
        d.has_##field = 1;                                                                                   \
        d.field.data = (uint8_t *)(ptr);                                                                     \
        d.field.len = (n);                                                                                   \
    } while (0)
    SET_BYTES(e_regid, regid, 4);
    SET_BYTES(e_keytype, keytype, 1);
    SET_BYTES(e_ident, k->identity_pub, 32);
    SET_BYTES(e_skey_id, skey_id, 3);
    SET_BYTES(e_skey_val, k->signed_prekey_pub, 32);
    SET_BYTES(e_skey_sig, k->signed_prekey_sig, 64);
    SET_BYTES(build_hash, build_hash, WA_MD5_LEN);
    SET_BYTES(device_props, props, props_len);
#undef SET_BYTES
    c.p.device_pairing_data = &d;
    c.p.has_passive = 1;
    c.p.passive = 0;
    c.p.has_pull = 1;
    c.p.pull = 0;
    return pack(&c.p, out, out_len, err, err_cap);
}

int wa_payload_login(const struct wa_payload_opts *o, uint64_t username, uint32_t device, uint8_t **out,
                     size_t *out_len, char *err, size_t err_cap)
{
    struct common c;
    uint32_t ver[3];
    *out = NULL;
    *out_len = 0;
    if (common_init(&c, o, ver, err, err_cap) != 0)
        return -1;
    if (username == 0) {
        say(err, err_cap, "login needs the account's phone number");
        return -1;
    }
    c.p.has_username = 1;
    c.p.username = username;
    c.p.has_device = 1;
    c.p.device = device;
    /* Passive until we have uploaded prekeys and said <active/>. */
    c.p.has_passive = 1;
    c.p.passive = 1;
    c.p.has_pull = 1;
    c.p.pull = 1;
    if (o->lid_db_migrated) {
        c.p.has_lid_db_migrated = 1;
        c.p.lid_db_migrated = 1;
    }
    return pack(&c.p, out, out_len, err, err_cap);
}
