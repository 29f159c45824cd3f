"""A login burst reaches Keycloak through a bounded queue (valeria_hub.auth.oidc):
httpx's connection pool re-examines every waiting request each time a connection frees
up, so 1,000 concurrent token requests cost the hub ~50 s of CPU there and failed on
its pool timeout; RealmClient lets at most ``max_concurrent`` into it, the rest wait
in order.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from valeria_hub.auth.oidc import RealmClient


class CountingTransport(httpx.AsyncBaseTransport):
    """Answers every request after a short pause; notes the most at a time."""

    def __init__(self) -> None:
        self.now = self.most = self.total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most, self.total = max(self.most, self.now), self.total + 1
        try:
            await asyncio.sleep(0.01)
            return httpx.Response(200, json={"ok": True})
        finally:
            self.now -= 1


async def test_at_most_max_concurrent_requests_reach_the_pool():
    client = RealmClient("http://keycloak.invalid/realms/r", max_concurrent=3)
    transport = CountingTransport()
    client._http = httpx.AsyncClient(transport=transport)
    answers = await asyncio.gather(
        *(client._send("POST", "http://keycloak.invalid/token") for _ in range(40))
    )
    assert all(a.status_code == 200 for a in answers)
    assert transport.total == 40 and transport.most == 3
    await client.aclose()


async def test_a_request_that_waits_too_long_for_its_turn_is_a_pool_timeout():
    client = RealmClient("http://keycloak.invalid/realms/r", max_concurrent=1, queue_timeout=0.05)
    release = asyncio.Event()

    class Stuck(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200)

    client._http = httpx.AsyncClient(transport=Stuck())
    first = asyncio.create_task(client._send("GET", "http://keycloak.invalid/a"))
    await asyncio.sleep(0)
    with pytest.raises(httpx.PoolTimeout):
        await client._send("GET", "http://keycloak.invalid/b")
    release.set()
    assert (await first).status_code == 200
    await client.aclose()
