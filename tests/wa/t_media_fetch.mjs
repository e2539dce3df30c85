#!/usr/bin/env node
// wapi's media download (supervisor/media_fetch.c through
// build/tests/tools/media_fetch_tool) against the fake media hosts, with files
// Baileys encrypted and uploaded: the plaintext comes back byte for byte
// (Baileys' fileSha256), over HTTPS trusted through SSL_CERT_FILE only; a
// host that refuses connections is skipped for the next; and each failure is
// classified the way the download queue needs it: a 410 is "expired" (ask
// the phone), a flipped byte, a wrong fileSha256 or a longer file are
// "corrupt"/"too_big" (never retried as they are), a cut body or a host
// answering 500 is "network" (try later). ASan build too when present.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { FakeMediaHost, makeTestCa, withTrustedTestCa } from './lib/fake_media_host.mjs';

const pki = withTrustedTestCa(import.meta.url);

const { encryptedStream, getWAUploadToServer } = await import('baileys');
const TOOLS = ['build/tests/tools/media_fetch_tool', 'build/san/tests/tools/media_fetch_tool'].filter((t) => fs.existsSync(t));
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const hex = (b) => Buffer.from(b).toString('hex');
const sha = (b) => createHash('sha256').update(b).digest('hex');

const otherCa = makeTestCa(path.join(process.env.WAPI_MEDIA_CA_DIR, 'other')); /* a CA nobody trusts */
const host = await new FakeMediaHost({ ca: pki }).start();
const agent = new https.Agent({ ca: fs.readFileSync(pki.ca) });
const logger = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, child() { return logger; } };
const upload = getWAUploadToServer({ customUploadHosts: [], fetchAgent: agent, logger, options: {} }, async () => ({
    auth: host.auth, ttl: 300, hosts: [{ hostname: host.hostname, maxContentLengthBytes: 1 << 30 }], fetchDate: new Date()
}));

const put = async (type, size) => {
    const plain = randomBytes(size);
    const enc = await encryptedStream(plain, type);
    const urls = await upload(enc.encFilePath, { mediaType: type, fileEncSha256B64: Buffer.from(enc.fileEncSha256).toString('base64'), timeoutMs: 20000 });
    fs.rmSync(enc.encFilePath, { force: true });
    const stored = [...host.uploads.values()].find((u) => u.directPath === urls.directPath);
    return { plain, enc, urls, stored };
};

const files = {
    image: await put('image', 300000),
    doc: await put('document', 5 * 1048576 + 3),
    audio: await put('audio', 1000),
};

