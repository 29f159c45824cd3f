"""Followed logs end to end (issue 14, item 5): caps per person and in all (429 with
Retry-After), a client that goes away frees its slot at once, streams end at their time
limit with a last line saying so, and streams never starve the service's other Kubernetes
calls. Real HTTP to the service, a real hub, the Kubernetes stand-in running pods that
print slowly and keep running.

Timings are printed (``pytest -s``); the asserted bound is 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from kubernetes_asyncio import client as kclient
from kubernetes_asyncio import config as kconfig

from tests.helpers.jobs_stack import (
    UIDS,
    ServiceThread,
    hub_login,
    jobs_stack,
    service_settings,
    user_token,
)
from valeria_hub.jobs.kube import Kube, KubeError
from valeria_hub.jobs.labels import OWNER_LABEL
from valeria_hub.jobs.naming import owner_label
from valeria_hub.jobs.routers.logs import StreamSlots

pytestmark = pytest.mark.e2e

PER_USER, TOTAL = 2, 3
FAST = 1.0  # seconds any other request may take while streams are open
# prints a line every half second for two and a half minutes (deleted before that)
TICKER = "i=0; while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 0.5; done"


def job_body(command: str) -> dict:
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", command]}
    return {
        "job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"generateName": "ticker-"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        }
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    overrides = {"max_log_streams_per_user": PER_USER, "max_log_streams": TOTAL}
    with jobs_stack(tmp_path_factory.mktemp("streams"), **overrides) as s:
        for name in UIDS:
            hub_login(s.hub_url, name)
        yield s


@pytest.fixture(scope="module")
def tokens(stack):
    return {name: user_token(stack.hub_url, name) for name in UIDS}


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"token {token}"}, timeout=30)


@pytest.fixture(scope="module")
def tickers(stack, tokens) -> Iterator[dict[str, str]]:
    """One running job per person whose pod prints a line every half second."""
    names = {}
    for user in UIDS:
        with client(stack.service.url, tokens[user]) as c:
            resp = c.post("jobs/", json=job_body(TICKER))
            assert resp.status_code == 201, resp.text
            names[user] = resp.json()["metadata"]["name"]
    for user, name in names.items():
        with client(stack.service.url, tokens[user]) as c:
            deadline = time.monotonic() + 60
            while "tick 0" not in (log := c.get(f"jobs/logs/{name}/")).text:
                assert time.monotonic() < deadline, log.text
                time.sleep(0.2)
    yield names
    for user, name in names.items():
        with client(stack.service.url, tokens[user]) as c:
            c.delete(f"jobs/{name}")


def slots(service: ServiceThread) -> StreamSlots:
    """The running service's counts (white-box, to show a slot is back at once)."""
    return service.server.config.app.state.log_stream_slots


class Followed:
    """A followed log over its own connection (dropping a chunk iterator would close it)."""

    def __init__(self, c: httpx.Client, job: str) -> None:
        request = c.build_request("GET", f"jobs/logs/{job}/", params={"stream": "true"})
        self.resp = c.send(request, stream=True)
        self.status_code = self.resp.status_code
        self.headers = self.resp.headers
        if self.status_code == 200:
            self.chunks = self.resp.iter_raw()
            assert b"tick" in self.next()  # the first chunk of the log has arrived
        else:
            self.resp.read()

    def next(self) -> bytes:
        return next(self.chunks)

    def json(self) -> dict:
        return self.resp.json()

    def close(self) -> None:
        self.resp.close()


def follow(c: httpx.Client, job: str) -> Followed:
    return Followed(c, job)


@contextlib.contextmanager
def following() -> Iterator[list[Followed]]:
    held: list[Followed] = []
    try:
        yield held
    finally:
        for resp in held:
            resp.close()


def wait_free(service: ServiceThread, timeout: float = 2.0) -> float:
    start = time.monotonic()
    while slots(service).open():
        assert time.monotonic() - start < timeout, "a stream kept its slot"
        time.sleep(0.01)
    return time.monotonic() - start


