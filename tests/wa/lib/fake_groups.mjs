// Test-only: groups for the fake WhatsApp server (lib/fake_server.mjs). Holds
// each group's state, answers <iq xmlns=w:g2> (and the group profile picture
// iq) as WhatsApp does, and tells every member's connected companions of each
// change with <notification type=w:gp2>. The control API (startControl) reaches
// it through route(): /groups/... endpoints act as a given account.
//
// Group state: {jid, subject, subjectOwner, subjectTime, desc, descId, creator,
// creation, participants: Map(phone -> role: superadmin|admin|member),
// addressing: pn|lid, announce, locked, ephemeral (seconds, 0 = off), invite,
// picture: {id, bytes} | null}. Members are accounts (phone numbers) the server
// knows (server.peers); a device of a member is any of its devices.
//
// Answers (as whatsmeow's and Baileys' group parsers read them):
//   <group id=<user part> subject s_t s_o creation creator addressing_mode size>
//     <participant jid type=admin|superadmin [lid=|phone_number=]/>…
//     <description id><body>…</body></description> <announcement/> <locked/>
//     <ephemeral expiration/></group>
//   In a lid group participants are listed by LID with phone_number; in pn groups with lid.
// Errors: <iq type=error from=… id><error code text/></iq>: 400 bad-request (a
// malformed iq is also a violation), 403 forbidden (not a participant: whatsmeow
// reads it as "not in group"), 401 not-authorized (not an admin, as WhatsApp answers
// a member's admin-only change), 404 item-not-found (no such group), 406
// not-acceptable (e.g. an empty subject), 409 conflict (e.g. joining twice).
import crypto from 'node:crypto';
import libsignal from 'libsignal';
import { proto } from 'baileys';
import { GroupCipher, GroupSessionBuilder, SenderKeyName, SenderKeyRecord, SenderKeyDistributionMessage, SenderKeyMessage } from 'baileys/lib/Signal/Group/index.js';
import { pad, unpad } from './fake_peer.mjs';

// Every member's peer checks the signature of the same skmsg under the same
// signing key; the pure-JS curve makes that ~10 ms each, so a group of
// hundreds spends seconds per message. A signature that verified once
// verifies again: successes are remembered (bounded), failures still throw.
const verified = new Set();
const verifyOnce = SenderKeyMessage.prototype.verifySignature;
SenderKeyMessage.prototype.verifySignature = function (signatureKey) {
    const k = Buffer.from(signatureKey).toString('base64') + '|' + Buffer.from(this.serialize()).toString('base64');
    if (verified.has(k)) return;
    verifyOnce.call(this, signatureKey);
    if (verified.size >= 100000) verified.clear();
    verified.add(k);
};

const nowSec = () => Math.floor(Date.now() / 1000);
const kids = (n) => (Array.isArray(n?.content) ? n.content : []);
const kid = (n, tag) => kids(n).find((c) => c.tag === tag);
const text = (n) => (n == null ? null : typeof n.content === 'string' ? n.content : n.content instanceof Uint8Array ? Buffer.from(n.content).toString('utf8') : null);
const G = '@g.us';

/** [width, height] of a baseline or progressive JPEG (its SOF marker), or null. */
export function jpegSize(b) {
    if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
    for (let i = 2; i + 9 < b.length;) {
        if (b[i] !== 0xff) return null;
        const m = b[i + 1], len = (b[i + 2] << 8) | b[i + 3];
        if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return [(b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]];
        i += 2 + len;
    }
    return null;
}

export class GroupError extends Error {
    constructor(code, text, status = 409) {
        super(`${code} ${text}`);
        this.code = code;
        this.text = text;
        this.status = status;
    }
}
const gerr = (code, t) => {
    throw new GroupError(code, t);
};
const ERR_TEXT = { 400: 'bad-request', 401: 'not-authorized', 403: 'forbidden', 404: 'item-not-found', 406: 'not-acceptable', 409: 'conflict' };
const fail = (code) => gerr(code, ERR_TEXT[code]);

export class FakeGroups {
    constructor(server, { bad }) {
        this.server = server;
        this.bad = bad; // throws the server's Violation
        this.groups = new Map(); // jid -> state
        this.seqNo = 0;
        this.noticeSeq = 0;
    }

    // ── helpers ──
    account(jid) {
        const r = this.server.resolveJid(jid);
        if (!r || r.unknown) return null;
        return r.user;
    }

    peerOf(phone) {
        return this.server.peers.get(phone);
    }

    get(jid) {
        const g = this.groups.get(String(jid).includes('@') ? jid : `${jid}${G}`);
        if (!g) fail(404);
        return g;
    }

    isAdmin(g, phone) {
        const r = g.participants.get(phone);
        return r === 'admin' || r === 'superadmin';
    }

    /** The member's JID as this group addresses it. */
    memberJid(g, phone) {
        const p = this.peerOf(phone);
        return g.addressing === 'lid' ? `${p.lid}@lid` : `${phone}@s.whatsapp.net`;
    }

    participantNode(g, phone, role) {
        const p = this.peerOf(phone);
        const attrs = { jid: this.memberJid(g, phone) };
        if (role !== 'member') attrs.type = role;
        if (g.addressing === 'lid') attrs.phone_number = `${phone}@s.whatsapp.net`;
        else attrs.lid = `${p.lid}@lid`;
        return { tag: 'participant', attrs };
    }

    groupNode(g, { participants = true, description = true } = {}) {
        const content = [];
        if (participants) for (const [phone, role] of g.participants) content.push(this.participantNode(g, phone, role));
        if (description && g.desc != null) content.push({ tag: 'description', attrs: { id: g.descId }, content: [{ tag: 'body', attrs: {}, content: Buffer.from(g.desc, 'utf8') }] });
        if (g.announce) content.push({ tag: 'announcement', attrs: {} });
        if (g.locked) content.push({ tag: 'locked', attrs: {} });
        if (g.ephemeral) content.push({ tag: 'ephemeral', attrs: { expiration: String(g.ephemeral) } });
        return {
            tag: 'group',
            attrs: {
                id: g.jid.split('@')[0],
                subject: g.subject,
                s_t: String(g.subjectTime),
                s_o: this.memberJid(g, g.subjectOwner),
                creation: String(g.creation),
                creator: this.memberJid(g, g.creator),
                ...(g.addressing === 'lid' ? { creator_pn: `${g.creator}@s.whatsapp.net` } : {}),
                addressing_mode: g.addressing,
                size: String(g.participants.size)
            },
            content
        };
    }

