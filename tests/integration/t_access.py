#!/usr/bin/env python3
"""Access control: closed by default (the first account is the admin, then
invitations only; in production the first sign-up needs the setup token
from the log), roles enforced on every route of the router table (a matrix
of routes x principals, against a policy written down here independently of
the C tables), scoped API keys that never outlive their owner's role, the
audit log (table, GET /api/audit, audit.* events on SSE and webhooks, one
JSON log line each), and the sign-in limits per IPv6 /64 and per account."""
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from accounts import Client, sign_in, sign_up  # noqa: E402
from harness import ROOT, Server, check, contract_log, done, fresh_database, wait  # noqa: E402

DB = None


def sql(q):
    out = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def code_of(js):
    return ((js or {}).get("error") or {}).get("code") if isinstance(js, dict) else None


# ---- the policy, as the issue states it (not read from the server's tables)

READ = ["session:read", "messages:read", "chats:read", "contacts:read", "media:read", "groups:read", "events:read"]
ROLES = {
    "viewer": set(READ),
    "member": set(READ) | {"messages:send", "media:write", "groups:write", "contacts:write"},
}
ROLES["admin"] = ROLES["member"] | {"session:control", "webhooks:read", "webhooks:write", "users:read",
                                    "users:write", "keys:read", "keys:write", "audit:read"}

ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
GH = ["GET", "HEAD"]
# path -> [(methods, permission, session_only)]
POLICY = {
    "/": [(GH, "public", False)],
    "/healthz": [(GH, "public", False)],
    "/readyz": [(GH, "public", False)],
    "/metrics": [(GH, "public", False)],
    "/assets/*": [(GH, "public", False)],
    "/docs": [(GH, "public", False)],
    "/api/auth/sign-up/email": [(["POST"], "public", False)],
    "/api/auth/sign-in/email": [(["POST"], "public", False)],
    "/api/auth/sign-out": [(["POST"], "public", False)],
    "/api/auth/get-session": [(GH, "public", False)],
    "/api/auth/admin/create-user": [(["POST"], "users:write", True)],
    "/api/auth/admin/set-role": [(["POST"], "users:write", True)],
    "/api/auth/admin/remove-user": [(["POST"], "users:write", False)],
    "/api/auth/admin/list-users": [(GH, "users:read", False)],
    "/api/auth/api-key/create": [(["POST"], "signed-in", True)],
    "/api/auth/api-key/list": [(GH, "signed-in", False)],
    "/api/auth/api-key/get": [(GH, "signed-in", False)],
    "/api/auth/api-key/delete": [(["POST"], "signed-in", True)],
    "/api/auth/*": [(ALL, "public", False)],
    "/api/registration": [(GH, "public", False)],
    "/api/openapi.json": [(GH, "public", False)],
    "/api/me": [(GH, "signed-in", False)],
    "/api/invitations": [(["GET"], "users:read", False), (["POST"], "users:write", True)],
    "/api/invitations/{id}": [(["DELETE"], "users:write", False)],
    "/api/keys": [(["GET"], "keys:read", False)],
    "/api/keys/{id}": [(["DELETE"], "keys:write", False)],
    "/api/audit": [(["GET"], "audit:read", False)],
    "/api/session": [(["GET"], "session:read", False)],
    "/api/session/start": [(["POST"], "session:control", False)],
    "/api/session/stop": [(["POST"], "session:control", False)],
    "/api/session/logout": [(["POST"], "session:control", False)],
    "/api/session/qr": [(["GET"], "session:control", False)],
    "/api/session/pairing-code": [(["POST"], "session:control", False)],
    "/api/events": [(["GET"], "events:read", False)],
    "/api/messages": [(["POST"], "messages:send", False)],
    "/api/messages/{id}": [(["GET"], "messages:read", False), (["PATCH", "DELETE"], "messages:send", False)],
    "/api/messages/{id}/read": [(["POST"], "messages:send", False)],
    "/api/messages/{id}/reaction": [(["POST"], "messages:send", False)],
    "/api/messages/{id}/forward": [(["POST"], "messages:send", False)],
    "/api/messages/{id}/receipts": [(["GET"], "messages:read", False)],
    "/api/messages/{id}/poll": [(["GET"], "messages:read", False)],
    "/api/messages/{id}/vote": [(["POST"], "messages:send", False)],
    "/api/messages/{id}/media/download": [(["POST"], "media:write", False)],
    "/api/chats": [(["GET"], "chats:read", False)],
    "/api/chats/{jid}/messages": [(["GET"], "messages:read", False)],
    "/api/chats/{jid}/presence": [(["POST"], "messages:send", False)],
    "/api/chats/{jid}/disappearing": [(["PUT"], "messages:send", False)],
    "/api/chats/{jid}/archive": [(["POST", "DELETE"], "messages:send", False)],
    "/api/chats/{jid}/pin": [(["POST", "DELETE"], "messages:send", False)],
    "/api/chats/{jid}/mute": [(["POST", "DELETE"], "messages:send", False)],
    "/api/chats/{jid}/read": [(["POST", "DELETE"], "messages:send", False)],
    "/api/chats/{jid}": [(["GET"], "chats:read", False)],
    "/api/chats/{jid}/history": [(["POST"], "messages:read", False)],
    "/api/history": [(["GET"], "chats:read", False)],
    "/api/labels": [(["GET"], "chats:read", False)],
    "/api/groups": [(["GET"], "groups:read", False), (["POST"], "groups:write", False)],
    "/api/groups/{jid}/participants": [(["POST"], "groups:write", False)],
    "/api/groups/{jid}/leave": [(["POST"], "groups:write", False)],
    "/api/groups/{jid}": [(["GET"], "groups:read", False), (["PATCH"], "groups:write", False)],
    "/api/groups/{jid}/invite": [(["GET"], "groups:read", False), (["DELETE"], "groups:write", False)],
    "/api/groups/join": [(["POST"], "groups:write", False)],
    "/api/groups/{jid}/picture": [(["GET"], "groups:read", False), (["PUT", "DELETE"], "groups:write", False)],
    "/api/contacts": [(["GET"], "contacts:read", False)],
    "/api/contacts/{jid}": [(["GET"], "contacts:read", False)],
    "/api/contacts/{jid}/presence/subscribe": [(["POST"], "contacts:read", False)],
    "/api/contacts/check": [(["POST"], "contacts:read", False)],
    "/api/contacts/{jid}/picture": [(["GET"], "contacts:read", False)],
    "/api/contacts/{jid}/about": [(["GET"], "contacts:read", False)],
    "/api/contacts/{jid}/business": [(["GET"], "contacts:read", False)],
    "/api/contacts/{jid}/block": [(["POST", "DELETE"], "contacts:write", False)],
    "/api/blocklist": [(["GET"], "contacts:read", False)],
    "/api/profile/about": [(["PUT"], "session:control", False)],
    "/api/profile/name": [(["PUT"], "session:control", False)],
    "/api/profile/picture": [(["PUT", "DELETE"], "session:control", False)],
    "/api/lids/{lid}": [(["GET"], "contacts:read", False)],
    "/api/lids/pn/{phone}": [(["GET"], "contacts:read", False)],
    "/api/media": [(["POST"], "media:write", False), (["GET"], "media:read", False)],
    "/api/media/{id}": [(GH, "media:read", False), (["DELETE"], "media:write", False)],
    "/api/media/{id}/url": [(["GET"], "media:read", False)],
    "/api/webhooks": [(["GET"], "webhooks:read", False), (["POST"], "webhooks:write", False)],
    "/api/webhooks/{id}": [(["GET"], "webhooks:read", False), (["PATCH"], "webhooks:write", False),
                           (["DELETE"], "webhooks:write", False)],
    "/api/webhooks/{id}/deliveries": [(["GET"], "webhooks:read", False)],
    "/api/webhooks/{id}/deliveries/{delivery}/redeliver": [(["POST"], "webhooks:write", False)],
    "/api/*": [(ALL, "signed-in", False)],
}


