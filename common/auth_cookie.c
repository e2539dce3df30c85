#include "auth_cookie.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define SIG_B64_LEN 44

static int hmac_b64(const char *secret, const char *msg, size_t len, char out[SIG_B64_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, len, mac, &maclen) ||
        maclen != 32)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, mac, 32); /* standard alphabet, padded: 44 characters */
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

/* encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) alone. */
static int uri_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-_.!~*'()", c);
}

int auth_cookie_sign(const char *secret, const char *token, size_t toklen, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    char sig[SIG_B64_LEN + 1];
    if (toklen > AUTH_COOKIE_TOKEN_MAX || hmac_b64(secret, token, toklen, sig) < 0)
        return -1;
    char raw[AUTH_COOKIE_TOKEN_MAX + 2 + SIG_B64_LEN];
    memcpy(raw, token, toklen);
    raw[toklen] = '.';
    memcpy(raw + toklen + 1, sig, SIG_B64_LEN);
    size_t n = toklen + 1 + SIG_B64_LEN, o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c && uri_unreserved(c)) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outlen)
                return -1;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int auth_cookie_verify(const char *secret, const char *val, size_t len, char *tok, size_t toklen)
{
    char dec[AUTH_COOKIE_MAX + 1];
    size_t n = 0;
    if (len > AUTH_COOKIE_MAX)
        return -1;
    /* better-call decodes only when a '%' is present; a bad escape leaves the
     * value as it is, which then fails the signature check. */
    for (size_t i = 0; i < len; i++) {
        if (val[i] == '%' && i + 2 < len && hexval(val[i + 1]) >= 0 && hexval(val[i + 2]) >= 0) {
            dec[n++] = (char)(hexval(val[i + 1]) * 16 + hexval(val[i + 2]));
            i += 2;
        } else {
            dec[n++] = val[i];
        }
    }
    dec[n] = '\0';
    if (memchr(dec, '\0', n))
        return -1;
    const char *dot = NULL;
    for (size_t i = n; i > 0; i--)
        if (dec[i - 1] == '.') {
            dot = dec + i - 1;
            break;
        }
    if (!dot || dot == dec)
        return -1;
    size_t vlen = (size_t)(dot - dec);
    const char *sig = dot + 1;
    if (strlen(sig) != SIG_B64_LEN || sig[SIG_B64_LEN - 1] != '=' || vlen > AUTH_COOKIE_TOKEN_MAX || vlen >= toklen)
        return -1;
    char want[SIG_B64_LEN + 1];
    if (hmac_b64(secret, dec, vlen, want) < 0)
        return -1;
    if (CRYPTO_memcmp(want, sig, SIG_B64_LEN) != 0)
        return -1;
    memcpy(tok, dec, vlen);
    tok[vlen] = '\0';
    return (int)vlen;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

const char *auth_cookie_find(const char *hdr, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name), i = 0;
    while (i < len) {
        size_t semi = i;
        while (semi < len && hdr[semi] != ';')
            semi++;
        size_t eq = i;
        while (eq < semi && hdr[eq] != '=')
            eq++;
        if (eq < semi) {
            size_t ks = i, ke = eq;
            while (ks < ke && is_space(hdr[ks]))
                ks++;
            while (ke > ks && is_space(hdr[ke - 1]))
                ke--;
            if (ke - ks == nl && memcmp(hdr + ks, name, nl) == 0) {
                size_t vs = eq + 1, ve = semi;
                while (vs < ve && is_space(hdr[vs]))
                    vs++;
                while (ve > vs && is_space(hdr[ve - 1]))
                    ve--;
                if (ve - vs >= 2 && hdr[vs] == '"' && hdr[ve - 1] == '"')
                    vs++, ve--;
                *vlen = ve - vs;
                return hdr + vs;
            }
        }
        i = semi + 1;
    }
    return NULL;
}

void auth_cookie_name(const char *base_url, const char *name, char *out, size_t outlen)
{
    int secure = base_url && strncmp(base_url, "https://", 8) == 0;
    snprintf(out, outlen, "%sbetter-auth.%s", secure ? "__Secure-" : "", name);
}
