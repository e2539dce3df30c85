#!/usr/bin/env node
// Cross-checks our binary node codec (build/tests/tools/wa_binary_tool) against Baileys'
// independent encoder and decoder: token tables, random nodes re-encoded byte for byte,
// decoded views, compressed frames, JIDs through their text form, and mutated frames.
// Usage (from the repo root): tests/wa/t_binary_interop.mjs [seed]   (or WA_INTEROP_SEED)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { deflateSync } from 'node:zlib';
import { decodeBinaryNode, decodeDecompressedBinaryNode, encodeBinaryNode } from 'baileys';
import * as C from 'baileys/lib/WABinary/constants.js';

const TOOL = process.env.WA_BINARY_TOOL || 'build/tests/tools/wa_binary_tool';
const CASES = 600;
const MUTANTS = 3000;

let passed = 0, failed = 0;
const pass = (name) => { passed++; console.log(`PASS: ${name}`); };
const fail = (name, detail) => { failed++; console.log(`FAIL: ${name} ${detail}`); };
const check = (name, bad, total) => {
    if (bad.length === 0) pass(`${name} (${total})`);
    else fail(name, `${bad.length}/${total} wrong; first: ${bad.slice(0, 3).join(' | ')}`);
};

const seed = Number(process.argv[2] ?? process.env.WA_INTEROP_SEED ?? (Date.now() % 2 ** 31)) >>> 0;
console.log(`seed: ${seed} (replay: tests/wa/t_binary_interop.mjs ${seed})`);

// mulberry32: small, seedable, good enough to pick test data.
let state = seed;
const rnd = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
const chance = (p) => rnd() < p;
const fromAlphabet = (alpha, n) => Array.from({ length: n }, () => pick(alpha)).join('');
const shortLen = () => (chance(0.1) ? int(100, 130) : int(1, 20));

const SINGLE = C.SINGLE_BYTE_TOKENS, DOUBLE = C.DOUBLE_BYTE_TOKENS;
const DIGITS = '0123456789'.split('');
const NIBBLE = '0123456789-.'.split('');
const HEX = '0123456789ABCDEF'.split('');
const LOWER = 'abcdefghijklmnopqrstuvwxyz'.split('');
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => c !== '@');
const UNICODE = ['é', 'ü', 'ß', 'Ж', '中', '文', '😀', '🚀', 'ـ', ' ', 'a', '1'];

function tokenString() {
    return chance(0.5) ? SINGLE[int(1, SINGLE.length - 1)] : pick(pick(DOUBLE));
}

// A string that is not a JID in Baileys' eyes (no '@'): every way strings are written.
function plainString() {
    switch (int(0, 9)) {
    case 0: case 1: return tokenString();
    case 2: return fromAlphabet(NIBBLE, shortLen());
    case 3: return fromAlphabet(HEX, shortLen());
    case 4: return fromAlphabet([...HEX, ...'abcdef'.split('')], shortLen());
    case 5: return fromAlphabet(PRINTABLE, int(0, 40));
    case 6: return fromAlphabet(UNICODE, int(1, 12));
    case 7: return chance(0.5) ? '' : fromAlphabet(DIGITS, pick([126, 127, 128, 129]));
    case 8: return fromAlphabet(LOWER, pick([255, 256, 257, int(300, 3000)]));
    default: return fromAlphabet(LOWER, int(1, 12));
    }
}

