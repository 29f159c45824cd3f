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

The peer: kbatch-proxy 0.4.2 (``kbatch_peer``), an external service of the same hub on
the same stand-in, takes the same submissions in alternating turns and lists the same
number of the person's own jobs; the figures carry both and the ratios.

A list's time is what its user waits for: the request until the client has the list
parsed (httpx reads, inflates, and ``json.loads`` 12 MB of the ``to_dict()`` shape).
Each list figure also carries ``received`` (until the body is read and inflated, the
figure runs before 2026-12 gave as the list's time) and ``parse_alone`` (the client's
``json.loads`` of the same body, nothing else: the part no service can shorten).
``list`` is the full ``to_dict()`` list (kbatch's client's), ``list_summary`` the same
list with ``?view=summary`` (``valeria-hub jobs list``'s and the web page's: each item cut
to what their tables show), measured the same way beside it.

``VALERIA_BENCH_JOBS_PARTS`` (comma-separated, default all) runs only some parts:
``follow``, ``submit``, ``peer`` (kbatch-proxy, not even started without it and
``submit``), ``list`` (2,000 own jobs) and ``others`` (then with others' jobs);
``VALERIA_BENCH_JOBS_PARTS=list python -m benchmarks --only jobs`` measures the list
alone in about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import httpx

from devstack.deployment import HUB_USER
from devstack.hub import free_port
from devstack.stack import DEMO_KUBE_TOKEN
from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION
from valeria_hub.jobs.naming import owner_label

from . import kbatch_peer
from .common import BenchHub, bench_hub, bench_stack, login, summary_ms, user_client

NAME = "jobs"
JOBS = "batch/v1/jobs"
USER = "alice"
PARTS = ("follow", "submit", "peer", "list", "others")


def parts_to_run(value: str | None) -> frozenset[str]:
    """The parts named in ``VALERIA_BENCH_JOBS_PARTS`` (all when unset). Pure."""
    if not value or not value.strip():
        return frozenset(PARTS)
    named = {p.strip() for p in value.split(",") if p.strip()}
    unknown = named - set(PARTS)
    if unknown:
        raise ValueError(f"unknown jobs benchmark parts {sorted(unknown)}; known: {PARTS}")
    return frozenset(named)


def job_body(command: str, prefix: str = "bench-") -> dict[str, Any]:
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", command]}
    return {
        "job": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            # kbatch-proxy 0.4.2 fails (500) without labels and annotations (as its client sends)
            "metadata": {"generateName": prefix, "labels": {}, "annotations": {}},
            "spec": {
                "template": {
                    "metadata": {"labels": {}, "annotations": {}},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }
            },
        }
    }


async def user_token(hub: BenchHub, user: str) -> str:
    async with hub.api() as api:
        # the person's own scopes: kbatch-proxy reads the name and groups of the token
        resp = await api.post(
            f"/users/{user}/tokens", json={"note": "benchmarks", "expires_in": 3600}
        )
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
    """Pod write to client read, for the lines written after the stream attached.

    Lines printed before it (the job starts before the request) arrive together as the
    stream's backlog, as old as they are: a person following a log sees them first too,
    but they time the job's start, not the follow. They are counted apart.
    """
    script = f"for i in $(seq {lines}); do date +%s.%N; sleep 0.2; done"
    resp = await client.post("jobs/", json=job_body(script, "follow-"))
    resp.raise_for_status()
    name = resp.json()["metadata"]["name"]
    latencies: list[float] = []
    backlog = 0
    async with client.stream("GET", f"jobs/logs/{name}/", params={"stream": "true"}) as stream:
        if stream.status_code != 200:
            raise RuntimeError(f"log follow answered {stream.status_code}")
        attached = time.time()
        async for line in stream.aiter_lines():
            now = time.time()
            try:
                written = float(line.strip())
            except ValueError:
                continue
            if written < attached:
                backlog += 1
            else:
                latencies.append(now - written)
    return {
        "lines": len(latencies),
        "backlog_lines": backlog,
        **summary_ms(latencies, (50, 95, 99)),
    }


