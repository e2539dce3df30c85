#!/usr/bin/env node
// Test-only: an unmodified Baileys client as the other person in a chat. It
// links itself as a companion of account --phone on the fake server (QR scanned
// through the control API), logs in, and then takes JSON lines on stdin:
//   {"op":"send","to":"<jid>","text":"…","id"?:"…","replyTo"?:"<id>"}   → {"sent":"<id>"}
//   {"op":"sendLocation","to":"<jid>","location":{latitude,longitude,name?,address?}}  → {"sent":"<id>"}
//   {"op":"sendContacts","to":"<jid>","displayName"?:"…","contacts":[{displayName,vcard}]}  → {"sent":"<id>"}
//   {"op":"pin","to":"<jid>","target":"<id>","fromMe"?:bool,"type"?:1|2,"time"?:secs}  → {"sent":"<id>"}
//   {"op":"sendPoll","to":"<jid>","name":"…","values":["…",…],"selectableCount":0|1}  → {"sent":"<id>","secret":hex}
//   {"op":"vote","to":"<jid>","pollId":"<id>","pollFromMe":bool,"creator":"<jid>","voter":"<jid>","secret":hex,
//    "options":["…"],"id"?:"…","tamper"?:bool}  → {"sent":"<id>"}
//       a pollUpdateMessage sealed here with node's crypto (HKDF-SHA256 of the poll's secret with info
//       poll id ‖ creator ‖ voter ‖ "Poll Vote", AES-256-GCM with ad poll id ‖ 0 ‖ voter); tamper flips
//       a bit of the tag; id sends it under that message id (a vote told again); sealOnly: not sent,
//       → {"sealed":base64 Message} (for the fake server's /peer/send raw)
//   {"op":"openVote","pollId":"<id>","creator":"<jid>","voter":"<jid>","secret":hex,"encPayload":hex,"encIv":hex}
//       → {"opened":[hex SHA-256 of each chosen option]}: Baileys' own decryptPollVote
//   {"op":"react","to":"<jid>","target":"<id>","fromMe":bool,"text":"👍"}  → {"sent":"<id>"}
//   {"op":"edit","to":"<jid>","target":"<id>","text":"…"}                 → {"sent":"<id>"}  (our own message)
//   {"op":"revoke","to":"<jid>","target":"<id>"}                          → {"sent":"<id>"}  (our own message)
//   {"op":"sendMedia","to":"<jid>","kind":"image|video|audio|voice|document|sticker","path":"…",
//    "mimetype"?,"caption"?,"fileName"?,"seconds"?,"waveform"?(base64),"thumb"?(base64 JPEG)}  → {"sent":"<id>","mediaKey":hex,"directPath":"…"}
//       Baileys encrypts and uploads the file to the media hosts media_conn names, then sends it
//   {"op":"read","jid":"<jid>","id":"…","participant"?:…} → {"read":"<id>"}
//   {"op":"disappearing","to":"<jid>","seconds":N}  → {"sent":"<id>"}  (Baileys' disappearingMessagesInChat)
//   "send" and "sendMedia" take "ephemeral":N (Baileys' ephemeralExpiration option), "sendMedia" "viewOnce":true
//   {"op":"stream","to":"<jid>","count"?:N,"seconds"?:S,"rate"?:R,"prefix"?:"…"}
//       texts one after the other (each sendMessage awaited), R per second (0 or absent: as fast
//       as it can), until N are sent or S seconds have passed; ids to the fake server's deliveries
//       as they go  → {"streamed":{"ids":[…],"wallMs":N,"cpuUs":N}} (cpuUs: this process's
//       user+system time over the stream)
//   {"op":"createGroup","subject":"…","participants":["<jid>",…]}  → {"group":{id,subject,participants:[{id,admin}],…}}
//   {"op":"groupParticipantsUpdate","jid":"<group>","participants":[…],"action":"add|remove|promote|demote"}
//       → {"participants":[{status,jid}]}
//   {"op":"groupMetadata","jid":"<group>"}  → {"group":{…}}      (Baileys' own group functions)
//   ("send" to a group JID sends to the group: Baileys' sender-key fan-out)
//   Any op's failure prints {"error":"…"} (a refused group iq: Baileys' message with the code in data)
// and prints a JSON line for each thing it sees:
//   {"ready":true,"jid":"…","lid":"…"}   {"recv":{id,from,fromMe,participant,participantAlt,text,replyTo,expiration,viewOnce,
//       ephemeralSetting}}   {"update":{id,status}}
//       (expiration: the content's contextInfo.expiration; viewOnce: a view-once wrapper or flag;
//        ephemeralSetting: a protocolMessage EPHEMERAL_SETTING's timer)
//   {"chatUpdate":{id,ephemeralExpiration}}   (Baileys' chats.update with a timer)
//   {"groupUpsert":{id,subject,participants}}   {"groupParticipants":{id,action,participants}}
//   {"groupUpdate":{id,subject,author}}   (a group's subject changed, as Baileys tells it: groups.update)
//   {"location":{id,latitude,longitude,name,address,url,live,replyTo}}   {"contacts":{id,array,cards:[{displayName,vcard}]}}
//   {"poll":{id,field,name,options,selectableOptionsCount,secret}}   (secret: messageContextInfo.messageSecret, hex)
//   {"pollVote":{id,pollId,pollFromMe,encPayload,encIv}}   a vote as it came (hex)
//   {"reaction":{id,target,text,targetFromMe}}   {"edited":{id,text}}   {"revoked":{id}}   (messages.update)
//   {"media":{id,type,sha256,size,mimetype,caption,fileName,seconds,ptt,waveform,width,height,thumb,
//             fileLength,pageCount,replyTo,viewOnce,expiration}}   a media message, downloaded with Baileys' own downloadMediaMessage
//             (sha256 of the bytes it decrypted; waveform base64; thumb: the jpegThumbnail's length)
//   {"mediaError":{id,error}}   {"error":"…"}
//   Media messages of its own (fromMe: the ones it sent, echoed by Baileys) are downloaded too,
//   unless --own-media skip (a bench measuring someone else's download, alone on the media host).
// Usage: node baileys_peer.mjs --url WS --version V --control HTTP --phone DIGITS [--own-media skip]
import { createCipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import readline from 'node:readline';
import { decryptPollVote, downloadMediaMessage, extractMessageContent, generateMessageIDV2, getContentType, proto } from 'baileys';
import { memoryAuth, startBaileys, closeCode } from './baileys_client.mjs';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function control(path, body) {
    const r = await fetch(args.control + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return r.json();
}

const auth = memoryAuth();
let c = startBaileys({ url: args.url, auth, version: args.version, qrTimeout: 20000 });
const u = await c.next((x) => !!x.qr, 15000, 'QR');
const res = await control('/phone/scan', { qr: u.qr, phone: args.phone, timeoutMs: 10000 });
if (!res.ok) {
    out({ error: `pairing failed: ${JSON.stringify(res)}` });
    process.exit(1);
}
await c.waitClose(10000);
c = startBaileys({ url: args.url, auth, version: args.version });
const open = await c.waitOpen(15000);
if (open.connection !== 'open') {
    out({ error: `login failed: ${closeCode(open)}` });
    process.exit(1);
}
const sock = c.sock;
auth.creds.me && sock.ev.on('creds.update', () => {});
sock.ev.on('messages.upsert', ({ messages }) => {
    for (const m of messages) {
        const msg = m.message || {};
        out({ recv: { id: m.key.id, from: m.key.remoteJid, fromMe: !!m.key.fromMe, participant: m.key.participant ?? null, participantAlt: m.key.participantAlt ?? null,
            text: msg.conversation ?? msg.extendedTextMessage?.text ?? null,
            replyTo: msg.extendedTextMessage?.contextInfo?.stanzaId ?? null, stub: m.messageStubType ?? null, stubParams: m.messageStubParameters ?? null,
            forwarded: !!(() => { const c = extractMessageContent(msg); const t = c && getContentType(c); return c?.[t]?.contextInfo?.isForwarded; })(),
            expiration: (() => { const c = extractMessageContent(msg); const t = c && getContentType(c); return c?.[t]?.contextInfo?.expiration ?? null; })(),
            viewOnce: !!(msg.viewOnceMessage || msg.viewOnceMessageV2 || msg.viewOnceMessageV2Extension ||
                (() => { const c = extractMessageContent(msg); const t = c && getContentType(c); return c?.[t]?.viewOnce; })()),
            viewOnceWrapper: msg.viewOnceMessageV2 ? 'viewOnceMessageV2' : msg.viewOnceMessage ? 'viewOnceMessage' : null,
            ephemeralSetting: (() => { const p = extractMessageContent(msg)?.protocolMessage; return p && p.type === 3 ? (p.ephemeralExpiration ?? 0) : null; })() } });
        const content = extractMessageContent(msg);
        const loc = content?.locationMessage ?? content?.liveLocationMessage;
        if (loc) out({ location: { id: m.key.id, latitude: loc.degreesLatitude, longitude: loc.degreesLongitude, name: loc.name ?? null,
            address: loc.address ?? null, url: loc.url ?? null, live: !!content.liveLocationMessage,
            replyTo: loc.contextInfo?.stanzaId ?? null } });
        const pf = ['pollCreationMessage', 'pollCreationMessageV2', 'pollCreationMessageV3'].find((f) => content?.[f]);
        if (pf) out({ poll: { id: m.key.id, field: pf, name: content[pf].name ?? null,
            options: (content[pf].options ?? []).map((o) => o.optionName ?? null),
            selectableOptionsCount: content[pf].selectableOptionsCount ?? null,
            secret: (msg.messageContextInfo ?? content.messageContextInfo)?.messageSecret
                ? Buffer.from((msg.messageContextInfo ?? content.messageContextInfo).messageSecret).toString('hex') : null } });
        const pu = content?.pollUpdateMessage;
        if (pu) out({ pollVote: { id: m.key.id, pollId: pu.pollCreationMessageKey?.id ?? null,
            pollFromMe: !!pu.pollCreationMessageKey?.fromMe, encPayload: Buffer.from(pu.vote?.encPayload ?? []).toString('hex'),
            encIv: Buffer.from(pu.vote?.encIv ?? []).toString('hex') } });
        if (content?.reactionMessage) out({ reaction: { id: m.key.id, target: content.reactionMessage.key?.id ?? null,
            text: content.reactionMessage.text ?? null, targetFromMe: !!content.reactionMessage.key?.fromMe } });
        const cards = content?.contactMessage ? [content.contactMessage] : content?.contactsArrayMessage?.contacts;
        if (cards) out({ contacts: { id: m.key.id, array: !!content.contactsArrayMessage,
            cards: cards.map((x) => ({ displayName: x.displayName ?? null, vcard: x.vcard ?? null })) } });
        const ct = content && getContentType(content);
        if (ct && /^(image|video|audio|document|sticker)Message$/.test(ct) && !(m.key.fromMe && args['own-media'] === 'skip')) {
            const md = content[ct];
            downloadMediaMessage(m, 'buffer', {}).then((buf) => out({ media: {
                id: m.key.id, type: ct, sha256: createHash('sha256').update(buf).digest('hex'), size: buf.length,
                mimetype: md.mimetype ?? null, caption: md.caption ?? null, fileName: md.fileName ?? null,
                seconds: md.seconds ?? null, ptt: !!md.ptt, waveform: md.waveform ? Buffer.from(md.waveform).toString('base64') : null,
                width: md.width ?? null, height: md.height ?? null, thumb: md.jpegThumbnail ? md.jpegThumbnail.length : 0,
                fileLength: md.fileLength != null ? Number(md.fileLength) : null, pageCount: md.pageCount ?? null,
                replyTo: md.contextInfo?.stanzaId ?? null, viewOnce: !!md.viewOnce,
                expiration: md.contextInfo?.expiration ?? null } }))
                .catch((e) => out({ mediaError: { id: m.key.id, error: String(e?.message || e) } }));
        }
    }
});
sock.ev.on('chats.update', (cs) => {
    for (const x of cs) if ('ephemeralExpiration' in x) out({ chatUpdate: { id: x.id, ephemeralExpiration: x.ephemeralExpiration ?? 0 } });
});
sock.ev.on('groups.upsert', (gs) => {
    for (const g of gs) out({ groupUpsert: { id: g.id, subject: g.subject, participants: (g.participants ?? []).map((p) => p.id) } });
});
sock.ev.on('group-participants.update', (u) => out({ groupParticipants: { id: u.id, action: u.action, participants: (u.participants ?? []).map((p) => p.id ?? p) } }));
sock.ev.on('groups.update', (us) => {
    for (const u of us) out({ groupUpdate: { id: u.id, subject: u.subject ?? null, author: u.author ?? null } });
});
sock.ev.on('messages.update', (ups) => {
    for (const x of ups) {
        if (x.update?.status != null) out({ update: { id: x.key.id, status: x.update.status } });
        const ed = x.update?.message?.editedMessage?.message;
        if (ed) out({ edited: { id: x.key.id, text: ed.conversation ?? ed.extendedTextMessage?.text ?? null } });
        if (x.update?.messageStubType === 1) out({ revoked: { id: x.key.id } });
    }
});
out({ ready: true, jid: auth.creds.me?.id, lid: auth.creds.me?.lid ?? null });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
    try {
        const cmd = JSON.parse(line);
        const key = (fromMe) => ({ remoteJid: cmd.to, id: cmd.target, fromMe });
        if (cmd.op === 'send') {
            const opts = cmd.id ? { messageId: cmd.id } : {};
            if (cmd.ephemeral) opts.ephemeralExpiration = cmd.ephemeral;
            if (cmd.replyTo) opts.quoted = { key: key(false), message: { conversation: cmd.quotedText ?? '' } };
            if (cmd.replyTo) opts.quoted.key.id = cmd.replyTo;
            const m = await sock.sendMessage(cmd.to, { text: cmd.text }, opts);
            out({ sent: m.key.id });
        } else if (cmd.op === 'sendMedia') {
            const media = { url: cmd.path };
            const field = { image: 'image', video: 'video', audio: 'audio', voice: 'audio', document: 'document', sticker: 'sticker' }[cmd.kind];
            const content = { [field]: media };
            if (cmd.mimetype) content.mimetype = cmd.mimetype;
            if (cmd.caption) content.caption = cmd.caption;
            if (cmd.fileName) content.fileName = cmd.fileName;
            if (cmd.seconds) content.seconds = cmd.seconds;
            if (cmd.kind === 'voice') content.ptt = true;
            if (cmd.waveform) content.waveform = Buffer.from(cmd.waveform, 'base64');
            if (cmd.thumb) content.jpegThumbnail = Buffer.from(cmd.thumb, 'base64');
            if (cmd.viewOnce) content.viewOnce = true;
            const m = await sock.sendMessage(cmd.to, content, cmd.ephemeral ? { ephemeralExpiration: cmd.ephemeral } : {});
            const inner = extractMessageContent(m.message) || {};
            const att = inner[getContentType(inner)] || {};
            out({ sent: m.key.id, mediaKey: att.mediaKey ? Buffer.from(att.mediaKey).toString("hex") : null, directPath: att.directPath ?? null });
        } else if (cmd.op === 'disappearing') {
            const m = await sock.sendMessage(cmd.to, { disappearingMessagesInChat: cmd.seconds });
            out({ sent: m?.key?.id ?? null });
        } else if (cmd.op === 'sendLocation') {
            const l = cmd.location;
            const m = await sock.sendMessage(cmd.to, { location: { degreesLatitude: l.latitude, degreesLongitude: l.longitude,
                ...(l.name ? { name: l.name } : {}), ...(l.address ? { address: l.address } : {}) } });
            out({ sent: m.key.id });
        } else if (cmd.op === 'sendContacts') {
            const m = await sock.sendMessage(cmd.to, { contacts: { displayName: cmd.displayName,
                contacts: cmd.contacts.map((x) => ({ displayName: x.displayName, vcard: x.vcard })) } });
            out({ sent: m.key.id });
        } else if (cmd.op === 'pin') {
            // Baileys' own pinInChatMessage (type 1 pin for `time` seconds, 2 unpin) on a message of the chat.
            const m = await sock.sendMessage(cmd.to, { pin: { remoteJid: cmd.to, id: cmd.target, fromMe: !!cmd.fromMe },
                type: cmd.type ?? 1, ...(cmd.time ? { time: cmd.time } : {}) });
            out({ sent: m.key.id });
        } else if (cmd.op === 'sendPoll') {
            const m = await sock.sendMessage(cmd.to, { poll: { name: cmd.name, values: cmd.values, selectableCount: cmd.selectableCount } });
            const sec = m.message?.messageContextInfo?.messageSecret;
            out({ sent: m.key.id, secret: sec ? Buffer.from(sec).toString('hex') : null });
        } else if (cmd.op === 'vote') {
            const secret = Buffer.from(cmd.secret, 'hex');
            const info = Buffer.concat([cmd.pollId, cmd.creator, cmd.voter, 'Poll Vote'].map((x) => Buffer.from(x)));
            const key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), info, 32));
            // PollVoteMessage: field 1 (bytes), one per chosen option's SHA-256 (written out here, 0x0a 0x20 sum).
            const plain = Buffer.concat(cmd.options.map((o) => Buffer.concat([Buffer.from([0x0a, 0x20]), createHash('sha256').update(o).digest()])));
            const iv = randomBytes(12);
            const c = createCipheriv('aes-256-gcm', key, iv);
            c.setAAD(Buffer.concat([Buffer.from(cmd.pollId), Buffer.from([0]), Buffer.from(cmd.voter)]));
            const sealed = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
            if (cmd.tamper) sealed[sealed.length - 1] ^= 1;
            const message = { pollUpdateMessage: { pollCreationMessageKey: { remoteJid: cmd.to, fromMe: !!cmd.pollFromMe, id: cmd.pollId },
                vote: { encPayload: sealed, encIv: iv }, senderTimestampMs: Date.now() } };
            if (cmd.sealOnly) {
                out({ sealed: Buffer.from(proto.Message.encode(message).finish()).toString('base64') });
                return;
            }
            const id = cmd.id ?? generateMessageIDV2(sock.user?.id);
            await sock.relayMessage(cmd.to, message, { messageId: id, additionalNodes: [{ tag: 'meta', attrs: { polltype: 'vote' } }] });
            out({ sent: id });
        } else if (cmd.op === 'openVote') {
            const v = decryptPollVote({ encPayload: Buffer.from(cmd.encPayload, 'hex'), encIv: Buffer.from(cmd.encIv, 'hex') },
                { pollCreatorJid: cmd.creator, pollMsgId: cmd.pollId, pollEncKey: Buffer.from(cmd.secret, 'hex'), voterJid: cmd.voter });
            out({ opened: (v.selectedOptions ?? []).map((x) => Buffer.from(x).toString('hex')) });
        } else if (cmd.op === 'react') {
            const m = await sock.sendMessage(cmd.to, { react: { text: cmd.text, key: key(!!cmd.fromMe) } });
            out({ sent: m.key.id });
        } else if (cmd.op === 'edit') {
            const m = await sock.sendMessage(cmd.to, { text: cmd.text, edit: key(true) });
            out({ sent: m.key.id });
        } else if (cmd.op === 'revoke') {
            const m = await sock.sendMessage(cmd.to, { delete: key(true) });
            out({ sent: m.key.id });
        } else if (cmd.op === 'read') {
            await sock.readMessages([{ remoteJid: cmd.jid, id: cmd.id, fromMe: false, participant: cmd.participant }]);
            out({ read: cmd.id });
        } else if (cmd.op === 'stream') {
            const rate = Number(cmd.rate || 0), count = cmd.count ?? Infinity, ms = (cmd.seconds ?? Infinity) * 1000;
            const ids = [], pending = [];
            const cpu0 = process.cpuUsage(), t0 = performance.now();
            while (ids.length < count && performance.now() - t0 < ms) {
                if (rate > 0) {
                    const due = t0 + (ids.length * 1000) / rate - performance.now();
                    if (due > 0) await new Promise((r) => setTimeout(r, due));
                }
                const p = sock.sendMessage(cmd.to, { text: `${cmd.prefix ?? 'stream'} ${ids.length}` });
                if (cmd.overlap) {
                    ids.push(null);
                    const k = ids.length - 1;
                    pending.push(p.then((m) => (ids[k] = m.key.id)));
                } else ids.push((await p).key.id);
            }
            await Promise.all(pending);
            const cpu = process.cpuUsage(cpu0);
            out({ streamed: { ids, wallMs: performance.now() - t0, cpuUs: cpu.user + cpu.system } });
        } else if (cmd.op === 'createGroup') {
            out({ group: await sock.groupCreate(cmd.subject, cmd.participants) });
        } else if (cmd.op === 'groupParticipantsUpdate') {
            const r = await sock.groupParticipantsUpdate(cmd.jid, cmd.participants, cmd.action);
            out({ participants: r.map((x) => ({ status: x.status, jid: x.jid })) });
        } else if (cmd.op === 'groupMetadata') {
            out({ group: await sock.groupMetadata(cmd.jid) });
        } else if (cmd.op === 'quit') {
            await c.end();
            process.exit(0);
        }
    } catch (e) {
        out({ error: String(e?.stack || e), code: e?.data ?? e?.output?.statusCode ?? null });
    }
});
rl.on('close', async () => {
    await c.end();
    process.exit(0);
});
