#!/usr/bin/env node
// make bench: an unmodified Baileys client sending texts, for the send cost
// per message per device beside wapi's. It links itself as a companion of
// account --phone on the fake server (the QR scanned through the control API),
// logs in, and takes JSON lines on stdin:
//   {"op":"mark"}                           → {"cpuUs":N}   process.cpuUsage() user+system, µs
//   {"op":"send","to":JID,"texts":[…]}      → {"sent":[ids], "wallMs":N}
//                                             one sock.sendMessage after the other, each awaited
//   {"op":"mem"}                            → {"rssKb":N, "heapKb":N} resident set and JS heap in use
//                                             after a full GC (node --expose-gc)
//   {"op":"quit"}
// printing {"ready":true,"jid":…} once logged in, {"error":…} on failure.
// Usage: node baileys_send.mjs --url WS --version V --control HTTP --phone DIGITS
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const lib = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'wa', 'lib', 'baileys_client.mjs');
const { memoryAuth, startBaileys, closeCode, quietLogger } = await import(lib);

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const auth = memoryAuth();
let c = startBaileys({ url: args.url, auth, version: args.version, qrTimeout: 20000, logger: quietLogger('bench') });
const u = await c.next((x) => !!x.qr, 15000, 'QR');
const r = await fetch(args.control + '/phone/scan', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ qr: u.qr, phone: args.phone, timeoutMs: 10000 })
}).then((x) => x.json());
if (!r.ok) {
    out({ error: `pairing failed: ${JSON.stringify(r)}` });
    process.exit(1);
}
await c.waitClose(10000);
c = startBaileys({ url: args.url, auth, version: args.version, logger: quietLogger('bench') });
const open = await c.waitOpen(15000);
if (open.connection !== 'open') {
    out({ error: `login failed: ${closeCode(open)}` });
    process.exit(1);
}
const sock = c.sock;
out({ ready: true, jid: auth.creds.me?.id });

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
    chain = chain.then(async () => {
        try {
            const cmd = JSON.parse(line);
            if (cmd.op === 'mark') {
                const u = process.cpuUsage();
                out({ cpuUs: u.user + u.system });
            } else if (cmd.op === 'send') {
                const ids = [];
                const t0 = performance.now();
                for (const text of cmd.texts) {
                    const m = await sock.sendMessage(cmd.to, { text });
                    ids.push(m.key.id);
                }
                out({ sent: ids, wallMs: performance.now() - t0 });
            } else if (cmd.op === 'mem') {
                globalThis.gc?.();
                const m = process.memoryUsage();
                out({ rssKb: Math.round(m.rss / 1024), heapKb: Math.round(m.heapUsed / 1024) });
            } else if (cmd.op === 'quit') {
                await c.end();
                process.exit(0);
            }
        } catch (e) {
            out({ error: String(e?.stack || e) });
        }
    });
});
rl.on('close', async () => {
    await chain;
    await c.end();
    process.exit(0);
});
