"""RBAC escalation prevention: nobody grants, through a Role, a ClusterRole or a binding,
a permission they do not already hold.

The real API server does this in the storage of the four RBAC kinds, not in an admission
plugin, so every cluster has it whatever its admission configuration; here the registry
calls :func:`check` for those kinds, in every profile, after mutating admission and before
validation (where the real storage runs it).

- Role / ClusterRole create or update: allowed when the author's own RBAC rules cover every
  rule of the object (the rules that apply in the Role's namespace; cluster-wide ones for a
  ClusterRole), or the author may ``escalate`` roles / clusterroles. A create's URL names no
  object, so an ``escalate`` limited by resourceNames helps updates only. Setting an
  aggregationRule needs every permission (``*`` on ``*``, non-resource URLs included).
- RoleBinding / ClusterRoleBinding create or update: allowed when the author's rules cover
  every rule of the referenced role in the binding's namespace (cluster-wide for a
  ClusterRoleBinding), or the author may ``bind`` that role (resourceNames name roles).
- An update that changes only what the garbage collector changes (ownerReferences,
  finalizers) is not checked; any other update re-checks the whole object.
- The cluster admin and members of ``system:masters`` are never checked.

Refusals are 403 Forbidden worded like the server's, listing the missing permissions in the
server's compact form. The decisions (:func:`covers` and what it builds on) are pure; only
:func:`check` reads the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import rbac
from .admission import Request
from .authorizer import RBAC, Authorizer
from .errors import BadRequest, Forbidden, StoreError
from .store import Store

GROUP = "rbac.authorization.k8s.io"
ROLE_PLURALS = {"Role": "roles", "ClusterRole": "clusterroles"}
BINDING_PLURALS = {"RoleBinding": "rolebindings", "ClusterRoleBinding": "clusterrolebindings"}
PRIVILEGED_GROUP = "system:masters"  # the server's loopback group: may do anything
# metadata an update may change without a check: the garbage collector's fields (and what
# the server fills in itself)
GC_FIELDS = ("ownerReferences", "finalizers", "selfLink", "managedFields", "resourceVersion")
AGGREGATION_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"
RULE_FIELDS = {
    "verbs": "verbs",
    "apiGroups": "api_groups",
    "resources": "resources",
    "resourceNames": "resource_names",
    "nonResourceURLs": "non_resource_urls",
}


@dataclass(frozen=True)
class PolicyRule:
    """One rule of a Role; unlike the authorizer's Rule it keeps nonResourceURLs, which a
    ClusterRole may grant and the escalation check must see."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> PolicyRule:
        return cls(**{attr: tuple(raw.get(key) or ()) for key, attr in RULE_FIELDS.items()})

    @classmethod
    def of(cls, rule: rbac.Rule) -> PolicyRule:
        return cls(rule.verbs, rule.api_groups, rule.resources, rule.resource_names)

    def compact(self) -> str:
        """The server's CompactString: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
        fields = (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("NonResourceURLs", self.non_resource_urls),
            ("ResourceNames", self.resource_names),
            ("Verbs", self.verbs),
        )
        return "{" + ", ".join(f"{k}:{go_quote_list(v)}" for k, v in fields if v) + "}"


# what an aggregationRule may gather: everything
FULL_AUTHORITY = (
    PolicyRule(verbs=("*",), api_groups=("*",), resources=("*",)),
    PolicyRule(verbs=("*",), non_resource_urls=("*",)),
)


# -- pure decisions ----------------------------------------------------------------------
def go_quote(value: str) -> str:
    """Go's ``%q`` of a string (identical to JSON for printable text)."""
    return json.dumps(value, ensure_ascii=False)


