#!/usr/bin/env python3
"""make bench, history sync import. Numbers, not assertions.

One blob of 100,000 messages across 2,000 chats (with push names and LID
mappings), made by Baileys' HistorySync encoder and deflated
(tests/wa/history_vectors.mjs bench), is measured three ways in one run:
  - wapi's import: the fake phone (tests/wa/lib/fake_history.mjs) encrypts
    it, puts it on the fake media hosts and announces it; from the
    notification's arrival to the chunk's commit (download, decryption,
    streaming decode, every chat and message stored in one transaction), as
    messages/s, and the supervisor's peak RSS (kernel high-water mark, and
    sampled) against its RSS before;
  - wapi's decoder alone on the same blob (tests/tools/wa_history_rss: the
    streaming decoder and wa_msg_parse of every message, digest checked);
  - Baileys decoding the same blob its own way (inflate whole,
    proto.HistorySync.decode: history_vectors.mjs decode).
Baileys stores nothing: compare wapi's decoder with Baileys' decode; the
import adds PostgreSQL's work.

Environment: BENCH_HIST_BINDIR (the binaries measured, default build/)."""
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
        vec = subprocess.run(["node", os.path.join(ROOT, "tests/wa/history_vectors.mjs"), tmp, "bench"],
                             capture_output=True, text=True)
        if vec.returncode != 0:
            print("history: cannot make the blob", vec.stderr[-400:])
            return 1
        blob = os.path.join(tmp, "bench.zz")
        want = json.load(open(os.path.join(tmp, "bench.json")))
        r = wa.call("POST", "/phone/history", {"syncType": "FULL", "chunkOrder": 0, "progress": 100,
                                               "blobFile": blob}, timeout=300)
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
        dec = subprocess.run([os.path.join(ROOT, BIN, "tests/tools/wa_history_rss"), blob,
                              os.path.join(tmp, "bench.json"), "1024"], capture_output=True, text=True)
        d = json.loads(dec.stdout.strip().splitlines()[-1]) if dec.stdout.strip() else {}
        print(f"history import: {n} of {want['messages']} messages stored across {want['conversations']} chats, "
              f"{r['bytes'] / 1e6:.1f} MB deflated, {r['inflated'] / 1e6:.1f} MB inflated")
        print(f"  wapi: {secs:.2f} s from arrival to commit (download, decrypt, decode, store) = "
              f"{n / secs:,.0f} messages/s; supervisor RSS {rss0 / 1024:.1f} MB before, peak "
              f"{peak / 1024:.1f} MB (+{(peak - rss0) / 1024:.1f} MB)")
        if d:
            ok = "ok" if d.get("digest_ok") else "WRONG"
            print(f"  wapi's decoder alone (stream + wa_msg_parse, digest {ok}): "
                  f"{d['seconds']:.2f} s = {d['msgs_per_s']:,.0f} messages/s, peak RSS {d['peak_rss_kb'] / 1024:.1f} MB")
        else:
            print("  wapi's decoder failed:", dec.stderr[-400:])
        if b:
            print(f"  Baileys (decode only, inflate whole + HistorySync.decode): {b['seconds']:.2f} s = "
                  f"{b['msgs_per_s']:,} messages/s, peak RSS {b['rss_kb'] / 1024:.1f} MB")
            if d:
                print(f"  ratio decode wapi/Baileys (messages/s): {d['msgs_per_s'] / max(1, b['msgs_per_s']):.2f}; "
                      f"peak RSS {d['peak_rss_kb'] / 1024:.1f} MB vs {b['rss_kb'] / 1024:.1f} MB")
            print(f"  ratio import wapi/decode Baileys (messages/s): {(n / secs) / max(1, b['msgs_per_s']):.2f}; "
                  f"peak RSS growth of the supervisor {(peak - rss0) / 1024:.1f} MB")
        else:
            print("  Baileys decode failed:", out.stderr[-400:])
        return 0
    finally:
        srv.stop()
        wa.stop()


if __name__ == "__main__":
    sys.exit(main())
