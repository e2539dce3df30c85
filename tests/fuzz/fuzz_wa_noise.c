/* libFuzzer target for the WhatsApp Noise client. The first input byte picks
 * what the rest is:
 *   0  the byte stream a server sends during the handshake (ServerHello frames)
 *   1  the byte stream of transport frames after a finished handshake
 *   2  plaintexts + cut points: encrypt, cut the stream anywhere, and check the
 *      client reads back exactly what was sent (a property, not just no-crash)
 *   3  root key, server static, time and a CertChain for the chain verifier
 *   4  root key, server static private key, time and a CertChain that a
 *      correct responder encrypts into a ServerHello, driving the full path
 * Built alone by clang (make fuzzers), so it includes the sources it needs. */
#include "supervisor/wa/wa_crypto.c"
#include "supervisor/wa/wa_signal_crypto.c"
#include "supervisor/wa/wa_noise.c"
#include "supervisor/wa/proto/wa.pb-c.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t PAYLOAD[] = "fuzz client payload";

/* Fixed, already clamped keys keep every run deterministic. */
static const uint8_t CLIENT_STATIC[32] = {0x40, 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                          16,   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 0x41};
static const uint8_t CLIENT_EPH[32] = {0x48, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
                                       9,    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0x49};
static const uint8_t SERVER_EPH[32] = {0x50, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                       7,    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0x51};
static const uint8_t ROOT[32] = {0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7,
                                 0x1e, 0xbe, 0x51, 0x64, 0x37, 0xc4, 0xa2, 0x8b, 0x73, 0xe3, 0x69,
                                 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54, 0x5d, 0xa8, 0xee, 0x6b};

static void client_init(struct wa_noise *ns, const uint8_t root[32], size_t max_frame)
{
    struct wa_noise_config cfg = {
        .root_pub = root, .static_priv = CLIENT_STATIC, .ephemeral_priv = CLIENT_EPH, .max_frame = max_frame};
    uint8_t *out;
    size_t out_len;
    if (wa_noise_init(ns, &cfg) != WA_NOISE_OK || wa_noise_start(ns, &out, &out_len) != WA_NOISE_OK)
        __builtin_trap();
    free(out);
}

/* Feeds a whole stream; handshake frames go to read_server_hello, later
 * ones to decrypt. Stops at the first error, as a connection would. */
static void drive(struct wa_noise *ns, const uint8_t *in, size_t n, uint64_t now)
{
    size_t off = 0;
    while (off < n) {
        size_t used, flen;
        const uint8_t *frame;
        int rc = wa_noise_recv(ns, in + off, n - off, &used, &frame, &flen);
        if (rc < 0)
            return;
        if (used == 0 && rc == 0)
            __builtin_trap(); /* input left but no progress */
        off += used;
        if (rc == 0)
            continue;
        uint8_t *out = NULL;
        size_t out_len;
        if (!wa_noise_is_transport(ns))
            rc = wa_noise_read_server_hello(ns, frame, flen, PAYLOAD, sizeof PAYLOAD, now, &out, &out_len);
        else
            rc = wa_noise_decrypt(ns, frame, flen, &out, &out_len);
        free(out);
        if (rc < 0) {
            if (wa_noise_reason(ns)[0] == '\0')
                __builtin_trap(); /* every failure must say why */
            return;
        }
    }
}

static void force_transport(struct wa_noise *ns)
{
    memset(ns->wkey, 0x11, 32);
    memset(ns->rkey, 0x22, 32);
    ns->state = ST_TRANSPORT;
}

