#!/usr/bin/env node
// Test-only: a fake WhatsApp server (WebSocket, Noise XX with its own test PKI,
// binary nodes) and, through lib/fake_phone.mjs, the primary phone that links
// companions. It checks what a client sends as strictly as we believe WhatsApp
// does and logs every decoded stanza, so suites can assert on it. Built on
// Baileys' exported pieces (proto, binary codec), libsignal's curve (a real
// XEdDSA verifier) and lib/noise_server.mjs (the handshake).
//
// ── As a library ─────────────────────────────────────────────────────────────
//   const srv = new FakeWhatsAppServer({ version: '2.3000.N', qrFirstMs, qrNextMs, phone: {...} })
//   const { url, port } = await srv.start()        // ws://127.0.0.1:PORT/ws/chat
//   srv.rootPublicKey                                // 32 bytes: configure the client with it
//   await srv.scanQr(qrText)                         // the phone scans; resolves when paired
//   await srv.enterPairingCode('ABCD-EFGH')          // the user types the code on the phone
//   srv.events / srv.waitFor(pred) / srv.eventsSince(seq)
//   controls: drop, streamError, failure, failNextLogin, garbage, lowPrekeys,
//             removeDevice, setConfig — see the methods below.
//
// ── Standalone ───────────────────────────────────────────────────────────────
//   node tests/wa/lib/fake_server.mjs [options]
//     --host H              listen address (default 127.0.0.1; loopback only)
//     --port P              WebSocket port (default 0 = random)
//     --control-port C      HTTP control port (default 0 = random)
//     --version V           accepted WhatsApp web version 2.3000.N (others get <failure reason=405>)
//     --qr-first-ms MS      lifetime of the first QR ref (default 60000)
//     --qr-next-ms MS       lifetime of each later ref (default 20000)
//     --qr-refs N           refs per <pair-device> (default 6)
//     --phone DIGITS        the fake account's phone number (default 15550001234)
//     --lid DIGITS          its LID user (default random)
//     --platform NAME       <platform name> in pair-success (default android)
//     --biz NAME            adds <biz name=NAME> to pair-success
//     --state FILE          keep PKI, phone identity and paired devices in FILE across runs
//     --pki-defect D        serve a broken chain under the same root (see makeChain)
//     --media-ca DIR        run the media hosts too, under the test CA in DIR (made if missing)
//     --print-root-key      print the root public key (hex) as the first stdout line
//     --log                 print every event as a JSON line on stderr
//   When listening it prints one JSON line on stdout:
//     {"ready":true,"url":"ws://127.0.0.1:P/ws/chat","port":P,"control":"http://127.0.0.1:C",
//      "rootKey":"<hex>","version":"2.3000.N","phone":"<digits>"}
//   and runs until SIGTERM/SIGINT or POST /shutdown.
//
// ── Control API (HTTP, JSON bodies and answers, loopback only) ───────────────
//   GET  /state                       config, connections, current QR refs, devices
//   GET  /events?since=S&kind=K&wait=MS
//                                     events with seq > S (optionally only kind K); with
//                                     wait, blocks up to MS until one exists.
//                                     → {events:[...], next:S'}
//   GET  /qr                          → {conn, index, ref, refs, validUntil} of the newest
//                                     registering connection (404 if none)
//   POST /phone/scan   {qr, timeoutMs?, phone?}  the phone (or the phone of account `phone`,
//                                     made on first use) scans this QR text; answers when
//                                     pairing ended: {ok:true, jid, lid, device} or
//                                     {ok:false, error}
//   POST /phone/code   {code, timeoutMs?}    the user types this pairing code on the phone
//   POST /phone/tamper {what}         next pair-success made wrong on purpose:
//                                     hmac | account-signature | account-key
//   POST /drop         {conn?, how?}  how = terminate (TCP reset, default) | close (WS close)
//   POST /stream-error {kind, conn?}  kind = 515 | 503 | device_removed | replaced
//   POST /failure      {reason, conn?, attrs?}   <failure reason=…> now (e.g. 402, 405, 409)
//   POST /fail-next-login {reason, attrs?}       answer the next login with <failure>
//   POST /garbage      {kind, conn?}  kind = garbage | truncated | bad-mac | bad-node | oversize
//   POST /prekeys-low  {count, conn?} drop server prekeys to count and send
//                                     <notification type=encrypt><count value=count/>
//   POST /device/remove {jid}         remove a paired device (device_removed if connected)
//   POST /config       {version?, qrFirstMs?, qrNextMs?, qrRefs?, silent?, pkiDefect?, peerAutoReceipt?, ackDelayMs?,
//                       usyncDelayMs?, logNodes?, decryptCopies?}
//                                     ackDelayMs: the <ack class=message> for a companion's message to a peer
//                                     goes out that much later (unsent if the connection closes first);
//                                     usyncDelayMs: the answer to a device-list query (usync) likewise;
//                                     logNodes: false keeps no send/recv events in the log (they are still
//                                     emitted and stamped), for long streams; decryptCopies: false leaves
//                                     the copies of a companion's message for the phones undecrypted
//                                     phoneResend: 'hold' keeps the phone from answering placeholder
//                                     resend requests (they are still checked and recorded); 'answer' (default)
//   ── messaging: other accounts, "peers" (lib/fake_peer.mjs, libsignal), one device each:
//      15550009999 "Peer" (the default) and 15550008888 "Peer Two" ──
//   With mediaCa (CLI --media-ca DIR) it also runs the media hosts (lib/fake_media_host.mjs,
//   HTTPS under a test CA) and answers <iq xmlns=w:m type=set><media_conn/> with their auth.
//   GET  /media/violations, /media/requests ({method, path, remote} each), POST /media/fault,
//   /media/fault-next, /media/hold, /media/rotate-auth drive them.
//   POST /phone/media-retry {id, chat, mediaKey, directPath?, answer: reupload|not-found|error, code?}
//                                     how the phone answers a media retry request for message id;
//                                     GET /phone/media-retry → {plans: {id: {answer, asked, newPath}}}
//   The server answers <iq xmlns=usync> (devices of the peer and of the phone's
//   account) and <iq xmlns=encrypt type=get><key> (the peer's bundle; a companion's
//   from its uploaded prekeys), checks every <message> a companion sends the peer
//   (participants, enc v=2, device-identity iff pkmsg), decrypts it as the peer,
//   answers <ack class=message> and (peerAutoReceipt, default on) a delivery receipt.
//   Messages to a companion stay queued until it acks them and are resent after
//   each login (as WhatsApp does).
//   POST /peer/send    {from?, id?, text?, location? {latitude, longitude, name?, address?}, contacts? [{displayName, vcard}],
//                       unsupported? (a groupInviteMessage), corrupt? (ciphertext damaged), dsmTo? (from our own phone: a deviceSentMessage to that chat), replyTo?, reaction?:{target,text}, edit?:{target,text},
//                       appStateKeys?:[{id: hex, data: hex, ts?}] (an AppStateSyncKeyShare; from our phone with from: its number),
//                       revoke?:{target}, unsupported?:true, raw? (a Message in base64, as it is; with dsmTo inside the deviceSentMessage),
//                       stanzaType? (<message type>, default text), to?, viaLid?, group? (digits@g.us the server does not know: an opaque skmsg from the peer as participant;
//                       a group it knows: sent under sender keys, see groups below), skipSkdm?}
//                                     → {ok, id, devices, lid}
//   POST /peer/presence {from?, type: available|unavailable, last?}   the peer's availability, to each companion
//                                     that subscribed (<presence type=subscribe to=peer>, answered at once; event
//                                     presence.subscribe); a companion's own <presence type name> is event presence.own
//   POST /peer/chatstate {from?, state: composing|recording|paused, group?}   the peer typing, to our companions
//   POST /peer/resend  {id}           the same stanza bytes again (a duplicate)
//   /peer/send corrupt: 'once' damages the first delivery alone (the resend is whole);
//   /peer/send corrupt: 'always' damages every delivery: the peer answers each retry receipt with a
//                                     resend (<enc count=N>, event peer.retry.resend), damaged again;
//                                     corrupt: P (a number) damages each delivery, resends included, with
//                                     probability P
//   A companion's <message category=peer> to its own phone (a placeholder resend request) is checked
//   strictly and recorded (event phone.placeholder.request); the phone answers with the message as a
//   WebMessageInfo (event phone.placeholder.answer) unless config phoneResend is 'hold'; the companion
//   must answer the phone's peer message with <receipt type=peer_msg> (event phone.peer_receipt).
//   App-state sync (<iq xmlns=w:sync:app:state>, server_sync notifications, key requests from a companion to its
//   phone): lib/fake_appstate.mjs, routes /appstate/….
//   POST /phone/placeholder-answer {id, requestId?, how?: normal|malformed|unknown}  the phone answers now
//   GET  /phone/placeholder-requests  {requests: [{requestId, id, remoteJid, participant, encType, meta}]}
//   POST /phone/history {syncType, chunkOrder?, progress?, conversations?, pushnames?, lidMappings?, bulk?, inline?,
//                       corrupt?}  a history sync chunk from the phone (lib/fake_history.mjs); its
//                       <receipt type=hist_sync> is checked (event phone.hist_sync); GET /phone/history
//   POST /peer/retry   {id, from?}    the peer drops its session and sends a retry receipt;
//                                     the resend (<enc count=N> to the device) is decrypted
//                                     (event peer.resend)
//   POST /peer/receipt {id, type?, from?}    a receipt from the peer (type read, or delivery)
//   POST /peer/reinstall {from?}      the peer reinstalls: new identity and prekeys, no sessions
//   POST /peer/devices-notify {from?} <notification type=devices from=peer> (a device of the peer
//                                     changed) to every logged-in companion (event devices.notify)
//   /peer/send also takes viaLid: true (from = the peer's LID, with sender_pn unless noPn: true); otherwise
//   messages carry sender_lid. Companions' read receipts for peers' messages are checked
//   (event peer.read), <chatstate> too (event chatstate), and usync answers <contact>
//   queries (event usync.contacts): accounts that exist are type=in, others type=out.
//   GET  /peer/received               [{id, count, text, ...}] what the peer decrypted
//   POST /peers/add    {phones:[digits…], prekeys?}  more accounts like the peer (one libsignal device 0
//                                     each, `prekeys` one-time prekeys, default 200), known to usync and
//                                     to <message to>: a send to many chats → {ok, added}
//   POST /peers/companions {phones:[digits…], device?, prekeys?}  for each existing account a companion
//                                     device (default 1) with real keys and `prekeys` (default 4) one-time
//                                     prekeys, never connected: listed by usync, its bundle handed out, its
//                                     messages queued in its inbox → {ok, added}
//   Every account's device 0 is such a libsignal peer; companions of any account
//   (paired with /phone/scan {phone}) get their copies relayed as <message from=user:dev>,
//   their receipts relayed to the sending companion; the sender's own phone gets a
//   deviceSentMessage, checked (event phone.dsm).
//   POST /stamps/start                from now on, time each <message> written to a companion and
//                                     that companion's <receipt> and <ack> for it (a fresh record)
//   GET  /stamps                      → {stamps:[{conn, id, deliver, deliverSeq, receipt?, receiptSeq?,
//                                     ack?, ackSeq?}]}: wall-clock ms since the epoch (µs precision),
//                                     taken as the stanza was about to be written / had been read;
//                                     seq numbers order them against each other and the event log
//   GET  /media/activity              {uploads:[…], downloads:[…]}: every upload request and download
//                                     the media hosts had, with bytes, status and wall-clock times
//                                     (lib/fake_media_host.mjs `activity`)
//   ── groups (lib/fake_groups.mjs; state, answers and notifications documented there) ──
//   The server answers <iq xmlns=w:g2> to @g.us or a group: get <query request=interactive/>,
//   get <participating>, set <create subject key><participant jid/>…, <add|remove|promote|demote>
//   (per-participant error=403|404|406|408|409), <subject>, <description id prev><body>
//   (or delete=true), <announcement|not_announcement|locked|unlocked|not_ephemeral/>,
//   <ephemeral expiration>, <invite/> get (code) / set (revoke), <invite code> (join),
//   <leave><group id/></leave>; and <iq xmlns=w:profile:picture target=group>. Errors are
//   <error code text>: 403 not a participant, 401 not an admin, 404 no such group, 406, 409.
//   Each change goes as <notification type=w:gp2 from=group participant=actor> (a leave as <remove>
//   by the leaver, a deleted description as <description id><delete/>) to every
//   logged-in companion of every member (and of a removed/leaving one), to be acked.
//   GET  /groups                      {groups:[state…]}
//   GET  /groups/{jid}                {jid, subject, creator, addressing, announce, locked, ephemeral,
//                                     invite, participants:[{phone, jid, lid, role}], …}
//   POST /groups/create {creator, subject, participants:[digits|jid…], addressing?: pn|lid}
//                                     → {ok, jid, refused, group}
//   POST /groups/{jid}/participants {actor, action: add|remove|promote|demote, participants}
//                                     → {ok, results:[{jid, status}]}
//   POST /groups/{jid}/subject {actor, subject}   /description {actor, description|null}
//   POST /groups/{jid}/setting {actor, setting, expiration?}   /leave {actor}   /invite {actor} → {code}
//                                     all as account `actor`; a refusal answers 409 "group: CODE text"
//   Group messages: a companion's <message to=group> (one <enc type=skmsg>, pairwise <to> copies
//   carrying the sender key) is checked (sender a participant, every <to> a device of a participant
//   or of our own account, every recipient device holding the sender's key: a pairwise copy from
//   that sender device under the skmsg's key id), acked with the server's phash and relayed to every
//   participant device as <message from=group participant=sender> (its pairwise copy if any, the
//   skmsg); peers (device 0 of each account) decrypt it with Baileys' group cipher. /peer/send
//   {from, group, text, skipSkdm?} to a group the server knows sends as that peer (SKDM pairwise
//   to each device lacking it, then the skmsg; skipSkdm withholds it, so a companion asks with a
//   retry receipt and the peer resends with the SKDM). Receipts to a group go to the sending
//   companion with participant. GET /peer/received lists group messages with group, sender, peer.
//   GET  /groups/deliveries, /groups/{jid}/deliveries
//                                     [{id, group, sender, to (user:dev), pairwise (pkmsg|msg|skdm|null),
//                                     skmsg, keyId, retry?}] one per recipient device and message
//   POST /shutdown
//   `conn` defaults to the newest open connection past its handshake.
//
// ── Events ───────────────────────────────────────────────────────────────────
//   {seq, t (ms since start), conn, kind, ...}; conn 0 = not tied to a connection.
//   ws.reject (reason, status)   ws.open   ws.error   handshake (mode, version, username,
//   device, clientStatic, payload)   handshake.fail   recv (node | undecodable)
//   send (node)   violation (detail, node?)   close (by: server|client, reason,
//   unacked?)   warning   qr.ref (index, ref)   qr.scanned   qr.expired
//   pair-device.ack   pair.success-sent (jid, lid, via, tampered)   pair.done (jid,
//   lid, via)   pair.fail (problems)   pair.client-error (code, text)
//   paircode.hello (jid, accepted, platformId, display)   paircode.primary-hello
//   paircode.finish (ok, detail?)   login.ok (jid)   login.fail (reason, detail)
//   prekeys.count (count)   prekeys.upload (count, firstId, lastId, total, skeyId,
//   skeyChanged)   prekeys.rotate   active | passive   ping   ack (id, class, type)
//   device.removed (jid, by)   iq.unhandled (answered 501)   iq.ignored (silent)
//   usync (users)   prekeys.fetch (jids)   peer.recv (id, text, count, devices, pkmsg)
//   peer.fail (id, detail)   phone.dsm (id, destination, text)   message.relay (id, to, type, online)
//   receipt.relay (id, type, to)   peer.sent (id, to)   peer.receipt (id, type)   inbox.resend (ids)
//   control (op, ...)   group.iq (op, to, actor)   group.error (to, actor, child, code)
//   group.create (group, actor, subject, members, refused)   group.participants (group, actor,
//   action, done, refused)   group.notify (group, actor, change, conns)   group.receipt (id, to,
//   participant, type)   group.message (id, group, sender, keyId, pairwise, phash, clientPhash,
//   recipients)   group.peer.recv / group.peer.fail (id, group, sender, peer, text, skdm, error?)
//   group.peer.resend (id, group, to)   group.skmsg-without-key (a peer's skipSkdm send).
//   Nodes are JSON: {tag, attrs, content} with bytes as {hex:"…"}; the server JID
//   reads "@s.whatsapp.net" (Baileys' spelling of a JID_PAIR with no user).
//   A violation (anything malformed or out of place) always closes the connection.
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { proto, Curve, encodeBinaryNode, decodeDecompressedBinaryNode } from 'baileys';
import * as BINARY from 'baileys/lib/WABinary/constants.js';
import { NoiseServer, NoiseServerError, makeTestPki, checkClientPayload, xeddsaVerify, xeddsaSign, frame } from './noise_server.mjs';
import { FakePhone, PhoneError, parseQrText, COMPANION_PLATFORM_IDS } from './fake_phone.mjs';
import { FakePeer } from './fake_peer.mjs';
import { FakeMediaHost } from './fake_media_host.mjs';
import { FakeGroups, jpegSize } from './fake_groups.mjs';
import { FakeHistory } from './fake_history.mjs';
import { FakeAppState } from './fake_appstate.mjs';

export const SERVER_JID = '@s.whatsapp.net'; // how the codec spells the server JID (JID_PAIR, empty user)
export const DEFAULT_VERSION = '2.3000.1023456789';
export const WA_ORIGIN = 'https://web.whatsapp.com';
export const MAX_PREKEYS_PER_UPLOAD = 812;

const eq = (a, b) => a != null && b != null && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const nowSec = () => Math.floor(Date.now() / 1000);
// What tells one awaited ack from another: a message's ack echoes id, class, from and participant;
// a receipt's or notification's its type too (a delivery and a read of one message both wait).
const ackKey = (id, tag, from, participant, type) => `${id} ${tag} ${from} ${participant ?? '-'} ${tag === 'message' ? '' : (type ?? '-')}`;
const isBytes = (c) => c instanceof Uint8Array;
const kids = (n) => (Array.isArray(n?.content) ? n.content : []);
const kid = (n, tag) => kids(n).find((c) => c.tag === tag);
const hex = (b) => Buffer.from(b).toString('hex');
const wallMs = () => performance.timeOrigin + performance.now();

/** A node as plain JSON: bytes become {hex}. */
export function nodeToJson(n) {
    if (n == null) return n;
    let content = n.content;
    if (Array.isArray(content)) content = content.map(nodeToJson);
    else if (isBytes(content)) content = { hex: hex(content) };
    return { tag: n.tag, attrs: { ...n.attrs }, ...(content === undefined ? {} : { content }) };
}

/** Compact one-line XML-ish text of a node (bytes shown by length), for logs and messages. */
export function nodeText(n, depth = 0) {
    if (n == null) return String(n);
    const attrs = Object.entries(n.attrs || {}).map(([k, v]) => ` ${k}="${v}"`).join('');
    if (n.content === undefined) return `<${n.tag}${attrs}/>`;
    let inner;
    if (Array.isArray(n.content))
        inner = depth > 3 ? `…${n.content.length} nodes…` : n.content.slice(0, 8).map((c) => nodeText(c, depth + 1)).join('') + (n.content.length > 8 ? `…+${n.content.length - 8}` : '');
    else if (isBytes(n.content)) inner = `[${n.content.length} bytes]`;
    else inner = String(n.content);
    return `<${n.tag}${attrs}>${inner}</${n.tag}>`;
}

class Violation extends Error {}
const bad = (msg) => {
    throw new Violation(msg);
};
const want = (cond, msg) => {
    if (!cond) bad(msg);
};
/** The node's children must be exactly these tags (in any order, each once). */
function wantChildren(n, tags, what) {
    want(Array.isArray(n.content), `${what}: children missing`);
    const got = n.content.map((c) => c.tag);
    want(got.length === tags.length && tags.every((t) => got.includes(t)),
        `${what}: children [${got.join(',')}], want [${tags.join(',')}]`);
}
function wantBytes(n, len, what) {
    want(n && isBytes(n.content), `${what}: content must be bytes`);
    if (len != null) want(n.content.length === len, `${what}: ${n.content.length} bytes, want ${len}`);
    return Buffer.from(n.content);
}
function wantNoAttrs(n, what) {
    want(Object.keys(n.attrs || {}).length === 0, `${what}: unexpected attributes ${Object.keys(n.attrs).join(',')}`);
}
/** Text of a string or bytes content. */
const textOf = (n) => (n == null ? null : typeof n.content === 'string' ? n.content : isBytes(n.content) ? Buffer.from(n.content).toString('utf8') : null);

/**
 * A cert chain for the server static key under an existing root, optionally
 * broken on purpose: wrong-root | bad-intermediate-sig | intermediate-issuer |
 * bad-leaf-sig | leaf-issuer | leaf-key | expired | not-yet-valid.
 */
// The <enc mediatype> values of media messages (whatsmeow getMediaTypeFromMessage, the kinds wapi sends).
const MEDIA_ENC_TYPES = new Set(['image', 'video', 'gif', 'audio', 'ptt', 'document', 'sticker', 'vcard', 'contact_array']);

/** Whether a companion marks reactions, edits and deletions decrypt-fail=hide (not Baileys: it never does). */
const wantHide = (device) => !['Ubuntu', 'Mac OS', 'Windows'].includes(device?.os); // Baileys' Browsers.* names

