// A tiny element builder: h("div", {class: "x", onclick: fn}, "text", child).
// Text always goes in as text, never as HTML.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// A "not built yet" page for parts of the dashboard still to come.
export function notBuilt(title, what) {
  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, title), h("p", {}, what))),
    h("div", { class: "card placeholder" },
      h("div", { class: "icon" }, "⏳"),
      h("h2", {}, "Not built yet"),
      h("p", { class: "muted" }, `The ${title} page is coming in a later version of wapi.`)));
}
