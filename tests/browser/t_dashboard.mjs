#!/usr/bin/env node
// The dashboard in real headless Chromium: sign up, sign out, a wrong
// password, sign in, create and revoke an API key, every page of the shell,
// a phone-sized screen; screenshots into var/screens/, checked not blank.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
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

const port = await new Promise((res) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const base = `http://127.0.0.1:${port}`;
// A database of its own, so no other suite's rows (or rate-limit counts) interfere.
const shared = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
const dbName = `wapi_browser_dashboard_${process.pid}`;
const admin = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, "$1postgres");
execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
execFileSync("psql", [admin, "-qAtX", "-c", `CREATE DATABASE "${dbName}"`], { stdio: "ignore" });
const db = shared.replace(/^(postgres(?:ql)?:\/\/[^/?]*\/)[^?]*/, `$1${dbName}`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-browser-"));
const logFd = fs.openSync(path.join(dir, "wapi.log"), "a");
const srv = spawn(path.join(ROOT, "build/wapi"), ["-c", "/dev/null"], {
  env: {
    PATH: process.env.PATH, DATABASE_URL: db, BETTER_AUTH_URL: base, WAPI_LISTEN: `127.0.0.1:${port}`,
    WAPI_WORKERS: "2", WAPI_PATHS_RUN: path.join(dir, "run"), WAPI_PATHS_SESSIONS: path.join(dir, "s"),
    WAPI_PATHS_MEDIA: path.join(dir, "m"), WAPI_WHATSAPP_AUTOSTART: "false",
  },
  stdio: ["ignore", logFd, logFd],
});
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
  const invitation = await desktop(browser);
  await phone(browser, invitation);
} catch (e) {
  check("the browser run finished without an exception", false, e?.stack || e);
} finally {
  if (browser) await browser.close();
  srv.kill("SIGTERM");
  await new Promise((r) => srv.once("exit", r));
  try {
    execFileSync("psql", [admin, "-qAtX", "-c", `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`], { stdio: "ignore" });
  } catch {
    /* left for the next run's DROP */
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  const buf = await page.screenshot({ path: file, fullPage: true });
  // A blank page compresses to almost nothing; a real one has text and shapes.
  const text = (await page.evaluate(() => document.body.innerText)).trim();
  check(`screenshot ${name}.png is not blank (${buf.length} bytes, ${text.length} characters of text)`,
    buf.length > 6000 && text.length > 20, `${buf.length} ${text.slice(0, 80)}`);
}

function watch(page, problems) {
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // A wrong password answers 401; the browser logs that fetch, which is expected.
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());
}

