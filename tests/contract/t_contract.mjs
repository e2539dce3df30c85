#!/usr/bin/env node
// The contract's own tests: docs/openapi.json passes `redocly lint` (pinned,
// offline, no telemetry) with no warning; the validator rejects what breaks
// the document (a missing field, a wrong type, an undocumented status, an
// unknown event type); and the traffic of the integration suites that cover
// every route, the SSE stream and webhook deliveries of real events (t_access, t_session_api,
// t_messages_e2e) fits the document. Under `make test` (WAPI_CONTRACT_LOG set)
// those suites already record into the shared log, which scripts/test.sh
// validates after all suites; then they are not run again here.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadContract, ROOT, validateLog } from "./contract.mjs";

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`PASS: ${name}`);
  } else {
    failed++;
    console.log(`FAIL: ${name}${detail !== undefined ? ` (${String(detail).slice(0, 2000)})` : ""}`);
  }
}
const here = path.dirname(new URL(import.meta.url).pathname);

// ---- lint
const lint = spawnSync(path.join(here, "node_modules/.bin/redocly"),
  ["lint", "--config", path.join(here, "redocly.yaml"), "--format=summary", path.join(ROOT, "docs/openapi.json")],
  { encoding: "utf8", env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" } });
const lintOut = (lint.stdout || "") + (lint.stderr || "");
check("docs/openapi.json passes redocly lint with no error and no warning",
  lint.status === 0 && /valid/.test(lintOut) && !/warning|error/i.test(lintOut.replace(/validating|valid\b/g, "")), lintOut);

// ---- the validator can fail
const c = loadContract();
const sessionOk = { state: "connected", me: { jid: "1:2@s.whatsapp.net", lid: null, name: "x", platform: "android" }, since: "2026-01-01T00:00:00Z", last_error: null };
const json = "application/json; charset=utf-8";
const r = (method, p, status, body, type = json) => c.response({ method, path: p, status, type, body: JSON.stringify(body) });
check("a right GET /api/session answer passes", r("GET", "/api/session", 200, sessionOk) === null, r("GET", "/api/session", 200, sessionOk));
check("a GET /api/session answer without `state` is refused",
  /state/.test(r("GET", "/api/session", 200, { ...sessionOk, state: undefined }) || ""));
check("a page with `data` of the wrong type is refused", r("GET", "/api/chats", 200, { data: {}, next_cursor: null }) !== null);
check("an undocumented success status is refused", /not documented/.test(r("GET", "/api/me", 201, {}) || ""));
check("an error without the error body is refused", r("POST", "/api/messages", 400, { message: "x" }) !== null);
check("an error in the error body passes, with a field",
  r("POST", "/api/messages", 400, { error: { code: "invalid_field", message: "to is required", field: "to" } }) === null);
check("a 404 of the router's catch-all must be the error body too", r("GET", "/api/nope", 404, "no") !== null);
check("a message.received webhook body with its message passes", c.event({ id: "1", type: "message.received", at: "2026-01-01T00:00:00Z",
  data: { id: "3EB0", chat_jid: "1@s.whatsapp.net", from_me: false, type: "text", text: "hi", status: "received" } }) === null);
check("an event of an undocumented type is refused", /not in the document/.test(c.event({ id: "1", type: "message.nope", at: "x", data: {} }) || ""));
check("an event without its envelope's `at` is refused", c.event({ id: "1", type: "session.status", data: sessionOk }) !== null);

// ---- the suites' traffic
if (process.env.WAPI_CONTRACT_LOG) {
  console.log("(under make test: the suites' shared log is validated after all suites)");
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wapi-contract-"));
  const log = path.join(dir, "contract.jsonl");
  for (const suite of ["t_access.py", "t_session_api.py", "t_messages_e2e.py"]) {
    const run = spawnSync("python3", [path.join(ROOT, "tests/integration", suite)],
      { encoding: "utf8", env: { ...process.env, WAPI_CONTRACT_LOG: log }, timeout: 600000 });
    const fails = (run.stdout || "").split("\n").filter((l) => l.startsWith("FAIL"));
    check(`${suite} runs with its traffic recorded`, run.status === 0 && fails.length === 0,
      fails.join(" | ") || (run.stderr || "").slice(-500));
  }
  const { checked, problems } = validateLog(log, c);
  const kinds = fs.readFileSync(log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).kind);
  check(`the recorded traffic has responses, SSE events and webhook bodies (${checked} items)`,
    ["response", "sse", "webhook"].every((k) => kinds.includes(k)), [...new Set(kinds)].join(","));
  check("every recorded response, SSE event and webhook body fits docs/openapi.json", problems.length === 0, problems.join("\n"));
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
