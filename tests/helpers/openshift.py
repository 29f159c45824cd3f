"""OpenShift Templates as `oc process` makes them (the processor lives in
``devstack.oc_process``, which the stack uses to apply ``openshift/`` to the stand-in), and
the required fields of the OpenShift kinds (which the Kubernetes OpenAPI schema does not
know). Pure.
"""

from __future__ import annotations

import re
from typing import Any

from devstack.oc_process import (  # noqa: F401 - the tests' names for the processor
    OPENSHIFT,
    TemplateError,
    load,
    parameter_values,
    process,
    references,
    required_without_default,
    substitute,
)

# -- required fields of the OpenShift kinds ----------------------------------------------
# From the OpenShift API (openshift/api): Route (route.openshift.io/v1), SCC
# (security.openshift.io/v1), Template (template.openshift.io/v1).
SCC_REQUIRED_BOOLS = (
    "allowHostDirVolumePlugin",
    "allowHostIPC",
    "allowHostNetwork",
    "allowHostPID",
    "allowHostPorts",
    "allowPrivilegedContainer",
    "readOnlyRootFilesystem",
)
SCC_REQUIRED = SCC_REQUIRED_BOOLS + (
    "allowedCapabilities",
    "defaultAddCapabilities",
    "priority",
    "requiredDropCapabilities",
    "volumes",
)
SCC_RUN_AS_USER = {"MustRunAs", "MustRunAsRange", "MustRunAsNonRoot", "RunAsAny"}
SCC_GROUP_STRATEGIES = {"MustRunAs", "RunAsAny"}
SCC_VOLUMES = {
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephFS", "cinder", "configMap", "csi",
    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
    "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs", "none", "persistentVolumeClaim",
    "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
    "storageOS", "vsphere", "*",
}  # fmt: skip
ROUTE_TERMINATIONS = {"edge", "passthrough", "reencrypt"}
ROUTE_INSECURE = {"Allow", "None", "Redirect", ""}


def _name_problems(obj: dict[str, Any]) -> list[str]:
    name = (obj.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name or "") or len(name) > 253:
        return [f"metadata.name {name!r} is not a DNS-1123 subdomain"]
    return []


def route_problems(obj: dict[str, Any]) -> list[str]:
    problems = _name_problems(obj)
    spec = obj.get("spec") or {}
    to = spec.get("to") or {}
    if to.get("kind") != "Service" or not to.get("name"):
        problems.append("spec.to needs kind: Service and a name")
    tls = spec.get("tls")
    if tls is not None:
        if tls.get("termination") not in ROUTE_TERMINATIONS:
            problems.append(f"spec.tls.termination must be one of {sorted(ROUTE_TERMINATIONS)}")
        if tls.get("insecureEdgeTerminationPolicy", "") not in ROUTE_INSECURE:
            problems.append("spec.tls.insecureEdgeTerminationPolicy is not Allow/None/Redirect")
    known = {
        "host",
        "path",
        "to",
        "alternateBackends",
        "port",
        "tls",
        "wildcardPolicy",
        "subdomain",
    }
    problems += [f"spec.{k} is not a Route field" for k in set(spec) - known]
    return problems


def scc_problems(obj: dict[str, Any]) -> list[str]:
    problems = _name_problems(obj)
    problems += [f"{k} is required" for k in SCC_REQUIRED if k not in obj]
    problems += [f"{k} must be a boolean" for k in SCC_REQUIRED_BOOLS if k in obj and not
                 isinstance(obj[k], bool)]  # fmt: skip
    run_as = obj.get("runAsUser") or {}
    if run_as.get("type") not in SCC_RUN_AS_USER:
        problems.append("runAsUser.type is not a known strategy")
    if run_as.get("type") == "MustRunAsRange":
        lo, hi = run_as.get("uidRangeMin"), run_as.get("uidRangeMax")
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 < lo <= hi):
            problems.append("runAsUser MustRunAsRange needs integer 0 < uidRangeMin <= uidRangeMax")
    for field in ("fsGroup", "supplementalGroups"):
        strategy = obj.get(field) or {}
        if strategy.get("type") not in SCC_GROUP_STRATEGIES:
            problems.append(f"{field}.type is not MustRunAs or RunAsAny")
        for r in strategy.get("ranges") or []:
            if not (isinstance(r.get("min"), int) and isinstance(r.get("max"), int)):
                problems.append(f"{field}.ranges need integer min and max")
    if (obj.get("seLinuxContext") or {}).get("type") not in {"MustRunAs", "RunAsAny"}:
        problems.append("seLinuxContext.type is not MustRunAs or RunAsAny")
    bad = set(obj.get("volumes") or []) - SCC_VOLUMES
    problems += [f"volumes: {v!r} is not a volume type" for v in sorted(bad)]
    return problems


def template_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    if template.get("apiVersion") != "template.openshift.io/v1" or template.get("kind") != (
        "Template"
    ):
        problems.append("not a template.openshift.io/v1 Template")
    problems += _name_problems(template)
    if not isinstance(template.get("objects"), list) or not template["objects"]:
        problems.append("objects is required")
    for i, p in enumerate(template.get("parameters") or []):
        if not re.fullmatch(r"[A-Za-z0-9_]+", p.get("name") or ""):
            problems.append(f"parameters[{i}].name is missing or invalid")
        known = {"name", "displayName", "description", "value", "generate", "from", "required"}
        problems += [f"parameters[{i}].{k} is not a parameter field" for k in set(p) - known]
        if p.get("generate") not in (None, "expression"):
            problems.append(f"parameters[{i}].generate must be 'expression'")
        if "value" in p and not isinstance(p["value"], str):
            problems.append(f"parameters[{i}].value must be a string")
    return problems


OPENSHIFT_CHECKS = {
    ("route.openshift.io/v1", "Route"): route_problems,
    ("security.openshift.io/v1", "SecurityContextConstraints"): scc_problems,
}
