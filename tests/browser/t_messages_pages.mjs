#!/usr/bin/env node
// The Messages and Webhooks pages in real headless Chromium, on a database of
// their own: send from the composer (the thread shows it queued, the chat
// list shows the chat), a status change shows after a refresh; create a
// webhook (secret shown once), an event is delivered to a local receiver,
// the delivery log shows it, redeliver sends it again; disable and delete.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
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
const dbName = `wapi_browser_messages_${process.pid}`;
const admin = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, "$1postgres");
execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
execFileSync("psql", [admin, "-qAtX", "-c", `CREATE DATABASE "${dbName}"`], { stdio: "ignore" });
const db = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, `$1${dbName}`);
const sql = (q) => execFileSync("psql", [db, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q]).toString().trim();

// The webhook receiver.
const received = [];
const rx = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ headers: req.headers, body });
    res.writeHead(200, { "content-length": 2 });
    res.end("ok");
  });
});
await new Promise((r) => rx.listen(0, "127.0.0.1", r));
const rxPort = rx.address().port;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-browser-msg-"));
const logFd = fs.openSync(path.join(dir, "wapi.log"), "a");
const srv = spawn(path.join(ROOT, "build/wapi"), ["-c", "/dev/null"], {
  env: {
    PATH: process.env.PATH, DATABASE_URL: db, BETTER_AUTH_URL: base, WAPI_LISTEN: `127.0.0.1:${port}`,
    WAPI_WORKERS: "1", WAPI_PATHS_RUN: path.join(dir, "run"), WAPI_PATHS_SESSIONS: path.join(dir, "s"),
    WAPI_PATHS_MEDIA: path.join(dir, "m"), WAPI_WHATSAPP_AUTOSTART: "false", WAPI_WEBHOOKS_ALLOW_PRIVATE: "true",
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
  rx.close();
  try {
    execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
  } catch {
    /* best effort */
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

async function shot(page, name) {
  const buf = await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const text = (await page.evaluate(() => document.body.innerText)).trim();
  check(`screenshot ${name}.png is not blank`, buf.length > 6000 && text.length > 20, `${buf.length}`);
}

async function run(b) {
  const ctx = await b.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // The bad recipient answers 400 and Mark read without a session 409; the browser logs those fetches.
    if (m.type() === "error" && !/status of (400|409)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());

  await page.goto(base + "/#/sign-up");
  await page.waitForSelector("#f-name");
  await page.fill("#f-name", "Pages Person");
  await page.fill("#f-email", `pages-${process.pid}-${Date.now()}@example.com`);
  await page.fill("#f-password", "pages-pass-12");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");

  // Messages
  await page.click("nav >> text=Messages");
  await page.waitForSelector("[data-testid=no-chats]");
  check("Messages: an empty database shows no chats", true);
  await page.fill("#msg-to", "+1 555 123 4567");
  await page.fill("#msg-text", "hello from the dashboard");
  await page.click("[data-testid=composer] button[type=submit]");
  await page.waitForSelector("[data-testid=thread] >> text=hello from the dashboard");
  const st = await page.getAttribute("[data-testid=thread] [data-status]", "data-status");
  check("Messages: the sent message shows in the thread as queued", st === "queued", st);
  const chat = await page.getAttribute("[data-testid=chats] [data-jid]", "data-jid");
  check("Messages: the chat is listed", chat === "15551234567@s.whatsapp.net", chat);
  const title = await page.textContent("[data-testid=chats] [data-jid] [data-testid=chat-name]");
  const head = await page.textContent("[data-testid=thread] h2");
  check("Messages: a person without a name is shown by number, never as a JID (list and thread)",
    title === "+15551234567" && head === "+15551234567", `${title} / ${head}`);
  const boxes = await page.evaluate(() => {
    const r = (s) => document.querySelector(s).getBoundingClientRect();
    return { thread: r("[data-testid=thread]"), composer: r("[data-testid=composer]") };
  });
  check("Messages: the composer sits under the open thread",
    boxes.composer.top >= boxes.thread.bottom - 1 && Math.abs(boxes.composer.left - boxes.thread.left) < 40,
    JSON.stringify(boxes));
  await page.click("[data-testid=new-chat]");
  await page.waitForSelector("[data-testid=no-thread]");
  const empty = await page.textContent("[data-testid=no-thread]");
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === "msg-to", null,
    { timeout: 3000 }).catch(() => {});
  const focus = await page.evaluate(() => document.activeElement && document.activeElement.id);
  check("Messages: New chat clears the thread, says where to write, and puts the cursor in To",
    /box below/.test(empty) && focus === "msg-to" && (await page.inputValue("#msg-to")) === "", `${empty} / ${focus}`);
  sql("INSERT INTO wa_contacts (jid, push_name) VALUES ('15551234567@s.whatsapp.net', 'Ana Lima') " +
    "ON CONFLICT (jid) DO UPDATE SET push_name = EXCLUDED.push_name");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.waitForSelector("[data-testid=chats] [data-jid] >> text=Ana Lima");
  check("Messages: once WhatsApp told the person's name, the chat is listed by it", true);
  await page.fill("#msg-to", "not a number");
  await page.fill("#msg-text", "x");
  await page.click("[data-testid=composer] button[type=submit]");
  await page.waitForSelector("text=to: ");
  check("Messages: a bad recipient shows the field's error", true);
  sql("UPDATE wa_messages SET status = 'delivered'");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid]");
  await page.waitForSelector("[data-testid=thread] [data-status=delivered]");
  check("Messages: a status change shows", true);
  // An incoming message: "Mark read" asks the server (no session here: its error shows), and goes once it is read.
  sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, text, status, ts) VALUES " +
    "('3EB0F00D00000000000001', '15551234567@s.whatsapp.net', '15551234567@s.whatsapp.net', false, 'text', 'hi back', 'received', now())");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid]");
  await page.waitForSelector("[data-testid=thread] >> text=hi back");
  check("Messages: an unread incoming message offers Mark read", await page.isVisible("[data-testid=mark-read]"));
  await page.click("[data-testid=mark-read]");
  await page.waitForSelector("[role=alert] >> text=not connected");
  check("Messages: Mark read without a connection shows the server's error", true);
  sql("UPDATE wa_messages SET read_at = now() WHERE id = '3EB0F00D00000000000001'");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid]");
  await page.waitForSelector("[data-testid=thread] >> text=hi back");
  check("Messages: once read, no Mark read", !(await page.isVisible("[data-testid=mark-read]")));
  // Settings our phone keeps in step (app-state sync): pinned first, marks on the row, archived last.
  sql("INSERT INTO wa_chats (jid, last_message_at, archived) VALUES ('15559990000@s.whatsapp.net', now(), true); " +
    "UPDATE wa_chats SET pinned_at = now() - interval '1 day', muted_until = 'infinity', marked_unread = true " +
    "WHERE jid = '15551234567@s.whatsapp.net'");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.waitForSelector("[data-testid=chats] [data-jid='15559990000@s.whatsapp.net']");
  const rows = await page.$$eval("[data-testid=chats] [data-jid]", (els) => els.map((e) => ({
    jid: e.getAttribute("data-jid"), marks: [...e.querySelectorAll("[data-testid=chat-mark]")].map((m) => m.textContent),
    unread: !!e.querySelector("[data-testid=marked-unread]") })));
  check("Messages: a pinned, muted chat comes first with its marks; an archived one last, marked",
    rows.length >= 2 && rows[0].jid === "15551234567@s.whatsapp.net" && rows[0].marks.join() === "Pinned,Muted" &&
    rows[rows.length - 1].jid === "15559990000@s.whatsapp.net" && rows[rows.length - 1].marks.join() === "Archived",
    JSON.stringify(rows));
  check("Messages: a chat marked unread on the phone shows it", rows[0].unread === true, JSON.stringify(rows[0]));
  sql("UPDATE wa_chats SET pinned_at = NULL, muted_until = NULL, marked_unread = false " +
    "WHERE jid = '15551234567@s.whatsapp.net'; DELETE FROM wa_chats WHERE jid = '15559990000@s.whatsapp.net'");
  // A group: who wrote each message shows; "@number" in a text to it mentions that person.
  sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, sender_pn, sender_lid, from_me, type, text, status, ts) VALUES " +
    "('3EB0F00D00000000000002', '120363000000000009@g.us', '15550002222@s.whatsapp.net', '15550002222@s.whatsapp.net', " +
    "'88800011122@lid', false, 'text', 'hello group', 'received', now()); " +
    "INSERT INTO wa_chats (jid, last_message_id, last_message_at) VALUES ('120363000000000009@g.us', " +
    "'3EB0F00D00000000000002', now())");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid='120363000000000009@g.us']");
  await page.waitForSelector("[data-testid=thread] >> text=hello group");
  const who = await page.textContent("[data-message-id='3EB0F00D00000000000002'] [data-testid=sender]");
  check("Messages: in a group, each message shows who wrote it (the phone number)", who === "+15550002222", who);
  await page.fill("#msg-text", "thanks @15550002222 and @15550003333 (@15550002222 again)");
  await page.click("[data-testid=composer] button[type=submit]");
  await page.waitForSelector("[data-testid=thread] >> text=thanks @15550002222");
  const ments = sql("SELECT array_to_string(mentions, ',') FROM wa_messages WHERE chat_jid = '120363000000000009@g.us' AND from_me");
  check("Messages: @numbers in a text to a group are sent as mentions, once each",
    ments === "15550002222@s.whatsapp.net,15550003333@s.whatsapp.net", ments);
  check("Messages: our own message in a group shows no sender line",
    !(await page.isVisible("[data-testid=thread] .msg.mine [data-testid=sender]")));
  // A place and contact cards: shown as cards, never as raw JSON.
  sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, subtype, content, status, ts) VALUES " +
    "('3EB0F00D00000000000003', '120363000000000009@g.us', '15550002222@s.whatsapp.net', false, 'location', " +
    "'locationMessage', '{\"latitude\": 48.85837, \"longitude\": 2.294481, \"name\": \"Tour Eiffel\", " +
    "\"address\": \"Champ de Mars\", \"live\": false}', 'received', now()), " +
    "('3EB0F00D00000000000004', '120363000000000009@g.us', '15550002222@s.whatsapp.net', false, 'contacts', " +
    "'contactMessage', '[{\"display_name\": \"Ana Lima\", \"vcard\": \"BEGIN:VCARD\\nFN:Ana Lima\\n" +
    "TEL;type=CELL:+55 11 99999 0000\\nEND:VCARD\"}]', 'received', now() + interval '1 second')");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid='120363000000000009@g.us']");
  await page.waitForSelector("[data-testid=thread] [data-testid=location]");
  const place = await page.textContent("[data-message-id='3EB0F00D00000000000003'] [data-testid=location]");
  const link = await page.getAttribute("[data-message-id='3EB0F00D00000000000003'] [data-testid=location] a", "href");
  check("Messages: a location is a card with its name, address and coordinates, and a link to a map",
    place.includes("Tour Eiffel") && place.includes("Champ de Mars") && place.includes("48.858370, 2.294481") &&
    link === "https://www.openstreetmap.org/?mlat=48.858370&mlon=2.294481#map=16/48.858370/2.294481", `${place} ${link}`);
  const card = await page.textContent("[data-message-id='3EB0F00D00000000000004'] [data-testid=contacts]");
  check("Messages: a contact card shows the name and the phone number", card.includes("Ana Lima") &&
    card.includes("+55 11 99999 0000") && !card.includes("BEGIN:VCARD"), card);
  const last = await page.textContent("[data-testid=chats] [data-jid='120363000000000009@g.us']");
  check("Messages: the chat list previews the contact card by name", last.includes("Contact: Ana Lima"), last);
  await shot(page, "messages");
  // A poll: its question, and each option with its count and voters, from the server.
  sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, subtype, content, status, ts) VALUES " +
    "('3EB0F00D00000000000007', '120363000000000009@g.us', '15550002222@s.whatsapp.net', false, 'poll', " +
    "'pollCreationMessage', '{\"question\": \"Lunch?\", \"options\": [\"Pizza\", \"Sushi\"], \"multiple\": true}', " +
    "'received', now()); " +
    "INSERT INTO wa_poll_votes (poll_id, voter, vote_id, options, voted_at) VALUES " +
    "('3EB0F00D00000000000007', '15550003333@s.whatsapp.net', 'V1', ARRAY['Pizza'], now()), " +
    "('3EB0F00D00000000000007', '15550004444@s.whatsapp.net', 'V2', ARRAY['Pizza', 'Sushi'], now())");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid='120363000000000009@g.us']");
  await page.waitForSelector("[data-message-id='3EB0F00D00000000000007'] [data-option=Pizza] [data-testid=poll-count]");
  const tally = await page.$$eval("[data-message-id='3EB0F00D00000000000007'] [data-option]",
    (ls) => ls.map((l) => [l.dataset.option, l.querySelector("[data-testid=poll-count]").textContent, l.textContent]));
  check("Messages: a poll shows its question and each option's count and voters, as the server tallies them",
    tally.length === 2 && tally[0][0] === "Pizza" && tally[0][1] === "2" && tally[0][2].includes("+15550003333") &&
    tally[1][0] === "Sushi" && tally[1][1] === "1", JSON.stringify(tally));

  // Edited and deleted messages say so.
  sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, text, status, ts, edited_at, revoked_at) VALUES " +
    "('3EB0F00D00000000000005', '120363000000000009@g.us', '15550002222@s.whatsapp.net', false, 'text', 'fixed typo', " +
    "'received', now(), now(), NULL), " +
    "('3EB0F00D00000000000006', '120363000000000009@g.us', '15550002222@s.whatsapp.net', false, 'text', 'oops', " +
    "'received', now(), NULL, now())");
  await page.click("nav >> text=Webhooks");
  await page.click("nav >> text=Messages");
  await page.click("[data-testid=chats] [data-jid='120363000000000009@g.us']");
  await page.waitForSelector("[data-message-id='3EB0F00D00000000000006']");
  const edited = await page.$$("[data-message-id='3EB0F00D00000000000005'] [data-testid=edited]");
  const gone = await page.textContent("[data-message-id='3EB0F00D00000000000006']");
  check("Messages: an edited message is marked edited; a deleted one says so and hides its text",
    edited.length === 1 && gone.includes("This message was deleted") && !gone.includes("oops") &&
    (await page.$$("[data-message-id='3EB0F00D00000000000006'] [data-testid=revoked]")).length === 1, gone);

  // Webhooks
  await page.click("nav >> text=Webhooks");
  await page.waitForSelector("[data-testid=no-webhooks]");
  await page.fill("#wh-url", `http://127.0.0.1:${rxPort}/hook`);
  await page.click("form >> button[type=submit]");
  await page.waitForSelector("[data-testid=new-secret]");
  const secret = await page.inputValue("[data-testid=new-secret]");
  check("Webhooks: the new secret is shown once (whsec_)", /^whsec_[A-Za-z0-9+/=]{40,}$/.test(secret), secret.slice(0, 8));
  await page.waitForSelector("[data-testid=webhooks] >> text=/hook");
  check("Webhooks: the webhook is listed", true);
  const eid = String(Date.now() * 1000 + 1);
  sql(`INSERT INTO wa_events (id, type, data) VALUES (${eid}, 'message.received', '{"n":1}'::jsonb)`);
  const got = await waitFor(() => received.find((r) => r.headers["webhook-id"] === eid), 10000);
  check("Webhooks: an event reaches the receiver", !!got);
  await page.click("[data-testid=log]");
  await page.waitForSelector("[data-testid=deliveries] [data-state=delivered]");
  check("Webhooks: the delivery log shows it delivered", true);
  await page.click("[data-testid=redeliver]");
  const again = await waitFor(() => received.filter((r) => r.headers["webhook-id"] === eid).length === 2, 10000);
  check("Webhooks: redeliver sends it again", again, received.length);
  await shot(page, "webhooks");
  await page.click("[data-testid=toggle]");
  await page.waitForSelector("[data-testid=webhooks] >> text=disabled");
  check("Webhooks: disable", true);
  await page.click("[data-testid=delete]");
  await page.waitForSelector("[data-testid=no-webhooks]");
  check("Webhooks: delete", true);
  check("no script errors or CSP violations", problems.length === 0, problems.join(" | "));
  await ctx.close();
}
