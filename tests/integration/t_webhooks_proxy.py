#!/usr/bin/env python3
"""webhooks.proxy with real proxies started here: microsocks (SOCKS5 with a
user name and password) and tinyproxy (HTTP with Basic credentials), each
binding its outgoing connections to an address of its own (127.0.0.2,
127.0.0.3), so the webhook receiver sees where every delivery came from.
Deliveries go through the proxy, signed as always, none direct; a dead proxy
makes failed attempts whose error names it (without the password), retried
until the proxy is up; refused credentials are a clear error; the password
never reaches the log."""
import atexit
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, check, done, free_port  # noqa: E402
from linked import Api, private_database, wait  # noqa: E402

DB = private_database(f"wapi_it_whproxy_{os.getpid()}")
SECRET = "wh00k_proxy_pass"  # tinyproxy's BasicAuth takes no @ or :


def up(port):
    def connects():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    return wait(connects, timeout=10)


def microsocks(port, password=SECRET):
    p = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(port), "-u", "wapi", "-P", password,
                          "-b", "127.0.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(p.kill)
    return p


tmp = tempfile.mkdtemp(prefix="wapi-whproxy-")
os.chmod(tmp, 0o777)
atexit.register(shutil.rmtree, tmp, True)
SOCKS_PORT = free_port()
socks = microsocks(SOCKS_PORT)
HTTP_PORT = free_port()
tlog = os.path.join(tmp, "tinyproxy.log")
with open(tlog, "w"):
    pass
os.chmod(tlog, 0o666)
with open(os.path.join(tmp, "tinyproxy.conf"), "w") as f:
    f.write(f"User nobody\nGroup nogroup\nPort {HTTP_PORT}\nListen 127.0.0.1\nBind 127.0.0.3\nTimeout 60\n"
            f"LogFile \"{tlog}\"\nLogLevel Connect\nMaxClients 20\nAllow 127.0.0.1\nBasicAuth wapi {SECRET}\n")
