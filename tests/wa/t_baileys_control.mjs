#!/usr/bin/env node
// The control: an unmodified Baileys client against our fake WhatsApp server
// and fake phone (lib/fake_server.mjs, lib/fake_phone.mjs). If Baileys cannot
// pair and log in here, the fake server is wrong, not our C client.
//   1. QR pairing through the phone (second, rotated ref), 515 restart, login,
//      812 prekeys uploaded and verified, <active/>, keepalive, low-prekey refill.
//   2. Restart from saved credentials: login without a QR, no new upload.
//   3. Pairing by phone-number code, 515 restart, login.
//   4. Stream errors and failures as Baileys sees them (503, replaced, 402,
//      405, device_removed then 401), refs exhausted → server closes.
//   5. The server's strictness: bad Origin/path/header, forged signatures,
//      unknown device, wrong noise key, tampered pair-success.
//   6. Where Baileys is lax (it does not verify the cert chain nor the ADV
//      account signature): shown, so the C client is held to more.
//   7. Baileys' CPU time and RSS for handshake+login, in a process of its own.
// Prints PASS:/FAIL: lines; exits non-zero on any failure; a watchdog bounds it.
// Run from anywhere: tests/wa/t_baileys_control.mjs (WA_DEBUG=1 shows Baileys' log).
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Curve } from 'baileys';
import { FakeWhatsAppServer } from './lib/fake_server.mjs';
import { parseQrText, LINK_CODE_ALPHABET } from './lib/fake_phone.mjs';
import { memoryAuth, restoreAuth, startBaileys, closeCode } from './lib/baileys_client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const VERSION = '2.3000.1023456789';
const PHONE = '15550001234';
const WATCHDOG_MS = Number(process.env.WA_CONTROL_WATCHDOG_MS || 60000);

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

// ── never leave loopback ──
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
    const a0 = Array.isArray(args[0]) ? args[0][0] : args[0];
    const host = typeof a0 === 'object' && a0 !== null ? (a0.path ? 'unix' : a0.host) : args[1];
    if (!(host == null || host === 'unix' || host === 'localhost' || host === '::1' || /^127\./.test(host))) {
        check(false, 'network: stays on 127.0.0.1', `attempt to reach ${host}`);
        throw new Error(`test refuses to connect to ${host}`);
    }
    return origConnect.apply(this, args);
};

const watchdog = setTimeout(() => {
    console.log(`FAIL: watchdog: suite did not finish within ${WATCHDOG_MS} ms`);
    process.exit(1);
}, WATCHDOG_MS);
let unhandled = [];
process.on('unhandledRejection', (e) => unhandled.push(String(e?.stack || e).split('\n')[0]));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MEDIA_CA = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-media-ca-'));
process.on('exit', () => fs.rmSync(MEDIA_CA, { recursive: true, force: true }));
const server = new FakeWhatsAppServer({
    version: VERSION,
    qrFirstMs: 2500,
    qrNextMs: 1200,
    qrGraceMs: 500,
    iqTimeoutMs: 5000,
    handshakeTimeoutMs: 5000,
    phone: { phoneNumber: PHONE, platform: 'android' },
    mediaCa: MEDIA_CA,
    logStream: process.env.WA_DEBUG ? process.stderr : null
});
await server.start();
const URL_ = server.url;
console.log(`fake server ${URL_} root ${server.rootPublicKey.toString('hex')}`);

const client = (auth, extra = {}) => startBaileys({ url: URL_, auth, version: VERSION, ...extra });
const evs = (since, kind, conn = null) => server.eventsSince(since, kind).filter((e) => conn == null || e.conn === conn);
const violations = (since) => evs(since, 'violation');
const nodesFrom = (since, pred) => evs(since, 'recv').map((e) => e.node).filter((n) => n && pred(n));
const waitEv = (kind, since, pred = () => true, timeoutMs = 8000) =>
    server.waitFor((e) => e.kind === kind && pred(e), { since, timeoutMs, what: kind });
const step = async (name, fn) => {
    try {
        await fn();
    } catch (e) {
        check(false, name, `threw: ${e.stack?.split('\n').slice(0, 3).join(' | ')}`);
    }
};

