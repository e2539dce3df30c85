#!/usr/bin/env python3
"""make bench, groups part: wapi's supervisor against an unmodified Baileys
client, same fake server, same run.

1. Send cost to a big group: the first text to a group of BENCH_GROUP_MEMBERS
   (256) other accounts with two devices each (device 0 and a companion with real
   keys, POST /peers/companions), so every device needs a prekey fetch, a pairwise
   session and the sender key distribution message (SKDM); then BENCH_GROUP_NEXT
   (100) texts, one skmsg each. Only the sender's own process is measured (the
   fake server's per-device work is in another process): CPU of the supervisor
   (schedstat, all threads) around each send, of the Baileys node process
   (process.cpuUsage) likewise; wall time until `sent` (wapi: the stored status;
   Baileys: sendMessage resolved, i.e. the server's ack).
2. Memory holding many groups: BENCH_MEM_GROUPS (200) groups of BENCH_MEM_MEMBERS
   (32) members, one text sent to each (member cache and our sender key exist) and
   two members of each sending to it (their sender keys received and kept); the
   supervisor's RSS/PSS (smaps_rollup) before and after, and the Baileys process's
   RSS growth doing the same (after a forced GC on both ends).
Numbers, not assertions; a part that cannot measure says why."""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from fakewa import FakeWA  # noqa: E402
from benchlib import cpu_ns  # noqa: E402
from harness import ROOT, Server, wait  # noqa: E402
import linked  # noqa: E402

MEMBERS = int(os.environ.get("BENCH_GROUP_MEMBERS", "256"))
NEXT = int(os.environ.get("BENCH_GROUP_NEXT", "100"))
MEM_GROUPS = int(os.environ.get("BENCH_MEM_GROUPS", "200"))
MEM_MEMBERS = int(os.environ.get("BENCH_MEM_MEMBERS", "32"))
ASKS = min(10, NEXT)  # following sends over which the queries they cause are counted
MEM_SENDERS = 2  # members of each group that send to it
BAILEYS_PHONE = "15550007777"
BIG = [f"1666{i:07d}" for i in range(MEMBERS)]
SMALL_POOL = [f"1777{i:07d}" for i in range(64)]
NODE = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss"):
                out[k] = int(v.split()[0])
    return out


