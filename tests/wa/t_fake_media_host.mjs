#!/usr/bin/env node
// The fake media hosts (lib/fake_media_host.mjs) against Baileys' own upload
// and download code, so the host is known to accept what a real client sends
// before wapi is tested against it; then its strictness (each wrong upload
// refused with its reason) and its faults (410, 500 then 200, a flipped byte,
// a cut body, a Range). The test CA must be trusted by fetch() from the
// start, so the test re-runs itself with NODE_EXTRA_CA_CERTS set.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import { FakeMediaHost, withTrustedTestCa } from './lib/fake_media_host.mjs';

const pki = withTrustedTestCa(import.meta.url);

const { downloadContentFromMessage, encryptedStream, getWAUploadToServer } = await import('baileys');
const TOOL = process.env.WA_MEDIA_TOOL || 'build/tests/tools/wa_media_tool';
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const sha = (b) => createHash('sha256').update(b).digest();
const b64url = (b) => Buffer.from(b).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

const host = await new FakeMediaHost({ ca: pki }).start();
const agent = new https.Agent({ ca: fs.readFileSync(pki.ca) });
const logger = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, child() { return logger; } };
const refresh = async () => {
    const mc = host.mediaConn();
    return { auth: mc.auth, ttl: mc.ttl, hosts: mc.hosts.map((hostname) => ({ hostname, maxContentLengthBytes: 1 << 30 })),
        fetchDate: new Date() };
};
const upload = getWAUploadToServer({ customUploadHosts: [], fetchAgent: agent, logger, options: {} }, refresh);

const sent = [];
for (const [type, size] of [['image', 5000], ['video', 300000], ['audio', 15], ['document', 0], ['sticker', 4000]]) {
    const plain = randomBytes(size);
    const enc = await encryptedStream(plain, type);
    let urls = null, why = '';
    try {
        urls = await upload(enc.encFilePath, { mediaType: type, fileEncSha256B64: Buffer.from(enc.fileEncSha256).toString('base64'),
            timeoutMs: 10000 });
    } catch (e) { why = String(e); }
    const body = fs.readFileSync(enc.encFilePath);
    fs.rmSync(enc.encFilePath, { force: true });
    const stored = urls && [...host.uploads.values()].find((u) => urls.directPath === u.directPath);
    check(`${type}: Baileys' upload is accepted, answered with url and direct_path`,
        urls && urls.mediaUrl?.startsWith(`https://${host.hostname}/v/`) && urls.directPath?.startsWith('/v/') && stored, why);
    check(`${type}: the host holds exactly what was sent (fileEncSha256)`,
        stored && sha(stored.body).equals(Buffer.from(enc.fileEncSha256)) && stored.body.equals(body) &&
        stored.type === (type === 'sticker' ? 'image' : type));
    let got = null;
    try {
        const s = await downloadContentFromMessage({ mediaKey: enc.mediaKey, directPath: urls?.directPath, url: urls?.mediaUrl }, type);
        const parts = [];
        for await (const c of s) parts.push(c);
        got = Buffer.concat(parts);
    } catch (e) { why = String(e); }
    check(`${type}: Baileys downloads it back from the direct path and decrypts the original`, got && got.equals(plain), why);
    sent.push({ type, plain, enc, stored });
}
check('no violation recorded for Baileys\' requests', host.violations.length === 0, JSON.stringify(host.violations));

