"""The realm a Keycloak stand-in serves: users, groups, clients, sessions, codes.

Plain data plus the pure decisions Keycloak makes (redirect-URI matching, PKCE,
scope checks, role and group resolution). The HTTP layer only moves data in and out
of these; the token claim layout is in ``keycloak_claims``.

A realm definition is a dict (or a YAML file) in snake_case; the camelCase keys of a
Keycloak realm export are accepted for the common fields too. A JSON file is Keycloak's
own realm representation (what ``kc.sh import`` and ``--import-realm`` read, e.g.
``realm-valeria.json``): ``from_representation`` turns it into a definition, so the real
server and the stand-in are given one and the same realm.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
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


def load_definition(
    source: str | Path | dict[str, Any], variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read a realm definition from a dict, a .yaml/.yml file or a Keycloak .json export.

    ``variables`` fill the ``${NAME}`` / ``${NAME:default}`` placeholders of a JSON
    representation, as the server's environment does for Keycloak's import.
    """
    if isinstance(source, dict):
        return source
    text = Path(source).read_text()
    if str(source).endswith(".json"):
        return from_representation(json.loads(text), variables)
    return yaml.safe_load(text)


# -- Keycloak's realm representation -> a definition ---------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
BUILTIN_CLIENTS = {"account", "account-console", "admin-cli", "broker", "realm-management",
                   "security-admin-console"}  # fmt: skip
# Representation keys that change nothing the stand-in models (documentation, console
# settings, ids). Any other unknown key is refused: a realm file whose meaning the
# stand-in would silently drop makes the fast tests lie about the real server.
_IGNORED_REALM_KEYS = {"id", "displayName", "displayNameHtml", "enabled", "sslRequired", "roles",
                       "notBefore", "defaultRole", "registrationAllowed", "rememberMe",
                       "resetPasswordAllowed", "verifyEmail", "loginTheme", "accountTheme",
                       "internationalizationEnabled"}  # fmt: skip
_REALM_SETTINGS = {
    "realm": "realm",
    "accessTokenLifespan": "access_token_lifespan",
    "ssoSessionIdleTimeout": "sso_session_idle_timeout",
    "ssoSessionMaxLifespan": "sso_session_max_lifespan",
    "accessCodeLifespan": "access_code_lifespan",
    "accessCodeLifespanLogin": "access_code_lifespan_login",
    "revokeRefreshToken": "revoke_refresh_token",
    "refreshTokenMaxReuse": "refresh_token_max_reuse",
    "loginWithEmailAllowed": "login_with_email_allowed",
}
_CLIENT_FIELDS = {
    "clientId": "client_id",
    "secret": "secret",
    "publicClient": "public",
    "bearerOnly": "bearer_only",
    "enabled": "enabled",
    "redirectUris": "redirect_uris",
    "standardFlowEnabled": "standard_flow",
    "directAccessGrantsEnabled": "direct_access_grants",
    "serviceAccountsEnabled": "service_accounts",
}
# Client keys without effect on the stand-in, with the only value it can honour (None:
# any value).
_CLIENT_FIXED: dict[str, Any] = {
    "id": None, "name": None, "description": None, "webOrigins": None, "rootUrl": None,
    "baseUrl": None, "frontchannelLogout": None, "protocol": "openid-connect",
    "clientAuthenticatorType": "client-secret", "implicitFlowEnabled": False,
    "consentRequired": False, "fullScopeAllowed": True,
}  # fmt: skip
# A client's default scopes: those whose claims every stand-in token carries, and
# those that add nothing the stand-in models (web-origins, acr) or that it applies to
# every service account anyway (service_account: ``client_id`` in the token).
_SCOPES_ALWAYS = {"profile", "email", "roles", "basic"}
_SCOPES_ALLOWED = {"web-origins", "acr", "service_account"}
_CLIENT_ATTRIBUTES_IGNORED = {
    "backchannel.logout.revoke.offline.tokens",
    "display.on.consent.screen",
}
_USER_FIELDS = {
    "username": "username",
    "id": "id",
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "emailVerified": "email_verified",
    "enabled": "enabled",
    "groups": "groups",
    "createdTimestamp": "created_timestamp",
    "clientRoles": "client_roles",
}
_USER_FIXED: dict[str, Any] = {"totp": False, "requiredActions": [], "notBefore": 0,
                               "disableableCredentialTypes": None, "attributes": None}  # fmt: skip


