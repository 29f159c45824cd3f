"""The OpenShift profile of the Kubernetes stand-in: what OpenShift adds to the API
server, so that tests meet its refusals here rather than in production.

``KubeStandIn(profile="openshift")`` installs the admission plugins below, in OpenShift's
order, and the cluster objects every OpenShift cluster has (see :func:`bootstrap`).
Each plugin lives in its own module and answers like the real one (status, reason,
message shape).
"""

from __future__ import annotations

from typing import Any

from .. import jobs_controller
from ..admission import Admission, Plugin
from ..pod_security import PodSecurity
from ..quota import ResourceQuotaAdmission
from .namespaces import NamespaceRanges
from .owner_references import OwnerReferencesPermissionEnforcement
from .scc import SCCObjects, SecurityContextConstraint
from .sccs import bootstrap_objects

PROFILES = ("kubernetes", "openshift")


def plugins() -> list[Plugin]:
    """The profile's admission plugins, in the order the API server runs them."""
    return [
        NamespaceRanges(),
        SCCObjects(),
        SecurityContextConstraint(),
        OwnerReferencesPermissionEnforcement(),
        PodSecurity(),
        ResourceQuotaAdmission(),
    ]


def bootstrap() -> list[dict[str, Any]]:
    """Objects an OpenShift cluster starts with (SCCs and the RBAC that grants them)."""
    return [*bootstrap_objects(), *jobs_controller.bootstrap_rbac()]


def install(standin: Any) -> None:
    """Give a KubeStandIn the OpenShift profile (before it creates any namespace)."""
    registry = standin.registry
    registry.admission = Admission(registry.store, standin.api.authorizer, plugins())
    for obj in bootstrap():
        standin.create_object(obj)
