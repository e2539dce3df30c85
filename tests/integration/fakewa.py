"""Drives tests/wa/lib/fake_server.mjs (the fake WhatsApp server and phone)
from Python: start it, read its events, pull its control levers."""
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

from harness import ROOT


class FakeWA:
    def __init__(self, *args):
        self.proc = subprocess.Popen(["node", os.path.join(ROOT, "tests/wa/lib/fake_server.mjs"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        info = json.loads(line)
        self.url, self.root_key, self.version = info["url"], info["rootKey"], info["version"]
        self.control = info["control"]
        self.phone = info["phone"]
        self.media_ca = info.get("mediaCa")  # with --media-ca: the test CA's certificate
        self.media_host = info.get("mediaHost")  # and "127.0.0.1:PORT" of the media hosts

    def env(self):
        return {"WAPI_WHATSAPP_URL": self.url, "WAPI_WHATSAPP_ROOT_KEY": self.root_key,
                "WAPI_WHATSAPP_VERSION": self.version, "WAPI_WHATSAPP_AUTOSTART": "true"}

    def call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return {"http_error": e.code, "body": e.read().decode(errors="replace")}

    def events(self, since=0, kind=None):
        q = f"/events?since={since}" + (f"&kind={kind}" if kind else "")
        return self.call("GET", q)["events"]

    def wait_event(self, kind, since=0, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self.events(since, kind)
            if ev:
                return ev[0]
            time.sleep(0.05)
        return None

    def last_seq(self):
        ev = self.events(0)
        return ev[-1]["seq"] if ev else 0

    # ── groups (lib/fake_groups.mjs): each acts as account `actor`; a refusal comes back as
    # {"http_error": 409, "body": "... group: CODE text ..."} ──
    def groups(self):
        return self.call("GET", "/groups")["groups"]

    def group(self, jid):
        return self.call("GET", "/groups/" + urllib.parse.quote(jid))

    def group_create(self, creator, subject, participants, addressing="pn"):
        return self.call("POST", "/groups/create", {"creator": creator, "subject": subject,
                                                    "participants": participants, "addressing": addressing})

    def group_participants(self, jid, actor, action, participants):
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/participants",
                         {"actor": actor, "action": action, "participants": participants})

    def group_subject(self, jid, actor, subject):
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/subject", {"actor": actor, "subject": subject})

    def group_description(self, jid, actor, description):
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/description",
                         {"actor": actor, "description": description})

    def group_setting(self, jid, actor, setting, expiration=None):
        body = {"actor": actor, "setting": setting}
        if expiration is not None:
            body["expiration"] = expiration
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/setting", body)

    def group_leave(self, jid, actor):
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/leave", {"actor": actor})

    def group_revoke_invite(self, jid, actor):
        return self.call("POST", f"/groups/{urllib.parse.quote(jid)}/invite", {"actor": actor})

    def group_deliveries(self, jid=None):
        """One record per message and recipient device: {id, group, sender, to, pairwise, skmsg, keyId}."""
        return self.call("GET", f"/groups/{urllib.parse.quote(jid)}/deliveries" if jid else "/groups/deliveries")["deliveries"]

    def group_peer_send(self, jid, sender, text, skip_skdm=False):
        """Account `sender`'s device 0 sends text to the group (sender keys; skip_skdm: its key withheld)."""
        return self.call("POST", "/peer/send", {"from": sender, "group": jid, "text": text, "skipSkdm": skip_skdm})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
