#!/usr/bin/env python3
"""make bench, WhatsApp part: wapi's supervisor against an unmodified Baileys
client, same fake server code, same run: CPU time of handshake + login from
saved credentials, and memory once connected and idle."""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from fakewa import FakeWA  # noqa: E402
from harness import ROOT, Server  # noqa: E402


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:  # first field: ns spent on a CPU
        return int(f.read().split()[0])


def mem_kb(pid, field):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def state(srv):
    return srv.ctl("session")[1].get("session", {}).get("state")


wa = FakeWA()
srv = Server(workers=1, env=wa.env()).start()
srv.wait_for(lambda: state(srv) == "qr", 15)
qr = srv.ctl("session", "qr")[1]["qr"]
wa.call("POST", "/phone/scan", {"qr": qr, "timeoutMs": 10000})
srv.wait_for(lambda: state(srv) == "connected", 15)
sessions = srv.env["WAPI_PATHS_SESSIONS"]
srv.stop()

srv = Server(workers=1, env=dict(wa.env(), WAPI_PATHS_SESSIONS=sessions, WAPI_WHATSAPP_AUTOSTART="false")).start()
pid = srv.proc.pid
samples = []
for _ in range(7):
    time.sleep(0.3)
    c0 = cpu_ns(pid)
    t0 = time.monotonic()
    srv.ctl("session", "start")
    srv.wait_for(lambda: state(srv) == "connected", 15, step=0.005)
    wall = time.monotonic() - t0
    samples.append(((cpu_ns(pid) - c0) / 1e6, wall * 1000))
    srv.ctl("session", "stop")
    srv.wait_for(lambda: state(srv) == "stopped", 5)
srv.ctl("session", "start")
srv.wait_for(lambda: state(srv) == "connected", 15)
time.sleep(2)
rss, pss = mem_kb(pid, "Rss"), mem_kb(pid, "Pss")
srv.stop()
wa.stop()

out = subprocess.run(["node", os.path.join(ROOT, "tests/bench/baileys_cost.mjs")], capture_output=True, text=True,
                     timeout=120)
try:
    b = json.loads(out.stdout.strip().splitlines()[-1])
except (ValueError, IndexError):
    b = {"ok": False}

cpu = statistics.median(s[0] for s in samples)
wall = statistics.median(s[1] for s in samples)
print()
print("WhatsApp handshake + login from saved credentials (median of 7), and idle memory once connected:")
print(f"  wapi supervisor: cpu {cpu:.1f} ms (incl. the session lock and the control calls), wall {wall:.0f} ms, "
      f"RSS {rss / 1024:.1f} MB, PSS {pss / 1024:.1f} MB   target RSS <= 8 MB "
      f"{'ok' if rss / 1024 <= 8 else 'ABOVE TARGET'}")
if b.get("ok"):
    bc = b["cpuUserMs"] + b["cpuSysMs"]
    print(f"  Baileys (Node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}): "
          f"cpu {bc} ms, wall {b['wallMs']} ms, RSS {b['rssIdleKb'] / 1024:.1f} MB idle "
          f"({b['rssBaselineKb'] / 1024:.1f} MB before connecting)")
    print(f"  ratio Baileys/wapi: cpu {bc / cpu:.1f}x, memory {b['rssIdleKb'] / rss:.1f}x")
else:
    print("  Baileys measurement failed:", out.stdout[-300:], out.stderr[-300:])
