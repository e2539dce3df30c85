/* Media encryption: the published key-derivation vector, byte-equality with a
 * one-shot reference written here on OpenSSL's primitives, every size and
 * piece size, the sums, and every way a downloaded file can be wrong. */
#include "supervisor/wa/wa_media_cipher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "t.h"

/* T_CHECK with a formatted name. */
#define TF(cond, ...)                                                                                        \
    do {                                                                                                     \
        char tf_name_[200];                                                                                  \
        snprintf(tf_name_, sizeof tf_name_, __VA_ARGS__);                                                    \
        T_CHECK(cond, tf_name_);                                                                             \
    } while (0)

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* The file as the reference writes it: AES-256-CBC with PKCS#7, then the
 * first 10 bytes of HMAC-SHA256(macKey, iv ‖ ciphertext). */
static size_t reference(const uint8_t key[32], enum wa_media_kind kind, const uint8_t *pt, size_t n,
                        uint8_t *out)
{
    struct wa_media_keys k;
    if (wa_media_derive(key, kind, &k) != 0)
        return 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int a = 0, b = 0;
    EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, k.cipher, k.iv);
    EVP_EncryptUpdate(c, out, &a, pt, (int)n);
    EVP_EncryptFinal_ex(c, out + a, &b);
    EVP_CIPHER_CTX_free(c);
    size_t ct = (size_t)a + (size_t)b;
    uint8_t *m = malloc(16 + ct), mac[32];
    unsigned ml = 0;
    memcpy(m, k.iv, 16);
    memcpy(m + 16, out, ct);
    HMAC(EVP_sha256(), k.mac, 32, m, 16 + ct, mac, &ml);
    free(m);
    memcpy(out + ct, mac, 10);
    return ct + 10;
}

/* Runs a whole file through a stream in pieces of `piece` bytes (0: one
 * piece); returns the output length or a negative error. */
static long run(struct wa_media_stream *s, const uint8_t *in, size_t n, size_t piece, uint8_t *out,
                struct wa_media_sums *sums)
{
    long total = 0;
    size_t off = 0;
    if (!s)
        return -100;
    if (!piece)
        piece = n ? n : 1;
    while (off < n) {
        size_t m = n - off < piece ? n - off : piece;
        long w = wa_media_update(s, in + off, m, out + total);
        if (w < 0 || (size_t)w > m + 16) {
            wa_media_stream_free(s);
            return w < 0 ? w : -101;
        }
        total += w;
        off += m;
    }
    long w = wa_media_final(s, out + total, sums);
    wa_media_stream_free(s);
    return w < 0 ? w : total + w;
}

static long decrypt(const uint8_t key[32], enum wa_media_kind kind, const uint8_t *in, size_t n, size_t piece,
                    uint8_t *out, struct wa_media_sums *sums)
{
    return run(wa_media_decrypt_new(key, kind), in, n, piece, out, sums);
}

