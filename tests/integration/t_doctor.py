#!/usr/bin/env python3
"""wapictl doctor against a real installation: a server linked to the fake
WhatsApp server reports every check ok (exit 0); through a SOCKS5 proxy the
endpoint check goes through it and names it without the password; TLS and
the clock against an HTTPS endpoint under the test CA; each broken thing is
one FAIL line saying what to do, and exit 1: a dead proxy, a session store
readable by others, a database without the migrations, an unreachable
endpoint."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import Server, check, done, free_port  # noqa: E402
from linked import Api, private_database  # noqa: E402

DB = private_database(f"wapi_it_doctor_{os.getpid()}")
os.environ["TEST_DATABASE_URL"] = DB
SECRET = "doctor_proxy_pass"


ca_dir = tempfile.mkdtemp(prefix="wapi-media-ca-")
atexit.register(shutil.rmtree, ca_dir, True)
wa = FakeWA("--media-ca", ca_dir)
atexit.register(wa.stop)
env = wa.env()
env.update({"WAPI_WHATSAPP_AUTOSTART": "false", "SSL_CERT_FILE": wa.media_ca})
srv = Server(workers=1, env=env)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("linked to the fake server", api.link(wa))


def doctor(**extra):
    e = dict(srv.env, **extra)
    r = subprocess.run([os.path.join("build", "wapictl"), "-c", srv.conf, "doctor"], env=e, capture_output=True,
                       text=True, timeout=60)
    lines = {}
    for ln in r.stdout.splitlines():
        parts = ln.split(None, 2)
        if len(parts) == 3 and parts[0] in ("ok", "FAIL", "warn"):
            lines[parts[1]] = (parts[0], ln)
    return r.returncode, lines, r.stdout


def state(lines, key):
    return lines.get(key, ("missing", ""))[0]


rc, ln, out = doctor()
print(out)
want_ok = ["config", "dns", "endpoint", "session-volume", "session-store", "media-volume",
           "database", "migrations", "session"]
check("a linked, running installation: every check ok, exit 0",
      rc == 0 and all(state(ln, k) == "ok" for k in want_ok) and "doctor: ready" in out, out)
check("... the media hosts and clock are not checked against a fake endpoint (warn, not FAIL)",
      state(ln, "media-hosts") == "warn" and state(ln, "clock") == "warn", out)

# TLS and the clock: an HTTPS endpoint under the test CA (the fake media hosts)
port = wa.media_host.split(":")[-1]
rc, ln, out = doctor(WAPI_WHATSAPP_URL=f"wss://localhost:{port}/ws/chat")
check("wss:// endpoint: TLS verified against SSL_CERT_FILE, the clock compared with its Date (within 30 s)",
      state(ln, "endpoint") == "ok" and "TLS to localhost" in ln["endpoint"][1] and
      state(ln, "clock") == "ok", out)
rc, ln, out = doctor(WAPI_WHATSAPP_URL=f"wss://localhost:{port}/ws/chat", SSL_CERT_FILE="")
check("... without the test CA: FAIL on the endpoint, exit 1", rc == 1 and state(ln, "endpoint") == "FAIL",
      out)

# through a SOCKS5 proxy
sp = free_port()
socks = subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(sp), "-u", "wapi", "-P", SECRET],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
atexit.register(socks.kill)
rc, ln, out = doctor(WAPI_WHATSAPP_PROXY=f"socks5h://wapi:{SECRET}@127.0.0.1:{sp}")
check("through a SOCKS5 proxy: the endpoint is reached through it, named without the password",
      state(ln, "endpoint") == "ok" and f"socks5h://wapi:***@127.0.0.1:{sp}" in out and SECRET not in out and
      "resolved by the proxy" in ln.get("dns", ("", ""))[1], out)
dead = free_port()
rc, ln, out = doctor(WAPI_WHATSAPP_PROXY=f"socks5h://wapi:{SECRET}@127.0.0.1:{dead}")
check("a dead proxy: FAIL naming it (no password), exit 1", rc == 1 and state(ln, "endpoint") == "FAIL" and
      f"127.0.0.1:{dead}" in out and SECRET not in out, out)

# an unreachable endpoint
rc, ln, out = doctor(WAPI_WHATSAPP_URL=f"ws://127.0.0.1:{free_port()}/ws/chat")
check("an endpoint nobody listens on: FAIL with what to check", rc == 1 and state(ln, "endpoint") == "FAIL"
      and "egress" in ln["endpoint"][1], out)

# the session store readable by others
creds = os.path.join(srv.env["WAPI_PATHS_SESSIONS"], "creds.bin")
mode = os.stat(creds).st_mode & 0o777
os.chmod(creds, 0o644)
rc, ln, out = doctor()
os.chmod(creds, mode)
check("creds.bin readable by others: FAIL saying chmod 600", rc == 1 and state(ln, "session-store") == "FAIL" and
      "chmod 600" in out, out)

# a database without the migrations
bare = private_database(f"wapi_it_doctor_bare_{os.getpid()}")
rc, ln, out = doctor(DATABASE_URL=bare)
check("a database wapi never migrated: FAIL on migrations, exit 1", rc == 1 and state(ln, "database") == "ok" and
      state(ln, "migrations") == "FAIL", out)

srv.stop()
rc, ln, out = doctor()
check("server stopped: 'not running' is a warning, not a failure (exit 0)", rc == 0 and state(ln, "server") == "warn",
      out)
done()
