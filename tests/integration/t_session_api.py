#!/usr/bin/env python3
"""The session over HTTP, as programs and the dashboard use it: auth,
/api/session, the QR as SVG and text (the phone scans the text it got
from the API), start/stop/logout, and live events over SSE resumable with
Last-Event-ID."""
import http.client
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, contract_log, done, fresh_database  # noqa: E402

os.environ["TEST_DATABASE_URL"] = fresh_database("wapi_it_session_api")


class SSE:
    """Reads an event stream in a thread; events land in self.events."""

    def __init__(self, srv, key, last_id=None):
        self.events, self.comments = [], 0
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        h = {"x-api-key": key}
        if last_id:
            h["last-event-id"] = str(last_id)
        self.conn.request("GET", "/api/events", headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.ctype = self.resp.getheader("content-type", "")
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        cur = {}
        try:
            while True:
                fp = self.resp.fp
                if fp is None:
                    return
                line = fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if cur.get("data"):
                        self.events.append(cur)
                        contract_log("sse", event=cur.get("event"), data=cur["data"])
                    cur = {}
                elif line.startswith(":"):
                    self.comments += 1
                elif ":" in line:
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v
        except (OSError, AttributeError, ValueError):
            return

    def wait(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            time.sleep(0.05)
        return None

    def close(self):
        self.conn.close()


wa = FakeWA()
# The ASan/UBSan build: the IPC, SSE and abort paths are where memory bugs would hide.
srv = Server(bindir=os.environ.get("WAPI_TEST_BINDIR", "build/san"), workers=2, env=wa.env())
origin = f"http://127.0.0.1:{srv.port}"
srv.env["BETTER_AUTH_URL"] = origin  # cookie-authenticated writes must come from here
srv.start()

st, _, _ = srv.get("/api/session")
check("GET /api/session without credentials is 401", st == 401)

email = f"session-{random.randrange(10**9)}@example.com"
body = json.dumps({"email": email, "password": "password-123", "name": "Ops"}).encode()
st, h, b = srv.request("POST", "/api/auth/sign-up/email", body=body,
                       headers={"content-type": "application/json", "origin": origin,
                                "x-forwarded-for": f"198.19.{random.randrange(256)}.{random.randrange(1, 255)}"})
cookie = h.get("set-cookie", "").split(";")[0]
check("signed up a user for the API", st == 200 and cookie, f"{st} {b[:200]!r}")
st, h, b = srv.request("POST", "/api/auth/api-key/create", body=json.dumps({"name": "session-test"}).encode(),
                       headers={"content-type": "application/json", "origin": origin, "cookie": cookie})
key = json.loads(b).get("key") if st == 200 else None
check("created an API key", bool(key), f"{st} {b[:200]!r}")
K = {"x-api-key": key}


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    hh = dict(K)
    if data is not None:
        hh["content-type"] = "application/json"
    st, h, b = srv.request(method, path, body=data, headers=hh)
    try:
        js = json.loads(b)
    except ValueError:
        js = None
    return st, h, b, js


def state():
    return api("GET", "/api/session")[3] or {}


check("the session reaches qr", srv.wait_for(lambda: state().get("state") == "qr", timeout=15), state())
s = state()
check("GET /api/session shape: state, me, since (RFC 3339), last_error",
      set(s) == {"state", "me", "since", "last_error"} and s["me"] is None and
      re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", s["since"] or "") is not None, s)

stream = SSE(srv, key)
check("GET /api/events is an event stream", stream.status == 200 and stream.ctype.startswith("text/event-stream"),
      f"{stream.status} {stream.ctype}")
first = stream.wait(lambda e: e.get("event") == "session.status")
check("a new subscriber gets the current session.status", first and json.loads(first["data"])["data"]["state"] == "qr",
      stream.events[:2])
qr_ev = stream.wait(lambda e: e.get("event") == "session.qr")
check("and the current session.qr", qr_ev and json.loads(qr_ev["data"])["data"]["qr"], stream.events[:3])

st, h, svg, _ = api("GET", "/api/session/qr")
check("GET /api/session/qr is an SVG", st == 200 and h.get("content-type") == "image/svg+xml" and
      svg.startswith(b"<svg") and b"<path" in svg and h.get("cache-control") == "no-store", f"{st} {svg[:80]!r}")
st, h, raw, _ = api("GET", "/api/session/qr?format=raw")
qr = raw.decode()
check("GET /api/session/qr?format=raw is the QR text", st == 200 and h.get("content-type", "").startswith("text/plain")
      and qr == json.loads(qr_ev["data"])["data"]["qr"] and qr.count(",") == 3, qr)
st, _, _, js = api("GET", "/api/session/qr?format=png")
check("an unknown QR format is a 400 naming the field", st == 400 and js["error"]["field"] == "format", js)

res = wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000})
check("the phone scans the QR it got from the API", res.get("ok") is True, res)
conn_ev = stream.wait(lambda e: e.get("event") == "session.status" and
                      json.loads(e["data"])["data"]["state"] == "connected")
check("the stream announces pairing and connected", conn_ev is not None and any(
    json.loads(e["data"])["data"].get("state") == "pairing" for e in stream.events if e.get("event") == "session.status"),
    [e.get("event") for e in stream.events])
ids = [int(e["id"]) for e in stream.events]
# Unique, not always increasing in stream order: an event is published when
# its commit ends (an audit row may finish after a later status change).
check("event ids are stable and unique", len(set(ids)) == len(ids) and all(i > 1700000000000000 for i in ids), ids)
gone = stream.wait(lambda e: e.get("event") == "session.qr" and json.loads(e["data"])["data"]["qr"] is None)
check("the QR is withdrawn on the stream once paired", gone is not None)
s = state()
check("GET /api/session when connected has me", s["state"] == "connected" and s["me"]["jid"] == res["jid"], s)
st, _, _, js = api("GET", "/api/session/qr")
check("GET /api/session/qr is 404 when there is none", st == 404 and js["error"]["code"] == "no_qr", js)

# Resume: from a live event's id we get exactly what was published after it,
# in order. (Not from the first two: a new stream starts with the present
# status and QR, which may be older than events it was never sent, such as
# the audit log's, published before it connected.)
first_live = next(e for e in stream.events if e.get("event") == "session.status" and
                  json.loads(e["data"])["data"].get("state") == "pairing")
resume = SSE(srv, key, last_id=int(first_live["id"]))
later = stream.events[stream.events.index(first_live) + 1:]
got = resume.wait(lambda e: int(e["id"]) == int(later[-1]["id"])) if later else None
rids = [int(e["id"]) for e in resume.events]
check("Last-Event-ID resumes with the missed events only", got is not None and
      rids[:len(later)] == [int(e["id"]) for e in later],
      f"{[(e['id'], e.get('event')) for e in resume.events]} vs {[(e['id'], e.get('event')) for e in later]}")
resume.close()

# Commands.
st, _, _, js = api("POST", "/api/session/pairing-code", {"phone": wa.phone})
check("pairing-code while linked is refused (409, nothing to link)", st == 409 and js["error"]["field"] == "phone", js)
st, _, _, js = api("POST", "/api/session/pairing-code", {"phone": "call me"})
check("pairing-code with a bad phone: 400 naming phone", st == 400 and js["error"]["field"] == "phone", js)
st, _, _, js = api("POST", "/api/session/pairing-code", {})
check("pairing-code without phone: 400 naming phone", st == 400 and js["error"]["field"] == "phone", js)
st, _, _, js = api("POST", "/api/session/stop")
check("POST /api/session/stop", st == 200 and srv.wait_for(lambda: state().get("state") == "stopped", 5), js)
st, _, _, js = api("POST", "/api/session/start")
check("POST /api/session/start logs in again", st == 202 and
      srv.wait_for(lambda: state().get("state") == "connected", 10), state())
st, _, _, js = api("POST", "/api/session/logout")
check("POST /api/session/logout", st == 200 and srv.wait_for(lambda: state().get("state") == "logged_out", 5), js)
out = stream.wait(lambda e: e.get("event") == "session.status" and
                  json.loads(e["data"])["data"]["state"] == "logged_out")
check("the stream carries logged_out", out is not None)
st, _, _, js = api("GET", "/api/session/start")
check("GET on a POST route is 405", st == 405, st)

# Pairing by phone number: the code comes from the API, the user types it on the phone.
api("POST", "/api/session/start")
check("after logout, start shows a QR again", srv.wait_for(lambda: state().get("state") == "qr", 10), state())
st, _, _, js = api("POST", "/api/session/pairing-code", {"phone": "+" + wa.phone})
code = (js or {}).get("code", "")
check("POST /api/session/pairing-code gives an 8-character code", st == 200 and
      re.fullmatch(r"[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}", code) is not None, js)
hello = wa.wait_event("paircode.hello")
check("the server accepted our companion_hello", hello is not None and hello.get("accepted") is True, hello)
res = wa.call("POST", "/phone/code", {"code": code, "timeoutMs": 15000})
check("the code typed on the phone links the session", res.get("ok") is True, res)
check("linked by code: connected", srv.wait_for(lambda: state().get("state") == "connected", 15), state())
fin = wa.events(0, "paircode.finish")
check("the phone verified our key bundle", fin and fin[-1].get("ok") is True, fin)
stream.close()

# Clients that leave at once (before their backlog arrives) or mid-request.
import socket as _socket
for i in range(60):
    c = _socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    path = "/api/events" if i % 2 == 0 else "/api/session"
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n\r\n".encode())
    if i % 3 == 0:
        c.recv(10)
    c.close()
time.sleep(0.5)
check("clients leaving early leave the workers healthy", srv.get("/healthz")[0] == 200 and
      srv.metric("wapi_worker_crashes_total") == 0)

# Draining ends streams so TERM does not wait for them.
s2 = SSE(srv, key)
s2.wait(lambda e: True, timeout=5)
t0 = time.monotonic()
rc = srv.stop()
check("TERM with an open event stream exits promptly", rc == 0 and time.monotonic() - t0 < 5,
      f"{rc} {time.monotonic() - t0:.1f}s")
reports = srv.sanitizer_reports()
check("no sanitizer reports", not reports, reports[:3])
wa.stop()
done()
