#!/usr/bin/env node
// Test-only: logs an unmodified Baileys client in with saved credentials in a
// process of its own and prints its cost as one JSON line, so it can be set
// beside the C client's figures:
//   node tests/wa/lib/baileys_probe.mjs --url ws://127.0.0.1:P/ws/chat --version 2.3000.N --auth FILE [--idle-ms 1500]
// FILE holds memoryAuth().serialize() output. Figures: CPU time (user, system)
// from creating the socket to connection "open" (handshake, login, prekey
// count, <active/>), wall time, RSS before connecting (Node + Baileys loaded)
// and RSS after idling connected.
import fs from 'node:fs';
import { restoreAuth, startBaileys, quietLogger, closeCode } from './baileys_client.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const kb = (b) => Math.round(b / 1024);
const gc = () => globalThis.gc?.();

const loadCpu = process.cpuUsage();
gc();
const rssBaseline = process.memoryUsage().rss;
const auth = restoreAuth(fs.readFileSync(args.auth, 'utf8'));
const t0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const c = startBaileys({ url: args.url, auth, version: args.version, logger: quietLogger('probe') });
const u = await c.waitOpen(15000).catch((e) => ({ error: e.message }));
const cpu = process.cpuUsage(cpu0);
const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
if (u.connection !== 'open') {
    process.stdout.write(JSON.stringify({ ok: false, error: u.error || `closed with ${closeCode(u)}` }) + '\n');
    process.exit(1);
}
await new Promise((r) => setTimeout(r, Number(args['idle-ms'] || 1500)));
gc();
const mem = process.memoryUsage();
await c.end();
process.stdout.write(JSON.stringify({
    ok: true,
    cpuUserMs: Math.round(cpu.user / 1000),
    cpuSysMs: Math.round(cpu.system / 1000),
    wallMs: Math.round(wallMs),
    loadCpuMs: Math.round((loadCpu.user + loadCpu.system) / 1000),
    rssBaselineKb: kb(rssBaseline),
    rssIdleKb: kb(mem.rss),
    heapUsedKb: kb(mem.heapUsed)
}) + '\n');
process.exit(0);
