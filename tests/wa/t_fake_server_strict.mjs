#!/usr/bin/env node
// The fake WhatsApp server refuses what WhatsApp would refuse. A scripted
// client (lib/raw_client.mjs: Baileys' handshake and codec, then any stanza we
// like) sends one defect per connection; each must end in a logged violation
// and a closed connection, or in the answer WhatsApp gives (iq error, failure).
// What must be accepted is checked too, so the server is not merely hostile.
// Prints PASS:/FAIL: lines; exits non-zero on failure; bounded by a watchdog.
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { Curve, encodeBinaryNode, configureSuccessfulPairing, proto } from 'baileys';
import { FakeWhatsAppServer } from './lib/fake_server.mjs';
import { wrapWithCode } from './lib/fake_phone.mjs';
import { memoryAuth, startBaileys } from './lib/baileys_client.mjs';
import { RawClient } from './lib/raw_client.mjs';

const VERSION = '2.3000.1023456789';
const PHONE = '15550004321';
const S = '@s.whatsapp.net';

let passed = 0;
let failed = 0;
const check = (cond, name, detail = '') => {
    if (cond) {
        passed++;
        console.log(`PASS: ${name}`);
    } else {
        failed++;
        console.log(`FAIL: ${name}${detail ? ' ' + detail : ''}`);
    }
    return cond;
};
const watchdog = setTimeout(() => {
    console.log('FAIL: watchdog: suite did not finish within 45 s');
    process.exit(1);
}, 45000);
process.on('unhandledRejection', () => {});

const server = new FakeWhatsAppServer({
    version: VERSION,
    qrFirstMs: 20000,
    qrNextMs: 5000,
    iqTimeoutMs: 1500,
    closeDelayMs: 20,
    phone: { phoneNumber: PHONE },
    logStream: process.env.WA_DEBUG ? process.stderr : null
});
await server.start();
const url = server.url;
const evs = (since, kind) => server.eventsSince(since, kind);
const within = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r('timeout'), ms))]);
const iq = (attrs, content) => ({ tag: 'iq', attrs: { to: S, ...attrs }, ...(content ? { content } : {}) });
let idn = 0;
const id = () => `t.${++idn}`;

/** Opens a raw connection; in register mode answers <pair-device>, in login mode waits for <success>. */
async function open(mode, { creds = null, answerPairDevice = true, patch = null } = {}) {
    const c = creds || memoryAuth().creds;
    const rc = await RawClient.connect(url, { creds: c, version: VERSION, mode, patch });
    if (mode === 'register') {
        const pd = await rc.next((n) => n.tag === 'iq' && n.content?.[0]?.tag === 'pair-device');
        rc.pairDevice = pd;
        if (answerPairDevice) rc.send(iq({ type: 'result', id: pd.attrs.id }));
    } else {
        await rc.next((n) => n.tag === 'success' || n.tag === 'failure');
    }
    rc.creds = c;
    return rc;
}

/** Runs act on a fresh connection and expects a violation whose detail matches re, and the connection closed. */
async function refuses(name, mode, act, re, opts = {}) {
    const s0 = server.seq;
    let rc;
    try {
        rc = await open(mode, opts);
        await act(rc);
    } catch (e) {
        if (!rc) return check(false, name, `could not open: ${e.message}`);
    }
    const closed = await within(rc.closed, 3000);
    const v = evs(s0, 'violation')[0];
    check(closed !== 'timeout' && v && re.test(v.detail), name, `closed=${closed} violation=${v?.detail}`);
    rc.close();
}

/** Runs act on a fresh connection and expects no violation; returns { rc, s0 }. */
async function accepts(mode, act, opts = {}) {
    const s0 = server.seq;
    const rc = await open(mode, opts);
    const out = await act(rc);
    return { rc, s0, out, violations: evs(s0, 'violation') };
}

