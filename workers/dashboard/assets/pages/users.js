// Users: who has an account and their role (admin, member, viewer), roles
// changed and accounts removed (never the last admin), and invitations:
// single-use sign-up links that expire.
import { h, when } from "../dom.js";

const ROLES = [["admin", "Admin: everything"], ["member", "Member: read and send"], ["viewer", "Viewer: read only"]];

function roleSelect(id, value) {
  return h("select", { id, name: "role" }, ROLES.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

export async function render({ api, user, can }) {
  const write = can("users:write");
  const error = h("div", { class: "alert error", role: "alert" });
  const usersBox = h("div", { class: "table-wrap", "data-testid": "users" });
  const invitesBox = h("div", { class: "table-wrap", "data-testid": "invitations" });
  const reveal = h("div");

  async function act(fn) {
    error.textContent = "";
    try {
      await fn();
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async function loadUsers() {
    const data = await api("/api/auth/admin/list-users?limit=1000");
    usersBox.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Email"), h("th", {}, "Role"),
        h("th", { class: "opt" }, "Since"), h("th", {}, ""))),
      h("tbody", {}, (data.users || []).map((u) => {
        const sel = roleSelect(`role-${u.id}`, u.role);
        sel.disabled = !write;
        sel.setAttribute("aria-label", `Role of ${u.email}`);
        sel.addEventListener("change", () => act(async () => {
          sel.disabled = true;
          try {
            await api("/api/auth/admin/set-role", { method: "POST", body: { userId: u.id, role: sel.value } });
          } finally {
            await loadUsers();
          }
        }));
        const remove = h("button", { type: "button", class: "danger" }, "Remove");
        remove.hidden = !write || u.id === user.id;
        remove.addEventListener("click", () => act(async () => {
          if (!confirm(`Remove ${u.email}? Their sessions and API keys stop working.`)) return;
          await api("/api/auth/admin/remove-user", { method: "POST", body: { userId: u.id } });
          await loadUsers();
        }));
        return h("tr", { "data-user": u.email }, h("td", {}, u.name || "—"), h("td", {}, u.email), h("td", {}, sel),
          h("td", { class: "opt" }, when(u.createdAt)), h("td", {}, remove));
      }))));
  }

  async function loadInvites() {
    const data = await api("/api/invitations");
    const list = data.data || [];
    invitesBox.replaceChildren(list.length ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "For"), h("th", {}, "Role"), h("th", {}, "State"),
        h("th", { class: "opt" }, "Expires"), h("th", {}, ""))),
      h("tbody", {}, list.map((i) => {
        const revoke = h("button", { type: "button", class: "secondary" }, "Revoke");
        revoke.hidden = !write || i.state !== "pending";
        revoke.addEventListener("click", () => act(async () => {
          await api(`/api/invitations/${encodeURIComponent(i.id)}`, { method: "DELETE" });
          await loadInvites();
        }));
        return h("tr", {}, h("td", {}, i.email || h("span", { class: "muted" }, "anyone with the link")),
          h("td", {}, i.role), h("td", {}, h("span", { class: i.state === "pending" ? "badge" : "badge grey" }, i.state)),
          h("td", { class: "opt" }, when(i.expires_at)), h("td", {}, revoke));
      }))) : h("div", { class: "empty" }, "No invitations yet."));
  }

  const parts = [h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Users"),
    h("p", {}, "Admins do everything; members read and send messages; viewers only read.")))];

  if (write) {
    const email = h("input", { id: "inv-email", name: "email", type: "email", maxlength: 254, placeholder: "optional" });
    const role = roleSelect("inv-role", "member");
    const days = h("select", { id: "inv-days", name: "days" },
      h("option", { value: "1" }, "1 day"), h("option", { value: "7", selected: true }, "7 days"),
      h("option", { value: "30" }, "30 days"));
    const go = h("button", { type: "submit" }, "Create invitation");
    const form = h("form", { "data-testid": "invite-form" },
      h("div", { class: "row" },
        h("div", { class: "grow" }, h("label", { for: "inv-email" }, "Email (only this address may use it)"), email),
        h("div", { class: "fixed" }, h("label", { for: "inv-role" }, "Role"), role),
        h("div", { class: "fixed" }, h("label", { for: "inv-days" }, "Valid for"), days),
        h("div", {}, go)));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      go.disabled = true;
      reveal.replaceChildren();
      act(async () => {
        try {
          const body = { role: role.value, expires_in: Number(days.value) * 86400 };
          if (email.value.trim()) body.email = email.value.trim();
          const inv = await api("/api/invitations", { method: "POST", body });
          const box = h("input", { readonly: true, value: inv.url, "data-testid": "invite-link", "aria-label": "Invitation link" });
          reveal.replaceChildren(h("div", { class: "reveal", role: "status" },
            h("strong", {}, `Invitation for ${inv.email || "anyone with the link"} as ${inv.role}.`),
            h("div", { class: "small" }, "Send this link; it works once and is shown only now."),
            h("div", { class: "key" }, box)));
          email.value = "";
          await loadInvites();
        } finally {
          go.disabled = false;
        }
      });
    });
    parts.push(h("div", { class: "card" }, h("h2", {}, "Invite someone"), form, reveal));
  }
  parts.push(h("div", { class: "card" }, h("h2", {}, "Accounts"), usersBox, error));
  parts.push(h("div", { class: "card" }, h("h2", {}, "Invitations"), invitesBox));
  await Promise.all([loadUsers(), loadInvites()]);
  return h("div", {}, parts);
}
