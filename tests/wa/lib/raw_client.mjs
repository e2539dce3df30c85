// Test-only: a scripted WhatsApp client for probing the fake server with
// stanzas no real client would send. Handshake and codec come from Baileys'
// exported pieces (client noise handler, ClientPayload builders, binary codec);
// after the handshake the script sends whatever nodes or raw plaintexts it likes.
//   const rc = await RawClient.connect(url, { creds, version, mode: 'register' | 'login', patch })
//   rc.send(node); rc.sendPlain(bytes); await rc.next((n) => n.tag === 'iq'); await rc.closed
import WebSocket from 'ws';
import {
    proto,
    Curve,
    makeNoiseHandler,
    generateRegistrationNode,
    generateLoginNode,
    encodeBinaryNode,
    NOISE_WA_HEADER
} from 'baileys';
import { quietLogger } from './baileys_client.mjs';

export class RawClient {
    static async connect(url, { creds, version, mode = creds.me ? 'login' : 'register', patch = null, origin = 'https://web.whatsapp.com' }) {
        const rc = new RawClient();
        await rc.#open(url, { creds, version, mode, patch, origin });
        return rc;
    }

    constructor() {
        this.nodes = [];
        this.waiters = new Set();
        this.isClosed = false;
    }

    async #open(url, { creds, version, mode, patch, origin }) {
        const logger = quietLogger('raw');
        const eph = Curve.generateKeyPair();
        this.noise = makeNoiseHandler({ keyPair: eph, NOISE_HEADER: NOISE_WA_HEADER, logger });
        this.ws = new WebSocket(url, { origin });
        this.closed = new Promise((resolve) => this.ws.on('close', (code) => {
            this.isClosed = true;
            for (const w of this.waiters) w.reject(new Error('connection closed'));
            resolve(code);
        }));
        this.ws.on('error', () => {});
        await new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
        });
        let handshakeFrame = null;
        let handshakeWaiter = null;
        this.ws.on('message', async (data) => {
            await this.noise.decodeFrame(Buffer.from(data), (f) => {
                if (f instanceof Uint8Array && !(f.tag)) {
                    handshakeFrame = f;
                    handshakeWaiter?.();
                    return;
                }
                this.nodes.push(f);
                for (const w of [...this.waiters]) if (w.pred(f)) w.resolve(f);
            }).catch((e) => {
                this.decodeError = e;
            });
        });
        this.ws.send(this.noise.encodeFrame(proto.HandshakeMessage.encode({ clientHello: { ephemeral: eph.public } }).finish()));
        await new Promise((resolve, reject) => {
            handshakeWaiter = resolve;
            if (handshakeFrame) resolve();
            this.closed.then(() => reject(new Error('closed during handshake')));
        });
        const keyEnc = this.noise.processHandshake(proto.HandshakeMessage.decode(handshakeFrame), creds.noiseKey);
        const config = { version: version.split('.').map(Number), browser: ['Ubuntu', 'Chrome', '22.04.4'], countryCode: 'US', syncFullHistory: false };
        let payload = mode === 'register' ? generateRegistrationNode(creds, config) : generateLoginNode(creds.me.id, config);
        if (patch) payload = patch(payload) || payload;
        const payloadEnc = this.noise.encrypt(proto.ClientPayload.encode(payload).finish());
        this.ws.send(this.noise.encodeFrame(proto.HandshakeMessage.encode({ clientFinish: { static: keyEnc, payload: payloadEnc } }).finish()));
        await this.noise.finishInit();
    }

    /** Encrypts and sends one binary node. */
    send(node) {
        this.sendPlain(encodeBinaryNode(node));
    }

    /** Encrypts and sends a raw plaintext (flag byte included). */
    sendPlain(bytes) {
        if (this.ws.readyState === 1) this.ws.send(this.noise.encodeFrame(Buffer.from(bytes)));
    }

    /** First received node (past or future) for which pred holds. */
    next(pred, ms = 5000) {
        const hit = this.nodes.find(pred);
        if (hit) return Promise.resolve(hit);
        if (this.isClosed) return Promise.reject(new Error('connection closed'));
        return new Promise((resolve, reject) => {
            const w = {
                pred,
                resolve: (n) => (clearTimeout(t), this.waiters.delete(w), resolve(n)),
                reject: (e) => (clearTimeout(t), this.waiters.delete(w), reject(e))
            };
            const t = setTimeout(() => w.reject(new Error(`timed out after ${ms} ms`)), ms);
            this.waiters.add(w);
        });
    }

    close() {
        this.ws.terminate();
    }
}
