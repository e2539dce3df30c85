// Test-only: the primary phone of a fake WhatsApp account. It owns the
// account identity key and plays the phone's part of linking a companion:
//   - QR: parse the text the companion shows, sign an ADVDeviceIdentity for the
//     companion's identity key and wrap it in an HMAC keyed with the companion's
//     adv secret;
//   - pairing code: unwrap the companion's ephemeral key with the 8-character
//     code, wrap our own, and after companion_finish unwrap the key bundle and
//     derive the adv secret the way both sides must;
//   - check the companion's pair-device-sign answer (device signature verified
//     with libsignal's XEdDSA verifier, account key removed).
// It knows nothing of sockets; lib/fake_server.mjs drives it.
//
// Crypto here is node:crypto plus libsignal's curve (through noise_server.mjs),
// so nothing depends on the client library under test.
import crypto from 'node:crypto';
import { proto, Curve } from 'baileys';
import { xeddsaSign, xeddsaVerify } from './noise_server.mjs';

export const QR_URL_PREFIX = 'https://wa.me/settings/linked_devices#';
/** Characters of a pairing code (Crockford-like base32 without 0, I, O, U). */
export const LINK_CODE_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTVWXYZ';
/** Companion platform ids the QR text and companion_hello may carry. */
export const COMPANION_PLATFORM_IDS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'c', 'e'];
export const PAIRING_KDF_ITERATIONS = 2 << 16; // 131072
export const ADV_PREFIX = {
    account: Buffer.from([6, 0]),
    device: Buffer.from([6, 1]),
    hostedAccount: Buffer.from([6, 5]),
    hostedDevice: Buffer.from([6, 6])
};

export class PhoneError extends Error {}
const fail = (msg) => {
    throw new PhoneError(msg);
};
const eq = (a, b) => a != null && b != null && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

const b64strict = (s, what, len) => {
    if (typeof s !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) fail(`QR ${what} is not base64`);
    const buf = Buffer.from(s, 'base64');
    if (buf.toString('base64') !== s) fail(`QR ${what} is not canonical base64`);
    if (len != null && buf.length !== len) fail(`QR ${what} is ${buf.length} bytes, want ${len}`);
    return buf;
};

/**
 * Parses the QR text a companion shows: `[https://wa.me/settings/linked_devices#]ref,noise,identity,adv[,platform]`.
 * Throws PhoneError when it is not well formed.
 */
export function parseQrText(text) {
    if (typeof text !== 'string') fail('QR text is not a string');
    const raw = text.trim();
    const prefixed = raw.startsWith(QR_URL_PREFIX);
    const body = prefixed ? raw.slice(QR_URL_PREFIX.length) : raw;
    const parts = body.split(',');
    if (parts.length !== 4 && parts.length !== 5) fail(`QR text has ${parts.length} comma-separated parts, want 4 or 5`);
    const [ref, noise, identity, adv, platform] = parts;
    if (!ref || !/^[\x21-\x7e]+$/.test(ref)) fail('QR ref is empty or not printable ASCII');
    const out = {
        ref,
        noisePub: b64strict(noise, 'noise key', 32),
        identityPub: b64strict(identity, 'identity key', 32),
        advSecret: b64strict(adv, 'adv secret', 32),
        platform: platform ?? null,
        prefixed
    };
    if (platform != null && !COMPANION_PLATFORM_IDS.includes(platform)) fail(`QR platform id ${JSON.stringify(platform)} unknown`);
    return out;
}

/** Normalises a typed pairing code (`ABCD-EFGH` or `ABCDEFGH`); throws when malformed. */
export function normalisePairingCode(code) {
    if (typeof code !== 'string') fail('pairing code is not a string');
    const c = code.trim().replace(/-/g, '').toUpperCase();
    if (c.length !== 8) fail(`pairing code has ${c.length} characters, want 8`);
    for (const ch of c) if (!LINK_CODE_ALPHABET.includes(ch)) fail(`pairing code character ${JSON.stringify(ch)} not in the alphabet`);
    return c;
}

export const pairingCodeKey = (code, salt) => crypto.pbkdf2Sync(Buffer.from(code, 'utf8'), salt, PAIRING_KDF_ITERATIONS, 32, 'sha256');
const ctr = (key, iv, data) => {
    const c = crypto.createCipheriv('aes-256-ctr', key, iv);
    return Buffer.concat([c.update(data), c.final()]);
};
const hkdf = (ikm, len, salt, info) => Buffer.from(crypto.hkdfSync('sha256', ikm, salt ?? Buffer.alloc(0), Buffer.from(info), len));
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const dh = (priv, pub) => Buffer.from(Curve.sharedKey(priv, pub));