def substitute_placeholders(value: Any, variables: Mapping[str, str] | None = None) -> Any:
    """Fill ``${NAME}`` and ``${NAME:default}`` in every string, as Keycloak's import does.

    Keycloak resolves them from the server's environment (the default follows the first
    colon). Here an unknown name without a default is an error rather than left as is.
    """
    variables = variables or {}

    def fill(match: re.Match[str]) -> str:
        name, sep, default = match.group(1).partition(":")
        if name in variables:
            return variables[name]
        if sep:
            return default
        raise ValueError(f"realm placeholder ${{{name}}} has no value and no default")

    if isinstance(value, str):
        return _PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [substitute_placeholders(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute_placeholders(v, variables) for k, v in value.items()}
    return value


def _flag(config: dict[str, Any], key: str, default: bool = False) -> bool:
    value = config.get(key, default)
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _refuse(where: str, keys: set[str] | list[str]) -> None:
    if keys:
        raise ValueError(f"{where}: the Keycloak stand-in does not model {sorted(keys)}")


def _mappers(client_id: str, mappers: list[dict[str, Any]]) -> tuple[list[str], bool | None]:
    """Audience mapper clients, and the groups mapper's full-path flag (None: no mapper)."""
    audiences: list[str] = []
    full_path: bool | None = None
    for m in mappers:
        kind, config = m.get("protocolMapper"), m.get("config") or {}
        where = f"client {client_id}, mapper {m.get('name')!r}"
        if m.get("protocol", "openid-connect") != "openid-connect":
            _refuse(where, {"protocol " + str(m.get("protocol"))})
        if kind == "oidc-audience-mapper":
            if config.get("included.custom.audience") or _flag(config, "id.token.claim"):
                _refuse(where, {"a custom audience or an audience in the ID token"})
            if _flag(config, "access.token.claim", True):
                audiences.append(config["included.client.audience"])
        elif kind == "oidc-group-membership-mapper":
            # The stand-in emits "groups" in every token and userinfo, or nowhere.
            places = ("access.token.claim", "id.token.claim", "userinfo.token.claim")
            if config.get("claim.name") != "groups" or not all(_flag(config, p) for p in places):
                _refuse(where, {"a groups claim not named 'groups' or not in every token"})
            full_path = _flag(config, "full.path", True)
        else:
            _refuse(where, {f"mapper type {kind}"})
    return audiences, full_path


def _client_definition(rep: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
    client_id = rep.get("clientId")
    where = f"client {client_id}"
    spec: dict[str, Any] = {"standard_flow": True, "direct_access_grants": False}
    for key, value in rep.items():
        if key in _CLIENT_FIELDS:
            spec[_CLIENT_FIELDS[key]] = value
        elif key in _CLIENT_FIXED:
            wanted = _CLIENT_FIXED[key]
            if wanted is not None and value != wanted:
                _refuse(where, {f"{key}={value!r}"})
        elif key == "defaultClientScopes":
            # the stand-in's tokens carry these scopes' claims, always, and no others
            scopes = set(value)
            if not _SCOPES_ALWAYS <= scopes <= _SCOPES_ALWAYS | _SCOPES_ALLOWED:
                _refuse(where, {f"default client scopes {sorted(scopes)}"})
            if "service_account" in scopes and not rep.get("serviceAccountsEnabled"):
                _refuse(where, {"the service_account scope without a service account"})
        elif key == "optionalClientScopes":
            _refuse(where, {f"optional client scope {s}" for s in set(value) - OPTIONAL_SCOPES})
        elif key not in ("attributes", "protocolMappers"):
            _refuse(where, {key})
    attrs = dict(rep.get("attributes") or {})
    if attrs.get("pkce.code.challenge.method"):
        spec["pkce_method"] = attrs.pop("pkce.code.challenge.method")
    attrs.pop("pkce.code.challenge.method", None)
    if "post.logout.redirect.uris" in attrs:
        uris = attrs.pop("post.logout.redirect.uris")
        spec["post_logout_redirect_uris"] = [u for u in uris.split("##") if u]
    if "backchannel.logout.url" in attrs:
        spec["backchannel_logout_url"] = attrs.pop("backchannel.logout.url") or None
    if "backchannel.logout.session.required" in attrs:
        required = attrs.pop("backchannel.logout.session.required")
        spec["backchannel_logout_session_required"] = _flag({"v": required}, "v")
    _refuse(where, set(attrs) - _CLIENT_ATTRIBUTES_IGNORED)
    audiences, full_path = _mappers(client_id, rep.get("protocolMappers") or [])
    if audiences:
        spec["audiences"] = audiences
    return spec, full_path


def _group_definition(rep: dict[str, Any], parent: str) -> dict[str, Any]:
    path = f"{parent}/{rep['name']}"
    if rep.get("path", path) != path:
        raise ValueError(f"group {rep['name']}: path {rep['path']} does not match {path}")
    _refuse(f"group {path}", set(rep) - {"id", "name", "path", "attributes", "realmRoles",
                                         "clientRoles", "subGroups"})  # fmt: skip
    return {
        "name": rep["name"],
        "realm_roles": list(rep.get("realmRoles") or []),
        "client_roles": dict(rep.get("clientRoles") or {}),
        "subgroups": [_group_definition(g, path) for g in rep.get("subGroups") or []],
    }


def _user_definition(rep: dict[str, Any], builtin_roles: set[str]) -> dict[str, Any]:
    where = f"user {rep.get('username')}"
    spec: dict[str, Any] = {}
    for key, value in rep.items():
        if key in _USER_FIELDS:
            spec[_USER_FIELDS[key]] = value
        elif key in _USER_FIXED:
            wanted = _USER_FIXED[key]
            if wanted is not None and value != wanted:
                _refuse(where, {f"{key}={value!r}"})
        elif key not in ("credentials", "realmRoles", "serviceAccountClientId"):
            _refuse(where, {key})
    passwords = [c for c in rep.get("credentials") or [] if c.get("type") == "password"]
    _refuse(where, {f"credential type {c.get('type')}" for c in rep.get("credentials") or []
                    if c.get("type") != "password"})  # fmt: skip
    if passwords:
        if passwords[0].get("temporary") or "value" not in passwords[0]:
            _refuse(where, {"a temporary or hashed password"})
        spec["password"] = passwords[0]["value"]
    # The stand-in gives every user the default roles; the representation names them.
    spec["realm_roles"] = [r for r in rep.get("realmRoles") or [] if r not in builtin_roles]
    return spec


def from_representation(
    rep: dict[str, Any], variables: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keycloak's RealmRepresentation (a realm export) -> the stand-in's realm definition.

    A pure function. It reads what the stand-in models: realm lifetimes and refresh-token
    rotation, groups, realm roles, clients (confidential, public, bearer-only, service
    accounts), their redirect, post-logout and back-channel logout URLs, PKCE, the
    audience and group-membership protocol mappers, users with passwords, roles and
    groups, and service-account users' roles. Anything else is refused with a
    ValueError naming it. Keycloak places the groups mapper on a client; the stand-in
    emits ``groups`` realm-wide, so every groups mapper in the file must agree.
    """
    rep = substitute_placeholders(rep, variables)
    name = rep.get("realm")
    if not name:
        raise ValueError("realm representation without 'realm'")
    _refuse(f"realm {name}", set(rep) - set(_REALM_SETTINGS) - _IGNORED_REALM_KEYS
            - {"groups", "clients", "users"})  # fmt: skip
    if rep.get("enabled") is False:
        _refuse(f"realm {name}", {"enabled=false"})
    out: dict[str, Any] = {_REALM_SETTINGS[k]: v for k, v in rep.items() if k in _REALM_SETTINGS}

    builtin_roles = {f"default-roles-{name}", "offline_access", "uma_authorization"}
    roles = rep.get("roles") or {}
    _refuse(f"realm {name} roles", set(roles) - {"realm", "client"})
    defined = {r["name"] for r in roles.get("realm") or []}
    composite = [r["name"] for r in roles.get("realm") or [] if r.get("composite")]
    _refuse(f"realm {name}", {f"composite role {r}" for r in composite if r not in builtin_roles})
    client_roles = {cid: {r["name"] for r in rs} for cid, rs in (roles.get("client") or {}).items()}

    out["groups"] = [_group_definition(g, "") for g in rep.get("groups") or []]

    clients: dict[str, dict[str, Any]] = {}
    full_paths: set[bool] = set()
    for c in rep.get("clients") or []:
        if c.get("clientId") in BUILTIN_CLIENTS:
            continue  # Keycloak's own clients: the stand-in's admin API stands for them
        spec, full_path = _client_definition(c)
        clients[spec["client_id"]] = spec
        if full_path is not None:
            full_paths.add(full_path)
    if len(full_paths) > 1:
        _refuse(f"realm {name}", {"groups mappers that disagree on full.path"})
    out["groups_claim"] = bool(full_paths)
    if full_paths:
        out["groups_full_path"] = full_paths.pop()

    users = []
    for u in rep.get("users") or []:
        spec = _user_definition(u, builtin_roles)
        unknown = set(spec["realm_roles"]) - defined
        if unknown:
            raise ValueError(f"user {u.get('username')}: undefined realm roles {sorted(unknown)}")
        for cid, rs in (spec.get("client_roles") or {}).items():
            if cid not in BUILTIN_CLIENTS and not set(rs) <= client_roles.get(cid, set()):
                raise ValueError(f"user {u.get('username')}: undefined roles of client {cid}")
        owner = u.get("serviceAccountClientId")
        if owner is None:
            users.append(spec)
            continue
        if owner not in clients or not clients[owner].get("service_accounts"):
            raise ValueError(f"{u.get('username')}: {owner} has no service account")
        clients[owner]["service_account_realm_roles"] = spec["realm_roles"]
        clients[owner]["service_account_client_roles"] = dict(spec.get("client_roles") or {})
    out["clients"] = list(clients.values())
    out["users"] = users
    return out


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
