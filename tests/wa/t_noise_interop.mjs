#!/usr/bin/env node
// Our C Noise client (build/tests/tools/wa_noise_tool over stdin/stdout)
// against a fake WhatsApp server built from Baileys' pieces
// (lib/noise_server.mjs), and Baileys' own client noise handler against the
// same server, so the server is proven against an independent client too.
// Prints PASS:/FAIL: lines; exits non-zero on any failure. Run from the repo root.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import {
    proto,
    Curve,
    makeNoiseHandler,
    initAuthCreds,
    generateRegistrationNode,
    generateLoginNode,
    encodeBinaryNode,
    decodeBinaryNode,
    NOISE_WA_HEADER
} from 'baileys';
import { NoiseServer, NoiseServerError, makeTestPki, checkClientPayload, frame } from './lib/noise_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..', '..');
const TOOL = path.join(ROOT, 'build', 'tests', 'tools', 'wa_noise_tool');
const VERSION = '2.3000.1045649367';

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

// Writes buf to a stream in a few random-sized pieces, so the client sees
// frames cut at arbitrary places.
function writeSplit(stream, buf) {
    let off = 0;
    while (off < buf.length) {
        const n = Math.min(buf.length - off, 1 + Math.floor(Math.random() * 700));
        stream.write(buf.subarray(off, off + n));
        off += n;
    }
}

/**
 * Runs the C client against a NoiseServer. After the handshake the tool sends
 * `send` frames; we then send `toClient` plaintexts and wait for their echoes.
 */
function runTool({ args, pki, expect, tamper = null, send = 0, toClient = [], timeoutMs = 15000 }) {
    return new Promise((resolve) => {
        const child = spawn(TOOL, ['--root', Buffer.from(pki.root.public).toString('hex'), ...args], {
            stdio: ['pipe', 'pipe', 'pipe']
        });
        const server = new NoiseServer({
            staticKeyPair: pki.serverStatic,
            certChain: pki.certChain,
            expect,
            tamper
        });
        const res = { server, stderr: '', fromClient: [], serverError: null, code: null, sentToClient: false };
        const echoesWanted = toClient.length;
        const timer = setTimeout(() => {
            res.timedOut = true;
            child.kill('SIGKILL');
        }, timeoutMs);
        child.stderr.on('data', (d) => (res.stderr += d));
        child.stdin.on('error', () => {}); // the tool may exit first on a failed handshake
        const maybeFinish = () => {
            if (!res.sentToClient && server.isTransport && res.fromClient.length >= send) {
                res.sentToClient = true;
                for (const m of toClient) writeSplit(child.stdin, server.encodeFrame(m));
            }
            if (res.sentToClient && res.fromClient.length >= send + echoesWanted) child.stdin.end();
        };
        child.stdout.on('data', (chunk) => {
            if (res.serverError) return;
            try {
                const { out, frames } = server.feed(chunk);
                for (const o of out) writeSplit(child.stdin, o);
                res.fromClient.push(...frames);
                maybeFinish();
            } catch (e) {
                res.serverError = e;
                child.stdin.end();
            }
        });
        child.on('close', (code) => {
            clearTimeout(timer);
            res.code = code;
            resolve(res);
        });
    });
}