# Where a signed link (?expires=&sig=) stands for credentials: the bytes of one
# media file, nothing else.
SIGNED_LINK = {("GET", "/api/media/{id}"), ("HEAD", "/api/media/{id}")}


def policy_rows():
    return {(m, p): (perm, so) for p, rules in POLICY.items() for ms, perm, so in rules for m in ms}


def router_rows():
    out = subprocess.run([os.path.join(ROOT, "build/wapi-worker"), "--routes"], capture_output=True, text=True)
    rows, signed = {}, set()
    for line in out.stdout.splitlines():
        r = json.loads(line)
        rows[(r["method"], r["path"])] = (r["permission"], r["session_only"])
        if r.get("signed_link"):
            signed.add((r["method"], r["path"]))
    return out.returncode, rows, signed


def concrete(path):
    return (path.replace("{id}", "x1").replace("{jid}", "123%40s.whatsapp.net").replace("{delivery}", "1")
            .replace("*", "x"))


def probe(srv, method, path, headers, body=None):
    """Status and JSON of one request; an event stream is not read past its headers."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        h = dict(headers)
        data = None
        if method in ("POST", "PUT", "PATCH"):
            data = json.dumps(body if body is not None else {}).encode()
            h["content-type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        if (r.getheader("content-type") or "").startswith("text/event-stream"):
            contract_log("response", method=method, path=path, status=r.status, type=r.getheader("content-type"))
            return r.status, None
        raw = r.read()
        contract_log("response", method=method, path=path, status=r.status, type=r.getheader("content-type"), body=raw)
        try:
            return r.status, json.loads(raw) if raw and method != "HEAD" else None
        except ValueError:
            return r.status, None
    finally:
        c.close()


def fingerprint():
    return sql('''SELECT (SELECT string_agg(id || ':' || coalesce(role, '-'), ',' ORDER BY id) FROM "user"),
                         (SELECT count(*) FROM apikey), (SELECT count(*) FROM wa_webhooks),
                         (SELECT count(*) FROM wapi_invitations), (SELECT count(*) FROM wapi_audit),
                         (SELECT count(*) FROM wa_messages), (SELECT count(*) FROM session)''')


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.got.append(json.loads(body))
        contract_log("webhook", body=body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def sse_reader(srv, client, out, stop):
    """Collects (event, data) of an event stream until stop is set."""
    h = {"x-forwarded-for": client.ip, "cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=1)
    c.request("GET", "/api/events", headers=h)
    r = c.getresponse()
    out.append(("status", r.status))
    ev = None
    while not stop.is_set():
        try:
            line = r.fp.readline()
        except OSError:
            continue
        if not line:
            out.append(("closed", None))
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: ") and ev:
            out.append((ev, json.loads(line[6:])))
            contract_log("sse", event=ev, data=line[6:])
            ev = None
    c.close()


def main():
    global DB
    DB = fresh_database("wapi_access")
    rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    srv = Server(workers=2, pg_url=DB, env={"WAPI_WHATSAPP_URL": "ws://127.0.0.1:9/ws/chat",
                                              "WAPI_WEBHOOKS_ALLOW_PRIVATE": "true"})
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()

    # ---- registration with the defaults: invite
    st, _, body = srv.get("/api/registration")
    js = json.loads(body)
    check("GET /api/registration: invite by default, no account yet", st == 200 and js == {
        "policy": "invite", "first_user": True, "setup_token_required": False}, js)
    admin = Client(srv)
    st, _, js = sign_up(admin, "ann@example.com", name="Ann")
    check("default config: the first sign-up becomes the admin", st == 200 and js["user"]["role"] == "admin", js)
    before = fingerprint()
    st, _, js = sign_up(Client(srv), "stranger@example.com", name="Stranger")
    check("default config: a second sign-up is refused, 403 with a clear code",
          st == 403 and js.get("code") == "EMAIL_PASSWORD_SIGN_UP_DISABLED" and
          code_of(js) == "EMAIL_PASSWORD_SIGN_UP_DISABLED", (st, js))
    check("... and changes nothing", fingerprint() == before)

    def invite(body, who=admin):
        return who.call("POST", "/api/invitations", body)

    st, _, inv = invite({"role": "member"})
    check("an admin makes an invitation: 201, a link with a single-use token, the role",
          st == 201 and inv["role"] == "member" and inv["state"] == "pending" and
          inv["url"] == f"http://127.0.0.1:{srv.port}/#/sign-up?invitation={inv['token']}" and
          len(inv["token"]) >= 32, inv)
    check("only the token's hash is stored", sql(f"SELECT count(*) FROM wapi_invitations WHERE token_hash = "
                                                 f"'{inv['token']}'") == "0")
    member = Client(srv)
    st, _, js = sign_up(member, "mia@example.com", name="Mia", invitation=inv["token"])
    check("the invitation lets its holder sign up, with its role", st == 200 and js["user"]["role"] == "member", js)
    before = fingerprint()
    st, _, js = sign_up(Client(srv), "mallory@example.com", name="M", invitation=inv["token"])
    check("an invitation works once: the second use is 403 INVALID_INVITATION and changes nothing",
          st == 403 and js["code"] == "INVALID_INVITATION" and fingerprint() == before, js)
    st, _, vinv = invite({"role": "viewer", "email": "Vic@Example.com", "expires_in": 3600})
    st, _, js = sign_up(Client(srv), "other@example.com", name="O", invitation=vinv["token"])
    check("an invitation made out to an address refuses another (403 INVITATION_EMAIL_MISMATCH)",
          st == 403 and js["code"] == "INVITATION_EMAIL_MISMATCH" and js["error"]["field"] == "email", js)
    viewer = Client(srv)
    st, _, js = sign_up(viewer, "vic@example.com", name="Vic", invitation=vinv["token"])
    check("... and lets that address in (as a viewer)", st == 200 and js["user"]["role"] == "viewer", js)
    _, _, exp = invite({})
    sql(f"UPDATE wapi_invitations SET expires_at = now() - interval '1 second' WHERE id = '{exp['id']}'")
    st, _, js = sign_up(Client(srv), "late@example.com", invitation=exp["token"])
    check("an expired invitation is refused", st == 403 and js["code"] == "INVALID_INVITATION", js)
    _, _, rev = invite({})
    st, _, _ = admin.call("DELETE", f"/api/invitations/{rev['id']}")
    st2, _, js = sign_up(Client(srv), "revoked@example.com", invitation=rev["token"])
    check("a revoked invitation is refused (DELETE 204, then 403)", st == 204 and st2 == 403, (st, st2, js))
    st, _, js = invite({"role": "owner"})
    check("an invitation with an unknown role: 400 naming role", st == 400 and js["error"]["field"] == "role", js)
    st, _, js = admin.call("GET", "/api/invitations")
    states = sorted(i["state"] for i in js["data"])
    check("GET /api/invitations lists them with their state, never a token",
          states == ["expired", "revoked", "used", "used"] and not any("token" in i for i in js["data"]), js)
    st, _, js = sign_up(Client(srv), "x@example.com", invitation="not-a-real-token-at-all")
    check("a made-up invitation token: 403", st == 403 and js["code"] == "INVALID_INVITATION", js)

    # ---- roles: what a member and a viewer cannot do, and nothing changes
    before = fingerprint()
    st, _, js = member.call("POST", "/api/session/logout", {})
    check("a member cannot log the session out: 403 forbidden", st == 403 and code_of(js) == "forbidden" and
          "session:control" in js["error"]["message"], js)
    st, _, js = member.call("POST", "/api/webhooks", {"url": "https://example.com/h", "events": ["*"]})
    check("a member cannot create a webhook: 403", st == 403 and code_of(js) == "forbidden", js)
    st, _, js = member.call("POST", "/api/auth/admin/create-user", {"email": "z@example.com", "password": "pass-word-1",
                                                                     "name": "Z", "role": "admin"})
    check("a member cannot create a user: 403", st == 403, js)
    st, _, js = member.call("POST", "/api/invitations", {"role": "admin"})
    check("a member cannot invite: 403", st == 403, js)
    st, _, js = viewer.call("POST", "/api/messages", {"to": "123456789", "text": "hi"})
    check("a viewer cannot send: 403 forbidden naming messages:send", st == 403 and "messages:send" in
          js["error"]["message"], js)
    st, _, js = viewer.call("POST", f"/api/chats/{'123%40s.whatsapp.net'}/presence", {"state": "typing"})
    check("a viewer cannot send typing", st == 403, js)
    check("... none of these changed anything", fingerprint() == before)
    st, _, js = viewer.call("GET", "/api/chats")
    check("a viewer reads chats", st == 200 and "data" in js, js)
    st, _, js = member.call("POST", "/api/messages", {"to": "123456789", "text": "hi"})
    check("a member sends (202)", st == 202, js)
    st, _, js = member.call("GET", "/api/me")
    check("GET /api/me names the role and the permissions", js["role"] == "member" and
          set(js["permissions"]) == ROLES["member"], js)

    # ---- users and roles
    st, _, js = admin.call("GET", "/api/auth/admin/list-users")
    check("list-users: every user with the role", st == 200 and js["total"] == 3 and
          sorted(u["role"] for u in js["users"]) == ["admin", "member", "viewer"], js)
    ann_id = sql("SELECT id FROM \"user\" WHERE email = 'ann@example.com'")
    mia_id = sql("SELECT id FROM \"user\" WHERE email = 'mia@example.com'")
    st, _, js = admin.call("POST", "/api/auth/admin/set-role", {"userId": ann_id, "role": "member"})
    check("the last admin cannot be demoted: 409 LAST_ADMIN", st == 409 and js["code"] == "LAST_ADMIN" and
          sql(f"SELECT role FROM \"user\" WHERE id = '{ann_id}'") == "admin", js)
    st, _, js = admin.call("POST", "/api/auth/admin/remove-user", {"userId": ann_id})
    check("... nor removed", st == 409 and js["code"] == "LAST_ADMIN", js)
    st, _, js = admin.call("POST", "/api/auth/admin/set-role", {"userId": mia_id, "role": "superuser"})
    check("set-role with an unknown role: 400 naming role", st == 400 and js["code"] == "VALIDATION_ERROR", js)

    # A scoped key, an admin's key, a key of a user who will be demoted.
    st, _, js = member.call("POST", "/api/auth/api-key/create", {"name": "sender",
                                                                  "permissions": {"messages": ["send"]}})
    send_key = js.get("key")
    check("a member makes a key scoped to messages:send", st == 200 and send_key and
          js["permissions"] == {"messages": ["send"]}, js)
    st, _, js = member.call("POST", "/api/auth/api-key/create", {"name": "too much",
                                                                  "permissions": {"webhooks": ["write"]}})
    check("a key cannot exceed its owner's role: 403 naming permissions", st == 403 and
          js["error"]["field"] == "permissions", js)
    st, _, js = member.call("POST", "/api/auth/api-key/create", {"permissions": {"messages": ["fly"]}})
    check("an unknown permission: 400 naming it", st == 400 and "messages:fly" in js["error"]["message"], js)
    _, _, dinv = invite({"role": "admin"})
    dee = Client(srv)
    sign_up(dee, "dee@example.com", name="Dee", invitation=dinv["token"])
    dee_id = sql("SELECT id FROM \"user\" WHERE email = 'dee@example.com'")
    _, _, js = dee.call("POST", "/api/auth/api-key/create", {"name": "dee-admin"})
    dee_key = js["key"]
    st, _, js = admin.call("POST", "/api/auth/api-key/create", {"name": "admin-key"})
    admin_key = js["key"]
    kh = {"x-api-key": dee_key}
    st = Client(srv).call("GET", "/api/webhooks", headers=kh)[0]
    check("an admin's unscoped key has the admin's powers", st == 200, st)
    st, _, js = admin.call("POST", "/api/auth/admin/set-role", {"userId": dee_id, "role": "member"})
    t0 = time.monotonic()
    seen = wait(lambda: Client(srv).call("GET", "/api/webhooks", headers=kh)[0] == 403, timeout=5, step=0.02)
    took = time.monotonic() - t0
    check(f"demoting the key's owner takes effect for the key within a second ({took * 1000:.0f} ms)",
          st == 200 and js["user"]["role"] == "member" and seen and took < 1.0, (js, took))
    st = Client(srv).call("POST", "/api/messages", {"to": "123456789", "text": "from dee"}, headers=kh)[0]
    check("... and it keeps what the new role allows", st == 202, st)
    st, _, js = Client(srv).call("POST", "/api/auth/admin/create-user", {"email": "k@example.com", "name": "K",
                                                                         "password": "password-k1"},
                                 headers={"x-api-key": admin_key})
    check("an admin API key cannot create users (a signed-in session is needed): 403 session_required",
          st == 403 and code_of(js) == "session_required" and
          sql("SELECT count(*) FROM \"user\" WHERE email = 'k@example.com'") == "0", js)
    st, _, js = Client(srv).call("POST", "/api/invitations", {"role": "admin"}, headers={"x-api-key": admin_key})
    check("... nor invitations", st == 403 and code_of(js) == "session_required", js)

    # ---- the matrix: every route of the router table x every principal
    rc, routes, signed = router_rows()
    pol = policy_rows()
    check("signed links stand for credentials on GET|HEAD /api/media/{id} only", signed == SIGNED_LINK, signed)
    check("wapi-worker --routes lists the router table", rc == 0 and len(routes) > 40, rc)
    missing = sorted(set(routes) - set(pol))
    extra = sorted(set(pol) - set(routes))
    differ = sorted(k for k in set(routes) & set(pol) if routes[k] != pol[k])
    check("every route of the router table has a rule here, and the same one (new routes need one)",
          not missing and not extra and not differ, {"no rule": missing, "not served": extra, "differ": differ})
    demoted_key_owner_role = "member"
    principals = {
        "admin": ({"cookie": "; ".join(f"{k}={v}" for k, v in admin.cookies.items())}, ROLES["admin"], False),
        "member": ({"cookie": "; ".join(f"{k}={v}" for k, v in member.cookies.items())}, ROLES["member"], False),
        "viewer": ({"cookie": "; ".join(f"{k}={v}" for k, v in viewer.cookies.items())}, ROLES["viewer"], False),
        "key messages:send": ({"x-api-key": send_key}, {"messages:send"} & ROLES["member"], True),
        "key of a demoted user": ({"x-api-key": dee_key}, ROLES[demoted_key_owner_role], True),
        "no credentials": ({}, None, False),
    }
    origin = {"origin": f"http://127.0.0.1:{srv.port}", "x-forwarded-for": "198.51.100.7"}
    wrong = []
    allowed_later = []
    before = fingerprint()
    for (method, path), (perm, session_only) in sorted(routes.items()):
        url = concrete(path)
        for who, (hdr, perms, is_key) in principals.items():
            if perm == "public" and who != "no credentials":
                continue
            if perms is None:
                want = "public" if perm == "public" else 401
            elif is_key and session_only:
                want = "session_required"
            elif perm == "signed-in" or perm in perms:
                want = "allowed"
            else:
                want = "forbidden"
            if want in ("allowed", "public"):
                allowed_later.append((method, path, url, who, hdr))
                continue
            st, js = probe(srv, method, url, {**origin, **hdr})
            ok = st == want if isinstance(want, int) else (st == 403 and (method == "HEAD" or code_of(js) == want))
            if not ok:
                wrong.append((who, method, path, want, st, js))
    check(f"the matrix: every refusal is 401 without credentials, 403 forbidden without the permission, "
          f"403 session_required for keys on session-only routes", not wrong, wrong[:8])
    check("... and the refused requests changed nothing", fingerprint() == before)
    for method, path, url, who, hdr in allowed_later:
        st, js = probe(srv, method, url, {**origin, **hdr})
        if st in (401, 403) and (method == "HEAD" or code_of(js) in ("forbidden", "session_required", "unauthorized",
                                                                       None, "UNAUTHORIZED")):
            wrong.append((who, method, path, "allowed", st, js))
    check(f"the matrix: every permitted request passes the access check "
          f"({len(allowed_later)} requests)", not wrong, wrong[:8])
    check("the server stayed healthy through the matrix", srv.proc.poll() is None and srv.get("/healthz")[0] == 200)

    # ---- a deleted user's key stops within a second
    st, _, js = admin.call("POST", "/api/auth/admin/remove-user", {"userId": dee_id})
    t0 = time.monotonic()
    gone = wait(lambda: Client(srv).call("GET", "/api/me", headers=kh)[0] == 401, timeout=5, step=0.02)
    took = time.monotonic() - t0
    check(f"removing a user revokes their keys at once ({took * 1000:.0f} ms) and their sessions",
          st == 200 and gone and took < 1.0 and dee.call("GET", "/api/me")[0] == 401, (js, took))

    # ---- SSE: audit.* events only for those who may read the audit log
    stop = threading.Event()
    a_ev, m_ev = [], []
    threads = [threading.Thread(target=sse_reader, args=(srv, admin, a_ev, stop), daemon=True),
               threading.Thread(target=sse_reader, args=(srv, member, m_ev, stop), daemon=True)]
    for t in threads:
        t.start()
    wait(lambda: a_ev and m_ev, timeout=5)
    Receiver.got.clear()
    st, _, hook = admin.call("POST", "/api/webhooks", {"url": f"http://127.0.0.1:{rx.server_port}/audit",
                                                       "events": ["audit.*"]})
    check("a webhook can subscribe to audit.*", st == 201, hook)
    admin.call("POST", "/api/session/start", {})
    wait(lambda: any(e == "audit.webhook.created" for e, _ in a_ev) and
         any(e == "session.status" for e, _ in m_ev), timeout=10)
    time.sleep(0.3)
    stop.set()
    a_types = [e for e, _ in a_ev]
    m_types = [e for e, _ in m_ev]
    check("the admin's event stream carries audit.webhook.created and audit.session.start",
          "audit.webhook.created" in a_types and "audit.session.start" in a_types, a_types)
    check("a member's stream carries the session's events but no audit.* event",
          "session.status" in m_types and not [t for t in m_types if t.startswith("audit.")], m_types)
    wh = [e for e, d in a_ev if e == "audit.webhook.created"]
    data = next(d for e, d in a_ev if e == "audit.webhook.created")["data"]
    check("an audit event names who did what from where, and no secret of the URL",
          wh and data["action"] == "webhook.created" and data["actor"]["user_id"] == ann_id and
          data["actor"]["email"] == "ann@example.com" and data["actor"]["ip"] and data["target"] == hook["id"] and
          data["detail"]["url"] == f"http://127.0.0.1:{rx.server_port}", data)
    admin.call("POST", "/api/session/stop", {})
    admin.call("POST", "/api/invitations", {"role": "viewer"})
    got = wait(lambda: {b["type"] for b in Receiver.got} >= {"audit.session.stop", "audit.invitation.created"},
               timeout=15)
    check("audit events reach a webhook subscribed to audit.*", got, [b["type"] for b in Receiver.got])

    # ---- the audit log
    st, _, js = member.call("GET", "/api/audit")
    check("a member cannot read the audit log (403)", st == 403, js)
    st, _, js = admin.call("GET", "/api/audit?limit=200")
    actions = [a["action"] for a in js["data"]]
    want = {"user.created", "invitation.created", "invitation.revoked", "apikey.created", "user.role_changed",
            "user.deleted", "webhook.created", "session.start", "session.stop"}
    check("GET /api/audit: newest first, each action recorded", st == 200 and want <= set(actions) and
          [int(a["id"]) for a in js["data"]] == sorted((int(a["id"]) for a in js["data"]), reverse=True),
          sorted(want - set(actions)))
    rc_ = [a for a in js["data"] if a["action"] == "user.role_changed"]
    check("a role change records from and to", rc_ and rc_[0]["detail"] == {"from": "admin", "to": "member"} and
          rc_[0]["target"] == dee_id, rc_[:1])
    created = [a for a in js["data"] if a["action"] == "user.created"]
    check("user.created says how each came in", sorted(a["detail"]["via"] for a in created) ==
          ["first-user", "invitation", "invitation", "invitation"], [a["detail"] for a in created])
    st, _, p1 = admin.call("GET", "/api/audit?limit=2&action=user")
    st2, _, p2 = admin.call("GET", f"/api/audit?limit=2&action=user&cursor={p1['next_cursor']}")
    check("the audit log pages with a cursor and filters by action prefix",
          st == 200 and st2 == 200 and len(p1["data"]) == 2 and p1["next_cursor"] and
          all(a["action"].startswith("user.") for a in p1["data"] + p2["data"]) and
          not {a["id"] for a in p1["data"]} & {a["id"] for a in p2["data"]}, (p1, p2))
    st, _, js = admin.call("GET", "/api/audit?action=DROP%20TABLE")
    check("a malformed action filter: 400 naming action", st == 400 and js["error"]["field"] == "action", js)
    unpublished = wait(lambda: sql("SELECT count(*) FROM wapi_audit WHERE event_id IS NULL") == "0", timeout=10)
    logged = [ln for ln in srv.log_lines() if ln.get("msg") == "audit"]
    n_rows = int(sql("SELECT count(*) FROM wapi_audit"))
    check("every audit row is published once as an event, with one JSON log line each",
          unpublished and len(logged) == n_rows and
          sql("SELECT count(*) FROM wa_events WHERE type LIKE 'audit.%'") == str(n_rows), (len(logged), n_rows))
    check("the log lines carry no detail (no webhook URL)", logged and not any("http" in json.dumps(ln) for ln in logged))

    # ---- sign-in limits: an IPv6 client by its /64, and per account
    codes = []
    for i in range(1, 13):
        c = Client(srv)
        c.ip = f"2001:db8::{i:x}"
        codes.append(sign_in(c, f"guess{i}@example.com", password="wrong-password")[0])
    check("12 guesses from 2001:db8::1..c (one /64): 10 answered, then 429", codes == [401] * 10 + [429] * 2,
          codes)
    codes = []
    for i in range(1, 13):
        c = Client(srv)
        c.ip = f"2001:db8:{i:x}::1"
        codes.append(sign_in(c, "mia@example.com", password="wrong-password")[0])
    check("12 guesses for one account from 12 different /64s: 10 answered, then 429", codes == [401] * 10 + [429] * 2,
          codes)
    c = Client(srv)
    c.ip = "203.0.113.9"
    st, hd, _ = sign_in(c, "mia@example.com")
    check("... then even the right password waits (429 with Retry-After up to 15 min)",
          st == 429 and 1 <= int(hd.get("retry-after", "0")) <= 900, (st, hd.get("retry-after")))
    st, _, _ = sign_in(c, "ann@example.com")
    check("... while another account signs in from that address", st == 200, st)
    lim = wait(lambda: sql("SELECT string_agg(target, ',' ORDER BY id) FROM wapi_audit "
                           "WHERE action = 'auth.rate_limited'"), timeout=5)
    check("each limit reached is in the audit log once", lim == "sign-in:ip:2001:db8::/64,sign-in:email:mia@example.com",
          lim)
    check("no sanitizer reports, no crash", srv.proc.poll() is None)
    srv.stop()


def production():
    global DB
    DB = fresh_database("wapi_access_prod")
    env = {"NODE_ENV": "production", "BETTER_AUTH_SECRET": "s" * 40}
    srv = Server(workers=1, pg_url=DB, env=env)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    tok = wait(lambda: next((ln.get("setup_token") for ln in srv.log_lines() if ln.get("setup_token")), None))
    check("production, no account: the supervisor logs a one-time setup token", tok and len(tok) >= 32, tok)
    check("... and stores only its hash", sql(f"SELECT count(*) FROM wapi_setup_token WHERE token_hash = '{tok}'") ==
          "0" and sql("SELECT count(*) FROM wapi_setup_token") == "1")
    _, _, body = srv.get("/api/registration")
    check("GET /api/registration says the setup token is needed", json.loads(body)["setup_token_required"] is True,
          body)
    st, _, js = sign_up(Client(srv), "eve@example.com", name="Eve")
    check("production: the first sign-up without the setup token is refused (403 SETUP_TOKEN_REQUIRED)",
          st == 403 and js["code"] == "SETUP_TOKEN_REQUIRED" and js["error"]["field"] == "setupToken" and
          sql('SELECT count(*) FROM "user"') == "0", js)
    st, _, js = sign_up(Client(srv), "eve@example.com", name="Eve", setupToken="x" * 32)
    check("... and with a wrong one", st == 403 and js["code"] == "SETUP_TOKEN_REQUIRED", js)
    st, _, js = sign_up(Client(srv), "owner@example.com", name="Owner", setupToken=tok)
    check("with the token from the log, the first sign-up becomes the admin", st == 200 and
          js["user"]["role"] == "admin", js)
    st, _, js = sign_up(Client(srv), "eve@example.com", name="Eve", setupToken=tok)
    check("the token is single-use: later sign-ups need an invitation", st == 403 and
          js["code"] == "EMAIL_PASSWORD_SIGN_UP_DISABLED" and sql("SELECT count(*) FROM wapi_setup_token") == "0", js)
    check("no warning about open registration with the default",
          not [ln for ln in srv.log_lines() if "registration" in ln.get("msg", "") and "open" in ln.get("msg", "")])
    srv.stop()
    srv = Server(workers=1, pg_url=DB, env={**env, "WAPI_AUTH_REGISTRATION": "open"})
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    warned = wait(lambda: [ln for ln in srv.log_lines() if ln.get("level") == "warn" and
                           "open" in ln.get("msg", "") and "registration" in ln.get("msg", "")])
    check("production with registration open: a warning at start", warned, srv.log()[-800:])
    check("... and no setup token once an account exists", not any(ln.get("setup_token") for ln in srv.log_lines()))
    srv.stop()


main()
production()
done()
