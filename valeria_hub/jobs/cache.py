"""The people's jobs and cron jobs, kept in memory by watches, for fast lists.

Listing 2,000 jobs through the API server and reshaping them took over a second per
request, and a list of one person's jobs in the shared namespace slowed down with every
other person's. A *view* is one (kind, namespace, owner selector): the first list makes
it (a LIST, then a WATCH from its resourceVersion, on a connection pool of its own), and
later lists are answered from memory, each item already encoded as JSON once and
deflated after its neighbour in the list's order (:mod:`.listbody`), which the view keeps
as items come and go, so that a list sorts, encodes and compresses nothing. Each item's
summary (``?view=summary``, our own clients' list) is kept beside it the same way: a
few hundred bytes more per item, made once per change rather than at every list.

Bounded: at most ``max_views`` views (a list beyond that goes to the API server as
before); a view nobody listed for ``idle_seconds`` stops its watch and goes. A watch that
fails or is told its resourceVersion is too old (410) drops the view; the next list
makes it again. A submission puts its new object in the person's view at once, so a
list right after it shows it whatever the watch's delay.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .kube import Kube, KubeError
from .labels import Owner
from .listbody import Piece
from .shapes import client_shape

log = logging.getLogger("valeria_hub.jobs")

TYPE_NAMES = {"Job": "V1Job", "CronJob": "V1CronJob"}
FILL_STEP = 50  # items encoded between two turns of the event loop (about 8 ms)
WATCH_SECONDS = 240  # the API server ends a watch after this; it is made again at once


class Entry(NamedTuple):
    """An item with its JSON and its summary's JSON (:func:`.listbody.summary`)."""

    item: dict[str, Any]
    piece: Piece
    summary: Piece


@dataclass
class View:
    """One kind's objects in one namespace under one selector, as the watch reports,
    kept in name order."""

    kind: str
    namespace: str
    selector: str
    items: dict[str, Entry] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # the keys of ``items``, sorted
    # name -> uid of objects deleted through the service whose DELETED event is still on
    # its way: a late event about them must not bring them back
    gone: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    resource_version: str = ""
    used: float = 0.0
    ready: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    version: int = 0  # bumped at every change of the items
    # owners' items (full or summaries) as of ``owned_version``: lists asked again
    # unchanged reuse them
    owned_by: dict[tuple[Owner, bool], tuple[Piece, ...]] = field(default_factory=dict)
    owned_version: int = -1

    def put(self, item: dict[str, Any], *, linked: bool = True) -> None:
        """The item with its JSON and its summary's, each deflated after the item before
        it in name order, and the item after it deflated again after it (about 0.1 ms
        each, once per change, so that no list has to do it for 2,000 items at once).
        ``linked=False`` leaves both to :meth:`link_all` (a LIST's items come in any
        order)."""
        name = item["metadata"]["name"]
        entry = Entry(item, Piece.of(item), Piece.summary_of(self.kind, item))
        if name not in self.items:
            bisect.insort(self.names, name)
        self.items[name] = entry
        self.version += 1
        if linked:
            self._link_around(bisect.bisect_left(self.names, name))

    def pop(self, name: str) -> None:
        """The item out, and the one after it deflated after its new neighbour."""
        if self.items.pop(name, None) is None:
            return
        i = bisect.bisect_left(self.names, name)
        del self.names[i]
        self.version += 1
        if i < len(self.names):
            self._link_around(i)

    def link_all(self, start: int = 0, stop: int | None = None) -> None:
        """Each item from ``start`` to ``stop`` deflated after the one before it (the
        first on its own), as a list of them all uses it."""
        names, items = self.names, self.items
        for i in range(start, len(names) if stop is None else min(stop, len(names))):
            entry = items[names[i]]
            if i:
                before = items[names[i - 1]]
                entry.piece.chained(before.piece.raw)
                entry.summary.chained(before.summary.raw)
            else:
                entry.piece.deflated()
                entry.summary.deflated()

    def _link_around(self, i: int) -> None:
        self.link_all(i, i + 2)

    def sorted_items(self) -> list[tuple[dict[str, Any], Piece]]:
        return [self.items[name][:2] for name in self.names]

    def owned(self, owner: Owner, *, summary: bool = False) -> tuple[Piece, ...]:
        """The pieces of ``owner``'s items (of their summaries), in name order."""
        if self.owned_version != self.version:
            self.owned_by, self.owned_version = {}, self.version
        key = (owner, summary)
        pieces = self.owned_by.get(key)
        if pieces is None:
            entries = (self.items[name] for name in self.names)
            pieces = tuple(e.summary if summary else e.piece for e in entries if owner.owns(e.item))
            self.owned_by[key] = pieces
        return pieces


