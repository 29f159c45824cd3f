"""Shared helpers of the end-to-end tests: the stand-ins, a hub on the repository's
jupyterhub_config.py, logins over HTTP, and looks into running notebook processes."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from devstack.hub import HubProcess, free_port
from devstack.stack import DevStack
from tests.helpers.auth_hub import login  # noqa: F401 - re-exported for the e2e tests

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_root(what: str) -> None:
    """Some checks (process uids) need root; in CI their absence is a failure."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"{what} needs root and CI is not running as root")
        pytest.skip(f"{what} needs root")


@contextmanager
def running_stack(
    tmp: Path,
    *,
    openshift: bool = True,
    network: str = "loopback",
    deployment_options: dict | Callable[[DevStack], dict] | None = None,
    **kube_options,
) -> Iterator[DevStack]:
    """The stand-ins, seeded; by default as OpenShift with what ``openshift/`` ships.

    ``openshift=True``: the Kubernetes stand-in's OpenShift profile (SCC, owner-reference
    and quota admission, RBAC from the store with escalation prevention), the templates
    processed with the devstack's parameters and their ServiceAccount, Role, bindings,
    ClusterRoles, SCC, NetworkPolicies, ConfigMap and Secret created, and the hub's token
    mapped to the template's service account with no rules of its own: every call the hub
    and the jobs service make is allowed by the shipped RBAC and admitted by the shipped
    SCC, or the test fails. ``openshift=False``: plain Kubernetes (admin token unless
    ``tokens`` are given).

    ``network="netns"``: the pod network with the policies enforced (DevStack's
    docstring); where this machine cannot enforce them the test is skipped, and fails
    under CI. ``deployment_options``: the template parameters (see DevStack).
    """
    stack = DevStack(
        tmp / "state",
        kube_options={"strict_schema": True, **kube_options},
        openshift=openshift,
        deployment_options=deployment_options,
        network=network,
    )
    with ExitStack() as running:
        try:
            running.enter_context(stack.serve_in_threads())
        except RuntimeError as e:
            cannot = ("cannot enforce", "needs root")
            if network != "netns" or not any(c in str(e) for c in cannot) or IN_CI:
                raise
            pytest.skip(str(e))
        yield stack


@contextmanager
def running_hub(stack: DevStack, workdir: Path, **env_overrides: str) -> Iterator[HubProcess]:
    public = f"http://127.0.0.1:{free_port()}"
    stack.allow_redirects_to(public)
    env = stack.hub_environment(public_url=public, hub_port=free_port(), proxy_api_port=free_port())
    env.update(env_overrides)
    hub = HubProcess(env, workdir, public_url=public)
    hub.start(timeout=90)
    try:
        yield hub
    finally:
        hub.stop()


@contextmanager
def running_hub_in_pod(
    stack: DevStack, workdir: Path, **env_overrides: str
) -> Iterator[HubProcess]:
    """The repository's hub as the template runs it, on the pod network
    (``running_stack(network="netns")``): in a network namespace labelled like the hub
    pod, the cluster DNS in its resolv.conf, the ConfigMap's ports and addresses; its
    proxy and the managed jobs service are its children there. The public URL is the
    proxy's port at the pod's address, which the shipped policy opens to everyone."""
    pod = stack.add_hub_pod()
    try:
        env = stack.hub_pod_environment(pod.ip)
        env.update(env_overrides)
        public = env["JUPYTERHUB_PUBLIC_URL"]
        stack.allow_redirects_to(public)
        hub = HubProcess(env, workdir, public_url=public, prefix=pod.run_prefix())
        hub.start(timeout=90)
        try:
            yield hub
        finally:
            hub.stop()
    finally:
        stack.remove_hub_pod()


