#!/usr/bin/env python3
"""The linked-device client against the fake WhatsApp server and phone
(built on Baileys' pieces, verifying every signature and HMAC for real):
pairing, restart, login, prekeys, drops, bad frames, failures, logout,
exclusivity, and kill -9 at the worst moments."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done, fresh_database  # noqa: E402

os.environ["TEST_DATABASE_URL"] = fresh_database("wapi_it_whatsapp")


def session(srv):
    rc, r = srv.ctl("session")
    return r.get("session", {})


def state_is(srv, *states):
    return srv.wait_for(lambda: session(srv).get("state") in states, timeout=15, step=0.05)


def qr_text(srv):
    rc, r = srv.ctl("session", "qr")
    return r.get("qr")


def pair(srv, wa):
    state_is(srv, "qr")
    qr = qr_text(srv)
    res = wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000})
    return qr, res


def violations(wa):
    return [e for e in wa.events(0, "violation")]


wa = FakeWA()
sessions_dir = None

# 1. QR pairing end to end, then login after the 515 restart.
srv = Server(workers=1, env=wa.env()).start()
sessions_dir = srv.env["WAPI_PATHS_SESSIONS"]
check("a fresh session shows a QR code", state_is(srv, "qr"), session(srv))
qr = qr_text(srv)
parts = qr.split(",") if qr else []
check("QR text is ref,noise key,identity key,adv secret", len(parts) == 4 and all(
    len(__import__("base64").b64decode(p)) == 32 for p in parts[1:]), qr)
st, h, svg = srv.get("/api/session/qr")
res = wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000})
check("the phone scans our QR and the pairing completes (signatures verified by the fake server)",
      res.get("ok") is True and res.get("jid", "").startswith(wa.phone), res)
check("after the 515 restart the session logs in", state_is(srv, "connected"), session(srv))
s = session(srv)
check("session reports me.jid, me.lid and platform", s.get("me", {}).get("jid") == res.get("jid") and
      s["me"].get("lid") == res.get("lid") and s["me"].get("platform") == "android", s)
up = wa.wait_event("prekeys.upload")
check("812 prekeys uploaded on first login", up is not None and up.get("count") == 812, up)
check("<active/> sent", wa.wait_event("active") is not None)
check("the fake server saw no protocol violation", not violations(wa), violations(wa)[:2])
log = srv.log()
check("no secret in the logs", not re.search(r"(adv_secret|priv)", log) and
      parts and parts[3] not in log, "secret-like text found")

# 2. Restart: logs in from the store, no new QR.
seq = wa.last_seq()
srv.stop()
srv2 = Server(workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions_dir)).start()
check("wapi restarted logs in without a new QR", state_is(srv2, "connected") and
      not wa.events(seq, "qr.ref") and wa.events(seq, "login.ok"), session(srv2))
check("no second prekey upload when the server still has enough", not wa.events(seq, "prekeys.upload"))

# 3. The server drops the socket: reconnect.
seq = wa.last_seq()
wa.call("POST", "/drop", {"how": "terminate"})
check("socket dropped: reconnecting, then connected again",
      srv2.wait_for(lambda: wa.events(seq, "login.ok"), timeout=10) and state_is(srv2, "connected"))
log_lines = [l for l in srv2.log_lines() if l.get("msg") == "whatsapp connection lost; reconnecting"]
check("the log says why the connection dropped", log_lines and log_lines[-1].get("why"), log_lines[-1:])

# 4. Garbage, truncated, bad MAC, bad node: dropped and retried, never a crash.
pid = srv2.proc.pid
for kind in ("garbage", "truncated", "bad-mac", "bad-node"):
    seq = wa.last_seq()
    wa.call("POST", "/garbage", {"kind": kind})
    ok = srv2.wait_for(lambda: wa.events(seq, "login.ok"), timeout=12)
    check(f"{kind} frame: connection dropped and retried, logged in again", bool(ok) and state_is(srv2, "connected"),
          session(srv2))
# A frame header announcing 16 MiB then silence: we wait for the bytes (the
# keepalive would end it); memory must not jump to the announced size.
seq = wa.last_seq()


def rss_kb():
    return int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])


before = rss_kb()
wa.call("POST", "/garbage", {"kind": "oversize"})
time.sleep(0.5)
after = rss_kb()
check("an announced 16 MiB frame does not allocate 16 MiB up front", after - before < 2048, f"{before} -> {after} kB")
wa.call("POST", "/drop", {})
check("after the stalled frame, a drop reconnects", srv2.wait_for(lambda: wa.events(seq, "login.ok"), timeout=12) and
      state_is(srv2, "connected"))
check("the supervisor survived every bad frame", srv2.proc.poll() is None and srv2.proc.pid == pid)

# 5. Low prekeys: the server says so; we refill.
seq = wa.last_seq()
wa.call("POST", "/prekeys-low", {"count": 3})
up = wa.wait_event("prekeys.upload", seq)
check("low-prekey notification: more prekeys uploaded", up is not None and up.get("count", 0) >= 50, up)

# 6. Exclusivity: a second supervisor on the same database reports locked.
other = Server(workers=1, env=dict(wa.env())).start()
check("a second wapi on the same database is locked, not connecting", state_is(other, "locked"), session(other))
check("the first one stays connected", session(srv2).get("state") == "connected")
other.stop()

# 7. Failures mapped to states (on the next login).
seq = wa.last_seq()
wa.call("POST", "/fail-next-login", {"reason": 405})
wa.call("POST", "/drop", {})
check("failure 405 -> outdated", state_is(srv2, "outdated") and "405" in session(srv2).get("last_error", ""),
      session(srv2))
srv2.ctl("session", "start")
check("start after outdated logs in again", state_is(srv2, "connected"))
wa.call("POST", "/fail-next-login", {"reason": 402, "attrs": {"expire": "3600"}})
wa.call("POST", "/drop", {})
check("failure 402 -> banned with detail", state_is(srv2, "banned") and "402" in session(srv2).get("last_error", ""),
      session(srv2))
srv2.ctl("session", "start")
check("start after banned logs in again", state_is(srv2, "connected"))
wa.call("POST", "/stream-error", {"kind": "replaced"})
check("conflict replaced -> stopped, no reconnect", state_is(srv2, "stopped") and
      "replaced" in session(srv2).get("last_error", ""), session(srv2))
time.sleep(2)
check("replaced stays stopped", session(srv2).get("state") == "stopped")
srv2.ctl("session", "start")
check("start after replaced logs in again", state_is(srv2, "connected"))

# 8. Logout tells the server and wipes the credentials.
seq = wa.last_seq()
srv2.ctl("session", "logout")
check("logout -> logged_out", state_is(srv2, "logged_out"))
sent = [e for e in wa.events(seq, "recv") if "remove-companion-device" in str(e.get("node"))]
check("logout told the server (remove-companion-device)", bool(sent), wa.events(seq)[-3:])
check("logout wiped the credentials", not os.path.exists(os.path.join(sessions_dir, "creds.bin")))
srv2.stop()

# 9. The server removes the device: logged_out, credentials wiped.
srv3 = Server(workers=1, env=wa.env()).start()
qr, res = pair(srv3, wa)
state_is(srv3, "connected")
wa.call("POST", "/stream-error", {"kind": "device_removed"})
d3 = srv3.env["WAPI_PATHS_SESSIONS"]
check("device_removed -> logged_out and credentials wiped", state_is(srv3, "logged_out") and
      not os.path.exists(os.path.join(d3, "creds.bin")), session(srv3))
srv3.stop()

# 10. kill -9 during pairing and during prekey upload: the store stays valid.
for moment in ("pair.success-sent", "prekeys.upload"):
    srv4 = Server(workers=1, env=wa.env()).start()
    d4 = srv4.env["WAPI_PATHS_SESSIONS"]
    state_is(srv4, "qr")
    seq = wa.last_seq()
    import threading
    t = threading.Thread(target=lambda: wa.call("POST", "/phone/scan", {"qr": qr_text(srv4), "timeoutMs": 8000}))
    t.start()
    ev = wa.wait_event(moment, seq, timeout=10)
    os.killpg(srv4.proc.pid, signal.SIGKILL)
    srv4.proc.wait()
    t.join(15)
    srv5 = Server(workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=d4)).start()
    ok = state_is(srv5, "connected", "qr")
    s5 = session(srv5)
    check(f"kill -9 at {moment}: the store loads and the session goes on ({s5.get('state')})",
          ev is not None and ok and "corrupt" not in (s5.get("last_error") or ""), s5)
    srv5.stop()

# 11. A corrupt store is reported, never silently replaced.
srv6 = Server(workers=1, env=wa.env()).start()
d6 = srv6.env["WAPI_PATHS_SESSIONS"]
pair(srv6, wa)
state_is(srv6, "connected")
srv6.stop()
path = os.path.join(d6, "creds.bin")
data = bytearray(open(path, "rb").read())
data[60] ^= 0xFF
open(path, "wb").write(bytes(data))
srv7 = Server(workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=d6)).start()
time.sleep(1)
s7 = session(srv7)
check("a corrupt store is reported and not replaced", s7.get("state") == "stopped" and
      "corrupt" in (s7.get("last_error") or "") and open(path, "rb").read() == bytes(data), s7)
srv7.stop()

wa.stop()
done()
