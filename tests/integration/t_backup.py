#!/usr/bin/env python3
"""wapictl backup / restore. A session linked for real with the fake WhatsApp
server and phone is backed up while the server runs and its store is being
written (prekey refills, peer messages, new media files); the archive is
restored into fresh folders with the server stopped, and a server started on
them logs in without a new QR, with every media file equal by checksum.
Damaged archives (a flipped byte, truncation, extra bytes, foreign members,
path tricks) are refused with a clear message and change nothing; restore
refuses while the server runs and, without --force, over a session store.
backup --output FILE never follows or reuses an existing FILE.part and leaves
FILE 0600 whatever the umask; restore never follows a link inside a store,
and a destination that conflicts with the archive (a link, or a file, where it
has a folder) is found before anything moves, leaving both stores as they were."""
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, check, done, fresh_database  # noqa: E402
from linked import Api  # noqa: E402
import mediafiles  # noqa: E402

os.environ["TEST_DATABASE_URL"] = fresh_database("wapi_it_backup")
CTL = os.path.join(ROOT, "build", "wapictl")
SAN_CTL = os.path.join(ROOT, "build", "san", "wapictl")
tmp = tempfile.mkdtemp(prefix="wapi-backup-")


def wapictl(srv, *args, stdin=None, ctl=CTL, env=None, umask=-1):
    e = dict(srv.env)
    e.update(env or {})
    if ctl == SAN_CTL:
        e.update(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return subprocess.run([ctl, "-c", srv.conf, *args], env=e, input=stdin, capture_output=True, timeout=120,
                          umask=umask)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def session(srv):
    return srv.ctl("session")[1].get("session", {})


def state_is(srv, *states):
    return srv.wait_for(lambda: session(srv).get("state") in states, timeout=20, step=0.05)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(d):
    """Everything under d, hidden entries included: each entry's type and mode,
    a file's SHA-256, a link's target (links are not followed)."""
    out = {}
    for base, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(base, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                v = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                v = ("dir", st.st_mode & 0o7777)
            else:
                v = ("file", st.st_mode & 0o7777, sha256(p))
            out[os.path.relpath(p, d)] = v
    return out


def tree(d):
    """{relative path: sha256} of every file under d."""
    out = {}
    for base, _, files in os.walk(d):
        for f in files:
            p = os.path.join(base, f)
            out[os.path.relpath(p, d)] = sha256(p)
    return out


def store_file_ok(data):
    """wa_store's envelope: magic, kind, length, body, SHA-256 of all before."""
    return (len(data) >= 48 and data[:8] == b"WAPISTO1" and int.from_bytes(data[12:16], "big") == len(data) - 48
            and hashlib.sha256(data[:-32]).digest() == data[-32:])


def add_media(d, n, seed):
    """Content-addressed files, as the media store lays them out."""
    made = {}
    for i in range(n):
        size = [0, 1, 511, 512, 513, 70000, 1 << 20][i % 7] + seed
        data = os.urandom(size)
        h = hashlib.sha256(data).hexdigest()
        rel = os.path.join(h[:2], h)
        os.makedirs(os.path.join(d, h[:2]), exist_ok=True)
        with open(os.path.join(d, rel) + ".tmp", "wb") as f:
            f.write(data)
        os.rename(os.path.join(d, rel) + ".tmp", os.path.join(d, rel))
        made[rel] = h
    return made


ctls_all = [CTL] + ([SAN_CTL] if os.path.exists(SAN_CTL) else [])
wa = FakeWA()

# 1. A real linked session, and media.
srv = Server(workers=1, env=wa.env())
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"  # the origin the API key's sign-up comes from
srv.start()
sdir, mdir = srv.env["WAPI_PATHS_SESSIONS"], srv.env["WAPI_PATHS_MEDIA"]
state_is(srv, "qr")
res = wa.call("POST", "/phone/scan", {"qr": srv.ctl("session", "qr")[1].get("qr"), "timeoutMs": 10000})
check("the fake phone links the session", res.get("ok") is True and state_is(srv, "connected"), res)
os.makedirs(mdir, exist_ok=True)
media = add_media(mdir, 14, 0)
# Real media too, through POST /api/media (published by the supervisor, rows in PostgreSQL).
api = Api(srv)
real = {"image": (mediafiles.png_wh(40, 30, seed=5), "image/png"),
        "document": (mediafiles.PDF + b"% backed up\n", "application/pdf"),
        "voice": (mediafiles.voice(seconds=1), "audio/ogg"),
        "video": (mediafiles.mp4(1500, mdat=20000), "video/mp4")}
uploaded = {}
for kind, (data, ctype) in real.items():
    st, _, b = srv.request("POST", f"/api/media?kind={kind}", body=data,
                           headers={"x-api-key": api.key, "content-type": ctype})
    row = json.loads(b) if st == 201 else {}
    uploaded[kind] = (row.get("id"), data)
    check(f"a real {kind} uploaded before the backup", st == 201 and row.get("sha256") == hashlib.sha256(data).hexdigest(),
          (st, b[:200]))
with open(os.path.join(mdir, ".upload-in-progress"), "wb") as f:
    f.write(b"partial")
with open(os.path.join(mdir, "ab.tmp"), "wb") as f:
    f.write(b"partial")

# 2. Backups while the store is being written: prekey refills (creds.bin and
# prekeys.bin rewritten), peer messages, new media files appearing.
stop_traffic = threading.Event()
writes = {"prekeys": 0, "media": 0}


def traffic():
    i = 0
    while not stop_traffic.is_set():
        wa.call("POST", "/prekeys-low", {"count": 3})
        writes["prekeys"] += 1
        wa.call("POST", "/peer/send", {"text": f"backup traffic {i}"})
        add_media(mdir, 1, 1000 + i)
        writes["media"] += 1
        i += 1
        time.sleep(0.05)


t = threading.Thread(target=traffic)
t.start()
archives = []
for i in range(6):
    out = wapictl(srv, "backup", "--output", "-")
    archives.append(out)
    time.sleep(0.1)
stop_traffic.set()
t.join(30)
check("6 backups with --output - while the store is written: all exit 0",
      all(a.returncode == 0 for a in archives), [a.stderr.decode()[-300:] for a in archives if a.returncode])
check("the store was really written meanwhile", writes["prekeys"] >= 2 and writes["media"] >= 2, writes)


def members(blob):
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        return [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]


consistent = True
for a in archives:
    if a.returncode:
        continue
    ms = members(a.stdout)
    files = {m.name: d for m, d in ms}
    man = json.loads(files.get("manifest.json", b"{}"))
    listed = {f["path"]: f for f in man.get("files", [])}
    creds, prekeys = files.get("whatsapp_sessions/creds.bin"), files.get("whatsapp_sessions/prekeys.bin")
    consistent &= (ms[-1][0].name == "manifest.json" and man.get("format") == "wapi-backup"
                   and set(listed) == set(files) - {"manifest.json"}
                   and all(hashlib.sha256(files[p]).hexdigest() == f["sha256"] and len(files[p]) == f["size"]
                           for p, f in listed.items())
                   and creds is not None and store_file_ok(creds) and (prekeys is None or store_file_ok(prekeys))
                   and not any(n.endswith(".tmp") or "/." in n for n in files))
check("every archive is a gzip tar with whatsapp_sessions/, media/ and manifest.json last, listing every file "
      "with its size and SHA-256; store files whole; no temporary or hidden files", consistent)
good = archives[-1].stdout
summary = json.loads(archives[-1].stderr.decode().strip().splitlines()[-1])
check("with --output -, the summary goes to stderr", summary.get("ok") is True and summary["sessions"]["files"] >= 2
      and summary["media"]["files"] >= 14, summary)
arch_files = {m.name: d for m, d in members(good)}
check("the archive holds every media file present before the backups",
      all(f"media/{rel}" in arch_files for rel in media), sorted(arch_files)[:5])
st = srv.ctl("status")[1]
check("the server kept running through the backups", srv.proc.poll() is None and st.get("ok") is True)
logged = [line for line in srv.log_lines() if line.get("msg") == "session store snapshot taken for a backup"]
check("the supervisor logs each snapshot (files, bytes, ms)", len(logged) == 6 and "ms" in logged[-1], logged[-1:])

# Backup to a file: written whole, no .part left behind.
bfile = os.path.join(tmp, "b.tar.gz")
out = wapictl(srv, "backup", "--output", bfile)
check("backup --output FILE: exit 0, JSON summary on stdout, no .part file",
      out.returncode == 0 and json.loads(out.stdout).get("ok") and os.path.exists(bfile) and
      not os.path.exists(bfile + ".part"), out.stderr)
out = wapictl(srv, "backup", "--output", os.path.join(tmp, "no-such-dir", "b.tar.gz"))
check("backup into a missing folder: exit 1 with the reason", out.returncode == 1 and b"cannot create" in out.stderr,
      out.stderr)

# FILE.part is ours alone: created exclusively, never through a link, never
# reusing a file someone else made (it would keep its owner and mode, and the
# archive holds the session keys).
outside = os.path.join(tmp, "outside.txt")
with open(outside, "wb") as f:
    f.write(b"not yours\n")
lfile = os.path.join(tmp, "l.tar.gz")
os.symlink(outside, lfile + ".part")
out = wapictl(srv, "backup", "--output", lfile)
check("backup --output F with a symbolic link at F.part: exit 1, names F.part, the link's target unchanged, "
      "the link left alone, no F", out.returncode == 1 and (lfile + ".part").encode() in out.stderr and
      read(outside) == b"not yours\n" and os.path.islink(lfile + ".part") and not os.path.lexists(lfile), out.stderr)
dangling, dfile = os.path.join(tmp, "dangling-target"), os.path.join(tmp, "d.tar.gz")
os.symlink(dangling, dfile + ".part")
out = wapictl(srv, "backup", "--output", dfile)
check("backup --output F with a link at F.part to a missing file: exit 1, nothing created at the link's target",
      out.returncode == 1 and not os.path.lexists(dangling) and not os.path.lexists(dfile), out.stderr)
pfile = os.path.join(tmp, "p.tar.gz")
with open(pfile + ".part", "wb") as f:
    f.write(b"someone else's\n")
os.chmod(pfile + ".part", 0o644)
out = wapictl(srv, "backup", "--output", pfile)
check("backup --output F with an existing 0644 F.part: exit 1, names it and says to remove it, nothing written "
      "into it, no F", out.returncode == 1 and (pfile + ".part").encode() in out.stderr and b"remove it" in out.stderr
      and read(pfile + ".part") == b"someone else's\n" and
      (os.stat(pfile + ".part").st_mode & 0o777) == 0o644 and not os.path.lexists(pfile), out.stderr)
for mask in (0o000, 0o277):
    ufile = os.path.join(tmp, f"u{mask:03o}.tar.gz")
    out = wapictl(srv, "backup", "--output", ufile, umask=mask)
    check(f"backup --output F under umask {mask:03o}: exit 0, F is 0600",
          out.returncode == 0 and (os.stat(ufile).st_mode & 0o777) == 0o600 and not os.path.lexists(ufile + ".part"),
          (out.stderr, os.path.exists(ufile) and oct(os.stat(ufile).st_mode)))

# 3. Restore is offline: refused while the server's control socket answers.
out = wapictl(srv, "restore", "--input", "-", stdin=good)
check("restore while the server runs: refused, exit 1, says why", out.returncode == 1 and b"running" in out.stderr,
      out.stderr)
seq = wa.last_seq()
srv.stop()
out = wapictl(srv, "backup", "--output", "-")
check("backup with the server stopped: exit 1, says it needs the running server",
      out.returncode == 1 and b"cannot reach wapi" in out.stderr and not out.stdout, out.stderr)

# 4. Restore into fresh folders; a server on them logs in without a new QR.
rdir = os.path.join(tmp, "restored")
renv = {"WAPI_PATHS_SESSIONS": os.path.join(rdir, "sessions"), "WAPI_PATHS_MEDIA": os.path.join(rdir, "media")}
srv2 = Server(workers=1, env=dict(wa.env(), **renv))
out = wapictl(srv2, "restore", "--input", "-", stdin=good)
res = json.loads(out.stdout or b"{}")
check("restore --input - into fresh folders: exit 0 and a JSON summary", out.returncode == 0 and res.get("ok") is True,
      out.stderr)
want = {n[len("whatsapp_sessions/"):]: hashlib.sha256(d).hexdigest() for n, d in arch_files.items()
        if n.startswith("whatsapp_sessions/")}
check("the restored session store equals the snapshot in the archive",
      tree(renv["WAPI_PATHS_SESSIONS"]) == want, sorted(tree(renv["WAPI_PATHS_SESSIONS"])))
rmedia = tree(renv["WAPI_PATHS_MEDIA"])
check("every media file is restored, equal by checksum", all(rmedia.get(rel) == h for rel, h in media.items()) and
      all(rmedia[rel] == hashlib.sha256(arch_files["media/" + rel]).hexdigest() for rel in rmedia), len(rmedia))
check("session files are private (0600)", all(
    (os.stat(os.path.join(renv["WAPI_PATHS_SESSIONS"], p)).st_mode & 0o777) == 0o600 for p in want))
check("no staging folder is left", not [n for n in os.listdir(renv["WAPI_PATHS_SESSIONS"]) if n.startswith(".")] and
      not [n for n in os.listdir(renv["WAPI_PATHS_MEDIA"]) if n.startswith(".")])
srv2.start()
check("the restored server logs in without a new QR", state_is(srv2, "connected") and
      not wa.events(seq, "qr.ref") and wa.events(seq, "login.ok"), session(srv2))
check("same account after the restore", session(srv2).get("me", {}).get("jid", "").startswith(wa.phone), session(srv2))
for kind, (mid, data) in uploaded.items():
    st, h, b = srv2.request("GET", f"/api/media/{mid}", headers={"x-api-key": api.key})
    check(f"the real {kind} is served by the restored server, byte for byte (its row in PostgreSQL, its file from "
          "the archive)", st == 200 and b == data and h.get("etag") == f'"{hashlib.sha256(data).hexdigest()}"',
          (st, len(b or b"")))

# 5. Over a session store: refused without --force; with it, the old one is kept aside.
srv2.stop()
before = tree(renv["WAPI_PATHS_SESSIONS"])
out = wapictl(srv2, "restore", "--input", bfile)
check("restore over a non-empty session store without --force: refused, exit 1, store unchanged",
      out.returncode == 1 and b"--force" in out.stderr and tree(renv["WAPI_PATHS_SESSIONS"]) == before, out.stderr)
out = wapictl(srv2, "restore", "--input", bfile, "--force")
res = json.loads(out.stdout or b"{}")
aside = res.get("previous_sessions") or ""
check("--force replaces it and keeps the previous store in .pre-restore-TIME/",
      out.returncode == 0 and os.path.basename(aside).startswith(".pre-restore-") and
      tree(aside) == {k: v for k, v in before.items()}, out.stderr)
srv2.start()
check("the server starts on the forced restore and logs in", state_is(srv2, "connected"), session(srv2))
srv2.stop()

# 5b. What is in the destination is checked before anything moves: a link, a
# file where the archive has a folder, a folder where it has a file. Restore
# refuses them all (exit 1, the path named) and changes nothing: following a
# link would write outside the store, and replacing the link or the file would
# delete something of the operator's (a media subfolder may be a link to
# another disk on purpose; backup skips links too), so the operator decides.
mrel = next(n for n in sorted(arch_files) if n.startswith("media/") and n.count("/") == 2)
mdir_name, mleaf = mrel.split("/")[1:]


def plant_link(m):
    os.symlink(outside_dir, os.path.join(m, mdir_name))


def plant_file(m):
    with open(os.path.join(m, mdir_name), "wb") as f:
        f.write(b"in the way\n")


def plant_folder(m):
    os.makedirs(os.path.join(m, mdir_name, mleaf, "inner"))


conflicts = [  # name, what to plant, over a copy of the restored stores with --force, words expected
    ("a symbolic link at media/XX to a folder outside (fresh stores)", plant_link, False, b"symbolic link"),
    ("--force, a symbolic link at media/XX to a folder outside", plant_link, True, b"symbolic link"),
    ("--force, a regular file at media/XX where the archive has a folder", plant_file, True, b"not a folder"),
    ("--force, a folder at media/XX/HASH where the archive has a file", plant_folder, True, b"is a folder"),
]
for which in ctls_all:
    tag = "ASan " if which == SAN_CTL else ""
    for name, plant, populated, words in conflicts:
        d = os.path.join(tmp, "conflict")
        shutil.rmtree(d, ignore_errors=True)
        outside_dir = os.path.join(tmp, "outside_dir")
        shutil.rmtree(outside_dir, ignore_errors=True)
        os.makedirs(outside_dir)
        cenv = {"WAPI_PATHS_SESSIONS": os.path.join(d, "sessions"), "WAPI_PATHS_MEDIA": os.path.join(d, "media")}
        if populated:
            shutil.copytree(renv["WAPI_PATHS_SESSIONS"], cenv["WAPI_PATHS_SESSIONS"], symlinks=True)
            shutil.copytree(renv["WAPI_PATHS_MEDIA"], cenv["WAPI_PATHS_MEDIA"], symlinks=True)
            shutil.rmtree(os.path.join(cenv["WAPI_PATHS_MEDIA"], mdir_name))
        else:
            os.makedirs(cenv["WAPI_PATHS_SESSIONS"])
            os.makedirs(cenv["WAPI_PATHS_MEDIA"])
        plant(cenv["WAPI_PATHS_MEDIA"])
        before = snapshot(cenv["WAPI_PATHS_SESSIONS"]), snapshot(cenv["WAPI_PATHS_MEDIA"])
        out = wapictl(srv2, "restore", "--input", "-", *(["--force"] if populated else []), stdin=good, ctl=which,
                      env=cenv)
        err = out.stderr.decode(errors="replace")
        named = os.path.join(cenv["WAPI_PATHS_MEDIA"], mdir_name)
        check(f"{tag}restore with {name}: exit 1, names the path, nothing written outside, both stores "
              "byte-for-byte unchanged, no staging left",
              out.returncode == 1 and "refused" in err and "Nothing was changed" in err and named in err and
              words.decode() in err and not os.listdir(outside_dir) and
              (snapshot(cenv["WAPI_PATHS_SESSIONS"]), snapshot(cenv["WAPI_PATHS_MEDIA"])) == before and
              "Sanitizer" not in err and "runtime error" not in err, (out.returncode, err[-400:]))

# The configured store folders themselves may be links (a mounted volume):
# only what is inside a store is never followed.
d = os.path.join(tmp, "linked")
os.makedirs(os.path.join(d, "real-media"))
os.symlink(os.path.join(d, "real-media"), os.path.join(d, "media"))
out = wapictl(srv2, "restore", "--input", "-", stdin=good, env={
    "WAPI_PATHS_SESSIONS": os.path.join(d, "sessions"), "WAPI_PATHS_MEDIA": os.path.join(d, "media")})
check("a media store folder that is itself a link (the configured path) restores into its target",
      out.returncode == 0 and tree(os.path.join(d, "real-media")).get(f"{mdir_name}/{mleaf}") ==
      hashlib.sha256(arch_files[mrel]).hexdigest(), out.stderr)

# 6. Damaged and foreign archives: refused with a reason, nothing changed.
srv3 = Server(workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=renv["WAPI_PATHS_SESSIONS"],
                                  WAPI_PATHS_MEDIA=renv["WAPI_PATHS_MEDIA"], WAPI_WHATSAPP_AUTOSTART="false")).start()
plain = wapictl(srv3, "backup", "--output", "-", "--no-gzip")
srv3.stop()
check("backup --no-gzip: a plain tar", plain.returncode == 0 and plain.stdout[257:262] == b"ustar", plain.stderr)
pdata = plain.stdout


def flip(b, i):
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]


