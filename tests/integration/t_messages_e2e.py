#!/usr/bin/env python3
"""Messages end to end through the public surface, against the fake WhatsApp
server and its peer: a text the peer sends shows up in GET /api/chats, in the
chat's messages, on SSE and in a webhook the published `standardwebhooks`
package verifies; a text sent with POST /api/messages reaches the peer with
the id the API returned, its status moves to delivered and read, and each
step arrives as a signed webhook (message.sent, message.status)."""
import atexit
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, fresh_database, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, WebhookReceiver  # noqa: E402

DB = fresh_database(f"wapi_it_messages_e2e_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB


@atexit.register
def _drop_db():
    """This run's database goes when the run does (concurrent runs never share one)."""
    admin = re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\1postgres", DB)
    subprocess.run(["psql", admin, "-qAtX", "-c", f'DROP DATABASE IF EXISTS "{re.match(r"^postgres(?:ql)?://[^/?]*/([^?]*)", DB).group(1)}" WITH (FORCE)'],
                   capture_output=True)
VERIFY = os.path.join(ROOT, "tests/webhooks/verify.mjs")
PEER = "15550009999@s.whatsapp.net"




rx = WebhookReceiver()
received = rx.received
hooks = rx.of_type


wa = FakeWA()
env = wa.env()
env.update({"WAPI_WEBHOOKS_ALLOW_PRIVATE": "true"})
srv = Server(workers=2, env=env)
origin = f"http://127.0.0.1:{srv.port}"
srv.env["BETTER_AUTH_URL"] = origin
srv.start()

api = Api(srv)
key = api.key
check("signed up and created an API key", bool(key))

st, hook = api("POST", "/api/webhooks", {"url": rx.url, "events": ["*"]})
check("webhook created", st == 201, hook)

# Link the session through the API.
api("POST", "/api/session/start")
wait(lambda: api("GET", "/api/session")[1].get("state") == "qr")
st, h, raw = srv.request("GET", "/api/session/qr?format=raw", headers={"x-api-key": key})
res = wa.call("POST", "/phone/scan", {"qr": raw.decode(), "timeoutMs": 10000})
check("linked and connected", res.get("ok") is True and
      wait(lambda: api("GET", "/api/session")[1].get("state") == "connected"), res)
wa.wait_event("prekeys.upload", timeout=15)
stream = SSE(srv, key)
time.sleep(0.3)

# Peer -> wapi
out = wa.call("POST", "/peer/send", {"text": "hello over webhooks"})
mid = out.get("id")
got = wait(lambda: hooks("message.received", lambda p: json.dumps(p).find(mid or "-") >= 0), timeout=20)
check("the incoming text arrives as a message.received webhook", got, [json.loads(b)["type"] for _, b in received])
if got:
    h0, b0, p0 = got[0]
    data = json.dumps([{"secret": hook["secret"], "headers": {k: h0.get(k, "") for k in
                        ("webhook-id", "webhook-timestamp", "webhook-signature")}, "body": b0}])
    v = json.loads(subprocess.run(["node", VERIFY], input=data, capture_output=True, text=True).stdout)[0]
    check("its signature verifies with the standardwebhooks package", v.get("ok") is True, v)
    check("and it carries the text", "hello over webhooks" in b0, b0[:300])
sse = wait(lambda: [e for e in stream.events if e.get("event") == "message.received" and mid in e.get("data", "")])
check("and on SSE with the same id as the webhook", sse and got and sse[0].get("id") == got[0][0].get("webhook-id"),
      (sse[:1], got[:1] and got[0][0].get("webhook-id")))
st, js = api("GET", f"/api/messages/{mid}")
check("GET /api/messages/{id}: the received message", st == 200 and js["status"] == "received" and
      js["from_me"] is False and js["text"] == "hello over webhooks" and js["chat_jid"] == PEER, js)
st, js = api("GET", "/api/chats")
c = [x for x in js.get("data", []) if x["jid"] == PEER] if st == 200 else []
check("GET /api/chats: the peer's chat with its last message and unread count",
      c and c[0]["last_message"]["id"] == mid and c[0]["unread_count"] >= 1, c)
st, js = api("GET", f"/api/chats/{PEER}/messages")
check("GET /api/chats/{jid}/messages has it", st == 200 and js["data"] and js["data"][0]["id"] == mid, js)

# wapi -> peer through the API
st, js = api("POST", "/api/messages", {"to": "+1 555 000 9999", "text": "hello from the API", "reply_to": mid})
sid = js.get("id") if st == 202 else None
check("POST /api/messages 202", sid, (st, js))
peer_got = wait(lambda: [r for r in wa.call("GET", "/peer/received") if r["id"] == sid], timeout=20)
check("the peer decrypted it with the id the API returned", peer_got and peer_got[0]["text"] == "hello from the API",
      peer_got)
check("status moves to delivered", wait(lambda: api("GET", f"/api/messages/{sid}")[1].get("status") in
                                        ("delivered", "read"), timeout=20), api("GET", f"/api/messages/{sid}"))
wa.call("POST", "/peer/receipt", {"id": sid, "type": "read", "from": "15550009999"})
check("and to read on the read receipt", wait(lambda: api("GET", f"/api/messages/{sid}")[1].get("status") == "read"))
sent = wait(lambda: hooks("message.sent", lambda p: sid in json.dumps(p)))
stat = wait(lambda: {json.loads(b)["data"].get("status") for _, b, _ in hooks("message.status",
                                                                               lambda p: sid in json.dumps(p))}
            >= {"delivered", "read"} or None, timeout=15)
check("message.sent and message.status (delivered, read) arrive as webhooks", sent and stat,
      [json.loads(b)["type"] for _, b in received])
items = [{"secret": hook["secret"], "headers": {k: h.get(k, "") for k in
                                                ("webhook-id", "webhook-timestamp", "webhook-signature")}, "body": b}
         for h, b in received]
vs = json.loads(subprocess.run(["node", VERIFY], input=json.dumps(items), capture_output=True, text=True).stdout)
check(f"every webhook so far verifies ({len(vs)})", vs and all(v.get("ok") for v in vs), [v for v in vs if not
                                                                                          v.get("ok")][:2])
ids = [h.get("webhook-id") for h, _ in received]
check("no event delivered twice", len(ids) == len(set(ids)), ids)
st, js = api("GET", f"/api/webhooks/{hook['id']}/deliveries?limit=200")
check("the delivery log lists them delivered", st == 200 and len(js["data"]) >= len(ids) and
      all(d["state"] == "delivered" for d in js["data"]), js)
srv.stop()
wa.stop()
done()
