"""Scenario 2 (and 5): the 9:00 rush, three times, then the hub's memory.

N users log in through the Keycloak stand-in's login form over HTTP (no browser) and
then all start their servers at once, with the same calls the spawn page makes (a
429 from the hub's ``concurrent_spawn_limit`` is retried after its ``Retry-After``, as
a person would). A prober, in a process of its own (``benchmarks.prober``), calls
``GET /hub/api/`` every 50 ms through the proxy from before the logins to the last
server ready, and the hub's event-loop lag monitor (``benchmarks.looplag``) records
every stall, the code that held the loop and the time the loop waited for a CPU.
The record carries the CPU time of each process (and of the whole machine: the
benchmark shares it with whatever else runs) during the logins and during the rush.

What is measured is the platform's control plane: the hub (its own process), the
authenticator, the spawner, the hub-managed jobs service, and the stand-ins' APIs and
kubelet, which run in a process of their own (``benchmarks.standins``), apart from
the load generator (this process). The pods run at the lowest CPU priority
(the kubelet stand-in's ``container_nice``: their sessions' autogroups and their
processes, from the container's first step, its mounts and uid drop, on) and, in two
of the three rushes, a light single-user server (``benchmarks/light_singleuser.py``)
that answers the hub as ``jupyterhub-singleuser`` does without JupyterLab's start-up
cost, which in a cluster is paid on other nodes:

- ``morning_rush``: 100 users, light servers (the targets);
- ``morning_rush_jupyterlab``: 15 users, real ``jupyterhub-singleuser`` (JupyterLab)
  servers, for realism;
- ``morning_rush_1000``: 1,000 users, light servers.

Afterwards, with the 1,000 servers still running, the same hub's resident memory (and
the jobs service's and the proxy's) is read from /proc with 1,000 users in its
database: the "memory" scenario, printed as its own object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jupyterhub

from devstack.hub import REPO_ROOT, notebook_command

from .common import (
    BenchHub,
    bench_hub,
    bench_users,
    child_matching,
    cpu_seconds,
    login,
    machine_busy_seconds,
    rss_mb,
    summary_ms,
    tree_cpu_seconds,
    user_client,
    wait_progress,
    xsrf_headers,
)
from .looplag import read_records, summarize
from .prober import prober_process, read_probes
from .standins import StandInsProcess, standins_process

NAME = "morning_rush"
# the same rush with plain KubeSpawner (every user given one bench user's pod): the
# peer that tells JupyterHub's and KubeSpawner's own share apart from ours
PLAIN = "morning_rush_plain_kubespawner"
PROBE_EVERY = 0.05
POD_NICE = 19  # the pods' CPU priority: in a cluster they run on other nodes
HERE = Path(__file__).resolve().parent
LIGHT_SERVER = HERE / "light_singleuser.py"
SPAWN_DEADLINE = 900.0  # seconds a user keeps trying (429s included) before giving up
LOGIN_TRIES = 3  # a person whose login was refused tries again, twice


@dataclass(frozen=True)
class Rush:
    """One rush: its record's name, how many users, and which single-user server."""

    name: str
    users: int
    quick_users: int
    singleuser: str  # "light" or "jupyterlab"
    prefix: str  # of the users' names, so that rushes never share a user
    spawner: str = "valeria"  # or "plain": KubeSpawner as it comes (the peer)


RUSHES = (
    Rush(NAME, int(os.environ.get("VALERIA_BENCH_RUSH_USERS", "100")), 3, "light", "u"),
    Rush(PLAIN, int(os.environ.get("VALERIA_BENCH_RUSH_USERS", "100")), 3, "light", "p", "plain"),
    Rush("morning_rush_jupyterlab", 15, 2, "jupyterlab", "j"),
    Rush("morning_rush_1000", 1000, 5, "light", "k"),
)
MEMORY_AFTER = "morning_rush_1000"


def notebook_python() -> str:
    """The notebook "image's" Python (system Python: readable by the users' uids)."""
    image = REPO_ROOT / ".venv-notebook" / "bin" / "python"
    return str(image) if image.exists() else "python3"


def singleuser_command(kind: str) -> str:
    """The pods' command: the light server or jupyterhub-singleuser."""
    if kind == "light":
        command = (
            f"{notebook_python()} -I -S {LIGHT_SERVER} "
            f"--jupyterhub-version={jupyterhub.__version__}"
        )
    else:
        command = notebook_command()
    return command


def reason(text: str) -> str:
    """A short failure reason from a progress message or an error. Pure."""
    text = " ".join(text.split())
    for marker in ("timeout", "Timeout", "did not", "refused", "HTTP"):
        if marker in text:
            return text[:120]
    return text[:80] or "unknown"


