// Test-only: app-state sync for the fake WhatsApp server (lib/fake_server.mjs),
// for the account the fake phone runs. Holds each collection as WhatsApp's
// server does (its version, its LTHash, the history of patches, the current
// record of every index), and our phone's changes go in as patches built by
// Baileys' own encoder (encodeSyncdPatch) under a sync key the test names.
//
// <iq xmlns=w:sync:app:state type=set><sync><collection name version return_snapshot/>…
// is checked strictly and answered per collection: return_snapshot=true → a
// snapshot (SyncdSnapshot of the current records, encrypted like media as
// md-app-state and put on the fake media hosts; the answer carries its
// ExternalBlobReference) at the current version; otherwise the patches
// above the asked version, pageSize at most, with has_more_patches="true"
// when more follow. A collection with a <patch> is a companion's change: the
// version must be the collection's current one (else 409 conflict, as
// WhatsApp answers a client that is behind), the patch is decoded by
// Baileys' decodePatches with every MAC checked (a failure is a violation);
// what Baileys decoded is recorded (GET /appstate/state → received).
//
// Control (startControl routes /appstate/…):
//   POST /appstate/key    {id: hex, data: hex}   the sync key our phone's patches are sealed with
//   POST /appstate/mutate {collection, mutations: [{index: [...], value: {SyncActionValue fields}, apiVersion?, op?: set|remove}],
//                          tamper?: valueMac|patchMac|lthash|indexMac (served so once; the history keeps the good one),
//                          external?: true (the mutations as an external blob), notify?: false}
//                         → {version}; notify (default): <notification type=server_sync> to the account's companions
//   POST /appstate/config {pageSize?, conflictNext?: name (the next companion patch to that collection gets a 409)}
//   GET  /appstate/state  → {collections: {name: {version, hash, records}}, fetches, keyRequests, received, uploads}
import crypto from 'node:crypto';
import { proto, encodeSyncdPatch, decodePatches, newLTHashState, getMediaKeys } from 'baileys';
import { expandAppStateKeys } from 'whatsapp-rust-bridge';

export const COLLECTIONS = ['critical_block', 'critical_unblock_low', 'regular_high', 'regular_low', 'regular'];
const SERVER_JID = '@s.whatsapp.net'; // the codec's spelling of the server JID (as lib/fake_server.mjs)
const OP = proto.SyncdMutation.SyncdOperation;
const kids = (n) => (Array.isArray(n?.content) ? n.content : []);
const isBytes = (x) => x instanceof Uint8Array;
const hex = (b) => Buffer.from(b).toString('hex');
const be64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };
const nowSec = () => Math.floor(Date.now() / 1000);
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child() { return quiet; } };
// Baileys reports a MAC or LTHash failure as a warning, not an exception: these are collected and refused.
const warnLogger = () => {
    const warns = [];
    const logger = { ...quiet, warn: (...a) => warns.push(a.map((x) => JSON.stringify(x)).join(' ')), error: (...a) => warns.push(a.map((x) => JSON.stringify(x)).join(' ')) };
    logger.child = () => logger;
    return { logger, warns };
};

export class FakeAppState {
    constructor(server, { bad }) {
        this.server = server;
        this.bad = bad;
        this.key = null; // {idB64, idHex, data: Buffer}
        this.colls = new Map(COLLECTIONS.map((n) => [n, { version: 0, state: newLTHashState(), patches: [], records: new Map(), serveOnce: new Map() }]));
        this.pageSize = 50;
        this.conflictNext = new Set();
        this.fetches = [];
        this.keyRequests = [];
        this.received = [];
        this.uploads = 0;
        this.noticeSeq = 0;
    }

    getKey = async (idB64) => (this.key && idB64 === this.key.idB64 ? { keyData: this.key.data } : undefined);

    setKey(b) {
        if (!/^([0-9a-f]{2})+$/i.test(b.id ?? '') || !/^[0-9a-f]{64}$/i.test(b.data ?? '')) throw Object.assign(new Error('key: {id: hex, data: 32 bytes hex}'), { status: 400 });
        const id = Buffer.from(b.id, 'hex');
        this.key = { idB64: id.toString('base64'), idHex: b.id.toLowerCase(), data: Buffer.from(b.data, 'hex') };
        return { ok: true };
    }

    config(b) {
        if (b.pageSize != null) this.pageSize = Math.max(1, Number(b.pageSize));
        if (b.conflictNext) this.conflictNext.add(b.conflictNext);
        return { ok: true };
    }

