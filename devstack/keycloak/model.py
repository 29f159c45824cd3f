"""The realm a Keycloak stand-in serves: users, groups, clients, sessions, codes.

Plain data plus the pure decisions Keycloak makes (redirect-URI matching, PKCE,
scope checks, role and group resolution). The HTTP layer only moves data in and out
of these; the token claim layout is in ``keycloak_claims``.

A realm definition is a dict (or a YAML/JSON file) in snake_case; the camelCase keys
of a Keycloak realm export are accepted for the common fields too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ACCOUNT_ROLES = ["manage-account", "manage-account-links", "view-profile"]
DEFAULT_SCOPES = ("email", "profile")
# Scopes Keycloak knows but leaves out of the token's ``scope`` claim.
HIDDEN_SCOPES = {"roles", "web-origins", "acr", "basic"}
OPTIONAL_SCOPES = {"address", "phone", "offline_access", "microprofile-jwt", "organization"}
PKCE_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
USER_FIELDS = {
    "username",
    "id",
    "password",
    "email",
    "first_name",
    "last_name",
    "email_verified",
    "enabled",
    "realm_roles",
    "client_roles",
    "groups",
    "created_timestamp",
}
ALIASES = {
    "public_client": "public",
    "direct_access_grants_enabled": "direct_access_grants",
    "service_accounts_enabled": "service_accounts",
    "standard_flow_enabled": "standard_flow",
    "sub_groups": "subgroups",
    "realm": "name",
    "access_code_lifespan_user_action": "access_code_lifespan_login",
}


class OAuthError(Exception):
    """An OAuth error answer: HTTP status, ``error`` and ``error_description``."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description is not None:
            out["error_description"] = self.description
        return out


def _snake(key: str) -> str:
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower().replace("-", "_")
    return ALIASES.get(key, key)


def _keys(d: dict[str, Any]) -> dict[str, Any]:
    """Snake-case one level of keys (values such as role maps keep their client ids)."""
    return {_snake(k): v for k, v in d.items()}


