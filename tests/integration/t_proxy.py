#!/usr/bin/env python3
"""whatsapp.proxy with real proxies started here: microsocks (SOCKS5 with a
user name and password) and tinyproxy (HTTP CONNECT with Basic credentials),
each binding its outgoing connections to an address of its own (127.0.0.2,
127.0.0.3), so the fake WhatsApp server and its media hosts see where every
connection came from. Through SOCKS5: pairing, a text both ways, an image sent
(uploaded through the proxy) and one received from Baileys (downloaded through
it); no connection reaches the fake server or the media hosts directly.
Through HTTP CONNECT: the session logs in and a message goes; tinyproxy's log
shows the CONNECTs. A dead proxy: reconnecting, last_error naming the proxy;
wrong credentials: a clear error; the password never in the log."""
import atexit
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done, free_port  # noqa: E402
from linked import Api, BaileysPeer, private_database, wait  # noqa: E402
import mediafiles  # noqa: E402

DB = private_database(f"wapi_it_proxy_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
PEER = "15550009999@s.whatsapp.net"
BPHONE = "15550007777"
SECRET = "s3cr3t_proxy_pass"  # tinyproxy's BasicAuth takes no @ or :


def up(port):
    def connects():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    return wait(connects, timeout=10)


tmp = tempfile.mkdtemp(prefix="wapi-proxy-")
os.chmod(tmp, 0o777)
atexit.register(shutil.rmtree, tmp, True)

SOCKS_PORT = free_port()
socks = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(SOCKS_PORT), "-u", "wapi", "-P", SECRET,
                          "-b", "127.0.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
atexit.register(socks.kill)
HTTP_PORT = free_port()
tlog = os.path.join(tmp, "tinyproxy.log")
with open(tlog, "w"):
    pass
os.chmod(tlog, 0o666)  # tinyproxy writes it as nobody
with open(os.path.join(tmp, "tinyproxy.conf"), "w") as f:
    f.write(f"User nobody\nGroup nogroup\nPort {HTTP_PORT}\nListen 127.0.0.1\nBind 127.0.0.3\nTimeout 60\n"
            f"LogFile \"{tlog}\"\nLogLevel Connect\nMaxClients 20\nAllow 127.0.0.1\n"
            f"BasicAuth wapi {SECRET}\n")
tiny = subprocess.Popen(["tinyproxy", "-d", "-c", os.path.join(tmp, "tinyproxy.conf")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
atexit.register(tiny.kill)
check("microsocks and tinyproxy listen", up(SOCKS_PORT) and up(HTTP_PORT))

ca_dir = tempfile.mkdtemp(prefix="wapi-media-ca-")
wa = FakeWA("--media-ca", ca_dir)
atexit.register(wa.stop)
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca})
SOCKS_URL = f"socks5h://wapi:{SECRET.replace('@', '%40')}@127.0.0.1:{SOCKS_PORT}"
srv = Server(workers=1, env=dict(env, WAPI_WHATSAPP_PROXY=SOCKS_URL))
servers = [srv]
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)


def opens(since=0):
    return [e.get("remote", "") for e in wa.events(since, "ws.open")]


# ---- SOCKS5: pairing, messages, media both ways
check("paired by QR through the SOCKS5 proxy", api.link(wa))
check("every connection to the fake server came from the proxy (127.0.0.2)",
      opens() and all(r.startswith("127.0.0.2:") for r in opens()), opens())
st, js = api("POST", "/api/messages", {"to": PEER, "text": "through socks"})
check("a text through the proxy reaches the peer", st == 202 and wait(
    lambda: any(m["id"] == js["id"] for m in wa.call("GET", "/peer/received")), timeout=20), (st, js))
seq = wa.last_seq()
r = wa.call("POST", "/peer/send", {"text": "to you, via socks"})
check("a text from the peer arrives", wait(lambda: api("GET", f"/api/messages/{r.get('id')}")[0] == 200, timeout=20), r)

PNG = mediafiles.png_wh(33, 22, seed=3)
st, _, b = srv.request("POST", "/api/media", body=PNG, headers={"x-api-key": api.key, "content-type": "image/png"})
import json  # noqa: E402
mid = json.loads(b)["id"] if st == 201 else None
st, js = api("POST", "/api/messages", {"to": PEER, "kind": "image", "media": {"id": mid}})
check("an image sent through the proxy is recorded sent (uploaded to the media host)", st == 202 and wait(
    lambda: api("GET", f"/api/messages/{js['id']}")[1].get("status") in ("sent", "delivered", "read"), timeout=30),
    (st, js))
peer = BaileysPeer(wa, BPHONE, env={"NODE_EXTRA_CA_CERTS": wa.media_ca})
atexit.register(lambda: peer.p.poll() is None and peer.p.kill())
check("Baileys linked as a companion of another account", peer.ready())
tmpf = os.path.join(tmp, "in.png")
IN = mediafiles.png_wh(40, 10, seed=4)
with open(tmpf, "wb") as f:
    f.write(IN)
res = peer.result("sent", peer.start(dict(op="sendMedia", to=wa.phone + "@s.whatsapp.net", kind="image",
                                          path=tmpf, mimetype="image/png")), timeout=60)
rid = res.get("sent") if res else None


def stored():
    st_, m = api("GET", f"/api/messages/{rid}")
    return m if st_ == 200 and m.get("media", {}).get("state") == "stored" else None


m = wait(stored, timeout=40) if rid else None
got = srv.request("GET", f"/api/media/{m['media']['id']}", headers={"x-api-key": api.key})[2] if m else b""
check("an image from Baileys is downloaded through the proxy, byte for byte",
      hashlib.sha256(got).digest() == hashlib.sha256(IN).digest(), (rid, m))
