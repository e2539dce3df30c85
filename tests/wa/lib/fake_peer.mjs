// Test-only: the other person in a conversation — a WhatsApp account with one
// device (device 0) whose Signal side is libsignal (node) from node_modules, an
// implementation independent of wapi's. The fake server routes <message>
// stanzas between it and the paired companions: it answers usync and prekey
// queries for it, decrypts what a companion sends it (checking the padding and
// the Message protobuf) and encrypts what it sends to a companion from that
// companion's uploaded prekeys.
import libsignal from 'libsignal';
import { proto } from 'baileys';

const { keyhelper, SessionBuilder, SessionCipher, ProtocolAddress } = libsignal;
const strip = (k) => (k.length === 33 ? k.subarray(1) : k);
const with05 = (k) => (k.length === 32 ? Buffer.concat([Buffer.from([5]), k]) : Buffer.from(k));

class MemoryStore {
    constructor(identity, regId, spk, prekeys) {
        this.identity = identity;
        this.regId = regId;
        this.spk = spk;
        this.prekeys = prekeys;
        this.sessions = new Map();
        this.identities = new Map();
    }
    async getOurIdentity() { return this.identity; }
    async getOurRegistrationId() { return this.regId; }
    // libsignal asks by user name only, and every device of a user has its own identity:
    // each key a user's devices have shown is trusted (a group sender meets several devices).
    async isTrustedIdentity(id, key) {
        if (!this.identities.has(id)) this.identities.set(id, new Set());
        this.identities.get(id).add(Buffer.from(key).toString('hex'));
        return true;
    }
    async loadSession(id) { return this.sessions.get(id); }
    async storeSession(id, rec) { this.sessions.set(id, rec); }
    async loadPreKey(id) { const k = this.prekeys.get(id); return k ? { pubKey: k.pubKey, privKey: k.privKey } : undefined; }
    async removePreKey(id) { this.prekeys.delete(id); }
    async loadSignedPreKey(id) { return id === this.spk.keyId ? this.spk.keyPair : undefined; }
}

export function pad(buf) {
    const n = 1 + Math.floor(Math.random() * 15);
    return Buffer.concat([buf, Buffer.alloc(n, n)]);
}

export function unpad(buf) {
    const n = buf[buf.length - 1];
    if (!n || n > buf.length) throw new Error('bad padding: last byte ' + n);
    for (let i = buf.length - n; i < buf.length; i++) if (buf[i] !== n) throw new Error('bad padding: inconsistent bytes');
    return buf.subarray(0, buf.length - n);
}

export class FakePeer {
    constructor({ phone = '15550009999', name = 'Peer', lid = null, prekeys: nPrekeys = 200 } = {}) {
        this.phone = phone;
        this.lid = lid ?? String(200000000000000 + Math.floor(Math.random() * 2 ** 46)).slice(0, 15);
        this.jid = `${phone}@s.whatsapp.net`;
        this.name = name;
        const identity = keyhelper.generateIdentityKeyPair();
        const regId = keyhelper.generateRegistrationId();
        const spk = keyhelper.generateSignedPreKey(identity, 1);
        const prekeys = new Map();
        for (let i = 1; i <= Math.min(200, nPrekeys); i++) { const k = keyhelper.generatePreKey(i); prekeys.set(i, k.keyPair); }
        this.nextPrekey = 1;
        this.store = new MemoryStore(identity, regId, spk, prekeys);
        this.received = new Map(); // id -> {count, message, from, ...}
        this.queue = Promise.resolve();
    }

    /** Serializes libsignal work (sessions are not safe to use concurrently). */
    serial(fn) {
        const p = this.queue.then(fn, fn);
        this.queue = p.catch(() => {});
        return p;
    }

    /** <user jid=…> with our prekey bundle, as the server answers <iq xmlns=encrypt><key>. */
    bundleNode(jid) {
        const s = this.store;
        let id = this.nextPrekey;
        while (id <= 200 && !s.prekeys.has(id)) id++;
        this.nextPrekey = id + 1;
        const u32 = Buffer.alloc(4); u32.writeUInt32BE(s.regId);
        const id3 = (i) => Buffer.from([(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);
        const content = [
            { tag: 'registration', attrs: {}, content: u32 },
            { tag: 'type', attrs: {}, content: Buffer.from([5]) },
            { tag: 'identity', attrs: {}, content: strip(s.identity.pubKey) },
            { tag: 'skey', attrs: {}, content: [
                { tag: 'id', attrs: {}, content: id3(s.spk.keyId) },
                { tag: 'value', attrs: {}, content: strip(s.spk.keyPair.pubKey) },
                { tag: 'signature', attrs: {}, content: Buffer.from(s.spk.signature) }
            ] }
        ];
        const pk = s.prekeys.get(id);
        if (pk) content.push({ tag: 'key', attrs: {}, content: [
            { tag: 'id', attrs: {}, content: id3(id) },
            { tag: 'value', attrs: {}, content: strip(pk.pubKey) }
        ] });
        return { tag: 'user', attrs: { jid }, content };
    }

    /** Decrypts one <enc> from user.device; returns the decoded Message. */
    decrypt(user, device, type, body) {
        return this.serial(async () => {
            const cipher = new SessionCipher(this.store, new ProtocolAddress(user, device));
            const plain = type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(Buffer.from(body))
                : await cipher.decryptWhisperMessage(Buffer.from(body));
            return proto.Message.decode(unpad(Buffer.from(plain)));
        });
    }

    /** Encrypts message (a proto.Message object) to user.device, starting a
     *  session from bundle {regId, identity, skeyId, skey, skeySig, prekeyId?, prekey?} if needed
     *  (bundle may be a function giving one: called only then, in turn with the other operations). */
    encrypt(user, device, message, bundle) {
        return this.serial(async () => {
            const addr = new ProtocolAddress(user, device);
            if (!this.store.sessions.has(addr.toString())) {
                if (typeof bundle === 'function') bundle = bundle();
                if (!bundle) throw new Error(`no session with ${addr} and no bundle`);
                await new SessionBuilder(this.store, addr).initOutgoing({
                    registrationId: bundle.regId,
                    identityKey: with05(bundle.identity),
                    signedPreKey: { keyId: bundle.skeyId, publicKey: with05(bundle.skey), signature: bundle.skeySig },
                    ...(bundle.prekey ? { preKey: { keyId: bundle.prekeyId, publicKey: with05(bundle.prekey) } } : {})
                });
            }
            const bytes = proto.Message.encode(proto.Message.fromObject(message)).finish();
            const r = await new SessionCipher(this.store, addr).encrypt(pad(Buffer.from(bytes)));
            return { type: r.type === 3 ? 'pkmsg' : 'msg', body: Buffer.from(r.body) };
        });
    }

    hasSession(user, device) {
        return this.store.sessions.has(new ProtocolAddress(user, device).toString());
    }
}
