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
import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from ..bounded_http import Answer, BoundedSession, NoAnswer

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class KeycloakUnavailable(Exception):
    """Keycloak could not be reached, timed out, or answered 5xx."""


class TokenRejected(Exception):
    """The token endpoint refused the request (a 4xx answer in JSON).

    ``error``/``description`` are the OAuth error fields; when the answer has no
    ``error`` (not OAuth-shaped: a proxy or gateway answered) ``body`` keeps a short,
    token-free excerpt of it so that the log says what came back.
    """

    def __init__(self, status: int, error: str, description: str = "", body: str = "") -> None:
        self.status = status
        self.error = error
        self.description = description
        self.body = body
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        """One line for the log: the status and the OAuth error, or the body excerpt."""
        if self.error:
            text = f"HTTP {self.status} {self.error}"
            return f"{text}: {self.description}" if self.description else text
        return f"HTTP {self.status} without an OAuth error, body: {self.body or '(empty)'}"


class TokenInvalid(Exception):
    """A token whose signature, issuer, audience or lifetime does not check out."""


# -- pure helpers ----------------------------------------------------------------------

# Anything that may be a token in an answer we log: a JWT, or a long opaque run.
_JWT = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=.~]{40,}")
_SECRET_KEY = re.compile(r"token|secret|code|password|assertion", re.I)


def body_excerpt(text: str, limit: int = 200) -> str:
    """A loggable excerpt of an HTTP answer: at most ``limit`` characters, one line,
    with JSON fields named like secrets and anything token-shaped replaced."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        doc = {k: "[removed]" if _SECRET_KEY.search(str(k)) else v for k, v in doc.items()}
        text = json.dumps(doc, ensure_ascii=False)
    text = _OPAQUE.sub("[removed]", _JWT.sub("[removed]", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def at_hash(access_token: str) -> str:
    """The ID token's ``at_hash`` of an access token (OIDC Core 3.1.3.6, RS256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


# Claims about a token itself, not about the person: never copied between tokens.
TOKEN_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "jti", "typ", "azp", "at_hash", "c_hash", "nonce",
     "auth_time", "acr", "amr", "sid", "session_state", "scope"}
)  # fmt: skip


def merge_identity(access: Mapping[str, Any], id_claims: Mapping[str, Any]) -> dict[str, Any]:
    """The person's claims: the access token's, completed from the ID token.

    Keycloak's lightweight access tokens ("Always use lightweight access token") carry
    no ``sub``, username, email, groups or roles; the ID token of the same answer still
    carries what its mappers add. The access token wins where both have a claim.
    """
    merged = dict(access)
    for key, value in id_claims.items():
        if key not in merged and key not in TOKEN_CLAIMS:
            merged[key] = value
    return merged


def realm_discovery_url(realm_url: str) -> str:
    """``<realm>/.well-known/openid-configuration`` (the legacy /auth prefix included)."""
    return realm_url.rstrip("/") + "/.well-known/openid-configuration"


def check_logout_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float, max_age: float
) -> None:
    """Back-channel logout token rules (OIDC Back-Channel Logout 1.0, section 2.6)."""
    if claims.get("iss") != issuer:
        raise TokenInvalid("logout token has the wrong issuer (iss)")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if client_id not in auds:
        raise TokenInvalid(f"logout token is not for client {client_id} (aud)")
    iat = claims.get("iat")
    if not isinstance(iat, int | float):
        raise TokenInvalid("logout token has no iat claim")
    if iat > now + 30 or now - iat > max_age:
        raise TokenInvalid("logout token is not recent (iat)")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < now - 30:
        raise TokenInvalid("logout token has expired (exp)")
    events = claims.get("events")
    if not isinstance(events, Mapping) or not isinstance(events.get(BACKCHANNEL_EVENT), Mapping):
        raise TokenInvalid("logout token has no back-channel logout event (events)")
    if not claims.get("sid") and not claims.get("sub"):
        raise TokenInvalid("logout token has neither a sid nor a sub claim")
    if "nonce" in claims:
        raise TokenInvalid("logout token contains a nonce, which logout tokens must not")
    if not claims.get("jti"):
        raise TokenInvalid("logout token has no jti claim")