// ── a paired device (Baileys) for the login-phase cases ──
const authP = memoryAuth();
{
    let c = startBaileys({ url, auth: authP, version: VERSION });
    const u = await c.next((x) => !!x.qr, 8000);
    await server.scanQr(u.qr);
    await c.waitClose(5000);
    c = startBaileys({ url, auth: authP, version: VERSION });
    await c.waitOpen(10000);
    await server.waitFor((e) => e.kind === 'active', { since: 0, timeoutMs: 5000 });
    await c.end();
}
const device = server.state().devices[0];
check(device?.prekeys === 812, 'setup: Baileys paired a device and uploaded 812 prekeys');

// ── handshake ──
async function refusedAtHandshake(name, mode, c, patch, re) {
    const s0 = server.seq;
    const rc = await RawClient.connect(url, { creds: c, version: VERSION, mode, patch });
    const closed = await within(rc.closed, 3000);
    const v = evs(s0, 'violation')[0];
    check(closed !== 'timeout' && re.test(v?.detail || '') && !rc.nodes.some((n) => n.tag === 'success' || n.tag === 'iq'), name, v?.detail);
}
await refusedAtHandshake('handshake: login payload with passive=false', 'login', authP.creds, (p) => ((p.passive = false), p), /passive must be true/);
await refusedAtHandshake('handshake: buildHash of another version', 'register', memoryAuth().creds,
    (p) => ((p.devicePairingData.buildHash = crypto.createHash('md5').update('2.3000.1').digest()), p), /buildHash is not MD5 of the version/);
await refusedAtHandshake('handshake: appVersion without its third number', 'register', memoryAuth().creds,
    (p) => ((p.userAgent.appVersion = { primary: 2, secondary: 3000 }), p), /appVersion .* not three positive numbers/);
await refusedAtHandshake('handshake: registration payload without deviceProps os', 'register', memoryAuth().creds,
    (p) => ((p.devicePairingData.deviceProps = proto.DeviceProps.encode({ platformType: 1 }).finish()), p), /deviceProps.os missing/);

// ── framing and stanza shape (registering connection) ──
const ping = () => iq({ type: 'get', xmlns: 'w:p', id: id() }, [{ tag: 'ping', attrs: {} }]);
await refuses('frame: bytes after the node', 'register', (rc) => rc.sendPlain(Buffer.concat([encodeBinaryNode(ping()), Buffer.from([0])])), /bytes after the node/);
await refuses('frame: unknown flag bits', 'register', (rc) => {
    const b = encodeBinaryNode(ping());
    b[0] = 0x04;
    rc.sendPlain(b);
}, /flag byte/);
await refuses('frame: not a binary node', 'register', (rc) => rc.sendPlain(Buffer.from([0, 0xf8, 0x03, 0xfc])), /does not decode/);
await refuses('stanza: unknown top-level tag', 'register', (rc) => rc.send({ tag: 'hello', attrs: {} }), /unexpected top-level stanza <hello>/);
await refuses('iq: without id', 'register', (rc) => rc.send(iq({ type: 'get', xmlns: 'w:p' }, [{ tag: 'ping', attrs: {} }])), /without id/);
await refuses('iq: without xmlns', 'register', (rc) => rc.send(iq({ type: 'get', id: id() }, [{ tag: 'ping', attrs: {} }])), /without xmlns/);
await refuses('iq: bad type', 'register', (rc) => rc.send(iq({ type: 'fetch', xmlns: 'w:p', id: id() })), /type=fetch/);
await refuses('iq: without to', 'register', (rc) => rc.send({ tag: 'iq', attrs: { type: 'get', xmlns: 'w:p', id: id() } }), /to=undefined/);
await refuses('iq: to a user JID', 'register', (rc) => rc.send(iq({ type: 'get', xmlns: 'w:p', id: id(), to: '123@s.whatsapp.net' })), /iq to=123@s.whatsapp.net/);
await refuses('iq: id reused', 'register', (rc) => {
    const p = ping();
    rc.send(p);
    rc.send(p);
}, /reused/);
await refuses('iq: result for an iq the server never sent', 'register', (rc) => rc.send(iq({ type: 'result', id: 'nope' })), /answers no iq/);
await refuses('iq: ping with an attribute', 'register', (rc) => rc.send(iq({ type: 'get', xmlns: 'w:p', id: id() }, [{ tag: 'ping', attrs: { x: '1' } }])), /<ping> must|unexpected attributes/);
await refuses('pair-device: result with content', 'register', (rc) => rc.send(iq({ type: 'result', id: rc.pairDevice.attrs.id }, [{ tag: 'ok', attrs: {} }])),
    /pair-device result must be empty/, { answerPairDevice: false });