/** The <enc mediatype> a decrypted Message calls for (null: none). */
function mediaTypeOf(m) {
    if (!m) return null;
    // A disappearing or view-once wrapper: its content says (as whatsmeow's getMediaTypeFromMessage).
    const w = m.ephemeralMessage ?? m.viewOnceMessage ?? m.viewOnceMessageV2 ?? m.viewOnceMessageV2Extension;
    if (w?.message) return mediaTypeOf(w.message);
    if (m.imageMessage) return 'image';
    if (m.videoMessage) return m.videoMessage.gifPlayback ? 'gif' : 'video';
    if (m.audioMessage) return m.audioMessage.ptt ? 'ptt' : 'audio';
    if (m.documentMessage || m.documentWithCaptionMessage) return 'document';
    if (m.stickerMessage) return 'sticker';
    if (m.contactMessage) return 'vcard';
    if (m.contactsArrayMessage) return 'contact_array';
    return null;
}

export function makeChain({ root, intermediate, serverStatic, defect = null, now = nowSec() }) {
    const Details = proto.CertChain.NoiseCertificate.Details;
    const otherPair = Curve.generateKeyPair(); // any key pair not in the chain
    const interDetails = Buffer.from(Details.encode({
        serial: 42,
        issuerSerial: defect === 'intermediate-issuer' ? 9 : 0,
        key: intermediate.public,
        notBefore: now - 86400 * 30,
        notAfter: now + 86400 * 30
    }).finish());
    const leafDetails = Buffer.from(Details.encode({
        serial: 4242,
        issuerSerial: defect === 'leaf-issuer' ? 43 : 42,
        key: defect === 'leaf-key' ? otherPair.public : serverStatic.public,
        notBefore: defect === 'not-yet-valid' ? now + 3600 : now - 86400,
        notAfter: defect === 'expired' ? now - 60 : now + 86400
    }).finish());
    const interSig = xeddsaSign(defect === 'wrong-root' ? otherPair.private : root.private, interDetails);
    const leafSig = xeddsaSign(intermediate.private, leafDetails);
    if (defect === 'bad-intermediate-sig') interSig[7] ^= 0x01;
    if (defect === 'bad-leaf-sig') leafSig[33] ^= 0x02;
    return Buffer.from(proto.CertChain.encode({
        leaf: { details: leafDetails, signature: leafSig },
        intermediate: { details: interDetails, signature: interSig }
    }).finish());
}

const pairToJson = (p) => ({ private: hex(p.private), public: hex(p.public) });
const pairFromJson = (j) => ({ private: Buffer.from(j.private, 'hex'), public: Buffer.from(j.public, 'hex') });

let connCounter = 0;

