"""RBAC from the objects in the store, as the real API server authorizes.

A request's identity (user, groups) gets the rules of every ClusterRoleBinding that
names it (cluster-wide) and of every RoleBinding in the request's namespace that names
it (the bound Role or ClusterRole, limited to that namespace). A ServiceAccount is the
user ``system:serviceaccount:NS:NAME`` in the groups ``system:serviceaccounts`` and
``system:serviceaccounts:NS``; every authenticated caller is in
``system:authenticated``. Rules given with a token (the older, static form) still add
to these. The decisions are pure functions of rbac.py; this module reads the store.
"""

from __future__ import annotations

from . import rbac
from .store import NotFound, Store

RBAC = "rbac.authorization.k8s.io/v1"


class Authorizer:
    """``allows(identity, attributes)`` over the store's RBAC objects."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _role(self, kind: str, namespace: str, name: str) -> dict | None:
        resource = f"{RBAC}/roles" if kind == "Role" else f"{RBAC}/clusterroles"
        try:
            return self.store.get(resource, namespace if kind == "Role" else "", name)
        except NotFound:
            return None

    def rules_for(self, identity: rbac.Identity, namespace: str) -> list[rbac.Rule]:
        """Every rule bound to ``identity`` that can apply in ``namespace`` ("" = cluster)."""
        groups = rbac.groups_of(identity)
        rules: list[rbac.Rule] = list(identity.rules)
        cluster, _ = self.store.list(f"{RBAC}/clusterrolebindings")
        for binding in cluster:
            if rbac.binding_names(binding, identity, groups):
                ref = binding.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    role = self._role("ClusterRole", "", ref.get("name", ""))
                    rules += rbac.role_rules(role, None)
        if namespace:
            local, _ = self.store.list(f"{RBAC}/rolebindings", namespace)
            for binding in local:
                if rbac.binding_names(binding, identity, groups):
                    ref = binding.get("roleRef") or {}
                    role = self._role(ref.get("kind", ""), namespace, ref.get("name", ""))
                    rules += rbac.role_rules(role, namespace)
        return rules

    def allows(self, identity: rbac.Identity, attrs: rbac.Attributes) -> bool:
        if identity.admin:
            return True
        return any(rbac.rule_allows(r, attrs) for r in self.rules_for(identity, attrs.namespace))
