"""A job's or cronjob's Kubernetes events, shown to its owner only.

Events carry no owner labels, so the owner check is made on the objects they are about:
the workload is read exactly as ``show`` reads it (someone else's is the same 404 as a
name that does not exist), then the owner's pods that the Job controls, and the API
server is asked for the events whose ``involvedObject.uid`` is one of those objects.
Uids are never reused: a job deleted and submitted again under the same name does not
show the old one's events, and nobody else's object can have them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from .hubclient import HubUser
from .kube import KubeError
from .service import Context, get_owned, kube_failure, list_pods

# A Job has at most backoffLimit + parallelism pods of its own (6 + 4 by default caps);
# beyond this many, only the newest pods' events are read (one API call each).
MAX_PODS = 16
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _time(text: Any) -> datetime:
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return _EARLIEST


def event_time(event: dict[str, Any]) -> datetime:
    """When an event last happened: ``last_timestamp`` (core/v1 events), else
    ``event_time`` (events.k8s.io writers), else when it was first seen or made."""
    for when in (
        event.get("last_timestamp"),
        event.get("event_time"),
        event.get("first_timestamp"),
        (event.get("metadata") or {}).get("creation_timestamp"),
    ):
        if when:
            return _time(when)
    return _EARLIEST


def controlled_by(pod: dict[str, Any], uid: str) -> bool:
    """Is the pod one the object ``uid`` controls (the Job's own, not a namesake's)?"""
    refs = (pod.get("metadata") or {}).get("owner_references") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def _newest_first(pod: dict[str, Any]) -> datetime:
    return _time((pod.get("metadata") or {}).get("creation_timestamp"))


async def owned_events(ctx: Context, user: HubUser, kind: str, name: str) -> dict[str, Any]:
    """The events of the caller's ``kind`` ``name`` (a Job's with its pods'), oldest
    first, as the Python client's ``CoreV1EventList.to_dict()``.

    404 for anyone else's, as ``show``; 503 naming the refusal when the service may not
    list events (the shipped RBAC grants ``list`` on ``events``).
    """
    obj = await get_owned(ctx, user, kind, name)
    meta = obj["metadata"]
    namespace = meta["namespace"]
    uids = [meta["uid"]]
    if kind == "Job":
        pods = [p for p in (await list_pods(ctx, user, name))["items"] if controlled_by(p, uids[0])]
        pods.sort(key=_newest_first, reverse=True)
        uids += [p["metadata"]["uid"] for p in pods[:MAX_PODS]]
    answers = await asyncio.gather(
        *(ctx.kube.list_events(namespace, f"involvedObject.uid={uid}") for uid in uids),
        return_exceptions=True,
    )
    items: list[dict[str, Any]] = []
    for answer in answers:
        if isinstance(answer, KubeError):
            raise kube_failure(answer, f"could not read the {kind}'s events") from None
        if isinstance(answer, BaseException):
            raise answer
        items += [
            e
            for e in answer.get("items") or []
            # the API server filtered them; an answer about anything else is not shown
            if (e.get("involved_object") or {}).get("uid") in uids
        ]
    items.sort(key=event_time)  # stable: a tie keeps the Job's before its pods'
    return {"api_version": "v1", "kind": "EventList", "items": items}
