#!/usr/bin/env python3
"""One chat per person, as a property: over 1,000 random arrival orders of
the messages of a few people — some addressed by phone number, some by LID
alone (a chat under the LID), their numbers learned at a random moment
(from a device list, or from a message naming both) — through the very
statements the supervisor runs (wapi_incoming_store, its LID statement),
every person ends with exactly one chat, under their number, holding all
their messages with the unread count of them all, and each merge recorded
once to be told as chat.merged. Then end to end: a peer writes by LID alone,
later by number; wapi merges the chats, raises chat.merged once (SSE), and
the API shows one chat."""
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_chatmerge_{os.getpid()}")
BIN = os.environ.get("T_CHAT_MERGE_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                             else "build")
TRIALS = int(os.environ.get("T_CHAT_MERGE_TRIALS", "1000"))

mig = subprocess.run([os.path.join(ROOT, BIN, "wapi"), "--migrate"], env=dict(os.environ, DATABASE_URL=DB),
                     capture_output=True, text=True)
check("the schema is migrated", mig.returncode == 0, mig.stderr[-500:])

# The supervisor's statement for a LID learned from a device list (supervisor/inbox.c SQL_LID).
src = open(os.path.join(ROOT, "supervisor/inbox.c")).read()
m = re.search(r'static const char SQL_LID\[\] =\s*((?:"[^"]*"\s*)+);', src)
SQL_LID = "".join(re.findall(r'"([^"]*)"', m.group(1))) if m else ""
check("the supervisor's LID statement is read from its source", "wa_contacts" in SQL_LID, SQL_LID)


def q(s):
    return "'" + s.replace("'", "''") + "'"


EV = [1]


def message(mid, chat, sender, lid=None, ts=1700000000):
    EV[0] += 1
    e = {"k": "m", "id": mid, "chat": chat, "sender": sender, "from_me": False, "type": "text", "text": mid,
         "ts": ts, "ev": EV[0], "et": "message.received"}
    if lid:
        e["lid"] = lid
    return e


def trial(rng, n):
    """SQL for one trial (in a transaction rolled back at its end) that raises
    an exception naming what broke; and a description of the order."""
    people = []
    steps = []
    for p in range(rng.randint(1, 4)):
        pn = f"1555{n:05d}{p}@s.whatsapp.net"
        lid = f"9{n:07d}{p}@lid"
        people.append((pn, lid))
        mine = []
        for k in range(rng.randint(1, 4)):
            mine.append(("pn", message(f"T{n}P{p}N{k}", pn, pn)))
        for k in range(rng.randint(1, 4)):
            mine.append(("lid", message(f"T{n}P{p}L{k}", lid, lid)))
        how = rng.choice(["device-list", "message", "both"])
        if how in ("device-list", "both"):
            mine.append(("map", (pn, lid)))
        if how in ("message", "both"):
            mine.append(("pnlid", message(f"T{n}P{p}M", pn, pn, lid=lid)))
        steps.extend(mine)
    rng.shuffle(steps)
    # Batches as the supervisor makes them: consecutive messages together (1..4), a mapping on its own.
    out = ["BEGIN;"]
    i = 0
    while i < len(steps):
        if steps[i][0] == "map":
            pn, lid = steps[i][1]
            out.append(SQL_LID.replace("$1", q(pn)).replace("$2", q(lid)) + ";")
            i += 1
            continue
        batch = []
        while i < len(steps) and steps[i][0] != "map" and len(batch) < rng.randint(1, 4):
            batch.append(steps[i][1])
            i += 1
        out.append(f"SELECT count(*) FROM wapi_incoming_store({q(json.dumps(batch))}::jsonb);")
    checks = []
    for p, (pn, lid) in enumerate(people):
        want = sum(1 for k, s in steps if k != "map" and s["id"].startswith(f"T{n}P{p}"))
        checks.append(f"""
  IF EXISTS (SELECT 1 FROM wa_chats WHERE jid = {q(lid)}) THEN RAISE EXCEPTION 'trial {n}: a chat under the LID {lid} is left'; END IF;
  IF (SELECT count(*) FROM wa_messages WHERE id LIKE 'T{n}P{p}%' AND chat_jid = {q(pn)}) <> {want}
    THEN RAISE EXCEPTION 'trial {n}: {pn} holds % of its {want} messages',
      (SELECT count(*) FROM wa_messages WHERE id LIKE 'T{n}P{p}%' AND chat_jid = {q(pn)}); END IF;
  IF (SELECT unread_count FROM wa_chats WHERE jid = {q(pn)}) IS DISTINCT FROM {want}
    THEN RAISE EXCEPTION 'trial {n}: {pn} shows % unread, want {want}', (SELECT unread_count FROM wa_chats WHERE jid = {q(pn)}); END IF;
  IF (SELECT count(*) FROM wa_chat_merges WHERE lid = {q(lid)}) > 1 THEN RAISE EXCEPTION 'trial {n}: two merges of {lid}'; END IF;
  IF EXISTS (SELECT 1 FROM wa_messages WHERE id LIKE 'T{n}P{p}L%') AND
     (SELECT min(m.id) FROM wa_messages m WHERE m.id LIKE 'T{n}P{p}%' AND m.chat_jid = {q(lid)}) IS NOT NULL
    THEN RAISE EXCEPTION 'trial {n}: a message left in the LID chat'; END IF;""")
    out.append("DO $$ BEGIN" + "".join(checks) + "\nEND $$;")
    out.append("ROLLBACK;")
    return "\n".join(out)


seed = int(os.environ.get("T_CHAT_MERGE_SEED", str(int(time.time()))))
rng = random.Random(seed)
failures = []
CHUNK = 100
for start in range(0, TRIALS, CHUNK):
    script = "\n".join(trial(rng, n) for n in range(start, min(TRIALS, start + CHUNK)))
    r = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1"], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(r.stderr.strip()[-400:])
        break
check(f"{TRIALS} random arrival orders (seed {seed}): one chat per person, under the number, every message in it, "
      "the unread count of them all, each merge recorded once", not failures, failures)

# A property that could not fail would prove nothing: without the merge the same orders leave LID chats.
psql(DB, "ALTER TABLE wa_contacts DISABLE TRIGGER wa_contacts_lid_learned; "
         "ALTER TABLE wa_contacts DISABLE TRIGGER wa_contacts_lid_changed")
rng = random.Random(seed)
r = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1"],
                   input="\n".join(trial(rng, n) for n in range(0, 50)), capture_output=True, text=True)
