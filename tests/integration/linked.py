"""Shared set-up for suites that need a signed-up user, an API key and a
WhatsApp session linked to the fake server: a private database dropped at
exit, the key, JSON calls, linking by QR through the API, psql queries."""
import atexit
import json
import random
import re
import subprocess

from harness import contract_log, fresh_database, wait

_URL = re.compile(r"^(postgres(?:ql)?://[^/?]*/)([^?]*)")


def private_database(name):
    """fresh_database(name), dropped when the run ends."""
    db = fresh_database(name)

    @atexit.register
    def _drop():
        admin = _URL.sub(r"\1postgres", db)
        subprocess.run(["psql", admin, "-qAtX", "-c", f'DROP DATABASE IF EXISTS "{_URL.match(db).group(2)}" WITH (FORCE)'],
                       capture_output=True)
    return db


def psql(db, sql, *args):
    """Rows of a query as lists of strings; args are bound as psql variables :'p0', :'p1', ...
    A failing query raises RuntimeError with psql's message."""
    cmd = ["psql", db, "-qAtX", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args):
        cmd += ["-v", f"p{i}={a}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


class Api:
    """Signs up a user on srv (started), makes an API key, then calls with it."""

    def __init__(self, srv):
        self.srv = srv
        origin = f"http://127.0.0.1:{srv.port}"
        email = f"user-{random.randrange(10**9)}@example.com"
        hh = {"content-type": "application/json", "origin": origin,
              "x-forwarded-for": f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"}
        _, h, _ = srv.request("POST", "/api/auth/sign-up/email", headers=hh,
                              body=json.dumps({"email": email, "password": "password-123", "name": "Ops"}).encode())
        cookie = h.get("set-cookie", "").split(";")[0]
        self.cookie, self.origin = cookie, origin  # the signed-in session, for what only a session may do
        st, _, b = srv.request("POST", "/api/auth/api-key/create", body=json.dumps({"name": "suite"}).encode(),
                               headers={"content-type": "application/json", "origin": origin, "cookie": cookie})
        self.key = json.loads(b).get("key") if st == 200 else None

    def __call__(self, method, path, body=None, timeout=20):
        data = json.dumps(body).encode() if body is not None else None
        hh = {"x-api-key": self.key}
        if data is not None:
            hh["content-type"] = "application/json"
        st, _, b = self.srv.request(method, path, body=data, headers=hh, timeout=timeout)
        try:
            return st, json.loads(b)
        except ValueError:
            return st, None

    def link(self, wa):
        """Starts the session, has the fake phone scan the QR; True once connected with prekeys uploaded."""
        self("POST", "/api/session/start")
        if not wait(lambda: self("GET", "/api/session")[1].get("state") == "qr"):
            return False
        _, _, raw = self.srv.request("GET", "/api/session/qr?format=raw", headers={"x-api-key": self.key})
        res = wa.call("POST", "/phone/scan", {"qr": raw.decode(), "timeoutMs": 10000})
        ok = res.get("ok") is True and wait(lambda: self("GET", "/api/session")[1].get("state") == "connected")
        return bool(ok and wa.wait_event("prekeys.upload", timeout=15))


class WebhookReceiver:
    """A loopback HTTP server recording each POST as (headers lowercased, body text)."""

    def __init__(self):
        import http.server
        import threading
        self.received = []
        rec = self.received

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                rec.append(({k.lower(): v for k, v in self.headers.items()}, body))
                contract_log("webhook", body=body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/wapi"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of_type(self, etype, pred=lambda p: True):
        """[(headers, body, payload)] of the deliveries of this event type."""
        out = []
        for h, b in list(self.received):
            p = json.loads(b)
            if p.get("type") == etype and pred(p):
                out.append((h, b, p))
        return out

    def verify(self, secret, deliveries=None):
        """Runs the standardwebhooks package's verifier over deliveries (default: all): [{ok, ...}]."""
        import os
        from harness import ROOT
        items = [{"secret": secret, "headers": {k: h.get(k, "") for k in
                                                ("webhook-id", "webhook-timestamp", "webhook-signature")}, "body": b}
                 for h, b in (deliveries if deliveries is not None else list(self.received))]
        out = subprocess.run(["node", os.path.join(ROOT, "tests/webhooks/verify.mjs")], input=json.dumps(items),
                             capture_output=True, text=True).stdout
        return json.loads(out or "[]")


class SSE:
    """GET /api/events with an API key, read in a thread: .events is a list of {id, event, data}."""

    def __init__(self, srv, key):
        import http.client
        import threading
        self.events = []
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        self.conn.request("GET", "/api/events", headers={"x-api-key": key})
        self.resp = self.conn.getresponse()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        cur = {}
        try:
            while True:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if cur.get("data"):
                        self.events.append(cur)
                        contract_log("sse", event=cur.get("event"), data=cur["data"])
                    cur = {}
                elif ":" in line and not line.startswith(":"):
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v
        except (OSError, AttributeError, ValueError) as e:
            self.err = repr(e)
            return


class BaileysPeer:
    """An unmodified Baileys client (tests/wa/lib/baileys_peer.mjs), linked as a
    companion of account `phone` on the fake server, driven by JSON lines;
    nice > 0 runs it at that lower priority; args: more of its options."""

    def __init__(self, wa, phone, nice=0, env=None, args=()):
        import json
        import os
        import threading
        from harness import ROOT
        self.json = json
        self.p = subprocess.Popen([*(["nice", "-n", str(nice)] if nice else []), "node",
                                   os.path.join(ROOT, "tests/wa/lib/baileys_peer.mjs"), "--url", wa.url,
                                   "--version", wa.version, "--control", wa.control, "--phone", phone, *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True,
                                  env={**os.environ, **(env or {})})
        self.lines = []

        def read():
            for line in self.p.stdout:
                if line.startswith("{"):
                    try:
                        self.lines.append(json.loads(line))
                    except ValueError:
                        pass
        threading.Thread(target=read, daemon=True).start()

    def ready(self, timeout=60):
        """True once logged in."""
        wait(lambda: [x for x in self.lines if "ready" in x or "error" in x], timeout)
        return any("ready" in x for x in self.lines)

    def start(self, cmd):
        """Sends one command; the mark to pass to result()."""
        n = len(self.lines)
        self.p.stdin.write(self.json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return n

    def result(self, key, mark, timeout=60):
        """The first line after mark holding key (or an error), or None."""
        got = wait(lambda: [x for x in self.lines[mark:] if key in x or "error" in x], timeout)
        return got[0] if got else None

    def stream(self, **kw):
        """{"op":"stream", ...} and its result: the ids sent, or None."""
        r = self.result("streamed", self.start(dict(op="stream", **kw)), kw.get("seconds", 60) + 120)
        return r["streamed"]["ids"] if r and "streamed" in r else None

    def quit(self):
        try:
            self.start({"op": "quit"})
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
