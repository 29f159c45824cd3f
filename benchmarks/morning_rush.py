"""Scenario 2 (and 5): the 9:00 rush, then the hub's memory with many users.

N users (100 by default) log in through the Keycloak stand-in's login form over
HTTP (no browser) and then all start their servers at once, with the same call the
spawn page makes. Each notebook is a real ``jupyterhub-singleuser`` run by the
kubelet stand-in as the user's uid. While that happens a prober calls ``GET
/hub/api/`` every 50 ms through the proxy, and the hub's event-loop lag monitor
(``benchmarks.looplag``) records the worst stall and the code running at
the time.

Afterwards, with the servers still running, the same hub gets 1,000 users in its
database and its resident memory (and the jobs service's) is read from /proc: that
is the "memory" scenario, printed as its own object.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from devstack.hub import notebook_command

from .common import (
    BenchHub,
    bench_hub,
    bench_stack,
    bench_users,
    child_matching,
    cpu_seconds,
    login,
    rss_mb,
    summary_ms,
    user_client,
    wait_progress,
    xsrf_headers,
)

NAME = "morning_rush"
PROBE_EVERY = 0.05
NICE = "/usr/bin/nice"
LOW_PRIORITY = Path(__file__).resolve().parent / "low-priority"


async def probe(url: str, stop: asyncio.Event, out: list[float], errors: list[str]) -> None:
    """GET ``url`` every 50 ms until ``stop``; latencies (s) of the answers."""
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                resp = await client.get(url)
                if resp.status_code == 200:
                    out.append(time.perf_counter() - t0)
                else:
                    errors.append(f"HTTP {resp.status_code}")
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
            await asyncio.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - t0)))


def reason(text: str) -> str:
    """A short failure reason from a progress message or an error. Pure."""
    text = " ".join(text.split())
    for marker in ("timeout", "Timeout", "did not", "refused", "HTTP"):
        if marker in text:
            return text[:120]
    return text[:80] or "unknown"


async def log_in(hub: BenchHub, user: str) -> tuple[httpx.AsyncClient, float, str | None]:
    client = user_client(timeout=300)
    t0 = time.perf_counter()
    try:
        resp = await login(client, hub.url, user)
        ok = resp.status_code == 200 and str(resp.url).startswith(hub.url)
        error = None if ok else f"login HTTP {resp.status_code}"
    except httpx.HTTPError as e:
        error = f"login {type(e).__name__}"
    return client, time.perf_counter() - t0, error


async def spawn(
    hub: BenchHub, client: httpx.AsyncClient, user: str, start: asyncio.Event
) -> tuple[float | None, str | None]:
    """Start ``user``'s server when ``start`` fires; seconds to ready, or a reason."""
    headers = xsrf_headers(client, hub.url)
    await start.wait()
    t0 = time.perf_counter()
    try:
        resp = await client.post(f"{hub.url}/hub/api/users/{user}/server", headers=headers)
        if resp.status_code not in (201, 202):
            return None, f"spawn HTTP {resp.status_code}: {resp.text[:80]}"
        last = await wait_progress(client, hub.url, user, headers)
    except httpx.HTTPError:
        # the progress stream broke (the proxy under load): ask the hub instead
        last = await poll_ready(client, hub.url)
    if last.get("ready"):
        return time.perf_counter() - t0, None
    return None, reason(str(last.get("message") or "no ready event"))


