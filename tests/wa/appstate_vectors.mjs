#!/usr/bin/env node
// App-state vectors from an independent implementation (Baileys and its
// whatsapp-rust-bridge), for tests/unit/test_wa_appstate.c:
//   node tests/wa/appstate_vectors.mjs            -> JSON vectors on stdout
//   node tests/wa/appstate_vectors.mjs decode F   -> Baileys' decoding of the patch described in file F
// The vectors: the mutation keys of a random sync key, an LTHash step, and
// patches Baileys' encodeSyncdPatch builds (archive, pin, mute, read,
// contact, a REMOVE, a patch of several mutations, one without a version)
// with the collection state before and after, and a snapshot. Every patch
// and the snapshot are decoded back by Baileys with its MAC checks on, so a
// vector that Baileys itself would refuse is never handed out.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodePatches, decodeSyncdSnapshot, encodeSyncdPatch, newLTHashState, proto } from 'baileys';
import { expandAppStateKeys, LTHashAntiTampering } from 'whatsapp-rust-bridge';

const hex = (b) => Buffer.from(b).toString('hex');
const OP = proto.SyncdMutation.SyncdOperation;

// A logger that remembers Baileys' warnings (its LTHash / MAC mismatches are warnings).
const mkLogger = () => {
    const warns = [];
    const l = { warns, trace() {}, debug() {}, info() {}, error(...a) { warns.push(a); }, warn(...a) { warns.push(a); } };
    l.child = () => l;
    return l;
};

const be64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(v)); return b; };

if (process.argv[2] === 'decode') {
    const req = JSON.parse(readFileSync(process.argv[3], 'utf8'));
    const keyId = Buffer.from(req.keyId, 'hex').toString('base64');
    const getKey = async (id) => (id === keyId ? { keyData: Buffer.from(req.keyData, 'hex') } : undefined);
    const initial = { version: req.version, hash: Buffer.from(req.hash, 'hex'), indexValueMap: {} };
    for (const [im, vm] of Object.entries(req.map || {}))
        initial.indexValueMap[Buffer.from(im, 'hex').toString('base64')] = { valueMac: Buffer.from(vm, 'hex') };
    const syncd = proto.SyncdPatch.decode(Buffer.from(req.patch, 'hex'));
    if (!syncd.version) syncd.version = { version: req.version + 1 };
    const logger = mkLogger();
    let out;
    try {
        const { state, mutationMap } = await decodePatches(req.name, [syncd], initial, getKey, {}, undefined, logger, true);
        out = {
            ok: logger.warns.length === 0, warns: logger.warns.map(String), version: state.version, hash: hex(state.hash),
            actions: Object.values(mutationMap).map((m) => ({ index: m.index, value: proto.SyncActionValue.toObject(m.syncAction.value, { longs: Number }) })),
        };
    } catch (err) {
        out = { ok: false, error: String(err) };
    }
    console.log(JSON.stringify(out));
    process.exit(0);
}

const syncKey = randomBytes(32);
const keyIdBuf = randomBytes(6);
const keyId = keyIdBuf.toString('base64');
const getKey = async (id) => (id === keyId ? { keyData: syncKey } : undefined);
const k = expandAppStateKeys(syncKey);
const lt = new LTHashAntiTampering();

const out = {
    syncKey: hex(syncKey), keyId: hex(keyIdBuf),
    keys: { index: hex(k.indexKey), valueEnc: hex(k.valueEncryptionKey), valueMac: hex(k.valueMacKey), snapshotMac: hex(k.snapshotMacKey), patchMac: hex(k.patchMacKey) },
};

// An LTHash step: from a random state, take two values away and add three.
{
    const start = randomBytes(128), subs = [randomBytes(32), randomBytes(32)], adds = [randomBytes(32), randomBytes(32), randomBytes(32)];
    out.lthash = { start: hex(start), subs: subs.map(hex), adds: adds.map(hex), result: hex(lt.subtractThenAdd(start, subs, adds)) };
}

