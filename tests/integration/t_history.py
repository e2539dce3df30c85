#!/usr/bin/env python3
"""History sync, against the fake WhatsApp server: our phone's
HISTORY_SYNC_NOTIFICATIONs (blobs built with Baileys' own HistorySync
encoder, deflated, encrypted with the history media keys and put on the
fake media hosts, or inline) are stored as jobs with their batch, imported
(chats with their settings, messages of every kind through the live
message parser, push names, phone number -> LID mappings, which merge a LID
chat into the number's), one transaction per chunk, and receipted
(<receipt type=hist_sync>, checked by the fake phone: to the account, once)
only after the commit. A replayed chunk adds no row; kill -9 of the
supervisor mid-import resumes at the restart without duplicates; a corrupt
blob is refused, retried a bounded number of times and failed; imported
messages raise no message.received, each chunk one history.progress and
the last one history.completed; whatsapp.history=off imports nothing but
still receipts. A blob inflating to about 50 MB is imported with the
supervisor's peak RSS measured (reported; bound generous)."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done, kill_supervisor, wait  # noqa: E402
from linked import Api, SSE, WebhookReceiver, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_history_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
BIN = os.environ.get("T_HISTORY_BIN") or ("build/san" if os.path.exists(os.path.join(
    os.path.dirname(__file__), "../../build/san/wapi")) else "build")
BIG_MB = int(os.environ.get("T_HISTORY_BIG_MB", "50"))

ALICE = "4915112345678@s.whatsapp.net"
BOB_PN, BOB_LID = "4915187654321@s.whatsapp.net", "123456789012345@lid"
GROUP = "120363025246125486@g.us"
CAROL = "4915100000003@s.whatsapp.net"


def sql(q, *args):
    return psql(DB, q, *args)


def count(q, *args):
    return int(sql(q, *args)[0][0])


def wmi(chat, mid, ts, message, from_me=False, participant=None, push=None):
    w = {"key": {"remoteJid": chat, "fromMe": from_me, "id": mid}, "message": message, "messageTimestamp": ts}
    if participant:
        w["key"]["participant"] = participant
    if push:
        w["pushName"] = push
    return {"message": w}


T0 = int(time.time()) - 86400
BOOT = [
    {"id": ALICE, "name": "Alice A.", "unreadCount": 2, "archived": True, "pinned": T0, "ephemeralExpiration": 604800,
     "messages": [
         wmi(ALICE, "HIST0001", T0 + 1, {"conversation": "hello from the past"}, push="Alice"),
         wmi(ALICE, "HIST0002", T0 + 2, {"extendedTextMessage": {"text": "a reply",
                                                                  "contextInfo": {"stanzaId": "HIST0001"}}},
             from_me=True),
         wmi(ALICE, "HIST0003", T0 + 3, {"locationMessage": {"degreesLatitude": 52.52, "degreesLongitude": 13.4,
                                                              "name": "Berlin"}}, push="Alice"),
         wmi(ALICE, "HIST0004", T0 + 4, {"imageMessage": {
             "url": "https://mmg.whatsapp.net/v/t62.7118-24/1_n.enc", "mimetype": "image/jpeg",
             "caption": "old photo", "fileSha256": "A" * 43 + "=", "fileLength": 1234, "height": 10, "width": 20,
             "mediaKey": "B" * 43 + "=", "fileEncSha256": "C" * 43 + "=",
             "directPath": "/v/t62.7118-24/1_n.enc?ccb=11-4", "mediaKeyTimestamp": T0}}, push="Alice"),
         wmi(ALICE, "HIST0005", T0 + 5, {"reactionMessage": {"key": {"remoteJid": ALICE, "fromMe": True,
                                                                     "id": "HIST0002"}, "text": "👍"}},
             push="Alice"),
     ]},
    {"id": GROUP, "name": "Old friends", "unreadCount": 0, "muteEndTime": T0 + 10 * 86400,
     "messages": [
         wmi(GROUP, "HIST0101", T0 + 10, {"conversation": "group hello"}, participant=CAROL, push="Carol"),
         wmi(GROUP, "HIST0102", T0 + 11, {"pollCreationMessage": {"name": "Lunch?", "options": [
             {"optionName": "yes"}, {"optionName": "no"}], "selectableOptionsCount": 1}}, participant=CAROL),
     ]},
    # a chat under the LID: its number comes in the same chunk's mappings
    {"id": BOB_LID, "unreadCount": 1, "messages": [
        wmi(BOB_LID, "HIST0201", T0 + 20, {"conversation": "bob by lid"}, push="Bob"),
    ]},
]
PUSHNAMES = [{"id": CAROL, "pushname": "Carol C."}, {"id": "4915100000004@s.whatsapp.net", "pushname": "Dave"}]
MAPPINGS = [{"pnJid": BOB_PN, "lidJid": BOB_LID}]
# the phone's newer view of the chat: its settings as they are now
RECENT = [{"id": ALICE, "unreadCount": 3, "archived": True, "pinned": T0, "ephemeralExpiration": 604800, "messages": [
    wmi(ALICE, "HIST0006", T0 + 30, {"conversation": "recent one"}, push="Alice"),
    wmi(ALICE, "HIST0001", T0 + 1, {"conversation": "hello from the past"}, push="Alice"),  # overlaps the bootstrap
]}]
HIST_IDS = ["HIST0001", "HIST0002", "HIST0003", "HIST0004", "HIST0005", "HIST0101", "HIST0102", "HIST0201",
            "HIST0006"]


def job(mid):
    r = sql("SELECT state, attempts, coalesce(error, ''), receipted_at IS NOT NULL, messages, conversations "
            "FROM wa_history_jobs WHERE message_id = :'p0'", mid)
    return r[0] if r else None


def receipted(mid, since=0):
    return [e for e in wa.events(since, "phone.hist_sync") if e.get("id") == mid]


def msg_count():
    return count("SELECT count(*) FROM wa_messages")


ca_dir = tempfile.mkdtemp(prefix="wapi-hist-ca-")
wa = FakeWA("--media-ca", ca_dir)
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca, "WAPI_WHATSAPP_HISTORY": "recent",
            "WAPI_WEBHOOKS_ALLOW_PRIVATE": "true"})
srv = Server(bindir=BIN, workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))
srv.env["WAPI_WHATSAPP_AUTOSTART"] = "true"  # the restarts below reconnect by themselves
rx = WebhookReceiver()
st, _ = api("POST", "/api/webhooks", {"url": rx.url, "events": ["history.progress", "history.completed",
                                                                 "message.received"]})
check("a webhook subscribed to history.progress, history.completed and message.received", st == 201, st)
sse = SSE(srv, api.key)

# ---- INITIAL_BOOTSTRAP (inline) then RECENT (downloaded) ----
mark = wa.last_seq()
boot = wa.call("POST", "/phone/history", {"syncType": "INITIAL_BOOTSTRAP", "chunkOrder": 0, "progress": 40,
                                          "inline": True, "conversations": BOOT, "pushnames": PUSHNAMES,
                                          "lidMappings": MAPPINGS})
check("the phone sent an inline INITIAL_BOOTSTRAP chunk", boot.get("ok") is True, boot)
r1 = wait(lambda: receipted(boot["id"], mark), timeout=30)
st = job(boot["id"])
check("its hist_sync receipt came, once the chunk was committed (job done at that moment)",
      bool(r1) and st is not None and st[0] == "done" and st[3] == "t", (r1, st))
check("the job counted 3 conversations and 8 messages", st and st[5] == "3" and st[4] == "8", st)

mark = wa.last_seq()
rec = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 1, "progress": 100,
                                         "conversations": RECENT})
check("the phone sent a RECENT chunk on the media host", rec.get("ok") is True and rec.get("directPath"), rec)
check("... receipted after its import", bool(wait(lambda: receipted(rec["id"], mark), timeout=30)),
      job(rec["id"]))
st = job(rec["id"])
check("... done, storing only the message the bootstrap did not have (1 of 2)", st and st[0] == "done" and
      st[4] == "1", st)
dl = [d for d in wa.call("GET", "/media/activity")["downloads"] if d.get("type") is None or True]
check("the blob was fetched from the media host", any(d.get("status") == 200 for d in dl), dl[-3:])

got = {r[0]: r for r in sql("SELECT id, type, coalesce(text, ''), chat_jid, from_me, coalesce(sender_jid, ''), "
                            "coalesce(reply_to, ''), coalesce(reaction_to, ''), coalesce(reaction, '') "
                            "FROM wa_messages WHERE id LIKE 'HIST%'")}
check("every history message stored once", sorted(got) == sorted(HIST_IDS), sorted(got))
check("a text: its text, chat and sender", got.get("HIST0001", [None] * 9)[1:6] ==
      ["text", "hello from the past", ALICE, "f", ALICE], got.get("HIST0001"))
check("ours: from_me, a reply to the first", got.get("HIST0002", [None] * 9)[4] == "t" and
      got["HIST0002"][6] == "HIST0001", got.get("HIST0002"))
check("a location", got.get("HIST0003", [None] * 9)[1] == "location", got.get("HIST0003"))
check("an image: type image, caption as text", got.get("HIST0004", [None] * 9)[1:3] == ["image", "old photo"],
      got.get("HIST0004"))
media = sql("SELECT state, kind, direct_path, file_length FROM wa_message_media WHERE message_id = 'HIST0004'")
check("... its attachment kept as metadata, pending (not downloaded: the media policy decides)",
      media and media[0][0] in ("pending", "failed", "expired", "stored") and media[0][1] == "image" and
      media[0][2].startswith("/v/t62.7118-24/1_n.enc") and media[0][3] == "1234", media)
check("a reaction", got.get("HIST0005", [None] * 9)[1] == "reaction" and got["HIST0005"][7] == "HIST0002" and
      got["HIST0005"][8] == "👍", got.get("HIST0005"))
check("a group message: the participant is its sender", got.get("HIST0101", [None] * 9)[3:6] ==
      [GROUP, "f", CAROL], got.get("HIST0101"))
check("a poll", got.get("HIST0102", [None] * 9)[1] == "poll", got.get("HIST0102"))
check("the LID chat's message lands in the number's chat (the mapping of the same chunk)",
      got.get("HIST0201", [None] * 9)[3] == BOB_PN, got.get("HIST0201"))

chats = {r[0]: r for r in sql("SELECT jid, coalesce(name, ''), unread_count, archived, "
                              "coalesce(extract(epoch FROM pinned_at)::bigint = " + str(T0) + ", false), "
                              "coalesce(extract(epoch FROM muted_until)::bigint, 0), ephemeral_seconds, "
                              "coalesce(last_message_id, '') FROM wa_chats")}
check("Alice's chat: named, archived, pinned at the time given, its timer, unread count as the latest chunk says (3)",
      chats.get(ALICE, [None] * 8)[1:7] == ["Alice A.", "3", "t", "t", "0", "604800"], chats.get(ALICE))
check("... its last message the latest one", chats.get(ALICE, [None] * 8)[7] == "HIST0006", chats.get(ALICE))
check("the group's chat: named by the conversation, muted until the time given",
      chats.get(GROUP, [None] * 8)[1] == "Old friends" and chats[GROUP][5] == str(T0 + 10 * 86400), chats.get(GROUP))
check("no chat left under Bob's LID; his number's chat exists", BOB_LID not in chats and BOB_PN in chats,
      sorted(chats))
contacts = {r[0]: r for r in sql("SELECT jid, coalesce(lid, ''), coalesce(push_name, '') FROM wa_contacts")}
check("push names stored (Carol, Dave)", contacts.get(CAROL, [None] * 3)[2] == "Carol C." and
      contacts.get("4915100000004@s.whatsapp.net", [None] * 3)[2] == "Dave", contacts)
check("the phone number -> LID mapping stored", contacts.get(BOB_PN, [None] * 3)[1] == BOB_LID, contacts.get(BOB_PN))

ev = {t: int(n) for t, n in sql("SELECT type, count(*) FROM wa_events GROUP BY type")}
check("no message.received for imported messages",
      count("SELECT count(*) FROM wa_events WHERE type = 'message.received' AND data->>'id' LIKE 'HIST%'") == 0, ev)
prog = [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = 'history.progress' ORDER BY id")]
check("one history.progress per chunk, with its counts",
      len(prog) == 2 and prog[0]["sync_type"] == "initial_bootstrap" and prog[0]["messages"] == 8 and
      prog[0]["progress"] == 40 and prog[1]["sync_type"] == "recent" and prog[1]["chunk_order"] == 1 and
      prog[1]["messages"] == 1 and prog[1]["conversations"] == 1, prog)
comp = [json.loads(r[0]) for r in sql("SELECT data::text FROM wa_events WHERE type = 'history.completed'")]
check("history.completed once the phone said 100 % (the RECENT chunk, not the bootstrap at 40 %)",
      len(comp) == 1 and comp[0]["sync_type"] == "recent", comp)

check("webhooks: two history.progress and one history.completed delivered, no message.received",
      wait(lambda: len(rx.of_type("history.progress")) == 2 and len(rx.of_type("history.completed")) == 1,
           timeout=20) and not rx.of_type("message.received"),
      [json.loads(b).get("type") for _, b in rx.received])
check("SSE: the same events on GET /api/events",
      wait(lambda: [e["event"] for e in sse.events if e["event"].startswith("history.")] ==
           ["history.progress", "history.progress", "history.completed"], timeout=10),
      [e["event"] for e in sse.events])

# ---- a notification from anyone but our phone: acknowledged, ignored ----
PEER = "15550009999"  # the fake server's default peer, another account
mark = wa.last_seq()
forged = wa.call("POST", "/phone/history", {"from": str(PEER).split("@")[0], "syncType": "RECENT", "inline": True,
                                            "conversations": [{"id": ALICE, "messages": [
                                                wmi(ALICE, "HISTFORGED", T0 + 60, {"conversation": "forged"})]}]})
check("a history notification from another account: acknowledged",
      forged.get("ok") is True and bool(wait(lambda: [e for e in wa.events(mark, "ack") if e.get("id") == forged["id"]],
                                              timeout=15)), forged)
check("... no job, nothing imported, no receipt", job(forged["id"]) is None and
      count("SELECT count(*) FROM wa_messages WHERE id = 'HISTFORGED'") == 0 and not receipted(forged["id"]))
check("... and said in the log", "a history sync notification not from our phone" in srv.log())

# ---- replay: every chunk again adds no row ----
rows0 = (msg_count(), count("SELECT count(*) FROM wa_chats"), count("SELECT count(*) FROM wa_contacts"),
         count("SELECT count(*) FROM wa_message_media"))
mark = wa.last_seq()
rb = wa.call("POST", "/phone/history", {"syncType": "INITIAL_BOOTSTRAP", "chunkOrder": 0, "progress": 40,
                                        "conversations": BOOT, "pushnames": PUSHNAMES, "lidMappings": MAPPINGS})
rr = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 1, "progress": 100,
                                        "conversations": RECENT})
check("both chunks sent again (new notifications) are imported and receipted",
      bool(wait(lambda: receipted(rb["id"], mark) and receipted(rr["id"], mark), timeout=30)),
      (job(rb["id"]), job(rr["id"])))
rows1 = (msg_count(), count("SELECT count(*) FROM wa_chats"), count("SELECT count(*) FROM wa_contacts"),
         count("SELECT count(*) FROM wa_message_media"))
check("... adding 0 rows (messages, chats, contacts, media)", rows0 == rows1, (rows0, rows1))
check("... each job done with 0 messages stored", job(rb["id"])[4] == "0" and job(rr["id"])[4] == "0",
      (job(rb["id"]), job(rr["id"])))

# ---- a corrupt blob: refused, retried, failed; receipted then ----
mark = wa.last_seq()
bad = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 2, "progress": 100, "corrupt": "zlib",
                                         "conversations": [{"id": ALICE, "messages": [
                                             wmi(ALICE, "HISTBAD1", T0 + 40, {"conversation": "never"})]}]})
check("a chunk whose zlib stream is damaged (sums match): failed after 3 tries, with the reason",
      wait(lambda: (job(bad["id"]) or [""])[0] == "failed", timeout=40) and
      job(bad["id"])[1] == "3" and "unreadable" in job(bad["id"])[2], job(bad["id"]))
check("... receipted once given up", bool(wait(lambda: receipted(bad["id"], mark), timeout=15)))
check("... nothing of it stored", count("SELECT count(*) FROM wa_messages WHERE id = 'HISTBAD1'") == 0)
bad2 = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 3, "progress": 100, "corrupt": "sums",
                                          "conversations": [{"id": ALICE, "messages": [
                                              wmi(ALICE, "HISTBAD2", T0 + 41, {"conversation": "never"})]}]})
check("a blob that is not the one announced (sha256): failed after 3 tries, the reason said",
      wait(lambda: (job(bad2["id"]) or [""])[0] == "failed", timeout=40) and job(bad2["id"])[1] == "3" and
      "not the one" in job(bad2["id"])[2], job(bad2["id"]))
check("the refusals logged", "history: chunk given up" in srv.log())
check("... and counted (wapi_wa_history_refused_total >= 6)", (srv.metric("wapi_wa_history_refused_total") or 0) >= 6,
      srv.metric("wapi_wa_history_refused_total"))

# ---- on demand: older messages of a chat, anchored at its oldest stored one ----
OLDER = [wmi(ALICE, "HISTOLD1", T0 - 100, {"conversation": "older one"}, push="Alice"),
         wmi(ALICE, "HISTOLD2", T0 - 50, {"conversation": "older two"}, from_me=True),
         wmi(ALICE, "HISTNEW9", T0 + 99, {"conversation": "not older than the anchor"}, push="Alice")]
wa.call("POST", "/phone/history/on-demand", {"messages": {ALICE: OLDER}})
mark = wa.last_seq()
st, r = api("POST", "/api/chats/" + ALICE.replace("@", "%40") + "/history", {"count": 10})
check("POST /api/chats/{jid}/history: 202 with the request id, the anchor (the chat's oldest message)",
      st == 202 and r.get("anchor_id") == "HIST0001" and r.get("count") == 10 and r.get("chat_jid") == ALICE and
      r.get("request_id"), (st, r))
rid = (r or {}).get("request_id")
req = wait(lambda: [e for e in wa.events(mark, "phone.history_request") if e.get("requestId") == rid], timeout=15)
check("our phone got HISTORY_SYNC_ON_DEMAND for that chat, anchored at HIST0001 (its key and time in seconds)",
      bool(req) and req[0]["chat"] == ALICE and req[0]["anchor"] == "HIST0001" and req[0]["fromMe"] is False and
      req[0]["count"] == 10 and req[0]["ts"] == T0 + 1, req)
check("its ON_DEMAND answer imported: the two older messages stored",
      wait(lambda: count("SELECT count(*) FROM wa_messages WHERE id IN ('HISTOLD1', 'HISTOLD2')") == 2, timeout=20) and
      count("SELECT count(*) FROM wa_messages WHERE id = 'HISTNEW9'") == 0)
od = sql("SELECT message_id, state, messages FROM wa_history_jobs WHERE request_id = :'p0'", rid or "")
check("... as a job naming the request, done", len(od) == 1 and od[0][1] == "done" and od[0][2] == "2", od)
check("... history.progress and history.completed carry the request id",
      wait(lambda: count("SELECT count(*) FROM wa_events WHERE type IN ('history.progress', 'history.completed') "
                         "AND data->>'request_id' = :'p0'", rid or "") == 2, timeout=10))
check("... and no message.received", count("SELECT count(*) FROM wa_events WHERE type = 'message.received' "
                                           "AND data->>'id' LIKE 'HISTOLD%'") == 0)
sql("INSERT INTO wa_chats (jid) VALUES ('4915100000099@s.whatsapp.net') ON CONFLICT DO NOTHING")
st, r = api("POST", "/api/chats/4915100000099%40s.whatsapp.net/history", {"count": 5})
check("a chat with no stored message: 409 no_anchor", st == 409 and r["error"]["code"] == "no_anchor", (st, r))
st, r = api("POST", "/api/chats/4915100000098%40s.whatsapp.net/history", {"count": 5})
check("an unknown chat: 404", st == 404 and r["error"]["code"] == "not_found", (st, r))
for bad_count in (0, 501, "ten"):
    st, r = api("POST", "/api/chats/" + ALICE.replace("@", "%40") + "/history", {"count": bad_count})
    check(f"count {bad_count!r}: 400 invalid_count naming count", st == 400 and r["error"]["code"] == "invalid_count"
          and r["error"].get("field") == "count", (st, r))
st, r = api("GET", "/api/history")
jobs = (r or {}).get("data", [])
check("GET /api/history lists the chunks, newest first, with their states and counts",
      st == 200 and len(jobs) == count("SELECT count(*) FROM wa_history_jobs") and
      {j["state"] for j in jobs} == {"done", "failed"} and jobs[0]["sync_type"] == "on_demand" and
      jobs[0]["request_id"] == rid and all("media_key" not in j for j in jobs), (st, jobs[:2]))
st, r = api("GET", "/api/history?state=failed")
check("... ?state=failed: the two refused blobs with their errors", st == 200 and len(r["data"]) == 2 and
      all(j["error"] for j in r["data"]), r)
st, r = api("GET", "/api/history?state=bogus")
check("... an unknown state: 400 naming state", st == 400 and r["error"].get("field") == "state", (st, r))

# ---- kill -9 mid-import: resumes at the restart, no duplicates ----
mark = wa.last_seq()
kill_chats, kill_per = 200, 100
big = wa.call("POST", "/phone/history", {"syncType": "FULL", "chunkOrder": 0, "progress": 100,
                                         "bulk": {"chats": kill_chats, "perChat": kill_per, "textBytes": 200,
                                                  "base": 4918000000000}})
check("a FULL chunk of 20,000 messages sent", big.get("ok") is True and big["messages"] == kill_chats * kill_per, big)
# killed inside the chunk's transaction: the runner's connection (application_name wapi-history) has one open
began = wait(lambda: count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wapi-history' "
                           "AND xact_start IS NOT NULL") > 0, timeout=30, step=0.01)
check("supervisor killed with -9 inside the chunk's transaction", began and kill_supervisor(srv))
st_before = job(big["id"])
n_before = count("SELECT count(*) FROM wa_messages WHERE id LIKE 'BULK%'")
check("... nothing of the chunk stored, the job still pending (one transaction)", st_before[0] == "pending" and
      n_before == 0, (st_before, n_before))
if "/san" in BIN:
    # Measured below: ASan's quarantine would hold every freed block (256 MB by default) and be counted.
    srv.env["ASAN_OPTIONS"] = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if x)
srv.start()
check("restarted; the session reconnects", wait(lambda: api("GET", "/api/session")[1].get("state") == "connected",
                                                timeout=30))
check("the job resumed and finished", wait(lambda: (job(big["id"]) or [""])[0] == "done", timeout=120),
      job(big["id"]))
check("... every message once", count("SELECT count(*) FROM wa_messages WHERE id LIKE 'BULK%'") ==
      kill_chats * kill_per and count("SELECT count(DISTINCT id) FROM wa_messages WHERE id LIKE 'BULK%'") ==
      kill_chats * kill_per)
check("... one history.progress for it (the killed run's went with its transaction)",
      count("SELECT count(*) FROM wa_events WHERE type = 'history.progress' AND data->>'id' = :'p0'", big["id"]) == 1)
check("jobs done or failed keep neither the blob's key nor an inline payload",
      count("SELECT count(*) FROM wa_history_jobs WHERE state IN ('done', 'failed') AND "
            "(media_key IS NOT NULL OR inline_payload IS NOT NULL)") == 0 and
      count("SELECT count(*) FROM wa_history_jobs WHERE state IN ('done', 'failed')") >= 8)
check("... receipted once (the fake phone refuses a second)", bool(wait(lambda: receipted(big["id"], mark),
                                                                      timeout=20)) and
      len(receipted(big["id"], mark)) == 1)

# ---- memory: a blob inflating to ~BIG_MB MB ----
def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


sup = srv.proc.pid
base_rss = rss_kb(sup)
per = 250
chats_n = max(1, BIG_MB * 1024 * 1024 // (per * 1100))
mark = wa.last_seq()
t = time.monotonic()
hb = wa.call("POST", "/phone/history", {"syncType": "FULL", "chunkOrder": 1, "progress": 100,
                                        "bulk": {"chats": chats_n, "perChat": per, "textBytes": 1000,
                                                 "base": 4919000000000}}, timeout=120)
peak = base_rss
deadline = time.monotonic() + 600
while time.monotonic() < deadline and (job(hb["id"]) or [""])[0] != "done":
    peak = max(peak, rss_kb(sup))
    time.sleep(0.1)
secs = time.monotonic() - t
peak = max(peak, hwm_kb(sup))  # the kernel's high-water mark since the restart: no sample missed
st = job(hb["id"])
print(f"# history {BIG_MB} MB: inflated {hb.get('inflated', 0) / 1e6:.1f} MB, {hb.get('messages')} messages in "
      f"{secs:.1f} s; supervisor RSS {base_rss / 1024:.1f} MB before, peak {peak / 1024:.1f} MB "
      f"(+{(peak - base_rss) / 1024:.1f} MB)")
check(f"a blob inflating to {hb.get('inflated', 0) / 1e6:.0f} MB imported", st and st[0] == "done" and
      int(st[4]) == hb.get("messages"), st)
check("... the supervisor's RSS grew by less than 64 MB", peak - base_rss < 64 * 1024,
      f"{(peak - base_rss) / 1024:.1f} MB")

check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
# a chunk stored, its download held by the media host when wapi stops
wa.call("POST", "/media/hold", {"on": True, "downloads": True})
mark = wa.last_seq()
held = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 6, "progress": 100,
                                          "conversations": [{"id": ALICE, "messages": [
                                              wmi(ALICE, "HISTOFF2", T0 + 51, {"conversation": "held"})]}]})
check("a chunk stored whose download is held", wait(lambda: (job(held["id"]) or [""])[0] == "pending" and
                                                    wa.call("GET", "/media/held")["held"] >= 1, timeout=20))
srv.stop()
wa.call("POST", "/media/hold", {"on": False, "downloads": True})

# ---- whatsapp.history = off: receipted, nothing imported ----
srv.env["WAPI_WHATSAPP_HISTORY"] = "off"
srv.start()
check("restarted with whatsapp.history=off", wait(lambda: api("GET", "/api/session")[1].get("state") == "connected",
                                                 timeout=30))
check("off: the chunk stored before is skipped, not imported, and receipted",
      wait(lambda: receipted(held["id"], mark), timeout=20) and job(held["id"])[0] == "skipped" and
      count("SELECT count(*) FROM wa_messages WHERE id = 'HISTOFF2'") == 0, job(held["id"]))
mark = wa.last_seq()
n0 = msg_count()
off = wa.call("POST", "/phone/history", {"syncType": "RECENT", "chunkOrder": 5, "progress": 100,
                                         "conversations": [{"id": ALICE, "messages": [
                                             wmi(ALICE, "HISTOFF1", T0 + 50, {"conversation": "not imported"})]}]})
check("off: the chunk is receipted", bool(wait(lambda: receipted(off["id"], mark), timeout=20)), job(off["id"]))
check("... its job skipped, nothing imported", (job(off["id"]) or [""])[0] == "skipped" and msg_count() == n0,
      job(off["id"]))
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
srv.stop()
check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports()[:3])
wa.stop()
done()
