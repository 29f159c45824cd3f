"""A light single-user server for the morning-rush benchmark.

The rush measures the platform's control plane (hub, authenticator, spawner, the
stand-ins' API and kubelet), not JupyterLab's own start-up: 100 or 1,000 real
``jupyter-server`` starts need minutes of CPU that in a cluster run on other nodes,
while here they would share the hub's two cores. This server answers the hub as
``jupyterhub-singleuser`` does, for a Python start-up (~25 ms of CPU) and ~4 MiB of
private memory:

- it listens where the spawner says (``JUPYTERHUB_SERVICE_URL``: address, port and
  prefix; ``--ip=``/``--port=`` override, as for the real one);
- ``GET {prefix}api`` answers ``{"version": ...}`` with ``X-JupyterHub-Version`` (the
  hub's readiness check, ``User._wait_up``, takes any non-5xx answer there and compares
  that header with its own version: give it with ``--jupyterhub-version=``); ``{prefix}``
  and anything under it answer a small page and count as activity; the rest is a 404;
- at start, and then every ``JUPYTERHUB_ACTIVITY_INTERVAL`` seconds (300) if it was used
  since, it posts its last activity to ``JUPYTERHUB_ACTIVITY_URL`` with
  ``JUPYTERHUB_API_TOKEN``, as the real one does;
- SIGTERM (the kubelet stopping the pod) ends it at once.

Standard library only, and only its small modules (no asyncio: it alone would double the
memory): run as ``python -I -S`` by the kubelet stand-in as the person's uid, from the
notebook "image", where the repository's packages are not installed.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time

HEAD_LIMIT = 16 * 1024  # bytes of request line and headers accepted
CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request head
HUB_TIMEOUT = 10.0  # seconds for one activity post to the hub, connection included
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def isoformat(t: float) -> str:
    """A UTC timestamp as the hub's activity API reads it. Pure."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL, IPv4 or name hosts. Pure."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    default = 443 if scheme == "https" else 80
    return scheme, host, int(port) if port.isdigit() else default, slash + path or "/"


