"""The SecurityContextConstraints every OpenShift 4.x cluster starts with, and the RBAC
that grants them, as the cluster-kube-apiserver-operator ships them
(``bindata/bootkube/scc-manifests``): the ten SCCs SCC admission insists on finding,
one ClusterRole ``system:openshift:scc:<name>`` per SCC (verb ``use`` on that SCC by
name) and the one binding every cluster has: restricted-v2 for ``system:authenticated``.

Tests meet the same SCC set a fresh cluster gives, so a pod that only works because a
stand-in SCC is looser than the real one cannot pass here. Pure data.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

SCC_API = "security.openshift.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"
ROLE_PREFIX = "system:openshift:scc:"

_BASE_VOLUMES = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
]
_LEGACY_DROP = ["KILL", "MKNOD", "SETUID", "SETGID"]


def _scc(name: str, description: str, **fields: Any) -> Obj:
    """One SCC with the operator's defaults for the fields it leaves out."""
    obj: Obj = {
        "apiVersion": SCC_API,
        "kind": "SecurityContextConstraints",
        "metadata": {"name": name, "annotations": {"kubernetes.io/description": description}},
        "allowHostDirVolumePlugin": False,
        "allowHostIPC": False,
        "allowHostNetwork": False,
        "allowHostPID": False,
        "allowHostPorts": False,
        "allowPrivilegeEscalation": True,
        "allowPrivilegedContainer": False,
        "allowedCapabilities": None,
        "defaultAddCapabilities": None,
        "fsGroup": {"type": "RunAsAny"},
        "groups": [],
        "priority": None,
        "readOnlyRootFilesystem": False,
        "requiredDropCapabilities": list(_LEGACY_DROP),
        "runAsUser": {"type": "MustRunAsRange"},
        "seLinuxContext": {"type": "MustRunAs"},
        "supplementalGroups": {"type": "RunAsAny"},
        "users": [],
        "volumes": list(_BASE_VOLUMES),
    }
    obj.update(fields)
    return obj


_V2 = {
    "allowPrivilegeEscalation": False,
    "allowedCapabilities": ["NET_BIND_SERVICE"],
    "requiredDropCapabilities": ["ALL"],
    "seccompProfiles": ["runtime/default"],
}

