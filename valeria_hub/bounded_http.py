"""An HTTP client that lets at most so many requests into its connection pool at once.

A burst (1,000 logins at 9:00, 100 spawns looking people up in Vault) must not reach a
connection pool all at once: httpx's, which we used before, re-examined every waiting
request against every connection each time one freed up, which cost ~50 s of the hub's
CPU for 1,000 concurrent Keycloak token requests (and their pool timeouts failed the
logins), and stalled the hub's loop for up to 1.1 s with 100 concurrent Vault lookups;
and a connection per request in flight is a burst of connections to Keycloak or Vault.
With at most ``max_concurrent`` in the pool the rest wait their turn here, in order, for
up to ``queue_timeout`` seconds, and cost nothing while they wait.

:class:`BoundedSession` serves Keycloak (logins, token refreshes) and Vault (four
requests per spawn). It is an aiohttp session: an httpx request cost the calling loop
about 2 ms of CPU, an aiohttp one about 0.25 ms (measured here on one loopback server, 8
at a time).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL


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
    """An aiohttp session with ``max_concurrent`` connections and as many requests in
    flight; more wait for a turn (:class:`NoAnswer` after ``queue_timeout``). Each
    request has ``timeout`` seconds, its body included; no redirect is followed. Paths
    are under ``base_url``, or whole URLs without one. Made, used and closed on one
    event loop.

    ``verify``: a TLS context to trust, True for the system's CAs, False for none."""

    def __init__(
        self,
        base_url: str = "",
        *,
        max_concurrent: int = 20,
        queue_timeout: float = 30.0,
        timeout: float = 10.0,
        keepalive_expiry: float = 5.0,
        verify: ssl.SSLContext | bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.base_url = base_url.rstrip("/") + "/" if base_url else ""
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self.timeout = timeout
        self._proxies: dict[str, tuple[str | None, dict[str, str]]] = {}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_concurrent, keepalive_timeout=keepalive_expiry, ssl=verify
            ),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers=dict(headers or {}),
            trust_env=False,
        )
        self._turns = asyncio.Semaphore(max_concurrent)

    @property
    def is_closed(self) -> bool:
        return self._session.closed

    def _proxy(self, url: str) -> tuple[str | None, dict[str, str]]:
        """:func:`env_proxy` for ``url``'s origin, read once per origin."""
        origin = str(URL(url).origin())
        if origin not in self._proxies:
            self._proxies[origin] = env_proxy(origin)
        return self._proxies[origin]

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
    ) -> Answer:
        """``method`` on ``base_url`` + ``path`` (``data``: a form); the whole answer."""
        url = self.base_url + path.lstrip("/") if self.base_url else path
        proxy, proxy_headers = self._proxy(url)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise NoAnswer(f"no turn in {self.queue_timeout:.0f}s", timed_out=True) from None
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                json=json,
                data=data,
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers or None,
            ) as resp:
                return Answer(resp.status, await resp.read())
        except TimeoutError:
            raise NoAnswer(f"no answer in {self.timeout:g}s", timed_out=True) from None
        except (aiohttp.ClientError, ValueError) as e:  # ValueError: a malformed URL
            raise NoAnswer(type(e).__name__, timed_out=False) from None
        finally:
            self._turns.release()

    async def aclose(self) -> None:
        await self._session.close()
