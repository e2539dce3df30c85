#!/usr/bin/env python3
"""Calls offered to us: a peer rings (voice, then video), wapi stores the call
and emits call.received once (SSE and a signed webhook), acks the stanza only
after the commit; a call made while wapi is down comes at the next connect,
marked offline, still once; a call's end is acked and told nothing; with
whatsapp.reject_calls the offer is turned down with a reject the fake server
checks (call-id, call-creator, count, to the caller) and the event says so."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, WebhookReceiver, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_calls_{os.getpid()}")
BIN = os.environ.get("T_CALLS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                        else "build")
PEER = "15550009999"


def sql(q, *args):
    return psql(DB, q, *args)


def call_events(call_id):
    return [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = 'call.received' "
                                          "AND data->>'id' = :'p0' ORDER BY id", call_id)]


wa = FakeWA()
env = dict(wa.env(), WAPI_WEBHOOKS_ALLOW_PRIVATE="true")
srv = Server(bindir=BIN, workers=2, env=env, pg_url=DB)
SESSIONS = srv.env["WAPI_PATHS_SESSIONS"]
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
rx = WebhookReceiver()
st, hook = api("POST", "/api/webhooks", {"url": rx.url, "events": ["call.received"]})
check("a webhook for call.received", st == 201, (st, hook))
sse = SSE(srv, api.key)
time.sleep(0.5)

# ---- a voice call, then a video call
mark = wa.last_seq()
r = wa.call("POST", "/peer/call", {})
cid = r.get("callId")
got = wait(lambda: call_events(cid), timeout=15)
ev = got[0] if got else {}
check("a voice call: call.received with its id, the caller, not video, not offline, not rejected",
      len(got or []) == 1 and ev.get("from") == PEER + "@s.whatsapp.net" and ev.get("video") is False and
      ev.get("offline") is False and ev.get("rejected") is False and ev.get("group_jid") is None and
      ev.get("at", "").endswith("Z"), got)
acked = wait(lambda: [e for e in wa.events(mark, "ack") if e.get("id") == r.get("id")], timeout=10)
check("the call's stanza is acked (after the commit)", bool(acked) and acked[0].get("class") == "call", acked)
check("the call is recorded", sql("SELECT from_jid, video, rejected FROM wa_calls WHERE call_id = :'p0'", cid) ==
      [[PEER + "@s.whatsapp.net", "f", "f"]])
sse_got = wait(lambda: [e for e in sse.events if e.get("event") == "call.received" and
                        json.loads(e["data"])["data"]["id"] == cid], timeout=10)
check("SSE: the same event", bool(sse_got) and json.loads(sse_got[0]["data"])["data"] == ev, sse_got)
hooks = wait(lambda: rx.of_type("call.received", lambda p: p["data"]["id"] == cid), timeout=15)
check("webhook: delivered once, signed", len(hooks or []) == 1 and
      all(v.get("ok") for v in rx.verify(hook.get("secret"), [(h, b) for h, b, _ in hooks])), hooks)
check("no reject was sent (whatsapp.reject_calls is off)", not (wa.call("GET", "/calls")["calls"].get(cid) or {})
      .get("rejected"))

r2 = wa.call("POST", "/peer/call", {"video": True})
got = wait(lambda: call_events(r2.get("callId")), timeout=15)
check("a video call: video true", got and got[0].get("video") is True, got)
mark = wa.last_seq()
r3 = wa.call("POST", "/peer/call", {"end": r2.get("callId")})
acked = wait(lambda: [e for e in wa.events(mark, "ack") if e.get("id") == r3.get("id")], timeout=10)
time.sleep(0.5)
check("the call's end: acked, no second event", bool(acked) and len(call_events(r2.get("callId"))) == 1, acked)

# ---- a call while wapi is down: told at the next connect, marked offline, once
srv.stop()
r4 = wa.call("POST", "/peer/call", {})
srv = Server(bindir=BIN, workers=2, env=dict(env, WAPI_PATHS_SESSIONS=SESSIONS), pg_url=DB).start()
api.srv = srv
check("restarted: connected again", wait(lambda: api("GET", "/api/session")[1].get("state") == "connected",
                                         timeout=60))
got = wait(lambda: call_events(r4.get("callId")), timeout=20)
check("a call made while we were down: told at the next connect, offline true, once",
      len(got or []) == 1 and got[0].get("offline") is True, got)

# ---- whatsapp.reject_calls: turned down at once
srv.stop()
srv = Server(bindir=BIN, workers=2, env=dict(env, WAPI_PATHS_SESSIONS=SESSIONS, WAPI_WHATSAPP_REJECT_CALLS="true"),
             pg_url=DB).start()
api.srv = srv
check("restarted with whatsapp.reject_calls: connected",
      wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60))
mark = wa.last_seq()
r5 = wa.call("POST", "/peer/call", {"viaLid": True})
got = wait(lambda: call_events(r5.get("callId")), timeout=15)
rej = wait(lambda: wa.events(mark, "call.reject"), timeout=10)
check("rejected: the event says so, the caller's number beside its LID",
      got and got[0].get("rejected") is True and got[0].get("caller_pn") == PEER + "@s.whatsapp.net" and
      got[0].get("from", "").endswith("@lid"), got)
check("the reject reached the server once, naming the call and its creator (checked there)",
      (wa.call("GET", "/calls")["calls"].get(r5.get("callId")) or {}).get("rejected") == 1 and len(rej or []) == 1,
      (rej, wa.call("GET", "/calls")))
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))

srv.stop()
wa.stop()
done()
