#!/usr/bin/env python3
"""The app-state sync keys our phone shares (protocolMessage
APP_STATE_SYNC_KEY_SHARE): stored with the batch before its ack, each key
once (shared again: nothing added); a key share from anyone but our phone
(another account) is dropped; a key of a length that is no sync key is left
out without failing the batch; the message is never shown as a chat
message."""
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(__file__))
from fakewa import FakeWA  # noqa: E402
from harness import check, done, ROOT, Server, wait  # noqa: E402
from linked import Api, private_database, psql  # noqa: E402

DB = private_database(f"wapi_it_askeys_{os.getpid()}")
BIN = os.environ.get("T_ASKEYS_BIN") or ("build/san" if os.path.exists(os.path.join(ROOT, "build/san/wapi"))
                                         else "build")

wa = FakeWA()
srv = Server(bindir=BIN, workers=2, env=wa.env(), pg_url=DB)
srv.env["BETTER_AUTH_URL"] = f"http://127.0.0.1:{srv.port}"
srv.start()
api = Api(srv)
check("signed up, API key made, linked to the fake phone", bool(api.key) and api.link(wa))


def keys():
    return {r[0]: r[1] for r in psql(DB, "SELECT encode(key_id, 'hex'), encode(key_data, 'hex') FROM wa_appstate_keys")}


def acked(mid, since):
    return wait(lambda: [e for e in wa.events(since, "ack") if e.get("id") == mid], timeout=15)


msgs0 = int(psql(DB, "SELECT count(*) FROM wa_messages")[0][0])
K1 = {"id": "00000001" + secrets.token_hex(2), "data": secrets.token_hex(32), "ts": 1700000000000}
K2 = {"id": "00000002" + secrets.token_hex(2), "data": secrets.token_hex(32)}
mark = wa.last_seq()
r = wa.call("POST", "/peer/send", {"from": wa.phone, "appStateKeys": [K1, K2]})
check("our phone shares two keys: both stored, byte for byte, before the ack",
      bool(acked(r["id"], mark)) and keys() == {K1["id"]: K1["data"], K2["id"]: K2["data"]}, keys())
check("... when it was shared kept", psql(DB, "SELECT extract(epoch FROM shared_at)::bigint FROM wa_appstate_keys "
                                              "WHERE key_id = decode(:'p0', 'hex')", K1["id"]) == [["1700000000"]])
mark = wa.last_seq()
r = wa.call("POST", "/peer/send", {"from": wa.phone, "appStateKeys": [K1, {"id": "0003", "data": "abcd"}]})
check("shared again, with a key of the wrong length: nothing added, the batch still stored and acked",
      bool(acked(r["id"], mark)) and len(keys()) == 2, keys())
mark = wa.last_seq()
stranger = wa.call("POST", "/peer/send", {"appStateKeys": [{"id": "0bad0bad", "data": secrets.token_hex(32)}]})
check("a key share from another account: acked, dropped", bool(acked(stranger["id"], mark)) and len(keys()) == 2,
      keys())
check("no key share shows as a message", int(psql(DB, "SELECT count(*) FROM wa_messages")[0][0]) == msgs0)
check("the fake server saw no protocol violation", not wa.events(0, "violation"), wa.events(0, "violation"))
srv.stop()
wa.stop()
done()
