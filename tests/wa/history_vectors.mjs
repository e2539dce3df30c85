#!/usr/bin/env node
// History sync vectors from an independent implementation (Baileys' own
// proto.HistorySync encoder and node's zlib), for tests/unit/test_wa_history.c
// and tests/tools/wa_history_rss.c:
//   node tests/wa/history_vectors.mjs DIR        -> DIR/small.{zz,pb,json}, DIR/large.{zz,json}, DIR/notif.json
//   node tests/wa/history_vectors.mjs DIR big MB -> DIR/big.{zz,json}: a blob inflating to about MB megabytes
//   node tests/wa/history_vectors.mjs DIR bench  -> DIR/bench.{zz,json}: 100,000 messages across 2,000 chats
//   node tests/wa/history_vectors.mjs DIR decode F.zz -> Baileys' decode of F.zz timed (one JSON line)
// The JSON files say what a decoder must find: every conversation with its
// fields and messages (the Message bytes Baileys encoded, and what they
// mean), push names, LID mappings; for the large blobs a digest over every
// message instead, and counts.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { proto } from 'baileys';

const dir = process.argv[2];
if (!dir) {
    console.error('usage: history_vectors.mjs DIR [big MB]');
    process.exit(2);
}
mkdirSync(dir, { recursive: true });
const hex = (b) => Buffer.from(b).toString('hex');
const T = proto.HistorySync.HistorySyncType;
const ST = proto.WebMessageInfo.Status;

// One expected message: its key and info, and the meaning of its content.
const expectMsg = (w, meaning, orderId) => ({
    id: w.key.id,
    remoteJid: w.key.remoteJid,
    fromMe: !!w.key.fromMe,
    keyParticipant: w.key.participant ?? null,
    participant: w.participant ?? null,
    pushName: w.pushName ?? null,
    timestamp: Number(w.messageTimestamp ?? 0),
    status: w.status ?? -1,
    stubType: w.messageStubType ?? 0,
    starred: !!w.starred,
    orderId: orderId ?? 0,
    message: w.message ? hex(proto.Message.encode(w.message).finish()) : null,
    ...meaning,
});

const mkey = (remoteJid, id, fromMe, participant) => ({ remoteJid, id, fromMe, ...(participant ? { participant } : {}) });

