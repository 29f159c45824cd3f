"""Pod Security admission: the Pod Security Standards a namespace's labels ask for, answered
like the real ``PodSecurity`` plugin of the API server (upstream Kubernetes, so every profile).

A namespace chooses a level per mode with ``pod-security.kubernetes.io/<mode>: <level>``
(modes ``enforce``, ``audit``, ``warn``; levels ``privileged``, ``baseline``,
``restricted``) and may pin ``<mode>-version``. ``enforce`` refuses a violating Pod (403,
``pods "x" is forbidden: violates PodSecurity "restricted:latest": ...``); ``warn`` admits it
with a ``Warning`` header; workload objects (Jobs, CronJobs) are never refused, only warned
about, because enforce applies to the pods their controllers create. As upstream, ``warn``
defaults to the ``enforce`` level when only ``enforce`` is set and is stricter. ``audit`` only
annotates audit log events, and the stand-in keeps no audit log: it is parsed, not acted on.

The checks are the Pod Security Standards as of the server's version (v1.33), pure functions
of a pod's metadata and spec, with the upstream checks' reasons and details, in upstream's
order (baseline checks, then restricted ones, each sorted by check id). A pinned version is
evaluated as ``latest`` but named as pinned. Exemptions (users, namespaces, runtime classes)
are upstream's configuration and empty by default: none here either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import validation
from .admission import Admission, Request
from .errors import Forbidden, NotFound

Obj = dict[str, Any]

PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
LEVELS = ("privileged", "baseline", "restricted")
LEVEL_ERROR = "must be one of privileged, baseline, restricted"
VERSION_ERROR = 'must be "latest" or "v1.x"'

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
RESTRICTED_VOLUMES_ALLOWED = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
GOOD_PROFILE_TYPES = ("RuntimeDefault", "Localhost")

# a failed check: (reason, detail), e.g. ("privileged", 'container "x" must not set ...')
Violation = tuple[str, str]
Check = Callable[[Obj, Obj], "Violation | None"]


# -- namespace labels -----------------------------------------------------------------


@dataclass(frozen=True)
class LevelVersion:
    level: str = "privileged"
    version: str = "latest"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()

    @property
    def privileged(self) -> bool:
        return all(lv.level == "privileged" for lv in (self.enforce, self.audit, self.warn))


def _version_ok(version: str) -> bool:
    if version == "latest":
        return True
    major, _, minor = version.partition(".")
    return major == "v1" and minor.isdigit() and (minor == "0" or not minor.startswith("0"))


def policy_from_labels(labels: dict[str, str] | None) -> tuple[Policy, list[validation.Cause]]:
    """The namespace's policy and the label errors (a Namespace with them is refused).

    As upstream: an unparseable enforce level means ``restricted``, an unparseable audit or
    warn level ``privileged`` (fail open); an unparseable version means ``latest``.
    """
    labels = labels or {}
    causes: list[validation.Cause] = []
    found: dict[str, LevelVersion] = {}
    for mode in MODES:
        lv = LevelVersion()
        if PREFIX + mode in labels:
            value = labels[PREFIX + mode]
            if value in LEVELS:
                lv = LevelVersion(value, lv.version)
            else:
                causes.append(_label_cause(mode, value, LEVEL_ERROR))
                lv = LevelVersion("restricted" if mode == "enforce" else "privileged")
        if PREFIX + mode + "-version" in labels:
            value = labels[PREFIX + mode + "-version"]
            if _version_ok(value):
                lv = LevelVersion(lv.level, value)
            else:
                causes.append(_label_cause(mode + "-version", value, VERSION_ERROR))
        found[mode] = lv
    enforce, warn = found["enforce"], found["warn"]
    # warn follows a valid, explicitly stricter enforce level when it is not set itself
    if (
        labels.get(PREFIX + "enforce") in LEVELS
        and PREFIX + "warn" not in labels
        and LEVELS.index(enforce.level) > LEVELS.index(warn.level)
    ):
        version = warn.version if PREFIX + "warn-version" in labels else enforce.version
        found["warn"] = LevelVersion(enforce.level, version)
    return Policy(found["enforce"], found["audit"], found["warn"]), causes


def _label_cause(label: str, value: str, detail: str) -> validation.Cause:
    return validation.invalid(f"metadata.labels[{PREFIX}{label}]", value, detail)


# -- the checks (pure) ---------------------------------------------------------------------


def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(spec: Obj) -> list[Obj]:
    """Init containers, containers, ephemeral containers: upstream's visiting order."""
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(key) or [] if isinstance(c, dict)]
    return out


