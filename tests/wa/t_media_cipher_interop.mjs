#!/usr/bin/env node
// Media encryption against Baileys, both ways, for every media type wapi uses:
//  - Baileys' encryptedStream() encrypts a file: our decryption gives the file
//    back, with Baileys' fileSha256, fileEncSha256 and length; our encryption of
//    the same file under Baileys' media key is byte for byte Baileys' file.
//  - we encrypt under a fresh key: Baileys' own downloadContentFromMessage()
//    fetches it over HTTP and decrypts it to the original.
//  - a file Baileys encrypted with one bit flipped is refused by us (MAC).
// Usage (from the repo root): tests/wa/t_media_cipher_interop.mjs
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { downloadContentFromMessage, encryptedStream } from 'baileys';

const TOOL = process.env.WA_MEDIA_TOOL || 'build/tests/tools/wa_media_tool';
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
if (!existsSync(TOOL)) {
    console.log(`FAIL: ${TOOL} not built`);
    process.exit(1);
}

const tool = (mode, kind, key, input, piece = 65536) => {
    const r = spawnSync(TOOL, [mode, kind, key.toString('hex'), String(piece)], { input, maxBuffer: 1 << 28 });
    let sums = null;
    try { sums = JSON.parse(r.stderr.toString().trim().split('\n').pop()); } catch { /* refused */ }
    return { status: r.status, out: r.stdout, sums, err: r.stderr.toString() };
};
const sha = (b) => createHash('sha256').update(b).digest('hex');

// Baileys' media type, ours (the HKDF info), and a file size for each.
const TYPES = [
    ['image', 'image', 70001], ['sticker', 'image', 4096], ['video', 'video', 1 << 20], ['audio', 'audio', 15],
    ['ptt', 'audio', 16], ['document', 'document', 0], ['md-msg-hist', 'history', 17],
    ['md-app-state', 'appstate', 300000],
];

const served = new Map();
const server = createServer((req, res) => {
    const body = served.get(req.url);
    if (!body) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}`;

for (const [btype, kind, size] of TYPES) {
    const plain = randomBytes(size);
    const enc = await encryptedStream(plain, btype);
    const encBytes = readFileSync(enc.encFilePath);
    rmSync(enc.encFilePath, { force: true });

    const d = tool('decrypt', kind, enc.mediaKey, encBytes, 1000);
    check(`${btype}: Baileys' file decrypts to the original (${size} bytes)`, d.status === 0 && d.out.equals(plain),
        `status ${d.status} ${d.err}`);
    check(`${btype}: our sums are Baileys' (fileSha256, fileEncSha256, fileLength)`,
        d.sums && d.sums.fileSha256 === Buffer.from(enc.fileSha256).toString('hex') &&
        d.sums.fileEncSha256 === Buffer.from(enc.fileEncSha256).toString('hex') &&
        d.sums.fileLength === enc.fileLength && d.sums.encLength === encBytes.length, JSON.stringify(d.sums));

    const e = tool('encrypt', kind, enc.mediaKey, plain, 4093);
    check(`${btype}: our file under Baileys' key is Baileys' file byte for byte`, e.status === 0 && e.out.equals(encBytes),
        `status ${e.status} ${e.out.length} vs ${encBytes.length}`);

    const key = randomBytes(32);
    const mine = tool('encrypt', kind, key, plain);
    const path = `/mms/${btype}/${sha(mine.out)}`;
    served.set(path, mine.out);
    let got = null, why = '';
    try {
        const stream = await downloadContentFromMessage({ mediaKey: key, url: base + path }, btype);
        const parts = [];
        for await (const chunk of stream) parts.push(chunk);
        got = Buffer.concat(parts);
    } catch (err) { why = String(err); }
    check(`${btype}: Baileys downloads and decrypts our file to the original`, got && got.equals(plain), why);
    check(`${btype}: our fileEncSha256 is the SHA-256 of what was uploaded`,
        mine.sums && mine.sums.fileEncSha256 === sha(mine.out) && mine.sums.fileSha256 === sha(plain));

    const bad = Buffer.from(encBytes);
    bad[Math.floor(bad.length / 2)] ^= 0x10;
    const t = tool('decrypt', kind, enc.mediaKey, bad);
    check(`${btype}: one flipped bit in Baileys' file is refused`, t.status === 2 && /ERROR -3/.test(t.err), t.err);
}
server.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
