// The audit log: who did what, from where, newest first, a page at a time.
import { h, when } from "../dom.js";

function actor(a) {
  const who = a.actor.email || (a.actor.user_id ? a.actor.user_id : "the server");
  return [who, a.actor.api_key_id ? h("span", { class: "muted small" }, " (API key)") : null,
    a.actor.ip ? h("div", { class: "muted small" }, a.actor.ip) : null];
}

function detail(d) {
  const parts = Object.entries(d || {}).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  return parts.join(" · ");
}

export async function render({ api }) {
  const body = h("tbody", {});
  const more = h("button", { type: "button", class: "secondary" }, "Older");
  const error = h("div", { class: "alert error", role: "alert" });
  let cursor = null;

  async function page() {
    const data = await api(`/api/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    for (const a of data.data || []) {
      body.append(h("tr", { "data-action": a.action },
        h("td", { class: "small" }, when(a.at)), h("td", {}, h("code", {}, a.action)), h("td", {}, actor(a)),
        h("td", { class: "small" }, a.target || ""), h("td", { class: "small muted" }, detail(a.detail))));
    }
    cursor = data.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await page();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      more.disabled = false;
    }
  });
  await page();
  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Audit log"),
      h("p", {}, "Sign-ups, roles, invitations, API keys, webhooks, the WhatsApp session, and sign-in limits reached."))),
    h("div", { class: "card" },
      h("div", { class: "table-wrap", "data-testid": "audit" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "What"), h("th", {}, "Who"), h("th", {}, "On"),
          h("th", {}, "Detail"))), body)),
      more, error));
}
