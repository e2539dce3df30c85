#!/usr/bin/env python3
"""Polls and votes through the public surface, against an unmodified Baileys
client and the fake server's peer: wapi sends a poll (POST /api/messages kind
poll) that Baileys and the peer decode with its question, options, choice
count and a 32-byte secret the API never shows; Baileys votes, each vote
sealed by the test's own node crypto from the documented derivation, and
wapi keeps the latest per voter (GET /api/messages/{id}/poll, poll.vote
events with the options by name); a changed vote replaces, an empty one
withdraws, a tampered one or one for an unknown poll is refused and counted,
one told again adds nothing; Baileys' own polls are stored as type poll and
their votes counted; bad input is refused naming the field."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, BaileysPeer, WebhookReceiver, private_database, psql  # noqa: E402
from slowdb import slow_url  # noqa: E402

DB = private_database(f"wapi_it_polls_{os.getpid()}")
BIN = os.environ.get("T_POLLS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                        else "build")
S = "@s.whatsapp.net"
B = "15550007201"      # the Baileys client's account
PEER = "15550009999"   # the fake server's default peer


def sql(q, *args):
    return psql(DB, q, *args)


wa = FakeWA()
env = wa.env()
env["WAPI_WEBHOOKS_ALLOW_PRIVATE"] = "true"
srv = Server(bindir=BIN, workers=2, env=env, pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
bl = BaileysPeer(wa, B)
check("Baileys linked as a companion of another account", bl.ready())
ME = wa.phone + S
rx = WebhookReceiver()
st, hook = api("POST", "/api/webhooks", {"url": rx.url, "events": ["poll.vote"]})
check("a webhook can subscribe to poll.vote", st == 201 and hook.get("events") == ["poll.vote"], (st, hook))
sse = SSE(srv, api.key)


def stored(mid, timeout=15):
    got = wait(lambda: (lambda r: r[1] if r[0] == 200 else None)(api("GET", f"/api/messages/{mid}")), timeout=timeout)
    return got or None


def line(key, mid, timeout=15):
    got = wait(lambda: [x[key] for x in bl.lines if x.get(key, {}).get("id") == mid], timeout=timeout)
    return got[0] if got else None


def tally(pid):
    st, js = api("GET", f"/api/messages/{pid}/poll")
    return js if st == 200 else None


def votes_of(t):
    return {o["name"]: (o["voters"], o["count"]) for o in (t or {}).get("options", [])}


def vote_events(pid):
    return [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = 'poll.vote' "
                                          "AND data->>'message_id' = :'p0' ORDER BY id", pid)]


def vote(pid, options, secret, creator, poll_from_me=False, to=None, **kw):
    cmd = {"op": "vote", "to": to or ME, "pollId": pid, "pollFromMe": poll_from_me, "creator": creator, "voter": B + S,
           "secret": secret, "options": options, **kw}
    r = bl.result("sent", bl.start(cmd))
    return (r or {}).get("sent")


def refused():
    return srv.metric("wapi_wa_poll_votes_refused_total")


# ---- wapi sends a single-choice poll: Baileys and the peer decode it
st, js = api("POST", "/api/messages", {"to": B, "kind": "poll", "poll": {
    "question": "Which colour?", "options": ["Red", "Blue", "Green"], "multiple": False}})
check("POST kind poll: 202, type poll with question, options and multiple",
      st == 202 and js.get("type") == "poll" and js.get("poll") == {
          "question": "Which colour?", "options": ["Red", "Blue", "Green"], "multiple": False} and
      js.get("status") == "queued" and js.get("location") is None and js.get("text") is None, (st, js))
P1 = js.get("id")
sec_db = sql("SELECT encode(secret, 'hex') FROM wa_poll_secrets WHERE message_id = :'p0'", P1)
check("its secret is kept server-side: 32 bytes", sec_db and len(sec_db[0][0]) == 64, sec_db)
SEC1 = sec_db[0][0] if sec_db else ""
got = line("poll", P1)
check("Baileys decodes a pollCreationMessageV3 with selectableOptionsCount 1, the question and the options",
      got and got["field"] == "pollCreationMessageV3" and got["selectableOptionsCount"] == 1 and
      got["name"] == "Which colour?" and got["options"] == ["Red", "Blue", "Green"], got)
check("and the messageSecret, the one wapi keeps", got and got["secret"] == SEC1 and len(SEC1) == 64, got)
m = stored(P1)
check("GET gives what the 202 gave (but its status)",
      m and {k: v for k, v in js.items() if k not in ("status", "updated_at")} ==
      {k: v for k, v in m.items() if k not in ("status", "updated_at")}, m)
check("the secret is never in the API's message", SEC1 and SEC1 not in json.dumps(m) and "secret" not in json.dumps(m))
check("the poll ends sent", wait(lambda: api("GET", f"/api/messages/{P1}")[1].get("status") in
                                  ("sent", "delivered", "read")))
t = tally(P1)
check("GET /poll before any vote: every option with no voter",
      t and t["question"] == "Which colour?" and t["multiple"] is False and t["voters_total"] == 0 and
      [(o["name"], o["voters"], o["count"]) for o in t["options"]] ==
      [("Red", [], 0), ("Blue", [], 0), ("Green", [], 0)], t)

st, js = api("POST", "/api/messages", {"to": PEER, "kind": "poll", "poll": {
    "question": "Lunch?", "options": ["Pizza", "Sushi", "Salad", "Soup"], "multiple": True}})
P2 = js.get("id") if st == 202 else None
peer = wait(lambda: [x for x in wa.call("GET", "/peer/received") if x.get("id") == P2 and x.get("poll")], timeout=15)
pp = peer[0]["poll"] if peer else {}
check("a multiple-choice poll to the peer: pollCreationMessage with 0, its options and a 32-byte secret",
      pp.get("v3") is False and pp.get("selectableOptionsCount") == 0 and pp.get("name") == "Lunch?" and
      pp.get("options") == ["Pizza", "Sushi", "Salad", "Soup"] and len(pp.get("secret") or "") == 64, (st, pp))
fails = [e for e in wa.events(0, "peer.fail") if e.get("id") in (P1, P2)]
check("the fake peer found nothing wrong in either (type=poll, <meta polltype=creation>, secret)", not fails, fails)

# ---- Baileys votes on wapi's poll
n_msgs = sql("SELECT count(*) FROM wa_messages")[0][0]
v1 = vote(P1, ["Blue"], SEC1, ME)
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 1 else None)(tally(P1)), timeout=15)
check("Baileys' vote for Blue is counted: Blue has Baileys, voters_total 1",
      t and votes_of(t) == {"Red": ([], 0), "Blue": ([B + S], 1), "Green": ([], 0)}, t)
ev = vote_events(P1)
check("poll.vote carries the poll, the chat, the voter and the option by name",
      len(ev) == 1 and ev[0]["message_id"] == P1 and ev[0]["chat_jid"] == B + S and ev[0]["voter"] == B + S and
      ev[0]["options"] == ["Blue"], ev)
got = wait(lambda: rx.of_type("poll.vote"), timeout=15)
check("the webhook gets poll.vote with the same data, signed",
      got and got[0][2]["data"] == ev[0] and all(v.get("ok") for v in rx.verify(hook.get("secret"), [got[0][:2]])),
      got[:1])
got = wait(lambda: [e for e in sse.events if e.get("event") == "poll.vote"], timeout=15)
check("and so does GET /api/events (SSE)", got and json.loads(got[0]["data"])["data"] == ev[0], got[:1])
check("the vote is no message of its own", api("GET", f"/api/messages/{v1}")[0] == 404 and
      sql("SELECT count(*) FROM wa_messages")[0][0] == n_msgs)

v2 = vote(P1, ["Red"], SEC1, ME)
t = wait(lambda: (lambda x: x if x and votes_of(x).get("Red", ([], 0))[1] == 1 else None)(tally(P1)), timeout=15)
check("a changed vote replaces the old one: Red has Baileys, Blue none",
      t and votes_of(t) == {"Red": ([B + S], 1), "Blue": ([], 0), "Green": ([], 0)} and t["voters_total"] == 1, t)
check("a second poll.vote with Red", [e["options"] for e in vote_events(P1)] == [["Blue"], ["Red"]])

r0 = refused()
vote(P1, ["Green"], SEC1, ME, tamper=True)
check("a tampered vote (one bit of its tag) is refused and counted",
      wait(lambda: refused() >= r0 + 1, timeout=15), (r0, refused()))
check("the tally is unchanged, no event", votes_of(tally(P1)) == {"Red": ([B + S], 1), "Blue": ([], 0),
                                                                   "Green": ([], 0)} and len(vote_events(P1)) == 2)

vote(P1, ["Blue"], SEC1, ME, id=v1)
bl.result("sent", bl.start({"op": "send", "to": ME, "text": "after the replay"}))
check("the text sent after it arrived", wait(lambda: sql("SELECT count(*) FROM wa_messages WHERE text = "
                                                         "'after the replay'")[0][0] == "1", timeout=15))
check("the first vote told again (same message id, a newer time) adds nothing: still Red, two events",
      votes_of(tally(P1)).get("Red") == ([B + S], 1) and len(vote_events(P1)) == 2, (tally(P1), vote_events(P1)))

r0 = refused()
vote(P1, ["Red"], "00" * 32, ME)
check("a vote sealed with another secret is refused and counted", wait(lambda: refused() >= r0 + 1, timeout=15))
r0 = refused()
vote("3EB0" + "AB" * 8, ["Red"], SEC1, ME)
check("a vote for a poll wapi does not have is refused and counted", wait(lambda: refused() >= r0 + 1, timeout=15))
check("neither is stored as a message", sql("SELECT count(*) FROM wa_messages WHERE type IN ('unsupported', 'poll') "
                                            "AND NOT from_me")[0][0] == "0")

vote(P1, [], SEC1, ME)
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 0 else None)(tally(P1)), timeout=15)
check("an empty vote withdraws it: nobody on any option", t and all(o["count"] == 0 for o in t["options"]), t)
check("and says so in poll.vote (no options)", [e["options"] for e in vote_events(P1)][-1:] == [[]])

# ---- wapi votes (POST /api/messages/{id}/vote)
st, js = api("POST", f"/api/messages/{P1}/vote", {"options": ["Green"], "idempotency_key": "vote-1"})
check("POST /vote: 202, a message of its own (type vote) about the poll",
      st == 202 and js.get("type") == "vote" and js.get("reaction_to") == P1 and js.get("from_me") is True, (st, js))
MV = js.get("id")
pvl = line("pollVote", MV)
check("Baileys gets a pollUpdateMessage naming the poll (not ours from its side), a 12-byte IV",
      pvl and pvl["pollId"] == P1 and pvl["pollFromMe"] is False and len(pvl["encIv"]) == 24, pvl)
op = bl.result("opened", bl.start({"op": "openVote", "pollId": P1, "creator": ME, "voter": ME, "secret": SEC1,
                                   "encPayload": (pvl or {}).get("encPayload", ""),
                                   "encIv": (pvl or {}).get("encIv", "")})) if pvl else None
check("Baileys' own decryptPollVote opens it to Green's SHA-256",
      op and op.get("opened") == [hashlib.sha256(b"Green").hexdigest()], op)
t = wait(lambda: (lambda x: x if x and votes_of(x).get("Green", ([], 0))[1] == 1 else None)(tally(P1)), timeout=15)
check("once WhatsApp has it, our vote counts: Green has us", t and votes_of(t)["Green"] == ([ME], 1) and
      t["voters_total"] == 1, t)
ev = vote_events(P1)
check("and poll.vote says so (not message.sent)", ev and ev[-1]["voter"] == ME and ev[-1]["options"] == ["Green"] and
      ev[-1]["vote_id"] == MV and not sql("SELECT 1 FROM wa_events WHERE type = 'message.sent' AND data->>'id' = "
                                          ":'p0'", MV), ev[-1:])
st, js = api("POST", f"/api/messages/{P1}/vote", {"options": ["Green"], "idempotency_key": "vote-1"})
check("the same idempotency key: 200 with the first vote", st == 200 and js.get("id") == MV, (st, js))
chat = api("GET", f"/api/chats/{B}{S}/messages")
check("votes are not listed among the chat's messages",
      chat[0] == 200 and MV not in [x["id"] for x in chat[1].get("data", [])], chat[0])
for b, field in [({"options": ["Purple"]}, "options"), ({"options": ["Red", "Blue"]}, "options"),
                 ({"options": ["Red", "Red"]}, "options[1]"), ({"options": "Red"}, "options"),
                 ({"options": [""]}, "options[0]"), ({}, "options")]:
    st, js = api("POST", f"/api/messages/{P1}/vote", b)
    e = (js or {}).get("error", {})
    check(f"vote {json.dumps(b)}: 400 invalid_options naming {field}",
          st == 400 and e.get("code") == "invalid_options" and e.get("field") == field, (st, js))
st, js = api("POST", f"/api/messages/{P1}/vote", {"options": []})
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 0 else None)(tally(P1)), timeout=15)
check("options [] withdraws our vote", st == 202 and t is not None, (st, t))

# ---- a vote through a LID; our own phone votes
SEC2 = (sql("SELECT encode(secret, 'hex') FROM wa_poll_secrets WHERE message_id = :'p0'", P2) or [[""]])[0][0]
# A second account whose messages come from its LID from the first one (its session is under that address).
P3 = "15550008803"
wa.call("POST", "/peers/add", {"phones": [P3]})
lid = wa.call("POST", "/peer/send", {"from": P3, "viaLid": True, "text": "before my vote"}).get("lid")


def sealed(pid, options, secret, creator, voter, from_me):
    r = bl.result("sealed", bl.start({"op": "vote", "sealOnly": True, "to": ME, "pollId": pid, "pollFromMe": from_me,
                                      "creator": creator, "voter": voter, "secret": secret, "options": options}))
    return (r or {}).get("sealed")


raw = sealed(P2, ["Soup", "Sushi"], SEC2, ME, lid, False)
out = wa.call("POST", "/peer/send", {"from": P3, "raw": raw, "viaLid": True, "stanzaType": "poll"})
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 1 else None)(tally(P2)), timeout=15)
check("a vote sealed for the voter's LID (sent from the LID) opens; the voter is named by phone number",
      lid and t and votes_of(t) == {"Pizza": ([], 0), "Sushi": ([P3 + S], 1), "Salad": ([], 0),
                                    "Soup": ([P3 + S], 1)}, (lid, t))
ev = vote_events(P2)
check("poll.vote lists the options in the poll's order", ev and ev[-1]["options"] == ["Sushi", "Soup"] and
      ev[-1]["voter"] == P3 + S and ev[-1]["vote_id"] == out.get("id"), ev)
raw = sealed(P2, ["Pizza"], SEC2, ME, ME, True)
wa.call("POST", "/peer/send", {"from": wa.phone, "dsmTo": PEER + S, "raw": raw, "stanzaType": "poll"})
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 2 else None)(tally(P2)), timeout=15)
check("our own phone's vote on our poll (a deviceSentMessage) counts with us as the voter",
      t and votes_of(t).get("Pizza") == ([ME], 1) and votes_of(t).get("Sushi") == ([P3 + S], 1), t)

# ---- Baileys' own polls
r = bl.result("sent", bl.start({"op": "sendPoll", "to": ME, "name": "Weekend?", "values": ["Sat", "Sun", "Both"],
                                "selectableCount": 0}))
BP = (r or {}).get("sent")
m = stored(BP) if BP else None
check("Baileys' multiple-choice poll: stored as type poll with its question and options",
      m and m["type"] == "poll" and m["subtype"] == "pollCreationMessage" and
      m["poll"] == {"question": "Weekend?", "options": ["Sat", "Sun", "Both"], "multiple": True}, m)
ev = sql("SELECT data::text FROM wa_events WHERE type = 'message.received' AND data->>'id' = :'p0'", BP)
check("message.received carries the poll", ev and json.loads(ev[0][0]).get("poll") == (m or {}).get("poll"), ev)
sec = sql("SELECT encode(secret, 'hex') FROM wa_poll_secrets WHERE message_id = :'p0'", BP)
check("its secret is kept, the one Baileys made", sec and r and sec[0][0] == r.get("secret"), (sec, r))
vote(BP, ["Sat", "Both"], r.get("secret") or "", B + S, poll_from_me=True)
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 1 else None)(tally(BP)), timeout=15)
check("Baileys' vote on its own poll (two options) is counted on both",
      t and votes_of(t) == {"Sat": ([B + S], 1), "Sun": ([], 0), "Both": ([B + S], 1)} and t["multiple"] is True, t)

r = bl.result("sent", bl.start({"op": "sendPoll", "to": ME, "name": "One?", "values": ["x", "y"],
                                "selectableCount": 1}))
m = stored((r or {}).get("sent")) if r else None
check("Baileys' single-choice poll (V3): type poll, multiple false",
      m and m["type"] == "poll" and m["subtype"] == "pollCreationMessageV3" and m["poll"]["multiple"] is False and
      m["poll"]["options"] == ["x", "y"], m)

# ---- in a group: our poll to the members, a member's vote (sender keys both ways)
r = bl.result("group", bl.start({"op": "createGroup", "subject": "Polls", "participants": [ME]}))
G = (r or {}).get("group", {}).get("id")
check("Baileys made a group with us in it", bool(G) and G.endswith("@g.us"), r)
st, js = api("POST", "/api/messages", {"to": G, "kind": "poll", "poll": {
    "question": "Where?", "options": ["Here", "There"], "multiple": True}}) if G else (0, {})
GP = js.get("id")
got = line("poll", GP, timeout=30) if GP else None
gsec = (sql("SELECT encode(secret, 'hex') FROM wa_poll_secrets WHERE message_id = :'p0'", GP) or [[""]])[0][0]
check("our poll reaches the group's member: pollCreationMessage (several choices) with the secret",
      st == 202 and got and got["field"] == "pollCreationMessage" and got["selectableOptionsCount"] == 0 and
      got["secret"] == gsec and got["options"] == ["Here", "There"], (st, got))
GV = vote(GP, ["There"], gsec, ME, to=G) if GP else None
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 1 else None)(tally(GP)), timeout=20) if GP else None
check("the member's vote in the group counts, the member named", t and votes_of(t) == {
    "Here": ([], 0), "There": ([B + S], 1)}, t)
ev = vote_events(GP) if GP else []
check("poll.vote names the group as the chat", ev and ev[-1]["chat_jid"] == G and ev[-1]["vote_id"] == GV, ev)

# ---- a poll and a vote on it told together: they wait while wapi is down, and the new wapi reaches its
# database through a slow link, so while the first message's batch commits the poll and the vote gather
# into the next one
srv.stop()
bl.result("sent", bl.start({"op": "send", "to": ME, "text": "first, while wapi is down"}))
r = bl.result("sent", bl.start({"op": "sendPoll", "to": ME, "name": "While down?", "values": ["Yes", "No"],
                                "selectableCount": 1}))
OP = (r or {}).get("sent")
OV = vote(OP, ["No"], (r or {}).get("secret") or "", B + S, poll_from_me=True)
srv = Server(bindir=BIN, workers=2, pg_url=slow_url(DB, 40),
             env=dict(env, WAPI_PATHS_SESSIONS=srv.env["WAPI_PATHS_SESSIONS"]))
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api.srv = srv
check("wapi is back and connected", wait(lambda: api("GET", "/api/session")[1].get("state") == "connected",
                                         timeout=60))
t = wait(lambda: (lambda x: x if x and x["voters_total"] == 1 else None)(tally(OP)), timeout=30)
check("the poll is stored and the vote told with it counts",
      t and votes_of(t) == {"Yes": ([], 0), "No": ([B + S], 1)} and t["multiple"] is False, t)
together = [ln for ln in srv.log().splitlines() if "incoming message stored" in ln and OV and OV in ln]
check("… both in one batch (the vote opened with the secret of the poll beside it)",
      together and json.loads(together[0]).get("batch", 0) >= 2, together[:1])

# ---- GET /poll of what is no poll; bad input
st, js = api("POST", "/api/messages", {"to": B, "text": "no poll"})
check("GET /poll of a text: 404", api("GET", f"/api/messages/{js.get('id')}/poll")[0] == 404)
check("POST /vote on a text: 404", api("POST", f"/api/messages/{js.get('id')}/vote", {"options": []})[0] == 404)
check("GET /poll of an unknown id: 404", api("GET", "/api/messages/3EB0FFFFFFFFFFFFFFFF/poll")[0] == 404)

n0 = sql("SELECT count(*) FROM wa_messages")
bad = [
    ({"kind": "poll"}, "invalid_poll", "poll"),
    ({"kind": "poll", "poll": "x"}, "invalid_poll", "poll"),
    ({"kind": "poll", "poll": {"options": ["a", "b"]}}, "invalid_poll", "poll.question"),
    ({"kind": "poll", "poll": {"question": "", "options": ["a", "b"]}}, "invalid_poll", "poll.question"),
    ({"kind": "poll", "poll": {"question": "q" * 256, "options": ["a", "b"]}}, "invalid_poll", "poll.question"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a"]}}, "invalid_poll", "poll.options"),
    ({"kind": "poll", "poll": {"question": "q", "options": [str(i) for i in range(13)]}}, "invalid_poll",
     "poll.options"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", "a"]}}, "invalid_poll", "poll.options[1]"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", ""]}}, "invalid_poll", "poll.options[1]"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", 2]}}, "invalid_poll", "poll.options[1]"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", "o" * 101]}}, "invalid_poll", "poll.options[1]"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", "b"], "multiple": "yes"}}, "invalid_poll",
     "poll.multiple"),
    ({"kind": "poll", "poll": {"question": "q", "options": ["a", "b"]}, "text": "hi"}, "invalid_field", "text"),
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
