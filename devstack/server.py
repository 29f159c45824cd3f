"""The common frame of every stand-in: an aiohttp app on loopback.

A stand-in is used three ways: awaited in the caller's event loop (``await s.start()``),
in a background thread with its own loop (``with s.serve_in_thread():``) so that
synchronous clients such as hvac or the official kubernetes client can call it from
the test thread, and as its own process (``python -m devstack run``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from .faults import Faults


class StandIn:
    """Base class: subclasses add their routes in ``add_routes``."""

    name = "stand-in"

    def __init__(self) -> None:
        self.faults = Faults()
        self.url: str | None = None
        self.host: str = "127.0.0.1"
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- for subclasses -------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def middlewares(self) -> list:
        """Extra middlewares, run after fault injection."""
        return []

    async def on_start(self) -> None:
        """Start background tasks (controllers, ...) once the URL is known."""

    async def on_stop(self) -> None:
        """Stop background tasks."""

    # -- lifecycle --------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self.faults.middleware, *self.middlewares()],
            client_max_size=64 * 1024 * 1024,
        )
        self.faults.add_control_routes(app)
        self.add_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.host, self.port = sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        await self.on_start()
        return self.url

    async def stop(self) -> None:
        await self.on_stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- thread mode ------------------------------------------------------
    @contextlib.contextmanager
    def serve_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[StandIn]:
        """Serve from a background thread; ``call`` runs code on that thread's loop."""
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    started.set_result(await self.start(host, port))
                except BaseException as e:  # noqa: BLE001 - reported to the caller
                    started.set_exception(e)

            loop.run_until_complete(boot())
            if started.exception() is None:
                loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, name=f"{self.name}-standin", daemon=True)
        thread.start()
        started.result(timeout=30)
        try:
            yield self
        finally:
            fut = asyncio.run_coroutine_threadsafe(self.stop(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30, **kwargs: Any) -> Any:
        """Run ``fn`` (sync or async) on the stand-in's loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self.name} stand-in is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("call() is for other threads; call the method directly")

        async def runner() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), loop).result(timeout=timeout)


def run_forever(standins: list[tuple[StandIn, int]], host: str = "127.0.0.1") -> None:
    """Run stand-ins in this process until interrupted (used by ``python -m devstack run``)."""

    async def main() -> None:
        for s, port in standins:
            await s.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for s, _ in reversed(standins):
            await s.stop()

    asyncio.run(main())