def _failed_check(e: jwt.PyJWTError, audience: str | None) -> str:
    """What PyJWT's refusal means, as the end of "<which token> ..."."""
    if isinstance(e, jwt.MissingRequiredClaimError):
        return f"has no {e.claim} claim"
    if isinstance(e, jwt.ExpiredSignatureError):
        return "has expired (exp)"
    if isinstance(e, jwt.ImmatureSignatureError):
        return "is not valid yet (nbf)"
    if isinstance(e, jwt.InvalidIssuerError):
        return "has the wrong issuer (iss)"
    if isinstance(e, jwt.InvalidAudienceError):
        return f"is not for client {audience} (aud)"
    if isinstance(e, jwt.InvalidSignatureError):
        return "has a signature that does not verify"
    if isinstance(e, jwt.DecodeError):
        return "is not a well-formed JWT"
    return f"was refused ({type(e).__name__})"


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
        max_concurrent: int = 20,
        queue_timeout: float = 30.0,
    ) -> None:
        self.realm_url = realm_url.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        # a login burst (1,000 people at 9:00) takes turns: see valeria_hub.bounded_http
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self.leeway = leeway
        # an unknown key id makes us fetch the keys again (Keycloak rotated them), but at
        # most this often: anyone can send a token with a made-up kid
        self.jwks_min_interval = jwks_min_interval
        self._keys_fetched_at = float("-inf")
        self._http: BoundedSession | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._meta: RealmMetadata | None = None
        self._meta_lock = asyncio.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_version = 0
        self._keys_lock = asyncio.Lock()

    @property
    def http(self) -> BoundedSession:
        """The session of the running loop (its connections belong to that loop)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.is_closed or self._http_loop is not loop:
            self._http = BoundedSession(
                max_concurrent=self.max_concurrent,
                queue_timeout=self.queue_timeout,
                timeout=self.timeout,
                verify=self.verify,
            )
            self._http_loop = loop
        return self._http

    async def _send(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One request to Keycloak, at most ``max_concurrent`` at a time; NoAnswer
        after ``queue_timeout`` seconds of waiting for a turn, or ``timeout`` for the
        answer."""
        return await self.http.request(method, url, **kwargs)

    async def aclose(self) -> None:
        if self._http is not None and self._http_loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = self._http_loop = None

    @property
    def metadata_cached(self) -> RealmMetadata | None:
        return self._meta

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            resp = await self._send("GET", url, headers={"Accept": "application/json"})
        except NoAnswer as e:
            raise KeycloakUnavailable(f"{what}: {e}") from None
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

    async def signing_key(self, kid: str | None, what: str = "token") -> jwt.PyJWK:
        """The key for ``kid``; an unknown kid refetches the JWKS (key rotation), at most
        once per ``jwks_min_interval``."""
        if not kid:
            raise TokenInvalid(f"{what} has no key id (kid)")
        if kid in self._keys:
            return self._keys[kid]
        seen = self._keys_version
        async with self._keys_lock:
            recent = time.monotonic() - self._keys_fetched_at < self.jwks_min_interval
            if self._keys_version == seen and not recent:  # nobody refetched meanwhile
                await self._fetch_keys()
        if kid not in self._keys:
            raise TokenInvalid(f"{what} is signed with a key the realm does not list (kid)")
        return self._keys[kid]

    async def decode(
        self,
        token: str,
        *,
        what: str = "token",
        audience: str | None = None,
        verify_exp: bool = True,
        required: tuple[str, ...] = ("exp", "iat", "iss", "sub"),
    ) -> dict[str, Any]:
        """Verify an RS256 token from this realm (signature, issuer, expiry, audience).

        ``what`` names the token in the TokenInvalid message ("access token", "ID
        token", "logout token"), which also says which check failed.
        """
        meta = await self.metadata()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid(f"{what} is not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise TokenInvalid(f"{what} is not signed with RS256 (alg)")
        key = await self.signing_key(header.get("kid"), what)
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
            raise TokenInvalid(f"{what} {_failed_check(e, audience)}") from None

    async def validate_tokens(self, token_info: Mapping[str, Any], client_id: str) -> dict:
        """The person's claims, after checking the access token and the ID token.

        Keycloak access tokens name the services they are for in ``aud`` (``account``,
        ``vault-valeria``) and this client in ``azp``; ID tokens carry the client in
        ``aud``. A lightweight access token carries neither ``sub`` nor the person's
        claims: they come from the ID token of the same answer (bound by ``at_hash``).
        """
        access = token_info.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenInvalid("the answer has no access token")
        claims = await self.decode(access, what="access token", required=("exp", "iat", "iss"))
        azp = claims.get("azp")
        if not azp:
            raise TokenInvalid("access token has no azp claim")
        if azp != client_id:
            raise TokenInvalid(f"access token was issued to client {azp!r}, not {client_id!r}")
        typ = claims.get("typ", "Bearer")
        if not isinstance(typ, str) or typ.lower() != "bearer":
            raise TokenInvalid(f"access token has typ {typ!r}, not Bearer")
        id_token = token_info.get("id_token")
        if not id_token:
            if not claims.get("sub"):
                raise TokenInvalid("access token has no sub claim and the answer no ID token")
            return claims
        id_claims = await self.decode(str(id_token), what="ID token", audience=client_id)
        if claims.get("sub") is not None and id_claims.get("sub") != claims["sub"]:
            raise TokenInvalid("ID token and access token name different users (sub)")
        if id_claims.get("azp", client_id) != client_id:
            raise TokenInvalid(f"ID token was issued to client {id_claims['azp']!r} (azp)")
        if "at_hash" in id_claims and id_claims["at_hash"] != at_hash(access):
            raise TokenInvalid("ID token's at_hash does not match the access token")
        return merge_identity(claims, id_claims)

    async def decode_logout_token(
        self, token: str, *, client_id: str, max_age: float, now: float | None = None
    ) -> dict[str, Any]:
        """A verified back-channel logout token's claims."""
        claims = await self.decode(
            token,
            what="logout token",
            audience=client_id,
            verify_exp=False,
            required=("iat", "iss", "aud"),
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
            resp = await self._send("POST", meta.token_endpoint, data=form, headers=dict(headers))
        except NoAnswer as e:
            raise KeycloakUnavailable(f"token endpoint: {e}") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise KeycloakUnavailable(
                f"token endpoint: HTTP {resp.status_code}, body: {body_excerpt(resp.text)}"
            )
        if resp.status_code != 200:
            if not isinstance(body, Mapping):
                # not Keycloak's JSON: a proxy or gateway in between answered
                raise KeycloakUnavailable(
                    f"token endpoint: HTTP {resp.status_code}, not JSON: {body_excerpt(resp.text)}"
                )
            error = body.get("error")
            if not isinstance(error, str) or not error:
                raise TokenRejected(resp.status_code, "", body=body_excerpt(resp.text))
            description = body.get("error_description")
            raise TokenRejected(
                resp.status_code,
                body_excerpt(error, 80),
                body_excerpt(description) if isinstance(description, str) else "",
            )
        if not isinstance(body, Mapping) or not body.get("access_token"):
            raise KeycloakUnavailable("token endpoint: answer without an access token")
        return dict(body)
