"""Scenario 1: what ValeriaSpawner adds to a spawn, side by side with plain KubeSpawner.

Two hubs on the production configuration run against the same stand-ins: one with
ValeriaSpawner, one with plain KubeSpawner given the very pod ValeriaSpawner builds
for alice (uid/gid, security contexts, NFS volumes, S3 variables from a Secret made
beforehand, same flavours and command). Spawns alternate between the two hubs so both
see the same machine load. Start-to-ready is what the user sees (POST of the server
to the "ready" event of the progress stream); the time in our own code is what
ValeriaSpawner logs for each spawn (options, Vault lookup, Secret, owner reference).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from devstack.deployment import NAMESPACE
from devstack.stack import NFS_EXPORT, NFS_SERVER
from valeria_hub.flavours import DEFAULT_FLAVOURS
from valeria_hub.storage import StorageLayout, s3_secret_manifest, storage_check_container
from valeria_hub.vault import UserProfile

from .common import (
    BenchHub,
    bench_hub,
    bench_stack,
    login,
    median,
    percentile,
    user_client,
    wait_progress,
    xsrf_headers,
)

NAME = "spawn_overhead"
USER = "alice"
S3_ENDPOINT = "http://s3.devstack.local:9000"
PLAIN_SECRET = "s3-bench-plain"
PLAIN_POD = "bench-plain-{user_server}"
NOTEBOOK_IMAGE = "quay.io/jupyter/minimal-notebook:latest"  # the configuration's default
_TIMING = re.compile(r"valeria-hub spawn steps took (.*)$")


def plain_settings(profile: UserProfile, secret: str) -> dict[str, Any]:
    """KubeSpawner settings that give alice the pod ValeriaSpawner gives her. Pure."""
    layout = StorageLayout(nfs_server=NFS_SERVER, nfs_path=NFS_EXPORT, s3_endpoint_url=S3_ENDPOINT)
    work = layout.workload(profile, secret)
    return {
        "uid": profile.uid,
        "gid": profile.gid,
        "fs_gid": work.pod_security_context.get("fsGroup"),
        "supplemental_gids": work.pod_security_context.get("supplementalGroups", []),
        "pod_security_context": work.pod_security_context,
        "container_security_context": work.container_security_context,
        "volumes": work.volumes,
        "volume_mounts": work.volume_mounts,
        "environment": work.env_mapping(),
        "working_dir": work.home,
        "profile_list": DEFAULT_FLAVOURS,
        "automount_service_account_token": False,
        "allow_privilege_escalation": False,
        # the same storage check before the notebook (ValeriaSpawner's init container)
        "init_containers": [storage_check_container(work, NOTEBOOK_IMAGE)],
    }


def plain_peer(stack: Any, username: str, namespace: str, pod_name: str | None = None) -> dict:
    """Plain KubeSpawner settings that give every user ``username``'s pod, with the S3
    Secret they name created in ``namespace`` (``stack``: a started ``DevStack``)."""
    item = next(s for s in stack.storage if s.username == username)
    profile = UserProfile(
        username,
        stack.entities[username],
        item.uid,
        item.gid,
        item.s3_access_key,
        item.s3_secret_key,
    )
    secret = s3_secret_manifest(PLAIN_SECRET, namespace, profile, S3_ENDPOINT)
    stack.kube.call(stack.kube.create_object, secret)
    settings = plain_settings(profile, PLAIN_SECRET)
    return {**settings, "pod_name_template": pod_name} if pod_name else settings


def parse_timings(log: str) -> list[dict[str, float]]:
    """ValeriaSpawner's per-spawn timing lines from a hub log. Pure."""
    out = []
    for line in log.splitlines():
        match = _TIMING.search(line)
        if match:
            out.append({k: float(v) for k, v in (p.split("=") for p in match.group(1).split())})
    return out


