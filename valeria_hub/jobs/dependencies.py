"""FastAPI dependencies: what a route receives instead of reaching into the app.

The service's :class:`~valeria_hub.jobs.service.Context` (frozen settings, hub, Kubernetes
and Vault clients) is made once at start-up; routes and the auth dependencies take it as
``ctx: Ctx``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .service import Context


def context_of(request: Request) -> Context:
    """The running service's context (made by the app's lifespan)."""
    return request.app.state.ctx


async def get_context(request: Request) -> Context:
    """:func:`context_of` as a dependency. A coroutine on purpose: FastAPI runs a plain
    function dependency in its thread pool, a hop through a thread per request for an
    attribute read (at 50 concurrent requests they queue for the pool's threads)."""
    return context_of(request)


Ctx = Annotated[Context, Depends(get_context)]
