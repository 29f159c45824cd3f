"""Who may use the hub, who is an admin, and which hub groups a Keycloak user is in.

Pure functions over validated access-token claims: Keycloak puts realm roles in
``realm_access.roles``, client roles in ``resource_access.<client>.roles`` and group
membership in ``groups`` (full paths such as ``/team-a`` by default). The
authenticator calls :func:`decide` at every login and at every token refresh, so a
user who loses a role loses access at the next refresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AccessRules:
    """The authenticator's role and group settings, as plain data."""

    client_id: str
    admin_roles: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()
    allowed_roles: frozenset[str] = frozenset()
    allowed_groups: frozenset[str] = frozenset()
    strip_group_slash: bool = True


@dataclass(frozen=True)
class Access:
    """The decision for one user: may log in, is admin (None: leave as is), hub groups."""

    allowed: bool
    admin: bool | None
    groups: list[str] = field(default_factory=list)
    reason: str = ""


def realm_roles(claims: Mapping[str, Any]) -> set[str]:
    """Realm roles from ``realm_access.roles``."""
    access = claims.get("realm_access")
    if not isinstance(access, Mapping):
        return set()
    return {str(r) for r in access.get("roles") or [] if isinstance(r, str)}


def client_roles(claims: Mapping[str, Any], client_id: str) -> set[str]:
    """Roles of one client from ``resource_access.<client_id>.roles``."""
    resources = claims.get("resource_access")
    if not isinstance(resources, Mapping):
        return set()
    entry = resources.get(client_id)
    if not isinstance(entry, Mapping):
        return set()
    return {str(r) for r in entry.get("roles") or [] if isinstance(r, str)}


def role_names(claims: Mapping[str, Any], client_id: str) -> set[str]:
    """Realm roles plus this client's roles.

    Client roles also appear as ``<client_id>:<role>`` so that a realm role and a client
    role of the same name can be told apart in configuration when needed.
    """
    mine = client_roles(claims, client_id)
    return realm_roles(claims) | mine | {f"{client_id}:{r}" for r in mine}


def raw_groups(claims: Mapping[str, Any]) -> list[str]:
    """The ``groups`` claim as a list of strings (Keycloak may emit one string)."""
    groups = claims.get("groups")
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return []
    return [g for g in groups if isinstance(g, str) and g.strip("/")]


def hub_group_name(group: str, strip_slash: bool) -> str:
    """The hub group name of a Keycloak group: ``/team-a`` -> ``team-a`` when stripping.

    Only the leading slash is removed: sub-groups keep their path (``/a/b`` -> ``a/b``),
    so two groups with the same leaf name never merge.
    """
    return group[1:] if strip_slash and group.startswith("/") else group


def group_forms(groups: Iterable[str]) -> set[str]:
    """Every name a configured group may match: full path and without the leading slash."""
    forms: set[str] = set()
    for g in groups:
        forms.add(g)
        forms.add(g.lstrip("/"))
        forms.add("/" + g.lstrip("/"))
    return forms


def _matches(configured: frozenset[str], have: set[str]) -> bool:
    return bool(configured & have)


def decide(claims: Mapping[str, Any], rules: AccessRules) -> Access:
    """Decide access, admin status and hub groups from a user's token claims.

    - admin when any role is in ``admin_roles`` or any group in ``admin_groups``; when
      neither setting is used the admin flag is left to the hub (None);
    - allowed when an admin, or when a role is in ``allowed_roles`` or a group in
      ``allowed_groups``; when both are empty every user of the realm is allowed;
    - groups: the user's Keycloak groups as hub group names.
    """
    roles = role_names(claims, rules.client_id)
    groups = raw_groups(claims)
    have_groups = group_forms(groups)
    admin_configured = bool(rules.admin_roles or rules.admin_groups)
    is_admin = _matches(rules.admin_roles, roles) or _matches(
        frozenset(group_forms(rules.admin_groups)), have_groups
    )
    admin: bool | None = is_admin if admin_configured else None
    hub_groups = sorted({hub_group_name(g, rules.strip_group_slash) for g in groups})

    if is_admin:
        return Access(True, admin, hub_groups, "admin role or group")
    if not rules.allowed_roles and not rules.allowed_groups:
        return Access(True, admin, hub_groups, "every realm user is allowed")
    if _matches(rules.allowed_roles, roles):
        return Access(True, admin, hub_groups, "allowed role")
    if _matches(frozenset(group_forms(rules.allowed_groups)), have_groups):
        return Access(True, admin, hub_groups, "allowed group")
    wanted = sorted(rules.allowed_roles) + sorted(rules.allowed_groups)
    return Access(
        False,
        admin,
        hub_groups,
        "needs one of the Keycloak roles or groups: " + ", ".join(wanted),
    )