DEFAULT_SCCS: tuple[Obj, ...] = (
    _scc(
        "anyuid",
        "anyuid provides all features of the restricted SCC but allows users to run with any "
        "UID and any GID.",
        priority=10,
        groups=["system:cluster-admins"],
        requiredDropCapabilities=["MKNOD"],
        runAsUser={"type": "RunAsAny"},
    ),
    _scc(
        "hostaccess",
        "hostaccess allows access to all host namespaces but still requires pods to be run with "
        "a UID and SELinux context that are allocated to the namespace. WARNING: this SCC allows "
        "host access to namespaces, file systems, and PIDS.  It should only be used by trusted "
        "pods.  Grant with caution.",
        allowHostDirVolumePlugin=True,
        allowHostIPC=True,
        allowHostNetwork=True,
        allowHostPID=True,
        allowHostPorts=True,
        fsGroup={"type": "MustRunAs"},
        volumes=sorted([*_BASE_VOLUMES, "hostPath"]),
    ),
    _scc(
        "hostmount-anyuid",
        "hostmount-anyuid provides all the features of the restricted SCC but allows host "
        "mounts and any UID by a pod.  This is primarily used by the persistent volume "
        "recycler. WARNING: this SCC allows host file system access as any UID, including UID "
        "0.  Grant with caution.",
        allowHostDirVolumePlugin=True,
        requiredDropCapabilities=["MKNOD"],
        runAsUser={"type": "RunAsAny"},
        users=["system:serviceaccount:openshift-infra:pv-recycler-controller"],
        volumes=sorted([*_BASE_VOLUMES, "hostPath", "nfs"]),
    ),
    _scc(
        "hostnetwork",
        "hostnetwork allows using host networking and host ports but still requires pods to be "
        "run with a UID and SELinux context that are allocated to the namespace.",
        allowHostNetwork=True,
        allowHostPorts=True,
        fsGroup={"type": "MustRunAs"},
        supplementalGroups={"type": "MustRunAs"},
    ),
    _scc(
        "hostnetwork-v2",
        "hostnetwork allows using host networking and host ports but still requires pods to be "
        "run with a UID and SELinux context that are allocated to the namespace. On top of the "
        "legacy 'hostnetwork' SCC, it also requires to drop ALL capabilities and does not allow "
        "privilege escalation binaries. It will also default the seccomp profile to "
        "runtime/default if unset, otherwise this seccomp profile is required.",
        allowHostNetwork=True,
        allowHostPorts=True,
        fsGroup={"type": "MustRunAs"},
        supplementalGroups={"type": "MustRunAs"},
        **_V2,
    ),
    _scc(
        "nonroot",
        "nonroot provides all features of the restricted SCC but allows users to run with any "
        "non-root UID.  The user must specify the UID or it must be specified on the by the "
        "manifest of the container runtime.",
        runAsUser={"type": "MustRunAsNonRoot"},
    ),
    _scc(
        "nonroot-v2",
        "nonroot provides all features of the restricted SCC but allows users to run with any "
        "non-root UID.  The user must specify the UID or it must be specified on the by the "
        "manifest of the container runtime. On top of the legacy 'nonroot' SCC, it also "
        "requires to drop ALL capabilities and does not allow privilege escalation binaries. "
        "It will also default the seccomp profile to runtime/default if unset, otherwise this "
        "seccomp profile is required.",
        runAsUser={"type": "MustRunAsNonRoot"},
        **_V2,
    ),
    _scc(
        "privileged",
        "privileged allows access to all privileged and host features and the ability to run "
        "as any user, any group, any fsGroup, and with any SELinux context.  WARNING: this is "
        "the most relaxed SCC and should be used only for cluster administration. Grant with "
        "caution.",
        allowHostDirVolumePlugin=True,
        allowHostIPC=True,
        allowHostNetwork=True,
        allowHostPID=True,
        allowHostPorts=True,
        allowPrivilegedContainer=True,
        allowedCapabilities=["*"],
        allowedUnsafeSysctls=["*"],
        groups=["system:cluster-admins", "system:nodes", "system:masters"],
        requiredDropCapabilities=None,
        runAsUser={"type": "RunAsAny"},
        seLinuxContext={"type": "RunAsAny"},
        seccompProfiles=["*"],
        users=["system:admin", "system:serviceaccount:openshift-infra:build-controller"],
        volumes=["*"],
    ),
    _scc(
        "restricted",
        "restricted denies access to all host features and requires pods to be run with a UID, "
        "and SELinux context that are allocated to the namespace.",
        fsGroup={"type": "MustRunAs"},
    ),
    _scc(
        "restricted-v2",
        "restricted-v2 denies access to all host features and requires pods to be run with a "
        "UID, and SELinux context that are allocated to the namespace. This is the most "
        "restrictive SCC and it is used by default for authenticated users. On top of the "
        "legacy 'restricted' SCC, it also requires to drop ALL capabilities and does not allow "
        "privilege escalation binaries. It will also default the seccomp profile to "
        "runtime/default if unset, otherwise this seccomp profile is required.",
        fsGroup={"type": "MustRunAs"},
        **_V2,
    ),
)

STANDARD_NAMES = frozenset(s["metadata"]["name"] for s in DEFAULT_SCCS)


def use_role(scc_name: str) -> Obj:
    """The ClusterRole that grants ``use`` of one SCC (OpenShift's way of granting SCCs)."""
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRole",
        "metadata": {
            "name": ROLE_PREFIX + scc_name,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": [
            {
                "apiGroups": ["security.openshift.io"],
                "resources": ["securitycontextconstraints"],
                "resourceNames": [scc_name],
                "verbs": ["use"],
            }
        ],
    }


def authenticated_restricted_v2() -> Obj:
    """Every authenticated user (hence every pod's creator) may use restricted-v2."""
    return {
        "apiVersion": RBAC_API,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ROLE_PREFIX + "restricted-v2"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ROLE_PREFIX + "restricted-v2",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:authenticated",
            }
        ],
    }


def bootstrap_objects() -> list[Obj]:
    """SCCs, their ``use`` ClusterRoles and the restricted-v2 binding, in creation order."""
    sccs = [copy.deepcopy(s) for s in DEFAULT_SCCS]
    roles = [use_role(s["metadata"]["name"]) for s in DEFAULT_SCCS]
    return [*sccs, *roles, authenticated_restricted_v2()]
