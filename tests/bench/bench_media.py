#!/usr/bin/env python3
"""make bench, media: encrypting and decrypting a 64 MiB document the way a
media upload and download do (AES-256-CBC, HMAC-SHA256, SHA-256 of the
plaintext and of the upload), by wapi's streaming code
(build/tests/tools/wa_media_tool) and by Baileys' encryptedStream in the same
run, against the machine's limit measured with `openssl speed` on one core:
AES-256-CBC plus three SHA-256 passes per byte. Also the peak memory of each,
for 8 MiB and 64 MiB: streaming means it does not grow with the file.
Then GET /api/media/{id} of a 10 MB file (with an API key, through the
supervisor's descriptor) under wrk, against h2o's own file handler serving
the same file from the bare hello-h2o baseline, rounds interleaved.
Numbers, not assertions. The upload and download over HTTPS and the store
join this bench when the supervisor sends media."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = os.path.join(ROOT, "build/tests/tools/wa_media_tool")
KEY = "07" * 32
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def run_measured(cmd, stdin_path=None, cwd=None):
    """Wall seconds, CPU seconds and peak RSS (KiB) of one child (wait4)."""
    t0 = time.monotonic()
    with open(stdin_path or os.devnull, "rb") as fin:
        p = subprocess.Popen(cmd, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err.decode()[-300:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def wrk_get(port, path, headers=()):
    cmd = ["wrk", "-t2", "-c16", f"-d{os.environ.get('BENCH_SECONDS', '5')}s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    return (float(rps.group(1)) if rps else 0.0, float(tr.group(1)) * unit.get(tr.group(2), 1) if tr else 0.0,
            int(non2xx.group(1)) if non2xx else 0)


def bench_get():
    """GET /api/media/{id} of 10 MB vs hello-h2o's file handler, same file."""
    sys.path.insert(0, os.path.join(ROOT, "tests/bench"))
    sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
    import bench_msg as bm  # the server and API key helpers of the message bench
    from harness import free_port
    tmp = tempfile.mkdtemp(prefix="wapi-bench-get-")
    data = b"%PDF-1.4\n" + os.urandom(10 * 1000 * 1000 - 9)
    with open(os.path.join(tmp, "doc.pdf"), "wb") as f:
        f.write(data)
    db = bm.new_db("media")
    srv = bm.start_server({}, db)
    hport = free_port()
    hello = subprocess.Popen([os.path.join(ROOT, "build/tests/hello-h2o"), str(hport), str(len(srv.worker_pids())), tmp],
                             start_new_session=True)
    try:
        key = bm.api_key(srv)
        st, _, body = srv.request("POST", "/api/media", body=data,
                                  headers={"X-Api-Key": key, "Content-Type": "application/pdf"}, timeout=60)
        if st != 201:
            raise RuntimeError(f"upload: {st} {body[:200]}")
        mid = json.loads(body)["id"]
        time.sleep(0.3)
        print(f"GET /api/media/{{id}} of 10 MB with an API key (wrk -c16), against hello-h2o's file handler, "
              f"{len(srv.worker_pids())} processes each")
        w_all, h_all = [], []
        for r in range(ROUNDS):
            w = wrk_get(srv.port, f"/api/media/{mid}", [f"X-Api-Key: {key}"])
            h = wrk_get(hport, "/files/doc.pdf")
            w_all.append(w)
            h_all.append(h)
            print(f"round {r + 1}: wapi {w[0]:,.0f} req/s {w[1] / 1e6:,.0f} MB/s (non-2xx {w[2]})   "
                  f"hello-h2o {h[0]:,.0f} req/s {h[1] / 1e6:,.0f} MB/s   ratio {w[0] / h[0] if h[0] else 0:.2f}",
                  flush=True)
        import statistics
        mw = statistics.median(x[1] for x in w_all)
        mh = statistics.median(x[1] for x in h_all)
        print(f"GET /api/media (median): {mw / 1e6:,.0f} MB/s vs hello-h2o {mh / 1e6:,.0f} MB/s: "
              f"ratio {mw / mh if mh else 0:.2f}")
    finally:
        os.killpg(hello.pid, signal.SIGTERM)
        srv.stop()
        subprocess.run(["rm", "-rf", tmp])


