#!/usr/bin/env python3
"""Send pacing (sending.*) against the fake WhatsApp server, timed where the
messages arrive: 1,000 messages queued at once go out at the configured
account rate (within 5%), in order, none failed; a least gap per chat holds
between two messages to one chat while another chat is not held by it, and
each chat's order holds; with typing on, <composing/> goes before a text for
a time that grows with it, then <paused/>, then the message. The same linked
session throughout, the server restarted with each configuration."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done  # noqa: E402
from linked import Api, private_database, psql, wait  # noqa: E402

DB = private_database(f"wapi_it_send_pacing_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
BIN = os.environ.get("T_SEND_PACING_BIN", "build")
PEER = "15550009999@s.whatsapp.net"
PEER2 = "15550008888@s.whatsapp.net"
RATE = 3000  # a minute: 1,000 messages in 20 s

wa = FakeWA()
env = wa.env()
env["WAPI_WHATSAPP_AUTOSTART"] = "false"
srv = Server(bindir=BIN, workers=1, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("linked to the fake server", api.link(wa))


def restart(**pace):
    """The same session and database, another sending.* configuration."""
    global srv
    keep = {"WAPI_PATHS_SESSIONS": srv.env["WAPI_PATHS_SESSIONS"], "WAPI_PATHS_MEDIA": srv.env["WAPI_PATHS_MEDIA"]}
    srv.stop()
    srv = Server(bindir=BIN, workers=1, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep, **pace)).start()
    api.srv = srv
    return wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60)


def enqueue(items):
    """(to, text) in order, each committed before the next; the ids."""
    ids = []
    for to, text in items:
        st, js = api("POST", "/api/messages", {"to": to, "text": text})
        if st == 202:
            ids.append(js["id"])
    return ids


def arrivals(since, ids):
    """id -> ms (fake server clock) when the peer first decrypted it."""
    want, out = set(ids), {}
    for e in wa.events(since, "peer.recv"):
        if e["id"] in want and e["id"] not in out:
            out[e["id"]] = e["t"]
    return out


def settled(ids):
    return psql(DB, "SELECT count(*) FROM wa_messages WHERE id = ANY(string_to_array(:'p0', ',')) "
                    "AND status IN ('sent', 'delivered', 'read')", ",".join(ids)) == [[str(len(ids))]]


# ---- the account rate
check(f"restarted with sending.rate_per_minute = {RATE}", restart(WAPI_SENDING_RATE_PER_MINUTE=str(RATE)))
wa.call("POST", "/config", {"logNodes": False})
seq = wa.last_seq()
ids = enqueue([(PEER, f"paced {i}") for i in range(1000)])
check("1,000 messages queued", len(ids) == 1000, len(ids))
check("every one reaches the peer", wait(lambda: len(arrivals(seq, ids)) == len(ids), timeout=120, step=0.5),
      len(arrivals(seq, ids)))
at = arrivals(seq, ids)
times = [at[m] for m in ids if m in at]
span = (times[-1] - times[0]) if len(times) > 1 else 0
rate = (len(times) - 1) * 60000.0 / span if span else 0
print(f"# {len(times)} messages in {span / 1000:.2f} s: {rate:.1f} a minute (configured {RATE})")
check(f"they arrive at {RATE} a minute within 5% ({rate:.0f})", abs(rate - RATE) <= 0.05 * RATE, rate)
order = sorted(at, key=lambda m: at[m])
check("in the order they were queued", order == ids[:len(order)])
gaps = sorted(b - a for a, b in zip(times, times[1:]))
check("evenly spaced, not in bursts: 90% of the gaps are at least half the interval",
      gaps and gaps[len(gaps) // 10] >= 0.5 * 60000 / RATE, gaps[:5] + gaps[-5:])
check("none failed: all end sent or later", wait(lambda: settled(ids), timeout=60))
wa.call("POST", "/config", {"logNodes": True})

# ---- a least gap per chat
GAP = 400
check(f"restarted with sending.min_gap_per_chat_ms = {GAP}",
      restart(WAPI_SENDING_MIN_GAP_PER_CHAT_MS=str(GAP)))
seq = wa.last_seq()
items = [(PEER if i % 2 == 0 else PEER2, f"gap {i}") for i in range(8)]
ids = enqueue(items)
check("8 messages to two chats queued, alternating", len(ids) == 8, len(ids))
check("every one reaches its peer", wait(lambda: len(arrivals(seq, ids)) == 8, timeout=30), arrivals(seq, ids))
at = arrivals(seq, ids)
for chat in (PEER, PEER2):
    mine = [m for m, (to, _) in zip(ids, items) if to == chat]
    t = [at.get(m, 0) for m in mine]
    check(f"{chat}: its four in order", sorted(mine, key=lambda m: at.get(m, 0)) == mine, t)
    check(f"{chat}: at least {GAP} ms apart (5% for the network)",
          all(b - a >= 0.95 * GAP for a, b in zip(t, t[1:])), [b - a for a, b in zip(t, t[1:])])
check("the other chat's first message was not held by the first chat's gap",
      at.get(ids[1], 1e9) - at.get(ids[0], 0) < GAP / 2, (at.get(ids[0]), at.get(ids[1])))
check("none failed", wait(lambda: settled(ids), timeout=30))

# ---- typing
check("restarted with sending.typing", restart(WAPI_SENDING_TYPING="true"))
seq = wa.last_seq()
short, long_ = "hello", "x" * 200
ids = enqueue([(PEER, short), (PEER, long_)])
check("two texts queued", len(ids) == 2)
check("both reach the peer", wait(lambda: len(arrivals(seq, ids)) == 2, timeout=30))
at = arrivals(seq, ids)
cs = [e for e in wa.events(seq, "chatstate") if e.get("to") == PEER]
states = [e["state"] for e in cs]
check("composing, paused for each (4 chatstates)", states == ["composing", "paused", "composing", "paused"], states)
if len(cs) == 4:
    typed = [cs[1]["t"] - cs[0]["t"], cs[3]["t"] - cs[2]["t"]]
    print(f"# typing shown for {typed[0]} ms (5 characters) and {typed[1]} ms (200 characters)")
    # The next text's typing may start while the previous one is still being encrypted and
    # written (the messaging layer pipelines), so only each message's own order is asked.
    check("each message after its own paused", cs[1]["t"] <= at[ids[0]] and cs[3]["t"] <= at[ids[1]], (cs, at))
    check("typing for about a second for 5 characters, longer for 200 (up to 6 s)",
          900 <= typed[0] <= 1600 and 5500 <= typed[1] <= 6600 and typed[1] > typed[0], typed)
check("none failed", wait(lambda: settled(ids), timeout=30))

check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation")[:2])
check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports())
srv.stop()
done()