    /** Every logged-in companion connection of the group's members (or of `phones`). */
    connsOf(phones) {
        const set = new Set(phones);
        return [...this.server.conns].filter((c) => c.device && set.has(c.device.user) && c.state === 'logged-in' && c.open);
    }

    /** <notification type=w:gp2> about g to every member (and `also`, e.g. someone just removed). */
    notify(g, actor, child, also = []) {
        const phones = new Set([...g.participants.keys(), ...also]);
        const conns = this.connsOf(phones);
        const t = String(nowSec());
        // As WhatsApp does, a notice waits for each companion's ack: one offline (or that did not ack
        // before its connection went) gets it again at its next login, under the same id.
        const node = { tag: 'notification', attrs: { from: g.jid, type: 'w:gp2', id: `GP${(++this.noticeSeq).toString(16).toUpperCase().padStart(8, '0')}`,
            participant: this.memberJid(g, actor), t, ...(g.addressing === 'lid' ? { addressing_mode: 'lid' } : {}) }, content: [child] };
        for (const d of this.server.devices.values()) {
            if (d.removed || !phones.has(d.user)) continue;
            const key = `${d.user}:${d.device}`;
            if (!this.server.inbox.has(key)) this.server.inbox.set(key, new Map());
            this.server.inbox.get(key).set(node.attrs.id, node);
        }
        for (const c of conns) c.sendAcked(node);
        this.server.log(0, 'group.notify', { group: g.jid, actor, change: child.tag, conns: conns.map((c) => c.id) });
    }

    /** <participant jid> with the other address form (lid=, or phone_number= in a LID group), as in notifications. */
    participantList(g, phones) {
        return phones.map((p) => this.participantNode(g, p, 'member'));
    }

    // ── operations (as account `actor`); each returns what the iq answer holds ──
    create(actor, subject, members, { addressing = 'pn', key = null } = {}) {
        if (typeof subject !== 'string' || !subject.trim() || subject.length > 100) fail(406);
        if (!['pn', 'lid'].includes(addressing)) fail(400);
        const ts = nowSec();
        // Newer (LID-addressed) groups have 18-digit ids, older ones creator-creation.
        let jid;
        do {
            jid = addressing === 'lid' ? `120363${String(crypto.randomInt(1e6)).padStart(6, '0')}${String(crypto.randomInt(1e6)).padStart(6, '0')}${G}`
                : `${actor}-${ts + this.seqNo++}${G}`;
        } while (this.groups.has(jid));
        const g = {
            jid, subject, subjectOwner: actor, subjectTime: ts, desc: null, descId: null, creator: actor, creation: ts,
            participants: new Map([[actor, 'superadmin']]), addressing, announce: false, locked: false, ephemeral: 0,
            invite: crypto.randomBytes(16).toString('base64url').slice(0, 22), picture: null, key
        };
        const results = [];
        for (const m of members) {
            const phone = this.account(m);
            if (!phone) results.push({ jid: m, error: '408' });
            else if (g.participants.has(phone)) results.push({ jid: m, error: '409' });
            else g.participants.set(phone, 'member');
        }
        this.groups.set(jid, g);
        this.server.log(0, 'group.create', { group: jid, actor, subject, members: [...g.participants.keys()], refused: results });
        this.notify(g, actor, { tag: 'create', attrs: { reason: 'create', key: key ?? '' }, content: [this.groupNode(g)] });
        return { g, results };
    }

    participants(g, actor, action, jids) {
        if (!g.participants.has(actor)) fail(403);
        if (!this.isAdmin(g, actor)) fail(401);
        const done = [];
        const out = jids.map((j) => {
            const phone = this.account(j);
            let error = null;
            if (!phone) error = action === 'add' ? '408' : '404';
            else if (action === 'add') {
                if (g.participants.has(phone)) error = '409';
                else g.participants.set(phone, 'member');
            } else if (!g.participants.has(phone)) error = '404';
            else if (g.participants.get(phone) === 'superadmin' && action !== 'promote') error = '406';
            else if (action === 'remove') g.participants.delete(phone);
            else if (action === 'promote') g.participants.set(phone, g.participants.get(phone) === 'superadmin' ? 'superadmin' : 'admin');
            else if (action === 'demote') g.participants.set(phone, 'member');
            if (!error) done.push(phone);
            return { tag: 'participant', attrs: { jid: j, ...(error ? { error } : phone ? { type: g.participants.get(phone) ?? 'member' } : {}) } };
        });
        this.server.log(0, 'group.participants', { group: g.jid, actor, action, done, refused: out.filter((p) => p.attrs.error).map((p) => p.attrs) });
        if (done.length) this.notify(g, actor, { tag: action, attrs: action === 'remove' ? { reason: 'remove' } : {}, content: this.participantList(g, done) }, action === 'remove' ? done : []);
        return out;
    }

    needAdmin(g, actor, unlessOpen = false) {
        if (!g.participants.has(actor)) fail(403);
        if (!(unlessOpen && !g.locked) && !this.isAdmin(g, actor)) fail(401);
    }

    subject(g, actor, subject) {
        this.needAdmin(g, actor, true);
        if (typeof subject !== 'string' || !subject.trim() || subject.length > 100) fail(406);
        g.subject = subject;
        g.subjectOwner = actor;
        g.subjectTime = nowSec();
        this.notify(g, actor, { tag: 'subject', attrs: { subject, s_o: this.memberJid(g, actor), s_t: String(g.subjectTime) } });
    }

