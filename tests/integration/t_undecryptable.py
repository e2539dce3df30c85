#!/usr/bin/env python3
"""Messages that cannot be decrypted, against the fake WhatsApp server: a peer's
message damaged on every delivery (so the retry receipts cannot mend it) is
stored once as a placeholder (type undecryptable, event message.undecryptable),
our own phone is asked to send it again (a peer data operation, checked by the
fake phone as the real one reads it), and its answer fills the placeholder in
place (same id, the real text, event message.updated). kill -9 before the
request left, a restart before the answer, malformed answers, answers for
unknown ids and a second answer change nothing more than they should."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, Server, wait  # noqa: E402
from linked import Api, private_database, psql  # noqa: E402

DB = private_database(os.environ.get("T_UNDECRYPTABLE_DB", "wapi_it_undecryptable"))
BIN = os.environ.get("T_UNDECRYPTABLE_BIN") or (
    "build/san" if os.path.exists(os.path.join(os.path.dirname(__file__), "../../build/san/wapi")) else "build")
os.environ["TEST_DATABASE_URL"] = DB
PEER = "15550009999@s.whatsapp.net"
RETRIES = 5  # retry receipts per message before it is given up (MAX_RETRY_RECEIPTS)


def sql(q, *args):
    return psql(DB, q, *args)


def session_state(srv):
    rc, r = srv.ctl("session")
    return r.get("session", {}).get("state")


def row(mid):
    r = sql("SELECT type, coalesce(subtype, ''), coalesce(text, ''), chat_jid, coalesce(sender_jid, ''), from_me "
            "FROM wa_messages WHERE id = :'p0'", mid)
    return r[0] if r else None


def events(etype, mid):
    return int(sql("SELECT count(*) FROM wa_events WHERE type = :'p0' AND data->>'id' = :'p1'", etype, mid)[0][0])


def requests_for(mid):
    return [r for r in wa.call("GET", "/phone/placeholder-requests")["requests"] if r["id"] == mid]


def start_server():
    s = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions))
    s.start()
    return s


def placeholder_stored(mid, what, held=True, chat=PEER, group=False):
    """A corrupt-always message is given up after the retries: one placeholder, one event (held:
    nothing can have filled it yet)."""
    check(f"{what}: stored as a placeholder", wait(lambda: row(mid) is not None, timeout=30), row(mid))
    r = row(mid)
    if held:
        check(f"{what}: type undecryptable, no text, in its chat, from the peer",
              r == ["undecryptable", "", "", chat, PEER, "f"], r)
    check(f"{what}: one message.undecryptable event", wait(lambda: events("message.undecryptable", mid) == 1))
    check(f"{what}: no message.received event", events("message.received", mid) == 0)
    ev = sql("SELECT data::text FROM wa_events WHERE type = 'message.undecryptable' AND data->>'id' = :'p0'", mid)
    data = json.loads(ev[0][0]) if ev else {}
    check(f"{what}: the event carries the message JSON", data.get("id") == mid and data.get("type") == "undecryptable"
          and data.get("chat_jid") == chat and data.get("sender_jid") == PEER and data.get("text") is None, data)
    resends = [e for e in wa.events(0, "group.peer.resend" if group else "peer.retry.resend") if e.get("id") == mid]
    check(f"{what}: the peer resent it on each of our {RETRIES} retry receipts (all damaged)",
          sorted(e["count"] for e in resends) == list(range(1, RETRIES + 1)), resends)
    check(f"{what}: the stanza acknowledged", wait(lambda: [e for e in wa.events(0, "ack") if e.get("id") == mid]))


def filled(mid, text, what, chat=PEER):
    check(f"{what}: filled in place with the real text",
          wait(lambda: row(mid) == ["text", "conversation", text, chat, PEER, "f"], timeout=30), row(mid))
    check(f"{what}: one message.updated event", wait(lambda: events("message.updated", mid) == 1))
    check(f"{what}: still one row and one message.undecryptable",
          sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", mid) == [["1"]] and
          events("message.undecryptable", mid) == 1)
    st, _, b = srv.request("GET", "/api/messages/" + mid, headers={"x-api-key": KEY})
    rest = json.loads(b) if st == 200 else {}
    ev = sql("SELECT data::text FROM wa_events WHERE type = 'message.updated' AND data->>'id' = :'p0'", mid)
    data = json.loads(ev[0][0]) if ev else {}
    check(f"{what}: message.updated is the message as GET /api/messages/{{id}} shows it",
          data and sorted(data) == sorted(rest) and all(data[k] == rest[k] for k in rest if k != "updated_at") and
          rest.get("text") == text and rest.get("type") == "text", (data, rest))


wa = FakeWA()
srv = Server(bindir=BIN, workers=1, env=wa.env())
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
sessions = srv.env["WAPI_PATHS_SESSIONS"]
wait(lambda: session_state(srv) == "qr", timeout=30)
qr = wait(lambda: srv.ctl("session", "qr")[1].get("qr"), timeout=30)
res = wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000})
check("paired with the fake phone", res.get("ok") is True, res)
check("logged in", wait(lambda: session_state(srv) == "connected"))
check("prekeys uploaded", wa.wait_event("prekeys.upload", timeout=15) is not None)
api = Api(srv)
KEY = api.key

# The webhook API takes both new event types.
st, js = api("POST", "/api/webhooks", {"url": "https://example.com/undecryptable",
                                       "events": ["message.undecryptable", "message.updated"]})
check("a webhook may subscribe to message.undecryptable and message.updated", st == 201, (st, js))
st, js = api("POST", "/api/webhooks", {"url": "https://example.com/x", "events": ["message.undecryptablex"]})
check("an unknown event type is still refused", st == 400 and "message.undecryptable" in json.dumps(js), (st, js))

# 1. kill -9 after the placeholder is committed, before the request left: we have no session with our
# phone yet, so the request waits for its prekey bundle, which the (silent) server never gives.
wa.call("POST", "/config", {"silent": True})
seq = wa.last_seq()
m1 = wa.call("POST", "/peer/send", {"text": "lost before the ask", "corrupt": "always"})["id"]
placeholder_stored(m1, "before the ask")
check("the request waits for our phone's prekey bundle",
      wait(lambda: [e for e in wa.events(seq, "iq.ignored") if e.get("xmlns") == "encrypt"], timeout=15))
check("no request reached the phone", requests_for(m1) == [])
os.killpg(srv.proc.pid, signal.SIGKILL)
srv.proc.wait(5)
wa.call("POST", "/config", {"silent": False})
srv = start_server()
check("logged in again after kill -9", wait(lambda: session_state(srv) == "connected", timeout=30),
      (session_state(srv), [l for l in srv.log().splitlines() if '"warn' in l or '"error' in l][-8:]))
check("asked at the next connect", wait(lambda: len(requests_for(m1)) >= 1, timeout=30), requests_for(m1))
req = requests_for(m1)[0] if requests_for(m1) else {}
check("the request names the message key (chat, id; no participant in a direct chat)",
      req.get("remoteJid") == PEER and req.get("participant") is None, req)
check("first contact with our phone: a pkmsg", req.get("encType") == "pkmsg", req)
filled(m1, "lost before the ask", "asked after kill -9")
check("the phone's peer message answered with a peer_msg receipt", wait(lambda: wa.events(0, "phone.peer_receipt")))

# 2. The plain case: the request reaches the phone at once, the answer fills the placeholder.
before = {k: srv.metric(k) for k in ("wapi_wa_messages_undecryptable_total", "wapi_wa_messages_recovered_total")}
m2 = wa.call("POST", "/peer/send", {"text": "second try", "corrupt": "always"})["id"]
placeholder_stored(m2, "plain case", held=False)
check("our phone was asked once", wait(lambda: len(requests_for(m2)) == 1, timeout=20), requests_for(m2))
filled(m2, "second try", "plain case")
check("wapi_wa_messages_undecryptable_total counted it",
      wait(lambda: srv.metric("wapi_wa_messages_undecryptable_total") == before["wapi_wa_messages_undecryptable_total"] + 1))
check("wapi_wa_messages_recovered_total counted the fill",
      wait(lambda: srv.metric("wapi_wa_messages_recovered_total") == before["wapi_wa_messages_recovered_total"] + 1))
check("the chat shows the placeholder's message once",
      sql("SELECT last_message_id FROM wa_chats WHERE jid = :'p0'", PEER) == [[m2]])

# 2b. The same in a group: the skmsg damaged on every delivery (each retry brings a fresh sender key and
# a damaged skmsg again); the request names the sender as participant.
g = wa.group_create("15550009999", "Undecryptable", [str(wa.phone)])
G = g.get("jid")
check("a group with us in it", bool(G) and g.get("ok"), g)
time.sleep(0.5)
mg = wa.call("POST", "/peer/send", {"from": "15550009999", "group": G, "text": "group secret", "corrupt": "always"}).get("id")
placeholder_stored(mg, "group", held=False, chat=G, group=True)
check("group: our phone was asked with the sender as participant",
      wait(lambda: [r for r in requests_for(mg) if r.get("remoteJid") == G and r.get("participant") == PEER], timeout=20),
      requests_for(mg))
filled(mg, "group secret", "group", chat=G)

# 3. A restart between the placeholder and the answer: asked again at the connect, filled once.
wa.call("POST", "/config", {"phoneResend": "hold"})
m3 = wa.call("POST", "/peer/send", {"text": "across a restart", "corrupt": "always"})["id"]
placeholder_stored(m3, "across a restart")
check("asked, not answered", wait(lambda: len(requests_for(m3)) == 1, timeout=20) and row(m3)[0] == "undecryptable")
srv.stop()
wa.call("POST", "/config", {"phoneResend": "answer"})
srv = start_server()
check("logged in again after the restart", wait(lambda: session_state(srv) == "connected", timeout=30))
check("asked again at the connect", wait(lambda: len(requests_for(m3)) == 2, timeout=30), requests_for(m3))
filled(m3, "across a restart", "across a restart")
check("the filled ones are not asked for again", len(requests_for(m1)) == 1 and len(requests_for(m2)) == 1,
      (requests_for(m1), requests_for(m2)))

# 4. Answers that fill nothing: malformed, for an id we never had, a second one for a filled message.
snapshot = sql("SELECT id, type, text, updated_at FROM wa_messages ORDER BY id")
nevents = sql("SELECT count(*) FROM wa_events")[0][0]
seq = wa.last_seq()
answers = [wa.call("POST", "/phone/placeholder-answer", {"how": "malformed"}),
           wa.call("POST", "/phone/placeholder-answer", {"how": "unknown", "id": "3EB0AAAAAAAAAAAAAAAAAA"}),
           wa.call("POST", "/phone/placeholder-answer", {"id": m2})]
sids = [s for a in answers for s in a.get("stanzas", [])]
check("the phone sent three answers", len(sids) == 3, answers)
check("each acknowledged", wait(lambda: all(any(e.get("id") == s for e in wa.events(seq, "ack")) for s in sids)))
check("each answered with a peer_msg receipt",
      wait(lambda: all(any(e.get("id") == s for e in wa.events(seq, "phone.peer_receipt")) for s in sids)))
check("nothing changed: no row, no new text", sql("SELECT id, type, text, updated_at FROM wa_messages ORDER BY id") == snapshot)
check("no event", sql("SELECT count(*) FROM wa_events")[0][0] == nevents)
check("no message for the unknown id", sql("SELECT count(*) FROM wa_messages WHERE id = '3EB0AAAAAAAAAAAAAAAAAA'") == [["0"]])
check("the malformed answer is logged", "unusable" in srv.log() or "left out" in srv.log())
check("still connected and healthy", session_state(srv) == "connected" and srv.get("/healthz")[0] == 200)

# 5. The wait for a resend is durable. A message damaged once is acked with its retry receipt: the
# wait is recorded in the same commit (wa_retry_waits) and the resend clears it. A sender that never
# answers leaves the wait to expire (whatsapp.retry_wait_seconds): the message becomes a placeholder,
# our phone is asked, its answer fills it; a kill -9 right after the ack changes none of that.
WAIT_S = 4
srv.stop()
srv = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions,
                                             WAPI_WHATSAPP_RETRY_WAIT_SECONDS=str(WAIT_S)))
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
check("restarted with whatsapp.retry_wait_seconds = 4", wait(lambda: session_state(srv) == "connected", timeout=30))


def waiting(mid):
    return sql("SELECT count(*) FROM wa_retry_waits WHERE id = :'p0'", mid) == [["1"]]


seq = wa.last_seq()
m5 = wa.call("POST", "/peer/send", {"text": "damaged once", "corrupt": "once"})["id"]
check("damaged once: the resend decrypts and is stored", wait(lambda: row(m5) is not None, timeout=20) and
      row(m5) == ["text", "conversation", "damaged once", PEER, PEER, "f"], row(m5))
check("damaged once: one retry receipt, one resend",
      [e.get("count") for e in wa.events(seq, "companion.retry") if e.get("id") == m5] == [1] and
      [e.get("count") for e in wa.events(seq, "peer.retry.resend") if e.get("id") == m5] == [1])
check("damaged once: its wait ended with the resend", not waiting(m5))
time.sleep(WAIT_S + 6)
check("damaged once: no placeholder, no undecryptable event after the wait's time",
      row(m5)[0] == "text" and events("message.undecryptable", m5) == 0 and events("message.received", m5) == 1)

wa.call("POST", "/config", {"phoneResend": "hold"})
seq = wa.last_seq()
m6 = wa.call("POST", "/peer/send", {"text": "nobody resends", "corrupt": True})["id"]
check("no resend: the retry receipt went and the stanza was acked",
      wait(lambda: [e for e in wa.events(seq, "companion.retry") if e.get("id") == m6] and
           [e for e in wa.events(seq, "ack") if e.get("id") == m6], timeout=20))
check("no resend: the wait is on record with the ack, no message yet", waiting(m6) and row(m6) is None,
      (sql("SELECT * FROM wa_retry_waits"), row(m6)))
os.killpg(srv.proc.pid, signal.SIGKILL)
srv.proc.wait(5)
srv = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions,
                                             WAPI_WHATSAPP_RETRY_WAIT_SECONDS=str(WAIT_S)))
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
check("kill -9 after the ack, restarted", wait(lambda: session_state(srv) == "connected", timeout=30))
placeholder_stored_at = wait(lambda: row(m6) is not None, timeout=WAIT_S + 20)
check("no resend: after the wait it is a placeholder, in its chat, from the peer",
      placeholder_stored_at and row(m6) == ["undecryptable", "", "", PEER, PEER, "f"], row(m6))
check("no resend: one message.undecryptable, the wait gone",
      wait(lambda: events("message.undecryptable", m6) == 1) and not waiting(m6))
check("no resend: our phone asked for it", wait(lambda: len(requests_for(m6)) >= 1, timeout=20), requests_for(m6))
wa.call("POST", "/config", {"phoneResend": "answer"})
wa.call("POST", "/phone/placeholder-answer", {"id": m6})
filled(m6, "nobody resends", "no resend, the phone's copy")
check("no wait is left behind", sql("SELECT count(*) FROM wa_retry_waits") == [["0"]],
      sql("SELECT * FROM wa_retry_waits"))

# 6. Strict: nothing the fake server or phone refused along the way.
check("no protocol violations", wa.events(0, "violation") == [], wa.events(0, "violation"))

srv.stop()
wa.stop()
done()
