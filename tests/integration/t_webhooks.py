#!/usr/bin/env python3
"""Webhooks: the API (create, list, get, patch, delete, validation), and the
supervisor's dispatcher against a local receiver whose requests are checked
with the published `standardwebhooks` package: events written to wa_events
(as the WhatsApp side does) are delivered signed, filtered by type, retried on
5xx/408/429 with growing gaps, not retried on other 4xx, dead after N
attempts; redelivery; a hanging receiver times out without holding others
up; the database restarting; the supervisor killed mid-attempt; private
targets refused unless allowed.
Runs on its own PostgreSQL so it can restart it."""
import atexit
import http.server
import json
import os
import random
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Server, check, done  # noqa: E402

DEVDB = os.path.join(ROOT, "scripts/devdb.sh")
# A cluster of this run's own (it is restarted below; concurrent runs of the
# suite must not share it), removed at exit.
PGDIR = os.path.join(ROOT, f"var/pg-webhooks-{os.getpid()}")
PGENV = dict(os.environ, WAPI_DEVDB_DIR=PGDIR)
VERIFY = os.path.join(ROOT, "tests/webhooks/verify.mjs")


def pg(cmd):
    return subprocess.run([DEVDB, cmd], env=PGENV, capture_output=True, text=True, timeout=120).stdout.strip()


@atexit.register
def _drop_cluster():
    pg("stop")
    shutil.rmtree(PGDIR, ignore_errors=True)


BASE_URL = pg("start")


def db_url(name):
    return re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\g<1>" + name, BASE_URL)


def fresh(name):
    admin = db_url("postgres")
    for q in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", admin, "-qAtX", "-c", q], check=True, capture_output=True)
    return db_url(name)


DB = fresh("wapi_it_webhooks")


def sql(q, url=None):
    out = subprocess.run(["psql", url or DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


_seq = [0]


def event_id():
    _seq[0] += 1
    return int(time.time() * 1000) * 1000 + 500 + _seq[0] % 500


def insert_event(etype, data, url=None):
    eid = event_id()
    sql(f"INSERT INTO wa_events (id, type, data) VALUES ({eid}, '{etype}', '{json.dumps(data)}'::jsonb)", url)
    return str(eid)


# ---- the receiver
class Receiver:
    def __init__(self):
        self.reqs = []  # (path, headers, body, t)
        self.modes = {}  # path -> list of statuses to answer in turn (last repeats), or "hang"
        self.hang_s = 3.0
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n).decode()
                rec.reqs.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))
                mode = rec.modes.get(self.path, [200])
                if mode == "drip":  # a byte every 0.5 s: never idle long enough for a read timeout
                    try:
                        self.send_response(200)
                        self.send_header("content-length", "40")
                        self.end_headers()
                        for _ in range(40):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.5)
                    except OSError:
                        pass
                    return
                if mode == "hang":
                    time.sleep(rec.hang_s)
                    code = 200
                else:
                    code = mode[0]
                    if len(mode) > 1:
                        mode.pop(0)
                try:
                    self.send_response(code)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path):
        return [r for r in self.reqs if r[0] == path]


def verify(items):
    """items: [(secret, headers, body)] -> [result] from the npm package."""
    data = json.dumps([{"secret": s, "headers": {k: h.get(k, "") for k in
                                                 ("webhook-id", "webhook-timestamp", "webhook-signature")},
                        "body": b} for s, h, b in items])
    out = subprocess.run(["node", VERIFY], input=data, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout) if out.returncode == 0 else [{"ok": False, "error": out.stderr}] * len(items)


rx = Receiver()
ENV = {"WAPI_WEBHOOKS_ALLOW_PRIVATE": "true", "WAPI_WEBHOOKS_MAX_ATTEMPTS": "4",
       "WAPI_WEBHOOKS_RETRY_BASE_MS": "300", "WAPI_WEBHOOKS_TIMEOUT_MS": "1000"}
srv = Server(workers=1, pg_url=DB, env=ENV)
origin = f"http://127.0.0.1:{srv.port}"
srv.env["BETTER_AUTH_URL"] = origin
srv.start()


