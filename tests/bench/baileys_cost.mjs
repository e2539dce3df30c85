#!/usr/bin/env node
// make bench: the cost of an unmodified Baileys client for handshake + login
// from saved credentials, against the same fake server, printed as one JSON
// line so bench_wa.py can set it beside wapi's figures.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const wa = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'wa');
const { FakeWhatsAppServer } = await import(path.join(wa, 'lib', 'fake_server.mjs'));
const { memoryAuth, startBaileys, quietLogger } = await import(path.join(wa, 'lib', 'baileys_client.mjs'));

const server = new FakeWhatsAppServer({ qrFirstMs: 20000, qrNextMs: 20000 });
const { url } = await server.start();
const version = server.config.version;
const auth = memoryAuth();
const c1 = startBaileys({ url, auth, version, logger: quietLogger('bench') });
const u = await c1.next((x) => !!x.qr, 10000, 'QR');
await server.scanQr(u.qr);
await c1.waitClose(5000);
const c2 = startBaileys({ url, auth, version, logger: quietLogger('bench') });
await c2.waitOpen(10000);
await new Promise((r) => setTimeout(r, 500));
await c2.end();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-bench-'));
const file = path.join(dir, 'auth.json');
fs.writeFileSync(file, auth.serialize());
const out = await new Promise((resolve) => {
    const p = spawn(process.execPath, ['--expose-gc', path.join(wa, 'lib', 'baileys_probe.mjs'), '--url', url, '--version', version,
        '--auth', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    p.stdout.on('data', (d) => (o += d));
    p.on('close', () => resolve(o));
});
fs.rmSync(dir, { recursive: true, force: true });
process.stdout.write(out.trim().split('\n').pop() + '\n');
await server.stop?.();
process.exit(0);
