"""KeycloakAuthenticator: JupyterHub login through a Keycloak realm.

An oauthenticator ``GenericOAuthenticator`` that is configured by one realm URL (the
endpoints come from the discovery document), validates every token against the realm's
JWKS instead of calling userinfo, keeps the tokens with their expiry in the encrypted
auth_state (the layout of ``valeria_hub.auth.state``), refreshes them only when they are
about to expire and never twice at once for one user, maps Keycloak roles and groups to
hub access, admin and groups, and ends sessions in both directions (RP-initiated and
back-channel logout).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from jupyterhub import orm
from jupyterhub.crypto import CryptKeeper
from jupyterhub.utils import new_token
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Bool, Callable, Float, List, Set, Unicode, Union, default, validate

from ..metrics import TOKEN_REFRESH
from . import handlers
from .access import Access, AccessRules, decide
from .login_events import tell_login_ended
from .oidc import (
    KeycloakUnavailable,
    KeyedLocks,
    RealmClient,
    RealmMetadata,
    ReplayCache,
    TokenInvalid,
    TokenRejected,
)
from .state import (
    access_token_valid,
    auth_state_layout,
    keep_ended_session,
    needs_refresh,
    refresh_token_usable,
    without_tokens,
)


def _identifying(handler: Any) -> bool:
    """True while JupyterHub identifies the request (``BaseHandler.prepare``).

    There an exception from ``refresh_user`` is logged and the request treated as
    anonymous, so a problem is recorded on the handler for the login page instead.
    Scopes are resolved right after identification, so their absence tells the two
    phases apart.
    """
    return handler is not None and getattr(handler, "parsed_scopes", None) is None


class KeycloakAuthenticator(GenericOAuthenticator):
    """Log in with Keycloak; keep tokens fresh; map roles and groups; two-way logout."""

    login_handler = handlers.KeycloakLoginHandler
    callback_handler = handlers.KeycloakCallbackHandler
    logout_handler = handlers.KeycloakLogoutHandler

    # -- endpoints ------------------------------------------------------------------
    realm_url = Unicode(
        "",
        config=True,
        help="""The Keycloak realm URL, e.g. https://sso.example.org/realms/valeria
        (or .../auth/realms/valeria for Keycloak before 17). The authorize, token,
        JWKS and logout endpoints are read from its discovery document.""",
    )
    http_timeout = Float(
        10.0,
        config=True,
        help="Timeout in seconds of every request to Keycloak (discovery, JWKS, token).",
    )
    token_leeway = Float(
        30.0,
        config=True,
        help="Seconds of clock skew tolerated when checking token expiry.",
    )
    jwks_refetch_interval = Float(
        10.0,
        config=True,
        help="Least seconds between two fetches of the realm's keys for an unknown key id. "
        "Keycloak's new keys are found at most this late; a caller sending made-up key ids "
        "cannot make the hub fetch the keys on every request.",
    )

    @default("reconcile_auth_state_hook")
    def _reconcile_default(self) -> Any:
        return keep_ended_session

    @default("login_service")
    def _login_service_default(self) -> str:
        return "Keycloak"

    @default("scope")
    def _scope_default(self) -> list[str]:
        return ["openid", "profile", "email"]

    @default("enable_pkce")
    def _enable_pkce_default(self) -> bool:
        return True

    @default("enable_auth_state")
    def _enable_auth_state_default(self) -> bool:
        return True

    @validate("enable_auth_state")
    def _auth_state_required(self, proposal: Any) -> bool:
        if not proposal.value:
            raise ValueError(
                "KeycloakAuthenticator keeps the user's tokens in auth_state: "
                "enable_auth_state must stay True (and JUPYTERHUB_CRYPT_KEY must be set)"
            )
        return True

    username_claim = Union(
        [Unicode("preferred_username"), Callable()],
        config=True,
        help="""The access-token claim that becomes the hub username (default
        preferred_username), or a callable taking the claims and returning it.""",
    )

    # -- refresh --------------------------------------------------------------------
    refresh_margin = Float(
        60.0,
        config=True,
        help="""Refresh the access token when it expires within this many seconds.
        A token with more time left is used as is: no request to Keycloak at all.""",
    )

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self) -> int:
        return 60

    # -- authorisation --------------------------------------------------------------
    admin_roles = Set(
        Unicode(),
        config=True,
        help="""Keycloak realm or client roles (client roles also as
        '<client_id>:<role>') that make a user a hub admin. When admin_roles and
        admin_groups are both empty, hub admin status is left to admin_users.""",
    )
    allowed_roles = Set(
        Unicode(),
        config=True,
        help="""Keycloak realm or client roles that allow a user into the hub. When
        allowed_roles and allowed_groups are both empty every user of the realm may
        log in. Access is checked again at every token refresh.""",
    ).tag(allow_config=True)
    strip_group_slash = Bool(
        True,
        config=True,
        help="""Name hub groups after Keycloak groups without the leading '/' of
        the full path ('/team-a' becomes 'team-a'). admin_groups and allowed_groups
        match either form.""",
    )

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("allow_existing_users")
    def _allow_existing_users_default(self) -> bool:
        return False

    # -- logout -----------------------------------------------------------------------
    end_keycloak_session = Bool(
        True,
        config=True,
        help="""On hub logout, also end the Keycloak session (redirect to the realm's
        end_session_endpoint with id_token_hint). Ignored when logout_redirect_url is set.""",
    )
    post_logout_redirect_url = Unicode(
        "",
        config=True,
        help="""Where Keycloak sends the browser after logout; must be a valid
        post-logout redirect URI of the client. Default: the hub's login page,
        derived from oauth_callback_url or the request, which then shows once that the
        person is logged out, with a link to log in again.""",
    )
    backchannel_logout_max_age = Float(
        300.0,
        config=True,
        help="Oldest accepted back-channel logout token, in seconds since its iat.",
    )
    backchannel_stop_servers = Bool(
        False,
        config=True,
        help="On a back-channel logout from Keycloak, also stop the user's servers.",
    )
    login_end_services = List(
        Unicode(),
        config=True,
        help="""Names of the hub's services told at once when a person's hub login ends
        (logout, back-channel logout), so that what they keep of the login in memory
        goes: POST {url}{prefix}hub-events/login-ended with the person's name, authorized
        with the service's own API token. jupyterhub_config.py names the jobs service.
        A service that does not answer within http_timeout is logged; the logout
        proceeds.""",
    )
    backchannel_logout_path = Unicode(
        "/backchannel-logout",
        config=True,
        help="Path under the hub (/hub) of the back-channel logout endpoint.",
    )

    # -- state -------------------------------------------------------------------------
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # when each person's hub session last ended (logout, back-channel logout): tokens
        # obtained before that are never stored again (state.keep_ended_session)
        self.session_ended_at: dict[str, float] = {}
        self._realm: RealmClient | None = None
        self._refresh_locks = KeyedLocks()
        self._replays = ReplayCache()
        self._sessions: dict[str, str] = {}  # Keycloak sid -> hub username
        self._prefetch: asyncio.Task | None = None
        self._services_http: httpx.AsyncClient | None = None  # see tell_services

    @property
    def realm(self) -> RealmClient:
        if self._realm is None:
            if not self.realm_url:
                raise ValueError("KeycloakAuthenticator.realm_url is not set")
            self._realm = RealmClient(
                self.realm_url,
                timeout=self.http_timeout,
                verify=self.validate_server_cert,
                leeway=self.token_leeway,
                jwks_min_interval=self.jwks_refetch_interval,
            )
        return self._realm

    def rules(self) -> AccessRules:
        return AccessRules(
            client_id=self.client_id,
            admin_roles=frozenset(self.admin_roles),
            admin_groups=frozenset(self.admin_groups),
            allowed_roles=frozenset(self.allowed_roles),
            allowed_groups=frozenset(self.allowed_groups),
            strip_group_slash=self.strip_group_slash,
        )

    def access(self, claims: dict[str, Any] | None) -> Access:
        return decide(claims or {}, self.rules())

    # -- startup ----------------------------------------------------------------------
    def check_allow_config(self) -> None:
        """Startup checks: crypt key, realm URL; then fetch discovery in the background."""
        if not self.realm_url:
            raise ValueError("KeycloakAuthenticator.realm_url must be set")
        if not self.client_id or not self.client_secret:
            raise ValueError("KeycloakAuthenticator needs client_id and client_secret")
        try:
            CryptKeeper.instance().check_available()
        except Exception as e:  # noqa: BLE001 - re-raised with the fix
            raise ValueError(
                "KeycloakAuthenticator stores tokens in encrypted auth_state: set "
                f"JUPYTERHUB_CRYPT_KEY (openssl rand -hex 32). ({e})"
            ) from None
        if not (self.allowed_roles or self.allowed_groups or self.allowed_users):
            self.log.info("No allowed_roles/allowed_groups: every user of the realm may log in")
        try:
            self._prefetch = asyncio.get_running_loop().create_task(self._prefetch_discovery())
        except RuntimeError:
            pass

    async def _prefetch_discovery(self) -> None:
        try:
            await self.discover()
        except KeycloakUnavailable as e:
            self.log.warning("Keycloak discovery at startup failed (retried on use): %s", e)

    async def discover(self) -> RealmMetadata:
        """The realm's endpoints (cached); also sets the oauthenticator URL traits."""
        meta = await self.realm.metadata()
        if self.authorize_url != meta.authorization_endpoint:
            self.authorize_url = meta.authorization_endpoint
            self.token_url = meta.token_endpoint
            if meta.userinfo_endpoint:
                self.userdata_url = meta.userinfo_endpoint
            if meta.issuer.rstrip("/") != self.realm_url.rstrip("/"):
                self.log.warning(
                    "Keycloak issuer %s differs from realm_url %s", meta.issuer, self.realm_url
                )
        return meta

    # -- handlers ---------------------------------------------------------------------
    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [
            (r"/login", handlers.KeycloakPageLoginHandler),
            *super().get_handlers(app),
            (self.backchannel_logout_path, handlers.BackchannelLogoutHandler),
            (handlers.FRESH_TOKENS_PATH, handlers.FreshTokensHandler),
        ]

    def post_logout_url(self, handler: Any) -> str:
        """Absolute URL of the hub's login page, for Keycloak's post-logout redirect."""
        if self.post_logout_redirect_url:
            return self.post_logout_redirect_url
        callback = self.get_callback_url(handler)
        return callback.rsplit("/", 1)[0] + "/login"

    # -- login ------------------------------------------------------------------------
    def build_access_tokens_request_params(self, handler: Any, data: Any = None) -> dict:
        params = super().build_access_tokens_request_params(handler, data)
        params.pop("data", None)
        return params

    async def get_token_info(self, handler: Any, params: dict) -> dict:
        """The code exchange at login; failures become pages a person understands."""
        retry = self.login_url(handler.hub.base_url) if handler is not None else None
        try:
            await self.discover()
            return await self.realm.token_request(params, self.build_token_info_request_headers())
        except KeycloakUnavailable as e:
            self.log.warning("Login failed, Keycloak unavailable: %s", e)
            raise handlers.unavailable(retry) from None
        except TokenRejected as e:
            self.log.warning("Login code exchange refused: %s", e.detail)
            if e.error in ("invalid_client", "unauthorized_client"):
                raise handlers.AuthProblem(
                    503,
                    "The login service refused the hub's own credentials. "
                    "Please tell the platform's support team.",
                ) from None
            raise handlers.AuthProblem(
                400,
                "Your sign-in expired or was already used. Please sign in again.",
                retry,
                "Sign in again",
            ) from None

    async def token_to_user(self, token_info: dict) -> dict:
        """The person's claims from the validated tokens (no userinfo request: Keycloak
        refuses userinfo for lightweight access tokens, and the ID token has them)."""
        try:
            return await self.realm.validate_tokens(token_info, self.client_id)
        except TokenInvalid as e:
            self.log.warning("Keycloak login refused: %s", e)
            raise handlers.AuthProblem(
                403, f"The login service returned a token the hub cannot accept: {e}."
            ) from None
        except KeycloakUnavailable as e:
            self.log.warning("Cannot fetch Keycloak keys: %s", e)
            raise handlers.unavailable() from None

    def user_info_to_username(self, user_info: dict) -> str:
        """The hub username from the claims, or a 400 page that names the missing or
        unusable claim (never a 500, and never the claims themselves in the log)."""
        claim = self.username_claim
        what = f"the {claim!r} claim" if isinstance(claim, str) else "the username_claim callable"
        try:
            username = claim(user_info) if callable(claim) else user_info.get(claim)
        except Exception as e:  # noqa: BLE001 - a configured callable; its error is named
            self.log.error("Login refused: username_claim failed with %s", type(e).__name__)
            raise handlers.ClaimProblem(f"{what} failed") from None
        if username is None or username == "":
            self.log.error(
                "Login refused: the tokens carry no %s (claims present: %s)",
                what.removeprefix("the "),
                ", ".join(sorted(str(k) for k in user_info)) or "none",
            )
            raise handlers.ClaimProblem(f"it did not send your username ({what} is missing)")
        if not isinstance(username, str):
            self.log.error("Login refused: %s is a %s, not a string", what, type(username).__name__)
            raise handlers.ClaimProblem(f"your username ({what}) is not a text value")
        if not self.validate_username(self.normalize_username(username)):
            self.log.error("Login refused: %s is not a valid hub username", what)
            raise handlers.ClaimProblem(f"your username ({what}) is not a valid hub username")
        return username

    def build_auth_state_dict(self, token_info: dict, user_info: dict) -> dict:
        return auth_state_layout(token_info, user_info, time.time())

    async def get_user_groups(self, auth_state: dict) -> set[str]:
        return set(self.access(auth_state.get(self.user_auth_state_key)).groups)

    async def update_auth_model(self, auth_model: dict) -> dict:
        state = auth_model.get("auth_state") or {}
        access = self.access(state.get(self.user_auth_state_key))
        if auth_model.get("admin") is None:
            auth_model["admin"] = access.admin
        if state.get("sid"):
            self._sessions[state["sid"]] = auth_model["name"]
        return auth_model

    async def check_allowed(self, username: str, auth_model: dict | None) -> bool:
        if auth_model is None:
            return True
        if await super().check_allowed(username, auth_model):
            return True
        state = auth_model.get("auth_state") or {}
        claims = state.get(self.user_auth_state_key) or {}
        access = self.access(claims)
        if not access.allowed:
            self.log.warning("User %s refused: %s", username, access.reason)
            if self.allowed_roles and not {"realm_access", "resource_access"} & set(claims):
                self.log.warning(
                    "The tokens of %s carry no roles at all (no realm_access or "
                    "resource_access claim). With lightweight access tokens the ID token "
                    "must carry them: add a realm roles mapper with 'Add to ID token' to "
                    "the hub's Keycloak client.",
                    username,
                )
        return access.allowed

    # -- refresh ----------------------------------------------------------------------
    def _problem(self, handler: Any, user: Any, problem: web.HTTPError) -> bool:
        """Tell the user why: on the login page while identifying, else raise."""
        if _identifying(handler):
            setattr(handler, handlers.PROBLEM_ATTR, problem)
            return False
        raise problem

    async def fresh_tokens(self, user: Any, min_validity: float) -> Any:
        """Make the user's access token valid for ``min_validity`` more seconds, refreshing
        it if needed (one refresh per user, like every refresh); the same answers as
        :meth:`refresh_user`. For services that act with the person's token (the jobs
        service's Vault login), so that they never see a token about to expire."""
        async with self._refresh_locks.hold(user.name):
            state = await user.get_auth_state()
            if not state or not state.get("access_token"):
                return False
            now = time.time()
            margin = max(self.refresh_margin, min_validity)
            if not needs_refresh({**state, "obtained_at": None}, margin, now):
                return True
            if not refresh_token_usable(state, now):
                return False
            return await self._refresh(user, None, state, now)

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Refresh tokens that expire within ``refresh_margin``; one refresh per user.

        Returns True (nothing changed), an auth model (new tokens), or False (the user
        must log in again). Keycloak being unreachable keeps a session whose access
        token is still valid and otherwise answers 503.
        """
        async with self._refresh_locks.hold(user.name):
            # read inside the lock: a refresh that just finished left new tokens here
            state = await user.get_auth_state()
            if self.refresh_user_hook is not None:
                refreshed = await self._call_refresh_user_hook(user, state)
                if refreshed is not None:
                    return refreshed
            if not state or not state.get("access_token"):
                return False
            now = time.time()
            if not needs_refresh(state, self.refresh_margin, now):
                access = self.access(state.get(self.user_auth_state_key))
                if not access.allowed:
                    return self._refused(handler, user, access)
                return True
            if not refresh_token_usable(state, now):
                self.log.info("Refresh token of %s expired: login required", user.name)
                return False
            return await self._refresh(user, handler, state, now)

    async def _refresh(self, user: Any, handler: Any, state: dict, now: float) -> Any:
        params = self.build_refresh_token_request_params(state["refresh_token"])
        try:
            token_info = await self.realm.token_request(
                params, self.build_token_info_request_headers()
            )
            if not token_info.get("refresh_token"):
                token_info["refresh_token"] = state["refresh_token"]
                token_info.setdefault(
                    "refresh_expires_in", (state.get("refresh_token_expires_at") or 0) - now
                )
            # validate here to tell a bad token from unreachable keys; the model
            # below validates again from the cached keys
            await self.realm.validate_tokens(token_info, self.client_id)
            model = await self._token_to_auth_model(token_info)
        except TokenRejected as e:
            self.log.info(
                "Keycloak refused to refresh %s (%s): login required", user.name, e.detail
            )
            TOKEN_REFRESH.labels("rejected").inc()
            await user.save_auth_state(without_tokens(state))
            return False
        except TokenInvalid as e:
            self.log.error("Refreshed tokens of %s failed validation: %s", user.name, e)
            TOKEN_REFRESH.labels("invalid").inc()
            await user.save_auth_state(without_tokens(state))
            return False
        except handlers.ClaimProblem as e:
            self.log.error("Refreshed tokens of %s are unusable: %s", user.name, e.problem)
            TOKEN_REFRESH.labels("invalid").inc()
            await user.save_auth_state(without_tokens(state))
            return False
        except KeycloakUnavailable as e:
            if access_token_valid(state, now):
                TOKEN_REFRESH.labels("unavailable_kept").inc()
                self.log.warning(
                    "Keycloak unavailable (%s): keeping %s's session until its token expires",
                    e,
                    user.name,
                )
                return True
            self.log.warning("Keycloak unavailable (%s) and %s's token expired", e, user.name)
            TOKEN_REFRESH.labels("unavailable_expired").inc()
            return self._problem(handler, user, handlers.unavailable(self._retry_url(handler)))
        if model["name"] != user.name:
            # renamed in Keycloak while signed in: these tokens belong to another hub name
            self.log.warning(
                "Refreshed tokens of %s name the hub user %s: login required",
                user.name,
                model["name"],
            )
            TOKEN_REFRESH.labels("invalid").inc()
            await user.save_auth_state(without_tokens(state))
            return False
        # keep the rotated tokens even if the user is now refused: the old ones are spent
        TOKEN_REFRESH.labels("refreshed").inc()
        await user.save_auth_state(model["auth_state"])
        access = self.access(model["auth_state"].get(self.user_auth_state_key))
        if not (await self.check_allowed(user.name, model)):
            return self._refused(handler, user, access)
        self.log.info("Refreshed Keycloak tokens of %s", user.name)
        return model

    def _refused(self, handler: Any, user: Any, access: Access) -> bool:
        self.log.warning("User %s lost access: %s", user.name, access.reason)
        problem = handlers.AuthProblem(403, self.custom_403_message or "Access refused.")
        if _identifying(handler):
            setattr(handler, handlers.PROBLEM_ATTR, problem)
        return False

    def _retry_url(self, handler: Any) -> str | None:
        if handler is None:
            return None
        return handlers.local_path(handler.get_argument("next", None)) or handler.request.uri

    # -- logout -----------------------------------------------------------------------
    async def tell_services(self, handler: Any, usernames: list[str]) -> None:
        """Tell ``login_end_services`` that these people's logins ended."""
        if not self.login_end_services or not usernames:
            return
        if self._services_http is None:
            self._services_http = httpx.AsyncClient(timeout=self.http_timeout)
        await tell_login_ended(
            self._services_http, handler.services, self.login_end_services, usernames,
            log=self.log,
        )  # fmt: skip

    async def forget_tokens(self, user: Any) -> str | None:
        """Drop a user's tokens at logout; return the ID token for the logout hint.

        Under the user's refresh lock: a refresh in flight finishes first, then its
        tokens go too (and JupyterHub's later save of them is refused by
        ``keep_ended_session``).
        """
        async with self._refresh_locks.hold(user.name):
            self.session_ended_at[user.name] = time.time()
            state = await user.get_auth_state()
            if not state:
                return None
            if state.get("sid"):
                self._sessions.pop(state["sid"], None)
            await user.save_auth_state(without_tokens(state))
            return state.get("id_token")

    async def verify_logout_token(self, token: str) -> dict[str, Any]:
        """Claims of a genuine, recent, unreplayed back-channel logout token."""
        await self.discover()
        claims = await self.realm.decode_logout_token(
            token, client_id=self.client_id, max_age=self.backchannel_logout_max_age
        )
        if not self._replays.check_and_add(str(claims["jti"]), time.time()):
            raise TokenInvalid("logout token replayed")
        return claims

    async def _users_for(self, handler: Any, claims: dict[str, Any]) -> list[tuple[Any, dict]]:
        """Hub users (with auth_state) whose Keycloak session the logout token names."""
        sid, sub = claims.get("sid"), claims.get("sub")
        names = [self._sessions[sid]] if sid and sid in self._sessions else None
        query = handler.db.query(orm.User).filter(orm.User.encrypted_auth_state.isnot(None))
        if names is not None:
            query = query.filter(orm.User.name.in_(names))
        found = []
        for orm_user in query:
            user = handler.users[orm_user]
            state = await user.get_auth_state()
            if not state:
                continue
            if (sid and state.get("sid") == sid) or (not sid and sub and state.get("sub") == sub):
                found.append((user, state))
        return found

    async def end_sessions(self, handler: Any, claims: dict[str, Any]) -> list[str]:
        """End the hub sessions of a Keycloak session: cookies, tokens, auth_state."""
        ended = []
        for user, _ in await self._users_for(handler, claims):
            async with self._refresh_locks.hold(user.name):  # see forget_tokens
                self.session_ended_at[user.name] = time.time()
                state = await user.get_auth_state() or {}
                if state.get("sid"):
                    self._sessions.pop(state["sid"], None)
                await user.save_auth_state(without_tokens(state))
            # a new cookie id makes every hub login cookie of this user invalid
            user.orm_user.cookie_id = new_token()
            for token in handler.db.query(orm.APIToken).filter(
                orm.APIToken.user_id == user.id, orm.APIToken.session_id.isnot(None)
            ):
                handler.db.delete(token)
            handler.db.commit()
            user._auth_refreshed = None
            if self.backchannel_stop_servers:
                for name, spawner in list(user.spawners.items()):
                    if spawner.active and not spawner.pending:
                        await handler.stop_single_user(user, name)
            ended.append(user.name)
        return ended
