#!/usr/bin/env python3
"""metrics.listen (WAPI_METRICS_LISTEN): /metrics on a listener of its own,
kept off the main one; that listener answers /metrics and /healthz only.
Without it, /metrics stays on the main listener. Reload moves, refuses or
drops the metrics listener like the main one. Plain and ASan/UBSan builds."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, check, done, free_port  # noqa: E402


def req(port, method, path, headers=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def answers(port, path="/metrics"):
    try:
        return req(port, "GET", path, timeout=2)[0] == 200
    except OSError:
        return False


def metric(port, series):
    _, _, body = req(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def listening_ports(pid):
    """The TCP ports pid holds a listening socket of."""
    ports = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[3] == "0A":
                    ports[parts[9]] = int(parts[1].rsplit(":", 1)[1], 16)
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in ports:
            out.add(ports[target[8:-1]])
    return out


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def apart(bindir):
    tag = "san" if "san" in bindir else "plain"
    mport = free_port()
    srv = Server(bindir=bindir, workers=2, env={"WAPI_METRICS_LISTEN": f"127.0.0.1:{mport}"}).start()
    p = srv.port

    st, h, body = srv.get("/metrics")
    check(f"[{tag}] /metrics on the main listener: 404 not_found", st == 404 and error_code(body) == "not_found" and
          h.get("content-type", "").startswith("application/json"), f"{st} {body!r}")
    st, _, body = srv.request("HEAD", "/metrics")
    check(f"[{tag}] HEAD /metrics on the main listener: 404", st == 404 and body == b"", st)
    st, _, body = srv.get("/metrics", headers={"Host": "metrics"})
    check(f"[{tag}] no Host header reaches the metrics listener's host from the main one", st == 404, st)
    st, _, _ = srv.get("/healthz")
    check(f"[{tag}] the main listener still answers /healthz", st == 200, st)
    held = [listening_ports(pid) for pid in srv.worker_pids()]
    check(f"[{tag}] every worker holds both listeners", len(held) == 2 and all(h == {p, mport} for h in held), held)

    st, h, body = req(mport, "GET", "/metrics")
    text = body.decode()
    check(f"[{tag}] /metrics on the metrics listener: 200 Prometheus text", st == 200 and h.get(
        "content-type", "").startswith("text/plain; version=0.0.4") and
        "# TYPE wapi_http_requests_total counter" in text and "wapi_worker_restarts_total " in text,
        f"{st} {h.get('content-type')}")
    st, h, body = req(mport, "HEAD", "/metrics")
    check(f"[{tag}] HEAD /metrics on the metrics listener: 200, no body", st == 200 and body == b"", st)
    st, _, body = req(mport, "GET", "/healthz")
    check(f"[{tag}] /healthz on the metrics listener: 200", st == 200 and body == b'{"status":"ok"}', f"{st} {body!r}")

    # The counters are summed over both workers: what the main listener served
    # is counted, exactly, whichever worker answers the scrape.
    series = 'wapi_http_requests_total{route="/healthz",status="200"}'

    def settled():
        # A request is counted when h2o disposes of it, which may come just
        # after its client has the answer: read until the count stops moving.
        last = metric(mport, series)
        for _ in range(50):
            time.sleep(0.05)
            cur = metric(mport, series)
            if cur == last:
                return cur
            last = cur
        return last

    before = settled()
    n = 40
    for _ in range(n):
        srv.get("/healthz")  # a connection each: both workers take some
    after = settled()
    check(f"[{tag}] the metrics listener counts the main listener's requests of all workers", after - before == n,
          f"{before} -> {after}")

    bad = []
    for path in ("/", "/readyz", "/metrics/", "/metricsx", "/api/me", "/api/session", "/assets/app.js",
                 "/api/auth/get-session", "/healthz/x"):
        st, _, body = req(mport, "GET", path)
        if st != 404 or error_code(body) != "not_found":
            bad.append((path, st, body[:80]))
    check(f"[{tag}] any other path on the metrics listener: 404 not_found", not bad, bad)
    st, _, _ = req(mport, "GET", "/api/me", headers={"Host": "default"})
    check(f"[{tag}] no Host header reaches the route table from the metrics listener", st == 404, st)
    st, h, body = req(mport, "POST", "/metrics")
    check(f"[{tag}] POST /metrics on the metrics listener: 405 with Allow",
          st == 405 and h.get("allow") == "GET, HEAD" and error_code(body) == "method_not_allowed", f"{st} {h}")
    st, h, _ = req(mport, "GET", "/metrics?x=1")
    check(f"[{tag}] a query string does not change the path", st == 200, st)
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{http_version} %{http_code}", f"http://127.0.0.1:{mport}/metrics"],
                         capture_output=True, text=True)
    check(f"[{tag}] HTTP/2 on the metrics listener", out.stdout.strip() == "2 200", out.stdout + out.stderr)
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{http_version} %{http_code}", f"http://127.0.0.1:{p}/metrics"],
                         capture_output=True, text=True)
    check(f"[{tag}] HTTP/2 /metrics on the main listener: 404", out.stdout.strip() == "2 404", out.stdout + out.stderr)
    starting = [l for l in srv.log_lines() if l.get("msg") == "starting"]
    check(f"[{tag}] the start is logged with the metrics address",
          starting and starting[0].get("metrics_listen") == f"127.0.0.1:{mport}", starting[:1])

    # Graceful stop: with a request in flight the workers are still draining,
    # and yet neither listener takes new connections.
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(0.2)
    srv.send(signal.SIGTERM)
    time.sleep(1.0)
    check(f"[{tag}] TERM: the metrics listener is closed while workers drain",
          refused(mport) and refused(p) and srv.proc.poll() is None)
    s.sendall(b"67890")
    resp = s.recv(4096)
    check(f"[{tag}] TERM: the in-flight request still completes", resp.startswith(b"HTTP/1.1 405"), resp[:40])
    s.close()
    rc = srv.proc.wait(10)
    check(f"[{tag}] TERM: exit 0", rc == 0, rc)
    check(f"[{tag}] no sanitizer reports", not srv.sanitizer_reports(), srv.sanitizer_reports()[:3])


def together():
    srv = Server(workers=2).start()
    st, h, body = srv.get("/metrics")
    check("without metrics.listen, /metrics is on the main listener as before", st == 200 and h.get(
        "content-type", "").startswith("text/plain; version=0.0.4") and b"wapi_http_requests_total" in body, st)
    held = [listening_ports(pid) for pid in srv.worker_pids()]
    check("without metrics.listen, workers hold the main listener only",
          len(held) == 2 and all(h == {srv.port} for h in held), held)
    srv.stop()


def busy_at_start():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    srv = Server(workers=1, env={"WAPI_METRICS_LISTEN": f"127.0.0.1:{port}"})
    srv.start(wait=False)
    try:
        rc = srv.proc.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    check("a metrics address in use stops the start, naming metrics.listen",
          rc not in (0, None) and "cannot listen for /metrics" in srv.log() and "metrics.listen 127.0.0.1:" in srv.log(),
          f"rc={rc} {srv.log()[-300:]}")
    srv.kill()
    busy.close()


def reload():
    p1, p2 = free_port(), free_port()
    srv = Server(workers=2, conf=f'metrics = {{ listen = "127.0.0.1:{p1}"; }};\n').start()
    check("metrics.listen from the file", answers(p1) and srv.get("/metrics")[0] == 404)

    def hup(text):
        with open(srv.conf, "w") as f:
            f.write(text)
        srv.send(signal.SIGHUP)

    hup(f'metrics = {{ listen = "127.0.0.1:{p2}"; }};\n')
    ok = srv.wait_for(lambda: srv.status().get("generation") == 2 and len(srv.worker_pids("ready")) == 2 and
                      answers(p2), timeout=10)
    check("HUP with a new metrics.listen: the new generation answers there", bool(ok), srv.status())
    check("HUP with a new metrics.listen: the old address is given up", srv.wait_for(lambda: refused(p1), 10))
    check("HUP with a new metrics.listen: still not on the main listener", srv.get("/metrics")[0] == 404)

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    hup(f'metrics = {{ listen = "127.0.0.1:{busy.getsockname()[1]}"; }};\n')
    srv.wait_for(lambda: any(l.get("msg", "").startswith("reload refused") for l in srv.log_lines()), 5)
    time.sleep(0.3)
    refusal = [l for l in srv.log_lines() if l.get("msg", "").startswith("reload refused")]
    check("HUP with a metrics address in use: refused, logged with the address",
          refusal and refusal[-1]["msg"] == "reload refused: cannot listen on the new metrics address" and
          "metrics.listen 127.0.0.1:" in refusal[-1].get("error", ""), refusal[-1:])
    check("HUP with a metrics address in use: the old listener and generation stay",
          srv.status().get("generation") == 2 and answers(p2))
    busy.close()

    hup('metrics = { listen = "nohost"; };\n')
    srv.wait_for(lambda: len([l for l in srv.log_lines() if l.get("msg", "").startswith("reload refused")]) >= 2, 5)
    refusal = [l for l in srv.log_lines() if l.get("msg", "").startswith("reload refused")]
    check("HUP with an invalid metrics.listen: refused with file:line and key",
          len(refusal) >= 2 and "wapi.conf:1: metrics.listen: expected" in refusal[-1].get("error", ""), refusal[-1:])

    hup("")
    ok = srv.wait_for(lambda: srv.status().get("generation") == 3 and len(srv.worker_pids("ready")) == 2 and
                      srv.get("/metrics")[0] == 200, timeout=10)
    check("HUP without metrics.listen: /metrics back on the main listener", bool(ok), srv.status())
    check("HUP without metrics.listen: the metrics address is given up", srv.wait_for(lambda: refused(p2), 10))
    srv.stop()


for bindir in ("build", "build/san"):
    apart(bindir)
together()
busy_at_start()
reload()
done()