    description(g, actor, { body, id, prev, del }) {
        this.needAdmin(g, actor, true);
        if ((prev ?? null) !== (g.descId ?? null) && prev != null) fail(409);
        if (del) {
            g.desc = null;
            g.descId = null;
            // The notification marks a deletion with a <delete/> child (whatsmeow reads it so).
            return this.notify(g, actor, { tag: 'description', attrs: { id: id ?? crypto.randomBytes(8).toString('hex').toUpperCase() }, content: [{ tag: 'delete', attrs: {} }] });
        }
        if (typeof body !== 'string' || body.length > 2048) fail(406);
        g.desc = body;
        g.descId = id;
        this.notify(g, actor, { tag: 'description', attrs: { id }, content: [{ tag: 'body', attrs: {}, content: Buffer.from(body, 'utf8') }] });
    }

    setting(g, actor, tag, expiration = null) {
        this.needAdmin(g, actor, tag === 'ephemeral' || tag === 'not_ephemeral');
        if (tag === 'announcement' || tag === 'not_announcement') g.announce = tag === 'announcement';
        else if (tag === 'locked' || tag === 'unlocked') g.locked = tag === 'locked';
        else if (tag === 'ephemeral') g.ephemeral = expiration;
        else if (tag === 'not_ephemeral') g.ephemeral = 0;
        // announcement/not_announcement carry a version id (v_id), which whatsmeow requires.
        const attrs = tag === 'ephemeral' ? { expiration: String(expiration) } : /announcement$/.test(tag) ? { v_id: String(++this.seqNo) } : {};
        this.notify(g, actor, { tag, attrs });
    }

    revokeInvite(g, actor) {
        this.needAdmin(g, actor);
        g.invite = crypto.randomBytes(16).toString('base64url').slice(0, 22);
        this.notify(g, actor, { tag: 'invite', attrs: { code: g.invite } });
        return g.invite;
    }

    join(actor, code) {
        const g = [...this.groups.values()].find((x) => x.invite === code);
        if (!g) fail(404);
        if (g.participants.has(actor)) fail(409);
        g.participants.set(actor, 'member');
        this.notify(g, actor, { tag: 'add', attrs: { reason: 'invite' }, content: this.participantList(g, [actor]) });
        return g;
    }

    leave(g, actor) {
        if (!g.participants.has(actor)) fail(403);
        g.participants.delete(actor);
        // The last superadmin leaving hands the group to the longest-standing admin or member.
        if (![...g.participants.values()].includes('superadmin') && g.participants.size) {
            const next = [...g.participants.entries()].find(([, r]) => r === 'admin') ?? [...g.participants.entries()][0];
            g.participants.set(next[0], 'superadmin');
        }
        // A leave is told as <remove> by the leaver (whatsmeow knows no <leave> change; Baileys reads both).
        this.notify(g, actor, { tag: 'remove', attrs: {}, content: this.participantList(g, [actor]) }, [actor]);
    }

    // ── <iq xmlns=w:g2> from connection c ──
    onIq(c, n) {
        const { type, to } = n.attrs;
        const actor = c.device.user;
        const ch = kids(n);
        if (ch.length !== 1) this.bad(`<iq xmlns=w:g2> with ${ch.length} children`);
        const q = ch[0];
        const answer = (content) => c.send({ tag: 'iq', attrs: { from: to, type: 'result', id: n.attrs.id }, ...(content ? { content } : {}) });
        const toGroup = typeof to === 'string' && to.endsWith(G) && to !== G;
        if (to !== G && !toGroup) this.bad(`<iq xmlns=w:g2 to=${to}>: want @g.us or a group JID`);
        const partJids = (node, what) => {
            const ps = kids(node);
            if (!ps.length || ps.some((p) => p.tag !== 'participant' || typeof p.attrs.jid !== 'string' || !/@(s\.whatsapp\.net|lid)$/.test(p.attrs.jid)))
                this.bad(`${what}: children must be <participant jid=user@s.whatsapp.net|lid>`);
            return ps.map((p) => p.attrs.jid);
        };
        try {
            const key = `${type} ${toGroup ? 'group' : 'g.us'} ${q.tag}`;
            this.server.log(c.id, 'group.iq', { op: key, to, actor });
            switch (key) {
            case 'get g.us participating': {
                const mine = [...this.groups.values()].filter((g) => g.participants.has(actor));
                return answer([{ tag: 'groups', attrs: {}, content: mine.map((g) => this.groupNode(g, { participants: !!kid(q, 'participants'), description: !!kid(q, 'description') })) }]);
            }
            case 'set g.us create': {
                if (typeof q.attrs.subject !== 'string') this.bad('<create> without subject');
                const members = kids(q).length ? partJids(q, '<create>') : [];
                const { g, results } = this.create(actor, q.attrs.subject, members, { key: q.attrs.key ?? null, addressing: kid(q, 'addressing_mode') ? 'lid' : 'pn' });
                const node = this.groupNode(g);
                for (const r of results) node.content.push({ tag: 'participant', attrs: { jid: r.jid, error: r.error } });
                return answer([node]);
            }
            case 'set g.us invite': {
                if (typeof q.attrs.code !== 'string' || !q.attrs.code) this.bad('<invite> join without code');
                const g = this.join(actor, q.attrs.code);
                return answer([{ tag: 'group', attrs: { jid: g.jid } }]);
            }
            case 'set g.us leave': {
                const gs = kids(q);
                if (!gs.length || gs.some((x) => x.tag !== 'group' || typeof x.attrs.id !== 'string')) this.bad('<leave>: children must be <group id>');
                const out = gs.map((x) => {
                    const jid = x.attrs.id.includes('@') ? x.attrs.id : `${x.attrs.id}${G}`;
                    const g = this.groups.get(jid);
                    if (!g) return { tag: 'group', attrs: { id: jid, error: '404' } };
                    if (!g.participants.has(actor)) return { tag: 'group', attrs: { id: jid, error: '403' } };
                    this.leave(g, actor);
                    return { tag: 'group', attrs: { id: jid } };
                });
                return answer([{ tag: 'leave', attrs: {}, content: out }]);
            }
            default:
                break;
            }
            if (!toGroup) this.bad(`<iq xmlns=w:g2 type=${type} to=@g.us> with <${q.tag}>`);
            const g = this.get(to);
            const member = g.participants.has(actor);
            switch (key) {
            case 'get group query':
                if (q.attrs.request !== 'interactive') this.bad('<query> without request=interactive');
                if (!member) fail(403);
                return answer([this.groupNode(g)]);
            case 'set group add':
            case 'set group remove':
            case 'set group promote':
            case 'set group demote': {
                const out = this.participants(g, actor, q.tag, partJids(q, `<${q.tag}>`));
                return answer([{ tag: q.tag, attrs: {}, content: out }]);
            }
            case 'set group subject': {
                const s = text(q);
                if (s == null) this.bad('<subject> without text');
                this.subject(g, actor, s);
                return answer();
            }
            case 'set group description': {
                g.descPrevSeen = q.attrs.prev ?? null; // what the client named as the description it replaces
                if (q.attrs.delete === 'true') {
                    this.description(g, actor, { del: true, prev: q.attrs.prev, id: q.attrs.id });
                    return answer();
                }
                const body = text(kid(q, 'body'));
                if (typeof q.attrs.id !== 'string' || body == null) this.bad('<description> wants id and <body> (or delete=true)');
                this.description(g, actor, { body, id: q.attrs.id, prev: q.attrs.prev });
                return answer();
            }
            case 'set group announcement':
            case 'set group not_announcement':
            case 'set group locked':
            case 'set group unlocked':
            case 'set group not_ephemeral':
                this.setting(g, actor, q.tag);
                return answer();
            case 'set group ephemeral': {
                const e = Number(q.attrs.expiration);
                if (!Number.isInteger(e) || e <= 0) this.bad('<ephemeral> without a positive expiration');
                this.setting(g, actor, 'ephemeral', e);
                return answer();
            }
            case 'get group invite':
                this.needAdmin(g, actor);
                return answer([{ tag: 'invite', attrs: { code: g.invite } }]);
            case 'set group invite':
                return answer([{ tag: 'invite', attrs: { code: this.revokeInvite(g, actor) } }]);
            default:
                this.bad(`<iq xmlns=w:g2 type=${type}> with <${q.tag}>`);
            }
        } catch (e) {
            if (!(e instanceof GroupError)) throw e;
            this.server.log(c.id, 'group.error', { to, actor, child: q.tag, code: e.code });
            c.send({ tag: 'iq', attrs: { from: to, type: 'error', id: n.attrs.id }, content: [{ tag: 'error', attrs: { code: String(e.code), text: e.text } }] });
        }
    }