// JID text. Canonical ones are written the same way by Baileys (from text) and by our
// encoder (from wa_jid_parse), so they must give equal bytes after a text round trip too.
function jidUser() {
    return pick([
        () => fromAlphabet(DIGITS, int(10, 15)),
        () => fromAlphabet(DIGITS, 15),
        () => fromAlphabet(LOWER, int(1, 8)),
        () => pick(['status', 'server', '0']),
    ])();
}
function jidString(canonical) {
    const u = jidUser(), dev = int(1, 99);
    const forms = [
        () => `${u}@s.whatsapp.net`,
        () => `${u}:${dev}@s.whatsapp.net`,
        () => `${u}@lid`,
        () => `${u}:${dev}@lid`,
        () => `${u}:${int(0, 255)}@hosted`,
        () => `${u}:${int(0, 255)}@hosted.lid`,
        () => `${u}_${pick([2, 3, 5, 77, 127, 200])}:${int(0, 255)}@s.whatsapp.net`,
        () => `${fromAlphabet(DIGITS, 12)}-${fromAlphabet(DIGITS, 10)}@g.us`,
        () => `${fromAlphabet(DIGITS, 18)}@g.us`,
        () => 'status@broadcast',
        () => `${fromAlphabet(DIGITS, 13)}@broadcast`,
        () => `${fromAlphabet(DIGITS, 18)}@newsletter`,
        () => `${u}@c.us`,
        () => `${u}@bot`,
        () => `@${pick(['s.whatsapp.net', 'g.us', 'lid', 'c.us', 'broadcast'])}`,
        () => `:${dev}@${pick(['s.whatsapp.net', 'lid'])}`,
    ];
    // Forms where Baileys and our automatic choice of wire form differ (still valid input).
    const odd = [
        () => `${u}:0@s.whatsapp.net`,
        () => `${u}@hosted`,
        () => `${u}@msgr`,
        () => `${u}:${dev}@g.us`,
        () => `${u}:${int(256, 999)}@s.whatsapp.net`,
        () => `${u}_${dev}@s.whatsapp.net`,
        () => `${u}_1:${dev}@s.whatsapp.net`,
        () => `${u}@interop`,
        () => `${fromAlphabet(PRINTABLE, int(0, 10))}@${fromAlphabet(PRINTABLE, int(0, 10))}`,
    ];
    return pick(canonical || chance(0.7) ? forms : odd)();
}

function attrValue(canonical) {
    return chance(0.3) ? jidString(canonical) : plainString();
}

function randomBytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(0, 255);
    return b;
}

function randomNode(depth, canonical) {
    let tag = plainString();
    if (!tag) tag = tokenString();
    const attrs = {};
    const nattrs = chance(0.02) ? int(127, 140) : int(0, 5);
    for (let i = 0; i < nattrs; i++) {
        const key = chance(0.7) ? tokenString() : plainString();
        attrs[key] = attrValue(canonical);
    }
    let content;
    const r = rnd();
    if (r < 0.25) content = undefined;
    else if (r < 0.4) content = chance(0.3) ? jidString(canonical) : plainString();
    else if (r < 0.6) content = randomBytes(chance(0.1) ? pick([255, 256, 257, int(1000, 70000)]) : int(0, 64));
    else if (depth < 4) {
        const n = depth === 0 && chance(0.03) ? int(256, 300) : int(0, 4);
        content = Array.from({ length: n }, () => randomNode(depth + 1, canonical));
    }
    return { tag, attrs, content };
}

// Fixed edge cases first, then random nodes.
function fixedNodes() {
    const big = (n) => ({ tag: 'enc', attrs: { v: '2', type: 'pkmsg' }, content: randomBytes(n) });
    return [
        { tag: 'iq', attrs: { id: '123.45-1', to: '@s.whatsapp.net', type: 'get', xmlns: 'w:p' }, content: [{ tag: 'ping', attrs: {} }] },
        big(0), big(255), big(256), big((1 << 20) - 1), big(1 << 20),
        { tag: 'x', attrs: { a: '7'.repeat(127), b: '7'.repeat(128), c: 'E'.repeat(127), d: 'E'.repeat(128) } },
        { tag: 'x', attrs: { to: '123:5@lid', from: '123:5@s.whatsapp.net', p: '@s.whatsapp.net', h: '9:4@hosted.lid' } },
        { tag: 'list', attrs: {}, content: [] },
        { tag: 'many', attrs: {}, content: Array.from({ length: 300 }, (_, i) => ({ tag: 'user', attrs: { jid: `${1000 + i}@s.whatsapp.net` } })) },
    ];
}

// Our JSON view mapped to the shape Baileys' decoder produces.
function jidAsBaileys(j) {
    switch (j.wire) {
    case 'pair': return `${j.user}@${j.server}`;
    case 'ad': return `${j.user}${j.device ? `:${j.device}` : ''}@${j.server}`;
    case 'fb': return `${j.user}:${j.device}@${j.server}`;
    case 'interop': return `${j.integrator}-${j.user}:${j.device}@${j.server}`;
    default: throw new Error(`wire ${j.wire}`);
    }
}
const valueAsBaileys = (v) => ('jid' in v ? jidAsBaileys(v.jid) : v.s);
function viewAsBaileys(n) {
    const attrs = {};
    for (const [k, v] of n.attrs) attrs[k] = valueAsBaileys(v);
    let content;
    if (n.content === null) content = undefined;
    else if ('list' in n.content) content = n.content.list.map(viewAsBaileys);
    else if ('bytes' in n.content) content = Buffer.from(n.content.bytes, 'hex');
    else content = valueAsBaileys(n.content);
    return { tag: n.tag, attrs, content };
}

