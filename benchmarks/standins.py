"""The stand-ins (Kubernetes API + kubelet, Vault, Keycloak) in a process of their own.

In the morning rush the load generator (logins, spawn requests, the prober) and the
stand-ins would otherwise share one interpreter lock: 1,000 clients' HTTP parsing would
slow the Kubernetes API stand-in's answers, and the API's work would delay the
generator's clocks. Here they run as ``python -m benchmarks.standins`` (each stand-in
in its own thread, as ``bench_stack`` runs them), seeded with the benchmark's users,
and the benchmark talks to that process through a line-based JSON channel on its
stdin/stdout:

- ``{"op": "allow_redirects_to", "public_url": ...}`` -> ``{"ok": true}``
- ``{"op": "hub_environment", "kwargs": {...}}`` -> ``{"env": {...}}``
- ``{"op": "counts"}`` -> ``{"counts": {"v1/pods": n, ...}}``
- ``{"op": "plain_kubespawner", "username": ..., "namespace": ...}`` ->
  ``{"settings": {...}}``: plain KubeSpawner settings giving everyone that user's pod
  (its S3 Secret created), for the rush's plain-KubeSpawner peer
- ``{"op": "api_latency", "since": t0, "until": t1}`` -> ``{"latency": {...}}``: how
  long each stand-in took to answer each kind of request (Kubernetes watches and log
  streams aside), from its handler's start to its end: ``kube: create pods``,
  ``keycloak: POST token``, ``vault: PUT auth/jwt/login``...

The Kubernetes stand-in's own event loop is watched by ``benchmarks.looplag`` too
(``kube-looplag.jsonl``): with the API's handler times, that tells a slow API apart
from a hub that is slow to read its answers.

End of stdin (or SIGTERM) stops the stand-ins; the kubelet stops every pod it started.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.stack import DemoStorage

REPLY_TIMEOUT = 60.0  # seconds for the process to answer one request
START_TIMEOUT = 300.0  # seconds to start and seed (1,000 users take a while)
STOP_TIMEOUT = 90.0  # seconds to stop every pod and exit


class StandInsError(RuntimeError):
    """The stand-ins' process failed, answered an error, or did not answer in time."""


