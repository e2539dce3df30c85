#!/usr/bin/env python3
"""Media messages both ways.

Baileys -> wapi: each of the six kinds an unmodified Baileys client sends
(encrypted and uploaded by Baileys to the fake media hosts) is stored with
its message as pending, downloaded by the supervisor's queue, verified and
published into the media store: GET /api/media/{id} returns the very bytes
Baileys sent, with the caption, file name and duration in the message and a
message.media_stored event. A tampered file ends failed, a host answering
500 then 200 is retried, a 410 ends expired, each with message.media_failed
or its state.

wapi -> Baileys: each of the six kinds sent through POST
/api/messages {kind, media: {id}} is encrypted and uploaded to the fake
media hosts (HTTPS under a test CA the server trusts through SSL_CERT_FILE;
the hosts check the token, the auth, the Origin and the body length), and
an unmodified Baileys client downloads it with its own downloadMediaMessage
and gets the very bytes that were uploaded, with the caption, file name,
duration, waveform and picture size. The same file sent again while its
upload is fresh is not uploaded again. A refused upload token is answered
by a new media_conn. Bad requests are refused naming the field, with
nothing queued. kill -9 of the supervisor while an upload is under way,
after the upload is committed but before the stanza, and after the stanza
but before it is recorded sent: the peer gets the message with its bytes
intact, a committed upload is never made again and a resend carries the
same key and link. Real processes, real PostgreSQL, real signals."""
import atexit
import base64
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done, kill_supervisor  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql, wait  # noqa: E402
import mediafiles  # noqa: E402

DB = private_database(f"wapi_it_media_send_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
BPHONE = "15550007777"
BJID = BPHONE + "@s.whatsapp.net"

ca_dir = tempfile.mkdtemp(prefix="wapi-media-ca-")
wa = FakeWA("--media-ca", ca_dir)
atexit.register(wa.stop)
check("the fake server runs the media hosts", wa.media_ca and os.path.exists(wa.media_ca), wa.media_ca)
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca})
# The sanitized build when there is one (make test builds it), so the media
# paths run under ASan/UBSan; WAPI_TEST_BINDIR picks another.
BIN = os.environ.get("WAPI_TEST_BINDIR") or ("build/san" if os.path.exists(os.path.join(
    os.path.dirname(__file__), "../../build/san/wapi")) else "build")
