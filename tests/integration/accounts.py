"""Accounts over HTTP for the suites: a client that keeps cookies and
speaks from an address of its own (X-Forwarded-For, honoured from
loopback), and the sign-up / sign-in calls."""
import http.client
import json
import random

from harness import contract_log


def rand_ip():
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


def request(srv, method, path, body, headers, timeout=60):
    """Like srv.request, keeping every Set-Cookie: a list under
    "set-cookie-list", and all of them joined by "\n" under "set-cookie"."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        hd = {}
        for k, v in r.getheaders():
            hd[k.lower()] = v
        contract_log("response", method=method, path=path, status=r.status, type=hd.get("content-type"), body=data)
        cookies = r.headers.get_all("set-cookie") or []
        hd["set-cookie-list"] = cookies
        if cookies:
            hd["set-cookie"] = "\n".join(cookies)
        return r.status, hd, data
    finally:
        c.close()


class Client:
    def __init__(self, srv, origin=None):
        self.srv, self.cookies, self.ip = srv, {}, rand_ip()
        self.origin = origin if origin is not None else f"http://127.0.0.1:{srv.port}"

    def call(self, method, path, body=None, headers=None, raw=None):
        h = {"x-forwarded-for": self.ip}
        if body is not None or raw is not None:
            h["content-type"] = "application/json"
        if self.origin and method not in ("GET", "HEAD"):
            h["origin"] = self.origin
        if self.cookies:
            h["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        st, hd, b = request(self.srv, method, path, data, h)
        for sc in self.set_cookies(hd):
            name, _, rest = sc.partition("=")
            val = rest.split(";")[0]
            if "Max-Age=0" in sc:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        try:
            js = json.loads(b) if b else None
        except ValueError:
            js = None
        return st, hd, js

    @staticmethod
    def set_cookies(hd):
        return hd.get("set-cookie-list", [])


def sign_up(c, email, password="password-123", name="Ann", **extra):
    return c.call("POST", "/api/auth/sign-up/email", dict(email=email, password=password, name=name, **extra))


def sign_in(c, email, password="password-123", **extra):
    return c.call("POST", "/api/auth/sign-in/email", dict(email=email, password=password, **extra))
