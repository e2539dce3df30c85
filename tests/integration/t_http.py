#!/usr/bin/env python3
"""HTTP surface of the workers: health, readiness, metrics, errors, limits,
request ids, access log, HTTP/2, slowloris and 1,000 malformed requests —
against the plain build and the ASan/UBSan build."""
import os
import random
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Server, check, done  # noqa: E402


def raw(port, data, timeout=5, half_close=True):
    """Sends bytes, returns what came back before the server closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, BrokenPipeError, OSError):
        out += b"<reset>"
    except socket.timeout:
        out += b"<timeout>"
    finally:
        s.close()
    return out


def malformed(rng):
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    big = b"A" * rng.choice([9000, 70000, 500000])
    cases = [
        junk,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHeader\r\n\r\n",
        b"GET /" + big + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(300)) + b"\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + junk,
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x00nul HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /%zz%00%ff/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    return rng.randrange(len(cases)), cases


def run(bindir):
    tag = "san" if "san" in bindir else "plain"
    srv = Server(bindir=bindir, workers=2, env={
        "WAPI_HTTP_MAX_BODY_SIZE": "1024", "WAPI_HTTP_MAX_HEADER_SIZE": "2048",
        "WAPI_HTTP_REQUEST_TIMEOUT": "2", "WAPI_HTTP_MAX_CONNECTIONS": "64"}).start()
    p = srv.port

    st, h, body = srv.get("/healthz")
    check(f"[{tag}] /healthz 200 JSON", st == 200 and body == b'{"status":"ok"}' and
          h.get("content-type", "").startswith("application/json"), f"{st} {body!r}")
    st, h, body = srv.get("/readyz")
    check(f"[{tag}] /readyz 200 when PostgreSQL and the supervisor answer",
          st == 200 and b'"database":"ok"' in body and b'"supervisor":"ok"' in body, f"{st} {body!r}")
    st, h, body = srv.get("/")
    check(f"[{tag}] / serves the HTML page", st == 200 and h.get("content-type", "").startswith("text/html") and
          b"<html" in body, f"{st}")
    check(f"[{tag}] security headers on pages", "frame-ancestors 'none'" in h.get("content-security-policy", "") and
          h.get("x-content-type-options") == "nosniff" and "referrer-policy" in h)
    st, h, body = srv.request("HEAD", "/")
    check(f"[{tag}] HEAD has headers and no body", st == 200 and body == b"")

    st, h, body = srv.get("/no/such/thing")
    check(f"[{tag}] 404 JSON error shape", st == 404 and
          re.fullmatch(rb'\{"error":\{"code":"not_found","message":"[^"]+"\}\}', body) is not None, body)
    st, h, body = srv.request("DELETE", "/healthz")
    check(f"[{tag}] 405 JSON with Allow", st == 405 and b'"method_not_allowed"' in body and
          "GET" in h.get("allow", ""), f"{st} {h.get('allow')}")
    st, h, body = srv.request("POST", "/healthz", body=b"x" * 5000)
    check(f"[{tag}] 413 JSON for a body over the limit", st == 413 and b'"payload_too_large"' in body and
          h.get("content-type", "").startswith("application/json"), f"{st} {body!r}")
    st, h, body = srv.get("/healthz", headers={"X-Filler": "y" * 3000})
    check(f"[{tag}] 431 JSON for headers over the limit", st == 431 and b'"headers_too_large"' in body, f"{st}")
    resp = raw(p, b"GARBAGE\r\n\r\n")
    check(f"[{tag}] 400 for a malformed request line", resp.startswith(b"HTTP/1.1 400"), resp[:60])

    st, h, body = srv.get("/healthz", headers={"X-Request-Id": "abc-123.DEF_4"})
    check(f"[{tag}] X-Request-Id accepted and echoed", h.get("x-request-id") == "abc-123.DEF_4")
    st, h, body = srv.get("/healthz")
    gen = h.get("x-request-id", "")
    check(f"[{tag}] X-Request-Id generated", re.fullmatch(r"[0-9a-f]{32}", gen) is not None, gen)
    st, h, body = srv.get("/healthz", headers={"X-Request-Id": "bad id\"<script>"})
    check(f"[{tag}] unsafe X-Request-Id replaced", re.fullmatch(r"[0-9a-f]{32}", h.get("x-request-id", "")) is not None)
    time.sleep(0.3)  # access log lines are flushed every 100 ms
    lines = [l for l in srv.log_lines() if l.get("msg") == "request" and l.get("request_id") == "abc-123.DEF_4"]
    check(f"[{tag}] one access-log line per request with id, method, path, status, bytes, duration",
          len(lines) == 1 and lines[0].get("method") == "GET" and lines[0].get("path") == "/healthz" and
          lines[0].get("status") == 200 and lines[0].get("bytes") == 15 and "duration_ms" in lines[0], lines)

    # Metrics are the sum over every worker: count exactly what we sent.
    before = srv.metric('wapi_http_requests_total{route="/healthz",status="200"}')
    n = 60
    for _ in range(n):
        srv.get("/healthz")  # one connection each: both workers take some
    # A request is counted when its worker disposes of it, which may come a moment after the client
    # has read the answer and closed: wait for the count to settle, then demand exactly n.
    deadline = time.time() + 3
    after = srv.metric('wapi_http_requests_total{route="/healthz",status="200"}')
    while after - before < n and time.time() < deadline:
        time.sleep(0.05)
        after = srv.metric('wapi_http_requests_total{route="/healthz",status="200"}')
    time.sleep(0.2)
    after = srv.metric('wapi_http_requests_total{route="/healthz",status="200"}')
    check(f"[{tag}] /metrics counts requests of all workers", after - before == n, f"{before} -> {after}")
    st, h, body = srv.get("/metrics")
    text = body.decode()
    check(f"[{tag}] /metrics is Prometheus text", st == 200 and h.get("content-type", "").startswith(
        "text/plain; version=0.0.4") and "# TYPE wapi_http_request_duration_seconds histogram" in text and
        "wapi_ipc_roundtrip_seconds_count" in text and "wapi_db_connections " in text and
        "wapi_worker_restarts_total " in text)
    check(f"[{tag}] IPC round trips are measured", srv.metric("wapi_ipc_roundtrip_seconds_count") >= 1)

    # HTTP/2 cleartext, by prior knowledge and by upgrade.
    for flag, name in (("--http2-prior-knowledge", "prior knowledge"), ("--http2", "h2c upgrade")):
        out = subprocess.run(["curl", "-s", flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                              f"http://127.0.0.1:{p}/healthz"], capture_output=True, text=True)
        check(f"[{tag}] HTTP/2 cleartext ({name})", out.stdout.strip() == "2 200", out.stdout + out.stderr)

    # Slowloris: a byte every 0.5 s never completes the headers; the
    # request timeout (2 s here) closes the connection regardless.
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    t0 = time.monotonic()
    closed_at = None
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        for i in range(20):
            s.sendall(b"X-Slow-%d: y\r\n" % i)
            s.settimeout(0.5)
            try:
                if s.recv(100) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        closed_at = time.monotonic() - t0
    s.close()
    check(f"[{tag}] slowloris connection closed by the request timeout", closed_at is not None and closed_at < 4,
          f"closed_at={closed_at}")

    # 1,000 malformed or oversized requests: each answered 4xx or closed.
    rng = random.Random(20261127)
    bad = []
    for i in range(1000):
        k, cases = malformed(rng)
        resp = raw(p, cases[k], timeout=5)
        ok = resp == b"" or resp == b"<reset>" or re.match(rb"HTTP/1\.[01] 4\d\d ", resp) is not None or (
            k == 10 and resp.startswith(b"\x00"))  # an HTTP/2 frame (GOAWAY) for a broken h2 preface
        if not ok:
            bad.append((k, resp[:80]))
    check(f"[{tag}] 1,000 malformed or oversized requests: every one 4xx or closed", not bad, bad[:5])
    st, _, _ = srv.get("/healthz")
    pids_before = srv.worker_pids()
    check(f"[{tag}] server healthy after the malformed requests", st == 200 and len(pids_before) == 2 and
          srv.metric("wapi_worker_crashes_total") == 0, f"{st} {pids_before}")

    # Max connections per worker: with 1 worker and max 64, the 65th waits.
    rc = srv.stop()
    check(f"[{tag}] clean exit", rc == 0, f"rc={rc}")
    reports = srv.sanitizer_reports()
    check(f"[{tag}] no sanitizer reports", not reports, reports[:3])


def max_connections():
    srv = Server(workers=1, env={"WAPI_HTTP_MAX_CONNECTIONS": "4"}).start()
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(4)]
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(2)
        s.recv(4096)
    extra = socket.create_connection(("127.0.0.1", srv.port))
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    extra.settimeout(0.7)
    try:
        got = extra.recv(4096)
    except socket.timeout:
        got = None
    check("connection over max_connections waits in the backlog", got is None, got)
    socks[0].close()
    extra.settimeout(3)
    try:
        got = extra.recv(4096)
    except socket.timeout:
        got = b""
    check("it is served once a connection closes", got.startswith(b"HTTP/1.1 200"), got[:40])
    for s in socks[1:] + [extra]:
        s.close()
    srv.stop()


for bindir in ("build", "build/san"):
    run(bindir)
max_connections()
done()
