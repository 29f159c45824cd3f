"""Who may use a notebook flavour, one of its sizes, or a job profile. Pure.

An item carries ``allowed_groups`` and ``allowed_roles``. Both empty (the default)
means everyone may use it, which is how every release before this one behaved.
Otherwise a person may use it when they are in one of the groups *or* hold one of the
roles. Several restrictions on one item (the item's own keys and an operator's overlay)
must all be met.

Groups are Keycloak groups (the ``groups`` claim, full paths such as ``/team-a``) and
the hub groups the authenticator syncs from them (``team-a``): a name matches with or
without its leading '/'. A sub-group is a group of its own: ``/a/b`` never matches
``/a``, because Keycloak's groups claim lists only the groups a person was put in.
Roles are Keycloak realm roles and the hub client's roles (also as
``<client_id>:<role>``), as :func:`valeria_hub.auth.access.role_names` reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RESTRICTION_KEYS = ("allowed_groups", "allowed_roles")


def group_key(name: str) -> str:
    """One spelling per group: without the leading '/' of Keycloak's full path."""
    return name.lstrip("/")


@dataclass(frozen=True)
class Membership:
    """The groups and roles of one person, as restrictions compare them."""

    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @classmethod
    def of(cls, groups: Iterable[str] = (), roles: Iterable[str] = ()) -> Membership:
        return cls(
            frozenset(group_key(g) for g in groups if isinstance(g, str) and group_key(g)),
            frozenset(r for r in roles if isinstance(r, str) and r),
        )


def _names(value: Any, where: str) -> frozenset[str]:
    """A list of non-empty names; a bare string is refused (it would read as letters)."""
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(f"{where} must be a list of names, e.g. [{value!r}]")
    names = []
    for item in value:
        if not isinstance(item, str) or not item.strip("/ "):
            raise ValueError(f"{where}: {item!r} is not a name")
        names.append(item)
    return frozenset(names)


@dataclass(frozen=True)
class Restriction:
    """Who may use one item: any of ``groups`` or any of ``roles``; both empty: everyone."""

    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str, *, roles: bool = True) -> Restriction:
        """The restriction written on ``raw`` (its ``allowed_groups``/``allowed_roles``).

        ``roles=False`` where the caller's roles are not known (job profiles): a role
        restriction there is refused rather than ignored, which would open the item.
        """
        groups = _names(raw.get("allowed_groups"), f"{where}: allowed_groups")
        role_names = _names(raw.get("allowed_roles"), f"{where}: allowed_roles")
        if role_names and not roles:
            raise ValueError(
                f"{where}: allowed_roles is not supported here (only the person's groups are "
                "known); use allowed_groups"
            )
        return cls(frozenset(group_key(g) for g in groups), role_names)

    @property
    def everyone(self) -> bool:
        return not self.groups and not self.roles

    def allows(self, who: Membership) -> bool:
        return self.everyone or bool(self.groups & who.groups or self.roles & who.roles)

    def describe(self) -> str:
        """Who it is for, in words (refusal messages name what would let a person in)."""
        parts = []
        if self.groups:
            parts.append("the groups " + ", ".join(sorted(self.groups)))
        if self.roles:
            parts.append("the roles " + ", ".join(sorted(self.roles)))
        return "members of " + " or ".join(parts) if parts else "everyone"


def allows_all(restrictions: Iterable[Restriction], who: Membership) -> bool:
    """True when ``who`` meets every restriction (none: everyone may)."""
    return all(r.allows(who) for r in restrictions)


def describe_all(restrictions: Iterable[Restriction]) -> str:
    """The restrictions that are not open to everyone, joined with "and"."""
    parts = [r.describe() for r in restrictions if not r.everyone]
    return " and ".join(parts) if parts else "everyone"
