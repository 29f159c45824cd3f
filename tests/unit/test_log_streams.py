"""Followed logs: the per-person and global caps, the time limit, and that no way out of a
follow (end, client gone, error, cancelled task) keeps its slot or its upstream stream.

The routes are driven through the real app (its middleware, FastAPI's dependencies,
Starlette's responses) by hand-made ASGI messages, so a test decides exactly when the
client goes away; Kubernetes is a fake whose log streams say whether they were closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request

from valeria_hub.jobs.app import create_app
from valeria_hub.jobs.config import JobsServiceApp
from valeria_hub.jobs.hubauth import current_user
from valeria_hub.jobs.hubclient import HubUser
from valeria_hub.jobs.kube import KubeError
from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION
from valeria_hub.jobs.naming import owner_label
from valeria_hub.jobs.routers.logs import StreamsFull, StreamSlots, bounded, ended_line

PREFIX = "/services/jobs/"


# -- the counting ---------------------------------------------------------------------------
def test_caps_per_person_then_in_all_and_the_message_names_the_cap():
    slots = StreamSlots(per_user=2, total=3)
    a1, a2 = slots.acquire("alice"), slots.acquire("alice")
    with pytest.raises(StreamsFull, match=r"max_log_streams_per_user = 2"):
        slots.acquire("alice")
    b1 = slots.acquire("bob")
    with pytest.raises(StreamsFull, match=r"max_log_streams = 3"):
        slots.acquire("bob")  # bob has room of his own, the service has none
    assert (slots.open(), slots.open("alice"), slots.open("bob")) == (3, 2, 1)
    a1.release()
    a1.release()  # a second release gives nothing back twice
    assert (slots.open(), slots.open("alice")) == (2, 1)
    slots.acquire("bob").release()
    for slot in (a2, b1):
        slot.release()
    assert slots.open() == 0 and slots._by_user == {}


async def test_concurrent_follows_never_overshoot_and_all_come_back():
    slots = StreamSlots(per_user=3, total=5)
    peak = {"all": 0, "alice": 0}
    admitted = refused = 0

    async def follow(user: str, hold: float) -> None:
        nonlocal admitted, refused
        await asyncio.sleep(0)
        try:
            slot = slots.acquire(user)
        except StreamsFull:
            refused += 1
            return
        with slot:
            admitted += 1
            peak["all"] = max(peak["all"], slots.open())
            peak["alice"] = max(peak["alice"], slots.open("alice"))
            await asyncio.sleep(hold)

    users = ["alice", "bob", "carol"]
    await asyncio.gather(*(follow(users[i % 3], 0.001 * (i % 7)) for i in range(300)))
    assert peak["all"] == 5 and 1 <= peak["alice"] <= 3
    assert admitted + refused == 300 and admitted >= 5 and refused > 0
    assert slots.open() == 0 and slots._by_user == {}


async def test_cancelled_and_failing_holders_give_their_slots_back():
    slots = StreamSlots(per_user=10, total=10)
    holding = asyncio.Event()

    async def hold(user: str, fail: bool) -> None:
        with slots.acquire(user):
            holding.set()
            if fail:
                raise RuntimeError("boom")
            await asyncio.sleep(3600)

    tasks = [asyncio.create_task(hold(f"u{i % 3}", i % 4 == 0)) for i in range(10)]
    await holding.wait()
    await asyncio.sleep(0.01)
    assert slots.open() == 7  # the failing ones are back already
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, RuntimeError) for r in results) == 3
    assert slots.open() == 0 and slots._by_user == {}


# -- the time limit -------------------------------------------------------------------------
async def _chunks(*chunks: bytes, then_wait: float = 0.0) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    await asyncio.sleep(then_wait)


async def test_bounded_passes_a_log_that_ends_in_time_unchanged():
    out = [c async for c in bounded(_chunks(b"a\n", b"b"), max_seconds=5)]
    assert out == [b"a\n", b"b"]


async def test_bounded_ends_a_silent_log_at_its_limit_with_a_line_of_its_own():
    loop = asyncio.get_running_loop()
    start = loop.time()
    out = [c async for c in bounded(_chunks(b"partial", then_wait=30), max_seconds=0.3)]
    assert 0.25 < loop.time() - start < 1.0
    assert out == [b"partial", b"\n[log stream ended after 0.3 s; follow again to continue]\n"]
    assert ended_line(3600, b"done\n") == (
        b"[log stream ended after 3600 s; follow again to continue]\n"
    )


# -- through the app --------------------------------------------------------------------------
class FakeLog:
    """A followed log: chunks the test puts in; close() is what the service must call."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    def __aiter__(self) -> FakeLog:
        return self

    async def __anext__(self) -> bytes:
        if self.closed:
            raise StopAsyncIteration
        chunk = await self.queue.get()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(b"")


class FakeKube:
    """Pods named ``USER-N`` belong to USER and run; ``broken-N`` cannot be followed."""

    default_namespace = "default"

    def __init__(self) -> None:
        self.logs: list[FakeLog] = []

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        owner = name.rsplit("-", 1)[0]
        if owner == "missing":
            return None
        meta = {
            "name": name,
            "namespace": namespace,
            "labels": {OWNER_LABEL: owner_label(owner)},
            "annotations": {USERNAME_ANNOTATION: owner},
        }
        return {
            "metadata": meta,
            "spec": {"containers": [{"name": "job"}]},
            "status": {"phase": "Running"},
        }

    async def open_log_stream(self, namespace: str, pod: str, container: str, idle: float):
        if pod.startswith("broken-"):
            raise KubeError(500, "the apiserver fell over")
        log = FakeLog()
        self.logs.append(log)
        return log

    async def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def running_app(**overrides: Any) -> AsyncIterator[tuple[FastAPI, FakeKube]]:
    conf = JobsServiceApp(hub_api_token="svc-token", hub_api_url="http://127.0.0.1:9/hub/api")
    settings = dataclasses.replace(conf.settings(), **overrides)
    kube = FakeKube()
    app = create_app(settings, vault=conf.vault, kube=kube)  # type: ignore[arg-type]

    async def as_header_user(request: Request) -> HubUser:
        return HubUser(request.headers["x-user"])

    app.dependency_overrides[current_user] = as_header_user
    async with app.router.lifespan_context(app):
        yield app, kube


