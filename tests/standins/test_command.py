"""`python -m devstack run`: the three stand-ins as one process, usable by real clients."""

from __future__ import annotations

import signal
import time

import httpx
import hvac
import kubernetes

from devstack.hub import free_port
from tests.helpers.e2e import start_cli


def test_devstack_serves_real_clients_and_stops_on_ctrl_c(tmp_path):
    ports = {name: free_port() for name in ("kc", "vault", "kube")}
    state = tmp_path / "devstack"
    proc, output = start_cli(
        "run",
        "--state-dir",
        str(state),
        "--keycloak-port",
        str(ports["kc"]),
        "--vault-port",
        str(ports["vault"]),
        "--kube-port",
        str(ports["kube"]),
    )
    try:
        out = output.wait_for("Ctrl-C stops everything.", timeout=60)
        realm = f"http://127.0.0.1:{ports['kc']}/realms/valeria"
        assert realm in out and f"http://127.0.0.1:{ports['vault']}" in out

        # alice logs in to Keycloak (password grant), then to Vault with that token
        token = httpx.post(
            f"{realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "jupyterhub",
                "client_secret": "demo-jupyterhub-secret",
                "username": "alice",
                "password": "alice",
                "scope": "openid",
            },
            timeout=10,
        ).json()["access_token"]
        vault = hvac.Client(url=f"http://127.0.0.1:{ports['vault']}", timeout=10)
        entity = vault.auth.jwt.jwt_login(role="valeria", jwt=token)["auth"]["entity_id"]
        uid = vault.secrets.kv.v2.read_secret_version(
            path=f"users/{entity}/uid", mount_point="valeria", raise_on_deleted_version=True
        )
        assert uid["data"]["data"]["uid"] == "1001"

        # the kubeconfig it wrote works with the official client; a pod really runs
        api = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(str(state / "kubeconfig"))
        )
        api.create_namespaced_pod(
            "default",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "hello"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo devstack-ok"],
                        }
                    ],
                },
            },
        )
        deadline = time.monotonic() + 30
        while api.read_namespaced_pod("hello", "default").status.phase != "Succeeded":
            assert time.monotonic() < deadline, "the pod did not complete"
            time.sleep(0.2)
        log = api.read_namespaced_pod_log("hello", "default", _preload_content=False).data
        assert b"devstack-ok" in log
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0
