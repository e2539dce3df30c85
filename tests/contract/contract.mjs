// Validation of what the server says against docs/openapi.json: responses
// (by method, path template and status), SSE events and webhook bodies (by
// their type, against the document's webhooks section).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const DOC_PATH = path.join(ROOT, "docs/openapi.json");

const ptr = (...parts) => parts.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

export function loadContract(doc = JSON.parse(fs.readFileSync(DOC_PATH, "utf8"))) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, "openapi");
  const cache = new Map();
  const validator = (pointer) => {
    if (!cache.has(pointer)) cache.set(pointer, ajv.getSchema(`openapi#/${pointer}`));
    return cache.get(pointer);
  };
  const routes = Object.keys(doc.paths).map((t) => ({
    template: t,
    re: new RegExp("^" + t.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+") + "$"),
  }));
  // A concrete path wins over a template ("/api/media" before "/api/media/{id}").
  const match = (p) => {
    const exact = routes.find((r) => r.template === p);
    return exact ? exact.template : (routes.find((r) => r.re.test(p)) || {}).template;
  };
  const errorSchema = validator(ptr("components", "schemas", "Error"));

  const check = (fn, value) => (fn(value) ? null : ajv.errorsText(fn.errors, { dataVar: "body" }));

  /** null when the response fits the document, else what is wrong. */
  function response({ method, path: full, status, type, body }) {
    const p = full.split("?")[0];
    const m = method === "HEAD" ? "get" : method.toLowerCase();
    const template = match(p);
    const isJson = (type || "").startsWith("application/json");
    const parse = () => {
      try {
        return { v: JSON.parse(body) };
      } catch (e) {
        return { err: `not JSON: ${e.message}` };
      }
    };
    const op = template && doc.paths[template][m];
    if (!op) {
      // Outside the document: the router's catch-alls, its 404/405 and h2o's
      // own errors; whatever JSON they say must be the error body.
      if (status >= 400 && isJson && body) {
        const j = parse();
        return j.err || check(errorSchema, j.v);
      }
      return null;
    }
    if (status === 304 || method === "HEAD") return null;
    let rptr = ptr("paths", template, m, "responses", status);
    let r = op.responses[String(status)];
    if (r && r.$ref) {
      rptr = r.$ref.slice(2);
      r = rptr.split("/").reduce((o, k) => o[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
    }
    if (!r) {
      if (status >= 400) {
        if (!isJson) return `status ${status} with ${type}, not the JSON error body`;
        const j = parse();
        return j.err || check(errorSchema, j.v);
      }
      return `status ${status} is not documented for ${m.toUpperCase()} ${template}`;
    }
    if (!r.content) return body ? `status ${status} documents no body, got ${String(body).length} bytes` : null;
    const media = Object.keys(r.content).find((t) => (type || "").startsWith(t)) ||
      (r.content["application/octet-stream"] ? "application/octet-stream" : null);
    if (!media) return `content-type ${type} is not among ${Object.keys(r.content).join(", ")}`;
    if (!media.includes("json") || !r.content[media].schema) return null;
    const j = parse();
    if (j.err) return j.err;
    return check(validator(ptr(...rptr.split("/").map((k) => k.replace(/~1/g, "/").replace(/~0/g, "~")), "content", media, "schema")), j.v);
  }

  /** An event envelope (webhook body, SSE data) against its type's entry. */
  function event(envelope) {
    let e;
    try {
      e = typeof envelope === "string" ? JSON.parse(envelope) : envelope;
    } catch (x) {
      return `not JSON: ${x.message}`;
    }
    const t = e && e.type;
    const name = doc.webhooks[t] ? t : typeof t === "string" && t.startsWith("audit.") ? "audit.*" : null;
    if (!name) return `event type ${JSON.stringify(t)} is not in the document's webhooks`;
    return check(validator(ptr("webhooks", name, "post", "requestBody", "content", "application/json", "schema")), e);
  }

  return { doc, response, event, match };
}

/** Validates a JSONL log (harness.contract_log): {checked, problems: [..]}. */
export function validateLog(file, contract = loadContract()) {
  const problems = [];
  let checked = 0;
  const seen = new Set();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    let why = null;
    let what;
    if (r.kind === "response") {
      what = `${r.method} ${r.path} -> ${r.status}`;
      why = contract.response(r);
    } else if (r.kind === "sse") {
      what = `SSE ${r.event}`;
      why = contract.event(r.data);
      if (!why) {
        const t = JSON.parse(r.data).type;
        if (t !== r.event) why = `SSE event name ${r.event} but envelope type ${t}`;
      }
    } else if (r.kind === "webhook") {
      what = "webhook body";
      why = contract.event(r.body);
    } else continue;
    checked++;
    if (why) {
      const key = `${what}: ${why}`.replace(/[0-9a-f]{8,}|\d+/g, "N");
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`[${r.suite}] ${what}: ${why}`);
      }
    }
  }
  return { checked, problems };
}