def load_definition(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read a realm definition from a dict or a .yaml/.yml/.json file."""
    if isinstance(source, dict):
        return source
    text = Path(source).read_text()
    if str(source).endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- configuration -------------------------------------------------------------------


@dataclass
class Settings:
    """Realm-wide settings, lifetimes in seconds (Keycloak's defaults)."""

    name: str = "valeria"
    access_token_lifespan: int = 300
    sso_session_idle_timeout: int = 1800
    sso_session_max_lifespan: int = 36000
    access_code_lifespan: int = 60
    access_code_lifespan_login: int = 1800
    revoke_refresh_token: bool = False
    refresh_token_max_reuse: int = 0
    groups_claim: bool = True
    groups_full_path: bool = True
    login_with_email_allowed: bool = True
    # Keycloak answers a wrong ROPC password with 401 up to 26.5, 400 from 26.6 on.
    password_grant_error_status: int = 401

    LIFETIMES = (
        "access_token_lifespan",
        "sso_session_idle_timeout",
        "sso_session_max_lifespan",
        "access_code_lifespan",
        "access_code_lifespan_login",
    )


@dataclass
class Group:
    name: str
    path: str
    realm_roles: list[str] = field(default_factory=list)
    client_roles: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class User:
    username: str
    id: str
    password: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_verified: bool = True
    enabled: bool = True
    realm_roles: list[str] = field(default_factory=list)
    client_roles: dict[str, list[str]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    created_timestamp: int = 0
    service_account_client: str | None = None

    @property
    def full_name(self) -> str | None:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or None


@dataclass
class Client:
    client_id: str
    secret: str | None = None
    public: bool = False
    bearer_only: bool = False
    enabled: bool = True
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=lambda: ["+"])
    pkce_method: str | None = None
    standard_flow: bool = True
    direct_access_grants: bool = False
    service_accounts: bool = False
    service_account_realm_roles: list[str] = field(default_factory=list)
    service_account_client_roles: dict[str, list[str]] = field(default_factory=dict)
    backchannel_logout_url: str | None = None
    backchannel_logout_session_required: bool = True
    audiences: list[str] = field(default_factory=list)

    FIELDS = (
        "secret public bearer_only enabled redirect_uris post_logout_redirect_uris "
        "pkce_method standard_flow direct_access_grants service_accounts "
        "service_account_realm_roles service_account_client_roles backchannel_logout_url "
        "backchannel_logout_session_required audiences"
    ).split()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Client:
        spec = _keys(spec)
        attrs = spec.pop("attributes", None) or {}
        if "pkce.code.challenge.method" in attrs:
            spec.setdefault("pkce_method", attrs["pkce.code.challenge.method"] or None)
        if attrs.get("backchannel.logout.url"):
            spec.setdefault("backchannel_logout_url", attrs["backchannel.logout.url"])
        if attrs.get("post.logout.redirect.uris"):
            uris = attrs["post.logout.redirect.uris"].split("##")
            spec.setdefault("post_logout_redirect_uris", uris)
        sa_roles = spec.pop("service_account_roles", None)
        if isinstance(sa_roles, dict):
            spec.setdefault("service_account_client_roles", sa_roles)
        elif isinstance(sa_roles, list):
            spec.setdefault("service_account_realm_roles", sa_roles)
        if spec.get("pkce_method") and spec["pkce_method"] not in ("S256", "plain"):
            raise ValueError(f"client {spec['client_id']}: pkce_method must be S256 or plain")
        unknown = set(spec) - set(cls.FIELDS) - {"client_id"}
        if unknown:
            raise ValueError(f"client {spec.get('client_id')}: unknown fields {sorted(unknown)}")
        client = cls(client_id=spec["client_id"], **{k: spec[k] for k in cls.FIELDS if k in spec})
        if not client.public and not client.bearer_only and not client.secret:
            raise ValueError(f"confidential client {client.client_id} needs a secret")
        return client


class Realm:
    """Settings, groups, users and clients of one realm."""

    def __init__(self, definition: dict[str, Any]) -> None:
        spec = _keys(definition)
        self.settings = Settings()
        for key in list(spec):
            if hasattr(self.settings, key) and key != "LIFETIMES":
                setattr(self.settings, key, spec.pop(key))
        self.groups: dict[str, Group] = {}
        for g in spec.get("groups") or []:
            self._add_group(g, parent="")
        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        for c in spec.get("clients") or []:
            self.add_client(c)
        for u in spec.get("users") or []:
            self.add_user(u)

    @property
    def name(self) -> str:
        return self.settings.name

    # -- groups ---------------------------------------------------------------------
    def _add_group(self, spec: dict[str, Any], parent: str) -> None:
        spec = _keys(spec)
        path = f"{parent}/{spec['name']}"
        self.groups[path] = Group(
            name=spec["name"],
            path=path,
            realm_roles=list(spec.get("realm_roles") or []),
            client_roles=dict(spec.get("client_roles") or {}),
        )
        for sub in spec.get("subgroups") or []:
            self._add_group(sub, parent=path)

    def group_path(self, ref: str) -> str:
        """Resolve a group reference (a path, or the name of a unique group) to its path."""
        if ref.startswith("/"):
            if ref not in self.groups:
                raise ValueError(f"unknown group {ref}")
            return ref
        matches = [g.path for g in self.groups.values() if g.name == ref]
        if len(matches) != 1:
            raise ValueError(f"group {ref!r} is unknown or ambiguous; use its path")
        return matches[0]

    # -- clients --------------------------------------------------------------------
    def add_client(self, spec: dict[str, Any]) -> Client:
        client = Client.from_spec(spec)
        self.clients[client.client_id] = client
        if client.service_accounts:
            username = f"service-account-{client.client_id}"
            self.users[username] = User(
                username=username,
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.name}/{username}")),
                realm_roles=list(client.service_account_realm_roles),
                client_roles=dict(client.service_account_client_roles),
                created_timestamp=int(time.time() * 1000),
                service_account_client=client.client_id,
            )
        return client

    def update_client(self, client_id: str, **changes: Any) -> Client:
        client = self.clients[client_id]
        for key, value in _keys(changes).items():
            if key not in Client.FIELDS:
                raise ValueError(f"unknown client field {key}")
            setattr(client, key, value)
        return client

    # -- users ----------------------------------------------------------------------
    def add_user(self, spec: dict[str, Any]) -> User:
        """Create a user, or update the existing user of that username."""
        spec = _keys(spec)
        creds = spec.pop("credentials", None)
        if creds and "password" not in spec:
            spec["password"] = next(c["value"] for c in creds if c.get("type") == "password")
        spec.pop("attributes", None)
        unknown = set(spec) - USER_FIELDS
        if unknown:
            raise ValueError(f"user {spec.get('username')}: unknown fields {sorted(unknown)}")
        username = spec["username"].lower()
        if "groups" in spec:
            spec["groups"] = [self.group_path(g) for g in spec["groups"]]
        existing = self.users.get(username)
        if existing is not None:
            for key, value in spec.items():
                if key not in ("username", "id"):
                    setattr(existing, key, value)
            return existing
        spec["username"] = username
        spec.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.name}/{username}")))
        spec.setdefault("created_timestamp", int(time.time() * 1000))
        user = User(**spec)
        self.users[username] = user
        return user

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in self.users.values() if u.id == user_id), None)

    def find_login(self, name: str) -> User | None:
        """The user a login form or password grant names, by username or email."""
        name = name.strip().lower()
        user = self.users.get(name)
        if user is None and self.settings.login_with_email_allowed and "@" in name:
            user = next((u for u in self.users.values() if (u.email or "").lower() == name), None)
        if user is not None and user.service_account_client:
            return None
        return user

    def service_account(self, client_id: str) -> User:
        return self.users[f"service-account-{client_id}"]

    # -- roles and groups -----------------------------------------------------------
    def _ancestors(self, path: str) -> list[str]:
        parts = path.strip("/").split("/")
        return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]

    def roles(self, user: User) -> tuple[list[str], dict[str, list[str]]]:
        """Effective realm roles and client roles: default roles, own and group roles."""
        realm_roles = [f"default-roles-{self.name}", "offline_access", "uma_authorization"]
        client_roles: dict[str, list[str]] = {"account": list(DEFAULT_ACCOUNT_ROLES)}
        sources: list[tuple[list[str], dict[str, list[str]]]] = [
            (user.realm_roles, user.client_roles)
        ]
        for path in user.groups:
            for ancestor in self._ancestors(path):
                group = self.groups.get(ancestor)
                if group is not None:
                    sources.append((group.realm_roles, group.client_roles))
        for r_roles, c_roles in sources:
            realm_roles += [r for r in r_roles if r not in realm_roles]
            for cid, roles in c_roles.items():
                have = client_roles.setdefault(cid, [])
                have += [r for r in roles if r not in have]
        return realm_roles, client_roles

    def group_claim(self, user: User) -> list[str]:
        if self.settings.groups_full_path:
            return list(user.groups)
        return [self.groups[p].name for p in user.groups if p in self.groups]


