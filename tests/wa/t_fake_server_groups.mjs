#!/usr/bin/env node
// Groups on the fake WhatsApp server (lib/fake_groups.mjs): the w:g2 iqs answer
// as WhatsApp does (results and error codes), every member's companions get the
// <notification type=w:gp2> for each change and must ack it, the control API
// acts as an account, and malformed group iqs are violations. Two accounts each
// pair a companion (Baileys), then raw logins of those devices send the iqs.
// Then group messages: three Baileys clients (lib/baileys_peer.mjs, each a new
// companion of its account) and libsignal peers (device 0 of each account) in one
// group: messages every way decrypt, a member added later gets the next message
// (only its devices get the sender key), a removed member gets nothing, a peer's
// skmsg sent before its key is answered by a retry and a resend, and raw clients
// show the strict checks (non-participant sender, <to> a non-member, skmsg to a
// device without the key).
// Prints PASS:/FAIL: lines; exits non-zero on failure; bounded by a watchdog.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FakeWhatsAppServer, startControl } from './lib/fake_server.mjs';
import { memoryAuth, startBaileys } from './lib/baileys_client.mjs';
import { RawClient } from './lib/raw_client.mjs';

const VERSION = '2.3000.1023456789';
const A = '15550004321';
const B = '15550007777';
const PEER = '15550009999';
const S = '@s.whatsapp.net';

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
const watchdog = setTimeout(() => {
    console.log('FAIL: watchdog: suite did not finish within 150 s');
    process.exit(1);
}, 150000);
process.on('unhandledRejection', () => {});

const server = new FakeWhatsAppServer({ version: VERSION, iqTimeoutMs: 1500, closeDelayMs: 20, phone: { phoneNumber: A }, logStream: process.env.WA_DEBUG ? process.stderr : null });
await server.start();
const url = server.url;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r('timeout'), ms))]);
let idn = 0;
const kids = (n) => (Array.isArray(n?.content) ? n.content : []);
const kid = (n, tag) => kids(n).find((c) => c.tag === tag);

async function pair(phone) {
    const auth = memoryAuth();
    let c = startBaileys({ url, auth, version: VERSION });
    const u = await c.next((x) => !!x.qr, 8000);
    await server.scanQr(u.qr, { phone });
    await c.waitClose(5000);
    c = startBaileys({ url, auth, version: VERSION });
    await c.waitOpen(10000);
    await c.end();
    return auth.creds;
}
const credsA = await pair(A);
const credsB = await pair(B);
check(server.state().devices.length === 2, 'setup: a companion of each account is paired');

/** A raw login that acks every notification it gets (as a client must). */
async function login(creds) {
    const rc = await RawClient.connect(url, { creds, version: VERSION, mode: 'login' });
    await rc.next((n) => n.tag === 'success', 5000);
    const seen = new Set();
    const ackLoop = setInterval(() => {
        for (const n of rc.nodes)
            if (n.tag === 'notification' && !seen.has(n)) {
                seen.add(n);
                rc.send({ tag: 'ack', attrs: { id: n.attrs.id, to: n.attrs.from, class: 'notification', type: n.attrs.type, ...(n.attrs.participant ? { participant: n.attrs.participant } : {}) } });
            }
    }, 20);
    rc.closed.then(() => clearInterval(ackLoop));
    return rc;
}
async function ask(rc, attrs, content) {
    const id = `g.${++idn}`;
    rc.send({ tag: 'iq', attrs: { id, xmlns: 'w:g2', ...attrs }, ...(content ? { content } : {}) });
    return within(rc.next((n) => n.tag === 'iq' && n.attrs.id === id, 3000), 3500);
}
const code = (r) => kid(r, 'error')?.attrs?.code ?? (r?.attrs?.type === 'result' ? '200' : String(r));
const gp2 = (rc, tag, since) => within(rc.next((n) => n.tag === 'notification' && n.attrs.type === 'w:gp2' && kids(n)[0]?.tag === tag && !since.includes(n), 3000), 3500);

const ra = await login(credsA);
const rb = await login(credsB);
const v0 = server.seq;

// ── create ──
let r = await ask(ra, { type: 'set', to: '@g.us' }, [{ tag: 'create', attrs: { subject: 'Team', key: 'K1' }, content: [
    { tag: 'participant', attrs: { jid: `${B}${S}` } }, { tag: 'participant', attrs: { jid: `${PEER}${S}` } }, { tag: 'participant', attrs: { jid: `19990000000${S}` } }] }]);
const g = kid(r, 'group');
const gjid = `${g?.attrs?.id}@g.us`;
check(r.attrs?.type === 'result' && r.attrs.from === '@g.us' && /^15550004321-\d+$/.test(g?.attrs?.id ?? ''), 'create: result holds <group id=creator-ts> (no server part)', JSON.stringify(r.attrs));
const parts = kids(g).filter((p) => p.tag === 'participant');
check(parts.find((p) => p.attrs.jid === `${A}${S}`)?.attrs.type === 'superadmin' && parts.find((p) => p.attrs.jid === `${B}${S}`) && !parts.find((p) => p.attrs.jid === `${B}${S}`).attrs.type
    && parts.every((p) => p.attrs.error || /@lid$/.test(p.attrs.lid)), 'create: creator superadmin, members without type, each with its lid');
check(parts.find((p) => p.attrs.jid === `19990000000${S}`)?.attrs.error === '408', 'create: an account not on WhatsApp comes back with error=408');
check(g.attrs.subject === 'Team' && g.attrs.creator === `${A}${S}` && g.attrs.s_o === `${A}${S}` && g.attrs.addressing_mode === 'pn' && Number(g.attrs.creation) > 0, 'create: subject, creator, s_o, creation, addressing_mode');
let nb = await gp2(rb, 'create', []);
check(nb !== 'timeout' && nb.attrs.from === gjid && nb.attrs.participant === `${A}${S}` && kid(kids(nb)[0], 'group')?.attrs.subject === 'Team', 'create: the member\'s companion gets <notification type=w:gp2><create><group>', JSON.stringify(nb?.attrs));
const na = await gp2(ra, 'create', []);
check(na !== 'timeout', 'create: the creator\'s own companion gets the notification too');

// ── query / participating ──
r = await ask(rb, { type: 'get', to: gjid }, [{ tag: 'query', attrs: { request: 'interactive' } }]);
check(r.attrs?.type === 'result' && r.attrs.from === gjid && kid(r, 'group')?.attrs.size === '3', 'query: a member reads the metadata (3 participants)', JSON.stringify(r?.attrs));
r = await ask(ra, { type: 'get', to: '@g.us' }, [{ tag: 'participating', attrs: {}, content: [{ tag: 'participants', attrs: {} }, { tag: 'description', attrs: {} }] }]);
check(kids(kid(r, 'groups')).length === 1 && kids(kid(r, 'groups'))[0].attrs.id === g.attrs.id, 'participating: lists the one group');
r = await ask(ra, { type: 'get', to: '1203630000000000@g.us' }, [{ tag: 'query', attrs: { request: 'interactive' } }]);
check(code(r) === '404', 'query: an unknown group → 404', code(r));

// ── admin-only changes ──
r = await ask(rb, { type: 'set', to: gjid }, [{ tag: 'add', attrs: {}, content: [{ tag: 'participant', attrs: { jid: `15550008888${S}` } }] }]);
check(code(r) === '401', 'add by a non-admin → 401', code(r));
r = await ask(rb, { type: 'set', to: gjid }, [{ tag: 'announcement', attrs: {} }]);
check(code(r) === '401', 'announcement by a non-admin → 401', code(r));
let seenB = [...rb.nodes];
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'add', attrs: {}, content: [{ tag: 'participant', attrs: { jid: `15550008888${S}` } }, { tag: 'participant', attrs: { jid: `${B}${S}` } }] }]);
const addRes = kids(kid(r, 'add'));
check(addRes.length === 2 && !addRes[0].attrs.error && addRes[1].attrs.error === '409', 'add: per participant, 200 and 409 (already in)', JSON.stringify(addRes.map((p) => p.attrs)));
nb = await gp2(rb, 'add', seenB);
check(nb !== 'timeout' && kids(kids(nb)[0])[0]?.attrs.jid === `15550008888${S}`, 'add: members are told with <add><participant>');
seenB = [...rb.nodes];
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'promote', attrs: {}, content: [{ tag: 'participant', attrs: { jid: `${B}${S}` } }] }]);
nb = await gp2(rb, 'promote', seenB);
check(code(r) === '200' && nb !== 'timeout', 'promote: result and <promote> notification');
seenB = [...rb.nodes];
r = await ask(rb, { type: 'set', to: gjid }, [{ tag: 'subject', attrs: {}, content: Buffer.from('Renamed') }]);
nb = await gp2(rb, 'subject', seenB);
check(code(r) === '200' && nb !== 'timeout' && kids(nb)[0].attrs.subject === 'Renamed' && kids(nb)[0].attrs.s_o === `${B}${S}`, 'subject by a new admin: result and <subject subject s_o s_t>');
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'description', attrs: { id: 'D1' }, content: [{ tag: 'body', attrs: {}, content: Buffer.from('About us') }] }]);
const q = await ask(ra, { type: 'get', to: gjid }, [{ tag: 'query', attrs: { request: 'interactive' } }]);
const desc = kid(kid(q, 'group'), 'description');
check(code(r) === '200' && desc?.attrs.id === 'D1' && Buffer.from(kid(desc, 'body').content).toString() === 'About us', 'description: set, then read back with id and body');
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'description', attrs: { id: 'D2', prev: 'WRONG' }, content: [{ tag: 'body', attrs: {}, content: Buffer.from('x') }] }]);
check(code(r) === '409', 'description with a stale prev → 409', code(r));
for (const t of ['announcement', 'locked']) {
    seenB = [...rb.nodes];
    r = await ask(ra, { type: 'set', to: gjid }, [{ tag: t, attrs: {} }]);
    nb = await gp2(rb, t, seenB);
    check(code(r) === '200' && nb !== 'timeout' && (t !== 'announcement' || /^\d+$/.test(kids(nb)[0].attrs.v_id ?? '')), `${t}: result and notification${t === 'announcement' ? ' (with v_id)' : ''}`);
}
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'ephemeral', attrs: { expiration: '86400' } }]);
const st = server.groups.state(server.groups.get(gjid));
check(code(r) === '200' && st.announce && st.locked && st.ephemeral === 86400, 'settings: announce, locked, ephemeral stored');
r = await ask(ra, { type: 'get', to: gjid }, [{ tag: 'invite', attrs: {} }]);
const code1 = kid(r, 'invite')?.attrs.code;
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'invite', attrs: {} }]);
const code2 = kid(r, 'invite')?.attrs.code;
check(code1 && code2 && code1 !== code2, 'invite: get a code; set revokes it for a new one');

// ── group picture (xmlns w:profile:picture, target=group) ──
async function pic(rc, type, target, child) {
    const id = `p.${++idn}`;
    rc.send({ tag: 'iq', attrs: { id, xmlns: 'w:profile:picture', type, to: S, target }, content: [child] });
    return within(rc.next((n) => n.tag === 'iq' && n.attrs.id === id, 3000), 3500);
}
r = await pic(ra, 'get', gjid, { tag: 'picture', attrs: { type: 'preview', query: 'url' } });
check(code(r) === '404', 'picture: none yet → 404', code(r));
seenB = [...rb.nodes];
// The smallest JPEG the server's check reads: SOI, a SOF0 of 48×32, EOI.
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x20, 0x00, 0x30, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]);
r = await pic(ra, 'set', gjid, { tag: 'picture', attrs: { type: 'image' }, content: JPEG });
const picId = kid(r, 'picture')?.attrs.id;
nb = await gp2(rb, 'picture', seenB);
check(code(r) === '200' && picId && nb !== 'timeout', 'picture: an admin sets it (result with id, members told)');
r = await pic(rb, 'get', gjid, { tag: 'picture', attrs: { type: 'image', query: 'url' } });
check(kid(r, 'picture')?.attrs.id === picId && /^https:/.test(kid(r, 'picture')?.attrs.url ?? ''), 'picture: a member reads its url');
check(JSON.stringify(server.groups.state(server.groups.get(gjid)).pictureSize) === '[48,32]', 'picture: the server read the JPEG\'s size');
{
    const id = `p.${++idn}`;
    ra.send({ tag: 'iq', attrs: { id, xmlns: 'w:profile:picture', type: 'set', to: S, target: gjid } });
    r = await within(ra.next((n) => n.tag === 'iq' && n.attrs.id === id, 3000), 3500);
    const gone = await pic(rb, 'get', gjid, { tag: 'picture', attrs: { type: 'image', query: 'url' } });
    check(code(r) === '200' && code(gone) === '404', 'picture: a set without children removes it', [code(r), code(gone)]);
}

// ── remove, leave, join ──
seenB = [...rb.nodes];
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'remove', attrs: {}, content: [{ tag: 'participant', attrs: { jid: `${B}${S}` } }] }]);
nb = await gp2(rb, 'remove', seenB);
check(code(r) === '200' && nb !== 'timeout', 'remove: the removed member is told too');
r = await ask(rb, { type: 'get', to: gjid }, [{ tag: 'query', attrs: { request: 'interactive' } }]);
check(code(r) === '403', 'query by a removed member → 403 (not in group)', code(r));
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'invite', attrs: { code: code1 } }]);
check(code(r) === '404', 'join with a revoked code → 404', code(r));
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'invite', attrs: { code: code2 } }]);
check(code(r) === '200' && kid(r, 'group')?.attrs.jid === gjid, 'join with the current code');
const seenA = [...ra.nodes];
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'leave', attrs: {}, content: [{ tag: 'group', attrs: { id: gjid } }] }]);
const naLeave = await gp2(ra, 'remove', seenA);
check(naLeave !== 'timeout' && naLeave.attrs.participant === `${B}${S}` && kids(kids(naLeave)[0])[0]?.attrs.jid === `${B}${S}`, 'leave: the others are told <remove> by the leaver');
check(code(r) === '200' && !kid(kid(r, 'leave'), 'group')?.attrs.error && !server.groups.get(gjid).participants.has(B), 'leave: result, no longer a participant');

// ── control API ──
const ctl = server.groups.route('POST', '/groups/create', { creator: PEER, subject: 'Lid group', participants: [A], addressing: 'lid' });
const na2 = await gp2(ra, 'create', [...ra.nodes].filter((n) => kids(n)[0]?.tag === 'create'));
const lg = server.groups.state(server.groups.get(ctl.jid));
check(ctl.ok && /^120363\d{12}@g\.us$/.test(ctl.jid) && na2 !== 'timeout' && kid(kids(na2)[0], 'group')?.attrs.addressing_mode === 'lid' && lg.participants.every((p) => p.jid.endsWith('@lid')), 'control: create as another account, a LID group (18-digit id, participants by LID)');
const lgNode = kid(kids(na2)[0], 'group');
check(kids(lgNode).filter((p) => p.tag === 'participant').every((p) => p.attrs.phone_number?.endsWith(S)), 'LID group: participants carry phone_number');
let threw = null;
try {
    server.groups.route('POST', `/groups/${ctl.jid}/participants`, { actor: A, action: 'add', participants: [B] });
} catch (e) {
    threw = e;
}
check(threw && /401/.test(threw.message), 'control: a non-admin actor is refused (401)', threw?.message);
check(server.eventsSince(v0, 'violation').length === 0, 'no violation in the well-formed exchanges', JSON.stringify(server.eventsSince(v0, 'violation')));
check(server.eventsSince(v0, 'close').length === 0 && ![...server.conns].some((c) => c.pendingAck.size && [...c.pendingAck.values()].some((a) => a.tag === 'notification' && Date.now() - a.at > 1000)), 'every notification was acked');

// ── usync's lid protocol in LID-addressed groups: a user asked by LID gets no <lid> (the protocol maps a
// number to its LID; Baileys takes a <lid> beside a LID as that LID's "number" and refreshes sessions) ──
{
    const bLid = `${server.peers.get(B).lid}@lid`;
    const id = `u.${++idn}`;
    ra.send({ tag: 'iq', attrs: { id, xmlns: 'usync', type: 'get', to: S }, content: [{ tag: 'usync', attrs: { sid: id, mode: 'query', context: 'message', index: '0', last: 'true' }, content: [
        { tag: 'query', attrs: {}, content: [{ tag: 'devices', attrs: { version: '2' } }, { tag: 'lid', attrs: {} }] },
        { tag: 'list', attrs: {}, content: [{ tag: 'user', attrs: { jid: bLid } }, { tag: 'user', attrs: { jid: `${B}${S}` } }] }] }] });
    const u = await within(ra.next((n) => n.tag === 'iq' && n.attrs.id === id, 3000), 3500);
    const us = kids(kid(kid(u, 'usync'), 'list'));
    const byLid = us.find((x) => x.attrs.jid === bLid);
    const byPn = us.find((x) => x.attrs.jid === `${B}${S}`);
    check(byLid && kid(byLid, 'devices') && !kid(byLid, 'lid') && kid(byPn, 'lid')?.attrs.val === bLid,
        'usync devices+lid: a user asked by LID has its devices and no <lid>; asked by number, <lid val=its LID>', JSON.stringify(us.map((x) => [x.attrs.jid, kids(x).map((c) => c.tag)])));
}

// ── acks of group receipts: several devices' receipts for one message all come from the group and
// differ by participant (and type); each ack must name the one it acks, in any order ──
{
    const rc = await login(credsA);
    const sc = [...server.conns].find((c) => c.device && c.device.user === A && c.state === 'logged-in' && c.open && c.pendingAck);
    const rid = '3EB0AC4A11CE000000000001';
    const from = ctl.jid;
    const receipt = (participant, type) => ({ tag: 'receipt', attrs: { from, participant, id: rid, t: '1', ...(type ? { type } : {}) } });
    const pB = `${B}:1${S}`, pP = `${PEER}${S}`;
    const s0 = server.seq;
    sc.sendAcked(receipt(pB));
    sc.sendAcked(receipt(pP));
    sc.sendAcked(receipt(pB, 'read'));
    await sleep(100);
    const ack = (participant, type) => rc.send({ tag: 'ack', attrs: { id: rid, to: from, class: 'receipt', participant, ...(type ? { type } : {}) } });
    ack(pB, 'read');
    ack(pP);
    ack(pB);
    await sleep(200);
    check(server.eventsSince(s0, 'violation').length === 0 && server.eventsSince(s0, 'ack').filter((e) => e.id === rid).length === 3,
        'three receipts for one group message (two participants, a delivery and a read): each ack, in any order, is taken', JSON.stringify(server.eventsSince(s0, 'violation')));
    sc.sendAcked(receipt(pB));
    await sleep(50);
    ack(pP);
    const closed = await within(rc.closed, 3000);
    const v = server.eventsSince(s0, 'violation')[0];
    check(closed !== 'timeout' && /ack participant=/.test(v?.detail ?? ''), 'an ack naming a participant no awaited receipt has is a violation', v?.detail);
}

// ── strictness ──
async function refused(name, node, re) {
    const rc = await login(credsA);
    const s0 = server.seq;
    rc.send(node);
    const closed = await within(rc.closed, 3000);
    const v = server.eventsSince(s0, 'violation')[0];
    check(closed !== 'timeout' && re.test(v?.detail ?? ''), name, v?.detail);
}
await refused('garbage: <create> without subject', { tag: 'iq', attrs: { id: 'x1', xmlns: 'w:g2', type: 'set', to: '@g.us' }, content: [{ tag: 'create', attrs: {} }] }, /without subject/);
await refused('garbage: <add> with a non-participant child', { tag: 'iq', attrs: { id: 'x2', xmlns: 'w:g2', type: 'set', to: ctl.jid }, content: [{ tag: 'add', attrs: {}, content: [{ tag: 'user', attrs: { jid: `${B}${S}` } }] }] }, /participant jid/);
await refused('garbage: w:g2 iq to the server JID', { tag: 'iq', attrs: { id: 'x3', xmlns: 'w:g2', type: 'get', to: S }, content: [{ tag: 'query', attrs: { request: 'interactive' } }] }, /w:g2 to=/);
await refused('garbage: unknown child', { tag: 'iq', attrs: { id: 'x4', xmlns: 'w:g2', type: 'set', to: ctl.jid }, content: [{ tag: 'frobnicate', attrs: {} }] }, /frobnicate/);
await refused('garbage: a picture that is no JPEG', { tag: 'iq', attrs: { id: 'x6', xmlns: 'w:profile:picture', type: 'set', to: S, target: ctl.jid }, content: [{ tag: 'picture', attrs: { type: 'image' }, content: Buffer.alloc(200, 9) }] }, /no JPEG/);
await refused('garbage: a picture over 640 px', { tag: 'iq', attrs: { id: 'x7', xmlns: 'w:profile:picture', type: 'set', to: S, target: ctl.jid }, content: [{ tag: 'picture', attrs: { type: 'image' }, content: Buffer.from([...JPEG.subarray(0, 7), 0x02, 0x80, 0x02, 0x81, ...JPEG.subarray(11)]) }] }, /more than 640/);
await refused('garbage: two children', { tag: 'iq', attrs: { id: 'x5', xmlns: 'w:g2', type: 'get', to: ctl.jid }, content: [{ tag: 'query', attrs: { request: 'interactive' } }, { tag: 'query', attrs: { request: 'interactive' } }] }, /2 children/);

ra.close?.();
rb.close?.();

// ── group messages: Baileys clients and peers ──
const here = path.dirname(fileURLToPath(import.meta.url));
const ctlSrv = await startControl(server);
const control = `http://127.0.0.1:${ctlSrv.address().port}`;
const C = '15550006666';
const PEER2 = '15550008888';
const kids_ = [];
function baileys(phone) {
    const p = spawn(process.execPath, [path.join(here, 'lib/baileys_peer.mjs'), '--url', url, '--version', VERSION, '--control', control, '--phone', phone], { stdio: ['pipe', 'pipe', 'inherit'] });
    kids_.push(p);
    p.lines = [];
    p.waiters = [];
    readline.createInterface({ input: p.stdout }).on('line', (l) => {
        let o;
        try {
            o = JSON.parse(l);
        } catch {
            return; // libsignal's own console lines
        }
        p.lines.push(o);
        for (const w of [...p.waiters]) if (w.f(o)) {
            p.waiters.splice(p.waiters.indexOf(w), 1);
            w.r(o);
        }
    });
    p.next = (f, ms = 8000) => new Promise((r) => {
        const o = p.lines.find(f);
        if (o) return r(o);
        p.waiters.push({ f, r });
        setTimeout(() => r(null), ms);
    });
    p.cmd = (o) => p.stdin.write(JSON.stringify(o) + '\n');
    return p;
}
const [ba, bb, bc] = [baileys(A), baileys(B), baileys(C)];
const ready = await Promise.all([ba, bb, bc].map((p) => p.next((o) => o.ready || o.error, 30000)));
check(ready.every((o) => o?.ready), 'three Baileys clients linked (one per account)', JSON.stringify(ready));
const m0 = server.seq;
ba.cmd({ op: 'createGroup', subject: 'Chat', participants: [`${B}${S}`, `${PEER}${S}`] });
const made = await ba.next((o) => o.group || o.error);
const chat = made?.group?.id;
check(/@g\.us$/.test(chat ?? '') && made.group.participants.length === 3, 'Baileys groupCreate: a group of three', JSON.stringify(made));
const upB = await bb.next((o) => o.groupUpsert?.id === chat);
check(upB != null, 'the other Baileys member sees the new group (w:gp2 create)');
const recvAt = (p, text) => p.next((o) => o.recv?.text === text && o.recv.from === chat, 8000);
const peerGot = async (phone, id) => {
    for (let i = 0; i < 80; i++) {
        const r = server.peers.get(phone).received.get(id);
        if (r && (r.count || r.error)) return r;
        await sleep(50);
    }
    return null;
};
ba.cmd({ op: 'send', to: chat, text: 'one from A' });
const s1 = (await ba.next((o) => o.sent || o.error))?.sent;
const r1 = await recvAt(bb, 'one from A');
const p1 = await peerGot(PEER, s1);
check(r1?.recv.participant === `${A}${S}`, 'Baileys → group: the other Baileys client decrypts it', JSON.stringify(r1));
check(p1?.text === 'one from A' && p1.skdm && p1.sender === `${A}:${ready[0].jid.split(':')[1].split('@')[0]}`, 'Baileys → group: the peer gets the SKDM pairwise and decrypts the skmsg', JSON.stringify(p1));
const gm1 = server.eventsSince(m0, 'group.message').find((e) => e.id === s1);
await sleep(300);
const rcpt1 = server.eventsSince(m0, 'send').find((e) => e.node.tag === 'receipt' && e.node.attrs.id === s1 && e.node.attrs.from === chat);
check(rcpt1 && rcpt1.node.attrs.participant === `${B}:${ready[1].jid.split(':')[1].split('@')[0]}${S}` && server.eventsSince(m0, 'ack').some((e) => e.id === s1 && e.class === 'receipt'),
    'a member\'s receipt reaches the sender as <receipt from=group participant=device>, acked', JSON.stringify(rcpt1?.node?.attrs));
check(gm1 && gm1.phash === server.groups.serverPhash(server.groups.get(chat)), 'the ack carries the server\'s participant hash');
let res = await fetch(`${control}/peer/send`, { method: 'POST', body: JSON.stringify({ from: PEER, group: chat, text: 'hi from peer' }) }).then((r) => r.json());
const [ra1, rb1] = await Promise.all([recvAt(ba, 'hi from peer'), recvAt(bb, 'hi from peer')]);
check(res.ok && ra1?.recv.participant === `${PEER}${S}` && rb1 != null, 'peer → group: both Baileys clients decrypt (SKDM pairwise + skmsg)', JSON.stringify(res));
bb.cmd({ op: 'send', to: chat, text: 'two from B' });
const s2 = (await bb.next((o) => o.sent || o.error))?.sent;
const [ra2, p2] = await Promise.all([recvAt(ba, 'two from B'), peerGot(PEER, s2)]);
check(ra2 != null && p2?.text === 'two from B', 'Baileys B → group: Baileys A and the peer decrypt');

// a member added later gets the next message; only its devices get the sender key
ba.cmd({ op: 'groupParticipantsUpdate', jid: chat, participants: [`${C}${S}`, `${PEER2}${S}`], action: 'add' });
const add = await ba.next((o) => o.participants || o.error);
check(add?.participants?.every((x) => x.status === '200'), 'Baileys groupParticipantsUpdate add → 200 each', JSON.stringify(add));
const upC = await bc.next((o) => o.groupParticipants?.id === chat || o.groupUpsert?.id === chat);
check(upC != null, 'the added Baileys client is told (w:gp2 add)');
await sleep(300);
ba.cmd({ op: 'send', to: chat, text: 'three from A' });
const s3 = (await ba.next((o) => o.sent === undefined ? false : o.sent !== s1))?.sent;
const [rc3, rb3, p3] = await Promise.all([recvAt(bc, 'three from A'), recvAt(bb, 'three from A'), peerGot(PEER2, s3)]);
check(rc3 != null && rb3 != null && p3?.text === 'three from A', 'after add: the new members (Baileys C, peer two) and the old ones decrypt');
const d3 = server.groups.deliveries.filter((d) => d.id === s3);
const withKey = d3.filter((d) => d.pairwise).map((d) => d.to.split(':')[0]);
check(d3.length > 0 && withKey.length > 0 && withKey.every((u) => u === C || u === PEER2), 'after add: pairwise copies (SKDM) only for the new members\' devices', JSON.stringify(d3.map((d) => [d.to, d.pairwise])));

// a removed member gets nothing afterwards
ba.cmd({ op: 'groupParticipantsUpdate', jid: chat, participants: [`${B}${S}`], action: 'remove' });
const rm = await ba.next((o) => o.participants && o !== add);
const rmB = await bb.next((o) => o.groupParticipants?.action === 'remove');
check(rm?.participants?.[0]?.status === '200' && rmB != null, 'remove: 200 and the removed client is told');
ba.cmd({ op: 'send', to: chat, text: 'four from A' });
const s4 = (await ba.next((o) => o.sent && ![s1, s3].includes(o.sent)))?.sent;
const rc4 = await recvAt(bc, 'four from A');
const rb4 = await recvAt(bb, 'four from A');
const d4 = server.groups.deliveries.filter((d) => d.id === s4);
check(rc4 != null && rb4 == null && d4.length > 0 && d4.every((d) => !d.to.startsWith(`${B}:`)), 'after remove: the removed member\'s devices get nothing', JSON.stringify(d4.map((d) => d.to)));
bb.cmd({ op: 'groupMetadata', jid: chat });
const meta = await bb.next((o) => (o.group || o.error) && !o.groupUpsert && o.group?.id !== undefined || o.error);
check(meta?.error && meta.code === 403, 'Baileys groupMetadata by a removed member → error 403', JSON.stringify(meta)?.slice(0, 200));

// an skmsg before its SKDM: the Baileys client asks again (retry receipt), the peer resends with the key
const r0 = server.seq;
res = await fetch(`${control}/peer/send`, { method: 'POST', body: JSON.stringify({ from: PEER2, group: chat, text: 'no key yet', skipSkdm: true }) }).then((r) => r.json());
const rc5 = await recvAt(bc, 'no key yet');
check(res.ok && server.eventsSince(r0, 'group.receipt').some((e) => e.type === 'retry') && server.eventsSince(r0, 'group.peer.resend').length > 0 && rc5 != null,
    'skipSkdm: retry receipt, resend with the SKDM, then the Baileys client decrypts', JSON.stringify({ res, retry: server.eventsSince(r0, 'group.receipt').length }));
check(server.eventsSince(m0, 'violation').length === 0, 'no violation from Baileys\' group traffic', JSON.stringify(server.eventsSince(m0, 'violation')));

// ── strict checks on group messages (raw clients) ──
const skmsgBytes = (keyId) => {
    const v = [];
    let k = keyId;
    do {
        v.push((k & 0x7f) | (k > 0x7f ? 0x80 : 0));
        k = Math.floor(k / 128);
    } while (k > 0);
    return Buffer.concat([Buffer.from([0x33, 0x08, ...v, 0x10, 0x00, 0x1a, 0x10]), Buffer.alloc(16, 7), Buffer.alloc(64, 1)]);
};
const gmsg = (to, content) => ({ tag: 'message', attrs: { to, type: 'text', id: '3EB0' + Math.random().toString(16).slice(2, 14).toUpperCase().padEnd(12, '0') }, content });
const skEnc = (keyId) => ({ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: skmsgBytes(keyId) });
async function refusedMsg(name, creds, node, re) {
    const rc = await login(creds);
    const s0 = server.seq;
    rc.send(node);
    const closed = await within(rc.closed, 3000);
    const v = server.eventsSince(s0, 'violation')[0];
    check(closed !== 'timeout' && re.test(v?.detail ?? ''), name, v?.detail);
}
await refusedMsg('group message from a non-participant (removed) is a violation', credsB, gmsg(chat, [skEnc(77)]), /not a participant/);
await refusedMsg('<to> a device of a non-member is a violation', credsA, gmsg(chat, [{ tag: 'participants', attrs: {}, content: [
    { tag: 'to', attrs: { jid: `${B}${S}` }, content: [{ tag: 'enc', attrs: { v: '2', type: 'msg' }, content: Buffer.alloc(40, 1) }] }] }, skEnc(78)]), /not a device of a participant/);
await refusedMsg('skmsg to devices that never got the sender key is a violation', credsA, gmsg(chat, [skEnc(79)]), /never got/);
await refusedMsg('group message with two skmsg is a violation', credsA, gmsg(chat, [skEnc(80), skEnc(80)]), /exactly one <enc type=skmsg/);

for (const p of [ba, bb, bc]) p.cmd({ op: 'quit' });
await sleep(300);
for (const p of kids_) p.kill();
ctlSrv.close();
await server.stop?.();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