tiny = subprocess.Popen(["tinyproxy", "-d", "-c", os.path.join(tmp, "tinyproxy.conf")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
atexit.register(tiny.kill)
check("microsocks and tinyproxy listen", up(SOCKS_PORT) and up(HTTP_PORT))


class Rx:
    """A webhook receiver that records where each POST came from."""

    def __init__(self):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n).decode()
                outer.got.append((self.client_address[0], {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def of(self, mid):
        return [g for g in self.got if json.loads(g[2]).get("data", {}).get("id") == mid]


rx = Rx()
wa = FakeWA()
atexit.register(wa.stop)
BASE = dict(wa.env(), WAPI_WEBHOOKS_ALLOW_PRIVATE="true", WAPI_WEBHOOKS_RETRY_BASE_MS="200",
            WAPI_WEBHOOKS_TIMEOUT_MS="3000")
SOCKS_URL = f"socks5h://wapi:{SECRET}@127.0.0.1:{SOCKS_PORT}"
srv = Server(workers=1, env=dict(BASE, WAPI_WEBHOOKS_PROXY=SOCKS_URL), pg_url=DB)
SESSIONS = srv.env["WAPI_PATHS_SESSIONS"]
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
servers = [srv]
api = Api(srv)
check("signed up, linked", bool(api.key) and api.link(wa))
st, js = api("POST", "/api/webhooks", {"url": rx.url, "events": ["message.received"]})
HID, HSECRET = js.get("id"), js.get("secret")
check("a webhook to a receiver on 127.0.0.1", st == 201 and HID and HSECRET, (st, js))


def restart(proxy):
    global srv
    srv.stop()
    srv = Server(workers=1, env=dict(BASE, WAPI_WEBHOOKS_PROXY=proxy, WAPI_PATHS_SESSIONS=SESSIONS), pg_url=DB)
    servers.append(srv)
    srv.start()
    api.srv = srv
    return wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60)


def verify(items):
    data = [{"secret": HSECRET, "headers": {k: h.get(k, "") for k in ("webhook-id", "webhook-timestamp",
                                                                     "webhook-signature")}, "body": b}
            for _, h, b in items]
    out = subprocess.run(["node", os.path.join(ROOT, "tests/webhooks/verify.mjs")], input=json.dumps(data),
                         capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def deliveries():
    st, js = api("GET", f"/api/webhooks/{HID}/deliveries?limit=100")
    return js.get("data", []) if st == 200 else []


# ---- through SOCKS5 (with credentials)
ids = [wa.call("POST", "/peer/send", {"text": f"via socks {i}"})["id"] for i in range(3)]
got = wait(lambda: all(rx.of(i) for i in ids), timeout=20)
check("three deliveries arrived", got, [len(rx.of(i)) for i in ids])
items = [x for i in ids for x in rx.of(i)]
check("each came from microsocks' address (127.0.0.2), none direct", items and
      all(ip == "127.0.0.2" for ip, _, _ in items), [ip for ip, _, _ in items])
check("each verifies with the standardwebhooks package", all(r.get("ok") for r in verify(items)), verify(items))

# ---- through HTTP (tinyproxy, Basic credentials)
HTTP_URL = f"http://wapi:{SECRET}@127.0.0.1:{HTTP_PORT}"
check("restart with webhooks.proxy = http://…: connected", restart(HTTP_URL))
mid = wa.call("POST", "/peer/send", {"text": "via http"})["id"]
check("a delivery through tinyproxy: from its address (127.0.0.3), signed",
      wait(lambda: rx.of(mid), timeout=20) and rx.of(mid)[0][0] == "127.0.0.3" and verify(rx.of(mid))[0].get("ok"),
      rx.of(mid))
check("tinyproxy's log shows it", wait(lambda: str(rx.srv.server_address[1]) in open(tlog).read(), timeout=5))

# ---- a dead proxy: failed attempts naming it, then delivered once it is up
DEAD = free_port()
check("restart with a proxy nobody listens on: connected",
      restart(f"socks5h://wapi:{SECRET}@127.0.0.1:{DEAD}"))
mid = wa.call("POST", "/peer/send", {"text": "while the proxy is down"})["id"]
failed = wait(lambda: [d for d in deliveries() if d.get("last_error") and f"127.0.0.1:{DEAD}" in d["last_error"]],
              timeout=20)
err = failed[0]["last_error"] if failed else ""
check("the attempt failed and its error names the proxy, not the password",
      failed and "socks5h://wapi:***@127.0.0.1:" in err and SECRET not in err, err)
late = microsocks(DEAD)
check("once the proxy is up, the retry delivers it through the proxy",
      up(DEAD) and wait(lambda: rx.of(mid), timeout=30) and rx.of(mid)[0][0] == "127.0.0.2", rx.of(mid))

# ---- refused credentials: a clear error
check("restart with the wrong password: connected", restart(f"socks5h://wapi:wrong-pass@127.0.0.1:{SOCKS_PORT}"))
mid = wa.call("POST", "/peer/send", {"text": "wrong password"})["id"]
refused = wait(lambda: [d for d in deliveries() if d.get("last_error") and "wapi:***@" in d["last_error"] and
                        str(SOCKS_PORT) in d["last_error"]], timeout=20)
check("refused by the proxy: the error names it and the refusal", refused and not rx.of(mid) and
      ("auth" in refused[0]["last_error"].lower() or "proxy" in refused[0]["last_error"].lower()),
      refused[0]["last_error"] if refused else deliveries()[:2])

# ---- bad configuration refuses to start
bad = subprocess.run([os.path.join(ROOT, "build/wapi"), "-t"], env=dict(os.environ, DATABASE_URL=DB,
                                                                        WAPI_WEBHOOKS_PROXY="ftp://x:y@h"),
                     capture_output=True, text=True, timeout=30)
check("webhooks.proxy = ftp://…: the config check fails naming the setting",
      bad.returncode != 0 and "webhooks.proxy" in bad.stdout + bad.stderr and "y@" not in bad.stdout + bad.stderr,
      (bad.returncode, (bad.stdout + bad.stderr)[-300:]))
logs = "".join(s.log() for s in servers)
check("the proxy password never appears in the logs", SECRET not in logs and "wrong-pass" not in logs)
check("the dispatcher says which proxy it uses (redacted)", f"socks5h://wapi:***@127.0.0.1:{SOCKS_PORT}" in logs)
srv.stop()
done()