const snapshotMac = (hash, version, name) => createHmac('sha256', k.snapshotMacKey).update(Buffer.concat([hash, be64(version), Buffer.from(name)])).digest();
const patchMac = (smac, vmacs, version, name) => createHmac('sha256', k.patchMacKey).update(Buffer.concat([smac, ...vmacs, be64(version), Buffer.from(name)])).digest();

const mapHex = (m) => Object.fromEntries(Object.entries(m).map(([i, v]) => [Buffer.from(i, 'base64').toString('hex'), hex(v.valueMac)]));
const states = {};
const stateOf = (name) => (states[name] ||= newLTHashState());
const baileysAccepts = async (name, before, bytes) => {
    const logger = mkLogger();
    const syncd = proto.SyncdPatch.decode(bytes);
    // as Baileys' extractSyncdPatches does for a patch without a version
    if (!syncd.version) syncd.version = { version: before.version + 1 };
    const { state, mutationMap } = await decodePatches(name, [syncd], before, getKey, {}, undefined, logger, true);
    if (logger.warns.length) throw new Error(`Baileys refuses our own vector for ${name}: ${logger.warns.map(String)}`);
    return { state, actions: Object.values(mutationMap) };
};

out.patches = [];
const jidA = '12345678901@s.whatsapp.net', jidB = '120363000000000001@g.us', jidC = '19998887777@s.whatsapp.net';
const lastTs = 1733400000;
const ONE = [
    { type: 'regular_low', index: ['archive', jidA], apiVersion: 3, syncAction: { archiveChatAction: { archived: true, messageRange: { lastMessageTimestamp: lastTs } } } },
    { type: 'regular_low', index: ['pin_v1', jidB], apiVersion: 5, syncAction: { pinAction: { pinned: true } } },
    { type: 'regular_high', index: ['mute', jidA], apiVersion: 2, syncAction: { muteAction: { muted: true, muteEndTimestamp: 1733500000000 } } },
    { type: 'regular_low', index: ['markChatAsRead', jidC], apiVersion: 3, syncAction: { markChatAsReadAction: { read: false, messageRange: { lastMessageTimestamp: lastTs } } } },
    { type: 'critical_unblock_low', index: ['contact', jidC], apiVersion: 2, syncAction: { contactAction: { fullName: 'Zoë "Z" Müller\n', firstName: 'Zoë' } } },
    { type: 'regular_high', index: ['star', jidA, '3EB0ABCDEF', '1', '0'], apiVersion: 2, syncAction: { starAction: { starred: true } } },
    { type: 'critical_block', index: ['setting_pushName'], apiVersion: 1, syncAction: { pushNameSetting: { name: 'wapi test' } } },
    // an index JSON.stringify escapes (quote, backslash, control character, non-ASCII, astral)
    { type: 'regular', index: ['label_edit', 'Zoë "7" \\ \u0001\t 😀'], apiVersion: 3, syncAction: { labelEditAction: { name: 'Kunden ✓', color: 11, deleted: false } } },
    // an overwrite: the archive above is taken out of the LTHash
    { type: 'regular_low', index: ['archive', jidA], apiVersion: 3, syncAction: { archiveChatAction: { archived: false, messageRange: { lastMessageTimestamp: lastTs + 5 } } }, noVersion: true },
    // a REMOVE of the pin
    { type: 'regular_low', index: ['pin_v1', jidB], apiVersion: 5, syncAction: { pinAction: { pinned: false } }, operation: OP.REMOVE },
];
for (const m of ONE) {
    const before = stateOf(m.type);
    const ts = Date.now();
    const { patch, state } = await encodeSyncdPatch({ ...m, syncAction: { timestamp: ts, ...m.syncAction }, operation: m.operation ?? OP.SET }, keyId, before, getKey);
    if (!m.noVersion) patch.version = { version: state.version };
    const bytes = proto.SyncdPatch.encode(patch).finish();
    const got = await baileysAccepts(m.type, before, bytes);
    if (hex(got.state.hash) !== hex(state.hash)) throw new Error('Baileys decodes its own patch to another LTHash');
    out.patches.push({
        name: m.type, patch: hex(bytes), op: m.operation ?? OP.SET, index: m.index, timestamp: ts,
        value: proto.SyncActionValue.toObject(proto.SyncActionValue.fromObject(m.syncAction), { longs: Number }),
        before: { version: before.version, hash: hex(before.hash), map: mapHex(before.indexValueMap) },
        after: { version: state.version, hash: hex(state.hash) },
    });
    states[m.type] = state;
}