/** One client connection. */
/** A 3-byte big-endian key id, as prekey bundles carry them. */
const id3 = (i) => Buffer.from([(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);

/** A companion's registration id, key type, identity and signed prekey, as bundles and digests start. */
function deviceKeyNodes(d) {
    const reg = Buffer.alloc(4);
    reg.writeUInt32BE(d.regId);
    return [
        { tag: 'registration', attrs: {}, content: reg },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: d.identityPub },
        { tag: 'skey', attrs: {}, content: [
            { tag: 'id', attrs: {}, content: id3(d.skeyId) },
            { tag: 'value', attrs: {}, content: d.skeyVal },
            { tag: 'signature', attrs: {}, content: d.skeySig }
        ] }
    ];
}

class Conn {
    constructor(server, ws, req) {
        this.server = server;
        this.id = ++connCounter;
        this.ws = ws;
        this.remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
        this.state = 'handshake'; // handshake | registering | logged-in | closing | closed
        this.mode = null; // register | login
        this.noise = new NoiseServer({
            staticKeyPair: server.pki.serverStatic,
            certChain: server.certChain,
            expect: null,
            tamper: server.config.helloTamper || null
        });
        this.pendingIq = new Map(); // server-sent iq id -> { kind, onAnswer, timer }
        this.pendingAck = new Map(); // ackKey() of a server-sent stanza -> { id, tag, type, from, participant }
        this.clientIds = new Set();
        this.timers = new Set();
        this.refs = null;
        this.device = null; // logged-in device record
        this.reg = null; // registration data from the ClientPayload
        this.codePairing = null;
        this.pairing = null; // { promise settle fns, signed, via }
        this.openedAt = Date.now();
        this.timer(() => {
            if (this.state === 'handshake') this.violation('no complete handshake within the time limit');
        }, server.config.handshakeTimeoutMs);
    }

    timer(fn, ms) {
        const t = setTimeout(() => {
            this.timers.delete(t);
            if (this.state !== 'closed') fn();
        }, ms);
        this.timers.add(t);
        return t;
    }

    log(kind, data = {}) {
        return this.server.log(this.id, kind, data);
    }

    get open() {
        return this.state !== 'closing' && this.state !== 'closed';
    }

    // ── outgoing ──
    sendRaw(buf) {
        if (this.ws.readyState === 1) this.ws.send(buf);
    }

    send(node) {
        if (!this.open || !this.noise.isTransport) return false;
        this.log('send', { node: nodeToJson(node) });
        this.sendRaw(this.noise.encodeFrame(encodeBinaryNode(node)));
        return true;
    }

    newId() {
        return `${this.id}.${crypto.randomBytes(4).toString('hex').toUpperCase()}`;
    }

    /** Sends an iq to the client and expects an answer within iqTimeoutMs. */
    sendIq(node, kind, onAnswer) {
        const id = node.attrs.id;
        const timer = this.timer(() => {
            if (this.pendingIq.delete(id)) this.violation(`no answer to the server's ${kind} iq ${id}`);
        }, this.server.config.iqTimeoutMs);
        this.pendingIq.set(id, { kind, onAnswer, timer });
        this.send(node);
    }

    /** Sends a stanza the client must acknowledge with <ack>. */
    sendAcked(node) {
        // Keyed by id, tag and sender: a message and its receipts from several devices share an id;
        // in a group the receipts all come from the group, told apart by participant (and type).
        this.pendingAck.set(ackKey(node.attrs.id, node.tag, node.attrs.from, node.attrs.participant, node.attrs.type), { id: node.attrs.id, tag: node.tag, type: node.attrs.type, from: node.attrs.from, participant: node.attrs.participant, at: Date.now() });
        this.send(node);
    }

    result(req, content) {
        this.send({ tag: 'iq', attrs: { from: SERVER_JID, type: 'result', id: req.attrs.id }, content });
    }

    iqError(req, code, text) {
        this.send({
            tag: 'iq',
            attrs: { from: SERVER_JID, type: 'error', id: req.attrs.id },
            content: [{ tag: 'error', attrs: { code: String(code), text } }]
        });
    }

    /** Closes the connection from the server side. */
    close(reason, { how = 'close', delayMs = 0 } = {}) {
        if (!this.open) return;
        this.state = 'closing';
        this.closeReason = reason;
        this.closedBy = 'server';
        for (const t of this.timers) clearTimeout(t);
        this.timers.clear();
        const doit = () => {
            if (how === 'terminate') this.ws.terminate();
            else {
                this.ws.close(1000);
                setTimeout(() => this.ws.terminate(), 1000).unref();
            }
        };
        if (delayMs > 0) setTimeout(doit, delayMs).unref();
        else doit();
    }

    violation(detail, node = null) {
        if (!this.open) return;
        this.log('violation', { detail, ...(node ? { node: nodeToJson(node) } : {}) });
        this.server.emit('violation', { conn: this.id, detail });
        this.settlePairing(new Error(`violation: ${detail}`));
        this.close(`violation: ${detail}`);
    }

    onClosed(code, reason) {
        const was = this.state;
        this.state = 'closed';
        for (const t of this.timers) clearTimeout(t);
        this.timers.clear();
        const unacked = [...this.pendingAck.values()].map((a) => ({ id: a.id, tag: a.tag, type: a.type }));
        this.log('close', {
            by: this.closedBy || 'client',
            reason: this.closeReason || null,
            wsCode: code,
            wsReason: reason ? String(reason) : '',
            stateWas: was,
            ...(unacked.length ? { unacked } : {})
        });
        this.settlePairing(new Error(`connection closed (${this.closeReason || 'by client'})`));
    }

    settlePairing(err, value) {
        const p = this.pairing;
        if (!p || p.settled) return;
        p.settled = true;
        if (err) p.reject(err);
        else p.resolve(value);
    }

    // ── incoming ──
    onMessage(data, isBinary) {
        if (!this.open) return;
        if (!isBinary) return this.violation('text WebSocket message (frames must be binary)');
        const wasTransport = this.noise.isTransport;
        let res;
        try {
            res = this.noise.feed(Buffer.from(data));
        } catch (e) {
            const detail = e instanceof NoiseServerError ? e.message : `noise: ${e.message}`;
            if (!wasTransport) this.log('handshake.fail', { detail });
            return this.violation(detail);
        }
        for (const o of res.out) this.sendRaw(o);
        if (!wasTransport && this.noise.isTransport) {
            try {
                this.onHandshake();
            } catch (e) {
                if (e instanceof Violation) return this.violation(e.message);
                throw e;
            }
        }
        for (const f of res.frames) {
            if (!this.open) return;
            let node;
            let compressed = false;
            try {
                ({ node, compressed } = decodeFrame(f));
            } catch (e) {
                this.log('recv', { undecodable: hex(f.subarray(0, 64)), bytes: f.length });
                return this.violation(`frame does not decode as a binary node: ${e.message}`);
            }
            this.log('recv', { node: nodeToJson(node), ...(compressed ? { compressed } : {}) });
            try {
                this.onNode(node);
            } catch (e) {
                if (e instanceof Violation) return this.violation(e.message, node);
                this.log('violation', { detail: `server bug: ${e.stack}` });
                return this.close('server error');
            }
        }
    }

    onHandshake() {
        const p = this.noise.clientPayload;
        const cfg = this.server.config;
        const mode = p.devicePairingData ? 'register' : p.username != null ? 'login' : null;
        const av = p.userAgent?.appVersion || {};
        const version = `${av.primary}.${av.secondary}.${av.tertiary}`;
        this.log('handshake', {
            mode,
            version,
            platform: p.userAgent?.platform,
            pushName: p.pushName ?? null,
            username: p.username != null ? p.username.toString() : null,
            device: p.device ?? null,
            passive: p.passive ?? null,
            pull: p.pull ?? null,
            clientStatic: hex(this.noise.clientStatic),
            payload: proto.ClientPayload.toObject(p, { longs: String, bytes: String })
        });
        want(mode != null, 'ClientPayload is neither a registration (devicePairingData) nor a login (username)');
        want(!(p.devicePairingData && p.username != null), 'ClientPayload carries both devicePairingData and username');
        this.mode = mode;
        want([av.primary, av.secondary, av.tertiary].every((x) => Number.isInteger(x) && x > 0),
            `userAgent.appVersion ${version} is not three positive numbers`);
        if (version !== cfg.version) {
            // WhatsApp answers an outdated client with 405 before anything else.
            this.log('login.fail', { reason: 405, detail: `version ${version}, server wants ${cfg.version}` });
            this.send({ tag: 'failure', attrs: { reason: '405', location: 'fake' } });
            return this.close('client outdated (405)', { delayMs: cfg.closeDelayMs });
        }
        const problems = checkClientPayload(p, { version: cfg.version, mode });
        if (problems.length) bad(`ClientPayload: ${problems.join('; ')}`);
        if (mode === 'register') return this.startRegistration(p);
        return this.login(p);
    }

    startRegistration(p) {
        const d = p.devicePairingData;
        let props = null;
        try {
            props = proto.DeviceProps.decode(d.deviceProps);
        } catch {
            /* checked by checkClientPayload */
        }
        this.reg = {
            regId: Buffer.from(d.eRegid).readUInt32BE(0),
            identityPub: Buffer.from(d.eIdent),
            skeyId: Buffer.from(d.eSkeyId).readUIntBE(0, 3),
            skeyVal: Buffer.from(d.eSkeyVal),
            skeySig: Buffer.from(d.eSkeySig),
            noisePub: Buffer.from(this.noise.clientStatic),
            os: props?.os ?? null,
            platformType: props?.platformType ?? null,
            pushName: p.pushName ?? null
        };
        // Signal registration ids are 14 bits; 0 is not a valid one but some clients draw it now and then.
        want(this.reg.regId <= 0x3fff, `registration id ${this.reg.regId} over 16383`);
        if (this.reg.regId === 0) this.log('warning', { detail: 'registration id 0' });
        want(this.reg.skeyId > 0, 'signed prekey id 0');
        want(!eq(this.reg.noisePub, this.reg.identityPub), 'noise key and identity key are the same key');
        this.state = 'registering';
        const cfg = this.server.config;
        const refs = Array.from({ length: cfg.qrRefs }, () => `2@${crypto.randomBytes(33).toString('base64')}`);
        const start = Date.now();
        this.refs = {
            list: refs,
            start,
            index: 0,
            validUntil: refs.map((_, i) => start + cfg.qrFirstMs + i * cfg.qrNextMs + cfg.qrGraceMs),
            stopped: false
        };
        const id = this.newId();
        this.sendIq(
            {
                tag: 'iq',
                attrs: { from: SERVER_JID, type: 'set', id, xmlns: 'md' },
                content: [{ tag: 'pair-device', attrs: {}, content: refs.map((r) => ({ tag: 'ref', attrs: {}, content: Buffer.from(r) })) }]
            },
            'pair-device',
            (answer) => {
                want(answer.attrs.type === 'result', `pair-device answered with type=${answer.attrs.type}`);
                want(answer.content === undefined || (Array.isArray(answer.content) && answer.content.length === 0),
                    'pair-device result must be empty');
                this.log('pair-device.ack', {});
            }
        );
        this.log('qr.ref', { index: 0, ref: refs[0] });
        const rotate = () => {
            if (this.refs.stopped) return;
            this.refs.index++;
            if (this.refs.index >= refs.length) {
                this.timer(() => {
                    if (this.refs.stopped) return;
                    this.log('qr.expired', { refs: refs.length });
                    this.close('QR refs exhausted');
                }, cfg.qrGraceMs);
                return;
            }
            this.log('qr.ref', { index: this.refs.index, ref: refs[this.refs.index] });
            this.timer(rotate, cfg.qrNextMs);
        };
        this.timer(rotate, cfg.qrFirstMs);
    }

    stopRefs() {
        if (this.refs) this.refs.stopped = true;
    }

    login(p) {
        const cfg = this.server.config;
        const user = p.username.toString();
        const dev = p.device ?? 0;
        const d = this.server.devices.get(`${user}:${dev}`);
        const forced = this.server.nextLoginFailure;
        let fail = null;
        if (forced) {
            this.server.nextLoginFailure = null;
            fail = { reason: String(forced.reason), attrs: forced.attrs || {}, detail: 'forced by control' };
        } else if (!d) fail = { reason: '401', detail: `no paired device ${user}:${dev}` };
        else if (d.removed) fail = { reason: '401', detail: `device ${d.jid} was removed` };
        else if (!eq(this.noise.clientStatic, d.noisePub)) fail = { reason: '401', detail: 'noise static key differs from the one the device paired with' };
        if (fail) {
            this.log('login.fail', { reason: Number(fail.reason), detail: fail.detail });
            this.send({ tag: 'failure', attrs: { reason: fail.reason, location: 'fake', ...fail.attrs } });
            return this.close(`login failure ${fail.reason}`, { delayMs: cfg.closeDelayMs });
        }
        for (const c of this.server.conns) {
            // A newer login of the same device replaces the older connection.
            if (c !== this && c.device === d && c.open) {
                c.send({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] });
                c.close('replaced by a newer login', { delayMs: cfg.closeDelayMs });
            }
        }
        this.device = d;
        this.state = 'logged-in';
        d.lastLogin = Date.now();
        this.log('login.ok', { jid: d.jid, lid: d.lid, passive: p.passive, pull: p.pull });
        const queued = [...(this.server.inbox.get(`${d.user}:${d.device}`)?.values() ?? [])];
        if (queued.length) {
            setTimeout(() => {
                if (!this.open) return;
                this.log('inbox.resend', { ids: queued.map((q) => q.attrs.id) });
                for (const q of queued) this.sendAcked(q);
            }, 200);
        }
        this.send({
            tag: 'success',
            attrs: {
                t: String(nowSec()),
                props: '1',
                abprops: '1',
                location: 'fake',
                creation: String(Math.floor(d.pairedAt / 1000)),
                lid: d.lid
            }
        });
    }

    // ── stanza dispatch ──
    onNode(n) {
        switch (n.tag) {
        case 'iq':
            return this.onIq(n);
        case 'ack':
            return this.onAck(n);
        case 'ib':
            want(Array.isArray(n.content) && n.content.length > 0, '<ib> without children');
            return;
        case 'presence': {
            const extra = Object.keys(n.attrs).filter((k) => !['name', 'type', 'to'].includes(k));
            want(extra.length === 0, `<presence> with unexpected attributes ${extra.join(',')}`);
            if (n.attrs.type != null) want(['available', 'unavailable', 'subscribe'].includes(n.attrs.type), `<presence type=${n.attrs.type}>`);
            if (n.attrs.type === 'subscribe') {
                // Asking for someone's availability: answered now with their current state, then on each change.
                want(this.state === 'logged-in', '<presence type=subscribe> before login');
                const r = this.server.resolveJid(n.attrs.to);
                want(r && !String(n.attrs.to).split('@')[0].includes(':') && !String(n.attrs.to).endsWith('@g.us'),
                    `<presence type=subscribe to=${n.attrs.to}>, want a person's JID without device`);
                const peer = !r.unknown && this.server.peers.get(r.user);
                this.server.log(this.id, 'presence.subscribe', { to: n.attrs.to, known: !!peer });
                if (peer) {
                    (peer.subscribers ??= new Set()).add(this);
                    this.send(this.server.presenceNode(peer));
                }
                return;
            }
            want(n.attrs.to == null, '<presence to> without type=subscribe');
            this.server.log(this.id, 'presence.own', { type: n.attrs.type ?? 'available', name: n.attrs.name ?? null });
            return;
        }
        case 'receipt':
        case 'message':
        case 'call':
            want(this.state === 'logged-in', `<${n.tag}> before login`);
            // A 1:1 message with <participants> to a known account is routed (checked, decrypted, relayed);
            // anything else just gets its ack. Group messages are lib/fake_groups.mjs's.
            // A peer message (category=peer) goes to the account's own phone: a placeholder resend request.
            if (n.tag === 'message' && n.attrs.category != null)
                return this.onPeerDataRequest(n);
            if (n.tag === 'message' && typeof n.attrs.to === 'string' && n.attrs.to.endsWith('@g.us') && this.server.groups.groups.has(n.attrs.to))
                return this.server.groups.onMessage(this, n);
            if (n.tag === 'message' && typeof n.attrs.to === 'string' && kid(n, 'participants') && this.server.resolveJid(n.attrs.to) && !this.server.resolveJid(n.attrs.to).unknown)
                return this.onPeerMessage(n);
            if (n.tag === 'message' && typeof n.attrs.to === 'string' && kid(n, 'enc')?.attrs?.count != null && this.server.resolveJid(n.attrs.to) && !this.server.resolveJid(n.attrs.to).unknown)
                return this.onRetryResend(n);
            if (n.tag === 'receipt' && String(n.attrs.to).endsWith('@g.us')) {
                want(typeof n.attrs.participant === 'string' && this.server.resolveJid(n.attrs.participant), `<receipt to=${n.attrs.to}> for a group message without a known participant`);
                this.log('group.receipt', { id: n.attrs.id, to: n.attrs.to, participant: n.attrs.participant, type: n.attrs.type ?? null });
                this.server.groups.onReceipt(this, n).catch((e) => this.log('warning', { detail: `group receipt: ${e.message}` }));
            }
            if (n.tag === 'receipt' && n.attrs.type === 'server-error') this.onMediaRetryRequest(n);
            if (n.tag === 'receipt' && n.attrs.type === 'hist_sync') (this.server.history ??= new FakeHistory(this.server)).onReceipt(this, n, want);
            if (n.tag === 'receipt' && n.attrs.type === 'retry' && !String(n.attrs.to).endsWith('@g.us')) this.server.onCompanionRetry(this, n);
            if (n.tag === 'receipt' && this.server.peerStanzas.has(n.attrs.id)) {
                // What the phone sent as a peer message (category=peer) is answered with type=peer_msg.
                want(n.attrs.type === 'peer_msg', `<receipt id=${n.attrs.id} type=${n.attrs.type}> for the phone's peer message: want type=peer_msg`);
                this.log('phone.peer_receipt', { id: n.attrs.id });
            }
            if (n.tag === 'receipt' && (n.attrs.type === 'read' || n.attrs.type === 'read-self')) this.checkReadReceipt(n);
            if (n.tag === 'receipt' && !String(n.attrs.to).endsWith('@g.us')) this.relayReceipt(n);
            if (n.tag === 'call') this.server.onCompanionCall(this, n);
            want(typeof n.attrs.id === 'string' && n.attrs.id.length > 0, `<${n.tag}> without id`);
            return this.send({ tag: 'ack', attrs: { id: n.attrs.id, class: n.tag, from: SERVER_JID, t: String(nowSec()), ...(n.attrs.type ? { type: n.attrs.type } : {}) } });
        case 'chatstate':
            want(this.state === 'logged-in', '<chatstate> before login');
            return this.onChatstate(n);
        default:
            bad(`unexpected top-level stanza <${n.tag}>`);
        }
    }

    onAck(n) {
        const { id, to } = n.attrs;
        want(typeof id === 'string' && id.length > 0, '<ack> without id');
        const exact = ackKey(id, n.attrs.class, to, n.attrs.participant, n.attrs.type);
        const key = this.pendingAck.has(exact) ? exact : [...this.pendingAck.keys()].find((k) => this.pendingAck.get(k).id === id);
        const sent = key != null ? this.pendingAck.get(key) : null;
        want(sent != null, `<ack id=${id}> for a stanza the server never sent (or acked twice)`);
        want(n.attrs.class === sent.tag, `<ack class=${n.attrs.class}> for a <${sent.tag}>`);
        want(to === sent.from, `<ack to=${to}>, want ${sent.from}`);
        if (sent.participant) want(n.attrs.participant === sent.participant, `<ack participant=${n.attrs.participant}>, want ${sent.participant}`);
        // A nack (error=…, e.g. Baileys' for a message it could not decrypt) repeats the stanza's type.
        if (sent.tag === 'message') want(n.attrs.type == null || (n.attrs.error != null && n.attrs.type === sent.type), `<ack class=message type=${n.attrs.type}>: a message ack carries no type`);
        else if (n.attrs.type != null || sent.type != null)
            want(n.attrs.type === sent.type, `<ack type=${n.attrs.type}>, want ${sent.type}`);
        this.pendingAck.delete(key);
        if ((sent.tag === 'message' || sent.tag === 'notification' || sent.tag === 'call') && this.device) this.server.inbox.get(`${this.device.user}:${this.device.device}`)?.delete(id);
        this.log('ack', { id, class: sent.tag, type: sent.type ?? null });
    }

    onIq(n) {
        const { id, type, xmlns, to } = n.attrs;
        want(typeof id === 'string' && id.length > 0, '<iq> without id');
        want(['get', 'set', 'result', 'error'].includes(type), `<iq type=${type}>`);
        // Group iqs go to @g.us or to the group (lib/fake_groups.mjs); everything else to the server.
        want(to === SERVER_JID || (xmlns === 'w:g2' && typeof to === 'string' && to.endsWith('@g.us') && (type === 'get' || type === 'set')), `<iq to=${to}>, want the server JID s.whatsapp.net`);
        if (type === 'result' || type === 'error') {
            const p = this.pendingIq.get(id);
            want(p != null, `<iq type=${type} id=${id}> answers no iq the server sent`);
            this.pendingIq.delete(id);
            clearTimeout(p.timer);
            this.timers.delete(p.timer);
            return p.onAnswer(n);
        }
        want(typeof xmlns === 'string' && xmlns.length > 0, `<iq type=${type}> without xmlns`);
        want(!this.clientIds.has(id), `<iq id=${id}> reused`);
        this.clientIds.add(id);
        if (this.server.config.silent) return this.log('iq.ignored', { id, xmlns, type });
        const key = `${xmlns} ${type}`;
        const loggedIn = this.state === 'logged-in';
        const needLogin = () => want(loggedIn, `<iq xmlns=${xmlns} type=${type}> before login`);
        switch (key) {
        case 'w:p get':
            return this.onPing(n);
        case 'usync get':
            needLogin();
            return this.onUsync(n);
        case 'privacy get':
            needLogin();
            wantChildren(n, ['privacy'], '<iq xmlns=privacy type=get>');
            return this.result(n, [{ tag: 'privacy', attrs: {}, content: ['readreceipts', 'last', 'online', 'profile', 'status', 'groupadd'].map((name) =>
                ({ tag: 'category', attrs: { name, value: name === 'readreceipts' ? 'all' : 'contacts' } })) }]);
        case 'encrypt get': {
            needLogin();
            want(kids(n).length === 1, `<iq xmlns=encrypt type=get> with ${kids(n).length} children`);
            const c = kids(n)[0];
            if (c.tag === 'key') return this.onKeyFetch(n, c);
            if (c.tag === 'count') return this.onCount(n, c);
            if (c.tag === 'digest') return this.onDigest(n, c);
            break;
        }
        case 'encrypt set':
            needLogin();
            if (kids(n).length === 1 && kids(n)[0].tag === 'rotate') return this.onRotate(n, kids(n)[0]);
            return this.onUpload(n);
        case 'passive set':
            needLogin();
            return this.onPassive(n);
        case 'w:m set': {
            needLogin();
            wantChildren(n, ['media_conn'], '<iq xmlns=w:m type=set>');
            wantNoAttrs(kids(n)[0], '<media_conn>');
            const host = this.server.media;
            if (!host) break; // no media hosts configured: 501 below
            const mc = host.mediaConn();
            return this.result(n, [{ tag: 'media_conn', attrs: { auth: mc.auth, ttl: String(mc.ttl), auth_ttl: String(mc.ttl), max_buckets: '12' },
                content: mc.hosts.map((hostname) => ({ tag: 'host', attrs: { hostname } })) }]);
        }
        case 'w:sync:app:state set':
            needLogin();
            // app-state sync (lib/fake_appstate.mjs): answered once its blobs are on the media hosts
            return this.server.appstate.onIq(this, n).catch((e) => (e instanceof Violation ? this.violation(e.message, n) : this.violation(`server bug: ${e.stack}`)));
        case 'w:g2 get':
        case 'w:g2 set':
            needLogin();
            return this.server.groups.onIq(this, n);
        case 'w:profile:picture get':
        case 'w:profile:picture set':
            needLogin();
            if (String(n.attrs.target).endsWith('@g.us')) return this.server.groups.onPictureIq(this, n);
            return this.onPictureIq(n);
        case 'status set':
            needLogin();
            return this.onAboutSet(n);
        case 'blocklist get':
        case 'blocklist set':
            needLogin();
            return this.onBlocklist(n);
        case 'w:biz get':
            needLogin();
            return this.onBusiness(n);
        case 'md set': {
            want(kids(n).length === 1, `<iq xmlns=md type=set> with ${kids(n).length} children`);
            const c = kids(n)[0];
            if (c.tag === 'link_code_companion_reg') {
                want(this.state === 'registering', 'link_code_companion_reg on a connection that is not registering');
                return this.onLinkCode(n, c);
            }
            if (c.tag === 'remove-companion-device') {
                needLogin();
                return this.onRemoveCompanion(n, c);
            }
            break;
        }
        default:
            break;
        }
        this.log('iq.unhandled', { id, xmlns, type, child: kids(n)[0]?.tag ?? null });
        this.iqError(n, 501, 'feature-not-implemented');
    }

    // ── messaging ──
    /** Devices of a user: the peer has device 0; the phone's account has the phone and its companions. */
    devicesOf(user) {
        if (!this.server.peers.has(user)) return null;
        const list = [{ id: 0 }];
        for (const d of this.server.devices.values())
            if (d.user === user && !d.removed) list.push({ id: d.device, keyIndex: d.keyIndex });
        return list;
    }

    /** <chatstate from? to><composing [media=audio]/> | <paused/></chatstate> (whatsmeow's and Baileys' shape). */
    onChatstate(n) {
        const extra = Object.keys(n.attrs).filter((k) => !['from', 'to'].includes(k));
        want(extra.length === 0, `<chatstate> with unexpected attributes ${extra.join(',')}`);
        const r = this.server.resolveJid(n.attrs.to);
        want(r && !String(n.attrs.to).split('@')[0].includes(':'), `<chatstate to=${n.attrs.to}>, want a user JID without device`);
        if (n.attrs.from != null) {
            const own = [`${this.device.user}@s.whatsapp.net`, `${this.device.lid}`];
            want(own.includes(n.attrs.from), `<chatstate from=${n.attrs.from}>, want our account ${own[0]}`);
        }
        const k = kids(n);
        want(k.length === 1 && ['composing', 'paused'].includes(k[0].tag), `<chatstate> must hold exactly one <composing/> or <paused/>, got ${k.map((x) => x.tag).join(',')}`);
        const ka = Object.keys(k[0].attrs);
        want(ka.length === 0 || (k[0].tag === 'composing' && ka.length === 1 && k[0].attrs.media === 'audio'), `<${k[0].tag}> with attributes ${ka.join(',')}`);
        this.log('chatstate', { to: n.attrs.to, state: k[0].tag, media: k[0].attrs.media ?? null, unknown: !!r.unknown });
    }

    /** A read receipt from a companion for messages a peer sent it: every id must be one that peer
     * sent to this account, `t` a plausible time, no group attributes on a 1:1 chat. */
    checkReadReceipt(n) {
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type', 't', 'participant'].includes(k));
        want(extra.length === 0, `<receipt type=read> with unexpected attributes ${extra.join(',')}`);
        want(/^[0-9]{9,11}$/.test(String(n.attrs.t)) && Math.abs(Number(n.attrs.t) - nowSec()) < 600, `<receipt type=read t=${n.attrs.t}>: want the current unix time`);
        const r = this.server.resolveJid(n.attrs.to);
        const peer = r && !r.unknown && this.server.peers.get(r.user);
        if (!peer || this.server.sentBy.has(n.attrs.id)) return; // a receipt for a companion's message: relayed below
        want(n.attrs.participant == null, '<receipt type=read> to a person carries no participant');
        const ids = [n.attrs.id];
        const list = kid(n, 'list');
        if (list) {
            want(kids(n).length === 1 && kids(list).length > 0 && kids(list).every((x) => x.tag === 'item' && typeof x.attrs.id === 'string'), '<receipt><list> must hold <item id=…/>');
            ids.push(...kids(list).map((x) => x.attrs.id));
        } else {
            want(kids(n).length === 0, '<receipt type=read> children other than <list>');
        }
        want(new Set(ids).size === ids.length, `<receipt type=read> lists an id twice: ${ids.join(',')}`);
        const mine = `${this.device.user}:${this.device.device}`;
        for (const id of ids) {
            const st = peer.sentStanzas?.get(id);
            want(st && st.key === mine, `<receipt type=read id=${id}> to ${n.attrs.to}: ${peer.phone} never sent this device that message`);
        }
        this.log('peer.read', { ids, from: this.device.jid, to: n.attrs.to, type: n.attrs.type });
    }

    /** <message category=peer>: a companion asks its own phone (device 0) something. Checked as the
     *  phone and the server read it: to the account itself without a device, type=text, category=peer,
     *  push_priority=high_force, one <enc> straight under <message> (no <participants>), <device-identity>
     *  iff pkmsg, at most a <meta appdata=default>. The phone decrypts it: a protocolMessage
     *  PEER_DATA_OPERATION_REQUEST_MESSAGE (16) of type PLACEHOLDER_MESSAGE_RESEND (4) whose message keys
     *  name messages a peer sent this account (chat, fromMe=false, participant only in a group). Each
     *  request is recorded (GET /phone/placeholder-requests); unless config phoneResend is 'hold', the
     *  phone answers with the original message (phoneAnswerPlaceholder). */
    onPeerDataRequest(n) {
        const me = this.device;
        const own = `${me.user}@s.whatsapp.net`;
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type', 'category', 'push_priority'].includes(k));
        want(extra.length === 0, `peer <message> with unexpected attributes ${extra.join(',')}`);
        want(n.attrs.category === 'peer', `<message category=${n.attrs.category}>: want peer`);
        want(n.attrs.push_priority === 'high_force', `peer <message push_priority=${n.attrs.push_priority}>: want high_force`);
        want(n.attrs.type === 'text', `peer <message type=${n.attrs.type}>: want text`);
        want(n.attrs.to === own, `peer <message to=${n.attrs.to}>: want our own phone, ${own} (device 0, no device part)`);
        want(typeof n.attrs.id === 'string' && /^[0-9A-F]{16,64}$/.test(n.attrs.id), `peer <message id=${n.attrs.id}>: want upper-case hex`);
        const tags = kids(n).map((c) => c.tag);
        want(tags.filter((t) => t === 'enc').length === 1 && tags.every((t) => ['enc', 'device-identity', 'meta'].includes(t)) &&
            new Set(tags).size === tags.length, `peer <message> children ${tags.join(',')}: want one <enc>, <device-identity> iff pkmsg, <meta>`);
        const e = kid(n, 'enc');
        want(e.attrs.v === '2' && ['pkmsg', 'msg'].includes(e.attrs.type) && isBytes(e.content) && e.content.length > 0 &&
            Object.keys(e.attrs).every((k) => ['v', 'type'].includes(k)), `peer <enc ${JSON.stringify(e.attrs)}>: want v=2 type=pkmsg|msg and bytes`);
        want((e.attrs.type === 'pkmsg') === (kid(n, 'device-identity') != null), 'peer <message>: <device-identity> iff pkmsg');
        const meta = kid(n, 'meta');
        if (meta) want(Object.keys(meta.attrs).length === 1 && meta.attrs.appdata === 'default' && meta.content == null, `peer <meta ${JSON.stringify(meta.attrs)}>: want appdata=default alone`);
        this.send({ tag: 'ack', attrs: { id: n.attrs.id, class: 'message', from: own, t: String(nowSec()) } });
        const phone = this.server.peers.get(me.user);
        const requestId = n.attrs.id;
        (async () => {
            let m;
            try {
                m = await phone.decrypt(me.user, me.device, e.attrs.type, e.content);
            } catch (err) {
                return this.violation(`peer message ${requestId}: our phone cannot decrypt it: ${err.message}`);
            }
            const pm = m.protocolMessage;
            const fields = Object.keys(proto.Message.toObject(m)).filter((k) => k !== 'messageContextInfo');
            if (pm?.type === proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_REQUEST) {
                // app-state keys asked of our phone (lib/fake_appstate.mjs): the ids, nothing else
                const ids = pm.appStateSyncKeyRequest?.keyIds ?? [];
                if (fields.length !== 1 || !ids.length || ids.some((k) => !k.keyId?.length))
                    return this.violation(`app-state key request ${requestId}: want protocolMessage alone with key ids`);
                return this.server.appstate.onKeyRequest(this, ids.map((k) => Buffer.from(k.keyId)));
            }
            const req = pm?.peerDataOperationRequestMessage;
            const problems = [];
            // An on-demand history request: lib/fake_history.mjs checks and answers it.
            if (fields.length === 1 && req?.peerDataOperationRequestType === proto.Message.PeerDataOperationRequestType.HISTORY_SYNC_ON_DEMAND) {
                const bad = (this.server.history ??= new FakeHistory(this.server)).onDemand(this, requestId, req);
                return bad ? this.violation(`history on-demand request ${requestId}: ${bad}`) : undefined;
            }
            if (fields.length !== 1 || !pm) problems.push(`a Message with ${fields.join(',')}, want protocolMessage alone`);
            else if (pm.type !== proto.Message.ProtocolMessage.Type.PEER_DATA_OPERATION_REQUEST_MESSAGE) problems.push(`protocolMessage type ${pm.type}, want PEER_DATA_OPERATION_REQUEST_MESSAGE`);
            else if (!req) problems.push('no peerDataOperationRequestMessage');
            else if (req.peerDataOperationRequestType !== proto.Message.PeerDataOperationRequestType.PLACEHOLDER_MESSAGE_RESEND) problems.push(`request type ${req.peerDataOperationRequestType}, want PLACEHOLDER_MESSAGE_RESEND`);
            else if (!req.placeholderMessageResendRequest?.length) problems.push('no placeholderMessageResendRequest');
            const keys = problems.length ? [] : req.placeholderMessageResendRequest.map((x) => x.messageKey);
            for (const k of keys) {
                const rec = k?.id ? this.server.plain.get(k.id) : null;
                if (!k || !k.id || !k.remoteJid || typeof k.fromMe !== 'boolean') { problems.push(`message key ${JSON.stringify(k)}: want remoteJid, fromMe, id`); continue; }
                if (!rec) { problems.push(`message key ${k.id}: no peer sent this account such a message`); continue; }
                if (k.remoteJid !== rec.chat) problems.push(`message key ${k.id}: remoteJid ${k.remoteJid}, want ${rec.chat}`);
                if (k.fromMe !== false) problems.push(`message key ${k.id}: fromMe ${k.fromMe}, want false`);
                if ((k.participant || null) !== rec.participant) problems.push(`message key ${k.id}: participant ${k.participant}, want ${rec.participant}`);
            }
            if (problems.length) {
                this.log('phone.placeholder.bad', { requestId, problems });
                return this.violation(`placeholder resend request ${requestId}: ${problems.join('; ')}`);
            }
            for (const k of keys) {
                const r = { requestId, id: k.id, remoteJid: k.remoteJid, participant: k.participant || null, encType: e.attrs.type, meta: !!meta };
                this.server.placeholderRequests.push(r);
                this.log('phone.placeholder.request', r);
                if ((this.server.config.phoneResend ?? 'answer') === 'answer')
                    await this.server.phoneAnswerPlaceholder({ id: k.id, requestId }).catch((err) => this.log('warning', { detail: `placeholder answer: ${err.message}` }));
            }
        })();
    }

    /** <receipt type=server-error>: a companion asks its own phone to upload a message's media again
     *  (the hosts no longer have it). Checked as the phone reads it: sent to the account itself, the
     *  id sealed under HKDF(media key, "WhatsApp Media Retry Notification") with the id as AD, <rmr>
     *  naming the message's chat. The phone answers as POST /phone/media-retry set it up for that id:
     *  reupload (the same encrypted file under a new direct path), not-found, or error (code); an id
     *  it was not told about is logged and left unanswered (a phone that is offline). */
    onMediaRetryRequest(n) {
        const own = `${this.device.user}@s.whatsapp.net`;
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type'].includes(k));
        want(extra.length === 0, `<receipt type=server-error> with unexpected attributes ${extra.join(',')}`);
        want(n.attrs.to === own, `<receipt type=server-error to=${n.attrs.to}>: want the account itself, ${own}`);
        const enc = kid(n, 'encrypt'), rmr = kid(n, 'rmr');
        want(enc && rmr && kids(n).length === 2, '<receipt type=server-error> wants exactly <encrypt> and <rmr>');
        const p = kid(enc, 'enc_p')?.content, iv = kid(enc, 'enc_iv')?.content;
        want(isBytes(p) && p.length > 16 && isBytes(iv) && iv.length === 12, '<encrypt> wants <enc_p> and a 12-byte <enc_iv>');
        const rextra = Object.keys(rmr.attrs).filter((k) => !['jid', 'from_me', 'participant'].includes(k));
        want(rextra.length === 0 && typeof rmr.attrs.jid === 'string' && ['true', 'false'].includes(rmr.attrs.from_me),
            `<rmr ${Object.keys(rmr.attrs).join(' ')}>: want jid and from_me=true|false`);
        const id = n.attrs.id;
        const plan = this.server.mediaRetry.get(id);
        this.log('media.retry', { id, chat: rmr.attrs.jid, fromMe: rmr.attrs.from_me, participant: rmr.attrs.participant ?? null, known: !!plan });
        if (!plan) return;
        want(rmr.attrs.jid === plan.chat, `<rmr jid=${rmr.attrs.jid}>: message ${id} is in ${plan.chat}`);
        want(rmr.attrs.from_me === 'false' && rmr.attrs.participant == null, '<rmr>: a received 1:1 message is from_me=false without participant');
        const key = Buffer.from(crypto.hkdfSync('sha256', plan.mediaKey, Buffer.alloc(0), 'WhatsApp Media Retry Notification', 32));
        const gcm = (encrypt, ivb, data) => {
            const c = (encrypt ? crypto.createCipheriv : crypto.createDecipheriv)('aes-256-gcm', key, ivb);
            c.setAAD(Buffer.from(id));
            if (encrypt) return Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
            c.setAuthTag(Buffer.from(data.subarray(data.length - 16)));
            return Buffer.concat([c.update(data.subarray(0, data.length - 16)), c.final()]);
        };
        let req;
        try {
            req = proto.ServerErrorReceipt.decode(gcm(false, Buffer.from(iv), Buffer.from(p)));
        } catch (e) {
            bad(`<enc_p> of the media retry request for ${id} does not open under the message's media key: ${e.message}`);
        }
        want(req.stanzaId === id, `the sealed request names ${req.stanzaId}, the receipt ${id}`);
        plan.asked = (plan.asked || 0) + 1;
        const attrs = { from: own, type: 'mediaretry', id, t: String(nowSec()) };
        const rmrOut = { tag: 'rmr', attrs: { jid: plan.chat, from_me: 'false' } };
        if (plan.answer === 'error') {
            this.sendAcked({ tag: 'notification', attrs, content: [rmrOut, { tag: 'error', attrs: { code: String(plan.code ?? 2) } }] });
        } else {
            const ResultType = proto.MediaRetryNotification.ResultType;
            const answer = { stanzaId: id, result: plan.answer === 'reupload' ? ResultType.SUCCESS : ResultType.NOT_FOUND };
            if (plan.answer === 'reupload') answer.directPath = plan.newPath = this.server.media.reupload(plan.directPath);
            const ivOut = crypto.randomBytes(12);
            const sealed = gcm(true, ivOut, Buffer.from(proto.MediaRetryNotification.encode(answer).finish()));
            this.sendAcked({ tag: 'notification', attrs, content: [
                { tag: 'encrypt', attrs: {}, content: [{ tag: 'enc_p', attrs: {}, content: sealed }, { tag: 'enc_iv', attrs: {}, content: ivOut }] },
                rmrOut] });
        }
        this.log('media.retry.answer', { id, answer: plan.answer, newPath: plan.newPath ?? null });
    }

    /** A companion's receipt for a message another companion sent: passed on to the sender's connection. */
    relayReceipt(n) {
        const from = this.server.sentBy.get(n.attrs.id);
        const type = n.attrs.type;
        if (!from || !this.device || (type != null && !['read', 'played', 'retry'].includes(type))) return;
        const c = [...this.server.conns].find((x) => x.device && x.device.user === from.user && x.device.device === from.device && x.state === 'logged-in' && x.open);
        if (!c) return;
        const attrs = { from: `${this.device.user}:${this.device.device}@s.whatsapp.net`, id: n.attrs.id, t: String(nowSec()), ...(type ? { type } : {}) };
        c.sendAcked({ tag: 'receipt', attrs, content: type === 'retry' ? n.content : undefined });
        this.log('receipt.relay', { id: n.attrs.id, type: type ?? null, to: c.device.jid });
    }

    onUsync(n) {
        wantChildren(n, ['usync'], '<iq xmlns=usync>');
        const u = kids(n)[0];
        want(typeof u.attrs.sid === 'string' && u.attrs.sid.length > 0, '<usync> without sid');
        want(u.attrs.mode === 'query', `<usync mode=${u.attrs.mode}>, want query`);
        want(['message', 'interactive', 'background'].includes(u.attrs.context), `<usync context=${u.attrs.context}>`);
        const q = kid(u, 'query'), list = kid(u, 'list');
        want(q && list, '<usync> needs <query> and <list>');
        const dv = kid(q, 'devices');
        const protocols = kids(q).map((x) => x.tag);
        if (kid(q, 'contact')) return this.onUsyncContacts(n, u, q, list);
        if (kid(q, 'status')) return this.onUsyncStatus(n, u, q, list);
        want(protocols.length > 0 && protocols.every((t) => ['devices', 'lid'].includes(t)), `<usync> query protocols ${protocols.join(',')}: this server knows devices, lid and contact`);
        if (dv) want(dv.attrs.version === '2', '<devices> must be version 2');
        const users = kids(list);
        want(users.length > 0 && users.every((x) => x.tag === 'user' && typeof x.attrs.jid === 'string'), '<list> must hold <user jid=…/>');
        const out = [];
        for (const x of users) {
            const r = this.server.resolveJid(x.attrs.jid);
            want(r && !x.attrs.jid.split('@')[0].includes(':'), `usync user ${x.attrs.jid} must be a user JID without device`);
            const devs = this.devicesOf(r.user);
            if (!devs) continue;
            const content = [];
            if (dv) content.push({ tag: 'devices', attrs: {}, content: [
                { tag: 'device-list', attrs: {}, content: devs.map((d) => ({ tag: 'device', attrs: { id: String(d.id), ...(d.keyIndex != null ? { 'key-index': String(d.keyIndex) } : {}) } })) }
            ] });
            // The lid protocol maps a phone number to its LID, so a user asked by LID gets no <lid>:
            // clients read the mapping from <user jid=PN><lid val/> only (whatsapp-rust skips a <lid>
            // under a LID user; Baileys would store the LID as its own number, "Invalid LID-PN
            // mapping", and force-refresh its sessions with every member asked this way).
            if (kid(q, 'lid') && !r.lid) content.push({ tag: 'lid', attrs: { val: `${this.server.peers.get(r.user).lid}@lid` } });
            out.push({ tag: 'user', attrs: { jid: x.attrs.jid }, content });
        }
        this.log('usync', { users: users.map((x) => x.attrs.jid) });
        const answer = () => this.result(n, [{ tag: 'usync', attrs: { sid: u.attrs.sid, mode: 'query', context: u.attrs.context, index: '0', last: 'true' }, content: [
            { tag: 'list', attrs: {}, content: out }
        ] }]);
        const delay = this.server.config.usyncDelayMs ?? 0;
        if (delay > 0) this.timer(answer, delay);
        else answer();
    }

    /** <usync context=interactive><query><contact/></query><list><user><contact>+digits</contact></user>…: which
     * numbers have an account. The answer echoes each query in <contact type=in|out>. */
    onUsyncContacts(n, u, q, list) {
        const protocols = kids(q).map((x) => x.tag);
        want(protocols.every((t) => ['contact', 'business', 'lid'].includes(t)) && kids(kid(q, 'contact')).length === 0 && Object.keys(kid(q, 'contact').attrs).length === 0,
            `<usync> contact query protocols ${protocols.join(',')}`);
        want(u.attrs.context === 'interactive', `<usync context=${u.attrs.context}> for a contact query, want interactive`);
        const users = kids(list);
        want(users.length > 0 && users.length <= 100, `<usync> contact query with ${users.length} users`);
        const out = [];
        const phones = [];
        for (const x of users) {
            want(x.tag === 'user' && x.attrs.jid == null && kids(x).length === 1 && kids(x)[0].tag === 'contact', '<user> of a contact query must hold exactly one <contact>');
            const c = kids(x)[0];
            const text = Buffer.isBuffer(c.content) || c.content instanceof Uint8Array ? Buffer.from(c.content).toString('utf8') : c.content;
            want(typeof text === 'string' && /^\+[1-9][0-9]{6,14}$/.test(text), `<contact>${text}</contact>: want +digits`);
            const digits = text.slice(1);
            phones.push(digits);
            const known = this.server.peers.has(digits);
            const content = [{ tag: 'contact', attrs: { type: known ? 'in' : 'out' }, content: Buffer.from(text) }];
            if (known && kid(q, 'lid')) content.push({ tag: 'lid', attrs: { val: `${this.server.peers.get(digits).lid}@lid` } });
            out.push({ tag: 'user', attrs: { jid: `${digits}@s.whatsapp.net` }, content });
        }
        this.log('usync.contacts', { phones });
        this.result(n, [{ tag: 'usync', attrs: { sid: u.attrs.sid, mode: 'query', context: u.attrs.context, index: '0', last: 'true' }, content: [
            { tag: 'list', attrs: {}, content: out }
        ] }]);
    }

    /** <usync><query><status/></query><list><user jid/>…: each person's about text (<status t>text</status>), or
     * <status code=401/> when they hide it from us. */
    onUsyncStatus(n, u, q, list) {
        want(kids(q).length === 1 && kids(q)[0].tag === 'status', `<usync> status query with ${kids(q).map((x) => x.tag).join(',')}`);
        const users = kids(list);
        want(users.length > 0 && users.every((x) => x.tag === 'user' && typeof x.attrs.jid === 'string' && !x.attrs.jid.split('@')[0].includes(':')), '<list> must hold <user jid=…/> without devices');
        const out = users.map((x) => {
            const r = this.server.resolveJid(x.attrs.jid);
            const peer = r ? this.server.peers.get(r.user) : null;
            const p = peer?.profile ?? {};
            const st = !peer || p.aboutHidden ? { tag: 'status', attrs: { code: '401', type: 'error' } }
                : { tag: 'status', attrs: { t: String(p.aboutAt ?? 1700000000) }, content: Buffer.from(p.about ?? 'Hey there! I am using WhatsApp.') };
            return { tag: 'user', attrs: { jid: x.attrs.jid }, content: [st] };
        });
        this.log('usync.status', { users: users.map((x) => x.attrs.jid) });
        this.result(n, [{ tag: 'usync', attrs: { sid: u.attrs.sid, mode: 'query', context: u.attrs.context, index: '0', last: 'true' }, content: [
            { tag: 'list', attrs: {}, content: out }
        ] }]);
    }

    /** <iq xmlns=w:profile:picture target=person> get; without target, set (or remove) our own. */
    onPictureIq(n) {
        const q = kids(n)[0];
        if (n.attrs.type === 'get') {
            want(kids(n).length === 1 && q.tag === 'picture' && ['image', 'preview'].includes(q.attrs.type) && q.attrs.query === 'url', '<iq xmlns=w:profile:picture type=get> wants <picture type=image|preview query=url>');
            const r = this.server.resolveJid(String(n.attrs.target ?? ''));
            want(r && !String(n.attrs.target).split('@')[0].includes(':'), `picture of ${n.attrs.target}: want a person's JID without device`);
            const p = this.server.peers.get(r.user)?.profile ?? {};
            if (p.pictureHidden) return this.iqError(n, 401, 'not-authorized');
            if (!p.picture) return this.iqError(n, 404, 'item-not-found');
            const host = this.server.media?.pictures?.has(`/pps/${r.user}/${p.picture}.jpg`) ? this.server.media.hostname : 'pps.example.invalid';
            return this.result(n, [{ tag: 'picture', attrs: { id: p.picture, type: q.attrs.type, url: `https://${host}/pps/${r.user}/${p.picture}.jpg`, direct_path: `/v/${p.picture}.jpg` } }]);
        }
        want(n.attrs.target == null, '<iq xmlns=w:profile:picture type=set> for another person');
        const me = this.server.ownProfile;
        if (kids(n).length === 0) {
            me.picture = null;
            return this.result(n);
        }
        want(kids(n).length === 1 && q.tag === 'picture' && q.attrs.type === 'image' && q.content instanceof Uint8Array, '<picture type=image> with the bytes');
        const size = jpegSize(q.content);
        want(size != null, '<picture type=image> whose bytes are no JPEG');
        want(size[0] <= 640 && size[1] <= 640, `<picture> of ${size?.[0]}×${size?.[1]}: more than 640 px a side`);
        me.picture = { id: String(nowSec()) + String(++me.seq), width: size[0], height: size[1] };
        this.result(n, [{ tag: 'picture', attrs: { id: me.picture.id } }]);
    }

    /** <iq xmlns=status type=set><status>text</status>: our own about text. */
    onAboutSet(n) {
        const k = kids(n);
        want(k.length === 1 && k[0].tag === 'status' && k[0].content instanceof Uint8Array && k[0].content.length > 0, '<iq xmlns=status type=set> wants <status>text</status>');
        const text = Buffer.from(k[0].content).toString('utf8');
        want([...text].length <= 139, `about text of ${[...text].length} characters`);
        this.server.ownProfile.about = text;
        this.result(n);
    }

    /** <iq xmlns=w:biz type=get><business_profile v=244><profile jid/></business_profile>: a peer's business
     * profile (peer.profile.business), or a <business_profile> without <profile> for a person. */
    onBusiness(n) {
        const bp = kids(n)[0];
        want(kids(n).length === 1 && bp.tag === 'business_profile' && bp.attrs.v === '244', '<iq xmlns=w:biz> wants <business_profile v=244>');
        const pr = kids(bp);
        want(pr.length === 1 && pr[0].tag === 'profile' && typeof pr[0].attrs.jid === 'string' && !pr[0].attrs.jid.split('@')[0].includes(':'), '<business_profile> wants one <profile jid> of a person');
        const r = this.server.resolveJid(pr[0].attrs.jid);
        const biz = r ? this.server.peers.get(r.user)?.profile?.business : null;
        if (!biz) return this.result(n, [{ tag: 'business_profile', attrs: {} }]);
        const t = (tag, v) => (v == null ? [] : [{ tag, attrs: {}, content: Buffer.from(v) }]);
        this.result(n, [{ tag: 'business_profile', attrs: {}, content: [{ tag: 'profile', attrs: { jid: pr[0].attrs.jid }, content: [
            ...t('description', biz.description), ...t('address', biz.address), ...t('email', biz.email),
            ...(biz.websites ?? []).flatMap((w) => t('website', w)),
            ...(biz.category ? [{ tag: 'categories', attrs: {}, content: [{ tag: 'category', attrs: { id: '1' }, content: Buffer.from(biz.category) }] }] : []),
            ...(biz.hours ? [{ tag: 'business_hours', attrs: { timezone: biz.timezone ?? 'UTC' }, content: biz.hours.map((h) => ({ tag: 'business_hours_config', attrs: h })) }] : [])
        ] }] }]);
    }

    /** <iq xmlns=blocklist> get (<list><item jid/>…) or set (<item action=block|unblock jid [pn_jid]/>). By LID, a
     * block names the number beside it (pn_jid), as WhatsApp wants. */
    onBlocklist(n) {
        const bl = this.server.ownProfile.blocked;
        if (n.attrs.type === 'get') {
            want(kids(n).length === 0, '<iq xmlns=blocklist type=get> with children');
            return this.result(n, [{ tag: 'list', attrs: {}, content: [...bl].map((jid) => ({ tag: 'item', attrs: { jid } })) }]);
        }
        const k = kids(n);
        want(k.length === 1 && k[0].tag === 'item' && ['block', 'unblock'].includes(k[0].attrs.action), '<iq xmlns=blocklist type=set> wants one <item action=block|unblock>');
        const it = k[0].attrs;
        const r = this.server.resolveJid(String(it.jid ?? ''));
        want(r && !String(it.jid).split('@')[0].includes(':'), `<item jid=${it.jid}>: want a person's JID`);
        const peer = this.server.peers.get(r.user);
        if (!peer) return this.iqError(n, 404, 'item-not-found');
        if (String(it.jid).endsWith('@lid') && it.action === 'block')
            want(it.pn_jid === peer.jid, `<item jid=${it.jid} pn_jid=${it.pn_jid}>: a block by LID names the number (${peer.jid})`);
        // Kept by phone number JID, whichever form was named.
        if (it.action === 'block') bl.add(peer.jid);
        else bl.delete(peer.jid);
        this.log('blocklist', { action: it.action, jid: it.jid, pn_jid: it.pn_jid ?? null });
        this.result(n);
    }

    onKeyFetch(n, key) {
        const users = kids(key);
        want(users.length > 0 && users.every((x) => x.tag === 'user' && typeof x.attrs.jid === 'string'), '<key> must hold <user jid=…/>');
        const out = [];
        for (const x of users) {
            const r = this.server.resolveJid(x.attrs.jid);
            want(r, `prekey fetch for ${x.attrs.jid}`);
            const { user, dev } = r;
            if (this.device && user === this.device.user && dev === this.device.device) bad('prekey fetch for the requesting device itself');
            if (this.server.peers.has(user) && dev === 0) {
                out.push(this.server.peers.get(user).bundleNode(x.attrs.jid));
                continue;
            }
            const d = this.server.devices.get(`${user}:${dev}`);
            if (!d || d.removed || d.prekeys.size === 0) {
                out.push({ tag: 'user', attrs: { jid: x.attrs.jid }, content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }] });
                continue;
            }
            const pid = Math.min(...d.prekeys.keys());
            const pv = d.prekeys.get(pid);
            d.prekeys.delete(pid);
            d.usedPrekeys.set(pid, pv);
            out.push({ tag: 'user', attrs: { jid: x.attrs.jid }, content: [
                ...deviceKeyNodes(d),
                { tag: 'key', attrs: {}, content: [{ tag: 'id', attrs: {}, content: id3(pid) }, { tag: 'value', attrs: {}, content: pv }] }
            ] });
        }
        this.log('prekeys.fetch', { jids: users.map((x) => x.attrs.jid) });
        this.result(n, [{ tag: 'list', attrs: {}, content: out }]);
    }

    /** The answer to a retry receipt: one <enc count=N> straight to the device that asked. */
    onRetryResend(n) {
        const { id, to, type } = n.attrs;
        const me = this.device;
        want((type === 'text' || type === 'media' || type === 'poll') && typeof id === 'string' && id.length > 0, '<message> resend needs id and type=text, media or poll');
        const tags = kids(n).map((c) => c.tag);
        want(tags.every((t) => ['enc', 'device-identity', 'meta'].includes(t)) && tags.filter((t) => t === 'enc').length === 1, `resend children ${tags.join(',')}`);
        want((type === 'poll') === (kid(n, 'meta')?.attrs?.polltype != null), `resend type=${type} with <meta polltype=${kid(n, 'meta')?.attrs?.polltype}>`);
        const e = kid(n, 'enc');
        want(e.attrs.v === '2' && ['pkmsg', 'msg'].includes(e.attrs.type) && /^[1-9][0-9]*$/.test(e.attrs.count) && isBytes(e.content), 'resend <enc v=2 type count> with bytes');
        want((e.attrs.type === 'pkmsg') === (kid(n, 'device-identity') != null), 'resend: <device-identity> iff pkmsg');
        const r = this.server.resolveJid(to);
        this.send({ tag: 'ack', attrs: { id, class: 'message', from: to, t: String(nowSec()) } });
        const peer = this.server.peers.get(r.user);
        if (r.dev !== 0 || !peer) return;
        (async () => {
            try {
                const msg = await peer.decrypt(me.user, me.device, e.attrs.type, e.content);
                const mt = mediaTypeOf(msg);
                if ((type === 'media') !== (mt != null) || (mt ?? undefined) !== e.attrs.mediatype) {
                    this.log('peer.fail', { id, detail: `resend type=${type} <enc mediatype=${e.attrs.mediatype}> holding ${mt ?? 'no media'}` });
                    return;
                }
                const rec = peer.received.get(id) || { id, count: 0 };
                rec.retries = (rec.retries || 0) + 1;
                rec.text = msg?.conversation ?? msg?.extendedTextMessage?.text ?? rec.text ?? null;
                peer.received.set(id, rec);
                const media = mt ? (Object.values(msg).find((x) => x?.mediaKey) ??
                    msg.documentWithCaptionMessage?.message?.documentMessage) : null;
                this.log('peer.resend', { peer: peer.phone, id, count: Number(e.attrs.count), type: e.attrs.type, text: rec.text,
                    mediatype: mt, mediaKey: media?.mediaKey ? Buffer.from(media.mediaKey).toString('hex') : null,
                    directPath: media?.directPath ?? null });
            } catch (err) {
                this.log('peer.fail', { id, detail: `resend: ${String(err?.message || err)}` });
            }
        })();
    }

    /** A companion sends the peer a message: check it as WhatsApp would, decrypt as the peer.
     *  type=media carries <enc mediatype> (one of MEDIA_ENC_TYPES). */
    onPeerMessage(n) {
        const { id, to, type } = n.attrs;
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type', 'edit', 'phash', 'addressing_mode'].includes(k));
        want(extra.length === 0, `<message> with unexpected attributes ${extra.join(',')}`);
        want(typeof id === 'string' && /^[0-9A-F]{16,64}$/.test(id), `<message id=${id}>: want upper-case hex`);
        want(type === 'text' || type === 'reaction' || type === 'media' || type === 'poll', `<message type=${type}>, want text, reaction, media or poll`);
        // A poll or a vote says so in <meta polltype=creation|vote> (as the phones and Baileys do), nothing else does.
        const meta = kid(n, 'meta');
        want((type === 'poll') === (meta != null && ['creation', 'vote'].includes(meta.attrs.polltype)),
            `<message type=${type}> with <meta polltype=${meta?.attrs?.polltype}>`);
        if (n.attrs.edit != null) want(['1', '2', '7', '8'].includes(n.attrs.edit), `<message edit=${n.attrs.edit}>: want 1 (edit), 2 (pin), 7 or 8 (revoke)`);
        const rto = this.server.resolveJid(to);
        const peer = rto && this.server.peers.get(rto.user);
        want(peer && !to.split('@')[0].includes(':'), `<message to=${to}>, want a user JID without device`);
        const recipients = this.devicesOf(peer.phone);
        const ours = this.devicesOf(this.device.user) ?? [];
        const parts = kid(n, 'participants');
        want(parts != null, '<message> without <participants>');
        const tags = kids(n).map((c) => c.tag);
        // <reporting> (a message reporting token) rides along from Baileys at times.
        want(tags.every((t) => ['participants', 'device-identity', 'reporting', 'meta'].includes(t)), `<message> children ${tags.join(',')}`);
        const me = this.device;
        const encs = [];
        const seen = new Set();
        for (const t of kids(parts)) {
            want(t.tag === 'to' && typeof t.attrs.jid === 'string', '<participants> must hold <to jid=…>');
            want(!seen.has(t.attrs.jid), `<to jid=${t.attrs.jid}> twice`);
            seen.add(t.attrs.jid);
            const rt = this.server.resolveJid(t.attrs.jid);
            want(rt && !rt.unknown, `<to jid=${t.attrs.jid}>`);
            const { user, dev } = rt;
            want(!(user === me.user && dev === me.device), '<to> the sending device itself');
            want(user === peer.phone || user === me.user, `<to jid=${t.attrs.jid}> is neither the recipient nor our account`);
            want((user === peer.phone ? recipients : ours).some((x) => x.id === dev), `<to jid=${t.attrs.jid}>: no such device`);
            want(kids(t).length === 1 && kids(t)[0].tag === 'enc', '<to> must hold exactly one <enc>');
            const e = kids(t)[0];
            want(e.attrs.v === '2', `<enc v=${e.attrs.v}>, want 2`);
            want(['pkmsg', 'msg'].includes(e.attrs.type), `<enc type=${e.attrs.type}>`);
            want(isBytes(e.content) && e.content.length > 0, '<enc> content must be bytes');
            // A media message says its media type on every <enc> (whatsmeow's and Baileys' mediatype), others never.
            // Baileys leaves it out on a view-once medium (its getMediaType does not look inside the
            // wrapper), and WhatsApp takes that from it; whatsmeow-like clients (wapi) are held to it.
            want(type === 'media' ? MEDIA_ENC_TYPES.has(e.attrs.mediatype) || (e.attrs.mediatype == null && !wantHide(this.device))
                : e.attrs.mediatype == null,
                `<message type=${type}> with <enc mediatype=${e.attrs.mediatype}>`);
            want(encs.length === 0 || encs[0].mediatype === e.attrs.mediatype, '<enc> elements with different mediatype');
            // decrypt-fail=hide (nothing to show when unreadable) only on a reaction's, an edit's or a deletion's copies;
            // whatsmeow-like clients (wapi) always put it there, Baileys leaves it out.
            want((e.attrs['decrypt-fail'] == null || (e.attrs['decrypt-fail'] === 'hide' && (type === 'reaction' || n.attrs.edit != null))) &&
                (wantHide(this.device) ? (e.attrs['decrypt-fail'] === 'hide') === (type === 'reaction' || n.attrs.edit != null) : true),
                `<message type=${type}> with <enc decrypt-fail=${e.attrs['decrypt-fail']}>`);
            encs.push({ user, dev, type: e.attrs.type, body: e.content, mediatype: e.attrs.mediatype, edit: n.attrs.edit ?? null, stype: type });
        }
        want(encs.some((e) => e.user === peer.phone), 'no <enc> for any device of the recipient');
        const anyPk = encs.some((e) => e.type === 'pkmsg');
        const di = kid(n, 'device-identity');
        want(anyPk === (di != null), anyPk ? 'a pkmsg without <device-identity>' : '<device-identity> without any pkmsg');
        if (di) {
            want(isBytes(di.content), '<device-identity> content must be bytes');
            const adv = proto.ADVSignedDeviceIdentity.decode(di.content);
            want(adv.details?.length && adv.accountSignature?.length === 64 && adv.deviceSignature?.length === 64, '<device-identity> is not a signed device identity');
            // Baileys includes the account signature key, whatsmeow does not: when present it must be the account's.
            if (adv.accountSignatureKey?.length) {
                const ph = this.server.phones.get(me.user) ?? this.server.phone;
                want(eq(adv.accountSignatureKey, ph.identity.public), '<device-identity> carries a foreign account signature key');
            }
            const det = proto.ADVDeviceIdentity.decode(adv.details);
            want(det.keyIndex === me.keyIndex, `<device-identity> key index ${det.keyIndex}, want ${me.keyIndex}`);
        }
        const ack = { tag: 'ack', attrs: { id, class: 'message', from: to, t: String(nowSec()) } };
        const delay = this.server.config.ackDelayMs ?? 0;
        if (delay > 0) {
            const tm = setTimeout(() => { this.timers.delete(tm); this.send(ack); }, delay);
            this.timers.add(tm);
        } else {
            this.send(ack);
        }
        this.server.sentBy.set(id, { user: me.user, device: me.device });
        // Copies for companions go to their connections (queued until acked, like WhatsApp).
        for (const e of encs) {
            if (e.dev === 0) continue;
            const d = this.server.devices.get(`${e.user}:${e.dev}`);
            if (!d) continue;
            const node = { tag: 'message', attrs: { from: `${me.user}:${me.device}@s.whatsapp.net`, id, t: String(nowSec()), type,
                ...(n.attrs.edit != null ? { edit: n.attrs.edit } : {}),
                ...(e.user === me.user ? { recipient: to } : { notify: me.pushName || 'wapi' }) },
                content: [{ tag: 'enc', attrs: { v: '2', type: e.type, ...(e.mediatype ? { mediatype: e.mediatype } : {}) }, content: e.body }, ...(di ? [di] : [])] };
            const key = `${d.user}:${d.device}`;
            if (!this.server.inbox.has(key)) this.server.inbox.set(key, new Map());
            this.server.inbox.get(key).set(id, node);
            const c = [...this.server.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
            if (c) c.sendAcked(node);
            this.log('message.relay', { id, to: d.jid, type: e.type, online: !!c });
        }
        // decryptCopies false: the copies for the phones are relayed, not decrypted (load tests).
        if (this.server.config.decryptCopies === false) return;
        const primaryOf = (u) => this.server.peers.get(u);
        const sender = me.user;
        // Our own phone (device 0 of the sender's account) gets a deviceSentMessage: check it.
        const own0 = encs.find((e) => e.user === me.user && e.dev === 0);
        if (own0) (async () => {
            try {
                const m = await primaryOf(me.user).decrypt(sender, me.device, own0.type, own0.body);
                const dsm = m.deviceSentMessage;
                const dm = dsm?.message;
                // A poll's copy carries the same secret (our phone counts the votes too).
                const dpc = dm?.pollCreationMessage ?? dm?.pollCreationMessageV3;
                const ok = dsm && dsm.destinationJid === to && dm != null && (dm.conversation ?? dm.extendedTextMessage?.text ?? dm.reactionMessage ?? dm.protocolMessage ?? dm.pollUpdateMessage) != null
                    || (dsm && dsm.destinationJid === to && dpc != null && (dm.messageContextInfo ?? m.messageContextInfo)?.messageSecret?.length === 32)
                    || (dm != null && mediaTypeOf(dm) != null && mediaTypeOf(dm) === own0.mediatype);
                this.log(ok ? 'phone.dsm' : 'peer.fail', ok ? { id, destination: dsm.destinationJid, text: dm.conversation ?? dm.extendedTextMessage?.text ?? null }
                    : { id, detail: 'copy for our own phone is not a deviceSentMessage to the chat' });
            } catch (err) {
                this.log('peer.fail', { id, detail: `own phone: ${String(err?.message || err)}` });
            }
        })();
        const mine = encs.filter((e) => e.user === peer.phone && e.dev === 0);
        if (!mine.length) return;
        (async () => {
            let msg = null;
            for (const e of mine) {
                try {
                    msg = await peer.decrypt(sender, me.device, e.type, e.body);
                } catch (err) {
                    this.log('peer.fail', { id, detail: String(err?.message || err) });
                    return;
                }
            }
            if ((mediaTypeOf(msg) ?? undefined) !== mine[0].mediatype) {
                this.log('peer.fail', { id, detail: `<enc mediatype=${mine[0].mediatype}> on a message holding ${mediaTypeOf(msg) ?? 'no media'}` });
                return;
            }
            // A reaction goes as type=reaction; taking one back ("") also says edit=7.
            // An edit says edit=1 (MESSAGE_EDIT with the new message), a deletion 7 (ours) or 8 (an admin's, naming the author).
            const pm = msg?.protocolMessage;
            const want1 = pm?.type === 14 && pm.editedMessage != null && pm.key?.fromMe === true && !!pm.key?.id;
            const want7 = pm?.type === 0 && pm.key?.fromMe === true && !!pm.key?.id;
            const want8 = pm?.type === 0 && pm.key?.fromMe === false && !!pm.key?.id && !!pm.key?.participant;
            const ed = mine[0].edit;
            // A pin (or unpin) in a chat says edit=2, and only a pin does.
            const pin = msg?.pinInChatMessage;
            if ((pin != null) !== (ed === '2') || (pin && (!pin.key?.id || ![1, 2].includes(pin.type)))) {
                this.log('peer.fail', { id, detail: `<message edit=${ed}> holding ${pin ? `a pin ${JSON.stringify(pin)}` : 'no pin'}` });
                return;
            }
            if (pm && !(ed === '1' ? want1 : ed === '7' ? want7 : ed === '8' ? want8 : false) || (!pm && !msg?.reactionMessage && !pin && ed != null)) {
                this.log('peer.fail', { id, detail: `<message edit=${ed}> holding ${pm ? `protocolMessage type ${pm.type} key ${JSON.stringify(pm.key)}` : 'no protocolMessage'}` });
                return;
            }
            // A poll is type=poll with polltype creation and carries its 32-byte messageSecret; a vote polltype vote.
            const pc = msg?.pollCreationMessage ?? msg?.pollCreationMessageV2 ?? msg?.pollCreationMessageV3;
            const pu = msg?.pollUpdateMessage;
            const ptype = pc ? 'creation' : pu ? 'vote' : null;
            if ((ptype != null) !== (mine[0].stype === 'poll') || (ptype != null && ptype !== meta?.attrs?.polltype) ||
                (pc && msg.messageContextInfo?.messageSecret?.length !== 32) ||
                (pc && (msg.pollCreationMessageV3 ? pc.selectableOptionsCount !== 1 : pc.selectableOptionsCount !== 0)) ||
                (pu && (!pu.pollCreationMessageKey?.id || pu.vote?.encIv?.length !== 12 || !(pu.vote?.encPayload?.length >= 16)))) {
                this.log('peer.fail', { id, detail: `<message type=${mine[0].stype} polltype=${meta?.attrs?.polltype}> holding ${ptype ?? 'no poll'}` +
                    (pc ? ` (secret ${msg.messageContextInfo?.messageSecret?.length ?? 0} bytes, selectable ${pc.selectableOptionsCount})` : '') });
                return;
            }
            const rm = msg?.reactionMessage;
            if ((rm != null) !== (mine[0].stype === 'reaction') || (rm != null && (rm.text === '') !== (mine[0].edit === '7')) ||
                (rm != null && (!rm.key?.id || !rm.key.remoteJid || rm.key.fromMe == null))) {
                this.log('peer.fail', { id, detail: `<message type=${mine[0].stype} edit=${mine[0].edit}> holding ${rm ? `a reaction "${rm.text}" key ${JSON.stringify(rm.key)}` : 'no reaction'}` });
                return;
            }
            const r = peer.received.get(id) || { id, count: 0 };
            r.count++;
            r.text = msg?.conversation ?? msg?.extendedTextMessage?.text ?? null;
            r.replyTo = msg?.extendedTextMessage?.contextInfo?.stanzaId ?? msg?.locationMessage?.contextInfo?.stanzaId ??
                msg?.contactMessage?.contextInfo?.stanzaId ?? msg?.contactsArrayMessage?.contextInfo?.stanzaId ?? null;
            const loc = msg?.locationMessage;
            r.location = loc ? { latitude: loc.degreesLatitude, longitude: loc.degreesLongitude, name: loc.name ?? null,
                address: loc.address ?? null, url: loc.url ?? null } : null;
            const cards = msg?.contactMessage ? [msg.contactMessage] : msg?.contactsArrayMessage?.contacts ?? null;
            r.contacts = cards ? cards.map((x) => ({ displayName: x.displayName ?? null, vcard: x.vcard ?? null })) : null;
            r.poll = pc ? { name: pc.name ?? null, options: (pc.options ?? []).map((o) => o.optionName ?? null),
                selectableOptionsCount: pc.selectableOptionsCount ?? null, v3: !!msg.pollCreationMessageV3,
                secret: Buffer.from(msg.messageContextInfo.messageSecret).toString('hex') } : null;
            r.reaction = rm ? { target: rm.key.id, fromMe: !!rm.key.fromMe, remoteJid: rm.key.remoteJid, text: rm.text ?? '' } : null;
            const body = msg?.documentWithCaptionMessage?.message ?? msg;
            const ctxOf = body && Object.values(body).find((x) => x && typeof x === 'object' && x.contextInfo)?.contextInfo;
            r.forwarded = !!ctxOf?.isForwarded;
            r.forwardingScore = ctxOf?.forwardingScore ?? null;
            r.image = body?.imageMessage ? { caption: body.imageMessage.caption ?? null, directPath: body.imageMessage.directPath ?? null } : null;
            r.edit = pm?.type === 14 ? { target: pm.key.id, text: pm.editedMessage.conversation ?? pm.editedMessage.extendedTextMessage?.text ?? null } : null;
            r.revoke = pm?.type === 0 ? { target: pm.key.id, fromMe: pm.key.fromMe, participant: pm.key.participant ?? null } : null;
            r.from = sender;
            peer.received.set(id, r);
            this.log('peer.recv', { peer: peer.phone, id, text: r.text, replyTo: r.replyTo, count: r.count, devices: encs.length, pkmsg: mine.some((e) => e.type === 'pkmsg') });
            if (this.server.config.peerAutoReceipt && this.open)
                this.sendAcked({ tag: 'receipt', attrs: { from: peer.jid, id, t: String(nowSec()) } });
        })();
    }

    onPing(n) {
        const c = kids(n);
        if (n.content !== undefined) {
            want(c.length === 1 && c[0].tag === 'ping' && c[0].content === undefined, 'w:p iq must be empty or hold one empty <ping/>');
            wantNoAttrs(c[0], '<ping>');
        }
        this.log('ping', { id: n.attrs.id });
        this.send({ tag: 'iq', attrs: { from: SERVER_JID, type: 'result', id: n.attrs.id, t: String(nowSec()) } });
    }

    onCount(n, c) {
        wantNoAttrs(c, '<count>');
        want(c.content === undefined, '<count> must be empty');
        const count = this.device.prekeys.size;
        this.log('prekeys.count', { count });
        this.result(n, [{ tag: 'count', attrs: { value: String(count) } }]);
    }

    onDigest(n, c) {
        want(c.content === undefined, '<digest> must be empty');
        const d = this.device;
        if (d.prekeys.size === 0) return this.iqError(n, 404, 'item-not-found');
        // Shape of WhatsApp's answer as far as we know it; the hash is our own
        // (SHA-1 over identity, signed prekey and prekey values) and unverified.
        const ids = [...d.prekeys.keys()].sort((a, b) => a - b);
        const h = crypto.createHash('sha1');
        h.update(d.identityPub).update(d.skeyVal).update(d.skeySig);
        for (const i of ids) h.update(d.prekeys.get(i));
        this.result(n, [{
            tag: 'digest',
            attrs: {},
            content: [
                ...deviceKeyNodes(d),
                { tag: 'list', attrs: {}, content: ids.map((i) => ({ tag: 'id', attrs: {}, content: id3(i) })) },
                { tag: 'hash', attrs: {}, content: h.digest() }
            ]
        }]);
    }

    /** Checks a <skey> (id 3 bytes, value 32, signature 64 verified for real) and returns it. */
    checkSkey(s, identityPub) {
        wantChildren(s, ['id', 'value', 'signature'], '<skey>');
        const id = wantBytes(kid(s, 'id'), 3, '<skey><id>').readUIntBE(0, 3);
        const value = wantBytes(kid(s, 'value'), 32, '<skey><value>');
        const sig = wantBytes(kid(s, 'signature'), 64, '<skey><signature>');
        want(id > 0, 'signed prekey id 0');
        want(xeddsaVerify(identityPub, Buffer.concat([Buffer.from([5]), value]), sig),
            'signed prekey signature does not verify (identity key over 05 ‖ value)');
        return { id, value, sig };
    }

    onUpload(n) {
        const d = this.device;
        wantChildren(n, ['registration', 'type', 'identity', 'list', 'skey'], 'prekey upload');
        for (const c of kids(n)) wantNoAttrs(c, `<${c.tag}>`);
        const reg = wantBytes(kid(n, 'registration'), 4, '<registration>').readUInt32BE(0);
        want(reg === d.regId, `registration id ${reg}, the device paired with ${d.regId}`);
        want(eq(wantBytes(kid(n, 'type'), 1, '<type>'), [5]), '<type> must be 05');
        want(eq(wantBytes(kid(n, 'identity'), 32, '<identity>'), d.identityPub), '<identity> is not the paired identity key');
        const list = kid(n, 'list');
        want(Array.isArray(list.content), '<list> has no <key> children');
        const keys = list.content;
        want(keys.length >= 1 && keys.length <= this.server.config.maxPrekeysPerUpload,
            `${keys.length} prekeys in one upload, want 1..${this.server.config.maxPrekeysPerUpload}`);
        const seen = new Set();
        const fresh = [];
        for (const k of keys) {
            want(k.tag === 'key', `<list> holds <${k.tag}>`);
            wantNoAttrs(k, '<key>');
            wantChildren(k, ['id', 'value'], '<key>');
            const id = wantBytes(kid(k, 'id'), 3, '<key><id>').readUIntBE(0, 3);
            const value = wantBytes(kid(k, 'value'), 32, '<key><value>');
            want(id > 0, 'prekey id 0');
            want(!seen.has(id), `prekey id ${id} twice in one upload`);
            seen.add(id);
            want(!value.equals(Buffer.alloc(32)), `prekey ${id} is all zeros`);
            const old = d.prekeys.get(id) ?? d.usedPrekeys.get(id);
            want(old == null || old.equals(value), `prekey id ${id} uploaded again with another key`);
            fresh.push([id, value]);
        }
        const s = this.checkSkey(kid(n, 'skey'), d.identityPub);
        let skeyChanged = false;
        if (s.id === d.skeyId) {
            want(s.value.equals(d.skeyVal) && s.sig.equals(d.skeySig), `signed prekey ${s.id} differs from the one sent at pairing`);
        } else {
            skeyChanged = true;
            Object.assign(d, { skeyId: s.id, skeyVal: s.value, skeySig: s.sig });
        }
        for (const [id, v] of fresh) d.prekeys.set(id, v);
        const ids = fresh.map(([id]) => id);
        this.log('prekeys.upload', {
            count: fresh.length,
            firstId: Math.min(...ids),
            lastId: Math.max(...ids),
            total: d.prekeys.size,
            skeyId: s.id,
            skeyChanged
        });
        this.server.saveState();
        this.result(n);
    }

    onRotate(n, r) {
        const d = this.device;
        want(kids(r).length === 1 && kids(r)[0].tag === 'skey', '<rotate> must hold one <skey>');
        const s = this.checkSkey(kids(r)[0], d.identityPub);
        want(s.id !== d.skeyId || (s.value.equals(d.skeyVal) && s.sig.equals(d.skeySig)), `signed prekey id ${s.id} reused with another key`);
        Object.assign(d, { skeyId: s.id, skeyVal: s.value, skeySig: s.sig });
        this.log('prekeys.rotate', { skeyId: s.id });
        this.server.saveState();
        this.result(n);
    }

    onPassive(n) {
        want(kids(n).length === 1, `<iq xmlns=passive> with ${kids(n).length} children`);
        const c = kids(n)[0];
        want(c.tag === 'active' || c.tag === 'passive', `<iq xmlns=passive> holds <${c.tag}>`);
        wantNoAttrs(c, `<${c.tag}>`);
        want(c.content === undefined, `<${c.tag}> must be empty`);
        this.passive = c.tag === 'passive';
        this.log(c.tag, {});
        this.result(n);
    }

    onRemoveCompanion(n, c) {
        const d = this.device;
        want(c.attrs.jid === d.jid || c.attrs.jid === d.lid, `remove-companion-device jid=${c.attrs.jid}, want ${d.jid}`);
        want(typeof c.attrs.reason === 'string' && c.attrs.reason.length > 0, 'remove-companion-device without reason');
        d.removed = true;
        this.log('device.removed', { jid: d.jid, by: 'client', reason: c.attrs.reason });
        this.server.saveState();
        this.result(n);
    }

    // ── pairing ──
    /** The phone scanned a QR text: check it against this connection and send pair-success. */
    scan(q) {
        want(this.state === 'registering', 'QR scanned for a connection that is not registering');
        const i = this.refs.list.indexOf(q.ref);
        want(i >= 0, 'QR ref was not issued on this connection');
        want(Date.now() <= this.refs.validUntil[i], `QR ref ${i} has expired`);
        want(eq(q.noisePub, this.reg.noisePub), 'QR noise key is not the Noise static key of the connection');
        want(eq(q.identityPub, this.reg.identityPub), 'QR identity key is not the one in the ClientPayload');
        this.log('qr.scanned', { index: i, platform: q.platform, prefixed: q.prefixed });
        this.sendPairSuccess({ advSecret: q.advSecret, via: 'qr' });
    }

    sendPairSuccess({ advSecret, via }) {
        const phone = this.pairPhone ?? this.server.phone;
        this.stopRefs();
        const signed = phone.signDevice({ companionIdentityPub: this.reg.identityPub, advSecret });
        const id = this.newId();
        const content = [
            { tag: 'device-identity', attrs: {}, content: signed.bytes },
            { tag: 'platform', attrs: { name: phone.platform } },
            { tag: 'device', attrs: { jid: signed.jid, lid: signed.lid } }
        ];
        if (phone.bizName) content.push({ tag: 'biz', attrs: { name: phone.bizName } });
        this.log('pair.success-sent', { jid: signed.jid, lid: signed.lid, keyIndex: signed.keyIndex, via, tampered: signed.tampered });
        this.sendIq(
            { tag: 'iq', attrs: { from: SERVER_JID, type: 'set', id, xmlns: 'md', t: String(nowSec()) }, content: [{ tag: 'pair-success', attrs: {}, content }] },
            'pair-success',
            (answer) => this.onPairAnswer(answer, signed, via)
        );
    }

    onPairAnswer(a, signed, via) {
        if (a.attrs.type === 'error') {
            const e = kid(a, 'error');
            want(e != null, 'pair-success answered with an error iq without <error>');
            want(/^[0-9]{3}$/.test(e.attrs.code || ''), `pair-success error code ${e.attrs.code}`);
            this.log('pair.client-error', { code: Number(e.attrs.code), text: e.attrs.text ?? null, tampered: signed.tampered });
            this.settlePairing(Object.assign(new Error(`client refused pair-success: ${e.attrs.code} ${e.attrs.text}`), { clientError: e.attrs }));
            return this.close(`client refused pair-success (${e.attrs.code} ${e.attrs.text})`);
        }
        const problems = [];
        const sign = kids(a).length === 1 && kids(a)[0].tag === 'pair-device-sign' ? kids(a)[0] : null;
        const di = sign && kids(sign).length === 1 && kids(sign)[0].tag === 'device-identity' ? kids(sign)[0] : null;
        if (!di) problems.push('result must hold exactly <pair-device-sign><device-identity key-index=…>');
        else if (!isBytes(di.content)) problems.push('<device-identity> content must be bytes');
        else {
            const extra = Object.keys(di.attrs).filter((k) => k !== 'key-index');
            if (extra.length) problems.push(`<device-identity> unexpected attributes ${extra.join(',')}`);
            problems.push(...(this.pairPhone ?? this.server.phone).checkDeviceSign({
                signed,
                companionIdentityPub: this.reg.identityPub,
                bytes: Buffer.from(di.content),
                keyIndexAttr: di.attrs['key-index']
            }));
        }
        if (signed.tampered) problems.push(`the phone's pair-success was tampered (${signed.tampered}) but the client accepted it`);
        if (problems.length) {
            this.log('pair.fail', { problems, node: nodeToJson(a) });
            this.server.emit('violation', { conn: this.id, detail: problems.join('; ') });
            this.send({ tag: 'iq', attrs: { from: SERVER_JID, type: 'error', id: a.attrs.id }, content: [{ tag: 'error', attrs: { code: '401', text: 'not-authorized' } }] });
            this.settlePairing(new Error(`pair-device-sign rejected: ${problems.join('; ')}`));
            return this.close('bad pair-device-sign', { delayMs: this.server.config.closeDelayMs });
        }
        const [user, rest] = signed.jid.split('@')[0].split(':');
        const d = {
            jid: signed.jid,
            lid: signed.lid,
            user,
            device: Number(rest),
            keyIndex: signed.keyIndex,
            noisePub: this.reg.noisePub,
            identityPub: this.reg.identityPub,
            regId: this.reg.regId,
            skeyId: this.reg.skeyId,
            skeyVal: this.reg.skeyVal,
            skeySig: this.reg.skeySig,
            os: this.reg.os,
            platformType: this.reg.platformType,
            pushName: this.reg.pushName,
            via,
            pairedAt: Date.now(),
            removed: false,
            prekeys: new Map(),
            usedPrekeys: new Map()
        };
        this.server.devices.set(`${user}:${d.device}`, d);
        this.server.saveState();
        this.log('pair.done', { jid: d.jid, lid: d.lid, via, keyIndex: d.keyIndex });
        this.settlePairing(null, { ok: true, jid: d.jid, lid: d.lid, device: d.device, via, conn: this.id });
        this.send({ tag: 'stream:error', attrs: { code: '515' } });
        this.close('paired: restart required (515)', { delayMs: this.server.config.closeDelayMs });
    }

    onLinkCode(n, c) {
        const stage = c.attrs.stage;
        const phone = this.server.phone;
        const jid = c.attrs.jid;
        want(typeof jid === 'string' && /^[1-9][0-9]{6,14}@s\.whatsapp\.net$/.test(jid), `link_code_companion_reg jid=${jid} is not a phone-number JID`);
        if (stage === 'companion_hello') {
            wantChildren(c, ['link_code_pairing_wrapped_companion_ephemeral_pub', 'companion_server_auth_key_pub',
                'companion_platform_id', 'companion_platform_display', 'link_code_pairing_nonce'], 'companion_hello');
            want(['true', 'false'].includes(c.attrs.should_show_push_notification),
                `should_show_push_notification=${c.attrs.should_show_push_notification}`);
            const wrapped = wantBytes(kid(c, 'link_code_pairing_wrapped_companion_ephemeral_pub'), 80, 'wrapped companion ephemeral');
            const authKey = wantBytes(kid(c, 'companion_server_auth_key_pub'), 32, 'companion_server_auth_key_pub');
            want(eq(authKey, this.reg.noisePub), 'companion_server_auth_key_pub is not the Noise static key of the connection');
            const platformId = textOf(kid(c, 'companion_platform_id'));
            want(COMPANION_PLATFORM_IDS.includes(platformId), `companion_platform_id ${JSON.stringify(platformId)} unknown`);
            const display = textOf(kid(c, 'companion_platform_display'));
            want(typeof display === 'string' && /^[^()]+ \([^()]+\)$/.test(display), `companion_platform_display ${JSON.stringify(display)}, want "Browser (OS)"`);
            const nonce = kid(c, 'link_code_pairing_nonce').content;
            want(nonce === '0' || (isBytes(nonce) && nonce.length === 1 && (nonce[0] === 0 || nonce[0] === 0x30)),
                'link_code_pairing_nonce must be 0');
            if (jid.split('@')[0] !== phone.phoneNumber) {
                this.log('paircode.hello', { jid, accepted: false });
                return this.iqError(n, 404, 'item-not-found');
            }
            const ref = `${crypto.randomBytes(18).toString('base64')}`;
            this.codePairing = { jid, wrapped, platformId, display, ref, stage: 'hello', push: c.attrs.should_show_push_notification };
            this.log('paircode.hello', { jid, accepted: true, platformId, display, ref });
            return this.result(n, [{ tag: 'link_code_companion_reg', attrs: {}, content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(ref) }] }]);
        }
        if (stage === 'companion_finish') {
            const cp = this.codePairing;
            want(cp != null && cp.stage === 'primary-hello', 'companion_finish before the phone sent primary_hello');
            want(jid === cp.jid, `companion_finish jid=${jid}, companion_hello had ${cp.jid}`);
            wantChildren(c, ['link_code_pairing_wrapped_key_bundle', 'companion_identity_public', 'link_code_pairing_ref'], 'companion_finish');
            const bundle = wantBytes(kid(c, 'link_code_pairing_wrapped_key_bundle'), null, 'wrapped key bundle');
            const ident = wantBytes(kid(c, 'companion_identity_public'), 32, 'companion_identity_public');
            want(eq(ident, this.reg.identityPub), 'companion_identity_public is not the identity key of the ClientPayload');
            const ref = wantBytes(kid(c, 'link_code_pairing_ref'), null, 'link_code_pairing_ref');
            want(ref.toString() === cp.ref, 'link_code_pairing_ref differs from the one the server issued');
            let adv;
            try {
                adv = phone.finishCodePairing(cp.phoneState, { wrappedKeyBundle: bundle, companionIdentityPub: ident });
            } catch (e) {
                if (!(e instanceof PhoneError)) throw e;
                this.log('paircode.finish', { ok: false, detail: e.message });
                this.iqError(n, 401, 'not-authorized');
                this.settlePairing(new Error(`code pairing failed: ${e.message}`));
                return this.close(`code pairing failed: ${e.message}`, { delayMs: this.server.config.closeDelayMs });
            }
            cp.stage = 'finished';
            this.log('paircode.finish', { ok: true });
            this.result(n);
            return this.sendPairSuccess({ advSecret: adv.advSecret, via: 'code' });
        }
        bad(`link_code_companion_reg stage=${stage}`);
    }

    /** The user typed `code` on the phone: primary_hello notification. */
    enterCode(code) {
        const cp = this.codePairing;
        want(cp && cp.stage === 'hello', 'no companion_hello pending on this connection');
        const r = this.server.phone.startCodePairing({ code, wrappedCompanionEphemeral: cp.wrapped });
        cp.phoneState = r.state;
        cp.stage = 'primary-hello';
        const id = this.newId();
        this.log('paircode.primary-hello', { ref: cp.ref });
        this.sendAcked({
            tag: 'notification',
            attrs: { from: SERVER_JID, type: 'link_code_companion_reg', id, t: String(nowSec()) },
            content: [{
                tag: 'link_code_companion_reg',
                attrs: { stage: 'primary_hello' },
                content: [
                    { tag: 'link_code_pairing_ref', attrs: {}, content: Buffer.from(cp.ref) },
                    { tag: 'primary_identity_pub', attrs: {}, content: r.primaryIdentityPub },
                    { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: r.wrappedPrimaryEphemeral }
                ]
            }]
        });
    }
}