def make_key(s):
    email = f"wh-{random.randrange(10**9)}@example.com"
    body = json.dumps({"email": email, "password": "password-123", "name": "Ops"}).encode()
    o = f"http://127.0.0.1:{s.port}"
    st, h, b = s.request("POST", "/api/auth/sign-up/email", body=body,
                         headers={"content-type": "application/json", "origin": o,
                                  "x-forwarded-for": f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"})
    cookie = h.get("set-cookie", "").split(";")[0]
    st, h, b = s.request("POST", "/api/auth/api-key/create", body=json.dumps({"name": "wh"}).encode(),
                         headers={"content-type": "application/json", "origin": o, "cookie": cookie})
    return json.loads(b).get("key") if st == 200 else None


key = make_key(srv)
check("signed up and created an API key", bool(key))


def api(method, path, body=None, s=None, k=None):
    s = s or srv
    data = json.dumps(body).encode() if body is not None else None
    hh = {"x-api-key": k or key}
    if data is not None:
        hh["content-type"] = "application/json"
    st, h, b = s.request(method, path, body=data, headers=hh, timeout=10)
    try:
        js = json.loads(b)
    except ValueError:
        js = None
    return st, js


def delivery(hook_id, event):
    r = sql(f"SELECT state || '|' || attempts || '|' || coalesce(last_status::text, '') || '|' || "
            f"coalesce(last_error, '') FROM wa_webhook_deliveries WHERE webhook_id = '{hook_id}' "
            f"AND event_id = {event}")
    return r.split("|") if r else None


# ---- API
st, js = api("POST", "/api/webhooks", {"url": rx.url("/ok"), "events": ["message.received"]})
ok = st == 201 and js and re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", js.get("secret", "")) and js["id"].startswith("wh_")
check("POST /api/webhooks is 201 with a generated whsec_ secret (32 bytes)", ok, js)
A = js
st, js = api("GET", f"/api/webhooks/{A['id']}")
check("GET /api/webhooks/{id}: url, events, enabled, times; the secret is not shown again",
      st == 200 and js["url"] == rx.url("/ok") and js["events"] == ["message.received"] and js["enabled"] is True
      and "secret" not in js and js["created_at"].endswith("Z"), js)
my_secret = "whsec_" + __import__("base64").b64encode(os.urandom(24)).decode()
st, js = api("POST", "/api/webhooks", {"url": rx.url("/fail500"), "events": ["*"], "secret": my_secret})
check("a given secret is kept", st == 201 and js["secret"] == my_secret, js)
B = js
bad = [("url", {"events": ["*"]}), ("url", {"url": "ftp://example.com/", "events": ["*"]}),
       ("url", {"url": "http://", "events": ["*"]}), ("url", {"url": "http://user:pw@example.com/", "events": ["*"]}),
       ("url", {"url": "http://exa mple.com/", "events": ["*"]}), ("url", {"url": 5, "events": ["*"]}),
       ("url", {"url": "http://example.com:99999/", "events": ["*"]}),
       ("events", {"url": "https://example.com/"}), ("events", {"url": "https://example.com/", "events": []}),
       ("events", {"url": "https://example.com/", "events": ["message.nope"]}),
       ("events", {"url": "https://example.com/", "events": "message.sent"}),
       ("secret", {"url": "https://example.com/", "events": ["*"], "secret": "plain"}),
       ("secret", {"url": "https://example.com/", "events": ["*"], "secret": "whsec_c2hvcnQ="})]
wrong = []
n0 = sql("SELECT count(*) FROM wa_webhooks")
for field, b in bad:
    st, js = api("POST", "/api/webhooks", b)
    if not (st == 400 and js["error"].get("field") == field):
        wrong.append((field, b, st, js))
check(f"bad webhook input is a 400 naming the field ({len(bad)} cases), nothing stored",
      not wrong and sql("SELECT count(*) FROM wa_webhooks") == n0, wrong[:3])
st, js = api("PATCH", f"/api/webhooks/{B['id']}", {"events": ["message.sent", "message.status"]})
check("PATCH changes the events", st == 200 and js["events"] == ["message.sent", "message.status"], js)
st, js = api("PATCH", f"/api/webhooks/{B['id']}", {"url": "gopher://x"})
check("PATCH with a bad url is a 400 naming url", st == 400 and js["error"]["field"] == "url", js)
api("PATCH", f"/api/webhooks/{B['id']}", {"events": ["*"]})
st, js = api("POST", "/api/webhooks", {"url": rx.url("/gone"), "events": ["*"]})
gone = js["id"]
st, _ = api("DELETE", f"/api/webhooks/{gone}")
st2, _ = api("GET", f"/api/webhooks/{gone}")
check("DELETE is 204, then the webhook is 404", st == 204 and st2 == 404, (st, st2))
st, js = api("GET", "/api/webhooks")
check("GET /api/webhooks lists them", st == 200 and [w["id"] for w in js["data"]] == [A["id"], B["id"]], js)

# ---- delivery, signature, filter
rx.modes["/fail500"] = [500]
e1 = insert_event("message.received", {"message": {"id": "3EB0AAA", "text": "hi \"there\" ✓"}})
e2 = insert_event("message.sent", {"message": {"id": "3EB0BBB"}})
srv.wait_for(lambda: len(rx.at("/ok")) >= 1, timeout=10)
time.sleep(0.5)
got = rx.at("/ok")
check("a matching event is delivered once; a non-matching type is not", len(got) == 1 and
      got[0][1].get("webhook-id") == e1, [(g[1].get("webhook-id"), g[2][:80]) for g in got])
if got:
    path, hh, body, _ = got[0]
    res = verify([(A["secret"], hh, body)])[0]
    check("the npm standardwebhooks verifier accepts the signature", res.get("ok") is True, res)
    p = res.get("payload") or {}
    check("body is {id, type, at, data} with the event's data", set(p) == {"id", "type", "at", "data"} and
          p["id"] == e1 and p["type"] == "message.received" and p["data"]["message"]["text"] == "hi \"there\" ✓"
          and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", p["at"]), p)
    check("webhook-timestamp is now (unix seconds)", abs(int(hh["webhook-timestamp"]) - time.time()) < 10, hh)
    bad_sig = verify([("whsec_" + __import__("base64").b64encode(os.urandom(32)).decode(), hh, body)])[0]
    check("and rejects it with another secret", bad_sig.get("ok") is False, bad_sig)
    check("content-type is application/json", hh.get("content-type", "").startswith("application/json"), hh)
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "delivered" else None)(delivery(A["id"], e1)), timeout=5)
check("the delivery row is delivered, 1 attempt, status 200", d and d[1] == "1" and d[2] == "200", d)

# ---- latency: the commit wakes the dispatcher (LISTEN), no polling delay
lat = []
for i in range(5):
    eid = insert_event("message.sent", {"n": i})  # B only (A takes message.received)
    t0 = time.monotonic()
    hit = srv.wait_for(lambda: [r for r in rx.reqs if r[1].get("webhook-id") == eid], timeout=5, step=0.002)
    lat.append(hit[0][3] - t0 if hit else 99)
lat.sort()
print("# commit-to-receipt ms:", [round(x * 1000, 1) for x in lat], flush=True)
check("an event reaches the receiver within 300 ms of its commit (median of 5)", lat[2] < 0.3,
      [round(x * 1000) for x in lat])

# ---- retries on 500 with growing gaps, then dead
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "dead" else None)(delivery(B["id"], e1)), timeout=30)
dead_rows = int(sql("SELECT count(*) FROM wa_webhook_deliveries WHERE state = 'dead'"))
check("/metrics: wapi_webhook_dead_letters_total counts the dead deliveries",
      dead_rows >= 1 and srv.wait_for(lambda: srv.metric("wapi_webhook_dead_letters_total") == dead_rows),
      (dead_rows, srv.metric("wapi_webhook_dead_letters_total")))
