// API keys: create (the key is shown once), list, revoke.
import { h, when } from "../dom.js";

export async function render({ api }) {
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
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Key"), h("th", { class: "opt" }, "Created"),
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
  const form = h("form", {},
    h("div", { class: "row" },
      h("div", { class: "grow" }, h("label", { for: "key-name" }, "Name"), name),
      h("div", { class: "fixed" }, h("label", { for: "key-expiry" }, "Expires"), expiry),
      h("div", {}, create)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    reveal.replaceChildren();
    create.disabled = true;
    try {
      const body = { name: name.value.trim() };
      if (expiry.value) body.expiresIn = Number(expiry.value) * 86400;
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
      await load();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      create.disabled = false;
    }
  });

  await load();
  return h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "API keys"),
      h("p", {}, "Keys let programs call the API on your behalf."))),
    h("div", { class: "card" }, h("h2", {}, "New key"), form, error, reveal),
    h("div", { class: "card" }, h("h2", {}, "Your keys"), listBox));
}
