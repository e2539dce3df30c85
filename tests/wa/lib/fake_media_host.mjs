// Test-only: the WhatsApp media hosts (mmg.whatsapp.net and its CDN), over
// HTTPS with a certificate from a test CA that clients are told to trust.
//
// Uploads: POST /mms/<type>/<token>?auth=<auth>&token=<token> is refused
// unless the type is a known one, the token in the path equals the token in
// the query and equals base64url(SHA-256 of the body) without padding, the
// auth is the current media_conn auth (401 otherwise, as the real host does
// when the token expired), the Origin is https://web.whatsapp.com, the body
// is exactly Content-Length bytes, and its length is 16·k + 10 with k ≥ 1
// (AES-CBC blocks and the 10-byte MAC). The answer is {url, direct_path}.
// faultNext({...}) gives the next new upload that fault.
// hold(true) keeps the answers of checked uploads until hold(false);
// hold(true, true) those of downloads.
// Every refusal is also recorded in `violations`, so a test sees what a
// client did wrong even when the client only reports "upload failed".
//
// Downloads: GET <direct_path> (or the url) serves the stored bytes, with a
// single Range if asked. Faults per upload (`fault(id, {...})`): status
// (e.g. 410 once the link "expired"), failures (answer 500 that many times
// first), truncate (close after half the body), tamper (one byte flipped).
//
// `activity` records every upload request (POST /mms/...) and every download
// served, for the benches: {type, bytes (of the body read or sent), status,
// t0 (the request's headers in), tBody (an upload's body read), t1 (the
// answer's last byte handed to the socket)}, wall-clock ms since the epoch
// with microsecond precision (the clock time.time() and PostgreSQL's now()
// read), refused uploads included (bytes 0 when refused before the body).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

export const MMS_TYPES = new Set(['image', 'video', 'audio', 'document', 'md-msg-hist', 'md-app-state', 'thumbnail-link']);
export const WA_ORIGIN = 'https://web.whatsapp.com';

const wallMs = () => performance.timeOrigin + performance.now();
const b64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** A test CA and a certificate for 127.0.0.1/localhost signed by it, made with
 *  the openssl command in dir (created when missing); returns the paths. */
