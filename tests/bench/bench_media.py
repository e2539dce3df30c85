#!/usr/bin/env python3
"""make bench, media: encrypting and decrypting a 64 MiB document the way a
media upload and download do (AES-256-CBC, HMAC-SHA256, SHA-256 of the
plaintext and of the upload), by wapi's streaming code
(build/tests/tools/wa_media_tool) and by Baileys' encryptedStream in the same
run, against the machine's limit measured with `openssl speed` on one core:
AES-256-CBC plus three SHA-256 passes per byte. Also the peak memory of each,
for 8 MiB and 64 MiB: streaming means it does not grow with the file.
Numbers, not assertions. The upload and download over HTTPS and the store
join this bench when the supervisor sends media."""
import os
import re
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