async def log_in(
    hub: BenchHub, user: str, retried: Counter
) -> tuple[httpx.AsyncClient, float, str | None]:
    """Log ``user`` in; seconds from the first try, or a reason. A refused login (the
    hub's "sign-in expired" 400 when Keycloak's one-minute code went stale in a queue)
    is tried again, up to LOGIN_TRIES times, as the person would click again."""
    client = user_client(timeout=300)
    t0 = time.perf_counter()
    error: str | None = None
    for attempt in range(LOGIN_TRIES):
        if attempt:
            retried[error or "?"] += 1
        try:
            resp = await login(client, hub.url, user)
            ok = resp.status_code == 200 and str(resp.url).startswith(hub.url)
            error = None if ok else f"login HTTP {resp.status_code}"
        except httpx.HTTPError as e:
            error = f"login {type(e).__name__}"
        if error is None:
            break
    return client, time.perf_counter() - t0, error


async def spawn(
    hub: BenchHub, client: httpx.AsyncClient, user: str, start: asyncio.Event, throttled: Counter
) -> tuple[float | None, str | None]:
    """Start ``user``'s server when ``start`` fires; seconds to ready, or a reason.

    A 429 (the hub's ``concurrent_spawn_limit``) is tried again after its Retry-After,
    as the person would; the time counts from the first try."""
    headers = xsrf_headers(client, hub.url)
    await start.wait()
    t0 = time.perf_counter()
    try:
        while True:
            resp = await client.post(f"{hub.url}/hub/api/users/{user}/server", headers=headers)
            if resp.status_code != 429 or time.perf_counter() - t0 > SPAWN_DEADLINE:
                break
            throttled["429"] += 1
            await asyncio.sleep(float(resp.headers.get("Retry-After") or 30))
        if resp.status_code not in (201, 202):
            return None, f"spawn HTTP {resp.status_code}: {' '.join(resp.text.split())[:80]}"
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


@dataclass
class Processes:
    """The pids whose CPU time the record reports."""

    hub: int
    proxy: int | None
    jobs_service: int | None
    standins: int

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: each of ours, the stand-ins with their pods, the load
        generator (this process), and the whole machine (everyone's processes)."""
        return {
            "hub": cpu_seconds(self.hub) or 0.0,
            "proxy": cpu_seconds(self.proxy or -1) or 0.0,
            "jobs_service": cpu_seconds(self.jobs_service or -1) or 0.0,
            "standins_and_pods": tree_cpu_seconds(self.standins),
            "load_generator": time.process_time(),
            "machine": machine_busy_seconds(),
        }


def cpu_between(before: dict[str, float], after: dict[str, float], wall: float) -> dict:
    """CPU seconds used between two ``Processes.cpu`` readings, and what the rest of the
    machine (other people's work, prober, kernel) used meanwhile. Pure."""
    used = {k: round(after[k] - before[k], 1) for k in before}
    ours = sum(v for k, v in used.items() if k != "machine")
    used["others"] = round(max(0.0, used["machine"] - ours), 1)
    used["available"] = round(wall * (os.cpu_count() or 1), 1)
    return used


async def rush(hub: BenchHub, users: list[str], probes: Path, procs: Processes) -> dict[str, Any]:
    """Log ``users`` in, then start all their servers at once; the figures. The prober
    (its own process) writes to ``probes`` throughout."""
    await asyncio.sleep(1.0)  # the prober's baseline, before anything
    t_login, cpu_login = time.time(), procs.cpu()
    login_retries: Counter = Counter()
    logins = await asyncio.gather(*(log_in(hub, u, login_retries) for u in users))
    clients = [c for c, _, _ in logins]
    login_errors = Counter(e for _, _, e in logins if e)
    throttled: Counter = Counter()
    start = asyncio.Event()
    tasks = [
        asyncio.create_task(spawn(hub, c, u, start, throttled))
        for (c, _, e), u in zip(logins, users, strict=True)
        if e is None
    ]
    t_rush, cpu_rush = time.time(), procs.cpu()
    start.set()
    results = await asyncio.gather(*tasks)
    t_end, cpu_end = time.time(), procs.cpu()
    for c in clients:
        await c.aclose()
    baseline, _ = read_probes(probes, 0, t_login)
    during_logins, login_probe_errors = read_probes(probes, t_login, t_rush)
    during, probe_errors = read_probes(probes, t_rush, t_end)
    ready = [t for t, e in results if t is not None]
    failures = Counter(e for _, e in results if e) + login_errors
    api = summary_ms(during)
    stalls = hub.loop_stalls(t_rush, t_end + 2)
    login_stalls = hub.loop_stalls(t_login, t_rush)
    figures: dict[str, Any] = {
        "users": len(users),
        "login": summary_ms([t for _, t, e in logins if e is None], (50, 95, 99)),
        "logins_seconds": round(t_rush - t_login, 1),
        "login_retries_by_reason": dict(login_retries),
        "ready": len(ready),
        "failed": sum(failures.values()),
        "failures_by_reason": dict(failures),
        "spawn_requests_throttled_429": throttled["429"],
        "time_to_ready": summary_ms(ready, (50, 95, 99)),
        "rush_seconds": round(t_end - t_rush, 1),
        "hub_api_probe": {
            **api,
            "baseline_p50_ms": summary_ms(baseline)["p50_ms"],
            "errors": len(probe_errors),
        },
        "hub_api_probe_during_logins": {
            **summary_ms(during_logins),
            "errors": len(login_probe_errors),
        },
        "hub_event_loop": stalls,
        "hub_event_loop_during_logins": {
            k: login_stalls[k]
            for k in (
                "max_stall_ms",
                "stalls_over_50ms",
                "stalls_over_50ms_in_our_code",
                "max_stall_in_our_code_ms",
            )
        },
        "cpu_seconds_during_logins": cpu_between(cpu_login, cpu_rush, t_rush - t_login),
        "cpu_seconds_during_rush": cpu_between(cpu_rush, cpu_end, t_end - t_rush),
    }
    figures["_window"] = (t_login, t_rush, t_end)  # for run_rush, not printed
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
        "servers_are": "light single-user servers (kubelet stand-in), after morning_rush_1000",
    }


