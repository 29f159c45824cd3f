"""SecurityContextConstraints admission, as OpenShift's kube-apiserver runs it
(``security.openshift.io/SecurityContextConstraint`` in openshift/apiserver-library-go).

A pod is admitted by the first SCC, in OpenShift's order, that the requesting user or the
pod's service account may use and that the pod validates against once the SCC has filled
in what it generates (uid, fsGroup, SELinux level, seccomp, dropped capabilities); the pod
is stored with those values and the annotation ``openshift.io/scc: <name>``. When none
does, the answer is 403 with every SCC's reason, in order, worded like the real plugin:

    pods "p" is forbidden: unable to validate against any security context constraint:
    [provider "anyuid": Forbidden: not usable by user or serviceaccount, provider
    restricted-v2: .spec.securityContext.fsGroup: Invalid value: []int64{5000}: 5000 is not
    an allowed group, spec.containers[0].securityContext.runAsUser: Invalid value: 5000: must
    be in the ranges: [1000650000, 1000659999], ...]

A pod annotated ``openshift.io/required-scc: <name>`` is tried against that SCC only
(OpenShift 4.14+). Updates are re-admitted without mutation: an SCC admits an updated pod
only if it would leave it exactly as it is (ownerReference/finalizer-only updates and
subresources such as status are not re-admitted).

The decisions (ordering, what an SCC generates, what it refuses) are pure functions of
the pod, the SCC and the namespace's annotations; the plugins at the end only look
things up (SCCs, the namespace, RBAC ``use``) and raise the API errors. SCC objects
themselves get OpenShift's defaults and a check of their required fields.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import rbac, validation
from ..admission import Admission, Request
from ..errors import BadRequest, Forbidden
from ..registry import NAME_ALPHABET
from ..store import NotFound
from .namespaces import MCS, SUPPLEMENTAL_GROUPS, UID_RANGE
from .sccs import STANDARD_NAMES

Obj = dict[str, Any]

SCC_RESOURCE = "security.openshift.io/v1/securitycontextconstraints"
VALIDATED_SCC = "openshift.io/scc"
REQUIRED_SCC = "openshift.io/required-scc"  # pins a pod to one SCC (OpenShift 4.14+)
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
RUNTIME_DEFAULT = "runtime/default"
DOCKER_DEFAULT = "docker/default"
NOT_USABLE = "not usable by user or serviceaccount"
UNABLE = "unable to validate against any security context constraint"

# volume source field (pod spec) -> SCC volume type, where the two differ
_FS_TYPE_OF = {"cephfs": "cephFS", "vsphereVolume": "vsphere", "storageos": "storageOS"}
FS_TYPES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephFS", "cinder", "configMap", "csi",
    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
    "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
    "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
    "storageOS", "vsphere",
)  # fmt: skip
_TRIVIAL_VOLUMES = {"secret", "configMap", "emptyDir", "downwardAPI", "projected", "none"}


# -- field errors, formatted like k8s.io/apimachinery's field.Error --------------------------
@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: ``<path>: <type>[: <value>][: <detail>]``."""

    path: str
    type: str  # "Invalid value", "Required value" or "Forbidden"
    value: str = ""  # already in Go's notation; only for "Invalid value"
    detail: str = ""

    def __str__(self) -> str:
        body = self.type
        if self.type == "Invalid value":
            body += f": {self.value}"
        if self.detail:
            body += f": {self.detail}"
        return f"{self.path}: {body}"


def go_value(value: Any) -> str:
    """A bad value as ``field.Invalid`` prints it (``%v``, ``%q``, ``%#v``)."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def go_int64s(values: list[int] | None) -> str:
    if values is None:
        return "[]int64(nil)"
    return "[]int64{" + ", ".join(str(v) for v in values) + "}"


def go_capabilities(values: list[str] | None) -> str:
    if values is None:
        return "[]core.Capability(nil)"
    return "[]core.Capability{" + ", ".join(json.dumps(v) for v in values) + "}"


def invalid(path: str, value: str, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail=detail)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail=detail)


def aggregate(errors: Iterable[FieldError]) -> str:
    """``ErrorList.ToAggregate().Error()``: de-duplicated, bracketed when more than one."""
    seen = list(dict.fromkeys(str(e) for e in errors))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


# -- ordering: priority, then restrictiveness, then name ---------------------------------
_RUN_AS_POINTS = {"RunAsAny": 40_000, "MustRunAsNonRoot": 30_000, "MustRunAsRange": 20_000,
                  "MustRunAs": 10_000}  # fmt: skip


def _volume_points(volumes: list[str]) -> int:
    if any(v in ("hostPath", "*") for v in volumes):
        return 200_000
    if any(v not in _TRIVIAL_VOLUMES for v in volumes):
        return 100_000
    return 0


def _capability_points(scc: Obj) -> int:
    allowed = [c.upper() for c in scc.get("allowedCapabilities") or []]
    drop = [c.upper() for c in scc.get("requiredDropCapabilities") or []]
    points = 5000 + 300 * len(scc.get("defaultAddCapabilities") or [])
    points += 4000 if ("*" in allowed or "ALL" in allowed) else 10 * len(allowed)
    points += -3000 if "ALL" in drop else -50 * len(drop)
    return max(0, min(points, 9999))


def restriction_points(scc: Obj) -> int:
    """OpenShift's restrictiveness score (util/sort/byrestrictions.go): lower is stricter."""
    points = 1_600_000 if scc.get("allowPrivilegedContainer") else 0
    points += _volume_points(scc.get("volumes") or [])
    points += 400_000 if scc.get("allowHostNetwork") else 0
    points += 800_000 if scc.get("allowHostPorts") else 0
    points += _capability_points(scc)
    points += _RUN_AS_POINTS.get((scc.get("seLinuxContext") or {}).get("type", ""), 0)
    points += _RUN_AS_POINTS.get((scc.get("runAsUser") or {}).get("type", ""), 0)
    return points