// ── 1. QR pairing, 515, login, prekeys, active, keepalive ──
const authQr = memoryAuth();
await step('qr pairing', async () => {
    const s0 = server.seq;
    const c = client(authQr, { qrTimeout: 1200 });
    const u1 = await c.next((u) => !!u.qr, 8000, 'first QR');
    const q1 = parseQrText(u1.qr);
    const reg = evs(s0, 'handshake')[0];
    check(reg?.mode === 'register' && violations(s0).length === 0, 'qr: registration handshake accepted (header, Noise, cert chain, ClientPayload, eSkeySig verified)',
        JSON.stringify(violations(s0)));
    const issued = server.currentQr();
    check(issued && issued.refs.includes(q1.ref) && q1.noisePub.toString('hex') === reg.clientStatic,
        'qr: QR text carries a server ref and the Noise static key of the connection');
    const u2 = await c.next((u) => !!u.qr && u.qr !== u1.qr, 8000, 'second QR');
    const q2 = parseQrText(u2.qr);
    check(q2.ref === issued.refs[1], 'qr: rotated QR shows the second ref');
    const res = await server.scanQr(u2.qr);
    check(res.ok && res.jid === `${PHONE}:1@s.whatsapp.net`, 'qr: phone scan → pair-success → pair-device-sign verified (device signature, HMAC, key index)', JSON.stringify(res));
    check(evs(s0, 'pair-device.ack').length === 1, 'qr: client answered <pair-device> with an empty result');
    const closed = await c.waitClose(5000);
    check(closeCode(closed) === 515, 'qr: server sends stream error 515 and Baileys closes for a restart', `code ${closeCode(closed)}`);
    check(authQr.creds.me?.id === res.jid && authQr.creds.me?.lid === res.lid && authQr.creds.platform === 'android',
        'qr: Baileys stored jid, lid and platform from pair-success', JSON.stringify(authQr.creds.me));
    check(violations(s0).length === 0, 'qr: no violation during pairing', JSON.stringify(violations(s0)));
});

let measuredAuth = null;
await step('login after 515', async () => {
    const s0 = server.seq;
    const c = client(authQr, { keepAliveIntervalMs: 700 });
    const u = await c.waitOpen(10000);
    check(u.connection === 'open', 'login: Baileys reconnects after 515 and gets <success>', `code ${closeCode(u)}`);
    const hs = evs(s0, 'handshake')[0];
    check(hs?.mode === 'login' && hs.username === PHONE && hs.device === 1 && hs.passive === true && hs.pull === true,
        'login: ClientPayload username/device/passive/pull checked', JSON.stringify(hs && { m: hs.mode, u: hs.username, d: hs.device }));
    check(evs(s0, 'login.ok').length === 1, 'login: server matched the paired device and its noise key');
    const cnt = evs(s0, 'prekeys.count')[0];
    check(cnt?.count === 0, 'login: prekey count asked, server answers 0');
    const up = await waitEv('prekeys.upload', s0);
    check(up.count === 812 && up.firstId === 1 && up.lastId === 812 && !up.skeyChanged,
        'login: 812 prekeys uploaded; registration id, identity, ids, keys and signed prekey signature verified', JSON.stringify(up));
    await waitEv('active', s0);
    check(true, 'login: <iq xmlns=passive><active/></iq> accepted');
    const ping = await waitEv('ping', s0, () => true, 3000);
    check(!!ping, 'login: keepalive <iq xmlns=w:p><ping/></iq> answered');
    const s1 = server.seq;
    server.lowPrekeys(3);
    const refill = await waitEv('prekeys.upload', s1);
    const ack = await waitEv('ack', s1, (e) => e.type === 'encrypt');
    check(refill.count >= 1 && refill.firstId === 813 && ack.class === 'notification',
        'login: low-prekey notification acked and refilled with fresh ids', JSON.stringify(refill));
    check(violations(s0).length === 0, 'login: no violation', JSON.stringify(violations(s0)));
    await c.end();
    await waitEv('close', s0);
    measuredAuth = authQr.serialize();
});

// ── 2. restart from saved credentials ──
await step('restart with saved creds', async () => {
    const s0 = server.seq;
    const auth = restoreAuth(measuredAuth);
    const c = client(auth);
    const u = await c.waitOpen(10000);
    check(u.connection === 'open' && !c.updates.some((x) => x.qr), 'restart: saved credentials log in without a QR', `code ${closeCode(u)}`);
    await waitEv('active', s0);
    check(evs(s0, 'prekeys.upload').length === 0 && evs(s0, 'prekeys.count')[0]?.count > 5,
        'restart: server still holds the prekeys, no new upload');
    check(violations(s0).length === 0, 'restart: no violation', JSON.stringify(violations(s0)));
    const mc = await c.sock.refreshMediaConn(true);
    check(mc?.auth === server.media.auth && mc.hosts?.length === 1 && mc.hosts[0].hostname === server.media.hostname &&
        mc.ttl === server.media.ttl && violations(s0).length === 0,
    'media_conn: Baileys\' query is answered with the media hosts\' auth, TTL and host', JSON.stringify(mc));
    await c.end();
});

