#!/usr/bin/env node
// Locations, contact cards, polls and votes, and the wrappers (disappearing, view once, a newer
// client's edit) between wapi's protobuf code (build/tests/tools/wa_msg_tool)
// and Baileys' own WAProto definitions: what Baileys encodes, wapi reads
// field for field; what wapi writes, Baileys decodes to the same fields; the
// stanza type and <enc mediatype> each calls for.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { decryptPollVote, proto } from 'baileys';

const TOOL = process.env.WA_MSG_TOOL || 'build/tests/tools/wa_msg_tool';
let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
    if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const run = (args, input) => spawnSync(TOOL, args, input ? { input } : {});
const parse = (msg) => {
    const r = run(['parse'], proto.Message.encode(msg).finish());
    return r.status === 0 ? JSON.parse(r.stdout.toString()) : { status: r.status };
};
const decode = (r) => (r.status === 0 ? proto.Message.decode(r.stdout) : null);
const stype = (bytes) => run(['stanza-type'], bytes).stdout.toString().trim();
const ctx = { stanzaId: '3EB0AABBCCDDEEFF001122', participant: '15550001111@s.whatsapp.net' };
const card = (fn, tel) => `BEGIN:VCARD\nVERSION:3.0\nFN:${fn}\nTEL;type=CELL;waid=${tel}:+${tel}\nEND:VCARD`;

// ── Baileys → wapi ──
let m = parse({ locationMessage: { degreesLatitude: 52.520008, degreesLongitude: 13.404954, name: 'Fernsehturm',
    address: 'Panoramastraße 1A, Berlin', url: 'https://example.org/t', contextInfo: ctx } });
check('location: coordinates, name, address, url and the reply read',
    m.kind === 'location' && m.subtype === 'locationMessage' && m.location.latitude === 52.520008 &&
    m.location.longitude === 13.404954 && m.location.name === 'Fernsehturm' &&
    m.location.address === 'Panoramastraße 1A, Berlin' && m.location.url === 'https://example.org/t' &&
    m.location.live === false && m.reply_to === ctx.stanzaId, JSON.stringify(m));
m = parse({ liveLocationMessage: { degreesLatitude: -33.8568, degreesLongitude: 151.2153, accuracyInMeters: 12,
    caption: 'on my way', sequenceNumber: 7 } });
check('live location: live, its update number, accuracy and caption',
    m.kind === 'location' && m.subtype === 'liveLocationMessage' && m.location.live === true &&
    m.location.sequence === 7 && m.location.accuracy_m === 12 && m.location.comment === 'on my way' &&
    m.location.latitude === -33.8568, JSON.stringify(m));
m = parse({ locationMessage: { degreesLatitude: 200, degreesLongitude: 0 } });
check('a location off the globe is kept as unsupported (never dropped), not as a place',
    m.kind === 'unsupported' && m.subtype === 'locationMessage' && !m.location, JSON.stringify(m));
m = parse({ contactMessage: { displayName: 'Ana', vcard: card('Ana Lima', '5511999990000'), contextInfo: ctx } });
check('one contact card: its vCard and name, and the reply',
    m.kind === 'contacts' && m.subtype === 'contactMessage' && m.contacts.length === 1 &&
    m.contacts[0].display_name === 'Ana' && m.contacts[0].vcard === card('Ana Lima', '5511999990000') &&
    m.reply_to === ctx.stanzaId, JSON.stringify(m));
m = parse({ contactsArrayMessage: { displayName: '3 contacts', contacts: [
    { displayName: 'A', vcard: card('A', '1') }, { displayName: 'B', vcard: '' }, { displayName: 'C', vcard: card('C', '3') }] } });
check('several cards: each with a vCard kept in order (an empty one left out)',
    m.kind === 'contacts' && m.subtype === 'contactsArrayMessage' && m.contacts.length === 2 &&
    m.contacts[0].display_name === 'A' && m.contacts[1].display_name === 'C', JSON.stringify(m));
