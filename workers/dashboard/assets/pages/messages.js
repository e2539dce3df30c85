// Messages: the chat list, a chat's thread with each message's status, and a
// composer. New messages and status changes appear live (Server-Sent Events).
import { h, when } from "../dom.js";

const STATUS_CLASS = { queued: "badge grey", sent: "badge", delivered: "badge ok", read: "badge ok", failed: "badge bad",
  received: "badge grey" };

function preview(m) {
  if (!m) return "";
  if (m.revoked_at) return "(deleted)";
  if (m.type === "reaction") return `reacted ${m.reaction || ""}`;
  if (m.type === "unsupported") return `(${m.subtype || "unsupported message"})`;
  return m.text || "";
}

export async function render({ api, can }) {
  const canSend = can("messages:send"); // the composer and "Mark read" act on WhatsApp
  if (!document.querySelector("link[data-page=messages]"))
    document.head.append(h("link", { rel: "stylesheet", href: "/assets/pages/messages.css", "data-page": "messages" }));
  let current = null; // the open chat's JID
  const chatsBox = h("div", { class: "chats", "data-testid": "chats" });
  const threadBox = h("div", { class: "thread", "data-testid": "thread" });
  const error = h("div", { class: "alert error", role: "alert" });

  async function loadChats() {
    const data = await api("/api/chats?limit=100");
    const chats = data.data || [];
    if (!chats.length) {
      chatsBox.replaceChildren(h("div", { class: "empty", "data-testid": "no-chats" }, "No chats yet."));
      return;
    }
    chatsBox.replaceChildren(h("ul", { class: "chat-list" }, chats.map((c) => {
      const open = h("button", { type: "button", class: c.jid === current ? "chat active" : "chat", "data-jid": c.jid },
        h("strong", {}, c.name || c.jid.replace(/@.*$/, "")),
        c.unread_count ? h("span", { class: "badge" }, String(c.unread_count)) : null,
        h("div", { class: "small muted" }, preview(c.last_message)),
        h("div", { class: "small muted" }, when(c.last_message_at)));
      open.addEventListener("click", () => openChat(c.jid));
      return h("li", {}, open);
    })));
  }

  async function loadThread() {
    if (!current) {
      threadBox.replaceChildren(h("div", { class: "empty" }, "Pick a chat, or write to a number below."));
      return;
    }
    const data = await api(`/api/chats/${encodeURIComponent(current)}/messages?limit=50`);
    const msgs = (data.data || []).slice().reverse();
    // Read receipts are sent on request only: the contact sees them.
    const unread = msgs.filter((m) => !m.from_me && m.type !== "reaction" && !m.read_at).pop();
    let markRead = null;
    if (unread && canSend) {
      markRead = h("button", { type: "button", class: "secondary", "data-testid": "mark-read" }, "Mark read");
      markRead.addEventListener("click", async () => {
        error.textContent = "";
        markRead.disabled = true;
        try {
          await api(`/api/messages/${encodeURIComponent(unread.id)}/read`, { method: "POST" });
          await Promise.all([loadChats(), loadThread()]);
        } catch (e) {
          error.textContent = e.message;
          markRead.disabled = false;
        }
      });
    }
    threadBox.replaceChildren(h("div", { class: "thread-head" }, h("h2", {}, current), markRead),
      msgs.length ? h("ul", { class: "messages" }, msgs.map((m) =>
        h("li", { class: m.from_me ? "msg mine" : "msg", "data-message-id": m.id },
          h("div", {}, preview(m)),
          h("div", { class: "small muted" }, when(m.ts), " ",
            h("span", { class: STATUS_CLASS[m.status] || "badge grey", "data-status": m.status }, m.status),
            m.error ? h("span", { class: "small" }, ` ${m.error}`) : null))))
        : h("div", { class: "empty" }, "No messages in this chat yet."));
  }

  async function openChat(jid) {
    current = jid;
    to.value = jid;
    error.textContent = "";
    try {
      await Promise.all([loadChats(), loadThread()]);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  const to = h("input", { id: "msg-to", name: "to", required: true, maxlength: 128, placeholder: "+15551234567" });
  const text = h("textarea", { id: "msg-text", name: "text", required: true, maxlength: 4096, rows: 3 });
  const send = h("button", { type: "submit" }, "Send");
  const form = h("form", { "data-testid": "composer" },
    h("div", { class: "row" },
      h("div", { class: "fixed" }, h("label", { for: "msg-to" }, "To"), to),
      h("div", { class: "grow" }, h("label", { for: "msg-text" }, "Message"), text),
      h("div", {}, send)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    send.disabled = true;
    try {
      const m = await api("/api/messages", { method: "POST", body: { to: to.value.trim(), text: text.value } });
      text.value = "";
      await openChat(m.chat_jid);
    } catch (e) {
      error.textContent = e.field ? `${e.field}: ${e.message}` : e.message;
    } finally {
      send.disabled = false;
    }
  });

  await loadChats();
  await loadThread();

  // Live: any message event refreshes the list and the open thread.
  const es = new EventSource("/api/events");
  let pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        await Promise.all([loadChats(), loadThread()]);
      } catch {
        /* shown on the next action */
      }
    }, 150);
  };
  for (const t of ["message.received", "message.sent", "message.status", "message.reaction", "message.edited",
    "message.revoked"]) es.addEventListener(t, refresh);
  window.addEventListener("hashchange", () => es.close(), { once: true });

  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Messages"),
      h("p", {}, "Chats, sent and received messages."))),
    canSend ? h("div", { class: "card" }, form, error) : error,
    h("div", { class: "messages-layout" },
      h("div", { class: "card" }, h("h2", {}, "Chats"), chatsBox),
      h("div", { class: "card" }, threadBox)));
}
