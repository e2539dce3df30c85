// Settings: the account; for admins, adding a user (how people join when
// registration is by invitation). More settings are not built yet.
import { h, when } from "../dom.js";

export function render({ user, api }) {
  const account = h("div", { class: "card" }, h("h2", {}, "Account"),
    h("dl", { class: "facts" },
      h("dt", {}, "Name"), h("dd", {}, user.name || "—"),
      h("dt", {}, "Email"), h("dd", {}, user.email),
      h("dt", {}, "Role"), h("dd", {}, user.role || "user"),
      h("dt", {}, "Member since"), h("dd", {}, when(user.createdAt))));
  const parts = [h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Settings"))), account];
  if (user.role === "admin") {
    const msg = h("div", { class: "alert", role: "status" });
    const add = h("button", { type: "submit" }, "Add user");
    const form = h("form", {},
      h("div", { class: "row" },
        h("div", { class: "grow" }, h("label", { for: "u-name" }, "Name"), h("input", { id: "u-name", name: "name", maxlength: 100 })),
        h("div", { class: "grow" }, h("label", { for: "u-email" }, "Email"), h("input", { id: "u-email", name: "email", type: "email", maxlength: 254 }))),
      h("div", { class: "row" },
        h("div", { class: "grow" }, h("label", { for: "u-pass" }, "Initial password"),
          h("input", { id: "u-pass", name: "password", type: "password", autocomplete: "new-password", maxlength: 128 })),
        h("div", { class: "fixed" }, h("label", { for: "u-role" }, "Role"),
          h("select", { id: "u-role", name: "role" }, h("option", { value: "user" }, "User"), h("option", { value: "admin" }, "Admin"))),
        h("div", {}, add)),
      msg);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      msg.className = "alert";
      msg.textContent = "";
      add.disabled = true;
      try {
        const r = await api("/api/auth/admin/create-user", {
          method: "POST",
          body: { name: String(f.get("name") || ""), email: String(f.get("email") || ""), password: String(f.get("password") || ""), role: String(f.get("role")) },
        });
        msg.className = "alert ok";
        msg.textContent = `${r.user.email} can now sign in.`;
        form.reset();
      } catch (e) {
        msg.className = "alert error";
        msg.textContent = e.message;
      } finally {
        add.disabled = false;
      }
    });
    parts.push(h("div", { class: "card" }, h("h2", {}, "Add a user"),
      h("p", { class: "muted small" }, "Admins add people here when sign-up is by invitation or closed."), form));
  }
  parts.push(h("div", { class: "card placeholder" }, h("h2", {}, "More settings"), h("p", { class: "muted" }, "Not built yet.")));
  return h("div", {}, parts);
}