m = parse({ ephemeralMessage: { message: { extendedTextMessage: { text: 'vanishing', contextInfo: ctx } } } });
check('disappearing (ephemeralMessage): the text inside, with its reply',
    m.kind === 'text' && m.text === 'vanishing' && m.reply_to === ctx.stanzaId && m.view_once === false, JSON.stringify(m));
m = parse({ viewOnceMessageV2: { message: { imageMessage: { mimetype: 'image/jpeg', caption: 'once',
    mediaKey: randomBytes(32), fileSha256: randomBytes(32), fileEncSha256: randomBytes(32), directPath: '/v/x', fileLength: 10 } } } });
check('view once (viewOnceMessageV2): the image inside, marked view once',
    m.kind === 'media' && m.media.type === 'image' && m.media.caption === 'once' && m.view_once === true, JSON.stringify(m));
m = parse({ viewOnceMessage: { message: { locationMessage: { degreesLatitude: 1.5, degreesLongitude: 2.5 } } } });
check('view once (viewOnceMessage) around a location', m.kind === 'location' && m.view_once === true &&
    m.location.latitude === 1.5, JSON.stringify(m));
m = parse({ editedMessage: { message: { protocolMessage: { key: { id: '3EB0EDIT' }, type: 14,
    editedMessage: { conversation: 'fixed' } } } } });
check('a newer client\'s edit (editedMessage around the protocolMessage): an edit of its target',
    m.kind === 'edit' && m.text === 'fixed', JSON.stringify(m));
m = parse({ ephemeralMessage: { message: { ephemeralMessage: { message: { ephemeralMessage: { message: {
    ephemeralMessage: { message: { ephemeralMessage: { message: { conversation: 'deep' } } } } } } } } } } });
check('wrappers nested past four are not followed (bounded recursion)', m.kind !== 'text' || m.text !== 'deep',
    JSON.stringify(m));

// ── wapi → Baileys ──
let d = decode(run(['build-location', '48.858370', '2.294481', 'name=Tour Eiffel', 'address=Champ de Mars, Paris',
    'url=https://example.org/e', 'reply_to=3EB0REPLY']));
check('location: Baileys decodes coordinates, name, address, url and the reply',
    d?.locationMessage?.degreesLatitude === 48.85837 && d.locationMessage.degreesLongitude === 2.294481 &&
    d.locationMessage.name === 'Tour Eiffel' && d.locationMessage.address === 'Champ de Mars, Paris' &&
    d.locationMessage.url === 'https://example.org/e' && d.locationMessage.contextInfo?.stanzaId === '3EB0REPLY',
    JSON.stringify(d));
check('a location goes as <message type=text> with no mediatype (as WhatsApp\'s clients send it)',
    stype(run(['build-location', '1', '2']).stdout) === 'text -');
check('wapi refuses coordinates off the globe', run(['build-location', '91', '0']).status === 2 &&
    run(['build-location', '0', '-181']).status === 2);
d = decode(run(['build-contacts', '-', card('Solo', '15550001')]));
check('one card: a contactMessage with its vCard',
    d?.contactMessage?.vcard === card('Solo', '15550001') && !d.contactsArrayMessage, JSON.stringify(d));
check('… sent as <message type=media> with <enc mediatype=vcard>',
    stype(run(['build-contacts', '-', card('Solo', '15550001')]).stdout) === 'media vcard');
const three = run(['build-contacts', '3EB0Q', card('A', '1'), card('B', '2'), card('C', '3')]);
d = decode(three);
check('three cards: a contactsArrayMessage titled "3 contacts", in order, with the reply',
    d?.contactsArrayMessage?.displayName === '3 contacts' && d.contactsArrayMessage.contacts.length === 3 &&
    d.contactsArrayMessage.contacts[2].vcard === card('C', '3') &&
    d.contactsArrayMessage.contextInfo?.stanzaId === '3EB0Q', JSON.stringify(d));
