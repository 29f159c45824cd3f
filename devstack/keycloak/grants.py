"""The token endpoint of the Keycloak stand-in, with Keycloak's error answers.

Grant type checks come first, then client authentication (client_secret_basic or
client_secret_post), then the grant: authorization_code (single use, bound to client
and redirect URI, PKCE), refresh_token (rotation, reuse detection in "revoke refresh
token" mode, which detaches the client from the session), password (only with direct
access grants) and client_credentials (only with service accounts).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from .model import Client, OAuthError, check_pkce_verifier, check_scope
from .tokens import TokenInvalid

GRANTS = ("authorization_code", "refresh_token", "password", "client_credentials")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(e: OAuthError) -> web.Response:
    return web.json_response(e.body(), status=e.status, headers=NO_STORE)


class TokenMixin:
    """The token endpoint of KeycloakStandIn (uses its realm, sessions and keys)."""

    # -- the token endpoint -------------------------------------------------------------
    def _authenticate_client(self, request: web.Request, form: Any) -> Client:
        """client_secret_basic or client_secret_post, with Keycloak's answers."""
        client_id = secret = None
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(header[6:].strip(), validate=True).decode()
                cid, _, sec = raw.partition(":")
                client_id, secret = unquote_plus(cid), unquote_plus(sec)
            except (binascii.Error, UnicodeDecodeError):
                client_id = secret = None
        elif header and "client_id" not in form:
            raise OAuthError(401, "invalid_client", "Invalid client or Invalid client credentials")
        client_id = form.get("client_id", client_id)
        secret = form.get("client_secret", secret)
        if not client_id:
            raise OAuthError(400, "invalid_client", "Missing client_id parameter")
        client = self.realm.clients.get(client_id)
        if client is None or not client.enabled:
            raise OAuthError(401, "invalid_client", "Invalid client or Invalid client credentials")
        if client.public:
            return client
        if (
            secret is None
            or client.secret is None
            or not hmac.compare_digest(secret.encode(), client.secret.encode())
        ):
            raise OAuthError(
                401, "unauthorized_client", "Invalid client or Invalid client credentials"
            )
        if client.bearer_only:
            raise OAuthError(400, "invalid_client", "Bearer-only not allowed")
        return client

    @staticmethod
    def _claimed_client(request: web.Request, form: Any) -> str:
        if form.get("client_id"):
            return str(form["client_id"])
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(header[6:].strip()).decode()
                return unquote_plus(raw.partition(":")[0])
            except (binascii.Error, UnicodeDecodeError):
                return ""
        return ""

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        self.token_calls[(grant, self._claimed_client(request, form))] += 1
        issuer = self._issuer_for(request)
        try:
            if not grant:
                raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
            if grant not in GRANTS:
                raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type")
            client = self._authenticate_client(request, form)
            handler = getattr(self, f"_grant_{grant}")
            body = await handler(form, client, issuer)
        except OAuthError as e:
            return oauth_error_response(e)
        return web.json_response(body, headers=NO_STORE)

    async def _grant_authorization_code(self, form: Any, client: Client, issuer: str) -> dict:
        raw = form.get("code")
        if not raw:
            raise OAuthError(400, "invalid_request", "Missing parameter: code")
        code = self.codes.get(raw)
        if code is None:
            raise OAuthError(400, "invalid_grant", "Code not valid")
        session = self.sessions.get(code.session_id)
        if code.used:
            if session is not None:
                await self._detach(session, code.client_id)
            raise OAuthError(400, "invalid_grant", "Code not valid")
        code.used = True
        if self.clock() > code.expires:
            raise OAuthError(400, "invalid_grant", "Code is expired")
        if not client.standard_flow:
            raise OAuthError(400, "unauthorized_client", "Client not allowed to exchange code")
        if code.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Auth error")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "Incorrect redirect_uri")
        check_pkce_verifier(
            code.code_challenge, code.code_challenge_method, form.get("code_verifier")
        )
        session = self._live_session(code.session_id)
        if session is None:
            raise OAuthError(400, "invalid_grant", "Session not active")
        csession = session.clients.get(client.client_id)
        user = self.realm.user_by_id(session.user_id)
        if csession is None or user is None:
            raise OAuthError(400, "invalid_grant", "Code not valid")
        if not user.enabled:
            raise OAuthError(400, "invalid_grant", "User disabled")
        return self._issue(user, client, session, csession, issuer)

    async def _grant_refresh_token(self, form: Any, client: Client, issuer: str) -> dict:
        raw = form.get("refresh_token")
        if not raw:
            raise OAuthError(400, "invalid_request", "Missing parameter: refresh_token")
        try:
            claims = self.keys.decode(raw, hmac=True)
        except TokenInvalid:
            raise OAuthError(400, "invalid_grant", "Invalid refresh token") from None
        if claims.get("typ") != "Refresh" or claims.get("iss") != issuer:
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        now = self.clock()
        if now > claims.get("exp", 0):
            raise OAuthError(400, "invalid_grant", "Token is not active")
        if claims.get("azp") != client.client_id:
            raise OAuthError(
                400,
                "invalid_grant",
                "Invalid refresh token. Token client and authorized client don't match",
            )
        session = self._live_session(claims.get("sid"))
        if session is None:
            raise OAuthError(400, "invalid_grant", "Session not active")
        csession = session.clients.get(client.client_id)
        if csession is None:
            raise OAuthError(400, "invalid_grant", "Session doesn't have required client")
        user = self.realm.user_by_id(session.user_id)
        if user is None or not user.enabled:
            raise OAuthError(400, "invalid_grant", "User disabled")
        settings = self.realm.settings
        if settings.revoke_refresh_token:
            uses = csession.refresh_uses.get(claims["jti"], 0)
            if uses > settings.refresh_token_max_reuse:
                await self._detach(session, client.client_id, quietly=True)
                raise OAuthError(
                    400, "invalid_grant", "Maximum allowed refresh token reuse exceeded"
                )
            csession.refresh_uses[claims["jti"]] = uses + 1
        session.last_refresh = now
        return self._issue(user, client, session, csession, issuer)

    async def _grant_password(self, form: Any, client: Client, issuer: str) -> dict:
        if not client.direct_access_grants:
            raise OAuthError(
                400, "unauthorized_client", "Client not allowed for direct access grants"
            )
        user = self.realm.find_login(str(form.get("username", "")))
        password = str(form.get("password", ""))
        if (
            user is None
            or user.password is None
            or not hmac.compare_digest(user.password.encode(), password.encode())
        ):
            status = self.realm.settings.password_grant_error_status
            raise OAuthError(status, "invalid_grant", "Invalid user credentials")
        if not user.enabled:
            raise OAuthError(400, "invalid_grant", "Account disabled")
        scope = check_scope(form.get("scope"))
        session = self._new_session(user, issuer)
        csession = self._attach(session, client, scope, None, "1")
        return self._issue(user, client, session, csession, issuer)

    async def _grant_client_credentials(self, form: Any, client: Client, issuer: str) -> dict:
        if client.public:
            raise OAuthError(
                400, "unauthorized_client", "Public client not allowed to retrieve service account"
            )
        if not client.service_accounts:
            raise OAuthError(
                400, "unauthorized_client", "Client not enabled to retrieve service account"
            )
        scope = check_scope(form.get("scope"))
        user = self.realm.service_account(client.client_id)
        session = self._new_session(user, issuer, service_account=True)
        csession = self._attach(session, client, scope, None, "1")
        return self._issue(user, client, session, csession, issuer, refresh=False)
