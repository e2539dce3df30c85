#!/usr/bin/env node
// The fake WhatsApp server as other suites will use it: started as a process
// (lib/fake_server.mjs CLI), driven only through its HTTP control API, with an
// unmodified Baileys client on the WebSocket side. Proves the ready line, the
// root key, /qr, /phone/scan, /phone/code, /events (incl. long poll),
// /prekeys-low, /garbage, /drop, /stream-error, /fail-next-login, /config,
// /device/remove, error answers, and --state across a server restart.
// Prints PASS:/FAIL: lines; exits non-zero on failure; bounded by a watchdog.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { memoryAuth, restoreAuth, startBaileys, closeCode } from './lib/baileys_client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'lib', 'fake_server.mjs');
const VERSION = '2.3000.1023456789';
const PHONE = '15550009876';

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
    for (const p of procs) p.kill('SIGKILL');
    process.exit(1);
}, 45000);
process.on('unhandledRejection', () => {}); // Baileys raises some after bad frames; asserted in t_baileys_control

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-cli-'));
const stateFile = path.join(dir, 'state.json');
const procs = new Set();

/** Starts the CLI; resolves { proc, root, ready, stderr() }. */
function startServer(extra = []) {
    const proc = spawn(process.execPath, [SERVER, '--port', '0', '--control-port', '0', '--print-root-key', '--version', VERSION,
        '--qr-first-ms', '4000', '--qr-next-ms', '1500', '--phone', PHONE, '--biz', 'Fake Shop', '--state', stateFile, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    proc.on('exit', () => procs.delete(proc));
    let err = '';
    proc.stderr.on('data', (d) => (err += d));
    const rl = readline.createInterface({ input: proc.stdout });
    const lines = [];
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 8000);
        rl.on('line', (l) => {
            lines.push(l);
            if (lines.length === 2) {
                clearTimeout(t);
                resolve({ proc, root: lines[0], ready: JSON.parse(lines[1]), stderr: () => err });
            }
        });
    });
}

let CTL = null;
const api = async (method, p, body) => {
    const res = await fetch(`${CTL}${p}`, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
    });
    return { status: res.status, body: await res.json() };
};
const events = async (kind, since, wait = 0) => (await api('GET', `/events?since=${since}${kind ? `&kind=${kind}` : ''}${wait ? `&wait=${wait}` : ''}`)).body;
const seqNow = async () => (await api('GET', '/state')).body.events;
const waitKind = async (kind, since, ms = 8000, pred = () => true) => {
    const end = Date.now() + ms;
    let s = since;
    while (Date.now() < end) {
        const r = await events(kind, s, Math.max(1, end - Date.now()));
        const hit = r.events.find(pred);
        if (hit) return hit;
        s = r.next;
    }
    return null;
};

let url;
const client = (auth, extra = {}) => startBaileys({ url, auth, version: VERSION, ...extra });

