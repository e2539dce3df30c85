#!/usr/bin/env python3
"""The actions on the live connection, through the API, against the fake
WhatsApp server (which checks each stanza strictly): read receipts
(POST /api/messages/{id}/read), typing indicators (POST /api/chats/{jid}/presence),
number checks (POST /api/contacts/check); the phone number <-> LID mapping
from incoming stanzas and device queries; a contact who reinstalled (a new
identity key) still reaching us; a group message we cannot decrypt asked for
again (a retry receipt naming its sender), never stored half."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done  # noqa: E402
from linked import Api, private_database, psql, wait  # noqa: E402

DB = private_database(f"wapi_it_actions_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
PEER = "15550009999@s.whatsapp.net"
PEER2 = "15550008888@s.whatsapp.net"

wa = FakeWA()
env = wa.env()
env["WAPI_WHATSAPP_AUTOSTART"] = "false"
srv = Server(workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up with an API key", bool(api.key))

# ---- before the session runs: validation first, then a clear 409
st, js = api("POST", "/api/chats/not-a-jid/presence", {"state": "typing"})
check("presence: a malformed chat is 400 or 404", st in (400, 404), (st, js))
st, js = api("POST", f"/api/chats/{PEER}/presence", {"state": "sleeping"})
check("presence: an unknown state is 400 naming the field", st == 400 and js["error"]["field"] == "state", (st, js))
st, js = api("POST", f"/api/chats/{PEER}/presence", {"state": "typing"})
check("presence without a connection: 409 not_connected", st == 409 and js["error"]["code"] == "not_connected",
      (st, js))
st, js = api("POST", "/api/contacts/check", {"phones": ["+1 555 000 9999"]})
check("contacts/check without a connection: 409 not_connected",
      st == 409 and js["error"]["code"] == "not_connected", (st, js))
for bad in ({"phones": []}, {"phones": ["abc"]}, {"phones": "15550009999"}, {"phones": ["1@s.whatsapp.net"]},
            {"phones": ["15550009999"] * 101}, {}):
    st, js = api("POST", "/api/contacts/check", bad)
    check(f"contacts/check {str(bad)[:40]} is 400 naming phones", st == 400 and js["error"]["field"] == "phones",
          (st, js))
st, js = api("POST", "/api/messages/3EB0000000000000/read")
check("read of an unknown message: 404", st == 404, (st, js))
st, js = api("GET", "/api/messages/3EB0000000000000/read")
check("GET on .../read: 405", st == 405, (st, js))

check("session linked by QR", api.link(wa))

# ---- incoming messages carry the LID: the mapping is stored with them
sent = [wa.call("POST", "/peer/send", {"text": f"unread {i}"}) for i in range(3)]
ids = [s.get("id") for s in sent]
peer_lid = sent[0].get("lid")
check("the peer sent three messages", all(ids) and peer_lid, sent)
check("all three stored", wait(lambda: all(api("GET", f"/api/messages/{i}")[0] == 200 for i in ids), timeout=20))
rows = psql(DB, "SELECT jid, lid FROM wa_contacts WHERE jid = :'p0'", PEER)
check("the contact's LID is recorded from sender_lid", rows == [[PEER, peer_lid]], rows)


def chat(jid):
    st, js = api("GET", "/api/chats")
    c = [x for x in js.get("data", []) if x["jid"] == jid] if st == 200 else []
    return c[0] if c else None


check("the chat counts three unread", (chat(PEER) or {}).get("unread_count") == 3, chat(PEER))

# ---- read receipts
mark = wa.last_seq()
st, js = api("POST", f"/api/messages/{ids[1]}/read")
check("read of the second: 200, it and the one before are marked", st == 200 and js["marked_read"] == 2 and
      js["unread_count"] == 1 and js["chat_jid"] == PEER, (st, js))
ev = wa.wait_event("peer.read", since=mark)
check("one read receipt reached WhatsApp for both, newest first (checked by the fake server)",
      ev and ev["ids"] == [ids[1], ids[0]] and ev["to"] == PEER, ev)
check("the chat now counts one unread", (chat(PEER) or {}).get("unread_count") == 1, chat(PEER))
st, js = api("GET", f"/api/messages/{ids[0]}")
check("read_at is set on the earlier message", st == 200 and js.get("read_at"), js)
st, js = api("GET", f"/api/messages/{ids[2]}")
check("and not on the later one", st == 200 and js.get("read_at") is None, js)
st, js = api("POST", f"/api/messages/{ids[1]}/read")
check("reading again marks nothing", st == 200 and js["marked_read"] == 0 and js["unread_count"] == 1, (st, js))
mark2 = wa.last_seq()
st, js = api("POST", f"/api/messages/{ids[2]}/read")
check("read of the last: only it", st == 200 and js["marked_read"] == 1 and js["unread_count"] == 0, (st, js))
ev2 = wa.wait_event("peer.read", since=mark2)
check("its receipt names only it", ev2 and ev2["ids"] == [ids[2]], ev2)
reads = wa.events(mark, "peer.read")
check("exactly two read receipts in all (the repeat sent none)", len(reads) == 2, reads)
st, js = api("POST", "/api/messages", {"to": PEER, "text": "ours"})
own = js.get("id") if st == 202 else None
st, js = api("POST", f"/api/messages/{own}/read")
check("read of a message we sent: 409 own_message", st == 409 and js["error"]["code"] == "own_message", (st, js))
check("the outgoing message is sent", wait(lambda: api("GET", f"/api/messages/{own}")[1].get("status") in
                                           ("sent", "delivered", "read"), timeout=20))
rows = psql(DB, "SELECT lid FROM wa_contacts WHERE jid = :'p0'", PEER)
check("the device query's <lid> keeps the same mapping", rows == [[peer_lid]], rows)

# ---- presence
mark = wa.last_seq()
st, js = api("POST", f"/api/chats/{PEER}/presence", {"state": "typing"})
check("presence typing: 200", st == 200 and js == {"state": "typing"}, (st, js))
ev = wa.wait_event("chatstate", since=mark)
check("<chatstate><composing/> to the peer (checked by the fake server)", ev and ev["state"] == "composing" and
      ev["to"] == PEER, ev)
mark = wa.last_seq()
st, js = api("POST", f"/api/chats/{PEER}/presence", {"state": "paused"})
ev = wa.wait_event("chatstate", since=mark)
check("presence paused: <paused/>", st == 200 and ev and ev["state"] == "paused", (st, ev))

# ---- contacts/check
mark = wa.last_seq()
st, js = api("POST", "/api/contacts/check", {"phones": ["+1 555 000 9999", "15550001111", "+1-555-000-8888"]})
check("contacts/check: 200 in the order asked", st == 200 and [x["phone"] for x in js["data"]] ==
      ["15550009999", "15550001111", "15550008888"], (st, js))
d = {x["phone"]: x for x in js.get("data", [])} if st == 200 else {}
check("an account that exists is on WhatsApp with its JID",
      d.get("15550009999", {}).get("on_whatsapp") is True and d["15550009999"]["jid"] == PEER, d)
check("another one too", d.get("15550008888", {}).get("on_whatsapp") is True and d["15550008888"]["jid"] == PEER2, d)
check("an unknown number is not", d.get("15550001111", {}).get("on_whatsapp") is False and
      d["15550001111"]["jid"] is None, d)
ev = wa.wait_event("usync.contacts", since=mark)
check("one usync contact query with the three numbers (checked by the fake server)",
      ev and ev["phones"] == ["15550009999", "15550001111", "15550008888"], ev)

# ---- a message addressed from the LID (sender_pn) lands in the phone-number chat
out = wa.call("POST", "/peer/send", {"from": "15550008888", "text": "via lid", "viaLid": True})
mid = out.get("id")
st, js = wait(lambda: (lambda r: r if r[0] == 200 else None)(api("GET", f"/api/messages/{mid}")), timeout=20) or (0, {})
check("a message from a LID with sender_pn is stored in the phone number's chat",
      st == 200 and js["chat_jid"] == PEER2 and js["sender_jid"] == PEER2 and js["text"] == "via lid", js)
rows = psql(DB, "SELECT lid FROM wa_contacts WHERE jid = :'p0'", PEER2)
check("and the mapping is recorded", rows == [[out.get("lid")]], (rows, out))

# ---- the peer reinstalls: a new identity key is accepted (logged), messages keep arriving
check("the peer reinstalls", wa.call("POST", "/peer/reinstall", {}).get("ok") is True)
out = wa.call("POST", "/peer/send", {"text": "after reinstall"})
mid = out.get("id")
ok = wait(lambda: api("GET", f"/api/messages/{mid}")[0] == 200, timeout=20)
check("a message under the new identity is stored", ok and api("GET", f"/api/messages/{mid}")[1]["text"] ==
      "after reinstall")
check("the identity change is logged", wait(lambda: "identity key changed" in srv.log(), timeout=5))

# ---- a group message whose sender key we never got (an skmsg with no distribution message before it):
# a retry receipt naming the participant asks for it again, the stanza is acked, nothing is stored
GROUP = "120363000000000001@g.us"
mark = wa.last_seq()
out = wa.call("POST", "/peer/send", {"group": GROUP})
gid = out.get("id")
ev = wa.wait_event("group.receipt", since=mark)
check("an skmsg without its sender key gets a retry receipt naming the participant (checked by the fake server)",
      ev and ev["id"] == gid and ev["participant"] == PEER and ev["type"] == "retry", ev)
ack = wait(lambda: [e for e in wa.events(mark, "ack") if e.get("id") == gid], timeout=10)
check("and it is acked (with the participant: checked)", ack, wa.events(mark, "ack"))
time.sleep(0.5)
check("nothing is stored for it (the resend will be)", api("GET", f"/api/messages/{gid}")[0] == 404,
      api("GET", f"/api/messages/{gid}"))
check("the undecryptable message is logged with why",
      wait(lambda: any(ln.get("msg") == "cannot decrypt an incoming message" and ln.get("id") == gid and
                       ln.get("why") == "group decryption failed" for ln in srv.log_lines()), timeout=5))

# ---- after all of it the session is still connected and nothing was refused
st, js = api("GET", "/api/session")
check("the session is still connected", js.get("state") == "connected", js)
viol = wa.events(0, "violation")
check("the fake server saw no protocol violation", not viol, viol[:2])
srv.stop()
wa.stop()
done()