def go_quote_list(values: Iterable[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """The rule as one-verb, one-group, one-resource (one-name) rules, so that each is
    either wholly covered by one held rule or not at all."""
    out = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    out += [
                        PolicyRule((verb,), (group,), (resource,), (name,))
                        for name in rule.resource_names
                    ]
                else:
                    out.append(PolicyRule((verb,), (group,), (resource,)))
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            out.append(PolicyRule((verb,), non_resource_urls=(url,)))
    return out


def _resources_cover(held: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in held or set(wanted) <= set(held):
        return True
    for path in wanted:
        if path in held:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in held:  # "*/scale" holds every "x/scale"
            return False
    return True


def _url_covers(held: str, wanted: str) -> bool:
    return held == wanted or (held.endswith("*") and wanted.startswith(held.rstrip("*")))


def rule_covers(owner: PolicyRule, sub: PolicyRule) -> bool:
    """Whether a held rule covers a broken-down rule. Wildcards hold literally: ``*`` in a
    held rule covers anything, but a wanted ``*`` is covered only by a held ``*``."""
    verbs = "*" in owner.verbs or set(sub.verbs) <= set(owner.verbs)
    groups = "*" in owner.api_groups or set(sub.api_groups) <= set(owner.api_groups)
    resources = _resources_cover(owner.resources, sub.resources)
    urls = all(
        any(_url_covers(held, path) for held in owner.non_resource_urls)
        for path in sub.non_resource_urls
    )
    if sub.resource_names:
        names = not owner.resource_names or set(sub.resource_names) <= set(owner.resource_names)
    else:
        names = not owner.resource_names
    return verbs and groups and resources and urls and names


def applies_in(rule: rbac.Rule | PolicyRule, namespace: str) -> bool:
    """Whether a held rule counts in ``namespace`` ("": cluster-wide, where a rule from a
    RoleBinding never counts)."""
    if isinstance(rule, PolicyRule) or rule.namespaces is None:
        return True
    return bool(namespace) and ("*" in rule.namespaces or namespace in rule.namespaces)


def covers(
    held_rules: Iterable[rbac.Rule | PolicyRule],
    wanted_rules: Iterable[PolicyRule | dict[str, Any]],
    namespace: str,
) -> tuple[bool, list[PolicyRule]]:
    """Whether the rules held in ``namespace`` cover every wanted rule, and the
    broken-down wanted rules that no held rule covers (the server's ``Covers``)."""
    owners = [
        r if isinstance(r, PolicyRule) else PolicyRule.of(r)
        for r in held_rules
        if applies_in(r, namespace)
    ]
    missing = []
    for rule in wanted_rules:
        wanted = rule if isinstance(rule, PolicyRule) else PolicyRule.parse(rule)
        for sub in breakdown(wanted):
            if not any(rule_covers(owner, sub) for owner in owners):
                missing.append(sub)
    return not missing, missing


def compact_rules(rules: Iterable[PolicyRule]) -> list[PolicyRule]:
    """Merge the verbs of rules that differ only by verb (one group, one resource, at most
    one name), as the server does before listing missing permissions."""
    complex_rules: list[PolicyRule] = []
    simple: dict[tuple[str, str, tuple[str, ...]], PolicyRule] = {}
    for rule in rules:
        is_simple = (
            len(rule.api_groups) == 1
            and len(rule.resources) == 1
            and len(rule.resource_names) <= 1
            and not rule.non_resource_urls
        )
        if not is_simple:
            complex_rules.append(rule)
            continue
        key = (rule.api_groups[0], rule.resources[0], rule.resource_names)
        seen = simple.get(key)
        if seen is None:
            simple[key] = rule
        else:
            verbs = seen.verbs + tuple(v for v in rule.verbs if v not in seen.verbs)
            simple[key] = PolicyRule(verbs, seen.api_groups, seen.resources, seen.resource_names)
    return complex_rules + list(simple.values())


def ordered_groups(identity: rbac.Identity) -> list[str]:
    """The identity's groups in the order the authenticators give them (a service
    account's own groups first, ``system:authenticated`` last)."""
    groups: list[str] = []
    if identity.user.startswith(rbac.SERVICE_ACCOUNT_PREFIX):
        namespace = identity.user[len(rbac.SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        groups += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    groups += identity.groups
    if identity.user == rbac.ANONYMOUS:
        groups.append("system:unauthenticated")
    else:
        groups.append("system:authenticated")
    return list(dict.fromkeys(groups))


def escalation_message(identity: rbac.Identity, missing: Iterable[PolicyRule]) -> str:
    """The server's words for a refused grant, one missing permission a line (sorted)."""
    lines = sorted({rule.compact() for rule in compact_rules(missing)})
    return (
        f"user {go_quote(identity.user)} (groups={go_quote_list(ordered_groups(identity))}) "
        "is attempting to grant RBAC permissions not currently held:\n" + "\n".join(lines)
    )


def forbidden(plural: str, name: str, message: str) -> Forbidden:
    """The 403 of the RBAC storage: ``roles.rbac.authorization.k8s.io "x" is forbidden: ...``."""
    qualified = f"{plural}.{GROUP}"
    subject = f"{qualified} {go_quote(name)}" if name else qualified
    return Forbidden(
        f"{subject} is forbidden: {message}",
        details={"name": name, "group": GROUP, "kind": plural},
    )


def only_gc_fields_change(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether an update changes nothing but the garbage collector's metadata."""
    return _without_gc_fields(new) == _without_gc_fields(old)


def _without_gc_fields(obj: dict[str, Any]) -> Any:
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in GC_FIELDS}
    out["metadata"] = meta
    return _pruned(out)


def _pruned(value: Any) -> Any:
    """Drop null and empty values: the server compares nil and empty as equal."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def has_aggregation_rule(role: dict[str, Any] | None) -> bool:
    """An aggregationRule counts only with selectors (none select nothing)."""
    rule = (role or {}).get("aggregationRule")
    return isinstance(rule, dict) and bool(rule.get("clusterRoleSelectors"))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def decode_errors(kind: str, obj: dict[str, Any]) -> None:
    """The 400 the server answers when rules or roleRef do not decode, so that the rules
    checked here are exactly the rules the authorizer later grants."""

    def refuse(value: Any, struct: str, field: str, go_type: str) -> BadRequest:
        return BadRequest(
            f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
            f"{_json_type(value)} into Go struct field {struct}.{field} of type {go_type}"
        )

    if kind in ROLE_PLURALS:
        rules = obj.get("rules")
        if rules is not None and not isinstance(rules, list):
            raise refuse(rules, kind, "rules", "[]v1.PolicyRule")
        for raw in rules or ():
            if not isinstance(raw, dict):
                raise refuse(raw, kind, "rules", "v1.PolicyRule")
            for key in RULE_FIELDS:
                values = raw.get(key)
                if values is not None and not isinstance(values, list):
                    raise refuse(values, "PolicyRule", f"rules.{key}", "[]string")
                for value in values or ():
                    if not isinstance(value, str):
                        raise refuse(value, "PolicyRule", f"rules.{key}", "string")
    elif kind in BINDING_PLURALS:
        ref = obj.get("roleRef")
        if ref is not None and not isinstance(ref, dict):
            raise refuse(ref, kind, "roleRef", "v1.RoleRef")
        for key, value in (ref or {}).items():
            if not isinstance(value, str):
                raise refuse(value, "RoleRef", f"roleRef.{key}", "string")


# -- the check, over the store --------------------------------------------------------------
def check(store: Store, req: Request) -> None:
    """Refuse a Role, ClusterRole or binding write that would grant more than its author
    holds; a no-op for every other kind."""
    kind = req.kind.kind
    if kind not in ROLE_PLURALS and kind not in BINDING_PLURALS:
        return
    decode_errors(kind, req.obj)
    user = req.user
    if user.admin or PRIVILEGED_GROUP in user.groups:
        return
    if req.old is not None and only_gc_fields_change(req.obj, req.old):
        return
    authorizer = Authorizer(store)
    if kind in ROLE_PLURALS:
        _check_role(authorizer, req)
    else:
        _check_binding(store, authorizer, req)


def _check_role(authorizer: Authorizer, req: Request) -> None:
    plural = ROLE_PLURALS[req.kind.kind]
    # the request's own name: none on a create (POST to the collection)
    name = req.name if req.operation == "UPDATE" else ""
    escalate = rbac.Attributes("escalate", GROUP, plural, "", req.namespace, name)
    if authorizer.allows(req.user, escalate):
        return
    held = authorizer.rules_for(req.user, req.namespace)
    ok, missing = covers(held, req.obj.get("rules") or (), req.namespace)
    if not ok:
        raise forbidden(plural, req.name, escalation_message(req.user, missing))
    if req.kind.kind == "ClusterRole" and (
        has_aggregation_rule(req.obj) or has_aggregation_rule(req.old)
    ):
        if not covers(held, FULL_AUTHORITY, "")[0]:
            raise forbidden(plural, req.name, AGGREGATION_MESSAGE)


def _check_binding(store: Store, authorizer: Authorizer, req: Request) -> None:
    ref = req.obj.get("roleRef") or {}
    role_kind, role_name = ref.get("kind", ""), ref.get("name", "")
    role_plural = ROLE_PLURALS.get(role_kind)
    if role_plural is not None:
        bind = rbac.Attributes(
            "bind", ref.get("apiGroup", ""), role_plural, "", req.namespace, role_name
        )
        if authorizer.allows(req.user, bind):
            return
    else:
        # the server resolves the reference before validation names a bad kind
        raise StoreError(
            f"Internal error occurred: unsupported role reference kind: {go_quote(role_kind)}"
        )
    # a missing role: the store's 404, as the server answers
    role_namespace = req.namespace if role_kind == "Role" else ""
    role = store.get(f"{RBAC}/{role_plural}", role_namespace, role_name)
    ok, missing = covers(
        authorizer.rules_for(req.user, req.namespace), role.get("rules") or (), req.namespace
    )
    if not ok:
        plural = BINDING_PLURALS[req.kind.kind]
        raise forbidden(plural, req.name, escalation_message(req.user, missing))
