#!/usr/bin/env python3
"""Disappearing messages and view once through the public surface, with an
unmodified Baileys client on the fake server: Baileys turns a 1:1 chat's
timer on, wapi's chat shows it and chat.disappearing fires; what wapi sends
to that chat next (text, media, location, contacts) carries the timer as
Baileys decodes it; PUT /api/chats/{jid}/disappearing reaches Baileys as the
chat's setting and changes wapi's chat once sent; a group's timer set through
the API changes the group's chat; bad input is refused naming the field and
nothing is sent. View once: wapi's view-once photo reaches Baileys as one it
can decrypt and sees as view once; Baileys' view-once photo is stored with
view_once: true and its file is downloadable."""
import atexit
import hashlib
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, check, done, wait  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql  # noqa: E402
import mediafiles  # noqa: E402

DB = private_database(f"wapi_it_disappearing_{os.getpid()}")
BIN = os.environ.get("WAPI_TEST_BINDIR") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                             else "build")
S = "@s.whatsapp.net"
B = "15550007301"      # the Baileys client's account
DAY, WEEK = 86400, 604800

ca_dir = tempfile.mkdtemp(prefix="wapi-eph-ca-")
wa = FakeWA("--media-ca", ca_dir)
atexit.register(wa.stop)
env = wa.env()
env.update({"SSL_CERT_FILE": wa.media_ca})
srv = Server(bindir=BIN, workers=2, env=env, pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
bl = BaileysPeer(wa, B, env={"NODE_EXTRA_CA_CERTS": wa.media_ca})
atexit.register(lambda: bl.p.poll() is None and bl.p.kill())
check("Baileys linked as a companion of another account", bl.ready())
ME = wa.phone + S
tmpd = tempfile.mkdtemp(prefix="wapi-eph-")


def sql(q, *args):
    return psql(DB, q, *args)


def events(etype, jid):
    return [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = :'p0' AND data->>'jid' = "
                                          ":'p1' ORDER BY id", etype, jid)]


def chat(jid):
    st, js = api("GET", f"/api/chats/{jid}")
    return js if st == 200 else None


def recv(mid, key="recv", timeout=20):
    got = wait(lambda: [x[key] for x in bl.lines if x.get(key, {}).get("id") == mid], timeout=timeout)
    return got[0] if got else None


def outgoing_count():
    return int(sql("SELECT count(*) FROM wa_outbox")[0][0])


# ---- Baileys turns the timer on: wapi's chat shows it, chat.disappearing once
BJ = B + S
r = bl.result("sent", bl.start({"op": "send", "to": ME, "text": "hello before the timer"}))
check("a first message from Baileys makes the chat", r and wait(lambda: chat(BJ)), r)
c = chat(BJ)
check("GET /api/chats/{jid}: the chat, no timer yet", c and c["jid"] == BJ and c["ephemeral_seconds"] == 0 and
      c["ephemeral_set_at"] is None, c)
r = bl.result("sent", bl.start({"op": "disappearing", "to": ME, "seconds": WEEK}))
c = wait(lambda: (lambda x: x if x and x["ephemeral_seconds"] == WEEK else None)(chat(BJ)))
check("Baileys sets 7 days: the chat shows ephemeral_seconds 604800, set by Baileys' account",
      c and c["ephemeral_set_by"] == BJ and c["ephemeral_set_at"], (r, c))
ev = wait(lambda: events("chat.disappearing", BJ))
check("one chat.disappearing event with the timer and who set it",
      len(ev) == 1 and ev[0] == {"jid": BJ, "ephemeral_seconds": WEEK, "set_by": BJ,
                                 "set_at": c["ephemeral_set_at"]}, ev)
check("the setting is no message of the chat",
      not [m for m in api("GET", f"/api/chats/{BJ}/messages")[1]["data"] if m["subtype"] == "protocolMessage"]
      and sql("SELECT count(*) FROM wa_messages WHERE chat_jid = :'p0'", BJ)[0][0] == "1")
lst = [x for x in api("GET", "/api/chats")[1]["data"] if x["jid"] == BJ]
check("GET /api/chats shows the timer too", lst and lst[0]["ephemeral_seconds"] == WEEK, lst)

# ---- what wapi sends next carries the timer (contextInfo.expiration, as Baileys reads it)
st, js = api("POST", "/api/messages", {"to": B, "text": "this one disappears"})
check("POST text: 202, the message shows the chat's timer", st == 202 and js["ephemeral_seconds"] == WEEK and
      js["expires_at"], (st, js))
got = recv(js.get("id"))
check("Baileys decodes our text with contextInfo.expiration 604800", got and got["text"] == "this one disappears" and
      got["expiration"] == WEEK, got)
tid = js.get("id")
check("it is sent and keeps its timer", wait(lambda: api("GET", f"/api/messages/{tid}")[1]["status"] in
                                             ("sent", "delivered", "read")) and
      api("GET", f"/api/messages/{tid}")[1]["ephemeral_seconds"] == WEEK)
