"""Plain KubeSpawner (no subclass, nothing patched) against the Kubernetes stand-in.

Proves the stand-in serves KubeSpawner's real calls: list+watch of pods and events,
pod creation in per-user namespaces, readiness, deletion with a grace period and the
DELETED event it waits for, and a restart with the same pod name.
"""

from __future__ import annotations

import secrets
import textwrap
import time

import httpx
import pytest

from devstack.hub import HubProcess, free_port, notebook_command
from devstack.kube.kubeconfig import write_kubeconfig
from devstack.kube.server import KubeStandIn

TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def kube_and_hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain-kubespawner")
    kube = KubeStandIn(root=tmp / "kube", strict_schema=True, namespaces=["default", "hub"])
    with kube.serve_in_thread():
        kubeconfig = write_kubeconfig(tmp / "kubeconfig", kube.url, "any", namespace="hub")
        public = f"http://127.0.0.1:{free_port()}"
        config = tmp / "jupyterhub_config.py"
        config.write_text(
            textwrap.dedent(
                f"""
                c.JupyterHub.bind_url = {public!r}
                c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"
                c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
                c.JupyterHub.db_url = "sqlite:///{tmp / "hub.sqlite"}"
                c.JupyterHub.cookie_secret_file = {str(tmp / "cookie_secret")!r}
                c.JupyterHub.authenticator_class = "dummy"
                c.Authenticator.allow_all = True
                c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
                c.KubeSpawner.namespace = "hub"
                c.KubeSpawner.enable_user_namespaces = True
                c.KubeSpawner.user_namespace_template = "hub-{{username}}"
                c.KubeSpawner.cmd = [{notebook_command()!r}]
                c.KubeSpawner.uid = 1000
                c.KubeSpawner.fs_gid = 1000
                c.KubeSpawner.volumes = [{{"name": "home", "emptyDir": {{}}}}]
                c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
                c.KubeSpawner.working_dir = "/home/jovyan"
                c.KubeSpawner.environment = {{"HOME": "/home/jovyan"}}
                c.KubeSpawner.start_timeout = 120
                c.Spawner.poll_interval = 1
                c.JupyterHub.services = [{{"name": "tester", "api_token": {TOKEN!r}}}]
                c.JupyterHub.load_roles = [{{
                    "name": "tester",
                    "scopes": ["admin:users", "admin:servers", "access:servers"],
                    "services": ["tester"],
                }}]
                """
            )
        )
        hub = HubProcess(
            {"KUBECONFIG": str(kubeconfig)}, tmp / "hub", config=config, public_url=public
        )
        hub.start(timeout=90)
        try:
            yield kube, hub
        finally:
            hub.stop()


def api(hub: HubProcess) -> httpx.Client:
    return httpx.Client(
        base_url=f"{hub.public_url}/hub/api",
        headers={"Authorization": f"token {TOKEN}"},
        timeout=30,
    )


def wait_ready(client: httpx.Client, user: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = client.get(f"/users/{user}").json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return server
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server never became ready: {model}")


def wait_gone(client: httpx.Client, user: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.get(f"/users/{user}").json().get("servers"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server did not stop")


def pods(kube: KubeStandIn, namespace: str) -> dict[str, dict]:
    items, _ = kube.call(kube.store.list, "v1/pods", namespace)
    return {p["metadata"]["name"]: p for p in items}


def test_two_users_start_answer_stop_and_restart(kube_and_hub):
    kube, hub = kube_and_hub
    client = api(hub)
    for user in ("ann", "ben"):
        assert client.post(f"/users/{user}").status_code in (200, 201)
        resp = client.post(f"/users/{user}/server")
        assert resp.status_code in (201, 202), resp.text
    for user in ("ann", "ben"):
        wait_ready(client, user)
        status = httpx.get(
            f"{hub.public_url}/user/{user}/api/status",
            headers={"Authorization": f"token {TOKEN}"},
            timeout=10,
        )
        assert status.status_code == 200 and "started" in status.json()

    # per-user namespaces, each pod on its own loopback IP
    ann = pods(kube, "hub-ann")["jupyter-ann"]
    ben = pods(kube, "hub-ben")["jupyter-ben"]
    assert ann["status"]["podIP"] != ben["status"]["podIP"]
    assert ann["status"]["phase"] == "Running"
    assert not pods(kube, "hub")

    # stop: KubeSpawner deletes with a grace period and waits for DELETED
    assert client.delete("/users/ann/server").status_code in (202, 204)
    wait_gone(client, "ann")
    assert "jupyter-ann" not in pods(kube, "hub-ann")

    # restart with the same pod name
    assert client.post("/users/ann/server").status_code in (201, 202)
    wait_ready(client, "ann")
    again = pods(kube, "hub-ann")["jupyter-ann"]
    assert again["metadata"]["uid"] != ann["metadata"]["uid"]


def test_poll_notices_a_pod_deleted_behind_the_hubs_back(kube_and_hub):
    kube, hub = kube_and_hub
    client = api(hub)
    if not client.get("/users/ben").json().get("servers"):
        client.post("/users/ben/server")
    wait_ready(client, "ben")
    kube.call(kube.store.delete, "v1/pods", "hub-ben", "jupyter-ben")
    wait_gone(client, "ben")
    # and it can start again
    assert client.post("/users/ben/server").status_code in (201, 202)
    wait_ready(client, "ben")
