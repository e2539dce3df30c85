#!/usr/bin/env python3
"""The supervisor's outgoing HTTP client (supervisor/http_client.c, libcurl on
libevent), driven by build/tests/tools/http_client_tool against HTTPS and HTTP
servers of this test: trust from SSL_CERT_FILE / SSL_CERT_DIR only (an
unknown CA is refused), bodies byte-exact both ways (a 5 MiB POST streamed
from a file, with its Content-Length and no Expect), the size limit (declared
and undeclared), timeouts, redirects (followed up to the limit), private
addresses refused, error statuses reported without their bodies, a receiver
that stops, 40 requests at once, and no leak under ASan."""
import hashlib
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, check, done  # noqa: E402

TOOLS = [os.path.join(ROOT, "build/tests/tools/http_client_tool")]
SAN = os.path.join(ROOT, "build/san/tests/tools/http_client_tool")
if os.path.exists(SAN):
    TOOLS.append(SAN)

tmp = tempfile.mkdtemp(prefix="wapi-httpc-")


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


# A CA of this test and a server certificate for 127.0.0.1 signed by it, and
# a second CA nobody trusts.
for name in ("ca", "other"):
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
       "-subj", f"/CN=wapi test {name}", "-keyout", f"{tmp}/{name}.key", "-out", f"{tmp}/{name}.pem")
sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
   "-keyout", f"{tmp}/srv.key", "-out", f"{tmp}/srv.csr")
with open(f"{tmp}/ext", "w") as f:
    f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
sh("openssl", "x509", "-req", "-in", f"{tmp}/srv.csr", "-CA", f"{tmp}/ca.pem", "-CAkey", f"{tmp}/ca.key",
   "-CAcreateserial", "-days", "2", "-extfile", f"{tmp}/ext", "-out", f"{tmp}/srv.pem")
os.mkdir(f"{tmp}/cadir")
shutil.copy(f"{tmp}/ca.pem", f"{tmp}/cadir/ca.pem")
sh("openssl", "rehash", f"{tmp}/cadir")


def blob(n, seed=1):
    out, x = bytearray(), seed.to_bytes(8, "big")
    while len(out) < n:
        x = hashlib.sha256(x).digest()
        out += x
    return bytes(out[:n])


uploads = []


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        p = self.path
        m = re.fullmatch(r"/file/(\d+)", p)
        if m:
            return self.send(200, blob(int(m.group(1))), [("Content-Type", "application/octet-stream")])
        m = re.fullmatch(r"/chunked/(\d+)", p)
        if m:  # no Content-Length: the limit must hold on the bytes themselves
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = blob(int(m.group(1)))
            for i in range(0, len(data), 65536):
                c = data[i:i + 65536]
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                except OSError:
                    return
            self.wfile.write(b"0\r\n\r\n")
            return
        m = re.fullmatch(r"/redirect/(\d+)", p)
        if m:
            k = int(m.group(1))
            return self.send(302, b"", [("Location", "/file/1000" if k == 0 else f"/redirect/{k - 1}")])
        m = re.fullmatch(r"/status/(\d+)", p)
        if m:
            return self.send(int(m.group(1)), b"an error page that must not be handed on")
        if p == "/slow":
            time.sleep(3)
            return self.send(200, b"late")
        self.send(404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "-1"))
        body = self.rfile.read(n) if n >= 0 else b""
        uploads.append((self.path, n, hashlib.sha256(body).hexdigest(), self.headers.get("Expect"),
                        self.headers.get("X-Test")))
        self.send(200, b'{"url":"https://mmg.example/x","direct_path":"/v/t62/x"}', [("Content-Type", "application/json")])


class Srv(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that leave early (timeouts, limits) are part of the test


def serve(tls):
    s = Srv(("127.0.0.1", 0), H)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f"{tmp}/srv.pem", f"{tmp}/srv.key")
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s.server_address[1]


tls_port, plain_port = serve(True), serve(False)
HTTPS, HTTP = f"https://127.0.0.1:{tls_port}", f"http://127.0.0.1:{plain_port}"


def run(tool, *args, env=None, timeout=30):
    e = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    e.update(env or {})
    e.setdefault("SSL_CERT_FILE", f"{tmp}/ca.pem")
    e = {k: v for k, v in e.items() if v is not None}
    t0 = time.monotonic()
    r = subprocess.run([tool, *args], capture_output=True, text=True, env=e, timeout=timeout)
    lines = [dict(kv.split("=", 1) for kv in re.findall(r"(\w+=(?:[^ ]+))", ln.split(" error=")[0]))
             | ({"error": ln.split(" error=", 1)[1]} if " error=" in ln else {}) for ln in r.stdout.splitlines()]
    return r.returncode, lines, time.monotonic() - t0, r.stderr


