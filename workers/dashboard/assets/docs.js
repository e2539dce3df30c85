// The API reference (/docs): renders /api/openapi.json — operations by tag,
// the event payloads of its `webhooks` section, a search over both, and
// "try it", which calls the API with the browser's session cookie.
const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k.nodeType ? k : String(k));
  return el;
}

let doc = null;

// A schema with its $refs replaced (to a small depth: schemas do not nest deeply).
function resolve(s, depth = 0) {
  if (!s || typeof s !== "object" || depth > 6) return s;
  if (Array.isArray(s)) return s.map((x) => resolve(x, depth + 1));
  if (s.$ref) {
    const name = s.$ref.split("/").pop();
    const group = s.$ref.includes("/responses/") ? doc.components.responses : doc.components.schemas;
    return resolve(group[name], depth + 1);
  }
  const out = {};
  for (const [k, v] of Object.entries(s)) out[k] = resolve(v, depth + 1);
  return out;
}

const pretty = (v) => JSON.stringify(v, null, 2);

function paramsTable(params) {
  if (!params || !params.length) return null;
  return h("table", {},
    h("tr", {}, h("th", {}, "parameter"), h("th", {}, "in"), h("th", {}, "description")),
    params.map((p) => h("tr", {}, h("td", { class: "path" }, p.name + (p.required ? " *" : "")), h("td", {}, p.in),
      h("td", {}, p.description || ""))));
}

function responses(rs) {
  return Object.entries(rs || {}).map(([code, r0]) => {
    const r = resolve(r0);
    const c = r.content && Object.entries(r.content)[0];
    return h("div", {},
      h("p", {}, h("strong", {}, code), " ", r.description || "", c ? ` (${c[0]})` : ""),
      c && c[1].schema && c[0].includes("json") ? h("details", {}, h("summary", {}, "schema"), h("pre", {}, pretty(resolve(c[1].schema)))) : null);
  });
}

function tryIt(method, path, o) {
  const box = h("div", { class: "try" }, h("strong", {}, "Try it"), " (as the signed-in user)");
  const inputs = [];
  for (const p of o.parameters || []) {
    if (p.in !== "path" && p.in !== "query") continue;
    const input = h("input", { "data-param": p.name, "data-in": p.in, placeholder: p.description || "" });
    inputs.push(input);
    box.append(h("label", {}, `${p.name} (${p.in})`, input));
  }
  let bodyArea = null;
  const json = o.requestBody && o.requestBody.content && o.requestBody.content["application/json"];
  if (json) {
    bodyArea = h("textarea", { rows: "5", "data-testid": "try-body" });
    bodyArea.value = json.example ? pretty(json.example) : "{}";
    box.append(h("label", {}, "JSON body", bodyArea));
  }
  const btn = h("button", { type: "button", "data-testid": "try-send" }, `Send ${method}`);
  const out = h("pre", { class: "hidden", "data-testid": "try-result" });
  btn.addEventListener("click", async () => {
    let url = path;
    const q = new URLSearchParams();
    for (const i of inputs) {
      if (i.dataset.in === "path") url = url.replace(`{${i.dataset.param}}`, encodeURIComponent(i.value));
      else if (i.value !== "") q.set(i.dataset.param, i.value);
    }
    if ([...q].length) url += "?" + q;
    const opts = { method, credentials: "same-origin", headers: {} };
    if (bodyArea) {
      opts.headers["content-type"] = "application/json";
      opts.body = bodyArea.value;
    }
    out.classList.remove("hidden");
    out.textContent = `${method} ${url} …`;
    try {
      const res = await fetch(url, opts);
      const type = res.headers.get("content-type") || "";
      let text = await res.text();
      if (type.includes("json")) {
        try {
          text = pretty(JSON.parse(text));
        } catch {
          /* shown as it came */
        }
      } else if (text.length > 4000) {
        text = text.slice(0, 4000) + "\n…";
      }
      out.textContent = `${res.status} ${res.statusText}\n${type}\n\n${text}`;
    } catch (e) {
      out.textContent = `request failed: ${e.message}`;
    }
  });
  box.append(btn, out);
  return box;
}

