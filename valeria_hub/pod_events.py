"""Kubernetes Events of pods, grouped by pod as they arrive, for spawn progress.

KubeSpawner keeps every pod Event of the namespace in one shared reflector, and each
spawn's ``events`` (read once a second by every open progress stream, and twice more
per spawn) sorts all of them to keep its own pod's few. That is O(spawns x events) of
work on the hub's event loop every second: with 1,000 spawns and 6,000 events, about
5 s of CPU per second, and all the progress streams wake on the same tick, so the loop
stalls for seconds at a time (the morning rush's 22 s stall with
``ValeriaSpawner.progress`` over KubeSpawner's ``events`` on the stack). A pod that waits
for its Secret or a volume adds a Warning event every retry, which makes it worse.

:class:`EventsByPod` is the reflector's dictionary with an index by the involved pod's
name kept in step with every change, so a spawn reads only its own pod's events:
O(own events) per read, whatever else happens in the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubespawner.spawner import EventReflector
from traitlets import validate

_MISSING = object()


def event_time(event: Mapping[str, Any]) -> Any:
    """The sort key KubeSpawner orders events by (``lastTimestamp``, else ``eventTime``)."""
    return event["lastTimestamp"] or event["eventTime"]


def involved_pod(event: Mapping[str, Any]) -> str:
    """The name of the object an event is about (pods only are reflected)."""
    return ((event.get("involvedObject") or {}).get("name")) or ""


class EventsByPod(dict):
    """``namespace/name`` -> Event, as the reflector keeps them, plus the same events
    grouped by involved pod name, each group in the dictionary's own order (so that
    events with equal timestamps come out as KubeSpawner's sort leaves them)."""

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        self._by_pod: dict[str, dict[str, Any]] = {}
        self._place: dict[str, int] = {}  # key -> its place in the dictionary's order
        self._next = 0
        self.update(items)

    def of_pod(self, name: str) -> list[dict[str, Any]]:
        """The events about pod ``name``, in the dictionary's order."""
        group = self._by_pod.get(name, {})
        return [group[k] for k in sorted(group, key=self._place.__getitem__)]

    def _unindex(self, key: str, event: Any) -> None:
        group = self._by_pod.get(involved_pod(event))
        if group is not None:
            group.pop(key, None)
            if not group:
                del self._by_pod[involved_pod(event)]

    def __setitem__(self, key: str, event: Any) -> None:
        old = super().get(key, _MISSING)
        pod = involved_pod(event)
        if old is _MISSING:  # a new key goes last, as in a dict; an update keeps its place
            self._place[key], self._next = self._next, self._next + 1
        elif involved_pod(old) != pod:
            self._unindex(key, old)
        super().__setitem__(key, event)
        self._by_pod.setdefault(pod, {})[key] = event

    def __delitem__(self, key: str) -> None:
        event = super().__getitem__(key)
        super().__delitem__(key)
        self._unindex(key, event)
        del self._place[key]

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key in self:
            event = super().__getitem__(key)
            del self[key]
            return event
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        key, event = super().popitem()
        self._unindex(key, event)
        del self._place[key]
        return key, event

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return super().__getitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, event in dict(*args, **kwargs).items():
            self[key] = event

    def __ior__(self, other: Any) -> EventsByPod:
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self._by_pod.clear()
        self._place.clear()


class PodEventReflector(EventReflector):
    """KubeSpawner's event reflector whose ``resources`` is always an
    :class:`EventsByPod` (the full re-list assigns a plain dict: it is wrapped)."""

    @validate("resources")
    def _index_by_pod(self, proposal: dict[str, Any]) -> EventsByPod:
        value = proposal["value"]
        return value if isinstance(value, EventsByPod) else EventsByPod(value)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.resources, EventsByPod):  # the trait's default
            self.resources = EventsByPod(self.resources)


def pod_events(events: list[dict[str, Any]], last_event: str | None) -> list[dict[str, Any]]:
    """One pod's events, oldest first, after the ``last_event`` marker (the uid of the
    last event seen before this spawn), as ``KubeSpawner.events`` selects them. Pure."""
    out: list[dict[str, Any]] = []
    for event in sorted(events, key=event_time):
        if last_event and event["metadata"]["uid"] == last_event:
            out = []
        else:
            out.append(event)
    return out
