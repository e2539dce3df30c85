#!/usr/bin/env python3
"""App-state sync against the fake server (tests/wa/lib/fake_appstate.mjs),
whose patches and snapshots are built by Baileys' own encoder: the phone's
archive / pin / mute / unread / contact name / push name / star / labels
land on chats, contacts and messages with one event each; the collections'
versions and LTHashes end equal to the server's (an LTHash is a sum: a patch
applied twice, or half, would show); nothing is applied again when nothing
is new, or after a restart; a tampered value MAC, patch MAC or LTHash gets
the collection again from a snapshot (counted in wapi_appstate_resyncs_total)
with the state right afterwards and the process alive; a patch sealed
under a key wapi lacks makes wapi ask our phone for it, and it is applied
once the key arrives; an external patch and paged answers
(has_more_patches) are followed; kill -9 of the supervisor in the middle of
a stream of patches leaves every collection exactly once-applied."""
import atexit
import os
import secrets
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, kill_supervisor, ROOT, Server, wait  # noqa: E402
from linked import SSE, Api, WebhookReceiver, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_appstate_{os.getpid()}")
BIN = os.environ.get("WAPI_TEST_BINDIR") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                             else "build")
PEER = "15550009999@s.whatsapp.net"
PEER2 = "15550008888@s.whatsapp.net"

wa = FakeWA("--media-ca", tempfile.mkdtemp(prefix="wapi-media-ca-"))
atexit.register(wa.stop)
env = dict(wa.env(), SSL_CERT_FILE=wa.media_ca, WAPI_WEBHOOKS_ALLOW_PRIVATE="true",
           WAPI_WHATSAPP_PRESENCE="available")  # our presence carries our push name
