/* The session store on the sessions volume: our keys and the linked
 * account, as files written atomically and durably (temp, fsync, rename,
 * fsync dir) and checked on load (magic, version, lengths, SHA-256). A
 * corrupt file is reported, never silently replaced. */
#ifndef WAPI_WA_STORE_H
#define WAPI_WA_STORE_H
#include <stddef.h>
#include <stdint.h>

#define WA_STORE_PREKEYS_MAX 4096

struct wa_prekey {
    uint32_t id;
    uint8_t priv[32], pub[32];
};

struct wa_creds {
    uint8_t noise_priv[32], noise_pub[32];
    uint8_t ident_priv[32], ident_pub[32];
    uint32_t registration_id;
    uint32_t spk_id;
    uint8_t spk_priv[32], spk_pub[32], spk_sig[64];
    uint8_t adv_secret[32];
    uint32_t next_prekey_id;  /* the next id to generate */
    uint32_t uploaded_upto;   /* prekeys with id < this are on the server */
    int paired;
    char jid[96], lid[96], platform[32], business[64], push_name[64];
    uint8_t account[1024];    /* ADVSignedDeviceIdentity as accepted (without the account key) */
    size_t account_len;
};

/* Fresh keys for a new companion (not paired). */
int wa_store_new_creds(struct wa_creds *c);
/* 1 loaded, 0 no store yet, -1 corrupt or unreadable (err says which file and why). */
int wa_store_load(const char *dir, struct wa_creds *c, char *err, size_t errlen);
int wa_store_save(const char *dir, const struct wa_creds *c, char *err, size_t errlen);
/* Removes every file of the store (logout); 0 on success. */
int wa_store_wipe(const char *dir);

/* Prekeys: generated in batches, appended, loaded whole. */
int wa_store_prekeys_load(const char *dir, struct wa_prekey **out, size_t *n, char *err, size_t errlen);
int wa_store_prekeys_save(const char *dir, const struct wa_prekey *k, size_t n, char *err, size_t errlen);
/* Writes bytes to dir/name atomically and durably. */
int wa_store_write_file(const char *dir, const char *name, const uint8_t *data, size_t len, char *err,
                        size_t errlen);

#endif
