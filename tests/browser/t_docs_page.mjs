#!/usr/bin/env node
// The API reference (/docs) in real headless Chromium: it loads under the
// dashboard's CSP with no violation, console error or request off the
// server's origin; it lists every operation of /api/openapi.json and every
// event of its webhooks section; the search filters them (and says when
// nothing matches); the dashboard links to it; signed in, "try it" on
// GET /api/me and GET /api/session returns the live answers, and signed out
// it shows the API's 401.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
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
setTimeout(() => {
  console.log("FAIL: watchdog: the docs page suite did not finish in 240 s");
  process.exit(1);
}, 240000).unref();

const port = await new Promise((res) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const base = `http://127.0.0.1:${port}`;
const shared = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
const dbName = `wapi_browser_docs_${process.pid}`;
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
const doc = JSON.parse(fs.readFileSync(path.join(ROOT, "docs/openapi.json"), "utf8"));
const nOps = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
const nEvents = Object.keys(doc.webhooks).length;

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
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(60000);
  const problems = [];
  const offsite = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // "try it" signed out answers 401 on purpose; the browser logs that fetch.
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith("data:")) offsite.push(r.url());
  });

  // ---- signed out: the page, the search, and try it's 401
  await page.goto(base + "/docs");
  await page.waitForSelector("[data-testid=op]");
  const violations = await page.evaluate(() => new Promise((res) => {
    const seen = [];
    document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
    setTimeout(() => res(seen), 300);
  }));
  const cards = await page.$$eval("[data-testid=op]", (els) => els.map((e) => e.querySelector(".path").textContent));
  check(`the page lists every operation and event of the document (${nOps} + ${nEvents})`,
    cards.length === nOps + nEvents && cards.includes("/api/messages") && cards.includes("message.received"),
    `${cards.length} cards`);
  const visible = () => page.$$eval("[data-testid=op]", (els) =>
    els.filter((e) => !e.classList.contains("hidden")).map((e) => e.querySelector(".path").textContent));

  await page.fill("#search", "webhooks");
  let shown = await visible();
  check("searching 'webhooks' leaves only webhook operations and events that mention webhooks",
    shown.length >= 7 && shown.length < cards.length && shown.includes("/api/webhooks/{id}/deliveries"), shown.join(" "));
  await page.fill("#search", "media_failed");
  shown = await visible();
  check("searching an event type finds its entry", shown.length === 1 && shown[0] === "message.media_failed", shown.join(" "));
  await page.fill("#search", "post chats presence");
  shown = await visible();
  check("words narrow the search together", shown.length === 1 && shown[0] === "/api/chats/{jid}/presence", shown.join(" "));
  await page.fill("#search", "no-such-thing-anywhere");
  shown = await visible();
  check("nothing matching: no card, and the page says so",
    shown.length === 0 && !(await page.$eval("#nothing", (e) => e.classList.contains("hidden"))));
  await page.fill("#search", "");
  check("clearing the search shows everything again", (await visible()).length === cards.length);

  const tryGet = async (p) => {
    await page.fill("#search", `get ${p}`);
    const card = page.locator("[data-testid=op]:not(.hidden)").filter({ has: page.locator(".path", { hasText: new RegExp(`^${p.replace(/[/]/g, "\\/")}$`) }) }).first();
    await card.locator(":scope > summary").click();
    await card.locator("[data-testid=try-send]").click();
    const out = card.locator("[data-testid=try-result]");
    await page.waitForFunction((el) => !el.textContent.includes("…"), await out.elementHandle());
    return out.textContent();
  };
  let res = await tryGet("/api/me");
  check("signed out, try it on GET /api/me shows the API's 401 and its error body",
    res.startsWith("401") && /"error": \{\s*"code": "UNAUTHORIZED"/.test(res), res);

  // ---- signed in on the dashboard, which links here
  await page.goto(base + "/");
  await page.click("text=Create an account");
  const email = `docs-${process.pid}@example.com`;
  await page.fill("#f-name", "Docs Reader");
  await page.fill("#f-email", email);
  await page.fill("#f-password", "docs-pass-12345");
  await page.click("button[type=submit]");
  await page.waitForSelector("[data-testid=user-email]");
  await page.click("[data-testid=docs-link]");
  await page.waitForSelector("[data-testid=op]");
  check("the dashboard links to /docs", page.url() === base + "/docs", page.url());
  await page.waitForFunction(() => document.querySelector("#who").textContent.includes("signed in as"));
  check("the page says who is signed in", (await page.textContent("#who")).includes(email));
  res = await tryGet("/api/me");
  const me = JSON.parse(res.slice(res.indexOf("{")));
  check("signed in, try it on GET /api/me returns the live answer (200, the first account: admin, by session)",
    res.startsWith("200") && me.role === "admin" && me.via === "session" && me.permissions.includes("webhooks:write"), res);
  res = await tryGet("/api/session");
  const json = JSON.parse(res.slice(res.indexOf("{")));
  check("try it on GET /api/session returns the session's state",
    res.startsWith("200") && typeof json.state === "string" && "last_error" in json, res);

  check("no CSP violation", violations.length === 0, violations.join(", "));
  check("no console error or page error", problems.length === 0, problems.join(" | "));
  check("no request left the server's origin (nothing from a CDN)", offsite.length === 0, offsite.join(" "));
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
