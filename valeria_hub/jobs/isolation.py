"""What a per-user namespace holds besides the jobs: labels, RoleBindings, a NetworkPolicy,
a quota. Pure.

Everything a job pod needs there comes from the service, because nobody else knows the
namespace exists: the RoleBinding that lets the service itself work in it (a namespace
gives its creator no rights), the one that lets the pods' ``default`` service account use
the notebook SCC (else SCC admission refuses a pod running as its user's uid), the
NetworkPolicy and the quota.

The NetworkPolicy follows UCloud's model (seed 002), made as strict as the shared
namespace's (openshift/valeria-hub-template.yaml): no ingress at all; egress to the cluster
DNS pods (53 and 5353: OVN applies policies after the Service NAT, and OpenShift's DNS pods
listen on 5353), to the operator's allowed CIDRs (e.g. an S3 endpoint on a private
network), and to the internet but not to private ranges, nor to the operator's closed
ranges (the NFS server, which the kubelet mounts from the node; internal networks on public
addresses).
"""

from __future__ import annotations

import ipaddress
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
SERVICE_BINDING = "valeria-jobs-service"
POD_SCC_BINDING = "valeria-jobs-pod-scc"
POD_SERVICE_ACCOUNT = "default"  # what job pods run under (the manifests name no other)
# OpenShift's cluster DNS pods, as its DNS operator labels them
DNS_NAMESPACE = "openshift-dns"
DNS_POD_LABELS = {"dns.operator.openshift.io/daemonset-dns": "default"}
DNS_PORTS = ((53, "UDP"), (53, "TCP"), (5353, "UDP"), (5353, "TCP"))
# Pod Security: baseline is the strictest level NFS volumes pass (restricted allows no nfs);
# the SCC is stricter still, this holds should a wider SCC ever be granted by mistake
POD_SECURITY = {"pod-security.kubernetes.io/enforce": "baseline"}


def namespace_manifest(namespace: str, username: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {OWNER_LABEL: owner_label(username), **MANAGED_BY, **POD_SECURITY},
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


def role_binding_manifest(
    namespace: str, name: str, cluster_role: str, account_namespace: str, account: str
) -> dict[str, Any]:
    """A RoleBinding of a ClusterRole to one service account, valid in ``namespace`` only."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": cluster_role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    }


def service_binding_manifest(
    namespace: str, cluster_role: str, account_namespace: str, account: str
) -> dict[str, Any]:
    """The service's own rights in a namespace it made: ``cluster_role`` bound to it there."""
    return role_binding_manifest(
        namespace, SERVICE_BINDING, cluster_role, account_namespace, account
    )


def pod_scc_binding_manifest(namespace: str, cluster_role: str) -> dict[str, Any]:
    """``use`` of the notebook SCC (``cluster_role`` grants it) for the job pods' account."""
    return role_binding_manifest(
        namespace, POD_SCC_BINDING, cluster_role, namespace, POD_SERVICE_ACCOUNT
    )


def egress_rules(allow_cidrs: list[str], deny_cidrs: list[str]) -> list[dict[str, Any]]:
    """The internet without the private ranges and ``deny_cidrs``, DNS to the cluster DNS
    pods only, and ``allow_cidrs``."""
    # an IPv4 block can except IPv4 ranges only (IPv6 has no rule that opens it)
    v4 = [c for c in deny_cidrs if ipaddress.ip_network(c, strict=False).version == 4]
    closed = list(dict.fromkeys([*PRIVATE_RANGES, *v4]))
    dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}},
        "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
    }
    egress: list[dict[str, Any]] = [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": closed}}]},
        {"to": [dns], "ports": [{"protocol": proto, "port": port} for port, proto in DNS_PORTS]},
    ]
    if allow_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in allow_cidrs]})
    return egress


def network_policy_manifest(
    namespace: str, allow_cidrs: list[str], deny_cidrs: list[str] | None = None
) -> dict[str, Any]:
    """Every pod of the namespace: no ingress; egress as :func:`egress_rules`."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress_rules(allow_cidrs, list(deny_cidrs or ())),
        },
    }


def quota_manifest(namespace: str, hard: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"hard": {k: str(v) for k, v in hard.items()}},
    }
