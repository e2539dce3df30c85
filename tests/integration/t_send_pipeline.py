#!/usr/bin/env python3
"""The send pipeline against the fake WhatsApp server: a burst to one chat
reaches the peer in seq order with each id once, with far fewer usync queries
than messages (device lists are cached); a connection dropped while several
messages await their ack loses none of them (each goes again with its id);
a devices notification and a retry receipt make the next send list the
devices again."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done  # noqa: E402
from linked import Api, private_database, psql, wait  # noqa: E402

DB = private_database(f"wapi_it_send_pipeline_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
PEER = "15550009999@s.whatsapp.net"


TEXT = {}  # message id -> the text it was sent with


def enqueue(prefix, n, to=PEER):
    """n messages through POST /api/messages, one after the other as one
    program sending a conversation does (each answered once committed; the
    outbox is woken each time and drains them as they come); their ids in
    seq order. (Requests sent concurrently have no order of their own: their
    commits may end in any order.)"""
    sent = {}
    for i in range(1, n + 1):
        st, js = api("POST", "/api/messages", {"to": to, "text": f"{prefix} {i}"})
        if st == 202:
            sent[js["id"]] = f"{prefix} {i}"
    TEXT.update(sent)
    rows = psql(DB, "SELECT id FROM wa_messages WHERE id = ANY(string_to_array(:'p0', ',')) ORDER BY seq",
                ",".join(sent))
    return [r[0] for r in rows]


def received():
    return {r["id"]: r for r in wa.call("GET", "/peer/received")}


def settled(ids):
    return psql(DB, "SELECT count(*) FROM wa_messages WHERE id = ANY(string_to_array(:'p0', ',')) "
                    "AND status IN ('sent', 'delivered', 'read')", ",".join(ids)) == [[str(len(ids))]]


def usyncs(since, user="15550009999"):
    return [e for e in wa.events(since, "usync") if any(u.startswith(user) for u in e.get("users", []))]


wa = FakeWA()
env = wa.env()
env["WAPI_WHATSAPP_AUTOSTART"] = "false"
srv = Server(bindir=os.environ.get("T_SEND_PIPELINE_BIN", "build"), workers=1, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("linked to the fake server", api.link(wa))

# ---- (a) + (b): a burst of 300 to one chat
seq0 = wa.last_seq()
ids = enqueue("burst", 300)
check("300 messages queued", len(ids) == 300, len(ids))
check("every one reaches the peer", wait(lambda: all(m in received() for m in ids), timeout=120, step=0.2),
      len([m for m in ids if m not in received()]))
got = received()
check("each id once (no message sent twice)", all(got[m]["count"] == 1 for m in ids),
      [(m, got[m]["count"]) for m in ids if got[m]["count"] != 1][:3])
check("each with its own text", all(got[m]["text"] == TEXT[m] for m in ids))
order = [e["id"] for e in wa.events(seq0, "peer.recv") if e["id"] in set(ids)]
check("the peer decrypted them in seq order", order == ids,
      next(((i, a, b) for i, (a, b) in enumerate(zip(order, ids)) if a != b), len(order)))
n_us = len(usyncs(seq0))
check("far fewer device list queries than messages (cached)", 1 <= n_us <= 5, n_us)
check("all end sent or later", wait(lambda: settled(ids), timeout=60))
log = srv.log()
check("stanzas written while earlier ones awaited their ack",
      '"awaiting_ack":2' in log or '"awaiting_ack":3' in log)

# ---- (d) the cache gives way: a devices notification, a retry receipt
seq = wa.last_seq()
m1 = enqueue("cached", 1)
check("a send with the list cached", wait(lambda: m1[0] in received(), timeout=20))
check("makes no usync", not usyncs(seq), usyncs(seq))
r = wa.call("POST", "/peer/devices-notify", {})
check("devices notification sent", r.get("ok") and r.get("conns") == 1, r)
check("and acknowledged", wait(lambda: [e for e in wa.events(seq, "ack") if e.get("class") == "notification"]))
seq = wa.last_seq()
m2 = enqueue("after notification", 1)
check("the next send reaches the peer", wait(lambda: m2[0] in received(), timeout=20))
check("after a devices notification the list is fetched again", len(usyncs(seq)) == 1, usyncs(seq))
seq = wa.last_seq()
wa.call("POST", "/peer/retry", {"id": m2[0]})
check("the retry receipt is answered", wait(lambda: [e for e in wa.events(seq, "peer.resend") if e["id"] == m2[0]],
                                            timeout=20))
m3 = enqueue("after retry", 3)
check("the next sends reach the peer", wait(lambda: all(m in received() for m in m3), timeout=20))
check("after a retry receipt the list is fetched again, once", len(usyncs(seq)) == 1, usyncs(seq))
check("a resend between sends keeps them decryptable", not wa.events(0, "peer.fail"), wa.events(0, "peer.fail")[:2])

# ---- (c) the connection drops while several messages await their ack
wa.call("POST", "/config", {"ackDelayMs": 3000})
seq = wa.last_seq()
ids2 = enqueue("drop", 40)


def written():
    return [e for e in wa.events(seq, "recv") if e.get("node", {}).get("tag") == "message" and
            e["node"]["attrs"].get("id") in set(ids2)]


check("several stanzas written without their ack", wait(lambda: len(written()) >= 8, timeout=20), len(written()))
check("none acknowledged yet", not [e for e in wa.events(seq, "send") if e.get("node", {}).get("tag") == "ack" and
                                    e["node"]["attrs"].get("id") in set(ids2)])
wa.call("POST", "/config", {"ackDelayMs": 0})
wa.call("POST", "/drop", {})
check("every message reaches the peer after the reconnect",
      wait(lambda: all(m in received() for m in ids2), timeout=60, step=0.2),
      len([m for m in ids2 if m not in received()]))
got = received()
check("each id once in what the peer holds, with its text",
      all(got[m]["text"] == TEXT[m] for m in ids2))
check("those awaiting their ack went again with the same id", any(got[m]["count"] > 1 for m in ids2),
      [got[m]["count"] for m in ids2][:12])
firsts = []
for e in wa.events(seq, "peer.recv"):
    if e["id"] in set(ids2) and e["id"] not in firsts:
        firsts.append(e["id"])
check("first arrivals still in seq order", firsts == ids2)
check("all end sent or later", wait(lambda: settled(ids2), timeout=60))
check("the supervisor handed them back at the drop", "connection lost before the server" in srv.log())
att = psql(DB, "SELECT max(attempts) FROM wa_outbox WHERE message_id = ANY(string_to_array(:'p0', ','))", ",".join(ids2))
check("each needed at most one more attempt", att and int(att[0][0]) <= 2, att)

check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation")[:2])
check("the peer decrypted everything", not wa.events(0, "peer.fail"), wa.events(0, "peer.fail")[:2])
srv.stop()
wa.stop()
done()
