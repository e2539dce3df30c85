// The wapi dashboard: sign-in and sign-up screens, then the app shell with
// its navigation. Each page is a module under pages/ exporting
// render(ctx) -> Element (ctx: { user, go(path) }).
import { api, auth } from "./api.js";
import { h } from "./dom.js";

const PAGES = [
  { path: "#/session", title: "Session", module: "./pages/session.js" },
  { path: "#/messages", title: "Messages", module: "./pages/messages.js" },
  { path: "#/webhooks", title: "Webhooks", module: "./pages/webhooks.js" },
  { path: "#/keys", title: "API keys", module: "./pages/keys.js" },
  { path: "#/settings", title: "Settings", module: "./pages/settings.js" },
];

const root = document.getElementById("app");
root.className = "";
let current = { user: null };

function go(path) {
  if (location.hash === path) route();
  else location.hash = path;
}

function field(label, attrs) {
  const id = `f-${attrs.name}`;
  return [h("label", { for: id }, label), h("input", { id, ...attrs })];
}

function authScreen(mode) {
  const signUp = mode === "sign-up";
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
    error, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const f = new FormData(form);
    submit.disabled = true;
    try {
      const res = signUp
        ? await auth.signUp(String(f.get("name") || ""), String(f.get("email") || ""), String(f.get("password") || ""))
        : await auth.signIn(String(f.get("email") || ""), String(f.get("password") || ""));
      current.user = res.user;
      go("#/session");
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong email or password." : e.message;
      submit.disabled = false;
    }
  });
  return h("div", { class: "auth" },
    h("div", { class: "card" },
      h("div", { class: "brand" }, h("span", { class: "logo" }, "w"), "wapi"),
      h("h1", {}, signUp ? "Create your account" : "Sign in"),
      h("p", { class: "muted" }, signUp ? "The first account becomes the administrator." : "Welcome back."),
      form,
      h("div", { class: "switch" }, signUp
        ? ["Have an account? ", h("a", { href: "#/sign-in" }, "Sign in")]
        : ["New here? ", h("a", { href: "#/sign-up" }, "Create an account")])));
}

function shell(page, body) {
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    PAGES.map((p) => h("a", { href: p.path, class: p === page ? "active" : "", "aria-current": p === page ? "page" : null },
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
      h("div", { class: "foot" }, "WhatsApp HTTP API")),
    h("div", { class: "main" },
      h("header", { class: "top" },
        h("div", { class: "who" }, menu, h("strong", {}, page.title)),
        h("div", { class: "who" },
          h("span", { class: "email", "data-testid": "user-email" }, u.email),
          h("span", { class: u.role === "admin" ? "badge" : "badge grey" }, u.role || "user"),
          signOut)),
      h("main", { class: "content", id: "content" }, body)));
  return el;
}

async function route() {
  const hash = location.hash || "#/session";
  if (!current.user) {
    try {
      const s = await auth.session();
      current.user = s ? s.user : null;
    } catch {
      current.user = null;
    }
  }
  if (hash === "#/sign-in" || hash === "#/sign-up") {
    if (current.user) return go("#/session");
    document.title = hash === "#/sign-up" ? "Create account · wapi" : "Sign in · wapi";
    root.replaceChildren(authScreen(hash.slice(2)));
    return;
  }
  if (!current.user) return go("#/sign-in");
  const page = PAGES.find((p) => p.path === hash) || PAGES[0];
  document.title = `${page.title} · wapi`;
  const ctx = { user: current.user, go, api };
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
