#!/usr/bin/env python3
"""PostgreSQL comes and goes: /readyz follows it, workers reconnect with
backoff and never block; migrations wait for the database and are
serialized between two supervisors starting at once."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Server, check, done  # noqa: E402

DEVDB = os.path.join(ROOT, "scripts/devdb.sh")
env = dict(os.environ, WAPI_DEVDB_DIR=os.path.join(ROOT, "var/pg-readyz"))


def pg(cmd):
    out = subprocess.run([DEVDB, cmd], env=env, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


url = pg("start")
srv = Server(workers=2, pg_url=url).start()
st, _, body = srv.get("/readyz")
check("readyz 200 with the database up", st == 200, body)

pg("stop")
t0 = time.monotonic()
res = srv.wait_for(lambda: (lambda r: r if r[0] == 503 else None)(srv.get("/readyz", timeout=5)), timeout=10)
dt = time.monotonic() - t0
check("readyz 503 once PostgreSQL stops", res and res[0] == 503, res)
if res:
    doc = json.loads(res[2])
    check("the 503 says why, in JSON", doc.get("status") == "unavailable" and "database" in doc.get("reason", "") and
          doc["checks"]["database"] == "fail" and doc["checks"]["supervisor"] == "ok", doc)
check("readyz notices within 2 s", dt < 2.0, f"{dt:.2f}s")
t1 = time.monotonic()
st, _, _ = srv.get("/healthz")
check("healthz stays 200 and fast without the database", st == 200 and time.monotonic() - t1 < 0.5)
time.sleep(2)
pg("start")
t0 = time.monotonic()
ok = srv.wait_for(lambda: srv.get("/readyz", timeout=5)[0] == 200, timeout=15, step=0.1)
dt = time.monotonic() - t0
check("readyz 200 again once PostgreSQL is back (reconnect with backoff)", ok and dt < 8, f"{dt:.2f}s")
check("no worker restarted meanwhile", srv.metric("wapi_worker_restarts_total") == 0 and
      srv.metric("wapi_worker_crashes_total") == 0)
check("reconnect attempts are counted", srv.metric("wapi_db_reconnects_total") > 0)
srv.stop()

# Start with the database down: the server starts, is live, not ready; then ready.
pg("stop")
srv = Server(workers=1, pg_url=url).start(wait=False)

def _alive(s):
    try:
        s.get("/healthz", timeout=1)
        return True
    except OSError:
        return False


up = srv.wait_for(lambda: _alive(srv), timeout=10)
st, _, body = srv.get("/readyz")
check("started without a database: live but not ready", up and st == 503, body)
pg("start")
ok = srv.wait_for(lambda: srv.get("/readyz", timeout=5)[0] == 200, timeout=40, step=0.2)
check("the schema is migrated once the database appears, then ready", ok, srv.log()[-800:])
srv.stop()

# Two supervisors migrating one fresh database at once: the advisory lock
# serializes them; both end with the same schema, no errors.
psql = subprocess.run(["psql", url.replace("/wapi?", "/postgres?"), "-qtAc", "DROP DATABASE IF EXISTS wapi_two"],
                      capture_output=True, text=True)
subprocess.run(["psql", url.replace("/wapi?", "/postgres?"), "-qtAc", "CREATE DATABASE wapi_two"], check=True)
url2 = url.replace("/wapi?", "/wapi_two?")
procs = [subprocess.Popen([os.path.join(ROOT, "build/wapi"), "--migrate"], env=dict(os.environ, DATABASE_URL=url2),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
outs = [p.communicate(timeout=60)[0] for p in procs]
rows = subprocess.run(["psql", url2, "-qtAc", "SELECT count(*) FROM wapi_schema_migrations"],
                      capture_output=True, text=True).stdout.strip()
applied = sum(o.count("migration applied") for o in outs)
check("two concurrent migrators: both succeed, each migration applied once",
      all(p.returncode == 0 for p in procs) and applied == int(rows) and int(rows) >= 1, outs)

# Definitions (common/sql/defs): applied once with their digest, not again
# while unchanged, again when the recorded digest differs (as after a change
# of the file in a newer build).
ndefs = len(os.listdir(os.path.join(ROOT, "common/sql/defs")))
defs = subprocess.run(["psql", url2, "-qtAc", "SELECT count(*) FROM wapi_schema_definitions WHERE sha256 ~ '^[0-9a-f]{64}$'"],
                      capture_output=True, text=True).stdout.strip()
dapplied = sum(o.count("definition applied") for o in outs)
check("definitions: each applied once by the two migrators, recorded with its SHA-256",
      ndefs >= 2 and defs == str(ndefs) and dapplied == ndefs, (ndefs, defs, dapplied))


def migrate2():
    r = subprocess.run([os.path.join(ROOT, "build/wapi"), "--migrate"], env=dict(os.environ, DATABASE_URL=url2),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


rc, out = migrate2()
check("migrating again: no migration and no definition applied", rc == 0 and "migration applied" not in out and
      "definition applied" not in out and '"applied":0' in out, out[-400:])
subprocess.run(["psql", url2, "-qtAc", "UPDATE wapi_schema_definitions SET sha256 = repeat('0', 64) "
                "WHERE name = 'wapi_message_json'"], check=True)
subprocess.run(["psql", url2, "-qtAc", "CREATE OR REPLACE FUNCTION wapi_message_json(m wa_messages, status text "
                "DEFAULT NULL) RETURNS json LANGUAGE sql STABLE AS $$ SELECT '{}'::json $$"], check=True)
rc, out = migrate2()
back = subprocess.run(["psql", url2, "-qtAc", "SELECT prosrc LIKE '%chat_jid%' FROM pg_proc WHERE proname = "
                       "'wapi_message_json'"], capture_output=True, text=True).stdout.strip()
check("a definition whose recorded digest differs is applied again (and only it): the function is whole again",
      rc == 0 and out.count("definition applied") == 1 and "wapi_message_json" in out and back == "t", (out[-500:], back))

# A version recorded under another name (a database migrated by a different
# build): refused, naming both, instead of skipping this build's migration.
subprocess.run(["psql", url2, "-qtAc", "UPDATE wapi_schema_migrations SET name = 'other_build' WHERE version = 2"],
               check=True)
p = subprocess.run([os.path.join(ROOT, "build/wapi"), "--migrate"], env=dict(os.environ, DATABASE_URL=url2),
                   capture_output=True, text=True, timeout=60)
out = p.stdout + p.stderr
check("a migration recorded under another name: --migrate fails and names both",
      p.returncode != 0 and "0002 is recorded as" in out and "other_build" in out and "different build" in out,
      (p.returncode, out[-600:]))
pg("stop")
done()