srv = Server(bindir=BIN, workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("session linked by QR", api.link(wa))
peer = BaileysPeer(wa, BPHONE, env={"NODE_EXTRA_CA_CERTS": wa.media_ca})
atexit.register(lambda: peer.p.poll() is None and peer.p.kill())
check("Baileys linked as a companion of another account", peer.ready())


def sql(q):
    """One value, or the rows when there are more."""
    rows = psql(DB, q)
    return rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else rows


def upload(data, ctype, kind=None, name=None):
    q = "?" + "&".join(x for x in [f"kind={kind}" if kind else "", f"file_name={name}" if name else ""] if x)
    st, _, b = srv.request("POST", "/api/media" + (q if len(q) > 1 else ""), body=data,
                           headers={"x-api-key": api.key, "content-type": ctype})
    import json
    return json.loads(b) if st == 201 else None


def uploads():
    return wa.call("GET", "/media/uploads")


def media_line(mid, mark, timeout=30):
    got = wait(lambda: [x for x in peer.lines[mark:] if x.get("media", {}).get("id") == mid or
                        x.get("mediaError", {}).get("id") == mid], timeout)
    return got[0] if got else None


# ---- the six kinds
PNG = mediafiles.png_wh(64, 48)
VOICE = mediafiles.voice(3)
MP4 = mediafiles.mp4(12345)
files = {
    "image": (PNG, "image/png", None, None),
    "video": (MP4, "video/mp4", None, None),
    "audio": (VOICE, "audio/ogg", "audio", None),
    "voice": (VOICE, "audio/ogg; codecs=opus", "voice", None),
    "document": (mediafiles.pdf_pages(3), "application/pdf", None, "invoice.pdf"),
    "sticker": (mediafiles.WEBP512, "image/webp", "sticker", None),
}
stored = {}
for kind, (data, ctype, qk, name) in files.items():
    stored[kind] = upload(data, ctype, qk, name)
check("six files uploaded", all(stored.values()), stored)

JPEG = open(os.path.join(os.path.dirname(__file__), "../fuzz/corpus/fuzz_media_image/small.jpg"), "rb").read()
sent = {}
for kind in files:
    body = {"to": BJID, "kind": kind, "media": {"id": stored[kind]["id"]}}
    if kind in ("image", "video", "document"):
        body["caption"] = f"a {kind} from wapi"
    if kind == "document":
        body["file_name"] = "invoice-2026.pdf"
    if kind == "video":  # a video's thumbnail is the client's
        body["thumbnail"] = base64.b64encode(JPEG).decode()
    mark = len(peer.lines)
    st, js = api("POST", "/api/messages", body)
    ok = st == 202 and js["type"] == kind and js["status"] == "queued" and js["media"] and \
        js["media"]["id"] == stored[kind]["id"] and js["media"]["sha256"] == hashlib.sha256(files[kind][0]).hexdigest() \
        and js["media"]["kind"] == kind and js["media"]["state"] == "stored" and \
        js["media"]["caption"] == body.get("caption")
    check(f"{kind}: 202 with the message and its media", ok, (st, js))
    if st != 202:
        continue
    st2, got = api("GET", f"/api/messages/{js['id']}")

    def unlinked(x):  # the signed link's expiry follows the clock; the send may have gone on meanwhile
        return {**{k: v for k, v in x.items() if k not in ("status", "updated_at")},
                "media": {k: v for k, v in x["media"].items() if k != "url"}}
    check(f"{kind}: the 202 body equals GET's (the signed link aside, the status queued or later)", st2 == 200 and
          unlinked(got) == unlinked(js) and got["status"] in ("queued", "sent", "delivered", "read"), (got, js))
    line = media_line(js["id"], mark)
    m = line.get("media") if line else None
    sent[kind] = (js, m)
    check(f"{kind}: Baileys downloaded it with downloadMediaMessage; the bytes are the uploaded file's",
          m and m["sha256"] == hashlib.sha256(files[kind][0]).hexdigest() and m["size"] == len(files[kind][0]) and
          m["fileLength"] == len(files[kind][0]), line)

check("the fake server saw no protocol violation, and the account's phone decrypted every copy with the "
      "media type its <enc> said", not wa.events(kind="violation") and not wa.events(kind="peer.fail"),
      [e.get("data", e) for e in wa.events(kind="violation") + wa.events(kind="peer.fail")][:3])
want_type = {"image": "imageMessage", "video": "videoMessage", "audio": "audioMessage", "voice": "audioMessage",
             "document": "documentMessage", "sticker": "stickerMessage"}
for kind, (js, m) in sent.items():
    check(f"{kind}: arrives as {want_type[kind]} with its mimetype",
          m and m["type"] == want_type[kind] and m["mimetype"] == stored[kind]["mimetype"], (m, stored[kind]))
if "image" in sent and sent["image"][1]:
    m = sent["image"][1]
    check("image: caption, 64x48, and a JPEG thumbnail", m["caption"] == "a image from wapi" and
          (m["width"], m["height"]) == (64, 48) and m["thumb"] > 100, m)
if "video" in sent and sent["video"][1]:
    m = sent["video"][1]
    check("video: the client's JPEG thumbnail arrives as jpegThumbnail", m["thumb"] == len(JPEG), (m["thumb"], len(JPEG)))
    check("video: caption and 13 seconds (12.345 s rounded up)", m["caption"] == "a video from wapi" and
          m["seconds"] in (12, 13), m)
if "voice" in sent and sent["voice"][1]:
    m = sent["voice"][1]
    wf = base64.b64decode(m["waveform"] or "")
    check("voice: a voice note (ptt) of 3 s with a 64-value waveform", m["ptt"] is True and m["seconds"] == 3 and
          len(wf) == 64 and max(wf) > 0, m)
if "audio" in sent and sent["audio"][1]:
    m = sent["audio"][1]
    check("audio: not a voice note", m["ptt"] is False, m)
if "document" in sent and sent["document"][1]:
    m = sent["document"][1]
    check("document: its file name and caption", m["fileName"] == "invoice-2026.pdf" and
          m["caption"] == "a document from wapi", m)
    check("document: the PDF's 3 pages as pageCount", m["pageCount"] == 3, m)

check("every message is recorded sent", wait(lambda: all(
    api("GET", f"/api/messages/{js['id']}")[1]["status"] in ("sent", "delivered", "read")
    for js, _ in sent.values()), timeout=20))
ups = uploads()
check("one upload per message, nothing refused by the hosts", len(ups) == 6 and wa.call("GET", "/media/violations") == [],
      (len(ups), wa.call("GET", "/media/violations")))
q = sql("SELECT count(*) FROM wa_message_media WHERE media_key IS NOT NULL AND file_enc_sha256 IS NOT NULL "
        "AND direct_path LIKE '/v/%' AND uploaded_at IS NOT NULL")
check("the upload rows are committed: key, sums, link, time", q == "6",
      (q, sql("SELECT kind, direct_path IS NOT NULL, media_key IS NOT NULL, uploaded_at FROM wa_message_media")))

# ---- Baileys -> wapi: the six kinds arrive and are downloaded into the store
ME = wa.phone + "@s.whatsapp.net"
tmpd = tempfile.mkdtemp(prefix="wapi-media-in-")


def bl_send_media(kind, data, **kw):
    path = os.path.join(tmpd, hashlib.sha256(data).hexdigest()[:16])
    with open(path, "wb") as f:
        f.write(data)
    r = peer.result("sent", peer.start(dict(op="sendMedia", to=ME, kind=kind, path=path, **kw)), timeout=60)
    if r and "Media upload failed" in str(r.get("error")):
        # Baileys keeps its media_conn after the hosts' auth was rotated above (401): its next
        # upload takes a fresh one.
        r = peer.result("sent", peer.start(dict(op="sendMedia", to=ME, kind=kind, path=path, **kw)), timeout=60)
    if not r or not r.get("sent"):
        print(f"# Baileys could not send the {kind}: {r}")
    return r.get("sent") if r else None


def settled(mid, timeout=40):
    def get():
        st, m = api("GET", f"/api/messages/{mid}")
        return m if st == 200 and m.get("media") and m["media"]["state"] != "pending" else None
    return wait(get, timeout=timeout)


def temp_files():
    """Temp files of the store: named ones in .tmp/, and the unlinked (O_TMPFILE)
    ones the supervisor still holds open, which a directory listing never shows."""
    tmp = os.path.join(srv.env["WAPI_PATHS_MEDIA"], ".tmp")
    held = []
    for fd in os.listdir(f"/proc/{srv.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{srv.proc.pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tmp + "/"):
            held.append(target)
    return os.listdir(tmp) + held


def media_bytes(media_id):
    st, _, b = srv.request("GET", f"/api/media/{media_id}", headers={"x-api-key": api.key})
    return b if st == 200 else None


PNG_IN = mediafiles.png_wh(50, 20, seed=9)
incoming = {
    "image": (PNG_IN, dict(mimetype="image/png", caption="a picture from Baileys",
                           thumb=base64.b64encode(JPEG).decode())),
    "video": (mediafiles.mp4(2500, mdat=8192), dict(mimetype="video/mp4", caption="a video from Baileys",
                                                    thumb=base64.b64encode(JPEG).decode())),
    "audio": (VOICE, dict(mimetype="audio/ogg; codecs=opus", seconds=3)),
    "voice": (VOICE, dict(mimetype="audio/ogg; codecs=opus", seconds=3,
                          waveform=base64.b64encode(bytes(range(0, 128, 2))).decode())),
    "document": (mediafiles.PDF + b"% from Baileys\n", dict(mimetype="application/pdf", fileName="from-baileys.pdf",
                                                            caption="a document from Baileys")),
    "sticker": (mediafiles.WEBP512, dict(mimetype="image/webp")),
}
for kind, (data, kw) in incoming.items():
    mid = bl_send_media(kind, data, **kw)
    m = settled(mid) if mid else None
    ok = m and m["type"] == kind and not m["from_me"] and m["media"]["kind"] == kind and \
        m["media"]["state"] == "stored" and m["media"]["sha256"] == hashlib.sha256(data).hexdigest() and \
        m["media"]["size"] == len(data) and m["text"] == kw.get("caption") and m["media"]["caption"] == kw.get("caption")
    check(f"Baileys -> wapi {kind}: stored with its message, downloaded, verified", ok, (mid, m))
    if not m or not m["media"]["id"]:
        continue
    got = media_bytes(m["media"]["id"])
    check(f"Baileys -> wapi {kind}: GET /api/media/{{id}} is the file Baileys sent",
          got is not None and hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(),
          len(got or b""))
    link = m["media"].get("url") or ""
    ev_link = sql(f"SELECT data->'media'->>'url' FROM wa_events WHERE type = 'message.media_stored' "
                  f"AND data->>'id' = '{mid}'")
    ok_links = True
    for u in (link, ev_link if isinstance(ev_link, str) else ""):
        path = u[len(srv.env["BETTER_AUTH_URL"]):] if u.startswith(srv.env["BETTER_AUTH_URL"] + "/api/media/") else None
        st_l, _, body_l = srv.request("GET", path) if path else (0, None, b"")
        ok_links = ok_links and st_l == 200 and hashlib.sha256(body_l).hexdigest() == hashlib.sha256(data).hexdigest()
    check(f"Baileys -> wapi {kind}: media.url in the message and in message.media_stored fetches the file "
          "without credentials", ok_links, (link, ev_link))
    if kind == "document":
        check("document: its file name", m["media"]["file_name"] == "from-baileys.pdf", m["media"])
    if kind in ("voice", "audio"):
        check(f"{kind}: 3 seconds", m["media"]["seconds"] == 3, m["media"])
    ev = sql(f"SELECT count(*) FROM wa_events WHERE type = 'message.media_stored' AND data->>'id' = '{mid}' "
             "AND data->'media'->>'state' = 'stored'")
    check(f"{kind}: one message.media_stored event, showing it stored", ev == "1", ev)
if incoming:
    wf = sql("SELECT encode(waveform, 'hex') FROM wa_message_media a JOIN wa_messages m ON m.id = a.message_id "
             "WHERE m.type = 'voice' AND NOT m.from_me")
    check("voice: the waveform Baileys sent is kept", wf == bytes(range(0, 128, 2)).hex(), wf)

# faults on the media hosts; a 410 is answered by our phone (a media retry request): it uploads
# the file again under a new path, or says it cannot
for fault, want_state, what, phone in [({"tamper": True}, "failed", "a tampered file (MAC)", None),
                                       ({"failures": 1}, "stored", "a host answering 500, then 200", None),
                                       ({"status": 410}, "stored", "a 410 answered by the phone's re-upload",
                                        {"answer": "reupload"}),
                                       ({"status": 410}, "expired", "a 410 the phone cannot find",
                                        {"answer": "not-found"}),
                                       ({"status": 410}, "expired", "a 410 the phone no longer has (error 2)",
                                        {"answer": "error", "code": 2})]:
    wa.call("POST", "/media/fault-next", {"fault": fault})
    data = mediafiles.png_wh(30, 30, seed=len(what))
    since = wa.last_seq()
    if phone:  # the plan must be in place before the download is tried
        wa.call("POST", "/media/hold", {"on": True, "downloads": True})
    mark = len(peer.lines)
    mid = bl_send_media("image", data, mimetype="image/png", thumb=base64.b64encode(JPEG).decode())
    if phone:
        sent_line = next((x for x in peer.lines[mark:] if x.get("sent") == mid), {})
        r = wa.call("POST", "/phone/media-retry", dict(phone, id=mid, chat=BJID, mediaKey=sent_line.get("mediaKey"),
                                                       directPath=sent_line.get("directPath")))
        wa.call("POST", "/media/hold", {"on": False, "downloads": True})
    m = settled(mid, timeout=60) if mid else None
    if phone and not m:
        print("\n".join(x for x in srv.log().splitlines() if "media" in x or "phone" in x)[-3000:])
    if phone:
        asked = wa.wait_event("media.retry", since=since, timeout=5)
        d = (asked or {}).get("data", asked or {})
        check(f"{what}: the phone was asked once, with the message's id and chat (checked and opened by the phone "
              "under the media key)", d.get("id") == mid and d.get("chat") == BJID and d.get("known") is True and
              len(wa.events(since, "media.retry")) == 1, (r, asked))
        if want_state == "stored":
            got = media_bytes(m["media"]["id"]) if m and m["media"]["id"] else None
            check(f"{what}: the file from the new path is the one Baileys sent",
                  got is not None and hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), len(got or b""))
            plan = wa.call("GET", "/phone/media-retry")["plans"].get(mid, {})
            path = sql(f"SELECT direct_path FROM wa_message_media WHERE message_id = '{mid}'")
            check(f"{what}: the message now points at the re-uploaded file", plan.get("newPath") and
                  path == plan["newPath"], (plan, path))
        else:
            check(f"{what}: the error says the phone could not provide it",
                  m and "phone" in (m["media"]["error"] or ""), m and m["media"])
    check(f"{what}: the message's media ends {want_state}", m and m["media"]["state"] == want_state and
          (want_state == "stored") == (m["media"]["id"] is not None) and
          (want_state == "stored" or m["media"]["error"]), (mid, m and m["media"]))
    if want_state != "stored":
        ev = sql(f"SELECT count(*) FROM wa_events WHERE type = 'message.media_failed' AND data->>'id' = '{mid}'")
        check(f"{what}: one message.media_failed event", ev == "1", ev)
check("no temp file is left after the downloads: none named in .tmp/, none held open by the supervisor",
      wait(lambda: not temp_files(), timeout=10), temp_files())

# ---- the same file again: the fresh upload is reused (forwarding)
n_up = len(uploads())
mark = len(peer.lines)
st, again = api("POST", "/api/messages", {"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]},
                                          "caption": "the same picture"})
line = media_line(again["id"], mark) if st == 202 else None
check("the same image again: Baileys gets the same bytes", line and line.get("media", {}).get("sha256") ==
      hashlib.sha256(PNG).hexdigest(), line)
check("... and nothing was uploaded again", len(uploads()) == n_up, (n_up, len(uploads())))
q = sql("SELECT count(DISTINCT media_key) || ':' || count(DISTINCT direct_path) || ':' || count(*) "
        f"FROM wa_message_media WHERE media_id = '{stored['image']['id']}'")
check("... it carries the first upload's key and link", q == "1:1:2", q)

# ---- POST /api/messages/{id}/forward of that image: the stored file, its upload reused, marked forwarded
n_up = len(uploads())
mark = len(peer.lines)
st, fw = api("POST", f"/api/messages/{again['id']}/forward", {"to": BJID})
line = media_line(fw.get("id"), mark) if st == 202 else None
rv = wait(lambda: [x["recv"] for x in peer.lines[mark:] if x.get("recv", {}).get("id") == fw.get("id")], timeout=10)
check("forward of a sent image: 202 (type image, forwarded), Baileys gets the same bytes and caption, marked forwarded",
      st == 202 and fw.get("type") == "image" and fw.get("forwarded") is True and line and
      line.get("media", {}).get("sha256") == hashlib.sha256(PNG).hexdigest() and
      line["media"].get("caption") == "the same picture" and rv and rv[0].get("forwarded") is True, (st, fw, line, rv))
check("... and nothing was uploaded again", len(uploads()) == n_up, (n_up, len(uploads())))

# ---- a retry receipt from the peer's phone: the same attachment again, in a new session
if "voice" in sent:
    vid = sent["voice"][0]["id"]
    since = wa.last_seq()
    r = wa.call("POST", "/peer/retry", {"id": vid})
    ev = wa.wait_event("peer.resend", since=since, timeout=20)
    key = sql(f"SELECT encode(media_key, 'hex') || ' ' || direct_path FROM wa_message_media WHERE message_id = '{vid}'")
    d = (ev or {}).get("data", ev or {})
    check("a retry receipt for a voice note is answered with it again (type=media, ptt), the committed key and link",
          r.get("ok") and d.get("mediatype") == "ptt" and f"{d.get('mediaKey')} {d.get('directPath')}" == key,
          (r, ev, key))

# ---- bad requests: a clear error naming the field, nothing queued
before = sql("SELECT count(*) FROM wa_messages")
bad = [
    ({"to": BJID, "kind": "gif", "media": {"id": stored["image"]["id"]}}, "kind", "invalid_kind"),
    ({"to": BJID, "kind": "image"}, "media", "invalid_media"),
    ({"to": BJID, "media": {"id": stored["image"]["id"]}}, "kind", "invalid_kind"),
    ({"to": BJID, "kind": "image", "media": {"id": "m_000000000000000000000000"}}, "media.id", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"id": "../etc"}}, "media.id", "invalid_media"),
    ({"to": BJID, "kind": "voice", "media": {"id": stored["image"]["id"]}}, "media.id", "invalid_media"),
    ({"to": BJID, "kind": "sticker", "media": {"id": stored["image"]["id"]}}, "media.id", "invalid_media"),
    ({"to": BJID, "kind": "sticker", "media": {"id": stored["sticker"]["id"]}, "caption": "x"}, "caption",
     "invalid_caption"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]}, "text": "x"}, "text", "invalid_text"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]}, "caption": ""}, "caption",
     "invalid_caption"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]}, "caption": "x" * 1025}, "caption",
     "invalid_caption"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]}, "file_name": "a.png"}, "file_name",
     "invalid_file_name"),
    ({"to": BJID, "kind": "document", "media": {"id": stored["document"]["id"]}, "file_name": "a\nb"}, "file_name",
     "invalid_file_name"),
    ({"to": BJID, "kind": "image", "media": {"base64": "aGVsbG8*"}}, "media.base64", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"base64": "aGVsbG8"}}, "media.base64", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"base64": ""}}, "media.base64", "empty_file"),
    ({"to": BJID, "kind": "sticker", "media": {"id": stored["sticker"]["id"]},
      "thumbnail": base64.b64encode(JPEG).decode()}, "thumbnail", "invalid_thumbnail"),
    ({"to": BJID, "kind": "video", "media": {"id": stored["video"]["id"]},
      "thumbnail": base64.b64encode(mediafiles.png_wh(8, 8)).decode()}, "thumbnail", "invalid_thumbnail"),
    ({"to": BJID, "kind": "video", "media": {"id": stored["video"]["id"]}, "thumbnail": "not base64!"},
     "thumbnail", "invalid_thumbnail"),
    ({"to": BJID, "thumbnail": base64.b64encode(JPEG).decode(), "text": "hi"}, "thumbnail", "invalid_field"),
    ({"to": BJID, "kind": "image", "media": {"base64": 12}}, "media.base64", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"url": "ftp://example.com/a.png"}}, "media.url", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"url": "https://example.com/a b.png"}}, "media.url", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"], "url": "https://example.com/a.png"}},
     "media", "invalid_media"),
    ({"to": BJID, "kind": "image", "media": {"url": f"http://127.0.0.1:{srv.port}/healthz"}}, "media.url",
     "url_not_allowed"),
    ({"to": BJID, "kind": "image", "media": {"url": "http://10.0.0.1/a.png"}}, "media.url", "url_not_allowed"),
    ({"to": BJID, "kind": "image", "media": "m_1"}, "media", "invalid_media"),
    ({"to": BJID, "text": "hi", "caption": "x"}, "caption", "invalid_field"),
    ({"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]}, "reply_to": "3EB0NOSUCHMESSAGE"},
     "reply_to", "invalid_reply_to"),
]
for body, field, code in bad:
    st, js = api("POST", "/api/messages", body)
    e = (js or {}).get("error", {})
    check(f"400 {code} naming {field}: {str(body)[:90]}", st == 400 and e.get("code") == code and
          e.get("field") == field, (st, js))
