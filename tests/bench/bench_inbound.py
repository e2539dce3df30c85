#!/usr/bin/env python3
"""make bench, incoming streams. Numbers, not assertions.

Unmodified Baileys clients (tests/wa/lib/baileys_peer.mjs), each linked as a
companion of an account of its own on the fake WhatsApp server, send texts to
the account wapi is linked to, one sendMessage after the other, as fast as
each can or at a set rate, for BENCH_IN_SECONDS. The fake server relays each
to wapi and stamps on the wall clock the moment it was about to write the
<message> and the moments it had read wapi's <receipt> and <ack> for it
(POST /stamps/start, GET /stamps). Printed per run: messages/s acknowledged,
delivery -> receipt and delivery -> ack p50/p99/max, the longest time with a
delivered message unacknowledged and no ack coming, the supervisor's CPU per
message (all its threads, /proc schedstat), how many messages each commit
took, and where the time went (wapi's own log line written when the commit
ended, against the fake server's stamps).

The senders, the fake server, PostgreSQL and wapi share this machine's CPUs.
The senders run at nice 10 (as fast as they can means with what is left);
during the measured stream the fake server keeps no per-stanza log and does
not decrypt the copies meant for the phones (logNodes, decryptCopies), or
its own work, not wapi's, would set the figures.

Environment: BENCH_IN_SECONDS (60), BENCH_IN_RUNS ("1:0,4:0,4:50": senders:
messages/s each, 0 = as fast as they can; the last is the target of 200/s with
no receipt later than 100 ms and p99 < 50 ms), BENCH_IN_WEBHOOK=1 (a webhook
for every event, to a receiver on loopback), BENCH_IN_BINDIR (the binaries
measured, default build/; another build to compare)."""
import datetime
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from fakewa import FakeWA  # noqa: E402
from benchlib import cpu_ns, pct  # noqa: E402
from harness import Server, wait  # noqa: E402
import linked  # noqa: E402

SECS = float(os.environ.get("BENCH_IN_SECONDS", "60"))
RUNS = [(int(x.split(":")[0]), float(x.split(":")[1]) if ":" in x else 0.0)
        for x in os.environ.get("BENCH_IN_RUNS", "1:0,4:0,4:50").split(",") if x.strip()]
HOOK = os.environ.get("BENCH_IN_WEBHOOK", "") == "1"
PHONES = [f"1555000{7001 + i}" for i in range(16)]
# The senders yield the CPUs to wapi, PostgreSQL and the fake server (whose
# stamps are the measurement); as fast as they can means with what is left.
NICE = 10


def longest_silence(st, end_ms):
    """The longest time, ms, during which some delivered message was unacked and no ack came
    (until end_ms for messages never acknowledged)."""
    ev = sorted([(s["deliver"], 1) for s in st] + [(s["ack"], -1) for s in st if "ack" in s])
    worst, outstanding, since = 0.0, 0, None
    for t, d in ev:
        if d < 0:
            if since is not None:
                worst = max(worst, t - since)
            outstanding -= 1
            since = t if outstanding > 0 else None
        else:
            if outstanding == 0:
                since = t
            outstanding += 1
    return max(worst, end_ms - since) if since is not None else worst


