"""ValeriaSpawner's own pieces, without a cluster: the environment and the pod manifest
it hands to KubeSpawner once Vault has answered.

KubeSpawner loads a kubeconfig when it is made; the test gives it one (written by the
devstack's writer, pointing at a closed port) and makes no API call.
"""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config

from devstack.kube.kubeconfig import write_kubeconfig
from valeria_hub.spawner import SpawnRefused, ValeriaSpawner
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import UserProfile


def as_sent(pod) -> dict:
    """The pod as the API server receives it (camelCase JSON)."""
    return ApiClient().sanitize_for_serialization(pod)


ALICE = UserProfile("alice", "ent-1", 20001, 30001, "AKIAALICE", "alice-secret-key")


@pytest.fixture
async def make_spawner(tmp_path, monkeypatch):
    """ValeriaSpawner(**config) for alice (made inside the loop, as the hub makes it)."""
    config = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", "unused")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    storage = StorageLayout(
        nfs_server="nfs.example.org", nfs_path="/export", s3_endpoint_url="https://s3.example"
    )

    def make(**config) -> ValeriaSpawner:
        s = ValeriaSpawner(_mock=True, storage=storage, cmd=["jupyterhub-singleuser"], **config)
        s.user.name = "alice"
        return s

    return make


@pytest.fixture
async def spawner(make_spawner) -> ValeriaSpawner:
    return make_spawner()


def test_env_holds_nothing_before_vault_answers(spawner):
    env = spawner.get_env()
    assert not {"NB_UID", "HOME", "AWS_SECRET_ACCESS_KEY"} & set(env)


def test_env_is_the_workloads_with_keys_only_as_secret_references(spawner):
    spawner._profile = ALICE
    env = spawner.get_env()
    assert env["NB_USER"] == "alice" and env["NB_UID"] == "20001"
    assert env["HOME"] == "/home/alice"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL"):
        assert env[key] == {
            "valueFrom": {"secretKeyRef": {"name": spawner.secret_name_s3, "key": key}}
        }
    assert "AKIAALICE" not in repr(env) and "alice-secret-key" not in repr(env)
    assert env["JUPYTERHUB_API_TOKEN"] == spawner.api_token  # KubeSpawner's own stay


async def test_pod_runs_as_the_person_with_their_storage(spawner):
    spawner._profile = ALICE
    pod = as_sent(await spawner.get_pod_manifest())
    spec = pod["spec"]
    assert spec["securityContext"]["runAsUser"] == 20001
    assert spec["securityContext"]["runAsGroup"] == 30001
    assert spec["securityContext"]["fsGroup"] == 30001
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    csc = container["securityContext"]
    assert csc["runAsUser"] == 20001 and csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and csc["privileged"] is False
    assert container["workingDir"] == "/home/alice"
    nfs = [v for v in spec["volumes"] if "nfs" in v]
    assert [(v["nfs"]["server"], v["nfs"]["path"]) for v in nfs] == [("nfs.example.org", "/export")]
    mounts = {m["mountPath"]: m["subPath"] for m in container["volumeMounts"]}
    assert mounts["/home/alice"] == "home/alice" and mounts["/scratch"] == "scratch/alice"
    env = {e["name"]: e for e in container["env"]}
    assert env["HOME"]["value"] == "/home/alice"
    ref = env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": spawner.secret_name_s3, "key": "AWS_SECRET_ACCESS_KEY"}
    assert "alice-secret-key" not in repr(pod)


async def test_operator_security_settings_never_loosen_the_identity(make_spawner):
    spawner = make_spawner(
        pod_security_context={"runAsUser": 0, "sysctls": [{"name": "a", "value": "1"}]},
        container_security_context={"runAsUser": 0, "readOnlyRootFilesystem": True},
    )
    spawner._profile = ALICE
    pod = as_sent(await spawner.get_pod_manifest())
    assert pod["spec"]["securityContext"]["runAsUser"] == 20001
    assert pod["spec"]["securityContext"]["sysctls"] == [{"name": "a", "value": "1"}]
    csc = pod["spec"]["containers"][0]["securityContext"]
    assert csc["runAsUser"] == 20001 and csc["readOnlyRootFilesystem"] is True


async def test_no_manifest_without_an_identity(spawner):
    with pytest.raises(SpawnRefused, match="identity was not resolved"):
        await spawner.get_pod_manifest()
