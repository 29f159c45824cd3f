"""core/v1 Events written by the kubelet and the controllers, shaped like a real cluster's.

KubeSpawner shows these on the spawn page and ``kubectl describe`` lists them, so the
reasons and messages follow the real components' wording.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from .store import AlreadyExists, Store, now_iso

# kind and apiVersion of the resources whose objects may lack them in the store
_KINDS = {
    "v1/pods": ("Pod", "v1"),
    "batch/v1/jobs": ("Job", "batch/v1"),
    "batch/v1/cronjobs": ("CronJob", "batch/v1"),
}


def involved_reference(
    involved: dict[str, Any],
    *,
    kind: str | None = None,
    api_version: str | None = None,
    field_path: str | None = None,
) -> dict[str, Any]:
    """The ``involvedObject`` of an event pointing at ``involved``."""
    meta = involved.get("metadata", {})
    ref: dict[str, Any] = {
        "kind": kind or involved.get("kind") or "",
        "apiVersion": api_version or involved.get("apiVersion") or "",
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def record_event(
    store: Store,
    involved: dict,
    reason: str,
    message: str,
    *,
    type: str = "Normal",  # noqa: A002 - the field's name in the Event
    component: str = "kubelet",
    host: str | None = None,
    field_path: str | None = None,
    kind: str | None = None,
    api_version: str | None = None,
) -> dict:
    """Create a core/v1 Event about ``involved`` in its namespace ("default" if cluster-scoped).

    The name is ``<object>.<hex unix nanoseconds>`` like the real event recorder's.
    """
    ref = involved_reference(involved, kind=kind, api_version=api_version, field_path=field_path)
    namespace = ref["namespace"] or "default"
    stamp = now_iso()
    source: dict[str, str] = {"component": component}
    if host:
        source["host"] = host
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "", "namespace": namespace},
        "involvedObject": ref,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": None,
        "count": 1,
        "type": type,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }
    base = ref["name"] or "event"
    # a time-ordered, random-suffixed name; a clash is retried with a new suffix
    for _ in range(4):
        event["metadata"]["name"] = f"{base}.{time.time_ns():x}{secrets.token_hex(2)}"
        try:
            return store.create("v1/events", namespace, event)
        except AlreadyExists:
            continue
    event["metadata"]["name"] = f"{base}.{time.time_ns():x}{secrets.token_hex(8)}"
    return store.create("v1/events", namespace, event)


def kind_of(resource: str) -> tuple[str, str]:
    """(kind, apiVersion) of a well-known resource string."""
    return _KINDS.get(resource, ("", ""))