/** Flag byte (bit 2 = zlib) + one binary node, with nothing left over. */
export function decodeFrame(f) {
    if (f.length < 2) throw new Error(`frame of ${f.length} bytes`);
    const flag = f[0];
    if (flag & ~0x02) throw new Error(`flag byte ${flag.toString(16)} has unknown bits`);
    let body = f.subarray(1);
    if (flag & 2) body = zlib.inflateSync(body, { maxOutputLength: 1 << 24 });
    const idx = { index: 0 };
    const node = decodeDecompressedBinaryNode(body, BINARY, idx);
    if (idx.index !== body.length) throw new Error(`${body.length - idx.index} bytes after the node`);
    return { node, compressed: (flag & 2) !== 0 };
}

export class FakeWhatsAppServer extends EventEmitter {
    constructor(opts = {}) {
        super();
        this.setMaxListeners(0);
        this.config = {
            host: '127.0.0.1',
            port: 0,
            path: '/ws/chat',
            origin: WA_ORIGIN,
            version: DEFAULT_VERSION,
            qrFirstMs: 60000,
            qrNextMs: 20000,
            qrRefs: 6,
            qrGraceMs: 2000,
            iqTimeoutMs: 20000,
            handshakeTimeoutMs: 20000,
            closeDelayMs: 100,
            maxPrekeysPerUpload: MAX_PREKEYS_PER_UPLOAD,
            silent: false,
            pkiDefect: null,
            helloTamper: null,
            logStream: null,
            statePath: null,
            ...opts
        };
        delete this.config.phone;
        delete this.config.pki;
        this.t0 = Date.now();
        this.seq = 0;
        this.events = [];
        this.conns = new Set();
        this.devices = new Map(); // "user:device" -> record
        this.peer = new FakePeer({ phone: opts.peerPhone || '15550009999' });
        this.peers = new Map([[this.peer.phone, this.peer]]);
        const second = new FakePeer({ phone: '15550008888', name: 'Peer Two' });
        this.peers.set(second.phone, second);
        this.phones = new Map();
        this.sentBy = new Map(); // message id -> {user, device} of the companion that sent it
        this.mediaRetry = new Map(); // message id -> how the phone answers a media retry request (setMediaRetry)
        this.plain = new Map(); // message id -> what a peer sent this account {message, chat, participant, ts, pushName, corruptAlways}
        this.placeholderRequests = []; // the placeholder resend requests the phone got
        this.peerStanzas = new Set(); // ids of the peer messages (category=peer) the phone sent
        this.inbox = new Map(); // "user:device" -> Map(id -> stanza) not yet acked by that companion
        this.ownProfile = { about: null, picture: null, blocked: new Set(), seq: 0 }; // our account's, as companions set it
        this.config.peerAutoReceipt = this.config.peerAutoReceipt ?? true;
        this.nextLoginFailure = null;
        this.groups = new FakeGroups(this, { bad });
        this.appstate = new FakeAppState(this, { bad });
        const state = this.config.statePath && fs.existsSync(this.config.statePath) ? this.loadState(this.config.statePath) : null;
        if (state) {
            this.pki = state.pki;
            this.phone = state.phone;
            for (const d of state.devices) this.devices.set(`${d.user}:${d.device}`, d);
        } else {
            const pki = opts.pki || makeTestPki();
            this.pki = { root: pki.root, intermediate: pki.intermediate, serverStatic: pki.serverStatic };
            this.phone = opts.phone instanceof FakePhone ? opts.phone : new FakePhone(opts.phone || {});
        }
        this.rebuildChain();
        this.saveState();
        this.phones.set(this.phone.phoneNumber, this.phone);
        // Every account's primary device (0) has a Signal identity too (libsignal).
        if (!this.peers.has(this.phone.phoneNumber)) this.peers.set(this.phone.phoneNumber, new FakePeer({ phone: this.phone.phoneNumber, name: 'Phone', lid: this.phone.lidUser }));
    }