async function cClientRegister() {
    const pki = makeTestPki();
    const big = Buffer.alloc(100000, 0x5a);
    const toClient = [Buffer.from('s2c:0'), Buffer.alloc(0), big, Buffer.from('s2c:3')];
    const r = await runTool({
        args: ['--register', '--version', VERSION, '--send', '3'],
        pki,
        expect: { version: VERSION, mode: 'register' },
        send: 3,
        toClient
    });
    check(!r.serverError, 'C register: server accepts header, ClientHello and ClientFinish', String(r.serverError?.message));
    check(r.server.isTransport, 'C register: server reaches transport mode');
    check(r.code === 0, 'C register: client exits 0', `code=${r.code} stderr=${r.stderr.trim()}`);
    check(/OK handshake/.test(r.stderr), 'C register: client reports the handshake done');
    const p = r.server.clientPayload;
    if (!p) return;
    check(checkClientPayload(p, { version: VERSION, mode: 'register' }).length === 0,
        'C register: ClientPayload passes every field check', checkClientPayload(p, { version: VERSION, mode: 'register' }).join('; '));
    check(p.userAgent.platform === 14, 'C register: platform WEB');
    check(`${p.userAgent.appVersion.primary}.${p.userAgent.appVersion.secondary}.${p.userAgent.appVersion.tertiary}` === VERSION,
        'C register: appVersion is the configured version');
    check(p.pushName === 'wapi interop', 'C register: pushName carried');
    const props = proto.DeviceProps.decode(p.devicePairingData.deviceProps);
    check(props.os === 'wapi' && props.platformType === proto.DeviceProps.PlatformType.CHROME,
        'C register: DeviceProps decodes with os and platform type');
    check(r.server.clientStatic.length === 32, 'C register: server learns a 32-byte client static key');
    // The signature check is real: one flipped bit of our eSkeySig is caught.
    const forged = proto.ClientPayload.decode(r.server.clientPayloadBytes);
    forged.devicePairingData.eSkeySig = Buffer.from(forged.devicePairingData.eSkeySig);
    forged.devicePairingData.eSkeySig[10] ^= 0x01;
    check(checkClientPayload(forged, { version: VERSION, mode: 'register' }).some((m) => /eSkeySig does not verify/.test(m)),
        'C register: a corrupted eSkeySig would be rejected (libsignal verifies our XEdDSA)');
    const texts = r.fromClient.map((b) => Buffer.from(b));
    check(texts.slice(0, 3).map(String).join(',') === 'c2s:0,c2s:1,c2s:2', 'C register: client frames decrypt in order',
        texts.slice(0, 3).map(String).join(','));
    const echoes = texts.slice(3);
    check(echoes.length === 4, 'C register: every server frame echoed', `got ${echoes.length}`);
    check(echoes.length === 4 && toClient.every((m, i) => Buffer.compare(echoes[i], Buffer.concat([Buffer.from('echo:'), m])) === 0),
        'C register: echoes match (incl. an empty and a 100000-byte frame)');
    check(r.server.readCounter === 7 && r.server.writeCounter === 4, 'C register: both counters advanced per frame',
        `read=${r.server.readCounter} write=${r.server.writeCounter}`);
}

async function cClientLogin() {
    const pki = makeTestPki();
    const expect = { version: VERSION, mode: 'login', username: '15551234567', device: 7 };
    const r = await runTool({
        args: ['--login', '15551234567:7', '--version', VERSION, '--send', '1'],
        pki,
        expect,
        send: 1,
        toClient: [Buffer.from('ping')]
    });
    check(!r.serverError && r.server.isTransport, 'C login: handshake completes', String(r.serverError?.message));
    check(r.code === 0, 'C login: client exits 0', `code=${r.code} stderr=${r.stderr.trim()}`);
    const p = r.server.clientPayload;
    if (!p) return;
    check(p.username.toString() === '15551234567' && p.device === 7, 'C login: username and device');
    check(p.passive === true && p.pull === true && p.devicePairingData == null, 'C login: passive, pull, no pairing data');
    check(r.fromClient.map(String).join(',') === 'c2s:0,echo:ping', 'C login: transport both ways');
}

