"""Scenario 4: the batch jobs service, run by the hub as in production and reached
through the proxy at ``/services/jobs/`` with a user's hub token.

1. Log follow: a job prints its wall clock every 0.2 s; the client follows the log
   (``?stream=true``) and the latency is its read time minus the printed time.
2. Submit throughput and latency at concurrency 1, 10 and 50 (each submission is the
   whole path: hub token check, auth_state, Vault lookup, namespace, Secret, Job,
   owner reference). The kubelet and controllers are stopped first, so that the jobs'
   pods do not compete for the two cores: only the submission path is measured.
3. List and show latency with 2,000 of alice's jobs, then with 20,000 other users'
   jobs added in their own namespaces (per-user mode, the default), then with the
   20,000 in alice's namespace too (the shared-namespace layout, where only the
   owner label selector keeps them out). Jobs are seeded straight into the store,
   cloned from one that the service made.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import httpx

from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION
from valeria_hub.jobs.naming import owner_label

from .common import BenchHub, bench_hub, bench_stack, login, summary_ms, user_client

NAME = "jobs"
JOBS = "batch/v1/jobs"
USER = "alice"


def job_body(command: str, prefix: str = "bench-") -> dict[str, Any]:
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", command]}
    return {
        "job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"generateName": prefix},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        }
    }


async def user_token(hub: BenchHub, user: str) -> str:
    async with hub.api() as api:
        resp = await api.post(
            f"/users/{user}/tokens",
            json={"note": "benchmarks", "expires_in": 3600,
                  "scopes": ["access:services!service=jobs"]},
        )  # fmt: skip
        resp.raise_for_status()
        return resp.json()["token"]


def jobs_client(hub: BenchHub, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{hub.url}/services/jobs/",
        headers={"Authorization": f"token {token}"},
        timeout=120,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


# -- 1. log follow ------------------------------------------------------------------------
async def log_follow(client: httpx.AsyncClient, lines: int) -> dict[str, Any]:
    script = f"for i in $(seq {lines}); do date +%s.%N; sleep 0.2; done"
    resp = await client.post("jobs/", json=job_body(script, "follow-"))
    resp.raise_for_status()
    name = resp.json()["metadata"]["name"]
    latencies: list[float] = []
    async with client.stream("GET", f"jobs/logs/{name}/", params={"stream": "true"}) as stream:
        if stream.status_code != 200:
            raise RuntimeError(f"log follow answered {stream.status_code}")
        async for line in stream.aiter_lines():
            now = time.time()
            try:
                latencies.append(now - float(line.strip()))
            except ValueError:
                continue
    return {"lines": len(latencies), **summary_ms(latencies, (50, 95, 99))}


# -- 2. submissions ---------------------------------------------------------------------
async def submit_at(client: httpx.AsyncClient, concurrency: int, total: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    queue = list(range(total))

    async def worker() -> None:
        while queue:
            queue.pop()
            t0 = time.perf_counter()
            try:
                resp = await client.post("jobs/", json=job_body("true"))
                status = str(resp.status_code)
            except httpx.HTTPError as e:
                status = type(e).__name__
            if status == "201":
                latencies.append(time.perf_counter() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "submitted": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / seconds, 1),
        **summary_ms(latencies, (50, 99)),
    }


# -- 3. list and show ---------------------------------------------------------------------
def seed_clones(kube: Any, template: dict, placements: list[tuple[str, str, str]]) -> None:
    """Jobs cloned from ``template``: (namespace, name, owner) each, into the store."""
    store = kube.store
    for namespace, name, owner in placements:
        job = copy.deepcopy(template)
        meta = job["metadata"]
        for key in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences"):
            meta.pop(key, None)
        meta["name"], meta["namespace"] = name, namespace
        meta["labels"] = {**meta.get("labels", {}), OWNER_LABEL: owner_label(owner)}
        meta["annotations"] = {**meta.get("annotations", {}), USERNAME_ANNOTATION: owner}
        tpl_labels = job["spec"]["template"]["metadata"].setdefault("labels", {})
        tpl_labels[OWNER_LABEL] = owner_label(owner)
        if namespace and not store.exists("v1/namespaces", "", namespace):
            store.create("v1/namespaces", "", {"metadata": {"name": namespace}})
        store.create(JOBS, namespace, job)


async def timed(client: httpx.AsyncClient, path: str, n: int) -> tuple[dict[str, Any], int]:
    latencies, count = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.get(path)
        latencies.append(time.perf_counter() - t0)
        resp.raise_for_status()
        count = len(resp.json().get("items", [])) if path == "jobs/" else 1
    return summary_ms(latencies, (50, 99)), count


async def list_and_show(
    stack: Any, client: httpx.AsyncClient, own: int, others: int, reps: int
) -> dict[str, Any]:
    kube = stack.kube
    items = (await client.get("jobs/")).json()["items"]
    name = items[0]["metadata"]["name"]
    namespace = items[0]["metadata"]["namespace"]
    template = kube.call(kube.get_object, JOBS, namespace, name)
    have = len(items)
    kube.call(
        seed_clones,
        kube,
        template,
        [(namespace, f"own-{i:05d}", USER) for i in range(max(0, own - have))],
        timeout=600,
    )
    out: dict[str, Any] = {}

    async def measure(label: str) -> None:
        listed, count = await timed(client, "jobs/", reps)
        shown, _ = await timed(client, f"jobs/{name}", reps)
        out[label] = {"listed_items": count, "list": listed, "show": shown}

    await measure("own_only")
    n_users = 100
    spread = [
        (f"jobs-other{i % n_users:03d}", f"other-{i:05d}", f"other{i % n_users:03d}")
        for i in range(others)
    ]
    kube.call(seed_clones, kube, template, spread, timeout=600)
    await measure("plus_others_in_their_namespaces")
    same = [(namespace, f"shared-{i:05d}", f"other{i % n_users:03d}") for i in range(others)]
    kube.call(seed_clones, kube, template, same, timeout=600)
    await measure("plus_others_in_the_same_namespace")
    return out


async def scenario(stack: Any, hub: BenchHub, quick: bool) -> dict[str, Any]:
    client = user_client()
    resp = await login(client, hub.url, USER)  # auth_state with Keycloak tokens
    await client.aclose()
    if resp.status_code != 200:
        raise RuntimeError(f"login failed: {resp.status_code}")
    token = await user_token(hub, USER)
    async with jobs_client(hub, token) as client:
        follow = await log_follow(client, 5 if quick else 25)
        kube = stack.kube
        if kube.kubelet is not None:
            kube.call(kube.kubelet.stop, timeout=60)
        if kube.controllers is not None:
            kube.call(kube.controllers.stop, timeout=60)
        await submit_at(client, 5, 10)  # warm-up: connections, namespace, caches
        plan = [(1, 5), (10, 20), (50, 50)] if quick else [(1, 100), (10, 500), (50, 1000)]
        submits = [await submit_at(client, c, n) for c, n in plan]
        own, others, reps = (50, 200, 3) if quick else (2000, 20000, 20)
        listing = await list_and_show(stack, client, own, others, reps)
    at10 = next(s for s in submits if s["concurrency"] == 10)
    base = listing["own_only"]["list"]["p50_ms"]
    worst = max(v["list"]["p50_ms"] for v in listing.values())
    return {
        "log_follow_latency": follow,
        "submit": submits,
        "list_show": listing,
        "targets": {
            "submit_per_second_at_10>=100": at10["per_second"] >= 100,
            "list_p50<=50ms_at_2000_own": base <= 50,
            "list_unaffected_by_others(p50_within_20%)": worst <= base * 1.2 + 5,
        },
    }


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    with bench_stack(workdir) as stack, bench_hub(stack, workdir / "hub") as hub:
        return asyncio.run(scenario(stack, hub, quick))
