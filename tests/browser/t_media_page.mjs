#!/usr/bin/env node
// Media on the Messages page in real headless Chromium, on a database of its
// own. Received media (files uploaded through POST /api/media, messages
// written with SQL as the supervisor writes them): a picture and a sticker
// load inline, a voice note and an audio file load their metadata with the
// right duration, a video loads and seeks through Range requests answered
// 206, a document downloads byte for byte, pending / failed / expired files
// show their state; a rebuilt thread keeps its media elements (a video its
// position). The composer: a picture, a voice note and a document picked
// with the file picker are uploaded and queued with the file's SHA-256; a PNG
// sent as a voice note and a file over the upload limit show the API's error
// and queue nothing; the upload made for a refused send is deleted. The
// fixtures are made here: PNG and WAV by hand, Ogg Opus with opusenc, WebP
// and a VP8 video by the browser (canvas, WebCodecs), muxed into WebM below.
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = path.join(ROOT, "var/screens");
fs.mkdirSync(SHOTS, { recursive: true });
let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`PASS: ${name}`);
  } else {
    failed++;
    console.log(`FAIL: ${name}${detail !== undefined ? ` (${String(detail).slice(0, 300)})` : ""}`);
  }
}

const freePort = () => new Promise((res) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const shared = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
const dbName = `wapi_browser_media_${process.pid}`;
const admin = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, "$1postgres");
execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
execFileSync("psql", [admin, "-qAtX", "-c", `CREATE DATABASE "${dbName}"`], { stdio: "ignore" });
const db = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, `$1${dbName}`);
const sql = (q) => execFileSync("psql", [db, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();
const sha256 = (b) => crypto.createHash("sha256").update(b).digest("hex");
const MAX_UPLOAD = 24 * 1024 * 1024; // media.max_upload_bytes here: the video fits, the "too large" file does not

// ---- fixtures

function png(w, h, seed) {
  const chunk = (t, d) => {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(t), d])) >>> 0);
    const n = Buffer.alloc(4);
    n.writeUInt32BE(d.length);
    return Buffer.concat([n, Buffer.from(t), d, c]);
  };
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 7 + seed) & 255;
      raw[o + 1] = (y * 5) & 255;
      raw[o + 2] = 0x40;
    }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

function wav(seconds, rate, tone) {
  const n = seconds * rate;
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write("data", 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * tone * i) / rate)), 44 + i * 2);
  return b;
}

function opus(seconds) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-opus-"));
  try {
    fs.writeFileSync(path.join(d, "v.wav"), wav(seconds, 48000, 330));
    execFileSync("opusenc", ["--quiet", "--bitrate", "24", path.join(d, "v.wav"), path.join(d, "v.ogg")]);
    return fs.readFileSync(path.join(d, "v.ogg"));
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}