def _sc(obj: Obj) -> Obj:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _name(c: Obj) -> str:
    return str(c.get("name", ""))


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(_containers_phrase(containers))
    return out


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def check_app_armor(meta: Obj, spec: Obj) -> Violation | None:
    values: set[str] = set()
    pod_profile = _sc(spec).get("appArmorProfile") or {}
    pod_bad = bool(pod_profile) and pod_profile.get("type") not in GOOD_PROFILE_TYPES
    if pod_bad:
        values.add(str(pod_profile.get("type", "")))
    bad = []
    for c in _containers(spec):
        profile = _sc(c).get("appArmorProfile") or {}
        if profile and profile.get("type") not in GOOD_PROFILE_TYPES:
            bad.append(_name(c))
            values.add(str(profile.get("type", "")))
    setters = _setters(pod_bad, bad)
    annotations = sorted(
        f'{k}="{v}"'
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(APPARMOR_ANNOTATION)
        and v
        and v != "runtime/default"
        and not str(v).startswith("localhost/")
    )
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    bad_values = sorted(values) + annotations
    return (
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(bad_values)}",
    )


def check_capabilities_baseline(meta: Obj, spec: Obj) -> Violation | None:
    bad, caps = [], set()
    for c in _containers(spec):
        added = (_sc(c).get("capabilities") or {}).get("add") or []
        extra = [str(a) for a in added if a not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(_name(c))
            caps.update(extra)
    if not bad:
        return None
    return (
        "non-default capabilities",
        f"{_containers_phrase(bad)} must not include {_join_quote(sorted(caps))} in "
        "securityContext.capabilities.add",
    )


def check_host_namespaces(meta: Obj, spec: Obj) -> Violation | None:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return ("host namespaces", ", ".join(used)) if used else None


def check_host_path_volumes(meta: Obj, spec: Obj) -> Violation | None:
    names = [str(v.get("name", "")) for v in spec.get("volumes") or [] if v.get("hostPath")]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"


def check_host_ports(meta: Obj, spec: Obj) -> Violation | None:
    bad, ports = [], set()
    for c in _containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(_name(c))
            ports.update(used)
    if not bad:
        return None
    return (
        "hostPort",
        f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def check_privileged(meta: Obj, spec: Obj) -> Violation | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not bad:
        return None
    return "privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true"


def check_proc_mount(meta: Obj, spec: Obj) -> Violation | None:
    bad, types = [], set()
    for c in _containers(spec):
        mount = _sc(c).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(_name(c))
            types.add(str(mount))
    if not bad:
        return None
    return (
        "procMount",
        f"{_containers_phrase(bad)} must not set securityContext.procMount to "
        f"{_join_quote(sorted(types))}",
    )


def check_selinux(meta: Obj, spec: Obj) -> Violation | None:
    types: set[str] = set()
    flags = {"user": False, "role": False}

    def bad(opts: Any) -> bool:
        if not isinstance(opts, dict):
            return False
        wrong = False
        if opts.get("type", "") not in SELINUX_TYPES:
            types.add(str(opts.get("type")))
            wrong = True
        for key in ("user", "role"):
            if opts.get(key):
                flags[key] = wrong = True
        return wrong

    pod_bad = bad(_sc(spec).get("seLinuxOptions"))
    containers = [_name(c) for c in _containers(spec) if bad(_sc(c).get("seLinuxOptions"))]
    setters = _setters(pod_bad, containers)
    if not setters:
        return None
    data = []
    if types:
        data.append(f"{_plural('type', 'types', len(types))} {_join_quote(sorted(types))}")
    data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
    return (
        "seLinuxOptions",
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
    )


def check_seccomp_baseline(meta: Obj, spec: Obj) -> Violation | None:
    values: set[str] = set()

    def bad(profile: Any) -> bool:
        if isinstance(profile, dict) and profile.get("type") not in GOOD_PROFILE_TYPES:
            values.add(str(profile.get("type", "")))
            return True
        return False

    pod_bad = bad(_sc(spec).get("seccompProfile"))
    containers = [_name(c) for c in _containers(spec) if bad(_sc(c).get("seccompProfile"))]
    setters = _setters(pod_bad, containers)
    if not setters:
        return None
    return (
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        f"{_join_quote(sorted(values))}",
    )


def check_sysctls(meta: Obj, spec: Obj) -> Violation | None:
    names = [
        str(s.get("name", ""))
        for s in _sc(spec).get("sysctls") or []
        if s.get("name") not in SAFE_SYSCTLS
    ]
    return ("forbidden sysctls", ", ".join(names)) if names else None


def check_host_process(meta: Obj, spec: Obj) -> Violation | None:
    def on(sc: Obj) -> bool:
        return (sc.get("windowsOptions") or {}).get("hostProcess") is True

    containers = [_name(c) for c in _containers(spec) if on(_sc(c))]
    setters = _setters(on(_sc(spec)), containers)
    if not setters:
        return None
    return (
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


def check_privilege_escalation(meta: Obj, spec: Obj) -> Violation | None:
    if _windows(spec):
        return None
    bad = [
        _name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def check_capabilities_restricted(meta: Obj, spec: Obj) -> Violation | None:
    if _windows(spec):
        return None
    no_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            no_drop.append(_name(c))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            no_drop.append(_name(c))
        extra = [str(a) for a in capabilities.get("add") or [] if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details = []
    if no_drop:
        details.append(
            f'{_containers_phrase(no_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_join_quote(sorted(caps))} in "
            "securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def check_restricted_volumes(meta: Obj, spec: Obj) -> Violation | None:
    names, types = [], set()
    for v in spec.get("volumes") or []:
        sources = [k for k in v if k != "name"]
        if any(s in RESTRICTED_VOLUMES_ALLOWED for s in sources):
            continue
        names.append(str(v.get("name", "")))
        types.update(sources or ["unknown"])
    if not names:
        return None
    return (
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)} "
        f"{_plural('uses', 'use', len(names))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
        f"{_join_quote(sorted(types))}",
    )


def _explicit_or_implicit(spec: Obj, key: str, good: Callable[[Any], bool]) -> tuple:
    """(pod set a bad value, containers that set a bad value, containers left unset with no
    good pod-level value): the shape of the runAsNonRoot and seccompProfile checks."""
    pod_value = _sc(spec).get(key)
    pod_bad = pod_value is not None and not good(pod_value)
    pod_good = pod_value is not None and good(pod_value)
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get(key)
        if value is not None:
            if not good(value):
                explicit.append(_name(c))
        elif not pod_good:
            implicit.append(_name(c))
    return pod_bad, explicit, implicit


def check_run_as_non_root(meta: Obj, spec: Obj) -> Violation | None:
    pod_bad, explicit, implicit = _explicit_or_implicit(spec, "runAsNonRoot", lambda v: v is True)
    setters = _setters(pod_bad, explicit)
    if setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _root(uid: Any) -> bool:
    return isinstance(uid, int) and not isinstance(uid, bool) and uid == 0


def check_run_as_user(meta: Obj, spec: Obj) -> Violation | None:
    pod_bad = _root(_sc(spec).get("runAsUser"))
    containers = [_name(c) for c in _containers(spec) if _root(_sc(c).get("runAsUser"))]
    setters = _setters(pod_bad, containers)
    if not setters:
        return None
    return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"


def check_seccomp_restricted(meta: Obj, spec: Obj) -> Violation | None:
    if _windows(spec):
        return None
    values: set[str] = set()

    def good(profile: Any) -> bool:
        ok = isinstance(profile, dict) and profile.get("type") in GOOD_PROFILE_TYPES
        if not ok:
            values.add(str((profile or {}).get("type", "")))
        return ok

    pod_bad, explicit, implicit = _explicit_or_implicit(spec, "seccompProfile", good)
    setters = _setters(pod_bad, explicit)
    if setters:
        return (
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}",
        )
    if implicit:
        return (
            "seccompProfile",
            f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"',
        )
    return None


# upstream's order: baseline checks then restricted checks, each sorted by check id; the
# restricted level leaves out the baseline checks a stricter restricted check replaces
BASELINE: tuple[tuple[str, Check], ...] = (
    ("appArmorProfile", check_app_armor),
    ("capabilities_baseline", check_capabilities_baseline),
    ("hostNamespaces", check_host_namespaces),
    ("hostPathVolumes", check_host_path_volumes),
    ("hostPorts", check_host_ports),
    ("privileged", check_privileged),
    ("procMount", check_proc_mount),
    ("seLinuxOptions", check_selinux),
    ("seccompProfile_baseline", check_seccomp_baseline),
    ("sysctls", check_sysctls),
    ("windowsHostProcess", check_host_process),
)
RESTRICTED: tuple[tuple[str, Check], ...] = (
    ("allowPrivilegeEscalation", check_privilege_escalation),
    ("capabilities_restricted", check_capabilities_restricted),
    ("restrictedVolumes", check_restricted_volumes),
    ("runAsNonRoot", check_run_as_non_root),
    ("runAsUser", check_run_as_user),
    ("seccompProfile_restricted", check_seccomp_restricted),
)
OVERRIDDEN_BY_RESTRICTED = frozenset(
    {"capabilities_baseline", "hostPathVolumes", "seccompProfile_baseline"}
)


def evaluate(level: str, meta: Obj, spec: Obj) -> list[Violation]:
    """Every check of ``level`` the pod (metadata and spec) fails, in upstream's order."""
    if level == "privileged":
        return []
    checks = list(BASELINE)
    if level == "restricted":
        checks = [c for c in checks if c[0] not in OVERRIDDEN_BY_RESTRICTED] + list(RESTRICTED)
    return [v for _, check in checks if (v := check(meta or {}, spec or {})) is not None]


def forbidden_detail(violations: list[Violation]) -> str:
    """``reason (detail), reason (detail)``: how the refusal and the warning list them."""
    return ", ".join(f"{r} ({d})" if d else r for r, d in violations)


def forbidden_reasons(violations: list[Violation]) -> str:
    return ", ".join(r for r, _ in violations)


# -- decisions (pure) ------------------------------------------------------------------


def pod_template(kind: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod a Pod is or a workload object would create."""
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj.get("metadata") or {}, spec
    if kind == "Job":
        template = spec.get("template")
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    else:
        return None
    if not isinstance(template, dict):
        return None
    return template.get("metadata") or {}, template.get("spec") or {}


@dataclass(frozen=True)
class Decision:
    refusal: str | None = None  # the Forbidden message's policy part, when refused
    warnings: tuple[str, ...] = ()


def decide(policy: Policy, meta: Obj, spec: Obj, *, enforce: bool) -> Decision:
    """What the plugin answers for one pod (``enforce``) or pod template (not enforced)."""
    if enforce:
        found = evaluate(policy.enforce.level, meta, spec)
        if found:
            # no warnings on a request that is refused anyway
            return Decision(f'violates PodSecurity "{policy.enforce}": {forbidden_detail(found)}')
    found = evaluate(policy.warn.level, meta, spec)
    if found:
        return Decision(
            warnings=(f'would violate PodSecurity "{policy.warn}": {forbidden_detail(found)}',)
        )
    return Decision()


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """Upstream re-checks a pod update only when images or security annotations change."""
    seccomp = "seccomp.security.alpha.kubernetes.io/pod"
    new_ann = (new.get("metadata") or {}).get("annotations") or {}
    old_ann = (old.get("metadata") or {}).get("annotations") or {}
    if new_ann.get(seccomp) != old_ann.get(seccomp):
        return True
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for key in ("containers", "initContainers"):
        a, b = new_spec.get(key) or [], old_spec.get(key) or []
        if len(a) != len(b):
            return True
        for x, y in zip(a, b, strict=True):
            annotation = "container.seccomp.security.alpha.kubernetes.io/" + _name(x)
            if x.get("image") != y.get("image") or new_ann.get(annotation) != old_ann.get(
                annotation
            ):
                return True
    old_ephemeral = {_name(c): c for c in old_spec.get("ephemeralContainers") or []}
    for c in new_spec.get("ephemeralContainers") or []:
        before = old_ephemeral.get(_name(c))
        if before is None or before.get("image") != c.get("image"):
            return True
    return False


def existing_pod_warnings(namespace: str, enforce: LevelVersion, pods: list[Obj]) -> list[str]:
    """The warnings of a namespace update that tightens ``enforce`` over running pods."""
    counts: dict[str, tuple[str, int]] = {}
    for pod in pods:
        found = evaluate(enforce.level, pod.get("metadata") or {}, pod.get("spec") or {})
        if not found:
            continue
        reasons, name = forbidden_reasons(found), pod["metadata"]["name"]
        first, count = counts.get(reasons, (name, 0))
        counts[reasons] = (min(first, name), count + 1)
    if not counts:
        return []
    out = []
    for reasons, (name, count) in counts.items():
        if count == 1:
            out.append(f"{name}: {reasons}")
        elif count == 2:
            out.append(f"{name} (and 1 other pod): {reasons}")
        else:
            out.append(f"{name} (and {count - 1} other pods): {reasons}")
    head = (
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        f'"{enforce}"'
    )
    return [head, *sorted(out)]


def _tightens(new: LevelVersion, old: LevelVersion) -> bool:
    if new == old or new.level == "privileged":
        return False
    return not (new.version == old.version and LEVELS.index(new.level) <= LEVELS.index(old.level))


# -- the admission plugin -------------------------------------------------------------------


class PodSecurity:
    """Validating: Pod Security Standards from namespace labels, for pods and workloads."""

    name = "PodSecurity"

    def admit(self, req: Request, chain: Admission) -> None:
        return None

    def validate(self, req: Request, chain: Admission) -> None:
        kind = req.kind.kind
        if kind == "Namespace":
            self._validate_namespace(req, chain)
            return
        if req.subresource:  # status, binding, eviction ... never change what is checked
            return
        template = pod_template(kind, req.obj)
        if template is None:
            return
        if kind == "Pod" and req.operation == "UPDATE" and req.old is not None:
            if not significant_pod_update(req.obj, req.old):
                return
        policy = self._policy(chain, req.namespace)
        if policy.privileged:
            return
        decision = decide(policy, *template, enforce=kind == "Pod")
        if decision.refusal is not None:
            raise Forbidden(
                f'{req.kind.qualified} "{req.name}" is forbidden: {decision.refusal}',
                details={"name": req.name, "group": req.kind.group, "kind": req.kind.plural},
            )
        for text in decision.warnings:
            req.warn(text)

    @staticmethod
    def _policy(chain: Admission, namespace: str) -> Policy:
        try:
            ns = chain.store.get("v1/namespaces", "", namespace)
        except NotFound:  # NamespaceLifecycle answers for a missing namespace, not this plugin
            return Policy()
        return policy_from_labels((ns.get("metadata") or {}).get("labels"))[0]

    def _validate_namespace(self, req: Request, chain: Admission) -> None:
        if req.subresource:
            return
        policy, causes = policy_from_labels((req.obj.get("metadata") or {}).get("labels"))
        if req.operation == "CREATE" or req.old is None:
            if causes:
                raise validation.invalid_error(req.kind, req.name, causes)
            return
        old_policy, old_causes = policy_from_labels((req.old.get("metadata") or {}).get("labels"))
        if causes and [c.message for c in causes] != [c.message for c in old_causes]:
            raise validation.invalid_error(req.kind, req.name, causes)
        if _tightens(policy.enforce, old_policy.enforce):
            pods, _ = chain.store.list("v1/pods", req.name)
            for text in existing_pod_warnings(req.name, policy.enforce, pods):
                req.warn(text)