/** salt(32) ‖ iv(16) ‖ AES-256-CTR(PBKDF2(code, salt), iv, pub). */
export function wrapWithCode(code, pub, salt = crypto.randomBytes(32), iv = crypto.randomBytes(16)) {
    return Buffer.concat([salt, iv, ctr(pairingCodeKey(code, salt), iv, pub)]);
}
export function unwrapWithCode(code, wrapped) {
    if (!wrapped || wrapped.length !== 80) fail(`wrapped ephemeral key is ${wrapped?.length} bytes, want 80`);
    return ctr(pairingCodeKey(code, wrapped.subarray(0, 32)), wrapped.subarray(32, 48), wrapped.subarray(48, 80));
}

/**
 * One fake account. Options: phoneNumber (digits), lidUser (digits), platform
 * (pair-success <platform name>), bizName (adds <biz name>), hosted (ADV hosted
 * prefixes), identity (restore a key pair), rawId, keyIndex, nextDevice.
 */
export class FakePhone {
    constructor({
        phoneNumber = '15550001234',
        lidUser = null,
        platform = 'android',
        bizName = null,
        hosted = false,
        identity = null,
        rawId = null,
        keyIndex = 0,
        nextDevice = 1
    } = {}) {
        if (!/^[1-9][0-9]{6,14}$/.test(phoneNumber)) fail(`phone number ${phoneNumber} is not international digits`);
        this.phoneNumber = phoneNumber;
        this.lidUser = lidUser ?? String(100000000000000 + crypto.randomInt(0, 2 ** 47)).slice(0, 15);
        this.platform = platform;
        this.bizName = bizName;
        this.hosted = hosted;
        this.identity = identity ? { private: Buffer.from(identity.private), public: Buffer.from(identity.public) } : Curve.generateKeyPair();
        this.rawId = rawId ?? crypto.randomInt(1, 2 ** 31);
        this.keyIndex = keyIndex;
        this.nextDevice = nextDevice;
        /** Set to 'hmac' | 'account-signature' | 'account-key' | 'details' to make the next pair-success wrong on purpose. */
        this.tamper = null;
    }

    get jidUser() {
        return this.phoneNumber;
    }

    toJSON() {
        return {
            phoneNumber: this.phoneNumber,
            lidUser: this.lidUser,
            platform: this.platform,
            bizName: this.bizName,
            hosted: this.hosted,
            identity: { private: this.identity.private.toString('hex'), public: this.identity.public.toString('hex') },
            rawId: this.rawId,
            keyIndex: this.keyIndex,
            nextDevice: this.nextDevice
        };
    }

    static fromJSON(j) {
        return new FakePhone({
            ...j,
            identity: { private: Buffer.from(j.identity.private, 'hex'), public: Buffer.from(j.identity.public, 'hex') }
        });
    }

    /**
     * Builds the <device-identity> content for a new companion device.
     * Returns { bytes (ADVSignedDeviceIdentityHMAC), details (ADVDeviceIdentity
     * bytes), accountSignature, keyIndex, deviceId, jid, lid, tampered }.
     */
    signDevice({ companionIdentityPub, advSecret, tamper = this.tamper }) {
        if (!companionIdentityPub || companionIdentityPub.length !== 32) fail('companion identity key is not 32 bytes');
        if (!advSecret || advSecret.length !== 32) fail('adv secret is not 32 bytes');
        this.tamper = null;
        const keyIndex = ++this.keyIndex;
        const deviceId = this.nextDevice++;
        const type = this.hosted ? proto.ADVEncryptionType.HOSTED : proto.ADVEncryptionType.E2EE;
        const details = Buffer.from(
            proto.ADVDeviceIdentity.encode({
                rawId: this.rawId,
                timestamp: Math.floor(Date.now() / 1000),
                keyIndex,
                accountType: type,
                deviceType: type
            }).finish()
        );
        const accPrefix = this.hosted ? ADV_PREFIX.hostedAccount : ADV_PREFIX.account;
        const accountSignature = xeddsaSign(this.identity.private, Buffer.concat([accPrefix, details, companionIdentityPub]));
        if (tamper === 'account-signature') accountSignature[5] ^= 0x10;
        let accountKey = this.identity.public;
        if (tamper === 'account-key') accountKey = Curve.generateKeyPair().public;
        const signedBytes = Buffer.from(
            proto.ADVSignedDeviceIdentity.encode({ details, accountSignatureKey: accountKey, accountSignature }).finish()
        );
        const hmacPrefix = this.hosted ? ADV_PREFIX.hostedAccount : Buffer.alloc(0);
        const mac = hmac(advSecret, Buffer.concat([hmacPrefix, signedBytes]));
        if (tamper === 'hmac') mac[0] ^= 0x01;
        const bytes = Buffer.from(
            proto.ADVSignedDeviceIdentityHMAC.encode({ details: signedBytes, hmac: mac, ...(this.hosted ? { accountType: type } : {}) }).finish()
        );
        return {
            bytes,
            details,
            signedBytes,
            accountSignature,
            accountSignatureKey: accountKey,
            keyIndex,
            deviceId,
            jid: `${this.phoneNumber}:${deviceId}@s.whatsapp.net`,
            lid: `${this.lidUser}:${deviceId}@lid`,
            tampered: tamper
        };
    }