function tool(mode, lines) {
    const r = spawnSync(TOOL, [mode], { input: lines.length ? lines.join('\n') + '\n' : '', maxBuffer: 1 << 30, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${TOOL} ${mode} exited ${r.status}: ${r.stderr}`);
    const out = r.stdout.split('\n');
    out.pop();
    if (out.length !== lines.length) throw new Error(`${TOOL} ${mode}: ${out.length} lines for ${lines.length}`);
    return out;
}

const baileysDecode = (buf) => {
    try {
        return { node: decodeDecompressedBinaryNode(buf, C) };
    } catch (e) {
        return { error: e.message };
    }
};

async function main() {
    if (!existsSync(TOOL)) {
        fail('binary interop', `${TOOL} is missing (build first)`);
        return;
    }

    // 1. Token tables.
    const tables = JSON.parse(spawnSync(TOOL, ['tokens'], { encoding: 'utf8', maxBuffer: 1 << 24 }).stdout);
    isDeepStrictEqual(tables.single, SINGLE) ? pass('tokens: single-byte table equals Baileys (236)')
        : fail('tokens: single-byte table', 'differs');
    isDeepStrictEqual(tables.double, DOUBLE) ? pass('tokens: double-byte dictionaries equal Baileys (4x256)')
        : fail('tokens: double-byte dictionaries', 'differ');

    // 2. Random nodes as Baileys encodes them.
    const cases = [];
    for (const node of fixedNodes()) cases.push({ node, canonical: false });
    while (cases.length < CASES) {
        const canonical = chance(0.4);
        cases.push({ node: randomNode(0, canonical), canonical });
    }
    for (const c of cases) {
        c.frame = encodeBinaryNode(c.node);
        c.hex = c.frame.toString('hex');
        c.ref = baileysDecode(c.frame.subarray(1));
    }
    const good = cases.filter((c) => c.ref.node);
    const rejected = cases.filter((c) => !c.ref.node);

    const rt = tool('roundtrip', cases.map((c) => c.hex));
    const js = tool('json', cases.map((c) => c.hex));
    const bad = { accept: [], bytes: [], redecode: [], view: [], reject: [] };
    cases.forEach((c, i) => {
        const id = `#${i}`;
        if (!c.ref.node) {
            if (!rt[i].startsWith('ERR')) bad.reject.push(`${id} accepted what Baileys rejects (${c.ref.error})`);
            return;
        }
        if (rt[i].startsWith('ERR')) {
            bad.accept.push(`${id} ${rt[i]} on ${c.hex.slice(0, 80)}`);
            return;
        }
        if (rt[i] !== c.hex) bad.bytes.push(`${id} ${c.hex.slice(0, 60)} -> ${rt[i].slice(0, 60)}`);
        const again = baileysDecode(Buffer.from(rt[i], 'hex').subarray(1));
        if (!again.node || !isDeepStrictEqual(again.node, c.ref.node)) bad.redecode.push(id);
        let view;
        try {
            view = viewAsBaileys(JSON.parse(js[i]));
        } catch (e) {
            view = e.message;
        }
        if (!isDeepStrictEqual(view, c.ref.node)) bad.view.push(`${id} ${js[i].slice(0, 120)}`);
    });
    check('roundtrip: we decode every node Baileys encodes', bad.accept, good.length);
    check('roundtrip: our re-encoding is byte-equal to Baileys', bad.bytes, good.length);
    check('roundtrip: Baileys decodes our re-encoding to a deep-equal node', bad.redecode, good.length);
    check('decode: our decoded tree matches Baileys decoder field by field', bad.view, good.length);
    check('decode: we reject what Baileys cannot decode either', bad.reject, rejected.length);

    // 3. Compressed frames (flag 2) decode and come back uncompressed.
    const zcases = good.filter((_, i) => i % 3 === 0);
    const zhex = zcases.map((c) => Buffer.concat([Buffer.from([2]), deflateSync(c.frame.subarray(1))]).toString('hex'));
    const zrt = tool('roundtrip', zhex);
    const zbad = [];
    for (let i = 0; i < zcases.length; i++) {
        if (zrt[i] !== zcases[i].hex) zbad.push(`#${i} ${zrt[i].slice(0, 60)}`);
        const viaBaileys = await decodeBinaryNode(Buffer.from(zhex[i], 'hex'));
        if (!isDeepStrictEqual(viaBaileys, zcases[i].ref.node)) zbad.push(`#${i} Baileys inflate differs`);
    }
    check('zlib: compressed frames decode and re-encode uncompressed', zbad, zcases.length);

    // 4. JIDs through text: format, wa_jid_parse, automatic wire form == Baileys from text.
    const canon = good.filter((c) => c.canonical);
    const rp = tool('reparse', canon.map((c) => c.hex));
    const rpbad = [];
    canon.forEach((c, i) => {
        if (rp[i] !== c.hex) rpbad.push(`${c.hex.slice(0, 60)} -> ${rp[i].slice(0, 60)}`);
    });
    check('jid: text form + parse + automatic wire form encode like Baileys', rpbad, canon.length);

    // 5. Mutated frames: whatever we accept, Baileys decodes to the same tree.
    const mutants = [];
    const small = good.filter((c) => c.frame.length < 4096);
    for (let k = 0; k < MUTANTS; k++) {
        const src = pick(small).frame;
        let m = Buffer.from(src.subarray(1));
        const kind = int(0, 4);
        if (kind === 0 && m.length) m[int(0, m.length - 1)] = int(0, 255);
        else if (kind === 1 && m.length) m[int(0, m.length - 1)] ^= 1 << int(0, 7);
        else if (kind === 2) m = m.subarray(0, int(0, m.length));
        else if (kind === 3) {
            const at = int(0, m.length);
            m = Buffer.concat([m.subarray(0, at), Buffer.from([int(0, 255)]), m.subarray(at)]);
        } else if (m.length) {
            const at = int(0, m.length - 1);
            m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1)]);
        }
        mutants.push(m);
    }
    const mjs = tool('json', mutants.map((m) => '00' + m.toString('hex')));
    const mbad = [];
    let accepted = 0;
    mutants.forEach((m, i) => {
        if (mjs[i].startsWith('ERR')) return;
        accepted++;
        const ref = baileysDecode(m);
        let view;
        try {
            view = viewAsBaileys(JSON.parse(mjs[i]));
        } catch (e) {
            view = e.message;
        }
        if (!ref.node) mbad.push(`Baileys rejects what we accept (${ref.error}): ${m.toString('hex').slice(0, 80)}`);
        else if (!isDeepStrictEqual(view, ref.node)) mbad.push(`trees differ: ${m.toString('hex').slice(0, 80)}`);
    });
    check(`mutants: every mutant we accept decodes alike in Baileys (${accepted} of ${MUTANTS} accepted)`, mbad, accepted);
    // Re-encoded, they read back the same (raw string content comes back as bytes: the same thing).
    const mrt = tool('roundtrip', mutants.map((m) => '00' + m.toString('hex')));
    const mrbad = [], reenc = [], from = [];
    mrt.forEach((h, i) => {
        if (mjs[i].startsWith('ERR') !== h.startsWith('ERR')) mrbad.push(`#${i} json and roundtrip disagree`);
        else if (!h.startsWith('ERR')) {
            reenc.push(h);
            from.push(i);
        }
    });
    const normal = (n) => {
        if (n.content && 's' in n.content) n.content = { bytes: Buffer.from(n.content.s, 'latin1').toString('hex') };
        else if (n.content && 'list' in n.content) n.content.list.forEach(normal);
        return n;
    };
    tool('json', reenc).forEach((back, k) => {
        if (!isDeepStrictEqual(normal(JSON.parse(back)), normal(JSON.parse(mjs[from[k]]))))
            mrbad.push(`#${from[k]} re-encoding decodes differently: ${back.slice(0, 100)}`);
    });
    check('mutants: our re-encoding of accepted mutants decodes to the same tree', mrbad, accepted);
}

try {
    await main();
} catch (e) {
    fail('binary interop', e.stack);
}
console.log(`${passed} passed, ${failed} failed (seed ${seed})`);
process.exit(failed ? 1 : 0);