async function cClientRejects() {
    const now = Math.floor(Date.now() / 1000);
    const defects = [
        ['wrong-root', /intermediate certificate signature/],
        ['bad-intermediate-sig', /intermediate certificate signature/],
        ['intermediate-issuer', /intermediate issuerSerial 9/],
        ['bad-leaf-sig', /leaf certificate signature/],
        ['leaf-issuer', /leaf issuerSerial 43/],
        ['leaf-key', /leaf certificate key is not the server static key/],
        ['expired', /leaf certificate expired/],
        ['not-yet-valid', /leaf certificate not yet valid/]
    ];
    for (const [defect, reason] of defects) {
        const pki = makeTestPki({ now, defect });
        const r = await runTool({ args: ['--register', '--now', String(now)], pki, expect: null });
        check(r.code === 2 && reason.test(r.stderr) && /rc=certificate/.test(r.stderr),
            `C rejects chain defect ${defect}`, `code=${r.code} stderr=${r.stderr.trim()}`);
        check(!r.server.isTransport, `C sends no ClientFinish after chain defect ${defect}`);
    }
    // Same chain, the client's clock outside the window.
    const pki = makeTestPki({ now });
    const late = await runTool({ args: ['--register', '--now', String(now + 2 * 86400)], pki, expect: null });
    check(late.code === 2 && /leaf certificate expired/.test(late.stderr), 'C honours the supplied clock (expired)', late.stderr.trim());
    const early = await runTool({ args: ['--register', '--now', String(now - 2 * 86400)], pki, expect: null });
    check(early.code === 2 && /not yet valid/.test(early.stderr), 'C honours the supplied clock (not yet valid)', early.stderr.trim());

    const tampers = [
        ['ephemeral', /cannot decrypt the server static key/],
        ['static', /cannot decrypt the server static key/],
        ['payload', /cannot decrypt the server certificate/]
    ];
    for (const [tamper, reason] of tampers) {
        const r = await runTool({ args: ['--register'], pki: makeTestPki(), expect: null, tamper });
        check(r.code === 2 && reason.test(r.stderr) && /rc=decrypt/.test(r.stderr),
            `C rejects tampered ServerHello ${tamper}`, `code=${r.code} stderr=${r.stderr.trim()}`);
    }
}

async function serverIsStrict() {
    // A client on another version: the server must notice both the user agent and the build hash.
    const r = await runTool({
        args: ['--register', '--version', '2.3000.1'],
        pki: makeTestPki(),
        expect: { version: VERSION, mode: 'register' }
    });
    const msg = r.serverError?.message || '';
    check(r.serverError instanceof NoiseServerError && /appVersion/.test(msg) && /buildHash/.test(msg),
        'server rejects a ClientPayload of another version (appVersion and buildHash)', msg);
    // A login payload where a registration is expected.
    const r2 = await runTool({
        args: ['--login', '1:2'],
        pki: makeTestPki(),
        expect: { version: VERSION, mode: 'register' }
    });
    check(/devicePairingData missing/.test(r2.serverError?.message || ''), 'server rejects a login payload when registering',
        r2.serverError?.message);

    const pki = makeTestPki();
    const mk = () => new NoiseServer({ staticKeyPair: pki.serverStatic, certChain: pki.certChain });
    const throwsWith = (fn, re) => {
        try {
            fn();
            return false;
        } catch (e) {
            return e instanceof NoiseServerError && re.test(e.message);
        }
    };
    check(throwsWith(() => mk().feed(Buffer.from([0x57, 0x41, 0x05, 0x02])), /bad connection header/),
        'server rejects a wrong connection header');
    check(throwsWith(() => mk().feed(Buffer.from([0x45])), /bad connection header/),
        'server rejects a wrong header from its first byte');
    const short = proto.HandshakeMessage.encode({ clientHello: { ephemeral: Buffer.alloc(31, 1) } }).finish();
    check(throwsWith(() => mk().feed(Buffer.concat([NOISE_WA_HEADER, frame(short)])), /ephemeral is 31 bytes/),
        'server rejects a 31-byte ephemeral');
    const ik = proto.HandshakeMessage.encode({ clientHello: { ephemeral: Buffer.alloc(32, 9), static: Buffer.alloc(48) } }).finish();
    check(throwsWith(() => mk().feed(Buffer.concat([NOISE_WA_HEADER, frame(ik)])), /IK fields/),
        'server rejects IK fields in an XX ClientHello');
    const huge = Buffer.concat([NOISE_WA_HEADER, Buffer.from([0xff, 0xff, 0xff])]);
    check(throwsWith(() => new NoiseServer({ staticKeyPair: pki.serverStatic, certChain: pki.certChain, maxFrame: 1000 }).feed(huge),
        /over the bound/), 'server rejects a frame over its bound');
}

