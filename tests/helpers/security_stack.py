"""Helpers of the fault, hostile-input, fuzz and secret-hygiene tests: a hub on the
repository's jupyterhub_config.py (with the hub-managed jobs service) that can be
restarted on the same database, user tokens made with a login cookie, job bodies."""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devstack.hub import HubProcess, free_port
from devstack.stack import DevStack

JOBS = "/services/jobs/"


def tune_kubelet(stack: DevStack) -> None:
    """A pod network of its own (other suites on this machine use 127.10/16, and a hub
    must never reach another stack's notebook) and a short crash back-off."""
    kubelet = stack.kube.kubelet
    assert kubelet is not None
    kubelet.network = ipaddress.ip_network(f"127.{random.randint(64, 250)}.0.0/16")
    kubelet.backoff_base = 0.5


@contextmanager
def managed_hub(
    stack: DevStack, workdir: Path, extra_args: list[str] | None = None, **env: str
) -> Iterator[HubProcess]:
    """The repository's hub (jobs service included) on free ports; stopped after."""
    public = f"http://127.0.0.1:{free_port()}"
    stack.allow_redirects_to(public)
    hub_env = stack.hub_environment(
        public_url=public, hub_port=free_port(), proxy_api_port=free_port()
    )
    hub_env["JOBS_SERVICE_PORT"] = str(free_port())
    hub_env.update(env)
    hub = HubProcess(hub_env, workdir, public_url=public, extra_args=extra_args)
    hub.start(timeout=90)
    try:
        yield hub
    finally:
        hub.stop()


def restarted(hub: HubProcess) -> HubProcess:
    """A new hub process on the same workdir, database, keys and ports."""
    again = HubProcess(
        hub.env, hub.workdir, public_url=hub.public_url, extra_args=list(hub.extra_args)
    )
    again.start(timeout=90)
    return again


def own_token(client: httpx.Client, hub_url: str, user: str) -> str:
    """A hub API token made with the user's login cookie, as the token page does."""
    xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
    resp = client.post(
        f"{hub_url}/hub/api/users/{user}/tokens",
        json={"note": "security tests", "expires_in": 3600},
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub_url}/hub/token"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def jobs_api(hub: HubProcess, token: str, **kwargs) -> httpx.Client:
    return httpx.Client(
        base_url=f"{hub.public_url}{JOBS}",
        headers={"Authorization": f"token {token}"},
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )


def job_body(command: str = "true", name: str | None = None, **spec_extra) -> dict:
    meta = {"name": name} if name else {"generateName": "sec-"}
    container = {"name": "job", "image": "python:3.11", "command": ["/bin/sh", "-c", command]}
    spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}
    spec.update(spec_extra)
    return {"job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}}


def stop_server(client: httpx.Client, hub: HubProcess, user: str) -> httpx.Response:
    xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
    return client.delete(
        f"{hub.public_url}/hub/api/users/{user}/server",
        headers={"X-XSRFToken": xsrf, "Referer": f"{hub.public_url}/hub/home"},
    )


def wait_until(predicate, timeout: float = 60, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