hits = [r for r in rx.at("/fail500") if r[1].get("webhook-id") == e1]
gaps = [hits[i + 1][3] - hits[i][3] for i in range(len(hits) - 1)]
check("a 500 is retried: 4 attempts, then dead with the last status", d and d[1] == "4" and d[2] == "500" and
      len(hits) == 4, (d, len(hits)))
check("the gaps grow (base 300 ms x4 each time, +-20% jitter)", len(gaps) == 3 and gaps[0] > 0.2 and
      gaps[1] > gaps[0] * 2 and gaps[2] > gaps[1] * 2, [round(g, 2) for g in gaps])
vs = verify([(B["secret"], h2, b2) for _, h2, b2, _ in hits])
check("every retry keeps the webhook-id and is signed", all(v.get("ok") for v in vs) and
      len({h2["webhook-id"] for _, h2, _, _ in hits}) == 1, vs[:1])

# ---- no retry on 400; 429 and 503 are retried; redeliver
st, C = api("POST", "/api/webhooks", {"url": rx.url("/fail400"), "events": ["message.status"]})
st, F = api("POST", "/api/webhooks", {"url": rx.url("/flaky"), "events": ["message.status"]})
rx.modes["/fail400"] = [400]
rx.modes["/flaky"] = [429, 503, 200]
e3 = insert_event("message.status", {"id": "3EB0CCC", "status": "delivered"})
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "failed" else None)(delivery(C["id"], e3)), timeout=10)
time.sleep(1.0)
check("a 400 is not retried: failed after 1 attempt", d and d[1] == "1" and d[2] == "400" and
      len(rx.at("/fail400")) == 1, (d, len(rx.at("/fail400"))))
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "delivered" else None)(delivery(F["id"], e3)), timeout=15)
check("429 and 503 are retried, then delivered on the 3rd attempt", d and d[1] == "3" and len(rx.at("/flaky")) == 3,
      (d, len(rx.at("/flaky"))))
