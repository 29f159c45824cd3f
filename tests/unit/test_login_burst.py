"""A burst reaches Keycloak and Vault through a bounded queue (valeria_hub.bounded_http):
httpx's connection pool re-examines every waiting request each time a connection frees
up, so 1,000 concurrent token requests cost the hub ~50 s of CPU there and failed on
its pool timeout; at most ``max_concurrent`` go into it, the rest wait in order.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from valeria_hub.auth.oidc import RealmClient
from valeria_hub.bounded_http import BoundedClient
from valeria_hub.vault import VaultIdentity


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
    transport = CountingTransport()
    async with BoundedClient(max_concurrent=3, transport=transport) as client:
        answers = await asyncio.gather(
            *(client.post("http://keycloak.invalid/token") for _ in range(40))
        )
    assert all(a.status_code == 200 for a in answers)
    assert transport.total == 40 and transport.most == 3


async def test_keycloak_and_vault_clients_take_turns(monkeypatch):
    realm = RealmClient("http://keycloak.invalid/realms/r", max_concurrent=7)
    assert isinstance(realm.http, BoundedClient) and realm.http.max_concurrent == 7
    await realm.aclose()
    vault = VaultIdentity(url="http://vault.invalid:8200", max_concurrent=5)
    client = await vault._client()
    assert isinstance(client, BoundedClient) and client.max_concurrent == 5
    await client.aclose()


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="max_concurrent"):
        BoundedClient(max_concurrent=0)


async def test_a_request_that_waits_too_long_for_its_turn_is_a_pool_timeout():
    release = asyncio.Event()

    class Stuck(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200)

    client = BoundedClient(max_concurrent=1, queue_timeout=0.05, transport=Stuck())
    first = asyncio.create_task(client.get("http://keycloak.invalid/a"))
    await asyncio.sleep(0)
    with pytest.raises(httpx.PoolTimeout):
        await client.get("http://keycloak.invalid/b")
    release.set()
    assert (await first).status_code == 200
    await client.aclose()