function card(id, method, path, o, search, isEvent) {
  const body = h("div", { class: "op-body" },
    o.description ? h("p", {}, o.description) : null,
    paramsTable(o.parameters));
  if (o.requestBody) {
    for (const [type, c] of Object.entries(o.requestBody.content || {})) {
      body.append(h("p", {}, h("strong", {}, isEvent ? "Payload" : "Request body"), ` (${type})`));
      if (c.example) body.append(h("pre", {}, pretty(c.example)));
      if (c.schema) body.append(h("details", {}, h("summary", {}, "schema"), h("pre", {}, pretty(resolve(c.schema)))));
    }
  }
  if (!isEvent) {
    body.append(h("p", {}, h("strong", {}, "Responses")), ...responses(o.responses));
    if (method !== "HEAD" && !path.includes("/events")) body.append(tryIt(method, path, o));
  }
  const el = h("details", { class: "op-card", id, "data-search": search.toLowerCase(), "data-testid": "op" },
    h("summary", {},
      h("span", { class: "method " + (isEvent ? "m-event" : "m-" + method.toLowerCase()) }, isEvent ? "EVENT" : method),
      h("span", { class: "path" }, path),
      h("span", { class: "summary" }, o.summary || ""),
      h("span", { class: "perm" }, o["x-permission"] && !isEvent ? o["x-permission"] : "")),
    body);
  return el;
}

function render() {
  const ref = $("#ref");
  const toc = $("#toc");
  ref.textContent = "";
  toc.textContent = "";
  const info = h("section", {}, h("h2", {}, `${doc.info.title} ${doc.info.version}`), h("p", {}, doc.info.description || ""));
  ref.append(info);
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [m, o] of Object.entries(item)) {
      const tag = (o.tags && o.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([m.toUpperCase(), path, o]);
    }
  }
  const events = Object.entries(doc.webhooks || {}).map(([name, w]) => ["EVENT", name, w.post]);
  byTag.set("Events", (byTag.get("Events") || []).concat(events.map((e) => [...e, true])));
  let n = 0;
  for (const [tag, ops] of byTag) {
    if (!ops.length) continue;
    const sec = h("section", { class: "tag", "data-tag": tag }, h("h2", {}, tag));
    toc.append(h("a", { class: "tag", href: "#tag-" + tag.replace(/\W/g, "") }, tag));
    sec.id = "tag-" + tag.replace(/\W/g, "");
    for (const [method, path, o, isEvent] of ops) {
      const id = "op-" + n++;
      const search = [tag, method, path, o.summary, o.description, o.operationId, o["x-permission"]].join(" ");
      sec.append(card(id, method, path, o, search, !!isEvent));
      toc.append(h("a", { class: "op", href: "#" + id, "data-for": id }, (isEvent ? "" : method + " ") + path));
    }
    ref.append(sec);
  }
  ref.append(h("p", { class: "empty hidden", id: "nothing" }, "Nothing matches."));
}

function filter() {
  const words = $("#search").value.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const sec of document.querySelectorAll("section.tag")) {
    let any = false;
    for (const c of sec.querySelectorAll(".op-card")) {
      const ok = words.every((w) => c.dataset.search.includes(w));
      c.classList.toggle("hidden", !ok);
      document.querySelector(`#toc a[data-for="${c.id}"]`).classList.toggle("hidden", !ok);
      any ||= ok;
      shown += ok ? 1 : 0;
    }
    sec.classList.toggle("hidden", !any);
  }
  $("#nothing").classList.toggle("hidden", shown > 0);
}

async function who() {
  try {
    const r = await fetch("/api/auth/get-session", { credentials: "same-origin" });
    const s = r.ok ? await r.json() : null;
    $("#who").textContent = s && s.user ? `signed in as ${s.user.email}` : "not signed in: try it answers 401";
  } catch {
    $("#who").textContent = "";
  }
}

async function main() {
  try {
    const r = await fetch("/api/openapi.json");
    doc = await r.json();
  } catch (e) {
    $("#ref").textContent = `cannot load /api/openapi.json: ${e.message}`;
    return;
  }
  render();
  $("#search").addEventListener("input", filter);
  who();
}

main();