srv = Server(bindir=BIN, workers=2, env=env, pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
rx = WebhookReceiver()
st, hook = api("POST", "/api/webhooks", {"url": rx.url, "events": ["chat.updated", "contact.updated"]})
check("a webhook for chat.updated and contact.updated is accepted", st == 201, (st, hook))
sse = SSE(srv, api.key)


def fake():
    return wa.call("GET", "/appstate/state")


def ours():
    return {r[0]: (int(r[1]), r[2]) for r in psql(DB, "SELECT name, version, encode(hash, 'hex') FROM wa_appstate_collections")}


def in_step(names=None):
    """Every collection the fake server has moved is at the server's version and LTHash here."""
    f = fake()["collections"]
    o = ours()
    names = names or [n for n, c in f.items() if c["version"] > 0]
    return all(o.get(n) == (f[n]["version"], f[n]["hash"]) for n in names)


def mutate(collection, mutations, **kw):
    r = wa.call("POST", "/appstate/mutate", {"collection": collection, "mutations": mutations, **kw})
    assert r.get("ok"), r
    return r


def chat(jid):
    return api("GET", f"/api/chats/{jid}")[1] or {}


def events(etype, since, jid=None):
    rows = psql(DB, "SELECT data::text FROM wa_events WHERE type = :'p0' AND id > :'p1'::bigint "
                    "AND (:'p2' = '' OR data->>'jid' = :'p2') ORDER BY id", etype, str(since), jid or "")
    return [r[0] for r in rows]


def last_event():
    return int(psql(DB, "SELECT coalesce(max(id), 0) FROM wa_events")[0][0])


def metric(collection, reason):
    _, _, body = srv.request("GET", "/metrics")
    want = f'wapi_appstate_resyncs_total{{collection="{collection}",reason="{reason}"}} '
    for line in body.decode().splitlines():
        if line.startswith(want):
            return int(line.split()[-1])
    return None


def alive():
    return srv.proc.poll() is None and api("GET", "/api/session")[1].get("state") == "connected"


# ---- before any key: nothing is fetched; then the phone's state arrives as snapshots
K1 = {"id": "0000" + secrets.token_hex(4), "data": secrets.token_hex(32)}
wa.call("POST", "/appstate/key", K1)
time.sleep(1)
check("no sync key yet: no collection is fetched", not fake()["fetches"], fake()["fetches"])
mutate("regular_low", [{"index": ["archive", PEER], "apiVersion": 3,
                        "value": {"archiveChatAction": {"archived": True, "messageRange": {"lastMessageTimestamp": 1733400000}}}}],
       notify=False)
mutate("critical_unblock_low", [{"index": ["contact", PEER], "value": {"contactAction": {"fullName": "Zoë Saved", "firstName": "Zoë"}}}],
       notify=False)
mutate("critical_block", [{"index": ["setting_pushName"], "apiVersion": 1, "value": {"pushNameSetting": {"name": "wapi owner"}}}],
       notify=False)
mark = last_event()
wa.call("POST", "/peer/send", {"from": wa.phone, "appStateKeys": [K1]})
check("the key arrives: every collection is fetched, those with data from a snapshot",
      wait(lambda: in_step(), timeout=30) and
      {f["name"] for f in fake()["fetches"] if f["snapshot"]} >= {"regular_low", "critical_unblock_low", "critical_block"},
      (fake(), ours()))
check("... five collections asked for", {f["name"] for f in fake()["fetches"]} == {
      "critical_block", "critical_unblock_low", "regular_high", "regular_low", "regular"}, fake()["fetches"])
c = chat(PEER)
check("the phone's archive is on the chat", c.get("archived") is True, c)
check("the contact's saved name is the chat's name", c.get("name") == "Zoë Saved", c)
k = api("GET", f"/api/contacts/{PEER}")[1] or {}
check("... and the contact's saved_name", k.get("saved_name") == "Zoë Saved" and k.get("name") == "Zoë Saved", k)
check("our push name kept", psql(DB, "SELECT value FROM wa_appstate_settings WHERE name = 'push_name'") == [["wapi owner"]])
check("... it is the session's name, and our presence goes out with it",
      wait(lambda: (api("GET", "/api/session")[1].get("me") or {}).get("name") == "wapi owner"
           and any(e.get("name") == "wapi owner" for e in wa.events(0, "presence.own"))),
      (api("GET", "/api/session")[1], wa.events(0, "presence.own")))
check("one chat.updated and one contact.updated for the peer",
      len(events("chat.updated", mark, PEER)) == 1 and len(events("contact.updated", mark, PEER)) == 1,
      (events("chat.updated", mark), events("contact.updated", mark)))
check("the raw rows of every record kept", int(psql(DB, "SELECT count(*) FROM wa_appstate_map")[0][0]) == 3)
check("... delivered to the webhook (chat.updated with the chat's state, contact.updated with the saved name)",
      wait(lambda: rx.of_type("chat.updated", lambda p: p["data"]["jid"] == PEER and p["data"]["archived"] is True)
           and rx.of_type("contact.updated", lambda p: p["data"]["saved_name"] == "Zoë Saved"), timeout=20),
      [b for _, b in rx.received])
check("... and on the event stream (SSE)",
      wait(lambda: {e.get("event") for e in sse.events} >= {"chat.updated", "contact.updated"}, timeout=10),
      [e.get("event") for e in sse.events])

# ---- patches, one change each, told by server_sync
mid = wa.call("POST", "/peer/send", {"text": "star me"})["id"]
wait(lambda: api("GET", f"/api/messages/{mid}")[0] == 200)
steps = [
    ("pinned", "regular_low", [{"index": ["pin_v1", PEER], "apiVersion": 5, "value": {"pinAction": {"pinned": True}}}],
     lambda c: c.get("pinned") is True and c.get("pinned_at")),
    ("muted until a time", "regular_high", [{"index": ["mute", PEER], "value": {"muteAction": {"muted": True, "muteEndTimestamp": 4102444800000}}}],
     lambda c: c.get("muted") is True and c.get("muted_until", "").startswith("2100-01-01")),
    ("marked unread", "regular_low", [{"index": ["markChatAsRead", PEER], "apiVersion": 3, "value": {"markChatAsReadAction": {"read": False}}}],
     lambda c: c.get("marked_unread") is True),
    ("labelled", "regular", [{"index": ["label_edit", "5"], "apiVersion": 3, "value": {"labelEditAction": {"name": "VIP", "color": 3}}},
                             {"index": ["label_jid", "5", PEER], "apiVersion": 3, "value": {"labelAssociationAction": {"labeled": True}}}],
     lambda c: c.get("labels") == ["5"]),
]
for what, coll, muts, ok in steps:
    mark = last_event()
    mutate(coll, muts)
    got = wait(lambda: in_step([coll]) and ok(chat(PEER)), timeout=20)
    check(f"{what}: on the chat, the collection in step", got, (chat(PEER), fake()["collections"][coll], ours().get(coll)))
    check(f"{what}: one chat.updated", len(events("chat.updated", mark, PEER)) == 1, events("chat.updated", mark))
check("the label is stored", psql(DB, "SELECT id, name, color FROM wa_labels") == [["5", "VIP", "3"]])
st, js = api("GET", "/api/labels")
check("GET /api/labels: the label with its chat", st == 200 and js == {"data": [
      {"id": "5", "name": "VIP", "color": 3, "deleted": False, "chats": [PEER]}]}, (st, js))
mark = last_event()
mutate("regular_high", [{"index": ["star", PEER, mid, "0", "0"], "value": {"starAction": {"starred": True}}}])
check("a star from the phone: the message is starred",
      wait(lambda: psql(DB, "SELECT starred FROM wa_messages WHERE id = :'p0'", mid) == [["t"]]), mid)
check("... no chat.updated for it", not events("chat.updated", mark))

# ---- nothing new: nothing applied again
mark = last_event()
versions = ours()
n_fetch = len(fake()["fetches"])
wa.call("POST", "/peer/send", {"from": wa.phone, "appStateKeys": [K1]})  # the key again: a sync
check("a sync with nothing new: fetched, nothing changed",
      wait(lambda: len(fake()["fetches"]) > n_fetch) and (time.sleep(1) or True) and ours() == versions
      and last_event() == mark, (ours() == versions, last_event(), mark,
                                 psql(DB, "SELECT id, type FROM wa_events WHERE id > :'p0'::bigint", str(mark))))
mutate("regular_low", [{"index": ["archive", PEER], "apiVersion": 3, "value": {"archiveChatAction": {"archived": True}}}])
check("the same setting again (a no-op change): applied, no event",
      wait(lambda: in_step(["regular_low"])) and not events("chat.updated", mark), events("chat.updated", mark))

# ---- tampered patches: the collection from a snapshot, counted, state right
for tamper, reason, value in (("valueMac", "bad_mac", False), ("patchMac", "bad_mac", True), ("lthash", "lthash_mismatch", False)):
    before = metric("regular_low", reason) or 0
    n_snap = sum(1 for f in fake()["fetches"] if f["name"] == "regular_low" and f["snapshot"])
    mutate("regular_low", [{"index": ["archive", PEER], "apiVersion": 3, "value": {"archiveChatAction": {"archived": value}}}],
           tamper=tamper)
    got = wait(lambda: in_step(["regular_low"]) and chat(PEER).get("archived") is value, timeout=20)
    check(f"tampered {tamper}: refused, fetched again from a snapshot, the state right afterwards",
          got and sum(1 for f in fake()["fetches"] if f["name"] == "regular_low" and f["snapshot"]) == n_snap + 1,
          (chat(PEER), ours().get("regular_low"), fake()["collections"]["regular_low"]))
    check(f"tampered {tamper}: counted as {reason}", metric("regular_low", reason) == before + 1,
          (metric("regular_low", reason), before))
    check(f"tampered {tamper}: the supervisor alive and connected", alive())
check("the other collections untouched by the resyncs", in_step())

# ---- an external patch and a paged answer
mutate("regular_low", [{"index": ["pin_v1", PEER2], "apiVersion": 5, "value": {"pinAction": {"pinned": True}}}], external=True)
check("an external patch (its mutations downloaded like media) applied",
      wait(lambda: in_step(["regular_low"]) and chat(PEER2).get("pinned") is True), chat(PEER2))
wa.call("POST", "/appstate/config", {"pageSize": 2})
for i in range(5):
    mutate("regular_high", [{"index": ["mute", PEER2], "value": {"muteAction": {"muted": i % 2 == 0, "muteEndTimestamp": -1}}}],
           notify=(i == 4))
check("five patches in pages of two (has_more_patches) followed to the end",
      wait(lambda: in_step(["regular_high"])) and chat(PEER2).get("muted") is True and chat(PEER2).get("muted_until") is None,
      (chat(PEER2), ours().get("regular_high")))

# ---- a key wapi lacks: asked of our phone, the collection applied once it comes
K2 = {"id": "0001" + secrets.token_hex(4), "data": secrets.token_hex(32)}
wa.call("POST", "/appstate/key", K2)
mutate("regular_low", [{"index": ["archive", PEER2], "apiVersion": 3, "value": {"archiveChatAction": {"archived": True}}}])
check("a patch under an unknown key: our phone is asked for exactly that key",
      wait(lambda: any(K2["id"] in r["keyIds"] for r in fake()["keyRequests"]), timeout=20), fake()["keyRequests"])
check("... nothing applied meanwhile", chat(PEER2).get("archived") is False and not in_step(["regular_low"]))
wa.call("POST", "/peer/send", {"from": wa.phone, "appStateKeys": [K2]})
check("the key arrives: the patch applied",
      wait(lambda: in_step(["regular_low"]) and chat(PEER2).get("archived") is True, timeout=20), chat(PEER2))

# ---- our own changes: Baileys decodes the patch the server got and sees the same state
def received():
    return fake()["received"]


def ours_sent(path, method="POST", body=None, want=202):
    n = len(received())
    st, js = api(method, f"/api/chats/{PEER}/{path}", body)
    ok = st == want and wait(lambda: len(received()) > n, timeout=10)
    return ok, (received()[-1] if len(received()) > n else None), (st, js)


mark = last_event()
ok, got, ans = ours_sent("archive")
check("POST archive: 202 with the chat, archived", ok and ans[1].get("archived") is True, ans)
check("... Baileys decodes our patch: archiveChatAction archived true for the chat",
      got and got["actions"] and got["actions"][0]["index"] == ["archive", PEER] and
      got["actions"][0]["value"].get("archiveChatAction", {}).get("archived") is True, got)
check("... our LTHash and version equal Baileys' after our patch", in_step(["regular_low"]),
      (ours().get("regular_low"), fake()["collections"]["regular_low"]))
check("... one chat.updated", len(events("chat.updated", mark, PEER)) == 1, events("chat.updated", mark))
ok, got, ans = ours_sent("archive", "DELETE")
check("DELETE archive: unarchived, Baileys sees archived false",
      ok and ans[1].get("archived") is False and not got["actions"][0]["value"]["archiveChatAction"].get("archived")
      and in_step(["regular_low"]), (ans, got))
ok, got, ans = ours_sent("pin", "DELETE")
check("DELETE pin: unpinned, Baileys sees pinAction pinned false under pin_v1",
      ok and ans[1].get("pinned") is False and got["actions"][0]["index"] == ["pin_v1", PEER] and
      not got["actions"][0]["value"]["pinAction"].get("pinned") and in_step(["regular_low"]), (ans, got))
ok, got, ans = ours_sent("pin")
check("POST pin: pinned, Baileys sees pinned true", ok and ans[1].get("pinned") is True and
      got["actions"][0]["value"]["pinAction"]["pinned"] is True, (ans, got))
t0 = int(time.time())
ok, got, ans = ours_sent("mute", body={"seconds": 3600})
mute = (got or {"actions": [{"value": {}}]})["actions"][0]["value"].get("muteAction", {})
check("POST mute {seconds}: muted for an hour here and in Baileys' decoding",
      ok and ans[1].get("muted") is True and mute.get("muted") is True and
      abs(mute.get("muteEndTimestamp", 0) / 1000 - (t0 + 3600)) < 30 and in_step(["regular_high"]), (ans, got))
ok, got, ans = ours_sent("mute", body={"until": "2031-01-01T00:00:00Z"})
mute = (got or {"actions": [{"value": {}}]})["actions"][0]["value"].get("muteAction", {})
check("POST mute {until}: muted until then", ok and ans[1].get("muted_until", "").startswith("2031-01-01T00:00:00") and
      mute.get("muteEndTimestamp") == 1924992000000, (ans, got))
ok, got, ans = ours_sent("mute", "DELETE")
check("DELETE mute: unmuted, Baileys sees muted false", ok and ans[1].get("muted") is False and
      not got["actions"][0]["value"]["muteAction"].get("muted"), (ans, got))
ok, got, ans = ours_sent("read", "DELETE")
check("DELETE read: marked unread, Baileys sees markChatAsReadAction read false",
      ok and ans[1].get("marked_unread") is True and got["actions"][0]["index"] == ["markChatAsRead", PEER] and
      not got["actions"][0]["value"]["markChatAsReadAction"].get("read"), (ans, got))
ok, got, ans = ours_sent("read")
check("POST read: read, no longer marked unread, nothing unread", ok and ans[1].get("marked_unread") is False and
      ans[1].get("unread_count") == 0 and got["actions"][0]["value"]["markChatAsReadAction"]["read"] is True, (ans, got))
check("every collection still in step with Baileys' view", in_step())

# ---- a conflict: the phone changed the collection meanwhile (the server is ahead)
mutate("regular_low", [{"index": ["pin_v1", PEER2], "apiVersion": 5, "value": {"pinAction": {"pinned": False}}}], notify=False)
behind = ours()["regular_low"][0]
ok, got, ans = ours_sent("archive")
check("a change while the server is ahead: refused with 409 first, then the server's patch applied and ours again",
      ok and any(e.get("name") == "regular_low" for e in wa.events(0, "appstate.conflict")) and
      got["version"] == behind + 2, (ans, got, behind, wa.events(0, "appstate.conflict")))
check("... the server's change is here (their pin off) and ours is there (archived)",
      chat(PEER2).get("pinned") is False and chat(PEER).get("archived") is True and in_step(["regular_low"]),
      (chat(PEER2), chat(PEER), ours().get("regular_low"), fake()["collections"]["regular_low"]))

# ---- bad input: a clear 4xx naming the field, nothing changed
n_recv, v_now = len(received()), ours()
for body, field in (({"seconds": -5}, "seconds"), ({"seconds": "soon"}, "seconds"), ({"until": "yesterday"}, "until"),
                    ({"until": "2001-01-01T00:00:00Z"}, "until"), ({"until": "2031-01-01T00:00:00Z", "seconds": 5}, "until")):
    st, js = api("POST", f"/api/chats/{PEER}/mute", body)
    check(f"mute {body}: 400 naming {field}", st == 400 and (js or {}).get("error", {}).get("field") == field, (st, js))
st, js = api("POST", "/api/chats/19990000000@s.whatsapp.net/archive")
check("a chat wapi does not know: 404", st == 404 and js["error"]["code"] == "not_found", (st, js))
st, js = api("POST", f"/api/chats/{PEER}/mute", None)
check("mute without a body is for ever (accepted)", st == 202 and js.get("muted") is True and js.get("muted_until") is None, (st, js))
check("... the refused ones sent nothing", len(received()) == n_recv + 1, received()[n_recv:])

# ---- kill -9 of the supervisor in the middle of a stream of patches
wa.call("POST", "/appstate/config", {"pageSize": 1})
for i in range(40):
    mutate("regular_low", [{"index": ["archive", PEER], "apiVersion": 3, "value": {"archiveChatAction": {"archived": i % 2 == 0}}}],
           notify=(i == 39))
wait(lambda: ours().get("regular_low", (0,))[0] > fake()["collections"]["regular_low"]["version"] - 35, timeout=20, step=0.01)
mid_version = ours().get("regular_low", (0,))[0]
check("killed in the middle: the supervisor's workers leave", kill_supervisor(srv))
keep = {k: srv.env[k] for k in ("WAPI_PATHS_SESSIONS", "WAPI_PATHS_MEDIA")}
srv = Server(bindir=BIN, workers=2, env=dict(env, **keep), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api.srv = srv
check("after the restart the session logs in",
      wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60))
check(f"... and every collection ends exactly once-applied (same version and LTHash as the server; was at "
      f"{mid_version} of {fake()['collections']['regular_low']['version']} when killed)",
      wait(lambda: in_step(), timeout=60) and chat(PEER).get("archived") is False, (ours(), fake()["collections"]))
mine = {r[0]: int(r[1]) for r in psql(DB, "SELECT collection, count(*) FROM wa_appstate_map GROUP BY 1")}
theirs = {n: c["records"] for n, c in fake()["collections"].items() if c["records"]}
extra = psql(DB, "SELECT collection, index_json, kind FROM wa_appstate_map WHERE NOT encode(index_mac, 'hex') = ANY(:'p0'::text[])",
             "{" + ",".join(m for c in fake()["collections"].values() for m in c["indexMacs"]) + "}")
check("the map matches the server's records, collection by collection", mine == theirs, (mine, theirs, extra))
# ---- the same patch applied twice (a replay after a crash between the commit and the next step) adds nothing
ev0 = last_event() + 1000
payload = ('{"c": "t_replay", "snap": false, "from": 0, "v": 1, "h": "' + "00" * 128 + '", "ev": %d, "a": [{"op": "s", '
           '"im": "' + "11" * 32 + '", "vm": "' + "22" * 32 + '", "ij": "[\\"archive\\",\\"%s\\"]", "i": ["archive", "%s"], '
           '"kind": "archive", "ts": 0, "f": true, "me": 0, "n": null, "fn": null, "col": 0}]}') % (ev0, PEER2, PEER2)
first = psql(DB, "SELECT wapi_appstate_apply(:'p0'::jsonb)->>'ok'", payload)
n_events = int(psql(DB, "SELECT count(*) FROM wa_events")[0][0])
again = psql(DB, "SELECT wapi_appstate_apply(:'p0'::jsonb)::text", payload.replace(str(ev0), str(ev0 + 10)))
check("wapi_appstate_apply: the same patch twice: applied once, then refused as stale with nothing changed",
      first == [["true"]] and '"stale"' in again[0][0] and int(psql(DB, "SELECT count(*) FROM wa_events")[0][0]) == n_events
      and psql(DB, "SELECT version FROM wa_appstate_collections WHERE name = 't_replay'") == [["1"]]
      and psql(DB, "SELECT count(*) FROM wa_appstate_map WHERE collection = 't_replay'") == [["1"]], (first, again))
check("after the restart the session's name is still the one our phone set",
      wait(lambda: (api("GET", "/api/session")[1].get("me") or {}).get("name") == "wapi owner"),
      api("GET", "/api/session")[1])
# ---- our own push name (PUT /api/profile/name): a pushNameSetting patch in critical_block, as our phone sends it
n = len(received())
seq = wa.last_seq()
for bad, why in (({"name": ""}, "empty"), ({"name": "x" * 26}, "26 characters"), ({"name": "   "}, "blank"),
                 ({"name": 7}, "not a string"), ({}, "absent")):
    st, js = api("PUT", "/api/profile/name", bad)
    check(f"PUT /api/profile/name {why}: 400 invalid_name naming the field",
          st == 400 and js.get("error", {}).get("code") == "invalid_name" and js["error"].get("field") == "name",
          (st, js))
check("... nothing sent for them", len(received()) == n, received()[n:])
st, js = api("PUT", "/api/profile/name", {"name": "Ünïcode Bot ✓"})
check("PUT /api/profile/name: 202 with the name", st == 202 and js == {"name": "Ünïcode Bot ✓"}, (st, js))
got = received()[-1] if len(received()) > n else {}
check("... Baileys decodes our patch: setting_pushName, pushNameSetting with the name, apiVersion 1",
      got.get("name") == "critical_block" and got.get("actions") and
      got["actions"][0]["index"] == ["setting_pushName"] and
      got["actions"][0]["value"].get("pushNameSetting", {}).get("name") == "Ünïcode Bot ✓", got)
check("... our critical_block in step with the server's after it", in_step(["critical_block"]),
      (ours().get("critical_block"), fake()["collections"].get("critical_block")))
check("... the session's name is the new one, and our presence carries it",
      wait(lambda: (api("GET", "/api/session")[1].get("me") or {}).get("name") == "Ünïcode Bot ✓"
           and any(e.get("name") == "Ünïcode Bot ✓" for e in wa.events(seq, "presence.own"))),
      (api("GET", "/api/session")[1], wa.events(seq, "presence.own")))
check("... kept as our push name", psql(DB, "SELECT value FROM wa_appstate_settings WHERE name = 'push_name'")
      == [["Ünïcode Bot ✓"]])
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
check("no sanitizer report", not srv.sanitizer_reports(), srv.sanitizer_reports())
srv.stop()
done()
