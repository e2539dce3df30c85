#!/usr/bin/env python3
"""make bench, history sync import. Numbers, not assertions.

The fake phone (tests/wa/lib/fake_history.mjs) sends one FULL history chunk
of BENCH_HIST_MESSAGES messages across BENCH_HIST_CHATS chats, built with
Baileys' HistorySync encoder, deflated, encrypted and put on the fake media
hosts. Measured: the time from the notification's arrival to the chunk's
commit (download, decryption, streaming decode and the import of every
chat and message in one transaction), as messages/s, and the supervisor's
peak RSS (its kernel high-water mark, and sampled) against its RSS before.
In the same run, Baileys decodes the very same blob its own way (inflate
whole, proto.HistorySync.decode: tests/wa/history_vectors.mjs decode), for
the ratio; Baileys stores nothing, so wapi's figure includes PostgreSQL's
work and Baileys' does not.

Environment: BENCH_HIST_CHATS (2000), BENCH_HIST_MESSAGES (100000),
BENCH_HIST_BINDIR (the binaries measured, default build/)."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server, wait  # noqa: E402
import linked  # noqa: E402

CHATS = int(os.environ.get("BENCH_HIST_CHATS", "2000"))
MSGS = int(os.environ.get("BENCH_HIST_MESSAGES", "100000"))
BIN = os.environ.get("BENCH_HIST_BINDIR", "build")


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    db = linked.private_database(f"wapi_bench_history_{os.getpid()}")
    tmp = tempfile.mkdtemp(prefix="wapi-bench-hist-")
    wa = FakeWA("--media-ca", tmp)
    env = wa.env()
    env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca,
                "WAPI_MEDIA_AUTO_DOWNLOAD": ""})
    srv = Server(bindir=BIN, workers=2, env=env, pg_url=db)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    try:
        api = linked.Api(srv)
        if not api.link(wa):
            print("history: could not link to the fake phone")
            return 1
        sup = srv.proc.pid
        time.sleep(1)
        rss0 = status_kb(sup, "VmRSS")
        blob = os.path.join(tmp, "history.zz")
        per = max(1, MSGS // CHATS)
        r = wa.call("POST", "/phone/history", {"syncType": "FULL", "chunkOrder": 0, "progress": 100,
                                               "bulk": {"chats": CHATS, "perChat": per, "textBytes": 60},
                                               "saveTo": blob}, timeout=300)
        if not r.get("ok"):
            print("history: the fake phone could not send the chunk", r)
            return 1
        peak = rss0
        t = time.monotonic()

        def state():
            rows = linked.psql(db, "SELECT state, messages, extract(epoch FROM done_at - received_at) "
                                   "FROM wa_history_jobs WHERE message_id = :'p0'", r["id"])
            return rows[0] if rows else None

        while time.monotonic() - t < 900:
            peak = max(peak, status_kb(sup, "VmRSS"))
            st = state()
            if st and st[0] != "pending":
                break
            time.sleep(0.05)
        peak = max(peak, status_kb(sup, "VmHWM"))
        st = state()
        if not st or st[0] != "done":
            print("history: the chunk was not imported", st)
            return 1
        secs = float(st[2])
        n = int(st[1])
        out = subprocess.run(["node", os.path.join(ROOT, "tests/wa/history_vectors.mjs"), tmp, "decode", blob],
                             capture_output=True, text=True)
        b = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
        print(f"history import: {n} messages across {CHATS} chats, {r['bytes'] / 1e6:.1f} MB deflated, "
              f"{r['inflated'] / 1e6:.1f} MB inflated")
        print(f"  wapi: {secs:.2f} s from arrival to commit (download, decrypt, decode, store) = "
              f"{n / secs:,.0f} messages/s; supervisor RSS {rss0 / 1024:.1f} MB before, peak "
              f"{peak / 1024:.1f} MB (+{(peak - rss0) / 1024:.1f} MB)")
        if b:
            print(f"  Baileys (decode only, inflate whole + HistorySync.decode): {b['seconds']:.2f} s = "
                  f"{b['msgs_per_s']:,} messages/s, peak RSS {b['rss_kb'] / 1024:.1f} MB")
            print(f"  ratio wapi/Baileys (messages/s): {(n / secs) / max(1, b['msgs_per_s']):.2f}; "
                  f"peak RSS growth wapi {(peak - rss0) / 1024:.1f} MB vs Baileys' process "
                  f"{b['rss_kb'] / 1024:.1f} MB")
        else:
            print("  Baileys decode failed:", out.stderr[-400:])
        return 0
    finally:
        srv.stop()
        wa.stop()


if __name__ == "__main__":
    sys.exit(main())