st, js = api("GET", f"/api/webhooks/{C['id']}/deliveries")
row = js["data"][0] if st == 200 and js["data"] else {}
check("GET /api/webhooks/{id}/deliveries: the log with state, attempts, status, event",
      row.get("state") == "failed" and row.get("attempts") == 1 and row.get("last_status") == 400 and
      row.get("event_id") == e3 and row.get("event_type") == "message.status", js)
rx.modes["/fail400"] = [200]
st, js = api("POST", f"/api/webhooks/{C['id']}/deliveries/{row.get('id')}/redeliver")
check("redeliver is 202", st == 202 and js["state"] == "pending", js)
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "delivered" else None)(delivery(C["id"], e3)), timeout=10)
hits = rx.at("/fail400")
check("redelivered with the same webhook-id, signed", d and len(hits) == 2 and hits[1][1]["webhook-id"] == e3 and
      verify([(C["secret"], hits[1][1], hits[1][2])])[0].get("ok"), (d, len(hits)))
st, js = api("POST", f"/api/webhooks/{C['id']}/deliveries/999999999/redeliver")
check("redelivering an unknown delivery is 404", st == 404, js)
st, js = api("GET", f"/api/webhooks/{B['id']}/deliveries?limit=1")
st2, js2 = api("GET", f"/api/webhooks/{B['id']}/deliveries?limit=1&cursor={js.get('next_cursor')}")
check("the delivery log paginates", st == 200 and st2 == 200 and len(js["data"]) == 1 and len(js2["data"]) == 1
      and js["data"][0]["id"] != js2["data"][0]["id"], (js, js2))
st, js = api("GET", "/api/webhooks/wh_nope/deliveries")
check("the log of an unknown webhook is 404", st == 404, js)

# ---- a hanging receiver times out and does not hold others up
for w in (B, C, F):
    api("PATCH", f"/api/webhooks/{w['id']}", {"enabled": False})
st, Hh = api("POST", "/api/webhooks", {"url": rx.url("/hang"), "events": ["message.received"]})
rx.modes["/hang"] = "hang"
e4 = insert_event("message.received", {"n": 4})
srv.wait_for(lambda: len(rx.at("/hang")) >= 1, timeout=10)
t_hang = time.monotonic()
e4b = insert_event("message.received", {"n": "4b"})
srv.wait_for(lambda: any(r[1].get("webhook-id") == e4b for r in rx.at("/ok")), timeout=5)
check("while one receiver hangs, another gets the next event at once",
      any(r[1].get("webhook-id") == e4b for r in rx.at("/ok")) and time.monotonic() - t_hang < 2.5,
      time.monotonic() - t_hang)
d = srv.wait_for(lambda: (lambda r: r if r and r[3] else None)(delivery(Hh["id"], e4)), timeout=10)
check("the hanging attempt times out (1 s) and is retried", d and d[0] == "pending" and "timed out" in d[3], d)
rx.modes["/hang"] = [200]
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "delivered" else None)(delivery(Hh["id"], e4)) and
                 (lambda r: r if r and r[0] == "delivered" else None)(delivery(Hh["id"], e4b)), timeout=15)
check("then delivered once the receiver answers", d is not None, delivery(Hh["id"], e4))

# ---- a receiver that drips its answer is cut off at the attempt's deadline (2 x timeout)
st, Dr = api("POST", "/api/webhooks", {"url": rx.url("/drip"), "events": ["message.received"]})
rx.modes["/drip"] = "drip"
e_drip = insert_event("message.received", {"n": "drip"})
d = srv.wait_for(lambda: (lambda r: r if r and "whole attempt" in r[3] else None)(delivery(Dr["id"], e_drip)),
                 timeout=8)
