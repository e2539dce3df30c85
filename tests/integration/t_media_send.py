#!/usr/bin/env python3
"""wapi -> Baileys, media: each of the six kinds sent through POST
/api/messages {kind, media: {id}} is encrypted and uploaded to the fake
media hosts (HTTPS under a test CA the server trusts through SSL_CERT_FILE;
the hosts check the token, the auth, the Origin and the body length), and
an unmodified Baileys client downloads it with its own downloadMediaMessage
and gets the very bytes that were uploaded, with the caption, file name,
duration, waveform and picture size. The same file sent again while its
upload is fresh is not uploaded again. A refused upload token is answered
by a new media_conn. Bad requests are refused naming the field, with
nothing queued. Real processes, real PostgreSQL."""
import base64
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done  # noqa: E402
from linked import Api, BaileysPeer, private_database, psql, wait  # noqa: E402
import mediafiles  # noqa: E402

DB = private_database(f"wapi_it_media_send_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
BPHONE = "15550007777"
BJID = BPHONE + "@s.whatsapp.net"

ca_dir = tempfile.mkdtemp(prefix="wapi-media-ca-")
wa = FakeWA("--media-ca", ca_dir)
check("the fake server runs the media hosts", wa.media_ca and os.path.exists(wa.media_ca), wa.media_ca)
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca})
srv = Server(workers=2, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("session linked by QR", api.link(wa))
peer = BaileysPeer(wa, BPHONE, env={"NODE_EXTRA_CA_CERTS": wa.media_ca})
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
    "document": (mediafiles.PDF, "application/pdf", None, "invoice.pdf"),
    "sticker": (mediafiles.WEBP512, "image/webp", "sticker", None),
}
stored = {}
for kind, (data, ctype, qk, name) in files.items():
    stored[kind] = upload(data, ctype, qk, name)
check("six files uploaded", all(stored.values()), stored)

sent = {}
for kind in files:
    body = {"to": BJID, "kind": kind, "media": {"id": stored[kind]["id"]}}
    if kind in ("image", "video", "document"):
        body["caption"] = f"a {kind} from wapi"
    if kind == "document":
        body["file_name"] = "invoice-2026.pdf"
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
    check(f"{kind}: the 202 body equals GET's", st2 == 200 and got == js, (got, js))
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

# ---- the same file again: the fresh upload is reused (forwarding)
mark = len(peer.lines)
st, again = api("POST", "/api/messages", {"to": BJID, "kind": "image", "media": {"id": stored["image"]["id"]},
                                          "caption": "the same picture"})
line = media_line(again["id"], mark) if st == 202 else None
check("the same image again: Baileys gets the same bytes", line and line.get("media", {}).get("sha256") ==
      hashlib.sha256(PNG).hexdigest(), line)
check("... and nothing was uploaded again", len(uploads()) == 6, len(uploads()))
q = sql("SELECT count(DISTINCT media_key) || ':' || count(DISTINCT direct_path) || ':' || count(*) "
        f"FROM wa_message_media WHERE media_id = '{stored['image']['id']}'")
check("... it carries the first upload's key and link", q == "1:1:2", q)

# ---- the hosts refuse the token: a new media_conn, then the upload
wa.call("POST", "/media/rotate-auth")
doc2 = upload(mediafiles.PDF + b"% another\n", "application/pdf")
mark = len(peer.lines)
st, js = api("POST", "/api/messages", {"to": BJID, "kind": "document", "media": {"id": doc2["id"]}})
line = media_line(js["id"], mark) if st == 202 else None
check("an upload refused for a stale auth is made again with a new media_conn", line and "media" in line and
      len(uploads()) == 7, (line, len(uploads())))
v = wa.call("GET", "/media/violations")
check("... the one refusal was the 401 of the old auth", len(v) == 1 and "auth" in str(v[0]).lower(), v)

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
    ({"to": BJID, "kind": "image", "media": {"url": "https://example.com/a.png"}}, "media.url",
     "unsupported_media_source"),
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

# ---- idempotency: the same key answers the stored message
body = {"to": BJID, "kind": "document", "media": {"id": stored["document"]["id"]}, "idempotency_key": "doc-1"}
st1, a = api("POST", "/api/messages", body)
st2, b = api("POST", "/api/messages", body)
check("a repeated idempotency key: 202, then 200 with the same message", st1 == 202 and st2 == 200 and
      a["id"] == b["id"] and b["media"]["id"] == stored["document"]["id"], (st1, a, st2, b))

peer.quit()
done()