class StandInsProcess:
    """The parent's handle: what ``bench_hub`` asks of the stand-ins, over the channel."""

    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_line(self, timeout: float) -> dict[str, Any]:
        """One JSON line from the child, within ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StandInsError(f"no answer in {timeout:.0f} s:\n{self.log_tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise StandInsError(f"the stand-ins' process exited:\n{self.log_tail()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if "error" in reply:
            raise StandInsError(reply["error"])
        return reply

    def request(self, op: str, timeout: float = REPLY_TIMEOUT, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        self.proc.stdin.flush()
        return self._read_line(timeout)

    def allow_redirects_to(self, public_url: str) -> None:
        self.request("allow_redirects_to", public_url=public_url)

    def hub_environment(self, **kwargs: Any) -> dict[str, str]:
        return self.request("hub_environment", kwargs=kwargs)["env"]

    def plain_kubespawner(self, username: str, namespace: str) -> dict[str, Any]:
        """Plain KubeSpawner settings giving every user ``username``'s pod, its S3
        Secret created (``spawn_overhead.plain_peer``)."""
        return self.request("plain_kubespawner", username=username, namespace=namespace)["settings"]

    def counts(self) -> dict[str, int]:
        """Objects in the Kubernetes stand-in's store, by resource."""
        return self.request("counts")["counts"]

    def api_latency(self, since: float, until: float) -> dict[str, dict[str, Any]]:
        """The stand-ins' answer times between two wall times, by request kind."""
        return self.request("api_latency", since=since, until=until)["latency"]

    @property
    def kube_looplag(self) -> Path:
        """The Kubernetes stand-in's loop-lag records (``benchmarks.looplag``)."""
        return self.log_path.parent / "kube-looplag.jsonl"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Close the channel (the child stops its stand-ins and pods), then make sure."""
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def standins_process(
    workdir: Path,
    users: list[DemoStorage] = (),
    *,
    container_nice: int | None = None,
    **kube_options: Any,
) -> Iterator[StandInsProcess]:
    """The seeded stand-ins (``common.seeded_stack``) served by a child process; the
    kubelet starts pods at ``container_nice`` (``Kubelet.container_nice``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "standins.log"
    spec = {
        "workdir": str(workdir),
        "users": [asdict(u) for u in users],
        "kube_options": kube_options,
        "container_nice": container_nice,
    }
    repo = Path(__file__).resolve().parents[1]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.standins"],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    handle = StandInsProcess(proc, log_path)
    try:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
        handle._read_line(START_TIMEOUT)  # {"ready": true}
        yield handle
    finally:
        handle.stop()


# -- the child --------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiTimes:
    """How long each stand-in took to answer, as an aiohttp middleware per stand-in."""

    def __init__(self, keep: int = 200_000) -> None:
        self.times: collections.deque[tuple[float, str, float]] = collections.deque(maxlen=keep)

    @staticmethod
    def kube(request: web.Request) -> str | None:
        """``verb resource`` of a Kubernetes request (``create secrets``), None for
        watches and followed logs (they last as long as the client wants). Pure."""
        if request.query.get("watch") in ("1", "true") or request.query.get("follow"):
            return None
        parts = [p for p in request.path.split("/") if p]
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            rest = parts[parts.index("namespaces") + 2 :]  # kind[/name[/subresource]]
        else:
            rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
        if not rest:
            return None
        named = len(rest) > 1
        verb = {
            "GET": "get" if named else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }.get(request.method, request.method.lower())
        return f"kube: {verb} {rest[0]}" + (f"/{rest[2]}" if len(rest) > 2 else "")

    @staticmethod
    def keycloak(request: web.Request) -> str | None:
        """``keycloak: METHOD last-segment`` (``POST token``, ``GET auth``). Pure."""
        return f"keycloak: {request.method} {request.path.rstrip('/').rsplit('/', 1)[-1]}"

    @staticmethod
    def vault(request: web.Request) -> str | None:
        """``vault: METHOD auth/jwt/login`` or ``vault: METHOD <mount>`` (no names). Pure."""
        parts = [p for p in request.path.split("/") if p][1:]
        what = "/".join(parts[:3]) if parts[:1] == ["auth"] else (parts[0] if parts else "")
        return f"vault: {request.method} {what}"

    def middleware(self, label: Callable[[web.Request], str | None]) -> Any:
        """A middleware noting each answer's time under ``label(request)``."""

        @web.middleware
        async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
            what = label(request)
            t0 = time.perf_counter()
            try:
                return await handler(request)
            finally:
                if what is not None:
                    self.times.append((time.time(), what, time.perf_counter() - t0))

        return timed

    def summary(self, since: float, until: float) -> dict[str, dict[str, Any]]:
        from benchmarks.common import summary_ms

        by_what: dict[str, list[float]] = collections.defaultdict(list)
        for t, what, seconds in list(self.times):
            if since <= t <= until:
                by_what[what].append(seconds)
        return {k: summary_ms(v, (50, 95, 99)) for k, v in sorted(by_what.items())}


API_TIMES = ApiTimes()


def answer(stack: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One request of the channel, run against the started ``DevStack``."""
    op = request.get("op")
    if op == "allow_redirects_to":
        stack.allow_redirects_to(request["public_url"])
        return {"ok": True}
    if op == "hub_environment":
        return {"env": stack.hub_environment(**request["kwargs"])}
    if op == "counts":
        return {"counts": stack.kube.call(stack.kube.counts)}
    if op == "plain_kubespawner":
        from benchmarks.spawn_overhead import plain_peer

        return {"settings": plain_peer(stack, request["username"], request["namespace"])}
    if op == "api_latency":
        return {"latency": API_TIMES.summary(request["since"], request["until"])}
    return {"error": f"unknown op {op!r}"}


def serve() -> None:
    """The child: start the stand-ins, answer the channel until its end."""
    from benchmarks.common import seeded_stack

    # the channel is the real stdout; anything printed goes to the log (stderr)
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    spec = json.loads(sys.stdin.readline())
    users = [DemoStorage(**u) for u in spec["users"]]
    from benchmarks.looplag import LoopLagMonitor

    workdir = Path(spec["workdir"])
    stack = seeded_stack(workdir, users, **spec["kube_options"])
    if stack.kube.kubelet is not None:
        stack.kube.kubelet.container_nice = spec["container_nice"]
    # each stand-in's answer times, noted before it builds its app
    for standin, label in (
        (stack.kube, ApiTimes.kube),
        (stack.keycloak, ApiTimes.keycloak),
        (stack.vault, ApiTimes.vault),
    ):
        chain = [API_TIMES.middleware(label), *standin.middlewares()]
        standin.middlewares = lambda chain=chain: list(chain)
    with stack.serve_in_threads():
        stack.kube.call(LoopLagMonitor(workdir / "kube-looplag.jsonl").start)
        channel.write(json.dumps({"ready": True, "kube": stack.kube.url}) + "\n")
        for line in sys.stdin:
            try:
                reply = answer(stack, json.loads(line))
            except Exception as e:  # noqa: BLE001 - the parent reports it
                reply = {"error": f"{type(e).__name__}: {e}"}
            channel.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    serve()