    /** <iq xmlns=w:profile:picture target=group>: get (url) or set (bytes), members only; set by admins (or anyone if unlocked). */
    onPictureIq(c, n) {
        const actor = c.device.user;
        const q = kids(n)[0];
        // A set without children removes the picture (as the apps do); otherwise exactly one <picture>.
        const removal = n.attrs.type === 'set' && kids(n).length === 0;
        if (!removal && (kids(n).length !== 1 || q.tag !== 'picture')) this.bad('<iq xmlns=w:profile:picture> wants one <picture>');
        try {
            const g = this.get(n.attrs.target);
            if (!g.participants.has(actor)) fail(403);
            if (removal) {
                this.needAdmin(g, actor, true);
                g.picture = null;
                this.notify(g, actor, { tag: 'picture', attrs: {}, content: [{ tag: 'delete', attrs: {} }] });
                return c.send({ tag: 'iq', attrs: { from: n.attrs.target, type: 'result', id: n.attrs.id } });
            }
            if (n.attrs.type === 'get') {
                if (!['image', 'preview'].includes(q.attrs.type)) this.bad(`<picture type=${q.attrs.type}>`);
                if (!g.picture) return c.send({ tag: 'iq', attrs: { from: n.attrs.target, type: 'error', id: n.attrs.id }, content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }] });
                return c.send({ tag: 'iq', attrs: { from: n.attrs.target, type: 'result', id: n.attrs.id }, content: [{ tag: 'picture', attrs: { id: g.picture.id, type: q.attrs.type, url: `https://pps.example.invalid/${g.picture.id}.jpg`, direct_path: `/v/${g.picture.id}.jpg` } }] });
            }
            if (q.attrs.type !== 'image' || !(q.content instanceof Uint8Array) || q.content.length === 0) this.bad('<picture type=image> set without bytes');
            // WhatsApp takes a JPEG (its apps send 640×640 at most); anything else is the client's bug.
            const size = jpegSize(q.content);
            if (!size) this.bad('<picture type=image> whose bytes are no JPEG');
            if (size[0] > 640 || size[1] > 640) this.bad(`<picture> of ${size[0]}×${size[1]}: more than 640 px a side`);
            this.needAdmin(g, actor, true);
            g.picture = { id: String(nowSec()) + String(++this.seqNo), bytes: q.content.length, width: size[0], height: size[1] };
            this.notify(g, actor, { tag: 'picture', attrs: { id: g.picture.id } });
            return c.send({ tag: 'iq', attrs: { from: n.attrs.target, type: 'result', id: n.attrs.id }, content: [{ tag: 'picture', attrs: { id: g.picture.id } }] });
        } catch (e) {
            if (!(e instanceof GroupError)) throw e;
            c.send({ tag: 'iq', attrs: { from: n.attrs.target, type: 'error', id: n.attrs.id }, content: [{ tag: 'error', attrs: { code: String(e.code), text: e.text } }] });
        }
    }

    state(g) {
        return {
            jid: g.jid, subject: g.subject, subjectOwner: g.subjectOwner, subjectTime: g.subjectTime, description: g.desc, descriptionId: g.descId,
            creator: g.creator, creation: g.creation, addressing: g.addressing, announce: g.announce, locked: g.locked, ephemeral: g.ephemeral,
            invite: g.invite, picture: g.picture?.id ?? null, pictureSize: g.picture ? [g.picture.width, g.picture.height] : null,
            descriptionPrevSeen: g.descPrevSeen ?? null,
            participants: [...g.participants].map(([phone, role]) => ({ phone, jid: this.memberJid(g, phone), lid: `${this.peerOf(phone).lid}@lid`, role }))
        };
    }

    // ── control API: /groups… (called by startControl for unmatched paths) ──
    route(method, pathname, b) {
        if (!pathname.startsWith('/groups')) return undefined;
        const need = (cond, msg) => {
            if (!cond) throw Object.assign(new Error(msg), { status: 400 });
        };
        const acct = (p) => {
            const s = String(p ?? '').replace(/@.*$/, '');
            need(this.server.peers.has(s), `unknown account ${p}`);
            return s;
        };
        const wrap = (fn) => {
            try {
                return fn();
            } catch (e) {
                if (e instanceof GroupError) throw Object.assign(new Error(`group: ${e.code} ${e.text}`), { status: 409, code: e.code });
                throw e;
            }
        };
        if (method === 'GET' && pathname === '/groups/deliveries') return { deliveries: this.deliveries ?? [] };
        if (method === 'GET' && pathname === '/groups') return { groups: [...this.groups.values()].map((g) => this.state(g)) };
        if (method === 'POST' && pathname === '/groups/create')
            return wrap(() => {
                need(Array.isArray(b.participants ?? []), 'participants must be a list');
                const { g, results } = this.create(acct(b.creator), b.subject, (b.participants ?? []).map((p) => (String(p).includes('@') ? p : `${p}@s.whatsapp.net`)), { addressing: b.addressing ?? 'pn' });
                return { ok: true, jid: g.jid, refused: results, group: this.state(g) };
            });
        const m = /^\/groups\/([^/]+@g\.us)(\/[a-z]+)?$/.exec(decodeURIComponent(pathname));
        if (!m) return undefined;
        const [, jid, sub] = m;
        return wrap(() => {
            const g = this.get(jid);
            if (method === 'GET' && !sub) return this.state(g);
            if (method === 'GET' && sub === '/deliveries') return { deliveries: (this.deliveries ?? []).filter((d) => d.group === g.jid) };
            if (method !== 'POST') return undefined;
            const actor = acct(b.actor);
            switch (sub) {
            case '/participants': {
                need(['add', 'remove', 'promote', 'demote'].includes(b.action), 'action must be add|remove|promote|demote');
                need(Array.isArray(b.participants) && b.participants.length, 'participants must be a non-empty list');
                const out = this.participants(g, actor, b.action, b.participants.map((p) => (String(p).includes('@') ? p : `${p}@s.whatsapp.net`)));
                return { ok: true, results: out.map((p) => ({ jid: p.attrs.jid, status: p.attrs.error ?? '200' })) };
            }
            case '/subject':
                this.subject(g, actor, b.subject);
                return { ok: true };
            case '/description':
                this.description(g, actor, b.description == null ? { del: true } : { body: b.description, id: crypto.randomBytes(8).toString('hex').toUpperCase() });
                return { ok: true };
            case '/setting':
                need(['announcement', 'not_announcement', 'locked', 'unlocked', 'ephemeral', 'not_ephemeral'].includes(b.setting), 'setting must be announcement|not_announcement|locked|unlocked|ephemeral|not_ephemeral');
                this.setting(g, actor, b.setting, b.setting === 'ephemeral' ? Number(b.expiration ?? 604800) : null);
                return { ok: true };
            case '/leave':
                this.leave(g, actor);
                return { ok: true };
            case '/invite':
                return { ok: true, code: this.revokeInvite(g, actor) };
            default:
                return undefined;
            }
        });
    }
}

