#!/usr/bin/env python3
"""Group chats end to end, against the fake WhatsApp server's groups and an
unmodified Baileys client as a member: messages both ways under sender keys,
the participant hash, receipts per member, a member added (only their devices
get our key) and removed (our key rotates, nothing reaches them), an skmsg
before its key (retry, stored once), a LID-addressed group, a restart (our key
kept: no key to everyone again), kill -9 between the group stanza and its
record, and kill -9 in the middle of a burst of incoming group messages.

The fake server checks every group stanza strictly (the sender is a
participant, every <to> a device of a participant, every device that gets an
skmsg holds the sender's key first); its violations fail the suite."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, kill_supervisor, ROOT, Server, wait  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql  # noqa: E402
import mediafiles  # noqa: E402

DB = private_database(f"wapi_it_groups_{os.getpid()}")
BIN = os.environ.get("T_GROUPS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                         else "build")
S = "@s.whatsapp.net"
A = "15550007001"      # a Baileys client (a companion of account A) creates the group
PEER = "15550009999"   # the fake server's peers: device 0 of their account, Baileys' group cipher
PEER2 = "15550008888"
C = "15550007003"      # added later
BURST = int(os.environ.get("T_GROUPS_BURST", "150"))


def sql(q, *args):
    return psql(DB, q, *args)


# PostgreSQL ends a killed supervisor's waiting statement (checked every 100 ms).
subprocess.run(["psql", DB, "-qAtX", "-c", "ALTER DATABASE " + re.match(r"^postgres(?:ql)?://[^/?]*/([^?]*)", DB).group(1) +
                " SET client_connection_check_interval = '100ms'"], check=True, capture_output=True)
wa = FakeWA()
ME = str(wa.phone)
ENV = dict(wa.env())
srv = Server(bindir=BIN, workers=2, env=ENV, pg_url=DB)
SESSIONS = srv.env["WAPI_PATHS_SESSIONS"]
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))


def restart(kill=False, between=None):
    """A new supervisor on the same session store and database, after a clean
    stop (SIGTERM) or kill -9 of the old one's supervisor."""
    global srv
    if kill:
        check("kill -9: the supervisor's workers leave by themselves", kill_supervisor(srv))
    else:
        srv.stop()
    if between:
        between()
    srv = Server(bindir=BIN, workers=2, env=dict(ENV, WAPI_PATHS_SESSIONS=SESSIONS), pg_url=DB).start()
    api.srv = srv
    return wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60)


def stored(mid, timeout=15):
    """The message's REST body once stored, else None."""
    got = wait(lambda: (lambda r: r[1] if r[0] == 200 else None)(api("GET", f"/api/messages/{mid}")), timeout=timeout)
    return got or None


def send(to, text, **kw):
    st, js = api("POST", "/api/messages", dict(to=to, text=text, **kw))
    return js.get("id") if st == 202 else None


def status_is(mid, *sts, timeout=20):
    return wait(lambda: api("GET", f"/api/messages/{mid}")[1].get("status") in sts, timeout=timeout)


def deliveries(mid):
    return [d for d in wa.group_deliveries() if d["id"] == mid]


def group_message(mid):
    ev = [e for e in wa.events(0, "group.message") if e["id"] == mid]
    return ev[-1] if ev else None


def devices_of(phone):
    """The fake server's devices of an account, as user:dev keys (device 0 and companions)."""
    out = {f"{phone}:0"}
    for d in wa.call("GET", "/devices"):
        user, _, dev = d["jid"].split("@")[0].partition(":")
        if user == phone and not d.get("removed"):
            out.add(f"{user}:{int(dev or 0)}")
    return out


def peer_got(phone, mid, timeout=15):
    def look():
        r = [x for x in wa.call("GET", "/peer/received") if x.get("id") == mid and x.get("peer") == phone]
        return r[0] if r and (r[0].get("text") is not None or r[0].get("error")) else None
    return wait(look, timeout=timeout)


def recv_by(bl, mid, timeout=15):
    return wait(lambda: [x["recv"] for x in bl.lines if x.get("recv", {}).get("id") == mid], timeout=timeout)


def notified(mark, timeout=15):
    """wapi acked a w:gp2 notification since mark."""
    return wait(lambda: [e for e in wa.events(mark, "ack") if e.get("class") == "notification"
                         and e.get("type") == "w:gp2"], timeout=timeout)


