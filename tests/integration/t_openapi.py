#!/usr/bin/env python3
"""The API's contract, docs/openapi.json, against the server: the router table
(`wapi-worker --routes`) and the document list the same methods and paths,
both ways; every event type the supervisor emits has its entry under the
document's `webhooks`; the worker serves the document at /api/openapi.json
(byte for byte the file) and the reference page at /docs, without
credentials."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Server, check, done  # noqa: E402

DOC = os.path.join(ROOT, "docs/openapi.json")
# Catch-alls of the router, not operations: files of the dashboard, and the
# JSON 404 (401 without credentials) for unknown paths under /api/.
CATCH_ALL = {"/assets/*", "/api/auth/*", "/api/*"}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def router_ops():
    out = subprocess.run([os.path.join(ROOT, "build/wapi-worker"), "--routes"], capture_output=True, text=True)
    ops = set()
    for line in out.stdout.splitlines():
        r = json.loads(line)
        # HEAD goes with GET everywhere; OpenAPI documents GET.
        if r["path"] not in CATCH_ALL and r["method"] != "HEAD":
            ops.add((r["method"], r["path"]))
    return out.returncode, ops


def doc_ops(doc):
    return {(m.upper(), p) for p, item in doc.get("paths", {}).items() for m in item if m.upper() in METHODS}


def emitted_event_types():
    """Every message.* / session.* string in the supervisor's C and the SQL
    migrations, less the ones that name other things: a new event type shows
    up here and must be added to the document."""
    found = set()
    for d in ("supervisor", "supervisor/wa", "common/sql"):
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if f.endswith((".c", ".sql")):
                src = open(os.path.join(ROOT, d, f), encoding="utf-8").read()
                found |= set(re.findall(r"[\"']((?:message|session)\.[a-z_]+)[\"']", src))
    return found - NOT_EVENTS


# Strings of that shape that are no event types: header names and audit
# actions (published as audit.<action>, documented as audit.*).
NOT_EVENTS = {"session.h", "message.h", "session.start", "session.stop", "session.logout", "session.pairing_code",
              "session.linked", "session.logged_out"}


def main():
    raw = open(DOC, "rb").read()
    doc = json.loads(raw)
    check("docs/openapi.json is OpenAPI 3.1", str(doc.get("openapi", "")).startswith("3.1"), doc.get("openapi"))

    rc, routes = router_ops()
    check("wapi-worker --routes lists the router table", rc == 0 and len(routes) > 40, (rc, len(routes)))
    documented = doc_ops(doc)
    missing = sorted(routes - documented)
    extra = sorted(documented - routes)
    check("every route of the router table is in docs/openapi.json (add the missing ones)", not missing,
          "missing from the document: " + ", ".join(f"{m} {p}" for m, p in missing))
    check("every operation of docs/openapi.json is a route the router serves", not extra,
          "not in the router table: " + ", ".join(f"{m} {p}" for m, p in extra))

    # Each operation: an id, responses, and every {param} of its path declared.
    bad = []
    for p, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", p))
        for m, o in item.items():
            declared = {x["name"] for x in o.get("parameters", []) if x.get("in") == "path"}
            if not o.get("operationId") or not o.get("responses") or declared != names:
                bad.append(f"{m.upper()} {p}")
    check("every operation has an operationId, responses and its path parameters", not bad, bad)

    types = emitted_event_types()
    hooks = set(doc.get("webhooks", {}))
    check("the supervisor's event types are found in its sources", len(types) >= 8, sorted(types))
    check("every event type the supervisor emits is in the document's webhooks section (and audit.*)",
          types <= hooks and "audit.*" in hooks,
          "missing: " + ", ".join(sorted(types - hooks)))
    no_example = [t for t, w in doc.get("webhooks", {}).items()
                  if not w["post"]["requestBody"]["content"]["application/json"].get("example")]
    check("every webhook entry has a payload schema and an example", hooks and not no_example, no_example)

    srv = Server().start()
    st, hd, body = srv.get("/api/openapi.json")
    check("GET /api/openapi.json without credentials: 200, JSON, the document byte for byte",
          st == 200 and hd.get("content-type", "").startswith("application/json") and body == raw,
          (st, hd.get("content-type"), len(body), len(raw)))
    st, hd, body = srv.request("HEAD", "/api/openapi.json")
    check("HEAD /api/openapi.json: 200, no body", st == 200 and body == b"", st)
    st, hd, body = srv.get("/docs")
    check("GET /docs: the reference page (HTML, CSP 'self' only)",
          st == 200 and hd.get("content-type", "").startswith("text/html") and b"docs.js" in body and
          "default-src 'self'" in hd.get("content-security-policy", ""), (st, hd.get("content-type"), body[:200]))
    etag = srv.get("/api/openapi.json")[1].get("etag")
    st, _, _ = srv.get("/api/openapi.json", headers={"If-None-Match": etag or "x"})
    check("the document is revalidated by its ETag (304)", etag and st == 304, (etag, st))
    srv.stop()
    done()


if __name__ == "__main__":
    main()