    macs(name, hash, vmacs, version) {
        const k = expandAppStateKeys(this.key.data);
        const smac = crypto.createHmac('sha256', k.snapshotMacKey).update(Buffer.concat([hash, be64(version), Buffer.from(name)])).digest();
        const pmac = crypto.createHmac('sha256', k.patchMacKey).update(Buffer.concat([smac, ...vmacs, be64(version), Buffer.from(name)])).digest();
        return { smac, pmac };
    }

    /** Encrypts plain as media of type md-app-state, puts it on the media hosts; its ExternalBlobReference. */
    async upload(plain) {
        const media = this.server.media;
        if (!media) throw Object.assign(new Error('app-state blobs need the media hosts (--media-ca)'), { status: 400 });
        const mediaKey = crypto.randomBytes(32);
        const { iv, cipherKey, macKey } = await getMediaKeys(mediaKey, 'md-app-state');
        const c = crypto.createCipheriv('aes-256-cbc', cipherKey, iv);
        const enc = Buffer.concat([c.update(plain), c.final()]);
        const mac = crypto.createHmac('sha256', macKey).update(Buffer.concat([iv, enc])).digest().subarray(0, 10);
        const body = Buffer.concat([enc, mac]);
        const id = `${Date.now()}${String(++media.seq).padStart(4, '0')}`;
        const directPath = `/v/t62.7118-24/${id}_n.enc?ccb=11-4&oh=01_${crypto.randomBytes(9).toString('base64url')}&oe=${Math.floor(nowSec() + 14 * 86400).toString(16).toUpperCase()}&_nc_sid=5e03e0`;
        media.uploads.set(id, { id, type: 'md-app-state', body, token: null, directPath });
        this.uploads++;
        return {
            mediaKey, directPath, handle: id, fileSizeBytes: plain.length,
            fileSha256: crypto.createHash('sha256').update(plain).digest(),
            fileEncSha256: crypto.createHash('sha256').update(body).digest(),
        };
    }

    /** Our phone changes something: one patch of the given mutations, built with Baileys' encoder. */
    async mutate(b) {
        if (!this.key) throw Object.assign(new Error('no sync key: POST /appstate/key first'), { status: 400 });
        const name = b.collection;
        const co = this.colls.get(name);
        if (!co) throw Object.assign(new Error(`collection: one of ${COLLECTIONS.join(', ')}`), { status: 400 });
        const ms = b.mutations ?? [];
        if (!ms.length) throw Object.assign(new Error('mutations: at least one'), { status: 400 });
        let st = co.state;
        const muts = [], vmacs = [];
        for (const m of ms) {
            const operation = m.op === 'remove' ? OP.REMOVE : OP.SET;
            const r = await encodeSyncdPatch({ type: name, index: m.index, apiVersion: m.apiVersion ?? 2, operation,
                syncAction: { timestamp: m.timestamp ?? Date.now(), ...m.value } }, this.key.idB64, st, this.getKey);
            st = r.state;
            const mut = r.patch.mutations[0];
            muts.push(mut);
            vmacs.push(Buffer.from(mut.record.value.blob).subarray(-32));
        }
        const version = co.version + 1;
        const { smac, pmac } = this.macs(name, st.hash, vmacs, version);
        const patch = { version: { version }, mutations: muts, snapshotMac: smac, patchMac: pmac, keyId: { id: Buffer.from(this.key.idHex, 'hex') } };
        // Baileys must take its own patch (the external one checked with its mutations inline), or the test proves nothing.
        const inline = proto.SyncdPatch.decode(proto.SyncdPatch.encode(patch).finish());
        const { logger, warns } = warnLogger();
        const check = await decodePatches(name, [inline], co.state, this.getKey, {}, undefined, logger, true).catch((e) => e);
        if (check instanceof Error || warns.length) throw new Error(`Baileys refuses the patch it built: ${check.message ?? warns.join('; ')}`);
        if (b.external) {
            const blob = proto.SyncdMutations.encode({ mutations: muts }).finish();
            patch.externalMutations = await this.upload(Buffer.from(blob));
            patch.mutations = [];
        }
        const bytes = Buffer.from(proto.SyncdPatch.encode(patch).finish());
        co.patches.push({ version, bytes });
        if (b.tamper) co.serveOnce.set(version, this.tampered(name, patch, b.tamper, st, vmacs, version));
        co.state = st;
        co.version = version;
        // by index MAC, as the LTHash counts them (the same index under another key is another record)
        for (const mut of muts) {
            const im = hex(mut.record.index.blob);
            if (mut.operation === OP.REMOVE) co.records.delete(im);
            else co.records.set(im, mut.record);
        }
        if (b.notify !== false) this.notify([name]);
        return { ok: true, version, hash: hex(st.hash) };
    }