// ── 3. pairing by code ──
const authCode = memoryAuth();
await step('pairing code', async () => {
    const s0 = server.seq;
    const c = client(authCode, { qrTimeout: 20000 });
    await c.next((u) => !!u.qr, 8000, 'QR');
    const code = await c.sock.requestPairingCode(PHONE);
    check(typeof code === 'string' && code.length === 8 && [...code].every((ch) => LINK_CODE_ALPHABET.includes(ch)),
        'code: 8-character pairing code from the client alphabet', code);
    const hello = await waitEv('paircode.hello', s0);
    check(hello.accepted && hello.platformId === '1' && hello.display === 'Chrome (Ubuntu)',
        'code: companion_hello checked (wrapped key, noise key, platform id, display, nonce)', JSON.stringify(hello));
    const res = await server.enterPairingCode(code);
    check(res.ok && res.jid === `${PHONE}:2@s.whatsapp.net` && res.via === 'code',
        'code: primary_hello → companion_finish key bundle decrypted → adv secret agrees → pair-device-sign verified', JSON.stringify(res));
    const closed = await c.waitClose(5000);
    await waitEv('close', s0);
    const acked = evs(s0, 'ack').some((e) => e.type === 'link_code_companion_reg');
    const unacked = evs(s0, 'close').some((e) => (e.unacked || []).some((a) => a.type === 'link_code_companion_reg'));
    check(acked !== unacked, 'code: server tracks the ack of primary_hello (acked, or listed as unacked at close)');
    if (!acked) console.log('INFO: Baileys had not acked the primary_hello notification when the 515 restart came');
    check(closeCode(closed) === 515, 'code: 515 after pairing', `code ${closeCode(closed)}`);
    const s1 = server.seq;
    const c2 = client(authCode);
    const u = await c2.waitOpen(10000);
    check(u.connection === 'open' && evs(s1, 'login.ok')[0]?.jid === res.jid, 'code: login as the second device', `code ${closeCode(u)}`);
    await waitEv('prekeys.upload', s1);
    check(violations(s0).length === 0, 'code: no violation', JSON.stringify(violations(s0)));
    await c2.end();
});

// ── 4. stream errors and failures as Baileys sees them ──
const expectClose = async (name, auth, act, wantCode, extra = {}) => {
    const s0 = server.seq;
    const c = client(auth, extra);
    if (act) {
        const u = await c.waitOpen(10000);
        if (u.connection !== 'open') return check(false, name, `did not open (code ${closeCode(u)})`);
        act();
    }
    const closed = await c.waitClose(8000);
    check(closeCode(closed) === wantCode, name, `code ${closeCode(closed)}`);
    return s0;
};
await step('stream errors', async () => {
    await expectClose('errors: <stream:error code=503> → Baileys closes with 503', restoreAuth(authQr.serialize()), () => server.streamError('503'), 503);
    await expectClose('errors: <stream:error><conflict type=replaced> → 440', restoreAuth(authQr.serialize()), () => server.streamError('replaced'), 440);
    server.failNextLogin(402);
    const s0 = await expectClose('errors: <failure reason=402> at login → 402', restoreAuth(authQr.serialize()), null, 402);
    check(evs(s0, 'login.fail')[0]?.reason === 402, 'errors: server logged the forced 402');
    const s1 = await expectClose('errors: wrong web version → <failure reason=405>', restoreAuth(authQr.serialize()), null, 405, { version: '2.3000.1' });
    check(evs(s1, 'login.fail')[0]?.reason === 405, 'errors: server logged 405 client outdated');
    const first = client(restoreAuth(authQr.serialize()));
    await first.waitOpen(10000);
    const other = client(restoreAuth(authQr.serialize()));
    await other.waitOpen(10000);
    const replaced = await first.waitClose(5000);
    check(closeCode(replaced) === 440 && !other.closed(), 'errors: a second login of the same device replaces the first (440)', `code ${closeCode(replaced)}`);
    await other.end();
    await expectClose('errors: <stream:error code=401><conflict type=device_removed> → 401', authCode, () => server.streamError('device_removed'), 401);
    const s3 = await expectClose('errors: removed device logging in again → <failure reason=401>', authCode, null, 401);
    check(/removed/.test(evs(s3, 'login.fail')[0]?.detail || ''), 'errors: server refused the removed device');
});