    /** The phone of account `number` (made on first use, with its primary device's Signal keys). */
    /** "user[:dev]@server" (s.whatsapp.net or lid) → {user (phone number), dev, lid}; null if unknown. */
    resolveJid(jid) {
        const [ud, server] = String(jid).split('@');
        const [u, devs] = ud.split(':');
        const dev = Number(devs || 0);
        if (server === 's.whatsapp.net') return this.peers.has(u) ? { user: u, dev, lid: false } : { user: u, dev, lid: false, unknown: true };
        if (server === 'lid') {
            const p = [...this.peers.values()].find((x) => x.lid === u);
            return p ? { user: p.phone, dev, lid: true } : null;
        }
        return null;
    }

    phoneFor(number) {
        if (!number) return this.phone;
        if (!this.phones.has(number)) this.phones.set(number, new FakePhone({ phoneNumber: String(number) }));
        if (!this.peers.has(String(number))) this.peers.set(String(number), new FakePeer({ phone: String(number), name: 'Contact', lid: this.phones.get(number).lidUser }));
        return this.phones.get(number);
    }

    /** A companion device `device` for each of these existing accounts, registered as pairing would
     * leave it (real Curve25519 identity, signed prekey, `prekeys` one-time prekeys) but never
     * connected: usync lists it, prekey fetches hand out its keys, messages to it wait in its inbox.
     * For benches that need many multi-device recipients without as many client processes. */
    addCompanions(phones, device = 1, prekeys = 4) {
        if (!Number.isInteger(device) || device < 1 || device > 99) throw Object.assign(new Error(`peers/companions: device ${device}, want 1..99`), { status: 400 });
        if (!Number.isInteger(prekeys) || prekeys < 1 || prekeys > 200) throw Object.assign(new Error(`peers/companions: prekeys ${prekeys}, want 1..200`), { status: 400 });
        let added = 0;
        for (const p of phones) {
            const user = String(p);
            if (!this.peers.has(user)) throw Object.assign(new Error(`peers/companions: no account ${user}`), { status: 400 });
            if (this.devices.has(`${user}:${device}`)) continue;
            const identity = Curve.generateKeyPair();
            const skey = Curve.generateKeyPair();
            const d = {
                jid: `${user}:${device}@s.whatsapp.net`, lid: `${this.peers.get(user).lid}:${device}@lid`, user, device, keyIndex: 1,
                noisePub: Curve.generateKeyPair().public, identityPub: Buffer.from(identity.public),
                regId: 1 + crypto.randomInt(16383), skeyId: 1, skeyVal: Buffer.from(skey.public),
                skeySig: Buffer.from(Curve.sign(identity.private, Buffer.concat([Buffer.from([5]), skey.public]))),
                os: 'bench', platformType: 'DESKTOP', pushName: 'Contact', via: 'control', pairedAt: Date.now(), removed: false,
                prekeys: new Map(), usedPrekeys: new Map()
            };
            for (let i = 1; i <= prekeys; i++) d.prekeys.set(i, Buffer.from(Curve.generateKeyPair().public));
            this.devices.set(`${user}:${device}`, d);
            added++;
        }
        this.saveState();
        this.log(0, 'control', { op: 'peers.companions', device, added });
        return { ok: true, added };
    }

