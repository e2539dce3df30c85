#!/usr/bin/env node
// POST /peers/companions on the fake WhatsApp server: existing accounts get a
// companion device with real keys that never connects. Over the control API:
// bad input is refused with 400 and changes nothing, a repeat adds nothing.
// Over a raw login of a paired companion: usync lists device 0 and the new
// device, a prekey fetch hands out its bundle (signed prekey signature valid
// under its identity, a different one-time prekey each time) until its
// prekeys run out (404 item-not-found).
// And the fake server's peers checking one skmsg signature once (lib/fake_groups.mjs):
// a second recipient of the same skmsg reads it, a copy with a flipped signature
// bit is refused every time.
// Prints PASS:/FAIL: lines; exits non-zero on failure; bounded by a watchdog.
import { Curve } from 'baileys';
import libsignal from 'libsignal';
import { GroupCipher, GroupSessionBuilder, SenderKeyName, SenderKeyRecord } from 'baileys/lib/Signal/Group/index.js';
import './lib/fake_groups.mjs';
import { FakeWhatsAppServer, startControl } from './lib/fake_server.mjs';
import { memoryAuth, startBaileys } from './lib/baileys_client.mjs';
import { RawClient } from './lib/raw_client.mjs';

const VERSION = '2.3000.1023456789';
const A = '15550004321';
const M = ['16660000001', '16660000002'];

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
    console.log('FAIL: watchdog: suite did not finish within 60 s');
    process.exit(1);
}, 60000);
process.on('unhandledRejection', () => {});

