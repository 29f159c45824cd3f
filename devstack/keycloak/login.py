"""Browser side of the Keycloak stand-in: the login form, the SSO cookie, and logout.

``/auth`` validates the client, redirect URI, scope and PKCE parameters as Keycloak
does (bad client or redirect URI: an error page; anything else: an error sent back to
the redirect URI), then either reuses a live SSO session or renders the login form.
``/logout`` ends the session, clears the cookies and sends back-channel logouts.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from urllib.parse import urlencode

from aiohttp import web

from . import pages
from .model import (
    AuthCode,
    Client,
    LoginAttempt,
    OAuthError,
    UserSession,
    check_pkce_request,
    check_scope,
    post_logout_uri_allowed,
    resolve_redirect_uri,
)
from .tokens import TokenInvalid


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _with_query(uri: str, params: list[tuple[str, str | None]]) -> str:
    query = urlencode([(k, v) for k, v in params if v is not None])
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


class LoginMixin:
    """Handlers of KeycloakStandIn for the browser flow (uses its sessions and keys)."""

    # -- browser login ------------------------------------------------------------------
    async def _auth(self, request: web.Request) -> web.StreamResponse:
        params = request.query if request.method == "GET" else await request.post()
        realm = self.realm.name
        client_id = params.get("client_id")
        if not client_id:
            return pages.error_page(realm, "Missing parameter: client_id")
        client = self.realm.clients.get(client_id)
        if client is None or not client.enabled:
            return pages.error_page(realm, "Client not found.")
        if client.bearer_only:
            return pages.error_page(
                realm, "Bearer-only applications are not allowed to initiate browser login."
            )
        redirect_uri = resolve_redirect_uri(params.get("redirect_uri"), client)
        if redirect_uri is None:
            return pages.error_page(realm, "Invalid parameter: redirect_uri")
        issuer = self._issuer_for(request)
        state = params.get("state")

        def back(error: str, description: str | None = None) -> web.Response:
            target = _with_query(
                redirect_uri,
                [("error", error), ("error_description", description), ("state", state),
                 ("iss", issuer)],
            )  # fmt: skip
            raise web.HTTPFound(target)

        response_type = params.get("response_type")
        if not response_type:
            back("invalid_request", "Missing parameter: response_type")
        if response_type != "code":
            back("unsupported_response_type", "Unsupported response_type")
        if not client.standard_flow:
            back(
                "unauthorized_client",
                "Client is not allowed to initiate browser login with given response_type. "
                "Standard flow is disabled for the client.",
            )
        try:
            scope = check_scope(params.get("scope"))
            method = check_pkce_request(
                client, params.get("code_challenge"), params.get("code_challenge_method")
            )
        except OAuthError as e:
            back(e.error, e.description)
        prompt = params.get("prompt", "")
        attempt = LoginAttempt(
            tab_id=secrets.token_urlsafe(8),
            root_id="",
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            created=self.clock(),
            session_code=secrets.token_urlsafe(32),
            execution=self._execution,
            state=state,
            nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge"),
            code_challenge_method=method,
        )
        session = self._session_from_cookie(request)
        if session is not None and "login" not in prompt.split():
            return self._finish_login(issuer, attempt, client, session, acr="0")
        if "none" in prompt.split():
            back("login_required")
        attempt.root_id = request.cookies.get("AUTH_SESSION_ID") or secrets.token_urlsafe(24)
        self._prune()
        self.logins[attempt.tab_id] = attempt
        resp = pages.login_page(realm, self._login_action_url(issuer, attempt))
        resp.set_cookie("AUTH_SESSION_ID", attempt.root_id, path=self.cookie_path, httponly=True)
        return resp

    def _login_action_url(self, issuer: str, attempt: LoginAttempt) -> str:
        return _with_query(
            f"{issuer}/login-actions/authenticate",
            [("session_code", attempt.session_code), ("execution", attempt.execution),
             ("client_id", attempt.client_id), ("tab_id", attempt.tab_id)],
        )  # fmt: skip

    def _finish_login(
        self,
        issuer: str,
        attempt: LoginAttempt,
        client: Client,
        session: UserSession,
        acr: str,
    ) -> web.StreamResponse:
        self._attach(session, client, attempt.scope, attempt.nonce, acr)
        code = f"{uuid.uuid4()}.{session.id}.{uuid.uuid5(uuid.NAMESPACE_URL, client.client_id)}"
        self.codes[code] = AuthCode(
            code=code,
            client_id=client.client_id,
            redirect_uri=attempt.redirect_uri,
            session_id=session.id,
            expires=self.clock() + self.realm.settings.access_code_lifespan,
            code_challenge=attempt.code_challenge,
            code_challenge_method=attempt.code_challenge_method,
        )
        target = _with_query(
            attempt.redirect_uri,
            [("state", attempt.state), ("session_state", session.id), ("iss", issuer),
             ("code", code)],
        )  # fmt: skip
        resp = _redirect(target)
        self._set_sso_cookies(resp, session)
        return resp

    def _prune(self) -> None:
        now = self.clock()
        lifespan = self.realm.settings.access_code_lifespan_login
        self.logins = {k: a for k, a in self.logins.items() if now < a.created + lifespan}
        self.codes = {k: c for k, c in self.codes.items() if now < c.expires + 300}

    async def _login_action(self, request: web.Request) -> web.StreamResponse:
        realm = self.realm.name
        q = request.query
        root = request.cookies.get("AUTH_SESSION_ID")
        if not root:
            return pages.error_page(
                realm, "Cookie not found. Please make sure cookies are enabled in your browser."
            )
        self._prune()
        attempt = self.logins.get(q.get("tab_id", ""))
        if attempt is None or attempt.root_id != root or attempt.client_id != q.get("client_id"):
            return pages.error_page(
                realm, "Your login attempt timed out. Login will start from the beginning."
            )
        issuer = self._issuer_for(request)
        form = await request.post()
        submitted = q.get("session_code") or ""
        current, attempt.session_code = attempt.session_code, secrets.token_urlsafe(32)
        action = self._login_action_url(issuer, attempt)
        if not hmac.compare_digest(submitted.encode(), current.encode()):
            return pages.login_page(
                realm, action, alert="Action expired. Please continue with login now."
            )
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        user = self.realm.find_login(username) if username else None
        if (
            user is None
            or user.password is None
            or not hmac.compare_digest(user.password.encode(), password.encode())
        ):
            return pages.login_page(
                realm, action, username=username, field_error="Invalid username or password."
            )
        if not user.enabled:
            return pages.login_page(
                realm, action, username=username,
                alert="Account is disabled, contact your administrator.",
            )  # fmt: skip
        del self.logins[attempt.tab_id]
        client = self.realm.clients[attempt.client_id]
        session = self._session_from_cookie(request)
        if session is None or session.user_id != user.id:
            session = self._new_session(user, issuer)
        else:
            session.started = session.last_refresh = self.clock()
        return self._finish_login(issuer, attempt, client, session, acr="1")

    # -- logout -------------------------------------------------------------------------
    async def _logout(self, request: web.Request) -> web.StreamResponse:
        params = request.query if request.method == "GET" else await request.post()
        realm = self.realm.name
        issuer = self._issuer_for(request)
        hint = params.get("id_token_hint")
        client_id = params.get("client_id")
        target = params.get("post_logout_redirect_uri")
        hint_sid = None
        if hint:
            try:
                claims = self.keys.decode(str(hint))
            except TokenInvalid:
                return pages.error_page(realm, "Invalid parameter: id_token_hint")
            if claims.get("typ") != "ID" or claims.get("iss") != issuer:
                return pages.error_page(realm, "Invalid parameter: id_token_hint")
            if client_id and client_id != claims.get("azp"):
                return pages.error_page(
                    realm,
                    "Parameter client_id different than the client for which ID Token was issued",
                )
            client_id, hint_sid = claims.get("azp"), claims.get("sid")
        client = self.realm.clients.get(client_id) if client_id else None
        if client_id and client is None:
            return pages.error_page(realm, "Invalid parameter: client_id")
        if target:
            if client is None:
                return pages.error_page(realm, "Missing parameters: id_token_hint")
            if not post_logout_uri_allowed(str(target), client):
                return pages.error_page(realm, "Invalid redirect uri")
        state = params.get("state")
        if hint_sid is None:
            code = secrets.token_urlsafe(32)
            self.logout_requests[code] = {"target": target, "state": state}
            action = f"{issuer}/protocol/openid-connect/logout/logout-confirm"
            return pages.logout_confirm_page(realm, action, code)
        session = self.sessions.get(hint_sid) or self._session_from_cookie(request)
        if session is not None:
            await self._end_session(session)
        return self._logged_out(target, state)

    async def _logout_confirm(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        pending = self.logout_requests.pop(str(form.get("session_code", "")), None)
        if pending is None:
            return pages.error_page(self.realm.name, "Logout failed")
        session = self._session_from_cookie(request)
        if session is not None:
            await self._end_session(session)
        return self._logged_out(pending["target"], pending["state"])

    def _logged_out(self, target: str | None, state: str | None) -> web.StreamResponse:
        if target:
            resp: web.StreamResponse = _redirect(_with_query(target, [("state", state)]))
        else:
            resp = pages.info_page(self.realm.name, "You are logged out", "Logging out")
        self._clear_sso_cookies(resp)
        return resp
