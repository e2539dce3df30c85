/* Signed media links (common/media_url.c): the signature is
 * base64url(HMAC-SHA256(key, id "\n" expires)) (checked against OpenSSL
 * here), and a link is refused when altered, moved to another id, signed
 * with another key, or expired. */
#include "common/media_url.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "t.h"

int main(void)
{
    uint8_t key[MEDIA_KEY_LEN], other[MEDIA_KEY_LEN];
    for (int i = 0; i < MEDIA_KEY_LEN; i++) {
        key[i] = (uint8_t)i;
        other[i] = (uint8_t)(i + 1);
    }
    char sig[MEDIA_SIG_LEN + 1];
    media_url_sign(key, "m_abc", 1900000000, sig);
    unsigned char mac[32];
    unsigned int ml;
    const char *msg = "m_abc\n1900000000";
    HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)msg, strlen(msg), mac, &ml);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, mac, 32);
    for (unsigned char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    b64[MEDIA_SIG_LEN] = '\0'; /* drop the padding */
    T_EQ_STR(sig, (char *)b64, "sign: base64url of HMAC-SHA256(key, id \\n expires), unpadded");
    T_EQ_INT(strlen(sig), MEDIA_SIG_LEN, "sign: 43 characters");
    time_t now = 1800000000;
    T_EQ_INT(media_url_check(key, "m_abc", "1900000000", sig, now), MEDIA_URL_OK, "check: a valid link");
    T_EQ_INT(media_url_check(key, "m_abd", "1900000000", sig, now), MEDIA_URL_BAD, "check: another id");
    T_EQ_INT(media_url_check(key, "m_abc", "1900000001", sig, now), MEDIA_URL_BAD, "check: another expiry");
    T_EQ_INT(media_url_check(key, "m_abc", "01900000000", sig, now), MEDIA_URL_BAD,
             "check: the same number written otherwise");
    T_EQ_INT(media_url_check(other, "m_abc", "1900000000", sig, now), MEDIA_URL_BAD, "check: another key");
    char alt[MEDIA_SIG_LEN + 1];
    memcpy(alt, sig, sizeof alt);
    alt[5] = alt[5] == 'A' ? 'B' : 'A';
    T_EQ_INT(media_url_check(key, "m_abc", "1900000000", alt, now), MEDIA_URL_BAD,
             "check: an altered signature");
    T_EQ_INT(media_url_check(key, "m_abc", "1900000000", "short", now), MEDIA_URL_BAD,
             "check: a short signature");
    T_EQ_INT(media_url_check(key, "m_abc", "-5", sig, now), MEDIA_URL_BAD, "check: a malformed expiry");
    T_EQ_INT(media_url_check(key, "m_abc", "1900000000", sig, 1900000001), MEDIA_URL_EXPIRED,
             "check: a valid link past its expiry");
    T_EQ_INT(media_url_check(key, "m_abc", "1900000000", alt, 1900000001), MEDIA_URL_BAD,
             "check: a forged link is bad, whatever its date");
    char path[200];
    T_EQ_INT(media_url_path(key, "m_abc", 1900000000, path, sizeof path), 0, "path: made");
    char want[200];
    snprintf(want, sizeof want, "/api/media/m_abc?expires=1900000000&sig=%s", sig);
    T_EQ_STR(path, want, "path: /api/media/ID?expires=N&sig=S");
    T_EQ_INT(media_url_path(key, "m_abc", 1900000000, path, 20), -1, "path: too small a buffer");
    T_DONE();
}