    /** Accounts like the peer (device 0 only) for these numbers; those that exist are left alone. */
    addPeers(phones, prekeys = 200) {
        let added = 0;
        for (const p of phones) {
            const phone = String(p);
            if (!/^[1-9][0-9]{6,14}$/.test(phone)) throw Object.assign(new Error(`peers/add: ${phone} is not digits`), { status: 400 });
            if (this.peers.has(phone)) continue;
            this.peers.set(phone, new FakePeer({ phone, name: 'Contact', prekeys }));
            added++;
        }
        this.log(0, 'control', { op: 'peers.add', added });
        return { ok: true, added };
    }

    get rootPublicKey() {
        return Buffer.from(this.pki.root.public);
    }

    rebuildChain() {
        this.certChain = makeChain({ ...this.pki, defect: this.config.pkiDefect });
    }

    log(conn, kind, data = {}) {
        const ev = { ...data, seq: ++this.seq, t: Date.now() - this.t0, conn, kind };
        if (this.stamps && (kind === 'send' || kind === 'recv') && data.node) this.stamp(conn, kind, data.node, ev.seq);
        // logNodes false: every stanza's JSON is not kept (long streams would fill the heap with them).
        if (this.config.logNodes === false && (kind === 'send' || kind === 'recv')) {
            this.emit('event', ev);
            return ev;
        }
        this.events.push(ev);
        if (this.events.length > 50000) this.events.splice(0, 10000);
        if (this.config.logStream) this.config.logStream.write(JSON.stringify(ev) + '\n');
        this.emit('event', ev);
        return ev;
    }

    /** Stamps (POST /stamps/start): for each <message> written to a connection, the wall time
     * (ms since the epoch, µs precision) and event seq when it was about to be encoded and written,
     * and when that connection's first <receipt> and <ack> with its id had been read and decoded.
     * Kept apart from the event log, which is capped, so long streams can be measured. */
    stamp(conn, kind, node, seq) {
        const id = node.attrs?.id;
        if (id == null) return;
        const key = `${conn} ${id}`;
        if (kind === 'send') {
            if (node.tag === 'message' && !this.stamps.has(key)) this.stamps.set(key, { conn, id, deliver: wallMs(), deliverSeq: seq });
            return;
        }
        const s = this.stamps.get(key);
        if (!s) return;
        if (node.tag === 'receipt' && s.receipt == null) Object.assign(s, { receipt: wallMs(), receiptSeq: seq });
        else if (node.tag === 'ack' && node.attrs.class === 'message' && s.ack == null) Object.assign(s, { ack: wallMs(), ackSeq: seq });
    }

    eventsSince(seq = 0, kind = null) {
        return this.events.filter((e) => e.seq > seq && (kind == null || e.kind === kind));
    }

    /** Resolves with the first event (after `since`, default: from now) for which pred holds. */
    waitFor(pred, { timeoutMs = 10000, since = this.seq, what = 'event' } = {}) {
        const hit = this.events.find((e) => e.seq > since && pred(e));
        if (hit) return Promise.resolve(hit);
        return new Promise((resolve, reject) => {
            const on = (e) => {
                if (e.seq > since && pred(e)) {
                    clearTimeout(timer);
                    this.off('event', on);
                    resolve(e);
                }
            };
            const timer = setTimeout(() => {
                this.off('event', on);
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
            }, timeoutMs);
            this.on('event', on);
        });
    }

