"""Garbage collector: dependents follow their owners out of the store.

Like the real one it works on ownerReferences by uid: when an object is DELETED,
every object naming its uid as an owner is deleted, unless another owner still
exists (then only the dangling reference is removed). A dependent whose owners do
not exist (never did, or have another uid now) is collected too. Pods go through the
graceful path (deletionTimestamp, the kubelet stops them and deletes them).

Finalizers set by the API for ``propagationPolicy``: an owner with a deletionTimestamp
and the ``foregroundDeletion`` finalizer has its dependents deleted first, then the
finalizer removed and the owner deleted; with ``orphan`` the dependents lose their
reference to it, then it is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from .store import Event, NotFound, Store

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # resource, namespace, name
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def delete_pod(store: Store, pod: dict[str, Any], grace: int | None = None) -> None:
    """Delete a pod the way the API does: graceful when a node runs it."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    ns, name = meta.get("namespace", ""), meta["name"]
    terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
    with contextlib.suppress(NotFound):
        if not spec.get("nodeName") or terminal or grace <= 0:
            store.delete("v1/pods", ns, name)
            return
        if meta.get("deletionTimestamp"):
            return

        def mark(p: dict[str, Any]) -> None:
            when = datetime.now(UTC) + timedelta(seconds=grace)
            p["metadata"]["deletionTimestamp"] = iso(when)
            p["metadata"]["deletionGracePeriodSeconds"] = grace

        store.mutate("v1/pods", ns, name, mark)


def delete_object(store: Store, resource: str, ns: str, name: str) -> None:
    """Background-delete one object (pods gracefully; finalizers respected)."""
    try:
        obj = store.get(resource, ns, name)
    except NotFound:
        return
    if resource == "v1/pods":
        delete_pod(store, obj)
        return
    meta = obj["metadata"]
    if meta.get("finalizers"):
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = iso(datetime.now(UTC))
            meta["deletionGracePeriodSeconds"] = 0
            store.update(resource, ns, obj, check_rv=False, bump_generation=False)
        return
    with contextlib.suppress(NotFound):
        store.delete(resource, ns, name)


class GarbageCollector:
    """Keeps a uid index of the store through a listener; deletes on its own task."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where: dict[str, Key] = {}
        self.owners: dict[str, set[str]] = {}  # dependent uid -> owner uids
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._unsubscribe = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        for resource in self.store.resources():
            for obj in self.store.list(resource)[0]:
                self._index(resource, obj)
        for uid, owner_uids in list(self.owners.items()):
            if owner_uids and not any(o in self.where for o in owner_uids):
                self.queue.put_nowait(("check", uid))
        for uid, key in list(self.where.items()):
            self._maybe_finalize(uid, key)
        self._unsubscribe = self.store.add_listener(self._on_change)
        self._task = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- index (synchronous, from the store's listener) ---------------------------
    def _index(self, resource: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        uid = meta.get("uid", "")
        self.where[uid] = (resource, meta.get("namespace", ""), meta.get("name", ""))
        new = {r.get("uid", "") for r in meta.get("ownerReferences") or []}
        for gone in self.owners.get(uid, set()) - new:
            self.dependents.get(gone, set()).discard(uid)
        for owner in new:
            self.dependents.setdefault(owner, set()).add(uid)
        if new:
            self.owners[uid] = new
        else:
            self.owners.pop(uid, None)

    def _unindex(self, uid: str) -> None:
        self.where.pop(uid, None)
        for owner in self.owners.pop(uid, set()):
            self.dependents.get(owner, set()).discard(uid)

    def _on_change(self, event: Event) -> None:
        meta = event.obj.get("metadata", {})
        uid = meta.get("uid", "")
        if event.type == "DELETED":
            owners = self.owners.get(uid, set())
            self._unindex(uid)
            self.queue.put_nowait(("owner-gone", uid))
            for owner in owners:  # a foreground-deleting owner may be waiting for this one
                self.queue.put_nowait(("finalize", owner))
            return
        self._index(event.resource, event.obj)
        if meta.get("ownerReferences") and event.type == "ADDED":
            self.queue.put_nowait(("check", uid))
        self._maybe_finalize(uid, self.where[uid], meta)

    def _maybe_finalize(self, uid: str, key: Key, meta: dict | None = None) -> None:
        if meta is None:
            with contextlib.suppress(NotFound):
                meta = self.store.get(*key)["metadata"]
        if (
            meta
            and meta.get("deletionTimestamp")
            and {FOREGROUND, ORPHAN} & set(meta.get("finalizers") or [])
        ):
            self.queue.put_nowait(("finalize", uid))

    # -- work (on the event loop, outside the listener) -----------------------------
    async def _work(self) -> None:
        while True:
            kind, uid = await self.queue.get()
            try:
                if kind == "owner-gone":
                    self._owner_gone(uid)
                elif kind == "check":
                    self._check(uid)
                elif kind == "finalize":
                    self._finalize(uid)
            except Exception:  # noqa: BLE001 - keep collecting
                log.exception("devstack gc: %s %s failed", kind, uid)

    def _get(self, uid: str) -> dict[str, Any] | None:
        key = self.where.get(uid)
        if key is None:
            return None
        try:
            obj = self.store.get(*key)
        except NotFound:
            return None
        return obj if obj["metadata"].get("uid") == uid else None

    def _alive(self, ref: dict[str, Any], ns: str) -> bool:
        key = self.where.get(ref.get("uid", ""))
        return key is not None and key[2] == ref.get("name") and key[1] in (ns, "")

    def _owner_gone(self, owner_uid: str) -> None:
        for dep_uid in list(self.dependents.pop(owner_uid, set())):
            self._collect(dep_uid)

    def _check(self, uid: str) -> None:
        self._collect(uid)

    def _collect(self, uid: str) -> None:
        """Delete ``uid`` if none of its owners exists; drop dangling references otherwise."""
        obj = self._get(uid)
        if obj is None:
            return
        meta = obj["metadata"]
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        alive = [r for r in refs if self._alive(r, meta.get("namespace", ""))]
        resource, ns, name = self.where[uid]
        if not alive:
            delete_object(self.store, resource, ns, name)
        elif len(alive) < len(refs):
            meta["ownerReferences"] = alive
            self.store.update(resource, ns, obj, check_rv=False, bump_generation=False)

    def _finalize(self, uid: str) -> None:
        obj = self._get(uid)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            return
        resource, ns, name = self.where[uid]
        deps = [d for d in (self._get(u) for u in list(self.dependents.get(uid, set()))) if d]
        if FOREGROUND in finalizers:
            if deps:
                for d in deps:
                    dr, dns, dn = self.where[d["metadata"]["uid"]]
                    delete_object(self.store, dr, dns, dn)
                return
            finalizers.remove(FOREGROUND)
        elif ORPHAN in finalizers:
            for d in deps:
                d_uid = d["metadata"]["uid"]
                d["metadata"]["ownerReferences"] = [
                    r for r in d["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
                ]
                self.store.update(*self.where[d_uid][:2], d, check_rv=False, bump_generation=False)
            finalizers.remove(ORPHAN)
        else:
            return
        meta["finalizers"] = finalizers
        if finalizers:
            self.store.update(resource, ns, obj, check_rv=False, bump_generation=False)
        else:
            with contextlib.suppress(NotFound):
                self.store.delete(resource, ns, name)