// ── group messages (sender keys) ─────────────────────────────────────────────
// A companion sends <message to=group type id phash?> with <participants><to jid=device>
// <enc type=pkmsg|msg v=2>… (pairwise copies, carrying the sender key distribution)
// and one <enc type=skmsg v=2>. The server cannot read pairwise copies, so "device D
// holds sender S's key" means: D got a pairwise copy from S in this group under the
// skmsg's key id (read from the skmsg's clear header). An skmsg to a device without
// one is a violation, as is a <to> for a device that is not a member's (or our own).
// Peers (device 0 of each account) are real members: they decrypt with Baileys'
// group cipher and send with it.

const { ProtocolAddress } = libsignal;

/** The key id of a serialized SenderKeyMessage (version byte, protobuf {1: id, 2: iteration, 3: ciphertext}, 64-byte signature). */
export function skmsgKeyId(bytes) {
    const b = Buffer.from(bytes);
    if (b.length < 1 + 64 + 2 || (b[0] >> 4) !== 3) return null;
    let i = 1;
    const end = b.length - 64;
    while (i < end) {
        const key = b[i++];
        if (key === 0x08) {
            let v = 0;
            let shift = 0;
            while (i < end) {
                const x = b[i++];
                v += (x & 0x7f) * 2 ** shift;
                shift += 7;
                if (!(x & 0x80)) return v;
            }
            return null;
        }
        return null;
    }
    return null;
}

/** The participant-list hash: "2:" + unpadded base64 of the first 6 bytes of SHA-256 over the sorted device JIDs (long form). */
export function participantHash(jids) {
    const h = crypto.createHash('sha256').update([...jids].sort().join('')).digest();
    return `2:${h.subarray(0, 6).toString('base64')}`;
}