// Strictness: raw uploads, each wrong in one way.
const post = (p, body, headers = {}) => new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port: host.port, path: p, method: 'POST', agent,
        headers: { 'content-type': 'application/octet-stream', origin: 'https://web.whatsapp.com', 'content-length': body.length, ...headers } },
    (res) => { let t = ''; res.on('data', (c) => (t += c)); res.on('end', () => resolve({ status: res.statusCode, body: t })); });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.end(body);
});
const good = randomBytes(16 * 4 + 10);
const tok = b64url(sha(good));
const auth = encodeURIComponent(host.auth);
const cases = [
    ['the right upload', `/mms/document/${tok}?auth=${auth}&token=${tok}`, good, {}, 200, null],
    ['a wrong auth', `/mms/document/${tok}?auth=nope&token=${tok}`, good, {}, 401, /auth/],
    ['no auth', `/mms/document/${tok}?token=${tok}`, good, {}, 401, /auth/],
    ['a query token other than the path\'s', `/mms/document/${tok}?auth=${auth}&token=x${tok}`, good, {}, 400, /token in the query/],
    ['a token that is not the body\'s hash', `/mms/document/${b64url(sha(Buffer.from('x')))}?auth=${auth}&token=${b64url(sha(Buffer.from('x')))}`, good, {}, 400, /SHA-256/],
    ['padded base64 token', `/mms/document/${tok}=?auth=${auth}&token=${tok}=`, good, {}, 400, /SHA-256/],
    ['an unknown type', `/mms/pdf/${tok}?auth=${auth}&token=${tok}`, good, {}, 400, /known type/],
    ['a body of 16k + 9 bytes', null, randomBytes(16 * 4 + 9), {}, 400, /16k \+ 10/],
    ['a body of 10 bytes (no block)', null, randomBytes(10), {}, 400, /16k \+ 10/],
    ['no Origin', `/mms/document/${tok}?auth=${auth}&token=${tok}`, good, { origin: undefined }, 400, /Origin/],
];
for (const [name, p0, body, headers, want, why] of cases) {
    const t = b64url(sha(body));
    const p = p0 ?? `/mms/document/${t}?auth=${auth}&token=${t}`;
    const h = { ...headers };
    if ('origin' in h && h.origin === undefined) delete h.origin;
    const before = host.violations.length;
    const r = await post(p, body, h.origin === undefined && 'origin' in headers ? { origin: '' } : h);
    const v = host.violations.slice(before);
    check(`upload with ${name}: ${want}${why ? ', recorded' : ''}`, r.status === want && (why ? v.length === 1 && why.test(v[0]) : v.length === 0),
        `${r.status} ${r.body} ${JSON.stringify(v)}`);
}
host.rotateAuth();
const r401 = await post(`/mms/document/${tok}?auth=${auth}&token=${tok}`, good);
check('after the auth rotates, the old auth gets 401 (a client must ask media_conn again)', r401.status === 401, r401.status);

// Faults on download.
const get = (p, headers = {}) => new Promise((resolve) => {
    https.get({ host: '127.0.0.1', port: host.port, path: p, agent, headers }, (res) => {
        const parts = [];
        res.on('data', (c) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), headers: res.headers }));
        res.on('error', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), cut: true }));
        res.on('aborted', () => resolve({ status: res.statusCode, body: Buffer.concat(parts), cut: true }));
    }).on('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), error: String(e), cut: true }));
});
const img = sent[0];
host.fault(img.stored.id, { status: 410 });
check('a fault: 410 Gone', (await get(img.stored.directPath)).status === 410);
host.fault(img.stored.id, { failures: 1 });
const f1 = await get(img.stored.directPath), f2 = await get(img.stored.directPath);
check('a fault: 500 once, then the file', f1.status === 500 && f2.status === 200 && f2.body.equals(img.stored.body));
host.fault(img.stored.id, { tamper: true });
const tam = await get(img.stored.directPath);
const dec = spawnSync(TOOL, ['decrypt', 'image', Buffer.from(img.enc.mediaKey).toString('hex')], { input: tam.body });
check('a fault: one flipped byte, which our decryption refuses (MAC)', tam.status === 200 && !tam.body.equals(img.stored.body) &&
    tam.body.length === img.stored.body.length && dec.status === 2 && /ERROR -3/.test(dec.stderr), dec.stderr.toString());
host.fault(img.stored.id, { truncate: true });
const cut = await get(img.stored.directPath);
check('a fault: the body cut in the middle', cut.body.length < img.stored.body.length, cut.body.length);
host.fault(img.stored.id, {});
const rg = await get(img.stored.directPath, { range: 'bytes=16-47' });
check('a Range: 206 with exactly those bytes', rg.status === 206 && rg.body.equals(img.stored.body.subarray(16, 48)) &&
    rg.headers['content-range'] === `bytes 16-47/${img.stored.body.length}`, rg.status);
check('an unknown direct path: 404', (await get('/v/t62.7118-24/999_n.enc')).status === 404);

await host.stop();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
