"""Integration-test harness: starts real wapi processes on random loopback
ports against the test PostgreSQL, and reports PASS/FAIL lines."""
import atexit
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures = 0
passes = 0


def contract_log(kind, **rec):
    """With WAPI_CONTRACT_LOG=file, appends one JSON line per response
    (kind "response": method, path, status, type, body), SSE event
    ("sse": event, data) or webhook body ("webhook": body) a suite sees;
    tests/contract validates them against docs/openapi.json."""
    dest = os.environ.get("WAPI_CONTRACT_LOG")
    if not dest:
        return
    body = rec.get("body")
    if isinstance(body, (bytes, bytearray)):
        try:
            rec["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            rec["body"] = None  # bytes of a file: only status and type are checked
    rec["kind"] = kind
    rec["suite"] = os.path.basename(sys.argv[0])
    line = json.dumps(rec) + "\n"
    # One write of one line with O_APPEND: suites and threads do not interleave.
    fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def check(name, cond, detail=""):
    global failures, passes
    if cond:
        passes += 1
        print(f"PASS: {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL: {name}" + (f" ({detail})" if detail else ""), flush=True)
    return cond


def done():
    sys.exit(1 if failures else 0)


def wait(fn, timeout=15, step=0.05):
    """fn() until it is truthy or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def group_alive(pgid):
    """True while any process of the process group pgid is alive."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_supervisor(srv, timeout=40):
    """kill -9 of srv's supervisor alone; True once its workers have left by
    themselves (if they have not, they are killed)."""
    pgid = srv.proc.pid
    os.kill(pgid, signal.SIGKILL)
    srv.proc.wait(10)
    left = wait(lambda: not group_alive(pgid), timeout=timeout, step=0.1)
    if not left:
        os.killpg(pgid, signal.SIGKILL)
    return left


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def database_url():
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        out = subprocess.run([os.path.join(ROOT, "scripts/devdb.sh"), "start"], capture_output=True, text=True)
        url = out.stdout.strip()
    return url


def fresh_database(name):
    """A new, empty database next to the test one, so a suite does not see
    (or disturb) another suite's rows. Returns its URL."""
    base = database_url()
    admin = re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\1postgres", base)
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", admin, "-qAtX", "-c", sql], check=True, capture_output=True)
    return re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\g<1>" + name, base)


_servers = []


@atexit.register
def _cleanup():
    for s in _servers:
        s.kill()


class Server:
    def __init__(self, bindir="build", env=None, conf=None, workers=2, pg_url=None):
        self.dir = tempfile.mkdtemp(prefix="wapi-it-")
        self.port = free_port()
        self.bindir = os.path.join(ROOT, bindir)
        self.conf = os.path.join(self.dir, "wapi.conf")
        with open(self.conf, "w") as f:
            f.write(conf if conf is not None else "")
        self.log_path = os.path.join(self.dir, "wapi.log")
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("WAPI_") or k in ("PORT", "DATABASE_URL", "NODE_ENV", "BETTER_AUTH_SECRET"):
                del self.env[k]
        self.env.update({
            "DATABASE_URL": pg_url or database_url(),
            "WAPI_LISTEN": f"127.0.0.1:{self.port}",
            "WAPI_PATHS_RUN": os.path.join(self.dir, "run"),
            "WAPI_PATHS_SESSIONS": os.path.join(self.dir, "sessions"),
            "WAPI_PATHS_MEDIA": os.path.join(self.dir, "media"),
            "WAPI_WORKERS": str(workers),
            "WAPI_WHATSAPP_AUTOSTART": "false",
        })
        self.env.update(env or {})
        self.proc = None
        _servers.append(self)

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.t_exec = time.monotonic()
        self.proc = subprocess.Popen([os.path.join(self.bindir, "wapi"), "-c", self.conf], env=self.env,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st, _, _ = self.get("/readyz", timeout=1)
                if st == 200:
                    return True
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"wapi exited with {self.proc.returncode}: {self.log()[-2000:]}")
            time.sleep(0.02)
        raise RuntimeError("wapi not ready in time: " + self.log()[-2000:])

    def request(self, method, path, body=None, headers=None, timeout=5):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            hd = dict((k.lower(), v) for k, v in r.getheaders())
            contract_log("response", method=method, path=path, status=r.status, type=hd.get("content-type"), body=data)
            return r.status, hd, data
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def ctl(self, *args):
        out = subprocess.run([os.path.join(self.bindir, "wapictl"), "-s", os.path.join(self.dir, "run", "wapi.sock"),
                              *args], capture_output=True, text=True, timeout=10)
        try:
            return out.returncode, json.loads(out.stdout)
        except ValueError:
            return out.returncode, {"raw": out.stdout + out.stderr}

    def status(self):
        return self.ctl("status")[1]

    def worker_pids(self, state=None):
        st = self.status()
        return sorted(w["pid"] for w in st.get("workers", []) if state is None or w["state"] == state)

    def send(self, sig):
        os.kill(self.proc.pid, sig)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def metric(self, series):
        _, _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def wait_for(self, fn, timeout=10, step=0.02):
        return wait(fn, timeout, step)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def sanitizer_reports(self):
        return re.findall(r"(AddressSanitizer|LeakSanitizer|runtime error:.*)", self.log())


def socket_owner_pid(local_port, server_port, candidates):
    """Which of the candidate pids holds the server side of our connection
    (from 127.0.0.1:local_port to server_port)."""
    want = None
    for path in ("/proc/net/tcp",):
        with open(path) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                lp = int(parts[1].split(":")[1], 16)
                rp = int(parts[2].split(":")[1], 16)
                if lp == server_port and rp == local_port:
                    want = parts[9]
    if not want:
        return None
    for pid in candidates:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{want}]":
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None