psql(DB, "ALTER TABLE wa_contacts ENABLE TRIGGER wa_contacts_lid_learned; "
         "ALTER TABLE wa_contacts ENABLE TRIGGER wa_contacts_lid_changed")
check("(with the merge switched off the same check fails: a LID chat is left)",
      r.returncode != 0 and "left" in r.stderr, r.stderr[-300:])

# ---- end to end
wa = FakeWA()
srv = Server(bindir=BIN, workers=2, env=wa.env(), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
sse = SSE(srv, api.key)
PEER = "15550009999"
r1 = wa.call("POST", "/peer/send", {"text": "by LID alone", "viaLid": True, "noPn": True})
LID = r1.get("lid")
ok = wait(lambda: api("GET", f"/api/messages/{r1.get('id')}")[0] == 200, timeout=15)
st, m1 = api("GET", f"/api/messages/{r1.get('id')}")
check("a message by LID alone (its number unknown): a chat under the LID", ok and m1.get("chat_jid") == LID, m1)
# The number is learned when we write to it (the device list names the LID).
st, sent = api("POST", "/api/messages", {"to": PEER, "text": "hello by number"})
ok = st == 202 and wait(lambda: api("GET", f"/api/messages/{sent['id']}")[1].get("status") in ("sent", "delivered"),
                        timeout=20)
merged = wait(lambda: [e for e in sse.events if e.get("event") == "chat.merged"], timeout=10)
chats = [c["jid"] for c in api("GET", "/api/chats")[1].get("data", [])]
st, m1 = api("GET", f"/api/messages/{r1.get('id')}")
st, ch = api("GET", f"/api/chats/{PEER}@s.whatsapp.net/messages")
check("the number learned (our send's device list names the LID): the chats merged, the LID's message in the "
      "number's chat beside ours", ok and m1.get("chat_jid") == PEER + "@s.whatsapp.net" and LID not in chats and
      chats.count(PEER + "@s.whatsapp.net") == 1 and len(ch.get("data", [])) == 2, (m1, chats, ch))
data = json.loads(merged[0]["data"])["data"] if merged else {}
check("chat.merged once, naming both and the messages moved",
      len(merged or []) == 1 and data == {"jid": PEER + "@s.whatsapp.net", "merged": LID, "messages": 1},
      (merged, data))
unread = [c for c in api("GET", "/api/chats")[1].get("data", []) if c["jid"] == PEER + "@s.whatsapp.net"]
check("its unread count carried over (the LID chat's one unread message)", unread and
      unread[0].get("unread_count") == 1, unread)
time.sleep(2.5)
check("no second chat.merged", len([e for e in sse.events if e.get("event") == "chat.merged"]) == 1)
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
srv.stop()
wa.stop()
done()
