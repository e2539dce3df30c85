#!/usr/bin/env python3
"""Locations and contact cards both ways through the public surface: an
unmodified Baileys client and the fake server's peers send them, wapi stores
and emits them (type location / contacts with their fields); wapi sends them
(POST /api/messages kind location / contacts), Baileys and the peer decode
them; a retry receipt gets the same place again; bad input is refused naming
the field, and nothing is stored."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, BaileysPeer, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_kinds_{os.getpid()}")
BIN = os.environ.get("T_KINDS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                        else "build")
S = "@s.whatsapp.net"
B = "15550007101"      # the Baileys client's account
PEER = "15550009999"   # the fake server's default peer


def card(fn, tel):
    return f"BEGIN:VCARD\nVERSION:3.0\nFN:{fn}\nTEL;type=CELL;waid={tel}:+{tel}\nEND:VCARD"


def sql(q, *args):
    return psql(DB, q, *args)


wa = FakeWA()
srv = Server(bindir=BIN, workers=2, env=wa.env(), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
bl = BaileysPeer(wa, B)
check("Baileys linked as a companion of another account", bl.ready())


def stored(mid, timeout=15):
    got = wait(lambda: (lambda r: r[1] if r[0] == 200 else None)(api("GET", f"/api/messages/{mid}")), timeout=timeout)
    return got or None


def event(mid, etype="message.received"):
    r = sql("SELECT data::text FROM wa_events WHERE type = :'p0' AND data->>'id' = :'p1'", etype, mid)
    return json.loads(r[0][0]) if r else None


def line(key, mid, timeout=15):
    got = wait(lambda: [x[key] for x in bl.lines if x.get(key, {}).get("id") == mid], timeout=timeout)
    return got[0] if got else None


# ---- Baileys and the peer send, wapi stores and emits
r = bl.result("sent", bl.start({"op": "sendLocation", "to": wa.phone + S, "location": {
    "latitude": 52.520008, "longitude": 13.404954, "name": "Fernsehturm", "address": "Panoramastraße 1A"}}))
m = stored(r.get("sent")) if r else None
loc = (m or {}).get("location") or {}
check("Baileys' location: stored as type location with its coordinates, name and address",
      m and m["type"] == "location" and m["subtype"] == "locationMessage" and loc.get("latitude") == 52.520008 and
      loc.get("longitude") == 13.404954 and loc.get("name") == "Fernsehturm" and
      loc.get("address") == "Panoramastraße 1A" and loc.get("live") is False and m["contacts"] is None and
      m["text"] is None, m)
ev = event(r.get("sent")) if r else None
check("message.received carries the same place", ev and ev.get("location") == loc, ev)

r = bl.result("sent", bl.start({"op": "sendContacts", "to": wa.phone + S, "displayName": "Ana",
                                "contacts": [{"displayName": "Ana", "vcard": card("Ana Lima", "5511999990000")}]}))
m = stored(r.get("sent")) if r else None
check("Baileys' contact card: stored as type contacts with its vCard and name",
      m and m["type"] == "contacts" and m["contacts"] == [{"display_name": "Ana",
                                                           "vcard": card("Ana Lima", "5511999990000")}], m)
r = bl.result("sent", bl.start({"op": "sendContacts", "to": wa.phone + S, "displayName": "2 contacts", "contacts": [
    {"displayName": "A", "vcard": card("A", "15550000001")}, {"displayName": "B", "vcard": card("B", "15550000002")}]}))
m = stored(r.get("sent")) if r else None
check("Baileys' two cards: both, in order",
      m and m["type"] == "contacts" and [c["display_name"] for c in m["contacts"]] == ["A", "B"], m)

out = wa.call("POST", "/peer/send", {"location": {"latitude": -33.8568, "longitude": 151.2153, "name": "Opera"}})
m = stored(out.get("id"))
check("the peer's location too", m and m["type"] == "location" and m["location"]["latitude"] == -33.8568 and
      m["location"]["name"] == "Opera", m)

# ---- wapi sends, Baileys and the peer decode
st, js = api("POST", "/api/messages", {"to": B, "kind": "location", "location": {
    "latitude": 48.85837, "longitude": 2.294481, "name": "Tour Eiffel", "address": "Champ de Mars",
    "url": "https://example.org/eiffel"}})
check("POST kind location: 202 with the place", st == 202 and js.get("type") == "location" and
      js.get("location", {}).get("name") == "Tour Eiffel" and js.get("status") == "queued", (st, js))
lid = js.get("id")
got = line("location", lid)
check("Baileys decodes it: coordinates, name, address, url",
      got and got["latitude"] == 48.85837 and got["longitude"] == 2.294481 and got["name"] == "Tour Eiffel" and
      got["address"] == "Champ de Mars" and got["url"] == "https://example.org/eiffel" and not got["live"], got)
check("and it ends sent", wait(lambda: api("GET", f"/api/messages/{lid}")[1].get("status") in
                               ("sent", "delivered", "read")))
check("GET gives what the 202 gave (but its status)",
      {k: v for k, v in js.items() if k not in ("status", "updated_at")} ==
      {k: v for k, v in api("GET", f"/api/messages/{lid}")[1].items() if k not in ("status", "updated_at")})

st, js = api("POST", "/api/messages", {"to": B, "kind": "contacts", "reply_to": lid,
                                       "contacts": [{"vcard": card("Solo Person", "15550001234")}]})
check("POST kind contacts (one card, a reply): 202, display_name taken from the vCard's FN",
      st == 202 and js.get("contacts") == [{"display_name": "Solo Person", "vcard": card("Solo Person", "15550001234")}]
      and js.get("reply_to") == lid, (st, js))
got = line("contacts", js.get("id"))
check("Baileys decodes one contactMessage with the card",
      got and not got["array"] and got["cards"] == [{"displayName": "Solo Person",
                                                    "vcard": card("Solo Person", "15550001234")}], got)
st, js = api("POST", "/api/messages", {"to": B, "kind": "contacts", "contacts": [
    {"vcard": card("One", "1555000001"), "display_name": "Uno"}, {"vcard": card("Two", "1555000002")},
    {"vcard": card("Three", "1555000003")}]})
got = line("contacts", js.get("id")) if st == 202 else None
check("three cards: a contactsArrayMessage, in order, names as given or from FN",
      got and got["array"] and [c["displayName"] for c in got["cards"]] == ["Uno", "Two", "Three"], (st, got))

st, js = api("POST", "/api/messages", {"to": PEER, "kind": "location", "location": {"latitude": 1.25, "longitude": -2.5}})
pid = js.get("id")


def peer_rec(mid):
    r = [x for x in wa.call("GET", "/peer/received") if x.get("id") == mid]
    return r[0] if r and r[0].get("location") else None


got = wait(lambda: peer_rec(pid), timeout=15)
check("the peer decrypts our location (checked: <message type=text>, no mediatype)",
      got and got["location"]["latitude"] == 1.25 and got["location"]["longitude"] == -2.5, got)
st, js = api("POST", "/api/messages", {"to": PEER, "kind": "contacts", "contacts": [{"vcard": card("Pat", "1555")}]})
cid = js.get("id")
got = wait(lambda: (lambda r: r[0] if r and r[0].get("contacts") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == cid]), timeout=15)
check("the peer decrypts our card (checked: <message type=media>, <enc mediatype=vcard>)",
      got and got["contacts"][0]["vcard"] == card("Pat", "1555"), got)

# ---- a retry receipt: the same place again, to that device
mark = wa.last_seq()
wa.call("POST", "/peer/retry", {"id": pid})
ev = wa.wait_event("peer.resend", since=mark, timeout=15)
fails = [e for e in wa.events(mark, "peer.fail") if e.get("id") == pid]
check("a retry receipt for our location: resent and decrypted by the peer", ev and ev["id"] == pid and not fails,
      (ev, fails))

# ---- reactions: to Baileys' message and to ours, taken back; to the peer's
r = bl.result("sent", bl.start({"op": "send", "to": wa.phone + S, "text": "react to me"}))
theirs = stored(r.get("sent")) if r else None
st, js = api("POST", f"/api/messages/{theirs['id']}/reaction", {"emoji": "👍"})
check("POST /api/messages/{id}/reaction: 202, a reaction message of ours",
      st == 202 and js.get("type") == "reaction" and js.get("reaction_to") == theirs["id"] and js.get("reaction") == "👍"
      and js.get("from_me") is True and js.get("chat_jid") == B + S, (st, js))
got = line("reaction", js.get("id"))
check("Baileys gets the reaction on its own message (key fromMe from its side)",
      got and got["target"] == theirs["id"] and got["text"] == "👍" and got["targetFromMe"] is True, got)
check("and it ends sent", wait(lambda: api("GET", f"/api/messages/{js.get('id')}")[1].get("status") in
                               ("sent", "delivered", "read")))
st, js = api("POST", f"/api/messages/{lid}/reaction", {"emoji": "❤️"})
got = line("reaction", js.get("id")) if st == 202 else None
check("a reaction to our own message: Baileys sees it on our message", got and got["target"] == lid and
      got["text"] == "❤️" and got["targetFromMe"] is False, (st, got))
st, js = api("POST", f"/api/messages/{theirs['id']}/reaction", {"emoji": ""})
got = line("reaction", js.get("id")) if st == 202 else None
check("\"\" takes ours back (sent with edit=7, checked by the peer below)", got and got["text"] == "", (st, got))
st, js = api("POST", f"/api/messages/{pid}/reaction", {"emoji": "🎉"})
rid = js.get("id")
got = wait(lambda: (lambda r: r[0] if r and r[0].get("reaction") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == rid]), timeout=15)
check("the peer decrypts our reaction to our message (type=reaction, decrypt-fail=hide; the key as we see it: "
      "our message in the chat with the peer)",
      got and got["reaction"] == {"target": pid, "fromMe": True, "remoteJid": PEER + S, "text": "🎉"}, got)
st, js = api("POST", f"/api/messages/{pid}/reaction", {"emoji": ""})
rid2 = js.get("id")
got = wait(lambda: (lambda r: r[0] if r and r[0].get("reaction") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == rid2]), timeout=15)
check("taking it back reaches the peer as an empty reaction with edit=7 (checked)", got and got["reaction"]["text"] == "",
      got)
fails = [e for e in wa.events(0, "peer.fail") if e.get("id") in (rid, rid2)]
check("the peer found nothing wrong with our reactions' stanzas", not fails, fails)
st, js = api("POST", "/api/messages/3EB0NOSUCH000000000000/reaction", {"emoji": "👍"})
check("a reaction to an unknown message: 404", st == 404 and js["error"]["code"] == "not_found", (st, js))
for b, field in (({"emoji": 5}, "emoji"), ({}, "emoji"), ({"emoji": "x" * 17}, "emoji"),
                 ({"emoji": "👍", "idempotency_key": ""}, "idempotency_key")):
    st, js = api("POST", f"/api/messages/{pid}/reaction", b)
    check(f"reaction {json.dumps(b)[:40]}: 400 naming {field}", st == 400 and js["error"]["field"] == field, (st, js))
k1 = api("POST", f"/api/messages/{pid}/reaction", {"emoji": "👀", "idempotency_key": "re-1"})
k2 = api("POST", f"/api/messages/{pid}/reaction", {"emoji": "👀", "idempotency_key": "re-1"})
check("a reaction's idempotency key: 202 then 200, one message", k1[0] == 202 and k2[0] == 200 and
      k1[1]["id"] == k2[1]["id"], (k1[0], k2[0]))

# ---- edits and deletions of ours
st, js = api("POST", "/api/messages", {"to": B, "text": "tpyo here"})
t1 = js.get("id")
check("a text to edit: sent", wait(lambda: api("GET", f"/api/messages/{t1}")[1].get("status") in
                                   ("sent", "delivered", "read")) and line("recv", t1))
st, js = api("PATCH", f"/api/messages/{t1}", {"text": "typo here, fixed"})
eid = js.get("id")
check("PATCH /api/messages/{id}: 202 with the edit (a message of its own about it)",
      st == 202 and js.get("type") == "edit" and js.get("reaction_to") == t1 and js.get("text") == "typo here, fixed",
      (st, js))
got = wait(lambda: [x["edited"] for x in bl.lines if x.get("edited", {}).get("id") == t1], timeout=15)
check("Baileys applies the edit to our message", got and got[0]["text"] == "typo here, fixed", got)
m = wait(lambda: (lambda x: x if x.get("edited_at") else None)(api("GET", f"/api/messages/{t1}")[1]), timeout=15)
check("once sent: the message's text and edited_at change", m and m["text"] == "typo here, fixed", m)
ev = event(t1, "message.edited")
check("one message.edited event about the message (no message.sent for the edit itself)",
      ev and ev["text"] == "typo here, fixed" and ev["id"] == t1 and event(eid, "message.sent") is None, ev)
ids = [x["id"] for x in api("GET", f"/api/chats/{B}{S}/messages?limit=200")[1]["data"]]
check("the edit is not listed as a message of the chat", t1 in ids and eid not in ids)
st, js = api("DELETE", f"/api/messages/{t1}")
did = js.get("id")
check("DELETE /api/messages/{id}: 202 with the deletion", st == 202 and js.get("type") == "revoke" and
      js.get("reaction_to") == t1, (st, js))
got = wait(lambda: [x for x in bl.lines if x.get("revoked", {}).get("id") == t1], timeout=15)
check("Baileys deletes our message for everyone", got)
m = wait(lambda: (lambda x: x if x.get("revoked_at") else None)(api("GET", f"/api/messages/{t1}")[1]), timeout=15)
check("once sent: the message's revoked_at is set, and message.revoked emitted",
      m and event(t1, "message.revoked") and event(t1, "message.revoked")["revoked_at"], m)
st, js = api("PATCH", f"/api/messages/{t1}", {"text": "again"})
check("editing a deleted message: 409 revoked", st == 409 and js["error"]["code"] == "revoked", (st, js))
st, js = api("DELETE", f"/api/messages/{t1}")
check("deleting it twice: 409 revoked", st == 409 and js["error"]["code"] == "revoked", (st, js))
st, js = api("PATCH", f"/api/messages/{theirs['id']}", {"text": "not mine"})
check("editing someone else's message: 409 not_own", st == 409 and js["error"]["code"] == "not_own", (st, js))
st, js = api("DELETE", f"/api/messages/{theirs['id']}")
check("deleting someone else's message outside a group: 409 not_own", st == 409 and
      js["error"]["code"] == "not_own", (st, js))
st, js = api("PATCH", f"/api/messages/{lid}", {"text": "a place is no text"})
check("editing a location: 409 not_editable", st == 409 and js["error"]["code"] == "not_editable", (st, js))
sql("UPDATE wa_messages SET ts = now() - interval '21 minutes' WHERE id = :'p0'", pid)
psql(DB, "UPDATE wa_messages SET type = 'text', text = 'old' WHERE id = :'p0'", pid)
st, js = api("PATCH", f"/api/messages/{pid}", {"text": "too late"})
check("an edit after 20 minutes: 409 edit_window_passed", st == 409 and
      js["error"]["code"] == "edit_window_passed", (st, js))
for b, field in (({}, "text"), ({"text": ""}, "text"), ({"text": 5}, "text"), ({"text": "x" * 4097}, "text")):
    st, js = api("PATCH", f"/api/messages/{t1}", b)
    check(f"PATCH {json.dumps(b)[:30]}: 400 naming {field}", st == 400 and js["error"]["field"] == field, (st, js))
check("PATCH/DELETE of an unknown message: 404", api("PATCH", "/api/messages/3EB0NOPE0000000000", {"text": "x"})[0] ==
      404 and api("DELETE", "/api/messages/3EB0NOPE0000000000")[0] == 404)
# to the peer: the server's checks (edit=1 holding MESSAGE_EDIT, edit=7 holding our REVOKE, decrypt-fail=hide)
st, js = api("POST", "/api/messages", {"to": PEER, "text": "peer text"})
t2 = js.get("id")
wait(lambda: api("GET", f"/api/messages/{t2}")[1].get("status") in ("sent", "delivered", "read"))
e2 = api("PATCH", f"/api/messages/{t2}", {"text": "peer text, edited"})[1].get("id")
got = wait(lambda: (lambda r: r[0] if r and r[0].get("edit") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == e2]), timeout=15)
check("the peer gets our edit (edit=1, MESSAGE_EDIT of our message, checked)",
      got and got["edit"] == {"target": t2, "text": "peer text, edited"}, got)
d2 = api("DELETE", f"/api/messages/{t2}")[1].get("id")
got = wait(lambda: (lambda r: r[0] if r and r[0].get("revoke") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == d2]), timeout=15)
check("the peer gets our deletion (edit=7, REVOKE of our message, checked)",
      got and got["revoke"] == {"target": t2, "fromMe": True, "participant": None}, got)
fails = [e for e in wa.events(0, "peer.fail") if e.get("id") in (e2, d2)]
check("the peer found nothing wrong with them", not fails, fails)

# ---- forwarding: a copy marked forwarded, to another chat
st, js = api("POST", f"/api/messages/{theirs['id']}/forward", {"to": PEER})
fid = js.get("id")
check("POST /api/messages/{id}/forward: 202, a copy of Baileys' text to the peer, marked forwarded",
      st == 202 and js.get("type") == "text" and js.get("text") == "react to me" and js.get("forwarded") is True and
      js.get("chat_jid") == PEER + S and fid != theirs["id"], (st, js))
got = wait(lambda: (lambda r: r[0] if r and r[0].get("text") else None)(
    [x for x in wa.call("GET", "/peer/received") if x.get("id") == fid]), timeout=15)
check("the peer gets it as forwarded text (contextInfo.isForwarded, score 1)",
      got and got["text"] == "react to me" and got["forwarded"] is True and got["forwardingScore"] == 1, got)
st, js = api("POST", f"/api/messages/{lid}/forward", {"to": B})
got = line("location", js.get("id")) if st == 202 else None
rv = line("recv", js.get("id")) if st == 202 else None
check("our location forwarded to Baileys: the same place, marked forwarded",
      got and got["name"] == "Tour Eiffel" and got["latitude"] == 48.85837 and rv and rv["forwarded"] is True,
      (st, got, rv))
st, js = api("POST", f"/api/messages/{cid}/forward", {"to": B, "idempotency_key": "fw-1"})
got = line("contacts", js.get("id")) if st == 202 else None
check("a contact card forwarded: Baileys gets the card", got and got["cards"][0]["vcard"] == card("Pat", "1555"),
      (st, got))
st2, js2 = api("POST", f"/api/messages/{cid}/forward", {"to": B, "idempotency_key": "fw-1"})
check("the same idempotency key: 200 with the first copy", st2 == 200 and js2.get("id") == js.get("id"), (st2, js2))
rx = [r for r in sql("SELECT id FROM wa_messages WHERE type = 'reaction' AND from_me LIMIT 1")]
for path, body, code, want in (
        ("/api/messages/3EB0NOPE00000000000/forward", {"to": B}, 404, "not_found"),
        (f"/api/messages/{rx[0][0] if rx else 'x'}/forward", {"to": B}, 409, "not_forwardable"),
        (f"/api/messages/{t1}/forward", {"to": B}, 409, "revoked"),
        (f"/api/messages/{fid}/forward", {"to": "not a number"}, 400, "invalid_to"),
        (f"/api/messages/{fid}/forward", {}, 400, "invalid_to")):
    st, js = api("POST", path, body)
    check(f"forward {path.split('/')[3][:8]}… {json.dumps(body)[:30]}: {code} {want}",
          st == code and js["error"]["code"] == want, (st, js))

# ---- contacts and LIDs: the people who wrote, the number behind a LID
st, js = api("GET", "/api/contacts")
byjid = {c["jid"]: c for c in (js or {}).get("data", [])}
check("GET /api/contacts: Baileys' account and the peer, with number and push name, ordered by JID",
      st == 200 and PEER + S in byjid and B + S in byjid and byjid[PEER + S]["phone"] == "+" + PEER and
      [c["jid"] for c in js["data"]] == sorted(c["jid"] for c in js["data"]) and js["next_cursor"] is None,
      (st, js))
plid = byjid.get(PEER + S, {}).get("lid")
check("the peer's LID is known (its messages name it)", bool(plid) and plid.endswith("@lid"), plid)
st, p1 = api("GET", "/api/contacts?limit=1")
st2, p2 = api("GET", f"/api/contacts?limit=1&cursor={p1.get('next_cursor')}") if p1.get("next_cursor") else (0, {})
check("paging: one at a time, the cursor goes on", st == 200 and len(p1["data"]) == 1 and st2 == 200 and
      p2["data"][0]["jid"] > p1["data"][0]["jid"], (p1, p2))
st, js = api("GET", "/api/contacts?q=" + PEER[-4:])
check("?q= keeps the matching ones", st == 200 and [c["jid"] for c in js["data"]] == [PEER + S], js)
st, js = api("GET", "/api/contacts?q=" + "x" * 129)
check("?q= too long: 400 naming q", st == 400 and js["error"]["field"] == "q", (st, js))
st, js = api("GET", f"/api/contacts/{PEER}")
st2, js2 = api("GET", f"/api/contacts/{plid}")
check("GET /api/contacts/{jid}: by number and by LID, the same contact", st == 200 and st2 == 200 and
      js["jid"] == PEER + S and js2 == js, (st, js, st2, js2))
st, js = api("GET", f"/api/lids/{plid}")
st2, js2 = api("GET", f"/api/lids/pn/+{PEER}")
check("GET /api/lids/{lid} and /api/lids/pn/{phone}: the mapping both ways",
      st == 200 and js == {"lid": plid, "pn": PEER + S} and st2 == 200 and js2 == js, (st, js, st2, js2))
check("unknown ones: 404", api("GET", "/api/contacts/15559990000")[0] == 404 and
      api("GET", "/api/lids/123456789@lid")[0] == 404 and api("GET", "/api/lids/pn/15559990000")[0] == 404 and
      api("GET", "/api/lids/15550009999")[0] == 404)

# ---- presence: our availability on connect, a contact's availability once subscribed, typing
own = wa.events(0, "presence.own")
check("once connected, wapi tells WhatsApp it is unavailable (whatsapp.presence's default: the phone keeps "
      "its notifications)", own and own[0]["type"] == "unavailable", own)
sse = SSE(srv, api.key)
time.sleep(0.3)
wa.call("POST", "/peer/presence", {"type": "unavailable", "last": 1733300000})
st, js = api("POST", f"/api/contacts/+{PEER}/presence/subscribe")
check("POST /api/contacts/{jid}/presence/subscribe: 200, and the server got <presence type=subscribe to=peer>",
      st == 200 and js == {"jid": PEER + S, "subscribed": True} and
      [e for e in wa.events(0, "presence.subscribe") if e["to"] == PEER + S and e["known"]], (st, js))


def sse_data(name):
    return [json.loads(e["data"])["data"] for e in sse.events if e.get("event") == name]


got = wait(lambda: sse_data("presence.update"), timeout=10)
check("the answer arrives as presence.update (unavailable, last seen)", got and got[0] == {
    "jid": PEER + S, "state": "unavailable", "last_seen": "2024-12-04T08:13:20Z"}, got)
wa.call("POST", "/peer/presence", {"type": "available"})
got = wait(lambda: [d for d in sse_data("presence.update") if d["state"] == "available"], timeout=10)
check("a change: presence.update available", got and got[0] == {"jid": PEER + S, "state": "available",
                                                                "last_seen": None}, got)
wa.call("POST", "/peer/chatstate", {"state": "composing"})
wa.call("POST", "/peer/chatstate", {"state": "recording", "group": "120363000000000077@g.us"})
wa.call("POST", "/peer/chatstate", {"state": "paused"})
got = wait(lambda: (lambda t: t if len(t) >= 3 else None)(sse_data("chat.typing")), timeout=10)
check("typing arrives as chat.typing: composing, recording in a group (naming who), paused", got and got[:3] == [
    {"chat_jid": PEER + S, "sender_jid": PEER + S, "state": "composing"},
    {"chat_jid": "120363000000000077@g.us", "sender_jid": PEER + S, "state": "recording"},
    {"chat_jid": PEER + S, "sender_jid": PEER + S, "state": "paused"}], got)
check("presence is live only: no stored event", sql("SELECT count(*) FROM wa_events WHERE type IN "
                                                    "('presence.update', 'chat.typing')") == [["0"]])
for path in ("/api/contacts/120363000000000077@g.us/presence/subscribe", "/api/contacts/abc/presence/subscribe"):
    st, js = api("POST", path)
    check(f"subscribe to a group or garbage: 404 ({path.split('/')[3][:12]})", st == 404, (st, js))

# ---- idempotency
body = {"to": B, "kind": "location", "location": {"latitude": 10, "longitude": 20}, "idempotency_key": "loc-1"}
st1, j1 = api("POST", "/api/messages", body)
st2, j2 = api("POST", "/api/messages", body)
check("the same idempotency key: 202 then 200 with the same message", st1 == 202 and st2 == 200 and
      j1.get("id") == j2.get("id"), (st1, st2))

# ---- bad input: 400 naming the field, nothing stored
n0 = sql("SELECT count(*) FROM wa_messages")
bad = [
    ({"kind": "location"}, "invalid_location", "location"),
    ({"kind": "location", "location": {"latitude": 91, "longitude": 0}}, "invalid_location", "location.latitude"),
    ({"kind": "location", "location": {"latitude": "1", "longitude": 0}}, "invalid_location", "location.latitude"),
    ({"kind": "location", "location": {"latitude": 0, "longitude": -180.5}}, "invalid_location", "location.longitude"),
    ({"kind": "location", "location": {"latitude": 0, "longitude": 0, "url": "ftp://x"}}, "invalid_location",
     "location.url"),
    ({"kind": "location", "location": {"latitude": 0, "longitude": 0, "name": "x" * 257}}, "invalid_location",
     "location.name"),
    ({"kind": "location", "location": {"latitude": 0, "longitude": 0}, "text": "hi"}, "invalid_field", "text"),
    ({"kind": "contacts", "contacts": []}, "invalid_contacts", "contacts"),
    ({"kind": "contacts", "contacts": [{"vcard": card("A", "1")}, {"vcard": "not a card"}]}, "invalid_contacts",
     "contacts[1].vcard"),
    ({"kind": "contacts", "contacts": [{"vcard": card("A", "1"), "display_name": 5}]}, "invalid_contacts",
     "contacts[0].display_name"),
    ({"kind": "contacts", "contacts": [{"vcard": card("A", "1")}] * 65}, "invalid_contacts", "contacts"),
    ({"kind": "contacts", "contacts": [{"vcard": card("A", "1")}], "mentions": ["15550001"]}, "invalid_field",
     "mentions"),
    ({"kind": "map"}, "invalid_kind", "kind"),
]
for b, code, field in bad:
    st, js = api("POST", "/api/messages", dict(to=B, **b))
    e = (js or {}).get("error", {})
    check(f"{json.dumps(b)[:70]}: 400 {code} naming {field}", st == 400 and e.get("code") == code and
          e.get("field") == field, (st, js))
check("nothing stored by the refused requests", sql("SELECT count(*) FROM wa_messages") == n0)
check("the server is still healthy", srv.get("/healthz")[0] == 200)

viol = wa.events(0, "violation")
check("the fake server saw no protocol violation", not viol, viol[:2])
bl.quit()
srv.stop()
wa.stop()
done()
