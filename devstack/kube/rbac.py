"""Bearer tokens, the rules they carry, and the checks the API server makes.

Rules are shaped like a Kubernetes Role's rules (apiGroups, resources, verbs,
resourceNames) with an optional ``namespaces`` list standing in for where the
RoleBinding lives (cluster-wide, like a ClusterRoleBinding, when absent). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANONYMOUS = "system:anonymous"


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    namespaces: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Rule:
        known = {"apiGroups", "resources", "verbs", "resourceNames", "namespaces"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        ns = raw.get("namespaces")
        return cls(
            tuple(raw.get("apiGroups") or ()),
            tuple(raw.get("resources") or ()),
            tuple(raw.get("verbs") or ()),
            tuple(raw.get("resourceNames") or ()),
            tuple(ns) if ns is not None else None,
        )


@dataclass(frozen=True)
class Identity:
    user: str
    rules: tuple[Rule, ...] = ()
    admin: bool = False
    groups: tuple[str, ...] = ()


ADMIN = Identity("admin", admin=True)


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the authorizer sees it."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse_tokens(tokens: dict[str, dict[str, Any]] | None) -> dict[str, Identity] | None:
    """``{token: {"user": ..., "rules": [...]}}`` -> identities; None means no auth."""
    if tokens is None:
        return None
    out = {}
    for token, spec in tokens.items():
        if not token:
            raise ValueError("empty token")
        user = spec.get("user")
        if not user:
            raise ValueError("every token needs a user")
        rules = tuple(Rule.parse(r) for r in spec.get("rules") or ())
        groups = tuple(spec.get("groups") or ())
        out[token] = Identity(user, rules, bool(spec.get("admin", False)), groups)
    return out


SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def service_account_user(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def groups_of(identity: Identity) -> set[str]:
    """The identity's groups, with the ones the authenticator adds by itself."""
    groups = set(identity.groups)
    if identity.user == ANONYMOUS:
        groups.add("system:unauthenticated")
        return groups
    groups.add("system:authenticated")
    if identity.user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = identity.user[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        groups |= {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    return groups


def subject_names(
    subject: dict[str, Any], identity: Identity, groups: set[str], namespace: str = ""
) -> bool:
    """Whether one subject of a binding is this identity (User, Group, ServiceAccount).

    A ServiceAccount subject without a namespace means one in ``namespace``, the
    RoleBinding's own (the server's ``appliesToUser``); in a ClusterRoleBinding it
    names nobody."""
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return name == identity.user
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and identity.user == service_account_user(sa_namespace, name)
    return False


def binding_names(binding: dict[str, Any], identity: Identity, groups: set[str]) -> bool:
    namespace = (binding.get("metadata") or {}).get("namespace") or ""
    return any(subject_names(s, identity, groups, namespace) for s in binding.get("subjects") or ())


def role_rules(role: dict[str, Any] | None, namespace: str | None) -> list[Rule]:
    """A Role's or ClusterRole's resource rules; ``namespace`` limits where they apply
    (a RoleBinding's namespace), None: everywhere (a ClusterRoleBinding)."""
    out = []
    for raw in (role or {}).get("rules") or ():
        if not raw.get("resources"):
            continue  # nonResourceURLs rules: no resource request matches them
        out.append(
            Rule(
                tuple(raw.get("apiGroups") or ()),
                tuple(raw.get("resources") or ()),
                tuple(raw.get("verbs") or ()),
                tuple(raw.get("resourceNames") or ()),
                (namespace,) if namespace else None,
            )
        )
    return out


def rule_allows(rule: Rule, a: Attributes) -> bool:
    return _rule_allows(rule, a)


def _rule_allows(rule: Rule, a: Attributes) -> bool:
    if "*" not in rule.verbs and a.verb not in rule.verbs:
        return False
    if "*" not in rule.api_groups and a.group not in rule.api_groups:
        return False
    if not _resource_matches(rule, a):
        return False
    if rule.resource_names and a.name not in rule.resource_names:
        return False
    if rule.namespaces is not None:
        # a namespaced binding grants nothing at the cluster scope
        return bool(a.namespace) and ("*" in rule.namespaces or a.namespace in rule.namespaces)
    return True


def _resource_matches(rule: Rule, a: Attributes) -> bool:
    for r in rule.resources:
        if r == "*" or r == a.combined:
            return True
        if a.subresource and r == f"*/{a.subresource}":
            return True
    return False


def allows(identity: Identity, a: Attributes) -> bool:
    return identity.admin or any(_rule_allows(r, a) for r in identity.rules)


def forbidden_message(user: str, a: Attributes, qualified: str) -> str:
    """The real server's wording: ``pods "x" is forbidden: User "u" cannot get ...``."""
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user}" cannot {a.verb} resource "{a.combined}" '
        f'in API group "{a.group}" {where}'
    )