def sort_key(scc: Obj) -> tuple[int, int, str]:
    """Highest priority first (nil is 0), then most restrictive, then by name."""
    return (-(scc.get("priority") or 0), restriction_points(scc), scc["metadata"]["name"])


def ordered(sccs: Iterable[Obj], hint: str = "") -> list[Obj]:
    """The order admission tries SCCs in; a pod's validated SCC (``hint``) goes first."""
    out = sorted(sccs, key=sort_key)
    if hint:
        out.sort(key=lambda s: s["metadata"]["name"] != hint)
    return out


# -- pre-allocated values from the namespace ---------------------------------------------
class ProviderError(Exception):
    """An SCC cannot be made concrete for the namespace (a missing annotation)."""


def parse_block(value: str) -> tuple[int, int]:
    """``start/size`` or ``start-end`` (library-go's uid.ParseBlock) -> (first, last)."""
    if "/" in value:
        start, _, size = value.partition("/")
        if start.isdigit() and size.isdigit() and int(size) > 0:
            return int(start), int(start) + int(size) - 1
    elif "-" in value:
        start, _, end = value.partition("-")
        if start.isdigit() and end.isdigit() and int(start) <= int(end):
            return int(start), int(end)
    raise ProviderError(f"block not in the format <start>/<size> or <start>-<end>: {value!r}")


def _annotation(annotations: dict[str, str], key: str) -> str:
    value = annotations.get(key)
    if value is None:
        raise ProviderError(f"unable to find annotation {key}")
    if not value:
        raise ProviderError(f"found annotation {key} but it was empty")
    return value


def _group_blocks(annotations: dict[str, str]) -> list[tuple[int, int]]:
    value = annotations.get(SUPPLEMENTAL_GROUPS) or _annotation(annotations, UID_RANGE)
    return [parse_block(part) for part in value.split(",")]


def resolve(scc: Obj, namespace: str, annotations: dict[str, str]) -> Obj:
    """The SCC with the namespace's pre-allocated uid range, MCS level and groups filled in
    where it asks for them (MustRunAsRange without a range, MustRunAs without values)."""
    scc, name = copy.deepcopy(scc), scc["metadata"]["name"]

    def fail(what: str, err: ProviderError) -> ProviderError:
        return ProviderError(
            f"unable to find pre-allocated {what} annotation for namespace {namespace} while "
            f"trying to configure SCC {name}: {err}"
        )

    run_as = scc.setdefault("runAsUser", {})
    if (
        run_as.get("type") == "MustRunAsRange"
        and run_as.get("uidRangeMin") is None
        and run_as.get("uidRangeMax") is None
    ):
        try:
            run_as["uidRangeMin"], run_as["uidRangeMax"] = parse_block(
                _annotation(annotations, UID_RANGE)
            )
        except ProviderError as err:
            raise fail("uid", err) from None
    selinux = scc.setdefault("seLinuxContext", {})
    if selinux.get("type") == "MustRunAs" and not (selinux.get("seLinuxOptions") or {}).get(
        "level"
    ):
        try:
            level = _annotation(annotations, MCS)
        except ProviderError as err:
            raise fail("mcs", err) from None
        selinux["seLinuxOptions"] = {**(selinux.get("seLinuxOptions") or {}), "level": level}
    for key in ("fsGroup", "supplementalGroups"):
        strategy = scc.setdefault(key, {})
        if strategy.get("type") == "MustRunAs" and not strategy.get("ranges"):
            try:
                blocks = _group_blocks(annotations)
            except ProviderError as err:
                raise fail("group", err) from None
            if key == "fsGroup":  # one fixed group: the first of the first block
                strategy["ranges"] = [{"min": blocks[0][0], "max": blocks[0][0]}]
            else:
                strategy["ranges"] = [{"min": lo, "max": hi} for lo, hi in blocks]
    return scc


# -- what an SCC does to a pod ------------------------------------------------------------
def fs_type(volume: Obj) -> str:
    """The SCC volume type of a pod volume (its source field), "" if it has none."""
    for key in volume:
        if key != "name":
            return _FS_TYPE_OF.get(key, key)
    return ""


