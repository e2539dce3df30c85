#!/usr/bin/env python3
"""wss:// to WhatsApp: TLS with the certificate chain and the host name
verified. A TLS front (test CA, made here with openssl) sits before the fake
server; wapi trusts that CA through SSL_CERT_FILE, OpenSSL's standard knob."""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, check, done, fresh_database, free_port  # noqa: E402

os.environ["TEST_DATABASE_URL"] = fresh_database("wapi_it_whatsapp_tls")
from fakewa import FakeWA  # noqa: E402

d = tempfile.mkdtemp(prefix="wapi-tls-")


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, cwd=d)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
       "-keyout", f"{name}.key", "-out", f"{name}.pem")


def make_leaf(ca, host, name):
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", f"{name}.key",
       "-out", f"{name}.csr")
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{host}\n")
    sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
       "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")


make_ca("trusted-ca")
make_ca("other-ca")
make_leaf("trusted-ca", "localhost", "good")
make_leaf("trusted-ca", "wrong.example", "wronghost")
make_leaf("other-ca", "localhost", "untrusted")


def tls_front(cert, backend_port):
    """TLS on a loopback port, bytes relayed to the fake server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, f"{cert}.pem"), os.path.join(d, f"{cert}.key"))
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def serve():
        while True:
            try:
                c, _ = ls.accept()
                t = ctx.wrap_socket(c, server_side=True)
            except (OSError, ssl.SSLError):
                continue
            u = socket.create_connection(("127.0.0.1", backend_port))
            threading.Thread(target=pump, args=(t, u), daemon=True).start()
            threading.Thread(target=pump, args=(u, t), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return ls.getsockname()[1]


wa = FakeWA()
backend = int(wa.url.split(":")[2].split("/")[0])


def run(cert, name, want_ok):
    port = tls_front(cert, backend)
    env = dict(wa.env(), WAPI_WHATSAPP_URL=f"wss://localhost:{port}/ws/chat",
               SSL_CERT_FILE=os.path.join(d, "trusted-ca.pem"))
    srv = Server(workers=1, env=env).start()
    sess = lambda: srv.ctl("session")[1].get("session", {})  # noqa: E731
    if want_ok:
        ok = srv.wait_for(lambda: sess().get("state") == "qr", 15)
        check(f"wss:// {name}: handshake over verified TLS reaches the QR", ok, sess())
    else:
        ok = srv.wait_for(lambda: sess().get("state") == "reconnecting" and "TLS" in (sess().get("last_error") or ""),
                          15)
        check(f"wss:// {name}: refused, reported as a TLS error", ok, sess())
    srv.stop()


run("good", "a certificate for the host from a trusted CA", True)
run("wronghost", "a certificate for another host name", False)
run("untrusted", "a certificate from an unknown CA", False)
wa.stop()
done()
