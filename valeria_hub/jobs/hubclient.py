"""The jobs service's client of the hub's REST API: who owns a token (cached briefly,
failures never), a user's model with auth_state, and the OAuth code exchange.

Every call has a timeout; a hub that does not answer usefully is :class:`HubUnavailable`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx


class HubUnavailable(Exception):
    """The hub did not answer usefully; the service answers 503."""


class CodeRefused(Exception):
    """The hub refused an OAuth code (expired, used, or not ours)."""


@dataclass(frozen=True)
class HubUser:
    """The caller, as the hub describes the token's owner."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    scopes: frozenset[str] = frozenset()
    token: str = field(default="", repr=False)


class TokenCache:
    """A bounded, time-limited cache of successful token look-ups (keyed by hash)."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> dict[str, Any] | None:
        key = self.key(token)
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, token: str, model: dict[str, Any]) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        self._items[self.key(token)] = (time.monotonic() + self.ttl, model)
        self._items.move_to_end(self.key(token))
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class HubAPI:
    """Async client of the hub's REST API (every call with a timeout)."""

    def __init__(
        self,
        api_url: str,
        api_token: str,
        *,
        timeout: float = 10.0,
        cache_ttl: float = 30.0,
        cache_size: int = 1000,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = api_token
        self.cache = TokenCache(cache_ttl, cache_size)
        self._client = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    def is_own_token(self, token: str) -> bool:
        """Whether ``token`` is the service's own hub token (what only the hub, which
        made it, and the service know): the hub's own messages carry it."""
        return bool(self._token) and hmac.compare_digest(token.encode(), self._token.encode())

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, self.api_url + path, **kwargs)
        except httpx.HTTPError as e:
            raise HubUnavailable(f"the hub is unreachable ({type(e).__name__})") from None

    async def user_for_token(self, token: str, *, cached: bool = True) -> dict[str, Any] | None:
        """The hub's model of the token's owner (with ``scopes``); None if refused.

        ``cached=False`` always asks the hub: a browser session's token is deleted by the
        hub at logout, and the page must stop answering at once.
        """
        known = self.cache.get(token) if cached else None
        if known is not None:
            return known
        resp = await self._call("GET", "/user", headers={"Authorization": f"token {token}"})
        if resp.status_code in (401, 403, 404):
            return None
        if resp.status_code != 200:
            raise HubUnavailable(f"the hub answered HTTP {resp.status_code}")
        model = resp.json()
        if cached:
            self.cache.put(token, model)
        return model

    async def fresh_tokens(self, name: str, min_validity: float) -> dict[str, Any] | None:
        """Have the hub refresh the person's Keycloak tokens if they expire within
        ``min_validity`` seconds (KeycloakAuthenticator's fresh-tokens endpoint); the
        current access token and its expiry, or None when only a new login helps."""
        quoted = urllib.parse.quote(name, safe="")
        resp = await self._call(
            "POST",
            f"/valeria/users/{quoted}/fresh-tokens",
            params={"min_validity": str(min_validity)},
            headers={"Authorization": f"token {self._token}"},
        )
        if resp.status_code in (401, 404):  # login over, or a hub that cannot refresh
            return None
        if resp.status_code != 200:
            raise HubUnavailable(f"the hub answered HTTP {resp.status_code} to a token refresh")
        return resp.json()

    async def user_model(self, name: str) -> dict[str, Any]:
        """``GET /users/NAME`` with the service's token: includes ``auth_state``."""
        quoted = urllib.parse.quote(name, safe="")
        resp = await self._call(
            "GET", f"/users/{quoted}", headers={"Authorization": f"token {self._token}"}
        )
        if resp.status_code == 404:
            raise HubUnavailable("the hub does not know this user (or hides it from the service)")
        if resp.status_code != 200:
            raise HubUnavailable(f"the hub answered HTTP {resp.status_code} for the user")
        return resp.json()

    async def exchange_code(self, code: str, client_id: str, redirect_uri: str) -> str:
        """OAuth: the code from the hub's authorize step -> the user's token."""
        resp = await self._call(
            "POST",
            "/oauth2/token",
            data={
                "client_id": client_id,
                "client_secret": self._token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        if resp.status_code in (400, 401, 403):
            raise CodeRefused("the hub refused the login code; start again")
        if resp.status_code != 200:
            raise HubUnavailable(f"the hub's token endpoint answered HTTP {resp.status_code}")
        token = (resp.json() or {}).get("access_token")
        if not token:
            raise HubUnavailable("the hub's token endpoint gave no token")
        return token


# -- FastAPI side ---------------------------------------------------------------------------
