"""A Keycloak realm stand-in: OpenID Connect endpoints that fail the way Keycloak fails.

Serves one realm under ``/realms/{realm}/`` (or ``/auth/realms/{realm}/`` with
``legacy_prefix=True``): discovery, JWKS, the browser login (form, SSO cookie,
``prompt=login``), the token endpoint (authorization code with PKCE, refresh with
rotation and reuse detection, password, client credentials), userinfo, introspection,
logout with back-channel logout, and the admin user lookups used for onboarding.
The issuer is the URL the client used, as with a Keycloak that has no fixed hostname.

This module holds the state (sessions, codes, keys, clock), routing, token minting
and the in-process control methods. The realm model is in ``keycloak_model``, the
claim layout in ``keycloak_claims``, keys in ``keycloak_tokens``, the browser flow in
``keycloak_login``, the token endpoint in ``keycloak_grants``, userinfo/introspection/
admin in ``keycloak_resources``, pages in ``keycloak_pages`` and the HTTP control
surface (``/_control/keycloak/...``) in ``keycloak_control``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..server import StandIn
from .claims import access_claims, id_claims, logout_claims, refresh_claims
from .control import add_control_routes
from .grants import GRANTS, TokenMixin
from .login import LoginMixin
from .model import (
    AuthCode,
    Client,
    ClientSession,
    LoginAttempt,
    Realm,
    User,
    UserSession,
    check_scope,
    load_definition,
)
from .resources import ResourceMixin
from .tokens import KeySet, TokenInvalid

log = logging.getLogger(__name__)

# The demo realm in Keycloak's own export format: the real server imports the same file.
DEMO_REALM = Path(__file__).with_name("realm-valeria.json")


class KeycloakStandIn(LoginMixin, TokenMixin, ResourceMixin, StandIn):
    """One Keycloak realm on loopback, with in-process and HTTP control for tests."""

    name = "keycloak"

    def __init__(
        self,
        realm: str | Path | dict[str, Any] | None = None,
        *,
        legacy_prefix: bool = False,
        hostname: str | None = None,
        backchannel_timeout: float = 3.0,
        key_size: int = 2048,
    ) -> None:
        super().__init__()
        self.realm = Realm(load_definition(realm if realm is not None else DEMO_REALM))
        self.prefix = "/auth" if legacy_prefix else ""
        self.hostname = hostname.rstrip("/") if hostname else None
        self.backchannel_timeout = backchannel_timeout
        self.keys = KeySet(key_size)
        self.clock_offset = 0.0
        self.sessions: dict[str, UserSession] = {}
        self.codes: dict[str, AuthCode] = {}
        self.logins: dict[str, LoginAttempt] = {}
        self.logout_requests: dict[str, dict[str, Any]] = {}
        self.access_cutoff: float | None = None
        self._access_issued: dict[str, float] = {}
        self.token_calls: Counter[tuple[str, str]] = Counter()
        self.backchannel_log: list[dict[str, Any]] = []
        self._execution = str(uuid.uuid4())
        self._http: aiohttp.ClientSession | None = None

    # -- time and URLs ------------------------------------------------------------------
    def clock(self) -> float:
        """Keycloak's notion of now: wall time plus an offset tests can move."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    @property
    def base_url(self) -> str:
        if self.hostname:
            return self.hostname
        if self.url is None:
            raise RuntimeError("keycloak stand-in is not running")
        return self.url

    @property
    def issuer(self) -> str:
        return f"{self.base_url}{self.prefix}/realms/{self.realm.name}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def endpoint(self, name: str) -> str:
        """``auth``, ``token``, ``userinfo``, ``certs``, ``logout`` or ``token/introspect``."""
        return f"{self.issuer}/protocol/openid-connect/{name}"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}{self.prefix}/admin/realms/{self.realm.name}"

    def _issuer_for(self, request: web.Request) -> str:
        base = self.hostname or f"{request.scheme}://{request.host}"
        return f"{base}{self.prefix}/realms/{self.realm.name}"

    @property
    def cookie_path(self) -> str:
        return f"{self.prefix}/realms/{self.realm.name}/"

    # -- lifecycle ----------------------------------------------------------------------
    async def on_stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def add_routes(self, app: web.Application) -> None:
        def in_realm(handler: Any) -> Any:
            async def checked(request: web.Request) -> web.StreamResponse:
                if request.match_info.get("realm") != self.realm.name:
                    return web.json_response({"error": "Realm does not exist"}, status=404)
                return await handler(request)

            return checked

        r = f"{self.prefix}/realms/{{realm}}"
        oidc = f"{r}/protocol/openid-connect"
        admin = f"{self.prefix}/admin/realms/{{realm}}"
        routes = [
            ("GET", r, self._realm_info),
            ("GET", f"{r}/.well-known/openid-configuration", self._discovery),
            ("GET", f"{oidc}/certs", self._certs),
            ("GET", f"{oidc}/auth", self._auth),
            ("POST", f"{oidc}/auth", self._auth),
            ("POST", f"{r}/login-actions/authenticate", self._login_action),
            ("POST", f"{oidc}/token", self._token),
            ("GET", f"{oidc}/userinfo", self._userinfo),
            ("POST", f"{oidc}/userinfo", self._userinfo),
            ("POST", f"{oidc}/token/introspect", self._introspect),
            ("GET", f"{oidc}/logout", self._logout),
            ("POST", f"{oidc}/logout", self._logout),
            ("POST", f"{oidc}/logout/logout-confirm", self._logout_confirm),
            ("GET", f"{admin}/users", self._admin_users),
            ("GET", f"{admin}/users/{{user_id}}", self._admin_user),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, in_realm(handler))
        add_control_routes(self, app)

    # -- discovery ----------------------------------------------------------------------
    async def _realm_info(self, request: web.Request) -> web.Response:
        issuer = self._issuer_for(request)
        return web.json_response(
            {
                "realm": self.realm.name,
                "token-service": f"{issuer}/protocol/openid-connect",
                "account-service": f"{issuer}/account",
                "tokens-not-before": 0,
            }
        )

    async def _discovery(self, request: web.Request) -> web.Response:
        iss = self._issuer_for(request)
        oidc = f"{iss}/protocol/openid-connect"
        auth_methods = ["client_secret_basic", "client_secret_post"]
        return web.json_response(
            {
                "issuer": iss,
                "authorization_endpoint": f"{oidc}/auth",
                "token_endpoint": f"{oidc}/token",
                "introspection_endpoint": f"{oidc}/token/introspect",
                "userinfo_endpoint": f"{oidc}/userinfo",
                "end_session_endpoint": f"{oidc}/logout",
                "frontchannel_logout_session_supported": True,
                "frontchannel_logout_supported": True,
                "jwks_uri": f"{oidc}/certs",
                "grant_types_supported": list(GRANTS),
                "acr_values_supported": ["0", "1"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "userinfo_signing_alg_values_supported": ["none"],
                "response_modes_supported": ["query"],
                "token_endpoint_auth_methods_supported": auth_methods,
                "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
                "introspection_endpoint_auth_methods_supported": auth_methods,
                "claims_supported": [
                    "aud",
                    "sub",
                    "iss",
                    "auth_time",
                    "name",
                    "given_name",
                    "family_name",
                    "preferred_username",
                    "email",
                    "email_verified",
                    "acr",
                    "groups",
                ],  # fmt: skip
                "claim_types_supported": ["normal"],
                "claims_parameter_supported": False,
                "scopes_supported": [
                    "openid",
                    "profile",
                    "email",
                    "roles",
                    "web-origins",
                    "acr",
                    "basic",
                    "address",
                    "phone",
                    "microprofile-jwt",
                    "offline_access",
                ],  # fmt: skip
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
                "code_challenge_methods_supported": ["plain", "S256"],
                "tls_client_certificate_bound_access_tokens": False,
                "backchannel_logout_supported": True,
                "backchannel_logout_session_supported": True,
            }
        )

    async def _certs(self, request: web.Request) -> web.Response:
        return web.json_response(self.keys.jwks())

    # -- sessions -----------------------------------------------------------------------
    def _live_session(self, sid: str | None) -> UserSession | None:
        """The session if it is still active; an expired one is dropped (no logout sent)."""
        session = self.sessions.get(sid or "")
        if session is None:
            return None
        if not session.active(self.realm.settings, self.clock()):
            del self.sessions[session.id]
            return None
        return session

    def _new_session(self, user: User, issuer: str, service_account: bool = False) -> UserSession:
        now = self.clock()
        session = UserSession(
            id=str(uuid.uuid4()),
            user_id=user.id,
            started=now,
            last_refresh=now,
            service_account=service_account,
            issuer=issuer,
        )
        self.sessions[session.id] = session
        return session

    def _attach(
        self, session: UserSession, client: Client, scope: str, nonce: str | None, acr: str
    ) -> ClientSession:
        csession = session.clients.get(client.client_id)
        if csession is None:
            csession = ClientSession(client.client_id, scope, self.clock())
            session.clients[client.client_id] = csession
        csession.scope, csession.nonce, csession.acr = scope, nonce, acr
        return csession

    async def _end_session(self, session: UserSession) -> None:
        self.sessions.pop(session.id, None)
        await self._backchannel(session, list(session.clients))

    async def _detach(self, session: UserSession, client_id: str, *, quietly: bool = False) -> None:
        """Drop a client from a session (Keycloak's reaction to code or token reuse).

        ``quietly``: as Keycloak 26 answers a refresh token used too often: the session
        stays (even with no client left), nobody is told (no back-channel logout), and the
        client's next refresh is refused with "Session doesn't have required client".
        """
        if session.clients.pop(client_id, None) is None or quietly:
            return
        if not session.clients:
            self.sessions.pop(session.id, None)
        await self._backchannel(session, [client_id])

    async def _backchannel(self, session: UserSession, client_ids: list[str]) -> None:
        """POST a signed logout token to each client's back-channel URL; never raise."""
        for cid in client_ids:
            client = self.realm.clients.get(cid)
            if client is None or not client.backchannel_logout_url:
                continue
            claims = logout_claims(
                session.issuer or self.issuer, cid, session.user_id, session.id,
                self.clock(), str(uuid.uuid4()),
            )  # fmt: skip
            token = self.keys.sign(claims)
            entry: dict[str, Any] = {
                "client_id": cid,
                "url": client.backchannel_logout_url,
                "sid": session.id,
                "sub": session.user_id,
                "logout_token": token,
            }
            if self._http is None or self._http.closed:
                self._http = aiohttp.ClientSession()
            try:
                async with self._http.post(
                    client.backchannel_logout_url,
                    data={"logout_token": token},
                    timeout=aiohttp.ClientTimeout(total=self.backchannel_timeout),
                ) as resp:
                    entry["status"] = resp.status
                    if resp.status >= 300:
                        log.warning("back-channel logout to %s answered %s", cid, resp.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                entry["error"] = type(e).__name__
                log.warning("back-channel logout to %s failed: %s", cid, type(e).__name__)
            self.backchannel_log.append(entry)

    def _session_from_cookie(self, request: web.Request) -> UserSession | None:
        raw = request.cookies.get("KEYCLOAK_IDENTITY")
        if not raw:
            return None
        try:
            claims = self.keys.decode(raw, hmac=True)
        except TokenInvalid:
            return None
        if claims.get("typ") != "Serialized-ID":
            return None
        session = self._live_session(claims.get("sid"))
        if session is None or session.service_account:
            return None
        user = self.realm.user_by_id(session.user_id)
        return session if user is not None and user.enabled else None

    def _set_sso_cookies(self, resp: web.StreamResponse, session: UserSession) -> None:
        settings = self.realm.settings
        max_age = int(session.started + settings.sso_session_max_lifespan - self.clock())
        identity = self.keys.sign_hmac(
            {
                "exp": int(session.started + settings.sso_session_max_lifespan),
                "iat": int(self.clock()),
                "jti": str(uuid.uuid4()),
                "sub": session.user_id,
                "typ": "Serialized-ID",
                "sid": session.id,
            }
        )
        path = self.cookie_path
        resp.set_cookie("KEYCLOAK_IDENTITY", identity, path=path, httponly=True, max_age=max_age)
        state = f"{self.realm.name}/{session.user_id}/{session.id}"
        resp.set_cookie("KEYCLOAK_SESSION", state, path=path, max_age=max_age)

    def _clear_sso_cookies(self, resp: web.StreamResponse) -> None:
        for name in ("KEYCLOAK_IDENTITY", "KEYCLOAK_SESSION"):
            resp.del_cookie(name, path=self.cookie_path)

    # -- token minting ------------------------------------------------------------------
    def _issue(
        self,
        user: User,
        client: Client,
        session: UserSession,
        csession: ClientSession,
        issuer: str,
        refresh: bool = True,
    ) -> dict[str, Any]:
        now = self.clock()
        realm = self.realm
        jti = str(uuid.uuid4())
        claims = access_claims(realm, user, client, session, csession, issuer, now, jti)
        access = self.keys.sign(claims)
        self._access_issued[jti] = now
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": claims["exp"] - int(now),
            "refresh_expires_in": 0,
        }
        if refresh:
            rclaims = refresh_claims(
                realm, user, client, session, csession, issuer, now, str(uuid.uuid4())
            )
            body["refresh_expires_in"] = rclaims["exp"] - int(now)
            body["refresh_token"] = self.keys.sign_hmac(rclaims)
        body["token_type"] = "Bearer"
        if "openid" in csession.scope.split():
            body["id_token"] = self.keys.sign(
                id_claims(realm, user, client, session, csession, issuer, now,
                          str(uuid.uuid4()), access)
            )  # fmt: skip
        body["not-before-policy"] = 0
        if not session.service_account:
            body["session_state"] = session.id
        body["scope"] = csession.scope
        return body

    def issue_tokens(
        self, username: str, client_id: str = "jupyterhub", scope: str = "openid profile email"
    ) -> dict[str, Any]:
        """Log ``username`` in without a browser (tests): a token response as from a login."""
        user = self.realm.users[username.lower()]
        client = self.realm.clients[client_id]
        session = self._new_session(user, self.issuer)
        csession = self._attach(session, client, check_scope(scope), None, "1")
        return self._issue(user, client, session, csession, self.issuer)

    # -- control (in-process) -----------------------------------------------------------
    def add_user(self, **spec: Any) -> User:
        """Create or update a user (roles, groups, password, enabled ...)."""
        return self.realm.add_user(spec)

    def update_user(self, username: str, **changes: Any) -> User:
        if username.lower() not in self.realm.users:
            raise KeyError(username)
        return self.realm.add_user({"username": username, **changes})

    def add_client(self, **spec: Any) -> Client:
        return self.realm.add_client(spec)

    def update_client(self, client_id: str, **changes: Any) -> Client:
        return self.realm.update_client(client_id, **changes)

    async def end_session(self, sid: str) -> bool:
        """End one session (as an admin would), sending back-channel logouts."""
        session = self.sessions.get(sid)
        if session is None:
            return False
        await self._end_session(session)
        return True

    async def end_user_sessions(self, username: str) -> int:
        user = self.realm.users[username.lower()]
        ended = [s for s in list(self.sessions.values()) if s.user_id == user.id]
        for session in ended:
            await self._end_session(session)
        return len(ended)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working here; refresh tokens still do."""
        self.access_cutoff = self.clock()

    def set_lifetimes(self, **lifetimes: int) -> dict[str, int]:
        settings = self.realm.settings
        for key, value in lifetimes.items():
            if key not in settings.LIFETIMES:
                raise ValueError(f"unknown lifetime {key}")
            setattr(settings, key, int(value))
        return {k: getattr(settings, k) for k in settings.LIFETIMES}

    def rotate_key(self, keep_old: bool = True) -> str:
        return self.keys.rotate(keep_old=keep_old)

    def token_counts(self) -> dict[str, dict[str, int]]:
        """Token-endpoint calls: ``{grant_type: {client_id: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for (grant, client), n in self.token_calls.items():
            out.setdefault(grant, {})[client] = n
        return out

    def reset_counters(self) -> None:
        self.token_calls.clear()

    def list_sessions(self, include_service_accounts: bool = False) -> list[dict[str, Any]]:
        now = self.clock()
        return [
            s.describe(self.realm.user_by_id(s.user_id))
            for s in self.sessions.values()
            if s.active(self.realm.settings, now)
            and (include_service_accounts or not s.service_account)
        ]
