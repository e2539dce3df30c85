// Settings: the account. (People join through invitations on the Users
// page.) More settings are not built yet.
import { h, when } from "../dom.js";

export function render({ user }) {
  const account = h("div", { class: "card" }, h("h2", {}, "Account"),
    h("dl", { class: "facts" },
      h("dt", {}, "Name"), h("dd", {}, user.name || "—"),
      h("dt", {}, "Email"), h("dd", {}, user.email),
      h("dt", {}, "Role"), h("dd", {}, user.role || "viewer"),
      h("dt", {}, "Member since"), h("dd", {}, when(user.createdAt))));
  const parts = [h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Settings"))), account];
  parts.push(h("div", { class: "card placeholder" }, h("h2", {}, "More settings"), h("p", { class: "muted" }, "Not built yet.")));
  return h("div", {}, parts);
}