# -- 2. submissions ---------------------------------------------------------------------
async def submit_batch(
    client: httpx.AsyncClient, concurrency: int, total: int
) -> tuple[list[float], dict[str, int], float]:
    """``total`` submissions by ``concurrency`` workers: latencies, errors, seconds."""
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
            if status in ("200", "201"):  # kbatch-proxy answers 200
                latencies.append(time.perf_counter() - t0)
            else:
                errors[status] = errors.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - t0


def submit_figures(
    concurrency: int, latencies: list[float], errors: dict[str, int], seconds: float
) -> dict[str, Any]:
    """One concurrency level's figures. Pure."""
    return {
        "concurrency": concurrency,
        "submitted": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / seconds, 1) if seconds else 0.0,
        **summary_ms(latencies, (50, 99)),
    }


async def submit_alternating(
    clients: dict[str, httpx.AsyncClient], concurrency: int, total: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """``total`` submissions per service, in ``rounds`` turns that alternate between the
    services, so that each sees the same machine (load, caches, store size) over time."""
    acc = {label: ([], {}, 0.0) for label in clients}
    per_round = max(1, total // rounds)
    for _ in range(rounds):
        for label, client in clients.items():
            latencies, errors, seconds = await submit_batch(client, concurrency, per_round)
            old = acc[label]
            for k, v in errors.items():
                old[1][k] = old[1].get(k, 0) + v
            acc[label] = (old[0] + latencies, old[1], old[2] + seconds)
    return {label: submit_figures(concurrency, *values) for label, values in acc.items()}


def ratios(ours: list[dict[str, Any]], peer: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours over the peer's throughput at each concurrency (> 1: we are faster). Pure."""
    out: dict[str, Any] = {}
    for a, b in zip(ours, peer, strict=True):
        c = a["concurrency"]
        out[f"submit_per_second_at_{c}"] = (
            round(a["per_second"] / b["per_second"], 2) if b["per_second"] else None
        )
    return out


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
    """``n`` GETs of ``path`` with ``client``'s URL and token, by a client in a process of
    its own (:func:`timed_here`), as a person's: this process's heap holds the stand-ins'
    store (a parse here pays for the collector walking 40,000 stored jobs) and their
    threads take the GIL."""
    env = {
        **os.environ,
        "VALERIA_BENCH_TIMED_URL": str(client.base_url),
        "VALERIA_BENCH_TIMED_AUTH": client.headers["Authorization"],
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.jobs", path, str(n), env=env, stdout=PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the timing client failed ({proc.returncode}) for {path}")
    figures, count = json.loads(out)
    return figures, count


async def timed_here(client: httpx.AsyncClient, path: str, n: int) -> tuple[dict[str, Any], int]:
    """``n`` GETs of ``path`` (after one untimed), each timed until the client has the
    answer parsed, as its user would wait; for a list also until received, and its
    parse alone."""
    (await client.get(path)).raise_for_status()  # the connection made
    done, received, parse = [], [], []
    count, listing = 0, path.split("?")[0] in ("jobs/", "cronjobs/")
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.get(path)
        t1 = time.perf_counter()
        resp.raise_for_status()
        data = resp.json()
        done.append(time.perf_counter() - t0)
        received.append(t1 - t0)
        count = len(data.get("items", [])) if listing else 1
        if listing:
            t2 = time.perf_counter()
            json.loads(resp.content)
            parse.append(time.perf_counter() - t2)
    figures = summary_ms(done, (50, 99))
    if listing:
        figures["received"] = summary_ms(received, (50, 99))
        figures["parse_alone"] = summary_ms(parse, (50, 99))
        figures["body_bytes"] = len(resp.content)
        figures["wire_bytes"] = int(resp.headers.get("content-length") or 0)
    return figures, count


def timing_client_main(argv: list[str]) -> None:
    """``python -m benchmarks.jobs PATH N``: :func:`timed_here` with the URL and token of
    the environment, its figures printed as JSON."""
    path, n = argv[0], int(argv[1])

    async def main() -> tuple[dict[str, Any], int]:
        async with httpx.AsyncClient(
            base_url=os.environ["VALERIA_BENCH_TIMED_URL"],
            headers={"Authorization": os.environ["VALERIA_BENCH_TIMED_AUTH"]},
            timeout=120,
        ) as client:
            return await timed_here(client, path, n)

    print(json.dumps(asyncio.run(main())))


async def until_listed(client: httpx.AsyncClient, own: int, timeout: float = 300) -> None:
    """Wait until the service's list shows all ``own`` jobs seeded into the store (its
    list cache learns of them through its watch): the figures are of the full list."""
    deadline = time.monotonic() + timeout
    while True:
        count = len((await client.get("jobs/")).json()["items"])
        if count >= own:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the list shows {count} of {own} jobs after {timeout} s")
        await asyncio.sleep(0.5)


async def list_and_show(
    stack: Any, client: httpx.AsyncClient, own: int, others: int, reps: int
) -> dict[str, Any]:
    """The list and show figures with ``own`` jobs, then (``others`` > 0) with others'."""
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
    await until_listed(client, own)

    async def measure(label: str) -> None:
        listed, count = await timed(client, "jobs/", reps)
        brief, brief_count = await timed(client, "jobs/?view=summary", reps)
        if brief_count != count:
            raise RuntimeError(f"the summary list has {brief_count} items, the full {count}")
        shown, _ = await timed(client, f"jobs/{name}", reps)
        out[label] = {"listed_items": count, "list": listed, "list_summary": brief, "show": shown}

    await measure("own_only")
    if others <= 0:
        return out
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


async def peer_listing(
    stack: Any, client: httpx.AsyncClient, own: int, reps: int
) -> dict[str, Any]:
    """kbatch-proxy's list of the person's jobs with ``own`` of them in its namespace
    (kbatch-proxy puts a person's jobs in a namespace named after them)."""
    kube = stack.kube
    items = (await client.get("jobs/")).json()["items"]
    meta = items[0]["metadata"]
    template = kube.call(kube.get_object, JOBS, meta["namespace"], meta["name"])
    missing = max(0, own - len(items))
    placements = [(meta["namespace"], f"own-{i:05d}", USER) for i in range(missing)]
    kube.call(seed_clones, kube, template, placements, timeout=600)
    listed, count = await timed(client, "jobs/", reps)
    return {"listed_items": count, "list": listed}


async def scenario(
    stack: Any, hub: BenchHub, quick: bool, parts: frozenset[str] = frozenset(PARTS)
) -> dict[str, Any]:
    client = user_client()
    resp = await login(client, hub.url, USER)  # auth_state with Keycloak tokens
    await client.aclose()
    if resp.status_code != 200:
        raise RuntimeError(f"login failed: {resp.status_code}")
    token = await user_token(hub, USER)
    figures: dict[str, Any] = {}
    ratio: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    async with (
        jobs_client(hub, token) as client,
        peer_client(hub, token) as peer,
    ):
        if "follow" in parts:
            figures["log_follow_latency"] = await log_follow(client, 5 if quick else 25)
        kube = stack.kube
        if kube.kubelet is not None:
            kube.call(kube.kubelet.stop, timeout=60)
        if kube.controllers is not None:
            kube.call(kube.controllers.stop, timeout=60)
        clients = {"ours": client, "kbatch_proxy": peer} if "peer" in parts else {"ours": client}
        for label, c in clients.items():  # warm-up: connections, namespaces, caches
            # (for the lists alone, one job: the one the seeded jobs are cloned from)
            latencies, errors, _ = await (
                submit_batch(c, 5, 10) if "submit" in parts else submit_batch(c, 1, 1)
            )
            if errors:
                sample = (await c.post("jobs/", json=job_body("true"))).text[:300]
                raise RuntimeError(f"{label}: warm-up submissions failed: {errors}: {sample}")
        own, others, reps = (50, 200, 3) if quick else (2000, 20000, 20)
        peer_figures: dict[str, Any] = {}
        if "peer" in parts:
            peer_figures["version"] = kbatch_peer.VERSION
        if "submit" in parts:
            plan = [(1, 6), (10, 20), (50, 50)] if quick else [(1, 200), (10, 600), (50, 1000)]
            rounds = 2 if quick else 4
            both = [await submit_alternating(clients, c, n, rounds) for c, n in plan]
            figures["submit"] = [b["ours"] for b in both]
            if "peer" in parts:
                peer_figures["submit"] = [b["kbatch_proxy"] for b in both]
                ratio.update(ratios(figures["submit"], peer_figures["submit"]))
                at1 = ratio.get("submit_per_second_at_1") or 0
                at10 = ratio.get("submit_per_second_at_10") or 0
                targets["submit_at_10>=kbatch_proxy"] = at10 >= 1.0
                targets["submit_at_1>=0.8x_kbatch_proxy"] = at1 >= 0.8
        if "peer" in parts and ("list" in parts or "others" in parts):
            peer_figures["list_own"] = await peer_listing(stack, peer, own, reps)
        if "list" in parts or "others" in parts:
            listing = await list_and_show(
                stack, client, own, others if "others" in parts else 0, reps
            )
            figures["list_show"] = listing
            base_list = listing["own_only"]["list"]
            base = base_list["p50_ms"]
            worst = max(v["list"]["p50_ms"] for v in listing.values())
            targets["list_p50<=50ms_at_2000_own"] = base <= 50
            targets["list_received_p50<=50ms_at_2000_own"] = base_list["received"]["p50_ms"] <= 50
            summary_p50 = listing["own_only"]["list_summary"]["p50_ms"]
            targets["list_summary_p50<=50ms_at_2000_own"] = summary_p50 <= 50
            if len(listing) > 1:
                key = "list_unaffected_by_others(p50_within_20%)"
                targets[key] = worst <= base * 1.2 + 5
            if "list_own" in peer_figures:
                peer_p50 = peer_figures["list_own"]["list"]["p50_ms"]
                # > 1: our list is faster
                ratio["list_p50_at_own"] = round(peer_p50 / base, 2) if base else None
    if peer_figures:
        figures["kbatch_proxy"] = peer_figures
    return {**figures, "parts": sorted(parts), "ratios": ratio, "targets": targets}


def peer_client(hub: BenchHub, token: str) -> httpx.AsyncClient:
    """kbatch-proxy through the same proxy, with the same token."""
    return httpx.AsyncClient(
        base_url=f"{hub.url}{kbatch_peer.PREFIX}/",
        headers={"Authorization": f"token {token}"},
        timeout=120,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


# The scenario makes about 2,000 Jobs in alice's namespace (kbatch-proxy has no quota);
# the default quota of 100 Jobs per namespace would refuse the rest, as Kubernetes would.
# An operator raises it the same way for a person who runs many jobs.
EXTRA_CONFIG = """\
c = get_config()  # noqa: F821
c.JobsServiceApp.namespace_quota = {
    "requests.cpu": "16", "requests.memory": "64Gi", "limits.cpu": "32",
    "limits.memory": "128Gi", "count/jobs.batch": "100000", "count/cronjobs.batch": "20",
}
"""


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    parts = parts_to_run(os.environ.get("VALERIA_BENCH_JOBS_PARTS"))
    with_peer = "peer" in parts
    if with_peer:
        kbatch_peer.python()  # fails at once, naming the make target, if the peer is missing
    workdir.mkdir(parents=True, exist_ok=True)
    extra = workdir / "extra_config.py"
    extra.write_text(EXTRA_CONFIG)
    api_token = secrets.token_hex(24)
    public = f"http://127.0.0.1:{free_port()}"
    tokens = {
        DEMO_KUBE_TOKEN: {"user": HUB_USER},
        kbatch_peer.KUBE_TOKEN: kbatch_peer.KUBE_IDENTITY,
    }
    with contextlib.ExitStack() as running:
        stack = running.enter_context(bench_stack(workdir, tokens=tokens))
        peer_env: dict[str, str] = {}
        if with_peer:
            peer_url = running.enter_context(
                kbatch_peer.running(
                    workdir / "kbatch", stack.kube.url, f"{public}/hub/api", api_token
                )
            )
            peer_env = kbatch_peer.hub_environment(peer_url, api_token)
        hub = running.enter_context(
            bench_hub(
                stack,
                workdir / "hub",
                public_url=public,
                JUPYTERHUB_EXTRA_CONFIG=str(extra),
                **peer_env,
            )
        )
        return asyncio.run(scenario(stack, hub, quick, parts))


if __name__ == "__main__":
    timing_client_main(sys.argv[1:])