check('… sent with <enc mediatype=contact_array>', stype(three.stdout) === 'media contact_array');
const rt = JSON.parse(run(['parse'], three.stdout).stdout.toString());
check('wapi → wapi: three cards read back', rt.kind === 'contacts' && rt.contacts.length === 3);

// ── polls and votes ──
const secret = randomBytes(32);
const mci = { messageSecret: secret };
m = parse({ pollCreationMessage: { name: 'Lunch?', options: [{ optionName: 'Pizza' }, { optionName: 'Sushi' },
    { optionName: 'Pizza' }, { optionName: '' }], selectableOptionsCount: 0 }, messageContextInfo: mci });
check('Baileys → wapi: a pollCreationMessage (0): question, distinct named options, multiple, the secret',
    m.kind === 'poll' && m.subtype === 'pollCreationMessage' && m.poll.question === 'Lunch?' &&
    JSON.stringify(m.poll.options) === '["Pizza","Sushi"]' && m.poll.multiple === true &&
    m.poll.secret === secret.toString('hex'), JSON.stringify(m));
m = parse({ pollCreationMessageV3: { name: 'One?', options: [{ optionName: 'a' }, { optionName: 'b' }],
    selectableOptionsCount: 1 }, messageContextInfo: mci });
check('… a pollCreationMessageV3 (1): single choice', m.kind === 'poll' && m.subtype === 'pollCreationMessageV3' &&
    m.poll.multiple === false && m.poll.secret === secret.toString('hex'), JSON.stringify(m));
m = parse({ ephemeralMessage: { message: { pollCreationMessageV2: { name: 'Ann?', options: [{ optionName: 'x' }] },
    messageContextInfo: mci } } });
check('… a pollCreationMessageV2 inside a disappearing wrapper, its secret beside it',
    m.kind === 'poll' && m.subtype === 'pollCreationMessageV2' && m.poll.secret === secret.toString('hex'), JSON.stringify(m));
m = parse({ pollCreationMessage: { name: 'No secret', options: [{ optionName: 'x' }] } });
check('… a poll without a secret: still a poll (its votes cannot open)', m.kind === 'poll' && !m.poll.secret, JSON.stringify(m));
m = parse({ pollCreationMessage: { name: 'Empty', options: [{ optionName: '' }] } });
check('… a poll with no named option: unsupported, never dropped', m.kind === 'unsupported' &&
    m.subtype === 'pollCreationMessage' && !m.poll, JSON.stringify(m));

// A vote sealed here with node's crypto from the documented derivation.
const PID = '3EB0POLLINTEROP01', CREATOR = '15550001111@s.whatsapp.net', VOTER = '15550002222@lid';
const seal = (sec, pid, creator, voter, names) => {
    const key = Buffer.from(hkdfSync('sha256', sec, Buffer.alloc(0), Buffer.from(pid + creator + voter + 'Poll Vote'), 32));
    const plain = proto.Message.PollVoteMessage.encode({ selectedOptions: names.map((n) => createHash('sha256').update(n).digest()) }).finish();
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.concat([Buffer.from(pid), Buffer.from([0]), Buffer.from(voter)]));
    return { encPayload: Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]), encIv: iv };
};
const sum = (n) => createHash('sha256').update(n).digest('hex');
const voteMsg = (v) => proto.Message.encode({ pollUpdateMessage: { pollCreationMessageKey: { remoteJid: CREATOR, fromMe: false,
    id: PID }, vote: v, senderTimestampMs: 1700000000123 } }).finish();
const sealed = seal(secret, PID, CREATOR, VOTER, ['Pizza', 'Sushi']);
m = JSON.parse(run(['parse'], voteMsg(sealed)).stdout.toString());
check('Baileys → wapi: a pollUpdateMessage: the poll\'s key, IV, payload and time',
    m.kind === 'vote' && m.subtype === 'pollUpdateMessage' && m.vote.poll_id === PID && m.vote.poll_from_me === false &&
    m.vote.iv === sealed.encIv.toString('hex') && m.vote.payload === sealed.encPayload.toString('hex') &&
    m.vote.ts_ms === 1700000000123, JSON.stringify(m));
