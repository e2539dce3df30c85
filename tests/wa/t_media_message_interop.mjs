#!/usr/bin/env node
// The media messages (image, video, audio, voice note, document with and
// without caption, sticker) between wapi's protobuf code
// (build/tests/tools/wa_msg_tool) and Baileys' own WAProto definitions:
// what Baileys encodes, wapi reads field for field; what wapi writes, Baileys
// decodes to the same fields, wrapped as WhatsApp clients wrap them
// (documentWithCaptionMessage, deviceSentMessage, ptt, the reply context).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { proto } from 'baileys';

const TOOL = process.env.WA_MSG_TOOL || 'build/tests/tools/wa_msg_tool';
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const hex = (b) => (b == null ? null : Buffer.from(b).toString('hex'));
const parse = (bytes) => {
    const r = spawnSync(TOOL, ['parse'], { input: bytes });
    return r.status === 0 ? JSON.parse(r.stdout.toString()) : { status: r.status };
};
const build = (args) => {
    const r = spawnSync(TOOL, ['build-media', ...args]);
    return r.status === 0 ? r.stdout : null;
};
const num = (v) => (v == null ? 0 : Number(v));

const common = () => ({
    mediaKey: randomBytes(32), fileSha256: randomBytes(32), fileEncSha256: randomBytes(32),
    directPath: `/v/t62.7118-24/${Date.now()}_n.enc?ccb=11-4&oh=01_x&oe=68000000`,
    url: 'https://mmg.whatsapp.net/v/t62.7118-24/x.enc?mms3=true', mediaKeyTimestamp: 1733300000,
    fileLength: 123456789
});
const ctx = { stanzaId: '3EB0AABBCCDDEEFF001122', participant: '15550001111@s.whatsapp.net' };

// ── Baileys → wapi ──
const fromBaileys = [
    ['image', 'imageMessage', { ...common(), mimetype: 'image/jpeg', caption: 'a photo ✓', width: 1280, height: 720,
        jpegThumbnail: randomBytes(300), contextInfo: ctx }],
    ['video', 'videoMessage', { ...common(), mimetype: 'video/mp4', caption: 'clip', seconds: 42, width: 640, height: 360,
        gifPlayback: true, jpegThumbnail: randomBytes(100) }],
    ['audio', 'audioMessage', { ...common(), mimetype: 'audio/mpeg', seconds: 180 }],
    ['voice', 'audioMessage', { ...common(), mimetype: 'audio/ogg; codecs=opus', seconds: 7, ptt: true, waveform: randomBytes(64),
        contextInfo: ctx }],
    ['document', 'documentMessage', { ...common(), mimetype: 'application/pdf', fileName: 'invoice 42.pdf', title: 'invoice 42.pdf',
        pageCount: 3, jpegThumbnail: randomBytes(50) }],
    ['sticker', 'stickerMessage', { ...common(), mimetype: 'image/webp', width: 512, height: 512, isAnimated: true,
        pngThumbnail: randomBytes(40) }],
];
for (const [type, field, f] of fromBaileys) {
    const bytes = proto.Message.encode({ [field]: f }).finish();
    const got = parse(bytes);
    const m = got.media || {};
    const want = {
        type, subtype: field, url: f.url, direct_path: f.directPath, mimetype: f.mimetype, caption: f.caption ?? null,
        file_name: f.fileName ?? null, media_key: hex(f.mediaKey), file_sha256: hex(f.fileSha256),
        file_enc_sha256: hex(f.fileEncSha256), file_length: f.fileLength, width: num(f.width), height: num(f.height),
        seconds: num(f.seconds), pages: num(f.pageCount), ts: f.mediaKeyTimestamp, animated: !!f.isAnimated,
        gif: !!f.gifPlayback, thumbnail: hex(f.jpegThumbnail ?? f.pngThumbnail), waveform: hex(f.waveform),
        reply_to: f.contextInfo?.stanzaId ?? null
    };
    const have = { ...m, subtype: got.subtype, reply_to: got.reply_to };
    const diff = Object.keys(want).filter((k) => JSON.stringify(want[k]) !== JSON.stringify(have[k]));
    check(`Baileys → wapi: ${type} (${field}) read field for field`, got.kind === 'media' && diff.length === 0,
        `kind ${got.kind}; differ: ${diff.map((k) => `${k}: ${JSON.stringify(have[k])} vs ${JSON.stringify(want[k])}`).join('; ')}`);
}
{
    const f = { ...common(), mimetype: 'application/pdf', fileName: 'report.pdf', caption: 'here you go' };
    const got = parse(proto.Message.encode({ documentWithCaptionMessage: { message: { documentMessage: f } } }).finish());
    check('Baileys → wapi: documentWithCaptionMessage unwrapped, its caption and file name kept',
        got.kind === 'media' && got.subtype === 'documentWithCaptionMessage' && got.media?.type === 'document' &&
        got.media.caption === 'here you go' && got.media.file_name === 'report.pdf', JSON.stringify(got));
    const dsm = parse(proto.Message.encode({ deviceSentMessage: { destinationJid: '15550002222@s.whatsapp.net',
        message: { imageMessage: common() } } }).finish());
    check('Baileys → wapi: our other device\'s image (deviceSentMessage) keeps its destination',
        dsm.kind === 'media' && dsm.media?.type === 'image' && dsm.dsm_dest === '15550002222@s.whatsapp.net', JSON.stringify(dsm));
    const short = parse(proto.Message.encode({ imageMessage: { ...common(), mediaKey: randomBytes(31) } }).finish());
    check('Baileys → wapi: a 31-byte media key is read as no key (not downloadable), the rest kept',
        short.kind === 'media' && short.media?.media_key === null && short.media?.file_sha256 !== null, JSON.stringify(short));
    const longWave = parse(proto.Message.encode({ audioMessage: { ...common(), ptt: true, waveform: randomBytes(65) } }).finish());
    check('Baileys → wapi: a waveform over 64 bytes is dropped, the voice note kept',
        longWave.kind === 'media' && longWave.media?.type === 'voice' && longWave.media.waveform === null, JSON.stringify(longWave));
    const inv = parse(proto.Message.encode({ groupInviteMessage: { groupJid: '1203630@g.us', inviteCode: 'x' } }).finish());
    check('unsupported messages keep their real field names (groupInviteMessage)',
        inv.kind === 'unsupported' && inv.subtype === 'groupInviteMessage', JSON.stringify(inv));
}