def run(n, rate):
    db = linked.private_database(f"wapi_bench_in_{n}_{int(rate)}_{os.getpid()}")
    wa = FakeWA()
    env = wa.env()
    env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "WAPI_WEBHOOKS_ALLOW_PRIVATE": "true"})
    srv = Server(bindir=os.environ.get("BENCH_IN_BINDIR", "build"), workers=1, env=env, pg_url=db)
    srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
    senders = []
    try:
        srv.start()
        api = linked.Api(srv)
        if not api.link(wa):
            raise RuntimeError("the session did not link")
        if HOOK:
            rx = linked.WebhookReceiver()
            api("POST", "/api/webhooks", {"url": rx.url, "events": ["*"]})
        me = wa.phone + "@s.whatsapp.net"
        senders = [linked.BaileysPeer(wa, PHONES[i], nice=NICE) for i in range(n)]
        if not all(s.ready() for s in senders):
            raise RuntimeError("a Baileys client did not log in")
        # Warm-up: device lists, prekeys and Signal sessions exist before the measured stream.
        for s in senders:
            if not s.stream(to=me, count=3, prefix="warm-up"):
                raise RuntimeError("warm-up failed")
        wait(lambda: int(linked.psql(db, "SELECT count(*) FROM wa_messages")[0][0]) >= 3 * n, 30)
        time.sleep(1.0)
        wa.call("POST", "/config", {"logNodes": False, "decryptCopies": False})
        wa.call("POST", "/stamps/start")
        sup = srv.proc.pid
        c0, t0 = cpu_ns(sup), time.monotonic()
        f0 = cpu_ns(wa.proc.pid)
        marks = [s.start({"op": "stream", "to": me, "seconds": SECS, "rate": rate, "prefix": "bench incoming"})
                 for s in senders]
        res = [s.result("streamed", m, SECS + 120) for s, m in zip(senders, marks)]
        t_sent = time.monotonic()
        ids = [i for r in res if r and "streamed" in r for i in r["streamed"]["ids"]]
        want = set(ids)

        def stamps():
            return [x for x in wa.call("GET", "/stamps", timeout=60)["stamps"] if x["id"] in want]

        wait(lambda: sum(1 for x in stamps() if "ack" in x) >= len(want), 120, 0.5)
        t_end, end_wall = time.monotonic(), time.time() * 1000
        cpu = (cpu_ns(sup) - c0) / 1e9
        fcpu = (cpu_ns(wa.proc.pid) - f0) / 1e9
        st = stamps()
        log = srv.log_lines()
    finally:
        for s in senders:
            s.quit()
        srv.stop()
        wa.stop()
    acked = [x for x in st if "ack" in x]
    rec = [x["receipt"] - x["deliver"] for x in st if "receipt" in x]
    ack = [x["ack"] - x["deliver"] for x in acked]
    batches = [x["batch"] for x in log if x.get("msg") == "incoming message stored" and "batch" in x]
    paused = sum(1 for x in log if str(x.get("msg", "")).startswith("incoming messages arrive faster"))
    rate_s = f"{rate:g}/s each" if rate > 0 else "as fast as they can"
    print()
    print(f"incoming stream: {n} Baileys sender{'s' if n > 1 else ''}, {rate_s}, {SECS:g} s"
          f"{', ' + os.environ['BENCH_IN_BINDIR'] if os.environ.get('BENCH_IN_BINDIR') else ''}"
          f"{', webhook on every event' if HOOK else ''} (load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs)")
    if not acked:
        print("  nothing acknowledged: measurement failed")
        return
    wall = (max(x["ack"] for x in acked) - min(x["deliver"] for x in st)) / 1000
    print(f"  {len(ids)} sent, {len(st)} delivered to wapi, {len(rec)} receipts, {len(acked)} acks; "
          f"{len(acked) / wall:.0f} messages/s acknowledged (first delivery to last ack {wall:.1f} s; "
          f"senders done after {t_sent - t0:.1f} s)")
    print(f"  delivery -> receipt: p50 {pct(rec, 50):.1f} ms, p99 {pct(rec, 99):.1f} ms, max {max(rec):.1f} ms;   "
          f"delivery -> ack: p50 {pct(ack, 50):.1f} ms, p99 {pct(ack, 99):.1f} ms, max {max(ack):.1f} ms")
    late = sum(1 for x in rec if x > 100)
    target = ""
    if rate > 0:
        target = (f";   target none > 100 ms and p99 < 50 ms: "
                  f"{'ok' if not late and pct(rec, 99) < 50 else 'NOT MET'}")
    print(f"  receipts later than 100 ms: {late};   longest wait with messages "
          f"outstanding and no ack: {longest_silence(st, end_wall):.0f} ms{target}")
    print(f"  supervisor CPU: {cpu * 1000:.0f} ms over {t_end - t0:.1f} s = {cpu / len(acked) * 1e6:.0f} us "
          f"per message" + (f";   messages per commit: median {statistics.median(batches):g}, max {max(batches)}"
                            if batches else "")
          + (f";   reading paused {paused} times (queue full)" if paused else ""))
    # Where the time goes: wapi's own log line "incoming message stored" is written when the commit ended,
    # before the Signal flush, the receipt and the ack (ms resolution, the same wall clock).
    stored = {x["id"]: datetime.datetime.strptime(x["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000 for x in log if x.get("msg") == "incoming message stored"}
    d1 = [stored[x["id"]] - x["deliver"] for x in acked if x["id"] in stored]
    d2 = [x["ack"] - stored[x["id"]] for x in acked if x["id"] in stored]
    if d1:
        print(f"  of which: written by the fake server -> committed by wapi p50 {pct(d1, 50):.0f} ms, "
              f"p99 {pct(d1, 99):.0f} ms;   -> ack read by the fake server p50 {pct(d2, 50):.0f} ms, "
              f"p99 {pct(d2, 99):.0f} ms (the fake server, one Node process, used {fcpu / (t_end - t0) * 100:.0f}% "
              f"of a CPU)")
    sys.stdout.flush()


if __name__ == "__main__":
    failed = 0
    for k, r in RUNS:
        try:
            run(k, r)
        except Exception as e:  # noqa: BLE001 - reported; the exit status says so
            failed += 1
            print(f"\nincoming stream, {k} senders: measurement failed: {type(e).__name__}: {e}", flush=True)
    sys.exit(1 if failed else 0)
