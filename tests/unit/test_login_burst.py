"""A burst reaches Keycloak and Vault through a bounded queue (valeria_hub.bounded_http):
at most ``max_concurrent`` requests go into the connection pool, the rest wait in order
(1,000 concurrent token requests in httpx's pool cost the hub ~50 s of CPU and failed on
its pool timeout). Tried against a real HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from valeria_hub.auth.oidc import RealmClient
from valeria_hub.bounded_http import BoundedSession, NoAnswer
from valeria_hub.vault import VaultIdentity


async def test_keycloak_and_vault_clients_take_turns():
    realm = RealmClient("http://keycloak.invalid/realms/r", max_concurrent=7)
    assert isinstance(realm.http, BoundedSession) and realm.http.max_concurrent == 7
    assert realm.http is realm.http  # one session per loop
    await realm.aclose()
    vault = VaultIdentity(url="http://vault.invalid:8200", max_concurrent=5)
    client = await vault._client()
    assert isinstance(client, BoundedSession) and client.max_concurrent == 5
    assert client.base_url == "http://vault.invalid:8200/v1/"
    await client.aclose()


def test_a_realm_client_used_from_two_loops_has_a_session_in_each():
    """(a session's connections belong to its loop: a command-line tool may run two)"""
    realm = RealmClient("http://keycloak.invalid/realms/r")

    async def session() -> BoundedSession:
        return realm.http

    first, second = asyncio.run(session()), asyncio.run(session())
    assert first is not second


async def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="max_concurrent"):
        BoundedSession("http://vault.invalid/", max_concurrent=0)


class Server:
    """A small HTTP server on loopback that notes what it is asked and how many requests
    it holds at once; ``hold`` keeps every request waiting until it is set."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.seen: list[tuple[str, str, str | None, bytes]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            body = await request.read()
            self.seen.append((request.method, str(request.url), request.headers.get("X-T"), body))
            await self.hold.wait()
            await asyncio.sleep(0.005)
            return web.json_response({"ok": True}, status=201)
        finally:
            self.now -= 1


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Server]:
    server = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.hold.set()
        await runner.cleanup()


async def test_a_session_sends_under_its_base_url_and_answers_whole():
    async with serving() as server:
        session = BoundedSession(server.url + "/v1", headers={"X-T": "every"})
        answer = await session.request("POST", "auth/x/login", json={"role": "r"})
        await session.aclose()
        # without a base URL, whole URLs; a form
        anywhere = BoundedSession()
        token = await anywhere.request("POST", server.url + "/token", data={"a": "b c"})
        await anywhere.aclose()
    assert answer.status_code == 201 and answer.json() == {"ok": True}
    assert token.status_code == 201 and token.text == '{"ok": true}'
    assert server.seen == [
        ("POST", server.url + "/v1/auth/x/login", "every", b'{"role": "r"}'),
        ("POST", server.url + "/token", None, b"a=b+c"),
    ]


async def test_at_most_max_concurrent_requests_reach_the_server_the_rest_wait():
    async with serving() as server:
        session = BoundedSession(server.url, max_concurrent=3)
        answers = await asyncio.gather(*(session.request("GET", f"r{i}") for i in range(30)))
        await session.aclose()
    assert [a.status_code for a in answers] == [201] * 30
    assert len(server.seen) == 30 and server.most == 3


async def test_no_turn_in_time_and_no_answer_in_time_are_timeouts():
    async with serving() as server:
        server.hold.clear()
        session = BoundedSession(server.url, max_concurrent=1, queue_timeout=0.2, timeout=0.5)
        first = asyncio.create_task(session.request("GET", "a"))
        await asyncio.sleep(0.05)
        with pytest.raises(NoAnswer, match="no turn in") as waited:
            await session.request("GET", "b")
        assert waited.value.timed_out
        with pytest.raises(NoAnswer, match="no answer in 0.5s") as slow:
            await first
        assert slow.value.timed_out
        await session.aclose()


async def test_a_refused_connection_is_no_answer_not_a_timeout():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    session = BoundedSession(f"http://127.0.0.1:{port}")
    with pytest.raises(NoAnswer) as refused:
        await session.request("GET", "x", headers={"X-Vault-Token": "secret-token"})
    await session.aclose()
    assert not refused.value.timed_out and "secret-token" not in str(refused.value)


async def test_the_environments_proxy_is_used_and_no_proxy_exempts(monkeypatch):
    async with serving() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "exempt.invalid")
        session = BoundedSession("http://vault.invalid:8200/v1/")
        answer = await session.request("GET", "sys/health")
        await session.aclose()
        assert answer.status_code == 201
        assert [url for _, url, _, _ in proxy.seen] == ["http://vault.invalid:8200/v1/sys/health"]
        exempt = BoundedSession("http://exempt.invalid:8200/v1/", timeout=2)
        with pytest.raises(NoAnswer):  # straight to a name that does not resolve
            await exempt.request("GET", "sys/health")
        await exempt.aclose()
    assert len(proxy.seen) == 1
