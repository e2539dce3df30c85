#!/usr/bin/env python3
"""Two or more builds side by side on the durable enqueue, for chasing a
regression: one server per build directory (each with its own database on
the same PostgreSQL), wrk rounds interleaved (the order reversed every other
round) so a noisy machine hits all alike, and the CPU each request costs in
the workers, the supervisor and PostgreSQL (from /proc), which tells where a
difference comes from.

  python3 tests/bench/bench_ab.py BUILD_DIR [BUILD_DIR ...]
  e.g. git worktree add --detach /work/wt-old OLD && make -C /work/wt-old -j2 all
       python3 tests/bench/bench_ab.py /work/wt-old/build build

BENCH_ROUNDS (4), BENCH_SECONDS (4) and BENCH_CONNECTIONS (64) as in
bench_msg.py. Ratios are against the first directory. Numbers, not
assertions."""
import glob
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import bench_msg as bm  # noqa: E402
from harness import Server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                x = f.read().rsplit(")", 1)[1].split()
            total += int(x[11]) + int(x[12])
        except OSError:
            pass
    return total / TICK


def postgres_pids():
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().startswith("postgres"):
                    out.append(d[6:])
        except OSError:
            pass
    return out


def main(dirs):
    rounds = int(os.environ.get("BENCH_ROUNDS", "4"))
    servers = []
    for i, d in enumerate(dirs):
        s = Server(bindir=os.path.abspath(d), env={"WAPI_WORKERS": "auto"}, pg_url=bm.new_db(f"ab{i}"))
        s.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{s.port}"
        s.start()
        key = bm.api_key(s)
        st, js = bm.Api(s, key)("POST", "/api/messages", {"to": "+1 555 000 9999", "text": "warm-up"})
        if st != 202:
            raise RuntimeError(f"{d}: POST /api/messages: {st} {js}")
        servers.append((d, s, key))
    res = {d: [] for d in dirs}
    try:
        for r in range(rounds):
            for d, s, key in (servers if r % 2 == 0 else servers[::-1]):
                parts = (s.worker_pids(), [s.proc.pid], postgres_pids())
                c0 = [cpu_of(p) for p in parts]
                one = bm.wrk(s.port, "/api/messages", [key, "+15550009999"])
                c1 = [cpu_of(p) for p in (parts[0], parts[1], postgres_pids())]
                eight = bm.wrk(s.port, "/api/messages", [key, "+15550009999"], conns=8)
                us = [(c1[i] - c0[i]) * 1e6 / max(one["requests"], 1) for i in range(3)]
                res[d].append((one["rps"], eight["rps"], *us))
                print(f"round {r + 1} {d}: {one['rps']:,.0f} req/s ({bm.CONNS} conns), {eight['rps']:,.0f} req/s "
                      f"(8 conns); CPU per request: workers {us[0]:.1f} µs, supervisor {us[1]:.1f}, "
                      f"PostgreSQL {us[2]:.1f}", flush=True)
        base = [statistics.median(c) for c in zip(*res[dirs[0]])]
        print("median (ratio to the first):")
        for d in dirs:
            m = [statistics.median(c) for c in zip(*res[d])]
            print(f"{d}: {m[0]:,.0f} req/s ({m[0] / base[0]:.3f}), 8 conns {m[1]:,.0f} ({m[1] / base[1]:.3f}); "
                  f"µs/request workers {m[2]:.1f} supervisor {m[3]:.1f} PostgreSQL {m[4]:.1f}")
    finally:
        for _, s, _ in servers:
            s.stop()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
