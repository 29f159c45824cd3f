"""Spawn progress reads each pod's own events from an index kept by the event reflector
(valeria_hub.pod_events), not by sorting every event of the namespace per read: what
a spawn sees must be exactly what KubeSpawner's ``events`` shows, whatever happens in
the reflector's dictionary (watch updates, deletions, full re-lists).
"""

from __future__ import annotations

import random

import pytest
from kubernetes_asyncio.config import kube_config

from devstack.kube.kubeconfig import write_kubeconfig
from valeria_hub.pod_events import EventsByPod, PodEventReflector, pod_events
from valeria_hub.spawner import ValeriaSpawner


def event(pod: str, n: int, stamp: str | None = None, *, uid: str | None = None) -> dict:
    return {
        "metadata": {"name": f"{pod}.{n:04x}", "namespace": "default", "uid": uid or f"{pod}-{n}"},
        "involvedObject": {"kind": "Pod", "name": pod},
        "lastTimestamp": stamp,
        "eventTime": None if stamp else f"2026-01-01T00:00:{n % 60:02d}.000000Z",
        "type": "Normal",
        "message": f"event {n}",
    }


def kubespawner_view(resources: dict, pod: str, last_event: str | None) -> list[dict]:
    """What KubeSpawner 7 shows (EventReflector.events, then KubeSpawner.events)."""
    out: list[dict] = []
    for e in sorted(resources.values(), key=lambda e: e["lastTimestamp"] or e["eventTime"]):
        if e["involvedObject"]["name"] != pod:
            continue
        out = [] if last_event and e["metadata"]["uid"] == last_event else [*out, e]
    return out


def test_the_index_follows_every_change_of_the_dictionary():
    rng = random.Random(16)
    plain: dict[str, dict] = {}
    indexed = EventsByPod()
    pods = [f"jupyter-u{i}" for i in range(8)]
    for step in range(3000):
        key = f"default/e{rng.randrange(400)}"
        op = rng.random()
        if op < 0.6:  # ADDED or MODIFIED (same key, maybe a later stamp or another pod)
            stamp = f"2026-01-01T00:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
            e = event(rng.choice(pods), step, rng.choice([stamp, None]))
            plain[key] = indexed[key] = e
        elif op < 0.9:  # DELETED, as the reflector does it
            assert indexed.pop(key, None) is plain.pop(key, None)
        elif op < 0.95 and key in plain:
            del plain[key], indexed[key]
        else:  # setdefault/update go through the index too
            e = event(rng.choice(pods), step, None)
            plain.setdefault(key, e)
            indexed.setdefault(key, e)
        if step % 100 == 0:
            assert dict(indexed) == plain
            for pod in pods:
                marker = rng.choice([None, *(e["metadata"]["uid"] for e in plain.values())])
                assert pod_events(indexed.of_pod(pod), marker) == kubespawner_view(
                    plain, pod, marker
                )
    indexed.clear()
    assert indexed.of_pod(pods[0]) == []


def test_equal_stamps_keep_the_reflectors_order():
    resources = {f"default/e{i}": event("p", i, "2026-01-01T00:00:00Z") for i in range(5)}
    indexed = EventsByPod(resources)
    indexed["default/e1"] = event("p", 9, "2026-01-01T00:00:00Z")  # updated in place
    resources["default/e1"] = indexed["default/e1"]
    assert pod_events(indexed.of_pod("p"), None) == kubespawner_view(resources, "p", None)


async def test_the_reflector_keeps_an_index_across_a_full_relist():
    reflector = PodEventReflector(namespace="default")
    assert isinstance(reflector.resources, EventsByPod)
    reflector.resources = {"default/a": event("p", 1)}  # what _list_and_update assigns
    assert isinstance(reflector.resources, EventsByPod)
    assert reflector.resources.of_pod("p") == [event("p", 1)]


@pytest.fixture
async def spawner(tmp_path, monkeypatch) -> ValeriaSpawner:
    config = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", "unused")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    s = ValeriaSpawner(_mock=True, cmd=["jupyterhub-singleuser"])
    s.user.name = "alice"
    s.pod_name = "jupyter-alice"
    return s


async def test_spawn_progress_reads_only_its_own_pods_events(spawner, monkeypatch):
    """The rush's stall: 1,000 spawns x 6,000 events, read once a second per stream."""
    reflector = PodEventReflector(namespace="default")
    monkeypatch.setitem(ValeriaSpawner.reflectors, spawner._get_reflector_key("events"), reflector)
    for i in range(6000):
        e = event(f"jupyter-u{i % 1000}", i)
        reflector.resources[f"default/{e['metadata']['name']}"] = e
    mine = [event("jupyter-alice", n) for n in range(3)]
    for e in mine:
        reflector.resources[f"default/{e['metadata']['name']}"] = e
    spawner._last_event = mine[0]["metadata"]["uid"]  # what _start records
    assert spawner.events == mine[1:]
    assert spawner.events == kubespawner_view(
        dict(reflector.resources), "jupyter-alice", spawner._last_event
    )
    # never the sort of the whole namespace (KubeSpawner's EventReflector.events)
    monkeypatch.setattr(PodEventReflector, "events", property(lambda self: 1 / 0))
    assert spawner.events == mine[1:]


async def test_a_reflector_kubespawner_made_still_works(spawner, monkeypatch):
    from kubespawner.spawner import EventReflector

    reflector = EventReflector(namespace="default")
    monkeypatch.setitem(ValeriaSpawner.reflectors, spawner._get_reflector_key("events"), reflector)
    reflector.resources = {"default/x": event("jupyter-alice", 1), "default/y": event("b", 2)}
    assert spawner.events == [event("jupyter-alice", 1)]