check("... nothing was queued", sql("SELECT count(*) FROM wa_messages") == before)

# ---- media {base64}: stored like an upload, then sent
PNG_B64 = mediafiles.png_wh(19, 11, seed=55)
for label, value in [("plain", base64.b64encode(PNG_B64).decode()),
                     ("as a data: URL", "data:image/png;base64," + base64.b64encode(PNG_B64).decode())]:
    mark = len(peer.lines)
    st, mb64 = api("POST", "/api/messages", {"to": BJID, "kind": "image", "caption": "base64",
                                             "media": {"base64": value}})
    line = media_line(mb64["id"], mark) if st == 202 else None
    check(f"media {{base64}} ({label}): 202 with the stored file; Baileys gets its bytes",
          st == 202 and mb64["media"]["sha256"] == hashlib.sha256(PNG_B64).hexdigest() and
          line and line.get("media", {}).get("sha256") == hashlib.sha256(PNG_B64).hexdigest(), (st, mb64, line))
before = sql("SELECT count(*) FROM wa_messages")
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "voice",
                                       "media": {"base64": base64.b64encode(PNG_B64).decode()}})
check("media {base64} of a PNG as a voice note: 400 naming media.base64, nothing queued",
      st == 400 and js["error"]["field"] == "media.base64" and sql("SELECT count(*) FROM wa_messages") == before,
      (st, js))

