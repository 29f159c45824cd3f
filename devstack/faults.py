"""Fault injection shared by every stand-in.

Tests (and the admin endpoint ``/_control/faults``) ask a stand-in to misbehave the
way real services do: answer with a status, answer late, or drop the connection.
A fault matches requests by path prefix and optionally method, and may fire a
bounded number of times.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

CONTROL_PREFIX = "/_control"

_ids = itertools.count(1)


@dataclass
class Fault:
    """One injected misbehaviour."""

    path: str = ""
    method: str | None = None
    status: int | None = None
    body: Any = None
    delay: float = 0.0
    drop: bool = False
    times: int | None = None
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and request.method.upper() != self.method.upper():
            return False
        return request.path.startswith(self.path)


class Faults:
    """The active faults of one stand-in, with an aiohttp middleware that applies them."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def inject(
        self,
        path: str = "",
        *,
        method: str | None = None,
        status: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int | None = None,
    ) -> Fault:
        if status is None and not drop and not delay:
            raise ValueError("a fault needs a status, a delay or drop=True")
        fault = Fault(path, method, status, body, delay, drop, times)
        self._faults.append(fault)
        return fault

    def remove(self, fault: Fault | int) -> None:
        fid = fault if isinstance(fault, int) else fault.id
        self._faults = [f for f in self._faults if f.id != fid]

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[dict]:
        return [asdict(f) for f in self._faults]

    def match(self, request: web.Request) -> Fault | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        for fault in self._faults:
            if fault.matches(request):
                fault.hits += 1
                return fault
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        fault = self.match(request)
        if fault is None:
            return await handler(request)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        if fault.status is not None:
            body = fault.body
            if body is None:
                body = {"errors": [f"injected fault: HTTP {fault.status}"]}
            if isinstance(body, str):
                return web.Response(status=fault.status, text=body)
            return web.json_response(body, status=fault.status)
        return await handler(request)

    def add_control_routes(self, app: web.Application) -> None:
        app.router.add_get(CONTROL_PREFIX + "/faults", self._get)
        app.router.add_post(CONTROL_PREFIX + "/faults", self._post)
        app.router.add_delete(CONTROL_PREFIX + "/faults", self._delete)

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.list()})

    async def _post(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            allowed = {"path", "method", "status", "body", "delay", "drop", "times"}
            unknown = set(spec) - allowed
            if unknown:
                raise ValueError(f"unknown fault fields: {sorted(unknown)}")
            fault = self.inject(**spec)
        except (ValueError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(asdict(fault), status=201)

    async def _delete(self, request: web.Request) -> web.Response:
        fid = request.query.get("id")
        if fid:
            self.remove(int(fid))
        else:
            self.clear()
        return web.json_response({"faults": self.list()})
