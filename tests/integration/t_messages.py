#!/usr/bin/env python3
"""Messages over HTTP: POST /api/messages validation (400 naming the field,
nothing stored), the outbox row committed before 202, idempotency (also two
identical requests at once), reading a message, chats and a chat's messages
with stable cursor pagination, the actions that need WhatsApp, and a worker
killed right after it answered 202."""
import atexit
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, check, done, fresh_database  # noqa: E402

DB = fresh_database(f"wapi_it_messages_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB


@atexit.register
def _drop_db():
    """This run's database goes when the run does (concurrent runs never share one)."""
    admin = re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\1postgres", DB)
    subprocess.run(["psql", admin, "-qAtX", "-c", f'DROP DATABASE IF EXISTS "{re.match(r"^postgres(?:ql)?://[^/?]*/([^?]*)", DB).group(1)}" WITH (FORCE)'],
                   capture_output=True)


def sql(q):
    out = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


srv = Server(workers=2)
origin = f"http://127.0.0.1:{srv.port}"
srv.env["BETTER_AUTH_URL"] = origin
srv.start()

st, _, _ = srv.request("POST", "/api/messages", body=b"{}", headers={"content-type": "application/json"})
check("POST /api/messages without credentials is 401", st == 401)

email = f"msg-{random.randrange(10**9)}@example.com"
body = json.dumps({"email": email, "password": "password-123", "name": "Ops"}).encode()
st, h, b = srv.request("POST", "/api/auth/sign-up/email", body=body,
                       headers={"content-type": "application/json", "origin": origin,
                                "x-forwarded-for": f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"})
cookie = h.get("set-cookie", "").split(";")[0]
check("signed up a user", st == 200 and cookie, f"{st} {b[:200]!r}")
st, h, b = srv.request("POST", "/api/auth/api-key/create", body=json.dumps({"name": "messages"}).encode(),
                       headers={"content-type": "application/json", "origin": origin, "cookie": cookie})
key = json.loads(b).get("key") if st == 200 else None
check("created an API key", bool(key), f"{st} {b[:200]!r}")
K = {"x-api-key": key}


def api(method, path, body=None, raw=None, timeout=10):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hh = dict(K)
    if data is not None:
        hh["content-type"] = "application/json"
    st, h, b = srv.request(method, path, body=data, headers=hh, timeout=timeout)
    try:
        js = json.loads(b)
    except ValueError:
        js = None
    return st, js


def counts():
    return sql("SELECT (SELECT count(*) FROM wa_messages) || ',' || (SELECT count(*) FROM wa_outbox)")


# ---- validation: 400 naming the field, nothing stored
before = counts()
bad = [
    ("to", {"text": "hi"}),
    ("to", {"to": 15551234567, "text": "hi"}),
    ("to", {"to": "", "text": "hi"}),
    ("to", {"to": "not a number", "text": "hi"}),
    ("to", {"to": "+1 555", "text": "hi"}),
    ("to", {"to": "+1234567890123456", "text": "hi"}),
    ("to", {"to": "12345-@g.us", "text": "hi"}),
    ("to", {"to": "1203-6300-0000@g.us", "text": "hi"}),
    ("to", {"to": "@g.us", "text": "hi"}),
    ("to", {"to": "12036x3000000000@g.us", "text": "hi"}),
    ("to", {"to": "abc@s.whatsapp.net", "text": "hi"}),
    ("to", {"to": "15551234567@example.com", "text": "hi"}),
    ("text", {"to": "+15551234567"}),
    ("text", {"to": "+15551234567", "text": ""}),
    ("text", {"to": "+15551234567", "text": 5}),
    ("text", {"to": "+15551234567", "text": "x" * 4097}),
    ("text", {"to": "+15551234567", "text": "é" * 4097}),
    ("reply_to", {"to": "+15551234567", "text": "hi", "reply_to": "3EB0NOSUCHMESSAGE00000"}),
    ("reply_to", {"to": "+15551234567", "text": "hi", "reply_to": 12}),
    ("reply_to", {"to": "+15551234567", "text": "hi", "reply_to": "bad id/with slash"}),
    ("idempotency_key", {"to": "+15551234567", "text": "hi", "idempotency_key": "k" * 129}),
    ("idempotency_key", {"to": "+15551234567", "text": "hi", "idempotency_key": ""}),
    ("idempotency_key", {"to": "+15551234567", "text": "hi", "idempotency_key": 7}),
    ("mentions", {"to": "120363000000000001@g.us", "text": "hi", "mentions": "15551234567"}),
    ("mentions", {"to": "120363000000000001@g.us", "text": "hi", "mentions": ["+1 555", "15551234567"]}),
    ("mentions", {"to": "120363000000000001@g.us", "text": "hi", "mentions": ["120363000000000001@g.us"]}),
    ("mentions", {"to": "120363000000000001@g.us", "text": "hi", "mentions": [5]}),
    ("mentions", {"to": "120363000000000001@g.us", "text": "hi", "mentions": ["15551234567"] * 1025}),
]
wrong = []
for field, b in bad:
    st, js = api("POST", "/api/messages", b)
    if not (st == 400 and js and js["error"].get("field") == field):
        wrong.append((field, b if len(json.dumps(b)) < 200 else "(long)", st, js))
check(f"each bad input is a 400 naming its field ({len(bad)} cases)", not wrong, wrong[:3])
for gj in ("120363000000000001@g.us", "15551234567-1600000000@g.us"):
    st, js = api("POST", "/api/messages", {"to": gj, "text": "to a group"})
    check(f"a group JID ({gj}) is a recipient: 202, the group's chat",
          st == 202 and js and js["chat_jid"] == gj and js["mentions"] == [], js)
    mid_ = js["id"] if js else ""
    sql(f"DELETE FROM wa_outbox WHERE message_id = '{mid_}'; DELETE FROM wa_chats WHERE jid = '{gj}'; "
        f"DELETE FROM wa_messages WHERE id = '{mid_}'")
st, js = api("POST", "/api/messages", {"to": "120363000000000001@g.us", "text": "hi @15551234567 @98765",
                                       "mentions": ["+1 555 123 4567", "98765@lid"]})
want_m = ["15551234567@s.whatsapp.net", "98765@lid"]
check("mentions (phone numbers or JIDs) are kept as JIDs: the 202 lists them", st == 202 and js and
      js["mentions"] == want_m, js)
mid_m = js["id"] if js else ""
st2, js2 = api("GET", f"/api/messages/{mid_m}")
check("GET shows the same mentions", st2 == 200 and js2["mentions"] == want_m, js2)
check("and the row holds them", sql(f"SELECT array_to_string(mentions, ',') FROM wa_messages WHERE id = '{mid_m}'")
      == ",".join(want_m), sql(f"SELECT mentions FROM wa_messages WHERE id = '{mid_m}'"))
sql(f"DELETE FROM wa_outbox WHERE message_id = '{mid_m}'; DELETE FROM wa_chats WHERE jid = '120363000000000001@g.us'; "
    f"DELETE FROM wa_messages WHERE id = '{mid_m}'")
# status updates (status@broadcast) have a chat of their own, left out of the chat list unless asked for
sql("INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, text, status, ts) VALUES "
    "('STATUS0001', 'status@broadcast', '15550009999@s.whatsapp.net', false, 'text', 'my status', 'received', now()); "
    "INSERT INTO wa_chats (jid, last_message_id, last_message_at) VALUES ('status@broadcast', 'STATUS0001', now())")
st, js = api("GET", "/api/chats?limit=100")
check("GET /api/chats leaves status@broadcast out", st == 200 and all(c["jid"] != "status@broadcast" for c in js["data"]),
      js)
st, js = api("GET", "/api/chats?limit=100&include=status")
check("?include=status lists it", st == 200 and any(c["jid"] == "status@broadcast" for c in js["data"]), js)
st, js = api("GET", "/api/chats?include=everything")
check("?include=<other> is a 400 naming include", st == 400 and js["error"]["field"] == "include", js)
sql("DELETE FROM wa_chats WHERE jid = 'status@broadcast'; DELETE FROM wa_messages WHERE id = 'STATUS0001'")
st, js = api("POST", "/api/messages", raw=b"{not json")
check("malformed JSON is a 400", st == 400 and js and js["error"]["code"] == "invalid_json", js)
st, js = api("POST", "/api/messages", raw=b"[1,2]")
check("a non-object body is a 400", st == 400, js)
st, js = api("POST", "/api/messages", raw=json.dumps({"to": "+15551234567", "text": "a" * 70000}).encode())
check("a body over 64 KiB is a 413", st == 413, js)
st, js = api("POST", "/api/messages", raw=b'{"to":"+15551234567","text":"a\\u0000b"}')
check("a NUL in text is a 400", st == 400, js)
check("nothing was stored by the bad requests", counts() == before, f"{before} -> {counts()}")

# ---- a good send: 202 after commit
# The outbox table is locked by another session while the request is made:
# the worker's commit cannot happen, so no answer may come until the lock
# goes; then the 202 and the committed rows.
locker = subprocess.Popen(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
locker.stdin.write("BEGIN; LOCK TABLE wa_outbox IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
locker.stdin.flush()
check("another session holds a lock on the outbox table", locker.stdout.readline().strip() == "locked")
answer = {}
sender = threading.Thread(target=lambda: answer.update(r=api("POST", "/api/messages",
                                                             {"to": "+1 555-123-4567", "text": "hello ✓"})))
sender.start()
sender.join(1.5)
check("while the commit cannot happen, no answer comes", sender.is_alive() and not answer, answer)
locker.stdin.write("COMMIT;\n")
locker.stdin.close()
locker.wait(10)
sender.join(10)
st, js = answer.get("r", (None, None))
ok = st == 202 and js and re.fullmatch(r"3EB0[0-9A-F]{18}", js.get("id", "")) and js["status"] == "queued"
check("POST /api/messages is 202 {id: 3EB0 + 18 hex, status: queued} once it can commit", ok, f"{st} {js}")
mid = js["id"] if ok else ""
row = sql(f"SELECT m.chat_jid, m.from_me, m.type, m.status, m.text, o.to_jid, o.state FROM wa_messages m "
          f"JOIN wa_outbox o ON o.message_id = m.id WHERE m.id = '{mid}'")
check("the message and its outbox row are committed when 202 arrives",
      row == "15551234567@s.whatsapp.net|t|text|queued|hello ✓|15551234567@s.whatsapp.net|pending", row)
check("202 shape: chat_jid, from_me, type, text, ts in RFC 3339 UTC",
      js and js["chat_jid"] == "15551234567@s.whatsapp.net" and js["from_me"] is True and js["type"] == "text"
      and js["text"] == "hello ✓" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", js["ts"] or ""), js)
st_get, got = api("GET", f"/api/messages/{mid}")
check("the 202 body is the message as GET /api/messages/{id} shows it, field by field",
      st_get == 200 and js and got == js and len(got) >= 19,
      {k: (js.get(k), (got or {}).get(k)) for k in set(js or {}) | set(got or {}) if (js or {}).get(k) != (got or {}).get(k)})

# JIDs as they are; a LID; 4096 characters that are not ASCII.
st1, j1 = api("POST", "/api/messages", {"to": "447700900123@s.whatsapp.net", "text": "jid"})
st2, j2 = api("POST", "/api/messages", {"to": "123456789012345@lid", "text": "lid"})
st3, j3 = api("POST", "/api/messages", {"to": "+447700900123", "text": "é" * 4096, "reply_to": j1["id"]})
check("JIDs (s.whatsapp.net, lid), 4096 characters and a reply are accepted",
      st1 == 202 and st2 == 202 and st3 == 202 and j2["chat_jid"] == "123456789012345@lid"
      and j3["reply_to"] == j1["id"] and j3["chat_jid"] == "447700900123@s.whatsapp.net", (st1, st2, st3, j3))

# Concurrent sends are committed in batches (one transaction for many): each
# answer comes only once its own row is committed, and two requests with one
# idempotency key inside a batch still make one message.
def post_and_look(i):
    body = {"to": "+15550000001", "text": f"batch {i}"}
    if i % 10 == 0:
        body["idempotency_key"] = f"batch-key-{i // 20}"
    st, js = api("POST", "/api/messages", body)
    mid = js.get("id", "") if isinstance(js, dict) else ""
    seen = sql(f"SELECT count(*) FROM wa_outbox o JOIN wa_messages m ON m.id = o.message_id WHERE o.message_id = '{mid}'") \
        if re.fullmatch(r"3EB0[0-9A-F]{18}", mid) else "-"
    return i, st, mid, seen


batch_res = []
batch_threads = [threading.Thread(target=lambda k=k: batch_res.extend(post_and_look(i) for i in range(k, 240, 24)))
                 for k in range(24)]
for t in batch_threads:
    t.start()
for t in batch_threads:
    t.join()
check("240 concurrent sends: every one answered 202 (or 200 for a repeated key)",
      len(batch_res) == 240 and all(st in (200, 202) for _, st, _, _ in batch_res),
      [r for r in batch_res if r[1] not in (200, 202)][:3])
check("each answer came after its message and outbox row were committed",
      all(seen == "1" for _, _, _, seen in batch_res), [r for r in batch_res if r[3] != "1"][:3])
by_key = {}
for i, st, mid, _ in batch_res:
    if i % 10 == 0:
        by_key.setdefault(i // 20, set()).add(mid)
check("requests sharing a key got one message", by_key and all(len(v) == 1 for v in by_key.values()), by_key)
n = sql("SELECT count(*) FROM wa_messages WHERE text LIKE 'batch %'")
check("and the rows are exactly the distinct messages", n == str(len({mid for _, _, mid, _ in batch_res})), n)

# ---- idempotency
st1, a = api("POST", "/api/messages", {"to": "+15551234567", "text": "once", "idempotency_key": "order-1"})
st2, b2 = api("POST", "/api/messages", {"to": "+15551234567", "text": "once", "idempotency_key": "order-1"})
check("the same idempotency key returns the same message (202 then 200)",
      st1 == 202 and st2 == 200 and a["id"] == b2["id"] and b2["idempotency_key"] == "order-1", (st1, st2, a, b2))
n = sql("SELECT count(*) FROM wa_messages WHERE idempotency_key = 'order-1'")
check("and stores it once", n == "1", n)
st3, g = api("GET", f"/api/messages/{a['id']}")
check("the replay's 200 body is the stored message exactly as GET shows it", st3 == 200 and b2 == g, (b2, g))

races = []
for k in range(10):
    res = [None] * 8
    key_k = f"race-{k}-{random.randrange(10**9)}"

    def go(i, key_k=key_k, res=res):
        res[i] = api("POST", "/api/messages", {"to": "+15551234567", "text": "race", "idempotency_key": key_k})

    ts = [threading.Thread(target=go, args=(i,)) for i in range(len(res))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ids = {r[1]["id"] for r in res if r and r[1] and "id" in r[1]}
    sts = sorted(r[0] for r in res)
    stored = sql(f"SELECT count(*) FROM wa_messages WHERE idempotency_key = '{key_k}'")
    outbox = sql(f"SELECT count(*) FROM wa_outbox o JOIN wa_messages m ON m.id = o.message_id "
                 f"WHERE m.idempotency_key = '{key_k}'")
    if not (len(ids) == 1 and sts.count(202) == 1 and sts.count(200) == 7 and stored == "1" and outbox == "1"):
        races.append((sts, ids, stored, outbox))
check("8 identical concurrent requests, 10 times: one message, one 202, seven 200s", not races, races[:2])

# ---- reading
st, js = api("GET", f"/api/messages/{mid}")
check("GET /api/messages/{id}", st == 200 and js["id"] == mid and js["status"] == "queued", js)
st, js = api("GET", "/api/messages/3EB0000000000000000000")
check("an unknown message id is 404", st == 404, js)
st, js = api("GET", "/api/messages/" + "x" * 300)
check("an over-long message id is 404, not an error", st == 404, js)

chat = "15557770000@s.whatsapp.net"
sent = []
for i in range(23):
    st, js = api("POST", "/api/messages", {"to": "+15557770000", "text": f"m{i}"})
    sent.append(js["id"])
pages, cursor, extra = [], None, 0
while True:
    q = f"/api/chats/{chat}/messages?limit=5" + (f"&cursor={cursor}" if cursor else "")
    st, js = api("GET", q)
    if st != 200:
        pages.append(("error", st, js))
        break
    pages.append([m["id"] for m in js["data"]])
    if len(pages) == 2:  # new messages while paging must not shift the pages
        for i in range(3):
            api("POST", "/api/messages", {"to": "+15557770000", "text": f"late{i}"})
            extra += 1
    cursor = js["next_cursor"]
    if not cursor:
        break
flat = [i for p in pages if isinstance(p, list) for i in p]
check("a chat's messages page newest first, 5 at a time, without gaps or repeats while new ones arrive",
      flat == list(reversed(sent)) and [len(p) for p in pages] == [5, 5, 5, 5, 3], [len(p) for p in pages])
st, js = api("GET", f"/api/chats/{chat}/messages")
check("default limit 50; the newest first includes the late ones", st == 200 and len(js["data"]) == 26
      and js["next_cursor"] is None and js["data"][0]["text"] == "late2", (st, len(js.get("data", []))))
for q, field in (("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("cursor=%%%", "cursor"),
                 ("cursor=Zm9v", "cursor"), ("cursor=MTIzAA", "cursor"), ("cursor=A", "cursor"),
                 ("cursor=MTI+", "cursor"), ("cursor=LTE", "cursor")):
    st, js = api("GET", f"/api/chats/{chat}/messages?{q}")
    check(f"?{q} is a 400 naming {field}", st == 400 and js["error"]["field"] == field, js)
st, js = api("GET", "/api/chats/not-a-jid/messages")
check("a malformed chat JID is 404", st == 404, js)
st, js = api("GET", "/api/chats/15550009999@s.whatsapp.net/messages")
check("a chat with no messages is an empty page", st == 200 and js == {"data": [], "next_cursor": None}, js)

st, js = api("GET", "/api/chats?limit=200")
chats = {c["jid"]: c for c in js["data"]} if st == 200 else {}
c = chats.get(chat, {})
check("GET /api/chats lists chats with their last message and unread count",
      st == 200 and c.get("last_message", {}).get("text") == "late2" and c.get("unread_count") == 0
      and js["data"][0]["jid"] == chat, c)
jids, cursor = [], None
while True:
    st, js = api("GET", "/api/chats?limit=2" + (f"&cursor={cursor}" if cursor else ""))
    if st != 200:
        break
    jids += [x["jid"] for x in js["data"]]
    cursor = js["next_cursor"]
    if not cursor:
        break
check("chats paginate 2 at a time, each once", jids == [x["jid"] for x in
                                                        api("GET", "/api/chats?limit=200")[1]["data"]]
      and len(jids) == len(set(jids)) >= 5, jids)

# ---- actions that need the WhatsApp connection
st, js = api("POST", f"/api/messages/{mid}/read")
check("POST /api/messages/{id}/read of a message we sent is 409 own_message",
      st == 409 and js["error"]["code"] == "own_message", js)
st, js = api("POST", f"/api/chats/{chat}/presence", {"state": "dancing"})
check("presence with a bad state is a 400 naming state", st == 400 and js["error"]["field"] == "state", js)
st, js = api("POST", f"/api/chats/{chat}/presence", {"state": "typing"})
check("presence without a connection is 409 not_connected", st == 409 and js["error"]["code"] == "not_connected", js)
st, js = api("POST", "/api/contacts/check", {"phones": ["+15551234567", "nope"]})
check("contacts/check with a bad phone is a 400 naming phones", st == 400 and js["error"]["field"] == "phones", js)
st, js = api("POST", "/api/contacts/check", {"phones": ["+15551234567"]})
check("contacts/check without a connection is 409 not_connected",
      st == 409 and js["error"]["code"] == "not_connected", js)
st, js = api("GET", f"/api/messages/{mid}/read")
check("GET on an action is 405", st == 405, js)

# ---- durability: kill -9 the worker that answered 202, right after it did
workers = srv.worker_pids()
lost = []
for i in range(5):
    # Kill only workers past the supervisor's young-crash window (5 s), so each
    # respawn is immediate: this checks durability, not crash-loop backoff.
    srv.wait_for(lambda: len([w for w in srv.status().get("workers", [])
                              if w["state"] == "ready" and w["uptime_s"] >= 5.2]) == 2, timeout=30, step=0.1)
    k = f"kill-{i}-{random.randrange(10**9)}"
    st, js = api("POST", "/api/messages", {"to": "+15551112222", "text": f"kill {i}", "idempotency_key": k})
    for pid in srv.worker_pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    row = sql(f"SELECT m.status || '/' || o.state FROM wa_messages m JOIN wa_outbox o ON o.message_id = m.id "
              f"WHERE m.id = '{js['id'] if js else ''}'")
    if st != 202 or row != "queued/pending":
        lost.append((st, row))
    srv.wait_for(lambda: len(srv.worker_pids("ready")) == 2, timeout=15)
check("kill -9 of every worker right after each 202: each message is there with its outbox row", not lost, lost)
srv.wait_ready(timeout=30)
st, js = api("GET", f"/api/messages/{mid}")
check("the respawned workers answer", st == 200, js)

srv.stop()
check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports()[:3])
done()
