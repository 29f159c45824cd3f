"""Talking OpenID Connect to the Keycloak realm: discovery, JWKS, token validation,
the token endpoint, and the bookkeeping that makes refreshes safe.

Keycloak rotates refresh tokens and, with "Revoke Refresh Token" on, ends the session
when one is used twice; :class:`KeyedLocks` lets the authenticator run one refresh per
user at a time. Errors are sorted into the three outcomes the hub must tell apart:
Keycloak said no (:class:`TokenRejected`), Keycloak could not be asked
(:class:`KeycloakUnavailable`), and a token that is not genuine (:class:`TokenInvalid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class KeycloakUnavailable(Exception):
    """Keycloak could not be reached, timed out, or answered 5xx."""


class TokenRejected(Exception):
    """The token endpoint refused the request (4xx with an OAuth error)."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


class TokenInvalid(Exception):
    """A token whose signature, issuer, audience or lifetime does not check out."""


# -- pure helpers ----------------------------------------------------------------------


def realm_discovery_url(realm_url: str) -> str:
    """``<realm>/.well-known/openid-configuration`` (the legacy /auth prefix included)."""
    return realm_url.rstrip("/") + "/.well-known/openid-configuration"


def check_logout_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float, max_age: float
) -> None:
    """Back-channel logout token rules (OIDC Back-Channel Logout 1.0, section 2.6)."""
    if claims.get("iss") != issuer:
        raise TokenInvalid("wrong issuer")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if client_id not in auds:
        raise TokenInvalid("wrong audience")
    iat = claims.get("iat")
    if not isinstance(iat, int | float):
        raise TokenInvalid("missing iat")
    if iat > now + 30 or now - iat > max_age:
        raise TokenInvalid("token is not recent")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < now - 30:
        raise TokenInvalid("token expired")
    events = claims.get("events")
    if not isinstance(events, Mapping) or not isinstance(events.get(BACKCHANNEL_EVENT), Mapping):
        raise TokenInvalid("not a back-channel logout token")
    if not claims.get("sid") and not claims.get("sub"):
        raise TokenInvalid("neither sid nor sub")
    if "nonce" in claims:
        raise TokenInvalid("a logout token must not contain a nonce")
    if not claims.get("jti"):
        raise TokenInvalid("missing jti")


# -- per-user refresh serialisation --------------------------------------------------


class KeyedLocks:
    """One asyncio lock per key, dropped again when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ReplayCache:
    """Remembers ``jti`` values until they expire, to refuse a replayed logout token."""

    def __init__(self, ttl: float = 600.0) -> None:
        self.ttl = ttl
        self._seen: dict[str, float] = {}

    def check_and_add(self, jti: str, now: float) -> bool:
        """False when ``jti`` was seen before (a replay)."""
        self._seen = {k: t for k, t in self._seen.items() if t > now}
        if jti in self._seen:
            return False
        self._seen[jti] = now + self.ttl
        return True


# -- the realm ------------------------------------------------------------------------


@dataclass(frozen=True)
class RealmMetadata:
    """The endpoints from the realm's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RealmMetadata:
        required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [k for k in required if not doc.get(k)]
        if missing:
            raise KeycloakUnavailable(f"discovery document lacks {', '.join(missing)}")
        return cls(
            issuer=str(doc["issuer"]),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            userinfo_endpoint=str(doc.get("userinfo_endpoint") or ""),
            jwks_uri=str(doc["jwks_uri"]),
            end_session_endpoint=doc.get("end_session_endpoint"),
        )


