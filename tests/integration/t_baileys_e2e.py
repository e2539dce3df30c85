#!/usr/bin/env python3
"""Baileys -> wapi through the public surface: an unmodified Baileys client,
linked as a companion of another account on the fake WhatsApp server, sends
a text, a reply, a reaction, an edit and a revoke; each arrives in the REST
API, on SSE and as a webhook that the published `standardwebhooks` package
verifies, with the SSE id equal to the webhook-id."""
import json
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, check, done  # noqa: E402
from linked import SSE, Api, WebhookReceiver, private_database, wait  # noqa: E402

DB = private_database(f"wapi_it_baileys_e2e_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
BJID = "15550007777@s.whatsapp.net"

wa = FakeWA()
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "WAPI_WEBHOOKS_ALLOW_PRIVATE": "true"})
srv = Server(workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
rx = WebhookReceiver()
st, hook = api("POST", "/api/webhooks", {"url": rx.url, "events": ["*"]})
check("webhook created", st == 201, hook)
check("session linked by QR", api.link(wa))
ME = wa.phone + "@s.whatsapp.net"
stream = SSE(srv, api.key)

bl = subprocess.Popen(["node", os.path.join(ROOT, "tests/wa/lib/baileys_peer.mjs"), "--url", wa.url, "--version",
                       wa.version, "--control", wa.control, "--phone", "15550007777"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                      start_new_session=True)
lines = []
threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in bl.stdout if x.startswith("{")],
                 daemon=True).start()


def bl_do(cmd):
    """One command to Baileys; the id it reports as sent (None on error)."""
    n = len(lines)
    bl.stdin.write(json.dumps(cmd) + "\n")
    bl.stdin.flush()
    got = wait(lambda: [x for x in lines[n:] if "sent" in x or "error" in x], timeout=20)
    return got[0].get("sent") if got else None


def message(mid, pred):
    return wait(lambda: (lambda r: r[1] if r[0] == 200 and pred(r[1]) else None)(api("GET", f"/api/messages/{mid}")),
                timeout=20)


check("Baileys linked as a companion of another account",
      wait(lambda: [x for x in lines if "ready" in x or "error" in x], timeout=40) and any("ready" in x for x in lines),
      lines[-2:])

t1 = bl_do({"op": "send", "to": ME, "text": "text from Baileys"})
m = message(t1, lambda j: True)
check("text: in the API", m and m["text"] == "text from Baileys" and m["chat_jid"] == BJID and not m["from_me"], m)

r1 = bl_do({"op": "send", "to": ME, "text": "a reply from Baileys", "replyTo": t1})
m = message(r1, lambda j: True)
check("reply: in the API with reply_to", m and m["reply_to"] == t1 and m["text"] == "a reply from Baileys", m)

st, js = api("POST", "/api/messages", {"to": BJID, "text": "react to this"})
w1 = js.get("id") if st == 202 else None
check("a message of ours reaches Baileys", wait(lambda: [x for x in lines if x.get("recv", {}).get("id") == w1],
                                                timeout=20))
x1 = bl_do({"op": "react", "to": ME, "target": w1, "fromMe": False, "text": "\U0001F44D"})
m = message(x1, lambda j: True)
check("reaction: in the API on our message", m and m["type"] == "reaction" and m["reaction_to"] == w1 and
      m["reaction"] == "\U0001F44D", m)

e1 = bl_do({"op": "edit", "to": ME, "target": t1, "text": "text from Baileys, edited"})
m = message(t1, lambda j: j.get("edited_at") is not None)
check("edit: the message's text changes in the API", e1 and m and m["text"] == "text from Baileys, edited", m)

v1 = bl_do({"op": "revoke", "to": ME, "target": r1})
m = message(r1, lambda j: j.get("revoked_at") is not None)
check("revoke: the message is marked revoked in the API", v1 and m, m)

want = [("message.received", t1), ("message.received", r1), ("message.reaction", x1), ("message.edited", t1),
        ("message.revoked", r1)]


def sse_ids():
    out = {}
    for e in list(stream.events):
        try:
            d = json.loads(e.get("data", "{}"))
        except ValueError:
            continue
        out.setdefault((e.get("event"), (d.get("data") or {}).get("id")), e.get("id"))
    return out


def hook_ids():
    return {(p["type"], p["data"].get("id")): h.get("webhook-id") for h, b, p in
            [(h, b, json.loads(b)) for h, b in list(rx.received)]}


check("each on SSE", wait(lambda: all(k in sse_ids() for k in want), timeout=20),
      [k for k in want if k not in sse_ids()])
check("each as a webhook", wait(lambda: all(k in hook_ids() for k in want), timeout=30),
      [k for k in want if k not in hook_ids()])
s, hk = sse_ids(), hook_ids()
check("SSE ids equal webhook-ids", all(s.get(k) and s.get(k) == hk.get(k) for k in want),
      [(k, s.get(k), hk.get(k)) for k in want])
vs = rx.verify(hook.get("secret", ""))
check(f"every webhook verifies with the standardwebhooks package ({len(vs)})", vs and all(v.get("ok") for v in vs),
      [v for v in vs if not v.get("ok")][:2])
bad = rx.verify("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", rx.received[:1])
check("and fails with another secret (the verifier can refuse)", bad and not bad[0].get("ok"), bad)
viol = wa.events(0, "violation")
check("the fake server saw no protocol violation", not viol, viol[:2])
fails = wa.events(0, "peer.fail")
check("every copy decrypted (Baileys' own phone got each as a deviceSentMessage)", not fails, fails[:2])

try:
    bl.stdin.write(json.dumps({"op": "quit"}) + "\n")
    bl.stdin.flush()
    bl.wait(10)
except (subprocess.TimeoutExpired, BrokenPipeError):
    os.killpg(bl.pid, signal.SIGKILL)
srv.stop()
wa.stop()
done()