static void mode_roundtrip(const uint8_t *d, size_t n)
{
    struct wa_noise ns;
    client_init(&ns, ROOT, 0);
    force_transport(&ns);
    /* d: count, then count x (len byte, bytes), then cut offsets as bytes. */
    uint8_t stream[32 * (3 + 255 + 16)], pts[32][256];
    size_t lens[32], slen = 0, count = 0, off = 1;
    if (n == 0)
        goto done;
    size_t want = d[0] % 32;
    while (count < want && off < n) {
        size_t len = d[off++];
        if (len > n - off)
            len = n - off;
        memcpy(pts[count], d + off, len);
        lens[count] = len;
        off += len;
        uint8_t iv[12];
        make_iv(iv, count);
        wa_frame_put_len(stream + slen, len + 16);
        wa_crypto_aes_gcm_seal(ns.rkey, iv, NULL, 0, pts[count], len, stream + slen + 3);
        slen += 3 + len + 16;
        count++;
    }
    size_t got = 0, pos = 0;
    while (pos < slen) {
        size_t chunk = off < n ? (size_t)d[off++] + 1 : slen - pos;
        if (chunk > slen - pos)
            chunk = slen - pos;
        size_t coff = 0;
        while (coff < chunk) {
            size_t used, flen;
            const uint8_t *frame;
            int rc = wa_noise_recv(&ns, stream + pos + coff, chunk - coff, &used, &frame, &flen);
            if (rc < 0)
                __builtin_trap();
            coff += used;
            if (rc == 0)
                continue;
            uint8_t *pt;
            size_t pt_len;
            if (got >= count || wa_noise_decrypt(&ns, frame, flen, &pt, &pt_len) != WA_NOISE_OK ||
                pt_len != lens[got] || (pt_len && memcmp(pt, pts[got], pt_len) != 0))
                __builtin_trap();
            free(pt);
            got++;
        }
        pos += chunk;
    }
    if (got != count)
        __builtin_trap();
done:
    wa_noise_free(&ns);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A correct responder: ServerHello around the fuzzed chain, then check our
 * client's ClientFinish decrypts on the responder's side. */
static void mode_full(const uint8_t *d, size_t n)
{
    if (n < 72)
        return;
    const uint8_t *root = d, *srv_priv = d + 32, *chain = d + 72;
    uint64_t now = be64(d + 64);
    size_t chain_len = n - 72;
    uint8_t srv_pub[32], eph_pub[32], enc_static[48], *enc_chain = malloc(chain_len + 16);
    if (wa_crypto_x25519_pub(srv_priv, srv_pub) != 0 || wa_crypto_x25519_pub(SERVER_EPH, eph_pub) != 0)
        __builtin_trap();
    struct wa_noise ns;
    client_init(&ns, root, 0);
    struct wa_noise_hs hs;
    hs_init(&hs);
    hs_mix_hash(&hs, wa_noise_header, 4);
    hs_mix_hash(&hs, ns.e_pub, 32);
    hs_mix_hash(&hs, eph_pub, 32);
    if (hs_mix_dh(&hs, SERVER_EPH, ns.e_pub) != 0 || hs_encrypt(&hs, srv_pub, 32, enc_static) != 0)
        __builtin_trap();
    if (hs_mix_dh(&hs, srv_priv, ns.e_pub) != 0) { /* a low-order key: the client must fail too */
        free(enc_chain);
        wa_noise_free(&ns);
        return;
    }
    if (hs_encrypt(&hs, chain, chain_len, enc_chain) != 0)
        __builtin_trap();
    Wapi__Wa__HandshakeMessage__ServerHello sh = WAPI__WA__HANDSHAKE_MESSAGE__SERVER_HELLO__INIT;
    sh.has_ephemeral = sh.has_static_key = sh.has_payload = 1;
    sh.ephemeral.data = eph_pub;
    sh.ephemeral.len = 32;
    sh.static_key.data = enc_static;
    sh.static_key.len = 48;
    sh.payload.data = enc_chain;
    sh.payload.len = chain_len + 16;
    Wapi__Wa__HandshakeMessage m = WAPI__WA__HANDSHAKE_MESSAGE__INIT;
    m.server_hello = &sh;
    size_t sh_len = wapi__wa__handshake_message__get_packed_size(&m);
    uint8_t *buf = malloc(sh_len), *out;
    size_t out_len;
    wapi__wa__handshake_message__pack(&m, buf);
    char why[120];
    enum wa_cert_rc want = wa_noise_verify_cert_chain(chain, chain_len, root, srv_pub, now, why, sizeof why);
    int rc = wa_noise_read_server_hello(&ns, buf, sh_len, PAYLOAD, sizeof PAYLOAD, now, &out, &out_len);
    /* The session must agree with the verifier on its own. */
    if ((want == WA_CERT_OK) != (rc == WA_NOISE_OK))
        __builtin_trap();
    if (rc == WA_NOISE_OK) {
        Wapi__Wa__HandshakeMessage *fin = wapi__wa__handshake_message__unpack(NULL, out_len - 3, out + 3);
        uint8_t cs[32], pl[sizeof PAYLOAD];
        if (!fin || !fin->client_finish ||
            hs_decrypt(&hs, fin->client_finish->static_key.data, 48, cs) != 0 ||
            hs_mix_dh(&hs, SERVER_EPH, cs) != 0 || fin->client_finish->payload.len != sizeof PAYLOAD + 16 ||
            hs_decrypt(&hs, fin->client_finish->payload.data, fin->client_finish->payload.len, pl) != 0 ||
            memcmp(pl, PAYLOAD, sizeof PAYLOAD) != 0)
            __builtin_trap();
        wapi__wa__handshake_message__free_unpacked(fin, NULL);
        free(out);
    }
    free(buf);
    free(enc_chain);
    hs_wipe(&hs);
    wa_noise_free(&ns);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    struct wa_noise ns;
    switch (data[0] % 5) {
    case 0:
        /* A small bound half the time, so oversize paths are reachable. */
        client_init(&ns, ROOT, (data[0] & 0x80) ? 300 : 0);
        drive(&ns, d, n, 1700000000);
        wa_noise_free(&ns);
        break;
    case 1:
        client_init(&ns, ROOT, (data[0] & 0x80) ? 300 : 0);
        force_transport(&ns);
        drive(&ns, d, n, 1700000000);
        wa_noise_free(&ns);
        break;
    case 2:
        mode_roundtrip(d, n);
        break;
    case 3:
        if (n >= 72) {
            char why[120];
            wa_noise_verify_cert_chain(d + 72, n - 72, d, d + 32, be64(d + 64), why, sizeof why);
        }
        break;
    case 4:
        mode_full(d, n);
        break;
    }
    return 0;
}
