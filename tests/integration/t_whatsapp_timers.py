#!/usr/bin/env python3
"""The WhatsApp client's clocks, in real time (about two minutes): the QR
code rotates after 60 s and then every 20 s, the keepalive ping goes out
every 25 s and is answered, and a server that stops answering is left for
a fresh connection."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, check, done, fresh_database  # noqa: E402

os.environ["TEST_DATABASE_URL"] = fresh_database("wapi_it_whatsapp_timers")
from fakewa import FakeWA  # noqa: E402

wa = FakeWA("--qr-first-ms", "120000", "--qr-next-ms", "120000")


def session(srv):
    return srv.ctl("session")[1].get("session", {})


def qr(srv):
    return srv.ctl("session", "qr")[1].get("qr")


# QR rotation: the same QR for 60 s, then the next ref, 20 s later the next.
srv = Server(workers=1, env=wa.env()).start()
srv.wait_for(lambda: session(srv).get("state") == "qr", 15)
q1, t1 = qr(srv), time.monotonic()
srv.wait_for(lambda: qr(srv) != q1, 70, step=0.2)
q2, t2 = qr(srv), time.monotonic()
srv.wait_for(lambda: qr(srv) != q2, 30, step=0.2)
q3, t3 = qr(srv), time.monotonic()
check("the first QR code is shown for 60 s", q2 and q2 != q1 and 57 <= t2 - t1 <= 63, f"{t2 - t1:.1f}s")
check("the next ones for 20 s each", q3 and q3 != q2 and 18 <= t3 - t2 <= 22, f"{t3 - t2:.1f}s")
check("each QR carries the next ref of the server", q1.split(",")[0] != q2.split(",")[0] != q3.split(",")[0] and
      q1.split(",")[1:] == q2.split(",")[1:], (q1[:20], q2[:20]))

# Pair, then watch the keepalive.
res = wa.call("POST", "/phone/scan", {"qr": q3, "timeoutMs": 10000})
check("paired with the rotated QR", res.get("ok") is True, res)
srv.wait_for(lambda: session(srv).get("state") == "connected", 15)
seq = wa.last_seq()
t0 = time.monotonic()
ping = wa.wait_event("ping", seq, timeout=35)
check("a keepalive ping goes out within 25 s of login", ping is not None and time.monotonic() - t0 <= 28,
      f"{time.monotonic() - t0:.1f}s")
# Silence: the server stops answering; the client gives up on it and reconnects.
wa.call("POST", "/config", {"silent": True})
seq = wa.last_seq()
t0 = time.monotonic()
gone = srv.wait_for(lambda: wa.events(seq, "close"), timeout=70, step=0.5)
dt = time.monotonic() - t0
wa.call("POST", "/config", {"silent": False})
check("an unanswered keepalive ends the connection (within ping interval + timeout)", bool(gone) and dt <= 50,
      f"{dt:.1f}s")
check("and a new connection logs in", srv.wait_for(lambda: wa.events(seq, "login.ok"), timeout=30) and
      srv.wait_for(lambda: session(srv).get("state") == "connected", 15))
why = [l for l in srv.log_lines() if l.get("msg") == "whatsapp connection lost; reconnecting"]
check("the log says the keepalive went unanswered", why and "keepalive" in why[-1].get("why", ""), why[-1:])
srv.stop()
wa.stop()
done()
