// The WhatsApp session: state, the linked number, a live QR code (or a
// pairing code for a phone number), start / stop / log out. Updates arrive
// over Server-Sent Events; nothing needs a reload.
import { h, when } from "../dom.js";

const LABELS = {
  stopped: "Stopped", connecting: "Connecting…", qr: "Waiting for a scan", pairing: "Linking…",
  connected: "Connected", reconnecting: "Reconnecting…", logged_out: "Logged out", banned: "Banned",
  outdated: "Update needed", locked: "In use elsewhere",
};
const TONE = { connected: "ok", qr: "warn", pairing: "warn", connecting: "warn", reconnecting: "warn" };

function phoneOf(jid) {
  const user = (jid || "").split("@")[0].split(":")[0];
  return user ? `+${user}` : "";
}

function styles() {
  if (document.querySelector("link[data-page=session]")) return;
  document.head.append(h("link", { rel: "stylesheet", href: "/assets/pages/session.css", "data-page": "session" }));
}

export async function render({ api, can }) {
  styles();
  // Linking, stopping and logging out are for admins (session:control); the
  // state is for everyone.
  const control = can("session:control");
  const badge = h("span", { class: "badge", "data-testid": "session-state" });
  const since = h("span", { class: "muted small" });
  const errorLine = h("div", { class: "alert error", role: "alert", "data-testid": "session-error" });
  const who = h("div", { "data-testid": "session-me" });
  const actions = h("div", { class: "row" });
  const qrImg = h("img", { alt: "QR code to link WhatsApp", "data-testid": "qr", class: "qr", width: 264, height: 264 });
  const codeOut = h("div", { class: "pair-code", "data-testid": "pair-code", "aria-live": "polite" });
  const phone = h("input", { id: "pair-phone", name: "phone", inputmode: "tel", placeholder: "+1 555 123 4567",
    autocomplete: "tel" });
  const codeBtn = h("button", { type: "submit", class: "secondary" }, "Get a pairing code");
  const codeForm = h("form", {},
    h("label", { for: "pair-phone" }, "Or link with a phone number"),
    h("div", { class: "row" }, h("div", { class: "grow" }, phone), h("div", {}, codeBtn)), codeOut);
  const qrCard = h("div", { class: "card", hidden: true },
    h("h2", {}, "Link a device"),
    h("p", { class: "small" }, "On your phone open WhatsApp → Settings → Linked devices → Link a device, and scan:"),
    h("div", { class: "qr-box" }, qrImg), codeForm);

  let current = null;

  function button(label, cls, onClick, testid) {
    const b = h("button", { type: "button", class: cls, "data-testid": testid }, label);
    b.addEventListener("click", async () => {
      b.disabled = true;
      errorLine.textContent = "";
      try {
        await onClick();
      } catch (e) {
        errorLine.textContent = e.message;
      } finally {
        b.disabled = false;
      }
    });
    return b;
  }

  function show(s) {
    current = s;
    badge.textContent = LABELS[s.state] || s.state;
    badge.className = `badge ${TONE[s.state] || (s.state === "stopped" ? "" : "bad")}`;
    badge.dataset.state = s.state;
    since.textContent = s.since ? `since ${when(s.since)}` : "";
    errorLine.textContent = s.last_error && s.state !== "connected" ? s.last_error : "";
    who.replaceChildren(s.me
      ? h("div", {}, h("strong", {}, phoneOf(s.me.jid)), " ", h("span", { class: "muted small" },
        [s.me.platform && `linked to ${s.me.platform}`].filter(Boolean).join(" ")))
      : h("span", { class: "muted" }, "No WhatsApp account linked."));
    const running = ["connecting", "qr", "pairing", "connected", "reconnecting"].includes(s.state);
    const btns = [];
    if (!control) {
      actions.replaceChildren();
      qrCard.hidden = true;
      return;
    }
    if (!running) btns.push(button("Start", "", () => api("/api/session/start", { method: "POST", body: {} }), "start"));
    if (running) btns.push(button("Stop", "secondary", () => api("/api/session/stop", { method: "POST", body: {} }), "stop"));
    if (s.me) {
      btns.push(button("Log out", "danger", async () => {
        if (!confirm("Log out? The phone unlinks this device and you will need to scan a QR code again.")) return;
        await api("/api/session/logout", { method: "POST", body: {} });
      }, "logout"));
    }
    actions.replaceChildren(...btns);
    qrCard.hidden = s.state !== "qr";
    if (s.state !== "qr") codeOut.textContent = "";
  }

  function refreshQr(version) {
    qrImg.src = `/api/session/qr?format=svg&v=${encodeURIComponent(version)}`;
  }

  codeForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errorLine.textContent = "";
    codeOut.textContent = "";
    codeBtn.disabled = true;
    try {
      const r = await api("/api/session/pairing-code", { method: "POST", body: { phone: phone.value } });
      codeOut.replaceChildren(h("span", { class: "small" }, "Type this code on the phone (Link with phone number instead):"),
        h("code", { class: "big" }, r.code));
    } catch (e) {
      errorLine.textContent = e.message;
    } finally {
      codeBtn.disabled = false;
    }
  });

  show(await api("/api/session"));
  if (control && current.state === "qr") refreshQr(Date.now());

  // Live updates; closed when the page is left.
  const es = new EventSource("/api/events");
  es.addEventListener("session.status", (e) => {
    try {
      show(JSON.parse(e.data).data);
    } catch {
      /* a malformed event changes nothing */
    }
  });
  es.addEventListener("session.qr", (e) => {
    try {
      const ev = JSON.parse(e.data);
      if (control && ev.data.qr) refreshQr(ev.id);
    } catch {
      /* ignore */
    }
  });
  window.addEventListener("hashchange", () => es.close(), { once: true });

  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Session"),
      h("p", {}, "The WhatsApp account this server speaks for."))),
    h("div", { class: "card" },
      h("div", { class: "row spread" }, h("div", {}, badge, " ", since), actions),
      who, errorLine,
      control ? null : h("p", { class: "muted small", "data-testid": "session-readonly" },
        "Only an administrator can link, stop or log out the WhatsApp session.")),
    qrCard);
}