    async start() {
        const cfg = this.config;
        // The media hosts, when asked for (mediaCa: the test CA's directory,
        // made there if missing; clients are told to trust its ca.pem).
        if (cfg.mediaCa) {
            const { makeTestCa } = await import('./fake_media_host.mjs');
            this.media = await new FakeMediaHost({ ca: makeTestCa(cfg.mediaCa), log: (kind, data) => this.log(0, kind, data) }).start();
        }
        this.wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 25, perMessageDeflate: false });
        this.http = http.createServer((req, res) => {
            this.log(0, 'ws.reject', { reason: 'plain HTTP request', path: req.url });
            res.writeHead(426, { 'content-type': 'text/plain' });
            res.end('upgrade required\n');
        });
        this.http.on('upgrade', (req, socket, head) => {
            const url = new URL(req.url, 'http://x');
            const reject = (status, reason) => {
                this.log(0, 'ws.reject', { reason, status, path: req.url, origin: req.headers.origin ?? null });
                socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
            };
            if (url.pathname !== cfg.path) return reject(404, `path ${url.pathname}, want ${cfg.path}`);
            if (req.headers.origin !== cfg.origin) return reject(403, `Origin ${req.headers.origin ?? '(none)'}, want ${cfg.origin}`);
            this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
        });
        await new Promise((resolve, reject) => {
            this.http.once('error', reject);
            this.http.listen(cfg.port, cfg.host, resolve);
        });
        this.port = this.http.address().port;
        this.url = `ws://${cfg.host}:${this.port}${cfg.path}`;
        return { url: this.url, port: this.port };
    }

    onConnection(ws, req) {
        const c = new Conn(this, ws, req);
        this.conns.add(c);
        c.log('ws.open', { remote: c.remote, origin: req.headers.origin, path: req.url });
        ws.on('message', (data, isBinary) => c.onMessage(data, isBinary));
        ws.on('error', (e) => c.log('ws.error', { detail: e.message }));
        ws.on('close', (code, reason) => {
            c.onClosed(code, reason);
            this.conns.delete(c);
        });
    }

    async stop() {
        await this.media?.stop();
        for (const c of this.conns) c.ws.terminate();
        this.conns.clear();
        await new Promise((r) => (this.wss ? this.wss.close(() => r()) : r()));
        await new Promise((r) => (this.http ? this.http.close(() => r()) : r()));
        this.saveState();
    }

    // ── state file ──
    saveState() {
        const p = this.config.statePath;
        if (!p) return;
        const devices = [...this.devices.values()].map((d) => ({
            ...d,
            noisePub: hex(d.noisePub),
            identityPub: hex(d.identityPub),
            skeyVal: hex(d.skeyVal),
            skeySig: hex(d.skeySig),
            prekeys: [...d.prekeys.entries()].map(([i, v]) => [i, hex(v)]),
            usedPrekeys: [...d.usedPrekeys.entries()].map(([i, v]) => [i, hex(v)])
        }));
        const j = {
            pki: { root: pairToJson(this.pki.root), intermediate: pairToJson(this.pki.intermediate), serverStatic: pairToJson(this.pki.serverStatic) },
            phone: this.phone.toJSON(),
            devices
        };
        const tmp = `${p}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(j));
        fs.renameSync(tmp, p);
    }

    loadState(p) {
        const j = JSON.parse(fs.readFileSync(p, 'utf8'));
        const B = (h) => Buffer.from(h, 'hex');
        return {
            pki: { root: pairFromJson(j.pki.root), intermediate: pairFromJson(j.pki.intermediate), serverStatic: pairFromJson(j.pki.serverStatic) },
            phone: FakePhone.fromJSON(j.phone),
            devices: j.devices.map((d) => ({
                ...d,
                noisePub: B(d.noisePub),
                identityPub: B(d.identityPub),
                skeyVal: B(d.skeyVal),
                skeySig: B(d.skeySig),
                prekeys: new Map(d.prekeys.map(([i, v]) => [i, B(v)])),
                usedPrekeys: new Map(d.usedPrekeys.map(([i, v]) => [i, B(v)]))
            }))
        };
    }

    // ── lookups ──
    connById(id) {
        for (const c of this.conns) if (c.id === Number(id)) return c;
        return null;
    }

    /** The newest open connection past its handshake (or the given one). */
    target(conn) {
        if (conn != null) {
            const c = conn instanceof Conn ? conn : this.connById(conn);
            if (!c || !c.open) throw new Error(`no open connection ${conn}`);
            return c;
        }
        const list = [...this.conns].filter((c) => c.open && c.noise.isTransport);
        if (!list.length) throw new Error('no open connection past its handshake');
        return list[list.length - 1];
    }

    registering() {
        return [...this.conns].filter((c) => c.open && c.state === 'registering');
    }

    currentQr() {
        const c = this.registering().pop();
        if (!c) return null;
        return { conn: c.id, index: c.refs.index, ref: c.refs.list[Math.min(c.refs.index, c.refs.list.length - 1)], refs: c.refs.list, validUntil: c.refs.validUntil.map((v) => v - this.t0) };
    }

    state() {
        return {
            url: this.url,
            port: this.port,
            rootKey: hex(this.rootPublicKey),
            config: { ...this.config, logStream: undefined },
            phone: { phoneNumber: this.phone.phoneNumber, lidUser: this.phone.lidUser, platform: this.phone.platform, bizName: this.phone.bizName, identity: hex(this.phone.identity.public) },
            connections: [...this.conns].map((c) => ({ id: c.id, state: c.state, mode: c.mode, device: c.device?.jid ?? null, remote: c.remote })),
            qr: this.currentQr(),
            devices: [...this.devices.values()].map((d) => ({ jid: d.jid, lid: d.lid, via: d.via, removed: d.removed, prekeys: d.prekeys.size, skeyId: d.skeyId, regId: d.regId })),
            events: this.seq
        };
    }

    pairingPromise(c, timeoutMs) {
        return new Promise((resolve, reject) => {
            const t = setTimeout(() => {
                c.settlePairing(new Error(`pairing did not finish within ${timeoutMs} ms`));
            }, timeoutMs);
            c.pairing = {
                settled: false,
                resolve: (v) => (clearTimeout(t), resolve(v)),
                reject: (e) => (clearTimeout(t), reject(e))
            };
        });
    }

    // ── the phone ──
    /** The phone scans QR text; resolves {ok, jid, lid, device} once the client signed, rejects otherwise. */
    scanQr(text, { timeoutMs = 15000, phone = null } = {}) {
        this.log(0, 'control', { op: 'scan', qr: text });
        let q;
        try {
            q = parseQrText(text);
        } catch (e) {
            return Promise.reject(e);
        }
        const c = this.registering().find((x) => x.refs.list.includes(q.ref));
        if (!c) return Promise.reject(new Error('no registering connection issued this QR ref'));
        const p = this.pairingPromise(c, timeoutMs);
        if (phone) c.pairPhone = this.phoneFor(String(phone));
        try {
            c.scan(q);
        } catch (e) {
            if (e instanceof Violation) c.violation(`QR: ${e.message}`);
            else c.settlePairing(e);
        }
        return p;
    }

    /** The user types the pairing code on the phone; resolves like scanQr. */
    enterPairingCode(code, { timeoutMs = 15000, conn = null } = {}) {
        this.log(0, 'control', { op: 'code', code });
        const c = conn != null ? this.target(conn) : this.registering().filter((x) => x.codePairing?.stage === 'hello').pop();
        if (!c) return Promise.reject(new Error('no connection has sent companion_hello'));
        const p = this.pairingPromise(c, timeoutMs);
        try {
            c.enterCode(code);
        } catch (e) {
            if (e instanceof PhoneError) c.settlePairing(e);
            else if (e instanceof Violation) c.violation(e.message);
            else c.settlePairing(e);
        }
        return p;
    }

    // ── controls ──
    /** The peer sends a message to every companion of the phone's account. */
    /** A peer's availability as the server tells a subscriber. */
    presenceNode(peer) {
        const st = peer.presence ?? { type: 'unavailable', last: null };
        return { tag: 'presence', attrs: { from: peer.jid, ...(st.type === 'unavailable' ? { type: 'unavailable', ...(st.last != null ? { last: String(st.last) } : {}) } : {}) } };
    }

    /** POST /peer/presence {from?, type: available|unavailable, last?}: to every companion subscribed to the peer. */
    peerPresence(b = {}) {
        const peer = this.peers.get(b.from ?? this.peer.phone);
        if (!peer) throw Object.assign(new Error(`no peer ${b.from}`), { status: 400 });
        if (!['available', 'unavailable'].includes(b.type)) throw Object.assign(new Error('type: available or unavailable'), { status: 400 });
        peer.presence = { type: b.type, last: b.last ?? null };
        let sent = 0;
        for (const c of peer.subscribers ?? []) if (c.open && c.state === 'logged-in') { c.send(this.presenceNode(peer)); sent++; }
        return { ok: true, sent };
    }

    /** POST /peer/chatstate {from?, state: composing|recording|paused, group?}: to our account's companions. */
    peerChatstate(b = {}) {
        const peer = this.peers.get(b.from ?? this.peer.phone);
        if (!peer) throw Object.assign(new Error(`no peer ${b.from}`), { status: 400 });
        if (!['composing', 'recording', 'paused'].includes(b.state)) throw Object.assign(new Error('state: composing, recording or paused'), { status: 400 });
        const child = b.state === 'paused' ? { tag: 'paused', attrs: {} } : { tag: 'composing', attrs: b.state === 'recording' ? { media: 'audio' } : {} };
        const node = { tag: 'chatstate', attrs: b.group ? { from: b.group, participant: peer.jid } : { from: peer.jid }, content: [child] };
        let sent = 0;
        for (const c of this.conns) if (c.open && c.state === 'logged-in' && c.device?.user === this.phone.phoneNumber) { c.send(node); sent++; }
        return { ok: true, sent };
    }

    /**
     * POST /peer/call {from?, video?, viaLid?, end?: callId}: the peer rings our account (an <offer>, or with end
     * a <terminate> of that call) on each of its companions; one offline gets it at its next login (offline=1),
     * as WhatsApp keeps a call's stanza until it is acked.
     */
    peerCall(b = {}) {
        const peer = this.peers.get(b.from ?? this.peer.phone);
        if (!peer) throw Object.assign(new Error(`no peer ${b.from}`), { status: 400 });
        const callId = b.end ?? crypto.randomBytes(16).toString('hex').toUpperCase();
        const creator = `${peer.phone}:0@s.whatsapp.net`;
        const id = crypto.randomBytes(8).toString('hex').toUpperCase();
        const child = b.end ? { tag: 'terminate', attrs: { 'call-id': callId, 'call-creator': creator } }
            : { tag: 'offer', attrs: { 'call-id': callId, 'call-creator': creator, ...(b.viaLid ? { caller_pn: peer.jid } : {}) },
                content: [{ tag: 'audio', attrs: { enc: 'opus', rate: '16000' } }, ...(b.video ? [{ tag: 'video', attrs: { enc: 'vp8' } }] : [])] };
        const node = { tag: 'call', attrs: { from: b.viaLid ? `${peer.lid}@lid` : peer.jid, id, t: String(nowSec()), platform: 'android', version: '2.24.1' },
            content: [child] };
        (this.calls ??= new Map()).set(callId, { from: peer.phone, rejected: null });
        const sent = [];
        for (const d of this.devices.values()) {
            if (d.user !== this.phone.phoneNumber || d.removed) continue;
            const key = `${d.user}:${d.device}`;
            if (!this.inbox.has(key)) this.inbox.set(key, new Map());
            this.inbox.get(key).set(id, { ...node, attrs: { ...node.attrs, offline: '1' } });
            const c = [...this.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
            if (c) c.sendAcked(node);
            this.log(c ? c.id : 0, 'peer.call', { id, callId, to: d.jid, kind: child.tag, online: !!c });
            sent.push(d.jid);
        }
        return { ok: true, id, callId, devices: sent };
    }

    /** POST /peer/profile {from?, about?, aboutHidden?, picture?: bool, pictureHidden?}: what others see of a peer. */
    peerProfile(b = {}) {
        const peer = this.peers.get(b.from ?? this.peer.phone);
        if (!peer) throw Object.assign(new Error(`no peer ${b.from}`), { status: 400 });
        const p = (peer.profile ??= {});
        if (b.about !== undefined) [p.about, p.aboutAt] = [b.about, nowSec()];
        if (b.aboutHidden !== undefined) p.aboutHidden = !!b.aboutHidden;
        if (b.picture !== undefined) p.picture = b.picture ? String(nowSec()) + crypto.randomBytes(2).toString('hex') : null;
        // pictureBytes (base64): what the media host serves at the picture's URL (then an https one on it).
        if (b.picture && b.pictureBytes && this.media) {
            const bytes = Buffer.from(b.pictureBytes, 'base64');
            const type = bytes[0] === 0x89 ? 'image/png' : 'image/jpeg';
            (this.media.pictures ??= new Map()).set(`/pps/${peer.phone}/${p.picture}.jpg`, { bytes, type });
        }
        if (b.pictureHidden !== undefined) p.pictureHidden = !!b.pictureHidden;
        if (b.business !== undefined) p.business = b.business; // {description, address, email, websites, category, timezone, hours}
        return { ok: true, profile: p, lid: `${peer.lid}@lid` };
    }

    /** A companion's <call> (a reject of an offer): checked as the server would, then recorded. */
    onCompanionCall(c, n) {
        const k = kids(n);
        want(k.length === 1, `<call> with ${k.length} children`);
        const r = k[0];
        want(typeof n.attrs.to === 'string' && n.attrs.to.endsWith('@s.whatsapp.net') || n.attrs.to?.endsWith('@lid'), `<call to=${n.attrs.to}>`);
        if (r.tag !== 'reject') return this.log(c.id, 'call.out', { kind: r.tag, to: n.attrs.to });
        const call = this.calls?.get(r.attrs['call-id']);
        want(call != null, `<reject call-id=${r.attrs['call-id']}> for a call never offered`);
        // The offer named the phone (device 0) as an AD JID; decoded, device 0 reads as the bare JID.
        want(String(r.attrs['call-creator']).replace(':0@', '@') === `${call.from}@s.whatsapp.net`, `<reject call-creator=${r.attrs['call-creator']}>, want the offer's`);
        want(r.attrs.count === '0', `<reject count=${r.attrs.count}>`);
        want(n.attrs.to.split('@')[0].split(':')[0] === call.from || n.attrs.to === `${this.peers.get(call.from)?.lid}@lid`, `<call to=${n.attrs.to}>: not the caller`);
        call.rejected = (call.rejected ?? 0) + 1;
        this.log(c.id, 'call.reject', { callId: r.attrs['call-id'], to: n.attrs.to });
    }

    async peerSend(b = {}) {
        const peer = this.peers.get(b.from ?? this.peer.phone);
        if (!peer) throw new Error(`no peer ${b.from}`);
        const id = b.id || '3EB0' + crypto.randomBytes(9).toString('hex').toUpperCase();
        let message;
        if (b.reaction) message = { reactionMessage: { key: { remoteJid: peer.jid, fromMe: false, id: b.reaction.target }, text: b.reaction.text ?? '', senderTimestampMs: Date.now() } };
        else if (b.edit) message = { protocolMessage: { key: { remoteJid: peer.jid, fromMe: true, id: b.edit.target }, type: 14, editedMessage: { conversation: b.edit.text } } };
        else if (b.revoke) message = { protocolMessage: { key: { remoteJid: peer.jid, fromMe: true, id: b.revoke.target }, type: 0 } };
        else if (b.appStateKeys) message = { protocolMessage: { type: 6, appStateSyncKeyShare: { keys: b.appStateKeys.map((k) => ({
            keyId: { keyId: Buffer.from(k.id, 'hex') },
            keyData: { keyData: Buffer.from(k.data, 'hex'), fingerprint: { rawId: 1, currentIndex: 0, deviceIndexes: [0] }, timestamp: k.ts ?? Date.now() } })) } } };
        else if (b.keep) message = { keepInChatMessage: { key: { remoteJid: peer.jid, fromMe: !!b.keep.fromMe, id: b.keep.target },
            keepType: b.keep.type ?? 1, timestampMs: Date.now() } };
        else if (b.unsupported) message = { groupInviteMessage: { groupJid: '120363000000000009@g.us', inviteCode: 'AbCdEf', groupName: 'x' } };
        else if (b.location) message = { locationMessage: { degreesLatitude: b.location.latitude, degreesLongitude: b.location.longitude,
            name: b.location.name, address: b.location.address } };
        else if (b.contacts) message = b.contacts.length === 1 ? { contactMessage: b.contacts[0] }
            : { contactsArrayMessage: { displayName: `${b.contacts.length} contacts`, contacts: b.contacts } };
        else if (b.dsmTo) message = { deviceSentMessage: { destinationJid: b.dsmTo,
            message: b.raw ? proto.Message.decode(Buffer.from(b.raw, 'base64')) : { conversation: b.text ?? '' } } };
        else if (b.raw) message = proto.Message.decode(Buffer.from(b.raw, 'base64'));
        else if (b.replyTo) message = { extendedTextMessage: { text: b.text ?? '', contextInfo: { stanzaId: b.replyTo, participant: peer.jid } } };
        else message = { conversation: b.text ?? 'hello' };
        const targets = [...this.devices.values()].filter((d) => d.user === this.phone.phoneNumber && !d.removed && (!b.to || d.jid === b.to));
        const sent = [];
        if (b.group && this.groups.groups.has(b.group)) return this.groups.peerSend(b);
        if (b.group) {
            // A group message under sender keys (<enc type=skmsg>): this server does not model group
            // crypto, so the ciphertext is opaque bytes; a client must still store, receipt and ack it.
            want(/^[0-9]{6,20}(-[0-9]+)?@g\.us$/.test(b.group), `group ${b.group}: want digits@g.us`);
            for (const d of targets) {
                const node = { tag: 'message', attrs: { from: b.group, participant: peer.jid, id, t: String(nowSec()), type: 'text', notify: peer.name },
                    content: [{ tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: crypto.randomBytes(48) }] };
                const key = `${d.user}:${d.device}`;
                if (!this.inbox.has(key)) this.inbox.set(key, new Map());
                this.inbox.get(key).set(id, node);
                (peer.sentStanzas ??= new Map()).set(id, { key, node });
                const c = [...this.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
                if (c) c.sendAcked(node);
                this.log(c ? c.id : 0, 'peer.sent', { id, to: d.jid, type: 'skmsg', group: b.group, online: !!c });
                sent.push(d.jid);
            }
            return { ok: true, id, devices: sent, lid: `${peer.lid}@lid` };
        }
        for (const d of targets) {
            const bundle = peer.hasSession(d.user, d.device) ? null : this.takeBundle(d);
            const enc = await peer.encrypt(d.user, d.device, message, bundle);
            const corruptP = typeof b.corrupt === 'number' ? b.corrupt : null;
            this.plain.set(id, { message, chat: peer.jid, participant: null, ts: nowSec(), pushName: peer.name, from: peer.phone,
                corruptAlways: b.corrupt === 'always', corruptOnce: b.corrupt === 'once', corruptP, viaLid: !!b.viaLid, node: null });
            if (corruptP != null ? Math.random() < corruptP : b.corrupt) enc.body = Buffer.concat([enc.body.subarray(0, 1), crypto.randomBytes(enc.body.length - 1)]); // undecryptable
            // As WhatsApp does, the other address form rides along: sender_lid, or sender_pn when sent via the LID.
            // noPn: by LID alone, as when the server does not tell the number (a chat under the LID at first).
            const addr = b.viaLid ? { from: `${peer.lid}@lid`, ...(b.noPn ? {} : { sender_pn: peer.jid }) } : { from: peer.jid, sender_lid: `${peer.lid}@lid` };
            const node = { tag: 'message', attrs: { ...addr, id, t: String(nowSec()), type: b.reaction ? 'reaction' : b.stanzaType ?? 'text',
                ...(b.dsmTo ? { recipient: b.dsmTo } : { notify: peer.name }) },
                content: [{ tag: 'enc', attrs: { v: '2', type: enc.type }, content: enc.body }] };
            const key = `${d.user}:${d.device}`;
            if (!this.inbox.has(key)) this.inbox.set(key, new Map());
            this.inbox.get(key).set(id, node);
            (peer.sentStanzas ??= new Map()).set(id, { key, node });
            this.plain.get(id).node = node;
            const c = [...this.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
            if (c) c.sendAcked(node);
            this.log(c ? c.id : 0, 'peer.sent', { id, to: d.jid, type: enc.type, online: !!c });
            sent.push(d.jid);
        }
        return { ok: true, id, devices: sent, lid: `${peer.lid}@lid` };
    }

    /** Device d's prekey bundle, as the server hands one out (its lowest one-time prekey, used up). */
    takeBundle(d) {
        if (d.prekeys.size === 0) throw new Error(`no prekeys for ${d.jid}`);
        const pid = Math.min(...d.prekeys.keys());
        const pv = d.prekeys.get(pid);
        d.prekeys.delete(pid);
        d.usedPrekeys.set(pid, pv);
        return { regId: d.regId, identity: d.identityPub, skeyId: d.skeyId, skey: d.skeyVal, skeySig: d.skeySig, prekeyId: pid, prekey: pv };
    }

    /** A companion's retry receipt for a peer's 1:1 message sent with corrupt: 'always': the peer sends it
     *  again (<enc count=N>, re-encrypted on its session), damaged again, so no retry can mend it.
     *  Other messages keep the plain behaviour (nothing is resent). */
    onCompanionRetry(c, n) {
        const id = n.attrs.id;
        const rec = this.plain.get(id);
        this.log(c.id, 'companion.retry', { id, count: Number(kid(n, 'retry')?.attrs?.count ?? 0), known: !!rec });
        if (!rec || (!rec.corruptAlways && !rec.corruptOnce && rec.corruptP == null) || rec.participant) return;
        const peer = this.peers.get(rec.from);
        const r = this.resolveJid(n.attrs.to);
        want(r && !r.unknown && r.user === peer.phone, `<receipt type=retry to=${n.attrs.to}> for ${id}: want the sender ${peer.jid}`);
        const rt = kid(n, 'retry');
        want(rt && /^[1-9][0-9]*$/.test(rt.attrs.count ?? '') && rt.attrs.id === id, `<receipt type=retry> for ${id}: want <retry count id>`);
        const d = c.device;
        (async () => {
            // With no session left (a real sender then fetches our keys), from a fresh bundle.
            const enc = await peer.encrypt(d.user, d.device, rec.message, () => this.takeBundle(d));
            if (rec.corruptAlways || Math.random() < rec.corruptP)
                enc.body = Buffer.concat([enc.body.subarray(0, 1), crypto.randomBytes(enc.body.length - 1)]);
            const node = { ...rec.node, attrs: { ...rec.node.attrs, t: String(nowSec()) },
                content: [{ tag: 'enc', attrs: { v: '2', type: enc.type, count: rt.attrs.count }, content: enc.body }] };
            // Through the server as any message: kept for the device until acked (it may be offline by now).
            const key = `${d.user}:${d.device}`;
            if (!this.inbox.has(key)) this.inbox.set(key, new Map());
            this.inbox.get(key).set(id, node);
            const conn = [...this.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
            if (conn) conn.sendAcked(node);
            this.log(c.id, 'peer.retry.resend', { id, count: Number(rt.attrs.count), type: enc.type, online: !!conn });
        })().catch((err) => this.log(c.id, 'warning', { detail: `retry resend ${id}: ${err.message}` }));
    }

    /** The phone answers a placeholder resend request for message id (what a peer sent this account):
     *  a peer message (category=peer) from the phone to each logged-in companion holding a protocolMessage
     *  PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE whose result carries the message as a WebMessageInfo
     *  (Baileys' encoder). how: 'normal'; 'malformed' (the WebMessageInfo bytes are no protobuf, beside a
     *  result without any); 'unknown' (a well-formed answer for a message id nobody sent). */
    async phoneAnswerPlaceholder({ id, requestId = null, how = 'normal' }) {
        const phoneNumber = this.phone.phoneNumber;
        const phone = this.peers.get(phoneNumber);
        let results;
        if (how === 'malformed') {
            results = [{ placeholderMessageResendResponse: { webMessageInfoBytes: Buffer.from([0x0a, 0xff, 0xff, 0x01, 0x12]) } },
                { placeholderMessageResendResponse: {} }];
        } else {
            const rec = how === 'unknown' ? { message: { conversation: 'a message nobody sent' }, chat: this.peer.jid, participant: null, ts: nowSec(), pushName: 'Peer' }
                : this.plain.get(id);
            if (!rec) throw new Error(`no message ${id}`);
            const info = { key: { remoteJid: rec.chat, fromMe: false, id, ...(rec.participant ? { participant: rec.participant } : {}) },
                message: rec.message, messageTimestamp: rec.ts, pushName: rec.pushName, ...(rec.participant ? { participant: rec.participant } : {}) };
            results = [{ placeholderMessageResendResponse: { webMessageInfoBytes: Buffer.from(proto.WebMessageInfo.encode(proto.WebMessageInfo.fromObject(info)).finish()) } }];
        }
        const message = { protocolMessage: { type: proto.Message.ProtocolMessage.Type.PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE,
            peerDataOperationRequestResponseMessage: { peerDataOperationRequestType: proto.Message.PeerDataOperationRequestType.PLACEHOLDER_MESSAGE_RESEND,
                stanzaId: requestId ?? crypto.randomBytes(8).toString('hex').toUpperCase(), peerDataOperationResult: results } } };
        const targets = [...this.devices.values()].filter((d) => d.user === phoneNumber && d.device !== 0 && !d.removed);
        const sent = [];
        for (const d of targets) {
            const c = [...this.conns].find((x) => x.device === d && x.state === 'logged-in' && x.open);
            if (!c) continue;
            let bundle = null;
            if (!phone.hasSession(d.user, d.device)) {
                const pid = Math.min(...d.prekeys.keys());
                const pv = d.prekeys.get(pid);
                d.prekeys.delete(pid);
                d.usedPrekeys.set(pid, pv);
                bundle = { regId: d.regId, identity: d.identityPub, skeyId: d.skeyId, skey: d.skeyVal, skeySig: d.skeySig, prekeyId: pid, prekey: pv };
            }
            const enc = await phone.encrypt(d.user, d.device, message, bundle);
            const sid = '3EB0' + crypto.randomBytes(9).toString('hex').toUpperCase();
            this.peerStanzas.add(sid);
            c.sendAcked({ tag: 'message', attrs: { from: phone.jid, id: sid, t: String(nowSec()), type: 'text', category: 'peer', push_priority: 'high_force' },
                content: [{ tag: 'enc', attrs: { v: '2', type: enc.type }, content: enc.body }] });
            this.log(c.id, 'phone.placeholder.answer', { id, stanza: sid, how, to: d.jid });
            sent.push(sid);
        }
        return { ok: true, stanzas: sent };
    }

    /** The exact same stanza again (what a server does when it thinks the ack was lost). */
    peerResend(id) {
        const s = [...this.peers.values()].map((p) => p.sentStanzas?.get(id)).find(Boolean);
        if (!s) throw new Error(`no stanza ${id}`);
        const c = [...this.conns].find((x) => x.device && `${x.device.user}:${x.device.device}` === s.key && x.state === 'logged-in' && x.open);
        if (!c) throw new Error('device not connected');
        c.sendAcked(s.node);
        this.log(c.id, 'peer.sent', { id, resend: true });
        return { ok: true };
    }

    /** The peer lost its session with the companion that sent `id` and asks for the message again. */
    /** WhatsApp's word that a user's device list changed: <notification type=devices from=user><add>…. */
    peerDevicesNotify(from) {
        const peer = this.peers.get(from ?? this.peer.phone);
        if (!peer) throw new Error(`unknown peer ${from}`);
        const conns = [...this.conns].filter((x) => x.device && x.state === 'logged-in' && x.open);
        for (const c of conns)
            c.sendAcked({ tag: 'notification', attrs: { from: peer.jid, id: c.newId(), t: String(nowSec()), type: 'devices' }, content: [
                { tag: 'add', attrs: {}, content: [{ tag: 'device', attrs: { jid: peer.jid } }] }
            ] });
        this.log(0, 'devices.notify', { from: peer.jid, conns: conns.length });
        return { ok: true, conns: conns.length };
    }

    peerRetry(id, from) {
        const peer = this.peers.get(from ?? this.peer.phone);
        const by = this.sentBy.get(id);
        if (!peer || !by) throw new Error(`unknown message ${id}`);
        peer.store.sessions.delete(`${by.user}.${by.device}`);
        const c = [...this.conns].find((x) => x.device && x.device.user === by.user && x.device.device === by.device && x.state === 'logged-in' && x.open);
        if (!c) throw new Error('sender not connected');
        const reg = Buffer.alloc(4);
        reg.writeUInt32BE(peer.store.regId);
        c.sendAcked({ tag: 'receipt', attrs: { from: peer.jid, id, t: String(nowSec()), type: 'retry' }, content: [
            { tag: 'retry', attrs: { count: '1', id, t: String(nowSec()), v: '1' } },
            { tag: 'registration', attrs: {}, content: reg }
        ] });
        this.log(c.id, 'peer.retry', { id });
        return { ok: true };
    }

    /** The peer reinstalls WhatsApp: new identity, registration id and prekeys, no sessions. */
    peerReinstall(from) {
        const old = this.peers.get(from ?? this.peer.phone);
        if (!old) throw new Error(`no peer ${from}`);
        const fresh = new FakePeer({ phone: old.phone, name: old.name, lid: old.lid });
        this.peers.set(old.phone, fresh);
        if (this.peer === old) this.peer = fresh;
        this.log(0, 'peer.reinstall', { phone: old.phone });
        return { ok: true };
    }

    /** How the phone answers a media retry request for message id: {id, chat, mediaKey (hex),
     *  directPath (where the file was), answer: reupload | not-found | error, code?}. */
    setMediaRetry(b) {
        if (typeof b.id !== 'string' || typeof b.chat !== 'string' || !/^[0-9a-f]{64}$/.test(b.mediaKey ?? '')) throw new Error('media-retry wants id, chat and a 32-byte hex mediaKey');
        if (!['reupload', 'not-found', 'error'].includes(b.answer)) throw new Error(`media-retry answer ${b.answer}`);
        if (b.answer === 'reupload' && typeof b.directPath !== 'string') throw new Error('media-retry reupload wants the directPath');
        this.mediaRetry.set(b.id, { chat: b.chat, mediaKey: Buffer.from(b.mediaKey, 'hex'), directPath: b.directPath, answer: b.answer, code: b.code });
        this.log(0, 'control', { op: 'media-retry', id: b.id, answer: b.answer });
        return { ok: true };
    }

    peerReceipt(id, type, from) {
        const peer = this.peers.get(from ?? this.peer.phone);
        const c = [...this.conns].find((x) => x.device && x.state === 'logged-in' && x.open);
        if (!c) throw new Error('no companion connected');
        c.sendAcked({ tag: 'receipt', attrs: { from: peer.jid, id, t: String(nowSec()), ...(type ? { type } : {}) } });
        this.log(c.id, 'peer.receipt', { id, type: type ?? null });
        return { ok: true };
    }

    setConfig(patch) {
        const allowed = ['peerAutoReceipt', 'version', 'qrFirstMs', 'qrNextMs', 'qrRefs', 'qrGraceMs', 'iqTimeoutMs', 'handshakeTimeoutMs', 'closeDelayMs', 'silent', 'pkiDefect', 'helloTamper', 'maxPrekeysPerUpload', 'ackDelayMs', 'usyncDelayMs', 'logNodes', 'decryptCopies', 'phoneResend'];
        for (const [k, v] of Object.entries(patch)) {
            if (!allowed.includes(k)) throw new Error(`unknown config key ${k}`);
            this.config[k] = v;
        }
        if ('pkiDefect' in patch) this.rebuildChain();
        this.log(0, 'control', { op: 'config', patch });
    }

    setPhoneTamper(what) {
        if (what != null && !['hmac', 'account-signature', 'account-key'].includes(what)) throw new Error(`unknown tamper ${what}`);
        this.phone.tamper = what;
        this.log(0, 'control', { op: 'phone-tamper', what });
    }

    drop({ conn = null, how = 'terminate' } = {}) {
        const c = this.target(conn);
        this.log(c.id, 'control', { op: 'drop', how });
        c.close('dropped by control', { how });
        return c.id;
    }

    streamError(kind, { conn = null } = {}) {
        const c = this.target(conn);
        let node;
        switch (String(kind)) {
        case '515':
        case '503':
            node = { tag: 'stream:error', attrs: { code: String(kind) } };
            break;
        case 'device_removed':
        case '401':
            node = { tag: 'stream:error', attrs: { code: '401' }, content: [{ tag: 'conflict', attrs: { type: 'device_removed' } }] };
            if (c.device) {
                c.device.removed = true;
                this.saveState();
            }
            break;
        case 'replaced':
            node = { tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] };
            break;
        default:
            throw new Error(`unknown stream error kind ${kind}`);
        }
        this.log(c.id, 'control', { op: 'stream-error', what: String(kind) });
        c.send(node);
        c.close(`stream error ${kind}`, { delayMs: this.config.closeDelayMs });
        return c.id;
    }

    failure(reason, { conn = null, attrs = {} } = {}) {
        const c = this.target(conn);
        const extra = String(reason) === '402' ? { code: '101', expire: '3600', ...attrs } : attrs;
        this.log(c.id, 'control', { op: 'failure', reason: Number(reason) });
        c.send({ tag: 'failure', attrs: { reason: String(reason), location: 'fake', ...extra } });
        c.close(`failure ${reason}`, { delayMs: this.config.closeDelayMs });
        return c.id;
    }

    failNextLogin(reason, attrs = {}) {
        const extra = String(reason) === '402' ? { code: '101', expire: '3600', ...attrs } : attrs;
        this.nextLoginFailure = { reason, attrs: extra };
        this.log(0, 'control', { op: 'fail-next-login', reason: Number(reason) });
    }

    /** garbage | truncated | bad-mac | bad-node | oversize */
    garbage(kind, { conn = null, closeAfterMs = 300 } = {}) {
        const c = this.target(conn);
        this.log(c.id, 'control', { op: 'garbage', what: kind });
        const ping = encodeBinaryNode({ tag: 'iq', attrs: { from: SERVER_JID, type: 'get', xmlns: 'urn:xmpp:ping', id: c.newId() } });
        switch (kind) {
        case 'garbage': // a well-framed frame of random bytes: no valid tag under any key
            c.sendRaw(frame(crypto.randomBytes(64)));
            break;
        case 'bad-mac': { // a real frame with one bit of its tag flipped
            const f = Buffer.from(c.noise.encodeFrame(ping));
            f[f.length - 1] ^= 0x01;
            c.sendRaw(f);
            break;
        }
        case 'bad-node': // authenticates, but the plaintext is not a binary node
            c.sendRaw(c.noise.encodeFrame(Buffer.from([0, 0xf8, 0x05, 0xff, 0xff, 0xff])));
            break;
        case 'truncated': { // half a real frame, then the socket closes
            const f = c.noise.encodeFrame(ping);
            c.sendRaw(f.subarray(0, Math.floor(f.length / 2)));
            c.close('truncated frame', { delayMs: closeAfterMs, how: 'terminate' });
            break;
        }
        case 'oversize': // a length header at the 16 MiB bound and a few bytes
            c.sendRaw(Buffer.concat([Buffer.from([0xff, 0xff, 0xff]), crypto.randomBytes(32)]));
            break;
        default:
            throw new Error(`unknown garbage kind ${kind}`);
        }
        return c.id;
    }

    /** Drops the device's server-side prekeys to `count` and tells the client. */
    lowPrekeys(count, { conn = null } = {}) {
        const c = this.target(conn);
        if (!c.device) throw new Error('connection is not logged in');
        const d = c.device;
        const ids = [...d.prekeys.keys()].sort((a, b) => a - b);
        for (const i of ids.slice(0, Math.max(0, ids.length - count))) {
            d.usedPrekeys.set(i, d.prekeys.get(i));
            d.prekeys.delete(i);
        }
        this.log(c.id, 'control', { op: 'prekeys-low', count: d.prekeys.size });
        c.sendAcked({ tag: 'notification', attrs: { from: SERVER_JID, type: 'encrypt', id: c.newId(), t: String(nowSec()) }, content: [{ tag: 'count', attrs: { value: String(d.prekeys.size) } }] });
        return c.id;
    }

    removeDevice(jid) {
        const d = [...this.devices.values()].find((x) => x.jid === jid || x.lid === jid);
        if (!d) throw new Error(`no device ${jid}`);
        d.removed = true;
        this.saveState();
        this.log(0, 'device.removed', { jid: d.jid, by: 'control' });
        for (const c of this.conns) if (c.device === d && c.open) this.streamError('device_removed', { conn: c });
        return d.jid;
    }
}

// ── HTTP control channel ─────────────────────────────────────────────────────
export function startControl(server, { host = '127.0.0.1', port = 0, onShutdown = () => {} } = {}) {
    const routes = {
        'GET /state': () => server.state(),
        'GET /qr': () => server.currentQr() ?? Object.assign(new Error('no registering connection'), { status: 404 }),
        'GET /events': async (q) => {
            const since = Number(q.get('since') || 0);
            const kind = q.get('kind');
            const wait = Number(q.get('wait') || 0);
            let events = server.eventsSince(since, kind);
            if (!events.length && wait > 0) {
                await server.waitFor((e) => kind == null || e.kind === kind, { since, timeoutMs: wait }).catch(() => {});
                events = server.eventsSince(since, kind);
            }
            return { events, next: events.length ? events[events.length - 1].seq : since };
        },
        'GET /devices': () => server.state().devices,
        'POST /phone/scan': async (q, b) => server.scanQr(b.qr, { timeoutMs: b.timeoutMs ?? 15000, phone: b.phone ?? null }),
        'POST /phone/code': async (q, b) => server.enterPairingCode(b.code, { timeoutMs: b.timeoutMs ?? 15000, conn: b.conn ?? null }),
        'POST /phone/tamper': (q, b) => (server.setPhoneTamper(b.what ?? null), { ok: true }),
        'POST /drop': (q, b) => ({ ok: true, conn: server.drop({ conn: b.conn ?? null, how: b.how ?? 'terminate' }) }),
        'POST /stream-error': (q, b) => ({ ok: true, conn: server.streamError(b.kind, { conn: b.conn ?? null }) }),
        'POST /failure': (q, b) => ({ ok: true, conn: server.failure(b.reason, { conn: b.conn ?? null, attrs: b.attrs ?? {} }) }),
        'POST /fail-next-login': (q, b) => (server.failNextLogin(b.reason, b.attrs ?? {}), { ok: true }),
        'POST /garbage': (q, b) => ({ ok: true, conn: server.garbage(b.kind, { conn: b.conn ?? null }) }),
        'POST /prekeys-low': (q, b) => ({ ok: true, conn: server.lowPrekeys(Number(b.count ?? 0), { conn: b.conn ?? null }) }),
        'POST /device/remove': (q, b) => ({ ok: true, jid: server.removeDevice(b.jid) }),
        'POST /config': (q, b) => (server.setConfig(b), { ok: true }),
        'POST /peer/send': async (q, b) => server.peerSend(b),
        'POST /peer/presence': (q, b) => server.peerPresence(b),
        'POST /peer/chatstate': (q, b) => server.peerChatstate(b),
        'POST /peer/call': (q, b) => server.peerCall(b),
        'POST /peer/profile': (q, b) => server.peerProfile(b),
        'GET /profile': () => ({ about: server.ownProfile.about, picture: server.ownProfile.picture, blocked: [...server.ownProfile.blocked],
            pictureFetches: server.media?.pictureFetches ?? [] }),
        'GET /calls': () => ({ calls: Object.fromEntries(server.calls ?? []) }),
        'POST /peer/resend': (q, b) => server.peerResend(b.id),
        'POST /phone/placeholder-answer': (q, b) => server.phoneAnswerPlaceholder({ id: b.id, requestId: b.requestId ?? null, how: b.how ?? 'normal' }),
        'GET /phone/placeholder-requests': () => ({ requests: server.placeholderRequests }),
        // History sync from the phone (lib/fake_history.mjs): a chunk announced, and what came back.
        'POST /phone/history': async (q, b) => (server.history ??= new FakeHistory(server)).send(b),
        'GET /phone/history': () => (server.history ??= new FakeHistory(server)).state(),
        // {chat: [WebMessageInfo-shaped history messages]}: what the phone answers on-demand requests from.
        'POST /phone/history/on-demand': (q, b) => (Object.assign(server.history ??= new FakeHistory(server),
            { onDemandMessages: b.messages ?? {}, answerOnDemand: b.answer !== false }), { ok: true }),
        'POST /peer/retry': (q, b) => server.peerRetry(b.id, b.from ?? null),
        'POST /peer/receipt': (q, b) => server.peerReceipt(b.id, b.type ?? null, b.from ?? null),
        'POST /peer/reinstall': (q, b) => server.peerReinstall(b.from ?? null),
        'POST /peer/devices-notify': (q, b) => server.peerDevicesNotify(b.from ?? null),
        'POST /peers/add': (q, b) => server.addPeers(b.phones ?? [], b.prekeys ?? 200),
        'POST /peers/companions': (q, b) => server.addCompanions(b.phones ?? [], b.device ?? 1, b.prekeys ?? 4),
        'GET /peer/received': () => [...server.peers.values()].flatMap((p) => [...p.received.values()].map((r) => ({ ...r, peer: p.phone }))),
        'POST /stamps/start': () => ((server.stamps = new Map()), { ok: true }),
        'GET /stamps': () => ({ stamps: [...(server.stamps?.values() ?? [])] }),
        'GET /media/uploads': () => [...(server.media?.uploads.values() ?? [])].map((u) => ({
            id: u.id, type: u.type, bytes: u.body.length, sha256: crypto.createHash('sha256').update(u.body).digest('hex'),
            directPath: u.directPath })),
        'GET /media/violations': () => server.media?.violations ?? [],
        'GET /media/requests': () => (server.media?.requests ?? []).map((r) => ({ method: r.method, path: r.path, remote: r.remote })),
        'POST /media/fault': (q, b) => (server.media.fault(b.id, b.fault ?? {}), { ok: true }),
        'POST /media/rotate-auth': () => (server.media.rotateAuth(), { ok: true }),
        'POST /media/hold': (q, b) => (server.media.hold(!!b.on, !!b.downloads), { ok: true }),
        'POST /media/fault-next': (q, b) => (server.media.faultNext(b.fault ?? {}), { ok: true }),
        'POST /phone/media-retry': (q, b) => server.setMediaRetry(b),
        'GET /phone/media-retry': () => ({ plans: Object.fromEntries([...server.mediaRetry].map(([k, v]) => [k, { answer: v.answer, asked: v.asked ?? 0, newPath: v.newPath ?? null }])) }),
        'GET /media/activity': () => server.media?.activity ?? { uploads: [], downloads: [] },
        'GET /media/held': () => ({ held: server.media?.held.length ?? 0 }),
        'POST /shutdown': () => (setImmediate(onShutdown), { ok: true })
    };
    const ctl = http.createServer(async (req, res) => {
        const url = new URL(req.url, 'http://x');
        const reply = (status, obj) => {
            res.writeHead(status, { 'content-type': 'application/json' });
            res.end(JSON.stringify(obj) + '\n');
        };
        // /groups/… (lib/fake_groups.mjs) has JIDs in its paths.
        const route = routes[`${req.method} ${url.pathname}`] ??
            (url.pathname.startsWith('/appstate') ? (q, b) => server.appstate.route(req.method, url.pathname, b) ?? Object.assign(new Error(`no route ${req.method} ${url.pathname}`), { status: 404 }) : null) ??
            (url.pathname.startsWith('/groups') ? (q, b) => server.groups.route(req.method, url.pathname, b) ?? Object.assign(new Error(`no route ${req.method} ${url.pathname}`), { status: 404 }) : null);
        if (!route) return reply(404, { ok: false, error: `no route ${req.method} ${url.pathname}` });
        let body = '';
        for await (const chunk of req) body += chunk;
        let b = {};
        try {
            b = body ? JSON.parse(body) : {};
        } catch {
            return reply(400, { ok: false, error: 'body is not JSON' });
        }
        try {
            const out = await route(url.searchParams, b);
            if (out instanceof Error) return reply(out.status || 500, { ok: false, error: out.message });
            reply(200, out);
        } catch (e) {
            reply(e.status || 409, { ok: false, error: e.message });
        }
    });
    return new Promise((resolve, reject) => {
        ctl.once('error', reject);
        ctl.listen(port, host, () => resolve(ctl));
    });
}

function parseArgs(argv) {
    const o = {};
    const flags = new Set(['print-root-key', 'log']);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
        const k = a.slice(2);
        if (flags.has(k)) o[k] = true;
        else if (i + 1 < argv.length) o[k] = argv[++i];
        else throw new Error(`${a} needs a value`);
    }
    return o;
}

