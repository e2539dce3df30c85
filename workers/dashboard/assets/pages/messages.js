// Messages: the chat list, a chat's thread with each message's status and
// media (pictures, stickers, audio, video inline; documents as downloads), and
// a composer for text or a file. New messages, status changes and finished
// downloads of received media appear live (Server-Sent Events).
import { h, when } from "../dom.js";

const STATUS_CLASS = { queued: "badge grey", sent: "badge", delivered: "badge ok", read: "badge ok", failed: "badge bad",
  received: "badge grey" };

const KINDS = ["image", "video", "audio", "voice", "document", "sticker"];
const KIND_LABEL = { image: "Photo", video: "Video", audio: "Audio", voice: "Voice message", document: "Document",
  sticker: "Sticker" };

// "@15551234567" in a text to a group mentions that person (as WhatsApp
// clients write it): the numbers, once each, for the API's mentions.
function mentionsIn(to, text) {
  if (!to.endsWith("@g.us")) return [];
  return [...new Set([...text.matchAll(/@(\d{7,15})\b/g)].map((x) => x[1]))];
}

export function humanSize(n) {
  const v = Number(n);
  if (n === null || n === undefined || !Number.isFinite(v) || v < 0) return "";
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let x = v / 1024;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x < 10 ? x.toFixed(1) : Math.round(x)} ${units[i]}`;
}

// The kind a picked file is sent as unless the user picks another: what the
// server takes for that type (image: JPEG, PNG, WebP; video: MP4, 3GP; audio:
// any audio), else a document, which may be any file.
export function kindFor(type) {
  const t = String(type || "").toLowerCase().split(";")[0].trim();
  if (t === "image/jpeg" || t === "image/png" || t === "image/webp") return "image";
  if (t === "video/mp4" || t === "video/3gpp") return "video";
  if (t.startsWith("audio/")) return "audio";
  return "document";
}

function preview(m) {
  if (!m) return "";
  if (m.revoked_at) return "This message was deleted";
  if (m.type === "reaction") return `reacted ${m.reaction || ""}`;
  if (m.type === "unsupported") return `(${m.subtype || "unsupported message"})`;
  if (m.type === "location" && m.location) {
    const l = m.location;
    return `${l.live ? "Live location" : "Location"}: ${l.name || `${l.latitude}, ${l.longitude}`}`;
  }
  if (m.type === "poll" && m.poll) return `Poll: ${m.poll.question}`;
  if (m.type === "contacts" && m.contacts) {
    const names = m.contacts.map((c) => c.display_name || "contact");
    return `Contact${names.length > 1 ? "s" : ""}: ${names.join(", ")}`;
  }
  if (m.media || KIND_LABEL[m.type]) {
    const a = m.media || {};
    const what = m.type === "document" && a.file_name ? a.file_name : KIND_LABEL[m.type] || m.type;
    return m.text ? `${what}: ${m.text}` : what;
  }
  return m.text || "";
}

// How a person or a chat is shown: its name when known, else the number
// (+digits), never a raw JID; a LID alone says the number is not known yet.
function displayName(jid, name) {
  if (name) return name;
  const user = String(jid || "").replace(/[:@].*$/, "");
  if (String(jid).endsWith("@s.whatsapp.net")) return `+${user}`;
  if (String(jid).endsWith("@lid")) return "Number not known yet";
  if (String(jid).endsWith("@g.us")) return "Group";
  return user || String(jid);
}

function errorText(e, what) {
  const tag = e.status ? ` (${[e.status, e.code].filter(Boolean).join(" ")})` : "";
  return `${what ? `${what}: ` : ""}${e.field ? `${e.field}: ` : ""}${e.message}${tag}`;
}

// A place as a card: its name and address, the coordinates, and a link to a
// map (nothing is loaded from elsewhere).
function locationView(l) {
  const lat = Number(l.latitude).toFixed(6), lon = Number(l.longitude).toFixed(6);
  const url = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
  return h("div", { class: "card-location", "data-testid": "location" },
    h("div", {}, `${l.live ? "Live location" : "Location"}${l.name ? `: ${l.name}` : ""}`),
    l.address ? h("div", { class: "small" }, l.address) : null,
    h("div", { class: "small muted", "data-testid": "coords" }, `${lat}, ${lon}`),
    h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "Open in a map"));
}

// A poll: its question and each option with how many chose it (and who),
// asked of the server; votes arriving refresh it (poll.vote).
function pollView(m, api) {
  const box = h("div", { class: "card-poll", "data-testid": "poll" },
    h("div", {}, `Poll: ${m.poll.question}`), h("div", { class: "small muted" }, m.poll.multiple ? "any number" : "one choice"));
  const list = h("ul", { class: "poll-options" }, m.poll.options.map((o) => h("li", {}, o)));
  box.append(list);
  api(`/api/messages/${encodeURIComponent(m.id)}/poll`).then((t) => {
    list.replaceChildren(...t.options.map((o) => h("li", { "data-option": o.name },
      h("span", {}, o.name), " ", h("span", { class: "badge", "data-testid": "poll-count" }, String(o.count)),
      o.voters.length ? h("span", { class: "small muted" }, ` ${o.voters.map((v) => displayName(v)).join(", ")}`) : null)));
  }).catch(() => { /* the options without counts */ });
  return box;
}

// Contact cards: each name and the first phone number of its vCard.
function contactsView(cards) {
  const phone = (v) => ((/^TEL[^:]*:(.*)$/im.exec(v || "") || [])[1] || "").trim();
  return h("ul", { class: "card-contacts", "data-testid": "contacts" }, cards.map((c) =>
    h("li", {}, c.display_name || "Contact", phone(c.vcard) ? h("span", { class: "small muted" }, ` ${phone(c.vcard)}`) : null)));
}

// A message's attachment: the file inline once it is stored, else its state.
function mediaView(m) {
  const a = m.media || {};
  const kind = a.kind || m.type;
  const label = KIND_LABEL[kind] || kind;
  const state = a.state || "pending";
  if (!a.id || state !== "stored") {
    const text = state === "pending" ? "downloading…"
      : state === "stored" ? "the file is no longer available" : state;
    return h("div", { class: `media-state ${state}`, "data-media-state": state },
      h("span", { class: "media-kind" }, label), a.file_name ? ` ${a.file_name}` : null, " — ",
      h("span", { class: "media-state-text" }, text),
      a.error ? h("div", { class: "small media-error" }, a.error) : null);
  }
  const src = `/api/media/${encodeURIComponent(a.id)}`;
  const alt = a.caption || a.file_name || label;
  const dims = a.width > 0 && a.height > 0 ? { width: a.width, height: a.height } : {};
  switch (kind) {
    case "image":
      return h("img", { class: "media-image", src, alt, ...dims, "data-media-id": a.id });
    case "sticker":
      return h("img", { class: "media-sticker", src, alt, width: 128, height: 128, "data-media-id": a.id });
    case "audio":
    case "voice":
      return h("div", { class: `media-audio ${kind}` },
        h("div", { class: "small muted" }, label, a.file_name && kind === "audio" ? ` · ${a.file_name}` : null),
        h("audio", { controls: true, preload: "metadata", src, "aria-label": alt, "data-media-id": a.id }));
    case "video":
      return h("video", { class: "media-video", controls: true, preload: "metadata", src, "aria-label": alt,
        ...dims, "data-media-id": a.id });
    default:
      return h("a", { class: "media-document", href: src, download: a.file_name || true, "data-media-id": a.id },
        h("span", { class: "media-doc-name" }, a.file_name || label), " ",
        h("span", { class: "small muted" }, [a.mimetype, humanSize(a.size)].filter(Boolean).join(" · ")));
  }
}

export async function render({ api, can }) {
  const canSend = can("messages:send"); // the composer and "Mark read" act on WhatsApp
  const canUpload = canSend && can("media:write");
  const canSeeMedia = can("media:read");
  if (!document.querySelector("link[data-page=messages]"))
    document.head.append(h("link", { rel: "stylesheet", href: "/assets/pages/messages.css", "data-page": "messages" }));
  let current = null; // the open chat's JID
  // The media elements shown, by message and file: a refresh of the thread
  // moves them into the new list instead of making new ones, so a playing
  // voice note or video goes on playing and pictures are not fetched again.
  let mediaNodes = new Map();
  const chatsBox = h("div", { class: "chats", "data-testid": "chats" });
  const threadBox = h("div", { class: "thread", "data-testid": "thread" });
  const error = h("div", { class: "alert error", role: "alert", "data-testid": "messages-error" });

  const chatNames = new Map(); // jid -> the name the chat list shows (a group's subject)
  let groupPanel = null; // the open group's details, kept across thread refreshes

  // A group's details, asked of WhatsApp: subject, description, settings and
  // who is in it with their role.
  async function showGroup(jid, box) {
    box.replaceChildren(h("div", { class: "small muted" }, "Asking WhatsApp…"));
    try {
      const g = await api(`/api/groups/${encodeURIComponent(jid)}`);
      const who = (p) => {
        const pn = p.pn || (p.jid.endsWith("@s.whatsapp.net") ? p.jid : "");
        return pn ? `+${pn.replace(/@.*$/, "")}` : p.jid.replace(/@.*$/, "");
      };
      // The invite link: WhatsApp gives it to admins only (403 not_admin otherwise).
      let invite = null;
      try {
        invite = (await api(`/api/groups/${encodeURIComponent(jid)}/invite`)).link;
      } catch (e) {
        invite = e.code === "not_admin" ? null : e;
      }
      const order = { superadmin: 0, admin: 1, member: 2 };
      const people = (g.participants || []).slice().sort((a, b) => order[a.role] - order[b.role] || who(a).localeCompare(who(b)));
      box.replaceChildren(...[
        h("h3", {}, g.subject || jid),
        g.description ? h("p", { class: "small" }, g.description) : null,
        h("div", { class: "small muted" }, [`${people.length} participant${people.length === 1 ? "" : "s"}`,
          g.announce ? "only admins send" : null, g.locked ? "only admins edit the info" : null,
          g.ephemeral_seconds ? `disappearing after ${Math.round(g.ephemeral_seconds / 86400)} d` : null]
          .filter(Boolean).join(" · ")),
        typeof invite === "string" ? h("div", { class: "small", "data-testid": "group-invite" }, "Invite link: ",
          h("a", { href: invite, target: "_blank", rel: "noopener noreferrer" }, invite))
          : invite ? h("div", { class: "small muted", "data-testid": "group-invite" }, errorText(invite, "Invite link"))
          : null,
        h("ul", { class: "group-people", "data-testid": "group-people" }, people.map((p) =>
          h("li", { "data-role": p.role }, who(p), p.role !== "member"
            ? h("span", { class: "badge" }, p.role === "superadmin" ? "creator" : "admin") : null)))].filter(Boolean));
    } catch (e) {
      box.replaceChildren(h("div", { role: "alert" }, errorText(e, "Group info")));
    }
  }

  // A person's details: name, number, LID, about text (asked of WhatsApp),
  // and blocking them.
  async function showContact(jid, box) {
    box.replaceChildren(h("div", { class: "small muted" }, "Asking WhatsApp…"));
    const enc = encodeURIComponent(jid);
    const [c, about, list] = await Promise.all([
      api(`/api/contacts/${enc}`).catch(() => ({ jid })),
      api(`/api/contacts/${enc}/about`).then((a) => a.about).catch((e) => (e.code === "about_hidden" ? null : e)),
      api("/api/blocklist").then((b) => b.data || []).catch(() => null)]);
    // WhatsApp lists a blocked person by number or by LID.
    const blocked = list === null ? null : list.includes(jid) || (!!c.lid && list.includes(c.lid));
    const rows = [
      h("h3", {}, displayName(jid, c.push_name || chatNames.get(jid))),
      jid.endsWith("@s.whatsapp.net") ? h("div", { class: "small", "data-testid": "contact-number" },
        `+${jid.replace(/@.*$/, "")}`) : null,
      c.lid ? h("div", { class: "small muted" }, `LID ${c.lid.replace(/@.*$/, "")}`) : null,
      typeof about === "string" ? h("p", { class: "small", "data-testid": "contact-about" }, about)
        : about ? h("div", { class: "small muted" }, errorText(about, "About")) : null];
    if (can("contacts:write") && blocked !== null) {
      const b = h("button", { type: "button", class: "secondary", "data-testid": "block" }, blocked ? "Unblock" : "Block");
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          await api(`/api/contacts/${enc}/block`, { method: blocked ? "DELETE" : "POST" });
          await showContact(jid, box);
        } catch (e) {
          box.append(h("div", { role: "alert" }, errorText(e, blocked ? "Unblock" : "Block")));
          b.disabled = false;
        }
      });
      rows.push(h("div", {}, b));
    }
    box.replaceChildren(...rows.filter(Boolean));
  }

  async function loadChats() {
    const data = await api("/api/chats?limit=100");
    const chats = data.data || [];
    for (const c of chats) if (c.name) chatNames.set(c.jid, c.name);
    if (!chats.length) {
      chatsBox.replaceChildren(h("div", { class: "empty", "data-testid": "no-chats" }, "No chats yet."));
      return;
    }
    // As on the phone: pinned chats first (latest pin on top), archived ones last; the rest as listed.
    const rank = (c) => (c.pinned ? 0 : c.archived ? 2 : 1);
    const order = chats.map((c, i) => [c, i]).sort(([a, i], [b, j]) =>
      rank(a) - rank(b) || (a.pinned && b.pinned ? String(b.pinned_at).localeCompare(String(a.pinned_at)) : 0) || i - j);
    chatsBox.replaceChildren(h("ul", { class: "chat-list" }, order.map(([c]) => {
      // The settings our phone keeps in step (app-state sync), as small grey marks.
      const marks = [c.pinned && "Pinned", c.muted && "Muted", c.archived && "Archived"].filter(Boolean);
      const open = h("button", { type: "button", class: c.jid === current ? "chat active" : "chat", "data-jid": c.jid },
        h("strong", { "data-testid": "chat-name" }, displayName(c.jid, c.name)),
        c.unread_count ? h("span", { class: "badge" }, String(c.unread_count))
          : c.marked_unread ? h("span", { class: "badge", "data-testid": "marked-unread", title: "Marked unread" }, "•") : null,
        ...marks.map((m) => h("span", { class: "badge grey", "data-testid": "chat-mark" }, m)),
        h("div", { class: "small muted" }, preview(c.last_message)),
        h("div", { class: "small muted" }, when(c.last_message_at)));
      open.addEventListener("click", () => openChat(c.jid));
      return h("li", {}, open);
    })));
  }

  async function loadThread() {
    if (!current) {
      threadBox.replaceChildren(h("div", { class: "empty", "data-testid": "no-thread" },
        canSend ? "Pick a chat on the left, or write to a number in the box below." : "Pick a chat on the left."));
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
    const nodes = new Map();
    const body = (m) => {
      if (m.type === "location" && m.location && !m.revoked_at) return locationView(m.location);
      if (m.type === "contacts" && m.contacts && !m.revoked_at) return contactsView(m.contacts);
      if (m.type === "poll" && m.poll && !m.revoked_at) return pollView(m, api);
      if (!m.media || m.revoked_at) return h("div", {}, preview(m));
      if (!canSeeMedia) return h("div", {}, preview(m));
      const key = `${m.id}|${m.media.id || ""}|${m.media.state || ""}`;
      const el = mediaNodes.get(key) || mediaView(m);
      nodes.set(key, el);
      return [h("div", { class: "media" }, el), m.text ? h("div", { class: "caption" }, m.text) : null];
    };
    // In a group, who wrote each message (the phone number when known).
    const group = current.endsWith("@g.us");
    const sender = (m) => {
      if (!group || m.from_me) return null;
      const who = m.sender_pn || m.sender_jid || "";
      return h("div", { class: "small sender", "data-testid": "sender" }, displayName(who, chatNames.get(who)));
    };
    const cls = (m) => [m.from_me ? "msg mine" : "msg",
      m.type === "sticker" && m.media && m.media.state === "stored" && m.media.id ? "sticker" : ""].join(" ").trim();
    let info = null;
    if (!group && (current.endsWith("@s.whatsapp.net") || current.endsWith("@lid"))) {
      info = h("button", { type: "button", class: "secondary", "data-testid": "contact-info" }, "Contact info");
      const jid = current;
      info.addEventListener("click", () => {
        groupPanel = groupPanel && groupPanel.dataset.jid === jid ? null
          : h("div", { class: "group-panel", "data-testid": "contact-panel", "data-jid": jid });
        if (groupPanel) {
          showContact(jid, groupPanel);
          threadBox.insertBefore(groupPanel, threadBox.children[1] || null);
        } else {
          threadBox.querySelector("[data-testid=contact-panel]")?.remove();
        }
      });
    }
    if (group) {
      info = h("button", { type: "button", class: "secondary", "data-testid": "group-info" }, "Group info");
      const jid = current;
      info.addEventListener("click", () => {
        groupPanel = groupPanel && groupPanel.dataset.jid === jid ? null
          : h("div", { class: "group-panel", "data-testid": "group-panel", "data-jid": jid });
        if (groupPanel) {
          showGroup(jid, groupPanel);
          threadBox.insertBefore(groupPanel, threadBox.children[1] || null);
        } else {
          threadBox.querySelector("[data-testid=group-panel]")?.remove();
        }
      });
    }
    if (groupPanel && groupPanel.dataset.jid !== current) groupPanel = null;
    threadBox.replaceChildren(...[h("div", { class: "thread-head" },
      h("h2", { title: current }, displayName(current, chatNames.get(current))), info, markRead),
      groupPanel,
      msgs.length ? h("ul", { class: "messages" }, msgs.map((m) =>
        h("li", { class: cls(m), "data-message-id": m.id, "data-type": m.type },
          sender(m),
          body(m),
          h("div", { class: "small muted" }, when(m.ts), " ",
            m.revoked_at ? h("span", { class: "badge grey", "data-testid": "revoked" }, "deleted") : null,
            m.edited_at && !m.revoked_at ? h("span", { class: "badge grey", "data-testid": "edited",
              title: `edited ${when(m.edited_at)}` }, "edited") : null, " ",
            h("span", { class: STATUS_CLASS[m.status] || "badge grey", "data-status": m.status }, m.status),
            m.error ? h("span", { class: "small" }, ` ${m.error}`) : null))))
        : h("div", { class: "empty" }, "No messages in this chat yet.")].filter(Boolean));
    mediaNodes = nodes;
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
  const textLabel = h("label", { for: "msg-text" }, "Message");
  const send = h("button", { type: "submit" }, "Send");
  // A file instead of a text: uploaded (POST /api/media), then sent as the
  // kind picked, the text box giving its optional caption.
  const file = h("input", { id: "msg-file", name: "file", type: "file", "aria-describedby": "msg-file-info" });
  const kind = h("select", { id: "msg-kind", name: "kind", disabled: true },
    KINDS.map((k) => h("option", { value: k }, KIND_LABEL[k])));
  const fileInfo = h("div", { id: "msg-file-info", class: "small muted", "data-testid": "file-info" });
  const clearFile = h("button", { type: "button", class: "secondary", hidden: true, "data-testid": "clear-file" },
    "Remove file");
  function fileChanged() {
    const f = file.files && file.files[0];
    kind.disabled = !f;
    clearFile.hidden = !f;
    text.required = !f;
    textLabel.textContent = f ? "Caption (optional)" : "Message";
    kind.value = f ? kindFor(f.type) : "image";
    fileInfo.textContent = f ? `${f.name} · ${f.type || "unknown type"} · ${humanSize(f.size)}` : "";
  }
  file.addEventListener("change", fileChanged);
  clearFile.addEventListener("click", () => {
    file.value = "";
    fileChanged();
  });
  const form = h("form", { "data-testid": "composer" },
    h("div", { class: "row" },
      h("div", { class: "fixed" }, h("label", { for: "msg-to" }, "To"), to),
      h("div", { class: "grow" }, textLabel, text),
      h("div", {}, send)),
    canUpload ? h("div", { class: "row attach" },
      h("div", { class: "grow" }, h("label", { for: "msg-file" }, "File"), file, fileInfo),
      h("div", { class: "fixed" }, h("label", { for: "msg-kind" }, "Send as"), kind),
      h("div", {}, clearFile)) : null);
  async function sendFile(f) {
    const fd = new FormData();
    fd.append("kind", kind.value);
    fd.append("file", f, f.name);
    let up;
    try {
      up = await api("/api/media", { method: "POST", body: fd });
    } catch (e) {
      throw new Error(errorText(e, "Upload failed"));
    }
    const body = { to: to.value.trim(), kind: kind.value, media: { id: up.id } };
    if (text.value.trim()) body.caption = text.value;
    const mentions = mentionsIn(body.to, text.value);
    if (mentions.length) body.mentions = mentions;
    if (kind.value === "document" && f.name) body.file_name = f.name; // the API takes it for documents only
    try {
      return await api("/api/messages", { method: "POST", body });
    } catch (e) {
      // The upload is of no use without its message: not left behind.
      api(`/api/media/${encodeURIComponent(up.id)}`, { method: "DELETE" }).catch(() => {});
      throw new Error(errorText(e, "Sending failed"));
    }
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    send.disabled = true;
    const f = canUpload && file.files && file.files[0];
    try {
      let m;
      if (f) {
        m = await sendFile(f);
        file.value = "";
        fileChanged();
      } else {
        try {
          const body = { to: to.value.trim(), text: text.value };
          const mentions = mentionsIn(body.to, body.text);
          if (mentions.length) body.mentions = mentions;
          m = await api("/api/messages", { method: "POST", body });
        } catch (e) {
          throw new Error(errorText(e));
        }
      }
      text.value = "";
      await openChat(m.chat_jid);
    } catch (e) {
      error.textContent = e.message;
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
    "message.revoked", "message.media_stored", "message.media_failed", "chat.merged", "group.created",
    "group.updated", "message.updated", "poll.vote"]) es.addEventListener(t, refresh);
  // A chat merged into the number's while open: follow it there.
  es.addEventListener("chat.merged", (ev) => {
    try {
      const d = JSON.parse(ev.data).data;
      if (current === d.merged) openChat(d.jid);
    } catch {
      /* not ours to fix */
    }
  });
  window.addEventListener("hashchange", () => es.close(), { once: true });

  // A new chat: nothing open, the number typed in the composer's To.
  const newChat = h("button", { type: "button", class: "secondary", "data-testid": "new-chat" }, "New chat");
  newChat.addEventListener("click", async () => {
    current = null;
    groupPanel = null;
    to.value = "";
    error.textContent = "";
    to.focus(); // at once, while the click is the user's: the lists refresh below it
    await Promise.all([loadChats(), loadThread()]).catch((e) => { error.textContent = e.message; });
  });

  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Messages"),
      h("p", {}, "Chats, sent and received messages."))),
    h("div", { class: "messages-layout" },
      h("div", { class: "card" }, h("div", { class: "chats-head" }, h("h2", {}, "Chats"), canSend ? newChat : null),
        chatsBox),
      h("div", { class: "card thread-card" }, threadBox, canSend ? form : null, error)));
}