// WebM (Matroska): EBML elements, one VP8 track, a cluster per key frame,
// the duration, and a seek head and cues before the clusters (so a player
// finds where each second starts without reading the rest of the file).
// gap: the size of a Void element put before the last cluster, so that only
// a seek into that cluster needs the bytes past it: a range from far inside
// the file, fetched for that seek (the first cluster is long enough that
// reading the metadata and first frames never gets there).
function ebmlSize(n) {
  for (let len = 1; len <= 8; len++) {
    if (n < 2 ** (7 * len) - 1) {
      const b = Buffer.alloc(len);
      let v = n;
      for (let i = len - 1; i >= 0; i--) {
        b[i] = v % 256;
        v = Math.floor(v / 256);
      }
      b[0] |= 0x80 >> (len - 1);
      return b;
    }
  }
  throw new Error("EBML size too large");
}
function el(id, ...parts) {
  const data = Buffer.concat(parts);
  let hex = id.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.concat([Buffer.from(hex, "hex"), ebmlSize(data.length), data]);
}
function uint(id, v, bytes) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  let i = 0;
  if (!bytes) while (i < 7 && b[i] === 0) i++;
  else i = 8 - bytes;
  return el(id, b.subarray(i));
}
const str = (id, s) => el(id, Buffer.from(s, "ascii"));
function float(id, v) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return el(id, b);
}
function webm(frames, width, height, durationMs, gap) {
  const header = el(0x1a45dfa3, uint(0x4286, 1), uint(0x42f7, 1), uint(0x42f2, 4), uint(0x42f3, 8),
    str(0x4282, "webm"), uint(0x4287, 2), uint(0x4285, 2));
  const info = el(0x1549a966, uint(0x2ad7b1, 1000000), float(0x4489, durationMs), str(0x4d80, "wapi-test"),
    str(0x5741, "wapi-test"));
  const tracks = el(0x1654ae6b, el(0xae, uint(0xd7, 1), uint(0x73c5, 1), uint(0x83, 1), str(0x86, "V_VP8"),
    el(0xe0, uint(0xb0, width), uint(0xba, height))));
  const clusters = [];
  let cur = null;
  for (const f of frames) {
    const ms = Math.round(f.ts / 1000);
    if (f.key || !cur) {
      cur = { ms, blocks: [] };
      clusters.push(cur);
    }
    const hdr = Buffer.alloc(4);
    hdr[0] = 0x81;
    hdr.writeInt16BE(ms - cur.ms, 1);
    hdr[3] = f.key ? 0x80 : 0;
    cur.blocks.push(el(0xa3, hdr, f.data));
  }
  const clusterBufs = clusters.map((c, i) => {
    const cl = el(0x1f43b675, uint(0xe7, c.ms), ...c.blocks);
    return gap && i === clusters.length - 1 ? [el(0xec, Buffer.alloc(gap)), cl] : [cl];
  });
  const seekHead = (pos) => el(0x114d9b74,
    ...[[0x1549a966, pos.info], [0x1654ae6b, pos.tracks], [0x1c53bb6b, pos.cues]].map(([id, p]) =>
      el(0x4dbb, el(0x53ab, Buffer.from(id.toString(16), "hex")), uint(0x53ac, p, 8))));
  // Fixed-width numbers: the sizes of the seek head and cues do not depend on the positions they hold.
  const cuesOf = (at) => el(0x1c53bb6b, ...clusters.map((c, i) =>
    el(0xbb, uint(0xb3, c.ms, 8), el(0xb7, uint(0xf7, 1), uint(0xf1, at[i], 8)))));
  const pos = { info: 0, tracks: 0, cues: 0 };
  pos.info = seekHead(pos).length;
  pos.tracks = pos.info + info.length;
  pos.cues = pos.tracks + tracks.length;
  let p = pos.cues + cuesOf(clusters.map(() => 0)).length;
  const clusterPos = clusterBufs.map((c) => {
    const at = p + (c.length === 2 ? c[0].length : 0);
    p += c.reduce((n, x) => n + x.length, 0);
    return at;
  });
  return Buffer.concat([header,
    el(0x18538067, seekHead(pos), info, tracks, cuesOf(clusterPos), ...clusterBufs.flat())]);
}

// ---- the server

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-browser-media-"));
const logFd = fs.openSync(path.join(dir, "wapi.log"), "a");
const srv = spawn(path.join(ROOT, "build/wapi"), ["-c", "/dev/null"], {
  env: {
    PATH: process.env.PATH, DATABASE_URL: db, BETTER_AUTH_URL: base, WAPI_LISTEN: `127.0.0.1:${port}`,
    WAPI_WORKERS: "1", WAPI_PATHS_RUN: path.join(dir, "run"), WAPI_PATHS_SESSIONS: path.join(dir, "s"),
    WAPI_PATHS_MEDIA: path.join(dir, "m"), WAPI_WHATSAPP_AUTOSTART: "false",
    WAPI_MEDIA_MAX_UPLOAD_BYTES: String(MAX_UPLOAD),
  },
  stdio: ["ignore", logFd, logFd],
});
const waitFor = async (fn, ms = 10000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return fn();
};

