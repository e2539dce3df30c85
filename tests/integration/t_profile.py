#!/usr/bin/env python3
"""People's profiles through the API against the fake server: a contact's
picture (none, hidden, shown) and about text (shown, hidden), blocking by
number and by LID (WhatsApp wants the LID with the number beside it) and the
block list, our own about text and picture (a 640 px square JPEG, removed
again); bad input refused naming the field, nothing sent; permissions as the
roles say (a viewer may read, not block)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import mediafiles  # noqa: E402
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import Api, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_profile_{os.getpid()}")
BIN = os.environ.get("T_PROFILE_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                          else "build")
S = "@s.whatsapp.net"
PEER = "15550009999"

wa = FakeWA()
srv = Server(bindir=BIN, workers=2, env=wa.env(), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))

# ---- a contact's picture
wa.call("POST", "/peer/profile", {"picture": False})
st, js = api("GET", f"/api/contacts/{PEER}/picture")
check("a person without a picture: 404 picture_not_found", st == 404 and js["error"]["code"] == "picture_not_found",
      (st, js))
prof = wa.call("POST", "/peer/profile", {"picture": True})
LID = prof.get("lid")
st, js = api("GET", f"/api/contacts/{PEER}/picture")
st2, js2 = api("GET", f"/api/contacts/{PEER}{S}/picture?type=preview")
check("with one: its id and link; by JID with type=preview the small one",
      st == 200 and js.get("jid") == PEER + S and js.get("id") == prof["profile"]["picture"] and
      js.get("type") == "image" and js.get("url", "").startswith("https://") and st2 == 200 and
      js2.get("type") == "preview", (js, js2))
wa.call("POST", "/peer/profile", {"pictureHidden": True})
st, js = api("GET", f"/api/contacts/{PEER}/picture")
check("hidden by their privacy settings: 404 picture_hidden", st == 404 and js["error"]["code"] == "picture_hidden",
      (st, js))
for bad in ("120363000000000001@g.us", "abc", "1@example.com"):
    st, js = api("GET", f"/api/contacts/{bad}/picture")
    check(f"the picture of {bad}: 404 not_found, nothing asked", st == 404 and js["error"]["code"] == "not_found",
          (st, js))

# ---- about text
wa.call("POST", "/peer/profile", {"about": "Busy building things 🚧", "aboutHidden": False})
st, js = api("GET", f"/api/contacts/{PEER}/about")
check("a person's about text and when it was set", st == 200 and js.get("about") == "Busy building things 🚧" and
      js.get("jid") == PEER + S and (js.get("set_at") or "").endswith("Z"), (st, js))
wa.call("POST", "/peer/profile", {"aboutHidden": True})
st, js = api("GET", f"/api/contacts/{PEER}/about")
check("hidden from us: 404 about_hidden", st == 404 and js["error"]["code"] == "about_hidden", (st, js))

# ---- blocking: by number with no LID known yet, then by LID once known
st, js = api("POST", f"/api/contacts/{PEER}/block")
bl = wa.call("GET", "/profile")["blocked"]
check("block by number: 200 {jid, blocked: true}; the server has it", st == 200 and js.get("blocked") is True and
      PEER + S in bl, (st, js, bl))
st, js = api("GET", "/api/blocklist")
check("GET /api/blocklist: the server's list", st == 200 and js.get("data") == [PEER + S], (st, js))
st, js = api("DELETE", f"/api/contacts/{PEER}/block")
check("unblock: 200 blocked false; the server's list is empty", st == 200 and js.get("blocked") is False and
      wa.call("GET", "/profile")["blocked"] == [], (st, js))
psql(DB, "INSERT INTO wa_contacts (jid, lid) VALUES (:'p0', :'p1') ON CONFLICT (jid) DO UPDATE SET lid = EXCLUDED.lid",
     PEER + S, LID)
mark = wa.last_seq()
st, js = api("POST", f"/api/contacts/{PEER}/block")
ev = wa.events(mark, "blocklist")
check("with the LID known: the block names the LID and the number beside it (the server checks the pair)",
      st == 200 and js.get("jid") == LID and ev and ev[0].get("jid") == LID and ev[0].get("pn_jid") == PEER + S,
      (st, js, ev))
st, js = api("DELETE", f"/api/contacts/{LID}/block")
check("unblock by LID", st == 200 and wa.call("GET", "/profile")["blocked"] == [], (st, js))
st, js = api("POST", "/api/contacts/15550000000/block")
check("blocking a number not on WhatsApp: 404 from the server", st == 404 and js["error"]["code"] == "not_found",
      (st, js))

# ---- our own about text and picture
st, js = api("PUT", "/api/profile/about", {"about": "Available 9–5"})
check("PUT /api/profile/about: set on the server", st == 200 and wa.call("GET", "/profile")["about"] == "Available 9–5",
      (st, js))
for body in ({}, {"about": ""}, {"about": "x" * 140}, {"about": 5}):
    st, js = api("PUT", "/api/profile/about", body)
    check(f"PUT /api/profile/about {json.dumps(body)[:30]}: 400 naming about", st == 400 and
          js["error"].get("field") == "about", (st, js))
check("... and nothing changed", wa.call("GET", "/profile")["about"] == "Available 9–5")
st, _, b = srv.request("POST", "/api/media", body=mediafiles.png_wh(900, 700), timeout=20,
                       headers={"x-api-key": api.key, "content-type": "image/png"})
mid = json.loads(b).get("id") if st == 201 else None
st, js = api("PUT", "/api/profile/picture", {"media_id": mid})
pic = wa.call("GET", "/profile")["picture"] or {}
check("PUT /api/profile/picture: our picture, a 640 px square JPEG (the centre of a 900x700)",
      st == 200 and js.get("id") == pic.get("id") and [pic.get("width"), pic.get("height")] == [640, 640] and
      js.get("jid") == wa.phone + S, (st, js, pic))
st, js = api("DELETE", "/api/profile/picture")
check("DELETE /api/profile/picture: removed", st == 200 and wa.call("GET", "/profile")["picture"] is None, (st, js))

# ---- permissions: a viewer reads, does not block or change our profile
st, _, b = srv.request("POST", "/api/auth/api-key/create", headers={"content-type": "application/json",
                       "origin": api.origin, "cookie": api.cookie},
                       body=json.dumps({"name": "reader", "permissions": {"contacts": ["read"]}}).encode())
js = json.loads(b) if st == 200 else None
vkey = (js or {}).get("key")
if vkey:
    h = {"x-api-key": vkey, "content-type": "application/json"}
    s1, _, _ = srv.request("GET", "/api/blocklist", headers=h)
    s2, _, _ = srv.request("POST", f"/api/contacts/{PEER}/block", headers=h)
    s3, _, _ = srv.request("PUT", "/api/profile/about", body=b'{"about":"x"}', headers=h)
    check("a key with contacts:read only: reads the block list, may not block (403) nor set our about (403)",
          (s1, s2, s3) == (200, 403, 403), (s1, s2, s3))
else:
    check("a scoped key was made", False, js)
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))

srv.stop()
wa.stop()
done()
