#!/usr/bin/env python3
"""Pins and keep-in-chat, received: an unmodified Baileys client pins a
message of its chat with wapi (its own pinInChatMessage, for 7 days) and
unpins it; a peer keeps a message in a disappearing chat and undoes it. Each
is a change of the target — pinned_at / pinned_until / pinned_by, kept — with
one message.updated event each, and no message of its own; a pin naming a
message we do not have changes nothing and is still acknowledged. And a
contact who wrote by number, then by LID, decrypts with the session made
under the number."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_pins_{os.getpid()}")
BIN = os.environ.get("T_PINS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                       else "build")
S = "@s.whatsapp.net"
B = "15550007202"

wa = FakeWA()
srv = Server(bindir=BIN, workers=2, env=wa.env(), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
bl = BaileysPeer(wa, B)
check("Baileys linked as a companion of another account", bl.ready())


def msg(mid):
    st, js = api("GET", f"/api/messages/{mid}")
    return js if st == 200 else None


def updated(mid):
    return [json.loads(r[0]) for r in psql(DB, "SELECT data::text FROM wa_events WHERE type = 'message.updated' "
                                               "AND data->>'id' = :'p0' ORDER BY id", mid)]


def count_messages():
    return int(psql(DB, "SELECT count(*) FROM wa_messages")[0][0])


r = bl.result("sent", bl.start({"op": "send", "to": wa.phone + S, "text": "pin me"}))
target = r.get("sent") if r else None
check("Baileys' text is stored", bool(target) and wait(lambda: msg(target), timeout=15))
n0 = count_messages()
t0 = time.time()
r = bl.result("sent", bl.start({"op": "pin", "to": wa.phone + S, "target": target, "fromMe": True, "type": 1,
                                "time": 604800}))
got = wait(lambda: (lambda m: m if m and m.get("pinned_at") else None)(msg(target)), timeout=15) or {}
until = got.get("pinned_until") or ""
check("Baileys pins it for 7 days: pinned_at, pinned_until (a week later) and pinned_by on the message",
      bool(r) and got.get("pinned_by") == B + S and until.startswith(time.strftime("%Y-%m-%d", time.gmtime(t0 + 604800))),
      got)
check("... one message.updated with it, and no message of its own", len(updated(target)) == 1 and
      updated(target)[0].get("pinned_until") == until and count_messages() == n0, (updated(target), count_messages(), n0))
r = bl.result("sent", bl.start({"op": "pin", "to": wa.phone + S, "target": target, "fromMe": True, "type": 2}))
got = wait(lambda: (lambda m: m if m and m.get("pinned_at") is None else None)(msg(target)), timeout=15) or {}
check("unpinned: pinned_at, pinned_until and pinned_by null again, a second message.updated",
      bool(r) and got.get("pinned_until") is None and got.get("pinned_by") is None and len(updated(target)) == 2, got)

# keep-in-chat, from a peer
p1 = wa.call("POST", "/peer/send", {"text": "keep me"})
check("the peer's text is stored", wait(lambda: msg(p1["id"]), timeout=15))
wa.call("POST", "/peer/send", {"keep": {"target": p1["id"], "type": 1}})
got = wait(lambda: (lambda m: m if m and m.get("kept") else None)(msg(p1["id"])), timeout=15) or {}
check("kept in the chat: kept true, message.updated once", got.get("kept") is True and len(updated(p1["id"])) == 1,
      (got, updated(p1["id"])))
wa.call("POST", "/peer/send", {"keep": {"target": p1["id"], "type": 2}})
got = wait(lambda: (lambda m: m if m and m.get("kept") is False else None)(msg(p1["id"])), timeout=15) or {}
check("no longer kept: kept false, a second message.updated", got.get("kept") is False and
      len(updated(p1["id"])) == 2, got)
# The same peer, having written by number, now writes by its LID (the number beside it): its session was
# made under the number's address, and the message still decrypts.
v = wa.call("POST", "/peer/send", {"text": "now by LID", "viaLid": True})
got = wait(lambda: msg(v["id"]), timeout=15) or {}
check("a contact who wrote by number writes by LID: decrypted with the session made under the number",
      got.get("text") == "now by LID" and got.get("chat_jid") == "15550009999@s.whatsapp.net" and
      got.get("sender_lid", "").endswith("@lid"), got)
n0 += 1
mark = wa.last_seq()
k = wa.call("POST", "/peer/send", {"keep": {"target": "3EB0NOSUCHMESSAGE0001", "type": 1}})
acked = wait(lambda: [e for e in wa.events(mark, "ack") if e.get("id") == k["id"]], timeout=10)
check("a keep naming a message we do not have: acknowledged, nothing stored, no event",
      bool(acked) and count_messages() == n0 + 1 and not updated("3EB0NOSUCHMESSAGE0001"), acked)
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
bl.quit()
srv.stop()
wa.stop()
done()
