#!/usr/bin/env python3
"""The memory of one idle, linked number as its pod would show it: the image
run by podman with the pod's settings (read-only root, uid 1001, two workers,
a pool of 4), against a private PostgreSQL (its socket bind-mounted) and the
fake WhatsApp server of tests/wa on this machine, linked by QR, then left
idle; the container's own cgroup (memory.current and memory.stat) read at 0,
60 and 120 s. Not part of `make test` (it needs the image: `make image`).

    python3 tests/bench/number_memory.py [IMAGE]     (as root; default localhost/wapi:latest)
"""
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
from fakewa import FakeWA  # noqa: E402
from harness import fresh_database, free_port, wait  # noqa: E402
from linked import Api  # noqa: E402

IMAGE = sys.argv[1] if len(sys.argv) > 1 else "localhost/wapi:latest"
PODMAN = ["podman", "--runtime", "runc"]
NAME = f"wapi-mem-{os.getpid()}"


class Srv:
    """What linked.Api needs of a server: its port and request()."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, headers=None, timeout=20):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def cgroup_dir():
    """The container's memory cgroup on the host (cgroup v2, or v1's memory controller)."""
    pid = subprocess.run([*PODMAN, "inspect", "-f", "{{.State.Pid}}", NAME], capture_output=True,
                         text=True).stdout.strip()
    for line in open(f"/proc/{pid}/cgroup"):
        hid, ctrl, path = line.rstrip("\n").split(":", 2)
        if hid == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            return "v2", "/sys/fs/cgroup" + path
        if "memory" in ctrl.split(","):
            return "v1", "/sys/fs/cgroup/memory" + path
    sys.exit("no memory cgroup for the container")


def sample(t):
    ver, d = cgroup_dir()
    stat = dict(line.split() for line in open(os.path.join(d, "memory.stat")) if line.strip())
    mib = lambda v: round(int(v) / 2**20, 1)  # noqa: E731
    if ver == "v2":
        return {"t_s": t, "cgroup": ver, "memory_mib": mib(open(os.path.join(d, "memory.current")).read()),
                "anon_mib": mib(stat.get("anon", 0)), "file_mib": mib(stat.get("file", 0)),
                "kernel_mib": mib(stat.get("kernel", 0))}
    kmem = os.path.join(d, "memory.kmem.usage_in_bytes")
    return {"t_s": t, "cgroup": ver, "memory_mib": mib(open(os.path.join(d, "memory.usage_in_bytes")).read()),
            "rss_mib": mib(stat.get("total_rss", 0)), "cache_mib": mib(stat.get("total_cache", 0)),
            "mapped_file_mib": mib(stat.get("total_mapped_file", 0)),
            "kernel_mib": mib(open(kmem).read()) if os.path.exists(kmem) else None}


def main():
    db = fresh_database(f"wapi_mem_{os.getpid()}")
    sock = db.split("host=")[1].split("&")[0]
    os.chmod(sock, 0o755)
    dbname = db.split("/")[3].split("?")[0]
    tmp = tempfile.mkdtemp(prefix="wapi-mem-")
    for d in ("sessions", "media"):
        os.mkdir(os.path.join(tmp, d))
        os.chown(os.path.join(tmp, d), 1001, 1001)
    wa = FakeWA()
    port = free_port()
    env = dict(wa.env(), BETTER_AUTH_URL=f"http://127.0.0.1:{port}",
               BETTER_AUTH_SECRET=secrets.token_urlsafe(36), PORT=str(port), WAPI_WORKERS="2",
               WAPI_DATABASE_POOL="4", DATABASE_URL=f"postgresql:///{dbname}?host=/run/wapi-pg&user=wapi",
               WAPI_AUTH_REGISTRATION="open")
    args = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
            "--user", "1001:1001", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--network", "host", "--tmpfs", "/tmp:rw,size=64m,mode=1777", "--health-interval=disable",
            "-v", f"{sock}:/run/wapi-pg", "-v", f"{tmp}/sessions:/app/whatsapp_sessions",
            "-v", f"{tmp}/media:/app/public/media"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    try:
        subprocess.run([*PODMAN, "run", "-d", "--name", NAME, *args, IMAGE], check=True, capture_output=True)
        srv = Srv(port)
        def healthy():
            try:
                return srv.request("GET", "/readyz")[0] == 200
            except OSError:
                return False
        if not wait(healthy, timeout=60):
            logs = subprocess.run([*PODMAN, "logs", NAME], capture_output=True, text=True)
            sys.exit("the container did not come up: " + (logs.stdout + logs.stderr)[-1500:])
        api = Api(srv)
        if not api.key:
            origin = f"http://127.0.0.1:{port}"
            r = srv.request("POST", "/api/auth/sign-up/email", body=json.dumps(
                {"email": "x@example.com", "password": "password-123", "name": "x"}).encode(),
                headers={"content-type": "application/json", "origin": origin})
            logs = subprocess.run([*PODMAN, "logs", NAME], capture_output=True, text=True)
            sys.exit(f"could not sign up: {r[0]} {r[2][:300]} " + (logs.stdout + logs.stderr)[-800:])
        if not api.link(wa):
            logs = subprocess.run([*PODMAN, "logs", NAME], capture_output=True, text=True)
            sys.exit(f"could not link: {api('GET', '/api/session')} " + (logs.stdout + logs.stderr)[-1500:])
        for t in (0, 60, 120):
            if t:
                time.sleep(60)
            print(json.dumps(sample(t)), flush=True)
        img = subprocess.run([*PODMAN, "image", "inspect", IMAGE, "--format", "{{.Id}} {{.Created}}"],
                             capture_output=True, text=True).stdout.strip()
        print(f"# image {IMAGE} ({img}); session {api('GET', '/api/session')[1].get('state')}")
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "0", NAME], capture_output=True)
        wa.stop()
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
