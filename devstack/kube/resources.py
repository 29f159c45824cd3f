"""The table of kinds the stand-in serves, URL parsing, and discovery documents.

A resource is named like the store names it: ``"v1/pods"``, ``"batch/v1/jobs"``.
Everything here is pure data and pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import NotFound

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Kind:
    """One served resource kind."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    # DELETE answers with the object (pods, services, PVCs, namespaces) or with a Status.
    return_deleted: bool = False

    @property
    def resource(self) -> str:
        return f"{self.api_version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``jobs.batch``: how the real server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Pod`` or ``Job.batch``: how Invalid messages name a kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize"), True),
    Kind("", "v1", "pods", "Pod", True, ("po",), ("status", "log"), True),
    Kind("", "v1", "services", "Service", True, ("svc",), ("status",), True),
    Kind("", "v1", "secrets", "Secret", True),
    Kind("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Kind(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        True,
        ("pvc",),
        ("status",),
        True,
    ),
    Kind("", "v1", "events", "Event", True, ("ev",)),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Kind("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    Kind("", "v1", "nodes", "Node", False, ("no",), ("status",), True),
    Kind("batch", "v1", "jobs", "Job", True, (), ("status",)),
    Kind("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",)),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Kind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Kind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Kind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # OpenShift's own kinds (served in every profile; only the openshift profile acts on them)
    Kind(
        "security.openshift.io",
        "v1",
        "securitycontextconstraints",
        "SecurityContextConstraints",
        False,
        ("scc",),
    ),
)
# kinds the Kubernetes OpenAPI schema (strict validation) does not describe
NOT_IN_OPENAPI = frozenset({"security.openshift.io/v1"})

BY_RESOURCE: dict[str, Kind] = {k.resource: k for k in KINDS}
BY_GROUP_VERSION: dict[str, dict[str, Kind]] = {}
for _k in KINDS:
    BY_GROUP_VERSION.setdefault(_k.api_version, {})[_k.plural] = _k
BY_KIND: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in KINDS}


def kind_of(resource: str) -> Kind:
    return BY_RESOURCE[resource]


def kind_for_object(obj: dict[str, Any]) -> Kind | None:
    """The served kind of a manifest, from its apiVersion and kind."""
    return BY_KIND.get((obj.get("apiVersion", ""), obj.get("kind", "")))


@dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    kind: Kind
    namespace: str | None  # None: all namespaces (or a cluster-scoped kind)
    name: str | None
    subresource: str | None
    legacy_watch: bool = False


def not_found_resource() -> NotFound:
    return NotFound("the server could not find the requested resource")


def parse_resource_path(path: str) -> Target | None:
    """Parse ``/api/v1/...`` or ``/apis/G/V/...``; None for a discovery path.

    Raises NotFound (like the real server) for a path naming no served resource.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api":
        if len(parts) < 2:
            return None
        api_version, rest = parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) < 3:
            return None
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise not_found_resource()
    plurals = BY_GROUP_VERSION.get(api_version)
    if plurals is None:
        raise not_found_resource()
    if not rest:
        return None
    legacy = False
    if rest[0] == "watch":
        legacy, rest = True, rest[1:]
        if not rest:
            raise not_found_resource()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = plurals.get(rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    kind = plurals.get(rest[0])
    if kind is None or len(rest) > 3:
        raise not_found_resource()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in kind.subresources:
        raise not_found_resource()
    if kind.namespaced and namespace is None and name is not None:
        # /api/v1/pods/NAME does not exist: namespaced objects live under a namespace
        raise not_found_resource()
    return Target(kind, namespace, name, sub, legacy)


# -- discovery ---------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for k in KINDS:
        if k.group:
            versions = groups.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
    return groups


def api_group_list() -> dict[str, Any]:
    groups = []
    for name, versions in _groups().items():
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        groups.append({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict[str, Any] | None:
    versions = _groups().get(name)
    if versions is None:
        return None
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def api_resource_list(api_version: str) -> dict[str, Any] | None:
    plurals = BY_GROUP_VERSION.get(api_version)
    if plurals is None:
        return None
    resources: list[dict[str, Any]] = []
    for k in plurals.values():
        entry: dict[str, Any] = {
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": list(VERBS),
        }
        if k.short_names:
            entry["shortNames"] = list(k.short_names)
        resources.append(entry)
        for sub in k.subresources:
            verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
            if sub == "finalize":
                verbs = ["update"]
            resources.append(
                {
                    "name": f"{k.plural}/{sub}",
                    "singularName": "",
                    "namespaced": k.namespaced,
                    "kind": k.kind,
                    "verbs": verbs,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }
