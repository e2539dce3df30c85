#!/usr/bin/env node
// Groups on the fake WhatsApp server (lib/fake_groups.mjs): the w:g2 iqs answer
// as WhatsApp does (results and error codes), every member's companions get the
// <notification type=w:gp2> for each change and must ack it, the control API
// acts as an account, and malformed group iqs are violations. Two accounts each
// pair a companion (Baileys), then raw logins of those devices send the iqs.
// Prints PASS:/FAIL: lines; exits non-zero on failure; bounded by a watchdog.
import { FakeWhatsAppServer } from './lib/fake_server.mjs';
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
    console.log('FAIL: watchdog: suite did not finish within 60 s');
    process.exit(1);
}, 60000);
process.on('unhandledRejection', () => {});

const server = new FakeWhatsAppServer({ version: VERSION, iqTimeoutMs: 1500, closeDelayMs: 20, phone: { phoneNumber: A }, logStream: process.env.WA_DEBUG ? process.stderr : null });
await server.start();
const url = server.url;
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
check(code(r) === '403', 'add by a non-admin → 403', code(r));
r = await ask(rb, { type: 'set', to: gjid }, [{ tag: 'announcement', attrs: {} }]);
check(code(r) === '403', 'announcement by a non-admin → 403', code(r));
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
    check(code(r) === '200' && nb !== 'timeout', `${t}: result and notification`);
}
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'ephemeral', attrs: { expiration: '86400' } }]);
const st = server.groups.state(server.groups.get(gjid));
check(code(r) === '200' && st.announce && st.locked && st.ephemeral === 86400, 'settings: announce, locked, ephemeral stored');
r = await ask(ra, { type: 'get', to: gjid }, [{ tag: 'invite', attrs: {} }]);
const code1 = kid(r, 'invite')?.attrs.code;
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'invite', attrs: {} }]);
const code2 = kid(r, 'invite')?.attrs.code;
check(code1 && code2 && code1 !== code2, 'invite: get a code; set revokes it for a new one');

// ── remove, leave, join ──
seenB = [...rb.nodes];
r = await ask(ra, { type: 'set', to: gjid }, [{ tag: 'remove', attrs: {}, content: [{ tag: 'participant', attrs: { jid: `${B}${S}` } }] }]);
nb = await gp2(rb, 'remove', seenB);
check(code(r) === '200' && nb !== 'timeout', 'remove: the removed member is told too');
r = await ask(rb, { type: 'get', to: gjid }, [{ tag: 'query', attrs: { request: 'interactive' } }]);
check(code(r) === '401', 'query by a removed member → 401', code(r));
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'invite', attrs: { code: code1 } }]);
check(code(r) === '404', 'join with a revoked code → 404', code(r));
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'invite', attrs: { code: code2 } }]);
check(code(r) === '200' && kid(r, 'group')?.attrs.jid === gjid, 'join with the current code');
r = await ask(rb, { type: 'set', to: '@g.us' }, [{ tag: 'leave', attrs: {}, content: [{ tag: 'group', attrs: { id: gjid } }] }]);
check(code(r) === '200' && !kid(kid(r, 'leave'), 'group')?.attrs.error && !server.groups.get(gjid).participants.has(B), 'leave: result, no longer a participant');

// ── control API ──
const ctl = server.groups.route('POST', '/groups/create', { creator: PEER, subject: 'Lid group', participants: [A], addressing: 'lid' });
const na2 = await gp2(ra, 'create', [...ra.nodes].filter((n) => kids(n)[0]?.tag === 'create'));
const lg = server.groups.state(server.groups.get(ctl.jid));
check(ctl.ok && na2 !== 'timeout' && kid(kids(na2)[0], 'group')?.attrs.addressing_mode === 'lid' && lg.participants.every((p) => p.jid.endsWith('@lid')), 'control: create as another account, a LID group (participants by LID)');
const lgNode = kid(kids(na2)[0], 'group');
check(kids(lgNode).filter((p) => p.tag === 'participant').every((p) => p.attrs.phone_number?.endsWith(S)), 'LID group: participants carry phone_number');
let threw = null;
try {
    server.groups.route('POST', `/groups/${ctl.jid}/participants`, { actor: A, action: 'add', participants: [B] });
} catch (e) {
    threw = e;
}
check(threw && /403/.test(threw.message), 'control: a non-admin actor is refused (403)', threw?.message);
check(server.eventsSince(v0, 'violation').length === 0, 'no violation in the well-formed exchanges', JSON.stringify(server.eventsSince(v0, 'violation')));
check(server.eventsSince(v0, 'close').length === 0 && ![...server.conns].some((c) => c.pendingAck.size && [...c.pendingAck.values()].some((a) => a.tag === 'notification' && Date.now() - a.at > 1000)), 'every notification was acked');

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
await refused('garbage: two children', { tag: 'iq', attrs: { id: 'x5', xmlns: 'w:g2', type: 'get', to: ctl.jid }, content: [{ tag: 'query', attrs: { request: 'interactive' } }, { tag: 'query', attrs: { request: 'interactive' } }] }, /2 children/);

ra.close?.();
rb.close?.();
await server.stop?.();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