def _seccomp_name(profile: Obj | None) -> str:
    """A seccompProfile field as the annotation spells it."""
    if not profile:
        return ""
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return RUNTIME_DEFAULT
    if kind == "Unconfined":
        return "unconfined"
    if kind == "Localhost" and profile.get("localhostProfile"):
        return "localhost/" + profile["localhostProfile"]
    return ""


def _seccomp_field(name: str) -> Obj | None:
    if name in (RUNTIME_DEFAULT, DOCKER_DEFAULT):
        return {"type": "RuntimeDefault"}
    if name == "unconfined":
        return {"type": "Unconfined"}
    if name.startswith("localhost/"):
        return {"type": "Localhost", "localhostProfile": name[len("localhost/") :]}
    return None


def _seccomp_error(scc: Obj, path: str, profile: str) -> FieldError | None:
    listed = scc.get("seccompProfiles") or []
    allow_any = "*" in listed
    allowed = [p for p in listed if p != "*"]
    if not allow_any and not allowed and profile:
        return forbidden(path, "seccomp may not be set")
    if (not allowed and not profile) or allow_any or profile in allowed:
        return None
    defaults = (RUNTIME_DEFAULT, DOCKER_DEFAULT)
    if profile in defaults and any(p in defaults for p in allowed):
        return None
    return forbidden(
        path,
        f"{profile} is not an allowed seccomp profile. Valid values are [{' '.join(allowed)}]",
    )


def _in_ranges(value: int, ranges: list[Obj]) -> bool:
    return any(r.get("min", 0) <= value <= r.get("max", 0) for r in ranges)


def _equal_levels(expected: str, actual: str) -> bool:
    """SELinux levels match when sensitivity and the set of categories do."""
    if expected == actual:
        return True
    e, a = expected.split(":", 1), actual.split(":", 1)
    if len(e) != 2 or len(a) != 2 or e[0] != a[0]:
        return False
    return sorted(e[1].split(",")) == sorted(a[1].split(","))


def _selinux_errors(scc: Obj, path: str, options: Obj | None) -> list[FieldError]:
    strategy = scc.get("seLinuxContext") or {}
    if strategy.get("type") != "MustRunAs":
        return []
    want = strategy.get("seLinuxOptions") or {}
    if options is None:
        return [required(path)]
    errors = []
    if not _equal_levels(want.get("level", ""), options.get("level", "")):
        errors.append(
            invalid(f"{path}.level", go_value(options.get("level", "")), f"must be {want['level']}")
        )
    for key in ("role", "type", "user"):
        if options.get(key, "") != want.get(key, ""):
            detail = f"must be {want.get(key, '')}"
            errors.append(invalid(f"{path}.{key}", go_value(options.get(key, "")), detail))
    return errors


def _group_errors(scc: Obj, key: str, path: str, groups: list[int] | None) -> list[FieldError]:
    strategy = scc.get(key) or {}
    if strategy.get("type") != "MustRunAs":
        return []
    ranges = strategy.get("ranges") or []
    shown = go_int64s(groups)
    if not groups:
        return [invalid(path, shown, "unable to validate empty groups against required ranges")]
    return [
        invalid(path, shown, f"{g} is not an allowed group")
        for g in groups
        if not _in_ranges(g, ranges)
    ]


def _run_as_user_errors(scc: Obj, path: str, uid: Any, non_root: Any) -> list[FieldError]:
    strategy = scc.get("runAsUser") or {}
    kind = strategy.get("type")
    if kind == "MustRunAsRange":
        lo, hi = strategy.get("uidRangeMin"), strategy.get("uidRangeMax")
        if uid is None:
            return [required(f"{path}.runAsUser")]
        if not (lo <= uid <= hi):
            detail = f"must be in the ranges: [{lo}, {hi}]"
            return [invalid(f"{path}.runAsUser", go_value(uid), detail)]
    elif kind == "MustRunAs":
        if uid is None:
            return [required(f"{path}.runAsUser")]
        if uid != strategy.get("uid"):
            return [invalid(f"{path}.runAsUser", go_value(uid), f"must be: {strategy.get('uid')}")]
    elif kind == "MustRunAsNonRoot":
        if non_root is None and uid is None:
            return [required(f"{path}.runAsNonRoot", "must be true")]
        if non_root is False:
            return [invalid(f"{path}.runAsNonRoot", "false", "must be true")]
        if uid == 0:
            return [invalid(f"{path}.runAsUser", "0", "running with the root UID is forbidden")]
    return []


