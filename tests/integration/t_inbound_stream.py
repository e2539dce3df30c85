#!/usr/bin/env python3
"""Receipts and acks keep coming while incoming messages keep arriving.

An unmodified Baileys client, linked as a companion of another account on
the fake WhatsApp server, streams texts to the account wapi is linked to.
The fake server records, for each <message> it relays to wapi, the order in
which it was written and in which wapi's <receipt> and <ack> for it came
back (GET /stamps, event sequence numbers). The check is on that order, not
on time: by the time the server writes message k+W, wapi has acknowledged
messages 1..k. A client that withholds acks while messages keep coming is
what WhatsApp disconnects.

The database is reached through a pipe that holds every packet 25 ms each
way (tests/integration/slowdb.py), as a database in another zone would be.

1. While a send of ours waits for the server (its device-list query answered
   seconds late), incoming messages are still committed and acknowledged.
2. A stream faster than one commit per round trip (100 texts/s against a
   50 ms round trip to the database) is acknowledged as it goes: what
   arrives while a commit is under way is committed together next, so no
   backlog builds however long the stream lasts."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql, wait  # noqa: E402
from slowdb import slow_url  # noqa: E402

DB = private_database(f"wapi_it_inbound_stream_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
PEER_TWO = "15550008888@s.whatsapp.net"


def stamps(wa, ids):
    """The fake server's stamps of these message ids, in the order it wrote them to wapi."""
    want = set(ids)
    st = [x for x in wa.call("GET", "/stamps", timeout=60)["stamps"] if x["id"] in want]
    return sorted(st, key=lambda x: x["deliverSeq"])


def all_acked(wa, ids):
    st = stamps(wa, ids)
    return len(st) == len(ids) and all("ack" in x and "receipt" in x for x in st)


def most_behind(st):
    """The most messages written to wapi between one message and its ack."""
    deliv = [x["deliverSeq"] for x in st]
    return max((sum(1 for d in deliv if x["deliverSeq"] < d < x["ackSeq"]) for x in st if x.get("ackSeq")), default=-1)


def lagging(st, w):
    """Messages k whose ack had not come when message k+w was written: [(k, id)]."""
    return [(k, st[k]["id"]) for k in range(len(st) - w)
            if st[k].get("ackSeq") is None or st[k]["ackSeq"] > st[k + w]["deliverSeq"]]


wa = FakeWA()
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false"})
srv = Server(workers=1, env=env, pg_url=slow_url(DB, 25))
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("session linked by QR", api.link(wa))
ME = wa.phone + "@s.whatsapp.net"
bl = BaileysPeer(wa, "15550007777")
check("Baileys linked as a companion of another account", bl.ready(), bl.lines[-2:])

# Warm-up: Baileys' device lists and sessions with wapi exist before the streams.
wa.call("POST", "/stamps/start")
warm = bl.stream(to=ME, count=3, prefix="warm-up")
check("warm-up messages acknowledged", warm and wait(lambda: all_acked(wa, warm), 30))

# ---- 1. a send waiting for the server

W, N, RATE, HOLD_MS = 60, 150, 25, 10000
wa.call("POST", "/config", {"usyncDelayMs": HOLD_MS})
seq = wa.last_seq()
st_, js = api("POST", "/api/messages", {"to": PEER_TWO, "text": "to a contact whose device list is not known yet"})
out_id = js.get("id") if st_ == 202 else None
held = wa.wait_event("usync", since=seq, timeout=20)
check("our send asked the server for the contact's devices (answer held back)", out_id and held, (st_, js))
wa.call("POST", "/config", {"usyncDelayMs": 0})  # later queries are answered at once
t0 = time.monotonic()
ids = bl.stream(to=ME, count=N, rate=RATE, prefix="while a send waits")
check(f"Baileys streamed {N} texts", ids and len(ids) == N, ids and len(ids))
check("every one got wapi's receipt and ack", ids and wait(lambda: all_acked(wa, ids), 60))
st = stamps(wa, ids or [])
lag = lagging(st, W)
print(f"# part 1: at most {most_behind(st)} messages written between a message and its ack", flush=True)
check(f"acks kept coming while the send waited: message k acknowledged before message k+{W} was written",
      len(st) == N and not lag,
      f"{len(lag)} late, first {lag[:3]}; the stream took {time.monotonic() - t0:.1f} s, "
      f"the device list was held {HOLD_MS / 1000:g} s")
check("and the send went out once the device list came",
      out_id and wait(lambda: psql(DB, "SELECT status IN ('sent', 'delivered') FROM wa_messages WHERE id = :'p0'",
                                   out_id) == [["t"]], 30),
      out_id and psql(DB, "SELECT status, error FROM wa_messages WHERE id = :'p0'", out_id))
stored = psql(DB, "SELECT count(*) FROM wa_messages WHERE NOT from_me AND text LIKE 'while a send waits %'")
check("every message of the stream stored", stored == [[str(N)]], stored)

# ---- 2. a stream faster than one commit per round trip

W2, N2, RATE2 = 150, 600, 100
t0 = time.monotonic()
ids = bl.stream(to=ME, count=N2, rate=RATE2, prefix="faster than a round trip")
took = time.monotonic() - t0
check(f"Baileys streamed {N2} texts", ids and len(ids) == N2, ids and len(ids))
check("every one got wapi's receipt and ack", ids and wait(lambda: all_acked(wa, ids), 120))
st = stamps(wa, ids or [])
lag = lagging(st, W2)
print(f"# part 2: at most {most_behind(st)} messages written between a message and its ack", flush=True)
check(f"acks kept up with the stream: message k acknowledged before message k+{W2} was written",
      len(st) == N2 and not lag, f"{len(lag)} late, first {lag[:3]}; the stream took {took:.1f} s")
stored = psql(DB, "SELECT count(*) FROM wa_messages WHERE NOT from_me AND text LIKE 'faster than a round trip %'")
check("every message of the stream stored", stored == [[str(N2)]], stored)
ev = psql(DB, "SELECT count(*) FROM wa_events WHERE type = 'message.received' AND data->>'text' LIKE 'faster than a round trip %'")
check("each with its message.received event", ev == [[str(N2)]], ev)

viol = wa.events(0, "violation")
check("the fake server saw no protocol violation", not viol, viol[:2])
bl.quit()
srv.stop()
wa.stop()
done()