async function desktop(b) {
  const ctx = await b.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(120000); /* sign-ins yield the CPU: slow on a busy machine */
  const problems = [];
  watch(page, problems);
  const email = `browser-${process.pid}-${Date.now()}@example.com`;
  const password = "browser-pass-1";

  await page.goto(base + "/");
  await page.waitForSelector("form");
  check("/ shows the sign-in screen when signed out", page.url().endsWith("#/sign-in"), page.url());
  await shot(page, "sign-in");

  await page.click("text=Create an account");
  await page.fill("#f-name", "Browser Person");
  await page.fill("#f-email", email);
  await page.fill("#f-password", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");
  check("sign up lands in the app shell", (await page.textContent("[data-testid=user-email]")) === email);
  const navText = await page.textContent("nav");
  check("the first account is the admin: navigation has Session, Messages, Webhooks, API keys, Users, Audit log, Settings",
    ["Session", "Messages", "Webhooks", "API keys", "Users", "Audit log", "Settings"].every((t) => navText.includes(t)) &&
    (await page.textContent("[data-testid=user-role]")) === "admin", navText);
  await page.waitForSelector("[data-testid=session-state]");
  check("the Session page shows the session state", (await page.textContent("[data-testid=session-state]")).length > 0);
  await shot(page, "session");
  const cookies = await ctx.cookies();
  const c = cookies.find((k) => k.name === "better-auth.session_token");
  check("the session cookie is HttpOnly and SameSite=Lax", c && c.httpOnly && c.sameSite === "Lax", JSON.stringify(c));

  await page.click("[data-testid=sign-out]");
  await page.waitForSelector("#f-password");
  check("sign out returns to the sign-in screen", page.url().endsWith("#/sign-in"));

  await page.fill("#f-email", email);
  await page.fill("#f-password", "not-my-password");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=auth-error]:not(:empty)");
  check("a wrong password shows an error", (await page.textContent("[data-testid=auth-error]")).includes("Wrong email or password"));
  await shot(page, "wrong-password");

  await page.fill("#f-password", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");
  check("sign in lands in the app shell", (await page.textContent("[data-testid=user-email]")) === email);

  await page.click("nav >> text=API keys");
  await page.waitForSelector("[data-testid=no-keys]");
  check("the API keys page starts empty", true);
  await page.fill("#key-name", "browser-key");
  await page.selectOption("#key-expiry", "30");
  await page.click("text=Create key");
  await page.waitForSelector("[data-testid=new-key]");
  const key = await page.inputValue("[data-testid=new-key]");
  check("a new key is shown once, in full", key.length >= 64, key.length);
  await page.waitForSelector("[data-testid=keys] >> text=browser-key");
  check("the key is listed", true);
  await shot(page, "api-keys");
  let r = await fetch(base + "/api/me", { headers: { "x-api-key": key } });
  check("the key works against the API", r.status === 200, r.status);
  await page.click("[data-testid=revoke]");
  await page.waitForSelector("[data-testid=no-keys]");
  check("revoke removes it from the list", true);
  await new Promise((res) => setTimeout(res, 1000));
  r = await fetch(base + "/api/me", { headers: { "x-api-key": key } });
  check("the revoked key is refused", r.status === 401, r.status);

  for (const [label, text] of [["Messages", "Chats"], ["Webhooks", "New webhook"], ["Settings", email]]) {
    await page.click(`nav >> text=${label}`);
    await page.waitForSelector(`main >> text=${text}`);
    check(`the ${label} page renders`, true);
  }
  await shot(page, "settings");

  // People join by invitation (the default): make one for a member.
  await page.click("nav >> text=Users");
  await page.waitForSelector("[data-testid=users] >> text=" + email);
  await page.selectOption("#inv-role", "member");
  await page.click("text=Create invitation");
  await page.waitForSelector("[data-testid=invite-link]");
  const link = await page.inputValue("[data-testid=invite-link]");
  check("the Users page makes an invitation link", link.startsWith(base + "/#/sign-up?invitation="), link);
  await page.waitForSelector("[data-testid=invitations] >> text=pending");
  await shot(page, "users");
  await page.click("nav >> text=Audit log");
  await page.waitForSelector("[data-testid=audit] >> text=invitation.created");
  const auditText = await page.textContent("[data-testid=audit]");
  check("the Audit log page lists what was done, by whom", ["user.created", "apikey.created", "apikey.revoked",
    "invitation.created"].every((t) => auditText.includes(t)) && auditText.includes(email), auditText.slice(0, 300));
  await shot(page, "audit");
  check("no script errors or CSP violations", problems.length === 0, problems.join(" | "));
  await ctx.close();
  return link;
}

async function phone(b, invitation) {
  const ctx = await b.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await ctx.newPage();
  page.setDefaultTimeout(120000); /* sign-ins yield the CPU: slow on a busy machine */
  const problems = [];
  watch(page, problems);
  await page.goto(base + "/");
  await page.waitForSelector("form");
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check("phone: the sign-in screen fits the width", w <= 390, w);
  await shot(page, "phone-sign-in");
  const email = `phone-${process.pid}-${Date.now()}@example.com`;
  await page.click("text=Create an account");
  await page.waitForSelector("[data-testid=invite-only]");
  check("phone: without an invitation, sign-up says it is by invitation", true);
  await page.goto(invitation);
  await page.waitForSelector("#f-name");
  await page.fill("#f-name", "Phone Person");
  await page.fill("#f-email", email);
  await page.fill("#f-password", "phone-pass-12");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=sign-out], [data-testid=auth-error]:not(:empty)");
  const failed = await page.textContent("[data-testid=auth-error]").catch(() => "");
  check("phone: sign up with the invitation lands in the app shell", !failed, failed);
  if (failed) return;
  // A member: messages yes; no session controls, webhooks, users or audit log.
  await page.waitForSelector("[data-testid=session-state]");
  const nav = await page.evaluate(() => [...document.querySelectorAll("nav a")].map((a) => a.textContent).join(","));
  check("phone: a member's navigation has no Webhooks, Users or Audit log page",
    nav.includes("Messages") && !/Webhooks|Users|Audit/.test(nav) &&
    (await page.textContent("[data-testid=user-role]")) === "member", nav);
  const controls = await page.$$("[data-testid=start], [data-testid=stop], [data-testid=logout]");
  check("phone: a member's Session page shows the state but no Session controls",
    controls.length === 0 && !!(await page.$("[data-testid=session-readonly]")), controls.length);
  await page.goto(base + "/#/webhooks");
  await page.waitForSelector("[data-testid=session-state]");
  check("phone: going to #/webhooks by hand shows an allowed page instead", !(await page.$("text=New webhook")));
  const side = page.locator("aside.side");
  const closed = await side.boundingBox();
  check("phone: the navigation is off-screen behind the menu button", closed && closed.x + closed.width <= 1,
    JSON.stringify(closed));
  await page.click("button.menu");
  await page.waitForTimeout(400);
  const open = await side.boundingBox();
  check("phone: the menu button slides it in", open && open.x >= 0, JSON.stringify(open));
  await shot(page, "phone-menu");
  await page.click("nav >> text=API keys");
  await page.waitForSelector("#key-name");
  const w2 = await page.evaluate(() => document.documentElement.scrollWidth);
  check("phone: the API keys page fits the width", w2 <= 390, w2);
  await shot(page, "phone-api-keys");
  check("phone: no script errors or CSP violations", problems.length === 0, problems.join(" | "));
  await ctx.close();
}