    tampered(name, patch, how, st, vmacs, version) {
        const p = proto.SyncdPatch.decode(proto.SyncdPatch.encode(patch).finish());
        if (how === 'valueMac' || how === 'indexMac') {
            const rec = p.mutations[0]?.record;
            if (!rec) throw Object.assign(new Error('tamper: no inline mutation'), { status: 400 });
            if (how === 'valueMac') {
                const blob = Buffer.from(rec.value.blob);
                blob[blob.length - 1] ^= 1;
                rec.value.blob = blob;
            } else {
                const im = Buffer.from(rec.index.blob);
                im[0] ^= 1;
                rec.index.blob = im;
            }
            // the patch MAC over the changed value MACs, so only the inner check fails
            const vm = p.mutations.map((m) => Buffer.from(m.record.value.blob).subarray(-32));
            p.patchMac = this.macs(name, st.hash, vm, version).pmac;
        } else if (how === 'patchMac') {
            const pm = Buffer.from(p.patchMac);
            pm[3] ^= 0x40;
            p.patchMac = pm;
        } else if (how === 'lthash') {
            const wrong = Buffer.from(st.hash);
            wrong[0] ^= 1;
            const { smac, pmac } = this.macs(name, wrong, vmacs, version);
            p.snapshotMac = smac;
            p.patchMac = pmac;
        } else {
            throw Object.assign(new Error('tamper: valueMac, indexMac, patchMac or lthash'), { status: 400 });
        }
        return Buffer.from(proto.SyncdPatch.encode(p).finish());
    }

    notify(names) {
        const me = this.server.phone?.phoneNumber;
        for (const c of this.server.conns) {
            if (!c.open || c.state !== 'logged-in' || c.device?.user !== me) continue;
            c.sendAcked({ tag: 'notification', attrs: { from: SERVER_JID, type: 'server_sync', id: `AS${(++this.noticeSeq).toString(16).toUpperCase().padStart(8, '0')}`, t: String(nowSec()) },
                content: names.map((name) => ({ tag: 'collection', attrs: { name, version: String(this.colls.get(name).version) } })) });
        }
    }

    async snapshotRef(name) {
        const co = this.colls.get(name);
        const records = [...co.records.values()];
        const mac = this.macs(name, co.state.hash, [], co.version).smac;
        const snap = proto.SyncdSnapshot.encode({ version: { version: co.version }, records, mac, keyId: { id: Buffer.from(this.key.idHex, 'hex') } }).finish();
        const ref = await this.upload(Buffer.from(snap));
        return Buffer.from(proto.ExternalBlobReference.encode(ref).finish());
    }

    /** <iq xmlns=w:sync:app:state type=set> from companion c. */
    async onIq(c, n) {
        const bad = this.bad;
        const ch = kids(n);
        if (ch.length !== 1 || ch[0].tag !== 'sync' || Object.keys(ch[0].attrs ?? {}).length) bad('<iq xmlns=w:sync:app:state>: want one <sync> without attributes');
        const cols = kids(ch[0]);
        if (!cols.length || cols.some((x) => x.tag !== 'collection')) bad('<sync>: want <collection> children only');
        const out = [];
        for (const col of cols) {
            const { name, version, return_snapshot: rs, ...extra } = col.attrs ?? {};
            if (Object.keys(extra).length) bad(`<collection> with unexpected attributes ${Object.keys(extra).join(',')}`);
            if (!COLLECTIONS.includes(name)) bad(`<collection name=${name}>: no such collection`);
            if (!/^(0|[1-9][0-9]*)$/.test(version ?? '')) bad(`<collection version=${version}>: want a number`);
            if (rs !== 'true' && rs !== 'false') bad(`<collection return_snapshot=${rs}>: want true or false`);
            const patchNode = kids(col).find((x) => x.tag === 'patch');
            if (kids(col).length !== (patchNode ? 1 : 0)) bad('<collection>: only a <patch> may be inside');
            const co = this.colls.get(name);
            const from = Number(version);
            if (patchNode) {
                if (rs !== 'false') bad('<collection> with a <patch>: return_snapshot must be false');
                if (!isBytes(patchNode.content)) bad('<patch>: want bytes');
                out.push(await this.onCompanionPatch(c, name, from, Buffer.from(patchNode.content)));
                continue;
            }
            if (from > co.version) bad(`<collection name=${name} version=${from}>: the server is at ${co.version}`);
            this.fetches.push({ name, version: from, snapshot: rs === 'true' });
            this.server.log(c.id, 'appstate.fetch', { name, version: from, snapshot: rs === 'true' });
            if (!this.key && co.version > 0) bad('app-state: no key for the collection (test set-up)');
            const content = [];
            if (rs === 'true' && co.version > 0) {
                content.push({ tag: 'snapshot', attrs: {}, content: await this.snapshotRef(name) });
                out.push({ tag: 'collection', attrs: { name, version: String(co.version) }, content });
                continue;
            }
            const after = co.patches.filter((p) => p.version > from);
            const page = after.slice(0, this.pageSize);
            if (page.length) {
                content.push({ tag: 'patches', attrs: {}, content: page.map((p) => {
                    const once = co.serveOnce.get(p.version);
                    if (once) co.serveOnce.delete(p.version);
                    return { tag: 'patch', attrs: {}, content: once ?? p.bytes };
                }) });
            }
            const attrs = { name, version: String(page.length ? page[page.length - 1].version : co.version) };
            if (after.length > page.length) attrs.has_more_patches = 'true';
            out.push({ tag: 'collection', attrs, content });
        }
        c.result(n, [{ tag: 'sync', attrs: {}, content: out }]);
    }

