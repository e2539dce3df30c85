#!/usr/bin/env python3
"""The README's examples run as a reader would run them: docs/examples/
first_message.mjs (Node.js fetch) and first_message.py (urllib), each against
a server linked to the fake WhatsApp server with an API key: the example
registers its webhook, sends a text the peer decrypts with the id the example
printed, then gets the peer's reply as a message.received webhook and removes
its webhook."""
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, check, done, free_port, wait  # noqa: E402
from linked import Api, private_database  # noqa: E402

PEER_PHONE = "15550009999"

wa = FakeWA()
env = wa.env()
env.update({"WAPI_WEBHOOKS_ALLOW_PRIVATE": "true", "DATABASE_URL": private_database(f"wapi_it_examples_{os.getpid()}")})
srv = Server(workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made", bool(api.key))
check("linked to the fake WhatsApp server", api.link(wa))


def run_example(cmd, name):
    port = free_port()
    p = subprocess.Popen(cmd, env={**os.environ, "WAPI_URL": f"http://127.0.0.1:{srv.port}", "WAPI_API_KEY": api.key,
                                   "TO": PEER_PHONE, "HOOK_PORT": str(port)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in p.stdout:
            lines.append(json.loads(line))
    t = threading.Thread(target=read, daemon=True)
    t.start()
    sent = wait(lambda: [x["sent"] for x in lines if "sent" in x], timeout=30)
    sid = sent[0] if sent else None
    check(f"{name}: registers its webhook and sends (prints the message id)",
          sid and any("webhook" in x for x in lines), lines)
    got = wait(lambda: [r for r in wa.call("GET", "/peer/received") if r["id"] == sid], timeout=30)
    check(f"{name}: the peer decrypts the text with that id", got and got[0]["text"].startswith("Hello from wapi"), got)
    wait(lambda: any(x.get("event") == "message.sent" and x["data"]["id"] == sid for x in lines), timeout=20)
    reply = f"reply to {name}"
    wa.call("POST", "/peer/send", {"text": reply})
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "timeout"
    t.join(5)
    check(f"{name}: exits 0 after the reply arrives as a message.received webhook",
          rc == 0 and any(x.get("reply") == reply for x in lines), (rc, lines, p.stderr.read()[-500:]))
    check(f"{name}: it saw its own message.sent webhook",
          any(x.get("event") == "message.sent" and x["data"]["id"] == sid for x in lines), lines)
    st, js = api("GET", "/api/webhooks")
    check(f"{name}: and removed its webhook", st == 200 and js["data"] == [], js)


run_example(["node", os.path.join(ROOT, "docs/examples/first_message.mjs")], "first_message.mjs")
run_example([sys.executable, os.path.join(ROOT, "docs/examples/first_message.py")], "first_message.py")
srv.stop()
check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports()[:3])
done()
