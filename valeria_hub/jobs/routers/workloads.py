"""Submit, list, show and delete the caller's workloads, and read their events: one
router per kind.

Jobs and CronJobs have the same routes (kbatch-proxy's four, and the events); only the
kind and the path differ, so both routers come from :func:`make_router`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from .. import service
from ..dependencies import Ctx
from ..events import owned_events
from ..hubauth import CurrentUser
from ..listbody import ListView, accepts_deflate
from ..models import (
    ErrorOut,
    KubeEventList,
    KubeList,
    KubeObject,
    KubeStatus,
    RefusalOut,
    SubmitBody,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


VIEW_DESCRIPTION = (
    "`full` (the default): every item in the Kubernetes Python client's to_dict() shape, "
    "every field present (null when unset), as kbatch's client reads it. `summary`: the "
    "same envelope, each item cut to what a list shows, under the same snake_case keys: "
    "metadata {name, namespace, uid, creation_timestamp} and, for a Job, status {active, "
    "succeeded, failed, start_time, completion_time, conditions [{type, status, reason, "
    "message, last_transition_time}]}; for a CronJob, spec {schedule, suspend} and status "
    "{active [{name, namespace, uid}], last_schedule_time}. GET .../NAME gives the whole "
    "object."
)


async def pieces(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """The chunks, on the event loop (a plain iterator would go to a thread pool)."""
    for chunk in chunks:
        yield chunk


def make_router(kind: str, path: str) -> APIRouter:
    """The routes for ``kind`` ("Job" or "CronJob") under ``path`` ("/jobs")."""
    tag = path.strip("/")
    router = APIRouter(prefix=path, tags=[tag], responses=ERRORS)

    @router.get("/", response_model=KubeList, name=f"list_{tag}")
    async def list_owned(
        request: Request,
        ctx: Ctx,
        user: CurrentUser,
        view: Annotated[ListView, Query(description=VIEW_DESCRIPTION)] = "full",
    ) -> StreamingResponse:
        """The caller's own objects, in name order (only theirs, whatever the namespace)."""
        # JSON made of items encoded once (the list cache): a 2,000-job list is bytes
        # joined, not 2,000 objects validated and encoded again at every request, and
        # sent in pieces as the connection takes them
        deflate = accepts_deflate(request.headers.get("accept-encoding"))
        length, chunks = await service.list_owned_chunks(
            ctx, user, kind, deflate=deflate, summary=view == "summary"
        )
        headers = {"Content-Length": str(length), "Vary": "Accept-Encoding"}
        if deflate:  # items deflated ahead, each after its neighbour: ~2 % of the bytes
            headers["Content-Encoding"] = "deflate"
        return StreamingResponse(pieces(chunks), media_type="application/json", headers=headers)

    @router.post(
        "/",
        response_model=KubeObject,
        status_code=201,
        name=f"submit_{tag}",
        responses={
            409: {"model": ErrorOut},
            413: {"model": ErrorOut},
            422: {"model": RefusalOut},
        },
    )
    async def submit(body: SubmitBody, ctx: Ctx, user: CurrentUser) -> dict:
        return await service.submit(ctx, user, kind, body.job, body.code, body.profile)

    @router.get("/{name}", response_model=KubeObject, name=f"read_{tag}")
    async def read(name: str, ctx: Ctx, user: CurrentUser) -> dict:
        return await service.get_owned(ctx, user, kind, name)

    @router.get("/{name}/events", response_model=KubeEventList, name=f"events_{tag}")
    async def events(name: str, ctx: Ctx, user: CurrentUser) -> dict:
        # owner-checked as read; a Job's with its pods' (see ..events)
        return await owned_events(ctx, user, kind, name)

    @router.delete("/{name}", response_model=KubeStatus, name=f"delete_{tag}")
    async def delete(name: str, ctx: Ctx, user: CurrentUser) -> dict:
        return await service.delete_owned(ctx, user, kind, name)

    return router