// The host runs in this process: the tool must run asynchronously.
const sanitizerReports = [];
const runTool = (tool, args, env) => new Promise((resolve) => {
    execFile(tool, args, { env: { ...process.env, ...env }, timeout: 60000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (/ERROR: (Address|Leak)Sanitizer|runtime error/.test(String(stderr))) sanitizerReports.push(String(stderr).slice(0, 400));
        resolve({ status: err ? (err.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
});
const fetch = async (tool, f, kind, extra = [], hosts = [host.hostname]) => {
    const args = [...hosts.flatMap((h) => ['--host', h]), '--path', f.urls.directPath, '--kind', kind, '--key', hex(f.enc.mediaKey),
        '--enc-sha', hex(f.enc.fileEncSha256), '--sha', hex(f.enc.fileSha256), '--len', String(f.enc.fileLength), ...extra];
    const r = await runTool(tool, args, { SSL_CERT_FILE: pki.ca });
    try { return { ...JSON.parse(r.stdout), exit: r.status, stderr: r.stderr }; } catch { return { exit: r.status, raw: r.stdout + r.stderr }; }
};

for (const tool of TOOLS) {
    const tag = tool.includes('/san/') ? 'asan' : 'plain';
    let r = await fetch(tool, files.image, 'image');
    check(`[${tag}] an image Baileys uploaded comes back byte for byte (fileSha256)`, r.outcome === 'ok' && r.status === 200 &&
        r.sha256 === hex(files.image.enc.fileSha256) && r.bytes === 300000 && r.exit === 0, JSON.stringify(r));
    r = await fetch(tool, files.doc, 'document');
    check(`[${tag}] a 5 MiB document too`, r.outcome === 'ok' && r.sha256 === sha(files.doc.plain), JSON.stringify(r));
    r = await fetch(tool, files.image, 'image', [], ['127.0.0.1:1', host.hostname]);
    check(`[${tag}] a host refusing connections is skipped for the next`, r.outcome === 'ok' && r.sha256 === sha(files.image.plain),
        JSON.stringify(r));
    r = await runTool(tool, ['--host', host.hostname, '--path', files.image.urls.directPath, '--kind', 'image', '--key', hex(files.image.enc.mediaKey)],
        { SSL_CERT_FILE: otherCa.ca });
    const untrusted = JSON.parse(r.stdout || '{}');
    check(`[${tag}] a host whose CA is not trusted: network, nothing written`, untrusted.outcome === 'network' && !untrusted.sha256,
        JSON.stringify(untrusted));

    host.fault(files.image.stored.id, { status: 410 });
    r = await fetch(tool, files.image, 'image');
    check(`[${tag}] 410 from the host: expired (the phone is asked)`, r.outcome === 'expired' && r.status === 410, JSON.stringify(r));
    host.fault(files.image.stored.id, { tamper: true });
    r = await fetch(tool, files.image, 'image');
    check(`[${tag}] a flipped byte: corrupt (MAC), nothing handed over`, r.outcome === 'corrupt' && /MAC/.test(r.error) && !r.sha256,
        JSON.stringify(r));
    host.fault(files.image.stored.id, { truncate: true });
    r = await fetch(tool, files.image, 'image');
    check(`[${tag}] a body cut in the middle: network (try later)`, r.outcome === 'network', JSON.stringify(r));
    host.fault(files.image.stored.id, { failures: 100 });
    r = await fetch(tool, files.image, 'image');
    check(`[${tag}] a host answering 500: network, status 500`, r.outcome === 'network' && r.status === 500, JSON.stringify(r));
    host.fault(files.image.stored.id, {});

    r = await fetch(tool, files.image, 'image', ['--sha', hex(randomBytes(32))]);
    check(`[${tag}] the right MAC but another fileSha256 than the message's: corrupt`, r.outcome === 'corrupt' && /fileSha256/.test(r.error),
        JSON.stringify(r));
    r = await fetch(tool, files.image, 'image', ['--enc-sha', hex(randomBytes(32))]);
    check(`[${tag}] another fileEncSha256: corrupt`, r.outcome === 'corrupt' && /fileEncSha256/.test(r.error), JSON.stringify(r));
    r = await fetch(tool, files.image, 'image', ['--len', '1000']);
    check(`[${tag}] a file longer than the message said: refused early`, r.outcome === 'too_big', JSON.stringify(r));
    r = await fetch(tool, files.image, 'image', ['--max', '100000']);
    check(`[${tag}] over the download limit: too_big`, r.outcome === 'too_big' && /larger than 100000/.test(r.error), JSON.stringify(r));
    r = await fetch(tool, files.audio, 'image');
    check(`[${tag}] the keys of another kind: corrupt (MAC)`, r.outcome === 'corrupt', JSON.stringify(r));
    r = await runTool(tool, ['--host', host.hostname, '--path', '/v/t62.7118-24/000_n.enc', '--kind', 'image', '--key', hex(randomBytes(32))],
        { SSL_CERT_FILE: pki.ca });
    const missing = JSON.parse(r.stdout || '{}');
    check(`[${tag}] an unknown direct path (404): expired`, missing.outcome === 'expired' && missing.status === 404, JSON.stringify(missing));
    r = await runTool(tool, ['--host', host.hostname, '--path', 'relative', '--kind', 'image', '--key', hex(randomBytes(32))],
        { SSL_CERT_FILE: pki.ca });
    check(`[${tag}] a direct path that is not a path: not started`, /not_started/.test(r.stdout), r.stdout);
}
check('no sanitizer report in any run', sanitizerReports.length === 0, sanitizerReports[0] ?? '');
check('the tool was run (both builds when present)', TOOLS.length >= 1, TOOLS.join(' '));
await host.stop();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
