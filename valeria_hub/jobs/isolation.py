"""What a per-user namespace holds besides the jobs: labels, a NetworkPolicy, a quota. Pure.

The NetworkPolicy follows UCloud's model (seed 002): no ingress at all, egress to the
internet but not to private address ranges, with DNS as the one exception (plus any
CIDRs the operator allows, e.g. an S3 endpoint on a private network).
"""

from __future__ import annotations

from typing import Any

from .labels import MANAGED_BY, OWNER_LABEL, USERNAME_ANNOTATION
from .naming import owner_label

PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
NETWORK_POLICY = "valeria-jobs-isolation"
QUOTA = "valeria-jobs-quota"


def namespace_manifest(namespace: str, username: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {OWNER_LABEL: owner_label(username), **MANAGED_BY},
            "annotations": {USERNAME_ANNOTATION: username},
        },
    }


def namespace_is_users(meta: dict[str, Any], username: str) -> bool:
    """An existing namespace may be used only if we made it for this very user."""
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get(OWNER_LABEL) == owner_label(username)
        and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY["app.kubernetes.io/managed-by"]
        and annotations.get(USERNAME_ANNOTATION) == username
    )


def network_policy_manifest(namespace: str, allow_cidrs: list[str]) -> dict[str, Any]:
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    egress: list[dict[str, Any]] = [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]},
        {"ports": dns_ports},
    ]
    if allow_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in allow_cidrs]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def quota_manifest(namespace: str, hard: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"hard": {k: str(v) for k, v in hard.items()}},
    }
