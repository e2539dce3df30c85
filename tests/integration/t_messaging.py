#!/usr/bin/env python3
"""Messaging over the linked-device session, against the fake WhatsApp server
and its peer account (libsignal in Node, an independent implementation):
receive (stored before the receipt, duplicates once, replies, reactions, edits,
revokes, unsupported types), send (usync, prekey bundle, pkmsg then msg, server
ack -> sent, receipts -> delivered / read, events in wa_events), kill -9 of the
supervisor before the commit of an incoming message and in the middle of a send."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, fresh_database, Server, wait  # noqa: E402
from linked import Api, psql  # noqa: E402

DB = fresh_database(os.environ.get("T_MESSAGING_DB", "wapi_it_messaging"))
# The ASan/UBSan build when there is one: memory errors in the message paths fail the suite.
BIN = os.environ.get("T_MESSAGING_BIN") or ("build/san" if os.path.exists(os.path.join(os.path.dirname(__file__), "../../build/san/wapi")) else "build")
os.environ["TEST_DATABASE_URL"] = DB


def sql(q, *args):
    return psql(DB, q, *args)




def session_state(srv):
    rc, r = srv.ctl("session")
    return r.get("session", {}).get("state")


def violations(wa):
    return wa.events(0, "violation")


def recv_stanzas(wa, tag, mid, since=0):
    return [e for e in wa.events(since, "recv") if e.get("node", {}).get("tag") == tag and
            e["node"]["attrs"].get("id") == mid]


def enqueue(to, text, reply_to=None):
    """What a program does: POST /api/messages (the API commits the message
    and its outbox row, then wakes the outbox). Returns the message id."""
    body = {"to": to, "text": text}
    if reply_to:
        body["reply_to"] = reply_to
    st, _, b = srv.request("POST", "/api/messages", body=json.dumps(body).encode(),
                           headers={"x-api-key": KEY, "content-type": "application/json"})
    if st != 202:
        raise RuntimeError(f"POST /api/messages: {st} {b[:200]!r}")
    return json.loads(b)["id"]


def status_of(mid):
    r = sql("SELECT status FROM wa_messages WHERE id = :'p0'", mid)
    return r[0][0] if r else None


def rest_message(mid):
    st, _, b = srv.request("GET", "/api/messages/" + mid, headers={"x-api-key": KEY})
    return json.loads(b) if st == 200 else None


def event_data(etype, mid):
    r = sql("SELECT data::text FROM wa_events WHERE type = :'p0' AND data->>'id' = :'p1' ORDER BY id DESC LIMIT 1",
            etype, mid)
    return json.loads(r[0][0]) if r else None


def same_as_rest(what, event, rest, changed_since=()):
    """The event's data is the message's REST body: the same field names, and
    the same values (time precision included) but for those that changed
    since the event by design."""
    check(f"{what}: the event's data has exactly the REST body's fields",
          event is not None and rest is not None and sorted(event) == sorted(rest), (event, rest))
    diff = {k: (event.get(k), rest.get(k)) for k in (rest or {}) if k not in changed_since and
            (event or {}).get(k) != rest.get(k)}
    check(f"{what}: every field equal", event is not None and not diff, diff)


def peer_received(wa, mid):
    return [r for r in wa.call("GET", "/peer/received") if r["id"] == mid]


wa = FakeWA()
PEER = "15550009999@s.whatsapp.net"
PEER2 = "15550008888@s.whatsapp.net"  # no session with us until we write first

# Pair a fresh wapi with the fake phone.
srv = Server(bindir=BIN, workers=1, env=wa.env())
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"  # the origin the key's sign-up comes from
srv.start()
sessions = srv.env["WAPI_PATHS_SESSIONS"]
wait(lambda: session_state(srv) == "qr")
rc, r = srv.ctl("session", "qr")
res = wa.call("POST", "/phone/scan", {"qr": r.get("qr"), "timeoutMs": 10000})
check("paired with the fake phone", res.get("ok") is True, res)
check("logged in", wait(lambda: session_state(srv) == "connected"))
check("prekeys uploaded", wa.wait_event("prekeys.upload", timeout=15) is not None)
check("schema has the messaging tables", sql("SELECT to_regclass('wa_outbox') IS NOT NULL")[0][0] == "t")
KEY = Api(srv).key  # the first account (the admin); its key outlives server restarts

# 1. Peer -> wapi: a text, stored with contact, chat and event before the receipt.
seq = wa.last_seq()
out = wa.call("POST", "/peer/send", {"text": "hello wapi"})
mid = out.get("id")
check("the peer sent a pkmsg to our device", out.get("ok") and out.get("devices"), out)
row = wait(lambda: sql("SELECT chat_jid, sender_jid, from_me, type, subtype, text, status FROM wa_messages "
                       "WHERE id = :'p0'", mid))
check("incoming text stored", row and row[0] == [PEER, PEER, "f", "text", "conversation", "hello wapi", "received"], row)
check("receipt sent for it", wait(lambda: recv_stanzas(wa, "receipt", mid, seq)), wa.events(seq, "recv")[-3:])
check("and an ack", wait(lambda: [e for e in wa.events(seq, "ack") if e.get("id") == mid]))
ev = sql("SELECT type, data->>'id', data->>'text', data->>'chat_jid' FROM wa_events WHERE data->>'id' = :'p0'", mid)
check("message.received event row in the same commit", ev == [["message.received", mid, "hello wapi", PEER]], ev)
chat = sql("SELECT last_message_id, unread_count FROM wa_chats WHERE jid = :'p0'", PEER)
check("chat row with last message and unread count", chat == [[mid, "1"]], chat)
contact = sql("SELECT push_name FROM wa_contacts WHERE jid = :'p0'", PEER)
check("contact row with the push name", contact == [["Peer"]], contact)
same_as_rest("message.received", event_data("message.received", mid), rest_message(mid))

# 2. The same stanza again (lost ack): stored once, acknowledged again.
seq = wa.last_seq()
wa.call("POST", "/peer/resend", {"id": mid})
check("duplicate acknowledged again", wait(lambda: [e for e in wa.events(seq, "ack") if e.get("id") == mid]))
check("duplicate stored once", sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", mid) == [["1"]])
check("duplicate makes no second event", sql("SELECT count(*) FROM wa_events WHERE data->>'id' = :'p0'", mid) == [["1"]])

# 3. Reply, reaction, edit, revoke, unsupported.
r2 = wa.call("POST", "/peer/send", {"text": "a reply", "replyTo": mid})["id"]
check("reply stored with reply_to", wait(lambda: sql("SELECT reply_to, subtype FROM wa_messages WHERE id = :'p0'", r2))
      == [[mid, "extendedTextMessage"]])
r3 = wa.call("POST", "/peer/send", {"reaction": {"target": mid, "text": "👍"}})["id"]
check("reaction stored", wait(lambda: sql("SELECT type, reaction_to, reaction FROM wa_messages WHERE id = :'p0'", r3))
      == [["reaction", mid, "👍"]])
check("message.reaction event", wait(lambda: sql("SELECT count(*) FROM wa_events WHERE type = 'message.reaction' "
                                                 "AND data->>'reaction_to' = :'p0'", mid) == [["1"]]))
wa.call("POST", "/peer/send", {"edit": {"target": mid, "text": "hello, edited"}})
check("edit applied", wait(lambda: sql("SELECT text, edited_at IS NOT NULL FROM wa_messages WHERE id = :'p0'", mid)
                           == [["hello, edited", "t"]]))
check("message.edited event", wait(lambda: sql("SELECT data->>'text' FROM wa_events WHERE type = 'message.edited' "
                                               "AND data->>'id' = :'p0'", mid) == [["hello, edited"]]))
same_as_rest("message.edited", event_data("message.edited", mid), rest_message(mid))
wa.call("POST", "/peer/send", {"revoke": {"target": r2}})
check("revoke applied", wait(lambda: sql("SELECT revoked_at IS NOT NULL FROM wa_messages WHERE id = :'p0'", r2)
                             == [["t"]]))
check("message.revoked event", wait(lambda: sql("SELECT count(*) FROM wa_events WHERE type = 'message.revoked' "
                                                "AND data->>'id' = :'p0'", r2) == [["1"]]))
same_as_rest("message.revoked", event_data("message.revoked", r2), rest_message(r2))
same_as_rest("message.reaction", event_data("message.reaction", r3), rest_message(r3))
r5 = wa.call("POST", "/peer/send", {"unsupported": True})["id"]
check("unsupported type stored by name", wait(lambda: sql("SELECT type, subtype FROM wa_messages WHERE id = :'p0'", r5))
      == [["unsupported", "groupInviteMessage"]])

# Sent from our own phone to a contact: a deviceSentMessage, stored from_me in that chat.
r8 = wa.call("POST", "/peer/send", {"from": wa.phone, "dsmTo": PEER, "text": "sent from the phone"})["id"]
row = wait(lambda: sql("SELECT chat_jid, sender_jid, from_me, text, status FROM wa_messages WHERE id = :'p0'", r8))
check("our other device's message (deviceSentMessage) stored from_me in the contact's chat",
      row == [[PEER, wa.phone + "@s.whatsapp.net", "t", "sent from the phone", "sent"]], row)
check("and acknowledged with a sender receipt", wait(lambda: [e for e in recv_stanzas(wa, "receipt", r8)
                                                              if e["node"]["attrs"].get("type") == "sender"]))

# A message that cannot be decrypted: retry receipt with a count, acked, nothing stored, counted.
seq = wa.last_seq()
r9 = wa.call("POST", "/peer/send", {"text": "broken", "corrupt": True})["id"]
retry = wait(lambda: [e for e in recv_stanzas(wa, "receipt", r9, seq) if e["node"]["attrs"].get("type") == "retry"])
check("undecryptable message answered with a retry receipt", retry, wa.events(seq, "recv")[-2:])
kids = retry[0]["node"].get("content", []) if retry else []
check("retry receipt carries <retry count=1 id> and our registration id",
      any(k["tag"] == "retry" and k["attrs"].get("count") == "1" and k["attrs"].get("id") == r9 for k in kids) and
      any(k["tag"] == "registration" for k in kids), kids)
check("nothing stored for it", sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", r9) == [["0"]])
check("decryption failures counted in /metrics", srv.metric("wapi_wa_decrypt_failures_total") >= 1)
check("stored messages counted in /metrics", srv.metric("wapi_wa_messages_received_total") >= 5)
check("and logged", "cannot decrypt an incoming message" in srv.log())

# /metrics follows the session and the outbox: connected 1; stopped, texts wait in the
# outbox (wapi_outbox_pending counts them); started again, they go and the gauge drops.
check("/metrics: wapi_wa_connected 1 while connected", srv.metric("wapi_wa_connected") == 1)
check("/metrics: session state connected is 1", srv.metric('wapi_wa_session_state{state="connected"}') == 1)
check("/metrics: nothing waits in the outbox", wait(lambda: srv.metric("wapi_outbox_pending") == 0, timeout=10))
srv.ctl("session", "stop")
check("/metrics: wapi_wa_connected 0 once stopped", wait(lambda: srv.metric("wapi_wa_connected") == 0))
check("/metrics: session state stopped is 1, connected 0",
      srv.metric('wapi_wa_session_state{state="stopped"}') == 1 and
      srv.metric('wapi_wa_session_state{state="connected"}') == 0)
held = [enqueue(PEER, f"held while stopped {i}") for i in range(3)]
check("/metrics: the 3 texts accepted while stopped are counted in wapi_outbox_pending",
      wait(lambda: srv.metric("wapi_outbox_pending") == 3, timeout=10), srv.metric("wapi_outbox_pending"))
srv.ctl("session", "start")
check("/metrics: wapi_wa_connected 1 again", wait(lambda: srv.metric("wapi_wa_connected") == 1, timeout=30))
check("the held texts are sent", wait(lambda: all(status_of(m) in ("sent", "delivered", "read") for m in held),
                                      timeout=30), [status_of(m) for m in held])
check("/metrics: wapi_outbox_pending back to 0", wait(lambda: srv.metric("wapi_outbox_pending") == 0, timeout=10),
      srv.metric("wapi_outbox_pending"))

# 4. Receipt only after the commit: hold a lock on wa_messages, the receipt waits.
locker = subprocess.Popen(["psql", DB, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
locker.stdin.write("BEGIN; LOCK TABLE wa_messages IN EXCLUSIVE MODE; SELECT 'locked';\n")
locker.stdin.flush()
locker.stdout.readline()
seq = wa.last_seq()
r6 = wa.call("POST", "/peer/send", {"text": "while the database is slow"})["id"]
time.sleep(1.5)
check("no receipt while the message is not committed", not recv_stanzas(wa, "receipt", r6, seq))
check("not stored yet", sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", r6) == [["0"]])
locker.stdin.write("ROLLBACK;\n")
locker.stdin.close()
locker.wait(5)
check("receipt once committed", wait(lambda: recv_stanzas(wa, "receipt", r6, seq)))
check("stored", sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", r6) == [["1"]])

# 5. kill -9 before the commit: the server resends after the restart, stored once.
locker = subprocess.Popen(["psql", DB, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
locker.stdin.write("BEGIN; LOCK TABLE wa_messages IN EXCLUSIVE MODE; SELECT 'locked';\n")
locker.stdin.flush()
locker.stdout.readline()
seq = wa.last_seq()
r7 = wa.call("POST", "/peer/send", {"text": "survives a crash"})["id"]
time.sleep(1.0)
check("no receipt before the crash (the commit is waiting)", not recv_stanzas(wa, "receipt", r7, seq))
os.killpg(srv.proc.pid, signal.SIGKILL)
srv.proc.wait(5)
locker.stdin.write("ROLLBACK;\n")
locker.stdin.close()
locker.wait(5)
seq = wa.last_seq()
srv = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions)).start()
check("logged in again", wait(lambda: session_state(srv) == "connected"))
check("the server resent the unacked message", wait(lambda: wa.events(seq, "inbox.resend")))
check("stored exactly once after the restart",
      wait(lambda: sql("SELECT count(*), min(text) FROM wa_messages WHERE id = :'p0'", r7) == [["1", "survives a crash"]]))
check("acknowledged after the restart", wait(lambda: [e for e in wa.events(seq, "ack") if e.get("id") == r7]))

# 6. wapi -> a new contact: usync, prekey bundle, pkmsg with device-identity, ack -> sent, receipts.
seq = wa.last_seq()
s1 = enqueue(PEER2, "hello peer")
got = wait(lambda: peer_received(wa, s1))
check("the peer decrypted our message with the same id", got and got[0]["text"] == "hello peer", got)
check("devices listed with usync", wa.events(seq, "usync"))
check("prekey bundle fetched for the new contact", [e for e in wa.events(seq, "prekeys.fetch") if "15550008888" in
                                                    json.dumps(e)], wa.events(seq, "prekeys.fetch"))
rec = [e for e in wa.events(seq, "peer.recv") if e["id"] == s1]
check("first message is a pkmsg (with device-identity, checked by the server)", rec and rec[0]["pkmsg"] is True, rec)
check("status sent, then delivered on the automatic receipt",
      wait(lambda: status_of(s1) == "delivered"), status_of(s1))
evs = sql("SELECT type, data->>'status' FROM wa_events WHERE data->>'id' = :'p0' ORDER BY id", s1)
check("message.sent then message.status delivered", evs == [["message.sent", "sent"], ["message.status", "delivered"]], evs)
rest = rest_message(s1)
same_as_rest("message.status", event_data("message.status", s1), rest)
same_as_rest("message.sent", event_data("message.sent", s1), rest, changed_since=("status", "updated_at"))
wa.call("POST", "/peer/receipt", {"id": s1, "type": "read", "from": "15550008888"})
check("read receipt -> read", wait(lambda: status_of(s1) == "read"))
st_r, _, b_r = srv.request("GET", f"/api/messages/{s1}/receipts", headers={"x-api-key": KEY})
rc_ = json.loads(b_r) if st_r == 200 else {"http": st_r, "body": b_r[:300]}
rcs = rc_.get("receipts") or [{}]
check("GET /api/messages/{id}/receipts: the recipient (no device), delivered then read",
      st_r == 200 and rc_["status"] == "read" and len(rc_["receipts"]) == 1 and
      rcs[0]["recipient"] == "15550008888@s.whatsapp.net" and rcs[0]["delivered_at"] and rcs[0]["read_at"] and
      rcs[0]["delivered_at"] <= rcs[0]["read_at"] and rcs[0]["played_at"] is None, rc_)
st_r, _, b_r = srv.request("GET", "/api/messages/3EB0NOSUCH0000000000/receipts", headers={"x-api-key": KEY})
check("receipts of an unknown message: 404", st_r == 404, b_r)
check("outbox row done", sql("SELECT state, attempts FROM wa_outbox WHERE message_id = :'p0'", s1) == [["done", "1"]])

s2 = enqueue(PEER2, "second, as a reply", reply_to=s1)
got = wait(lambda: peer_received(wa, s2))
check("second message arrives as a reply", got and got[0]["text"] == "second, as a reply" and got[0]["replyTo"] == s1, got)
check("no second prekey fetch (the session is kept)",
      len([e for e in wa.events(seq, "prekeys.fetch") if "15550008888" in json.dumps(e)]) == 1)
# The recipient lost its session and asks again: a fresh pkmsg with count=1, same id, to that device.
seq = wa.last_seq()
wa.call("POST", "/peer/retry", {"id": s1, "from": "15550008888"})
rs = wait(lambda: [e for e in wa.events(seq, "peer.resend") if e["id"] == s1])
check("retry receipt answered: the message is re-encrypted for the device that asked",
      rs and rs[0]["count"] == 1 and rs[0]["type"] == "pkmsg" and rs[0]["text"] == "hello peer", wa.events(seq)[-4:])
check("after the resend the status is unchanged", status_of(s1) == "read", status_of(s1))
s4 = enqueue(PEER, "to the one who wrote first")
got = wait(lambda: peer_received(wa, s4))
check("a contact who wrote first gets a msg on the session they started",
      got and [e for e in wa.events(seq, "peer.recv") if e["id"] == s4 and e["pkmsg"] is False], got)

# 7. A burst, then kill -9 mid-send: every message reaches the peer exactly once with its id.
ids = [enqueue(PEER, f"burst {i}") for i in range(20)]
wait(lambda: len([m for m in ids if peer_received(wa, m)]) >= 5, timeout=20, step=0.01)
os.killpg(srv.proc.pid, signal.SIGKILL)
srv.proc.wait(5)
srv = Server(bindir=BIN, workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions)).start()
check("logged in after the kill", wait(lambda: session_state(srv) == "connected", timeout=45))
check("every burst message reaches the peer",
      wait(lambda: all(peer_received(wa, m) for m in ids), timeout=60), [m for m in ids if not peer_received(wa, m)][:3])
texts = {r["id"]: r for r in wa.call("GET", "/peer/received")}
check("each with its own text and id", all(texts[m]["text"] == f"burst {i}" for i, m in enumerate(ids)))
dups = [m for m in ids if texts[m]["count"] > 1]
check("a resend after the crash reuses the id (the peer sees one message per id)",
      len(set(ids)) == len([m for m in ids if m in texts]), dups)
check("all burst messages end sent or later",
      wait(lambda: sql("SELECT count(*) FROM wa_messages WHERE id = ANY(string_to_array(:'p0', ',')) "
                       "AND status IN ('sent', 'delivered', 'read')", ",".join(ids)) == [[str(len(ids))]], timeout=30))

# 8. An unknown recipient fails with a reason.
s3 = enqueue("15550000000@s.whatsapp.net", "nobody")
check("unknown recipient -> failed", wait(lambda: status_of(s3) == "failed", timeout=20), status_of(s3))
err = sql("SELECT error FROM wa_messages WHERE id = :'p0'", s3)
check("with the reason", err and "not on WhatsApp" in err[0][0], err)
check("message.status failed event, with the reason as error", sql(
    "SELECT data->>'status', data->>'error' FROM wa_events WHERE type = 'message.status' AND data->>'id' = :'p0'",
    s3) == [["failed", err[0][0]]])

# 9. An unmodified Baileys client as the other person (a companion of its own account).
BJID = "15550007777@s.whatsapp.net"
ME = wa.phone + "@s.whatsapp.net"
bl = subprocess.Popen(["node", os.path.join(os.path.dirname(__file__), "../wa/lib/baileys_peer.mjs"), "--url", wa.url,
                       "--version", wa.version, "--control", wa.control, "--phone", "15550007777"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                      stderr=open(os.environ["T_BAILEYS_LOG"], "w") if os.environ.get("T_BAILEYS_LOG") else subprocess.DEVNULL,
                      start_new_session=True)
bl_lines = []


def _reader():
    for line in bl.stdout:
        try:
            bl_lines.append(json.loads(line))
        except ValueError:
            pass


threading.Thread(target=_reader, daemon=True).start()


def bl_cmd(o):
    bl.stdin.write(json.dumps(o) + "\n")
    bl.stdin.flush()


def bl_find(key, pred=lambda v: True):
    return [x[key] for x in list(bl_lines) if key in x and pred(x[key])]


ready = wait(lambda: bl_find("ready") or bl_find("error"), timeout=40)
check("Baileys linked as a companion of another account and logged in", bl_find("ready"), bl_lines[-3:])
if bl_find("ready"):
    bl_cmd({"op": "send", "to": ME, "text": "hi from Baileys"})
    sent = wait(lambda: bl_find("sent") or bl_find("error"), timeout=20)
    bid = bl_find("sent")[0] if bl_find("sent") else None
    check("Baileys sent a text to our account", bid, bl_lines[-3:])
    row = wait(lambda: sql("SELECT chat_jid, from_me, text, status FROM wa_messages WHERE id = :'p0'", bid or ""))
    check("Baileys -> wapi: stored with Baileys' id in the chat with its account",
          row == [[BJID, "f", "hi from Baileys", "received"]], row)
    check("Baileys sees our delivery receipt", wait(lambda: bl_find("update", lambda u: u["id"] == bid and u["status"] >= 3),
                                                    timeout=15), bl_find("update")[-3:])
    b1 = enqueue(BJID, "hi Baileys, from wapi")
    got = wait(lambda: bl_find("recv", lambda r: r["id"] == b1), timeout=20)
    check("wapi -> Baileys: Baileys decrypts our text with the same id",
          got and got[0]["text"] == "hi Baileys, from wapi" and got[0]["from"] == ME and not got[0]["fromMe"], got or bl_lines[-3:])
    check("Baileys' delivery receipt -> delivered", wait(lambda: status_of(b1) in ("delivered", "read"), timeout=15), status_of(b1))
    bl_cmd({"op": "read", "jid": ME, "id": b1})
    check("Baileys reads it -> read", wait(lambda: status_of(b1) == "read", timeout=15), status_of(b1))
    b2 = enqueue(BJID, "a reply to you", reply_to=bid)
    got = wait(lambda: bl_find("recv", lambda r: r["id"] == b2), timeout=20)
    check("wapi -> Baileys: a reply carries the quoted id", got and got[0]["replyTo"] == bid, got)
    check("Baileys got each message once", len(bl_find("recv", lambda r: r["id"] in (b1, b2))) == 2,
          bl_find("recv"))
    bl_cmd({"op": "quit"})
try:
    bl.wait(10)
except subprocess.TimeoutExpired:
    os.killpg(bl.pid, signal.SIGKILL)

dsm = [e for e in wa.events(0, "phone.dsm") if e["id"] == s1]
check("our own phone got the message as a deviceSentMessage to the chat",
      dsm and dsm[0]["destination"] == PEER2 and dsm[0]["text"] == "hello peer", dsm)
check("the fake server saw no protocol violation", not violations(wa), violations(wa)[:2])
check("the peer decrypted everything", not wa.events(0, "peer.fail"), wa.events(0, "peer.fail")[:2])
log = srv.log()
check("nothing secret logged", "priv" not in log)
check("no sanitizer report", not srv.sanitizer_reports(), srv.sanitizer_reports()[:1])
srv.stop()
wa.stop()
done()