class Exchange:
    """One request driven by hand: the test says when the client goes away."""

    def __init__(self, app: FastAPI, user: str, path: str, spec: str = "2.3") -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": PREFIX + path,
            "raw_path": (PREFIX + path).encode(),
            "root_path": "",
            "query_string": b"stream=true",
            "headers": [(b"host", b"test"), (b"x-user", user.encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("test", 80),
            "state": {},
        }
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.got = asyncio.Event()
        self.gone = asyncio.Event()
        self._asked = False
        self.task = asyncio.create_task(app(self.scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            # uvicorn (ASGI 2.3) drops what is sent to a client that is gone; 2.4 raises
            if self.scope["asgi"]["spec_version"] == "2.4":
                raise OSError("the client is gone")
            return
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
        self.got.set()

    async def until(self, predicate: Any, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.got.clear()
                await self.got.wait()

    async def done(self, timeout: float = 2.0) -> None:
        # an OSError out of the app after a disconnect is the 2.4 server's to swallow
        with contextlib.suppress(OSError):
            async with asyncio.timeout(timeout):
                await self.task


def slots_of(app: FastAPI) -> StreamSlots:
    return app.state.log_stream_slots


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_a_client_that_goes_away_frees_its_slot_and_the_upstream_stream_at_once(spec):
    async with running_app(max_log_streams_per_user=1, max_log_streams=5) as (app, kube):
        first = Exchange(app, "alice", "pods/logs/alice-1/", spec)
        await first.until(lambda: first.status == 200)
        kube.logs[0].queue.put_nowait(b"line 1\n")
        await first.until(lambda: first.body == b"line 1\n")
        refused = Exchange(app, "alice", "pods/logs/alice-2/", spec)
        await refused.done()
        assert refused.status == 429 and refused.headers["retry-after"] == "10"
        assert "max_log_streams_per_user = 1" in json.loads(refused.body)["detail"]

        loop = asyncio.get_running_loop()
        start = loop.time()
        first.gone.set()  # the log stays silent: nothing to send would reveal it
        await first.done()
        assert loop.time() - start < 0.5
        assert kube.logs[0].closed and slots_of(app).open() == 0

        again = Exchange(app, "alice", "pods/logs/alice-3/", spec)
        await again.until(lambda: again.status == 200)
        kube.logs[1].queue.put_nowait(b"")  # the container ends
        await again.done()
        assert slots_of(app).open() == 0 and kube.logs[1].closed


async def test_the_global_cap_refuses_anyone_and_names_itself():
    async with running_app(max_log_streams_per_user=2, max_log_streams=2) as (app, kube):
        held = [
            Exchange(app, "alice", "pods/logs/alice-1/"),
            Exchange(app, "bob", "pods/logs/bob-1/"),
        ]
        for ex in held:
            await ex.until(lambda ex=ex: ex.status == 200)
        refused = Exchange(app, "carol", "pods/logs/carol-1/")
        await refused.done()
        assert refused.status == 429 and "retry-after" in refused.headers
        assert "max_log_streams = 2" in json.loads(refused.body)["detail"]
        assert len(kube.logs) == 2  # refused before any Kubernetes call
        for ex in held:
            ex.gone.set()
            await ex.done()
        assert slots_of(app).open() == 0 and all(log.closed for log in kube.logs)


async def test_errors_before_the_stream_give_the_slot_back():
    async with running_app(max_log_streams_per_user=1, max_log_streams=1) as (app, kube):
        for path, status in (("pods/logs/missing-1/", 404), ("pods/logs/broken-1/", 503)):
            ex = Exchange(app, "broken" if "broken" in path else "missing", path)
            await ex.done()
            assert ex.status == status, ex.body
            assert slots_of(app).open() == 0
        ex = Exchange(app, "alice", "pods/logs/bob-1/")  # somebody else's pod
        await ex.done()
        assert ex.status == 404 and slots_of(app).open() == 0


async def test_a_cancelled_request_gives_back_its_slot_and_closes_the_upstream_stream():
    async with running_app(max_log_streams_per_user=1, max_log_streams=1) as (app, kube):
        ex = Exchange(app, "alice", "pods/logs/alice-1/")
        await ex.until(lambda: ex.status == 200)
        assert slots_of(app).open() == 1
        ex.task.cancel()  # e.g. the server shuts down
        with contextlib.suppress(asyncio.CancelledError):
            await ex.task
        assert slots_of(app).open() == 0 and kube.logs[0].closed


async def test_a_stream_at_its_time_limit_ends_with_the_line_and_frees_the_slot():
    async with running_app(log_stream_max_seconds=0.4) as (app, kube):
        ex = Exchange(app, "alice", "pods/logs/alice-1/")
        await ex.until(lambda: ex.status == 200)
        kube.logs[0].queue.put_nowait(b"working\n")
        await ex.done(timeout=3)
        assert ex.body == b"working\n[log stream ended after 0.4 s; follow again to continue]\n"
        assert slots_of(app).open() == 0 and kube.logs[0].closed