// ---- the small blob: every kind the message path reads, every field ----
const small = () => {
    const alice = '4915112345678@s.whatsapp.net';
    const bobLid = '123456789012345@lid';
    const group = '120363025246125486@g.us';
    const convs = [];
    const want = [];
    const add = (conv, msgs) => {
        convs.push({ ...conv, messages: msgs.map(([w, , orderId]) => (w ? { message: w, msgOrderId: orderId } : { msgOrderId: orderId })) });
        want.push({
            id: conv.id,
            name: conv.name ?? null,
            displayName: conv.displayName ?? null,
            pnJid: conv.pnJid ?? null,
            lidJid: conv.lidJid ?? null,
            newJid: conv.newJid ?? null,
            oldJid: conv.oldJid ?? null,
            unreadCount: conv.unreadCount ?? 0,
            lastMsgTimestamp: Number(conv.lastMsgTimestamp ?? 0),
            conversationTimestamp: Number(conv.conversationTimestamp ?? 0),
            archived: !!conv.archived,
            pinned: conv.pinned ?? 0,
            muteEndTime: Number(conv.muteEndTime ?? 0),
            markedAsUnread: !!conv.markedAsUnread,
            endOfHistoryTransfer: !!conv.endOfHistoryTransfer,
            messages: msgs.filter(([w]) => w).map(([w, meaning, orderId]) => expectMsg(w, meaning, orderId)),
        });
    };
    const text = { conversation: 'Hallo Alice, schön dich zu sehen 👋' };
    const reply = {
        extendedTextMessage: {
            text: 'yes, see you at 8',
            contextInfo: { stanzaId: '3EB0A1B2C3D4E5F6', participant: alice, quotedMessage: { conversation: 'dinner?' } },
        },
    };
    const image = {
        imageMessage: {
            url: 'https://mmg.whatsapp.net/v/t62.7118-24/1.enc',
            directPath: '/v/t62.7118-24/1.enc?oh=x',
            mimetype: 'image/jpeg',
            caption: 'the view from the top',
            mediaKey: randomBytes(32),
            fileSha256: randomBytes(32),
            fileEncSha256: randomBytes(32),
            fileLength: 123456,
            width: 1600,
            height: 1200,
            mediaKeyTimestamp: 1733390000,
        },
    };
    const location = { locationMessage: { degreesLatitude: 52.520008, degreesLongitude: 13.404954, name: 'Alexanderplatz', address: 'Berlin' } };
    add(
        { id: alice, name: 'Alice Example', unreadCount: 2, lastMsgTimestamp: 1733390400, conversationTimestamp: 1733390400, archived: true, pinned: 1733300000, muteEndTime: 1893456000, lidJid: '98765432109876@lid' },
        [
            [{ key: mkey(alice, '3EB0A1B2C3D4E5F6', false), message: { conversation: 'dinner?' }, messageTimestamp: 1733390100, status: ST.READ, pushName: 'Alice' }, { kind: 'text', text: 'dinner?', subtype: 'conversation' }, 1],
            [{ key: mkey(alice, '3EB0FFEEDDCCBBAA01', true), message: reply, messageTimestamp: 1733390200, status: ST.DELIVERY_ACK }, { kind: 'text', text: 'yes, see you at 8', replyTo: '3EB0A1B2C3D4E5F6', subtype: 'extendedTextMessage' }, 2],
            [{ key: mkey(alice, 'ABCDEF0123456789', false), message: image, messageTimestamp: 1733390300, status: ST.READ, pushName: 'Alice', starred: true }, { kind: 'media', text: 'the view from the top', subtype: 'imageMessage' }, 3],
            [{ key: mkey(alice, 'LOC0000000000001', false), message: location, messageTimestamp: 1733390400, pushName: 'Alice' }, { kind: 'location', text: 'Alexanderplatz', subtype: 'locationMessage' }, 4],
            [null, null, 5], // a HistorySyncMsg without its message: skipped
        ],
    );
    add(
        { id: group, name: 'Klettergruppe ⛰️', unreadCount: 0, conversationTimestamp: 1733000000, markedAsUnread: true },
        [
            [{ key: mkey(group, 'GRP1', false, alice), participant: alice, message: text, messageTimestamp: 1733000000, pushName: 'Alice', status: ST.SERVER_ACK }, { kind: 'text', text: text.conversation, subtype: 'conversation' }, 0],
            [{ key: mkey(group, 'GRP2', false, bobLid), message: { conversation: 'from a LID' }, messageTimestamp: 1733000001 }, { kind: 'text', text: 'from a LID', subtype: 'conversation' }, 0],
            // a system message (someone joined): no content, a stub type
            [{ key: mkey(group, 'GRP3', false), messageTimestamp: 1733000002, messageStubType: proto.WebMessageInfo.StubType.GROUP_PARTICIPANT_ADD, messageStubParameters: [alice] }, { kind: null }, 0],
        ],
    );
    add({ id: bobLid, pnJid: '4930123456@s.whatsapp.net', displayName: 'Bob', endOfHistoryTransfer: true, newJid: null }, [
        [{ key: mkey(bobLid, 'BOB1', true), message: { conversation: '' }, messageTimestamp: 1732000000, status: ST.PLAYED }, { kind: 'text', text: '', subtype: 'conversation' }, 0],
    ]);
    add({ id: '4912345@s.whatsapp.net', oldJid: '4912345-1600000000@g.us', newJid: '4912345@s.whatsapp.net', unreadCount: 4294967295 }, []);
    const pushnames = [
        { id: alice, pushname: 'Alice' },
        { id: bobLid, pushname: 'Bob 🚲' },
    ];
    const lid = [
        { pnJid: '4930123456@s.whatsapp.net', lidJid: bobLid },
        { pnJid: alice, lidJid: '98765432109876@lid' },
    ];
    const statusMsg = { key: mkey('status@broadcast', 'STATUS1', false, alice), participant: alice, message: { conversation: 'my status' }, messageTimestamp: 1733390500, pushName: 'Alice' };
    const hs = {
        syncType: T.INITIAL_BOOTSTRAP,
        chunkOrder: 3,
        progress: 42,
        conversations: convs,
        // not read by wapi, must be skipped: a bytes field and a repeated message
        threadIdUserSecret: randomBytes(32),
        recentStickers: [{ fileSha256: randomBytes(32), mimetype: 'image/webp' }],
        statusV3Messages: [statusMsg],
        pushnames: [...pushnames, { id: 'no-name@s.whatsapp.net' }],
        phoneNumberToLidMappings: [...lid, { pnJid: 'x@s.whatsapp.net' }],
        companionMetaNonce: 'nonce',
    };
    const pb = proto.HistorySync.encode(hs).finish();
    const back = proto.HistorySync.decode(pb); // Baileys reads it back the same
    if (back.conversations.length !== convs.length) throw new Error('Baileys round trip');
    writeFileSync(join(dir, 'small.pb'), pb);
    writeFileSync(join(dir, 'small.zz'), deflateSync(pb));
    writeFileSync(
        join(dir, 'small.json'),
        JSON.stringify({
            syncType: hs.syncType, chunkOrder: hs.chunkOrder, progress: hs.progress, inflated: pb.length,
            conversations: want, pushnames, lidMappings: lid, statuses: [expectMsg(statusMsg, { kind: 'text', text: 'my status', subtype: 'conversation' }, 0)],
            skipped: 3, // the message-less HistorySyncMsg, the pushname without a name, the mapping without a LID
        }, null, 1),
    );
};