int main(void)
{
    uint8_t key[32], other[32];
    struct wa_media_keys k;
    char h[80];

    memset(key, 7, sizeof key);
    T_CHECK(wa_media_derive(key, WA_MEDIA_IMAGE, &k) == 0, "derive");
    hex(k.iv, 16, h);
    TF(!strcmp(h, "ae2d1d58a0146c8cdde42f6e5e883c61"), "media key 07x32, image: the published IV (%s)", h);
    T_CHECK(!strcmp(wa_media_info(WA_MEDIA_AUDIO), "WhatsApp Audio Keys") &&
                !strcmp(wa_media_info(WA_MEDIA_DOCUMENT), "WhatsApp Document Keys") &&
                !strcmp(wa_media_info(WA_MEDIA_VIDEO), "WhatsApp Video Keys") &&
                !strcmp(wa_media_info(WA_MEDIA_HISTORY), "WhatsApp History Keys") &&
                !strcmp(wa_media_info(WA_MEDIA_APPSTATE), "WhatsApp App State Keys"),
            "the info strings");
    T_CHECK(wa_media_info(WA_MEDIA_KINDS) == NULL && wa_media_info((enum wa_media_kind) - 1) == NULL &&
                wa_media_encrypt_new(key, WA_MEDIA_KINDS) == NULL &&
                wa_media_decrypt_new(key, (enum wa_media_kind)99) == NULL &&
                wa_media_derive(key, WA_MEDIA_KINDS, &k) != 0,
            "an unknown kind is refused");
    struct wa_media_keys k2;
    wa_media_derive(key, WA_MEDIA_VIDEO, &k2);
    T_CHECK(memcmp(k.cipher, k2.cipher, 32) != 0 && memcmp(k.mac, k2.mac, 32) != 0, "each kind its own keys");

    /* Every size around the block and MAC lengths and a large one, in
     * pieces of many sizes, both directions against the reference. */
    static const size_t sizes[] = {0, 1, 9, 10, 11, 15, 16, 17, 26, 31, 32, 33, 1000, 65536, 300001};
    static const size_t pieces[] = {0, 1, 3, 10, 11, 16, 17, 4096};
    size_t maxn = 300001 + 64;
    uint8_t *pt = malloc(maxn), *ref = malloc(maxn), *enc = malloc(maxn), *dec = malloc(maxn);
    RAND_bytes(pt, (int)maxn);
    RAND_bytes(key, sizeof key);
    int enc_bad = 0, dec_bad = 0, sums_bad = 0, runs = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        size_t rn = reference(key, WA_MEDIA_DOCUMENT, pt, n, ref);
        uint8_t want_plain[32], want_enc[32];
        SHA256(pt, n, want_plain);
        SHA256(ref, rn, want_enc);
        for (size_t j = 0; j < sizeof pieces / sizeof *pieces; j++) {
            if (n > 70000 && pieces[j] && pieces[j] < 16)
                continue; /* byte by byte over 300 kB says nothing more */
            struct wa_media_sums se, sd;
            runs++;
            long en = run(wa_media_encrypt_new(key, WA_MEDIA_DOCUMENT), pt, n, pieces[j], enc, &se);
            if (en != (long)rn || memcmp(enc, ref, rn) != 0)
                enc_bad++;
            long dn = decrypt(key, WA_MEDIA_DOCUMENT, ref, rn, pieces[j], dec, &sd);
            if (dn != (long)n || memcmp(dec, pt, n) != 0)
                dec_bad++;
            if (en >= 0 && dn >= 0 &&
                (memcmp(se.file_sha256, want_plain, 32) || memcmp(sd.file_sha256, want_plain, 32) ||
                 memcmp(se.file_enc_sha256, want_enc, 32) || memcmp(sd.file_enc_sha256, want_enc, 32) ||
                 se.file_length != n || sd.file_length != n || se.enc_length != rn || sd.enc_length != rn))
                sums_bad++;
        }
    }
    TF(runs > 100 && enc_bad == 0, "encrypting equals the reference byte for byte (%d of %d differ)", enc_bad,
       runs);
    TF(dec_bad == 0, "decrypting the reference gives the plaintext back (%d of %d differ)", dec_bad, runs);
    TF(sums_bad == 0, "fileSha256, fileEncSha256 and both lengths, either way (%d wrong)", sums_bad);
    size_t n0 = reference(key, WA_MEDIA_IMAGE, pt, 0, ref);
    TF(n0 == 26, "an empty file is one padding block and the MAC (%zu bytes)", n0);

    /* What a download can be: each is refused with its reason. */
    size_t n = 5000, rn = reference(key, WA_MEDIA_IMAGE, pt, n, ref);
    struct wa_media_sums s;
    memcpy(enc, ref, rn);
    enc[100] ^= 1;
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, enc, rn, 777, dec, &s) == WA_MEDIA_EMAC,
            "a flipped ciphertext bit: EMAC");
    memcpy(enc, ref, rn);
    enc[rn - 1] ^= 0x80;
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, enc, rn, 0, dec, &s) == WA_MEDIA_EMAC, "a flipped MAC bit: EMAC");
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, ref, rn - 1, 0, dec, &s) == WA_MEDIA_ESHORT,
            "one byte missing (not whole blocks): ESHORT");
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, ref, rn - 16, 0, dec, &s) == WA_MEDIA_EMAC,
            "a block missing (whole blocks, the MAC is now ciphertext): EMAC");
    memcpy(enc, ref, rn);
    enc[rn] = 0;
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, enc, rn + 1, 0, dec, &s) == WA_MEDIA_ESHORT,
            "a byte too many: ESHORT");
    T_CHECK(decrypt(key, WA_MEDIA_IMAGE, ref, 25, 0, dec, &s) == WA_MEDIA_ESHORT &&
                decrypt(key, WA_MEDIA_IMAGE, ref, 10, 0, dec, &s) == WA_MEDIA_ESHORT &&
                decrypt(key, WA_MEDIA_IMAGE, ref, 3, 1, dec, &s) == WA_MEDIA_ESHORT &&
                decrypt(key, WA_MEDIA_IMAGE, ref, 0, 0, dec, &s) == WA_MEDIA_ESHORT,
            "25, 10, 3 and 0 bytes: ESHORT");
    memcpy(other, key, 32);
    other[31] ^= 1;
    T_CHECK(decrypt(other, WA_MEDIA_IMAGE, ref, rn, 0, dec, &s) == WA_MEDIA_EMAC, "another media key: EMAC");
    T_CHECK(decrypt(key, WA_MEDIA_VIDEO, ref, rn, 0, dec, &s) == WA_MEDIA_EMAC,
            "the right key under another kind: EMAC");

    /* A file whose MAC is right but whose padding is not: a sender's bug,
     * told apart from tampering. */
    {
        wa_media_derive(key, WA_MEDIA_IMAGE, &k);
        uint8_t block[32] = {0}, ct[32], m[48], mac[32];
        int a = 0;
        unsigned ml = 0;
        block[31] = 0; /* PKCS#7 never ends in 0 */
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, k.cipher, k.iv);
        EVP_CIPHER_CTX_set_padding(c, 0);
        EVP_EncryptUpdate(c, ct, &a, block, 32);
        EVP_CIPHER_CTX_free(c);
        memcpy(m, k.iv, 16);
        memcpy(m + 16, ct, 32);
        HMAC(EVP_sha256(), k.mac, 32, m, 48, mac, &ml);
        memcpy(enc, ct, 32);
        memcpy(enc + 32, mac, 10);
        T_CHECK(decrypt(key, WA_MEDIA_IMAGE, enc, 42, 5, dec, &s) == WA_MEDIA_EPAD,
                "a right MAC, bad padding: EPAD");
    }

    /* A stream ends once. */
    struct wa_media_stream *st = wa_media_encrypt_new(key, WA_MEDIA_AUDIO);
    long w1 = wa_media_update(st, pt, 100, enc);
    long w2 = wa_media_final(st, enc + (w1 > 0 ? w1 : 0), &s);
    TF(w1 == 96 && w2 == 16 + 10, "100 bytes: 96 then the last block and the MAC (%ld, %ld)", w1, w2);
    T_CHECK(wa_media_update(st, pt, 10, enc) == WA_MEDIA_ECRYPTO &&
                wa_media_final(st, enc, &s) == WA_MEDIA_ECRYPTO,
            "after final, updates and a second final are refused");
    wa_media_stream_free(st);
    wa_media_stream_free(NULL);

    free(pt);
    free(ref);
    free(enc);
    free(dec);
    T_DONE();
}