def pod_exec(stack: DevStack, namespace: str, name: str) -> tuple[list[str], dict[str, str]]:
    """``kubectl exec`` into a running pod of the netns network: an argv prefix entering
    the network and mount namespaces of the pod's container process as its uid and gid
    (so the pod's /etc/resolv.conf and mounts apply), and that process's environment."""
    pod = stack.kube.call(stack.kube.store.get, "v1/pods", namespace, name)
    path = stack.kube.network.netns_path(pod["metadata"]["uid"])
    assert path, f"{namespace}/{name} has no network namespace"
    netns = os.stat(path).st_ino
    ours = os.readlink("/proc/self/ns/mnt")
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != netns:
                continue
            if os.readlink(f"/proc/{pid}/ns/mnt") == ours:
                continue  # nsenter/unshare on the way in, not the container yet
            status = Path(f"/proc/{pid}/status").read_text()
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        ids = {
            k: v.split()
            for k, v in (x.split(":", 1) for x in status.splitlines())
            if k in ("Uid", "Gid")
        }
        pids.append((int(pid), int(ids["Uid"][0]), int(ids["Gid"][0]), raw))
    assert pids, f"no container process in {namespace}/{name}"
    pid, uid, gid, raw = min(pids)
    env = dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )
    prefix = ["nsenter", "-t", str(pid), "--net", "--mount", "-S", str(uid), "-G", str(gid), "--"]
    return prefix, env


def browser(hub: HubProcess, username: str) -> httpx.Client:
    client = httpx.Client(follow_redirects=True, timeout=30)
    resp = login(client, hub.public_url, username)
    assert resp.status_code == 200, resp.text[:500]
    assert str(resp.url).startswith(hub.public_url), resp.url
    return client


def spawn(client: httpx.Client, hub: HubProcess, form: dict | None = None) -> httpx.Response:
    data = dict(form or {})
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    if xsrf:
        data["_xsrf"] = xsrf
    return client.post(f"{hub.public_url}/hub/spawn", data=data)


def progress_events(client: httpx.Client, hub: HubProcess, user: str, timeout: float = 120):
    """The spawn's progress events, read from the hub's event stream until it ends."""
    events = []
    with client.stream(
        "GET",
        f"{hub.public_url}/hub/api/users/{user}/server/progress",
        headers={"Accept": "text/event-stream", "Referer": f"{hub.public_url}/hub/"},
        timeout=timeout,
    ) as resp:
        assert resp.status_code == 200, resp.read()[:300]
        for line in resp.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if event.get("ready") or event.get("failed"):
                    break
    return events


def wait_for_lab(client: httpx.Client, hub: HubProcess, user: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = client.get(f"{hub.public_url}/user/{user}/lab")
        if last.status_code == 200 and "JupyterLab" in last.text:
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server did not answer: {last and last.status_code}")


def notebook_processes(user: str, hub: HubProcess | None = None) -> list[dict]:
    """Processes whose environment says they are ``user``'s single-user server.

    With ``hub``, only the servers of that hub (other hubs may run on this machine).
    """
    api = hub.env.get("JUPYTERHUB_HUB_BIND_URL") if hub is not None else None
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("JUPYTERHUB_USER") != user or "JUPYTERHUB_API_TOKEN" not in env:
            continue
        if api and not env.get("JUPYTERHUB_API_URL", "").startswith(api):
            continue
        uid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("Uid:"))
        gid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("Gid:"))
        ppid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("PPid:"))
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:  # the process (e.g. a short-lived child) ended meanwhile
            continue
        found.append(
            {"pid": int(pid), "ppid": ppid, "uid": uid, "gid": gid, "env": env, "cwd": cwd}
        )
    return found


def stack_objects(stack: DevStack, resource: str, namespace: str | None = None) -> list[dict]:
    items, _ = stack.kube.call(stack.kube.store.list, resource, namespace)
    return items


class Output:
    """Collects a process's output on a thread, so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text:
                return self.text
            if not self.thread.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"{marker!r} never appeared; output so far:\n{self.text}")


def start_cli(*args: str) -> tuple[subprocess.Popen, Output]:
    """``python -m devstack ARGS`` in its own session, its output collected on a thread."""
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, Output(proc)
