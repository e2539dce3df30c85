// The fake phone's history sync: HistorySync blobs built with Baileys' own
// encoder (proto.HistorySync), deflated, encrypted as WhatsApp media of the
// history kind (keys from Baileys' getMediaKeys 'md-msg-hist': "WhatsApp
// History Keys"), put on the fake media host, and announced to the account's
// companions in a protocolMessage HISTORY_SYNC_NOTIFICATION from the phone
// (device 0). The companion's <receipt type=hist_sync> is checked as the
// phone would: to the account itself, for a notification it sent, once.
//
//   send(b): b = {syncType: 'INITIAL_BOOTSTRAP'|'RECENT'|'FULL'|'PUSH_NAME'|'ON_DEMAND'|number,
//     chunkOrder?, progress?, conversations?: [HistorySync.Conversation as JSON], pushnames?: [{id, pushname}],
//     lidMappings?: [{pnJid, lidJid}], bulk?: {chats, perChat, textBytes} (synthetic messages appended),
//     inline?: bool (the blob in initialHistBootstrapInlinePayload, not on the host),
//     corrupt?: 'zlib' (a damaged stream under sums that match) | 'sums' (the announced sha256 is wrong),
//     id?, peerDataRequestSessionId?, saveTo? (a file the deflated blob is written to),
//     from? (another account sends it: a companion must ignore it), blobFile? (a deflated HistorySync to send)}
//   → {id, directPath, bytes (deflated), inflated, conversations, messages}
import crypto from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { proto } from 'baileys';
import { getMediaKeys } from 'baileys/lib/Utils/messages-media.js';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();

/** A bulk history: chats conversations of perChat text messages each. */
function bulkConversations({ chats = 10, perChat = 10, textBytes = 40, base = 4917000000000 } = {}, t0) {
    const out = [];
    const filler = 'x'.repeat(Math.max(0, textBytes - 12));
    for (let c = 0; c < chats; c++) {
        const jid = `${base + c}@s.whatsapp.net`;
        const messages = [];
        for (let i = 0; i < perChat; i++) {
            const fromMe = i % 3 === 0;
            messages.push({ message: { key: { remoteJid: jid, fromMe, id: `BULK${(base + c).toString(16).toUpperCase()}${i.toString(16).padStart(6, '0')}` },
                message: { conversation: `m${c}.${i} ${filler}` }, messageTimestamp: t0 - (perChat - i) * 60, ...(fromMe ? {} : { pushName: `Bulk ${c}` }) },
                msgOrderId: i + 1 });
        }
        out.push({ id: jid, name: null, unreadCount: c % 4, conversationTimestamp: t0, messages });
    }
    return out;
}

export class FakeHistory {
    constructor(server) {
        this.server = server;
        this.sent = new Map(); // id -> {syncType, chunkOrder, receipts, ...}
        this.receipts = [];
    }

    syncType(t) {
        if (typeof t === 'number') return t;
        const v = proto.HistorySync.HistorySyncType[t ?? 'INITIAL_BOOTSTRAP'];
        if (v == null) throw new Error(`history: no sync type ${t}`);
        return v;
    }

    /** The HistorySync's bytes as Baileys encodes them, and what is in it. */
    encode(b) {
        const syncType = this.syncType(b.syncType);
        const t0 = Math.floor(Date.now() / 1000);
        const conversations = [...(b.conversations ?? []), ...(b.bulk ? bulkConversations(b.bulk, t0) : [])];
        const hs = proto.HistorySync.fromObject({
            syncType,
            chunkOrder: b.chunkOrder ?? 0,
            progress: b.progress ?? 100,
            conversations,
            pushnames: b.pushnames ?? [],
            phoneNumberToLidMappings: b.lidMappings ?? []
        });
        const pb = Buffer.from(proto.HistorySync.encode(hs).finish());
        const messages = conversations.reduce((n, c) => n + (c.messages?.length ?? 0), 0);
        return { syncType, pb, conversations: conversations.length, messages };
    }