class RealmClient:
    """Discovery and JWKS (both cached), token validation and token-endpoint calls."""

    def __init__(
        self,
        realm_url: str,
        *,
        timeout: float = 10.0,
        verify: bool = True,
        leeway: float = 30.0,
        jwks_min_interval: float = 30.0,
    ) -> None:
        self.realm_url = realm_url.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self.leeway = leeway
        # an unknown key id makes us fetch the keys again (Keycloak rotated them), but at
        # most this often: anyone can send a token with a made-up kid
        self.jwks_min_interval = jwks_min_interval
        self._keys_fetched_at = float("-inf")
        self._http: httpx.AsyncClient | None = None
        self._meta: RealmMetadata | None = None
        self._meta_lock = asyncio.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_version = 0
        self._keys_lock = asyncio.Lock()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None or self._http.is_closed:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), verify=self.verify, follow_redirects=False
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def metadata_cached(self) -> RealmMetadata | None:
        return self._meta

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            resp = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise KeycloakUnavailable(f"{what}: {type(e).__name__}") from None
        if resp.status_code != 200:
            raise KeycloakUnavailable(f"{what}: HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise KeycloakUnavailable(f"{what}: not JSON") from None

    async def metadata(self) -> RealmMetadata:
        """The discovery document, fetched once and cached (a failure is not cached)."""
        if self._meta is not None:
            return self._meta
        async with self._meta_lock:
            if self._meta is None:
                doc = await self._get_json(realm_discovery_url(self.realm_url), "discovery")
                if not isinstance(doc, Mapping):
                    raise KeycloakUnavailable("discovery: not a JSON object")
                self._meta = RealmMetadata.from_document(doc)
        return self._meta

    # -- keys -------------------------------------------------------------------------
    async def _fetch_keys(self) -> None:
        meta = await self.metadata()
        doc = await self._get_json(meta.jwks_uri, "JWKS")
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in doc.get("keys", []) if isinstance(doc, Mapping) else []:
            if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or not jwk.get("kid"):
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256")
            except jwt.PyJWTError:
                continue
        self._keys = keys
        self._keys_version += 1
        self._keys_fetched_at = time.monotonic()

    async def signing_key(self, kid: str | None) -> jwt.PyJWK:
        """The key for ``kid``; an unknown kid refetches the JWKS (key rotation), at most
        once per ``jwks_min_interval``."""
        if not kid:
            raise TokenInvalid("token has no kid")
        if kid in self._keys:
            return self._keys[kid]
        seen = self._keys_version
        async with self._keys_lock:
            recent = time.monotonic() - self._keys_fetched_at < self.jwks_min_interval
            if self._keys_version == seen and not recent:  # nobody refetched meanwhile
                await self._fetch_keys()
        if kid not in self._keys:
            raise TokenInvalid("unknown signing key")
        return self._keys[kid]

    async def decode(
        self,
        token: str,
        *,
        audience: str | None = None,
        verify_exp: bool = True,
        required: tuple[str, ...] = ("exp", "iat", "iss", "sub"),
    ) -> dict[str, Any]:
        """Verify an RS256 token from this realm (signature, issuer, expiry, audience)."""
        meta = await self.metadata()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("malformed token") from None
        if header.get("alg") != "RS256":
            raise TokenInvalid("token is not signed with RS256")
        key = await self.signing_key(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=meta.issuer,
                audience=audience,
                leeway=self.leeway,
                options={
                    "verify_aud": audience is not None,
                    "verify_exp": verify_exp,
                    "verify_iat": False,  # Keycloak's clock may run ahead; exp is what counts
                    "require": list(required),
                },
            )
        except jwt.PyJWTError as e:
            raise TokenInvalid(type(e).__name__) from None

    async def validate_tokens(self, token_info: Mapping[str, Any], client_id: str) -> dict:
        """Claims of the access token, after checking it and the ID token.

        Keycloak access tokens name the services they are for in ``aud`` (``account``,
        ``vault-valeria``) and this client in ``azp``; ID tokens carry the client in
        ``aud``.
        """
        access = token_info.get("access_token")
        if not isinstance(access, str):
            raise TokenInvalid("no access token")
        claims = await self.decode(access)
        if claims.get("azp") != client_id:
            raise TokenInvalid("access token was issued to another client")
        if claims.get("typ", "Bearer").lower() != "bearer":
            raise TokenInvalid("not an access token")
        id_token = token_info.get("id_token")
        if id_token:
            id_claims = await self.decode(str(id_token), audience=client_id)
            if id_claims.get("sub") != claims.get("sub"):
                raise TokenInvalid("ID token and access token name different users")
            if id_claims.get("azp", client_id) != client_id:
                raise TokenInvalid("ID token was issued to another client")
        return claims

    async def decode_logout_token(
        self, token: str, *, client_id: str, max_age: float, now: float | None = None
    ) -> dict[str, Any]:
        """A verified back-channel logout token's claims."""
        claims = await self.decode(
            token, audience=client_id, verify_exp=False, required=("iat", "iss", "aud")
        )
        meta = await self.metadata()
        check_logout_claims(
            claims,
            issuer=meta.issuer,
            client_id=client_id,
            now=time.time() if now is None else now,
            max_age=max_age,
        )
        return claims

    # -- token endpoint --------------------------------------------------------------
    async def token_request(
        self, params: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """POST to the token endpoint; sort the failures (no secrets in messages)."""
        meta = await self.metadata()
        form = {k: str(v) for k, v in params.items() if v is not None}
        try:
            resp = await self.http.post(meta.token_endpoint, data=form, headers=dict(headers))
        except httpx.HTTPError as e:
            raise KeycloakUnavailable(f"token endpoint: {type(e).__name__}") from None
        if resp.status_code >= 500:
            raise KeycloakUnavailable(f"token endpoint: HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200:
            if not isinstance(body, Mapping):
                raise KeycloakUnavailable(f"token endpoint: HTTP {resp.status_code}, not JSON")
            raise TokenRejected(
                resp.status_code,
                str(body.get("error", "unknown")),
                str(body.get("error_description", "")),
            )
        if not isinstance(body, Mapping) or not body.get("access_token"):
            raise KeycloakUnavailable("token endpoint: answer without an access token")
        return dict(body)