# ---- a Baileys client makes a group with us and a peer in it
bl = BaileysPeer(wa, A)
check("Baileys linked as a companion of account A", bl.ready())
r = bl.result("group", bl.start({"op": "createGroup", "subject": "Team",
                                 "participants": [ME + S, PEER + S]}))
G = (r or {}).get("group", {}).get("id")
check("Baileys made a group of three with us in it", bool(G) and G.endswith("@g.us") and
      len(r["group"]["participants"]) == 3, r)

def gevents(etype):
    return [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = :'p0' ORDER BY id", etype)]


ev = wait(lambda: [e for e in gevents("group.created") if e["jid"] == G], timeout=10)
check("group.created: once, with the creator, the subject and the participants (acked after its commit)",
      ev and len(ev) == 1 and ev[0]["subject"] == "Team" and ev[0]["actor"].startswith(A) and
      {p.split("@")[0] for p in ev[0]["participants"]} == {A, ME, PEER} and
      [e for e in wa.events(0, "ack") if e.get("class") == "notification" and e.get("type") == "w:gp2"], ev)

# ---- receive: Baileys' sender-key fan-out, and a peer's
r = bl.result("sent", bl.start({"op": "send", "to": G, "text": "hello from A"}))
m1 = stored(r.get("sent")) if r else None
check("Baileys' group message is stored in the group's chat with its sender and number",
      m1 and m1["chat_jid"] == G and m1["text"] == "hello from A" and not m1["from_me"] and
      (m1.get("sender_jid") or "").split(":")[0].split("@")[0] == A and (m1.get("sender_pn") or "").startswith(A),
      m1)
out = wa.group_peer_send(G, PEER, "hello from the peer")
m2 = stored(out.get("id"))
check("a peer's group message too (its own sender key, given pairwise first)",
      m2 and m2["chat_jid"] == G and m2["text"] == "hello from the peer" and
      (m2.get("sender_pn") or "").startswith(PEER), m2)
chats = {c["jid"]: c for c in api("GET", "/api/chats")[1].get("data", [])}
check("the group is a chat", G in chats, list(chats))

# ---- send: our key pairwise to every device first, one skmsg for all
mark = wa.last_seq()
s1 = send(G, "hi all @" + A, mentions=[A])
check("POST /api/messages to the group: 202", bool(s1))
check("sent", status_is(s1, "sent", "delivered", "read"), api("GET", f"/api/messages/{s1}")[1])
rb = recv_by(bl, s1)
pg = peer_got(PEER, s1)
check("Baileys and the peer decrypt it", rb and rb[0]["text"] == "hi all @" + A and rb[0]["from"] == G and
      pg and pg.get("text") == "hi all @" + A, (rb, pg))
gm = group_message(s1)
check("our participant hash is the server's (no member list asked again)", gm and gm.get("clientPhash") and
      gm["clientPhash"] == gm["phash"], gm)
d1 = deliveries(s1)
mine = {d["to"] for d in d1}
check("first send: every member device got our key pairwise with it (checked by the server)",
      d1 and all(d["pairwise"] in ("pkmsg", "msg") for d in d1) and devices_of(A) <= mine and
      devices_of(PEER) <= mine, [(d["to"], d["pairwise"]) for d in d1])
check("mentions are kept", api("GET", f"/api/messages/{s1}")[1].get("mentions") == [A + S],
      api("GET", f"/api/messages/{s1}")[1].get("mentions"))
q0 = len([e for e in wa.events(mark, "group.iq") if e.get("op") == "query"])

s2 = send(G, "second")
check("second send: sent", status_is(s2, "sent", "delivered", "read"))
check("Baileys decrypts it", recv_by(bl, s2))
d2 = deliveries(s2)
check("second send: one skmsg, no pairwise copy to anyone", d2 and all(d["pairwise"] is None for d in d2),
      [(d["to"], d["pairwise"]) for d in d2])
check("the member list was not asked for again",
      len([e for e in wa.events(mark, "group.iq") if e.get("op") == "query"]) == q0,
      [e for e in wa.events(mark, "group.iq")])

# ---- receipts per member: Baileys reads it, the peer's delivery
bl.result("read", bl.start({"op": "read", "jid": G, "id": s2, "participant": ME + S}))


def receipts(mid):
    st, js = api("GET", f"/api/messages/{mid}/receipts")
    return {r["recipient"].split("@")[0]: r for r in (js or {}).get("receipts", [])} if st == 200 else {}


got = wait(lambda: (lambda r: r if A in r and r[A].get("read_at") else None)(receipts(s2)), timeout=15)
check("GET /api/messages/{id}/receipts: A read it (the receipt named A as participant)", got, receipts(s2))
check("the message's own status is read", status_is(s2, "read"), api("GET", f"/api/messages/{s2}")[1])

# ---- a member added: only the new member's devices get our key
wa.call("POST", "/peers/add", {"phones": [C]})
mark = wa.last_seq()
r = bl.result("participants", bl.start({"op": "groupParticipantsUpdate", "jid": G, "participants": [C + S],
                                        "action": "add"}))
check("Baileys adds C (200)", r and r["participants"][0]["status"] == "200", r)
check("wapi acked the w:gp2 notification", notified(mark))
ev = [e for e in gevents("group.participants") if e["jid"] == G and e["action"] == "add"]
check("group.participants add: once, naming C and who added", len(ev) == 1 and
      [p.split("@")[0] for p in ev[0]["participants"]] == [C] and ev[0]["actor"].startswith(A), ev)
s3 = send(G, "welcome C")
check("after add: sent", status_is(s3, "sent", "delivered", "read"), api("GET", f"/api/messages/{s3}")[1])
d3 = deliveries(s3)
withkey = {d["to"] for d in d3 if d["pairwise"]}
check("after add: pairwise copies (our key) only for C's devices", d3 and withkey == devices_of(C),
      [(d["to"], d["pairwise"]) for d in d3])
check("C decrypts it", (peer_got(C, s3) or {}).get("text") == "welcome C", peer_got(C, s3, 1))

# ---- C's first skmsg before its sender key: a retry receipt naming the participant, the resend stored once
mark = wa.last_seq()
out = wa.group_peer_send(G, C, "key withheld", skip_skdm=True)
ev = wait(lambda: [e for e in wa.events(mark, "group.receipt") if e["id"] == out.get("id") and e["type"] == "retry"],
          timeout=10)
check("an skmsg with no key: a retry receipt naming the participant",
      ev and ev[0]["participant"].startswith(C), wa.events(mark, "group.receipt"))
m3 = stored(out.get("id"))
check("the resend (key pairwise, new skmsg) decrypts and is stored once",
      m3 and m3["text"] == "key withheld" and
      sql("SELECT count(*) FROM wa_messages WHERE id = :'p0'", out.get("id")) == [["1"]], m3)

# ---- a member removed: our key rotates, nothing reaches them
key_before = (group_message(s3) or {}).get("keyId")
mark = wa.last_seq()
r = bl.result("participants", bl.start({"op": "groupParticipantsUpdate", "jid": G, "participants": [PEER + S],
                                        "action": "remove"}))
check("Baileys removes the peer (200)", r and r["participants"][0]["status"] == "200", r)
check("wapi acked the w:gp2 notification", notified(mark))
ev = [e for e in gevents("group.participants") if e["jid"] == G and e["action"] == "remove"]
check("group.participants remove: once, naming the peer", len(ev) == 1 and
      [p.split("@")[0] for p in ev[0]["participants"]] == [PEER], ev)
s4 = send(G, "after the peer left")
check("after remove: sent", status_is(s4, "sent", "delivered", "read"), api("GET", f"/api/messages/{s4}")[1])
d4 = deliveries(s4)
gm4 = group_message(s4) or {}
check("after remove: nothing to the removed member's devices", d4 and not any(d["to"].startswith(PEER + ":")
                                                                             for d in d4), [d["to"] for d in d4])
check("after remove: a new sender key, given pairwise to every remaining device",
      gm4.get("keyId") is not None and gm4.get("keyId") != key_before and all(d["pairwise"] for d in d4),
      (key_before, gm4.get("keyId"), [(d["to"], d["pairwise"]) for d in d4]))
check("the removed peer cannot read it", peer_got(PEER, s4, 2) is None)
check("Baileys and C read it", recv_by(bl, s4) and (peer_got(C, s4) or {}).get("text") == "after the peer left")

# ---- GET /api/groups/{jid}: the group as WhatsApp has it now
st, js = api("GET", f"/api/groups/{G}")
roles = {p["jid"].split("@")[0]: p["role"] for p in (js or {}).get("participants", [])}
check("GET /api/groups/{jid}: subject, addressing mode, the participants with their roles (A created it)",
      st == 200 and js.get("jid") == G and js.get("subject") == "Team" and js.get("addressing_mode") == "pn" and
      roles.get(A) == "superadmin" and roles.get(ME) == "member" and C in roles and PEER not in roles and
      js.get("created"), (st, js))
st, js = api("GET", "/api/groups/120363999999999999@g.us")
check("an unknown group: 404 group_not_found (the server's 404)", st == 404 and
      js["error"]["code"] == "group_not_found", (st, js))
for bad in ("15550009999", "not-a-group"):
    st, js = api("GET", f"/api/groups/{bad}")
    check(f"GET /api/groups/{bad}: 404", st == 404, (st, js))

# ---- managing groups: create, add/promote/remove, leave; the server's refusals per participant
st, js = api("POST", "/api/groups", {"subject": "Made by wapi", "participants": [PEER2, "+1 555 000 0000", C + S]})
NG = (js or {}).get("jid", "")
roles = {p["jid"].split("@")[0]: p["role"] for p in (js or {}).get("participants", [])}
check("POST /api/groups: 201 with the group, us its creator, the refused invitee named (408 not_on_whatsapp)",
      st == 201 and NG.endswith("@g.us") and js["subject"] == "Made by wapi" and roles.get(ME) == "superadmin" and
      roles.get(PEER2) == "member" and roles.get(C) == "member" and
      js.get("refused") == [{"jid": "15550000000@s.whatsapp.net", "status": 408, "code": "not_on_whatsapp"}],
      (st, js))
fg = wa.group(NG)
check("the server has it as created", fg.get("subject") == "Made by wapi" and
      {p["phone"] for p in fg.get("participants", [])} == {ME, PEER2, C}, fg)
st, js = api("POST", f"/api/groups/{NG}/participants", {"action": "add", "participants": [PEER, PEER2]})
check("add: per participant, the peer added (200) and peer two already in (409 already_member)",
      st == 200 and js.get("results") == [{"jid": PEER + S, "status": 200, "code": "ok"},
                                          {"jid": PEER2 + S, "status": 409, "code": "already_member"}], (st, js))
st, js = api("POST", f"/api/groups/{NG}/participants", {"action": "promote", "participants": [PEER]})
st2, js2 = api("POST", f"/api/groups/{NG}/participants", {"action": "remove", "participants": [C]})
fg = {p["phone"]: p["role"] for p in wa.group(NG).get("participants", [])}
check("promote and remove: done on the server", st == 200 and st2 == 200 and fg.get(PEER) == "admin" and C not in fg,
      (js, js2, fg))
s9 = send(NG, "hello my group")
check("a message to the group we made reaches its members, not the removed one",
      status_is(s9, "sent", "delivered", "read") and (peer_got(PEER, s9) or {}).get("text") == "hello my group" and
      peer_got(C, s9, 2) is None)
st, js = api("POST", f"/api/groups/{G}/participants", {"action": "add", "participants": [PEER2]})
check("in a group where we are no admin: 403 not_admin (the server's 401)", st == 403 and
      js["error"]["code"] == "not_admin", (st, js))
for body, field in (({"subject": ""}, "subject"), ({"subject": "x" * 101}, "subject"), ({}, "subject"),
                    ({"subject": "ok", "participants": "15550009999"}, "participants"),
                    ({"subject": "ok", "participants": [PEER, "nope"]}, "participants[1]")):
    st, js = api("POST", "/api/groups", body)
    check(f"POST /api/groups {json.dumps(body)[:40]}: 400 naming {field}", st == 400 and
          js["error"]["field"] == field, (st, js))
st, js = api("POST", f"/api/groups/{NG}/participants", {"action": "kick", "participants": [PEER]})
check("an unknown action: 400 naming action", st == 400 and js["error"]["field"] == "action", (st, js))
st, js = api("POST", f"/api/groups/{NG}/participants", {"action": "add", "participants": []})
check("no participants: 400", st == 400 and js["error"]["field"] == "participants", (st, js))
st, js = api("PATCH", f"/api/groups/{NG}", {"subject": "Renamed", "announce": True, "ephemeral_seconds": 86400})
fg = wa.group(NG)
check("group.updated events for our own changes: the subject, announce, the timer (each once)", wait(lambda: (lambda u: (
    [e.get("subject") for e in u if "subject" in e] == ["Renamed"] and [e.get("announce") for e in u if "announce" in e]
    == [True] and [e.get("ephemeral_seconds") for e in u if "ephemeral_seconds" in e] == [86400]))(
    [e for e in gevents("group.updated") if e["jid"] == NG]), timeout=10), gevents("group.updated"))
check("PATCH /api/groups/{jid}: subject, announce and the disappearing timer set; the group as it is now",
      st == 200 and js.get("subject") == "Renamed" and js.get("announce") is True and
      js.get("ephemeral_seconds") == 86400 and fg.get("subject") == "Renamed" and fg.get("announce") is True and
      fg.get("ephemeral") == 86400, (st, js, fg))
st, inv = api("GET", f"/api/groups/{NG}/invite")
st2, inv2 = api("DELETE", f"/api/groups/{NG}/invite")
check("GET /api/groups/{jid}/invite: the link; DELETE: a new one, as the server has it",
      st == 200 and inv["link"] == "https://chat.whatsapp.com/" + inv["code"] and st2 == 200 and
      inv2["code"] != inv["code"] and wa.group(NG).get("invite") == inv2["code"], (inv, inv2))
# the description: set (naming the one it replaces), changed by someone else, set again, removed
st, js = api("PATCH", f"/api/groups/{NG}", {"description": "Rules: be kind ✓"})
fg = wa.group(NG)
check("PATCH {description}: set; the group answers with it and the server has it (no prev: there was none)",
      st == 200 and js.get("description") == "Rules: be kind ✓" and fg.get("description") == "Rules: be kind ✓" and
      fg.get("descriptionPrevSeen") is None, (st, js, fg))
wa.group_description(NG, PEER, "Peer's rules")
time.sleep(0.3)
did = wa.group(NG).get("descriptionId")
st, js = api("PATCH", f"/api/groups/{NG}", {"description": "Our rules again"})
fg = wa.group(NG)
check("changed after an admin's edit: the change names that description's id as prev (the server checks it)",
      st == 200 and js.get("description") == "Our rules again" and fg.get("descriptionPrevSeen") == did and
      did is not None, (st, js, fg, did))
check("group.updated carries each description", wait(lambda: [e.get("description") for e in gevents("group.updated")
      if e["jid"] == NG and "description" in e][-3:] == ["Rules: be kind ✓", "Peer's rules", "Our rules again"],
      timeout=10), [e for e in gevents("group.updated") if "description" in e])
st, js = api("PATCH", f"/api/groups/{NG}", {"description": ""})
fg = wa.group(NG)
check("PATCH {description: \"\"}: removed, on the server too", st == 200 and js.get("description") is None and
      fg.get("description") is None, (st, js, fg))
for body, field in (({"description": "x" * 2049}, "description"), ({"description": 5}, "description")):
    st, js = api("PATCH", f"/api/groups/{NG}", body)
    check(f"PATCH description {json.dumps(body)[:30]}: 400 naming description", st == 400 and
          js["error"].get("field") == field, (st, js))

# the picture: none yet, set from an uploaded image (a 640 px square JPEG), asked, removed
st, js = api("GET", f"/api/groups/{NG}/picture")
check("GET …/picture with none: 404 picture_not_found", st == 404 and js["error"]["code"] == "picture_not_found",
      (st, js))


def upload(data, ctype):
    st, _, b = srv.request("POST", "/api/media", body=data, headers={"x-api-key": api.key, "content-type": ctype},
                           timeout=20)
    return json.loads(b)["id"] if st == 201 else None


big = upload(mediafiles.png_wh(1200, 800), "image/png")
st, js = api("PUT", f"/api/groups/{NG}/picture", {"media_id": big})
fg = wa.group(NG)
check("PUT …/picture {media_id}: 200 with the new id; the server got a JPEG, the centred 800 px square at 640",
      st == 200 and js.get("id") and js["id"] == fg.get("picture") and fg.get("pictureSize") == [640, 640],
      (st, js, fg))
st, js = api("GET", f"/api/groups/{NG}/picture")
st2, js2 = api("GET", f"/api/groups/{NG}/picture?type=preview")
check("GET …/picture: its id and link; ?type=preview the small one",
      st == 200 and js.get("id") == fg.get("picture") and js.get("type") == "image" and
      (js.get("url") or "").startswith("https://") and st2 == 200 and js2.get("type") == "preview", (js, js2))
small = upload(mediafiles.png_wh(300, 500), "image/png")
st, js = api("PUT", f"/api/groups/{NG}/picture", {"media_id": small})
check("a picture smaller than 640: its centred square, never enlarged",
      st == 200 and wa.group(NG).get("pictureSize") == [300, 300], (st, js, wa.group(NG)))
doc = upload(b"%PDF-1.4 not really\n", "application/pdf")
for body, code, status in (({"media_id": doc}, "invalid_picture", 400), ({"media_id": "m_" + "0" * 24},
                           "media_not_found", 404), ({}, "invalid_media_id", 400), ({"media_id": "a/b"}, "invalid_media_id", 400)):
    st, js = api("PUT", f"/api/groups/{NG}/picture", body)
    check(f"PUT …/picture {json.dumps(body)[:40]}: {status} {code} naming media_id, nothing sent",
          st == status and js["error"]["code"] == code and js["error"].get("field") == "media_id", (st, js))
st, js = api("GET", f"/api/groups/{NG}/picture?type=huge")
check("GET …/picture?type=huge: 400 naming type", st == 400 and js["error"].get("field") == "type", (st, js))
st, js = api("DELETE", f"/api/groups/{NG}/picture")
st2, js2 = api("GET", f"/api/groups/{NG}/picture")
check("DELETE …/picture: removed on the server; asking again finds none",
      st == 200 and wa.group(NG).get("picture") is None and st2 == 404, (st, js, st2, js2))
st, js = api("GET", "/api/groups/120363999999999999@g.us/picture")
check("the picture of an unknown group: 404 (WhatsApp answers both with 404: no such picture)", st == 404 and
      js["error"]["code"] in ("group_not_found", "picture_not_found"), (st, js))
st, js = api("PATCH", f"/api/groups/{G}", {"announce": True})
check("a setting in a group where we are no admin: 403 not_admin", st == 403 and
      js["error"]["code"] == "not_admin", (st, js))
for body, field in (({}, None), ({"ephemeral_seconds": 5}, "ephemeral_seconds"), ({"announce": "yes"}, "announce"),
                    ({"subject": ""}, "subject")):
    st, js = api("PATCH", f"/api/groups/{NG}", body)
    check(f"PATCH {json.dumps(body)}: 400", st == 400 and js["error"].get("field") == field, (st, js))
other = wa.group_create(PEER2, "Open door", [PEER])
code = wa.group(other["jid"]).get("invite")
st, js = api("POST", "/api/groups/join", {"code": "https://chat.whatsapp.com/" + code})
check("POST /api/groups/join with a link: 200, and the server has us in it", st == 200 and
      js == {"jid": other["jid"]} and ME in {p["phone"] for p in wa.group(other["jid"]).get("participants", [])},
      (st, js))
st, js = api("POST", "/api/groups/join", {"code": code})
check("joining again: 409 conflict", st == 409 and js["error"]["code"] == "conflict", (st, js))
st, js = api("POST", "/api/groups/join", {"code": "x!"})
check("a code that is none: 400 naming code", st == 400 and js["error"]["field"] == "code", (st, js))
api("POST", f"/api/groups/{other['jid']}/leave")
st, js = api("POST", f"/api/groups/{NG}/leave")
check("leave: 200, and the server no longer lists us", st == 200 and js == {"jid": NG, "left": True} and
      ME not in {p["phone"] for p in wa.group(NG).get("participants", [])}, (st, js))
st, js = api("POST", f"/api/groups/{NG}/leave")
check("leaving again: 403 not_participant", st == 403 and js["error"]["code"] == "not_participant", (st, js))

# ---- a LID-addressed group: senders named by LID with their number beside it
out = wa.group_create(PEER2, "By LID", [ME, C], addressing="lid")
L = out.get("jid")
check("a LID-addressed group made by peer two", bool(L) and out.get("ok"), out)
time.sleep(0.5)
out = wa.group_peer_send(L, PEER2, "from a LID")
m5 = stored(out.get("id"))
check("stored with sender_lid and sender_pn", m5 and m5["chat_jid"] == L and
      (m5.get("sender_lid") or "").endswith("@lid") and (m5.get("sender_pn") or "").startswith(PEER2), m5)
s5 = send(L, "to a LID group")
check("our send to it: sent", status_is(s5, "sent", "delivered", "read"), api("GET", f"/api/messages/{s5}")[1])
check("its members decrypt it", (peer_got(PEER2, s5) or {}).get("text") == "to a LID group" and
      (peer_got(C, s5) or {}).get("text") == "to a LID group")
gm5 = group_message(s5) or {}
check("addressed by LID: the hash matches the server's", gm5.get("clientPhash") == gm5.get("phash"), gm5)

st, js = api("GET", "/api/groups")
mine = {g["jid"]: g for g in (js or {}).get("data", [])}
check("GET /api/groups: the groups we are in, each with its subject and participants",
      st == 200 and set(mine) == {G, L} and mine[G]["subject"] == "Team" and mine[L]["subject"] == "By LID" and
      mine[L]["addressing_mode"] == "lid" and len(mine[G]["participants"]) >= 3, (st, js))
chats = {c["jid"]: c for c in api("GET", "/api/chats")[1].get("data", [])}
check("group chats are named by their subjects (from the group's metadata and from the creation notice)",
      chats.get(G, {}).get("name") == "Team" and chats.get(L, {}).get("name") == "By LID",
      {k: v.get("name") for k, v in chats.items()})

# ---- a restart keeps our sender keys: no key to everyone again; at connect the
# groups we are in are listed and their chats take the current subjects (a
# stale name, as after a rename we missed, is mended)
sql("UPDATE wa_chats SET name = 'stale' WHERE jid = :'p0'", G)
check("(the group's chat name made stale)", sql("SELECT name FROM wa_chats WHERE jid = :'p0'", G) == [["stale"]])
check("restart: connected again", restart())
check("after connecting, the groups we are in are asked for and the stale chat name mended",
      wait(lambda: sql("SELECT name FROM wa_chats WHERE jid = :'p0'", G) == [["Team"]], timeout=15),
      sql("SELECT name FROM wa_chats WHERE jid = :'p0'", G))
s6 = send(G, "after a restart")
check("after restart: sent", status_is(s6, "sent", "delivered", "read"))
d6 = deliveries(s6)
check("after restart: one skmsg, no pairwise copy (who has our key was kept)",
      d6 and all(d["pairwise"] is None for d in d6), [(d["to"], d["pairwise"]) for d in d6])
check("Baileys decrypts it", recv_by(bl, s6))

# ---- kill -9 after the group stanza left, before it is recorded as sent
locker = subprocess.Popen(["psql", DB, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
locker.stdin.write("BEGIN; LOCK TABLE wa_events IN EXCLUSIVE MODE; SELECT 'locked';\n")
locker.stdin.flush()
locker.stdout.readline()
st, js = api("POST", "/api/messages", {"to": G, "text": "in limbo"}, timeout=30)
s7 = js.get("id") if st == 202 else None
check("accepted while the record of sends waits", bool(s7), (st, js))
left = wait(lambda: group_message(s7), timeout=20)
limbo = left and sql("SELECT state FROM wa_outbox WHERE message_id = :'p0'", s7) == [["inflight"]]
check("the group stanza reached the server and is not recorded as sent", limbo,
      sql("SELECT state FROM wa_outbox WHERE message_id = :'p0'", s7))


def release():
    wait(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = 'wapi-supervisor' AND wait_event_type = 'Lock'") == [["0"]], timeout=20)
    locker.stdin.write("ROLLBACK;\n")
    locker.stdin.close()
    locker.wait(10)


check("restart after kill -9: connected again", restart(kill=True, between=release))
check("the message ends sent", status_is(s7, "sent", "delivered", "read", timeout=30),
      api("GET", f"/api/messages/{s7}")[1])
time.sleep(1.0)
copies = [x for x in bl.lines if x.get("recv", {}).get("id") == s7]
check("each member got it under its one id, the same text (at most the copy before the kill and the resend)",
      1 <= len(copies) <= 2 and all(c["recv"]["text"] == "in limbo" for c in copies) and
      (peer_got(C, s7) or {}).get("text") == "in limbo", (copies, peer_got(C, s7, 1)))
check("exactly one message.sent event for it",
      sql("SELECT count(*) FROM wa_events WHERE type = 'message.sent' AND data->>'id' = :'p0'", s7) == [["1"]])

# ---- kill -9 between a group notice and its commit: not acked, told again after the restart, stored once
locker = subprocess.Popen(["psql", DB, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
locker.stdin.write("BEGIN; LOCK TABLE wa_group_notices IN EXCLUSIVE MODE; SELECT 'locked';\n")
locker.stdin.flush()
locker.stdout.readline()
mark = wa.last_seq()
r = wa.group_subject(G, A, "Team, renamed")
check("A renames the group while the notices' table is held", r.get("ok") is True, r)
time.sleep(1.0)
ours = {e["conn"] for e in wa.events(0, "login.ok") if str(e.get("jid", "")).startswith(ME + ":")}
check("the notice reached wapi and was not acked (its commit waits)",
      ours and not [e for e in wa.events(mark, "ack") if e.get("class") == "notification" and e["conn"] in ours],
      [e for e in wa.events(mark, "ack") if e.get("class") == "notification"])


def release_notices():
    wait(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = 'wapi-supervisor' AND wait_event_type = 'Lock'") == [["0"]], timeout=20)
    locker.stdin.write("ROLLBACK;\n")
    locker.stdin.close()
    locker.wait(10)


check("restart after kill -9 with the notice unstored: connected again", restart(kill=True, between=release_notices))
got = wait(lambda: [e for e in gevents("group.updated") if e.get("subject") == "Team, renamed"], timeout=20)
time.sleep(0.5)
got = [e for e in gevents("group.updated") if e.get("subject") == "Team, renamed"]
check("told again after the login and stored once: one group.updated, then acked",
      len(got) == 1 and [e for e in wa.events(mark, "inbox.resend") if e.get("ids")] and
      [e for e in wa.events(mark, "ack") if e.get("class") == "notification" and e["conn"] not in ours and
       e["conn"] in {x["conn"] for x in wa.events(0, "login.ok") if str(x.get("jid", "")).startswith(ME + ":")}],
      (got, wa.events(mark, "inbox.resend")))

# ---- a member removed while wapi is down: the next send after the restart replaces our key
key_before = (group_message(s7) or {}).get("keyId")


def remove_c():
    r = wa.group_participants(G, A, "remove", [C])
    check("while wapi is down, A removes C", r.get("ok") and r["results"][0]["status"] in (200, "200"), r)


check("restart with a removal in between: connected again", restart(between=remove_c))
s8 = send(G, "after C was removed offline")
check("sent", status_is(s8, "sent", "delivered", "read"), api("GET", f"/api/messages/{s8}")[1])
d8 = deliveries(s8)
gm8 = group_message(s8) or {}
check("nothing to C, a new key given pairwise to every remaining device (who had the old one is durable)",
      d8 and not any(d["to"].startswith(C + ":") for d in d8) and all(d["pairwise"] for d in d8) and
      gm8.get("keyId") not in (None, key_before), (key_before, gm8.get("keyId"), [(d["to"], d["pairwise"]) for d in d8]))

# ---- kill -9 in the middle of a burst of incoming group messages: each stored once
mark_rows = int(sql("SELECT count(*) FROM wa_messages WHERE chat_jid = :'p0'", G)[0][0])
n = bl.start({"op": "stream", "to": G, "count": BURST, "prefix": "burst "})
hit = wait(lambda: int(sql("SELECT count(*) FROM wa_messages WHERE chat_jid = :'p0' AND text LIKE 'burst %'",
                           G)[0][0]) >= BURST * 0.4, timeout=120, step=0.05)
check(f"40% of {BURST} incoming group messages stored before the kill", hit)
check("restart after kill -9 mid-burst: connected again", restart(kill=True))
r = bl.result("streamed", n, timeout=240)
ids = (r or {}).get("streamed", {}).get("ids") or []
check(f"Baileys sent all {BURST}", len(ids) == BURST, len(ids))
all_in = wait(lambda: int(sql("SELECT count(*) FROM wa_messages WHERE id = ANY(string_to_array(:'p0', ','))",
                              ",".join(ids))[0][0]) == len(ids), timeout=120)
check("after the restart every one is stored", all_in)
rows = sql("SELECT count(*), count(DISTINCT text) FROM wa_messages WHERE chat_jid = :'p0' AND text LIKE 'burst %'", G)
evs = sql("SELECT count(*), count(DISTINCT data->>'id') FROM wa_events WHERE type = 'message.received' "
          "AND data->>'id' = ANY(string_to_array(:'p0', ','))", ",".join(ids))
check("each stored once (rows, texts) with one message.received each",
      rows == [[str(BURST), str(BURST)]] and evs == [[str(BURST), str(BURST)]], (rows, evs))

if os.environ.get("T_GROUPS_LOG"):
    with open(os.environ["T_GROUPS_LOG"], "w") as f:
        f.write(srv.log())
viol = wa.events(0, "violation")
check("the fake server saw no protocol violation", not viol, viol[:3])
bl.quit()
srv.stop()
wa.stop()
done()