/** A peer's sender-key store (kept on the FakePeer). */
function senderKeys(peer) {
    if (!peer.senderKeys) {
        const m = new Map();
        peer.senderKeys = m;
        peer.senderKeyStore = {
            loadSenderKey: async (name) => (m.has(name.toString()) ? new SenderKeyRecord(m.get(name.toString())) : new SenderKeyRecord()),
            storeSenderKey: async (name, rec) => m.set(name.toString(), rec.serialize())
        };
    }
    return peer.senderKeyStore;
}

Object.assign(FakeGroups.prototype, {
    /** Devices of a member account: device 0 (the peer) and its paired companions, as {user, dev, key}. */
    devicesOfAccount(phone) {
        const out = [{ user: phone, dev: 0, key: `${phone}:0` }];
        for (const d of this.server.devices.values()) if (d.user === phone && !d.removed) out.push({ user: phone, dev: d.device, key: `${phone}:${d.device}` });
        return out;
    },

    deviceJid(g, user, dev) {
        const base = g.addressing === 'lid' ? this.peerOf(user).lid : user;
        return `${base}${dev ? `:${dev}` : ''}@${g.addressing === 'lid' ? 'lid' : 's.whatsapp.net'}`;
    },

    /** The device JID in its long form (user.agent:device@server), as the participant-list hash takes it. */
    longDeviceJid(g, user, dev) {
        const base = g.addressing === 'lid' ? this.peerOf(user).lid : user;
        return `${base}.0:${dev}@${g.addressing === 'lid' ? 'lid' : 's.whatsapp.net'}`;
    },

    serverPhash(g) {
        return participantHash([...g.participants.keys()].flatMap((p) => this.devicesOfAccount(p).map((d) => this.longDeviceJid(g, d.user, d.dev))));
    },

    /** Holders of a sender key: Map("group|user:dev|keyId" -> Set(device key)). */
    holders(g, sender, keyId) {
        this.skHolders ??= new Map();
        const k = `${g.jid}|${sender}|${keyId}`;
        if (!this.skHolders.has(k)) this.skHolders.set(k, new Set());
        return this.skHolders.get(k);
    },

    record(rec) {
        (this.deliveries ??= []).push({ ...rec, at: Date.now() });
    },

    /** Writes a group stanza to a companion device (queued until acked, like 1:1 messages). */
    deliverToCompanion(user, dev, node) {
        const d = this.server.devices.get(`${user}:${dev}`);
        if (!d) return false;
        const key = `${user}:${dev}`;
        if (!this.server.inbox.has(key)) this.server.inbox.set(key, new Map());
        this.server.inbox.get(key).set(node.attrs.id, node);
        const c = [...this.server.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
        if (c) c.sendAcked(node);
        return !!c;
    },

    /** A peer (device 0 of `phone`) receives a group message: pairwise copy (SKDM) first, then the skmsg. */
    async peerReceive(phone, g, { id, senderUser, senderDev, pairwise, skmsg, via }) {
        const peer = this.peerOf(phone);
        const store = senderKeys(peer);
        const name = new SenderKeyName(g.jid, new ProtocolAddress(senderUser, senderDev));
        const rec = { id, group: g.jid, sender: `${senderUser}:${senderDev}`, count: 0, text: null, peer: phone, via };
        try {
            if (pairwise) {
                const m = await peer.decrypt(senderUser, senderDev, pairwise.type, pairwise.body);
                const sk = m.senderKeyDistributionMessage;
                if (sk?.axolotlSenderKeyDistributionMessage?.length) {
                    if (sk.groupId !== g.jid) throw new Error(`SKDM for group ${sk.groupId}, want ${g.jid}`);
                    await new GroupSessionBuilder(store).process(name, new SenderKeyDistributionMessage(null, null, null, null, Buffer.from(sk.axolotlSenderKeyDistributionMessage)));
                    rec.skdm = true;
                }
                const t = m.conversation ?? m.extendedTextMessage?.text;
                if (t != null) rec.text = t;
            }
            if (skmsg) {
                const plain = await new GroupCipher(store, name).decrypt(Buffer.from(skmsg));
                const m = proto.Message.decode(unpad(Buffer.from(plain)));
                rec.text = m.conversation ?? m.extendedTextMessage?.text ?? rec.text;
                rec.count = 1;
            }
            peer.received.set(id, { ...(peer.received.get(id) ?? {}), ...rec });
            this.server.log(0, 'group.peer.recv', rec);
        } catch (err) {
            rec.error = String(err?.message || err);
            peer.received.set(id, { ...(peer.received.get(id) ?? {}), ...rec });
            this.server.log(0, 'group.peer.fail', rec);
        }
    },

    /** <message to=group> from companion connection c. */
    onMessage(c, n) {
        const { id, to, type } = n.attrs;
        const bad = this.bad;
        const me = c.device;
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type', 'phash', 'addressing_mode', 'edit'].includes(k));
        if (extra.length) bad(`<message to=group> with unexpected attributes ${extra.join(',')}`);
        if (typeof id !== 'string' || !/^[0-9A-F]{16,64}$/.test(id)) bad(`<message id=${id}>: want upper-case hex`);
        if (!['text', 'media', 'reaction', 'poll'].includes(type)) bad(`<message type=${type}>`);
        const g = this.groups.get(to);
        if (!g) bad(`<message to=${to}>: no such group`);
        if (!g.participants.has(me.user)) bad(`<message to=${to}> from ${me.user}, not a participant`);
        const tags = kids(n).map((x) => x.tag);
        if (!tags.every((t) => ['participants', 'enc', 'device-identity', 'reporting', 'meta'].includes(t))) bad(`<message to=group> children ${tags.join(',')}`);
        const sk = kids(n).filter((x) => x.tag === 'enc');
        if (sk.length !== 1 || sk[0].attrs.type !== 'skmsg' || sk[0].attrs.v !== '2' || !(sk[0].content instanceof Uint8Array)) bad('<message to=group> wants exactly one <enc type=skmsg v=2> with bytes');
        const keyId = skmsgKeyId(sk[0].content);
        if (keyId == null) bad('<enc type=skmsg> is not a SenderKeyMessage');
        const senderKey = `${me.user}:${me.device}`;
        const holders = this.holders(g, senderKey, keyId);
        const pairwise = new Map();
        const seen = new Set();
        for (const t of kids(kid(n, 'participants'))) {
            if (t.tag !== 'to' || typeof t.attrs.jid !== 'string') bad('<participants> must hold <to jid=…>');
            if (seen.has(t.attrs.jid)) bad(`<to jid=${t.attrs.jid}> twice`);
            seen.add(t.attrs.jid);
            const r = this.server.resolveJid(t.attrs.jid);
            if (!r || r.unknown) bad(`<to jid=${t.attrs.jid}>: unknown`);
            if (r.user === me.user && r.dev === me.device) bad('<to> the sending device itself');
            if (!g.participants.has(r.user) && r.user !== me.user) bad(`<to jid=${t.attrs.jid}>: not a device of a participant of ${g.jid}`);
            if (!this.devicesOfAccount(r.user).some((d) => d.dev === r.dev)) bad(`<to jid=${t.attrs.jid}>: no such device`);
            const e = kids(t)[0];
            if (kids(t).length !== 1 || e.tag !== 'enc' || e.attrs.v !== '2' || !['pkmsg', 'msg'].includes(e.attrs.type) || !(e.content instanceof Uint8Array))
                bad(`<to jid=${t.attrs.jid}> must hold one <enc type=pkmsg|msg v=2> with bytes`);
            pairwise.set(`${r.user}:${r.dev}`, { type: e.attrs.type, body: e.content });
        }
        const anyPk = [...pairwise.values()].some((e) => e.type === 'pkmsg');
        const di = kid(n, 'device-identity');
        if (anyPk !== (di != null)) bad(anyPk ? 'a pkmsg without <device-identity>' : '<device-identity> without any pkmsg');
        // Everyone who will get this skmsg must hold the key by now (this message's copies count).
        const recipients = [...g.participants.keys()].flatMap((p) => this.devicesOfAccount(p)).filter((d) => d.key !== senderKey);
        for (const k of pairwise.keys()) holders.add(k);
        const lacking = recipients.filter((d) => !holders.has(d.key));
        if (lacking.length) bad(`skmsg to ${lacking.map((d) => d.key).join(',')} which never got ${senderKey}'s sender key ${keyId} in ${g.jid}`);
        const phash = this.serverPhash(g);
        c.send({ tag: 'ack', attrs: { id, class: 'message', from: to, t: String(nowSec()), phash } });
        this.server.sentBy.set(id, { user: me.user, device: me.device, group: g.jid });
        this.server.log(c.id, 'group.message', { id, group: g.jid, sender: senderKey, keyId, pairwise: [...pairwise.keys()], phash, clientPhash: n.attrs.phash ?? null, recipients: recipients.map((d) => d.key) });
        const participant = this.deviceJid(g, me.user, me.device);
        for (const d of recipients) {
            const pw = pairwise.get(d.key);
            this.record({ id, group: g.jid, sender: senderKey, to: d.key, pairwise: pw?.type ?? null, skmsg: true, keyId });
            if (d.dev === 0) {
                this.peerReceive(d.user, g, { id, senderUser: me.user, senderDev: me.device, pairwise: pw, skmsg: sk[0].content, via: 'companion' });
                continue;
            }
            const content = [];
            if (pw) content.push({ tag: 'enc', attrs: { v: '2', type: pw.type }, content: pw.body });
            content.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: sk[0].content });
            if (pw?.type === 'pkmsg' && di) content.push(di);
            const online = this.deliverToCompanion(d.user, d.dev, { tag: 'message', attrs: { from: g.jid, participant, id, t: String(nowSec()), type,
                ...(g.addressing === 'lid' ? { addressing_mode: 'lid', participant_pn: `${me.user}:${me.device}@s.whatsapp.net` } : {}), notify: me.pushName || 'wapi' }, content });
            this.server.log(c.id, 'message.relay', { id, to: d.key, group: g.jid, online });
        }
    },

    /** A peer (device 0 of `from`) sends text to the group: SKDM pairwise to each device lacking it, then one skmsg. */
    async peerSend(b) {
        const phone = String(b.from ?? this.server.peer.phone);
        const peer = this.peerOf(phone);
        if (!peer) throw Object.assign(new Error(`no peer ${b.from}`), { status: 400 });
        const g = this.groups.get(b.group);
        if (!g.participants.has(phone)) throw Object.assign(new Error(`${phone} is not a participant of ${g.jid}`), { status: 409 });
        const id = b.id || '3EB0' + crypto.randomBytes(9).toString('hex').toUpperCase();
        const store = senderKeys(peer);
        const name = new SenderKeyName(g.jid, new ProtocolAddress(phone, 0));
        const skdm = await new GroupSessionBuilder(store).create(name);
        const keyId = skdm.getId();
        const message = { conversation: b.text ?? 'hello group' };
        let skmsg = Buffer.from(await new GroupCipher(store, name).encrypt(pad(Buffer.from(proto.Message.encode(proto.Message.fromObject(message)).finish()))));
        // corrupt: 'always' damages the skmsg of every delivery to a companion (retries included), so no retry
        // mends it; the server keeps the message for our phone's placeholder answers.
        const corruptAlways = b.corrupt === 'always', corruptP = typeof b.corrupt === 'number' ? b.corrupt : null;
        this.server.plain.set(id, { message, chat: g.jid, participant: peer.jid, ts: nowSec(), pushName: peer.name, from: phone, corruptAlways, corruptP, node: null });
        const damage = () => corruptAlways || (corruptP != null && Math.random() < corruptP);
        const damaged = () => damage() ? Buffer.concat([skmsg.subarray(0, 1), crypto.randomBytes(skmsg.length - 1)]) : skmsg;
        const holders = this.holders(g, `${phone}:0`, keyId);
        const recipients = [...g.participants.keys()].flatMap((p) => this.devicesOfAccount(p)).filter((d) => d.key !== `${phone}:0`);
        const skdmMsg = { senderKeyDistributionMessage: { groupId: g.jid, axolotlSenderKeyDistributionMessage: skdm.serialize() } };
        const out = [];
        (this.peerSent ??= new Map()).set(id, { group: g.jid, from: phone, text: message.conversation, corruptAlways, corruptP });
        for (const d of recipients) {
            const give = !holders.has(d.key) && !b.skipSkdm;
            if (give) holders.add(d.key);
            this.record({ id, group: g.jid, sender: `${phone}:0`, to: d.key, pairwise: give ? 'skdm' : null, skmsg: true, keyId, held: holders.has(d.key) });
            if (!holders.has(d.key)) this.server.log(0, 'group.skmsg-without-key', { id, group: g.jid, sender: `${phone}:0`, to: d.key });
            if (d.dev === 0) {
                // Peer to peer stays inside the server: the SKDM is handed over, the skmsg decrypted.
                const other = this.peerOf(d.user);
                if (give) await new GroupSessionBuilder(senderKeys(other)).process(name, new SenderKeyDistributionMessage(null, null, null, null, skdm.serialize()));
                await this.peerReceive(d.user, g, { id, senderUser: phone, senderDev: 0, pairwise: null, skmsg, via: 'peer' });
                out.push(d.key);
                continue;
            }
            const node = await this.peerGroupNode(peer, g, d, id, give ? skdmMsg : null, damaged());
            const online = this.deliverToCompanion(d.user, d.dev, node);
            (peer.sentStanzas ??= new Map()).set(id, { key: d.key, node });
            this.server.log(0, 'peer.sent', { id, to: d.key, group: g.jid, skdm: give, online });
            out.push(d.key);
        }
        return { ok: true, id, devices: out, keyId };
    },

    async peerGroupNode(peer, g, d, id, skdmMsg, skmsg, count = null) {
        const content = [];
        if (skdmMsg) {
            const dev = this.server.devices.get(d.key);
            let bundle = null;
            if (!peer.hasSession(d.user, d.dev)) {
                if (!dev || dev.prekeys.size === 0) throw new Error(`no prekeys for ${d.key}`);
                const pid = Math.min(...dev.prekeys.keys());
                const pv = dev.prekeys.get(pid);
                dev.prekeys.delete(pid);
                dev.usedPrekeys.set(pid, pv);
                bundle = { regId: dev.regId, identity: dev.identityPub, skeyId: dev.skeyId, skey: dev.skeyVal, skeySig: dev.skeySig, prekeyId: pid, prekey: pv };
            }
            const enc = await peer.encrypt(d.user, d.dev, skdmMsg, bundle);
            content.push({ tag: 'enc', attrs: { v: '2', type: enc.type, ...(count ? { count: String(count) } : {}) }, content: enc.body });
        }
        content.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg', ...(count ? { count: String(count) } : {}) }, content: skmsg });
        const participant = this.deviceJid(g, peer.phone, 0);
        return { tag: 'message', attrs: { from: g.jid, participant, id, t: String(nowSec()), type: 'text', notify: peer.name,
            ...(g.addressing === 'lid' ? { addressing_mode: 'lid', participant_pn: peer.jid } : {}) }, content };
    },

    /** A companion's receipt for a group message: to the sending companion (with participant), or,
     *  for a peer's message, type=retry makes the peer resend: SKDM pairwise again plus a fresh skmsg. */
    async onReceipt(c, n) {
        const { id, type } = n.attrs;
        const g = this.groups.get(n.attrs.to);
        if (!g) return;
        const me = c.device;
        const ps = this.peerSent?.get(id);
        if (ps && type === 'retry') {
            const peer = this.peerOf(ps.from);
            const d = { user: me.user, dev: me.device, key: `${me.user}:${me.device}` };
            peer.store.sessions.delete(new ProtocolAddress(me.user, me.device).toString());
            const store = senderKeys(peer);
            const name = new SenderKeyName(g.jid, new ProtocolAddress(ps.from, 0));
            const skdm = await new GroupSessionBuilder(store).create(name);
            let skmsg = Buffer.from(await new GroupCipher(store, name).encrypt(pad(Buffer.from(proto.Message.encode(proto.Message.fromObject({ conversation: ps.text })).finish()))));
            if (ps.corruptAlways || (ps.corruptP != null && Math.random() < ps.corruptP)) skmsg = Buffer.concat([skmsg.subarray(0, 1), crypto.randomBytes(skmsg.length - 1)]);
            this.holders(g, `${ps.from}:0`, skdm.getId()).add(d.key);
            const node = await this.peerGroupNode(peer, g, d, id, { senderKeyDistributionMessage: { groupId: g.jid, axolotlSenderKeyDistributionMessage: skdm.serialize() } }, skmsg, Number(kid(n, 'retry')?.attrs?.count ?? 1));
            this.deliverToCompanion(d.user, d.dev, node);
            this.record({ id, group: g.jid, sender: `${ps.from}:0`, to: d.key, pairwise: 'skdm', skmsg: true, keyId: skdm.getId(), retry: true });
            this.server.log(c.id, 'group.peer.resend', { id, group: g.jid, to: d.key, count: Number(kid(n, 'retry')?.attrs?.count ?? 1), corrupt: !!ps.corruptAlways });
            return;
        }
        const from = this.server.sentBy.get(id);
        if (!from || from.group !== g.jid) return;
        const sc = [...this.server.conns].find((x) => x.device && x.device.user === from.user && x.device.device === from.device && x.state === 'logged-in' && x.open);
        if (!sc) return;
        sc.sendAcked({ tag: 'receipt', attrs: { from: g.jid, participant: this.deviceJid(g, me.user, me.device), id, t: String(nowSec()), ...(type ? { type } : {}) }, ...(type === 'retry' ? { content: n.content } : {}) });
        this.server.log(c.id, 'receipt.relay', { id, type: type ?? null, to: `${from.user}:${from.device}`, group: g.jid });
    }
});