    /**
     * Checks the companion's <device-identity> answer (ADVSignedDeviceIdentity
     * bytes) against what signDevice produced. Returns a list of problems.
     */
    checkDeviceSign({ signed, companionIdentityPub, bytes, keyIndexAttr }) {
        const bad = [];
        let m;
        try {
            m = proto.ADVSignedDeviceIdentity.decode(bytes);
        } catch (e) {
            return [`ADVSignedDeviceIdentity does not decode: ${e.message}`];
        }
        if (!eq(m.details, signed.details)) bad.push('details differ from the ones the phone signed');
        if (!eq(m.accountSignature, signed.accountSignature)) bad.push('accountSignature differs from the phone\'s');
        if (m.accountSignatureKey != null && m.accountSignatureKey.length > 0) bad.push('accountSignatureKey must be removed');
        if (!m.deviceSignature || m.deviceSignature.length !== 64) bad.push(`deviceSignature is ${m.deviceSignature?.length ?? 0} bytes, want 64`);
        else {
            const prefix = this.hosted ? ADV_PREFIX.hostedDevice : ADV_PREFIX.device;
            const msg = Buffer.concat([prefix, signed.details, companionIdentityPub, this.identity.public]);
            if (!xeddsaVerify(companionIdentityPub, msg, m.deviceSignature))
                bad.push('deviceSignature does not verify (06 01 ‖ details ‖ identity ‖ account key)');
        }
        if (String(keyIndexAttr) !== String(signed.keyIndex)) bad.push(`key-index ${keyIndexAttr}, want ${signed.keyIndex}`);
        // Re-encoding must give the same bytes: no unknown or duplicated fields.
        const again = Buffer.from(proto.ADVSignedDeviceIdentity.encode(m).finish());
        if (!eq(again, bytes)) bad.push('ADVSignedDeviceIdentity carries unknown or non-canonical fields');
        return bad;
    }

    /**
     * Phone side of code pairing, step 1 (the user typed `code`): unwraps the
     * companion's ephemeral key and wraps ours. Returns { wrappedPrimaryEphemeral,
     * primaryIdentityPub, state }.
     */
    startCodePairing({ code, wrappedCompanionEphemeral }) {
        const c = normalisePairingCode(code);
        const companionEphemeralPub = unwrapWithCode(c, wrappedCompanionEphemeral);
        const primaryEphemeral = Curve.generateKeyPair();
        return {
            wrappedPrimaryEphemeral: wrapWithCode(c, primaryEphemeral.public),
            primaryIdentityPub: this.identity.public,
            state: { code: c, companionEphemeralPub, primaryEphemeral }
        };
    }

    /**
     * Step 2 (companion_finish arrived): unwraps the key bundle
     * salt(32) ‖ iv(12) ‖ AES-GCM(companion identity ‖ primary identity ‖ random(32))
     * and derives the adv secret. Throws PhoneError when anything is off.
     */
    finishCodePairing(state, { wrappedKeyBundle, companionIdentityPub }) {
        if (!wrappedKeyBundle || wrappedKeyBundle.length !== 32 + 12 + 96 + 16)
            fail(`wrapped key bundle is ${wrappedKeyBundle?.length} bytes, want 156`);
        if (!companionIdentityPub || companionIdentityPub.length !== 32) fail('companion_identity_public is not 32 bytes');
        const ephemeralShared = dh(state.primaryEphemeral.private, state.companionEphemeralPub);
        const salt = wrappedKeyBundle.subarray(0, 32);
        const iv = wrappedKeyBundle.subarray(32, 44);
        const ct = wrappedKeyBundle.subarray(44, wrappedKeyBundle.length - 16);
        const tag = wrappedKeyBundle.subarray(wrappedKeyBundle.length - 16);
        const key = hkdf(ephemeralShared, 32, salt, 'link_code_pairing_key_bundle_encryption_key');
        let plain;
        try {
            const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
            d.setAuthTag(tag);
            plain = Buffer.concat([d.update(ct), d.final()]);
        } catch {
            fail('key bundle does not decrypt (wrong code, wrong keys or wrong KDF)');
        }
        if (!eq(plain.subarray(0, 32), companionIdentityPub)) fail('key bundle: companion identity differs from companion_identity_public');
        if (!eq(plain.subarray(32, 64), this.identity.public)) fail('key bundle: primary identity is not the phone\'s');
        const random = plain.subarray(64, 96);
        const identityShared = dh(this.identity.private, companionIdentityPub);
        const advSecret = hkdf(Buffer.concat([ephemeralShared, identityShared, random]), 32, null, 'adv_secret');
        return { advSecret };
    }
}