await refuses('pair-device: never answered', 'register', async () => {}, /no answer to the server's pair-device iq/, { answerPairDevice: false });
await refuses('state: prekey count before login', 'register', (rc) => rc.send(iq({ type: 'get', xmlns: 'encrypt', id: id() }, [{ tag: 'count', attrs: {} }])), /before login/);
await refuses('ack: for a stanza never sent', 'register', (rc) => rc.send({ tag: 'ack', attrs: { id: 'x1', class: 'notification', to: S } }), /never sent/);
await refuses('presence: unknown type', 'register', (rc) => rc.send({ tag: 'presence', attrs: { type: 'busy' } }), /presence type=busy/);
{
    const { rc, violations, out } = await accepts('register', async (r) => {
        const a = id();
        const b = id();
        const c = id();
        r.send(iq({ type: 'get', xmlns: 'w:p', id: a })); // whatsmeow's keepalive has no <ping/>
        const plain = encodeBinaryNode(iq({ type: 'get', xmlns: 'w:p', id: b }, [{ tag: 'ping', attrs: {} }]));
        r.sendPlain(Buffer.concat([Buffer.from([2]), zlib.deflateSync(plain.subarray(1))]));
        r.send(iq({ type: 'get', xmlns: 'w:biz:unknown', id: c }, [{ tag: 'query', attrs: {} }]));
        return Promise.all([a, b, c].map((x) => r.next((n) => n.attrs.id === x)));
    });
    check(out[0].attrs.type === 'result' && out[1].attrs.type === 'result' && violations.length === 0,
        'accepts: empty w:p keepalive and a zlib-compressed frame');
    check(out[2].attrs.type === 'error' && out[2].content?.[0]?.attrs?.code === '501', 'accepts: unknown iq answered <error code=501> without closing');
    rc.close();
}

// ── QR scanning ──
{
    const s0 = server.seq;
    const rc = await open('register');
    const ref = rc.pairDevice.content[0].content[0].content.toString();
    const b64 = (b) => Buffer.from(b).toString('base64');
    const malformed = await server.scanQr(`${ref},abc`).then(() => null, (e) => e.message);
    check(/parts/.test(malformed || ''), 'qr: malformed text refused by the phone', malformed);
    const foreign = await server.scanQr([ref, b64(crypto.randomBytes(32)), b64(rc.creds.signedIdentityKey.public), b64(crypto.randomBytes(32))].join(',')).then(() => null, (e) => e.message);
    check(/noise key/.test(foreign || '') && /noise key/.test(evs(s0, 'violation')[0]?.detail || ''), 'qr: noise key that is not the connection\'s refused', foreign);
    rc.close();
    const s1 = server.seq;
    server.setConfig({ qrFirstMs: 100, qrNextMs: 100, qrGraceMs: 0 });
    const rc2 = await open('register');
    const ref2 = rc2.pairDevice.content[0].content[0].content.toString();
    await new Promise((r) => setTimeout(r, 250));
    const late = await server.scanQr([ref2, b64(rc2.creds.noiseKey.public), b64(rc2.creds.signedIdentityKey.public), rc2.creds.advSecretKey].join(',')).then(() => null, (e) => e.message);
    check(/expired/.test(late || '') && evs(s1, 'violation').length === 1, 'qr: expired ref refused', late);
    server.setConfig({ qrFirstMs: 20000, qrNextMs: 5000, qrGraceMs: 2000 });
    rc2.close();
}

/** Registers, has the phone scan, answers pair-success with reply(reply, stanza) → node to send. */
async function pairWith(name, mutate, re, { tamper = null } = {}) {
    const s0 = server.seq;
    const rc = await open('register');
    const ref = rc.pairDevice.content[0].content[0].content.toString();
    const c = rc.creds;
    if (tamper) server.setPhoneTamper(tamper);
    const p = server.scanQr([ref, c.noiseKey.public.toString('base64'), c.signedIdentityKey.public.toString('base64'), c.advSecretKey].join(',')).catch((e) => e);
    const stanza = await rc.next((n) => n.content?.[0]?.tag === 'pair-success');
    let node;
    try {
        const { reply } = configureSuccessfulPairing(stanza, c);
        node = mutate(reply, stanza);
    } catch (e) {
        node = mutate(null, stanza, e);
    }
    rc.send(node);
    const res = await p;
    await within(rc.closed, 3000);
    const fail = evs(s0, 'pair.fail')[0];
    const clientErr = evs(s0, 'pair.client-error')[0];
    check(re(res, fail, clientErr, evs(s0, 'send')), name, JSON.stringify({ res: res?.message || res, fail: fail?.problems, clientErr }));
    rc.close();
}
const deviceIdentity = (reply) => reply.content[0].content[0];
const reencode = (reply, f) => {
    const di = deviceIdentity(reply);
    const m = proto.ADVSignedDeviceIdentity.decode(di.content);
    f(m, di);
    di.content = Buffer.from(proto.ADVSignedDeviceIdentity.encode(m).finish());
    return reply;
};
await pairWith('pair-device-sign: a correct answer pairs', (r) => r, (res) => res?.ok === true);
await pairWith('pair-device-sign: accountSignatureKey kept', (r, st) => {
    const acc = proto.ADVSignedDeviceIdentity.decode(proto.ADVSignedDeviceIdentityHMAC.decode(st.content[0].content[0].content).details);
    return reencode(r, (m) => (m.accountSignatureKey = acc.accountSignatureKey));
}, (res, f) => f?.problems.some((p) => /accountSignatureKey must be removed/.test(p)));
await pairWith('pair-device-sign: wrong key-index', (r) => ((deviceIdentity(r).attrs['key-index'] = '99'), r), (res, f) => f?.problems.some((p) => /key-index 99/.test(p)));
await pairWith('pair-device-sign: details changed', (r) => reencode(r, (m) => (m.details = Buffer.concat([m.details, Buffer.from([0x28, 0x01])]))),
    (res, f) => f?.problems.some((p) => /details differ/.test(p)));
await pairWith('pair-device-sign: device signature by another key', (r, st) => reencode(r, (m) => {
    const acc = proto.ADVSignedDeviceIdentity.decode(proto.ADVSignedDeviceIdentityHMAC.decode(st.content[0].content[0].content).details);
    m.deviceSignature = Curve.sign(memoryAuth().creds.signedIdentityKey.private, Buffer.concat([Buffer.from([6, 0]), m.details, acc.accountSignatureKey]));
}), (res, f, ce, sent) => f?.problems.some((p) => /deviceSignature does not verify/.test(p)) &&
    sent.some((e) => e.node.attrs.type === 'error' && e.node.content?.[0]?.attrs?.code === '401'));
await pairWith('pair-device-sign: unknown field carried', (r) => {
    const di = deviceIdentity(r);
    di.content = Buffer.concat([di.content, Buffer.from([0x48, 0x01])]);
    return r;
}, (res, f) => f?.problems.some((p) => /unknown or non-canonical/.test(p)));
await pairWith('pair-success: a client error answer is logged and ends pairing', (r, st) => ({
    tag: 'iq', attrs: { to: S, type: 'error', id: st.attrs.id }, content: [{ tag: 'error', attrs: { code: '401', text: 'hmac-mismatch' } }]
}), (res, f, ce) => ce?.code === 401 && ce.text === 'hmac-mismatch' && /refused/.test(res?.message || ''), { tamper: 'hmac' });

// ── pairing code ──
const helloNode = (c, over = {}) => {
    const kids = {
        link_code_pairing_wrapped_companion_ephemeral_pub: wrapWithCode('ABCDEFGH', c.pairingEphemeralKeyPair.public),
        companion_server_auth_key_pub: c.noiseKey.public,
        companion_platform_id: '1',
        companion_platform_display: 'Chrome (Ubuntu)',
        link_code_pairing_nonce: '0',
        ...over.kids
    };
    return iq({ type: 'set', xmlns: 'md', id: id() }, [{
        tag: 'link_code_companion_reg',
        attrs: { jid: `${PHONE}@s.whatsapp.net`, stage: 'companion_hello', should_show_push_notification: 'true', ...over.attrs },
        content: Object.entries(kids).filter(([, v]) => v !== null).map(([tag, content]) => ({ tag, attrs: {}, content }))
    }]);
};
await refuses('code: wrapped ephemeral of 79 bytes', 'register', (rc) => rc.send(helloNode(rc.creds, { kids: { link_code_pairing_wrapped_companion_ephemeral_pub: crypto.randomBytes(79) } })), /79 bytes, want 80/);
await refuses('code: auth key is not the noise key', 'register', (rc) => rc.send(helloNode(rc.creds, { kids: { companion_server_auth_key_pub: crypto.randomBytes(32) } })), /not the Noise static key/);
await refuses('code: unknown platform id', 'register', (rc) => rc.send(helloNode(rc.creds, { kids: { companion_platform_id: '42' } })), /companion_platform_id/);
await refuses('code: display not "Browser (OS)"', 'register', (rc) => rc.send(helloNode(rc.creds, { kids: { companion_platform_display: 'Chrome' } })), /companion_platform_display/);
await refuses('code: nonce missing', 'register', (rc) => rc.send(helloNode(rc.creds, { kids: { link_code_pairing_nonce: null } })), /children/);
await refuses('code: jid not a phone number', 'register', (rc) => rc.send(helloNode(rc.creds, { attrs: { jid: 'abc@lid' } })), /not a phone-number JID/);
await refuses('code: companion_finish before primary_hello', 'register', async (rc) => {
    rc.send(helloNode(rc.creds));
    await rc.next((n) => n.content?.[0]?.tag === 'link_code_companion_reg');
    rc.send(iq({ type: 'set', xmlns: 'md', id: id() }, [{ tag: 'link_code_companion_reg', attrs: { jid: `${PHONE}@s.whatsapp.net`, stage: 'companion_finish' },
        content: [{ tag: 'link_code_pairing_wrapped_key_bundle', attrs: {}, content: crypto.randomBytes(156) }] }]));
}, /before the phone sent primary_hello/);
{
    const { rc, out, violations } = await accepts('register', async (r) => {
        const h = helloNode(r.creds, { attrs: { jid: '15559990000@s.whatsapp.net' } });
        r.send(h);
        return r.next((n) => n.attrs.id === h.attrs.id);
    });
    check(out.attrs.type === 'error' && out.content?.[0]?.attrs?.code === '404' && violations.length === 0, 'code: another phone number answered <error code=404>');
    const h2 = helloNode(rc.creds, { kids: { link_code_pairing_nonce: Buffer.from([0]) } });
    rc.send(h2);
    const ok = await rc.next((n) => n.attrs.id === h2.attrs.id);
    check(ok.attrs.type === 'result' && ok.content?.[0]?.content?.[0]?.tag === 'link_code_pairing_ref', 'code: nonce as one 00 byte accepted, ref returned');
    rc.close();
}
{
    const s0 = server.seq;
    const auth = memoryAuth();
    const c = startBaileys({ url, auth, version: VERSION });
    await c.next((x) => !!x.qr, 8000);
    const code = await c.sock.requestPairingCode(PHONE);
    await server.waitFor((e) => e.kind === 'paircode.hello', { since: s0 });
    const typo = code.slice(0, 7) + (code[7] === 'A' ? 'B' : 'A');
    const err = await server.enterPairingCode(typo).then(() => null, (e) => e.message);
    const fin = evs(s0, 'paircode.finish')[0];
    check(/does not decrypt/.test(err || '') && fin?.ok === false && evs(s0, 'pair.done').length === 0,
        'code: a mistyped code fails the key bundle, nothing is paired', err);
    await c.waitClose(5000).catch(() => {});
}

// ── logged-in connection ──
const creds = authP.creds;
const id3 = (i) => Buffer.from([(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);
const reg4 = (r) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(r);
    return b;
};
let nextKey = 5000;
const upload = ({ count = 3, ids = null, regId = creds.registrationId, identity = creds.signedIdentityKey.public, skey = creds.signedPreKey, sig = null, drop = null, keyFor = null } = {}) => {
    const list = (ids || Array.from({ length: count }, () => nextKey++)).map((i) => ({
        tag: 'key', attrs: {}, content: [{ tag: 'id', attrs: {}, content: id3(i) }, { tag: 'value', attrs: {}, content: keyFor ? keyFor(i) : Curve.generateKeyPair().public }]
    }));
    const kids = [
        { tag: 'registration', attrs: {}, content: reg4(regId) },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: identity },
        { tag: 'list', attrs: {}, content: list },
        { tag: 'skey', attrs: {}, content: [
            { tag: 'id', attrs: {}, content: id3(skey.keyId) },
            { tag: 'value', attrs: {}, content: skey.keyPair.public },
            { tag: 'signature', attrs: {}, content: sig || skey.signature }
        ] }
    ].filter((k) => k.tag !== drop);
    return iq({ type: 'set', xmlns: 'encrypt', id: id() }, kids);
};
const L = { creds };
await refuses('upload: 813 prekeys', 'login', (rc) => rc.send(upload({ count: 813 })), /813 prekeys in one upload/, L);
await refuses('upload: the same id twice', 'login', (rc) => rc.send(upload({ ids: [9001, 9001] })), /twice/, L);
await refuses('upload: id 0', 'login', (rc) => rc.send(upload({ ids: [0] })), /prekey id 0/, L);
await refuses('upload: id reused with another key', 'login', (rc) => rc.send(upload({ ids: [1] })), /uploaded again with another key/, L);
await refuses('upload: wrong registration id', 'login', (rc) => rc.send(upload({ regId: (creds.registrationId + 1) & 0x3fff })), /registration id/, L);
await refuses('upload: another identity key', 'login', (rc) => rc.send(upload({ identity: crypto.randomBytes(32) })), /not the paired identity/, L);
await refuses('upload: <type> missing', 'login', (rc) => rc.send(upload({ drop: 'type' })), /children/, L);
await refuses('upload: signed prekey signature forged', 'login', (rc) => {
    const sig = Buffer.from(creds.signedPreKey.signature);
    sig[1] ^= 1;
    rc.send(upload({ sig, skey: { ...creds.signedPreKey, keyId: 77 } }));
}, /signed prekey signature does not verify/, L);
await refuses('upload: signed prekey changed under the same id', 'login', (rc) => {
    const other = { keyId: creds.signedPreKey.keyId, keyPair: Curve.generateKeyPair() };
    other.signature = Curve.sign(creds.signedIdentityKey.private, Buffer.concat([Buffer.from([5]), other.keyPair.public]));
    rc.send(upload({ skey: other }));
}, /differs from the one sent at pairing/, L);
await refuses('upload: prekey of 31 bytes', 'login', (rc) => rc.send(upload({ count: 1, keyFor: () => crypto.randomBytes(31) })), /31 bytes, want 32/, L);
await refuses('count: with content', 'login', (rc) => rc.send(iq({ type: 'get', xmlns: 'encrypt', id: id() }, [{ tag: 'count', attrs: {}, content: [{ tag: 'x', attrs: {} }] }])), /must be empty/, L);
await refuses('passive: two children', 'login', (rc) => rc.send(iq({ type: 'set', xmlns: 'passive', id: id() }, [{ tag: 'active', attrs: {} }, { tag: 'active', attrs: {} }])), /2 children/, L);
await refuses('passive: unknown child', 'login', (rc) => rc.send(iq({ type: 'set', xmlns: 'passive', id: id() }, [{ tag: 'sleepy', attrs: {} }])), /holds <sleepy>/, L);
await refuses('ack: wrong class', 'login', async (rc) => {
    server.lowPrekeys(900);
    const n = await rc.next((x) => x.tag === 'notification');
    rc.send({ tag: 'ack', attrs: { id: n.attrs.id, class: 'message', to: S, type: 'encrypt' } });
}, /ack class=message/, L);
await refuses('ack: wrong to', 'login', async (rc) => {
    server.lowPrekeys(900);
    const n = await rc.next((x) => x.tag === 'notification');
    rc.send({ tag: 'ack', attrs: { id: n.attrs.id, class: 'notification', to: `${PHONE}@s.whatsapp.net`, type: 'encrypt' } });
}, /ack to=/, L);
await refuses('remove-companion-device: another jid', 'login', (rc) => rc.send(iq({ type: 'set', xmlns: 'md', id: id() }, [{ tag: 'remove-companion-device', attrs: { jid: `${PHONE}:9@s.whatsapp.net`, reason: 'user_initiated' } }])), /remove-companion-device jid/, L);
{
    const { rc, out, violations } = await accepts('login', async (r) => {
        const next = { keyId: creds.signedPreKey.keyId + 1, keyPair: Curve.generateKeyPair() };
        next.signature = Curve.sign(creds.signedIdentityKey.private, Buffer.concat([Buffer.from([5]), next.keyPair.public]));
        const rot = iq({ type: 'set', xmlns: 'encrypt', id: id() }, [{ tag: 'rotate', attrs: {}, content: [{ tag: 'skey', attrs: {}, content: [
            { tag: 'id', attrs: {}, content: id3(next.keyId) }, { tag: 'value', attrs: {}, content: next.keyPair.public }, { tag: 'signature', attrs: {}, content: next.signature }] }] }]);
        const dg = iq({ type: 'get', xmlns: 'encrypt', id: id() }, [{ tag: 'digest', attrs: {} }]);
        const msg = { tag: 'message', attrs: { id: 'M1', to: `${PHONE}@s.whatsapp.net`, type: 'text' }, content: [{ tag: 'enc', attrs: { v: '2', type: 'msg' }, content: Buffer.alloc(8) }] };
        r.send(rot);
        r.send(dg);
        r.send(msg);
        return Promise.all([r.next((n) => n.attrs.id === rot.attrs.id), r.next((n) => n.attrs.id === dg.attrs.id), r.next((n) => n.tag === 'ack' && n.attrs.id === 'M1')]);
    }, L);
    check(out[0].attrs.type === 'result' && violations.length === 0, 'accepts: signed prekey rotation with a verified signature');
    check(out[1].content?.[0]?.tag === 'digest' && out[1].content[0].content.some((k) => k.tag === 'list'), 'accepts: digest answered with the key bundle digest');
    check(out[2].attrs.class === 'message', 'accepts: a <message> gets an <ack class=message>');
    const rm = iq({ type: 'set', xmlns: 'md', id: id() }, [{ tag: 'remove-companion-device', attrs: { jid: creds.me.id, reason: 'user_initiated' } }]);
    rc.send(rm);
    const res = await rc.next((n) => n.attrs.id === rm.attrs.id);
    check(res.attrs.type === 'result' && server.state().devices[0].removed, 'accepts: logout removes the device');
    rc.close();
    const s0 = server.seq;
    const again = await RawClient.connect(url, { creds, version: VERSION, mode: 'login' });
    const f = await again.next((n) => n.tag === 'failure' || n.tag === 'success');
    check(f.tag === 'failure' && f.attrs.reason === '401' && evs(s0, 'login.fail').length === 1, 'login: a logged-out device gets <failure reason=401>');
    again.close();
}

// ── the whole run: every refusal was a logged violation, nothing crashed ──
check(!server.events.some((e) => e.kind === 'violation' && /server bug/.test(e.detail)), 'no server-side exception in any case');
await server.stop();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
