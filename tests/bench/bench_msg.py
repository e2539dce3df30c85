#!/usr/bin/env python3
"""make bench, messaging part. Numbers, not assertions; each set beside a
baseline measured in the same run.

1. Durable enqueue: POST /api/messages {to, text} with an API key under wrk
   (requests/s, p99), the server's default worker count, against /healthz in
   interleaved rounds. The WhatsApp session is not started, so the outbox
   dispatcher claims nothing while wrk runs; every 202 is a committed row
   (counted afterwards). The PostgreSQL settings in force are printed.
2. An incoming message to a webhook on loopback: a paired session against the
   fake WhatsApp server, the peer sending N texts at a steady rate, latency from
   the moment the fake server was about to encode and write the stanza to the
   moment the receiver (a process of its own) had the whole webhook request;
   both read the wall clock (tests/bench/fake_wa_clock.mjs). A paced stream
   from one peer, below one commit per database round trip, with nothing
   being sent meanwhile: it cannot show receipts and acks falling behind a
   faster stream or a send that waits for the server; bench_inbound.py
   streams from Baileys clients as fast as they can.
3. Send cost per message per device: the supervisor's CPU time (utime + stime
   from /proc) to send M texts through the API to the peer, against an
   unmodified Baileys client linked to the same fake server (a companion of
   another account) sending the same texts with sock.sendMessage
   (process.cpuUsage()); each divided by messages x devices, the devices counted
   by the fake server in every stanza.

Environment: BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS (as bench.py),
BENCH_MSG_IN (300) and BENCH_MSG_IN_RATE (50/s) for 2, BENCH_MSG_OUT (300) for
3, BENCH_MSG_ONLY=enqueue,webhook,cost (the default) to pick parts."""
import atexit
import http.client
import http.server
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from fakewa import FakeWA  # noqa: E402
from benchlib import cpu_ns, pct  # noqa: E402
from harness import ROOT, Server, fresh_database, wait  # noqa: E402
import linked  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
N_IN = int(os.environ.get("BENCH_MSG_IN", "300"))
RATE_IN = float(os.environ.get("BENCH_MSG_IN_RATE", "50"))
M_OUT = int(os.environ.get("BENCH_MSG_OUT", "300"))
PARTS = set(os.environ.get("BENCH_MSG_ONLY", "enqueue,webhook,cost").split(","))
PEER = "15550009999@s.whatsapp.net"
BAILEYS_PHONE = "15550007777"
LUA = os.path.join(ROOT, "tests/bench/msg_post.lua")
TICK = os.sysconf("SC_CLK_TCK")

# ---- helpers

_dbs = []