// ---- many conversations: counts and a digest over every message ----
// A line per message: conv|id|fromMe|timestamp|text, in order.
const bulk = (name, nconv, per, pad) => {
    const h = createHash('sha256');
    const conversations = [];
    let nmsg = 0;
    for (let c = 0; c < nconv; c++) {
        const id = `49${String(1000000000 + c)}@s.whatsapp.net`;
        const messages = [];
        for (let i = 0; i < per; i++) {
            const fromMe = (i % 3) === 0;
            const ts = 1700000000 + c * 1000 + i;
            const t = `message ${i} in chat ${c} ${pad ? randomBytes(pad).toString('base64') : ''}`;
            const msg = i % 5 === 4
                ? { extendedTextMessage: { text: t, contextInfo: { stanzaId: `${c}-${i - 1}`, participant: id } } }
                : { conversation: t };
            messages.push({ message: { key: mkey(id, `${c}-${i}`, fromMe), message: msg, messageTimestamp: ts, status: ST.READ }, msgOrderId: i + 1 });
            h.update(`${id}|${c}-${i}|${fromMe ? 1 : 0}|${ts}|${t}\n`);
            nmsg++;
        }
        conversations.push({ id, name: `Chat ${c}`, unreadCount: c % 7, conversationTimestamp: 1700000000 + c * 1000, messages });
    }
    const pushnames = Array.from({ length: nconv }, (_, c) => ({ id: `49${String(1000000000 + c)}@s.whatsapp.net`, pushname: `Person ${c}` }));
    const lid = Array.from({ length: 50 }, (_, c) => ({ pnJid: `49${String(1000000000 + c)}@s.whatsapp.net`, lidJid: `${100000000000000 + c}@lid` }));
    const pb = proto.HistorySync.encode({ syncType: T.RECENT, chunkOrder: 1, progress: 100, conversations, pushnames, phoneNumberToLidMappings: lid }).finish();
    const zz = deflateSync(pb);
    writeFileSync(join(dir, `${name}.zz`), zz);
    let maxConv = 0;
    for (const c of conversations) maxConv = Math.max(maxConv, proto.Conversation.encode(c).finish().length);
    writeFileSync(join(dir, `${name}.json`), JSON.stringify({
        conversations: nconv, messages: nmsg, pushnames: pushnames.length, lidMappings: lid.length,
        inflated: pb.length, compressed: zz.length, maxConversation: maxConv, digest: h.digest('hex'),
    }));
};