# ---- idempotency: the same key answers the stored message
body = {"to": BJID, "kind": "document", "media": {"id": stored["document"]["id"]}, "idempotency_key": "doc-1"}
st1, a = api("POST", "/api/messages", body)
st2, b = api("POST", "/api/messages", body)
check("a repeated idempotency key: 202, then 200 with the same message", st1 == 202 and st2 == 200 and
      a["id"] == b["id"] and b["media"]["id"] == stored["document"]["id"], (st1, a, st2, b))

# ---- kill -9 of the supervisor at the worst moments
def restart(what, between=None, **more_env):
    """kill -9 of the supervisor alone (its workers leave by themselves), then
    a new one on the same session and media store, logging in by itself."""
    global srv
    old = srv
    check(f"{what}: the killed supervisor's workers leave by themselves", kill_supervisor(old))
    if between:
        between()
    keep = {k: old.env[k] for k in ("WAPI_PATHS_SESSIONS", "WAPI_PATHS_MEDIA", "SSL_CERT_FILE")}
    srv = Server(bindir=BIN, workers=2, env=dict(env, WAPI_WHATSAPP_AUTOSTART="true", **keep, **more_env)).start(
        wait=False)
    try:
        srv.wait_ready(timeout=60)
    except RuntimeError:
        check(f"{what}: the new supervisor is ready", False, psql(
            DB, "SELECT application_name, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()") + psql(
            DB, "SELECT l.locktype, l.objid, l.mode, l.granted, a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'"))
    api.srv = srv
    check(f"{what}: the new supervisor logs in with the stored session",
          wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", timeout=60))


def locker(sql_text):
    """A psql session holding what sql_text takes, until rollback()."""
    p = subprocess.Popen(["psql", DB, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write("BEGIN; " + sql_text + "; SELECT 'locked';\n")
    p.stdin.flush()
    p.stdout.readline()

    def rollback():
        p.stdin.write("ROLLBACK;\n")
        p.stdin.close()
        p.wait(10)
    return rollback


def copies(mid):
    return [x["media"] for x in peer.lines if x.get("media", {}).get("id") == mid]


def row_of(mid):
    return sql(f"SELECT encode(media_key, 'hex'), direct_path FROM wa_message_media WHERE message_id = '{mid}'")


# (a) while the upload is under way (the host holds its answer)
wa.call("POST", "/media/hold", {"on": True})
PNG_A = mediafiles.png_wh(40, 30, seed=1)
fa = upload(PNG_A, "image/png")
n_up = len(uploads())
st, ma = api("POST", "/api/messages", {"to": BJID, "kind": "image", "media": {"id": fa["id"]}, "caption": "a"})
check("mid-upload: the upload reached the host and waits for its answer",
      st == 202 and wait(lambda: wa.call("GET", "/media/held")["held"] >= 1, timeout=20))
restart("mid-upload", between=lambda: wa.call("POST", "/media/hold", {"on": False}))
got = wait(lambda: copies(ma["id"]), timeout=40)
check("mid-upload: after the restart the peer gets the picture, bytes intact",
      got and all(c["sha256"] == hashlib.sha256(PNG_A).hexdigest() for c in got), got)
check("mid-upload: uploaded again with a new key (the first answer never arrived): two uploads in all",
      len(uploads()) == n_up + 2,
      (n_up, len(uploads())))

# (b) the upload committed, the stanza not yet sent: the read that precedes
# the stanza waits on a lock of wa_media (the commit does not touch it)
wa.call("POST", "/media/hold", {"on": True})
PNG_B = mediafiles.png_wh(40, 30, seed=2)
fb = upload(PNG_B, "image/png")
n_up = len(uploads())
st, mb = api("POST", "/api/messages", {"to": BJID, "kind": "image", "media": {"id": fb["id"]}, "caption": "b"})
held = st == 202 and wait(lambda: wa.call("GET", "/media/held")["held"] >= 1, timeout=20)
rollback = locker("LOCK TABLE wa_media IN ACCESS EXCLUSIVE MODE")
wa.call("POST", "/media/hold", {"on": False})
committed = wait(lambda: row_of(mb["id"]) and row_of(mb["id"])[0] != "", timeout=20)
key_b = row_of(mb["id"])
check("upload committed: the key and link are in the row and no copy went out",
      held and committed and not copies(mb["id"]), (held, key_b, copies(mb["id"])))
restart("upload committed", between=rollback)
got = wait(lambda: copies(mb["id"]), timeout=40)
check("upload committed: after the restart the peer gets the picture, bytes intact",
      got and all(c["sha256"] == hashlib.sha256(PNG_B).hexdigest() for c in got), got)
check("upload committed: no second upload, the same key and link", len(uploads()) == n_up + 1 and
      row_of(mb["id"]) == key_b, (n_up, len(uploads()), row_of(mb["id"]), key_b))

# (c) the stanza sent, its 'sent' not yet recorded (wa_events locked)
PNG_C = mediafiles.png_wh(40, 30, seed=3)
fc = upload(PNG_C, "image/png")
n_up = len(uploads())
rollback = locker("LOCK TABLE wa_events IN EXCLUSIVE MODE")
st, mc = api("POST", "/api/messages", {"to": BJID, "kind": "image", "media": {"id": fc["id"]}, "caption": "c"})
first = wait(lambda: copies(mc["id"]), timeout=30)
key_c = row_of(mc["id"])
unrecorded = sql(f"SELECT state FROM wa_outbox WHERE message_id = '{mc['id']}'")
check("stanza sent: the peer has it, the outbox row is still in flight", st == 202 and first and
      unrecorded == "inflight", (first, unrecorded))
restart("stanza sent", between=rollback)
check("stanza sent: recorded sent after the restart", wait(lambda: sql(
    f"SELECT state FROM wa_outbox WHERE message_id = '{mc['id']}'") == "done", timeout=40))
got = copies(mc["id"])
check("stanza sent: every copy the peer got is the same bytes; no second upload, the same key and link",
      got and all(c["sha256"] == hashlib.sha256(PNG_C).hexdigest() for c in got) and len(uploads()) == n_up + 1 and
      row_of(mc["id"]) == key_c, (got, n_up, len(uploads()), row_of(mc["id"]), key_c))

# (d) a received file mid-download (the host holds its answer)
wa.call("POST", "/media/hold", {"on": True, "downloads": True})
PNG_D = mediafiles.png_wh(33, 22, seed=4)
md = bl_send_media("image", PNG_D, mimetype="image/png", thumb=base64.b64encode(JPEG).decode())
pending = md and wait(lambda: wa.call("GET", "/media/held")["held"] >= 1, timeout=30)
check("mid-download: the message is stored (pending) and its download waits on the host", pending and sql(
    f"SELECT state FROM wa_message_media WHERE message_id = '{md}'") == "pending",
    (md, wa.call("GET", "/media/held"), peer.lines[-2:]))
check("mid-download: the held download's unlinked temp file is what the leak check sees",
      any("#" in f or "deleted" in f for f in temp_files()), temp_files())
restart("mid-download", between=lambda: wa.call("POST", "/media/hold", {"on": False, "downloads": True}))
m = settled(md, timeout=60)
check("mid-download: stored after the restart, the bytes intact", m and m["media"]["state"] == "stored" and
      hashlib.sha256(media_bytes(m["media"]["id"]) or b"").hexdigest() == hashlib.sha256(PNG_D).hexdigest(),
      m and m["media"])
check("mid-download: one media row and one message.media_stored event for it", sql(
    f"SELECT count(*) FROM wa_media WHERE sha256 = '{hashlib.sha256(PNG_D).hexdigest()}'") == "1" and sql(
    f"SELECT count(*) FROM wa_events WHERE type = 'message.media_stored' AND data->>'id' = '{md}'") == "1")
check("no temp file is left: none named in .tmp/, none held open by the supervisor",
      wait(lambda: not temp_files(), timeout=10), temp_files())

# ---- the hosts refuse the token: a new media_conn, then the upload
wa.call("POST", "/media/rotate-auth")
n_up = len(uploads())
doc2 = upload(mediafiles.PDF + b"% another\n", "application/pdf")
mark = len(peer.lines)
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "document", "media": {"id": doc2["id"]}})
line = media_line(js["id"], mark) if st == 202 else None
check("an upload refused for a stale auth is made again with a new media_conn", line and "media" in line and
      len(uploads()) == n_up + 1, (line, n_up, len(uploads())))
v = wa.call("GET", "/media/violations")
check("... the one refusal was the 401 of the old auth", len(v) == 1 and "auth" in str(v[0]).lower(), v)

# ---- a file deleted while a message names it: the delete works, the message keeps its metadata
st, doc3 = api("POST", "/api/messages", {"to": BJID, "kind": "document", "media": {"id": doc2["id"]}})
wait(lambda: api("GET", f"/api/messages/{doc3['id']}")[1]["status"] != "queued", timeout=20)
st, _ = api("DELETE", f"/api/media/{doc2['id']}")
st2, m = api("GET", f"/api/messages/{doc3['id']}")
check("DELETE /api/media of a file messages name: 204; the message keeps kind, size and sha256, its media id is null",
      st == 204 and st2 == 200 and m["media"]["id"] is None and m["media"]["sha256"] ==
      hashlib.sha256(mediafiles.PDF + b"% another\n").hexdigest() and m["media"]["kind"] == "document", (st, m))

# ---- media {url}: fetched by the server (private addresses allowed for this part only)
import http.server  # noqa: E402
import threading  # noqa: E402
PNG_U = mediafiles.png_wh(21, 13, seed=77)


class FileServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/pic.png":
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(PNG_U)))
            self.end_headers()
            self.wfile.write(PNG_U)
        elif self.path == "/tiny.webp":
            w = mediafiles.webp_wh(16, 16)
            self.send_response(200)
            self.send_header("content-length", str(len(w)))
            self.end_headers()
            self.wfile.write(w)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("location", "/pic.png")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *a):
        pass


