"""An httpx client that lets at most so many requests into its connection pool at once.

A burst (1,000 logins at 9:00, 100 spawns looking people up in Vault) must not reach
httpx's pool all at once: the pool re-examines every waiting request against every
connection each time one frees up, which cost ~50 s of the hub's CPU for 1,000
concurrent Keycloak token requests (and their pool timeouts failed the logins), and
stalled the hub's loop for up to 1.1 s with 100 concurrent Vault lookups. With at most
``max_concurrent`` in the pool the rest wait their turn here, in order, for up to
``queue_timeout`` seconds, and cost nothing while they wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class BoundedClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` with ``max_concurrent`` connections and as many requests in
    flight; more wait for a turn (``httpx.PoolTimeout`` after ``queue_timeout``).

    For requests whose body is read in :meth:`send` (not ``stream=True``): the turn ends
    when ``send`` returns."""

    def __init__(
        self,
        *,
        max_concurrent: int = 20,
        queue_timeout: float = 30.0,
        keepalive_expiry: float | None = 5.0,
        **kwargs: Any,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        super().__init__(
            limits=httpx.Limits(
                max_connections=max_concurrent,
                max_keepalive_connections=max_concurrent,
                keepalive_expiry=keepalive_expiry,
            ),
            **kwargs,
        )
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self._turns = asyncio.Semaphore(max_concurrent)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"no turn in {self.queue_timeout:.0f}s") from None
        try:
            return await super().send(request, **kwargs)
        finally:
            self._turns.release()
