#!/usr/bin/env python3
"""The media store and /api/media: uploads (raw and multipart) published by
the supervisor only once hashed and type-checked (libmagic), one file per
content, downloads from descriptors with ETag/304, Range (206/416) and a
safe Content-Disposition, signed links checked against an HMAC computed
here from the key in PostgreSQL, roles, the upload limit (413, also before
the body is sent), the quota (507 and its metric), a worker killed with
SIGKILL mid-upload (half a body; and while it writes the temp file the
supervisor gave it), temp files left by a crash removed at start, deletion,
retention and the sweep. Real processes, real PostgreSQL, real signals."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from accounts import Client, sign_up  # noqa: E402
from harness import Server, check, done, fresh_database, socket_owner_pid, wait  # noqa: E402

DB = fresh_database("wapi_it_media")
MiB = 1 << 20


def sql(q):
    out = subprocess.run(["psql", DB, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", q], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


# ---- files whose type libmagic knows, made here

def png(seed=0):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"\x00" + bytes([seed & 255, 0x80, 0x40])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"tEXt", b"seed\x00" + str(seed).encode()) +
            chunk(b"IEND", b""))


def ogg(payload):
    return (b"OggS" + bytes([0, 2]) + b"\0" * 8 + b"\1\0\0\0" + b"\0" * 8 + bytes([1, len(payload)]) + payload +
            b"\0" * 64)


OPUS = ogg(b"OpusHead" + bytes([1, 1, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0]))
VORBIS = ogg(b"\x01vorbis" + b"\0" * 23)
WEBP = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f" + b"\0" * 13
# The same lossless header saying 512x512 (14-bit width-1 and height-1), as stickers must be.
WEBP512 = (b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f" +
           struct.pack("<I", 511 | 511 << 14) + b"\0" * 9)
TEXT = b"hello; this is plain text and nothing else\n" * 3
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def sha(b):
    return hashlib.sha256(b).hexdigest()


# The sanitizer build when there is one (make test builds both).
BIN = os.environ.get("WAPI_TEST_BINDIR") or (
    "build/san" if os.path.exists(os.path.join(os.path.dirname(__file__), "../../build/san/wapi")) else "build")
srv = Server(bindir=BIN, workers=2, pg_url=DB)
MEDIA = os.path.join(srv.dir, "media")
ORIGIN = f"http://127.0.0.1:{srv.port}"
srv.env["BETTER_AUTH_URL"] = ORIGIN
srv.start()


def store_files():
    """{sha256: size} of the files under the store's shard folders."""
    out = {}
    for root, dirs, files in os.walk(MEDIA):
        if os.path.relpath(root, MEDIA).startswith(".tmp"):
            continue
        for f in files:
            if re.fullmatch(r"[0-9a-f]{64}", f):
                out[f] = os.path.getsize(os.path.join(root, f))
    return out