fs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FileServer)
threading.Thread(target=fs.serve_forever, daemon=True).start()
restart("with private URLs allowed", WAPI_WEBHOOKS_ALLOW_PRIVATE="true")
mark = len(peer.lines)
st, mu = api("POST", "/api/messages", {"to": BJID, "kind": "image", "caption": "from a URL",
                                       "media": {"url": f"http://127.0.0.1:{fs.server_port}/moved"}}, timeout=60)
line = media_line(mu["id"], mark) if st == 202 else None
check("media {url} (through a redirect): 202 with the stored file; Baileys gets its bytes",
      st == 202 and mu["media"]["sha256"] == hashlib.sha256(PNG_U).hexdigest() and mu["media"]["kind"] == "image" and
      line and line.get("media", {}).get("sha256") == hashlib.sha256(PNG_U).hexdigest(), (st, mu, line))
before = sql("SELECT count(*) FROM wa_messages")
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "image",
                                       "media": {"url": f"http://127.0.0.1:{fs.server_port}/gone.png"}}, timeout=60)
check("media {url} answering 404: 502 fetch_failed naming media.url, nothing queued",
      st == 502 and js["error"]["code"] == "fetch_failed" and js["error"]["field"] == "media.url" and
      sql("SELECT count(*) FROM wa_messages") == before, (st, js))
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "voice",
                                       "media": {"url": f"http://127.0.0.1:{fs.server_port}/pic.png"}}, timeout=60)