async function main() {
    let a;
    try {
        a = parseArgs(process.argv.slice(2));
    } catch (e) {
        process.stderr.write(`fake_server: ${e.message}\n`);
        process.exit(2);
    }
    const host = a.host || '127.0.0.1';
    if (!/^(127\.[0-9.]+|::1|localhost)$/.test(host)) {
        process.stderr.write('fake_server: listens on loopback only\n');
        process.exit(2);
    }
    const num = (k, d) => (a[k] != null ? Number(a[k]) : d);
    const server = new FakeWhatsAppServer({
        host,
        port: num('port', 0),
        version: a.version || DEFAULT_VERSION,
        qrFirstMs: num('qr-first-ms', 60000),
        qrNextMs: num('qr-next-ms', 20000),
        qrRefs: num('qr-refs', 6),
        statePath: a.state || null,
        mediaCa: a['media-ca'] || null,
        pkiDefect: a['pki-defect'] || null,
        logStream: a.log ? process.stderr : null,
        phone: {
            ...(a.phone ? { phoneNumber: a.phone } : {}),
            ...(a.lid ? { lidUser: a.lid } : {}),
            ...(a.platform ? { platform: a.platform } : {}),
            ...(a.biz ? { bizName: a.biz } : {})
        }
    });
    await server.start();
    let stopping = false;
    let ctl;
    const shutdown = async () => {
        if (stopping) return;
        stopping = true;
        await server.stop();
        ctl?.close();
        process.exit(0);
    };
    ctl = await startControl(server, { host, port: num('control-port', 0), onShutdown: shutdown });
    if (a['print-root-key']) process.stdout.write(`${hex(server.rootPublicKey)}\n`);
    process.stdout.write(JSON.stringify({
        ready: true,
        url: server.url,
        port: server.port,
        control: `http://${host}:${ctl.address().port}`,
        controlPort: ctl.address().port,
        rootKey: hex(server.rootPublicKey),
        version: server.config.version,
        phone: server.phone.phoneNumber,
        mediaHost: server.media?.hostname ?? null,
        mediaCa: server.media?.pki.ca ?? null
    }) + '\n');
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    main().catch((e) => {
        process.stderr.write(`fake_server: ${e.stack}\n`);
        process.exit(1);
    });
}