async def spawn_once(hub: BenchHub, client: httpx.AsyncClient) -> float:
    """Start alice's server, wait for ready, stop it; the start-to-ready seconds."""
    headers = xsrf_headers(client, hub.url)
    t0 = time.perf_counter()
    resp = await client.post(f"{hub.url}/hub/api/users/{USER}/server", headers=headers, json={})
    if resp.status_code not in (201, 202):
        raise RuntimeError(f"spawn answered {resp.status_code}: {resp.text[:200]}")
    last = await wait_progress(client, hub.url, USER, headers)
    elapsed = time.perf_counter() - t0
    if not last.get("ready"):
        raise RuntimeError(f"spawn failed: {last.get('message')}")
    await client.delete(f"{hub.url}/hub/api/users/{USER}/server", headers=headers)
    async with hub.api() as api:
        for _ in range(600):
            model = (await api.get(f"/users/{USER}")).json()
            if not model.get("servers"):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the server did not stop")
    return elapsed


async def measure(
    hubs: dict[str, BenchHub], n: int, warm_up: bool = True
) -> dict[str, list[float]]:
    clients = {label: user_client() for label in hubs}
    try:
        for label, hub in hubs.items():
            resp = await login(clients[label], hub.url, USER)
            if resp.status_code != 200:
                raise RuntimeError(f"login to the {label} hub failed: {resp.status_code}")
        for label, hub in hubs.items():  # warm-up: imports, reflectors, first pod
            if warm_up:
                await spawn_once(hub, clients[label])
        times: dict[str, list[float]] = {label: [] for label in hubs}
        order = list(hubs)
        for i in range(n):
            for label in order if i % 2 == 0 else order[::-1]:
                times[label].append(await spawn_once(hubs[label], clients[label]))
        return times
    finally:
        for c in clients.values():
            await c.aclose()


def figures(times: dict[str, list[float]], ours: list[dict[str, float]]) -> dict[str, Any]:
    """The scenario's figures from start-to-ready times and our own timings. Pure."""
    v, p = times["valeria"], times["plain"]
    out: dict[str, Any] = {"spawns_each": len(v)}
    for label, values in (("valeria", v), ("plain_kubespawner", p)):
        out[f"{label}_start_to_ready_p50_ms"] = round(median(values) * 1000, 1)
        out[f"{label}_start_to_ready_p95_ms"] = round(percentile(values, 95) * 1000, 1)
    out["ratio_p50"] = round(median(v) / median(p), 3) if p and median(p) else None
    for key in ("ours_ms", "vault_ms", "secret_ms", "other_ms"):
        values = [t[key] for t in ours if key in t]
        out[f"hub_side_{key[:-3]}_p50_ms"] = round(median(values), 2)
    out["hub_side_ours_p95_ms"] = round(percentile([t["ours_ms"] for t in ours], 95), 2)
    out["targets"] = {
        "hub_side_ours_p50_ms<=25": out["hub_side_ours_p50_ms"] <= 25,
        "ratio_p50<=1.05": out["ratio_p50"] is not None and out["ratio_p50"] <= 1.05,
    }
    return out


def run(workdir: Path, quick: bool = False) -> dict[str, Any]:
    n = 1 if quick else 15
    # Both hubs in the namespace the template sets up (its Role, its SCC binding), as its
    # service account; the plain hub's pods and Secret carry names of their own.
    with bench_stack(workdir) as stack:
        plain_env = {"VALERIA_BENCH_PLAIN": _json(plain_peer(stack, USER, NAMESPACE, PLAIN_POD))}
        with (
            bench_hub(stack, workdir / "hub-valeria", namespace=NAMESPACE) as valeria,
            bench_hub(stack, workdir / "hub-plain", namespace=NAMESPACE, **plain_env) as plain,
        ):
            times = asyncio.run(measure({"valeria": valeria, "plain": plain}, n, not quick))
            ours = parse_timings(valeria.hub.log_text())[0 if quick else 1 :]  # not the warm-up
    return figures(times, ours)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