check("a target dripping its answer byte by byte is cut off at the deadline and retried", d and d[0] == "pending", d)
api("DELETE", f"/api/webhooks/{Dr['id']}")

# ---- the database restarts
sup_pid = srv.proc.pid
pg("stop")
time.sleep(2)
pg("start")
n_ok = len(rx.at("/ok"))
e5 = None
for _ in range(50):
    try:
        e5 = insert_event("message.received", {"n": 5})
        break
    except RuntimeError:
        time.sleep(0.2)
srv.wait_for(lambda: any(r[1].get("webhook-id") == e5 for r in rx.at("/ok")), timeout=20)
check("after PostgreSQL restarts, events are delivered again by the same supervisor",
      e5 and any(r[1].get("webhook-id") == e5 for r in rx.at("/ok")) and srv.proc.poll() is None and
      srv.proc.pid == sup_pid, e5)

# ---- late commit: an event whose id is older than ones already fanned out
late = int(time.time() * 1000 - 3000) * 1000 + 7
sql(f"INSERT INTO wa_events (id, type, data) VALUES ({late}, 'message.received', '{{}}'::jsonb)")
srv.wait_for(lambda: any(r[1].get("webhook-id") == str(late) for r in rx.at("/ok")), timeout=10)
check("an event committed late (older id than ones already seen) is still delivered",
      any(r[1].get("webhook-id") == str(late) for r in rx.at("/ok")))
# A transaction that stays open 12 s after taking its event id still gets its event delivered.
slow_id = event_id()
slow = subprocess.Popen(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c",
                         f"BEGIN; INSERT INTO wa_events (id, type, data) VALUES ({slow_id}, 'message.received', "
                         f"'{{}}'::jsonb); SELECT pg_sleep(12); COMMIT;"], stdout=subprocess.DEVNULL)
for i in range(3):
    insert_event("message.received", {"while": "slow"})
slow.wait(timeout=30)
srv.wait_for(lambda: any(r[1].get("webhook-id") == str(slow_id) for r in rx.at("/ok")), timeout=10)
check("an event whose transaction commits 12 s after newer ones is delivered too",
      any(r[1].get("webhook-id") == str(slow_id) for r in rx.at("/ok")))
dups = {}
for r in rx.at("/ok"):
    dups[r[1]["webhook-id"]] = dups.get(r[1]["webhook-id"], 0) + 1
check("no event was delivered twice to the receiver that always answers 200",
      all(v == 1 for v in dups.values()), dups)

# ---- the supervisor dies (kill -9) once the fan-out statement has claimed a delivery, before any answer
st, K = api("POST", "/api/webhooks", {"url": rx.url("/crash"), "events": ["message.sent"]})
rx.modes["/crash"] = "hang"
e_crash = insert_event("message.sent", {"n": "crash"})
srv.wait_for(lambda: rx.at("/crash"), timeout=10)
srv.kill()
row = sql(f"SELECT state || '|' || attempts || '|' || (next_attempt_at > now()) || '|' || "
          f"(last_attempt_at = created_at) FROM wa_webhook_deliveries WHERE webhook_id = '{K['id']}' "
          f"AND event_id = {e_crash}").split("|")
check("killed mid-attempt: the delivery is pending, 1 attempt, leased, claimed by the statement that made it",
      row == ["pending", "1", "true", "true"], row)
rx.modes["/crash"] = [200]
srv.start()
d = srv.wait_for(lambda: (lambda r: r if r and r[0] == "delivered" else None)(delivery(K["id"], e_crash)),
                 timeout=30, step=0.2)
hits = rx.at("/crash")
check("after a restart it is delivered once its lease ends (same webhook-id, 2nd attempt)",
      d and d[1] == "2" and len(hits) == 2 and hits[1][1].get("webhook-id") == e_crash and
      hits[1][3] - hits[0][3] > 9, (d, [(h[1].get("webhook-id"), round(h[3] - hits[0][3], 1)) for h in hits]))