    async send(b = {}) {
        const srv = this.server;
        const phone = srv.phone.phoneNumber;
        // blobFile: a deflated HistorySync made elsewhere (tests/wa/history_vectors.mjs), sent as it is
        const { syncType, pb, conversations, messages } = b.blobFile
            ? { syncType: this.syncType(b.syncType), pb: zlib.inflateSync(fs.readFileSync(b.blobFile)), conversations: null, messages: null }
            : this.encode(b);
        let zz = b.blobFile ? fs.readFileSync(b.blobFile) : zlib.deflateSync(pb);
        if (b.saveTo) fs.writeFileSync(b.saveTo, zz); // the very blob, for another decoder (make bench)
        if (b.corrupt === 'zlib') {
            zz = Buffer.from(zz);
            for (let i = zz.length >> 1; i < Math.min(zz.length, (zz.length >> 1) + 64); i++) zz[i] ^= 0x5a;
        }
        const note = { syncType, chunkOrder: b.chunkOrder ?? 0, progress: b.progress ?? 100,
            ...(b.peerDataRequestSessionId ? { peerDataRequestSessionId: b.peerDataRequestSessionId } : {}) };
        let directPath = null;
        if (b.inline) {
            note.initialHistBootstrapInlinePayload = zz;
        } else {
            if (!srv.media) throw new Error('history: the fake server runs no media host (--media-ca)');
            const mediaKey = crypto.randomBytes(32);
            const { iv, cipherKey, macKey } = await getMediaKeys(mediaKey, 'md-msg-hist');
            const c = crypto.createCipheriv('aes-256-cbc', cipherKey, iv);
            const enc = Buffer.concat([c.update(zz), c.final()]);
            const mac = crypto.createHmac('sha256', macKey).update(iv).update(enc).digest().subarray(0, 10);
            const file = Buffer.concat([enc, mac]);
            const hostId = `${Date.now()}${String(++srv.media.seq).padStart(4, '0')}`;
            directPath = `/v/t62.7118-24/${hostId}_n.enc?ccb=11-4&oh=01_${crypto.randomBytes(9).toString('base64url')}&oe=${Math.floor(Date.now() / 1000 + 14 * 86400).toString(16).toUpperCase()}&_nc_sid=5e03e0`;
            srv.media.uploads.set(hostId, { id: hostId, type: 'md-msg-hist', body: file, token: sha256(file).toString('base64url'), directPath });
            Object.assign(note, { mediaKey, directPath, fileEncSha256: sha256(file), fileLength: zz.length,
                fileSha256: b.corrupt === 'sums' ? crypto.randomBytes(32) : sha256(zz) });
        }
        const message = { protocolMessage: { type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION, historySyncNotification: note } };
        const raw = Buffer.from(proto.Message.encode(proto.Message.fromObject(message)).finish()).toString('base64');
        // from: another account's phone (a forged notification a companion must ignore); default ours.
        const r = await srv.peerSend({ from: b.from ?? phone, raw, ...(b.id ? { id: b.id } : {}) });
        this.sent.set(r.id, { syncType, chunkOrder: note.chunkOrder, receipts: 0, t: Date.now() });
        srv.log(0, 'phone.history', { id: r.id, syncType, chunkOrder: note.chunkOrder, inline: !!b.inline, bytes: zz.length, inflated: pb.length, conversations, messages });
        return { ok: true, id: r.id, directPath, bytes: zz.length, inflated: pb.length, conversations, messages };
    }

    /** <receipt type=hist_sync>: to the account itself, for a notification the phone sent, once. */
    onReceipt(conn, n, want) {
        const own = `${conn.device.user}@s.whatsapp.net`;
        const extra = Object.keys(n.attrs).filter((k) => !['id', 'to', 'type'].includes(k));
        want(extra.length === 0, `<receipt type=hist_sync> with unexpected attributes ${extra.join(',')}`);
        want(n.attrs.to === own, `<receipt type=hist_sync to=${n.attrs.to}>: want the account itself, ${own}`);
        want(n.content == null || (Array.isArray(n.content) && n.content.length === 0), '<receipt type=hist_sync> with children');
        const s = this.sent.get(n.attrs.id);
        want(s != null, `<receipt type=hist_sync id=${n.attrs.id}>: the phone sent no such history notification`);
        s.receipts++;
        want(s.receipts === 1, `<receipt type=hist_sync id=${n.attrs.id}> a second time`);
        this.receipts.push({ id: n.attrs.id, t: Date.now() });
        conn.log('phone.hist_sync', { id: n.attrs.id, syncType: s.syncType, chunkOrder: s.chunkOrder });
    }

    /** A HISTORY_SYNC_ON_DEMAND request from a companion: checked as the phone reads it (a chat, an
     *  anchor message of it with its key and time in seconds, a count of 1..500), logged, and
     *  answered (unless answerOnDemand is false) with an ON_DEMAND chunk of up to count messages older
     *  than the anchor, from onDemandMessages[chat] (the phone's older history of that chat),
     *  naming the request. Returns a problem, or null. */
    onDemand(conn, requestId, req) {
        const h = req.historySyncOnDemandRequest;
        if (!h) return 'no historySyncOnDemandRequest';
        const extra = Object.keys(h.toJSON ? h.toJSON() : h).filter((k) => !['chatJid', 'oldestMsgId', 'oldestMsgFromMe', 'onDemandMsgCount', 'oldestMsgTimestampMs'].includes(k));
        if (extra.length) return `unexpected fields ${extra.join(',')}`;
        if (!/^[0-9]+@(s\.whatsapp\.net|g\.us|lid)$/.test(h.chatJid ?? '')) return `chatJid ${h.chatJid}`;
        if (!h.oldestMsgId) return 'no oldestMsgId';
        if (typeof h.oldestMsgFromMe !== 'boolean') return 'no oldestMsgFromMe';
        const count = Number(h.onDemandMsgCount);
        if (!(count >= 1 && count <= 500)) return `onDemandMsgCount ${h.onDemandMsgCount}`;
        const ts = Number(h.oldestMsgTimestampMs);
        if (!(ts > 1e9 && ts < Date.now() / 1000 + 86400)) return `oldestMsgTimestampMs ${h.oldestMsgTimestampMs}: want the anchor's time in seconds`;
        const r = { requestId, chat: h.chatJid, anchor: h.oldestMsgId, fromMe: h.oldestMsgFromMe, count, ts };
        (this.requests ??= []).push(r);
        conn.log('phone.history_request', r);
        if (this.answerOnDemand === false) return null;
        const older = (this.onDemandMessages?.[h.chatJid] ?? []).filter((m) => Number(m.message.messageTimestamp) < ts).slice(-count);
        this.send({ syncType: 'ON_DEMAND', chunkOrder: 0, progress: 100, inline: !this.server.media, peerDataRequestSessionId: requestId,
            conversations: [{ id: h.chatJid, messages: older }] }).catch((e) => conn.log('warning', { detail: `on-demand answer: ${e.message}` }));
        return null;
    }

    state() {
        return { sent: Object.fromEntries(this.sent), receipts: this.receipts, requests: this.requests ?? [] };
    }
}
