#!/usr/bin/env python3
"""Soak: incoming messages, 1:1 and group, each delivery (retry resends
included) damaged with probability 2%, while the supervisor is killed with
SIGKILL five times at random moments. In the end every message is stored
once, with its text: one message.received each, or, for one no retry could
mend, message.undecryptable then message.updated once our phone filled it.
SOAK_MESSAGES sets the count (default 2000, as `make test` runs it; the
full size is 10000); SOAK_SEED the random choices."""
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, Server, wait  # noqa: E402
from linked import private_database, psql  # noqa: E402

N = int(os.environ.get("SOAK_MESSAGES", "2000"))
KILLS = 5
P = 0.02
DB = private_database(os.environ.get("T_SOAK_UNDECRYPTABLE_DB", "wapi_it_soak_undecryptable"))
BIN = os.environ.get("T_SOAK_UNDECRYPTABLE_BIN") or "build"
os.environ["TEST_DATABASE_URL"] = DB
PEER = "15550009999"


def sql(q, *args):
    return psql(DB, q, *args)


def session_state(s):
    rc, r = s.ctl("session")
    return r.get("session", {}).get("state")


SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
print(f"# {N} messages, SOAK_SEED={SEED}")
random.seed(SEED)
wa = FakeWA()
wa.call("POST", "/config", {"logNodes": False})
srv = Server(bindir=BIN, workers=1, env=wa.env())
srv.start()
sessions = srv.env["WAPI_PATHS_SESSIONS"]
wait(lambda: session_state(srv) == "qr", timeout=30)
qr = wait(lambda: srv.ctl("session", "qr")[1].get("qr"), timeout=30)
check("paired with the fake phone", wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000}).get("ok") is True)
check("logged in", wait(lambda: session_state(srv) == "connected", timeout=30))
g = wa.group_create(PEER, "Soak", [str(wa.phone)])
G = g.get("jid")
check("a group with us in it", bool(G))
time.sleep(0.5)

sent = {}  # id -> (chat, text)
errors = []


def sender():
    for i in range(N):
        text = f"soak {i}"
        group = i % 5 == 4  # one in five to the group
        body = {"from": PEER, "text": text, "corrupt": P}
        if group:
            body["group"] = G
        r = wa.call("POST", "/peer/send", body)
        if not r.get("id"):
            errors.append(r)
            continue
        sent[r["id"]] = (G if group else PEER + "@s.whatsapp.net", text)


t0 = time.monotonic()
th = threading.Thread(target=sender)
th.start()
kills = 0
while kills < KILLS:
    time.sleep(random.uniform(0.5, 3.0) * max(1, N / 2000))
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    kills += 1
    srv = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions))
    srv.start()
    wait(lambda: session_state(srv) == "connected", timeout=60)
th.join()
check("every message sent by the peers", not errors and len(sent) == N, errors[:3])
check(f"{KILLS} kill -9 of the supervisor while messages came", kills == KILLS)


def stored():
    return int(sql("SELECT count(*) FROM wa_messages WHERE NOT from_me")[0][0])


check(f"all {N} stored", wait(lambda: stored() >= N, timeout=60 + N / 50), stored())
check("none of them left a placeholder", wait(lambda: sql(
    "SELECT count(*) FROM wa_messages WHERE type = 'undecryptable'") == [["0"]], timeout=120))
rows = {r[0]: (r[1], r[2], r[3]) for r in sql("SELECT id, chat_jid, type, text FROM wa_messages WHERE NOT from_me")}
bad = [(i, rows.get(i)) for i, (chat, text) in sent.items() if rows.get(i) != (chat, "text", text)]
check("each stored once, decrypted, in its chat with its text", not bad and len(rows) == N, bad[:5])
for mid, _ in bad[:5]:  # what the fake server saw of a missing one
    print(f"# {mid} {sent[mid]}:", [{k: e.get(k) for k in ("kind", "seq", "conn", "type", "count", "online", "resend", "class",
                                                            "detail")}
                                     for e in wa.events(0) if e.get("id") == mid or mid in str(e.get("detail", ""))])
warnings = [e for e in wa.events(0) if e.get("kind") == "warning"]
print(f"# {len(warnings)} fake-server warnings", warnings[:5])
ev = {}
for mid, etype, n in sql("SELECT data->>'id', type, count(*) FROM wa_events WHERE type LIKE 'message.%' "
                         "GROUP BY 1, 2"):
    ev.setdefault(mid, {})[etype] = int(n)
plain = sum(1 for i in sent if ev.get(i) == {"message.received": 1})
recovered = sum(1 for i in sent if ev.get(i) == {"message.undecryptable": 1, "message.updated": 1})
odd = [(i, ev.get(i)) for i in sent if ev.get(i) not in ({"message.received": 1},
                                                         {"message.undecryptable": 1, "message.updated": 1})]
check("one message.received each, or message.undecryptable then message.updated", not odd, odd[:5])
damaged = len(wa.events(0, "peer.retry.resend")) + len(wa.events(0, "group.peer.resend"))
print(f"# {N} messages, {kills} kills, {damaged} resends after retry receipts, {plain} received, "
      f"{recovered} recovered by our phone, {time.monotonic() - t0:.0f} s")
check("some deliveries were damaged and mended by retries", damaged > 0 or N < 200, damaged)
check("no protocol violations", wa.events(0, "violation") == [], wa.events(0, "violation")[:3])
srv.stop()
wa.stop()
done()