st, js = api("POST", "/api/messages", {"to": B, "text": "a reply", "reply_to": tid})
got = recv(js.get("id"))
check("a reply: the quote and the timer both", got and got["replyTo"] == tid and got["expiration"] == WEEK, got)
st, js = api("POST", "/api/messages", {"to": B, "kind": "location",
                                       "location": {"latitude": 10.5, "longitude": 20.25, "name": "Here"}})
got = recv(js.get("id"))
loc = recv(js.get("id"), "location")
check("a location: decoded by Baileys, with the timer", got and got["expiration"] == WEEK and loc and
      loc["latitude"] == 10.5, (got, loc))
st, js = api("POST", "/api/messages", {"to": B, "kind": "contacts", "contacts": [
    {"vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nTEL;waid=1555:+1555\nEND:VCARD"}]})
got = recv(js.get("id"))
check("a contact card: with the timer", got and got["expiration"] == WEEK, got)
PNG = mediafiles.png_wh(33, 21, seed=3)
st, _, b = srv.request("POST", "/api/media", body=PNG, headers={"x-api-key": api.key, "content-type": "image/png"})
img = json.loads(b) if st == 201 else {}
st, js = api("POST", "/api/messages", {"to": B, "kind": "image", "media": {"id": img.get("id")}, "caption": "eph"})
med = recv(js.get("id"), "media", 40)
check("an image: Baileys downloads it, the timer on it", st == 202 and med and med["expiration"] == WEEK and
      med["sha256"] == hashlib.sha256(PNG).hexdigest() and not med["viewOnce"], (st, med))
st, js = api("POST", f"/api/messages/{tid}/forward", {"to": B})
got = recv(js.get("id"))
check("a forward: marked forwarded and with the timer", got and got["forwarded"] and got["expiration"] == WEEK, got)

# ---- a message that carries another timer keeps the chat in step
r = bl.result("sent", bl.start({"op": "send", "to": ME, "text": "now a day", "ephemeral": DAY}))
mid = r.get("sent") if r else None
m = wait(lambda: (lambda x: x[1] if x[0] == 200 else None)(api("GET", f"/api/messages/{mid}")))
check("Baileys' message with expiration 86400: stored with it", m and m["ephemeral_seconds"] == DAY, m)
check("and the chat follows it", wait(lambda: (chat(BJ) or {}).get("ephemeral_seconds") == DAY), chat(BJ))

# ---- PUT /api/chats/{jid}/disappearing: sent to Baileys, the chat changes once sent
mark = len(bl.lines)
st, js = api("PUT", f"/api/chats/{BJ}/disappearing", {"seconds": 7776000})
check("PUT 90 days: 202 with the change (queued, or sent already)", st == 202 and js["type"] == "disappearing" and
      js["status"] in ("queued", "sent") and js["chat_jid"] == BJ, (st, js))
pid = js.get("id")
got = recv(pid)
check("Baileys receives protocolMessage EPHEMERAL_SETTING 7776000", got and got["ephemeralSetting"] == 7776000, got)
cu = wait(lambda: [x["chatUpdate"] for x in bl.lines[mark:] if x.get("chatUpdate", {}).get("id") == ME])
check("and Baileys' chat with us takes the timer (chats.update)", cu and cu[-1]["ephemeralExpiration"] == 7776000, cu)
c = wait(lambda: (lambda x: x if x and x["ephemeral_seconds"] == 7776000 else None)(chat(BJ)))
check("once the server took it: wapi's chat shows 90 days", c, chat(BJ))
ev = events("chat.disappearing", BJ)
check("chat.disappearing for our change too", ev and ev[-1]["ephemeral_seconds"] == 7776000, ev)
check("the change is not listed among the chat's messages",
      pid not in [m["id"] for m in api("GET", f"/api/chats/{BJ}/messages")[1]["data"]])
st, js = api("PUT", f"/api/chats/{BJ}/disappearing", {"seconds": 0})
got = recv(js.get("id"))
check("PUT 0 turns it off: Baileys gets 0, the chat 0", st == 202 and got and got["ephemeralSetting"] == 0 and
      wait(lambda: (chat(BJ) or {}).get("ephemeral_seconds") == 0), (st, got))
st, js = api("POST", "/api/messages", {"to": B, "text": "no timer now"})
got = recv(js.get("id"))
check("with the timer off, no expiration on what we send", got and got["expiration"] is None and
      js["ephemeral_seconds"] is None and js["expires_at"] is None, (got, js))

# ---- bad input: 400 naming seconds, nothing sent
n0 = outgoing_count()
for body in ({}, {"seconds": 5}, {"seconds": "86400"}, {"seconds": -1}, {"seconds": 86400.5}, {"seconds": None}):
    st, js = api("PUT", f"/api/chats/{BJ}/disappearing", body)
    check(f"PUT {json.dumps(body)}: 400 naming seconds", st == 400 and js["error"]["field"] == "seconds" and
          js["error"]["code"] == "invalid_seconds", (st, js))
