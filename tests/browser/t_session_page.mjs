#!/usr/bin/env node
// The Session page in real headless Chromium against the fake WhatsApp
// server: start, the live QR, the phone scans it, the page turns to
// "Connected" with the linked number without a reload, log out. Desktop and
// a phone-sized screen; screenshots into var/screens/, checked not blank.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { FakeWhatsAppServer } = await import(path.join(ROOT, "tests/wa/lib/fake_server.mjs"));
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
const watchdog = setTimeout(() => {
  console.log("FAIL: watchdog: the session page suite did not finish in 90 s");
  process.exit(1);
}, 90000);

const port = await new Promise((res) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const base = `http://127.0.0.1:${port}`;
const wa = new FakeWhatsAppServer({ qrFirstMs: 60000, qrNextMs: 20000 });
await wa.start();
// A database of its own: the account signed up below is its first, so the
// admin who may link the session (accounts after the first need an invitation).
const shared = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
const dbName = `wapi_browser_session_${process.pid}`;
const pgAdmin = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, "$1postgres");
execFileSync("psql", [pgAdmin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
execFileSync("psql", [pgAdmin, "-qAtX", "-c", `CREATE DATABASE "${dbName}"`], { stdio: "ignore" });
const db = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, `$1${dbName}`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-session-page-"));
const logFd = fs.openSync(path.join(dir, "wapi.log"), "a");
const srv = spawn(path.join(ROOT, "build/wapi"), ["-c", "/dev/null"], {
  env: {
    PATH: process.env.PATH, DATABASE_URL: db,
    BETTER_AUTH_URL: base, WAPI_LISTEN: `127.0.0.1:${port}`, WAPI_WORKERS: "2", WAPI_PATHS_RUN: path.join(dir, "run"),
    WAPI_PATHS_SESSIONS: path.join(dir, "s"), WAPI_PATHS_MEDIA: path.join(dir, "m"), WAPI_WHATSAPP_AUTOSTART: "false",
    WAPI_WHATSAPP_URL: wa.url, WAPI_WHATSAPP_ROOT_KEY: wa.rootPublicKey.toString("hex"),
    WAPI_WHATSAPP_VERSION: wa.config.version,
  },
  stdio: ["ignore", logFd, logFd],
});

async function shot(page, name) {
  const buf = await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const text = (await page.evaluate(() => document.body.innerText)).trim();
  check(`screenshot ${name}.png is not blank (${buf.length} bytes)`, buf.length > 6000 && text.length > 20, buf.length);
}

const state = (page) => page.getAttribute("[data-testid=session-state]", "data-state");
async function waitState(page, want, ms = 15000) {
  await page.waitForSelector(`[data-testid=session-state][data-state=${want}]`, { timeout: ms });
  return true;
}

let browser;
try {
  let ready = false;
  for (let i = 0; i < 300 && !ready; i++) {
    try {
      ready = (await fetch(`${base}/readyz`)).status === 200;
    } catch {}
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  check("wapi is ready", ready);
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--headless", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("dialog", (d) => d.accept());
  let reloads = 0;
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame() && !f.url().includes("#/")) reloads++;
  });

  await page.goto(base + "/");
  await page.click("text=Create an account");
  await page.fill("#f-name", "Session Person");
  await page.fill("#f-email", `session-page-${process.pid}-${Date.now()}@example.com`);
  await page.fill("#f-password", "session-pass-1");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");
  await page.click("nav >> text=Session");
  await page.waitForSelector("[data-testid=session-state]");
  check("the Session page shows the state (stopped)", (await state(page)) === "stopped", await state(page));
  const navs = reloads;

  await page.click("[data-testid=start]");
  check("Start shows a live QR code", await waitState(page, "qr"));
  await page.waitForFunction(() => {
    const img = document.querySelector("[data-testid=qr]");
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 10000 });
  check("the QR image is loaded (an SVG from /api/session/qr)", true);
  await shot(page, "session-qr");
  const qrText = await page.evaluate(async () => (await fetch("/api/session/qr?format=raw")).text());
  const src1 = await page.getAttribute("[data-testid=qr]", "src");
  const res = await wa.scanQr(qrText);
  check("the phone scans the QR shown to the user", res.ok === true, JSON.stringify(res));
  check("the page turns to Connected by itself", await waitState(page, "connected"));
  const me = await page.textContent("[data-testid=session-me]");
  const number = "+" + String(res.jid || "").split("@")[0].split(":")[0];
  check("the linked number is shown", number.length > 5 && me.includes(number), `${me} vs ${number}`);
  check("the QR card is hidden once connected", !(await page.isVisible("[data-testid=qr]")));
  check("no reload happened (live updates)", reloads === navs, `${reloads} vs ${navs}`);
  await shot(page, "session-connected");

  // Phone-sized screen.
  const small = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true });
  const p2 = await small.newPage();
  await small.addCookies(await ctx.cookies());
  await p2.goto(base + "/#/session");
  await p2.waitForSelector("[data-testid=session-state][data-state=connected]");
  const overflow = await p2.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check("the Session page fits a phone-sized screen", !overflow);
  await shot(p2, "session-phone");
  await small.close();

  // A group made by another account with us in it: listed by its subject,
  // and its details (who, with which role) in the thread's group panel.
  const mine = String(res.jid || "").split("@")[0].split(":")[0];
  const made = wa.groups.route("POST", "/groups/create", { creator: "15550009999", subject: "Shop team",
    participants: [mine, "15550008888"] });
  await page.click("nav >> text=Messages");
  await page.waitForSelector(`[data-testid=chats] [data-jid='${made.jid}'] >> text=Shop team`, { timeout: 15000 });
  check("a group we were added to is listed by its subject", true);
  await page.click(`[data-testid=chats] [data-jid='${made.jid}']`);
  await page.waitForSelector("[data-testid=thread] h2 >> text=Shop team");
  await page.click("[data-testid=group-info]");
  await page.waitForSelector("[data-testid=group-people] li", { timeout: 15000 });
  const people = await page.$$eval("[data-testid=group-people] li", (ls) => ls.map((l) => [l.textContent, l.dataset.role]));
  check("Group info: the participants with their roles, the creator first",
    people.length === 3 && people[0][0].startsWith("+15550009999") && people[0][1] === "superadmin" &&
    people[0][0].includes("creator") && people.some(([t, r]) => t.startsWith(`+${mine}`) && r === "member") &&
    people.some(([t]) => t.startsWith("+15550008888")), JSON.stringify(people));
  check("a member sees no invite link (WhatsApp gives it to admins)",
    (await page.$$("[data-testid=group-invite]")).length === 0);
  const shown = await page.textContent("[data-testid=thread]");
  check("nothing empty is shown as \"null\"", !shown.includes("null"), shown.slice(0, 200));
  await shot(page, "group-info");
  // Made an admin: the panel shows the group's invite link, the server's.
  wa.groups.route("POST", `/groups/${encodeURIComponent(made.jid)}/participants`, { actor: "15550009999",
    action: "promote", participants: [mine] });
  await page.click("[data-testid=group-info]"); // closes
  await page.click("[data-testid=group-info]"); // opens, asked again
  await page.waitForSelector("[data-testid=group-invite] a", { timeout: 15000 });
  const link = await page.getAttribute("[data-testid=group-invite] a", "href");
  const code = wa.groups.state(wa.groups.get(made.jid)).invite;
  check("an admin sees the invite link WhatsApp has for the group", link === `https://chat.whatsapp.com/${code}`,
    `${link} vs ${code}`);
  // A person writes to us: their chat's Contact info shows the number and
  // about text (asked of WhatsApp) and blocks them for real.
  wa.peerProfile({ about: "At the shop until six" });
  const sent = await wa.peerSend({ text: "is the shop open?" });
  await page.waitForSelector("[data-testid=chats] [data-jid='15550009999@s.whatsapp.net']", { timeout: 15000 });
  await page.click("[data-testid=chats] [data-jid='15550009999@s.whatsapp.net']");
  await page.waitForSelector(`[data-message-id='${sent.id}']`);
  await page.click("[data-testid=contact-info]");
  await page.waitForSelector("[data-testid=contact-about]", { timeout: 15000 });
  const about = await page.textContent("[data-testid=contact-about]");
  const num = await page.textContent("[data-testid=contact-number]");
  check("Contact info: the number and the about text WhatsApp has", about === "At the shop until six" &&
    num === "+15550009999", `${about} / ${num}`);
  await page.click("[data-testid=block] >> text=Block");
  await page.waitForSelector("[data-testid=block] >> text=Unblock", { timeout: 15000 });
  check("Contact info: Block blocks on WhatsApp (the server's list has them)",
    wa.ownProfile.blocked.has("15550009999@s.whatsapp.net"));
  await page.click("[data-testid=block] >> text=Unblock");
  await page.waitForSelector("[data-testid=block] >> text=Block", { timeout: 15000 });
  check("... and Unblock unblocks", !wa.ownProfile.blocked.has("15550009999@s.whatsapp.net"));
  await shot(page, "contact-info");
  await page.click("nav >> text=Session");
  await page.waitForSelector("[data-testid=session-state][data-state=connected]");

  await page.click("[data-testid=logout]");
  check("Log out (after the confirm) ends in logged_out", await waitState(page, "logged_out"));
  check("no page errors", problems.length === 0, problems.join("; "));
  check("the QR address changed with each QR (cache-busting)", !!src1, src1);
} catch (e) {
  check("the browser run finished without an exception", false, e?.stack || e);
} finally {
  if (browser) await browser.close();
  srv.kill("SIGTERM");
  await new Promise((r) => srv.once("exit", r));
  await wa.stop?.();
  clearTimeout(watchdog);
  try {
    execFileSync("psql", [pgAdmin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
  } catch {
    /* left for the next run's DROP */
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