def _capability_errors(scc: Obj, path: str, caps: Obj | None) -> list[FieldError]:
    default_add = scc.get("defaultAddCapabilities") or []
    required_drop = scc.get("requiredDropCapabilities") or []
    if caps is None:
        if not default_add and not required_drop:
            return []
        detail = "required capabilities are not set on the securityContext"
        return [invalid(f"{path}.capabilities", go_value(None), detail)]
    allowed = scc.get("allowedCapabilities") or []
    if "*" in allowed:
        return []
    errors = [
        invalid(f"{path}.capabilities.add", go_value(c), "capability may not be added")
        for c in caps.get("add") or []
        if c not in default_add and c not in allowed
    ]
    drops = caps.get("drop")
    for c in required_drop:
        if c not in (drops or []):
            detail = f"{c} is required to be dropped but was not found"
            errors.append(invalid(f"{path}.capabilities.drop", go_capabilities(drops), detail))
    return errors


def _generate_capabilities(scc: Obj, caps: Obj | None) -> Obj | None:
    """Required drops and default adds (unless the container drops them) merged in."""
    add = set((caps or {}).get("add") or [])
    drop = set((caps or {}).get("drop") or [])
    default_add = set(scc.get("defaultAddCapabilities") or []) - drop
    all_add = default_add | add
    all_drop = set(scc.get("requiredDropCapabilities") or []) | drop
    if len(all_add) == len(add) and len(all_drop) == len(drop):
        return caps
    out: Obj = {}
    if all_add:
        out["add"] = sorted(all_add)
    if all_drop:
        out["drop"] = sorted(all_drop)
    return out


def _mutate_pod(scc: Obj, pod: Obj) -> None:
    """What the SCC generates at pod level: fsGroup, supplemental groups, SELinux, seccomp."""
    spec = pod["spec"]
    psc = spec.get("securityContext")
    if psc is None:
        psc = spec["securityContext"] = {}
    fs_group = scc.get("fsGroup") or {}
    if fs_group.get("type") == "MustRunAs" and psc.get("fsGroup") is None:
        psc["fsGroup"] = fs_group["ranges"][0]["min"]
    groups = scc.get("supplementalGroups") or {}
    if groups.get("type") == "MustRunAs" and not psc.get("supplementalGroups"):
        psc["supplementalGroups"] = [groups["ranges"][0]["min"]]
    selinux = scc.get("seLinuxContext") or {}
    if selinux.get("type") == "MustRunAs" and psc.get("seLinuxOptions") is None:
        psc["seLinuxOptions"] = dict(selinux.get("seLinuxOptions") or {})
    annotations = pod["metadata"].get("annotations") or {}
    profile = _seccomp_name(psc.get("seccompProfile")) or annotations.get(SECCOMP_POD, "")
    if not profile:
        profile = next((p for p in scc.get("seccompProfiles") or [] if p != "*"), "")
    if profile:
        pod["metadata"]["annotations"] = {**annotations, SECCOMP_POD: profile}
        field = _seccomp_field(profile)
        if field is not None:
            psc["seccompProfile"] = field


def _mutate_container(scc: Obj, psc: Obj, container: Obj) -> None:
    """What the SCC generates for one container, where neither it nor the pod says."""
    csc = dict(container.get("securityContext") or {})

    def effective(key: str) -> Any:
        return csc[key] if csc.get(key) is not None else psc.get(key)

    run_as = scc.get("runAsUser") or {}
    if effective("runAsUser") is None:
        if run_as.get("type") == "MustRunAsRange":
            csc["runAsUser"] = run_as["uidRangeMin"]
        elif run_as.get("type") == "MustRunAs":
            csc["runAsUser"] = run_as["uid"]
    selinux = scc.get("seLinuxContext") or {}
    if selinux.get("type") == "MustRunAs" and effective("seLinuxOptions") is None:
        csc["seLinuxOptions"] = dict(selinux.get("seLinuxOptions") or {})
    caps = _generate_capabilities(scc, csc.get("capabilities"))
    if caps is not None:
        csc["capabilities"] = caps
    if effective("runAsNonRoot") is None:
        uid = effective("runAsUser")
        if (uid is None and run_as.get("type") == "MustRunAsNonRoot") or (uid or 0) > 0:
            csc["runAsNonRoot"] = True
    if scc.get("readOnlyRootFilesystem") and csc.get("readOnlyRootFilesystem") is None:
        csc["readOnlyRootFilesystem"] = True
    privileged = csc.get("privileged") is True
    sys_admin = "CAP_SYS_ADMIN" in ((csc.get("capabilities") or {}).get("add") or [])
    default_ape = scc.get("defaultAllowPrivilegeEscalation")
    if default_ape is not None and csc.get("allowPrivilegeEscalation") is None:
        if not privileged and not sys_admin:
            csc["allowPrivilegeEscalation"] = default_ape
    if scc.get("allowPrivilegeEscalation") is False and csc.get("allowPrivilegeEscalation") is None:
        csc["allowPrivilegeEscalation"] = False
    if csc or "securityContext" in container:
        container["securityContext"] = csc