// ---- the notification our phone sends: a protocolMessage ----
const notif = () => {
    const n = {
        fileSha256: randomBytes(32), fileLength: 2345678, mediaKey: randomBytes(32), fileEncSha256: randomBytes(32),
        directPath: '/v/t62.15575-24/12345_67890.enc?ccb=11-4&oh=01_Q5', syncType: proto.Message.HistorySyncType.RECENT,
        chunkOrder: 2, originalMessageId: '3EB0C0FFEE', progress: 17, oldestMsgInChunkTimestampSec: 1699999999,
        peerDataRequestSessionId: 'sess-1',
    };
    const inline = deflateSync(proto.HistorySync.encode({ syncType: T.INITIAL_BOOTSTRAP, pushnames: [{ id: 'a@s.whatsapp.net', pushname: 'A' }] }).finish());
    const msg = (h) => hex(proto.Message.encode({ protocolMessage: { type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION, historySyncNotification: h } }).finish());
    writeFileSync(join(dir, 'notif.json'), JSON.stringify({
        blob: { message: msg(n), mediaKey: hex(n.mediaKey), fileSha256: hex(n.fileSha256), fileEncSha256: hex(n.fileEncSha256), fileLength: n.fileLength, directPath: n.directPath, syncType: n.syncType, chunkOrder: n.chunkOrder, originalMessageId: n.originalMessageId, progress: n.progress, oldest: n.oldestMsgInChunkTimestampSec, session: n.peerDataRequestSessionId },
        inline: { message: msg({ syncType: proto.Message.HistorySyncType.INITIAL_BOOTSTRAP, initialHistBootstrapInlinePayload: inline, chunkOrder: 0 }), payload: hex(inline) },
        badKey: msg({ ...n, mediaKey: randomBytes(31) }),
        nothing: msg({ syncType: proto.Message.HistorySyncType.RECENT }),
        revoke: hex(proto.Message.encode({ protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: { id: 'X' } } }).finish()),
        text: hex(proto.Message.encode({ conversation: 'hi' }).finish()),
    }));
};

if (process.argv[3] === 'bench') {
    // the benchmark's size: 100,000 messages across 2,000 chats
    bulk('bench', 2000, 50, 0);
} else if (process.argv[3] === 'decode') {
    // Baileys' own way (inflate whole, HistorySync.decode), timed, for comparison
    const { readFileSync } = await import('node:fs');
    const { inflateSync } = await import('node:zlib');
    const t0 = process.hrtime.bigint();
    const hs = proto.HistorySync.decode(inflateSync(readFileSync(process.argv[4])));
    let msgs = 0;
    for (const c of hs.conversations) msgs += c.messages.length;
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ conversations: hs.conversations.length, messages: msgs, seconds: +secs.toFixed(2), msgs_per_s: Math.round(msgs / secs), rss_kb: Math.round(process.resourceUsage().maxRSS) }));
} else if (process.argv[3] === 'big') {
    // about MB megabytes inflated: 250 chats of 100 messages with a padded text each
    const mb = Number(process.argv[4] || 50);
    const per = 100, nconv = 250;
    const pad = Math.max(0, Math.round((mb * 1024 * 1024) / (nconv * per) - 120) * 3 / 4) | 0;
    bulk('big', nconv, per, pad);
} else {
    small();
    bulk('large', 400, 50, 0); // 20,000 messages
    notif();
}
