"""HTTP clients that let at most so many requests into their connection pool at once.

A burst (1,000 logins at 9:00, 100 spawns looking people up in Vault) must not reach
httpx's pool all at once: the pool re-examines every waiting request against every
connection each time one frees up, which cost ~50 s of the hub's CPU for 1,000
concurrent Keycloak token requests (and their pool timeouts failed the logins), and
stalled the hub's loop for up to 1.1 s with 100 concurrent Vault lookups. With at most
``max_concurrent`` in the pool the rest wait their turn here, in order, for up to
``queue_timeout`` seconds, and cost nothing while they wait.

:class:`BoundedClient` is an httpx client (Keycloak's); :class:`BoundedSession` an
aiohttp one (Vault's), for calls made at every spawn: an httpx request costs the calling
loop about 2 ms of CPU, an aiohttp one about 0.25 ms (measured here on the same server,
8 at a time), and a spawn makes four of them to Vault.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL


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


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole."""

    status_code: int
    content: bytes

    def json(self) -> Any:
        """The body as JSON (ValueError if it is not)."""
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class NoAnswer(Exception):
    """No answer came: no turn in time, no answer in time (``timed_out``), or the
    connection failed. The message names what happened, never a request's content."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def env_proxy(url: str) -> tuple[str | None, dict[str, str]]:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``
    unless ``NO_PROXY`` exempts it) and its Proxy-Authorization header, read once:
    aiohttp's ``trust_env`` would read them, and ``~/.netrc``, in an executor at every
    request."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, {}
    return str(proxy), ({"Proxy-Authorization": auth.encode()} if auth is not None else {})


class BoundedSession:
    """An aiohttp session under ``base_url`` with ``max_concurrent`` connections and as
    many requests in flight; more wait for a turn (:class:`NoAnswer` after
    ``queue_timeout``). Each request has ``timeout`` seconds, its body included; no
    redirect is followed. Made, used and closed on one event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        max_concurrent: int = 20,
        queue_timeout: float = 30.0,
        timeout: float = 10.0,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.base_url = base_url.rstrip("/") + "/"
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self.timeout = timeout
        self._proxy, self._proxy_headers = env_proxy(self.base_url)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_concurrent,
                keepalive_timeout=keepalive_expiry,
                ssl=ssl_context if ssl_context is not None else True,
            ),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers=dict(headers or {}),
            trust_env=False,
        )
        self._turns = asyncio.Semaphore(max_concurrent)

    @property
    def is_closed(self) -> bool:
        return self._session.closed

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Answer:
        """``method`` on ``base_url`` + ``path``; the whole answer."""
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise NoAnswer(f"no turn in {self.queue_timeout:.0f}s", timed_out=True) from None
        try:
            async with self._session.request(
                method,
                self.base_url + path.lstrip("/"),
                headers=headers,
                json=json,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers or None,
            ) as resp:
                return Answer(resp.status, await resp.read())
        except TimeoutError:
            raise NoAnswer(f"no answer in {self.timeout:g}s", timed_out=True) from None
        except aiohttp.ClientError as e:
            raise NoAnswer(type(e).__name__, timed_out=False) from None
        finally:
            self._turns.release()

    async def aclose(self) -> None:
        await self._session.close()
