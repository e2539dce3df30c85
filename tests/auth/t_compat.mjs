#!/usr/bin/env node
// wapi against the published Better Auth packages (better-auth, better-call,
// @better-auth/api-key): password hashes, signed cookies and API-key hashes
// both ways, then a real Better Auth instance and a real wapi sharing one
// PostgreSQL schema that Better Auth created itself.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { apiKey, defaultKeyHasher } from "@better-auth/api-key";
import { betterAuth } from "better-auth";
import { hashPassword, verifyPassword } from "better-auth/crypto";
import { getMigrations } from "better-auth/db/migration";
import { createInternalContext, serializeSignedCookie } from "better-call";
import pg from "pg";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TOOL = path.join(ROOT, "build/tests/tools/auth_tool");
let failed = 0;
let passed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`PASS: ${name}`);
  } else {
    failed++;
    console.log(`FAIL: ${name}${detail !== undefined ? ` (${JSON.stringify(detail)})` : ""}`);
  }
}
function tool(...args) {
  try {
    return { code: 0, out: execFileSync(TOOL, args, { encoding: "utf8" }).trim() };
  } catch (e) {
    return { code: e.status, out: String(e.stdout || "").trim() };
  }
}

const SECRET = "compat-secret-" + "x".repeat(32);
const COOKIE = "better-auth.session_token";

// ---- 1. password hashes
const passwords = ["password-123", "pass\uFB01word", "Ünïcødé pässwörd ✓", "😀😀😀😀", "a".repeat(128)];
for (const pw of passwords) {
  const h = await hashPassword(pw);
  check(`Better Auth's hash of ${JSON.stringify(pw.slice(0, 20))} verifies in wapi`, tool("verify", h, pw).out === "ok");
  check(`... and a wrong password does not`, tool("verify", h, pw + "x").out === "no");
  const w = tool("hash", pw).out;
  check(`wapi's hash of ${JSON.stringify(pw.slice(0, 20))} verifies in Better Auth`,
    await verifyPassword({ hash: w, password: pw }), w);
  check(`... and a wrong password does not`, !(await verifyPassword({ hash: w, password: pw + "x" })));
}
{
  const h = await hashPassword("pass\uFB01word");
  check("NFKC: Better Auth's hash of the ligature verifies the plain spelling in wapi",
    tool("verify", h, "passfiword").out === "ok");
}

// ---- 2. signed cookies
async function betterCallReads(cookieHeader, secret = SECRET) {
  const ctx = await createInternalContext({ headers: new Headers({ cookie: cookieHeader }) }, { options: {}, path: "/" });
  return ctx.getSignedCookie(COOKIE, secret);
}
for (const token of ["abcDEF123", "Z".repeat(32), "tok-with_odd.chars~"]) {
  const set = await serializeSignedCookie(COOKIE, token, SECRET, {});
  const value = set.slice(COOKIE.length + 1).split(";")[0];
  check(`a cookie signed by better-call (${token.slice(0, 12)}) is accepted by wapi`,
    tool("unsign", SECRET, value).out === token, value);
  const tampered = value.slice(0, -6) + (value.slice(-6, -5) === "A" ? "B" : "A") + value.slice(-5);
  check("... tampered, refused by wapi", tool("unsign", SECRET, tampered).code === 1);
  check("... another secret, refused by wapi", tool("unsign", SECRET + "!", value).code === 1);
  const mine = tool("sign", SECRET, token).out;
  check(`wapi's signed cookie (${token.slice(0, 12)}) is accepted by better-call`,
    (await betterCallReads(`${COOKIE}=${mine}`)) === token, mine);
  check("... and equals better-call's own", mine === value, [mine, value]);
  const t2 = mine.replace(/^./, (c) => (c === "a" ? "b" : "a"));
  check("... tampered, refused by better-call", !(await betterCallReads(`${COOKIE}=${t2}`)));
}