check("media {url} of a PNG sent as a voice note: 400 invalid_media naming media.url, nothing queued",
      st == 400 and js["error"]["code"] == "invalid_media" and js["error"]["field"] == "media.url" and
      sql("SELECT count(*) FROM wa_messages") == before, (st, js))
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "sticker",
                                       "media": {"url": f"http://127.0.0.1:{fs.server_port}/tiny.webp"}}, timeout=60)
check("media {url} of a 16x16 WebP sent as a sticker: 400 invalid_media naming media.url (stickers are 512x512)",
      st == 400 and js["error"]["code"] == "invalid_media" and js["error"]["field"] == "media.url" and
      sql("SELECT count(*) FROM wa_messages") == before, (st, js))
fs.shutdown()

# ---- the download policy: media.auto_download and media.max_download_bytes; a manual download
restart("with only images downloaded by themselves, up to 4000 bytes", WAPI_MEDIA_AUTO_DOWNLOAD="image",
        WAPI_MEDIA_MAX_DOWNLOAD_BYTES="4000")
st, js = api("POST", "/api/messages/no-such-message/media/download")
check("a manual download of an unknown message: 404 not_found", st == 404 and js["error"]["code"] == "not_found",
      (st, js))
st, js = api("POST", f"/api/messages/{sent['image'][0]['id'] if 'image' in sent else 'x'}/media/download")
check("... of a message we sent (no received file): 404", st == 404, (st, js))
DOC = mediafiles.PDF + b"% skipped by the policy\n"
since_ev = sql("SELECT coalesce(max(id), 0) FROM wa_events")
mid_doc = bl_send_media("document", DOC, mimetype="application/pdf", fileName="later.pdf")
small = mediafiles.png_wh(12, 12, seed=123)
mid_small = bl_send_media("image", small, mimetype="image/png", thumb=base64.b64encode(JPEG).decode())
big = mediafiles.png_wh(300, 300, seed=124)
mid_big = bl_send_media("image", big, mimetype="image/png", thumb=base64.b64encode(JPEG).decode())
m_doc = settled(mid_doc) if mid_doc else None
m_small = settled(mid_small) if mid_small else None
m_big = settled(mid_big) if mid_big else None
check("a document (not in media.auto_download): skipped, with the reason and how to fetch it",
      m_doc and m_doc["media"]["state"] == "skipped" and m_doc["media"]["id"] is None and
      "media.auto_download" in m_doc["media"]["error"] and "/media/download" in m_doc["media"]["error"],
      (mid_doc, api("GET", f"/api/messages/{mid_doc}") if mid_doc else None))