def _pod_errors(scc: Obj, pod: Obj, prefix: str) -> list[FieldError]:
    """Pod-level checks, in the plugin's order; their paths carry the provider prefix."""
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    path = f"{prefix}.spec.securityContext"
    fs_group = psc.get("fsGroup")
    fs_groups = [] if fs_group is None else [fs_group]
    errors = _group_errors(scc, "fsGroup", f"{path}.fsGroup", fs_groups)
    groups = psc.get("supplementalGroups")
    errors += _group_errors(scc, "supplementalGroups", f"{path}.supplementalGroups", groups)
    annotations = pod["metadata"].get("annotations") or {}
    profile = annotations.get(SECCOMP_POD) or _seccomp_name(psc.get("seccompProfile"))
    seccomp = _seccomp_error(scc, f"pod.metadata.annotations[{SECCOMP_POD}]", profile)
    errors += [seccomp] if seccomp else []
    errors += _selinux_errors(scc, f"{path}.seLinuxOptions", psc.get("seLinuxOptions"))
    for field, allow, what in (
        ("hostNetwork", "allowHostNetwork", "Host network"),
        ("hostPID", "allowHostPID", "Host PID"),
        ("hostIPC", "allowHostIPC", "Host IPC"),
    ):
        if spec.get(field) and not scc.get(allow):
            errors.append(invalid(f"{path}.{field}", "true", f"{what} is not allowed to be used"))
    allowed = set(scc.get("volumes") or [])
    if "*" not in allowed:
        for i, volume in enumerate(spec.get("volumes") or []):
            kind = fs_type(volume)
            if kind not in allowed:
                detail = f"{kind} volumes are not allowed to be used"
                errors.append(invalid(f"spec.volumes[{i}]", go_value(kind), detail))
    return errors


def _container_errors(scc: Obj, pod: Obj, container: Obj, path: str) -> list[FieldError]:
    """Container-level checks on the effective (container over pod) security context."""
    psc = pod["spec"].get("securityContext") or {}
    csc = container.get("securityContext") or {}
    sc_path = f"{path}.securityContext"

    def effective(key: str) -> Any:
        return csc[key] if csc.get(key) is not None else psc.get(key)

    errors = _run_as_user_errors(scc, sc_path, effective("runAsUser"), effective("runAsNonRoot"))
    errors += _selinux_errors(scc, f"{sc_path}.seLinuxOptions", effective("seLinuxOptions"))
    annotations = pod["metadata"].get("annotations") or {}
    key = SECCOMP_CONTAINER + container.get("name", "")
    profile = (
        _seccomp_name(csc.get("seccompProfile"))
        or annotations.get(key)
        or _seccomp_name(psc.get("seccompProfile"))
        or annotations.get(SECCOMP_POD, "")
    )
    seccomp = _seccomp_error(scc, f"pod.metadata.annotations[{key}]", profile)
    errors += [seccomp] if seccomp else []
    if csc.get("privileged") is True and not scc.get("allowPrivilegedContainer"):
        errors.append(
            invalid(f"{sc_path}.privileged", "true", "Privileged containers are not allowed")
        )
    errors += _capability_errors(scc, sc_path, csc.get("capabilities"))
    if not scc.get("allowHostPorts"):
        for port in container.get("ports") or []:
            if (port.get("hostPort") or 0) > 0:
                errors.append(
                    invalid(
                        f"{path}.ports.hostPort",
                        go_value(port["hostPort"]),
                        "Host ports are not allowed to be used",
                    )
                )
    if scc.get("readOnlyRootFilesystem"):
        read_only = csc.get("readOnlyRootFilesystem")
        if read_only is None:
            detail = "ReadOnlyRootFilesystem may not be nil and must be set to true"
            errors.append(invalid(f"{sc_path}.readOnlyRootFilesystem", go_value(None), detail))
        elif not read_only:
            detail = "ReadOnlyRootFilesystem must be set to true"
            errors.append(invalid(f"{sc_path}.readOnlyRootFilesystem", "false", detail))
    escalation = csc.get("allowPrivilegeEscalation")
    if scc.get("allowPrivilegeEscalation") is False and escalation is not False:
        errors.append(
            invalid(
                f"{sc_path}.allowPrivilegeEscalation",
                go_value(escalation),
                "Allowing privilege escalation for containers is not allowed",
            )
        )
    return errors


def apply_scc(scc: Obj, pod: Obj) -> tuple[Obj, list[FieldError]]:
    """A copy of ``pod`` with what the (resolved) SCC generates, and what it refuses.

    Like ``AssignSecurityContext``: pod level first, then init containers, then containers;
    values the pod or container already sets are kept and validated, never replaced.
    """
    pod = copy.deepcopy(pod)
    pod.setdefault("metadata", {})
    pod.setdefault("spec", {})
    _mutate_pod(scc, pod)
    errors = _pod_errors(scc, pod, f"provider {scc['metadata']['name']}: ")
    psc = pod["spec"]["securityContext"]
    for key in ("initContainers", "containers"):
        for i, container in enumerate(pod["spec"].get(key) or []):
            _mutate_container(scc, psc, container)
            errors += _container_errors(scc, pod, container, f"spec.{key}[{i}]")
    return pod, errors


