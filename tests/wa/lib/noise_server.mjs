// Test-only: the server side of WhatsApp's Noise XX handshake and transport,
// built from Baileys' exported pieces (its proto schema, AES-GCM, HKDF, SHA-256,
// X25519) and libsignal's curve (a real XEdDSA verifier). It knows nothing of
// sockets: feed() takes the bytes a client sent and returns the bytes to send
// back plus any decrypted transport frames, so a TCP, stdio or WebSocket fake
// server can carry it.
//
// It checks what a client sends as strictly as we believe WhatsApp does: the
// connection header, the ClientHello shape, both ClientFinish ciphertexts, and
// (with checkClientPayload) every ClientPayload field we rely on.
import { proto, Curve, hkdf, md5, aesEncryptGCM, aesDecryptGCM, sha256, NOISE_MODE, NOISE_WA_HEADER } from 'baileys';
import * as curve from 'libsignal/src/curve.js';

export const MAX_FRAME = 0xffffff;

export class NoiseServerError extends Error {}

const fail = (msg) => {
    throw new NoiseServerError(msg);
};
const has = (o, k) => o != null && Object.prototype.hasOwnProperty.call(o, k) && o[k] != null;
const num = (v) => (v == null ? v : typeof v === 'number' ? v : Number(v.toString()));
const eq = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const withType = (k) => Buffer.concat([Buffer.from([5]), Buffer.from(k)]);

/** XEdDSA verify with libsignal's curve (Baileys' Curve.verify ignores the result). */
export function xeddsaVerify(pub32, msg, sig) {
    try {
        return curve.verifySignature(withType(pub32), Buffer.from(msg), Buffer.from(sig)) === true;
    } catch {
        return false;
    }
}

export function xeddsaSign(priv32, msg) {
    return Buffer.from(curve.calculateSignature(Buffer.from(priv32), Buffer.from(msg)));
}

/** 3-byte big-endian length + body. */
export function frame(body) {
    if (body.length > MAX_FRAME) fail(`frame of ${body.length} bytes does not fit in 3 length bytes`);
    const out = Buffer.alloc(3 + body.length);
    out[0] = (body.length >> 16) & 0xff;
    out[1] = (body.length >> 8) & 0xff;
    out[2] = body.length & 0xff;
    Buffer.from(body).copy(out, 3);
    return out;
}

const ivFor = (n) => {
    const iv = Buffer.alloc(12);
    iv.writeUInt32BE(n, 8);
    return iv;
};

/** Noise symmetric state: h, ck, k, n. */
class Symmetric {
    constructor() {
        const name = Buffer.from(NOISE_MODE, 'binary');
        if (name.length !== 32) fail('pattern name is not 32 bytes');
        this.h = name;
        this.ck = name;
        this.k = null;
        this.n = 0;
    }
    mixHash(data) {
        this.h = sha256(Buffer.concat([this.h, Buffer.from(data)]));
    }
    mixKey(ikm) {
        const okm = Buffer.from(hkdf(Buffer.from(ikm), 64, { salt: this.ck, info: '' }));
        this.ck = okm.subarray(0, 32);
        this.k = okm.subarray(32, 64);
        this.n = 0;
    }
    mixDH(priv, pub) {
        this.mixKey(Curve.sharedKey(priv, pub));
    }
    encrypt(pt) {
        const ct = aesEncryptGCM(Buffer.from(pt), this.k, ivFor(this.n++), this.h);
        this.mixHash(ct);
        return ct;
    }
    decrypt(ct, what) {
        let pt;
        try {
            pt = aesDecryptGCM(Buffer.from(ct), this.k, ivFor(this.n++), this.h);
        } catch {
            fail(`cannot decrypt ${what}`);
        }
        this.mixHash(ct);
        return pt;
    }
    split() {
        const okm = Buffer.from(hkdf(Buffer.alloc(0), 64, { salt: this.ck, info: '' }));
        return [okm.subarray(0, 32), okm.subarray(32, 64)];
    }
}

/**
 * A test PKI: root -> intermediate -> leaf (= the server static key), all
 * XEdDSA-signed with libsignal. `defect` builds one broken variant:
 * 'wrong-root' | 'bad-intermediate-sig' | 'intermediate-issuer' | 'bad-leaf-sig' |
 * 'leaf-issuer' | 'leaf-key' | 'expired' | 'not-yet-valid'.
 */
