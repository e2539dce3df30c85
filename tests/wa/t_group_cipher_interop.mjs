#!/usr/bin/env node
// Sender keys between wapi (build/tests/tools/wa_group_tool: libsignal-protocol-c's
// group cipher over wapi's Signal store) and Baileys' own group cipher: a key
// distribution message wapi makes is taken by Baileys, which decrypts wapi's
// skmsgs (in and out of order, a repeat refused); and the other way round, with
// Baileys' keys and messages read by wapi. Bytes on both sides are what goes in
// <enc type=skmsg> and in senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { proto } from 'baileys';
import { GroupCipher, GroupSessionBuilder, SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord } from 'baileys/lib/Signal/Group/index.js';
import { BufferJSON, unpadRandomMax16, writeRandomPadMax16 } from 'baileys/lib/Utils/generics.js';

const TOOL = process.env.WA_GROUP_TOOL || 'build/tests/tools/wa_group_tool';
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'wapi-gc-'));
const tool = (args) => {
    const r = spawnSync(TOOL, args);
    return r.status === 0 ? JSON.parse(r.stdout.toString()) : { status: r.status, err: r.stderr.toString() };
};

// A Baileys sender-key store in memory, serialized as its socket keeps one.
const store = () => {
    const m = new Map();
    return {
        async loadSenderKey(n) { const v = m.get(n.toString()); return v ? new SenderKeyRecord(JSON.parse(v, BufferJSON.reviver)) : new SenderKeyRecord(); },
        async storeSenderKey(n, r) { m.set(n.toString(), JSON.stringify(r.serialize(), BufferJSON.replacer)); },
    };
};
const GROUP = '120363012345678901@g.us';

// ── wapi → Baileys ──
{
    const texts = ['first', 'second ✓', 'third'];
    const out = tool(['send', tmp(), GROUP, '15550001', '3', ...texts]);
    check('wapi makes a key and three skmsgs', out.skdm && out.skmsg?.length === 3, JSON.stringify(out));
    const st = store();
    const name = new SenderKeyName(GROUP, { id: '15550001', deviceId: 3 });
    let ok = true;
    try {
        await new GroupSessionBuilder(st).process(name, new SenderKeyDistributionMessage(null, null, null, null, Buffer.from(out.skdm, 'hex')));
    } catch (e) { ok = false; check('Baileys takes wapi\'s key distribution message', false, String(e)); }
    if (ok) check('Baileys takes wapi\'s key distribution message', true);
    const open = async (hex) => {
        const plain = await new GroupCipher(st, name).decrypt(Buffer.from(hex, 'hex'));
        return proto.Message.decode(unpadRandomMax16(plain)).conversation;
    };
    const got = [];
    for (const i of [0, 2, 1]) {
        try { got[i] = await open(out.skmsg[i]); } catch (e) { got[i] = `error: ${e.message}`; }
    }
    check('Baileys decrypts each of wapi\'s skmsgs, the third before the second', JSON.stringify(got) === JSON.stringify(texts), JSON.stringify(got));
    let again = null;
    try { again = await open(out.skmsg[0]); } catch (e) { again = `error: ${e.message}`; }
    check('the first again is refused (a repeat)', typeof again === 'string' && again.startsWith('error'), again);
    const bad = Buffer.from(out.skmsg[2], 'hex');
    bad[bad.length - 1] ^= 1;
    let badr = null;
    try { badr = await open(bad.toString('hex')); } catch (e) { badr = `error: ${e.message}`; }
    check('a bit flipped in the signature is refused', typeof badr === 'string' && badr.startsWith('error'), badr);
}

// ── Baileys → wapi ──
{
    const st = store();
    const name = new SenderKeyName(GROUP, { id: '15550002', deviceId: 0 });
    const skdm = await new GroupSessionBuilder(st).create(name);
    const texts = ['from baileys', 'twice', 'end'];
    const cts = [];
    for (const t of texts)
        cts.push(Buffer.from(await new GroupCipher(st, name).encrypt(writeRandomPadMax16(proto.Message.encode({ conversation: t }).finish()))).toString('hex'));
    const r = tool(['recv', tmp(), GROUP, '15550002', '0', Buffer.from(skdm.serialize()).toString('hex'), cts[0], cts[2], cts[1], cts[1]]);
    check('wapi takes Baileys\' key and decrypts its skmsgs, the third before the second',
        r.texts && r.texts[0] === 'from baileys' && r.texts[1] === 'end' && r.texts[2] === 'twice', JSON.stringify(r));
    check('a repeat is refused as a duplicate', r.texts && typeof r.texts[3] === 'object' && r.texts[3].error === -1001, JSON.stringify(r.texts?.[3]));
    const wrong = tool(['recv', tmp(), GROUP, '15550002', '0', Buffer.from(skdm.serialize()).toString('hex').slice(0, 40), cts[0]]);
    check('a truncated key distribution message is refused', wrong.status === 2, JSON.stringify(wrong));
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