async def poll_ready(client: httpx.AsyncClient, hub_url: str, limit: float = 300) -> dict:
    """The server's state from the hub's API, until it is ready, gone, or ``limit`` s."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        try:
            model = (await client.get(f"{hub_url}/hub/api/user")).json()
        except (httpx.HTTPError, ValueError):
            await asyncio.sleep(1)
            continue
        server = (model.get("servers") or {}).get("")
        if server is None:
            return {"message": "Spawn failed: server gone (seen by polling)"}
        if server.get("ready"):
            return {"ready": True}
        await asyncio.sleep(1)
    return {"message": "not ready after 300 s (seen by polling)"}


async def rush(hub: BenchHub, users: list[str]) -> dict[str, Any]:
    logins = await asyncio.gather(*(log_in(hub, u) for u in users))
    clients = [c for c, _, _ in logins]
    login_errors = Counter(e for _, _, e in logins if e)
    stop, start = asyncio.Event(), asyncio.Event()
    latencies: list[float] = []
    probe_errors: list[str] = []
    prober = asyncio.create_task(probe(f"{hub.url}/hub/api/", stop, latencies, probe_errors))
    await asyncio.sleep(1.0)  # a baseline before the rush
    baseline = list(latencies)
    wall0, cpu0 = time.time(), cpu_seconds(hub.pid) or 0.0
    tasks = [
        asyncio.create_task(spawn(hub, c, u, start))
        for (c, _, e), u in zip(logins, users, strict=True)
        if e is None
    ]
    t0 = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks)
    rush_seconds = time.perf_counter() - t0
    during = latencies[len(baseline) :]
    stop.set()
    await prober
    wall1, cpu1 = time.time(), cpu_seconds(hub.pid) or 0.0
    for c in clients:
        await c.aclose()
    ready = [t for t, e in results if t is not None]
    failures = Counter(e for _, e in results if e) + login_errors
    api = summary_ms(during)
    stalls = hub.loop_stalls(wall0, wall1 + 2)
    figures: dict[str, Any] = {
        "users": len(users),
        "login": summary_ms([t for _, t, e in logins if e is None], (50, 95)),
        "ready": len(ready),
        "failed": sum(failures.values()),
        "failures_by_reason": dict(failures),
        "time_to_ready": summary_ms(ready, (50, 95)),
        "rush_seconds": round(rush_seconds, 1),
        "hub_cpu_seconds_during_rush": round(cpu1 - cpu0, 1),
        "hub_api_probe": {**api, "baseline_p50_ms": summary_ms(baseline)["p50_ms"],
                          "errors": len(probe_errors)},
        "hub_event_loop": stalls,
    }  # fmt: skip
    figures["targets"] = {
        "all_ready": len(ready) == len(users),
        "hub_api_p99<=200ms": api["p99_ms"] <= 200,
        "no_stall>50ms_in_our_code": stalls["stalls_over_50ms_in_our_code"] == 0,
    }
    return figures


async def user_count(api: httpx.AsyncClient) -> int:
    resp = await api.get(
        "/users", params={"limit": 1}, headers={"Accept": "application/jupyterhub-pagination+json"}
    )
    resp.raise_for_status()
    return int(resp.json()["_pagination"]["total"])


async def memory(hub: BenchHub, total_users: int, running: int) -> dict[str, Any]:
    """Hub and jobs-service RSS with ``total_users`` in the database."""
    jobs_pid = child_matching(hub.pid, "valeria_hub.jobs")
    before = {"hub_rss_mb": rss_mb(hub.pid), "jobs_service_rss_mb": rss_mb(jobs_pid or -1)}
    async with hub.api(timeout=120) as api:
        names = [f"m{i:05d}" for i in range(max(0, total_users - await user_count(api)))]
        for i in range(0, len(names), 200):
            resp = await api.post("/users", json={"usernames": names[i : i + 200]})
            resp.raise_for_status()
        in_db = await user_count(api)
        # each user's model once (the admin page's and the services' typical reads)
        for i in range(0, in_db, 100):
            (await api.get("/users", params={"offset": i, "limit": 100})).raise_for_status()
    return {
        "users_in_db": in_db,
        "running_servers": running,
        "hub_rss_mb": rss_mb(hub.pid),
        "jobs_service_rss_mb": rss_mb(jobs_pid) if jobs_pid else None,
        "proxy_rss_mb": rss_mb(child_matching(hub.pid, "configurable-http-proxy") or -1),
        "before_adding_users": before,
        "servers_are": "real jupyterhub-singleuser processes (kubelet stand-in)",
    }


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    n = 3 if quick else int(os.environ.get("VALERIA_BENCH_RUSH_USERS", "100"))
    total = 20 if quick else 1000
    users = bench_users(n)
    # Notebooks run at the lowest CPU priority: in a cluster they run on other nodes,
    # here they share the hub's two cores (the command is still jupyterhub-singleuser).
    command = f"{LOW_PRIORITY} {notebook_command()}" if Path(NICE).exists() else None
    with (
        bench_stack(workdir, users) as stack,
        bench_hub(stack, workdir / "hub", singleuser_cmd=command) as hub,
    ):
        idle = {"hub_rss_mb_at_start": rss_mb(hub.pid)}
        figures = asyncio.run(rush(hub, [u.username for u in users]))
        mem = asyncio.run(memory(hub, total, figures["ready"]))
        mem.update(idle)
    return {"scenarios": {NAME: figures, "memory": mem}}