reqs = wa.call("GET", "/media/requests")
by = lambda method, addr: len([q for q in reqs if q["method"] == method and q["remote"].endswith(addr)])  # noqa: E731
check("the media hosts saw wapi's upload and download from the proxy (127.0.0.2); from 127.0.0.1 only Baileys' "
      "upload and its own download of what it sent (Baileys connects directly)", by("POST", "127.0.0.2") >= 1 and by("GET", "127.0.0.2") >= 1 and
      by("POST", "127.0.0.1") == 1 and by("GET", "127.0.0.1") <= 1, reqs)
peer.quit()

# ---- the same session through HTTP CONNECT
keep = {"WAPI_PATHS_SESSIONS": srv.env["WAPI_PATHS_SESSIONS"], "WAPI_PATHS_MEDIA": srv.env["WAPI_PATHS_MEDIA"]}
srv.stop()
seq = wa.last_seq()
srv = Server(workers=1, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep,
                                 WAPI_WHATSAPP_PROXY=f"http://wapi:{SECRET.replace('@', '%40')}@127.0.0.1:{HTTP_PORT}"))
servers.append(srv)
srv.start()
api.srv = srv
check("logged in through the HTTP proxy (CONNECT)",
      wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=30), api("GET", "/api/session"))
check("... from the proxy's address (127.0.0.3)", opens(seq) and all(r.startswith("127.0.0.3:") for r in opens(seq)),
      opens(seq))
st, js = api("POST", "/api/messages", {"to": PEER, "text": "through http"})
check("a text through the HTTP proxy reaches the peer", st == 202 and wait(
    lambda: any(x["id"] == js["id"] for x in wa.call("GET", "/peer/received")), timeout=20))
log = open(tlog, errors="replace").read() if os.path.exists(tlog) else ""
check("tinyproxy's log shows the CONNECT to the fake server", "CONNECT" in log and
      wa.url.split("//")[1].split("/")[0] in log, log[-500:])

# ---- a dead proxy, a refused password
def restart_with(url):
    global srv
    srv.stop()
    srv = Server(workers=1, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep, WAPI_WHATSAPP_PROXY=url))
    servers.append(srv)
    srv.start()
    api.srv = srv


dead = free_port()
restart_with(f"socks5h://127.0.0.1:{dead}")
s = wait(lambda: (lambda x: x if x.get("state") == "reconnecting" and x.get("last_error") else None)(
    api("GET", "/api/session")[1]), timeout=20)
check("a dead proxy: reconnecting, last_error naming the proxy",
      s and f"127.0.0.1:{dead}" in s["last_error"] and "proxy" in s["last_error"], s)
restart_with(f"socks5h://wapi:wrong@127.0.0.1:{SOCKS_PORT}")
s = wait(lambda: (lambda x: x if x.get("last_error") else None)(api("GET", "/api/session")[1]), timeout=20)
check("a refused password: a clear error, the password not in it",
      s and "refused the user name and password" in s["last_error"] and "wrong" not in s["last_error"], s)
restart_with(f"http://wapi:wrong@127.0.0.1:{HTTP_PORT}")
s = wait(lambda: (lambda x: x if x.get("last_error") else None)(api("GET", "/api/session")[1]), timeout=20)
check("HTTP proxy refusing the credentials: said so, with its status", s and
      "refused the user name and password (40" in s["last_error"] and "wrong" not in s["last_error"], s)
# wss:// through the tunnel: TLS over the proxy's connection, the certificate checked for the
# name. The fake media hosts speak HTTPS under the test CA (no WebSocket): reaching their 404
# answer to the upgrade means the TLS handshake through the proxy succeeded.
media_port = (wa.media_host or "").split(":")[-1]
srv.stop()
srv = Server(workers=1, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep, WAPI_WHATSAPP_PROXY=SOCKS_URL,
                                 WAPI_WHATSAPP_URL=f"wss://localhost:{media_port}/ws/chat"))
servers.append(srv)
srv.start()
api.srv = srv
s = wait(lambda: (lambda x: x if x.get("last_error") else None)(api("GET", "/api/session")[1]), timeout=20)
check("wss:// through the SOCKS5 tunnel: TLS verified for the host, then the upgrade (refused by a host that "
      "is no WebSocket server)", s and "websocket upgrade refused" in s["last_error"] and "404" in s["last_error"], s)
srv.stop()
srv = Server(workers=1, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep, WAPI_WHATSAPP_PROXY=SOCKS_URL,
                                 WAPI_WHATSAPP_URL=f"wss://localhost:{media_port}/ws/chat", SSL_CERT_FILE=""))
servers.append(srv)
srv.start()
api.srv = srv
s = wait(lambda: (lambda x: x if x.get("last_error") else None)(api("GET", "/api/session")[1]), timeout=20)
check("... and without the test CA trusted: a TLS verification error, no upgrade",
      s and "TLS" in s["last_error"] and "upgrade" not in s["last_error"], s)
srv.stop()
logs = "".join(x.log() for x in servers)
check(f"the proxy password is in no log line ({len(servers)} servers' logs)", SECRET not in logs and
      "proxy http://wapi:***@" in logs and "socks5h://wapi:***@" in logs)
bad = Server(workers=1, env=dict(env, WAPI_WHATSAPP_PROXY="socks4://127.0.0.1:1"))
rc = bad.start(wait=False).proc.wait(20)
check("a malformed whatsapp.proxy stops the start, naming the setting", rc not in (0, None) and
      "WAPI_WHATSAPP_PROXY" in bad.log(), (rc, bad.log()[-300:]))
done()
