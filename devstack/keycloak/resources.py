"""Endpoints of the Keycloak stand-in that take a token: userinfo, introspection and
the admin API's user lookups (which need the realm-management ``view-users`` role).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .claims import profile_claims, search_users, user_representation
from .grants import NO_STORE, oauth_error_response
from .model import OAuthError
from .tokens import TokenInvalid

VIEW_ROLES = {"view-users", "manage-users", "realm-admin"}
QUERY_ROLES = VIEW_ROLES | {"query-users"}


class ResourceMixin:
    """Userinfo, introspection and admin handlers of KeycloakStandIn."""

    # -- resource endpoints -------------------------------------------------------------
    def verify_access_token(self, token: str, issuer: str | None = None) -> dict[str, Any]:
        """Claims of a valid access token (signature, typ, issuer, expiry, revocation)."""
        claims = self.keys.decode(token)
        if claims.get("typ") != "Bearer" or claims.get("iss") != (issuer or self.issuer):
            raise TokenInvalid("not an access token of this realm")
        if self.clock() > claims.get("exp", 0):
            raise TokenInvalid("expired")
        issued = self._access_issued.get(claims.get("jti", ""))
        if self.access_cutoff is not None and (issued is None or issued <= self.access_cutoff):
            raise TokenInvalid("expired by the realm")
        return claims

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip() or None
        return None

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None and request.method == "POST":
            token = (await request.post()).get("access_token")

        def fail(error: str, description: str) -> web.Response:
            challenge = (
                f'Bearer realm="{self.realm.name}", error="{error}", '
                f'error_description="{description}"'
            )
            return web.json_response(
                {"error": error, "error_description": description},
                status=401,
                headers={"WWW-Authenticate": challenge, **NO_STORE},
            )

        if not token:
            return fail("invalid_request", "Token not provided")
        try:
            claims = self.verify_access_token(str(token), self._issuer_for(request))
        except TokenInvalid:
            return fail("invalid_token", "Token verification failed")
        session = self._live_session(claims.get("sid"))
        if session is None or claims.get("azp") not in session.clients:
            return fail(
                "invalid_token", "User session not found or doesn't have client attached on it"
            )
        user = self.realm.user_by_id(session.user_id)
        if user is None or not user.enabled:
            return fail("invalid_token", "User disabled")
        return web.json_response({"sub": user.id, **profile_claims(self.realm, user)})

    async def _introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            client = self._authenticate_client(request, form)
        except OAuthError as e:
            return oauth_error_response(e)
        if client.public:
            return web.json_response(
                {"error": "invalid_request", "error_description": "Client not allowed."},
                status=403,
            )
        token = form.get("token")
        if not token:
            return web.json_response(
                {"error": "invalid_request", "error_description": "Token not provided."},
                status=400,
            )
        claims = self._introspect_claims(str(token), self._issuer_for(request))
        if claims is None:
            return web.json_response({"active": False})
        claims.update(
            client_id=claims.get("azp"),
            username=claims.get("preferred_username"),
            token_type=claims.get("typ"),
            active=True,
        )
        return web.json_response(claims)

    def _introspect_claims(self, token: str, issuer: str) -> dict[str, Any] | None:
        try:
            claims = self.verify_access_token(token, issuer)
        except TokenInvalid:
            try:
                claims = self.keys.decode(token, hmac=True)
            except TokenInvalid:
                return None
            if claims.get("typ") != "Refresh" or claims.get("iss") != issuer:
                return None
            if self.clock() > claims.get("exp", 0):
                return None
        session = self._live_session(claims.get("sid"))
        if session is None or claims.get("azp") not in session.clients:
            return None
        return claims

    # -- admin API ----------------------------------------------------------------------
    def _admin_caller(self, request: web.Request) -> tuple[set[str], web.Response | None]:
        """The caller's realm-management roles, or the 401 Keycloak answers."""
        unauthorized = web.json_response({"error": "HTTP 401 Unauthorized"}, status=401)
        token = self._bearer(request)
        if not token:
            return set(), unauthorized
        try:
            claims = self.verify_access_token(token, self._issuer_for(request))
        except TokenInvalid:
            return set(), unauthorized
        user = self.realm.user_by_id(claims.get("sub", ""))
        if user is None or not user.enabled:
            return set(), unauthorized
        _, client_roles = self.realm.roles(user)
        return set(client_roles.get("realm-management", [])), None

    async def _admin_users(self, request: web.Request) -> web.Response:
        roles, denied = self._admin_caller(request)
        if denied is not None:
            return denied
        if not roles & QUERY_ROLES:
            return web.json_response({"error": "HTTP 403 Forbidden"}, status=403)
        if not roles & VIEW_ROLES:
            return web.json_response([])
        manage = bool(roles & {"manage-users", "realm-admin"})
        try:
            users = search_users(self.realm, dict(request.query))
        except ValueError:
            return web.json_response({"error": "HTTP 400 Bad Request"}, status=400)
        return web.json_response([user_representation(u, manage) for u in users])

    async def _admin_user(self, request: web.Request) -> web.Response:
        roles, denied = self._admin_caller(request)
        if denied is not None:
            return denied
        if not roles & VIEW_ROLES:
            return web.json_response({"error": "HTTP 403 Forbidden"}, status=403)
        user = self.realm.user_by_id(request.match_info["user_id"])
        if user is None:
            return web.json_response({"error": "User not found"}, status=404)
        manage = bool(roles & {"manage-users", "realm-admin"})
        return web.json_response(user_representation(user, manage))