# -- pure decisions -------------------------------------------------------------------


def redirect_uri_matches(uri: str, patterns: list[str]) -> bool:
    """Keycloak's rule: an exact match, or a prefix match for a pattern ending in ``*``."""
    for pattern in patterns:
        if pattern == "*":
            return True
        if pattern.endswith("*"):
            if uri.startswith(pattern[:-1]):
                return True
        elif uri == pattern:
            return True
    return False


def resolve_redirect_uri(requested: str | None, client: Client) -> str | None:
    """The redirect URI to use, or None when Keycloak would refuse it."""
    if requested is None:
        fixed = [u for u in client.redirect_uris if "*" not in u]
        return fixed[0] if len(client.redirect_uris) == 1 and fixed else None
    if "#" in requested:
        return None
    return requested if redirect_uri_matches(requested, client.redirect_uris) else None


def post_logout_uri_allowed(uri: str, client: Client) -> bool:
    patterns: list[str] = []
    for p in client.post_logout_redirect_uris:
        patterns += client.redirect_uris if p == "+" else [p]
    return redirect_uri_matches(uri, patterns)


def check_scope(requested: str | None) -> str:
    """The token ``scope`` claim for a requested scope string; OAuthError if unknown."""
    asked = (requested or "").split()
    known = {"openid", *DEFAULT_SCOPES, *HIDDEN_SCOPES, *OPTIONAL_SCOPES}
    unknown = [s for s in asked if s not in known]
    if unknown:
        raise OAuthError(400, "invalid_scope", f"Invalid scopes: {requested}")
    granted = (["openid"] if "openid" in asked else []) + list(DEFAULT_SCOPES)
    granted += [s for s in asked if s in OPTIONAL_SCOPES and s not in granted]
    return " ".join(granted)