def settings(argv: list[str], env: dict[str, str]) -> dict[str, str | int]:
    """Where to listen and the version to announce, from the spawner's environment. Pure."""
    _, host, port, path = split_url(env.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8888/")
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or path
    out: dict[str, str | int] = {
        "ip": host or "127.0.0.1",
        "port": port if env.get("JUPYTERHUB_SERVICE_URL") else 8888,
        "prefix": prefix if prefix.endswith("/") else prefix + "/",
        "version": "",
    }
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key == "ip" and value:
            out["ip"] = value
        elif key == "port" and value.isdigit():
            out["port"] = int(value)
        elif key == "jupyterhub-version":
            out["version"] = value
    return out


def response(status: int, body: bytes, content_type: str, version: str) -> bytes:
    """One HTTP/1.1 answer; the connection closes after it. Pure."""
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if version:
        head.append(f"X-JupyterHub-Version: {version}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def activity_request(url: str, token: str, server_name: str, when: float) -> bytes:
    """The activity POST jupyterhub-singleuser makes, as bytes. Pure."""
    _, host, port, path = split_url(url)
    stamp = isoformat(when)
    name = server_name.replace("\\", "\\\\").replace('"', '\\"')
    body = (
        f'{{"servers": {{"{name}": {{"last_activity": "{stamp}"}}}}, "last_activity": "{stamp}"}}'
    ).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: token {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class LightServer:
    """One selector loop: the listening socket, clients, and the activity post."""

    def __init__(self, opts: dict[str, str | int], env: dict[str, str]) -> None:
        self.prefix = str(opts["prefix"])
        self.version = str(opts["version"])
        self.last_activity = time.time()  # the start counts, as for jupyter-server
        self.sel = selectors.DefaultSelector()
        self.clients: dict[socket.socket, tuple[bytearray, float]] = {}
        self.activity_url = env.get("JUPYTERHUB_ACTIVITY_URL") or ""
        self.token = env.get("JUPYTERHUB_API_TOKEN") or ""
        self.server_name = env.get("JUPYTERHUB_SERVER_NAME", "")
        self.interval = float(env.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)
        self.sent = 0.0  # the last activity the hub has
        self.next_post = 0.0  # when to look again
        self.post: tuple[socket.socket, bytes, float, float] | None = None
        self.listener = socket.create_server((str(opts["ip"]), int(opts["port"])), backlog=128)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")

    # -- serving ------------------------------------------------------------------
    def answer(self, method: str, path: str) -> bytes:
        """The answer to one request; requests for the server count as activity."""
        path = path.split("?", 1)[0]
        if method != "GET":
            return response(405, b"", "text/plain", self.version)
        if path in (self.prefix + "api", self.prefix + "api/"):
            body = f'{{"version": "{self.version or "light"}"}}'.encode()
            return response(200, body, "application/json", self.version)
        if path.startswith(self.prefix) or path + "/" == self.prefix:
            self.last_activity = time.time()
            body = b"<!doctype html><title>light server</title><p>A benchmark's server.</p>"
            return response(200, body, "text/html; charset=utf-8", self.version)
        return response(404, b"not found", "text/plain", self.version)

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.clients[conn] = (bytearray(), time.monotonic() + CLIENT_TIMEOUT)
        self.sel.register(conn, selectors.EVENT_READ, "client")

    def read(self, conn: socket.socket) -> None:
        buf, _ = self.clients[conn]
        try:
            chunk = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf += chunk
        if chunk and b"\r\n\r\n" not in buf and len(buf) < HEAD_LIMIT:
            return
        parts = bytes(buf).split(b"\r\n", 1)[0].decode("latin-1").split()
        if chunk:
            data = self.answer(parts[0], parts[1]) if len(parts) == 3 else b""
            data = data or response(400, b"", "text/plain", self.version)
            try:  # a fresh connection's buffer takes a few hundred bytes at once
                conn.setblocking(True)
                conn.settimeout(CLIENT_TIMEOUT)
                conn.sendall(data)
            except OSError:
                pass
        self.drop(conn)

    def drop(self, conn: socket.socket) -> None:
        self.clients.pop(conn, None)
        self.sel.unregister(conn)
        conn.close()

    # -- activity -----------------------------------------------------------------
    def start_post(self, now: float) -> None:
        """Connect to the hub without waiting; the request goes once connected."""
        when = self.last_activity
        scheme, host, port, _ = split_url(self.activity_url)
        if scheme != "http":  # the stand-in's hub is plain HTTP; say so once
            print(f"activity: {scheme} hub URLs are not supported", file=sys.stderr)
            self.activity_url = ""
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((host, port))
        request = activity_request(self.activity_url, self.token, self.server_name, when)
        self.post = (sock, request, when, now + HUB_TIMEOUT)
        self.sel.register(sock, selectors.EVENT_WRITE, "post")

    def step_post(self, event: int) -> None:
        assert self.post is not None
        sock, request, when, deadline = self.post
        try:
            if event & selectors.EVENT_WRITE:
                sock.sendall(request)  # small: fits the new connection's buffer
                self.sel.modify(sock, selectors.EVENT_READ, "post")
                return
            status = sock.recv(64).split(b" ", 2)[1]
        except (OSError, IndexError) as e:
            print(f"activity post failed: {type(e).__name__}", file=sys.stderr, flush=True)
            self.end_post(time.monotonic() + 15)
            return
        if status.startswith(b"2"):
            self.sent = when
            self.end_post(time.monotonic() + self.interval)
        else:
            print(f"activity post answered {status.decode()}", file=sys.stderr, flush=True)
            self.end_post(time.monotonic() + 15)

    def end_post(self, next_post: float) -> None:
        if self.post is not None:
            self.sel.unregister(self.post[0])
            self.post[0].close()
        self.post, self.next_post = None, next_post

    # -- the loop -------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Timeouts of clients and of the activity post; a new post when due."""
        for conn, (_, deadline) in list(self.clients.items()):
            if now > deadline:
                self.drop(conn)
        if self.post is not None and now > self.post[3]:
            print("activity post timed out", file=sys.stderr, flush=True)
            self.end_post(now + 15)
        due = self.activity_url and self.token and self.post is None and now >= self.next_post
        if due and self.last_activity > self.sent:
            self.start_post(now)

    def serve(self) -> None:
        while True:
            for key, event in self.sel.select(timeout=1.0):
                if key.data == "accept":
                    self.accept()
                elif key.data == "client":
                    self.read(key.fileobj)  # type: ignore[arg-type]
                elif key.data == "post":
                    self.step_post(event)
            self.tick(time.monotonic())


def main(argv: list[str]) -> None:
    env = dict(os.environ)
    opts = settings(argv, env)
    server = LightServer(opts, env)

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"light single-user server on {opts['ip']}:{opts['port']}{opts['prefix']}", flush=True)
    server.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