def tmp_entries():
    d = os.path.join(MEDIA, ".tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def fingerprint():
    return (sql("SELECT count(*) || ':' || coalesce(string_agg(id, ',' ORDER BY id), '') FROM wa_media"),
            sorted(store_files()), tmp_entries())


admin = Client(srv)
st, _, js = sign_up(admin, "ann@example.com", name="Ann")
check("the first account is the admin", st == 200 and js["user"]["role"] == "admin", js)
_, _, js = admin.call("POST", "/api/auth/api-key/create", {"name": "media"})
KEY = js["key"]
K = {"x-api-key": KEY}


def invited(role, email):
    _, _, inv = admin.call("POST", "/api/invitations", {"role": role})
    c = Client(srv)
    st, _, js = sign_up(c, email, name=role, invitation=inv["token"])
    return c if st == 200 else None


member = invited("member", "mia@example.com")
viewer = invited("viewer", "vic@example.com")
check("a member and a viewer signed up by invitation", member and viewer)


def cookie_of(c):
    return {"cookie": "; ".join(f"{k}={v}" for k, v in c.cookies.items()), "origin": ORIGIN}


def upload(data, ctype="application/octet-stream", query="", headers=None, timeout=30):
    h = dict(K)
    if ctype is not None:
        h["content-type"] = ctype
    h.update(headers or {})
    st, hd, b = srv.request("POST", "/api/media" + query, body=data, headers=h, timeout=timeout)
    try:
        js = json.loads(b)
    except ValueError:
        js = None
    return st, hd, js


def multipart(fields, boundary="----wapi-test-boundary-7MA4YWxkTrZu0gW"):
    out = b""
    for name, value, filename, ctype in fields:
        out += f"--{boundary}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += disp.encode() + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def get(path, headers=None, creds=True):
    h = dict(K) if creds else {}
    h.update(headers or {})
    return srv.request("GET", path, headers=h, timeout=30)


def getj(path, headers=None, creds=True):
    st, hd, b = get(path, headers, creds)
    try:
        return st, hd, json.loads(b)
    except ValueError:
        return st, hd, None


def err(js):
    return (js or {}).get("error") or {}


# ---- access
st, _, _ = srv.request("POST", "/api/media", body=png(), headers={"content-type": "image/png"})
check("POST /api/media without credentials: 401", st == 401, st)
before = fingerprint()
st, _, js = viewer.call("POST", "/api/media", raw=png(), headers={"content-type": "image/png"})
check("a viewer cannot upload: 403 naming media:write, and nothing is stored",
      st == 403 and "media:write" in err(js).get("message", "") and fingerprint() == before, (st, js))

# ---- a raw upload
P1 = png(1)
st, hd, m1 = upload(P1, "image/png", "?file_name=photo.png")
check("raw upload: 201 {id, sha256, mimetype, size, kind, file_name, state, created_at}",
      st == 201 and re.fullmatch(r"m_[0-9a-f]{24}", m1["id"]) and m1["sha256"] == sha(P1) and
      m1["mimetype"] == "image/png" and m1["size"] == len(P1) and m1["kind"] == "image" and
      m1["file_name"] == "photo.png" and m1["state"] == "stored" and m1["created_at"].endswith("Z"), (st, m1))
rel = f"{m1['sha256'][:2]}/{m1['sha256'][2:4]}/{m1['sha256']}"
path1 = os.path.join(MEDIA, rel)
check("the file is in the store under ab/cd/<sha256 of its bytes>, byte for byte",
      os.path.isfile(path1) and open(path1, "rb").read() == P1, rel)
check("the row was written by the supervisor (its log names it) and the store is in step",
      any(ln.get("msg") == "media stored" and ln.get("id") == m1["id"] and ln.get("proc") == "supervisor"
          for ln in srv.log_lines()) and store_files() == {m1["sha256"]: len(P1)})

# ---- the same content again, as multipart: a second row, one file
body, ctype = multipart([("file", P1, "again.png", "image/png"), ("kind", b"image", None, None)])
st, _, m2 = upload(body, ctype)
check("multipart upload (file, kind): 201, a new id, the same sha256, the part's file name",
      st == 201 and m2["id"] != m1["id"] and m2["sha256"] == m1["sha256"] and m2["file_name"] == "again.png" and
      m2["kind"] == "image", (st, m2))
check("the same content twice: two rows, one file on disk",
      sql(f"SELECT count(*) FROM wa_media WHERE sha256 = '{m1['sha256']}'") == "2" and
      list(store_files()) == [m1["sha256"]], store_files())

# ---- downloads
st, hd, b = get(f"/api/media/{m1['id']}")
check("GET /api/media/{id}: the bytes (SHA-256 equal to the upload's)", st == 200 and sha(b) == m1["sha256"], st)
check("... with Content-Type, Content-Length, ETag (the sha256), Accept-Ranges, Cache-Control private, immutable",
      hd.get("content-type") == "image/png" and hd.get("content-length") == str(len(P1)) and
      hd.get("etag") == f'"{m1["sha256"]}"' and hd.get("accept-ranges") == "bytes" and
      hd.get("cache-control") == "private, immutable", hd)
check("... an image is shown inline, under its file name",
      hd.get("content-disposition") == "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png", hd)
st, hd, b = srv.request("HEAD", f"/api/media/{m1['id']}", headers=K)
check("HEAD: the same headers, no body", st == 200 and hd.get("content-length") == str(len(P1)) and b == b"", st)
st, hd, b = get(f"/api/media/{m1['id']}", {"if-none-match": f'"{m1["sha256"]}"'})
check("If-None-Match with the ETag: 304, no body, the ETag again", st == 304 and b == b"" and
      hd.get("etag") == f'"{m1["sha256"]}"', (st, hd))
st, _, _ = get(f"/api/media/{m1['id']}", {"if-none-match": f'"x", W/"{m1["sha256"]}"'})
check("... also in a list, weakly compared", st == 304, st)
st, _, b = get(f"/api/media/{m1['id']}", {"if-none-match": '"something-else"'})
check("... another ETag: 200 with the bytes", st == 200 and b == P1, st)

# Range, on a larger file
BIG = b"%PDF-1.4\n" + os.urandom(200000) + b"\n%%EOF\n"
st, _, mb = upload(BIG, "application/pdf", "?file_name=report.pdf")
check("a PDF upload: kind document inferred", st == 201 and mb["kind"] == "document" and
      mb["mimetype"] == "application/pdf", (st, mb))
u = f"/api/media/{mb['id']}"
st, hd, b = get(u, {"range": "bytes=0-99"})
check("Range bytes=0-99: 206, Content-Range, the first 100 bytes",
      st == 206 and b == BIG[:100] and hd.get("content-range") == f"bytes 0-99/{len(BIG)}" and
      hd.get("content-length") == "100", (st, hd.get("content-range")))
st, hd, b = get(u, {"range": "bytes=-64"})
check("Range bytes=-64 (suffix): the last 64 bytes",
      st == 206 and b == BIG[-64:] and hd.get("content-range") == f"bytes {len(BIG) - 64}-{len(BIG) - 1}/{len(BIG)}",
      (st, hd.get("content-range")))
st, hd, b = get(u, {"range": "bytes=100000-"})
check("Range bytes=100000- (open end): the rest", st == 206 and b == BIG[100000:], st)
st, hd, b = get(u, {"range": "bytes=150000-199999999"})
check("Range past the end is cut at the end", st == 206 and b == BIG[150000:], st)
st, hd, b = get(u, {"range": f"bytes={len(BIG)}-"})
check("Range beyond the end: 416 with Content-Range bytes */size",
      st == 416 and hd.get("content-range") == f"bytes */{len(BIG)}" and err(json.loads(b))["code"] ==
      "range_not_satisfiable", (st, hd.get("content-range")))
st, _, b = get(u, {"range": "bytes=0-9,20-29"})
check("several ranges: 200 with the whole body", st == 200 and b == BIG, st)
st, _, b = get(u, {"range": "bytes=0-9", "if-range": '"not-this-file"'})
check("If-Range with another ETag: 200 with the whole body", st == 200 and b == BIG, st)
st, _, b = get(u, {"range": "bytes=0-9", "if-range": f'"{mb["sha256"]}"'})
check("If-Range with its ETag: 206", st == 206 and b == BIG[:10], st)
st, hd, _ = get(u)
check("a document is an attachment", hd.get("content-disposition", "").startswith("attachment;"), hd)

# A hostile file name
HOSTILE = '..\\..\\e"vil;name=x.exe; é€.pdf'
st, _, mh = upload(PDF, "application/pdf", "?file_name=" + urllib.parse.quote(HOSTILE, safe=""))
check("a hostile file name is kept as its last segment", st == 201 and
      mh["file_name"] == 'e"vil;name=x.exe; é€.pdf', (st, mh))
st, hd, _ = get(f"/api/media/{mh['id']}")
cd = hd.get("content-disposition", "")
check("Content-Disposition: ASCII fallback without quotes or backslashes, the exact name in filename*",
      cd == "attachment; filename=\"e_vil;name=x.exe; __.pdf\"; "
            "filename*=UTF-8''e%22vil%3Bname%3Dx.exe%3B%20%C3%A9%E2%82%AC.pdf", cd)
st, _, js = upload(PDF, "application/pdf", "?file_name=a%0Db.pdf")
check("a file name with a control character: 400 naming file_name", st == 400 and
      err(js).get("field") == "file_name", (st, js))

# ---- refusals change nothing
before = fingerprint()
st, _, js = upload(png(2), "image/png", "?kind=voice")
check("PNG bytes as kind voice: 400 naming file (unsupported_type)",
      st == 400 and err(js).get("field") == "file" and err(js).get("code") == "unsupported_type", (st, js))
body, ctype = multipart([("file", png(3), "x.png", "image/png"), ("kind", b"voice", None, None)])
st, _, js = upload(body, ctype)
check("... the same in a form", st == 400 and err(js).get("field") == "file", (st, js))
st, _, js = upload(b"", "image/png")
check("zero bytes: 400 naming file (empty_file)", st == 400 and err(js).get("field") == "file" and
      err(js).get("code") == "empty_file", (st, js))
st, _, js = upload(TEXT, "image/jpeg")
check("a text file declared image/jpeg: 400 naming file (type_mismatch)",
      st == 400 and err(js).get("field") == "file" and err(js).get("code") == "type_mismatch" and
      "text/plain" in err(js).get("message", ""), (st, js))
st, _, js = upload(png(4), "image/png", "?kind=sticker")
check("a PNG as a sticker: 400 (stickers are image/webp)", st == 400 and err(js).get("field") == "file", (st, js))
st, _, js = upload(VORBIS, "audio/ogg", "?kind=voice")
check("Ogg Vorbis as a voice note: 400 (voice is Ogg Opus only)", st == 400 and
      "Opus" in err(js).get("message", ""), (st, js))
st, _, js = upload(png(5), "image/png", "?kind=movie")
check("an unknown kind: 400 naming kind", st == 400 and err(js).get("field") == "kind", (st, js))
st, _, js = upload(png(6), "image/png", "?sha256=" + "0" * 64)
check("a wrong sha256: 400 naming sha256", st == 400 and err(js).get("field") == "sha256", (st, js))
body, ctype = multipart([("kind", b"image", None, None)])
st, _, js = upload(body, ctype)
check("a form without a file: 400 naming file", st == 400 and err(js).get("field") == "file", (st, js))
st, _, js = upload(b"--nope\r\n\r\nx", "multipart/form-data; boundary=other")
check("a malformed form: 400", st == 400 and err(js).get("code") == "invalid_multipart", (st, js))
st, _, js = upload(PDF, "multipart/related; boundary=x")
check("a raw upload declared multipart/related is not read as a form: 400 type_mismatch naming file",
      st == 400 and err(js).get("code") == "type_mismatch" and err(js).get("field") == "file", (st, js))
st, _, js = upload(png(7), "image/png garbage")
check("a declared type with words after it: 400 type_mismatch", st == 400 and
      err(js).get("code") == "type_mismatch", (st, js))
B = "----wapi-nul"
st, _, js = upload((f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''evil.html%00.jpg\r\n"
                    f"Content-Type: image/png\r\n\r\n").encode() + png(8) + f"\r\n--{B}--\r\n".encode(),
                   f"multipart/form-data; boundary={B}")
check("a filename* with %00 (evil.html%00.jpg): 400 naming file", st == 400 and err(js).get("field") == "file",
      (st, js))
check("none of the refusals stored a row or a file, or left a temp file", fingerprint() == before,
      (before, fingerprint()))

# ---- the kinds that need a format
st, _, mv = upload(OPUS, "audio/ogg; codecs=opus", "?kind=voice")
check("Ogg Opus as a voice note: 201, audio/ogg; codecs=opus", st == 201 and mv["kind"] == "voice" and
      mv["mimetype"] == "audio/ogg; codecs=opus", (st, mv))
st, _, ms = upload(WEBP512, None, "?kind=sticker")
check("a 512x512 WebP as a sticker, no Content-Type: the bytes decide", st == 201 and ms["mimetype"] == "image/webp"
      and ms["kind"] == "sticker" and ms["width"] == 512 and ms["height"] == 512, (st, ms))
before_small = fingerprint()
st, _, js = upload(WEBP, None, "?kind=sticker")
check("a 1x1 WebP as a sticker: 400 invalid_sticker naming file, nothing stored",
      st == 400 and err(js).get("code") == "invalid_sticker" and err(js).get("field") == "file" and
      fingerprint() == before_small, (st, js))
st, _, js = upload(WEBP, None, "?kind=image")
check("the same 1x1 WebP as an image: 201", st == 201 and js["width"] == 1, (st, js))
st, _, mt = upload(TEXT, "text/csv", "?file_name=t.csv")
check("text declared text/csv: a document of that type", st == 201 and mt["mimetype"] == "text/csv" and
      mt["kind"] == "document", (st, mt))
st, _, mn = upload(png(7), "image/png", "?sha256=" + sha(png(7)).upper())
check("the right sha256 (any case): 201", st == 201 and mn["sha256"] == sha(png(7)), (st, mn))

# ---- what the supervisor reads of a file: an image's size, a voice note's
# or a video's duration, in the row and the answer
def png_wh(w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\x00" + bytes([x & 255, y & 255, 0x40]) * 1 + b"\x10\x20\x30" * (w - 1) for y in range(h)
                   for x in [y])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# A real 16x16 JPEG (the image fuzzer's seed); its size read here from its frame header.
JPEG = open(os.path.join(os.path.dirname(__file__), "../fuzz/corpus/fuzz_media_image/small.jpg"), "rb").read()
_sof = re.search(rb"\xff[\xc0-\xc2].{3}(.{2})(.{2})", JPEG, re.S)
JPEG_WH = (struct.unpack(">H", _sof.group(2))[0], struct.unpack(">H", _sof.group(1))[0])
st, _, mi = upload(png_wh(37, 21), "image/png")
check("a 37x21 PNG: width 37, height 21, no seconds (in the answer and the row)",
      st == 201 and (mi["width"], mi["height"], mi["seconds"]) == (37, 21, None) and
      sql(f"SELECT width || 'x' || height FROM wa_media WHERE id = '{mi['id']}'") == "37x21", (st, mi))
st, _, mi = upload(JPEG, "image/jpeg")
check(f"a {JPEG_WH[0]}x{JPEG_WH[1]} JPEG: its width and height", st == 201 and
      (mi["width"], mi["height"]) == JPEG_WH, (st, mi, JPEG_WH))
st, _, mi = upload(PDF, "application/pdf")
check("a PDF: no width, height or seconds", st == 201 and (mi["width"], mi["height"], mi["seconds"]) ==
      (None, None, None), (st, mi))
import tempfile  # noqa: E402
import wave  # noqa: E402
with tempfile.TemporaryDirectory() as td:
    with wave.open(os.path.join(td, "v.wav"), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(48000)
        wf.writeframes(b"".join(struct.pack("<h", int(8000 * ((i // 40) % 2 * 2 - 1))) for i in range(48000 * 3)))
    subprocess.run(["opusenc", "--quiet", "--bitrate", "24", os.path.join(td, "v.wav"), os.path.join(td, "v.ogg")],
                   check=True)
    VOICE = open(os.path.join(td, "v.ogg"), "rb").read()
st, _, mvoice = upload(VOICE, "audio/ogg; codecs=opus", "?kind=voice")
check("a 3 s voice note made by opusenc: seconds 3, no width or height",
      st == 201 and (mvoice["seconds"], mvoice["width"], mvoice["height"]) == (3, None, None) and
      sql(f"SELECT seconds FROM wa_media WHERE id = '{mvoice['id']}'") == "3", (st, mvoice))

# ---- 413: the limit (64 MiB by default), and a body refused before it is sent
c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
c.putrequest("POST", "/api/media")
c.putheader("x-api-key", KEY)
c.putheader("content-type", "application/pdf")
c.putheader("content-length", str(70 * MiB))
c.endheaders()
t0 = time.monotonic()
r = c.getresponse()
js = json.loads(r.read())
check(f"a 70 MiB upload: 413 naming file, answered before the body was sent ({(time.monotonic() - t0) * 1000:.0f} ms)",
      r.status == 413 and err(js).get("field") == "file" and "media.max_upload_bytes" in err(js).get("message", ""),
      (r.status, js))
c.close()

# Another path, over the media limit: h2o refuses it before the body, and the
# message names that path's own limit (http.max_body_size), not the media one.
c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
c.putrequest("POST", "/api/webhooks")
c.putheader("content-type", "application/json")
c.putheader("content-length", str(70 * MiB))
c.endheaders()
r = c.getresponse()
js = json.loads(r.read())
check("70 MiB to another path: 413 naming http.max_body_size (16777216 bytes), before the body",
      r.status == 413 and "16777216" in err(js).get("message", ""), (r.status, js))
c.close()

# ---- signed links
st, _, lk = getj(f"/api/media/{m1['id']}/url")
check("GET /api/media/{id}/url: {url, expires_at}, 24 h ahead, on the public base URL",
      st == 200 and lk["url"].startswith(f"{ORIGIN}/api/media/{m1['id']}?expires=") and
      abs(int(re.search(r"expires=(\d+)", lk["url"]).group(1)) - time.time() - 86400) < 60, lk)
lk_exp = re.search(r"expires=(\d+)", lk.get("url", ""))
check("... expires_at is that expiry in RFC 3339 (UTC, whole seconds)",
      lk_exp and lk.get("expires_at") == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(lk_exp.group(1)))), lk)
spath = lk["url"][len(ORIGIN):]
st, _, b = get(spath, creds=False)
check("the signed link works without credentials", st == 200 and b == P1, st)
secret = bytes.fromhex(sql("SELECT secret FROM wapi_media_secret WHERE id = 1"))
exp = re.search(r"expires=(\d+)", spath).group(1)
mine = base64.urlsafe_b64encode(hmac.new(secret, f"{m1['id']}\n{exp}".encode(), hashlib.sha256).digest()
                                ).rstrip(b"=").decode()
check("its sig is base64url(HMAC-SHA256(the stored key, id \\n expires)) (computed here)",
      spath.endswith("&sig=" + mine), spath)
sig = spath.split("sig=")[1]
bad = sig[:-1] + ("A" if sig[-1] != "A" else "B")
st, _, b = get(spath.replace(sig, bad), creds=False)
check("an altered sig: 403 invalid_signature", st == 403 and err(json.loads(b)).get("code") == "invalid_signature", st)
st, _, b = get(spath.replace(f"expires={exp}", f"expires={int(exp) + 1}"), creds=False)
check("an altered expiry: 403", st == 403, st)
st, _, b = get(spath.replace(m1["id"], m2["id"]), creds=False)
check("the link of one id on another: 403", st == 403, st)
old = str(int(time.time()) - 10)
osig = base64.urlsafe_b64encode(hmac.new(secret, f"{m1['id']}\n{old}".encode(), hashlib.sha256).digest()
                                ).rstrip(b"=").decode()
st, _, b = get(f"/api/media/{m1['id']}?expires={old}&sig={osig}", creds=False)
check("a well-signed link past its expiry: 403 link_expired", st == 403 and
      err(json.loads(b)).get("code") == "link_expired", (st, b[:200]))
st, _, _ = get(f"/api/media/{m1['id']}", creds=False)
check("without a link or credentials: 401", st == 401, st)
st, _, _ = viewer.call("GET", f"/api/media/{m1['id']}/url")
check("a viewer may ask for a link (media:read)", st == 200, st)

# ---- the list, and deletion
st, _, p1 = getj("/api/media?limit=2")
st2, _, p2 = getj(f"/api/media?limit=2&cursor={p1['next_cursor']}")
ids = sql("SELECT string_agg(id, ',' ORDER BY seq DESC) FROM wa_media").split(",")
check("GET /api/media: newest first, paginated with a cursor",
      st == 200 and st2 == 200 and [x["id"] for x in p1["data"] + p2["data"]] == ids[:4], (p1, p2))
st, _, pk = getj("/api/media?kind=voice")
check("... filtered by kind", [x["id"] for x in pk["data"]] == [mvoice["id"], mv["id"]], pk)
st, _, js = getj("/api/media?kind=nope")
check("... an unknown kind: 400", st == 400, st)
st, _, _ = viewer.call("DELETE", f"/api/media/{m2['id']}")
check("a viewer cannot delete (403)", st == 403, st)
st, _, _ = member.call("DELETE", f"/api/media/{m2['id']}")
st2, _, _ = get(f"/api/media/{m2['id']}")
check("a member deletes: 204, then 404", st == 204 and st2 == 404, (st, st2))
check("... the file stays while another row names it", m1["sha256"] in store_files())
st, _, _ = member.call("DELETE", f"/api/media/{m2['id']}")
check("deleting again: 404", st == 404, st)

# ---- metrics
check("metrics: uploads, files and bytes of the store",
      srv.metric("wapi_media_uploads_total") == int(sql("SELECT count(*) FROM wa_media")) + 1 and
      srv.metric("wapi_media_store_files") == len(store_files()) and
      srv.metric("wapi_media_store_bytes") == sum(store_files().values()),
      (srv.metric("wapi_media_uploads_total"), srv.metric("wapi_media_store_files")))
check("metrics: the refusals counted by reason (too_large, invalid_type)",
      srv.metric('wapi_media_refusals_total{reason="too_large"}') >= 1 and
      srv.metric('wapi_media_refusals_total{reason="invalid_type"}') >= 4)

# ---- workers never hold the media folder open by path
wpids = srv.worker_pids()
held = []
for pid in wpids:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.rstrip("/") in (MEDIA.rstrip("/"), os.path.join(MEDIA, ".tmp")):
            held.append((pid, t))
check("no worker holds the media folder (they get files as descriptors)", wpids and not held, held)


# ---- a worker killed mid-upload: nothing published, no temp file
def conn_worker(sock):
    return socket_owner_pid(sock.getsockname()[1], srv.port, srv.worker_pids())


before = fingerprint()
N = 40 * MiB
s = socket.create_connection(("127.0.0.1", srv.port))
s.sendall((f"POST /api/media HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Type: application/pdf\r\n"
           f"Content-Length: {N}\r\n\r\n").encode() + b"%PDF-1.4\n" + b"\0" * (N // 2))
victim = wait(lambda: conn_worker(s), timeout=5)
os.kill(victim, signal.SIGKILL)
s.close()
wait(lambda: victim not in srv.worker_pids() and len(srv.worker_pids()) == 2, timeout=10)
check("kill -9 of a worker holding half an upload: no row, no file, no temp file",
      victim and fingerprint() == before, (victim, before, fingerprint()))

# Now while it writes the temp file the supervisor gave it (an O_TMPFILE, or
# a named one in .tmp/): found in its descriptor table, then killed.
BIGPDF = b"%PDF-1.4\n" + os.urandom(1024) * (60 * 1024)
s = socket.create_connection(("127.0.0.1", srv.port))
s.sendall((f"POST /api/media HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Type: application/pdf\r\n"
           f"Content-Length: {len(BIGPDF)}\r\n\r\n").encode())
victim = wait(lambda: conn_worker(s), timeout=5)
tmpdir = os.path.join(MEDIA, ".tmp")


def writing():
    try:
        for fd in os.listdir(f"/proc/{victim}/fd"):
            try:
                if os.readlink(f"/proc/{victim}/fd/{fd}").startswith(tmpdir + "/"):
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


s.sendall(BIGPDF)
caught = wait(writing, timeout=10, step=0.0005)
os.kill(victim, signal.SIGKILL)
s.close()
wait(lambda: victim not in srv.worker_pids() and len(srv.worker_pids()) == 2, timeout=10)
st = srv.ctl("media")[1]
check("kill -9 of a worker writing its temp file: caught it with the file open, then no row, no file, no temp "
      "file, nothing reserved", caught and fingerprint() == before and st.get("uploads_open") == 0 and
      st.get("reserved") == 0, (caught, fingerprint(), st))
# Now after the body is in the temp file and the publication reached the
# supervisor (copying and hashing it on a thread): the supervisor cancels a
# dead worker's publications, so nothing is published, and the temp files
# and the reservation go.
PUBPDF = b"%PDF-1.4\n" + os.urandom(63 * MiB)
s = socket.create_connection(("127.0.0.1", srv.port))
s.sendall((f"POST /api/media HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Type: application/pdf\r\n"
           f"Content-Length: {len(PUBPDF)}\r\n\r\n").encode())
victim = wait(lambda: conn_worker(s), timeout=5)
s.sendall(PUBPDF)
publishing = wait(lambda: (lambda x: x if x.get("publishing", 0) >= 1 else None)(srv.ctl("media")[1]),
                  timeout=20, step=0.002)
os.kill(victim, signal.SIGKILL)
s.close()
wait(lambda: victim not in srv.worker_pids() and len(srv.worker_pids()) == 2, timeout=10)
settled = wait(lambda: (lambda x: x if x.get("publishing") == 0 and x.get("reserved") == 0 and
                        x.get("uploads_open") == 0 and not tmp_entries() else None)(srv.ctl("media")[1]), timeout=20)
time.sleep(0.3)  # a row written after all would show by now
# The supervisor notices the death asynchronously: on a loaded machine the
# hash may finish and the row be on its way first (the point of no return).
# It says which happened; either way nothing is half-done or leaked.
gone = [ln for ln in srv.log_lines() if ln.get("msg") == "media: publication of a worker that is gone cancelled"
        and ln.get("pid") == victim]
stored = any(ln.get("msg") == "media stored" and ln.get("sha256") == sha(PUBPDF) for ln in srv.log_lines())
if gone and gone[0].get("in_time") == 1:
    outcome = fingerprint() == before and sha(PUBPDF) not in store_files() and not stored
else:
    rows = sql(f"SELECT count(*) FROM wa_media WHERE sha256 = '{sha(PUBPDF)}'")
    outcome = stored and str(rows) == "1" and sha(PUBPDF) in store_files() and not tmp_entries()
    print(f"note: the death was noticed after the row was on its way ({gone})")
check("kill -9 of a worker whose publication the supervisor is hashing: caught while publishing, then "
      "cancelled in time (no row, no file) or past the point of no return (one whole row and its file); "
      "no temp file, nothing reserved", publishing and settled and bool(gone) and outcome,
      (publishing, settled, gone, fingerprint(), before))
check("... the supervisor stays healthy", srv.proc.poll() is None and srv.get("/healthz")[0] == 200 and
      srv.ctl("media")[0] == 0)
st, _, js = upload(BIGPDF, "application/pdf", timeout=60)
check("the same 60 MiB upload then goes through whole", st == 201 and js["size"] == len(BIGPDF) and
      js["sha256"] == sha(BIGPDF), (st, js))
check("the supervisor and the other worker were not disturbed", srv.proc.poll() is None and
      srv.get("/healthz")[0] == 200)

# ---- the sweep: a file no row names goes once it is an hour old; a file
# used within the hour stays, as does any file a row names, however old
def sweep_once():
    n = sum(ln.get("msg") == "media sweep done" for ln in srv.log_lines())
    rc, res = srv.ctl("media", "sweep")
    wait(lambda: sum(ln.get("msg") == "media sweep done" for ln in srv.log_lines()) > n, timeout=30)
    return rc, (srv.ctl("media")[1].get("sweep") or {}).get("last") or {}


def touch(h, t):
    os.utime(os.path.join(MEDIA, h[:2], h[2:4], h), (t, t))


OLDF, RECF = b"%PDF-1.4\n" + os.urandom(5000), b"%PDF-1.4\n" + os.urandom(7000)
_, _, mo = upload(OLDF, "application/pdf")
_, _, mr = upload(RECF, "application/pdf")
for x in (js, mo, mr):
    member.call("DELETE", f"/api/media/{x['id']}")
now = time.time()
old_t = now - 2 * 3600
touch(sha(OLDF), old_t)          # unreferenced, last used two hours ago
touch(sha(RECF), now - 600)      # unreferenced, used ten minutes ago
touch(sha(BIGPDF), now - 3000)   # unreferenced, used fifty minutes ago
touch(m1["sha256"], old_t)       # named by live rows, old
touch(mb["sha256"], old_t)
rc, last = sweep_once()
files = store_files()
check("wapictl media sweep: of the files no row names, the one two hours old goes; those used ten and fifty "
      "minutes ago stay, as do old files rows name", rc == 0 and sha(OLDF) not in files and sha(RECF) in files and
      sha(BIGPDF) in files and m1["sha256"] in files and mb["sha256"] in files and last.get("removed_files") == 1
      and last.get("freed_bytes") == len(OLDF), (rc, last))
for h in (sha(RECF), sha(BIGPDF)):
    touch(h, old_t)
rc, last = sweep_once()
files = store_files()
check("then, older than an hour, the sweep removes them too, and keeps those rows name",
      sha(BIGPDF) not in files and sha(RECF) not in files and m1["sha256"] in files and mb["sha256"] in files and
      last["removed_files"] == 2 and last["freed_bytes"] == len(BIGPDF) + len(RECF), (last, len(files)))
check("wapictl media: the last sweep says when, who asked, how long, and no error",
      re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", last.get("at", "")) and last.get("by") == "control socket" and
      isinstance(last.get("ms"), (int, float)) and "error" in last and last["error"] is None, last)
check("... and the metric and the gauges follow", srv.metric("wapi_media_swept_files_total") == 3 and
      srv.metric("wapi_media_store_bytes") == sum(files.values()))
check("no sanitizer reports, no crash", srv.proc.poll() is None and not srv.sanitizer_reports())
srv.stop()

# ---- restart: leftovers removed, a small limit, a quota, retention
os.makedirs(os.path.join(MEDIA, ".tmp"), exist_ok=True)
for n in ("up-0123456789abcdef", "leftover"):
    with open(os.path.join(MEDIA, ".tmp", n), "wb") as f:
        f.write(b"half an upload")
used = sum(store_files().values())
srv.env.update({"WAPI_MEDIA_MAX_UPLOAD_BYTES": str(MiB), "WAPI_MEDIA_MAX_STORE_BYTES": str(used + MiB + 4096),
                "WAPI_MEDIA_RETENTION_DAYS": "1"})
srv.start()
wait(lambda: srv.ctl("media")[1].get("measured"), timeout=10)
check("temp files a crash left in the store are removed at start (and the log says so)",
      tmp_entries() == [] and any(ln.get("msg") == "media store open" and ln.get("leftover_temp_files_removed") == 2
                                  for ln in srv.log_lines()), tmp_entries())
before = fingerprint()
st, _, js = upload(b"%PDF-1.4\n" + b"a" * (MiB - 9 + 1), "application/pdf")
check("media.max_upload_bytes = 1 MiB: 1 MiB + 1 byte is 413 naming file", st == 413 and
      err(js).get("field") == "file" and fingerprint() == before, (st, js))
EXACT = b"%PDF-1.4\n" + os.urandom(MiB - 9)
st, _, mx = upload(EXACT, "application/pdf")
check("... exactly 1 MiB is stored", st == 201 and mx["size"] == MiB, (st, mx))
full_before = srv.metric('wapi_media_refusals_total{reason="store_full"}')
before = fingerprint()
st, _, js = upload(b"%PDF-1.4\n" + os.urandom(8192), "application/pdf")
check("past media.max_store_bytes: 507 media_store_full, nothing stored",
      st == 507 and err(js).get("code") == "media_store_full" and fingerprint() == before, (st, js))
check("... counted in wapi_media_refusals_total{reason=\"store_full\"}",
      srv.metric('wapi_media_refusals_total{reason="store_full"}') == full_before + 1)
st, _, js = upload(b"%PDF-1.4\n" + os.urandom(1000), "application/pdf")
check("... a smaller file that fits still goes in", st == 201, (st, js))

# Retention: a row older than a day becomes expired; its file goes
sql(f"UPDATE wa_media SET created_at = now() - interval '2 days' WHERE id = '{mb['id']}'")
for h in store_files():
    os.utime(os.path.join(MEDIA, h[:2], h[2:4], h), (old_t, old_t))
srv.ctl("media", "sweep")
last = wait(lambda: (lambda l: l if l and l["by"] == "control socket" else None)(
    (srv.ctl("media")[1].get("sweep") or {}).get("last")), timeout=30)
st, _, _ = get(f"/api/media/{mb['id']}")
check("retention: the old row is expired (GET 404), its file removed, the others kept",
      last and last["expired_rows"] == 1 and sql(f"SELECT state FROM wa_media WHERE id = '{mb['id']}'") == "expired"
      and st == 404 and mb["sha256"] not in store_files() and m1["sha256"] in store_files(), (last, st))
st, _, js = getj(f"/api/media?state=expired")
check("... and listed as expired", [x["id"] for x in js["data"]] == [mb["id"]], js)

# Uploads racing for the quota (both workers, at once): what fits goes in,
# the rest is 507, and the store never holds more than media.max_store_bytes.
ms0 = srv.ctl("media")[1]
maxb = ms0["max_store_bytes"]
size = (maxb - ms0["bytes"]) // 3 + 1  # two fit, three do not
socks = []
for _ in range(8):  # every body sent but its last byte, then all last bytes at once
    body = b"%PDF-1.4\n" + os.urandom(size - 9)
    c = socket.create_connection(("127.0.0.1", srv.port))
    c.sendall((f"POST /api/media HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Type: application/pdf\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body[:-1])
    socks.append((c, body[-1:]))
time.sleep(0.3)
for c, last_byte in socks:
    c.sendall(last_byte)
results = []
for c, _ in socks:
    c.settimeout(30)
    resp = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        resp += chunk
    c.close()
    m = re.match(rb"HTTP/1\.1 (\d+)", resp)
    results.append(int(m.group(1)) if m else 0)
ms1 = srv.ctl("media")[1]
check("eight uploads racing for room for two: at most two stored, the others 507, the store within its quota",
      1 <= results.count(201) <= 2 and results.count(201) + results.count(507) == 8 and
      ms1["bytes"] <= maxb and sum(store_files().values()) <= maxb and ms1["reserved"] == 0,
      (sorted(results), ms0, ms1))
check("no sanitizer reports, no crash", srv.proc.poll() is None and not srv.sanitizer_reports())
srv.stop()

# ---- the media volume itself full (the worker's write fails with ENOSPC,
# no quota set): 507 counted as store_full. A 1 MiB tmpfs needs root.
vol = Server(bindir=BIN, workers=1, pg_url=DB)
VOL = os.path.join(vol.dir, "media")
os.makedirs(VOL)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", VOL], capture_output=True).returncode:
    print("# skipped: the full-volume check needs to mount a tmpfs (root)")
else:
    try:
        vol.start()
        wait(lambda: vol.ctl("media")[1].get("measured"), timeout=10)
        full_before = vol.metric('wapi_media_refusals_total{reason="store_full"}')
        st, _, b = vol.request("POST", "/api/media", body=b"%PDF-1.4\n" + os.urandom(2 * MiB),
                               headers={"x-api-key": KEY, "content-type": "application/pdf"}, timeout=30)
        js = json.loads(b) if b else None
        vst = wait(lambda: (lambda x: x if x.get("uploads_open") == 0 and x.get("reserved") == 0 else None)(
            vol.ctl("media")[1]), timeout=10)
        check("the media volume full while the worker writes: 507 media_store_full, nothing left reserved",
              st == 507 and err(js).get("code") == "media_store_full" and vst, (st, js, vol.ctl("media")[1]))
        check("... counted in wapi_media_refusals_total{reason=\"store_full\"}",
              vol.metric('wapi_media_refusals_total{reason="store_full"}') == full_before + 1)
        check("no sanitizer reports, no crash", vol.proc.poll() is None and not vol.sanitizer_reports())
    finally:
        vol.stop()
        subprocess.run(["umount", VOL])
done()
