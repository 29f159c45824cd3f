"""The object store behind the Kubernetes API stand-in.

Objects are keyed by (resource, namespace, name) where a resource is
``"<group/version>/<plural>"`` (``"v1/pods"``, ``"batch/v1/jobs"``); cluster-scoped
objects use the namespace ``""``. One global resourceVersion counter orders every
change, and an append-only, bounded event log lets watches resume from any recent
resourceVersion (older ones get :class:`Gone`, as from a real API server).

The store runs on one event loop and is not thread-safe; other threads go through
``StandIn.call``. It returns deep copies, so callers may mutate what they get.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


class StoreError(Exception):
    """Base of the errors that map to a Kubernetes ``Status``."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(StoreError):
    code = 404
    reason = "NotFound"


class AlreadyExists(StoreError):
    code = 409
    reason = "AlreadyExists"


class Conflict(StoreError):
    code = 409
    reason = "Conflict"


class Gone(StoreError):
    code = 410
    reason = "Expired"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    namespace: str
    obj: Obj
    # the object before this change (None for ADDED): watches need it to tell a watcher
    # whose selector stops matching that the object is gone, and lists at an older rv
    prev: Obj | None = None


class Store:
    """Objects, one resourceVersion counter, and an event log for watches."""

    def __init__(self, history: int = 100_000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        # the same objects by namespace: a list of one namespace does not walk all of them
        self._by_ns: dict[str, dict[str, dict[str, Obj]]] = {}
        self._log: deque[Event] = deque(maxlen=history)
        self._rv = 0
        self._changed = asyncio.Condition() if _has_loop() else None
        self._listeners: list[Callable[[Event], None]] = []

    # -- resourceVersion --------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def oldest_rv(self) -> int:
        """The oldest resourceVersion a watch may resume from without 410."""
        return self._log[0].rv - 1 if self._log else self._rv

    # -- reads ------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            raise NotFound(
                f'{_plural(resource)} "{name}" not found', details=_details(resource, name)
            )
        return copy.deepcopy(obj)

    def exists(self, resource: str, namespace: str, name: str) -> bool:
        return (namespace, name) in self._objects.get(resource, {})

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        predicate: Callable[[Obj], bool] | None = None,
    ) -> tuple[list[Obj], int]:
        """Objects of a resource (in one namespace, or all when None) and the list's rv."""
        if namespace is None:
            found = [obj for _, obj in sorted(self._objects.get(resource, {}).items())]
        else:
            bucket = self._by_ns.get(resource, {}).get(namespace, {})
            found = [bucket[name] for name in sorted(bucket)]
        items = [copy.deepcopy(o) for o in found if predicate is None or predicate(o)]
        return items, self._rv

    def peek(self, resource: str, namespace: str) -> list[Obj]:
        """The stored objects of one namespace themselves, not copies, for controllers
        that only read them (quota usage): the caller must not change them."""
        return list(self._by_ns.get(resource, {}).get(namespace, {}).values())

    def resources(self) -> list[str]:
        return list(self._objects)

    # -- writes -----------------------------------------------------------
    def create(self, resource: str, namespace: str, obj: Obj, *, uid: str | None = None) -> Obj:
        """Add an object; ``uid`` lets the API layer use a uid it already put into the spec."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ValueError("metadata.name must be set before the store sees the object")
        bucket = self._objects.setdefault(resource, {})
        if (namespace, name) in bucket:
            raise AlreadyExists(
                f'{_plural(resource)} "{name}" already exists', details=_details(resource, name)
            )
        if namespace:
            meta["namespace"] = namespace
        meta["uid"] = uid or str(uuid.uuid4())
        meta.setdefault("creationTimestamp", now_iso())
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        bucket[(namespace, name)] = obj
        self._index(resource, namespace, name, obj)
        self._record("ADDED", resource, namespace, obj)
        return copy.deepcopy(obj)

    def update(
        self,
        resource: str,
        namespace: str,
        obj: Obj,
        *,
        check_rv: bool = True,
        bump_generation: bool | None = None,
    ) -> Obj:
        """Replace an object. With ``check_rv`` a stale resourceVersion gives Conflict."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        current = self._objects.get(resource, {}).get((namespace, name))
        if current is None:
            raise NotFound(
                f'{_plural(resource)} "{name}" not found', details=_details(resource, name)
            )
        cur_meta = current["metadata"]
        given_rv = meta.get("resourceVersion")
        if check_rv and given_rv and given_rv != cur_meta["resourceVersion"]:
            raise Conflict(
                f'Operation cannot be fulfilled on {_plural(resource)} "{name}": the object '
                "has been modified; please apply your changes to the latest version and try again",
                details=_details(resource, name),
            )
        # immutable metadata
        for key in ("uid", "creationTimestamp", "namespace"):
            if key in cur_meta:
                meta[key] = cur_meta[key]
        if bump_generation is None:
            bump_generation = obj.get("spec") != current.get("spec")
        meta["generation"] = cur_meta.get("generation", 1) + (1 if bump_generation else 0)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[resource][(namespace, name)] = obj
        self._index(resource, namespace, name, obj)
        self._record("MODIFIED", resource, namespace, obj, prev=current)
        return copy.deepcopy(obj)

    def mutate(self, resource: str, namespace: str, name: str, fn: Callable[[Obj], Any]) -> Obj:
        """Read, change with ``fn`` (in place), write back: for controllers."""
        obj = self.get(resource, namespace, name)
        fn(obj)
        return self.update(resource, namespace, obj, check_rv=False)

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        """Remove an object now (graceful deletion is the API layer's business)."""
        bucket = self._objects.get(resource, {})
        obj = bucket.pop((namespace, name), None)
        if obj is None:
            raise NotFound(
                f'{_plural(resource)} "{name}" not found', details=_details(resource, name)
            )
        self._index(resource, namespace, name, None)
        prev = copy.deepcopy(obj)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._record("DELETED", resource, namespace, obj, prev=prev)
        return copy.deepcopy(obj)

    def _index(self, resource: str, namespace: str, name: str, obj: Obj | None) -> None:
        by_ns = self._by_ns.setdefault(resource, {})
        if obj is not None:
            by_ns.setdefault(namespace, {})[name] = obj
            return
        bucket = by_ns.get(namespace, {})
        bucket.pop(name, None)
        if not bucket:
            by_ns.pop(namespace, None)

    # -- events -----------------------------------------------------------
    def add_listener(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn`` synchronously on every change; returns an unsubscribe function."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _record(
        self, type_: str, resource: str, namespace: str, obj: Obj, prev: Obj | None = None
    ) -> None:
        event = Event(self._rv, type_, resource, namespace, copy.deepcopy(obj), prev)
        self._log.append(event)
        for fn in list(self._listeners):
            fn(event)
        if self._changed is None and _has_loop():
            self._changed = asyncio.Condition()
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def events_since(self, rv: int, resource: str, namespace: str | None = None) -> list[Event]:
        """Events after ``rv`` for a resource; Gone when ``rv`` is older than the log."""
        if rv < self.oldest_rv():
            raise Gone(f"too old resource version: {rv} ({self.oldest_rv() + 1})")
        newer = []
        for e in reversed(self._log):  # in rv order: a watcher that keeps up reads the tail
            if e.rv <= rv:
                break
            if e.resource == resource and (namespace is None or e.namespace == namespace):
                newer.append(e)
        newer.reverse()
        return newer

    async def watch(
        self, resource: str, namespace: str | None, since_rv: int
    ) -> AsyncIterator[Event]:
        """Every change after ``since_rv``, then live changes, until the caller stops."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        last = since_rv
        while True:
            snapshot_rv = self._rv
            for event in self.events_since(last, resource, namespace):
                yield event
            last = max(last, snapshot_rv)
            async with self._changed:
                await self._changed.wait_for(lambda last=last: self._rv > last)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _plural(resource: str) -> str:
    plural = resource.rsplit("/", 1)[-1]
    group = resource.split("/")[0] if resource.count("/") == 2 else ""
    return f"{plural}.{group}" if group else plural


def _details(resource: str, name: str) -> dict:
    plural = resource.rsplit("/", 1)[-1]
    group = resource.split("/")[0] if resource.count("/") == 2 else ""
    return {"name": name, "group": group, "kind": plural}
