#!/usr/bin/env node
// make bench: the fake WhatsApp server (tests/wa/lib/fake_server.mjs, default
// options) with its HTTP control API, run as a library so that the moment a
// stanza leaves for a companion can be read on the wall clock. Every
// `peer.sent` event gets `wallMs`: milliseconds since the Unix epoch with
// microsecond precision (performance.timeOrigin + performance.now(), the same
// CLOCK_REALTIME Python's time.time() and PostgreSQL's now() read), taken when
// the server logged the <message> node it was about to encode, encrypt and
// write (its `send` event, synchronously before the write), and `dateMs`,
// Date.now() read when the write had returned, to check the clocks agree.
// `peer.recv` events get `wallMs` when the peer had decrypted the message.
// Prints the same ready line as fake_server.mjs, plus `nowMs`.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const lib = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'wa', 'lib', 'fake_server.mjs');
const { FakeWhatsAppServer, startControl } = await import(lib);

const wallMs = () => performance.timeOrigin + performance.now();
const server = new FakeWhatsAppServer({});
const lastMessageSend = new Map(); // conn -> wall time of its last <message> send event
server.on('event', (ev) => {
    if (ev.kind === 'send' && ev.node?.tag === 'message') lastMessageSend.set(ev.conn, wallMs());
    else if (ev.kind === 'peer.sent') {
        ev.wallMs = lastMessageSend.get(ev.conn) ?? wallMs();
        ev.dateMs = Date.now();
    } else if (ev.kind === 'peer.recv') ev.wallMs = wallMs();
});
await server.start();
let ctl;
let stopping = false;
const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await server.stop();
    ctl?.close();
    process.exit(0);
};
ctl = await startControl(server, { onShutdown: shutdown });
process.stdout.write(JSON.stringify({
    ready: true,
    url: server.url,
    port: server.port,
    control: `http://127.0.0.1:${ctl.address().port}`,
    controlPort: ctl.address().port,
    rootKey: Buffer.from(server.rootPublicKey).toString('hex'),
    version: server.config.version,
    phone: server.phone.phoneNumber,
    nowMs: wallMs()
}) + '\n');
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
