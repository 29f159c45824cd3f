"""The authenticator's request handlers: login pages that explain a refused or
unavailable login, the OAuth login and callback, RP-initiated logout and the page that
confirms it, the back-channel logout endpoint Keycloak calls when it ends a session,
and the API that hands out a person's fresh access token (to the jobs service, and to
the person's own notebook).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from html import escape
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from jupyterhub.apihandlers import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.user import User
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.log import app_log

from . import notebook_token
from .oidc import KeycloakUnavailable, TokenInvalid

if TYPE_CHECKING:
    from .authenticator import KeycloakAuthenticator

PROBLEM_ATTR = "_valeria_auth_problem"

# Set by the logout: the hub's login page, where the person comes back (from Keycloak's
# logout too), then says once that they are logged out instead of showing the login form.
LOGGED_OUT_COOKIE = "valeria-logged-out"
LOGGED_OUT_MAX_AGE = 600

UNAVAILABLE_MESSAGE = (
    "The login service (Keycloak) cannot be reached right now, so your sign-in cannot be "
    "renewed. Your session is kept: try again in a few minutes. If this lasts, tell the "
    "platform's support team."
)


def local_path(url: str | None) -> str | None:
    """``url`` if it is a path on this site, else None: a link on our pages never sends
    a person to another site (``//evil.example``, ``https://...``, ``/\\evil``)."""
    if not url or not url.startswith("/") or url.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 0x20 or c == "\\" for c in url):
        return None
    parts = urlsplit(url)
    return url if not parts.scheme and not parts.netloc else None


class AuthProblem(web.HTTPError):
    """An HTTP error page with a message a person can act on and a link to go on."""

    def __init__(self, status: int, message: str, link: str | None = None, label: str = ""):
        super().__init__(status, "%s", message, reason=None)
        html = f"<p>{escape(message)}</p>"
        link = local_path(link)
        if link:
            html += f'<p><a class="btn btn-primary" href="{escape(link)}">{escape(label)}</a></p>'
        # JupyterHub's error page shows these instead of the bare status text
        self.jupyterhub_message = message
        self.jupyterhub_html_message = html


class ClaimProblem(AuthProblem):
    """400: the tokens are genuine but do not say who the person is in a usable way
    (no username claim, or one the hub cannot use). Nothing the person can fix: the
    login service's or the hub's configuration must change."""

    def __init__(self, problem: str, link: str | None = None) -> None:
        super().__init__(
            400,
            f"The login service signed you in, but {problem}. "
            "Please tell the platform's support team.",
            link,
            "Sign in again",
        )
        self.problem = problem


def unavailable(link: str | None = None) -> AuthProblem:
    """503: Keycloak is down or failing; nothing the user did wrong."""
    return AuthProblem(503, UNAVAILABLE_MESSAGE, link, "Try again")


def end_session_url(
    endpoint: str, *, client_id: str, post_logout_redirect_uri: str, id_token: str | None
) -> str:
    """Keycloak's RP-initiated logout URL (OIDC RP-Initiated Logout 1.0)."""
    params = []
    if id_token:
        params.append(("id_token_hint", id_token))
    params += [("client_id", client_id), ("post_logout_redirect_uri", post_logout_redirect_uri)]
    sep = "&" if "?" in endpoint else "?"
    return f"{endpoint}{sep}{urlencode(params)}"


# Query parameters that may appear in a log line as they are; every other value (the
# callback's code, state, session_state...) is replaced.
LOGGABLE_QUERY = frozenset({"error", "error_description", "next"})


def scrub_uri(uri: str) -> str:
    """``uri`` with the value of every query parameter not in LOGGABLE_QUERY removed."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        parts.append(item if key in LOGGABLE_QUERY or not eq else f"{key}=[removed]")
    return f"{path}?{'&'.join(parts)}"


class ScrubbedLog:
    """Tornado logs a failed request with its full URI (``_request_summary``) and, for
    an unexpected exception, the request's repr: both would carry the authorization
    code and state of ``/hub/oauth_callback``. These handlers log a scrubbed URI."""

    request: Any

    def _request_summary(self) -> str:
        req = self.request
        return f"{req.method} {scrub_uri(req.uri or '')} ({req.remote_ip})"

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, web.HTTPError):
            super().log_exception(typ, value, tb)  # type: ignore[misc]
            return
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))


def _state_id(raw: str) -> str:
    """The ``state_id`` of oauthenticator's serialized state; "" when unreadable.

    oauthenticator's own decoder logs the raw state when it cannot read it."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")).decode("utf-8"))
    except ValueError:  # binascii.Error, UnicodeError and JSONDecodeError are ValueErrors
        return ""
    state_id = doc.get("state_id") if isinstance(doc, dict) else None
    return state_id if isinstance(state_id, str) else ""