const silentLogger = {
    level: 'silent',
    child() {
        return this;
    },
    trace() {},
    debug() {},
    info() {},
    warn() {},
    error() {}
};

// Baileys' own client noise handler against our server: register and login.
async function baileysClient(mode) {
    const pki = makeTestPki();
    const config = { version: [2, 3000, 1045649367], browser: ['Ubuntu', 'Chrome', '22.04'], countryCode: 'US', syncFullHistory: false };
    const versionText = config.version.join('.');
    const expect = mode === 'register'
        ? { version: versionText, mode }
        : { version: versionText, mode, username: '15550001111', device: 3 };
    const server = new NoiseServer({ staticKeyPair: pki.serverStatic, certChain: pki.certChain, expect });
    const creds = initAuthCreds();
    const eph = Curve.generateKeyPair();
    const noise = makeNoiseHandler({ keyPair: eph, NOISE_HEADER: NOISE_WA_HEADER, logger: silentLogger });
    const name = `Baileys ${mode}`;
    try {
        const hello = noise.encodeFrame(proto.HandshakeMessage.encode({ clientHello: { ephemeral: eph.public } }).finish());
        const { out } = server.feed(hello);
        let serverHello = null;
        await noise.decodeFrame(out[0], (f) => (serverHello = f));
        const keyEnc = noise.processHandshake(proto.HandshakeMessage.decode(serverHello), creds.noiseKey);
        const node = mode === 'register'
            ? generateRegistrationNode(creds, config)
            : generateLoginNode('15550001111:3@s.whatsapp.net', config);
        const payloadEnc = noise.encrypt(proto.ClientPayload.encode(node).finish());
        const fin = noise.encodeFrame(proto.HandshakeMessage.encode({ clientFinish: { static: keyEnc, payload: payloadEnc } }).finish());
        await noise.finishInit();
        server.feed(fin);
        check(server.isTransport, `${name}: handshake with our server completes`);
        check(Buffer.compare(server.clientStatic, Buffer.from(creds.noiseKey.public)) === 0, `${name}: server sees Baileys' noise key`);
        check(checkClientPayload(server.clientPayload, expect).length === 0, `${name}: Baileys' ClientPayload passes the same checks`);

        // Server -> Baileys: an encrypted binary node; Baileys decrypts and decodes it.
        const got = [];
        const s2c = { tag: 'iq', attrs: { id: 'abc-1', type: 'result', from: 's.whatsapp.net' } };
        const f1 = server.encodeFrame(encodeBinaryNode(s2c));
        const f2 = server.encodeFrame(encodeBinaryNode({ tag: 'success', attrs: { t: '1700000000' } }));
        await noise.decodeFrame(Buffer.concat([f1, f2]), (n) => got.push(n));
        check(got.length === 2 && got[0].tag === 'iq' && got[0].attrs.id === 'abc-1' && got[1].tag === 'success',
            `${name}: decrypts two server frames in order`);
        // Baileys -> server.
        const c2s = { tag: 'iq', attrs: { id: 'p1', type: 'get', xmlns: 'w:p', to: 's.whatsapp.net' }, content: [{ tag: 'ping', attrs: {} }] };
        const { frames } = server.feed(noise.encodeFrame(encodeBinaryNode(c2s)));
        const back = frames.length === 1 ? await decodeBinaryNode(frames[0]) : null;
        check(back && back.tag === 'iq' && back.attrs.xmlns === 'w:p' && back.content?.[0]?.tag === 'ping',
            `${name}: server decrypts Baileys' transport frame`);
    } catch (e) {
        check(false, `${name}: exchange`, e.stack || String(e));
    }
}

async function main() {
    if (!check(existsSync(TOOL), 'wa_noise_tool is built', TOOL)) process.exit(1);
    await baileysClient('register');
    await baileysClient('login');
    await cClientRegister();
    await cClientLogin();
    await cClientRejects();
    await serverIsStrict();
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}

main().catch((e) => {
    console.log(`FAIL: interop crashed ${e.stack || e}`);
    process.exit(1);
});
