#!/usr/bin/env python3
"""The supervisor under real signals: kill -9 of a worker under load, HUP
under load and with a broken config, TERM with a request in flight,
TTIN/TTOU, WINCH, USR1, the watchdog, crash-loop backoff, wapictl, PID 1."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Server, check, done, socket_owner_pid  # noqa: E402


class Loader:
    """Keep-alive connections, each sending requests back to back; records
    which worker holds each connection and the errors it saw."""

    def __init__(self, srv, n, path="/healthz"):
        self.srv, self.n, self.path = srv, n, path
        self.stop = False
        self.stats = [{"ok": 0, "err": 0, "owner": None, "errs": []} for _ in range(n)]
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(n)]

    def connect(self, i):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
        return s

    def run(self, i):
        st = self.stats[i]
        req = f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        s = None
        while not self.stop:
            try:
                if s is None:
                    s = self.connect(i)
                    st["port"] = s.getsockname()[1]
                    st["owner"] = None
                s.sendall(req)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    b = s.recv(4096)
                    if not b:
                        raise ConnectionError("closed")
                    buf += b
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: (\d+)", head)
                need = int(m.group(1)) if m else 0
                while len(rest) < need:
                    b = s.recv(4096)
                    if not b:
                        raise ConnectionError("closed mid-body")
                    rest += b
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(head[:40].decode())
                st["ok"] += 1
                if b"connection: close" in head.lower():
                    s.close()
                    s = None
            except (OSError, ConnectionError) as e:
                st["err"] += 1
                st["errs"].append((time.monotonic(), str(e)))
                if s:
                    s.close()
                s = None
                time.sleep(0.01)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def owners(self, pids):
        for st in self.stats:
            if st.get("port"):
                st["owner"] = socket_owner_pid(st["port"], self.srv.port, pids)

    def finish(self):
        self.stop = True
        for t in self.threads:
            t.join(5)


def wrk(srv, seconds, conns=32, path="/healthz"):
    return subprocess.Popen(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", f"http://127.0.0.1:{srv.port}{path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(p):
    out = p.communicate(timeout=60)[0]
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    return total, "Non-2xx" in out, "Socket errors" in out, out


def kill9_under_load():
    srv = Server(workers=2).start()
    pids = srv.worker_pids("ready")
    time.sleep(5.2)  # past the young-crash window: a long-lived worker's death respawns at once
    load = Loader(srv, 16).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a busy machine may take a while to open all 16
        time.sleep(0.2)
        load.owners(pids)
        if all(st["owner"] for st in load.stats):
            break
    victim = pids[0]
    held = [st for st in load.stats if st["owner"] == victim]
    others = [st for st in load.stats if st["owner"] and st["owner"] != victim]
    check("load spread over both workers", len(held) > 0 and len(others) > 0,
          f"{[st['owner'] for st in load.stats]}")
    before_other_err = sum(st["err"] for st in others)
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    new = srv.wait_for(lambda: [p for p in srv.worker_pids("ready") if p not in pids], timeout=3, step=0.01)
    dt = time.monotonic() - t0
    check("kill -9 of a worker: a new one is ready within 1 s", bool(new) and dt < 1.0, f"{dt:.3f}s {new}")
    time.sleep(1.0)
    load.finish()
    after_other_err = sum(st["err"] for st in others)
    check("no errors on connections held by the other worker", after_other_err == before_other_err,
          [st["errs"][:2] for st in others if st["errs"]])
    check("requests kept flowing on the other worker", all(st["ok"] > 10 for st in others))
    check("restart counted in /metrics", srv.metric("wapi_worker_restarts_total") == 1)
    logs = [l for l in srv.log_lines() if l.get("msg", "").startswith("worker died")]
    check("the death is logged with its signal", logs and "signal 9" in logs[0].get("how", ""), logs[:1])
    srv.stop()


def hup_under_load():
    srv = Server(workers=2).start()
    old = srv.worker_pids()
    p = wrk(srv, 4)
    time.sleep(1.0)
    srv.send(signal.SIGHUP)
    ok = srv.wait_for(lambda: srv.status().get("generation") == 2 and len(srv.worker_pids("ready")) == 2 and
                      not set(srv.worker_pids()) & set(old), timeout=6)
    total, non2xx, sockerr, out = wrk_result(p)
    check("HUP: a new generation replaces every worker", bool(ok), srv.status())
    check("HUP under load: 0 non-2xx and 0 socket errors", total > 1000 and not non2xx and not sockerr, out)
    # A broken configuration is refused; the old one stays in force.
    with open(srv.conf, "w") as f:
        f.write("workers = \"many\";\nbogus = true;\n")
    srv.send(signal.SIGHUP)
    time.sleep(0.5)
    refused = [l for l in srv.log_lines() if l.get("msg", "").startswith("reload refused")]
    check("HUP with a broken config: error logged with file:line", refused and "wapi.conf:1" in refused[-1]["error"],
          refused[-1:])
    check("HUP with a broken config: old config and workers kept",
          srv.status().get("generation") == 2 and srv.get("/healthz")[0] == 200)
    rc, res = srv.ctl("reload")
    check("wapictl reload reports the error and fails", rc != 0 and "wapi.conf:1" in res.get("error", ""), res)
    with open(srv.conf, "w") as f:
        f.write("shutdown_timeout = 7;\n")
    rc, res = srv.ctl("reload")
    check("wapictl reload applies a good config", rc == 0 and res.get("generation") == 3, res)
    srv.stop()


def term_with_inflight():
    srv = Server(workers=2, env={"WAPI_SHUTDOWN_TIMEOUT": "6"}).start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(0.2)
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)  # an idle keep-alive
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.recv(4096)
    t0 = time.monotonic()
    srv.send(signal.SIGTERM)
    time.sleep(1.5)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    except OSError:
        refused = True
    check("after TERM, new connections are refused", refused)
    s.sendall(b"67890")
    resp = s.recv(4096)
    check("TERM: the slow in-flight request completes", resp.startswith(b"HTTP/1.1 405"), resp[:80])
    s.settimeout(3)
    try:
        tail = s.recv(4096)
        while tail and b"}}" not in tail and not tail.endswith(b"}"):
            tail = s.recv(4096)
        closed = s.recv(10) == b""
    except OSError:
        closed = True
    check("TERM: that connection is closed after its response", closed)
    idle.settimeout(3)
    check("TERM: idle keep-alive connections are closed", idle.recv(10) == b"")
    rc = srv.proc.wait(10)
    dt = time.monotonic() - t0
    check("TERM: exit 0 within shutdown_timeout", rc == 0 and dt < 6, f"rc={rc} {dt:.2f}s")


def term_deadline():
    srv = Server(workers=1, env={"WAPI_SHUTDOWN_TIMEOUT": "2"}).start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.send(signal.SIGTERM)
    rc = srv.proc.wait(10)
    dt = time.monotonic() - t0
    check("TERM with a request that never finishes: exit 0 at the deadline", rc == 0 and 1.5 < dt < 4,
          f"rc={rc} {dt:.2f}s")
    s.close()


def counts_and_control():
    srv = Server(workers=2).start()
    srv.send(signal.SIGTTIN)
    check("TTIN adds a worker", srv.wait_for(lambda: len(srv.worker_pids("ready")) == 3, 5))
    srv.send(signal.SIGTTOU)  # one at a time: the kernel merges signals sent back to back
    check("TTOU removes a worker", srv.wait_for(lambda: len(srv.worker_pids()) == 2, 5), srv.status())
    srv.send(signal.SIGTTOU)
    check("TTOU again leaves one", srv.wait_for(lambda: len(srv.worker_pids()) == 1, 5), srv.status())
    rc, res = srv.ctl("workers", "3")
    check("wapictl workers 3", rc == 0 and srv.wait_for(lambda: len(srv.worker_pids("ready")) == 3, 5), res)
    rc, res = srv.ctl("workers", "zero")
    check("wapictl workers with a bad count is refused", rc != 0 and "usage" in res.get("error", ""), res)
    rc, res = srv.ctl("frobnicate")
    check("wapictl unknown command is refused", rc != 0 and "unknown command" in res.get("error", ""), res)
    out = subprocess.run([os.path.join(ROOT, "build/wapictl"), "-s", os.path.join(srv.dir, "run/wapi.sock"),
                          "status"], capture_output=True, text=True)
    st = json.loads(out.stdout)
    check("wapictl status shows supervisor and workers", out.returncode == 0 and st["ok"] and
          st["migrated"] is True and len(st["workers"]) == 3 and all(w["state"] == "ready" for w in st["workers"]),
          out.stdout)
    mode = os.stat(os.path.join(srv.dir, "run/wapi.sock")).st_mode & 0o777
    check("control socket is owner-only", mode == 0o600, oct(mode))
    # WINCH: workers stop, the supervisor stays; HUP brings them back.
    srv.send(signal.SIGWINCH)
    check("WINCH stops the workers", srv.wait_for(lambda: srv.worker_pids() == [], 5), srv.status())
    check("WINCH keeps the supervisor", srv.proc.poll() is None and srv.ctl("status")[0] == 0)
    srv.send(signal.SIGHUP)
    check("HUP after WINCH starts workers again", srv.wait_for(lambda: len(srv.worker_pids("ready")) == 2, 5))
    srv.stop()


def usr1_reopen():
    d = Server(workers=1)
    logfile = os.path.join(d.dir, "file.log")
    d.env["WAPI_LOG_FILE"] = logfile
    d.start()
    d.get("/healthz", headers={"X-Request-Id": "before-rotate"})
    time.sleep(0.3)
    os.rename(logfile, logfile + ".1")
    d.send(signal.SIGUSR1)
    time.sleep(0.3)
    d.get("/healthz", headers={"X-Request-Id": "after-rotate"})
    time.sleep(0.4)
    new = open(logfile).read() if os.path.exists(logfile) else ""
    old = open(logfile + ".1").read()
    check("USR1: supervisor and workers write to the reopened log file",
          "after-rotate" in new and "log files reopened" in new and "before-rotate" in old and
          "after-rotate" not in old, new[-300:])
    d.stop()


def watchdog_and_backoff():
    srv = Server(workers=1).start()
    (pid,) = srv.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # hung: no heartbeats
    t0 = time.monotonic()
    new = srv.wait_for(lambda: [p for p in srv.worker_pids("ready") if p != pid], timeout=16, step=0.1)
    dt = time.monotonic() - t0
    check("watchdog kills a hung worker and starts another", bool(new) and 9 < dt < 14, f"{dt:.1f}s")
    logs = [l for l in srv.log_lines() if l.get("msg") == "killing worker"]
    check("watchdog logs why", logs and "heartbeat" in logs[-1].get("why", ""), logs[-1:])
    # Crash loop: kill every new worker at once; the gaps must grow.
    seen = set(srv.worker_pids())
    for x in seen:
        os.kill(x, signal.SIGKILL)
    starts = []
    for _ in range(5):
        p = srv.wait_for(lambda: [x for x in srv.worker_pids() if x not in seen], timeout=10, step=0.005)
        if not p:
            break
        starts.append(time.monotonic())
        seen.update(p)
        for x in p:
            try:
                os.kill(x, signal.SIGKILL)
            except ProcessLookupError:
                pass
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # The supervisor's own schedule (exact) and the observed gaps (never shorter
    # than the schedule; a busy machine only makes them longer).
    delays = [l["retry_in_ms"] for l in srv.log_lines() if l.get("msg") == "worker died young; backing off"]
    sched = delays[-4:]
    check("crash loop backs off exponentially (doubling delays)", len(sched) == 4 and
          all(b == 2 * a for a, b in zip(sched, sched[1:])), delays)
    check("and respawns wait at least that long", len(gaps) == 4 and len(sched) == 4 and
          all(g >= d / 1000 - 0.02 for g, d in zip(gaps, sched)), [round(g, 3) for g in gaps])
    check("crash loop is logged", bool(delays))
    srv.stop()


def malformed_ipc():
    """A worker that speaks garbage on its socketpair is killed; the
    supervisor carries on."""
    import ctypes
    srv = Server(workers=1).start()
    (pid,) = srv.worker_pids()
    # Impersonate the worker: take a copy of its end of the socketpair (fd 3)
    # with pidfd_getfd(2) and write garbage into it.
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    fd = libc.syscall(438, pidfd, 3, 0)  # SYS_pidfd_getfd on x86_64 and arm64
    os.close(pidfd)
    check("the worker's socketpair end can be borrowed (pidfd_getfd)", fd >= 0, os.strerror(ctypes.get_errno()))
    if fd >= 0:
        os.write(fd, b"garbage!garbage!garbage!")
        os.close(fd)
        new = srv.wait_for(lambda: [p for p in srv.worker_pids("ready") if p != pid], timeout=5)
        logs = [l for l in srv.log_lines() if l.get("msg") == "killing worker" and l.get("pid") == pid]
        check("a malformed IPC frame kills and logs that worker", bool(new) and logs, logs)
        check("the supervisor survives a malformed frame", srv.proc.poll() is None and srv.get("/healthz")[0] == 200)
    srv.stop()


def pid1_reaps():
    """As PID 1 of a PID namespace the supervisor reaps orphans."""
    srv = Server(workers=1)
    cmd = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
           os.path.join(srv.bindir, "wapi"), "-c", srv.conf]
    srv.logf = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen(cmd, env=srv.env, stdout=srv.logf, stderr=subprocess.STDOUT, start_new_session=True)
    srv.wait_ready()
    inner = int(subprocess.run(["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True).stdout.split()[0])
    # Make an orphan inside the namespace: its parent exits at once.
    subprocess.run(["nsenter", "-t", str(inner), "-p", "-m", "--", "sh", "-c", "(sleep 0.3 &) ; exit 0"], timeout=10)
    time.sleep(1.2)
    zombies = subprocess.run(["nsenter", "-t", str(inner), "-p", "-m", "--", "ps", "-eo", "stat,pid,ppid,comm"],
                             capture_output=True, text=True).stdout
    status = subprocess.run(["nsenter", "-t", str(inner), "-p", "-m", "--", "ps", "-o", "pid,comm", "-p", "1"],
                            capture_output=True, text=True).stdout
    check("the supervisor runs as PID 1", "wapi" in status, status)
    check("as PID 1 it reaps orphans (no zombies)", not any(l.split()[0].startswith("Z") for l in
                                                            zombies.splitlines()[1:] if l.split()), zombies)
    os.kill(inner, signal.SIGTERM)
    check("as PID 1 it stops on TERM", srv.proc.wait(15) == 0)


kill9_under_load()
hup_under_load()
term_with_inflight()
term_deadline()
counts_and_control()
usr1_reopen()
malformed_ipc()
pid1_reaps()
watchdog_and_backoff()
done()