// A patch of three mutations (two SETs and a REMOVE of the first), from
// Baileys-built mutations, with its MACs over all of them.
{
    const name = 'regular_high';
    const before = stateOf(name);
    let st = before;
    const muts = [], vmacs = [];
    const parts = [
        { index: ['mute', jidB], apiVersion: 2, syncAction: { muteAction: { muted: true, muteEndTimestamp: -1 } }, operation: OP.SET },
        { index: ['deleteMessageForMe', jidA, '3EB0FFFF', '1', '0'], apiVersion: 3, syncAction: { deleteMessageForMeAction: { deleteMedia: true, messageTimestamp: lastTs } }, operation: OP.SET },
        { index: ['mute', jidB], apiVersion: 2, syncAction: { muteAction: { muted: false } }, operation: OP.REMOVE },
    ];
    for (const p of parts) {
        const r = await encodeSyncdPatch({ type: name, ...p, syncAction: { timestamp: 1733400001000, ...p.syncAction } }, keyId, st, getKey);
        st = r.state;
        muts.push(r.patch.mutations[0]);
        vmacs.push(Buffer.from(r.patch.mutations[0].record.value.blob).subarray(-32));
    }
    const version = before.version + 1;
    const smac = snapshotMac(st.hash, version, name);
    const patch = { version: { version }, mutations: muts, snapshotMac: smac, patchMac: patchMac(smac, vmacs, version, name), keyId: { id: keyIdBuf } };
    const bytes = proto.SyncdPatch.encode(patch).finish();
    const got = await baileysAccepts(name, before, bytes);
    out.multi = {
        name, patch: hex(bytes), n: parts.length, ops: parts.map((p) => p.operation), indexes: parts.map((p) => p.index),
        before: { version: before.version, hash: hex(before.hash), map: mapHex(before.indexValueMap) },
        after: { version, hash: hex(got.state.hash) },
    };
}

// A snapshot of four records (SETs) from a fresh state at version 7.
{
    const name = 'regular';
    let st = newLTHashState();
    const records = [];
    const items = [
        { index: ['archive', jidA], apiVersion: 3, syncAction: { archiveChatAction: { archived: true } } },
        { index: ['pin_v1', jidC], apiVersion: 5, syncAction: { pinAction: { pinned: true } } },
        { index: ['setting_locale'], apiVersion: 3, syncAction: { localeSetting: { locale: 'de_DE' } } },
        { index: ['label_edit', '5'], apiVersion: 3, syncAction: { labelEditAction: { name: 'Kunden', color: 4, deleted: false } } },
    ];
    for (const it of items) {
        const r = await encodeSyncdPatch({ type: name, ...it, syncAction: { timestamp: 1733400002000, ...it.syncAction }, operation: OP.SET }, keyId, st, getKey);
        st = r.state;
        records.push(r.patch.mutations[0].record);
    }
    const version = 7;
    const snap = { version: { version }, records, mac: snapshotMac(st.hash, version, name), keyId: { id: keyIdBuf } };
    const bytes = proto.SyncdSnapshot.encode(snap).finish();
    const logger = mkLogger();
    const dec = await decodeSyncdSnapshot(name, proto.SyncdSnapshot.decode(bytes), getKey, undefined, true, logger);
    if (logger.warns.length || dec.state.version !== version) throw new Error('Baileys refuses our snapshot vector');
    out.snapshot = { name, snapshot: hex(bytes), version, hash: hex(dec.state.hash), indexes: items.map((i) => i.index), n: items.length };
}

console.log(JSON.stringify(out));
