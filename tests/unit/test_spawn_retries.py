"""A slow API server (a morning rush) must not turn one spawn into several pods: each
try of a Kubernetes call waits twice as long as the one before, and a 409 on a later
try meets the pod the earlier try made (its answer came late), which is kept instead
of being deleted and made again. Any other pod in the way is stopped, as KubeSpawner
does.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.config import kube_config

from devstack.kube.kubeconfig import write_kubeconfig
from valeria_hub.spawner import SPAWN_ANNOTATION, ValeriaSpawner, attempt_timeout
from valeria_hub.storage import StorageLayout
from valeria_hub.vault import UserProfile

ALICE = UserProfile("alice", "ent-1", 20001, 30001, "AKIAALICE", "alice-secret-key")


def test_each_try_of_a_kubernetes_call_waits_twice_as_long_within_the_budget():
    assert [attempt_timeout(3, n, 30) for n in range(5)] == [3, 6, 12, 24, 30]
    assert attempt_timeout(3, 2, 5) == 5  # what is left of the budget
    assert attempt_timeout(3, 4, 1) == 3  # never less than one plain try


@pytest.fixture
async def spawner(tmp_path, monkeypatch) -> ValeriaSpawner:
    config = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", "unused")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    storage = StorageLayout(nfs_server="nfs.example.org", nfs_path="/export")
    s = ValeriaSpawner(_mock=True, storage=storage, cmd=["jupyterhub-singleuser"])
    s.user.name = "alice"
    s._profile = ALICE
    return s


def pod_named(name: str, mark: str | None, uid: str = "uid-1") -> SimpleNamespace:
    annotations = {SPAWN_ANNOTATION: mark} if mark else {}
    meta = SimpleNamespace(name=name, uid=uid, annotations=annotations, deletion_timestamp=None)
    return SimpleNamespace(metadata=meta)


class FakeApi:
    """create_namespaced_pod answers 409; read_namespaced_pod returns ``existing``."""

    def __init__(self, existing: SimpleNamespace | None) -> None:
        self.existing = existing
        self.reads = 0

    async def create_namespaced_pod(self, namespace: str, pod: object) -> None:
        raise ApiException(status=409, reason="AlreadyExists")

    async def read_namespaced_pod(self, name: str, namespace: str) -> SimpleNamespace:
        self.reads += 1
        if self.existing is None:
            raise ApiException(status=404, reason="NotFound")
        return self.existing


async def test_the_pod_carries_this_spawns_mark(spawner):
    pod = await spawner.get_pod_manifest()
    assert pod.metadata.annotations[SPAWN_ANNOTATION] == spawner._spawn_mark
    assert len(spawner._spawn_mark) == 16


async def test_a_409_meeting_this_spawns_own_pod_keeps_it(spawner, monkeypatch):
    pod = await spawner.get_pod_manifest()
    spawner.api = FakeApi(pod_named(pod.metadata.name, spawner._spawn_mark, uid="late-one"))
    made, stopped = [], []
    monkeypatch.setattr(spawner, "create_s3_secret", lambda p, uid: _record(made, uid))
    monkeypatch.setattr(spawner, "stop", lambda now=False: _record(stopped, now))
    assert await spawner._make_create_pod_request(pod, 3) is True
    assert made == ["late-one"] and stopped == []  # the Secret is owned by the kept pod


@pytest.mark.parametrize("existing", ["another spawn's pod", "no pod at all"])
async def test_a_409_meeting_another_pod_stops_it_and_tries_again(spawner, monkeypatch, existing):
    pod = await spawner.get_pod_manifest()
    other = pod_named(pod.metadata.name, "0123456789abcdef") if existing.startswith("an") else None
    spawner.api = FakeApi(other)
    made, stopped = [], []
    monkeypatch.setattr(spawner, "create_s3_secret", lambda p, uid: _record(made, uid))
    monkeypatch.setattr(spawner, "stop", lambda now=False: _record(stopped, now))
    assert await spawner._make_create_pod_request(pod, 3) is False
    assert made == [] and stopped == [True]


async def _record(into: list, value: object) -> None:
    into.append(value)