def test_caps_per_person_and_in_all(stack, tokens, tickers):
    url = stack.service.url
    with (
        client(url, tokens["alice"]) as a,
        client(url, tokens["bob"]) as b,
        following() as held,
    ):
        held += [follow(a, tickers["alice"]) for _ in range(PER_USER)]
        assert [r.status_code for r in held] == [200] * PER_USER
        refused = follow(a, tickers["alice"])
        assert refused.status_code == 429, refused.resp.text
        assert refused.headers["retry-after"].isdigit()
        assert f"max_log_streams_per_user = {PER_USER}" in refused.json()["detail"]

        held.append(follow(b, tickers["bob"]))  # somebody else still may
        assert held[-1].status_code == 200
        refused = follow(b, tickers["bob"])  # bob has room, the service has none
        assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
        assert f"max_log_streams = {TOTAL}" in refused.json()["detail"]
        assert slots(stack.service).open() == TOTAL
        # the non-streamed log is no follow and is never refused
        assert "tick" in a.get(f"jobs/logs/{tickers['alice']}/").text
    print(f"\nall {TOTAL} slots back {wait_free(stack.service):.3f} s after the clients left")


def test_a_client_that_goes_away_frees_its_slot_at_once(stack, tokens, tickers):
    with client(stack.service.url, tokens["alice"]) as a, following() as held:
        held += [follow(a, tickers["alice"]) for _ in range(PER_USER)]
        assert follow(a, tickers["alice"]).status_code == 429
        gone = held.pop()
        gone.close()  # the connection goes; the log keeps printing upstream
        start = time.monotonic()
        while slots(stack.service).open("alice") == PER_USER:
            assert time.monotonic() - start < 1.0, "the slot was not given back"
            time.sleep(0.005)
        freed = time.monotonic() - start
        held.append(follow(a, tickers["alice"]))
        assert held[-1].status_code == 200  # the next follow works
    print(f"\nslot back {freed * 1000:.0f} ms after the client disconnected")
    wait_free(stack.service)