for tool in TOOLS:
    tag = "asan" if "/san/" in tool else "plain"
    rc, ls, _, err = run(tool, f"{HTTPS}/file/1048576")
    want = hashlib.sha256(blob(1048576)).hexdigest()
    check(f"[{tag}] HTTPS GET 1 MiB, the CA from SSL_CERT_FILE: 200, the bytes exact",
          rc == 0 and ls and ls[0].get("ok") == "1" and ls[0].get("status") == "200" and ls[0].get("sha256") == want
          and ls[0].get("type") == "application/octet-stream", (rc, ls, err[-500:]))
    rc, ls, _, _ = run(tool, f"{HTTPS}/file/100", env={"SSL_CERT_FILE": None, "SSL_CERT_DIR": f"{tmp}/cadir"})
    check(f"[{tag}] the CA from SSL_CERT_DIR (hashed directory) works too",
          ls and ls[0].get("ok") == "1" and ls[0].get("status") == "200", ls)
    rc, ls, _, _ = run(tool, f"{HTTPS}/file/100", env={"SSL_CERT_FILE": f"{tmp}/other.pem"})
    check(f"[{tag}] a server whose CA is not trusted is refused, no body",
          ls and ls[0].get("ok") == "0" and ls[0].get("received") == "0" and "certificate" in ls[0].get("error", "").lower(),
          ls)
    rc, ls, _, _ = run(tool, f"{HTTPS}/file/100", env={"SSL_CERT_FILE": None})
    check(f"[{tag}] the system store alone does not trust the test CA", ls and ls[0].get("ok") == "0", ls)

    big = os.path.join(tmp, "up.bin")
    with open(big, "wb") as f:
        f.write(blob(5 * 1048576 + 7, seed=2))
    uploads.clear()
    rc, ls, _, _ = run(tool, "--post", big, "--header", "X-Test: yes", f"{HTTPS}/mms/document/tok?auth=a&token=t")
    up = uploads[-1] if uploads else None
    check(f"[{tag}] a 5 MiB POST streamed from a file arrives byte for byte, with its Content-Length, no Expect",
          ls and ls[0].get("ok") == "1" and ls[0].get("status") == "200" and up and
          up[0] == "/mms/document/tok?auth=a&token=t" and up[1] == 5 * 1048576 + 7 and
          up[2] == hashlib.sha256(blob(5 * 1048576 + 7, seed=2)).hexdigest() and up[3] is None and up[4] == "yes",
          (ls, up))
    check(f"[{tag}] the upload's answer is handed on",
          ls and ls[0].get("sha256") == hashlib.sha256(
              b'{"url":"https://mmg.example/x","direct_path":"/v/t62/x"}').hexdigest(), ls)

    rc, ls, _, _ = run(tool, "--max", "1000", f"{HTTPS}/file/1001")
    check(f"[{tag}] an answer that declares more than the limit fails before its body",
          ls and ls[0].get("ok") == "0" and "larger than 1000" in ls[0].get("error", "") and ls[0]["received"] == "0", ls)
    rc, ls, _, _ = run(tool, "--max", "1000", f"{HTTPS}/file/1000")
    check(f"[{tag}] exactly the limit is fine", ls and ls[0].get("ok") == "1" and ls[0]["received"] == "1000", ls)
    rc, ls, _, _ = run(tool, "--max", "300000", f"{HTTP}/chunked/3000000")
    check(f"[{tag}] an undeclared (chunked) answer is cut at the limit",
          ls and ls[0].get("ok") == "0" and "larger than 300000" in ls[0].get("error", "") and
          int(ls[0]["received"]) <= 300000, ls)

    rc, ls, el, _ = run(tool, "--timeout", "500", f"{HTTP}/slow")
    check(f"[{tag}] a server slower than the timeout: 'timed out' after ~0.5 s",
          ls and ls[0].get("ok") == "0" and ls[0].get("error", "").startswith("timed out") and el < 2.5, (ls, el))

    rc, ls, _, _ = run(tool, "--redirects", "5", f"{HTTPS}/redirect/4")
    check(f"[{tag}] 5 redirects followed (limit 5)", ls and ls[0].get("ok") == "1" and ls[0]["received"] == "1000"
          and ls[0].get("sha256") == hashlib.sha256(blob(1000)).hexdigest(), ls)
    rc, ls, _, _ = run(tool, "--redirects", "5", f"{HTTPS}/redirect/5")
    check(f"[{tag}] a 6th redirect is refused", ls and ls[0].get("ok") == "0" and "more than 5 redirects" in
          ls[0].get("error", ""), ls)
    rc, ls, _, _ = run(tool, f"{HTTPS}/redirect/0")
    check(f"[{tag}] without redirects allowed, the 302 is the answer", ls and ls[0].get("ok") == "1" and
          ls[0].get("status") == "302", ls)

    for url in (f"{HTTP}/file/10", "http://10.0.0.1/x", "http://[::1]:9/x", "http://169.254.169.254/latest"):
        rc, ls, el, _ = run(tool, "--refuse-private", url)
        check(f"[{tag}] refuse-private: {url.split('/')[2]} is not connected to",
              ls and ls[0].get("ok") == "0" and "private or loopback" in ls[0].get("error", "") and el < 5, ls)

    for code in (403, 404, 410, 500):
        rc, ls, _, _ = run(tool, f"{HTTPS}/status/{code}")
        check(f"[{tag}] status {code} is an answer (ok, status) whose body is not handed on",
              ls and ls[0].get("ok") == "1" and ls[0].get("status") == str(code) and ls[0]["received"] == "0", ls)

    rc, ls, _, _ = run(tool, "--stop-after", "100000", f"{HTTPS}/file/1048576")
    check(f"[{tag}] a receiver that stops ends the request", ls and ls[0].get("ok") == "0" and
          ls[0].get("error") == "aborted by the receiver", ls)

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    rc, ls, _, _ = run(tool, f"http://127.0.0.1:{dead}/x")
    check(f"[{tag}] nothing listening: a clear error", ls and ls[0].get("ok") == "0" and
          "connect" in ls[0].get("error", "").lower(), ls)

    rc, ls, el, _ = run(tool, "--parallel", "40", f"{HTTPS}/file/200000")
    want = hashlib.sha256(blob(200000)).hexdigest()
    check(f"[{tag}] 40 requests at once on one loop: all answered, all exact",
          rc == 0 and len(ls) == 40 and all(x.get("ok") == "1" and x.get("sha256") == want for x in ls), (rc, ls[:2]))
    check(f"[{tag}] the tool ended with nothing in flight and (asan) no leak report", rc == 0, rc)

shutil.rmtree(tmp, ignore_errors=True)
done()
