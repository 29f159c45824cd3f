"""Keycloak's admin API, read-only, for onboarding: a username's user id (the ``sub``).

A confidential client with a service account holding realm-management ``view-users``
gets a token with the client-credentials grant; users are then looked up by exact
username. Synchronous httpx, a timeout on every call; the client secret and the token
never appear in errors.
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class KeycloakLookupError(Exception):
    """The lookup failed; ``status`` 0 means Keycloak was unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def admin_url(realm_url: str) -> str:
    """``https://sso/realms/R`` -> ``https://sso/admin/realms/R`` (also under ``/auth``)."""
    base, sep, realm = realm_url.rstrip("/").rpartition("/realms/")
    if not sep or not realm or "/" in realm:
        raise ValueError(f"not a Keycloak realm URL: {realm_url!r}")
    return f"{base}/admin/realms/{realm}"


class KeycloakUsers:
    """User lookups through the admin API with a service account's token."""

    def __init__(
        self,
        realm_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
    ) -> None:
        self.realm_url = realm_url.rstrip("/")
        self.admin = admin_url(self.realm_url)
        self.client_id = client_id
        self._secret = client_secret
        self.http = httpx.Client(timeout=timeout, verify=verify)
        self._token = ""
        self._expires = 0.0

    def __enter__(self) -> KeycloakUsers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise KeycloakLookupError(0, f"Keycloak did not answer in time ({what})") from None
        except httpx.HTTPError as e:
            raise KeycloakLookupError(0, f"Keycloak is unreachable ({type(e).__name__})") from None

    def _bearer(self) -> dict[str, str]:
        if not self._token or time.monotonic() > self._expires - 10:
            resp = self._request(
                "POST",
                f"{self.realm_url}/protocol/openid-connect/token",
                "client-credentials token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self._secret),
            )
            if resp.status_code != 200:
                try:
                    error = resp.json().get("error", "")
                except ValueError:
                    error = ""
                raise KeycloakLookupError(
                    resp.status_code,
                    f"Keycloak refused the onboarding client {self.client_id!r} "
                    f"(HTTP {resp.status_code} {error})".rstrip(),
                )
            body = resp.json()
            self._token = body["access_token"]
            self._expires = time.monotonic() + float(body.get("expires_in", 60))
        return {"Authorization": f"Bearer {self._token}"}

    def _admin_get(self, path: str, what: str, **params: str) -> httpx.Response:
        resp = self._request(
            "GET", f"{self.admin}/{path}", what, headers=self._bearer(), params=params
        )
        if resp.status_code in (401, 403):
            raise KeycloakLookupError(
                resp.status_code,
                f"Keycloak denied {what} (HTTP {resp.status_code}); the onboarding client's "
                "service account needs realm-management view-users",
            )
        return resp

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        what = f"looking up user {username!r}"
        resp = self._admin_get("users", what, username=username, exact="true")
        if resp.status_code != 200:
            raise KeycloakLookupError(resp.status_code, f"{what}: HTTP {resp.status_code}")
        matches = [u for u in resp.json() if str(u.get("username", "")).lower() == username.lower()]
        return matches[0] if len(matches) == 1 else None

    def user_by_id(self, user_id: str) -> dict[str, Any] | None:
        what = f"looking up user id {user_id!r}"
        resp = self._admin_get(f"users/{user_id}", what)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise KeycloakLookupError(resp.status_code, f"{what}: HTTP {resp.status_code}")
        return resp.json()
