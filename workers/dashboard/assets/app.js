// The wapi dashboard: sign-in and sign-up screens, then the app shell with
// its navigation. Each page is a module under pages/ exporting
// render(ctx) -> Element (ctx: { user, can(permission), go(path), api }).
// Pages and controls the signed-in role cannot use are not shown; the
// server refuses them anyway.
import { api, auth } from "./api.js";
import { h } from "./dom.js";

const PAGES = [
  { path: "#/session", title: "Session", module: "./pages/session.js", need: "session:read" },
  { path: "#/messages", title: "Messages", module: "./pages/messages.js", need: "messages:read" },
  { path: "#/webhooks", title: "Webhooks", module: "./pages/webhooks.js", need: "webhooks:read" },
  { path: "#/keys", title: "API keys", module: "./pages/keys.js" },
  { path: "#/users", title: "Users", module: "./pages/users.js", need: "users:read" },
  { path: "#/audit", title: "Audit log", module: "./pages/audit.js", need: "audit:read" },
  { path: "#/settings", title: "Settings", module: "./pages/settings.js" },
];

const root = document.getElementById("app");
root.className = "";
let current = { user: null, perms: new Set() };
const can = (p) => current.perms.has(p);
const visible = () => PAGES.filter((p) => !p.need || can(p.need));

function go(path) {
  if (location.hash === path) route();
  else location.hash = path;
}

function field(label, attrs) {
  const id = `f-${attrs.name}`;
  return [h("label", { for: id }, label), h("input", { id, ...attrs })];
}

function hashParam(name) {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q).get(name) || "";
}

function authScreen(mode, reg) {
  const signUp = mode === "sign-up";
  const invitation = signUp ? hashParam("invitation") : "";
  const needToken = signUp && reg && reg.setup_token_required;
  // Without an invitation, sign-up is for the first account (or "open").
  const closed = signUp && reg && !invitation && !reg.first_user && reg.policy !== "open";
  const error = h("div", { class: "alert error", role: "alert", "data-testid": "auth-error" });
  const submit = h("button", { type: "submit", class: "block" }, signUp ? "Create account" : "Sign in");
  const form = h("form", { novalidate: true },
    signUp ? field("Name", { name: "name", autocomplete: "name", maxlength: 100, required: true }) : null,
    field("Email", { name: "email", type: "email", autocomplete: "email", required: true, maxlength: 254 }),
    field("Password", {
      name: "password", type: "password", required: true, maxlength: 128,
      autocomplete: signUp ? "new-password" : "current-password", minlength: signUp ? 8 : undefined,
    }),
    signUp ? h("p", { class: "muted small" }, "At least 8 characters.") : null,
    needToken ? field("Setup token", { name: "setupToken", autocomplete: "off", required: true, maxlength: 128 }) : null,
    needToken ? h("p", { class: "muted small" },
      "Printed in the server's log at start (kubectl logs deploy/wapi | grep setup_token).") : null,
    error, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const f = new FormData(form);
    submit.disabled = true;
    try {
      const extra = {};
      if (invitation) extra.invitation = invitation;
      if (needToken) extra.setupToken = String(f.get("setupToken") || "").trim();
      const res = signUp
        ? await auth.signUp(String(f.get("name") || ""), String(f.get("email") || ""), String(f.get("password") || ""), extra)
        : await auth.signIn(String(f.get("email") || ""), String(f.get("password") || ""));
      current.user = res.user;
      current.perms = null;
      go("#/session");
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong email or password." : e.message;
      submit.disabled = false;
    }
  });
  const lead = !signUp ? "Welcome back."
    : invitation ? "You were invited: choose your password."
      : reg && reg.first_user ? "The first account becomes the administrator." : "";
  return h("div", { class: "auth" },
    h("div", { class: "card" },
      h("div", { class: "brand" }, h("span", { class: "logo" }, "w"), "wapi"),
      h("h1", {}, signUp ? "Create your account" : "Sign in"),
      lead ? h("p", { class: "muted" }, lead) : null,
      closed
        ? h("div", { class: "alert", "data-testid": "invite-only" },
          "Accounts here are by invitation: ask an administrator for an invitation link.")
        : form,
      h("div", { class: "switch" }, signUp
        ? ["Have an account? ", h("a", { href: "#/sign-in" }, "Sign in")]
        : ["New here? ", h("a", { href: "#/sign-up" }, "Create an account")])));
}

function shell(page, body) {
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    visible().map((p) => h("a", { href: p.path, class: p === page ? "active" : "", "aria-current": p === page ? "page" : null },
      h("span", { class: "dot" }), p.title)));
  const el = h("div", { class: "shell" });
  const signOut = h("button", { class: "secondary", type: "button", "data-testid": "sign-out" }, "Sign out");
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    try {
      await auth.signOut();
    } catch {
      /* the cookie is gone either way once the server answers */
    }
    current.user = null;
    current.perms = new Set();
    go("#/sign-in");
  });
  const menu = h("button", { class: "secondary menu", type: "button", "aria-label": "Menu" }, "☰");
  menu.addEventListener("click", () => el.classList.toggle("open"));
  nav.addEventListener("click", () => el.classList.remove("open"));
  const u = current.user;
  el.append(
    h("aside", { class: "side" },
      h("div", { class: "brand" }, h("span", { class: "logo" }, "w"), "wapi"),
      nav,
      h("div", { class: "foot" }, "WhatsApp HTTP API · ", h("a", { href: "/docs", "data-testid": "docs-link" }, "API reference"))),
    h("div", { class: "main" },
      h("header", { class: "top" },
        h("div", { class: "who" }, menu, h("strong", {}, page.title)),
        h("div", { class: "who" },
          h("span", { class: "email", "data-testid": "user-email" }, u.email),
          h("span", { class: u.role === "admin" ? "badge" : "badge grey", "data-testid": "user-role" }, u.role || "viewer"),
          signOut)),
      h("main", { class: "content", id: "content" }, body)));
  return el;
}

async function loadPerms() {
  try {
    const me = await api("/api/me");
    current.perms = new Set(me.permissions || []);
    current.user.role = me.role;
  } catch (e) {
    if (e.status === 401) current.user = null;
    current.perms = new Set();
  }
}

async function route() {
  const hash = location.hash || "#/session";
  if (!current.user) {
    try {
      const s = await auth.session();
      current.user = s ? s.user : null;
      current.perms = null;
    } catch {
      current.user = null;
    }
  }
  if (current.user && !current.perms) await loadPerms();
  const screen = hash.split("?")[0];
  if (screen === "#/sign-in" || screen === "#/sign-up") {
    if (current.user) return go("#/session");
    document.title = screen === "#/sign-up" ? "Create account · wapi" : "Sign in · wapi";
    let reg = null;
    if (screen === "#/sign-up") {
      try {
        reg = await api("/api/registration");
      } catch {
        reg = null;
      }
    }
    root.replaceChildren(authScreen(screen.slice(2), reg));
    return;
  }
  if (!current.user) return go("#/sign-in");
  const pages = visible();
  const page = pages.find((p) => p.path === screen) || pages[0];
  document.title = `${page.title} · wapi`;
  const ctx = { user: current.user, perms: [...current.perms], can, go, api };
  let body;
  try {
    const mod = await import(page.module);
    body = await mod.render(ctx);
  } catch (e) {
    if (e && e.status === 401) {
      current.user = null;
      return go("#/sign-in");
    }
    body = h("div", { class: "card" }, h("div", { class: "alert error", role: "alert" }, String(e && e.message || e)));
  }
  root.replaceChildren(shell(page, body));
}

window.addEventListener("hashchange", route);
route();