class KeycloakPageLoginHandler(ScrubbedLog, LoginHandler):
    """``/hub/login``: shows why a signed-in user cannot go on, instead of a bare form.

    When ``refresh_user`` fails while identifying the request it records the reason on
    the handler (JupyterHub swallows errors there and treats the user as logged out).
    """

    async def get(self) -> None:
        problem: AuthProblem | None = getattr(self, PROBLEM_ATTR, None)
        if problem is not None and self.current_user is None:
            raise problem
        if self.get_cookie(LOGGED_OUT_COOKIE) is not None:
            self.clear_cookie(LOGGED_OUT_COOKIE, path=self.hub.base_url)
            if self.current_user is None:
                await self.render_logged_out()
                return
        await super().get()

    async def render_logged_out(self) -> None:
        """The logout's confirmation (logout.html), with a link to log in again."""
        html = await self.render_template(
            "logout.html", login_again_url=self.authenticator.login_url(self.hub.base_url)
        )
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


class KeycloakLoginHandler(ScrubbedLog, OAuthLoginHandler):
    """``/hub/oauth_login``: needs the discovery document before redirecting."""

    async def get(self) -> None:  # type: ignore[override]
        authenticator: KeycloakAuthenticator = self.authenticator
        try:
            await authenticator.discover()
        except KeycloakUnavailable as e:
            self.log.warning("Keycloak discovery failed: %s", e)
            raise unavailable(self.request.uri) from None
        super().get()


class KeycloakCallbackHandler(ScrubbedLog, OAuthCallbackHandler):
    """``/hub/oauth_callback``: an error from Keycloak or a malformed answer is a 4xx
    page that says what is wrong, never a 500; neither code nor state is logged."""

    def _again(self, status: int, message: str) -> AuthProblem:
        login = self.authenticator.login_url(self.hub.base_url)
        return AuthProblem(status, message, login, "Sign in again")

    def check_code(self) -> None:
        if not self.get_argument("code", ""):
            raise self._again(400, "The login service's answer has no authorization code.")

    def check_state(self) -> None:
        """oauthenticator's check, without its log line of both state values."""
        cookie_state = self.get_state_cookie()
        url_state = self.get_argument("state", "")
        if not cookie_state:
            raise self._again(
                400,
                "This sign-in was not started in this browser, or took too long "
                "(no sign-in state cookie).",
            )
        if not url_state:
            raise self._again(400, "The login service's answer has no state parameter.")
        expected, got = _state_id(cookie_state), _state_id(url_state)
        if not expected or not hmac.compare_digest(expected.encode(), got.encode()):
            raise self._again(
                400, "The login service's answer belongs to another sign-in (state mismatch)."
            )

    def check_error(self) -> None:
        error = self.get_argument("error", "")
        if error:
            description = self.get_argument("error_description", error)
            login = self.authenticator.login_url(self.hub.base_url)
            raise AuthProblem(
                400 if error != "access_denied" else 403,
                f"The login service did not sign you in ({description}).",
                login,
                "Sign in again",
            )


class KeycloakLogoutHandler(ScrubbedLog, OAuthLogoutHandler):
    """``/hub/logout``: ends the hub session, then the Keycloak session (RP logout)."""

    _id_token: str | None = None

    async def default_handle_logout(self) -> None:
        user = self.current_user
        if user:
            authenticator: KeycloakAuthenticator = self.authenticator
            self._id_token = await authenticator.forget_tokens(user)
            await authenticator.tell_services(self, [user.name])
        await super().default_handle_logout()

    async def render_logout_page(self) -> None:
        authenticator: KeycloakAuthenticator = self.authenticator
        if authenticator.logout_redirect_url:  # the operator's own page
            await super().render_logout_page()
            return
        # the login page, where the person lands next, confirms the logout; a cookie and
        # not a URL of its own, so Keycloak's post-logout redirect URIs stay as they are
        self._set_cookie(
            LOGGED_OUT_COOKIE,
            "1",
            encrypted=False,
            path=self.hub.base_url,
            max_age=LOGGED_OUT_MAX_AGE,
            samesite="Lax",  # sent on the top-level redirect back from Keycloak
        )
        if not authenticator.end_keycloak_session:
            await super().render_logout_page()
            return
        target = authenticator.post_logout_url(self)
        try:
            meta = await authenticator.discover()
        except KeycloakUnavailable as e:
            self.log.warning("Keycloak logout skipped, discovery failed: %s", e)
            self.redirect(target)
            return
        if not meta.end_session_endpoint:
            self.redirect(target)
            return
        self.redirect(
            end_session_url(
                meta.end_session_endpoint,
                client_id=authenticator.client_id,
                post_logout_redirect_uri=target,
                id_token=self._id_token,
            )
        )