class Baileys:
    """tests/bench/baileys_send.mjs: an unmodified Baileys client, linked to account BAILEYS_PHONE."""

    def __init__(self, wa):
        self.p = subprocess.Popen(["node", "--expose-gc", os.path.join(ROOT, "tests/bench/baileys_send.mjs"),
                                   "--url", wa.url, "--version", wa.version, "--control", wa.control,
                                   "--phone", BAILEYS_PHONE],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        r = self._wait(0, lambda x: "ready" in x or "error" in x, 60)
        if not r or "ready" not in r:
            raise RuntimeError(f"Baileys did not log in: {r}")

    def _read(self):
        for line in self.p.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def _wait(self, n, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for x in self.lines[n:]:
                if pred(x) or "error" in x:
                    return x
            time.sleep(0.002)
        return None

    def cmd(self, o, key, timeout=120):
        n = len(self.lines)
        self.p.stdin.write(json.dumps(o) + "\n")
        self.p.stdin.flush()
        r = self._wait(n, lambda x: key in x, timeout)
        if not r or key not in r:
            raise RuntimeError(f"Baileys {o['op']}: {r}")
        return r

    def cpu_s(self):
        return self.cmd({"op": "mark"}, "cpuUs")["cpuUs"] / 1e6

    def send(self, to, texts):
        return self.cmd({"op": "send", "to": to, "texts": texts}, "sent", 300)

    def mem_kb(self):
        """(RSS, JS heap in use) in KB after a forced GC; settled by a second GC a moment later."""
        self.cmd({"op": "mem"}, "rssKb")
        time.sleep(0.5)
        r = self.cmd({"op": "mem"}, "rssKb")
        return r["rssKb"], r["heapKb"]

    def quit(self):
        try:
            self.p.stdin.write('{"op":"quit"}\n')
            self.p.stdin.flush()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()


def status(api, mid):
    st, js = api("GET", f"/api/messages/{mid}")
    return js.get("status") if st == 200 and js else None


def wapi_send(api, pid, to, text):
    """(cpu s, wall s, id) of one text to `to`, from the POST until its status is sent."""
    c0, t0 = cpu_ns(pid), time.monotonic()
    st, js = api("POST", "/api/messages", {"to": to, "text": text})
    if st not in (200, 201, 202) or not js or "id" not in js:
        raise RuntimeError(f"POST /api/messages: {st} {js}")
    if not wait(lambda: status(api, js["id"]) in ("sent", "delivered", "read", "failed"), 120, 0.002):
        raise RuntimeError(f"{js['id']} not sent: {status(api, js['id'])}")
    wall = time.monotonic() - t0
    if status(api, js["id"]) == "failed":
        raise RuntimeError(f"{js['id']} failed: {api('GET', '/api/messages/' + js['id'])[1]}")
    return (cpu_ns(pid) - c0) / 1e9, wall, js["id"]


def pairwise_counts(wa, gjid, mid):
    """{type: n} of the pairwise copies the fake server saw for message mid, and the recipient count."""
    d = [x for x in wa.group_deliveries(gjid) if x["id"] == mid]
    out = {}
    for x in d:
        out[x["pairwise"]] = out.get(x["pairwise"], 0) + 1
    return out, len(d)


def asks(wa, seq):
    """(group metadata queries, usync device queries) the fake server answered since seq."""
    ev = wa.events(seq)
    return (sum(1 for e in ev if e["kind"] == "group.iq" and e.get("op") == "get group query"),
            sum(1 for e in ev if e["kind"] == "usync"))


def big_group(wa, api, pid, bl):
    w = wa.group_create(wa.phone, "bench big", BIG)
    b = wa.group_create(BAILEYS_PHONE, "bench big", BIG)
    if not w.get("ok") or not b.get("ok") or w.get("refused") or b.get("refused"):
        raise RuntimeError(f"group create: {w.get('refused')} {b.get('refused')}")
    wj, bj = w["jid"], b["jid"]
    time.sleep(1.0)  # the creation notifications handled on both sides

    cpu1, wall1, id1 = wapi_send(api, pid, wj, "first message to the big group")
    seq = wa.last_seq()
    nxt = []
    for i in range(NEXT):
        nxt.append(wapi_send(api, pid, wj, f"group message {i:03d}"))
        if i == ASKS - 1:  # counted over the first sends: the server's event log is bounded
            w_asks = asks(wa, seq)
    w_first_pw, w_rcpt = pairwise_counts(wa, wj, id1)
    w_next_pw = sum(pairwise_counts(wa, wj, x[2])[0].get("pkmsg", 0) + pairwise_counts(wa, wj, x[2])[0].get("msg", 0)
                    for x in nxt[:3])

    c0 = bl.cpu_s()
    r = bl.send(bj, ["first message to the big group"])
    bcpu1, bwall1 = bl.cpu_s() - c0, r["wallMs"] / 1000
    b_first_pw, b_rcpt = pairwise_counts(wa, bj, r["sent"][0])
    bnxt = []
    seq = wa.last_seq()
    for i in range(NEXT):
        c0 = bl.cpu_s()
        r = bl.send(bj, [f"group message {i:03d}"])
        bnxt.append((bl.cpu_s() - c0, r["wallMs"] / 1000))
        if i == ASKS - 1:
            b_asks = asks(wa, seq)

    wn_cpu = statistics.mean(x[0] for x in nxt)
    wn_wall = statistics.median(x[1] for x in nxt)
    bn_cpu = statistics.mean(x[0] for x in bnxt)
    bn_wall = statistics.median(x[1] for x in bnxt)
    print()
    print(f"groups: send to a group of {MEMBERS} other accounts x 2 devices (+ the sender's own phone), "
          f"first text (all SKDMs) then {NEXT} texts (one skmsg each), sender process CPU only:")
    print(f"  recipient devices per message, as the fake server counted them: wapi {w_rcpt}, Baileys {b_rcpt}; "
          f"pairwise copies with the first text: wapi {w_first_pw}, Baileys {b_first_pw}; "
          f"wapi pairwise copies in the next 3: {w_next_pw}")
    print(f"  group first send: wapi {cpu1 * 1000:.1f} ms CPU, baseline Baileys {bcpu1 * 1000:.1f} ms CPU, "
          f"ratio wapi/Baileys {cpu1 / bcpu1:.2f}x;   wall to sent: wapi {wall1 * 1000:.0f} ms, Baileys {bwall1 * 1000:.0f} ms")
    print(f"  group next sends (mean of {NEXT}): wapi {wn_cpu * 1000:.2f} ms CPU, baseline Baileys "
          f"{bn_cpu * 1000:.2f} ms CPU, ratio wapi/Baileys {wn_cpu / bn_cpu:.2f}x;   wall to sent (median): "
          f"wapi {wn_wall * 1000:.1f} ms, Baileys {bn_wall * 1000:.1f} ms")
    print(f"  per following send (first {ASKS}), queries the fake server answered: wapi {w_asks[0] / ASKS:.2f} group "
          f"metadata, {w_asks[1] / ASKS:.2f} device lists (usync); Baileys {b_asks[0] / ASKS:.2f} group metadata, "
          f"{b_asks[1] / ASKS:.2f} device lists")
    print(f"  (wapi: supervisor schedstat around POST -> status sent, includes storing the message, the outbox and the "
          f"status update in PostgreSQL and the Signal state written before the send; Baileys (Node {NODE}): "
          "process.cpuUsage around sendMessage, keys in memory, its group metadata query on each send)")


def small_groups(creator, n):
    """n groups of MEM_MEMBERS accounts from the small pool (device 0 each), created by `creator`."""
    out = []
    for g in range(n):
        members = [SMALL_POOL[(g * 7 + k) % len(SMALL_POOL)] for k in range(MEM_MEMBERS)]
        r = wa.group_create(creator, f"bench {g}", members)
        if not r.get("ok") or r.get("refused"):
            raise RuntimeError(f"group create: {r}")
        out.append((r["jid"], members))
    return out


def inbound_count(db):
    return int(linked.psql(db, "SELECT count(*) FROM wa_messages WHERE chat_jid LIKE '%@g.us' AND NOT from_me")[0][0])


def many_groups(wa, api, pid, db, bl):
    time.sleep(1.0)
    before = mem_kb(pid)
    groups = small_groups(wa.phone, MEM_GROUPS)
    time.sleep(1.0)
    for jid, _ in groups:
        wapi_send(api, pid, jid, "hello group")
    n0 = inbound_count(db)
    for jid, members in groups:
        for s in members[:MEM_SENDERS]:
            r = wa.group_peer_send(jid, s, "hello from a member")
            if not r.get("ok"):
                raise RuntimeError(f"peer send: {r}")
    want = MEM_GROUPS * MEM_SENDERS
    got_all = wait(lambda: inbound_count(db) - n0 >= want, 120, 0.2)
    got = inbound_count(db) - n0
    time.sleep(1.0)
    after = mem_kb(pid)

    b_before, bh_before = bl.mem_kb()
    bgroups = small_groups(BAILEYS_PHONE, MEM_GROUPS)
    time.sleep(1.0)
    for jid, _ in bgroups:
        bl.send(jid, ["hello group"])
    for jid, members in bgroups:
        for s in members[:MEM_SENDERS]:
            wa.group_peer_send(jid, s, "hello from a member")
    time.sleep(3.0)
    b_after, bh_after = bl.mem_kb()

    per = lambda a, b: (a - b) / MEM_GROUPS  # noqa: E731
    print()
    print(f"groups: memory holding {MEM_GROUPS} groups of {MEM_MEMBERS} members, one text sent to each and "
          f"{MEM_SENDERS} members' sender keys received in each ({got} of {want} member messages stored"
          f"{'' if got_all else ', INCOMPLETE'}):")
    print(f"  wapi supervisor: RSS {before['Rss'] / 1024:.1f} -> {after['Rss'] / 1024:.1f} MB, PSS "
          f"{before['Pss'] / 1024:.1f} -> {after['Pss'] / 1024:.1f} MB")
    w_per, bh_per = per(after["Rss"], before["Rss"]), per(bh_after, bh_before)
    print(f"  group memory per group: wapi {w_per:.1f} KB (supervisor RSS growth; PSS growth "
          f"{per(after['Pss'], before['Pss']):.1f} KB), baseline Baileys {bh_per:.1f} KB (JS heap in use after a forced "
          f"GC), ratio wapi/Baileys {w_per / bh_per if bh_per > 0 else float('nan'):.2f}x")
    print(f"  Baileys (Node {NODE}): RSS {b_before / 1024:.1f} -> {b_after / 1024:.1f} MB "
          f"({per(b_after, b_before):+.1f} KB per group; a Node process's RSS after GC moves by megabytes either way, "
          f"so its heap is the comparison), JS heap in use {bh_before / 1024:.1f} -> {bh_after / 1024:.1f} MB")


if __name__ == "__main__":
    t_start = time.monotonic()
    failed = False
    wa = FakeWA()
    srv = bl = None
    try:
        for pool in (BIG, SMALL_POOL):
            r = wa.call("POST", "/peers/add", {"phones": pool, "prekeys": 4})
            if not r.get("ok"):
                raise RuntimeError(f"peers/add: {r}")
        r = wa.call("POST", "/peers/companions", {"phones": BIG, "device": 1, "prekeys": 4}, timeout=120)
        if not r.get("ok") or r.get("added") != len(BIG):
            raise RuntimeError(f"peers/companions: {r}")
        wa.call("POST", "/config", {"peerAutoReceipt": False, "logNodes": False})
        db = linked.private_database(f"wapi_bench_groups_{os.getpid()}")
        srv = Server(workers=1, env=dict(wa.env(), WAPI_WHATSAPP_AUTOSTART="false"), pg_url=db)
        srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
        srv.start()
        api = linked.Api(srv)
        if not api.key or not api.link(wa):
            raise RuntimeError("cannot sign up, or link the session")
        bl = Baileys(wa)
        for name, fn, args in (("big group", big_group, (wa, api, srv.proc.pid, bl)),
                               ("many groups", many_groups, (wa, api, srv.proc.pid, db, bl))):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
                failed = True
                print(f"\ngroups: {name}: measurement failed: {type(e).__name__}: {e}", flush=True)
    finally:
        if bl:
            bl.quit()
        if srv:
            srv.stop()
        wa.stop()
    print(f"  (groups bench: {time.monotonic() - t_start:.0f} s)")
    sys.exit(1 if failed else 0)