let o = run(['open-vote', secret.toString('hex'), PID, CREATOR, VOTER], voteMsg(sealed));
check('wapi opens a vote node sealed: the two options\' SHA-256 sums',
    o.status === 0 && o.stdout.toString() === `${sum('Pizza')}\n${sum('Sushi')}\n`, o.stdout.toString());
check('… not with another voter JID (the phone number instead of the LID)',
    run(['open-vote', secret.toString('hex'), PID, CREATOR, '15550002222@s.whatsapp.net'], voteMsg(sealed)).status === 3);
check('… not with another poll id, nor another secret',
    run(['open-vote', secret.toString('hex'), PID + 'X', CREATOR, VOTER], voteMsg(sealed)).status === 3 &&
    run(['open-vote', randomBytes(32).toString('hex'), PID, CREATOR, VOTER], voteMsg(sealed)).status === 3);
const bad = { encPayload: Buffer.from(sealed.encPayload), encIv: sealed.encIv };
bad.encPayload[bad.encPayload.length - 1] ^= 0x80;
check('… nor once a bit of its tag is flipped', run(['open-vote', secret.toString('hex'), PID, CREATOR, VOTER], voteMsg(bad)).status === 3);
m = JSON.parse(run(['parse'], proto.Message.encode({ pollUpdateMessage: { pollCreationMessageKey: { id: PID },
    vote: { encPayload: randomBytes(20), encIv: randomBytes(8) } } }).finish()).stdout.toString());
check('a vote with an 8-byte IV is unsupported (kept, never opened)', m.kind === 'unsupported' &&
    m.subtype === 'pollUpdateMessage' && !m.vote, JSON.stringify(m));
o = run(['open-vote', secret.toString('hex'), PID, CREATOR, VOTER], voteMsg(seal(secret, PID, CREATOR, VOTER, [])));
check('an empty vote opens to no option', o.status === 0 && o.stdout.toString() === '', o.stdout.toString());

// wapi → Baileys
let b = run(['build-poll', '1', secret.toString('hex'), 'Which?', 'Red', 'Blue', 'Green']);
d = decode(b);
check('wapi → Baileys: multiple choice as pollCreationMessage with selectableOptionsCount 0 and the secret',
    d?.pollCreationMessage?.name === 'Which?' && d.pollCreationMessage.selectableOptionsCount === 0 &&
    d.pollCreationMessage.options.map((x) => x.optionName).join() === 'Red,Blue,Green' && !d.pollCreationMessageV3 &&
    Buffer.from(d.messageContextInfo?.messageSecret ?? []).equals(secret), JSON.stringify(d));
check('… sent as <message type=poll> with <meta polltype=creation>', stype(b.stdout) === 'poll - polltype=creation', stype(b.stdout));
b = run(['build-poll', '0', secret.toString('hex'), 'Which one?', 'Red', 'Blue']);
d = decode(b);
check('single choice as pollCreationMessageV3 with selectableOptionsCount 1 and the secret',
    d?.pollCreationMessageV3?.selectableOptionsCount === 1 && !d.pollCreationMessage &&
    Buffer.from(d.messageContextInfo?.messageSecret ?? []).equals(secret), JSON.stringify(d));
check('wapi refuses a poll of 13 options', run(['build-poll', '0', secret.toString('hex'), 'Q',
    ...Array.from({ length: 13 }, (_, i) => `o${i}`)]).status === 2);
b = run(['build-vote', secret.toString('hex'), CREATOR, PID, '0', CREATOR, VOTER, 'Blue']);
d = decode(b);
let opened = null;
try {
    opened = decryptPollVote(d.pollUpdateMessage.vote, { pollCreatorJid: CREATOR, pollMsgId: PID, pollEncKey: secret, voterJid: VOTER });
} catch (e) { opened = { error: String(e) }; }
check('wapi → Baileys: a vote Baileys\' own decryptPollVote opens to Blue\'s SHA-256, key naming the poll',
    opened?.selectedOptions?.length === 1 && Buffer.from(opened.selectedOptions[0]).toString('hex') === sum('Blue') &&
    d.pollUpdateMessage.pollCreationMessageKey.id === PID && d.pollUpdateMessage.vote.encIv.length === 12,
    JSON.stringify(opened));
