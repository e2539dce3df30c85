// API keys: create (the key is shown once, optionally scoped to some of the
// permissions of one's role), list, revoke; for admins, everyone's keys.
import { h, when } from "../dom.js";

function scopeText(p) {
  if (!p) return h("span", { class: "muted" }, "everything the role allows");
  return Object.entries(p).map(([r, acts]) => acts.map((a) => `${r}:${a}`).join(", ")).join(", ");
}

export async function render({ api, perms, can }) {
  const listBox = h("div", { class: "table-wrap" });
  const error = h("div", { class: "alert error", role: "alert" });
  const reveal = h("div");

  async function load() {
    const data = await api("/api/auth/api-key/list");
    const keys = data.apiKeys || [];
    if (!keys.length) {
      listBox.replaceChildren(h("div", { class: "empty", "data-testid": "no-keys" }, "No API keys yet."));
      return;
    }
    listBox.replaceChildren(h("table", { "data-testid": "keys" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Key"), h("th", {}, "Can"),
        h("th", { class: "opt" }, "Created"),
        h("th", { class: "opt" }, "Last used"), h("th", { class: "opt" }, "Expires"), h("th", {}, ""))),
      h("tbody", {}, keys.map((k) => {
        const revoke = h("button", { class: "danger", type: "button", "data-testid": "revoke" }, "Revoke");
        revoke.addEventListener("click", async () => {
          if (!confirm(`Revoke the key "${k.name || k.start}"? Programs using it stop working.`)) return;
          revoke.disabled = true;
          error.textContent = "";
          try {
            await api("/api/auth/api-key/delete", { method: "POST", body: { keyId: k.id } });
            await load();
          } catch (e) {
            error.textContent = e.message;
            revoke.disabled = false;
          }
        });
        return h("tr", { "data-key-id": k.id },
          h("td", {}, k.name || h("span", { class: "muted" }, "unnamed")),
          h("td", {}, h("code", {}, `${k.start || ""}…`)),
          h("td", { class: "small", "data-testid": "key-scope" }, scopeText(k.permissions)),
          h("td", { class: "opt" }, when(k.createdAt)),
          h("td", { class: "opt" }, k.lastRequest ? when(k.lastRequest) : h("span", { class: "muted" }, "never")),
          h("td", { class: "opt" }, k.expiresAt ? when(k.expiresAt) : h("span", { class: "muted" }, "never")),
          h("td", {}, revoke));
      }))));
  }

  const name = h("input", { id: "key-name", name: "name", maxlength: 32, placeholder: "e.g. billing-service", required: true });
  const expiry = h("select", { id: "key-expiry", name: "expiresIn" },
    h("option", { value: "" }, "Never"), h("option", { value: "30" }, "30 days"),
    h("option", { value: "90" }, "90 days"), h("option", { value: "365" }, "1 year"));
  const create = h("button", { type: "submit" }, "Create key");
  // Scopes: none ticked means everything the role allows (now and as it changes).
  const boxes = perms.map((p) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: p, "data-scope": p }), " ", p));
  const form = h("form", {},
    h("div", { class: "row" },
      h("div", { class: "grow" }, h("label", { for: "key-name" }, "Name"), name),
      h("div", { class: "fixed" }, h("label", { for: "key-expiry" }, "Expires"), expiry),
      h("div", {}, create)),
    h("fieldset", { class: "scopes" }, h("legend", {}, "Only these permissions (none ticked: all of your role's)"),
      boxes));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    reveal.replaceChildren();
    create.disabled = true;
    try {
      const body = { name: name.value.trim() };
      if (expiry.value) body.expiresIn = Number(expiry.value) * 86400;
      const picked = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
      if (picked.length) {
        body.permissions = {};
        for (const p of picked) {
          const [r, a] = p.split(":");
          (body.permissions[r] = body.permissions[r] || []).push(a);
        }
      }
      const k = await api("/api/auth/api-key/create", { method: "POST", body });
      const box = h("input", { readonly: true, value: k.key, "data-testid": "new-key", "aria-label": "New API key" });
      const copy = h("button", { type: "button", class: "secondary" }, "Copy");
      copy.addEventListener("click", async () => {
        box.select();
        try {
          await navigator.clipboard.writeText(k.key);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy";
        }
      });
      reveal.replaceChildren(h("div", { class: "reveal", role: "status" },
        h("strong", {}, `Key "${k.name}" created.`),
        h("div", { class: "small" }, "Copy it now: it is shown only once. Send it as X-Api-Key or Authorization: Bearer."),
        h("div", { class: "key" }, box, copy)));
      name.value = "";
      for (const b of boxes) b.querySelector("input").checked = false;
      await load();
      if (all) await loadAll();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      create.disabled = false;
    }
  });

  // Admins: every user's keys, to find and revoke any.
  const all = can("keys:read") ? h("div", { class: "table-wrap", "data-testid": "all-keys" }) : null;
  async function loadAll() {
    const data = await api("/api/keys");
    const keys = data.data || [];
    all.replaceChildren(keys.length ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Owner"), h("th", {}, "Name"), h("th", {}, "Can"),
        h("th", { class: "opt" }, "Last used"), h("th", {}, ""))),
      h("tbody", {}, keys.map((k) => {
        const revoke = h("button", { class: "danger", type: "button" }, "Revoke");
        revoke.hidden = !can("keys:write");
        revoke.addEventListener("click", async () => {
          if (!confirm(`Revoke ${k.owner.email || "?"}'s key "${k.name || k.start}"?`)) return;
          revoke.disabled = true;
          try {
            await api(`/api/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
            await Promise.all([load(), loadAll()]);
          } catch (e) {
            error.textContent = e.message;
            revoke.disabled = false;
          }
        });
        return h("tr", {}, h("td", {}, k.owner.email || "—", " ", h("span", { class: "badge grey" }, k.owner.role || "")),
          h("td", {}, k.name || h("span", { class: "muted" }, "unnamed")), h("td", { class: "small" }, scopeText(k.permissions)),
          h("td", { class: "opt" }, k.lastRequest ? when(k.lastRequest) : h("span", { class: "muted" }, "never")),
          h("td", {}, revoke));
      }))) : h("div", { class: "empty" }, "No API keys."));
  }

  await load();
  if (all) await loadAll();
  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "API keys"),
      h("p", {}, "Keys let programs call the API on your behalf, never with more than your role allows."))),
    h("div", { class: "card" }, h("h2", {}, "New key"), form, error, reveal),
    h("div", { class: "card" }, h("h2", {}, "Your keys"), listBox),
    all ? h("div", { class: "card" }, h("h2", {}, "Everyone's keys"), all) : null);
}