def check_pkce_request(client: Client, challenge: str | None, method: str | None) -> str | None:
    """Validate the PKCE parameters of an authorization request; return the method."""
    if client.pkce_method:
        if method is None:
            raise OAuthError(400, "invalid_request", "Missing parameter: code_challenge_method")
        if method != client.pkce_method:
            raise OAuthError(400, "invalid_request", "Invalid parameter: code_challenge_method")
        if challenge is None:
            raise OAuthError(400, "invalid_request", "Missing parameter: code_challenge")
    if challenge is None:
        return None
    method = method or "plain"
    if method not in ("plain", "S256"):
        raise OAuthError(400, "invalid_request", "Invalid parameter: code_challenge_method")
    if not PKCE_PATTERN.match(challenge):
        raise OAuthError(400, "invalid_request", "Invalid parameter: code_challenge")
    return method


def check_pkce_verifier(challenge: str | None, method: str | None, verifier: str | None) -> None:
    """Validate a token request's code_verifier against the code's challenge."""
    if challenge is None:
        if verifier is not None:
            raise OAuthError(
                400,
                "invalid_grant",
                "PKCE code verifier specified but challenge not present in authorization",
            )
        return
    if verifier is None:
        raise OAuthError(400, "invalid_grant", "PKCE code verifier not specified")
    if not PKCE_PATTERN.match(verifier):
        raise OAuthError(400, "invalid_grant", "PKCE invalid code verifier")
    computed = s256(verifier) if method == "S256" else verifier
    if computed != challenge:
        raise OAuthError(400, "invalid_grant", "PKCE verification failed: Code mismatch")


# -- sessions -------------------------------------------------------------------------


@dataclass
class ClientSession:
    """A client's share of a user session (Keycloak's AuthenticatedClientSession)."""

    client_id: str
    scope: str
    started: float
    acr: str = "1"
    nonce: str | None = None
    refresh_uses: dict[str, int] = field(default_factory=dict)


@dataclass
class UserSession:
    """An SSO session; its id is the ``sid`` / ``session_state`` of every token."""

    id: str
    user_id: str
    started: float
    last_refresh: float
    service_account: bool = False
    issuer: str = ""
    clients: dict[str, ClientSession] = field(default_factory=dict)

    def active(self, settings: Settings, now: float) -> bool:
        return (
            now < self.started + settings.sso_session_max_lifespan
            and now < self.last_refresh + settings.sso_session_idle_timeout
        )

    def refresh_expiry(self, settings: Settings) -> float:
        return min(
            self.last_refresh + settings.sso_session_idle_timeout,
            self.started + settings.sso_session_max_lifespan,
        )

    def describe(self, user: User | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "username": user.username if user else None,
            "start": int(self.started),
            "last_access": int(self.last_refresh),
            "clients": sorted(self.clients),
            "service_account": self.service_account,
        }


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    session_id: str
    expires: float
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    used: bool = False


@dataclass
class LoginAttempt:
    """An authentication session: an authorization request waiting for its login form."""

    tab_id: str
    root_id: str
    client_id: str
    redirect_uri: str
    scope: str
    created: float
    session_code: str
    execution: str
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
