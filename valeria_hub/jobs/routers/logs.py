"""Logs: /jobs/logs/{job-or-pod}/ (kbatch 0.4 and 0.5) and /pods/logs/{pod}/.

``stream=true`` follows the log until the container ends (waiting a little for a
pending pod to start); otherwise the log so far is returned as plain text.

A followed log holds a connection to Kubernetes for as long as it runs, so follows are
bounded: at most ``max_log_streams_per_user`` per person and ``max_log_streams`` in all
(one more gets 429 with Retry-After), each for at most ``log_stream_max_seconds`` (then
it ends with a last line saying so), on a connection pool of their own (see
:class:`~valeria_hub.jobs.kube.Kube`). A follow's slot is taken before any Kubernetes
call and given back when the request ends, however it ends: the stream ran out, the
client went away, the time limit, an error, a cancelled task.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from .. import service
from ..dependencies import Ctx
from ..hubauth import CurrentUser
from ..hubclient import HubUser
from ..kube import KubeError, LogStream
from ..models import ErrorOut

router = APIRouter(
    tags=["logs"],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)
PENDING_WAIT = 30.0
# seconds a refused follow is told to wait: slots free as soon as any stream ends
RETRY_AFTER = 10
# the handlers answer text (or JSON errors) themselves; documented as such
TEXT_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "The log", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


# -- admission ------------------------------------------------------------------------------
class StreamsFull(Exception):
    """A follow over a cap; the message names the cap."""


class Slot:
    """One admitted follow; :meth:`release` gives it back, once, however often called."""

    __slots__ = ("_slots", "user", "released")

    def __init__(self, slots: StreamSlots, user: str) -> None:
        self._slots = slots
        self.user = user
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._slots._give_back(self.user)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StreamSlots:
    """Counts of followed logs per person and in all, against the two caps.

    The service runs on one event loop and :meth:`acquire` checks and counts with no
    ``await`` in between, so concurrent requests can never overshoot a cap.
    """

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._by_user: Counter[str] = Counter()
        self._open = 0

    def open(self, user: str | None = None) -> int:
        """Follows open now (``user``'s, or everybody's)."""
        return self._open if user is None else self._by_user[user]

    def acquire(self, user: str) -> Slot:
        """A slot for ``user``, or StreamsFull naming the cap that is reached."""
        if self._by_user[user] >= self.per_user:
            raise StreamsFull(
                f"you already follow {self._by_user[user]} logs, the most one person may "
                f"follow at once (max_log_streams_per_user = {self.per_user}); stop one "
                "or try again later"
            )
        if self._open >= self.total:
            raise StreamsFull(
                f"the service already follows {self._open} logs, the most it follows at "
                f"once (max_log_streams = {self.total}); try again shortly"
            )
        self._by_user[user] += 1
        self._open += 1
        return Slot(self, user)

    def _give_back(self, user: str) -> None:
        self._open -= 1
        self._by_user[user] -= 1
        if not self._by_user[user]:
            del self._by_user[user]


def stream_slots(request: Request, ctx: Ctx) -> StreamSlots:
    """The running app's counts, made on first use from its settings."""
    slots = getattr(request.app.state, "log_stream_slots", None)
    if slots is None:
        settings = ctx.settings
        slots = StreamSlots(settings.max_log_streams_per_user, settings.max_log_streams)
        request.app.state.log_stream_slots = slots
    return slots


class Follow:
    """An admitted follow: its slot and, once opened, the upstream log stream."""

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.log: LogStream | None = None

    def close(self) -> None:
        """End the upstream stream and give the slot back (idempotent)."""
        if self.log is not None:
            self.log.close()
        self.slot.release()


async def follow_slot(
    request: Request, ctx: Ctx, user: CurrentUser, stream: bool = False
) -> AsyncIterator[Follow | None]:
    """For ``stream=true``: a slot, or 429 before any Kubernetes call.

    Request-scoped: the code after ``yield`` runs when the response is over (sent, cut
    short by the client, failed or cancelled), so no way out of a request keeps a slot.
    """
    if not stream:
        yield None
        return
    try:
        slot = stream_slots(request, ctx).acquire(user.name)
    except StreamsFull as e:
        raise HTTPException(429, str(e), headers={"Retry-After": str(RETRY_AFTER)}) from None
    follow = Follow(slot)
    try:
        yield follow
    finally:
        follow.close()


FollowSlot = Annotated[Follow | None, Depends(follow_slot, scope="request")]


# -- the stream -----------------------------------------------------------------------------
class FollowedLog(StreamingResponse):
    """A followed log's response, which notices a client that goes away at once.

    Starlette listens for ``http.disconnect`` only for ASGI < 2.4 servers and otherwise
    waits for a send to fail, which a silent log may not attempt for a long time; this
    response always listens, and the follow ends (slot and upstream stream) as soon as
    the client is gone.
    """

    def __init__(self, follow: Follow, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, media_type="text/plain; charset=utf-8")
        self.follow = follow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # an ASGI 2.4 server's word for "the client is gone"
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            self.follow.close()


def ended_line(max_seconds: float, last: bytes) -> bytes:
    """The last line of a stream cut at its time limit (on a line of its own)."""
    lead = b"" if not last or last.endswith(b"\n") else b"\n"
    return lead + f"[log stream ended after {max_seconds:g} s; follow again to continue]\n".encode()


async def bounded(log: AsyncIterator[bytes], max_seconds: float) -> AsyncIterator[bytes]:
    """The log's chunks for at most ``max_seconds``, then the line saying it was cut.

    The clock bounds each read, never a ``yield``: a timeout that fired while the
    response is sending would cancel the request's task, not this read.
    """
    deadline = time.monotonic() + max_seconds
    last = b""
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                chunk = await anext(log, b"")
        except TimeoutError:
            yield ended_line(max_seconds, last)
            return
        if not chunk:
            return
        last = chunk
        yield chunk


# -- routes ---------------------------------------------------------------------------------
async def wait_started(ctx: service.Context, user: HubUser, pod: dict[str, Any]) -> dict:
    """A pending pod has no log to follow yet: wait (bounded) for it to start."""
    deadline = time.monotonic() + PENDING_WAIT
    while (pod.get("status") or {}).get("phase") in (None, "Pending"):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
        pod = await service.get_pod(ctx, user, pod["metadata"]["name"])
    return pod


async def respond(ctx: service.Context, user: HubUser, pod: dict, follow: Follow | None):
    if follow is None:
        return PlainTextResponse(await service.read_log(ctx, pod))
    pod = await wait_started(ctx, user, pod)
    meta = pod["metadata"]
    try:
        follow.log = await ctx.kube.open_log_stream(
            meta["namespace"],
            meta["name"],
            service.log_container(pod),
            ctx.settings.log_idle_timeout,
        )
    except KubeError as e:
        raise service.log_failure(e) from None
    return FollowedLog(follow, bounded(follow.log, ctx.settings.log_stream_max_seconds))


@router.get("/jobs/logs/{name}/", responses=TEXT_OK)
async def job_logs(name: str, ctx: Ctx, user: CurrentUser, follow: FollowSlot):
    """``name`` is a job (its newest pod's log) or, as kbatch 0.4 sends, a pod."""
    return await respond(ctx, user, await service.pod_for_logs(ctx, user, name), follow)


@router.get("/pods/logs/{name}/", responses=TEXT_OK)
async def pod_logs(name: str, ctx: Ctx, user: CurrentUser, follow: FollowSlot):
    return await respond(ctx, user, await service.get_pod(ctx, user, name), follow)