check('… sent as <message type=poll> with <meta polltype=vote>', stype(b.stdout) === 'poll - polltype=vote', stype(b.stdout));

// ── disappearing messages and view once ──
m = parse({ ephemeralMessage: { message: { protocolMessage: { type: proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING,
    ephemeralExpiration: 604800 } } } });
check('a chat timer set (Baileys\' disappearingMessagesInChat: EPHEMERAL_SETTING in ephemeralMessage): read as such',
    m.kind === 'disappearing' && m.expiration === 604800, JSON.stringify(m));
m = parse({ protocolMessage: { type: proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING } });
check('… and one turning it off (no ephemeralExpiration): 0', m.kind === 'disappearing' && m.expiration === 0,
    JSON.stringify(m));
m = parse({ extendedTextMessage: { text: 'in a chat with a timer', contextInfo: { expiration: 86400 } } });
check('contextInfo.expiration on a text: read', m.kind === 'text' && m.expiration === 86400, JSON.stringify(m));
m = parse({ conversation: 'no timer' });
check('no contextInfo: no expiration', m.kind === 'text' && m.expiration === null, JSON.stringify(m));
m = parse({ imageMessage: { mimetype: 'image/jpeg', viewOnce: true, mediaKey: randomBytes(32), fileSha256: randomBytes(32),
    fileEncSha256: randomBytes(32), directPath: '/v/y', fileLength: 3, contextInfo: { expiration: 604800 } } });
check('an image marked viewOnce without a wrapper: view once, with its timer',
    m.kind === 'media' && m.view_once === true && m.expiration === 604800, JSON.stringify(m));

const dis = run(['build-disappearing', '7776000', '1767225600']);
d = decode(dis);
const pm = d?.ephemeralMessage?.message?.protocolMessage;
check('wapi\'s timer change: Baileys decodes protocolMessage EPHEMERAL_SETTING 7776000 inside ephemeralMessage',
    pm?.type === proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING && pm.ephemeralExpiration === 7776000 &&
    Number(pm.ephemeralSettingTimestamp) === 1767225600, JSON.stringify(d));
check('… sent as <message type=text> with no mediatype', stype(dis.stdout) === 'text -');
const rd = JSON.parse(run(['parse'], dis.stdout).stdout.toString());
check('… and wapi reads its own back', rd.kind === 'disappearing' && rd.expiration === 7776000, JSON.stringify(rd));
const off = decode(run(['build-disappearing', '0', '0']))?.ephemeralMessage?.message?.protocolMessage;
check('turning it off: ephemeralExpiration 0 written (not left out)', off?.ephemeralExpiration === 0 &&
    off.type === proto.Message.ProtocolMessage.Type.EPHEMERAL_SETTING, JSON.stringify(off));

d = decode(run(['mark', 'expiration=604800'], proto.Message.encode({ conversation: 'vanishing text' }).finish()));
check('a text in a chat with a timer: an extendedTextMessage with contextInfo.expiration',
    d?.extendedTextMessage?.text === 'vanishing text' && d.extendedTextMessage.contextInfo?.expiration === 604800 &&
    !d.conversation, JSON.stringify(d));
d = decode(run(['mark', 'expiration=86400'], run(['build-location', '1', '2', 'reply_to=3EB0R']).stdout));
check('a location: the timer beside the reply', d?.locationMessage?.contextInfo?.expiration === 86400 &&
    d.locationMessage.contextInfo.stanzaId === '3EB0R', JSON.stringify(d));