export function makeTestPki({ now = Math.floor(Date.now() / 1000), defect = null } = {}) {
    const root = Curve.generateKeyPair();
    const other = Curve.generateKeyPair();
    const intermediate = Curve.generateKeyPair();
    const serverStatic = Curve.generateKeyPair();
    const Details = proto.CertChain.NoiseCertificate.Details;
    const window = {
        notBefore: defect === 'not-yet-valid' ? now + 3600 : now - 86400,
        notAfter: defect === 'expired' ? now - 60 : now + 86400
    };
    const interDetails = Details.encode({
        serial: 42,
        issuerSerial: defect === 'intermediate-issuer' ? 9 : 0,
        key: intermediate.public,
        notBefore: now - 86400 * 30,
        notAfter: now + 86400 * 30
    }).finish();
    const leafDetails = Details.encode({
        serial: 4242,
        issuerSerial: defect === 'leaf-issuer' ? 43 : 42,
        key: defect === 'leaf-key' ? other.public : serverStatic.public,
        ...window
    }).finish();
    const interSig = xeddsaSign(defect === 'wrong-root' ? other.private : root.private, interDetails);
    const leafSig = xeddsaSign(intermediate.private, leafDetails);
    // The signer and the verifier must agree before we hand the chain out.
    if (!xeddsaVerify(intermediate.public, leafDetails, leafSig)) fail('test PKI: leaf signature does not verify');
    if (defect === 'bad-intermediate-sig') interSig[7] ^= 0x01;
    if (defect === 'bad-leaf-sig') leafSig[33] ^= 0x02;
    const certChain = Buffer.from(
        proto.CertChain.encode({
            leaf: { details: leafDetails, signature: leafSig },
            intermediate: { details: interDetails, signature: interSig }
        }).finish()
    );
    return { root, intermediate, serverStatic, certChain, now };
}

/**
 * Field-by-field check of a decoded ClientPayload; returns a list of
 * problems (empty when it is what we expect).
 * expect: { version: '2.3000.N', mode: 'register' | 'login', username?, device? }
 */