export function makeTestCa(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-media-ca-'))) {
    fs.mkdirSync(dir, { recursive: true });
    const p = (f) => path.join(dir, f);
    if (!fs.existsSync(p('host.pem'))) {
        const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
        execFileSync('openssl', ['req', '-x509', ...ec, '-days', '7', '-subj', '/CN=wapi test media CA',
            '-keyout', p('ca.key'), '-out', p('ca.pem')], { stdio: 'ignore' });
        execFileSync('openssl', ['req', ...ec, '-subj', '/CN=127.0.0.1', '-keyout', p('host.key'), '-out', p('host.csr')],
            { stdio: 'ignore' });
        fs.writeFileSync(p('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
        execFileSync('openssl', ['x509', '-req', '-in', p('host.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
            '-CAcreateserial', '-days', '7', '-extfile', p('ext'), '-out', p('host.pem')], { stdio: 'ignore' });
    }
    return { dir, ca: p('ca.pem'), cert: p('host.pem'), key: p('host.key') };
}

/** For a test whose own fetch() must trust the test CA: Node reads
 *  NODE_EXTRA_CA_CERTS only at start, so the first run makes a CA, runs the
 *  test file again with it set, and exits with its status. Returns the CA's
 *  paths in the run that goes on. */
export function withTrustedTestCa(testUrl) {
    if (process.env.WAPI_MEDIA_CA_DIR) return makeTestCa(process.env.WAPI_MEDIA_CA_DIR);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-media-ca-'));
    const pki = makeTestCa(dir);
    const r = spawnSync(process.execPath, [new URL(testUrl).pathname], {
        stdio: 'inherit', env: { ...process.env, WAPI_MEDIA_CA_DIR: dir, NODE_EXTRA_CA_CERTS: pki.ca }
    });
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(r.status ?? 1);
}

export class FakeMediaHost {
    constructor({ ca = null, ttl = 300, log = () => {} } = {}) {
        this.pki = ca || makeTestCa();
        this.ttl = ttl;
        this.auth = b64url(randomBytes(24)) + '+/=';  // characters a client must escape
        this.uploads = new Map(); // id -> {type, body, token, directPath}
        this.byToken = new Map();
        this.faults = new Map();
        this.violations = [];
        this.requests = [];
        this.activity = { uploads: [], downloads: [] };
        this.log = log;
        this.seq = 0;
        this.holding = false; // hold(true): checked uploads wait for their answer until hold(false)
        this.held = [];
    }

    /** Holds the answers of uploads (each is checked and stored first), or of
     *  downloads (before any byte), or releases them. */
    hold(on, downloads = false) {
        if (downloads) this.holdingDl = !!on;
        else this.holding = !!on;
        if (!on) for (const go of this.held.splice(0)) go();
    }

    async start() {
        this.server = https.createServer({ cert: fs.readFileSync(this.pki.cert), key: fs.readFileSync(this.pki.key) },
            (req, res) => this.handle(req, res).catch((e) => { this.refuse(res, 500, `host error: ${e.message}`); }));
        await new Promise((ok, bad) => { this.server.once('error', bad); this.server.listen(0, '127.0.0.1', ok); });
        this.port = this.server.address().port;
        this.hostname = `127.0.0.1:${this.port}`;
        return this;
    }

    async stop() {
        this.server?.closeAllConnections?.();
        await new Promise((ok) => (this.server ? this.server.close(() => ok()) : ok()));
    }

    /** What <media_conn> carries. */
    mediaConn() {
        return { auth: this.auth, ttl: this.ttl, hosts: [this.hostname] };
    }

    /** A new auth: uploads with the old one now get 401. */
    rotateAuth() {
        this.auth = b64url(randomBytes(24)) + '+/=';
    }

    fault(id, f) {
        this.faults.set(id, { ...f });
    }

    /** The fault of the next upload (its id is not known before it happens). */
    faultNext(f) {
        this.nextFault = { ...f };
    }

    /** The phone uploads a file again (a media retry): the same encrypted bytes under a new direct
     *  path, with no fault; the old path keeps its own. Returns the new path. */
    reupload(directPath) {
        const m = /^\/v\/t62\.7118-24\/(\d+)_n\.enc/.exec(directPath || '');
        const old = m && this.uploads.get(m[1]);
        if (!old) throw new Error(`reupload: no media at ${directPath}`);
        const id = `${Date.now()}${String(++this.seq).padStart(4, '0')}`;
        const oe = Math.floor(Date.now() / 1000 + 14 * 86400).toString(16).toUpperCase();
        const up = { ...old, id, directPath: `/v/t62.7118-24/${id}_n.enc?ccb=11-4&oh=01_${b64url(randomBytes(12))}&oe=${oe}&_nc_sid=5e03e0` };
        this.uploads.set(id, up);
        this.log('media.reuploaded', { from: old.id, id });
        return up.directPath;
    }

    refuse(res, status, why) {
        this.violations.push(why);
        this.log('media.refused', { status, why });
        if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: why }));
    }

    async readBody(req, limit) {
        const parts = [];
        let n = 0;
        for await (const c of req) {
            n += c.length;
            if (n > limit) throw new Error('body over the host limit');
            parts.push(c);
        }
        return Buffer.concat(parts);
    }

    async handle(req, res) {
        const u = new URL(req.url, `https://${this.hostname}`);
        this.requests.push({ method: req.method, path: u.pathname, headers: req.headers, remote: req.socket.remoteAddress });
        if (req.method === 'POST' && u.pathname.startsWith('/mms/')) return this.upload(req, res, u, this.record('uploads', res));
        if (req.method === 'GET' && u.pathname.startsWith('/v/')) return this.download(req, res, u, this.record('downloads', res));
        if (req.method === 'GET' && u.pathname.startsWith('/pps/')) return this.picture(res, u);
        return this.refuse(res, 404, `no such endpoint: ${req.method} ${u.pathname}`);
    }

    /** GET /pps/<user>/<id>.jpg: a profile picture (not encrypted, as WhatsApp serves them), from `pictures`. */
    picture(res, u) {
        const pic = (this.pictures ??= new Map()).get(u.pathname);
        (this.pictureFetches ??= []).push(u.pathname);
        if (!pic) return this.refuse(res, 404, `no picture at ${u.pathname}`);
        res.writeHead(200, { 'content-type': pic.type, 'content-length': pic.bytes.length });
        res.end(pic.bytes);
    }

    /** An entry of `activity`, completed when the answer is finished. */
    record(list, res) {
        const rec = { type: null, bytes: 0, status: null, t0: wallMs(), tBody: null, t1: null };
        this.activity[list].push(rec);
        res.on('finish', () => { rec.status = res.statusCode; rec.t1 = wallMs(); });
        return rec;
    }

    async upload(req, res, u, rec = {}) {
        const m = /^\/mms\/([^/]+)\/([^/]+)$/.exec(u.pathname);
        if (!m || !MMS_TYPES.has(m[1])) return this.refuse(res, 400, `upload path ${u.pathname}: not /mms/<known type>/<token>`);
        const [, type, token] = m;
        rec.type = type;
        if (u.searchParams.get('token') !== token) return this.refuse(res, 400, 'upload: token in the query differs from the path');
        if (u.searchParams.get('auth') !== this.auth) return this.refuse(res, 401, 'upload: wrong or expired auth');
        if (req.headers.origin !== WA_ORIGIN) return this.refuse(res, 400, `upload: Origin ${req.headers.origin}`);
        const declared = Number(req.headers['content-length']);
        if (!Number.isSafeInteger(declared)) return this.refuse(res, 411, 'upload: no Content-Length');
        const body = await this.readBody(req, 256 << 20);
        rec.bytes = body.length;
        rec.tBody = wallMs();
        if (body.length !== declared) return this.refuse(res, 400, `upload: ${body.length} bytes, Content-Length ${declared}`);
        if (body.length < 26 || (body.length - 10) % 16 !== 0) {
            return this.refuse(res, 400, `upload: ${body.length} bytes is not 16k + 10 (AES blocks and the MAC)`);
        }
        if (b64url(createHash('sha256').update(body).digest()) !== token) {
            return this.refuse(res, 400, 'upload: token is not base64url(SHA-256 of the body)');
        }
        let up = this.byToken.get(token);
        if (!up) {
            const id = `${Date.now()}${String(++this.seq).padStart(4, '0')}`;
            const oe = Math.floor(Date.now() / 1000 + 14 * 86400).toString(16).toUpperCase();
            const directPath = `/v/t62.7118-24/${id}_n.enc?ccb=11-4&oh=01_${b64url(randomBytes(12))}&oe=${oe}&_nc_sid=5e03e0`;
            up = { id, type, body, token, directPath };
            this.uploads.set(id, up);
            if (this.nextFault) {
                this.faults.set(id, this.nextFault);
                this.nextFault = null;
            }
            this.byToken.set(token, up);
        }
        this.log('media.uploaded', { id: up.id, type, bytes: body.length });
        if (this.holding) await new Promise((go) => this.held.push(go));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ url: `https://${this.hostname}${up.directPath}&mms3=true`, direct_path: up.directPath }));
    }

    async download(req, res, u, rec = {}) {
        const m = /^\/v\/t62\.7118-24\/(\d+)_n\.enc$/.exec(u.pathname);
        const up = m && this.uploads.get(m[1]);
        if (!up) return this.refuse(res, 404, `download: no media at ${u.pathname}`);
        if (this.holdingDl) await new Promise((go) => this.held.push(go));
        const f = this.faults.get(up.id) || {};
        if (f.failures > 0) {
            f.failures--;
            this.faults.set(up.id, f);
            res.writeHead(500);
            return res.end();
        }
        if (f.status) {
            res.writeHead(f.status);
            return res.end();
        }
        let body = up.body;
        if (f.tamper) {
            body = Buffer.from(body);
            body[body.length >> 1] ^= 0x01;
        }
        let start = 0, end = body.length - 1, status = 200;
        const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
        if (r) {
            start = Number(r[1]);
            end = r[2] ? Math.min(Number(r[2]), body.length - 1) : body.length - 1;
            if (start > end) {
                res.writeHead(416, { 'content-range': `bytes */${body.length}` });
                return res.end();
            }
            status = 206;
        }
        const slice = body.subarray(start, end + 1);
        rec.type = up.type;
        rec.bytes = f.truncate ? slice.length >> 1 : slice.length;
        const headers = { 'content-type': 'application/octet-stream', 'content-length': slice.length };
        if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
        res.writeHead(status, headers);
        if (f.truncate) {
            res.write(slice.subarray(0, slice.length >> 1));
            return res.destroy();
        }
        res.end(slice);
    }
}