def openssl_rate(alg):
    out = subprocess.run(["openssl", "speed", "-evp", alg, "-bytes", "65536", "-seconds", "2"],
                         capture_output=True, text=True).stdout
    m = re.search(r"^\S+\s+([\d.]+)k\s*$", out.strip().splitlines()[-1])
    return float(m.group(1)) * 1000 if m else None  # bytes/s


BAILEYS = r"""
import { encryptedStream } from 'baileys';
import fs from 'node:fs';
const r = await encryptedStream({ stream: fs.createReadStream(process.argv[2]) }, 'document');
fs.rmSync(r.encFilePath, { force: true });
"""


def main():
    if not os.path.exists(TOOL):
        print("bench_media: build/tests/tools/wa_media_tool is not built", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="wapi-bench-media-")
    files = {}
    for mib in (8, 64):
        path = os.path.join(tmp, f"doc{mib}")
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        files[mib] = path
    enc64 = os.path.join(tmp, "doc64.enc")
    with open(files[64], "rb") as fin, open(enc64, "wb") as fout:
        subprocess.run([TOOL, "encrypt", "document", KEY], stdin=fin, stdout=fout, check=True, stderr=subprocess.DEVNULL)
    script = os.path.join(ROOT, "tests/wa/.bench_media_baileys.mjs")
    with open(script, "w") as f:
        f.write(BAILEYS)
    size = 64 << 20
    print("media: encrypt/decrypt a 64 MiB document (AES-256-CBC + HMAC-SHA256 + two SHA-256), one core")
    try:
        aes, sha = openssl_rate("aes-256-cbc"), openssl_rate("sha256")
        limit = 1 / (1 / aes + 3 / sha) if aes and sha else None
        if limit:
            print(f"openssl speed (64 KiB blocks): AES-256-CBC {aes / 1e6:,.0f} MB/s, SHA-256 {sha / 1e6:,.0f} MB/s; "
                  f"limit for encrypting (AES + 3 x SHA-256 per byte): {limit / 1e6:,.0f} MB/s")
        for r in range(ROUNDS):
            w_enc, c_enc, _ = run_measured([TOOL, "encrypt", "document", KEY], files[64])
            w_dec, c_dec, _ = run_measured([TOOL, "decrypt", "document", KEY], enc64)
            w_bl, c_bl, _ = run_measured(["node", script, files[64]], cwd=os.path.join(ROOT, "tests/wa"))
            line = (f"round {r + 1}: wapi encrypt {size / w_enc / 1e6:,.0f} MB/s ({c_enc / 64 * 1000:.1f} ms CPU/MB), "
                    f"decrypt+verify {size / w_dec / 1e6:,.0f} MB/s ({c_dec / 64 * 1000:.1f} ms CPU/MB); "
                    f"Baileys encryptedStream {size / w_bl / 1e6:,.0f} MB/s ({c_bl / 64 * 1000:.1f} ms CPU/MB); "
                    f"wapi/Baileys {w_bl / w_enc:.2f}x")
            if limit:
                line += f"; wapi encrypt / openssl limit {size / w_enc / limit:.2f}"
            print(line, flush=True)
        rss = {mib: run_measured([TOOL, "encrypt", "document", KEY], files[mib])[2] for mib in (8, 64)}
        brss = {mib: run_measured(["node", script, files[mib]], cwd=os.path.join(ROOT, "tests/wa"))[2]
                for mib in (8, 64)}
        print(f"peak RSS, 8 MiB vs 64 MiB file: wapi encrypt {rss[8] / 1024:.1f} / {rss[64] / 1024:.1f} MiB "
              f"(growth {(rss[64] - rss[8]) / 1024:+.1f} MiB; target < 4); Baileys {brss[8] / 1024:.1f} / "
              f"{brss[64] / 1024:.1f} MiB")
    finally:
        os.unlink(script)
        subprocess.run(["rm", "-rf", tmp])
    print()
    bench_get()
    return 0


if __name__ == "__main__":
    sys.exit(main())