d = decode(run(['mark', 'expiration=86400', 'forwarded=1'], run(['build-contacts', '-', card('F', '1')]).stdout));
check('a forwarded card: forwarded and the timer together',
    d?.contactMessage?.contextInfo?.expiration === 86400 && d.contactMessage.contextInfo.isForwarded === true,
    JSON.stringify(d));
const K = [randomBytes(32), randomBytes(32), randomBytes(32)].map((b) => b.toString('hex'));
const media = (type, ...more) => run(['build-media', type, ...K, '1234', '/v/t62/x', ...more]).stdout;
const vo = run(['mark', 'view_once=1', 'expiration=604800'], media('image', 'mimetype=image/jpeg', 'caption=once'));
d = decode(vo);
const im = d?.viewOnceMessageV2?.message?.imageMessage;
check('view once: the image marked viewOnce inside viewOnceMessageV2, its caption and timer kept',
    im?.viewOnce === true && im.caption === 'once' && im.contextInfo?.expiration === 604800 && !d.imageMessage,
    JSON.stringify(d));
check('… sent as <message type=media> with <enc mediatype=image> (the content\'s)', stype(vo.stdout) === 'media image');
const rv = JSON.parse(run(['parse'], vo.stdout).stdout.toString());
check('… and wapi reads its own back as view once', rv.kind === 'media' && rv.view_once === true &&
    rv.expiration === 604800, JSON.stringify(rv));
d = decode(run(['mark', 'view_once=1'], media('voice', 'mimetype=audio/ogg; codecs=opus', 'seconds=3')));
check('a view-once voice note: audioMessage ptt viewOnce inside viewOnceMessageV2',
    d?.viewOnceMessageV2?.message?.audioMessage?.viewOnce === true && d.viewOnceMessageV2.message.audioMessage.ptt === true,
    JSON.stringify(d));
d = decode(run(['mark', 'view_once=1'], media('video', 'mimetype=video/mp4')));
check('a view-once video too', d?.viewOnceMessageV2?.message?.videoMessage?.viewOnce === true, JSON.stringify(d));
check('view once refused for a document, plain audio, a sticker, a text',
    run(['mark', 'view_once=1'], media('document', 'mimetype=application/pdf')).status === 2 &&
    run(['mark', 'view_once=1'], media('audio', 'mimetype=audio/ogg')).status === 2 &&
    run(['mark', 'view_once=1'], media('sticker', 'mimetype=image/webp')).status === 2 &&
    run(['mark', 'view_once=1'], proto.Message.encode({ conversation: 'x' }).finish()).status === 2);
// ── pins and keep-in-chat, as Baileys' WAProto encodes them ──
m = parse({ pinInChatMessage: { key: { remoteJid: '15550001111@s.whatsapp.net', fromMe: true, id: '3EB0PINNED000001' },
    type: 1, senderTimestampMs: 1700000000000 }, messageContextInfo: { messageAddOnDurationInSecs: 604800 } });
check('Baileys → wapi: a pinInChatMessage (type 1) with its duration: a pin of the target for 7 days',
    m.kind === 'pin' && m.target === '3EB0PINNED000001' && m.on === true && m.on_seconds === 604800, JSON.stringify(m));
m = parse({ pinInChatMessage: { key: { id: '3EB0PINNED000001' }, type: 2 } });
check('… type 2: an unpin', m.kind === 'pin' && m.on === false, JSON.stringify(m));
m = parse({ keepInChatMessage: { key: { id: '3EB0KEPT00000001' }, keepType: 1, timestampMs: 1700000000000 } });
check('… a keepInChatMessage (1): the target kept', m.kind === 'keep' && m.target === '3EB0KEPT00000001' && m.on === true,
    JSON.stringify(m));
m = parse({ pinInChatMessage: { key: { id: '3EB0PINNED000001' }, type: 0 } });
check('… a pin of an unknown type: unsupported, never dropped', m.kind === 'unsupported' && m.subtype === 'pinInChatMessage',
    JSON.stringify(m));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