class BackchannelLogoutHandler(ScrubbedLog, BaseHandler):
    """``/hub/backchannel-logout``: Keycloak's signed logout token ends a hub session.

    OIDC Back-Channel Logout 1.0: the token comes as the ``logout_token`` form field;
    200 when handled, 400 ``invalid_request`` for a token that does not verify.
    """

    def check_xsrf_cookie(self) -> None:
        """No cookies here: the signed logout token is the authentication."""

    def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
        else:
            self.finish()

    async def post(self) -> None:
        authenticator: KeycloakAuthenticator = self.authenticator
        token = self.get_body_argument("logout_token", default="")
        if not token:
            self._answer(400, {"error": "invalid_request", "error_description": "no logout_token"})
            return
        try:
            claims = await authenticator.verify_logout_token(token)
        except TokenInvalid as e:
            self.log.warning("Refused a back-channel logout token: %s", e)
            self._answer(400, {"error": "invalid_request", "error_description": str(e)})
            return
        except KeycloakUnavailable as e:
            # the keys could not be fetched: Keycloak may retry, so not a 400
            self.log.warning("Back-channel logout: cannot verify now: %s", e)
            self._answer(503, {"error": "temporarily_unavailable", "error_description": str(e)})
            return
        ended = await authenticator.end_sessions(self, claims)
        await authenticator.tell_services(self, ended)
        self.log.info(
            "Back-channel logout ended the hub session of %s", ", ".join(ended) or "nobody"
        )
        self._answer(200)


FRESH_TOKENS_PATH = r"/api/valeria/users/([^/]+)/fresh-tokens"


class FreshTokensHandler(ScrubbedLog, APIHandler):
    """``/hub/api/valeria/users/NAME/fresh-tokens?min_validity=S``: the person's access
    token, refreshed first when it expires within S seconds. Never the refresh or ID token.

    ``POST``, for a service holding ``admin:auth_state`` (it may read the tokens anyway):
    the jobs service calls it before logging in to Vault with the person's token, so a job
    submission never meets a token in its last seconds. 401 when only a new login helps.

    ``GET``, for the person's own tokens with ``custom:valeria:keycloak-token`` (their
    notebook server's ``JUPYTERHUB_API_TOKEN`` has it; ``valeria-hub token`` calls this):
    only ever the token's own user's access token, whatever scopes the caller holds, and
    only to a token sent with the request (never to the login cookie).
    """

    async def get(self, user_name: str) -> None:
        """The caller's own access token, refreshed first when it would not last."""
        caller = self.current_user
        if caller is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if self.get_token() is None:
            # the login cookie: a page on the hub's origin (another person's notebook
            # page, without subdomain_host) could open this URL and read the answer
            raise web.HTTPError(403, notebook_token.COOKIE_REFUSED)
        if not isinstance(caller, User):
            raise web.HTTPError(403, notebook_token.not_own_token("service", caller.name))
        if caller.name != user_name:
            raise web.HTTPError(403, notebook_token.not_own_token("user", caller.name))
        if not self.has_scope(f"{notebook_token.KEYCLOAK_TOKEN_SCOPE}!user={user_name}"):
            raise web.HTTPError(403, notebook_token.scope_missing())
        try:
            min_validity = notebook_token.parse_min_validity(
                self.get_argument("min_validity", None)
            )
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        state = await caller.get_auth_state()
        decision = notebook_token.decide(state, min_validity, time.time())
        if decision.action is notebook_token.Action.REFRESH:
            authenticator: KeycloakAuthenticator = self.authenticator
            try:
                result = await authenticator.fresh_tokens(caller, decision.refresh_validity)
            except AuthProblem as e:
                raise web.HTTPError(503, e.jupyterhub_message) from None
            if result is False:
                raise web.HTTPError(401, notebook_token.LOGIN_MESSAGE)
            if isinstance(result, dict):
                await self.auth_to_user(result, caller)  # roles and groups from the new token
            state = await caller.get_auth_state()
            decision = notebook_token.decide(state, min_validity, time.time(), may_refresh=False)
        if decision.action is not notebook_token.Action.SERVE:
            status, message = notebook_token.refusal(decision, min_validity)
            raise web.HTTPError(status, message)
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(notebook_token.token_answer(state or {}, time.time())))

    @needs_scope("admin:auth_state")
    async def post(self, user_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404)
        try:
            min_validity = float(self.get_argument("min_validity", "30"))
        except ValueError:
            raise web.HTTPError(400, "min_validity must be a number of seconds") from None
        if not 0 <= min_validity <= 3600:
            raise web.HTTPError(400, "min_validity must be between 0 and 3600 seconds")
        authenticator: KeycloakAuthenticator = self.authenticator
        try:
            result = await authenticator.fresh_tokens(user, min_validity)
        except AuthProblem as e:
            raise web.HTTPError(503, e.jupyterhub_message) from None
        if result is False:
            raise web.HTTPError(401, "the person must log in again")
        if isinstance(result, dict):
            await self.auth_to_user(result, user)  # roles and groups from the new token
        state = await user.get_auth_state() or {}
        self.write(
            json.dumps(
                {
                    "access_token": state.get("access_token"),
                    "access_token_expires_at": state.get("access_token_expires_at"),
                }
            )
        )