const server = new FakeWhatsAppServer({ version: VERSION, iqTimeoutMs: 1500, closeDelayMs: 20, phone: { phoneNumber: A } });
server.on('violation', (v) => console.log('violation:', v.detail));
await server.start();
const ctl = await startControl(server);
const control = `http://127.0.0.1:${ctl.address().port}`;
const post = async (p, body) => {
    const r = await fetch(control + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
};
const kids = (n) => (Array.isArray(n?.content) ? n.content : []);
const kid = (n, tag) => kids(n).find((c) => c.tag === tag);

let r = await post('/peers/add', { phones: M });
check(r.status === 200 && r.body.added === 2, 'setup: two accounts added', JSON.stringify(r.body));
const devices = () => server.state().devices.length;
const d0 = devices();
for (const [what, body, want] of [
    ['an account that does not exist', { phones: ['16669999999'] }, /no account/],
    ['device 0 (the account itself)', { phones: M, device: 0 }, /device 0/],
    ['device 100', { phones: M, device: 100 }, /device 100/],
    ['zero prekeys', { phones: M, prekeys: 0 }, /prekeys 0/],
    ['a device that is not a number', { phones: M, device: '1' }, /device 1/]
]) {
    r = await post('/peers/companions', body);
    check(r.status === 400 && want.test(r.body.error ?? '') && devices() === d0, `refused with 400, nothing added: ${what}`, `${r.status} ${JSON.stringify(r.body)}`);
}
r = await post('/peers/companions', { phones: M, device: 1, prekeys: 2 });
check(r.status === 200 && r.body.added === 2 && devices() === d0 + 2, 'a companion device for each account', JSON.stringify(r.body));
r = await post('/peers/companions', { phones: M, device: 1 });
check(r.status === 200 && r.body.added === 0 && devices() === d0 + 2, 'asked again: nothing added', JSON.stringify(r.body));

// A companion of account A, paired by QR, then logged in raw to ask.
const auth = memoryAuth();
let c = startBaileys({ url: server.url, auth, version: VERSION });
const u = await c.next((x) => !!x.qr, 8000);
await server.scanQr(u.qr, { phone: A });
await c.waitClose(5000);
c = startBaileys({ url: server.url, auth, version: VERSION });
await c.waitOpen(10000);
await c.end();
const rc = await RawClient.connect(server.url, { creds: auth.creds, version: VERSION, mode: 'login' });
await rc.next((n) => n.tag === 'success', 5000);
let idn = 0;
const iq = async (attrs, content) => {
    const id = `c.${++idn}`;
    rc.send({ tag: 'iq', attrs: { id, to: '@s.whatsapp.net', ...attrs }, content });
    return rc.next((n) => n.tag === 'iq' && n.attrs.id === id, 3000);
};

const us = await iq({ xmlns: 'usync', type: 'get' }, [{ tag: 'usync', attrs: { sid: 's1', mode: 'query', context: 'message', index: '0', last: 'true' }, content: [
    { tag: 'query', attrs: {}, content: [{ tag: 'devices', attrs: { version: '2' } }] },
    { tag: 'list', attrs: {}, content: M.map((p) => ({ tag: 'user', attrs: { jid: `${p}@s.whatsapp.net` } })) }
] }]);
const listed = kids(kid(kid(us, 'usync'), 'list')).map((x) => kids(kid(kid(x, 'devices'), 'device-list')).map((d) => d.attrs.id).join(','));
check(listed.length === 2 && listed.every((l) => l === '0,1'), 'usync lists device 0 and the companion of each account', JSON.stringify(listed));

const fetchKey = async (jid) => {
    const a = await iq({ xmlns: 'encrypt', type: 'get' }, [{ tag: 'key', attrs: {}, content: [{ tag: 'user', attrs: { jid } }] }]);
    return kids(kid(a, 'list'))[0];
};
const jid = `${M[0]}:1@s.whatsapp.net`;
const seen = new Set();
for (let i = 0; i < 2; i++) {
    const b = await fetchKey(jid);
    const identity = Buffer.from(kid(b, 'identity')?.content ?? []);
    const skey = kid(b, 'skey');
    const value = Buffer.from(kid(skey, 'value')?.content ?? []);
    const sig = Buffer.from(kid(skey, 'signature')?.content ?? []);
    const pk = Buffer.from(kid(kid(b, 'key'), 'value')?.content ?? []);
    let ok = false;
    try {
        ok = identity.length === 32 && value.length === 32 && sig.length === 64 &&
            Curve.verify(identity, Buffer.concat([Buffer.from([5]), value]), sig);
    } catch {
        ok = false;
    }
    check(b?.attrs?.jid === jid && ok && pk.length === 32 && !seen.has(pk.toString('hex')),
        `prekey fetch ${i + 1}: its bundle, signed prekey signed by its identity, a fresh one-time prekey`);
    seen.add(pk.toString('hex'));
}
const gone = await fetchKey(jid);
check(kid(gone, 'error')?.attrs?.code === '404', 'its prekeys used up: 404 item-not-found');

// Sender keys: one sender, two recipients of the same skmsg.
const keyStore = () => {
    const m = new Map();
    return {
        loadSenderKey: async (name) => m.get(name.toString()) ?? new SenderKeyRecord(),
        storeSenderKey: async (name, rec) => m.set(name.toString(), rec)
    };
};
const name = new SenderKeyName('120363000000000001@g.us', new libsignal.ProtocolAddress(M[0], 0));
const sender = keyStore();
const skdm = await new GroupSessionBuilder(sender).create(name);
const r1 = keyStore(), r2 = keyStore();
await new GroupSessionBuilder(r1).process(name, skdm);
await new GroupSessionBuilder(r2).process(name, skdm);
const sk = await new GroupCipher(sender, name).encrypt(Buffer.from('to the group'));
const open = async (st, bytes) => {
    try {
        return Buffer.from(await new GroupCipher(st, name).decrypt(Buffer.from(bytes))).toString();
    } catch (e) {
        return `error: ${e.message}`;
    }
};
const flipped = Buffer.from(sk);
flipped[flipped.length - 1] ^= 1;
check(await open(r1, flipped) !== 'to the group', 'a flipped signature bit is refused');
check(await open(r1, sk) === 'to the group', 'the skmsg itself is read');
check(await open(r2, flipped) !== 'to the group', 'the flipped copy is refused again once the real one verified');
check(await open(r2, sk) === 'to the group', 'a second recipient reads the same skmsg');

rc.close?.();
ctl.close();
await server.stop?.();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