// ---- 3. API-key hashing
for (const key of ["abc", "wapi_" + "Q".repeat(64), "x".repeat(64)]) {
  check(`the plugin's key hash equals wapi's (${key.slice(0, 8)}…)`,
    (await defaultKeyHasher(key)) === tool("apikey-hash", key).out);
}

// ---- 4. Better Auth and wapi on one database
const dbUrl = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
if (!dbUrl) {
  check("TEST_DATABASE_URL is set for the live part", false);
} else {
  await live(dbUrl);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

function withSearchPath(url, schema) {
  if (/^postgres(ql)?:\/\//.test(url)) return url + (url.includes("?") ? "&" : "?") + `options=-c%20search_path%3D${schema}`;
  return `${url} options='-c search_path=${schema}'`;
}

function freePort() {
  return new Promise((res) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function live(url) {
  const schema = `ba_compat_${process.pid}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.query(`CREATE SCHEMA ${schema}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const pool = new pg.Pool({ connectionString: url, options: `-c search_path=${schema}` });
  const auth = betterAuth({
    database: pool, secret: SECRET, baseURL: base, emailAndPassword: { enabled: true },
    plugins: [apiKey()], logger: { disabled: true }, telemetry: { enabled: false },
  });
  let srv;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-compat-"));
  try {
    const { runMigrations } = await getMigrations(auth.options);
    await runMigrations();
    const tables = (await admin.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", [schema])).rows
      .map((r) => r.table_name).join(",");
    check("Better Auth created its own tables", tables === "account,apikey,session,user,verification", tables);
    const ba = await auth.api.signUpEmail({ body: { email: "ba-user@example.com", password: "ba-password-1", name: "BA" } });
    const baKey = await auth.api.createApiKey({ body: { userId: ba.user.id, name: "from-ba" } });

    srv = spawn(path.join(ROOT, "build/wapi"), ["-c", "/dev/null"], {
      env: {
        PATH: process.env.PATH, DATABASE_URL: withSearchPath(url, schema), BETTER_AUTH_SECRET: SECRET,
        BETTER_AUTH_URL: base, WAPI_LISTEN: `127.0.0.1:${port}`, WAPI_WORKERS: "1",
        WAPI_PATHS_RUN: path.join(dir, "run"), WAPI_PATHS_SESSIONS: path.join(dir, "s"),
        WAPI_PATHS_MEDIA: path.join(dir, "m"), WAPI_WHATSAPP_AUTOSTART: "false",
        // Anyone may sign up here: the part below signs a second user up.
        WAPI_AUTH_REGISTRATION: "open",
      },
      stdio: ["ignore", fs.openSync(path.join(dir, "wapi.log"), "a"), fs.openSync(path.join(dir, "wapi.log"), "a")],
    });
    let ready = false;
    for (let i = 0; i < 300 && !ready; i++) {
      try {
        ready = (await fetch(`${base}/readyz`)).status === 200;
      } catch {}
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    check("wapi migrates a database Better Auth created and becomes ready", ready,
      fs.readFileSync(path.join(dir, "wapi.log"), "utf8").slice(-1500));
    if (!ready) return;

    const post = (p, body, headers = {}) => fetch(base + p, {
      method: "POST", headers: { "content-type": "application/json", origin: base, ...headers }, body: JSON.stringify(body),
    });
    let r = await post("/api/auth/sign-in/email", { email: "ba-user@example.com", password: "ba-password-1" });
    const cookie = (r.headers.getSetCookie?.() || []).map((c) => c.split(";")[0]).find((c) => c.startsWith(COOKIE));
    check("a user Better Auth signed up signs in at wapi", r.status === 200 && !!cookie, r.status);
    const got = await auth.api.getSession({ headers: new Headers({ cookie }) });
    check("Better Auth accepts the session cookie wapi issued", got?.user?.email === "ba-user@example.com", got);
    r = await fetch(base + "/api/me", { headers: { "x-api-key": baKey.key } });
    const me = await r.json();
    check("a key Better Auth's plugin issued works at wapi", r.status === 200 && me.userId === ba.user.id, me);
    check("the first existing user became admin on migration", me.role === "admin", me);

    const signedIn = await auth.api.signInEmail({
      body: { email: "ba-user@example.com", password: "ba-password-1" }, returnHeaders: true,
    });
    const baCookie = (signedIn.headers.getSetCookie?.() || []).map((c) => c.split(";")[0]).find((c) => c.startsWith(COOKIE));
    r = await fetch(base + "/api/auth/get-session", { headers: { cookie: baCookie } });
    const s = await r.json();
    check("wapi accepts the session cookie Better Auth issued", s?.user?.id === ba.user.id, s);
    const bad = baCookie.replace(/=(.)/, (m, c) => "=" + (c === "a" ? "b" : "a"));
    r = await fetch(base + "/api/auth/get-session", { headers: { cookie: bad } });
    check("... and refuses it tampered", (await r.json()) === null);

    r = await post("/api/auth/sign-up/email", { email: "wapi-user@example.com", password: "wapi-password-1", name: "W" });
    check("wapi signs a user up", r.status === 200, r.status);
    const back = await auth.api.signInEmail({ body: { email: "wapi-user@example.com", password: "wapi-password-1" } });
    check("Better Auth signs in the user wapi created (hash through the database)", !!back?.token, back);
    r = await post("/api/auth/api-key/create", { name: "from-wapi" }, { cookie });
    const wk = await r.json();
    const v = await auth.api.verifyApiKey({ body: { key: wk.key } });
    check("Better Auth's plugin verifies a key wapi issued", v?.valid === true, v);

    // Scopes: the plugin's "permissions" mean the same on both sides.
    const scoped = await auth.api.createApiKey({ body: { userId: ba.user.id, name: "ba-read",
      permissions: { messages: ["read"] } } });
    const sget = (p) => fetch(base + p, { headers: { "x-api-key": scoped.key } });
    const rm = await sget("/api/chats/123%40s.whatsapp.net/messages");
    const rc = await sget("/api/chats");
    const rw = await sget("/api/webhooks");
    const rcj = await rc.json();
    check("a key Better Auth scoped to messages:read reads messages at wapi", rm.status === 200, rm.status);
    check("... and nothing else (chats, webhooks: 403 forbidden)", rc.status === 403 && rw.status === 403 &&
      rcj?.error?.code === "forbidden", [rc.status, rw.status, rcj]);
    r = await post("/api/auth/api-key/create", { name: "wapi-send", permissions: { messages: ["send"] } }, { cookie });
    const wsk = await r.json();
    const okSend = await auth.api.verifyApiKey({ body: { key: wsk.key, permissions: { messages: ["send"] } } });
    const okRead = await auth.api.verifyApiKey({ body: { key: wsk.key, permissions: { messages: ["read"] } } });
    check("a key wapi scoped to messages:send carries that scope for Better Auth's plugin",
      r.status === 200 && okSend?.valid === true && okRead?.valid !== true, [r.status, okSend, okRead]);
    const list = await auth.api.listApiKeys({ headers: new Headers({ cookie }) });
    const names = (list.apiKeys || list).map((k) => k.name).sort().join(",");
    check("Better Auth lists the keys of the user", names === "ba-read,from-ba,from-wapi,wapi-send", names);
    r = await post("/api/auth/sign-out", {}, { cookie });
    check("wapi signs out", r.status === 200);
    const after = await auth.api.getSession({ headers: new Headers({ cookie }) });
    check("... and Better Auth sees the session gone", after === null, after);
  } catch (e) {
    check("live part ran without an exception", false, String(e?.stack || e));
  } finally {
    if (srv) {
      srv.kill("SIGTERM");
      await new Promise((r) => srv.once("exit", r));
    }
    await pool.end();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
}