// ── wapi → Baileys ──
const k = common();
const base = [hex(k.mediaKey), hex(k.fileSha256), hex(k.fileEncSha256), '5000000', k.directPath];
const cases = [
    ['image', ['url=' + k.url, 'mimetype=image/jpeg', 'caption=hello', 'width=800', 'height=600', 'ts=1733300001',
        'thumbnail=' + 'ff'.repeat(20), 'reply_to=3EB0FEED', 'reply_participant=15550001111@s.whatsapp.net'],
    (m) => m.imageMessage && m.imageMessage.caption === 'hello' && m.imageMessage.width === 800 && m.imageMessage.height === 600 &&
        hex(m.imageMessage.jpegThumbnail) === 'ff'.repeat(20) && m.imageMessage.contextInfo?.stanzaId === '3EB0FEED' &&
        m.imageMessage.contextInfo?.participant === '15550001111@s.whatsapp.net' && m.imageMessage.mimetype === 'image/jpeg' &&
        m.imageMessage.url === k.url, (m) => m.imageMessage],
    ['video', ['mimetype=video/mp4', 'seconds=61', 'gif=1', 'caption=v'],
        (m) => m.videoMessage && m.videoMessage.seconds === 61 && m.videoMessage.gifPlayback === true && m.videoMessage.caption === 'v',
        (m) => m.videoMessage],
    ['audio', ['mimetype=audio/mpeg', 'seconds=200'],
        (m) => m.audioMessage && m.audioMessage.seconds === 200 && !m.audioMessage.ptt, (m) => m.audioMessage],
    ['voice', ['mimetype=audio/ogg; codecs=opus', 'seconds=9', 'waveform=' + '0a'.repeat(64)],
        (m) => m.audioMessage && m.audioMessage.ptt === true && hex(m.audioMessage.waveform) === '0a'.repeat(64) &&
        m.audioMessage.mimetype === 'audio/ogg; codecs=opus', (m) => m.audioMessage],
    ['document', ['mimetype=application/pdf', 'file_name=a b.pdf', 'pages=12'],
        (m) => m.documentMessage && m.documentMessage.fileName === 'a b.pdf' && m.documentMessage.pageCount === 12 &&
        !m.documentWithCaptionMessage, (m) => m.documentMessage],
    ['document', ['mimetype=application/pdf', 'file_name=c.pdf', 'caption=with words'],
        (m) => m.documentWithCaptionMessage?.message?.documentMessage?.caption === 'with words' &&
        m.documentWithCaptionMessage.message.documentMessage.fileName === 'c.pdf' && !m.documentMessage,
        (m) => m.documentWithCaptionMessage?.message?.documentMessage],
    ['sticker', ['mimetype=image/webp', 'width=512', 'height=512', 'animated=1'],
        (m) => m.stickerMessage && m.stickerMessage.isAnimated === true && m.stickerMessage.width === 512,
        (m) => m.stickerMessage],
];
for (const [type, extra, ok, sub] of cases) {
    const bytes = build([type, ...base, ...extra]);
    let m = null;
    try { m = proto.Message.decode(bytes); } catch (e) { m = null; }
    const s = m && sub(m);
    const keys = s && hex(s.mediaKey) === base[0] && hex(s.fileSha256) === base[1] && hex(s.fileEncSha256) === base[2] &&
        Number(s.fileLength) === 5000000 && s.directPath === k.directPath;
    check(`wapi → Baileys: ${type}${extra.some((x) => x.startsWith('caption=')) ? ' with caption' : ''}: decoded with every field`,
        m && ok(m) && keys, m ? JSON.stringify(proto.Message.toObject(m, { bytes: String })).slice(0, 300) : 'not decodable');
}
const wrapped = build(['image', ...base, 'dsm=15550003333@s.whatsapp.net']);
const wm = wrapped && proto.Message.decode(wrapped);
check('wapi → Baileys: for our other devices, wrapped in deviceSentMessage with the destination',
    wm?.deviceSentMessage?.destinationJid === '15550003333@s.whatsapp.net' && wm.deviceSentMessage.message?.imageMessage != null);
const noKey = spawnSync(TOOL, ['build-media', 'image', hex(k.mediaKey), hex(k.fileSha256), hex(k.fileEncSha256), '1', '']);
check('wapi refuses to build a media message without a direct path', noKey.status === 2,
    `status ${noKey.status}`);
// Round trip through our own parser too.
const rt = parse(build(['voice', ...base, 'seconds=3', 'waveform=' + '01'.repeat(64)]));
check('wapi → wapi: a voice note reads back as voice with its waveform',
    rt.kind === 'media' && rt.media.type === 'voice' && rt.media.waveform === '01'.repeat(64) && rt.media.seconds === 3);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
