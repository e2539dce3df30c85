// Webhooks: create (the secret is shown once), enable/disable, change
// events, delete, and each webhook's delivery log with redeliver.
import { h, when } from "../dom.js";

const TYPES = ["message.received", "message.sent", "message.status", "message.reaction", "message.edited",
  "message.revoked"];

function stateBadge(state) {
  const cls = state === "delivered" ? "badge ok" : state === "pending" ? "badge warn" : "badge bad";
  return h("span", { class: cls, "data-state": state }, state);
}

export async function render({ api }) {
  if (!document.querySelector("link[data-page=messages]"))
    document.head.append(h("link", { rel: "stylesheet", href: "/assets/pages/messages.css", "data-page": "messages" }));
  const listBox = h("div", { class: "table-wrap" });
  const logBox = h("div");
  const error = h("div", { class: "alert error", role: "alert" });
  const reveal = h("div");

  async function showLog(w) {
    error.textContent = "";
    let data;
    try {
      data = await api(`/api/webhooks/${encodeURIComponent(w.id)}/deliveries?limit=50`);
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const rows = data.data || [];
    logBox.replaceChildren(h("div", { class: "card", "data-testid": "deliveries" },
      h("div", { class: "row spread" }, h("h2", {}, "Deliveries"), h("code", { class: "small" }, w.url)),
      rows.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "State"), h("th", {}, "Attempts"),
          h("th", { class: "opt" }, "Last answer"), h("th", { class: "opt" }, "When"), h("th", {}, ""))),
        h("tbody", {}, rows.map((d) => {
          const again = h("button", { type: "button", class: "secondary", "data-testid": "redeliver" }, "Redeliver");
          again.addEventListener("click", async () => {
            again.disabled = true;
            try {
              await api(`/api/webhooks/${encodeURIComponent(w.id)}/deliveries/${d.id}/redeliver`, { method: "POST" });
              await showLog(w);
            } catch (e) {
              error.textContent = e.message;
              again.disabled = false;
            }
          });
          return h("tr", { "data-delivery-id": d.id },
            h("td", {}, d.event_type, h("div", { class: "small muted" }, d.event_id)),
            h("td", {}, stateBadge(d.state)),
            h("td", {}, String(d.attempts)),
            h("td", { class: "opt" }, d.last_status ? `HTTP ${d.last_status}` : (d.last_error || "—")),
            h("td", { class: "opt" }, when(d.delivered_at || d.last_attempt_at || d.created_at)),
            h("td", {}, again));
        }))))
        : h("div", { class: "empty", "data-testid": "no-deliveries" }, "No deliveries yet.")));
  }

  async function load() {
    const data = await api("/api/webhooks");
    const hooks = data.data || [];
    if (!hooks.length) {
      listBox.replaceChildren(h("div", { class: "empty", "data-testid": "no-webhooks" }, "No webhooks yet."));
      return;
    }
    listBox.replaceChildren(h("table", { "data-testid": "webhooks" },
      h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", { class: "opt" }, "Events"), h("th", {}, "State"),
        h("th", {}, ""))),
      h("tbody", {}, hooks.map((w) => {
        const log = h("button", { type: "button", class: "secondary", "data-testid": "log" }, "Deliveries");
        log.addEventListener("click", () => showLog(w));
        const toggle = h("button", { type: "button", class: "secondary", "data-testid": "toggle" },
          w.enabled ? "Disable" : "Enable");
        toggle.addEventListener("click", async () => {
          toggle.disabled = true;
          try {
            await api(`/api/webhooks/${encodeURIComponent(w.id)}`, { method: "PATCH", body: { enabled: !w.enabled } });
            await load();
          } catch (e) {
            error.textContent = e.message;
            toggle.disabled = false;
          }
        });
        const del = h("button", { type: "button", class: "danger", "data-testid": "delete" }, "Delete");
        del.addEventListener("click", async () => {
          if (!confirm(`Delete the webhook to ${w.url}? Its delivery log goes with it.`)) return;
          del.disabled = true;
          try {
            await api(`/api/webhooks/${encodeURIComponent(w.id)}`, { method: "DELETE" });
            logBox.replaceChildren();
            await load();
          } catch (e) {
            error.textContent = e.message;
            del.disabled = false;
          }
        });
        return h("tr", { "data-webhook-id": w.id },
          h("td", {}, h("code", {}, w.url)),
          h("td", { class: "opt" }, w.events.join(", ")),
          h("td", {}, h("span", { class: w.enabled ? "badge ok" : "badge grey" }, w.enabled ? "enabled" : "disabled")),
          h("td", {}, h("div", { class: "row" }, log, toggle, del)));
      }))));
  }

  const url = h("input", { id: "wh-url", name: "url", type: "url", maxlength: 2047, required: true,
    placeholder: "https://example.com/wapi-events" });
  const all = h("input", { type: "checkbox", id: "wh-all", value: "*", checked: true });
  const boxes = TYPES.map((t) => h("input", { type: "checkbox", id: `wh-${t}`, value: t }));
  for (const b of boxes) b.addEventListener("change", () => { if (b.checked) all.checked = false; });
  all.addEventListener("change", () => { if (all.checked) for (const b of boxes) b.checked = false; });
  const create = h("button", { type: "submit" }, "Create webhook");
  const form = h("form", {},
    h("div", { class: "row" }, h("div", { class: "grow" }, h("label", { for: "wh-url" }, "URL"), url)),
    h("fieldset", { class: "events" }, h("legend", {}, "Events"),
      h("label", { for: "wh-all" }, all, " all"),
      TYPES.map((t, i) => h("label", { for: `wh-${t}` }, boxes[i], ` ${t}`))),
    h("div", { class: "row" }, create));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    reveal.replaceChildren();
    const events = all.checked ? ["*"] : boxes.filter((b) => b.checked).map((b) => b.value);
    if (!events.length) {
      error.textContent = "Pick at least one event.";
      return;
    }
    create.disabled = true;
    try {
      const w = await api("/api/webhooks", { method: "POST", body: { url: url.value.trim(), events } });
      const box = h("input", { readonly: true, value: w.secret, "data-testid": "new-secret", "aria-label": "Signing secret" });
      reveal.replaceChildren(h("div", { class: "reveal", role: "status" },
        h("strong", {}, "Webhook created."),
        h("div", { class: "small" }, "Copy the signing secret now: it is shown only once. Verify deliveries with any Standard Webhooks library."),
        h("div", { class: "key" }, box)));
      url.value = "";
      await load();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      create.disabled = false;
    }
  });

  await load();
  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Webhooks"),
      h("p", {}, "Signed deliveries of events to your endpoints."))),
    h("div", { class: "card" }, h("h2", {}, "New webhook"), form, error, reveal),
    h("div", { class: "card" }, h("h2", {}, "Your webhooks"), listBox),
    logBox);
}