class WorkloadCache:
    """Views of the jobs and cron jobs people list; see the module's docstring."""

    def __init__(self, kube: Kube, *, max_views: int = 200, idle_seconds: float = 300.0) -> None:
        self.kube = kube
        self.max_views = max_views
        self.idle_seconds = idle_seconds
        self._views: dict[tuple[str, str, str], View] = {}

    async def items(
        self, kind: str, namespace: str, selector: str
    ) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Piece]]] | None:
        """(list metadata, [(item, its JSON)] by name), or None when no view can be kept
        (the caller lists through the API server). KubeError as a LIST gives it."""
        view = await self._ready_view(kind, namespace, selector)
        if view is None:
            return None
        return self._metadata(view), view.sorted_items()

    async def owned(
        self, kind: str, namespace: str, selector: str, owner: Owner, *, summary: bool = False
    ) -> tuple[dict[str, Any], tuple[Piece, ...]] | None:
        """(list metadata, the JSON of ``owner``'s items, or of their summaries, by name):
        :meth:`items` for a person's list, the same pieces again while nothing changed."""
        view = await self._ready_view(kind, namespace, selector)
        if view is None:
            return None
        return self._metadata(view), view.owned(owner, summary=summary)

    @staticmethod
    def _metadata(view: View) -> dict[str, Any]:
        return dict(view.metadata, resource_version=view.resource_version)

    async def _ready_view(self, kind: str, namespace: str, selector: str) -> View | None:
        if self.max_views <= 0:
            return None
        loop = asyncio.get_running_loop()
        key = (kind, namespace, selector)
        view = self._views.get(key)
        if view is None:
            self._sweep(loop.time())
            if len(self._views) >= self.max_views:
                return None
            view = self._views[key] = View(kind, namespace, selector)
            view.ready = loop.create_future()
            view.task = asyncio.ensure_future(self._run(view))
        view.used = loop.time()
        assert view.ready is not None
        await asyncio.shield(view.ready)  # KubeError of the first LIST, to every waiter
        return view

    def note(self, kind: str, namespace: str, selector: str, item: dict[str, Any]) -> None:
        """A just-made object (to_dict() shape) into its view, if there is one."""
        view = self._live(kind, namespace, selector)
        if view is not None:
            view.gone.pop(item["metadata"]["name"], None)
            view.put(item)

    def forget(self, kind: str, namespace: str, selector: str, name: str, uid: str) -> None:
        """An object just deleted through the service out of its view at once, so a list
        right after the delete does not show it (whatever the watch's delay)."""
        view = self._live(kind, namespace, selector)
        if view is not None:
            view.pop(name)
            if uid:
                view.gone[name] = uid

    def _live(self, kind: str, namespace: str, selector: str) -> View | None:
        view = self._views.get((kind, namespace, selector))
        if view is None or view.ready is None or not view.ready.done():
            return None
        return None if view.ready.exception() is not None else view

    async def close(self) -> None:
        views = list(self._views.values())
        for view in views:
            self._drop(view)
        for task in [v.task for v in views if v.task is not None]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- inside ------------------------------------------------------------------------------
    def _sweep(self, now: float) -> None:
        for view in [v for v in self._views.values() if now - v.used > self.idle_seconds]:
            self._drop(view)

    def _drop(self, view: View) -> None:
        if self._views.get((view.kind, view.namespace, view.selector)) is view:
            del self._views[(view.kind, view.namespace, view.selector)]
        if view.task is not None and view.task is not asyncio.current_task():
            view.task.cancel()

    async def _run(self, view: View) -> None:
        """LIST, then WATCH from there until the view is idle or the watch fails."""
        assert view.ready is not None
        try:
            listed = await self.kube.list_workloads(view.kind, view.namespace, view.selector)
        except KubeError as e:
            view.ready.set_exception(e)
            view.ready.exception()  # retrieved here too: a view nobody waits for is fine
            self._drop(view)
            return
        for i, item in enumerate(listed.get("items") or [], start=1):
            view.put(item, linked=False)
            if i % FILL_STEP == 0:
                await asyncio.sleep(0)  # others run between steps: 2,000 items take 0.3 s
        for start in range(0, len(view.names), FILL_STEP):
            view.link_all(start, start + FILL_STEP)  # then deflated in the list's order
            await asyncio.sleep(0)
        view.metadata = dict(listed.get("metadata") or {})
        view.resource_version = str(view.metadata.get("resource_version") or "")
        view.ready.set_result(None)
        loop = asyncio.get_running_loop()
        try:
            while loop.time() - view.used <= self.idle_seconds:
                await self._watch_once(view)
        except KubeError as e:
            log.info(
                "list cache: the watch of %s %s ended (%s %s); the next list makes it again",
                view.kind, view.namespace, e.status, e.message,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a view that fails is dropped, never the service
            log.exception("list cache: the watch of %s %s failed", view.kind, view.namespace)
        finally:
            self._drop(view)

    async def _watch_once(self, view: View) -> None:
        stream = await self.kube.watch_workloads(
            view.kind, view.namespace, view.selector, view.resource_version, WATCH_SECONDS
        )
        type_name = TYPE_NAMES[view.kind]
        try:
            async for event in stream:
                kind, obj = event.get("type"), event["object"]
                if kind == "ERROR":  # a Status: 410 when the resourceVersion is too old
                    code = obj.get("code") or 0
                    raise KubeError(int(code), str(obj.get("message") or "watch error"))
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind == "BOOKMARK":
                    view.resource_version = rv or view.resource_version
                    continue
                meta = obj.get("metadata") or {}
                name = meta.get("name")
                if not name:
                    continue
                deleted = view.gone.get(name)
                if kind == "DELETED":
                    view.pop(name)
                    if deleted == meta.get("uid"):
                        view.gone.pop(name, None)
                elif kind in ("ADDED", "MODIFIED") and deleted != meta.get("uid"):
                    view.put(client_shape(obj, type_name))
                view.resource_version = rv or view.resource_version
        finally:
            stream.close()