ev_state = sql(f"SELECT data->'media'->>'state' FROM wa_events WHERE type = 'message.received' "
               f"AND data->>'id' = '{mid_doc}' AND id > {since_ev}")
check("... and message.received already says skipped", ev_state == "skipped", ev_state)
check("a small image: downloaded by itself", m_small and m_small["media"]["state"] == "stored", m_small)
check(f"an image of {len(big)} bytes (over media.max_download_bytes): skipped, naming the limit",
      len(big) > 4000 and m_big and m_big["media"]["state"] == "skipped" and
      "media.max_download_bytes" in m_big["media"]["error"], (len(big), m_big))
st, js = api("POST", f"/api/messages/{mid_big}/media/download")
check("a manual download of the one over the limit: 413 too_large, nothing changes",
      st == 413 and js["error"]["code"] == "too_large" and
      api("GET", f"/api/messages/{mid_big}")[1]["media"]["state"] == "skipped", (st, js))
st, js = api("POST", f"/api/messages/{mid_doc}/media/download")
check("a manual download of the skipped document: 202 with the message, media pending",
      st == 202 and js["id"] == mid_doc and js["media"]["state"] == "pending", (st, js))
m_doc = settled(mid_doc) if st == 202 else None
got = media_bytes(m_doc["media"]["id"]) if m_doc and m_doc["media"]["id"] else None
check("... it is downloaded (the supervisor was told at once) and is the file Baileys sent",
      m_doc and m_doc["media"]["state"] == "stored" and got == DOC, m_doc)
ev = sql(f"SELECT count(*) FROM wa_events WHERE type = 'message.media_stored' AND data->>'id' = '{mid_doc}'")
check("... with one message.media_stored event", ev == "1", ev)
st, js = api("POST", f"/api/messages/{mid_doc}/media/download")
check("asked again once stored: 200, nothing to do", st == 200 and js["media"]["state"] == "stored", (st, js))

check("no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports())
peer.quit()
done()