st, js = api("PUT", "/api/chats/not-a-jid/disappearing", {"seconds": DAY})
check("PUT on no JID: 404 or 400", st in (400, 404), (st, js))
check("nothing was queued", outgoing_count() == n0)
check("the process is healthy", srv.request("GET", "/healthz")[0] == 200)

# ---- a group's timer through the API: the group's chat changes
st, js = api("POST", "/api/groups", {"subject": "Timers", "participants": [BJ]})
G = (js or {}).get("jid", "")
check("a group made by wapi", st == 201 and G.endswith("@g.us"), (st, js))
st, js = api("PUT", f"/api/chats/{G}/disappearing", {"seconds": DAY})
check("PUT on a group: 200 with the group, as PATCH /api/groups answers", st == 200 and js.get("jid") == G and
      js.get("ephemeral_seconds") == DAY, (st, js))
check("the server's group has the timer", wa.group(G).get("ephemeral") == DAY, wa.group(G))
c = wait(lambda: (lambda x: x if x and x["ephemeral_seconds"] == DAY else None)(chat(G)))
check("the group's chat shows it, chat.disappearing raised", c and events("chat.disappearing", G), chat(G))
st, js = api("PATCH", f"/api/groups/{G}", {"ephemeral_seconds": WEEK})
check("PATCH /api/groups/{jid} ephemeral_seconds: the chat follows",
      st == 200 and wait(lambda: (chat(G) or {}).get("ephemeral_seconds") == WEEK), (st, js, chat(G)))
st, js = api("POST", "/api/messages", {"to": G, "text": "group text with a timer"})
got = recv(js.get("id"))
check("a group message carries the group's timer", st == 202 and js["ephemeral_seconds"] == WEEK and got and
      got["expiration"] == WEEK, (st, got))
st, js = api("PUT", f"/api/chats/{G}/disappearing", {"seconds": 3600})
check("a group: bad seconds 400 too", st == 400 and js["error"]["field"] == "seconds", (st, js))

# ---- view once: ours reaches Baileys as view once; Baileys' is stored view_once and downloadable
st, js = api("POST", "/api/messages", {"to": B, "kind": "image", "media": {"id": img.get("id")}, "view_once": True})
check("POST image view_once: 202, view_once in the message", st == 202 and js["view_once"] is True, (st, js))
vid = js.get("id")
med = recv(vid, "media", 40)
got = recv(vid)
check("Baileys decrypts the photo and sees it as view once (viewOnceMessageV2, viewOnce)",
      med and med["sha256"] == hashlib.sha256(PNG).hexdigest() and med["viewOnce"] and got and got["viewOnce"] and
      got["viewOnceWrapper"] == "viewOnceMessageV2", (med, got))
check("it ends sent", wait(lambda: api("GET", f"/api/messages/{vid}")[1]["status"] in ("sent", "delivered", "read")))
for body in ({"to": B, "text": "x", "view_once": True},
             {"to": B, "kind": "document", "media": {"id": img.get("id")}, "view_once": True},
             {"to": B, "kind": "location", "location": {"latitude": 1, "longitude": 1}, "view_once": True},
             {"to": B, "kind": "image", "media": {"id": img.get("id")}, "view_once": "yes"}):
    n0 = outgoing_count()
    st, js = api("POST", "/api/messages", body)
    check(f"view_once on {body.get('kind', 'text')} ({body['view_once']!r}): 400 naming view_once, nothing queued",
          st == 400 and js["error"]["field"] == "view_once" and outgoing_count() == n0, (st, js))

PNG_IN = mediafiles.png_wh(40, 24, seed=77)
path = os.path.join(tmpd, "vo.png")
with open(path, "wb") as f:
    f.write(PNG_IN)
r = bl.result("sent", bl.start({"op": "sendMedia", "to": ME, "kind": "image", "path": path,
                                "mimetype": "image/png", "viewOnce": True}), timeout=60)
mid = r.get("sent") if r else None
check("Baileys sends a view-once photo", mid, r)


def settled():
    st, m = api("GET", f"/api/messages/{mid}")
    return m if st == 200 and m.get("media") and m["media"]["state"] != "pending" else None


m = wait(settled, timeout=40)
check("Baileys' view-once photo: stored as an image with view_once true, its file fetched",
      m and m["type"] == "image" and m["view_once"] is True and m["media"]["state"] == "stored", m)
ev = sql("SELECT data::text FROM wa_events WHERE type = 'message.received' AND data->>'id' = :'p0'", mid)
check("message.received says view_once", ev and json.loads(ev[0][0])["view_once"] is True, ev)
fid = ((m or {}).get("media") or {}).get("id")
st, _, body = srv.request("GET", f"/api/media/{fid}", headers={"x-api-key": api.key}) if fid else (0, None, None)
check("its file is downloadable through the API (the same bytes)", st == 200 and body == PNG_IN, st)
st2, _, body2 = srv.request("GET", f"/api/media/{fid}", headers={"x-api-key": api.key}) if fid else (0, None, None)
check("and again: kept like any file (an API has no screen to hide it from once seen)",
      st2 == 200 and body2 == PNG_IN, st2)

bl.quit()
srv.stop()
done()
