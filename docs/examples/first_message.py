#!/usr/bin/env python3
"""wapi's first message in Python (standard library only): listens for
webhooks, registers itself as one, sends a text, then prints every event it
receives until a message.received arrives (or 120 s pass).

    WAPI_URL=http://localhost:8080 WAPI_API_KEY=... TO=15551234567 python3 first_message.py

HOOK_PORT is the port to listen on (default 8091) and HOOK_URL the address
wapi can reach it at (default http://127.0.0.1:HOOK_PORT/hook). wapi refuses
webhooks to private addresses unless webhooks.allow_private is set."""
import http.server
import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request

BASE = os.environ.get("WAPI_URL", "http://localhost:8080")
KEY = os.environ["WAPI_API_KEY"]
TO = os.environ["TO"]
PORT = int(os.environ.get("HOOK_PORT", "8091"))
HOOK_URL = os.environ.get("HOOK_URL", f"http://127.0.0.1:{PORT}/hook")


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"x-api-key": KEY})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        # Every error is {"error": {"code", "message", "field"?}}.
        err = json.loads(e.read() or b"{}").get("error", {})
        sys.exit(f"{method} {path}: {e.code} {err.get('code')}: {err.get('message')}")


# 1. Receive: a small HTTP server for the webhook deliveries (each a POST of
#    {id, type, at, data}; answer 2xx, or wapi retries).
replies = queue.Queue()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        self.send_response(204)
        self.end_headers()
        print(json.dumps({"event": event["type"], "data": event["data"]}), flush=True)
        if event["type"] == "message.received":
            replies.put(event)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()

# 2. Register it (the answer's secret signs every delivery: Standard Webhooks).
hook = api("POST", "/api/webhooks", {"url": HOOK_URL, "events": ["message.received", "message.sent", "message.status"]})
print(json.dumps({"webhook": hook["id"]}), flush=True)

# 3. Send a text; the answer is the queued message with its WhatsApp id.
msg = api("POST", "/api/messages", {"to": TO, "text": "Hello from wapi (Python)"})
print(json.dumps({"sent": msg["id"], "status": msg["status"]}), flush=True)

# 4. Wait for a reply, then clean up.
try:
    reply = replies.get(timeout=120)
except queue.Empty:
    sys.exit("no message.received within 120 s")
print(json.dumps({"reply": reply["data"]["text"], "from": reply["data"]["chat_jid"]}), flush=True)
api("DELETE", f"/api/webhooks/{hook['id']}")
server.shutdown()