    /** A companion's own change: version must be current; decoded by Baileys, every MAC checked. */
    async onCompanionPatch(c, name, from, bytes) {
        const co = this.colls.get(name);
        if (this.conflictNext.delete(name) || from !== co.version) {
            this.server.log(c.id, 'appstate.conflict', { name, version: from, server: co.version });
            return { tag: 'collection', attrs: { name, version: String(co.version), type: 'error' }, content: [{ tag: 'error', attrs: { code: '409', text: 'conflict' } }] };
        }
        let syncd;
        try {
            syncd = proto.SyncdPatch.decode(bytes);
        } catch (e) {
            this.bad(`companion patch for ${name}: not a SyncdPatch: ${e.message}`);
        }
        if (syncd.version?.version != null && Number(syncd.version.version) !== co.version + 1) this.bad(`companion patch version ${syncd.version.version}, want ${co.version + 1}`);
        if (!syncd.version) syncd.version = { version: co.version + 1 };
        const { logger, warns } = warnLogger();
        let got;
        const kept = proto.SyncdPatch.decode(bytes); // Baileys empties the mutations of what it decodes
        try {
            got = await decodePatches(name, [syncd], co.state, this.getKey, {}, undefined, logger, true);
        } catch (e) {
            this.bad(`companion patch for ${name}: Baileys refuses it: ${e.message}`);
        }
        if (warns.length) this.bad(`companion patch for ${name}: Baileys warns: ${warns.join('; ')}`);
        const version = co.version + 1;
        const decoded = Object.values(got.mutationMap).map((m) => ({ index: m.index, op: m.operation === OP.REMOVE ? 'remove' : 'set',
            value: proto.SyncActionValue.toObject(m.syncAction.value, { longs: Number }) }));
        kept.version = { version };
        co.patches.push({ version, bytes: Buffer.from(proto.SyncdPatch.encode(kept).finish()) });
        co.state = got.state;
        co.version = version;
        for (const mut of kept.mutations) {
            const im = hex(mut.record.index.blob);
            if (mut.operation === OP.REMOVE) co.records.delete(im);
            else co.records.set(im, mut.record);
        }
        this.received.push({ name, version, actions: decoded });
        this.server.log(c.id, 'appstate.patch', { name, version, actions: decoded });
        return { tag: 'collection', attrs: { name, version: String(version) } };
    }

    onKeyRequest(c, ids) {
        const r = { keyIds: ids.map(hex), conn: c.id };
        this.keyRequests.push(r);
        this.server.log(c.id, 'phone.appstate.key_request', r);
    }

    stateJson() {
        return {
            collections: Object.fromEntries([...this.colls].map(([n, co]) => [n, { version: co.version, hash: hex(co.state.hash), records: co.records.size, indexMacs: [...co.records.keys()] }])),
            fetches: this.fetches, keyRequests: this.keyRequests, received: this.received, uploads: this.uploads,
        };
    }

    route(method, path, b) {
        const r = {
            'POST /appstate/key': () => this.setKey(b),
            'POST /appstate/mutate': () => this.mutate(b),
            'POST /appstate/config': () => this.config(b),
            'GET /appstate/state': () => this.stateJson(),
        }[`${method} ${path}`];
        return r ? r() : null;
    }
}