def tar_of(entries, gz=True):
    """A foreign archive made by Python's tarfile: [(name, bytes|None for a symlink, link target)]."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz" if gz else "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, link in entries:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.linkname = tarfile.SYMTYPE, link
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


man_ok = json.dumps({"format": "wapi-backup", "format_version": 1, "file_count": 1, "files": [
    {"path": "media/x", "size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}]}).encode()
with tarfile.open(fileobj=io.BytesIO(pdata)) as tf:
    infos = tf.getmembers()
first_media = next(m.offset for m in infos if m.name.startswith("media/"))
big_media = next(m.offset_data for m in infos if m.name.startswith("media/") and m.size > 100)
cases = {
    "a flipped byte in the gzip stream's middle": flip(good, len(good) // 2),
    "a flipped byte in the gzip trailer (CRC)": flip(good, len(good) - 6),
    "a flipped byte in the gzip header (method)": flip(good, 2),
    "truncated to half": good[:len(good) // 2],
    "one byte short": good[:-1],
    "only the first 10 bytes": good[:10],
    "empty": b"",
    "bytes after the end": good + b"\0junk",
    "two archives back to back": good + good,
    "plain: a flipped byte in a session file": flip(pdata, 512 + 20),
    "plain: a flipped byte in a media file": flip(pdata, big_media + 50),
    "plain: a flipped byte in a header": flip(pdata, 100),
    "plain: cut before the manifest": pdata[:first_media],
    "plain: one byte short": pdata[:-1],
    "plain: the end blocks missing": (lambda x: x + b"\0" * (-len(x) % 512))(pdata.rstrip(b"\0")),
    "not an archive": b"hello world\n" * 100,
    "foreign: no manifest": tar_of([("media/x", b"x", None)]),
    "foreign: ../ in a name": tar_of([("media/../../escape", b"x", None), ("manifest.json", man_ok, None)]),
    "foreign: an absolute name": tar_of([("/tmp/escape", b"x", None), ("manifest.json", man_ok, None)]),
    "foreign: a symbolic link": tar_of([("media/x", None, "/etc/passwd"), ("manifest.json", man_ok, None)]),
    "foreign: a member outside the two stores": tar_of([("etc/x", b"x", None), ("manifest.json", man_ok, None)]),
    "foreign: a hidden name": tar_of([("whatsapp_sessions/.pre-restore-x/creds.bin", b"x", None),
                                      ("manifest.json", man_ok, None)]),
    "foreign: a file the manifest does not list": tar_of([("media/x", b"x", None), ("media/y", b"y", None),
                                                           ("manifest.json", man_ok, None)]),
    "foreign: a wrong checksum in the manifest": tar_of([("media/x", b"y", None), ("manifest.json", man_ok, None)]),
    "foreign: a member after the manifest": tar_of([("media/x", b"x", None), ("manifest.json", man_ok, None),
                                                     ("media/z", b"z", None)]),
}
ctls = ctls_all
for which in ctls:
    tag = "ASan " if which == SAN_CTL else ""
    bad = []
    for name, blob in cases.items():
        d = os.path.join(tmp, "bad")
        shutil.rmtree(d, ignore_errors=True)
        benv = {"WAPI_PATHS_SESSIONS": os.path.join(d, "sessions"), "WAPI_PATHS_MEDIA": os.path.join(d, "media")}
        out = wapictl(srv2, "restore", "--input", "-", stdin=blob, ctl=which, env=benv)
        err = out.stderr.decode(errors="replace")
        files = [os.path.join(b, f) for b, _, fs in os.walk(tmp) for f in fs if "escape" in f]
        if not (out.returncode == 1 and "refused" in err and "Nothing was changed" in err and not tree(d) and
                not files and "Sanitizer" not in err and "runtime error" not in err):
            bad.append((name, out.returncode, err[-300:]))
    check(f"{tag}restore refuses {len(cases)} damaged or foreign archives: exit 1, the reason, no file written",
          not bad, bad[:3])
    for name, blob in list(cases.items())[:1]:
        d = os.path.join(tmp, "bad")
        out = wapictl(srv2, "restore", "--input", "-", stdin=blob, ctl=which,
                      env={"WAPI_PATHS_SESSIONS": os.path.join(d, "s"), "WAPI_PATHS_MEDIA": os.path.join(d, "m")})
        check(f"{tag}the message names the damage ({name})",
              any(w in out.stderr for w in (b"corrupt", b"SHA-256 mismatch")), out.stderr)
out = wapictl(srv2, "restore", "--input", "-", stdin=cases["truncated to half"],
              env={"WAPI_PATHS_SESSIONS": os.path.join(tmp, "t", "s"), "WAPI_PATHS_MEDIA": os.path.join(tmp, "t", "m")})
check("a truncated archive is called truncated", b"truncated" in out.stderr, out.stderr)

# A damaged archive over an existing store with --force: the store is untouched.
before = tree(renv["WAPI_PATHS_SESSIONS"]), tree(renv["WAPI_PATHS_MEDIA"])
out = wapictl(srv2, "restore", "--input", "-", "--force", stdin=cases["plain: a flipped byte in a media file"])
check("--force with a damaged archive: refused, both stores unchanged, no staging left",
      out.returncode == 1 and (tree(renv["WAPI_PATHS_SESSIONS"]), tree(renv["WAPI_PATHS_MEDIA"])) == before and
      not [n for n in os.listdir(renv["WAPI_PATHS_MEDIA"]) if n.startswith(".restore")], out.stderr)

# The plain tar restores too (restore reads both).
out = wapictl(srv2, "restore", "--input", "-", stdin=pdata,
              env={"WAPI_PATHS_SESSIONS": os.path.join(tmp, "p", "s"), "WAPI_PATHS_MEDIA": os.path.join(tmp, "p", "m")})
check("a plain tar from --no-gzip restores", out.returncode == 0, out.stderr)

wa.stop()
shutil.rmtree(tmp, ignore_errors=True)
done()
