/* Drives the WhatsApp Noise client over stdin/stdout for the interop test:
 * stdout carries what the client sends (header, frames), stdin what the
 * server answers. After the handshake it sends --send N frames "c2s:<i>" and
 * answers every frame it receives with "echo:" + the plaintext, until EOF.
 * Progress and errors go to stderr as "OK ..." / "ERROR rc=<name> reason=...".
 *
 *   wa_noise_tool --root HEX [--now SECS] [--version 2.3000.N] [--send N]
 *                 [--max-frame N] (--register | --login PHONE:DEVICE)
 * Exit: 0 after EOF with the session intact, 2 on a protocol failure,
 * 1 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/hex.h"
#include "supervisor/wa/wa_crypto.h"
#include "supervisor/wa/wa_noise.h"
#include "supervisor/wa/wa_payload.h"

static int write_all(const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_buf(uint8_t *buf, size_t n)
{
    int rc = write_all(buf, n);
    free(buf);
    return rc;
}

static int die(struct wa_noise *ns, int rc)
{
    fprintf(stderr, "ERROR rc=%s reason=%s\n", wa_noise_rc_name(rc), wa_noise_reason(ns));
    wa_noise_free(ns);
    return 2;
}

static int build_payload(int reg, uint64_t phone, uint32_t device, const char *version, uint8_t **out,
                         size_t *out_len)
{
    struct wa_payload_opts o;
    char err[160];
    wa_payload_defaults(&o);
    o.version = version;
    o.push_name = "wapi interop";
    if (!reg)
        return wa_payload_login(&o, phone, device, out, out_len, err, sizeof err) == 0 ? 0 : -1;
    /* A fresh Signal identity and signed prekey, signed as a real client does:
     * XEdDSA by the identity key over 0x05 || prekey public key. */
    struct wa_register_keys k;
    uint8_t ident_priv[32], spk_priv[32], msg[33];
    uint16_t regid;
    memset(&k, 0, sizeof k);
    if (wa_crypto_x25519_keypair(ident_priv, k.identity_pub) != 0 ||
        wa_crypto_x25519_keypair(spk_priv, k.signed_prekey_pub) != 0 ||
        wa_crypto_random((uint8_t *)&regid, sizeof regid) != 0)
        return -1;
    k.registration_id = (uint32_t)(regid & 0x3fff) + 1;
    k.signed_prekey_id = 1;
    msg[0] = 0x05;
    memcpy(msg + 1, k.signed_prekey_pub, 32);
    if (wa_crypto_xeddsa_sign(ident_priv, msg, sizeof msg, k.signed_prekey_sig) != 0)
        return -1;
    int rc = wa_payload_register(&o, &k, out, out_len, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "ERROR payload: %s\n", err);
    return rc;
}

int main(int argc, char **argv)
{
    const char *root_hex = NULL, *version = "2.3000.1045649367";
    uint64_t now = (uint64_t)time(NULL), phone = 0;
    uint32_t device = 0;
    int reg = -1, nsend = 0;
    size_t max_frame = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--register")) {
            reg = 1;
        } else if (!strcmp(a, "--login") && v) {
            if (sscanf(v, "%" SCNu64 ":%" SCNu32, &phone, &device) != 2)
                return 1;
            reg = 0;
            i++;
        } else if (!strcmp(a, "--root") && v) {
            root_hex = v, i++;
        } else if (!strcmp(a, "--now") && v) {
            now = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--version") && v) {
            version = v, i++;
        } else if (!strcmp(a, "--send") && v) {
            nsend = atoi(v), i++;
        } else if (!strcmp(a, "--max-frame") && v) {
            max_frame = strtoull(v, NULL, 10), i++;
        } else {
            fprintf(stderr, "usage: wa_noise_tool --root HEX [--now S] [--version V] [--send N] "
                            "[--max-frame N] (--register | --login PHONE:DEVICE)\n");
            return 1;
        }
    }
    uint8_t root[32], static_priv[32], static_pub[32];
    if (!root_hex || hex_decode(root_hex, root, 32) != 0 || reg < 0) {
        fprintf(stderr, "usage: --root takes 64 hex digits; --register or --login is required\n");
        return 1;
    }
    uint8_t *payload;
    size_t payload_len;
    if (build_payload(reg, phone, device, version, &payload, &payload_len) != 0) {
        fprintf(stderr, "ERROR cannot build the ClientPayload\n");
        return 2;
    }
    wa_crypto_x25519_keypair(static_priv, static_pub);
    struct wa_noise ns;
    struct wa_noise_config cfg = {.root_pub = root, .static_priv = static_priv, .max_frame = max_frame};
    int rc = wa_noise_init(&ns, &cfg);
    wa_crypto_random(static_priv, sizeof static_priv); /* the session keeps its own copy */
    if (rc != WA_NOISE_OK)
        return die(&ns, rc);

    uint8_t *out;
    size_t out_len;
    if ((rc = wa_noise_start(&ns, &out, &out_len)) != WA_NOISE_OK || send_buf(out, out_len) != 0)
        return die(&ns, rc);

    uint8_t buf[4096];
    int frames_in = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("read");
            break;
        }
        if (n == 0)
            break;
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used, flen;
            const uint8_t *frame;
            rc = wa_noise_recv(&ns, buf + off, (size_t)n - off, &used, &frame, &flen);
            off += used;
            if (rc < 0) {
                free(payload);
                return die(&ns, rc);
            }
            if (rc == 0)
                continue;
            if (!wa_noise_is_transport(&ns)) {
                rc = wa_noise_read_server_hello(&ns, frame, flen, payload, payload_len, now, &out, &out_len);
                free(payload);
                payload = NULL;
                if (rc != WA_NOISE_OK)
                    return die(&ns, rc);
                if (send_buf(out, out_len) != 0)
                    return die(&ns, WA_NOISE_ERR_STATE);
                fprintf(stderr, "OK handshake\n");
                for (int i = 0; i < nsend; i++) {
                    char msg[32];
                    int m = snprintf(msg, sizeof msg, "c2s:%d", i);
                    if ((rc = wa_noise_encrypt(&ns, (const uint8_t *)msg, (size_t)m, &out, &out_len)) != 0 ||
                        send_buf(out, out_len) != 0)
                        return die(&ns, rc);
                }
                continue;
            }
            uint8_t *pt;
            size_t pt_len;
            if ((rc = wa_noise_decrypt(&ns, frame, flen, &pt, &pt_len)) != WA_NOISE_OK)
                return die(&ns, rc);
            frames_in++;
            uint8_t *echo = malloc(pt_len + 5);
            memcpy(echo, "echo:", 5);
            if (pt_len)
                memcpy(echo + 5, pt, pt_len);
            free(pt);
            rc = wa_noise_encrypt(&ns, echo, pt_len + 5, &out, &out_len);
            free(echo);
            if (rc != WA_NOISE_OK)
                return die(&ns, rc);
            if (send_buf(out, out_len) != 0)
                return die(&ns, WA_NOISE_ERR_STATE);
        }
    }
    free(payload);
    int ok = wa_noise_is_transport(&ns);
    fprintf(stderr, "OK eof frames_in=%d transport=%d\n", frames_in, ok);
    wa_noise_free(&ns);
    return ok ? 0 : 2;
}