try {
    // ── start, ready line ──
    let srv = await startServer();
    const { ready, root } = srv;
    CTL = ready.control;
    url = ready.url;
    check(ready.ready === true && /^ws:\/\/127\.0\.0\.1:\d+\/ws\/chat$/.test(ready.url) && /^http:\/\/127\.0\.0\.1:\d+$/.test(ready.control),
        'cli: ready line gives the WebSocket URL and the control URL', JSON.stringify(ready));
    check(/^[0-9a-f]{64}$/.test(root) && root === ready.rootKey, 'cli: --print-root-key prints the 32-byte root key first');
    check(ready.version === VERSION && ready.phone === PHONE, 'cli: version and phone number taken from the options');

    // ── control API errors ──
    const noQr = await api('GET', '/qr');
    check(noQr.status === 404, 'api: GET /qr is 404 while nobody registers');
    const noRoute = await api('GET', '/nope');
    check(noRoute.status === 404 && noRoute.body.ok === false, 'api: unknown route is 404');
    const badJson = await api('POST', '/drop', '{not json');
    check(badJson.status === 400, 'api: a body that is not JSON is 400');
    const noConn = await api('POST', '/stream-error', { kind: '503' });
    check(noConn.status === 409 && /no open connection/.test(noConn.body.error), 'api: a control with no connection is 409 with a reason');
    const badKind = await api('POST', '/phone/tamper', { what: 'everything' });
    check(badKind.status === 409, 'api: unknown tamper refused');

    // ── QR pairing over the API ──
    const auth = memoryAuth();
    let s0 = await seqNow();
    let c = client(auth, { qrTimeout: 20000 });
    const u = await c.next((x) => !!x.qr, 8000, 'QR');
    const qr = await api('GET', '/qr');
    check(qr.status === 200 && u.qr.includes(qr.body.ref) && qr.body.refs.length === 6 && qr.body.index === 0,
        'api: GET /qr shows the current ref of the registering connection', JSON.stringify(qr.body).slice(0, 200));
    const scan = await api('POST', '/phone/scan', { qr: u.qr });
    check(scan.status === 200 && scan.body.ok && scan.body.jid === `${PHONE}:1@s.whatsapp.net`, 'api: POST /phone/scan pairs the client', JSON.stringify(scan.body));
    check(closeCode(await c.waitClose(5000)) === 515, 'api: client restarts after 515');
    check(auth.creds.me?.name === 'Fake Shop', 'cli: --biz reaches the client through <biz name>');
    const pd = await events('pair.done', s0);
    check(pd.events.length === 1 && pd.next > s0, 'api: GET /events?kind= filters, next moves on');

    // ── login, prekeys, long poll ──
    s0 = await seqNow();
    c = client(auth);
    const waiter = events('active', s0, 10000);
    check((await c.waitOpen(10000)).connection === 'open', 'api: client logs in');
    const act = await waiter;
    check(act.events.length === 1, 'api: GET /events?wait= long-polls until the event exists');
    const up = await events('prekeys.upload', s0);
    check(up.events?.[0]?.count === 812, 'api: the event log shows the 812-prekey upload');
    let s1 = await seqNow();
    const low = await api('POST', '/prekeys-low', { count: 2 });
    const refill = await waitKind('prekeys.upload', s1);
    check(low.body.ok && refill && refill.firstId === 813, 'api: POST /prekeys-low → notification → client refills');
    const recvs = await events('recv', s1);
    check(recvs.events.some((e) => e.node.tag === 'ack' && e.node.attrs.class === 'notification'), 'api: decoded stanzas (ack) are in the log as JSON nodes');

    // ── garbage, drop, stream errors, failures ──
    s1 = await seqNow();
    const g = await api('POST', '/garbage', { kind: 'bad-mac' });
    check(g.body.ok && (await events('control', s1)).events.some((e) => e.op === 'garbage' && e.what === 'bad-mac'), 'api: POST /garbage sends and logs a bad-MAC frame');
    const dr = await api('POST', '/drop', {});
    check(dr.body.ok && closeCode(await c.waitClose(5000)) === 428, 'api: POST /drop cuts the socket (client sees the connection closed)');
    c = client(auth);
    await c.waitOpen(10000);
    await api('POST', '/stream-error', { kind: '503' });
    check(closeCode(await c.waitClose(5000)) === 503, 'api: POST /stream-error 503');
    await api('POST', '/fail-next-login', { reason: 409 });
    c = client(auth);
    check(closeCode(await c.waitClose(8000)) === 409, 'api: POST /fail-next-login 409 → <failure reason=409> at login');
    await api('POST', '/config', { version: '2.3000.999' });
    c = client(auth);
    check(closeCode(await c.waitClose(8000)) === 405, 'api: POST /config version → older client gets 405');
    const badCfg = await api('POST', '/config', { colour: 'blue' });
    check(badCfg.status === 409, 'api: unknown config key refused');
    await api('POST', '/config', { version: VERSION });
    c = client(auth);
    await c.waitOpen(10000);
    await api('POST', '/failure', { reason: 402 });
    check(closeCode(await c.waitClose(5000)) === 402, 'api: POST /failure 402 on a live connection');

    // ── --state: restart the server, same root, device still paired ──
    const bye = await api('POST', '/shutdown', {});
    const exitCode = await new Promise((r) => (srv.proc.exitCode != null ? r(srv.proc.exitCode) : srv.proc.on('exit', r)));
    check(bye.body.ok && exitCode === 0, 'cli: POST /shutdown exits 0');
    check(fs.existsSync(stateFile), 'cli: --state file written');
    srv = await startServer();
    CTL = srv.ready.control;
    url = srv.ready.url;
    check(srv.root === root, 'cli: --state keeps the PKI (same root key after a restart)');
    s0 = await seqNow();
    c = client(restoreAuth(auth.serialize()));
    const again = await c.waitOpen(10000);
    check(again.connection === 'open' && !c.updates.some((x) => x.qr), 'cli: --state keeps paired devices (login without QR after a server restart)');
    const cnt = await waitKind('prekeys.count', s0);
    check(cnt?.count > 5, 'cli: --state keeps uploaded prekeys');

    // ── device removal ──
    const rm = await api('POST', '/device/remove', { jid: `${PHONE}:1@s.whatsapp.net` });
    check(rm.body.ok && closeCode(await c.waitClose(5000)) === 401, 'api: POST /device/remove → device_removed (401) on the live connection');
    c = client(restoreAuth(auth.serialize()));
    check(closeCode(await c.waitClose(8000)) === 401, 'api: removed device refused at login (401)');

    // ── code pairing over the API ──
    const auth2 = memoryAuth();
    s0 = await seqNow();
    c = client(auth2, { qrTimeout: 20000 });
    await c.next((x) => !!x.qr, 8000, 'QR');
    const code = await c.sock.requestPairingCode(PHONE);
    await waitKind('paircode.hello', s0);
    const wrong = await api('POST', '/phone/code', { code: 'ABCD' });
    check(wrong.status === 409 && /8/.test(wrong.body.error), 'api: malformed code refused by the phone');
    const pc = await api('POST', '/phone/code', { code: `${code.slice(0, 4)}-${code.slice(4)}` });
    check(pc.body.ok && pc.body.jid === `${PHONE}:2@s.whatsapp.net`, 'api: POST /phone/code (typed as XXXX-XXXX) pairs the client', JSON.stringify(pc.body));
    check(closeCode(await c.waitClose(5000)) === 515, 'api: 515 after code pairing');
    c = client(auth2);
    check((await c.waitOpen(10000)).connection === 'open', 'api: code-paired device logs in');
    await c.end();

    const st = await api('GET', '/state');
    check(st.body.devices.length === 2 && st.body.devices.find((d) => d.jid.endsWith(':1@s.whatsapp.net'))?.removed === true,
        'api: GET /state lists devices with their removal');
    const v = await events('violation', 0);
    check(v.events.length === 0, 'api: no violation in the whole run', JSON.stringify(v.events).slice(0, 300));
    await api('POST', '/shutdown', {});
} catch (e) {
    check(false, 'suite', `threw: ${e.stack?.split('\n').slice(0, 3).join(' | ')}`);
}
for (const p of procs) p.kill('SIGKILL');
fs.rmSync(dir, { recursive: true, force: true });
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
