#!/usr/bin/env python3
"""Accounts over HTTP: sign-up/in/out, get-session, cookies, refresh, limits,
registration policy, CSRF, the shared rate limit, API keys (create, use,
revoke within a second), wapictl user add, and that hashing never stalls
the loop — against the plain build and the ASan/UBSan build."""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from accounts import Client, rand_ip, sign_in, sign_up  # noqa: E402
from harness import ROOT, Server, check, done, fresh_database  # noqa: E402

DB = None  # each part runs on a database of its own (fresh_database)


def use_database(name):
    global DB
    DB = fresh_database(name)
    return DB


def sql(q):
    out = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def err_field(js):
    return (js or {}).get("error", {}).get("field")


def run(bindir, tag):
    use_database(f"wapi_auth_{tag}")
    # The origin must be known before start: pick the port first.
    srv = Server(bindir=bindir, workers=2, pg_url=DB)
    origin = f"http://127.0.0.1:{srv.port}"
    # "open" (anyone signs up) must be chosen explicitly; the default is "invite" (t_access.py).
    srv.env.update({"BETTER_AUTH_URL": origin, "WAPI_AUTH_TRUSTED_ORIGINS": "https://admin.example.org",
                    "WAPI_AUTH_REGISTRATION": "open"})
    srv.start()

    a = Client(srv)
    st, hd, js = sign_up(a, "Ann@Example.com")
    check(f"[{tag}] first sign-up 200 with token and user", st == 200 and js and js.get("token") and
          js["user"]["email"] == "ann@example.com", f"{st} {js}")
    check(f"[{tag}] the first user is admin", js and js["user"].get("role") == "admin", js)
    sc = [c for c in Client.set_cookies(hd) if c.startswith("better-auth.session_token=")]
    check(f"[{tag}] session cookie: HttpOnly, SameSite=Lax, Path=/, 7 days, not Secure on http",
          sc and "HttpOnly" in sc[0] and "SameSite=Lax" in sc[0] and "Path=/" in sc[0] and
          "Max-Age=604800" in sc[0] and "Secure" not in sc[0], sc)
    check(f"[{tag}] cookie value is token.signature, URI-encoded",
          sc and re.match(r"better-auth\.session_token=" + js["token"] + r"\.[A-Za-z0-9%]+%3D;", sc[0]), sc)
    check(f"[{tag}] security headers on auth answers", "frame-ancestors 'none'" in hd.get("content-security-policy", "")
          and hd.get("x-content-type-options") == "nosniff" and "referrer-policy" in hd)
    row = sql('''SELECT a."providerId", a."accountId" = u.id, length(a.password), u."emailVerified"
                 FROM "user" u JOIN account a ON a."userId" = u.id WHERE u.email = 'ann@example.com' ''')
    check(f"[{tag}] stored as Better Auth does: credential account, salt:key (161), emailVerified false",
          row == "credential|t|161|f", row)

    st, _, js = a.call("GET", "/api/auth/get-session")
    check(f"[{tag}] get-session returns session and user", st == 200 and js and js["user"]["email"] ==
          "ann@example.com" and js["session"]["userId"] == js["user"]["id"] and
          js["session"]["expiresAt"].endswith("Z"), js)
    st, _, js = Client(srv).call("GET", "/api/auth/get-session")
    check(f"[{tag}] get-session without a cookie is null", st == 200 and js is None)
    t = Client(srv)
    t.cookies = dict(a.cookies)
    k = "better-auth.session_token"
    v = t.cookies[k]
    t.cookies[k] = ("Y" if v[0] == "X" else "X") + v[1:]  # always a different first byte
    st, _, js = t.call("GET", "/api/auth/get-session")
    check(f"[{tag}] tampered cookie: null", st == 200 and js is None, js)
    st, _, js = t.call("GET", "/api/me")
    check(f"[{tag}] tampered cookie: 401 on /api/", st == 401, st)

    st, _, js = sign_up(Client(srv), "bob@example.com", name="Bob")
    check(f"[{tag}] second sign-up (open) is a member", st == 200 and js["user"]["role"] == "member", js)
    st, _, js = sign_up(Client(srv), "BOB@example.com", name="Bob")
    check(f"[{tag}] duplicate e-mail: 422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
          st == 422 and js["code"] == "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", js)

    # Sign-in: right, wrong, unknown (same answer, similar time).
    c = Client(srv)
    st, hd, js = sign_in(c, "ANN@example.com")
    check(f"[{tag}] sign-in 200 with redirect/token/user and a cookie",
          st == 200 and js["redirect"] is False and js["token"] and js["user"]["email"] == "ann@example.com" and
          "better-auth.session_token" in c.cookies, js)
    times = {"wrong": [], "unknown": []}
    bodies = set()
    for i in range(5):
        for kind, email in (("wrong", "ann@example.com"), ("unknown", f"nobody{i}@example.com")):
            t0 = time.monotonic()
            st, _, js = sign_in(Client(srv), email, password="not-the-password")
            times[kind].append(time.monotonic() - t0)
            bodies.add((st, json.dumps(js, sort_keys=True)))
    check(f"[{tag}] wrong password and unknown e-mail get the same answer", len(bodies) == 1 and
          list(bodies)[0][0] == 401 and "INVALID_EMAIL_OR_PASSWORD" in list(bodies)[0][1], bodies)
    mw, mu = sorted(times["wrong"])[2], sorted(times["unknown"])[2]
    check(f"[{tag}] ... and take similar time (median {mw * 1000:.0f} ms vs {mu * 1000:.0f} ms)",
          0.5 < mw / mu < 2.0, (mw, mu))

    # Limits: 400 naming the field, nothing changed, process healthy.
    before = sql('SELECT count(*) FROM "user"')
    cases = [
        ("email invalid", dict(email="not-an-email", password="password-123", name="x"), "email"),
        ("email too long", dict(email="a" * 250 + "@b.co", password="password-123", name="x"), "email"),
        ("email not a string", dict(email=5, password="password-123", name="x"), "email"),
        ("password 7", dict(email="p7@example.com", password="1234567", name="x"), "password"),
        ("password 129", dict(email="p129@example.com", password="x" * 129, name="x"), "password"),
        ("password missing", dict(email="pm@example.com", name="x"), "password"),
        ("name 101", dict(email="n101@example.com", password="password-123", name="n" * 101), "name"),
        ("name missing", dict(email="nm@example.com", password="password-123"), "name"),
        ("rememberMe not boolean", dict(email="rm@example.com", password="password-123", name="x", rememberMe="y"),
         "rememberMe"),
    ]
    for label, body, field in cases:
        st, _, js = Client(srv).call("POST", "/api/auth/sign-up/email", body)
        check(f"[{tag}] sign-up {label}: 400 naming {field}", st == 400 and err_field(js) == field, f"{st} {js}")
    st, _, js = Client(srv).call("POST", "/api/auth/sign-up/email",
                                 dict(email="emoji@example.com", password="\U0001F600" * 64 + "x", name="x"))
    check(f"[{tag}] password length counts UTF-16 units like Better Auth (129 -> 400)",
          st == 400 and err_field(js) == "password", js)
    raw_cases = [
        ("invalid JSON", b"{nope"),
        ("not an object", b"[1,2]"),
        ("invalid UTF-8", b'{"email":"a@b.co","password":"\xff\xfe\xfd12345678","name":"x"}'),
        ("escaped NUL", b'{"email":"nul@example.com","password":"abc\\u0000defghij","name":"x"}'),
        ("empty body", b""),
    ]
    for label, raw in raw_cases:
        st, _, js = Client(srv).call("POST", "/api/auth/sign-up/email", raw=raw)
        check(f"[{tag}] sign-up {label}: 400 JSON", st == 400 and js and "error" in js, f"{st} {js}")
    st, _, js = Client(srv).call("POST", "/api/auth/sign-in/email", raw=b'{"email":"a@b.co","password":"' +
                                 b"x" * 17000 + b'"}')
    check(f"[{tag}] body over 16 KiB: 413 JSON", st == 413 and js and "error" in js, f"{st} {js}")
    check(f"[{tag}] bad input changed nothing", sql('SELECT count(*) FROM "user"') == before)
    st, _, _ = srv.get("/healthz")
    check(f"[{tag}] healthy after bad input", st == 200)

    # CSRF.
    evil = Client(srv, origin="https://evil.example")
    evil.cookies = dict(a.cookies)
    st, _, js = evil.call("POST", "/api/auth/api-key/create", {"name": "x"})
    check(f"[{tag}] cookie POST from another origin: 403", st == 403 and js["code"] == "INVALID_ORIGIN", js)
    none = Client(srv, origin="")
    none.cookies = dict(a.cookies)
    st, _, js = none.call("POST", "/api/auth/api-key/create", {"name": "x"})
    check(f"[{tag}] cookie POST with no Origin or Referer: 403", st == 403 and js["code"] ==
          "MISSING_OR_NULL_ORIGIN", js)
    st, _, js = none.call("POST", "/api/auth/api-key/create", {"name": "ref"}, headers={"referer": origin + "/#/keys"})
    check(f"[{tag}] cookie POST with our Referer: allowed", st == 200, js)
    trusted = Client(srv, origin="https://admin.example.org")
    trusted.cookies = dict(a.cookies)
    st, _, js = trusted.call("POST", "/api/auth/api-key/create", {"name": "trusted"})
    check(f"[{tag}] cookie POST from a trusted origin: allowed", st == 200, js)
    st, _, js = Client(srv, origin="https://evil.example").call("POST", "/api/auth/sign-in/email",
                                                                 {"email": "ann@example.com", "password": "password-123"})
    check(f"[{tag}] sign-in from another origin: 403", st == 403, js)
    st, _, js = Client(srv, origin="").call("POST", "/api/auth/sign-in/email",
                                            {"email": "ann@example.com", "password": "password-123"})
    check(f"[{tag}] sign-in from a program (no Origin, no cookie): allowed", st == 200, js)

    # API keys.
    st, _, js = a.call("POST", "/api/auth/api-key/create", {"name": "ci", "prefix": "wapi_"})
    key = (js or {}).get("key", "")
    check(f"[{tag}] api-key/create shows the key once", st == 200 and key.startswith("wapi_") and len(key) == 69 and
          js["start"] == key[:6] and js["referenceId"] and js["enabled"] is True, js)
    key_id = js["id"]
    stored = sql(f"SELECT key FROM apikey WHERE id = '{key_id}'")
    import base64
    import hashlib
    want = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()).rstrip(b"=").decode()
    check(f"[{tag}] stored hashed the plugin's way", stored == want, (stored, want))
    st, _, js = a.call("GET", "/api/auth/api-key/list")
    check(f"[{tag}] api-key/list: the keys, never the key itself", st == 200 and js["total"] >= 1 and
          all("key" not in k for k in js["apiKeys"]) and key not in json.dumps(js), js)
    st, _, js = a.call("GET", f"/api/auth/api-key/get?id={key_id}")
    check(f"[{tag}] api-key/get", st == 200 and js["id"] == key_id and "key" not in js, js)
    st, _, js = Client(srv).call("GET", "/api/me", headers={"x-api-key": key})
    check(f"[{tag}] X-Api-Key authenticates", st == 200 and js["via"] == "api_key" and js["role"] == "admin", js)
    st, _, js = Client(srv).call("GET", "/api/me", headers={"authorization": "Bearer " + key})
    check(f"[{tag}] Authorization: Bearer authenticates", st == 200 and js["apiKeyId"] == key_id, js)
    last = sql(f"SELECT \"lastRequest\" IS NOT NULL FROM apikey WHERE id = '{key_id}'")
    check(f"[{tag}] last-used time recorded", last == "t", last)
    st, _, js = Client(srv).call("GET", "/api/me", headers={"x-api-key": key[:-1] + ("a" if key[-1] != "a" else "b")})
    check(f"[{tag}] wrong key: 401 INVALID_API_KEY", st == 401 and js["code"] == "INVALID_API_KEY", js)
    st, _, js = Client(srv).call("GET", "/api/nothing/here")
    check(f"[{tag}] unknown /api/ path without credentials: 401", st == 401, st)
    st, _, js = Client(srv).call("GET", "/api/nothing/here", headers={"x-api-key": key})
    check(f"[{tag}] unknown /api/ path with a key: 404", st == 404, st)
    st, _, js = Client(srv, origin="").call("POST", "/api/auth/api-key/create", {"name": "x"},
                                            headers={"x-api-key": key})
    check(f"[{tag}] keys are not minted with a key: 403", st == 403, js)
    for label, body, field in [("name 33", {"name": "n" * 33}, "name"), ("bad prefix", {"prefix": "a b"}, "prefix"),
                               ("server-only", {"rateLimitMax": 5}, "rateLimitMax"),
                               ("expiresIn too small", {"expiresIn": 60}, "expiresIn"),
                               ("metadata", {"metadata": {"a": 1}}, "metadata")]:
        st, _, js = a.call("POST", "/api/auth/api-key/create", body)
        check(f"[{tag}] api-key/create {label}: 400 naming {field}", st == 400 and err_field(js) == field, f"{st} {js}")
    st, _, js = a.call("POST", "/api/auth/api-key/create", {"name": "exp", "expiresIn": 86400 * 2})
    check(f"[{tag}] api-key/create with expiresIn sets expiresAt", st == 200 and js["expiresAt"], js)
    exp_key, exp_id = js["key"], js["id"]
    sql(f"UPDATE apikey SET \"expiresAt\" = now() - interval '1 second' WHERE id = '{exp_id}'")
    time.sleep(0.6)
    st, _, js = Client(srv).call("GET", "/api/me", headers={"x-api-key": exp_key})
    check(f"[{tag}] expired key: 401 KEY_EXPIRED", st == 401 and js["code"] == "KEY_EXPIRED", js)
    bob = Client(srv)
    sign_in(bob, "bob@example.com")
    st, _, js = bob.call("POST", "/api/auth/api-key/delete", {"keyId": key_id})
    check(f"[{tag}] someone else's key cannot be revoked: 404", st == 404, js)
    # Warm every worker's cache, revoke, and expect refusal everywhere within a second.
    for _ in range(20):
        Client(srv).call("GET", "/api/me", headers={"x-api-key": key})
    st, _, js = a.call("POST", "/api/auth/api-key/delete", {"keyId": key_id})
    t_revoked = time.monotonic()
    check(f"[{tag}] api-key/delete", st == 200 and js == {"success": True}, js)
    time.sleep(1.0)
    results = [Client(srv).call("GET", "/api/me", headers={"x-api-key": key})[0] for _ in range(30)]
    check(f"[{tag}] a revoked key stops working within a second on every worker",
          all(r == 401 for r in results), (results, time.monotonic() - t_revoked))

    # Sign-out: the row goes, the cookie goes.
    old = dict(c.cookies)
    st, hd, js = c.call("POST", "/api/auth/sign-out", {})
    check(f"[{tag}] sign-out 200 success and clears the cookie", st == 200 and js == {"success": True} and
          "better-auth.session_token" not in c.cookies, hd.get("set-cookie"))
    tok = old["better-auth.session_token"].split(".")[0]
    check(f"[{tag}] sign-out deletes the session row", sql(f"SELECT count(*) FROM session WHERE token = '{tok}'") == "0")
    replay = Client(srv)
    replay.cookies = old
    st, _, _ = replay.call("GET", "/api/me")
    check(f"[{tag}] the old cookie no longer works", st == 401, st)

    # Refresh after updateAge, expiry, rememberMe=false.
    tok_a = a.cookies["better-auth.session_token"].split(".")[0]
    sql(f"UPDATE session SET \"expiresAt\" = now() + interval '5 days' WHERE token = '{tok_a}'")
    st, hd, js = a.call("GET", "/api/auth/get-session")
    exp = sql(f"SELECT round(extract(epoch from \"expiresAt\" - now()) / 3600) FROM session WHERE token = '{tok_a}'")
    check(f"[{tag}] a session older than a day is refreshed to 7 days with a new cookie",
          st == 200 and exp == "168" and "Max-Age=604800" in (hd.get("set-cookie") or ""), (exp, hd.get("set-cookie")))
    st, hd, js = a.call("GET", "/api/auth/get-session")
    check(f"[{tag}] a fresh session is not rewritten", st == 200 and not hd.get("set-cookie"), hd.get("set-cookie"))
    d = Client(srv)
    st, hd, js = sign_in(d, "bob@example.com", rememberMe=False)
    sc = hd.get("set-cookie") or ""
    check(f"[{tag}] rememberMe=false: a browser-session cookie and dont_remember",
          st == 200 and "better-auth.dont_remember=" in sc and
          "Max-Age" not in [p for p in Client.set_cookies(hd) if p.startswith("better-auth.session_token")][0], sc)
    tok_d = d.cookies["better-auth.session_token"].split(".")[0]
    hours = sql(f"SELECT round(extract(epoch from \"expiresAt\" - now()) / 3600) FROM session WHERE token = '{tok_d}'")
    check(f"[{tag}] rememberMe=false: the session lasts a day", hours == "24", hours)
    sql(f"UPDATE session SET \"expiresAt\" = now() - interval '1 second' WHERE token = '{tok_d}'")
    st, _, js = d.call("GET", "/api/auth/get-session")
    check(f"[{tag}] an expired session: null, row removed", st == 200 and js is None and
          sql(f"SELECT count(*) FROM session WHERE token = '{tok_d}'") == "0", js)

    # Rate limit, shared by the workers, per client address (another account:
    # ann's own failures count toward her per-account limit, see t_access.py).
    ip = rand_ip()
    codes, retry = [], None
    for i in range(11):
        cl = Client(srv)
        cl.ip = ip
        st, hd, js = sign_in(cl, f"probe{i}@example.com", password="wrong-password")
        codes.append(st)
        retry = hd.get("retry-after") or retry
    check(f"[{tag}] 10 sign-ins per minute per address, then 429 with Retry-After",
          codes[:10] == [401] * 10 and codes[10] == 429 and retry and 1 <= int(retry) <= 60, (codes, retry))
    cl = Client(srv)
    st, _, _ = sign_in(cl, "ann@example.com")
    check(f"[{tag}] another address is not limited", st == 200, st)

    # Hashing runs off the loop: /healthz on a one-worker server stays fast during sign-ins.
    srv.stop()
    one = Server(bindir=bindir, workers=1, pg_url=DB)
    one.env.update({"BETTER_AUTH_URL": f"http://127.0.0.1:{one.port}"})
    one.start()
    t0 = time.monotonic()
    burst_code = sign_in(Client(one, origin=""), "ann@example.com")[0]
    one_sign_in = time.monotonic() - t0
    lat = []

    def burst(i):
        cl = Client(one, origin="")
        return sign_in(cl, "ann@example.com")[0]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(burst, i) for i in range(8)]
        time.sleep(0.05)
        while not all(f.done() for f in futs):
            t0 = time.monotonic()
            one.get("/healthz")
            lat.append(time.monotonic() - t0)
            time.sleep(0.01)
        codes = [f.result() for f in futs]
    check(f"[{tag}] 8 parallel sign-ins on one worker succeed", codes == [200] * 8 and burst_code == 200, codes)
    # Were hashing on the loop, most probes would wait for a hash (one sign-in
    # alone took one_sign_in); timing noise on a busy machine hits only a few.
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000 if lat else 0
    p90 = lat[int(len(lat) * 0.9)] * 1000 if lat else 0
    check(f"[{tag}] /healthz on that worker meanwhile: median {p50:.1f} ms, p90 {p90:.1f} ms over {len(lat)} probes "
          f"(one sign-in takes {one_sign_in * 1000:.0f} ms)",
          len(lat) >= 10 and p50 < 20 and p90 < one_sign_in * 1000 / 3, (p50, p90))

    # A client that goes away mid sign-in leaves the worker healthy.
    import socket
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", one.port))
        body = json.dumps({"email": "ann@example.com", "password": "password-123"}).encode()
        s.sendall(b"POST /api/auth/sign-in/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        s.close()
    time.sleep(0.5)
    st, _, _ = one.get("/healthz")
    check(f"[{tag}] clients leaving mid sign-in: worker healthy", st == 200 and one.proc.poll() is None)
    check(f"[{tag}] no secret in the logs", "password-123" not in one.log() and key not in one.log())
    if "san" in bindir:
        check(f"[{tag}] no sanitizer reports", not one.sanitizer_reports(), one.sanitizer_reports()[:3])
    one.stop()


def policies():
    use_database("wapi_auth_policies")
    srv = Server(workers=1, env={"WAPI_AUTH_REGISTRATION": "closed"}, pg_url=DB)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    st, _, js = sign_up(Client(srv), "first@example.com")
    check("closed: even the first web sign-up is refused (403)", st == 403, js)
    out = subprocess.run([os.path.join(ROOT, "build/wapictl"), "user", "add", "First@Example.com", "--name", "First"],
                         input="admin-password-1\n", capture_output=True, text=True, env=srv.env)
    res = json.loads(out.stdout or "{}")
    check("wapictl user add: the first user, made admin", out.returncode == 0 and res.get("user", {}).get("role") ==
          "admin", out.stdout + out.stderr)
    st, _, js = sign_in(Client(srv), "first@example.com", password="admin-password-1")
    check("the wapictl user signs in", st == 200, js)
    out = subprocess.run([os.path.join(ROOT, "build/wapictl"), "user", "add", "first@example.com"],
                         input="admin-password-1\n", capture_output=True, text=True, env=srv.env)
    check("wapictl user add: duplicate refused", out.returncode == 1 and '"ok":false' in out.stdout, out.stdout)
    srv.stop()

    srv = Server(workers=1, env={"WAPI_AUTH_REGISTRATION": "invite"}, pg_url=DB)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    st, _, js = sign_up(Client(srv), "someone@example.com")
    check("invite: sign-up refused", st == 403 and js["code"] == "EMAIL_PASSWORD_SIGN_UP_DISABLED", js)
    adm = Client(srv)
    sign_in(adm, "first@example.com", password="admin-password-1")
    st, _, js = adm.call("POST", "/api/auth/admin/create-user",
                         {"email": "invited@example.com", "password": "invited-pass", "name": "Inv"})
    check("invite: an admin creates a user (a member by default)", st == 200 and
          js["user"]["email"] == "invited@example.com" and js["user"]["role"] == "member", js)
    inv = Client(srv)
    st, _, js = sign_in(inv, "invited@example.com", password="invited-pass")
    check("invite: the invited user signs in", st == 200, js)
    st, _, js = inv.call("POST", "/api/auth/admin/create-user",
                         {"email": "x@example.com", "password": "invited-pass", "name": "X"})
    check("invite: a non-admin cannot create users (403)", st == 403, js)
    srv.stop()

    srv = Server(workers=1, env={"BETTER_AUTH_URL": "https://wapi.example.org"}, pg_url=DB)
    srv.start()
    cl = Client(srv, origin="https://wapi.example.org")
    st, hd, js = sign_in(cl, "first@example.com", password="admin-password-1")
    sc = hd.get("set-cookie") or ""
    check("https base URL: __Secure- cookie with Secure", st == 200 and
          sc.startswith("__Secure-better-auth.session_token=") and "; Secure" in sc, sc)
    st, _, js = cl.call("GET", "/api/auth/get-session")
    check("https base URL: the __Secure- cookie is read back", st == 200 and js and js["user"]["email"] ==
          "first@example.com", js)
    srv.stop()


def assets():
    srv = Server(workers=1, pg_url=use_database("wapi_auth_assets")).start()
    st, h, body = srv.get("/")
    check("/ is the app shell: HTML with a module script and a stylesheet", st == 200 and
          h.get("content-type", "").startswith("text/html") and b'type="module" src="/assets/app.js"' in body and
          b'href="/assets/app.css"' in body, body[:200])
    check("the shell has no inline script or style (CSP script-src/style-src 'self')",
          not re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", body) and b" style=" not in body and b"<style" not in body)
    for path, ctype in [("/assets/app.js", "text/javascript"), ("/assets/app.css", "text/css"),
                        ("/assets/pages/keys.js", "text/javascript"), ("/assets/pages/session.js", "text/javascript"),
                        ("/assets/favicon.svg", "image/svg+xml")]:
        st, h, body = srv.get(path)
        etag = h.get("etag", "")
        check(f"{path}: 200 {ctype} with an ETag", st == 200 and h.get("content-type", "").startswith(ctype) and
              etag.startswith('"') and body, f"{st} {h.get('content-type')} {etag}")
        st2, h2, body2 = srv.get(path, headers={"if-none-match": etag})
        check(f"{path}: 304 when the ETag matches", st2 == 304 and body2 == b"", st2)
    st, _, _ = srv.get("/assets/nope.js")
    check("an unknown asset is 404", st == 404)
    st, h, _ = srv.get("/assets/app.js")
    check("assets carry the security headers", "script-src 'self'" in h.get("content-security-policy", "") and
          h.get("x-content-type-options") == "nosniff")
    srv.stop()


run("build", "plain")
policies()
assets()
run("build/san", "asan")
done()