export function checkClientPayload(p, expect) {
    const bad = [];
    const want = (cond, msg) => {
        if (!cond) bad.push(msg);
    };
    const [a, b, c] = expect.version.split('.').map(Number);
    const ua = p.userAgent;
    want(ua != null, 'userAgent missing');
    if (ua) {
        want(ua.platform === proto.ClientPayload.UserAgent.Platform.WEB, `platform ${ua.platform}, want WEB (14)`);
        const av = ua.appVersion || {};
        want(av.primary === a && av.secondary === b && av.tertiary === c,
            `appVersion ${av.primary}.${av.secondary}.${av.tertiary}, want ${expect.version}`);
        want(ua.mcc === '000' && ua.mnc === '000', `mcc/mnc ${ua.mcc}/${ua.mnc}, want 000/000`);
        want(typeof ua.osVersion === 'string' && ua.osVersion.length > 0, 'osVersion missing');
        want(typeof ua.device === 'string' && ua.device.length > 0, 'device missing');
        want(typeof ua.osBuildNumber === 'string' && ua.osBuildNumber.length > 0, 'osBuildNumber missing');
        want(has(ua, 'releaseChannel') && ua.releaseChannel === 0, 'releaseChannel not RELEASE');
        want(/^[a-z]{2}$/.test(ua.localeLanguageIso6391 || ''), 'locale language missing');
        want(/^[A-Z]{2}$/.test(ua.localeCountryIso31661Alpha2 || ''), 'locale country missing');
    }
    want(p.webInfo != null && has(p.webInfo, 'webSubPlatform'), 'webInfo.webSubPlatform missing');
    want(p.connectType === proto.ClientPayload.ConnectType.WIFI_UNKNOWN, `connectType ${p.connectType}`);
    want(p.connectReason === proto.ClientPayload.ConnectReason.USER_ACTIVATED, `connectReason ${p.connectReason}`);
    if (expect.mode === 'register') {
        want(has(p, 'passive') && p.passive === false, 'register: passive must be false');
        want(has(p, 'pull') && p.pull === false, 'register: pull must be false');
        want(!has(p, 'username'), 'register: username must be absent');
        const d = p.devicePairingData;
        want(d != null, 'devicePairingData missing');
        if (d) {
            const len = (f) => (d[f] ? d[f].length : -1);
            want(len('eRegid') === 4, `eRegid ${len('eRegid')} bytes, want 4`);
            want(len('eKeytype') === 1 && d.eKeytype[0] === 5, 'eKeytype must be 05');
            want(len('eIdent') === 32, `eIdent ${len('eIdent')} bytes, want 32`);
            want(len('eSkeyId') === 3, `eSkeyId ${len('eSkeyId')} bytes, want 3`);
            want(len('eSkeyVal') === 32, `eSkeyVal ${len('eSkeyVal')} bytes, want 32`);
            want(len('eSkeySig') === 64, `eSkeySig ${len('eSkeySig')} bytes, want 64`);
            if (len('eIdent') === 32 && len('eSkeyVal') === 32 && len('eSkeySig') === 64)
                want(xeddsaVerify(d.eIdent, withType(d.eSkeyVal), d.eSkeySig),
                    'eSkeySig does not verify (identity over 05 || signed prekey)');
            want(len('buildHash') === 16 && eq(d.buildHash, md5(Buffer.from(expect.version))),
                'buildHash is not MD5 of the version');
            let props = null;
            try {
                props = proto.DeviceProps.decode(d.deviceProps || Buffer.alloc(0));
            } catch {
                bad.push('deviceProps does not decode');
            }
            if (props) {
                want(typeof props.os === 'string' && props.os.length > 0, 'deviceProps.os missing');
                want(has(props, 'platformType'), 'deviceProps.platformType missing');
            }
        }
    } else {
        want(has(p, 'username'), 'login: username missing');
        if (expect.username != null)
            want(has(p, 'username') && p.username.toString() === String(expect.username),
                `login: username ${p.username}, want ${expect.username}`);
        want(has(p, 'device'), 'login: device missing');
        if (expect.device != null) want(p.device === expect.device, `login: device ${p.device}, want ${expect.device}`);
        want(p.passive === true, 'login: passive must be true');
        want(p.pull === true, 'login: pull must be true');
        want(p.devicePairingData == null, 'login: devicePairingData must be absent');
    }
    return bad;
}

/**
 * One server-side connection.
 *   const s = new NoiseServer({ staticKeyPair, certChain, expect })
 *   const { out, frames } = s.feed(bytesFromClient)   // send out, handle frames
 *   s.encodeFrame(plaintext)                           // framed ciphertext to send
 * After the handshake: s.clientPayload (decoded), s.clientPayloadBytes, s.clientStatic.
 * Any violation throws NoiseServerError and leaves the connection failed.
 * tamper: 'static' | 'payload' | 'ephemeral' corrupts one ServerHello part.
 */
export class NoiseServer {
    constructor({ staticKeyPair, certChain, expect = null, maxFrame = MAX_FRAME, tamper = null }) {
        this.staticKeyPair = staticKeyPair;
        this.certChain = Buffer.from(certChain);
        this.expect = expect;
        this.maxFrame = maxFrame;
        this.tamper = tamper;
        this.state = 'header';
        this.inBuf = Buffer.alloc(0);
        this.sym = new Symmetric();
        this.readCounter = 0;
        this.writeCounter = 0;
    }

