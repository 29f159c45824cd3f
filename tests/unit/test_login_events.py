"""The hub telling its services that a login ended: where it posts, what it sends, and
that a service that is down or hangs never holds up a logout."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from types import SimpleNamespace

import httpx

from valeria_hub.auth.login_events import event_url, tell_login_ended


def service(url: str | None, token: str | None = "svc-token", prefix: str = "/services/jobs/"):
    return SimpleNamespace(url=url, api_token=token, prefix=prefix)


def test_the_event_goes_under_the_services_prefix():
    assert (
        event_url(service("http://127.0.0.1:8500"))
        == "http://127.0.0.1:8500/services/jobs/hub-events/login-ended"
    )
    assert event_url(service(None)) is None  # nothing to call
    assert event_url(service("http://127.0.0.1:8500", token=None)) is None


async def serve(handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_each_person_is_told_with_the_services_own_token():
    seen: list[tuple[str, str, dict]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = int(
            next(h for h in head.split("\r\n") if h.lower().startswith("content-length")).split(
                ":"
            )[1]
        )
        body = json.loads(await reader.readexactly(length))
        auth = next(h for h in head.split("\r\n") if h.lower().startswith("authorization"))
        seen.append((head.split()[1], auth.split(":", 1)[1].strip(), body))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await serve(answer)
    async with server, httpx.AsyncClient(timeout=5) as client:
        await tell_login_ended(
            client,
            {"jobs": service(f"http://127.0.0.1:{port}")},
            ["jobs"],
            ["alice", "bob"],
            log=logging.getLogger("test"),
        )
    assert sorted(seen, key=lambda s: s[2]["name"]) == [
        ("/services/jobs/hub-events/login-ended", "token svc-token", {"name": "alice"}),
        ("/services/jobs/hub-events/login-ended", "token svc-token", {"name": "bob"}),
    ]


async def test_a_service_down_or_hanging_is_logged_and_the_logout_goes_on(caplog):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = closed.getsockname()[1]
    closed.close()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server, hanging = await serve(hang)
    services = {
        "down": service(f"http://127.0.0.1:{down}"),
        "hangs": service(f"http://127.0.0.1:{hanging}"),
        "no-url": service(None),
    }
    caplog.set_level(logging.WARNING)
    t0 = time.monotonic()
    async with server, httpx.AsyncClient(timeout=0.5) as client:
        await tell_login_ended(
            client, services, ["down", "hangs", "no-url", "unknown"], ["alice"],
            log=logging.getLogger("test"),
        )  # fmt: skip
    assert time.monotonic() - t0 < 3
    text = caplog.text
    assert "'down'" in text and "'hangs'" in text and "'no-url'" in text and "'unknown'" in text
    assert "svc-token" not in text