@atexit.register
def _drop_dbs():
    for url in _dbs:
        admin = re.sub(r"^(postgres(?:ql)?://[^/?]*/)[^?]*", r"\1postgres", url)
        name = re.match(r"^postgres(?:ql)?://[^/?]*/([^?]*)", url).group(1)
        subprocess.run(["psql", admin, "-qAtX", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       capture_output=True)


def new_db(tag):
    """A database of this run's own (dropped at exit), so the queued rows of one
    part are never sent by another and concurrent runs never meet."""
    url = fresh_database(f"wapi_bench_{tag}_{os.getpid()}")
    _dbs.append(url)
    return url


def psql(url, q):
    out = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", q],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines()]


def pg_settings(url):
    rows = psql(url, "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                     "'wal_sync_method', 'full_page_writes', 'commit_delay', 'wal_level', 'shared_buffers', "
                     "'server_version') ORDER BY name")
    return dict((r[0], r[1]) for r in rows)


def cpu_s(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def load():
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def start_server(env, db):
    srv = Server(env=dict(env, WAPI_WORKERS="auto"), pg_url=db)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    srv.start()
    return srv


def api_key(srv):
    """A user signed up over HTTP and an API key created with its cookie."""
    key = linked.Api(srv).key
    if not key:
        raise RuntimeError("cannot sign up and create an API key")
    return key


class Api:
    """One keep-alive connection with the API key."""

    def __init__(self, srv, key):
        self.srv, self.key, self.c = srv, key, None

    def __call__(self, method, path, body=None):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=15)
            try:
                h = {"x-api-key": self.key}
                data = None
                if body is not None:
                    data = json.dumps(body).encode()
                    h["content-type"] = "application/json"
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                raw = r.read()
                try:
                    return r.status, json.loads(raw) if raw else None
                except ValueError:
                    return r.status, None
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        return 0, None


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk(port, path, script_args=None, conns=CONNS):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{SECS}s", "--latency"]
    if script_args is not None:
        cmd += ["-s", LUA]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if script_args is not None:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError("wrk: " + out[-500:])
    r = {"rps": float(m.group(1)), "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for p in ("50", "99"):
        mm = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        r["p" + p] = float(mm.group(1)) * _UNIT[mm.group(2)] if mm else float("nan")
    mm = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(mm.group(1)) if mm else 0
    mm = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sockerr"] = sum(map(int, mm.groups())) if mm else 0
    return r


# ---- 1. durable enqueue

def bench_enqueue():
    db = new_db("enqueue")
    srv = start_server({}, db)
    try:
        enqueue_runs(srv, db)
    finally:
        srv.stop()


def enqueue_runs(srv, db):
    key = api_key(srv)
    nworkers = len(srv.worker_pids())
    pg = pg_settings(db)
    api = Api(srv, key)
    st, js = api("POST", "/api/messages", {"to": "+1 555 000 9999", "text": "warm-up"})
    if st != 202:
        raise RuntimeError(f"POST /api/messages: {st} {js}")
    sup = srv.proc.pid
    c0 = cpu_s(sup)
    print()
    print("messages: durable enqueue, POST /api/messages {to, text} with X-Api-Key", flush=True)
    one, spread, health = [], [], []
    for r in range(ROUNDS):  # interleaved so drift on a noisy machine hits all alike
        a = wrk(srv.port, "/api/messages", [key, "+15550009999"])
        b = wrk(srv.port, "/api/messages", [key, "spread"])
        h = wrk(srv.port, "/healthz")
        one.append(a)
        spread.append(b)
        health.append(h)
        print(f"round {r + 1}: one chat {a['rps']:,.0f} req/s p99 {a['p99']:.1f} ms   "
              f"a chat per request {b['rps']:,.0f} req/s p99 {b['p99']:.1f} ms   "
              f"/healthz {h['rps']:,.0f} req/s p99 {h['p99']:.1f} ms   ratio {a['rps'] / h['rps']:.3f}   ({load()})",
              flush=True)
    # Latency with little queueing in front of the database: as many
    # connections as the workers' database pools hold (database.pool, 4 by
    # default, per worker).
    light_conns = 4 * nworkers
    light = wrk(srv.port, "/api/messages", [key, "+15550009999"], conns=light_conns)
    c1 = cpu_s(sup)
    answered = sum(x["requests"] - x["non2xx"] for x in one + spread + [light]) + 1
    bad = sum(x["non2xx"] + x["sockerr"] for x in one + spread + [light])
    rows = psql(db, "SELECT (SELECT count(*) FROM wa_outbox WHERE state = 'pending'), "
                    "(SELECT count(*) FROM wa_outbox WHERE state <> 'pending'), "
                    "(SELECT count(*) FROM wa_messages WHERE status = 'queued')")[0]

    def med(xs, k):
        return statistics.median(x[k] for x in xs)

    rps, p99 = med(one, "rps"), med(one, "p99")
    hr = med(health, "rps")
    print(f"workers: {nworkers} (default: one per CPU); wrk -t2 -c{CONNS} -d{SECS}s --latency x {ROUNDS} rounds; "
          f"every request a text of its own, no idempotency_key")
    print(f"POST /api/messages, one chat (median): {rps:,.0f} req/s   target >= 5,000 "
          f"{'ok' if rps >= 5000 else 'BELOW TARGET'};   p99 {p99:.1f} ms (p50 {med(one, 'p50'):.1f})   "
          f"target < 25 ms {'ok' if p99 < 25 else 'ABOVE TARGET'}")
    print(f"POST /api/messages, a chat per request (median): {med(spread, 'rps'):,.0f} req/s   "
          f"p99 {med(spread, 'p99'):.1f} ms (p50 {med(spread, 'p50'):.1f})")
    print(f"POST /api/messages, one chat, {light_conns} connections (4 per worker, the default database pool): "
          f"{light['rps']:,.0f} req/s   p99 {light['p99']:.1f} ms (p50 {light['p50']:.1f})")
    print(f"/healthz, same server, same rounds (median): {hr:,.0f} req/s   p99 {med(health, 'p99'):.1f} ms;   "
          f"enqueue / healthz throughput: {rps / hr:.3f}")
    pending = int(rows[0])
    print(f"durability check: {answered:,} 2xx answers counted by wrk, {pending:,} outbox rows pending "
          f"{'(>= answers: ok)' if pending >= answered else '(FEWER THAN THE ANSWERS)'}, {int(rows[1])} claimed, "
          f"{int(rows[2]):,} messages queued; non-2xx or socket errors: {bad}")
    print(f"the session was never started, so the outbox dispatcher claimed nothing (the rows go with this run's "
          f"database); the supervisor only took the workers' outbox kicks: {(c1 - c0) * 1000:.0f} ms CPU over the runs")
    print("PostgreSQL: " + ", ".join(f"{k}={v}" for k, v in pg.items())
          + ("" if pg.get("fsync") == "on" and pg.get("synchronous_commit") in ("on", "remote_apply", "remote_write",
                                                                                 "local")
             else "   (NOT DURABLE: these settings void the figure)"))


# ---- 2 and 3: a paired session against the fake server

class ClockFakeWA(FakeWA):
    """The fake server (tests/bench/fake_wa_clock.mjs) whose peer.sent and
    peer.recv events carry wallMs."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(ROOT, "tests/bench/fake_wa_clock.mjs")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        info = json.loads(self.proc.stdout.readline())
        self.url, self.root_key, self.version = info["url"], info["rootKey"], info["version"]
        self.control = info["control"]
        self.phone = info["phone"]


def receiver(port_q, out_q):
    """Webhook receiver: answers 204 and reports (wall time the whole request
    was in, webhook-id, body)."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            t = time.time()
            self.send_response(204)
            self.end_headers()
            out_q.put((t, self.headers.get("webhook-id"), body.decode()))

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    port_q.put(srv.server_address[1])
    srv.serve_forever()


def link(srv, wa, api):
    api("POST", "/api/session/start")
    if not wait(lambda: api("GET", "/api/session")[1].get("state") == "qr", 20):
        raise RuntimeError("no QR: " + json.dumps(api("GET", "/api/session")[1]))
    st, h, raw = srv.request("GET", "/api/session/qr?format=raw", headers={"x-api-key": api.key})
    res = wa.call("POST", "/phone/scan", {"qr": raw.decode(), "timeoutMs": 10000})
    if not res.get("ok") or not wait(lambda: api("GET", "/api/session")[1].get("state") == "connected", 20):
        raise RuntimeError(f"pairing failed: {res}")
    wa.wait_event("prekeys.upload", timeout=15)


def bench_webhook(srv, wa, api, db):
    ctx = multiprocessing.get_context("fork")
    port_q, out_q = ctx.Queue(), ctx.Queue()
    rx = ctx.Process(target=receiver, args=(port_q, out_q), daemon=True)
    rx.start()
    rport = port_q.get(timeout=10)
    st, hook = api("POST", "/api/webhooks", {"url": f"http://127.0.0.1:{rport}/hook", "events": ["message.received"]})
    if st != 201:
        raise RuntimeError(f"POST /api/webhooks: {st} {hook}")
    try:
        got = {}

        def drain(timeout):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    t, wid, body = out_q.get(timeout=max(0.01, deadline - time.monotonic()))
                except Exception:  # queue.Empty
                    return
                try:
                    got[json.loads(body)["data"]["id"]] = t
                except (ValueError, KeyError, TypeError):
                    pass
                if time.monotonic() >= deadline:
                    return

        # Warm-up: the first messages set up the peer's Signal session and the
        # connections' caches; they are not counted.
        warm = []
        for i in range(5):
            warm.append(wa.call("POST", "/peer/send", {"text": f"warm-up {i}"})["id"])
            time.sleep(0.05)
        while not all(w in got for w in warm):
            before = len(got)
            drain(5)
            if len(got) == before:
                raise RuntimeError("warm-up webhooks did not arrive")
        seq0 = wa.last_seq()
        ids = []
        late = 0
        t_start = time.monotonic()
        for i in range(N_IN):
            due = t_start + i / RATE_IN
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            elif d < -0.005:
                late += 1
            ids.append(wa.call("POST", "/peer/send", {"text": f"bench incoming {i}"})["id"])
        send_s = time.monotonic() - t_start
        deadline = time.monotonic() + 30
        while not all(i in got for i in ids) and time.monotonic() < deadline:
            drain(0.5)
        evs = [e for e in wa.events(seq0, "peer.sent") if "wallMs" in e]
        sent = {e["id"]: e["wallMs"] for e in evs}
        skew = [e["dateMs"] - e["wallMs"] for e in evs if "dateMs" in e]
        lat = [got[i] * 1000 - sent[i] for i in ids if i in got and i in sent]
        # Where the time goes: PostgreSQL's now() (the same wall clock) when the
        # message's transaction began, when the delivery row was made (fan-out)
        # and when the dispatcher took it (claim).
        rows = psql(db, "SELECT e.data->>'id', extract(epoch FROM e.created_at) * 1000, "
                        "extract(epoch FROM d.created_at) * 1000, extract(epoch FROM d.last_attempt_at) * 1000 "
                        "FROM wa_webhook_deliveries d JOIN wa_events e ON e.id = d.event_id "
                        f"WHERE d.webhook_id = '{hook['id']}'")
        stages = {"stored": [], "fanned": [], "claimed": [], "received": []}
        for mid, stored, fanned, claimed in rows:
            if mid in sent and mid in got and claimed:
                stages["stored"].append(float(stored) - sent[mid])
                stages["fanned"].append(float(fanned) - float(stored))
                stages["claimed"].append(float(claimed) - float(fanned))
                stages["received"].append(got[mid] * 1000 - float(claimed))
    finally:
        rx.terminate()
        api("DELETE", f"/api/webhooks/{hook['id']}")  # part 3 measures sending without webhooks
    print()
    print(f"messages: incoming text -> webhook on loopback ({len(lat)} of {N_IN} messages at {RATE_IN:g}/s, "
          f"sent over {send_s:.1f} s{f', {late} sends late' if late else ''}; {load()})")
    if not lat:
        print("  no webhook arrived: measurement failed")
        return
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(f"  stanza sent by the fake server -> webhook request received: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {max(lat):.1f} ms   target p99 < 20 ms {'ok' if p99 < 20 else 'ABOVE TARGET'}")
    if stages["stored"]:
        names = [("stored", "stanza -> the message's transaction begins"),
                 ("fanned", "-> the fan-out transaction begins"), ("claimed", "-> the claim transaction begins"),
                 ("received", "-> received")]
        print("  steps, p50 / p99 ms (PostgreSQL's now() in the rows): " + ";   ".join(
            f"{label} {pct(stages[k], 50):.1f} / {pct(stages[k], 99):.1f}" for k, label in names))
    print("  (both ends read the wall clock on this machine: the fake server just before it encoded and wrote the "
          "stanza, the receiver, a process of its own, once the whole request was in; clock check: the fake "
          "server's Date.now() after the write minus its send time, median "
          f"{statistics.median(skew) if skew else float('nan'):+.2f} ms, within a millisecond when they agree)")


class BaileysSender:
    def __init__(self, wa):
        self.p = subprocess.Popen(["node", os.path.join(ROOT, "tests/bench/baileys_send.mjs"), "--url", wa.url,
                                   "--version", wa.version, "--control", wa.control, "--phone", BAILEYS_PHONE],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        r = self.next(lambda x: "ready" in x or "error" in x, 60)
        if not r or "ready" not in r:
            raise RuntimeError(f"Baileys did not log in: {r}")

    def _read(self):
        for line in self.p.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def next(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in list(self.lines):
                if pred(x):
                    return x
            time.sleep(0.01)
        return None

    def cmd(self, o, pred, timeout=60):
        n = len(self.lines)
        self.p.stdin.write(json.dumps(o) + "\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in self.lines[n:]:
                if pred(x) or "error" in x:
                    return x
            time.sleep(0.002)
        raise RuntimeError(f"Baileys: no answer to {o['op']}")

    def mark(self):
        return self.cmd({"op": "mark"}, lambda x: "cpuUs" in x)["cpuUs"] / 1e6

    def send(self, texts):
        r = self.cmd({"op": "send", "to": PEER, "texts": texts}, lambda x: "sent" in x, 120)
        if "sent" not in r:
            raise RuntimeError(f"Baileys send: {r}")
        return r["sent"]

    def quit(self):
        try:
            self.p.stdin.write('{"op":"quit"}\n')
            self.p.stdin.flush()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()


def received(wa, seq0, ids, timeout):
    want = set(ids)
    out = {}

    def poll():
        for e in wa.events(seq0, "peer.recv"):
            if e["id"] in want:
                out[e["id"]] = e
        return len(out) == len(want)

    wait(poll, timeout, 0.05)
    return out


def per_conn(wa, seq0, conn, kind):
    return sum(1 for e in wa.events(seq0, kind) if e["conn"] == conn)


POST_CONNS = int(os.environ.get("BENCH_POST_CONNS", "8"))


def post_all(srv, key, texts, conns):
    """POST every text to the peer on conns keep-alive connections at once
    (text i on connection i % conns); the ids in the order of texts."""
    ids = [None] * len(texts)
    errs = []

    def run(k):
        a = Api(srv, key)
        for i in range(k, len(texts), conns):
            st, js = a("POST", "/api/messages", {"to": PEER, "text": texts[i]})
            if st != 202:
                errs.append(f"POST /api/messages: {st} {js}")
                return
            ids[i] = js["id"]

    th = [threading.Thread(target=run, args=(k,)) for k in range(conns)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errs:
        raise RuntimeError(errs[0])
    return ids


def bench_cost(srv, wa, api, db):
    wa.call("POST", "/config", {"peerAutoReceipt": False})
    bl = BaileysSender(wa)
    sup = srv.proc.pid
    texts = [f"cost bench message {i:04d}" for i in range(M_OUT)]
    try:
        # Warm-up on both sides: device lists, prekeys and Signal sessions exist
        # before the measured messages.
        seq = wa.last_seq()
        warm = []
        for i in range(3):
            st, js = api("POST", "/api/messages", {"to": PEER, "text": f"warm-up {i}"})
            warm.append(js["id"])
        warm_b = bl.send([f"warm-up {i}" for i in range(3)])
        if len(received(wa, seq, warm + warm_b, 30)) != 6:
            raise RuntimeError("warm-up messages did not reach the peer")
        time.sleep(1.0)
        i0, t_idle = cpu_ns(sup), time.monotonic()
        time.sleep(2.0)
        idle = (cpu_ns(sup) - i0) / 1e9 / (time.monotonic() - t_idle)

        # wapi: the texts through the API; the supervisor's outbox sends them.
        # First one request at a time (each waits for its commit: the rate is
        # then the client's, one commit per message), then as a program
        # sending as fast as it can does it, on POST_CONNS connections.
        def wapi_run(prefix, conns):
            seq = wa.last_seq()
            c0, t0 = cpu_s(sup), time.monotonic()
            ids = post_all(srv, api.key, [prefix + t for t in texts], conns)
            t_posted = time.monotonic() - t0
            recv = received(wa, seq, ids, 120)
            inlist = "','".join(ids)
            wait(lambda: psql(db, f"SELECT count(*) FROM wa_messages WHERE id IN ('{inlist}') AND status = 'sent'")
                 [0][0] == str(len(ids)), 60, 0.05)
            wall = time.monotonic() - t0
            cpu = cpu_s(sup) - c0
            conn = next(iter(recv.values()))["conn"] if recv else None
            return recv, wall, cpu, t_posted, per_conn(wa, seq, conn, "usync"), per_conn(wa, seq, conn, "prekeys.fetch")

        w_recv, w_wall, w_cpu, t_posted, w_usync, w_fetch = wapi_run("", 1)
        time.sleep(1.0)
        p_recv, p_wall, _, p_posted, _, _ = wapi_run("concurrent ", POST_CONNS)

        # Baileys: the same texts, sock.sendMessage one after the other.
        time.sleep(1.0)
        seq = wa.last_seq()
        b0, t0 = bl.mark(), time.monotonic()
        bids = bl.send(texts)
        b_recv = received(wa, seq, bids, 120)
        b_wall = time.monotonic() - t0
        b_cpu = bl.mark() - b0
        b_conn = next(iter(b_recv.values()))["conn"] if b_recv else None
        b_usync, b_fetch = per_conn(wa, seq, b_conn, "usync"), per_conn(wa, seq, b_conn, "prekeys.fetch")
    finally:
        bl.quit()
        wa.call("POST", "/config", {"peerAutoReceipt": True})

    def devs(recv):
        c = [e["devices"] for e in recv.values()]
        return statistics.median(c) if c else 0, (min(c), max(c)) if c else (0, 0)

    wk, wr = devs(w_recv)
    bk, br = devs(b_recv)
    print()
    print(f"messages: send cost per message per device, {M_OUT} texts to the peer ({load()})")
    if len(w_recv) != M_OUT or len(b_recv) != M_OUT or not wk or not bk:
        print(f"  incomplete: the peer decrypted {len(w_recv)} of wapi's and {len(b_recv)} of Baileys' texts")
        if not w_recv or not b_recv:
            return
    w_unit = w_cpu / (len(w_recv) * wk) * 1e6
    b_unit = b_cpu / (len(b_recv) * bk) * 1e6
    print(f"  devices per message, as the fake server counted the <enc>s: wapi {wk:g} (range {wr[0]}-{wr[1]}), "
          f"Baileys {bk:g} (range {br[0]}-{br[1]}): the peer's device 0 and the sender's own phone")
    print(f"  wapi supervisor: {w_cpu * 1000:.0f} ms CPU for {len(w_recv)} messages = {w_unit:.0f} us per message "
          f"per device;   {len(w_recv) / w_wall:.0f} messages/s end to end ({t_posted:.2f} s to queue them); "
          f"per message: {w_usync / M_OUT:.2f} device-list queries, {w_fetch / M_OUT:.2f} prekey fetches")
    print(f"  Baileys (Node {subprocess.run(['node', '--version'], capture_output=True, text=True).stdout.strip()}): "
          f"{b_cpu * 1000:.0f} ms CPU for {len(b_recv)} messages = {b_unit:.0f} us per message per device;   "
          f"{len(b_recv) / b_wall:.0f} messages/s; per message: {b_usync / M_OUT:.2f} device-list queries, "
          f"{b_fetch / M_OUT:.2f} prekey fetches")
    print(f"  ratio Baileys/wapi CPU per message per device: {b_unit / w_unit:.2f}x")
    if len(p_recv) == M_OUT:
        p_rate, b_rate = len(p_recv) / p_wall, len(b_recv) / b_wall
        print(f"  wapi, the same texts POSTed on {POST_CONNS} connections at once: {p_rate:.0f} messages/s end to end "
              f"({p_posted:.2f} s to queue them);   ratio wapi/Baileys messages/s: {p_rate / b_rate:.2f}x")
    else:
        print(f"  wapi on {POST_CONNS} connections: incomplete, the peer decrypted {len(p_recv)} of {M_OUT}")
    print(f"  (supervisor idle, connected: {idle * 1000:.1f} ms CPU per s, not subtracted; CPU from /proc "
          f"utime+stime, {1000 // TICK} ms ticks. wapi's figure includes its durability: the outbox claim and status update "
          "in PostgreSQL, the message.sent event, the Signal state written to disk before each send; "
          "Baileys keeps its keys in memory here. Delivery receipts were off for both.)")


failed = []


def part(name, fn, *args):
    """Runs one part; a part that cannot measure says why and the others still run."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
        failed.append(name)
        print(f"\nmessages: {name}: measurement failed: {type(e).__name__}: {e}", flush=True)


def bench_session():
    db = new_db("wa")
    wa = ClockFakeWA()
    srv = None
    try:
        env = wa.env()
        env.update({"WAPI_WEBHOOKS_ALLOW_PRIVATE": "true", "WAPI_WHATSAPP_AUTOSTART": "false"})
        srv = start_server(env, db)
        api = Api(srv, api_key(srv))
        link(srv, wa, api)
        if "webhook" in PARTS:
            part("incoming -> webhook", bench_webhook, srv, wa, api, db)
        if "cost" in PARTS:
            part("send cost", bench_cost, srv, wa, api, db)
    finally:
        if srv:
            srv.stop()
        wa.stop()


if __name__ == "__main__":
    if "enqueue" in PARTS:
        part("durable enqueue", bench_enqueue)
    if PARTS & {"webhook", "cost"}:
        part("paired session", bench_session)
    sys.exit(1 if failed else 0)