@dataclass
class Decision:
    """The outcome of SCC admission for one pod."""

    pod: Obj | None  # the admitted pod (with what the SCC generated), None if refused
    scc: str  # the admitting SCC's name, "" if refused
    errors: list[FieldError]  # every SCC's reason, in order (for the refusal message)


def decide(
    pod: Obj,
    sccs: list[Obj],
    usable: Callable[[Obj], bool],
    *,
    mutation_allowed: bool,
    hint: str = "",
) -> Decision:
    """Try the (resolved) SCCs in OpenShift's order; the first usable one the pod validates
    against admits it. Without mutation (updates, the validating phase) an SCC admits only
    if it would leave the pod exactly as it is."""
    errors: list[FieldError] = []
    denied: set[str] = set()
    by_name: dict[str, Obj] = {}
    for scc in ordered(sccs, hint):
        name = scc["metadata"]["name"]
        by_name[name] = scc
        if not usable(scc):
            denied.add(name)
            errors.append(forbidden(f'provider "{name}"', NOT_USABLE))
            continue
        admitted, refused = apply_scc(scc, pod)
        if refused:
            errors += refused
            continue
        if mutation_allowed or admitted == pod:
            return Decision(admitted, name, errors)
    if "restricted-v2" in by_name and "restricted" in denied:
        _, refused = apply_scc(by_name["restricted"], pod)
        if not refused:
            errors.append(
                forbidden(
                    "no access to scc/restricted",
                    "the pod fails to validate against the `restricted-v2` security context "
                    "constraint, but would validate successfully against the `restricted` "
                    "security context constraint",
                )
            )
    return Decision(None, "", errors)