    feed(chunk) {
        if (this.state === 'failed') fail('connection already failed');
        const out = [];
        const frames = [];
        try {
            this.inBuf = Buffer.concat([this.inBuf, Buffer.from(chunk)]);
            if (this.state === 'header') {
                const n = Math.min(this.inBuf.length, 4);
                if (!eq(this.inBuf.subarray(0, n), NOISE_WA_HEADER.subarray(0, n)))
                    fail(`bad connection header ${this.inBuf.subarray(0, n).toString('hex')}`);
                if (this.inBuf.length < 4) return { out, frames };
                this.inBuf = this.inBuf.subarray(4);
                this.sym.mixHash(NOISE_WA_HEADER);
                this.state = 'hello';
            }
            for (;;) {
                if (this.inBuf.length < 3) break;
                const len = (this.inBuf[0] << 16) | (this.inBuf[1] << 8) | this.inBuf[2];
                if (len > this.maxFrame) fail(`frame of ${len} bytes over the bound`);
                if (this.inBuf.length < 3 + len) break;
                const body = this.inBuf.subarray(3, 3 + len);
                this.inBuf = this.inBuf.subarray(3 + len);
                if (this.state === 'hello') out.push(this.#onClientHello(body));
                else if (this.state === 'finish') this.#onClientFinish(body);
                else frames.push(this.#decryptTransport(body));
            }
        } catch (e) {
            this.state = 'failed';
            throw e;
        }
        return { out, frames };
    }

    #onClientHello(body) {
        const msg = proto.HandshakeMessage.decode(body);
        const hello = msg.clientHello;
        if (!hello) fail('first frame is not a ClientHello');
        if (msg.serverHello || msg.clientFinish) fail('ClientHello frame carries other messages');
        if (!hello.ephemeral || hello.ephemeral.length !== 32)
            fail(`ClientHello ephemeral is ${hello.ephemeral ? hello.ephemeral.length : 0} bytes, want 32`);
        if (has(hello, 'static') || has(hello, 'payload')) fail('ClientHello has IK fields in an XX handshake');
        this.clientEphemeral = Buffer.from(hello.ephemeral);
        this.sym.mixHash(this.clientEphemeral);

        this.ephemeral = Curve.generateKeyPair();
        this.sym.mixHash(this.ephemeral.public);
        this.sym.mixDH(this.ephemeral.private, this.clientEphemeral);
        const encStatic = this.sym.encrypt(this.staticKeyPair.public);
        this.sym.mixDH(this.staticKeyPair.private, this.clientEphemeral);
        const encCert = this.sym.encrypt(this.certChain);
        const eph = Buffer.from(this.ephemeral.public);
        if (this.tamper === 'ephemeral') eph[0] ^= 0x40;
        if (this.tamper === 'static') encStatic[3] ^= 0x01;
        if (this.tamper === 'payload') encCert[encCert.length - 1] ^= 0x01;
        this.state = 'finish';
        return frame(
            proto.HandshakeMessage.encode({ serverHello: { ephemeral: eph, static: encStatic, payload: encCert } }).finish()
        );
    }

    #onClientFinish(body) {
        const msg = proto.HandshakeMessage.decode(body);
        const fin = msg.clientFinish;
        if (!fin) fail('second frame is not a ClientFinish');
        if (!fin.static || fin.static.length !== 48) fail(`ClientFinish static is ${fin.static?.length} bytes, want 48`);
        if (!fin.payload || fin.payload.length < 16) fail('ClientFinish payload missing');
        const clientStatic = this.sym.decrypt(fin.static, 'the client static key');
        if (clientStatic.length !== 32) fail('client static key is not 32 bytes');
        this.sym.mixDH(this.ephemeral.private, clientStatic);
        const payloadBytes = this.sym.decrypt(fin.payload, 'the ClientPayload');
        let payload;
        try {
            payload = proto.ClientPayload.decode(payloadBytes);
        } catch (e) {
            fail(`ClientPayload does not decode: ${e.message}`);
        }
        if (this.expect) {
            const problems = checkClientPayload(payload, this.expect);
            if (problems.length) fail(`ClientPayload: ${problems.join('; ')}`);
        }
        const [clientWrite, clientRead] = this.sym.split();
        this.readKey = clientWrite;
        this.writeKey = clientRead;
        this.clientStatic = clientStatic;
        this.clientPayloadBytes = payloadBytes;
        this.clientPayload = payload;
        this.state = 'transport';
    }

    #decryptTransport(body) {
        if (body.length < 16) fail('transport frame shorter than a tag');
        try {
            return aesDecryptGCM(Buffer.from(body), this.readKey, ivFor(this.readCounter++), Buffer.alloc(0));
        } catch {
            fail(`transport frame ${this.readCounter - 1} does not authenticate`);
        }
    }

    /** Framed ciphertext of plaintext, in transport mode. */
    encodeFrame(plaintext) {
        if (this.state !== 'transport') fail('not in transport mode');
        return frame(aesEncryptGCM(Buffer.from(plaintext), this.writeKey, ivFor(this.writeCounter++), Buffer.alloc(0)));
    }

    get isTransport() {
        return this.state === 'transport';
    }
}