# ---- the fan-out is a prepared statement: a schema change that alters its result must not stall it
e_warm = insert_event("message.sent", {"n": "warm"})
srv.wait_for(lambda: any(r[1].get("webhook-id") == e_warm for r in rx.at("/crash")), timeout=10)
sql("ALTER TABLE wa_webhooks ALTER COLUMN url TYPE varchar(2000)")
e_alt = insert_event("message.sent", {"n": "altered"})
srv.wait_for(lambda: any(r[1].get("webhook-id") == e_alt for r in rx.at("/crash")), timeout=15)
check("after a schema change under the prepared fan-out, events are still delivered",
      any(r[1].get("webhook-id") == e_alt for r in rx.at("/crash")), delivery(K["id"], e_alt))


# ---- kept connections: a receiver that drops a kept-alive connection when the next request arrives on it
class DropSecond(socketserver.BaseRequestHandler):
    seen = []  # (webhook-id, request number on its connection)

    def handle(self):
        buf, n = b"", 0
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            hdrs = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
            hdrs = {k.lower(): v for k, v in hdrs.items()}
            length = int(hdrs.get("content-length", "0"))
            while len(buf) < length:
                buf += self.request.recv(65536)
            buf = buf[length:]
            n += 1
            DropSecond.seen.append((hdrs.get("webhook-id"), n))
            if n > 1:
                return  # closed with no answer, as an idle timeout racing the request would
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


drop_srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), DropSecond)
drop_srv.daemon_threads = True
threading.Thread(target=drop_srv.serve_forever, daemon=True).start()
st, KA = api("POST", "/api/webhooks", {"url": f"http://127.0.0.1:{drop_srv.server_address[1]}/ka",
                                       "events": ["message.sent"]})
ka_events = []
for i in range(3):
    ka_events.append(insert_event("message.sent", {"n": f"ka{i}"}))
    srv.wait_for(lambda: (lambda r: r and r[0] == "delivered")(delivery(KA["id"], ka_events[-1])), timeout=10)
ka_rows = [delivery(KA["id"], e) for e in ka_events]
check("a kept connection the receiver drops as a request arrives: sent again on a new one, same attempt",
      all(r and r[0] == "delivered" and r[1] == "1" for r in ka_rows) and
      any(n > 1 for _, n in DropSecond.seen), (ka_rows, DropSecond.seen))
drop_srv.shutdown()
srv.stop()
check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports()[:3])

# ---- private targets refused when allow_private is off
DB2 = fresh("wapi_it_webhooks_private")
srv2 = Server(workers=1, pg_url=DB2, env={"WAPI_WEBHOOKS_RETRY_BASE_MS": "200"})
srv2.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv2.port}"
srv2.start()
key2 = make_key(srv2)
refused = []
for u in ("http://127.0.0.1:9/", "http://10.1.2.3/", "http://192.168.1.1/", "http://169.254.169.254/latest",
          "http://[::1]:8080/", "http://localhost/", "http://0x7f.0.0.1/", "http://2130706433/",
          "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/", "http://100.64.0.1/"):
    st, js = api("POST", "/api/webhooks", {"url": u, "events": ["*"]}, s=srv2, k=key2)
    if not (st == 400 and js["error"]["field"] == "url" and js["error"]["code"] == "private_url"):
        refused.append((u, st, js))
check("private, loopback, link-local, CGNAT and unique-local targets are refused at creation", not refused, refused)
# A name that resolves to loopback passes creation; the dispatcher refuses after resolving it.
name = socket.gethostname()
st, P = api("POST", "/api/webhooks", {"url": f"http://{name}:{rx.port}/private", "events": ["*"]}, s=srv2, k=key2)
check("a host name is accepted at creation", st == 201, P)
# And a row that bypassed the API (a literal loopback address).
sql(f"INSERT INTO wa_webhooks (id, url, events, secret) VALUES ('wh_literal', '{rx.url('/private')}', "
    f"'{{*}}', '{my_secret}')", DB2)
e6 = insert_event("message.received", {"n": 6}, DB2)
ok = srv2.wait_for(lambda: sql(f"SELECT count(*) FROM wa_webhook_deliveries WHERE event_id = {e6} "
                               f"AND state = 'failed' AND last_error LIKE '%private%'", DB2) == "2", timeout=10)
check("at delivery, targets resolving to private addresses are refused (failed, not retried)", ok,
      sql(f"SELECT webhook_id, state, attempts, last_error FROM wa_webhook_deliveries WHERE event_id = {e6}", DB2))
check("and the private receiver never saw a request", not rx.at("/private"))
srv2.stop()
pg("stop")
done()