def only_gc_fields_changed(new: Obj, old: Obj) -> bool:
    """An update that touches nothing but ownerReferences and finalizers (the garbage
    collector's writes) is not re-admitted."""

    def strip(obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.get("metadata") or {}
        for key in ("ownerReferences", "finalizers", "resourceVersion", "managedFields"):
            meta.pop(key, None)
        obj.pop("status", None)
        return obj

    return strip(new) == strip(old)


_INT64_FIELDS = ("runAsUser", "runAsGroup", "fsGroup")


def decode_problem(pod: Obj) -> str:
    """The decoding error the real server answers (400) for ids that are not integers,
    so the SCC checks below only ever compare numbers."""

    def bad(value: Any) -> bool:
        return value is not None and (not isinstance(value, int) or isinstance(value, bool))

    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    where = "Go struct field PodSecurityContext.spec.securityContext"
    for key in _INT64_FIELDS:
        if bad(psc.get(key)):
            return f"{where}.{key} of type int64"
    if any(bad(g) for g in psc.get("supplementalGroups") or []):
        return f"{where}.supplementalGroups of type int64"
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            csc = c.get("securityContext") or {}
            for key in ("runAsUser", "runAsGroup"):
                if bad(csc.get(key)):
                    field = f"SecurityContext.spec.{group}.securityContext.{key}"
                    return f"Go struct field {field} of type int64"
            if any(bad(p.get("hostPort")) for p in c.get("ports") or []):
                return f"Go struct field ContainerPort.spec.{group}.ports.hostPort of type int32"
    return ""


# -- SCC objects: OpenShift's defaults and required fields --------------------------------
SCC_REQUIRED_BOOLS = (
    "allowHostDirVolumePlugin",
    "allowHostIPC",
    "allowHostNetwork",
    "allowHostPID",
    "allowHostPorts",
    "allowPrivilegedContainer",
    "readOnlyRootFilesystem",
)
SCC_REQUIRED_NULLABLE = (
    "allowedCapabilities",
    "defaultAddCapabilities",
    "priority",
    "requiredDropCapabilities",
    "volumes",
)
RUN_AS_USER_TYPES = ["MustRunAs", "MustRunAsNonRoot", "MustRunAsRange", "RunAsAny"]
SELINUX_TYPES = ["MustRunAs", "RunAsAny"]
GROUP_TYPES = ["MustRunAs", "RunAsAny"]


def scc_defaults(scc: Obj) -> None:
    """Defaulting as OpenShift applies it to a new or changed SCC: strategies default to
    RunAsAny, privilege escalation to allowed, and ``volumes`` follows
    ``allowHostDirVolumePlugin`` (hostPath added when allowed, taken out when not)."""
    for key in ("runAsUser", "seLinuxContext", "fsGroup", "supplementalGroups"):
        strategy = scc.get(key)
        if strategy is None:
            strategy = scc[key] = {}
        if isinstance(strategy, dict) and not strategy.get("type"):
            strategy["type"] = "RunAsAny"
    if scc.get("allowPrivilegeEscalation") is None:
        scc["allowPrivilegeEscalation"] = True
    volumes = scc.get("volumes")
    if not isinstance(volumes, list):
        return
    if scc.get("allowHostDirVolumePlugin") is True:
        if "*" not in volumes and "hostPath" not in volumes:
            volumes.append("hostPath")
    elif "*" in volumes:
        scc["volumes"] = [v for v in FS_TYPES if v != "hostPath"]
    elif "hostPath" in volumes:
        scc["volumes"] = [v for v in volumes if v != "hostPath"]


def _range_causes(field: str, lo: Any, hi: Any) -> list[validation.Cause]:
    if not isinstance(lo, int) or isinstance(lo, bool):
        return [validation.invalid(f"{field}.min", lo, "must be an integer")]
    if not isinstance(hi, int) or isinstance(hi, bool):
        return [validation.invalid(f"{field}.max", hi, "must be an integer")]
    if lo > hi:
        return [validation.invalid(field, f"{lo}-{hi}", "min must be less than or equal to max")]
    return []


def scc_causes(scc: Obj) -> list[validation.Cause]:
    """Why an SCC object is invalid: the CRD's required fields and the strategy checks."""
    causes = [validation.required(k) for k in (*SCC_REQUIRED_BOOLS, *SCC_REQUIRED_NULLABLE)
              if k not in scc]  # fmt: skip
    for key in SCC_REQUIRED_BOOLS:
        if key in scc and not isinstance(scc[key], bool):
            causes.append(validation.invalid(key, scc[key], f"{key} must be of type boolean"))
    priority = scc.get("priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        causes.append(validation.invalid("priority", priority, "priority must be an integer"))
    run_as = scc.get("runAsUser") or {}
    kind = run_as.get("type")
    if kind not in RUN_AS_USER_TYPES:
        causes.append(validation.not_supported("runAsUser.type", kind, RUN_AS_USER_TYPES))
    if kind == "MustRunAs" and run_as.get("uid") is None:
        causes.append(validation.required("runAsUser.uid", "uid must be set for MustRunAs"))
    lo, hi = run_as.get("uidRangeMin"), run_as.get("uidRangeMax")
    if kind == "MustRunAsRange" and (lo is not None or hi is not None):
        if lo is None or hi is None:
            missing = "runAsUser.uidRangeMin" if lo is None else "runAsUser.uidRangeMax"
            causes.append(validation.required(missing, "both or neither must be set"))
        else:
            causes += _range_causes("runAsUser", lo, hi)
    selinux = (scc.get("seLinuxContext") or {}).get("type")
    if selinux not in SELINUX_TYPES:
        causes.append(validation.not_supported("seLinuxContext.type", selinux, SELINUX_TYPES))
    for key in ("fsGroup", "supplementalGroups"):
        strategy = scc.get(key) or {}
        if strategy.get("type") not in GROUP_TYPES:
            kind = strategy.get("type")
            causes.append(validation.not_supported(f"{key}.type", kind, GROUP_TYPES))
        for i, r in enumerate(strategy.get("ranges") or []):
            causes += _range_causes(f"{key}.ranges[{i}]", r.get("min"), r.get("max"))
    known = {*FS_TYPES, "*", "none"}
    for i, v in enumerate(scc.get("volumes") or []):
        if v not in known:
            causes.append(validation.not_supported(f"volumes[{i}]", v, sorted(known)))
    return causes


# -- the admission plugins (look-ups and API errors only) -----------------------------------
class SCCObjects:
    """SecurityContextConstraints objects get OpenShift's defaults and are refused (422)
    without their required fields."""

    name = "security.openshift.io/DefaultSecurityContextConstraints"

    def admit(self, req: Request, chain: Admission) -> None:
        if req.kind.kind == "SecurityContextConstraints":
            scc_defaults(req.obj)

    def validate(self, req: Request, chain: Admission) -> None:
        if req.kind.kind != "SecurityContextConstraints":
            return
        causes = scc_causes(req.obj)
        if causes:
            raise validation.invalid_error(req.kind, req.name, causes)


def _annotation_of(obj: Obj | None, key: str) -> str:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key, "")


def _reported_name(pod: Obj) -> str:
    """The name admission errors carry: a generateName pod is named by its prefix (the real
    server generates the name after admission; this stand-in already has)."""
    meta = pod.get("metadata") or {}
    name, prefix = meta.get("name", ""), meta.get("generateName", "")
    suffix = name[len(prefix) :] if prefix and name.startswith(prefix) else None
    if suffix is not None and len(suffix) == 5 and set(suffix) <= set(NAME_ALPHABET):
        return prefix
    return name or prefix


def _forbidden(pod: Obj, message: str) -> Forbidden:
    name = _reported_name(pod)
    return Forbidden(
        f'pods "{name}" is forbidden: {message}', details={"name": name, "kind": "pods"}
    )


class SecurityContextConstraint:
    """Pods on CREATE and UPDATE: admitted by the first usable SCC they validate against."""

    name = "security.openshift.io/SecurityContextConstraint"

    def admit(self, req: Request, chain: Admission) -> None:
        if not self._applies(req, chain):
            return
        problem = decode_problem(req.obj)
        if problem:
            raise BadRequest(
                f'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal into '
                f"{problem}"
            )
        create = req.operation == "CREATE"
        if not create and _annotation_of(req.obj, REQUIRED_SCC) != _annotation_of(
            req.old, REQUIRED_SCC
        ):
            raise _forbidden(
                req.obj,
                "invalid change of required security context constraint annotation: "
                + REQUIRED_SCC,
            )
        decision = self._decide(req, chain, mutation_allowed=create, hint="")
        if decision.pod is None:
            raise _forbidden(req.obj, f"{UNABLE}: {aggregate(decision.errors)}")
        admitted = decision.pod
        admitted["metadata"].setdefault("annotations", {})[VALIDATED_SCC] = decision.scc
        req.obj.clear()
        req.obj.update(admitted)

    def validate(self, req: Request, chain: Admission) -> None:
        if not self._applies(req, chain):
            return
        required, hint = (
            _annotation_of(req.obj, REQUIRED_SCC),
            _annotation_of(req.obj, VALIDATED_SCC),
        )
        if required and required != hint:
            raise _forbidden(
                req.obj, f"required scc/{required} does not match the suggested scc/{hint}"
            )
        decision = self._decide(req, chain, mutation_allowed=False, hint=hint)
        if decision.pod is None:
            raise _forbidden(req.obj, f"{UNABLE}: {aggregate(decision.errors)}")

    # -- look-ups ------------------------------------------------------------------------
    @staticmethod
    def _applies(req: Request, chain: Admission) -> bool:
        if req.kind.kind != "Pod" or req.subresource:
            return False
        spec = req.obj.get("spec") or {}
        if (spec.get("os") or {}).get("name") == "windows":
            return False
        if req.operation == "UPDATE" and req.old is not None:
            if only_gc_fields_changed(req.obj, req.old):
                return False
        if req.operation == "CREATE":
            # the ServiceAccount admission plugin runs first and refuses a missing account
            sa = spec.get("serviceAccountName") or "default"
            if not chain.store.exists("v1/serviceaccounts", req.namespace, sa):
                return False
        return True

    def _decide(
        self, req: Request, chain: Admission, *, mutation_allowed: bool, hint: str
    ) -> Decision:
        sccs, _ = chain.store.list(SCC_RESOURCE)
        missing = STANDARD_NAMES - {s["metadata"]["name"] for s in sccs}
        if missing:
            raise _forbidden(
                req.obj,
                "securitycontextconstraints.security.openshift.io cache is missing "
                + ", ".join(sorted(missing)),
            )
        required = _annotation_of(req.obj, REQUIRED_SCC)
        if required:
            sccs = [s for s in sccs if s["metadata"]["name"] == required]
            if not sccs:
                raise _forbidden(
                    req.obj,
                    f'failed to retrieve the required SCC "{required}": '
                    f'securitycontextconstraints.security.openshift.io "{required}" not found',
                )
        annotations = self._namespace_annotations(req, chain)
        resolved, problems = [], []
        for scc in sccs:
            try:
                resolved.append(resolve(scc, req.namespace, annotations))
            except ProviderError as err:
                problems.append(str(err))
        if problems:
            body = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise _forbidden(req.obj, body)
        sa = (req.obj.get("spec") or {}).get("serviceAccountName") or "default"
        identities = [req.user, rbac.Identity(rbac.service_account_user(req.namespace, sa))]

        def usable(scc: Obj) -> bool:
            return any(_applies_to(scc, who, req.namespace, chain) for who in identities)

        return decide(req.obj, resolved, usable, mutation_allowed=mutation_allowed, hint=hint)

    @staticmethod
    def _namespace_annotations(req: Request, chain: Admission) -> dict[str, str]:
        """The namespace's pre-allocated ranges; without them no SCC can be made concrete."""
        try:
            ns = chain.store.get("v1/namespaces", "", req.namespace)
        except NotFound:
            ns = {"metadata": {}}
        annotations = ns["metadata"].get("annotations") or {}
        for key in (UID_RANGE, MCS):
            if key not in annotations:
                raise _forbidden(
                    req.obj,
                    f'error fetching namespace "{req.namespace}": unable to find annotation {key}',
                )
        return annotations


def _applies_to(scc: Obj, who: rbac.Identity, namespace: str, chain: Admission) -> bool:
    """ConstraintAppliesTo: named in the SCC's users or groups, or allowed to ``use`` it in
    the pod's namespace."""
    if who.user in (scc.get("users") or []):
        return True
    if rbac.groups_of(who) & set(scc.get("groups") or []):
        return True
    name = scc["metadata"]["name"]
    return chain.can(
        who, "use", "security.openshift.io", "securitycontextconstraints",
        namespace=namespace, name=name,
    )  # fmt: skip


__all__ = [
    "Decision",
    "FieldError",
    "SCCObjects",
    "SecurityContextConstraint",
    "aggregate",
    "apply_scc",
    "decide",
    "ordered",
    "resolve",
    "restriction_points",
    "scc_causes",
    "scc_defaults",
]