def test_other_requests_answer_fast_with_every_stream_open(stack, tokens, tickers):
    url = stack.service.url
    timings: dict[str, float] = {}
    with (
        client(url, tokens["alice"]) as a,
        client(url, tokens["bob"]) as b,
        following() as held,
    ):
        held += [follow(a, tickers["alice"]) for _ in range(PER_USER)]
        held += [follow(b, tickers["bob"]) for _ in range(TOTAL - PER_USER)]
        assert slots(stack.service).open() == TOTAL
        time.sleep(1.0)  # the streams flow meanwhile
        for label, call in (
            ("list jobs", lambda: a.get("jobs/")),
            ("read job", lambda: a.get(f"jobs/{tickers['alice']}")),
            ("list pods", lambda: b.get("pods/")),
            ("log so far", lambda: b.get(f"jobs/logs/{tickers['bob']}/")),
            ("submit", lambda: a.post("jobs/", json=job_body("echo quick"))),
        ):
            start = time.monotonic()
            resp = call()
            timings[label] = time.monotonic() - start
            assert resp.status_code in (200, 201), (label, resp.text)
        # the streams still flow
        assert all(b"tick" in r.next() for r in held)
    print(
        f"\nwith {TOTAL} streams open: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    )
    assert max(timings.values()) < FAST, timings
    wait_free(stack.service)


def test_a_stream_ends_at_its_time_limit_with_a_last_line(stack, tokens, tickers):
    settings = service_settings(
        stack.hub_url, stack.vault.url, stack.kubeconfig, log_stream_max_seconds=1.5
    )
    with ServiceThread(settings) as short, client(short.url, tokens["alice"]) as a:
        start = time.monotonic()
        resp = a.get(f"jobs/logs/{tickers['alice']}/", params={"stream": "true"})
        took = time.monotonic() - start
        assert resp.status_code == 200
        lines = resp.text.splitlines()
        assert lines[-1] == "[log stream ended after 1.5 s; follow again to continue]"
        assert all(line.startswith("tick ") for line in lines[:-1]) and len(lines) > 3
        assert 1.4 < took < 3.0, took
        wait_free(short, timeout=1.0)  # given back as the response completes
    print(f"\nthe 1.5 s stream ended after {took:.2f} s with {len(lines) - 1} log lines")


def test_many_follows_leave_the_pool_to_other_calls(stack, tokens, tickers):
    """More follows than kubernetes_asyncio's whole default pool (100 connections): the
    service's other Kubernetes calls still answer at once."""
    many = 110
    settings = service_settings(
        stack.hub_url,
        stack.vault.url,
        stack.kubeconfig,
        max_log_streams_per_user=many,
        max_log_streams=many,
        kube_timeout=5.0,
    )
    job = tickers["alice"]
    headers = {"Authorization": f"token {tokens['alice']}"}

    async def scenario(url: str) -> dict[str, float]:
        limits = httpx.Limits(max_connections=many + 10)
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as c,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as other,
        ):
            request = c.build_request("GET", f"jobs/logs/{job}/", params={"stream": "true"})
            opened = await asyncio.gather(*(c.send(request, stream=True) for _ in range(many)))
            try:
                assert [r.status_code for r in opened] == [200] * many
                chunks = [r.aiter_raw() for r in opened]  # kept: a dropped one closes
                assert all(b"tick" in c for c in await asyncio.gather(*map(anext, chunks)))
                timings = {}
                for label, call in (
                    ("list jobs", lambda: other.get("jobs/")),
                    ("read job", lambda: other.get(f"jobs/{job}")),
                    ("list pods", lambda: other.get("pods/")),
                    ("submit", lambda: other.post("jobs/", json=job_body("echo quick"))),
                ):
                    start = time.monotonic()
                    resp = await call()
                    timings[label] = time.monotonic() - start
                    assert resp.status_code in (200, 201), (label, resp.text)
                return timings
            finally:
                await asyncio.gather(*(r.aclose() for r in opened))

    with ServiceThread(settings) as svc:
        timings = asyncio.run(scenario(svc.url))
        wait_free(svc, timeout=5)
    print(
        f"\nwith {many} streams open: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    )
    assert max(timings.values()) < FAST, timings


def test_streams_on_their_own_pool_against_the_shared_pool(stack, tickers):
    """The mechanism, measured: a service pool of 4 connections, follows beside it. On the
    shared pool (what open_log_stream did before) 4 follows make the next call time out;
    on their own pool 6 follows leave it alone, and a closed stream's connection is back."""
    pod = stack.kube.dump()["v1/pods"]
    pod = next(p for p in pod if p["metadata"]["labels"].get("job-name") == tickers["alice"])
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    selector = f"{OWNER_LABEL}={owner_label('alice')}"

    async def scenario() -> dict[str, float]:
        cfg = kclient.Configuration()
        await kconfig.load_kube_config(
            config_file=str(stack.kubeconfig), client_configuration=cfg, persist_config=False
        )
        cfg.connection_pool_maxsize = 4
        kube = Kube(kclient.ApiClient(configuration=cfg), timeout=1.0, stream_pool_size=6)
        out = {}
        try:
            shared = [
                await kube.core.read_namespaced_pod_log(
                    name, ns, container="job", follow=True, _preload_content=False
                )
                for _ in range(4)
            ]
            start = time.monotonic()
            with pytest.raises(KubeError, match="unreachable"):
                await kube.list_pods(ns, selector)
            out["shared pool: list pods fails after"] = time.monotonic() - start
            for resp in shared:
                resp.close()

            for round_ in ("first", "second"):  # the second needs the first's connections
                start = time.monotonic()
                streams = [await kube.open_log_stream(ns, name, "job", 30) for _ in range(6)]
                out[f"own pool: 6 follows open ({round_})"] = time.monotonic() - start
                start = time.monotonic()
                assert (await kube.list_pods(ns, selector))["items"]
                out[f"own pool: list pods ({round_})"] = time.monotonic() - start
                assert all([b"tick" in await anext(s) for s in streams])
                for s in streams:
                    s.close()
                assert all(s.closed for s in streams)
        finally:
            await kube.close()
        return out

    timings = asyncio.run(scenario())
    print("\n" + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
    assert timings["shared pool: list pods fails after"] >= 0.9
    assert all(v < FAST for k, v in timings.items() if k.startswith("own pool"))
