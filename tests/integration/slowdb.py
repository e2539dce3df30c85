"""A PostgreSQL that is farther away: a byte pipe in front of the test
database that holds every chunk, each way, for delay_ms before passing it on
(in order, without limiting throughput), as a database in another zone or
region would. slow_url(url, delay_ms) starts one (a thread, for the life of
the process) and returns the URL that reaches the database through it: a
Unix socket directory of its own named by host=, the rest of url unchanged,
so the password exchange, if any, passes through as it is."""
import asyncio
import os
import re
import tempfile
import threading
import time
import urllib.parse


def _target(url):
    """(unix socket path) or (host, port) of the server url names."""
    u = urllib.parse.urlsplit(url)
    q = dict(urllib.parse.parse_qsl(u.query))
    host = q.get("host") or u.hostname or "/var/run/postgresql"
    port = int(q.get("port") or u.port or 5432)
    if host.startswith("/"):
        return os.path.join(host, f".s.PGSQL.{port}"), port
    return (host, port), port


def slow_url(url, delay_ms):
    target, port = _target(url)
    d = tempfile.mkdtemp(prefix="wapi-slowdb-")
    path = os.path.join(d, f".s.PGSQL.{port}")
    delay = delay_ms / 1000.0
    ready = threading.Event()

    async def pipe(reader, writer):
        q = asyncio.Queue()

        async def later():
            while True:
                due, data = await q.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.ensure_future(later())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                q.put_nowait((time.monotonic() + delay, data))
        except OSError:
            pass
        q.put_nowait((0, None))
        try:
            await task
        except OSError:
            pass

    async def client(creader, cwriter):
        try:
            if isinstance(target, str):
                sreader, swriter = await asyncio.open_unix_connection(target)
            else:
                sreader, swriter = await asyncio.open_connection(*target)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pipe(creader, swriter), pipe(sreader, cwriter))

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.start_unix_server(client, path=path))
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    u = urllib.parse.urlsplit(url)
    q = [(k, v) for k, v in urllib.parse.parse_qsl(u.query) if k not in ("host", "port")]
    q += [("host", d), ("port", str(port))]
    userinfo = re.match(r"^([^@]*@)?", u.netloc).group(1) or ""
    return f"{u.scheme}://{userinfo}{u.path}?{urllib.parse.urlencode(q, safe='/')}"
