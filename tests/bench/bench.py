#!/usr/bin/env python3
"""make bench: wapi against a bare libh2o hello-world built from the same
libraries, measured side by side in one run (interleaved rounds, medians),
plus idle memory and time from exec to the first /readyz 200."""
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import ROOT, Server, free_port  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "64"))


def wrk(port, path):
    out = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{SECS}s", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = "Socket errors" in out or "Non-2xx" in out
    return rps, errors


def mem_kb(pid, field):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    nproc = os.cpu_count() or 1
    # Time from exec to the first /readyz 200, PostgreSQL already up.
    times = []
    for _ in range(5):
        srv = Server(workers=nproc)
        srv.start(wait=False)
        srv.wait_ready()
        times.append((time.monotonic() - srv.t_exec) * 1000)
        srv.stop()
    ready_ms = statistics.median(times)

    srv = Server(workers=nproc, env={"WAPI_LOG_FILE": os.path.join(ROOT, "var/bench-wapi.log")}).start()
    time.sleep(2)
    pids = [srv.proc.pid] + srv.worker_pids()
    rss = sum(mem_kb(p, "Rss") for p in pids) / 1024
    pss = sum(mem_kb(p, "Pss") for p in pids) / 1024

    hport = free_port()
    hello = subprocess.Popen([os.path.join(ROOT, "build/tests/hello-h2o"), str(hport), str(nproc)],
                             start_new_session=True)
    time.sleep(0.5)
    wapi_rps, hello_rps, errs = [], [], False
    for r in range(ROUNDS):  # interleaved so drift on a noisy machine hits both alike
        a, e1 = wrk(srv.port, "/healthz")
        b, e2 = wrk(hport, "/")
        wapi_rps.append(a)
        hello_rps.append(b)
        errs |= e1 or e2
        print(f"round {r + 1}: wapi /healthz {a:,.0f} req/s   hello-h2o {b:,.0f} req/s   ratio {a / b:.2f}",
              flush=True)
    os.killpg(hello.pid, signal.SIGTERM)
    srv.stop()
    ratio = statistics.median(wapi_rps) / statistics.median(hello_rps)
    print()
    print(f"workers: {nproc}; wrk -t2 -c{CONNS} -d{SECS}s x {ROUNDS} rounds; access log on (to a file)")
    print(f"throughput ratio wapi/hello-h2o (median): {ratio:.2f}   target >= 0.80   "
          f"{'ok' if ratio >= 0.8 else 'BELOW TARGET'}{'   (errors seen!)' if errs else ''}")
    print(f"idle memory, supervisor + {nproc} workers: PSS {pss:.1f} MB (RSS sum {rss:.1f} MB)   target <= 16 MB   "
          f"{'ok' if pss <= 16 else 'ABOVE TARGET'}")
    print(f"exec -> first /readyz 200: {ready_ms:.0f} ms median of 5 ({', '.join(f'{t:.0f}' for t in times)})   "
          f"target <= 300 ms   {'ok' if ready_ms <= 300 else 'ABOVE TARGET'}")


main()
