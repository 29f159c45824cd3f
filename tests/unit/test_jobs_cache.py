"""The list cache's bookkeeping (valeria_hub/jobs/cache.py) against a scripted API server:
views made on first use and shared, watch events applied, a 410 or a broken watch
dropping the view, idle views going, the bound on views. The HTTP path (a real watch of
the Kubernetes stand-in behind the service) is in tests/e2e/test_jobs.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from valeria_hub.jobs.cache import WorkloadCache
from valeria_hub.jobs.kube import KubeError
from valeria_hub.jobs.listbody import list_body


def raw_job(name: str, rv: int, uid: str = "", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "resourceVersion": str(rv), "labels": labels}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {**meta, "uid": uid or f"uid-{name}"},
        "spec": {"template": {"spec": {"containers": []}}},
    }


def shaped(name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resource_version": str(rv)}}


class Stream:
    def __init__(self, events: asyncio.Queue) -> None:
        self.events = events
        self.closed = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self.events.get()
        if event is None:
            raise StopAsyncIteration
        if isinstance(event, Exception):
            raise event
        return event

    def close(self) -> None:
        self.closed = True


class Kube:
    """LIST answers ``items``; each WATCH takes the next queue of events."""

    def __init__(self, items: list[dict[str, Any]], rv: int = 10) -> None:
        self.items = items
        self.rv = rv
        self.lists = 0
        self.watches: list[tuple[str, str]] = []
        self.events: asyncio.Queue = asyncio.Queue()
        self.list_error: KubeError | None = None

    async def list_workloads(self, kind: str, namespace: str, selector: str) -> dict[str, Any]:
        self.lists += 1
        await asyncio.sleep(0.01)
        if self.list_error is not None:
            raise self.list_error
        return {"metadata": {"resource_version": str(self.rv)}, "items": list(self.items)}

    async def watch_workloads(self, kind, namespace, selector, rv, seconds) -> Stream:
        self.watches.append((selector, rv))
        return Stream(self.events)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def names(cache: WorkloadCache, selector: str = "o=a") -> list[str]:
    got = await cache.items("Job", "ns", selector)
    assert got is not None
    return [item["metadata"]["name"] for item, _ in got[1]]


async def test_one_list_for_concurrent_first_uses_then_watch_events():
    kube = Kube([shaped("b", 3), shaped("a", 2)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    results = await asyncio.gather(*(names(cache) for _ in range(5)))
    assert results == [["a", "b"]] * 5 and kube.lists == 1
    await settle()
    assert kube.watches == [("o=a", "10")]
    kube.events.put_nowait({"type": "ADDED", "object": raw_job("c", 11)})
    kube.events.put_nowait({"type": "DELETED", "object": raw_job("a", 12)})
    kube.events.put_nowait({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}})
    await settle()
    assert await names(cache) == ["b", "c"] and kube.lists == 1
    meta, items = await cache.items("Job", "ns", "o=a")
    assert meta["resource_version"] == "15"
    # each item is kept with its JSON, encoded once, in the to_dict() shape
    item, data = items[1]
    assert json.loads(data.raw) == item and item["metadata"]["resource_version"] == "11"
    await cache.close()


async def test_a_410_drops_the_view_and_the_next_list_lists_again():
    kube = Kube([shaped("a", 1)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    await names(cache)
    kube.events.put_nowait({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    await settle()
    assert cache._views == {}
    kube.items = [shaped("a", 1), shaped("z", 20)]
    assert await names(cache) == ["a", "z"] and kube.lists == 2
    await cache.close()


async def test_a_watch_that_ends_is_made_again_from_the_last_version():
    kube = Kube([shaped("a", 1)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    await names(cache)
    kube.events.put_nowait({"type": "MODIFIED", "object": raw_job("a", 30)})
    kube.events.put_nowait(None)  # the server ends the watch (timeoutSeconds)
    await settle()
    assert kube.watches == [("o=a", "10"), ("o=a", "30")]
    assert kube.lists == 1
    await cache.close()


async def test_a_failed_first_list_reaches_every_waiter_and_keeps_nothing():
    kube = Kube([])
    kube.list_error = KubeError(503, "down")
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(cache.items("Job", "ns", "o=a") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, KubeError) and r.status == 503 for r in results)
    assert cache._views == {} and kube.lists == 1


async def test_views_are_bounded_and_idle_ones_go():
    kube = Kube([shaped("a", 1)])
    cache = WorkloadCache(kube, max_views=2, idle_seconds=0.05)  # type: ignore[arg-type]
    await names(cache, "o=a")
    await names(cache, "o=b")
    assert len(cache._views) == 2
    await asyncio.sleep(0.1)  # both idle now: a third person's list sweeps them
    await names(cache, "o=c")
    assert [k[2] for k in cache._views] == ["o=c"]
    await names(cache, "o=d")
    # full and nobody idle: the caller lists through the API server
    assert await cache.items("Job", "ns", "o=e") is None
    assert await WorkloadCache(kube, max_views=0).items("Job", "ns", "o=a") is None  # type: ignore[arg-type]
    await cache.close()


async def test_a_submission_shows_in_its_view_at_once():
    kube = Kube([shaped("a", 1)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    await names(cache)
    cache.note("Job", "ns", "o=a", shaped("new", 40))
    cache.note("Job", "ns", "o=other", shaped("not-here", 41))  # no such view: nothing
    assert await names(cache) == ["a", "new"]
    await cache.close()


def test_list_body_is_the_to_dict_list_shape():
    body = list_body("Job", {"resource_version": "7"}, [b'{"a":1}', b'{"b":2}'])
    assert json.loads(body) == {
        "api_version": "batch/v1",
        "kind": "JobList",
        "metadata": {"resource_version": "7"},
        "items": [{"a": 1}, {"b": 2}],
    }
    assert json.loads(list_body("CronJob", {}, []))["items"] == []


def test_owner_is_owned_by_for_many_objects():
    from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION, Owner, owned_by
    from valeria_hub.jobs.naming import owner_label

    def meta(ns, label, name):
        labels = {OWNER_LABEL: label} if label else None
        return {"namespace": ns, "labels": labels, "annotations": {USERNAME_ANNOTATION: name}}

    owner = Owner("alice", "ns")
    cases = [
        meta("ns", owner_label("alice"), "alice"),
        meta("other", owner_label("alice"), "alice"),
        meta("ns", owner_label("bob"), "alice"),
        meta("ns", owner_label("alice"), "bob"),
        meta("ns", None, "alice"),
        {"namespace": "ns"},
    ]
    assert (
        [owner.owns({"metadata": m}) for m in cases]
        == [owned_by(m, "alice", "ns") for m in cases]
        == [True, False, False, False, False, False]
    )


@pytest.mark.parametrize("bad", [-1])
def test_list_cache_views_refuses_negative(bad):
    from traitlets import TraitError

    from valeria_hub.jobs.config import JobsServiceApp

    with pytest.raises(TraitError, match="list_cache_views"):
        JobsServiceApp(list_cache_views=bad)


async def test_a_deletion_leaves_the_view_at_once_and_late_events_do_not_bring_it_back():
    kube = Kube([shaped("a", 1), shaped("b", 2)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    await names(cache)
    cache.forget("Job", "ns", "o=a", "a", "uid-a")
    assert await names(cache) == ["b"]
    # a status change made before the delete arrives late: still gone
    kube.events.put_nowait({"type": "MODIFIED", "object": raw_job("a", 3)})
    await settle()
    assert await names(cache) == ["b"]
    kube.events.put_nowait({"type": "DELETED", "object": raw_job("a", 4)})
    # a new job of the same name (another uid) shows as usual
    kube.events.put_nowait({"type": "ADDED", "object": raw_job("a", 5, uid="uid-new")})
    await settle()
    assert await names(cache) == ["a", "b"]
    [view] = cache._views.values()
    assert view.gone == {}
    await cache.close()


async def test_a_view_keeps_its_items_deflated_in_list_order(monkeypatch):
    """Events in any order: a person's list is then the same pieces, already deflated
    each after its neighbour (the list compresses only its head and end), and decodes
    to the list of the items by name. Unchanged, the next list gets the same pieces."""
    import zlib

    from valeria_hub.jobs import listbody
    from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION, Owner
    from valeria_hub.jobs.naming import owner_label

    def mine(name: str, rv: int, owner: str = "alice") -> dict[str, Any]:
        job = raw_job(name, rv, **{OWNER_LABEL: owner_label(owner)})
        job["metadata"]["annotations"] = {USERNAME_ANNOTATION: owner}
        return job

    def shaped_mine(name: str, rv: int) -> dict[str, Any]:
        from valeria_hub.jobs.shapes import client_shape

        return client_shape(mine(name, rv), "V1Job")

    kube = Kube([shaped_mine(n, 2) for n in ("m", "c", "x", "a")] + [shaped("y-not-hers", 2)])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    alice = Owner("alice", "ns")
    meta, first = await cache.owned("Job", "ns", "o=a", alice)
    assert (await cache.owned("Job", "ns", "o=a", alice))[1] is first
    for event in (
        {"type": "ADDED", "object": mine("b", 11)},
        {"type": "MODIFIED", "object": mine("m", 12)},
        {"type": "DELETED", "object": mine("c", 13)},
        {"type": "ADDED", "object": mine("0", 14)},
        {"type": "ADDED", "object": mine("z", 15, owner="bob")},  # not alice's
    ):
        kube.events.put_nowait(event)
    await settle()
    cache.forget("Job", "ns", "o=a", "x", "uid-x")
    calls = []
    real = listbody.deflate_piece
    monkeypatch.setattr(listbody, "deflate_piece", lambda *a, **k: calls.append(a) or real(*a, **k))
    meta, pieces = await cache.owned("Job", "ns", "o=a", alice)
    assert pieces is not first
    stream = b"".join(listbody.deflated_list_chunks("Job", meta, pieces)[1])
    listed = json.loads(zlib.decompress(stream))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["0", "a", "b", "m"]
    assert listed["items"][3]["metadata"]["resource_version"] == "12"
    assert listed["metadata"]["resource_version"] == "15"
    # the list's head and end: every item was deflated already, after its neighbour in
    # the view (the others' items sort last here: one among hers costs her list a piece)
    assert len(calls) == 2
    _, all_items = await cache.items("Job", "ns", "o=a")
    names_all = [i["metadata"]["name"] for i, _ in all_items]
    assert names_all == ["0", "a", "b", "m", "y-not-hers", "z"]
    await cache.close()


async def test_a_views_summaries_follow_the_watch_and_come_deflated_in_list_order(monkeypatch):
    """Each item's summary is kept beside it: made when the item comes (LIST, ADDED,
    MODIFIED, a submission), gone with it (DELETED, a deletion through the service),
    already deflated after its neighbour, so a summary list costs its head and end. It
    decodes to exactly the summaries of the person's items, by name, as they are now."""
    import zlib

    from valeria_hub.jobs import listbody
    from valeria_hub.jobs.labels import OWNER_LABEL, USERNAME_ANNOTATION, Owner
    from valeria_hub.jobs.naming import owner_label
    from valeria_hub.jobs.shapes import client_shape

    def mine(name: str, rv: int, owner: str = "alice", **status: Any) -> dict[str, Any]:
        job = raw_job(name, rv, **{OWNER_LABEL: owner_label(owner)})
        job["metadata"]["annotations"] = {USERNAME_ANNOTATION: owner}
        job["status"] = status
        return job

    kube = Kube([client_shape(mine(n, 2), "V1Job") for n in ("m", "c", "a")])
    cache = WorkloadCache(kube)  # type: ignore[arg-type]
    alice = Owner("alice", "ns")

    async def summaries() -> tuple[dict[str, Any], dict[str, Any]]:
        meta, pieces = await cache.owned("Job", "ns", "o=a", alice, summary=True)
        plain = json.loads(list_body("Job", meta, [p.raw for p in pieces]))
        stream = b"".join(listbody.deflated_list_chunks("Job", meta, pieces, keep=True)[1])
        assert json.loads(zlib.decompress(stream)) == plain
        return plain, {i["metadata"]["name"]: i for i in plain["items"]}

    listed, by_name = await summaries()
    assert listed["kind"] == "JobList" and list(by_name) == ["a", "c", "m"]
    assert by_name["a"] == listbody.summary("Job", client_shape(mine("a", 2), "V1Job"))
    _, first = await cache.owned("Job", "ns", "o=a", alice, summary=True)
    assert (await cache.owned("Job", "ns", "o=a", alice, summary=True))[1] is first
    assert (await cache.owned("Job", "ns", "o=a", alice))[1] != first  # the full ones

    start, end = "2026-03-01T10:00:00Z", "2026-03-01T10:01:10Z"
    done = {"succeeded": 1, "completionTime": end, "startTime": start}
    for event in (
        {"type": "MODIFIED", "object": mine("m", 12, **done)},
        {"type": "ADDED", "object": mine("b", 13, active=1)},
        {"type": "DELETED", "object": mine("c", 14)},
        {"type": "ADDED", "object": mine("z", 15, owner="bob")},  # not alice's
    ):
        kube.events.put_nowait(event)
    await settle()
    cache.note("Job", "ns", "o=a", client_shape(mine("0", 16), "V1Job"))
    cache.forget("Job", "ns", "o=a", "a", "uid-a")
    calls = []
    real = listbody.deflate_piece
    monkeypatch.setattr(listbody, "deflate_piece", lambda *a, **k: calls.append(a) or real(*a, **k))
    listed, by_name = await summaries()
    assert len(calls) == 2  # the list's head and end: every summary was deflated already
    assert list(by_name) == ["0", "b", "m"]
    assert by_name["m"]["status"] == {
        "active": None,
        "succeeded": 1,
        "failed": None,
        "start_time": "2026-03-01T10:00:00+00:00",
        "completion_time": "2026-03-01T10:01:10+00:00",
        "conditions": None,
    }
    assert by_name["b"]["status"]["active"] == 1
    assert listed["metadata"]["resource_version"] == "15"
    _, full = await cache.owned("Job", "ns", "o=a", alice)
    assert [json.loads(p.raw) for p in full] == [
        cache._views[("Job", "ns", "o=a")].items[n].item for n in ("0", "b", "m")
    ]
    assert [listbody.summary("Job", json.loads(p.raw)) for p in full] == listed["items"]
    await cache.close()
