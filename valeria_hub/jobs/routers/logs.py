"""Logs: /jobs/logs/{job-or-pod}/ (kbatch 0.4 and 0.5) and /pods/logs/{pod}/.

``stream=true`` follows the log until the container ends (waiting a little for a
pending pod to start); otherwise the log so far is returned as plain text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, StreamingResponse

from .. import service
from ..dependencies import Ctx
from ..hubauth import CurrentUser
from ..hubclient import HubUser
from ..kube import KubeError
from ..models import ErrorOut

router = APIRouter(
    tags=["logs"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
PENDING_WAIT = 30.0
# the handlers answer text (or JSON errors) themselves; documented as such
TEXT_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "The log", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


async def wait_started(ctx: service.Context, user: HubUser, pod: dict[str, Any]) -> dict:
    """A pending pod has no log to follow yet: wait (bounded) for it to start."""
    deadline = time.monotonic() + PENDING_WAIT
    while (pod.get("status") or {}).get("phase") in (None, "Pending"):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
        pod = await service.get_pod(ctx, user, pod["metadata"]["name"])
    return pod


async def respond(ctx: service.Context, user: HubUser, pod: dict, stream: bool):
    if not stream:
        return PlainTextResponse(await service.read_log(ctx, pod))
    pod = await wait_started(ctx, user, pod)
    meta = pod["metadata"]
    try:
        chunks = await ctx.kube.open_log_stream(
            meta["namespace"],
            meta["name"],
            service.log_container(pod),
            ctx.settings.log_idle_timeout,
        )
    except KubeError as e:
        raise service.log_failure(e) from None

    async def body() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


@router.get("/jobs/logs/{name}/", responses=TEXT_OK)
async def job_logs(name: str, ctx: Ctx, user: CurrentUser, stream: bool = False):
    """``name`` is a job (its newest pod's log) or, as kbatch 0.4 sends, a pod."""
    return await respond(ctx, user, await service.pod_for_logs(ctx, user, name), stream)


@router.get("/pods/logs/{name}/", responses=TEXT_OK)
async def pod_logs(name: str, ctx: Ctx, user: CurrentUser, stream: bool = False):
    return await respond(ctx, user, await service.get_pod(ctx, user, name), stream)