def method(spec: Rush, standins: StandInsProcess) -> dict[str, Any]:
    """How the rush was run, for its record."""
    return {
        "spawner": "plain KubeSpawner" if spec.spawner == "plain" else "ValeriaSpawner",
        "singleuser": spec.singleuser,
        "singleuser_command": singleuser_command(spec.singleuser),
        "standins": "own process",
        "standins_pid": standins.pid,
        "load_generator": "benchmark process",
        "hub": "own process",
    }


def run_rush(workdir: Path, spec: Rush, quick: bool, total: int) -> dict[str, dict[str, Any]]:
    """One rush on fresh stand-ins and a fresh hub; the memory scenario after it when
    ``spec`` is MEMORY_AFTER."""
    n = spec.quick_users if quick else spec.users
    users = bench_users(n, prefix=spec.prefix)
    out: dict[str, dict[str, Any]] = {}
    started, load = time.perf_counter(), round(os.getloadavg()[0], 2)
    with contextlib.ExitStack() as stack:
        standins = stack.enter_context(
            standins_process(workdir / "standins", users, container_nice=POD_NICE)
        )
        plain = {}
        if spec.spawner == "plain":
            settings = standins.plain_kubespawner(users[0].username, "default")
            plain = {"VALERIA_BENCH_PLAIN": json.dumps(settings)}
        hub = stack.enter_context(
            bench_hub(
                standins,
                workdir / "hub",
                singleuser_cmd=singleuser_command(spec.singleuser),
                **plain,
            )
        )
        probes = stack.enter_context(
            prober_process(f"{hub.url}/hub/api/", PROBE_EVERY, workdir / "probes.jsonl")
        )
        idle = {"hub_rss_mb_at_start": rss_mb(hub.pid)}
        procs = Processes(
            hub=hub.pid,
            proxy=child_matching(hub.pid, "configurable-http-proxy"),
            jobs_service=child_matching(hub.pid, "valeria_hub.jobs"),
            standins=standins.pid,
        )
        figures = asyncio.run(rush(hub, [u.username for u in users], probes, procs))
        t_login, t_rush, t_end = figures.pop("_window")
        figures["standins_api_during_logins"] = standins.api_latency(t_login, t_rush)
        figures["standins_api_during_rush"] = standins.api_latency(t_rush, t_end)
        kube_loop = summarize(read_records(standins.kube_looplag, t_rush, t_end))
        figures["kube_standin_event_loop"] = {
            k: v for k, v in kube_loop.items() if not k.startswith("worst_stalls_in")
        }
        counts = standins.counts()
        figures["kube_objects_after"] = {
            k: counts.get(k, 0) for k in ("v1/pods", "v1/events", "v1/secrets")
        }
        out[spec.name] = {
            "loadavg_1m": load,
            **method(spec, standins),
            **figures,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if spec.name == MEMORY_AFTER:
            mem = asyncio.run(memory(hub, total, figures["ready"]))
            mem.update(idle)
            out["memory"] = mem
    return out


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    total = 20 if quick else 1000
    scenarios: dict[str, dict[str, Any]] = {}
    for spec in RUSHES:
        try:
            scenarios.update(run_rush(workdir / spec.name, spec, quick, total))
        except Exception as e:  # noqa: BLE001 - reported in the rush's record, others run
            import traceback

            traceback.print_exc()
            scenarios[spec.name] = {"error": f"{type(e).__name__}: {e}"}
    return {"scenarios": scenarios}