let browser;
try {
  const ready = await waitFor(async () => {
    try {
      return (await fetch(`${base}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, 15000);
  check("wapi is ready", ready);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--headless", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  await run(browser);
} catch (e) {
  check("the browser run finished without an exception", false, e?.stack || e);
} finally {
  if (browser) await browser.close();
  srv.kill("SIGTERM");
  await new Promise((r) => srv.once("exit", r));
  try {
    execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
  } catch {
    /* best effort */
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

async function shot(page, name) {
  const buf = await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const text = (await page.evaluate(() => document.body.innerText)).trim();
  check(`screenshot ${name}.png is not blank`, buf.length > 6000 && text.length > 20, `${buf.length}`);
}

// A WebP sticker (512x512) and a VP8 video, made by this browser.
async function browserFixtures(page) {
  const r = await page.evaluate(async () => {
    const b64 = (u8) => {
      let s = "";
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const sc = new OffscreenCanvas(512, 512);
    const sg = sc.getContext("2d");
    sg.fillStyle = "#ffcc00";
    sg.beginPath();
    sg.arc(256, 256, 240, 0, 2 * Math.PI);
    sg.fill();
    sg.fillStyle = "#222";
    sg.fillRect(160, 170, 50, 60);
    sg.fillRect(302, 170, 50, 60);
    sg.fillRect(150, 340, 212, 30);
    const sticker = new Uint8Array(await (await sc.convertToBlob({ type: "image/webp", quality: 0.8 })).arrayBuffer());

    // 8 s at 10 frames a second, key frames at 0 and 6 s: two clusters.
    const W = 320, H = 240, FRAMES = 80;
    const frames = [];
    let err = null;
    const enc = new VideoEncoder({
      output: (c) => {
        const d = new Uint8Array(c.byteLength);
        c.copyTo(d);
        frames.push({ key: c.type === "key", ts: c.timestamp, data: b64(d) });
      },
      error: (e) => { err = String(e); },
    });
    enc.configure({ codec: "vp8", width: W, height: H, bitrate: 500000, framerate: 10 });
    const vc = new OffscreenCanvas(W, H);
    const vg = vc.getContext("2d");
    const img = vg.createImageData(W, H);
    let seed = 12345;
    for (let i = 0; i < FRAMES; i++) {
      for (let p = 0; p < img.data.length; p += 4) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        img.data[p] = seed & 255;
        img.data[p + 1] = (seed >> 8) & 255;
        img.data[p + 2] = (i * 6) & 255;
        img.data[p + 3] = 255;
      }
      vg.putImageData(img, 0, 0);
      vg.fillStyle = "#fff";
      vg.fillRect((i * 7) % (W - 40), 100, 40, 40);
      const f = new VideoFrame(vc, { timestamp: i * 100000, duration: 100000 });
      enc.encode(f, { keyFrame: i % 60 === 0 });
      f.close();
    }
    await enc.flush();
    enc.close();
    return { sticker: b64(sticker), frames, err };
  });
  if (r.err) throw new Error(`VideoEncoder: ${r.err}`);
  const frames = r.frames.map((f) => ({ key: f.key, ts: f.ts, data: Buffer.from(f.data, "base64") }));
  return { sticker: Buffer.from(r.sticker, "base64"), video: webm(frames, 320, 240, 8000, 16 << 20) };
}

async function run(b) {
  const ctx = await b.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await ctx.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // The refused uploads (400, 413) are logged by the browser as failed fetches.
    if (m.type() === "error" && !/status of (400|413)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  // Every answer for a media file: the Range asked for and the status.
  const mediaAnswers = [];
  page.on("response", async (res) => {
    const u = new URL(res.url());
    if (!/^\/api\/media\/m_[0-9a-f]+$/.test(u.pathname)) return;
    try {
      const rq = await res.request().allHeaders();
      const hd = await res.allHeaders();
      mediaAnswers.push({ id: u.pathname.slice(11), range: rq.range || null, status: res.status(),
        contentRange: hd["content-range"] || null });
    } catch (e) {
      problems.push(`response listener: ${e.message}`);
    }
  });

  await page.goto(base + "/#/sign-up");
  await page.waitForSelector("#f-name");
  await page.fill("#f-name", "Media Person");
  await page.fill("#f-email", `media-${process.pid}-${Date.now()}@example.com`);
  await page.fill("#f-password", "media-pass-12");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");

  // The files a contact "sent", stored through POST /api/media (this session's cookie).
  const fx = await browserFixtures(page);
  const files = {
    image: { buf: png(240, 160, 3), name: "gradient.png", type: "image/png", kind: "image" },
    sticker: { buf: fx.sticker, name: "smile.webp", type: "image/webp", kind: "sticker" },
    voice: { buf: opus(3), name: "note.ogg", type: "audio/ogg", kind: "voice" },
    audio: { buf: wav(2, 8000, 440), name: "tone.wav", type: "audio/wav", kind: "audio" },
    // WebM is not a type the API sends as a video (MP4, 3GP), but a contact's
    // file may be anything: stored as a document, shown as the video it is.
    video: { buf: fx.video, name: "noise.webm", type: "video/webm", kind: "document" },
    document: {
      buf: Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(3072 - 16, "% filler\n"), Buffer.from("\n%%EOF\n")]),
      name: "report.pdf", type: "application/pdf", kind: "document",
    },
  };
  check("the video fixture (WebM, two clusters around a 16 MiB gap) fits under the upload limit",
    files.video.buf.length > (16 << 20) && files.video.buf.length < MAX_UPLOAD, files.video.buf.length);
  const ids = {};
  for (const [k, f] of Object.entries(files)) {
    const res = await ctx.request.post(`${base}/api/media`, {
      headers: { origin: base }, // as the dashboard's own fetch sends it
      multipart: { kind: f.kind, file: { name: f.name, mimeType: f.type, buffer: f.buf } },
    });
    const body = await res.json().catch(() => null);
    if (res.status() !== 201 || !body || body.sha256 !== sha256(f.buf)) {
      check(`upload of the ${k} fixture`, false, `${res.status()} ${JSON.stringify(body)}`);
      continue;
    }
    ids[k] = body.id;
  }
  check("the six fixtures are stored", Object.keys(ids).length === 6, Object.keys(ids).join(","));

  // The received messages, as the supervisor writes them (wa_messages, the
  // attachment in wa_message_media naming the stored file once downloaded).
  const chat = "15550001111@s.whatsapp.net";
  const rows = [
    ["IMG", "image", "a gradient", "stored", ids.image, "image/png", null, 240, 160, null],
    ["STK", "sticker", null, "stored", ids.sticker, "image/webp", null, 512, 512, null],
    ["VOI", "voice", null, "stored", ids.voice, "audio/ogg; codecs=opus", null, null, null, null],
    ["AUD", "audio", null, "stored", ids.audio, "audio/x-wav", "tone.wav", null, null, null],
    ["VID", "video", "moving noise", "stored", ids.video, "video/webm", null, 320, 240, null],
    ["DOC", "document", null, "stored", ids.document, "application/pdf", "report.pdf", null, null, null],
    ["PEN", "image", "still coming", "pending", null, "image/jpeg", null, null, null, null],
    ["FAI", "document", null, "failed", null, "application/pdf", "lost.pdf", null, null,
      "the media server answered 404"],
    ["EXP", "video", null, "expired", null, "video/mp4", null, null, null, "the file is no longer on WhatsApp"],
  ];
  const q = (v) => (v === null || v === undefined ? "NULL" : `'${String(v).replace(/'/g, "''")}'`);
  const mid = (t) => `3EB0MEDIA0000000000${t}`;
  sql(rows.map(([t, kind, caption, state, fid, mime, fname, w, hgt, err], i) =>
    `INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, text, status, ts) VALUES (${q(mid(t))}, ` +
    `${q(chat)}, ${q(chat)}, false, ${q(kind)}, ${q(caption)}, 'received', now() - interval '${60 - i} seconds'); ` +
    `INSERT INTO wa_message_media (message_id, kind, media_id, state, mimetype, file_name, width, height, error) ` +
    `VALUES (${q(mid(t))}, ${q(kind)}, ${q(fid)}, ${q(state)}, ${q(mime)}, ${q(fname)}, ${w ?? "NULL"}, ` +
    `${hgt ?? "NULL"}, ${q(err)});`).join("\n") +
    `INSERT INTO wa_chats (jid, last_message_id, last_message_at, unread_count) VALUES (${q(chat)}, ` +
    `${q(mid("EXP"))}, now(), ${rows.length});`);

  await page.click("nav >> text=Messages");
  await page.click(`[data-testid=chats] [data-jid="${chat}"]`);
  await page.waitForSelector(`[data-message-id="${mid("IMG")}"] img`);
  const li = (t) => `[data-testid=thread] [data-message-id="${mid(t)}"]`;

  // Picture: loaded (its real width), sized to the bubble, alt text, caption under it.
  const img = await waitFor(() => page.$eval(`${li("IMG")} img`, (e) => e.complete && e.naturalWidth > 0 && {
    natural: e.naturalWidth, naturalH: e.naturalHeight, alt: e.alt, src: e.getAttribute("src"),
    shown: e.getBoundingClientRect().width }), 10000);
  check("image: the <img> loaded the picture (naturalWidth 240, height 160)",
    img && img.natural === 240 && img.naturalH === 160, JSON.stringify(img));
  check("image: its src is the file (/api/media/{id})", img && img.src === `/api/media/${ids.image}`, img?.src);
  check("image: alt text is the caption", img && img.alt === "a gradient", img?.alt);
  check("image: shown no wider than the picture and the 320px box", img && img.shown > 100 && img.shown <= 320,
    img?.shown);
  const cap = await page.textContent(`${li("IMG")} .caption`).catch(() => null);
  check("image: the caption is shown under it", cap === "a gradient", cap);
  check("image: the caption follows the picture", await page.$eval(li("IMG"), (e) => {
    const m = e.querySelector(".media"), c = e.querySelector(".caption");
    return !!(m && c && m.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING);
  }));

  // Sticker: loaded, small, without the bubble's background.
  const stk = await waitFor(() => page.$eval(`${li("STK")} img`, (e) => e.complete && e.naturalWidth > 0 && {
    natural: e.naturalWidth, shown: e.getBoundingClientRect().width, alt: e.alt,
    bg: getComputedStyle(e.closest("li")).backgroundColor }), 10000);
  check("sticker: the WebP loaded (naturalWidth 512)", stk && stk.natural === 512, JSON.stringify(stk));
  check("sticker: shown at 128px", stk && Math.round(stk.shown) === 128, stk?.shown);
  check("sticker: no bubble background", stk && stk.bg === "rgba(0, 0, 0, 0)", stk?.bg);
  check("sticker: alt text names it", stk && stk.alt === "Sticker", stk?.alt);

  // Voice note and audio: metadata loaded through the server, the right duration.
  const dur = (t) => waitFor(() => page.$eval(`${li(t)} audio`, (e) => e.readyState >= 1 && {
    rs: e.readyState, d: e.duration, preload: e.getAttribute("preload"), controls: e.controls,
    label: e.getAttribute("aria-label") }), 10000);
  const voi = await dur("VOI");
  check("voice: the <audio> reached readyState >= 1", voi && voi.rs >= 1, JSON.stringify(voi));
  check("voice: its duration is the note's 3 s", voi && Math.abs(voi.d - 3) < 0.1, voi?.d);
  check("voice: controls, preload=metadata, a label", voi && voi.controls && voi.preload === "metadata" &&
    voi.label === "Voice message", JSON.stringify(voi));
  const aud = await dur("AUD");
  check("audio: the <audio> reached readyState >= 1", aud && aud.rs >= 1, JSON.stringify(aud));
  check("audio: its duration is the WAV's 2 s", aud && Math.abs(aud.d - 2) < 0.05, aud?.d);
  check("audio: labelled with its file name", aud && aud.label === "tone.wav", aud?.label);

  // Video: metadata, then a seek near the end, fetched with Range requests answered 206.
  const vid = await waitFor(() => page.$eval(`${li("VID")} video`, (e) => e.readyState >= 1 && {
    rs: e.readyState, d: e.duration, w: e.videoWidth, h: e.videoHeight, preload: e.getAttribute("preload") }), 15000);
  check("video: metadata loaded (320x240, 8 s)", vid && vid.w === 320 && vid.h === 240 && Math.abs(vid.d - 8) < 0.15,
    JSON.stringify(vid));
  check("video: preload=metadata", vid && vid.preload === "metadata", vid?.preload);
  const before = mediaAnswers.filter((a) => a.id === ids.video).length;
  const seek = await page.$eval(`${li("VID")} video`, (e) => new Promise((res) => {
    const t = setTimeout(() => res({ ok: false, ct: e.currentTime, rs: e.readyState }), 15000);
    e.addEventListener("seeked", () => {
      clearTimeout(t);
      res({ ok: true, ct: e.currentTime, rs: e.readyState });
    }, { once: true });
    e.currentTime = 7.5;
  }));
  check("video: seeking to 7.5 s ends in seeked there", seek.ok && Math.abs(seek.ct - 7.5) < 0.05, JSON.stringify(seek));
  await waitFor(() => page.$eval(`${li("VID")} video`, (e) => e.readyState >= 2), 10000);
  const vAnswers = mediaAnswers.filter((a) => a.id === ids.video);
  const ranged = vAnswers.filter((a) => a.range && a.status === 206 && /^bytes \d+-\d+\/\d+$/.test(a.contentRange || ""));
  check("video: the browser's Range requests are answered 206 with a Content-Range", ranged.length > 0 &&
    vAnswers.every((a) => a.status === 206 || a.status === 304), JSON.stringify(vAnswers));
  const size = files.video.buf.length;
  const midFile = vAnswers.slice(before).filter((a) => {
    const m = /^bytes=(\d+)-/.exec(a.range || "");
    return m && Number(m[1]) > 0 && a.status === 206 && (a.contentRange || "").startsWith(`bytes ${m[1]}-`) &&
      (a.contentRange || "").endsWith(`/${size}`);
  });
  check("video: the seek fetched a range from inside the file (206, Content-Range from that offset)",
    midFile.length > 0, `${before} before the seek: ${JSON.stringify(vAnswers)}`);

  // Document: a download link with its name and size; the download is the file.
  const doc = await page.$eval(`${li("DOC")} a.media-document`, (e) => ({ href: e.getAttribute("href"),
    download: e.getAttribute("download"), text: e.textContent }));
  check("document: a link to the file with download=report.pdf",
    doc.href === `/api/media/${ids.document}` && doc.download === "report.pdf", JSON.stringify(doc));
  check("document: shows the file name and its size (3.0 KiB)", /report\.pdf/.test(doc.text) &&
    /3\.0 KiB/.test(doc.text), doc.text);
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click(`${li("DOC")} a.media-document`)]);
  const dlPath = await dl.path();
  const got = dlPath ? fs.readFileSync(dlPath) : Buffer.alloc(0);
  check("document: the download's SHA-256 is the file's", sha256(got) === sha256(files.document.buf), got.length);
  check("document: downloaded as report.pdf", dl.suggestedFilename() === "report.pdf", dl.suggestedFilename());

  // Pending, failed, expired: the state, its error, no broken media element.
  const stateOf = (t) => page.$eval(li(t), (e) => ({
    state: e.querySelector("[data-media-state]")?.getAttribute("data-media-state"),
    text: e.querySelector("[data-media-state]")?.textContent || "",
    media: e.querySelectorAll("img, audio, video, a[href^='/api/media']").length }));
  const pen = await stateOf("PEN");
  check("pending: shows downloading… and no <img>", pen.state === "pending" && pen.text.includes("downloading…") &&
    pen.media === 0, JSON.stringify(pen));
  check("pending: its caption is still shown", (await page.textContent(`${li("PEN")} .caption`)) === "still coming");
  const fai = await stateOf("FAI");
  check("failed: shows the state, file name and error", fai.state === "failed" && /failed/.test(fai.text) &&
    fai.text.includes("lost.pdf") && fai.text.includes("the media server answered 404") && fai.media === 0,
    JSON.stringify(fai));
  const exp = await stateOf("EXP");
  check("expired: shows the state and error", exp.state === "expired" && /expired/.test(exp.text) &&
    exp.text.includes("the file is no longer on WhatsApp") && exp.media === 0, JSON.stringify(exp));
  const listed = await page.textContent(`[data-testid=chats] [data-jid="${chat}"]`);
  check("chat list: the last message is described by its kind", /Video/.test(listed), listed);
  await shot(page, "messages-media");

  // Rebuilding the thread (what a live event does; here: the chat clicked again, with a new message in
  // it) keeps the same media elements: a video keeps its position.
  await page.$eval(`${li("VID")} video`, (e) => { e.dataset.probe = "kept"; });
  sql(`INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, text, status, ts) VALUES (${q(mid("TXT"))}, ` +
    `${q(chat)}, ${q(chat)}, false, 'text', 'and one more thing', 'received', now())`);
  await page.click(`[data-testid=chats] [data-jid="${chat}"]`);
  const again = await page.waitForSelector(`${li("TXT")}`, { timeout: 10000 }).then(() => true, () => false);
  check("rebuild: the thread shows the new message", again);
  const kept = await page.$eval(`${li("VID")} video`, (e) => ({ probe: e.dataset.probe, t: e.currentTime }));
  check("rebuild: the same <video> element, still at 7.5 s", kept.probe === "kept" && Math.abs(kept.t - 7.5) < 0.05,
    JSON.stringify(kept));

  // Media requests carried the session cookie only: nothing else was needed.
  check("every inline file was fetched with success", mediaAnswers.length > 0 &&
    mediaAnswers.every((a) => a.status === 200 || a.status === 206 || a.status === 304), JSON.stringify(mediaAnswers));

  // ---- the composer
  const count = (t) => Number(sql(`SELECT count(*) FROM ${t}`));
  const photo = png(200, 120, 77);
  await page.setInputFiles("#msg-file", { name: "photo.png", mimeType: "image/png", buffer: photo });
  check("composer: a PNG defaults to kind image", (await page.inputValue("#msg-kind")) === "image");
  check("composer: the text box becomes an optional caption",
    (await page.textContent("label[for=msg-text]")) === "Caption (optional)" &&
    !(await page.$eval("#msg-text", (e) => e.required)));
  await page.fill("#msg-to", "+1 555 000 2222");
  await page.fill("#msg-text", "composer photo");
  await page.click("[data-testid=composer] button[type=submit]");
  const to2 = "15550002222@s.whatsapp.net";
  // The thread's title is the person's number (+digits); its JID is the title attribute.
  await page.waitForSelector(`[data-testid=thread] h2[title='${to2}'] >> text=+15550002222`, { timeout: 10000 }).catch(async () => {
    throw new Error(`the thread did not open: ${await page.textContent("[data-testid=messages-error]")}`);
  });
  await page.waitForSelector(`[data-testid=thread] li.mine[data-type=image] img`);
  const sent = sql("SELECT m.type, m.status, f.sha256, f.file_name, m.text, (SELECT count(*) FROM wa_outbox o " +
    `WHERE o.message_id = m.id) FROM wa_messages m JOIN wa_message_media a ON a.message_id = m.id ` +
    `JOIN wa_media f ON f.id = a.media_id WHERE m.from_me AND m.chat_jid = '${to2}' AND m.type = 'image'`);
  check("composer: an image message is queued with the file's SHA-256, name and caption",
    sent === `image|queued|${sha256(photo)}|photo.png|composer photo|1`, sent);
  const sentImg = await waitFor(() => page.$eval(`[data-testid=thread] li.mine[data-type=image] img`,
    (e) => e.complete && e.naturalWidth), 10000);
  check("composer: the sent picture shows in the thread (naturalWidth 200)", sentImg === 200, sentImg);
  check("composer: the picker is cleared after sending", await page.$eval("#msg-file", (e) => e.files.length === 0 &&
    e.value === "") && (await page.inputValue("#msg-text")) === "" && (await page.$eval("#msg-kind", (e) => e.disabled)));

  await page.setInputFiles("#msg-file", { name: "hello.ogg", mimeType: "audio/ogg", buffer: files.voice.buf });
  check("composer: an Ogg defaults to audio", (await page.inputValue("#msg-kind")) === "audio");
  await page.selectOption("#msg-kind", "voice");
  await page.click("[data-testid=composer] button[type=submit]");
  await page.waitForSelector(`[data-testid=thread] li.mine[data-type=voice] audio`);
  const sentVoice = sql("SELECT m.type, m.status, f.sha256, f.kind FROM wa_messages m JOIN wa_message_media a ON " +
    `a.message_id = m.id JOIN wa_media f ON f.id = a.media_id WHERE m.from_me AND m.type = 'voice'`);
  check("composer: a voice note is queued with the file's SHA-256",
    sentVoice === `voice|queued|${sha256(files.voice.buf)}|voice`, sentVoice);
  const sentAudio = await waitFor(() => page.$eval(`[data-testid=thread] li.mine[data-type=voice] audio`,
    (e) => e.readyState >= 1 && { d: e.duration, w: e.getBoundingClientRect().width }), 10000);
  check("composer: the sent voice note plays in the thread (3 s, full-width controls)",
    sentAudio && Math.abs(sentAudio.d - 3) < 0.1 && sentAudio.w >= 250, JSON.stringify(sentAudio));

  // A document keeps its file name (the API takes file_name for documents only).
  const notes = Buffer.from("line one\nline two\n");
  await page.setInputFiles("#msg-file", { name: "notes.txt", mimeType: "text/plain", buffer: notes });
  check("composer: a text file defaults to document", (await page.inputValue("#msg-kind")) === "document");
  await page.click("[data-testid=composer] button[type=submit]");
  await page.waitForSelector(`[data-testid=thread] li.mine[data-type=document] a.media-document`);
  const sentDoc = sql("SELECT m.type, m.status, f.sha256, a.file_name FROM wa_messages m JOIN wa_message_media a " +
    `ON a.message_id = m.id JOIN wa_media f ON f.id = a.media_id WHERE m.from_me AND m.type = 'document'`);
  check("composer: a document is queued with the file's SHA-256 and name",
    sentDoc === `document|queued|${sha256(notes)}|notes.txt`, sentDoc);

  // Refusals: the API's error shows (status, code, message) and nothing is queued or stored.
  const msgs0 = count("wa_messages");
  const media0 = count("wa_media");
  await page.setInputFiles("#msg-file", { name: "picture.png", mimeType: "image/png", buffer: photo });
  await page.selectOption("#msg-kind", "voice");
  await page.click("[data-testid=composer] button[type=submit]");
  const alert1 = await waitFor(async () => (await page.textContent("[data-testid=messages-error]")) || "", 10000);
  check("composer: a PNG as a voice note shows the API's 400 with its code and message",
    /^Upload failed: file: .+ \(400 unsupported_type\)$/.test(alert1), alert1);
  check("composer: ... and nothing is queued or stored", count("wa_messages") === msgs0 && count("wa_media") === media0,
    `${count("wa_messages")} ${count("wa_media")}`);
  check("composer: ... and the file stays picked to try another kind",
    await page.$eval("#msg-file", (e) => e.files.length === 1));

  // The upload passes, the send is refused (a bad recipient): its error shows and the upload is deleted.
  await page.selectOption("#msg-kind", "image");
  await page.fill("#msg-to", "not a number");
  await page.click("[data-testid=composer] button[type=submit]");
  const alertTo = await waitFor(async () => {
    const t = (await page.textContent("[data-testid=messages-error]")) || "";
    return t !== alert1 && t;
  }, 10000);
  check("composer: a refused send shows the API's error for the field",
    /^Sending failed: to: .+ \(400 [a-z_]+\)$/.test(alertTo), alertTo);
  check("composer: ... the upload made for it is deleted and nothing is queued",
    await waitFor(() => count("wa_media") === media0, 5000) && count("wa_messages") === msgs0,
    `${count("wa_messages")} ${count("wa_media")}`);
  await page.fill("#msg-to", "+1 555 000 2222");

  const big = Buffer.alloc(MAX_UPLOAD + 1000, 7);
  await page.setInputFiles("#msg-file", { name: "big.bin", mimeType: "application/octet-stream", buffer: big });
  check("composer: another type defaults to document", (await page.inputValue("#msg-kind")) === "document");
  await page.click("[data-testid=composer] button[type=submit]");
  const alert2 = await waitFor(async () => {
    const t = (await page.textContent("[data-testid=messages-error]")) || "";
    return t !== alertTo && t;
  }, 15000);
  check("composer: a file over the limit shows the API's 413", /^Upload failed: .*\(413 payload_too_large\)$/.test(alert2),
    alert2);
  check("composer: ... and nothing is queued or stored", count("wa_messages") === msgs0 && count("wa_media") === media0);
  await shot(page, "messages-media-composer");

  check("no script errors or CSP violations", problems.length === 0, problems.join(" | "));
  await ctx.close();
}