await step('refs exhausted', async () => {
    server.setConfig({ qrFirstMs: 500, qrNextMs: 200, qrGraceMs: 100 });
    const s0 = server.seq;
    const c = client(memoryAuth(), { qrTimeout: 20000 });
    await c.waitClose(6000);
    const exp = evs(s0, 'qr.expired');
    const closeEv = exp.length === 1 ? await waitEv('close', s0, (e) => e.conn === exp[0].conn) : null;
    check(exp.length === 1 && closeEv?.by === 'server' && c.updates.filter((u) => u.qr).length === 1,
        'qr: server closes the connection after the last ref (6 refs) expired',
        JSON.stringify({ expired: exp.length, close: closeEv, qrs: c.updates.filter((u) => u.qr).length }));
    server.setConfig({ qrFirstMs: 2500, qrNextMs: 1200, qrGraceMs: 500 });
});

// ── 5. strictness of the server ──
const rawWs = (opts = {}, pathName = '/ws/chat') =>
    new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}${pathName}`, opts);
        ws.on('unexpected-response', (req, res) => resolve({ status: res.statusCode }));
        ws.on('open', () => resolve({ ws }));
        ws.on('error', (e) => resolve({ error: e.message }));
    });
await step('strictness: websocket', async () => {
    const a = await rawWs({ origin: 'https://evil.example' });
    check(a.status === 403, 'strict: wrong Origin refused (403)', JSON.stringify(a));
    const b = await rawWs({});
    check(b.status === 403, 'strict: missing Origin refused (403)', JSON.stringify(b));
    const d = await rawWs({ origin: 'https://web.whatsapp.com' }, '/ws/other');
    check(d.status === 404, 'strict: wrong path refused (404)', JSON.stringify(d));
    const s0 = server.seq;
    const e = await rawWs({ origin: 'https://web.whatsapp.com' });
    const closed = new Promise((r) => e.ws.on('close', r));
    e.ws.send(Buffer.from([0x57, 0x41, 0x06, 0x02, 0, 0, 1, 0]));
    await closed;
    check(/bad connection header/.test(violations(s0)[0]?.detail || ''), 'strict: wrong WA header (dictionary version) → closed', JSON.stringify(violations(s0)));
    const s1 = server.seq;
    const f = await rawWs({ origin: 'https://web.whatsapp.com' });
    const closedF = new Promise((r) => f.ws.on('close', r));
    f.ws.send('WA');
    await closedF;
    check(/text WebSocket/.test(violations(s1)[0]?.detail || ''), 'strict: text WebSocket frame → closed');
});

await step('strictness: forged registration', async () => {
    const s0 = server.seq;
    const auth = memoryAuth();
    auth.creds.signedPreKey.signature = Buffer.from(auth.creds.signedPreKey.signature);
    auth.creds.signedPreKey.signature[9] ^= 0x04;
    const c = client(auth);
    await c.waitClose(6000);
    check(/eSkeySig does not verify/.test(violations(s0)[0]?.detail || '') && !c.updates.some((u) => u.qr),
        'strict: a forged signed-prekey signature in the ClientPayload is refused before any QR', JSON.stringify(violations(s0)));
});

await step('strictness: forged device signature', async () => {
    const s0 = server.seq;
    const auth = memoryAuth();
    // The identity private key no longer matches the public one: Baileys signs pair-device-sign with the wrong key.
    auth.creds.signedIdentityKey = { public: auth.creds.signedIdentityKey.public, private: Curve.generateKeyPair().private };
    const c = client(auth, { qrTimeout: 20000 });
    const u = await c.next((x) => !!x.qr, 8000, 'QR');
    const err = await server.scanQr(u.qr).then(() => null, (e) => e);
    const pf = evs(s0, 'pair.fail')[0];
    check(err && pf && pf.problems.some((p) => /deviceSignature does not verify/.test(p)),
        'strict: a device signature that does not verify is refused', JSON.stringify(pf?.problems));
    check(evs(s0, 'send').some((e) => e.node.tag === 'iq' && e.node.attrs.type === 'error' && e.node.content?.[0]?.attrs?.code === '401'),
        'strict: refusal answered with <iq type=error><error code=401>');
    check(!server.state().devices.some((d) => d.jid === pf?.jid), 'strict: refused device not registered');
    await c.waitClose(5000).catch(() => {});
});

await step('strictness: unknown device and foreign noise key', async () => {
    const a = restoreAuth(authQr.serialize());
    a.creds.me = { ...a.creds.me, id: `${PHONE}:77@s.whatsapp.net` };
    const s0 = await expectClose('strict: login as a device never paired → <failure reason=401>', a, null, 401);
    check(/no paired device/.test(evs(s0, 'login.fail')[0]?.detail || ''), 'strict: server names the unknown device');
    const b = restoreAuth(authQr.serialize());
    b.creds.noiseKey = Curve.generateKeyPair();
    const s1 = await expectClose('strict: login with another Noise static key → <failure reason=401>', b, null, 401);
    check(/noise static key/.test(evs(s1, 'login.fail')[0]?.detail || ''), 'strict: server names the noise key mismatch');
});

await step('strictness: tampered pair-success', async () => {
    const s0 = server.seq;
    server.setPhoneTamper('hmac');
    const c = client(memoryAuth(), { qrTimeout: 20000 });
    const u = await c.next((x) => !!x.qr, 8000, 'QR');
    const err = await server.scanQr(u.qr).then(() => null, (e) => e);
    await c.waitClose(5000).catch(() => {});
    check(err && evs(s0, 'pair.done').length === 0 && !evs(s0, 'recv').some((e) => e.node?.content?.[0]?.tag === 'pair-device-sign'),
        'phone: Baileys refuses a pair-success whose HMAC is wrong (no pair-device-sign)');
    const sentErr = evs(s0, 'pair.client-error').length > 0;
    console.log(`INFO: on a bad HMAC Baileys ${sentErr ? 'answers <iq type=error>' : 'closes without answering <iq type=error> (whatsmeow sends 401 hmac-mismatch)'}`);
});

// ── 6. where Baileys is lax ──
await step('laxness', async () => {
    const s0 = server.seq;
    server.setPhoneTamper('account-signature');
    const c = client(memoryAuth(), { qrTimeout: 20000 });
    const u = await c.next((x) => !!x.qr, 8000, 'QR');
    const err = await server.scanQr(u.qr).then(() => null, (e) => e);
    const pf = evs(s0, 'pair.fail')[0];
    check(err && pf?.problems.some((p) => /tampered \(account-signature\)/.test(p)),
        'lax: Baileys signs a pair-success whose account signature is forged (its Curve.verify accepts anything); the server catches it');
    await c.waitClose(5000).catch(() => {});
    for (const defect of ['wrong-root', 'bad-leaf-sig', 'expired']) {
        server.setConfig({ pkiDefect: defect });
        const s1 = server.seq;
        const c2 = client(memoryAuth(), { qrTimeout: 20000 });
        const got = await c2.next((x) => !!x.qr || x.connection === 'close', 8000, 'QR or close');
        check(!!got.qr && evs(s1, 'handshake').length === 1,
            `lax: Baileys accepts a cert chain with defect ${defect} (it does not verify the chain); the C client must refuse it`);
        await c2.end();
    }
    server.setConfig({ pkiDefect: null });
    const c3 = client(restoreAuth(authQr.serialize()));
    await c3.waitOpen(10000);
    const before = unhandled.length;
    server.garbage('bad-mac');
    const gone = await c3.waitClose(1500).then(() => true, () => false);
    const raised = unhandled.splice(before).filter((e) => /authenticate data/.test(e)).length;
    check(!gone && raised > 0, 'lax: Baileys keeps the connection after a frame with a bad MAC (it only raises an unhandled rejection); the C client must drop it');
    await c3.end();
});

// ── 7. Baileys' cost in a process of its own ──
await step('measure', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-probe-'));
    const file = path.join(dir, 'auth.json');
    fs.writeFileSync(file, measuredAuth);
    const out = await new Promise((resolve) => {
        const p = spawn(process.execPath, ['--expose-gc', path.join(here, 'lib', 'baileys_probe.mjs'), '--url', URL_, '--version', VERSION, '--auth', file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let o = '';
        let e = '';
        p.stdout.on('data', (d) => (o += d));
        p.stderr.on('data', (d) => (e += d));
        p.on('close', (code) => resolve({ code, o, e }));
    });
    fs.rmSync(dir, { recursive: true, force: true });
    let m = null;
    try {
        m = JSON.parse(out.o.trim().split('\n').pop());
    } catch {
        /* reported below */
    }
    if (check(out.code === 0 && m?.ok, 'measure: Baileys logs in from saved credentials in its own process', `${out.o} ${out.e.slice(0, 300)}`)) {
        console.log(`METRIC baileys handshake+login cpu_ms=${m.cpuUserMs + m.cpuSysMs} (user ${m.cpuUserMs}, sys ${m.cpuSysMs}) wall_ms=${m.wallMs}`);
        console.log(`METRIC baileys rss_idle_kb=${m.rssIdleKb} rss_before_connect_kb=${m.rssBaselineKb} heap_used_kb=${m.heapUsedKb} (Node ${process.version})`);
    }
});

check(unhandled.length === 0, 'no unhandled promise rejection in the suite', unhandled.slice(0, 3).join(' | '));
await server.stop();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
