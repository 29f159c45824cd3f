"""What a submitted job may contain: the allow-list checks. Pure.

The submitted spec is read through an allow-list: every field is either allowed
(and checked), set by the platform (refused when the user tries to set it), or
unknown (refused). Errors name the field (``spec.template.spec.hostNetwork: ...``).
What passes becomes a :class:`CheckedJob`, from which :mod:`.manifests` builds the
hardened Job or CronJob.

Both shapes of a spec are accepted: the API's camelCase JSON, and the snake_case
dicts that the kubernetes client's ``to_dict()`` gives (what the kbatch client sends,
None-valued fields included).

Labels and annotations are an allow-list by prefix: a person may set only keys under
``user.valeria.io/`` (on the Job or CronJob, the CronJob's jobTemplate and the pod
template). Every other key is read by something that decides what a pod may do or
reach: NetworkPolicies and Services select on plain keys (the template's policies on
``component``, ``app.kubernetes.io/*``), admission controllers, CNIs
(``k8s.v1.cni.cncf.io/networks``), service meshes (``sidecar.istio.io/inject``) and
security profiles (AppArmor, seccomp annotations) on prefixed ones. A deny-list of
such keys can never be complete (an operator adds a policy selecting on ``team``), so
plain keys are refused too; the owner, managed-by, job-name and controller-uid labels
are the platform's and the Job controller's alone.

Every container requests at least ``Rules.min_requests`` (a pod that requests nothing
counts for nothing against a quota or a ceiling), and a CronJob runs one run at a time
(``concurrencyPolicy`` Forbid or Replace: with Allow, runs of a slow job pile up beyond
anything counted when it was submitted).

Numbers and quantities are checked for type, range and form (bools, floats, strings,
non-finite and huge values are refused by field name, never passed on), so whatever a
person sends is a 422 naming the field, and the cluster sees only what was checked.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..quantity import parse_quantity, shown
from ..restrictions import Membership
from .labels import MANAGED_BY, OWNER_LABEL, USERNAME_ANNOTATION
from .naming import (
    MAX_CRONJOB_NAME,
    MAX_JOB_NAME,
    InvalidName,
    check_object_name,
)
from .profiles import JobProfile
from .shapes import normalize, prune
from .upload import UNPACK_SCRIPT

USER_PREFIX = "user.valeria.io/"  # the only labels and annotations a person may set
# keys the platform or the Job controller sets: named as such when someone tries them
PLATFORM_KEYS = {OWNER_LABEL, USERNAME_ANNOTATION, *MANAGED_BY, "job-name", "controller-uid"}
PLATFORM_KEYS |= {"batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid"}
PLATFORM_PREFIXES = ("valeria.io/", "batch.kubernetes.io/")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
MAX_ANNOTATIONS_BYTES = 256 * 1024  # the API server's total for one object's annotations
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
BASE_RESOURCES = {"cpu", "memory", "ephemeral-storage"}


class PolicyError(ValueError):
    """A refused spec: ``field`` is the dotted path, the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# -- the operator's rules ------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    """Server-side limits and defaults (filled from JobsServiceApp's traits)."""

    profiles: dict[str, JobProfile] = field(default_factory=dict)
    default_profile: str = ""
    max_resources: dict[str, str] = field(
        default_factory=lambda: {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "50Gi"}
    )
    # every container's requests are at least these: what a container names no request
    # for gets its limit (as Kubernetes would) or, without one, this minimum; a request
    # or limit below it is refused, so nobody schedules pods that count for nothing
    min_requests: dict[str, str] = field(default_factory=lambda: {"cpu": "10m", "memory": "32Mi"})
    max_active_deadline_seconds: int = 24 * 3600
    default_ttl_seconds_after_finished: int = 7 * 24 * 3600
    max_ttl_seconds_after_finished: int = 30 * 24 * 3600
    max_backoff_limit: int = 6
    max_parallelism: int = 4
    max_containers: int = 4
    allowed_images: tuple[str, ...] = ()
    code_dir: str = "/code"
    code_max_unpacked_bytes: int = 64 * 1024 * 1024  # sizeLimit of the code volume
    unpack_command: tuple[str, ...] = ("python3", "-c", UNPACK_SCRIPT)
    unpack_image: str = ""

    def __post_init__(self) -> None:
        for key, value in self.max_resources.items():
            try:
                parse_quantity(value)
            except ValueError as e:
                raise ValueError(f"max_resources: {key}: {e}") from None
        for key, value in self.min_requests.items():
            if key not in BASE_RESOURCES:
                raise ValueError(f"min_requests: {key!r} is not one of {sorted(BASE_RESOURCES)}")
            try:
                low = parse_quantity(value)
            except ValueError as e:
                raise ValueError(f"min_requests: {key}: {e}") from None
            cap = self.max_resources.get(key)
            if cap is not None and low > parse_quantity(cap):
                raise ValueError(f"min_requests: {key}: {value} is above max_resources ({cap})")
            for profile in self.profiles.values():
                for section in ("requests", "limits"):
                    given = getattr(profile, section).get(key)
                    if given is not None and parse_quantity(given) < low:
                        raise ValueError(
                            f"profile {profile.name!r}: {section}.{key} {given} is below "
                            f"min_requests ({value})"
                        )

    def profile(self, name: str | None) -> JobProfile:
        if name is None:
            name = self.default_profile or next(iter(self.profiles), "")
        if not name and not self.profiles:
            return JobProfile("default")
        if name not in self.profiles:
            raise PolicyError("profile", f"unknown profile {name!r}; see GET /profiles/")
        return self.profiles[name]


# -- small checks -------------------------------------------------------------------------
def _refuse_unknown(obj: dict[str, Any], allowed: set[str], where: str, why: dict) -> None:
    for key in obj:
        if key not in allowed:
            reason = why.get(key, "not an allowed field")
            raise PolicyError(f"{where}.{key}" if where else key, reason)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(where, "must be an object")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    """A whole number in range; JSON's 1.0, "1", true, NaN and 1e999 are not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(where, f"must be an integer, not {shown(value)}")
    if not low <= value <= high:
        raise PolicyError(where, f"must be between {low} and {high}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(where, "must be a list of strings")
    return list(value)


def _only(value: Any, allowed: Any, where: str, reason: str) -> None:
    if value != allowed:
        raise PolicyError(where, reason)


def _key_field(where: str, key: str) -> str:
    """``metadata.labels["app"]``: keys hold dots and slashes, so they are quoted."""
    return f"{where}[{json.dumps(key if len(key) <= 80 else key[:77] + '...')}]"


def _user_key(key: str) -> str | None:
    """Why ``key`` is not the person's to set, or None when it is (see the module doc)."""
    if key.startswith(USER_PREFIX):
        name = key[len(USER_PREFIX) :]
        if LABEL_NAME.fullmatch(name):
            return None
        return (
            f"the name after {USER_PREFIX} must be 1-63 letters, digits, '-', '_' or '.', "
            "beginning and ending with a letter or digit"
        )
    if key in PLATFORM_KEYS or key.startswith(PLATFORM_PREFIXES):
        return f"set by the platform; use a key under {USER_PREFIX}"
    name = key.rsplit("/", 1)[-1]
    example = f" (e.g. {USER_PREFIX}{name})" if LABEL_NAME.fullmatch(name) else ""
    return (
        f"only keys under {USER_PREFIX} may be set{example}: other keys are read by "
        "selectors, admission, the network or a service mesh"
    )


def _user_map(value: Any, where: str, *, labels: bool) -> dict[str, str]:
    """The person's labels or annotations: keys under USER_PREFIX, string values that
    the API server takes (so a bad one is named here, not in a cluster error)."""
    value = _mapping(value, where)
    out = {}
    for key, v in value.items():
        here = _key_field(where, str(key))
        reason = _user_key(str(key))
        if reason:
            raise PolicyError(here, reason)
        if not isinstance(v, str):
            raise PolicyError(here, "must be a string")
        if labels and not LABEL_VALUE.fullmatch(v):
            raise PolicyError(
                here,
                "a label value is at most 63 letters, digits, '-', '_' or '.', "
                "beginning and ending with a letter or digit",
            )
        out[str(key)] = v
    size = sum(len(k.encode()) + len(v.encode()) for k, v in out.items())
    if not labels and size > MAX_ANNOTATIONS_BYTES:
        raise PolicyError(where, f"may hold at most {MAX_ANNOTATIONS_BYTES} bytes in all")
    return out


SET_BY_PLATFORM = "set by the platform from your identity"
POD_WHY = {
    "hostNetwork": "host namespaces are not allowed",
    "hostPID": "host namespaces are not allowed",
    "hostIPC": "host namespaces are not allowed",
    "nodeName": "jobs are placed by the scheduler, not by name",
    "volumes": "only the platform's volumes (home, scratch, code) are mounted",
    "initContainers": "only the platform adds init containers",
    "imagePullSecrets": "image pull secrets are set by the platform",
    "serviceAccountName": "jobs run without a service account",
    "serviceAccount": "jobs run without a service account",
    "automountServiceAccountToken": "jobs never get a service account token",
    "priorityClassName": "priority is set by the platform",
    "runtimeClassName": "the runtime is set by the platform",
    "ephemeralContainers": "not allowed",
    "shareProcessNamespace": "not allowed",
    "hostAliases": "not allowed",
}
CONTAINER_WHY = {
    "volumeMounts": "only the platform's volumes are mounted",
    "envFrom": "environment may not be read from Secrets or ConfigMaps",
    "ports": "batch jobs do not expose ports",
    "volumeDevices": "not allowed",
}


# -- the checked submission -------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedJob:
    """What survived the checks: enough to build the hardened manifest."""

    kind: str
    name: str | None
    generate_name: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    template_labels: dict[str, str]
    template_annotations: dict[str, str]
    job_spec: dict[str, Any]
    cron_spec: dict[str, Any]
    pod: dict[str, Any]
    containers: list[dict[str, Any]]
    profile: JobProfile
    job_template_labels: dict[str, str] = field(default_factory=dict)
    job_template_annotations: dict[str, str] = field(default_factory=dict)


def _quantity(value: Any, where: str) -> Decimal:
    try:
        return parse_quantity(value)
    except ValueError as e:
        raise PolicyError(where, str(e)) from None


def check_resources(raw: Any, where: str, profile: JobProfile, rules: Rules) -> dict:
    """The container's resources: the profile's, overridden by the user's, under the caps."""
    raw = _mapping({} if raw is None else raw, where)
    _refuse_unknown(raw, {"requests", "limits"}, where, {"claims": "not allowed"})
    allowed_keys = BASE_RESOURCES | set(profile.requests) | set(profile.limits)
    result: dict[str, dict[str, str]] = {
        "requests": dict(profile.requests),
        "limits": dict(profile.limits),
    }
    for section in ("requests", "limits"):
        for key, value in _mapping(raw.get(section, {}), f"{where}.{section}").items():
            here = f"{where}.{section}.{key}"
            if key not in allowed_keys:
                raise PolicyError(here, f"resource {key!r} is not offered by the profile")
            _quantity(value, here)
            result[section][key] = str(value)
    amounts = {
        section: {
            key: _quantity(value, f"{where}.{section}.{key}") for key, value in values.items()
        }
        for section, values in result.items()
    }
    _at_least_minimum(result, amounts, where, rules)
    for section, values in amounts.items():
        for key, amount in values.items():
            here = f"{where}.{section}.{key}"
            value = result[section][key]
            cap = rules.max_resources.get(key)
            if cap is None and key not in BASE_RESOURCES:
                cap = profile.limits.get(key) or profile.requests.get(key)
            if cap is not None and amount > parse_quantity(cap):
                raise PolicyError(here, f"{value} exceeds the limit of {cap}")
            if key not in BASE_RESOURCES and amount != amount.to_integral_value():
                # extended resources (GPUs) come whole: the API server refuses a fraction
                raise PolicyError(here, f"{value} is not a whole number of {key}")
    for key, amount in amounts["requests"].items():
        limit = amounts["limits"].get(key)
        if limit is None:
            continue
        here = f"{where}.requests.{key}"
        if amount > limit:
            raise PolicyError(
                here, f"{result['requests'][key]} is above the limit {result['limits'][key]}"
            )
        if key not in BASE_RESOURCES and amount != limit:
            # not overcommittable: the API server wants the request equal to the limit
            raise PolicyError(here, f"must equal the limit ({result['limits'][key]})")
    return prune(result)


def _at_least_minimum(
    result: dict[str, dict[str, str]],
    amounts: dict[str, dict[str, Decimal]],
    where: str,
    rules: Rules,
) -> None:
    """Every request in ``rules.min_requests`` set and at least its minimum (in place).

    A missing request becomes the limit, as the API server would make it, or the minimum
    without a limit; below the minimum is refused, naming the field. A pod that requests
    (nearly) nothing is scheduled anywhere and counts for nothing against a quota or a
    ceiling, however much it then uses.
    """
    for key, minimum in rules.min_requests.items():
        low = parse_quantity(minimum)
        if key in amounts["limits"] and amounts["limits"][key] < low:
            raise PolicyError(
                f"{where}.limits.{key}",
                f"{result['limits'][key]} is below the minimum request of {minimum}",
            )
        if key in amounts["requests"]:
            if amounts["requests"][key] < low:
                raise PolicyError(
                    f"{where}.requests.{key}",
                    f"{result['requests'][key]} is below the minimum of {minimum}",
                )
        elif key in amounts["limits"]:
            result["requests"][key] = result["limits"][key]
            amounts["requests"][key] = amounts["limits"][key]
        else:
            result["requests"][key] = minimum
            amounts["requests"][key] = low


def check_security_context(raw: Any, where: str, *, pod: bool) -> bool:
    """Refuse anything that escalates or picks an identity; True = readOnlyRootFilesystem."""
    raw = _mapping(raw or {}, where)
    identity = {"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"}
    for key, value in raw.items():
        here = f"{where}.{key}"
        if key in identity:
            raise PolicyError(here, SET_BY_PLATFORM)
        if key == "runAsNonRoot":
            _only(value, True, here, "jobs never run as root")
        elif key == "seccompProfile":
            _only(prune(value), {"type": "RuntimeDefault"}, here, "only RuntimeDefault is allowed")
        elif key == "allowPrivilegeEscalation" and not pod:
            _only(value, False, here, "privilege escalation is not allowed")
        elif key == "privileged" and not pod:
            _only(value, False, here, "privileged containers are not allowed")
        elif key == "capabilities" and not pod:
            caps = _mapping(value, here)
            _refuse_unknown(caps, {"drop"}, here, {"add": "adding capabilities is not allowed"})
        elif key == "readOnlyRootFilesystem" and not pod:
            if not isinstance(value, bool):
                raise PolicyError(here, "must be true or false")
        else:
            raise PolicyError(here, "not allowed")
    return bool(raw.get("readOnlyRootFilesystem"))


DOWNWARD_RESOURCES = {f"{s}.{r}" for s in ("limits", "requests") for r in BASE_RESOURCES}
CPU_DIVISORS = {Decimal("0.001"), Decimal(1)}
BYTE_DIVISORS = {Decimal(10) ** (3 * i) for i in range(7)} | {
    Decimal(2) ** (10 * i) for i in range(1, 7)
}


def check_env_source(raw: Any, where: str) -> dict[str, Any]:
    """``valueFrom``: the pod's own fields and resources only, every value checked."""
    source = _mapping(raw, where)
    why = {
        "secretKeyRef": "jobs may not read Secrets; the platform provides your S3 keys",
        "configMapKeyRef": "jobs may not read ConfigMaps",
    }
    _refuse_unknown(source, {"fieldRef", "resourceFieldRef"}, where, why)
    if len(source) != 1:
        raise PolicyError(where, "must hold exactly one of fieldRef or resourceFieldRef")
    if "fieldRef" in source:
        here = f"{where}.fieldRef"
        ref = _mapping(source["fieldRef"], here)
        _refuse_unknown(ref, {"fieldPath", "apiVersion"}, here, {})
        for key in ref:
            if not isinstance(ref[key], str):
                raise PolicyError(f"{here}.{key}", "must be a string")
        if not ref.get("fieldPath"):
            raise PolicyError(f"{here}.fieldPath", "is required")
        return {"fieldRef": dict(ref)}
    here = f"{where}.resourceFieldRef"
    ref = _mapping(source["resourceFieldRef"], here)
    _refuse_unknown(ref, {"resource", "containerName", "divisor"}, here, {})
    resource = ref.get("resource")
    if resource not in DOWNWARD_RESOURCES:
        raise PolicyError(
            f"{here}.resource", f"must be one of {', '.join(sorted(DOWNWARD_RESOURCES))}"
        )
    if "containerName" in ref and not isinstance(ref["containerName"], str):
        raise PolicyError(f"{here}.containerName", "must be a string")
    out = {k: ref[k] for k in ("resource", "containerName") if k in ref}
    if "divisor" in ref:
        divisor = _quantity(ref["divisor"], f"{here}.divisor")
        allowed = CPU_DIVISORS if resource.endswith(".cpu") else BYTE_DIVISORS
        if divisor not in allowed:
            units = "1m or 1" if resource.endswith(".cpu") else "1, 1k ... 1E or 1Ki ... 1Ei"
            raise PolicyError(f"{here}.divisor", f"must be {units} for {resource}")
        out["divisor"] = str(ref["divisor"])
    return {"resourceFieldRef": out}


def check_env(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise PolicyError(where, "must be a list")
    out = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        item = _mapping(item, here)
        _refuse_unknown(item, {"name", "value", "valueFrom"}, here, {})
        name = item.get("name")
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise PolicyError(f"{here}.name", "must be a valid environment variable name")
        if "valueFrom" in item:
            if item.get("value", "") != "":
                raise PolicyError(f"{here}.value", "may not be set together with valueFrom")
            source = check_env_source(item["valueFrom"], f"{here}.valueFrom")
            out.append({"name": name, "valueFrom": source})
        else:
            value = item.get("value", "")
            if not isinstance(value, str):
                raise PolicyError(f"{here}.value", "must be a string")
            out.append({"name": name, "value": value})
    return out


def check_image(image: Any, where: str, rules: Rules) -> str:
    if not isinstance(image, str) or not image.strip():
        raise PolicyError(where, "an image is required (or a profile with an image)")
    if rules.allowed_images and not any(fnmatch.fnmatch(image, p) for p in rules.allowed_images):
        raise PolicyError(where, f"image {image!r} is not in the list of allowed images")
    return image


def check_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
        raise PolicyError(where, "must be an absolute path without '..'")
    return value


CONTAINER_KEYS = {"name", "image", "imagePullPolicy", "command", "args", "env", "workingDir"}
CONTAINER_KEYS |= {"resources", "securityContext", "terminationMessagePolicy"}


def check_container(raw: Any, where: str, profile: JobProfile, rules: Rules) -> dict[str, Any]:
    raw = _mapping(raw, where)
    for key in ("stdin", "stdinOnce", "tty"):
        if raw.get(key) is False:
            raw = {k: v for k, v in raw.items() if k != key}
    _refuse_unknown(raw, CONTAINER_KEYS, where, CONTAINER_WHY)
    name = raw.get("name", "job")
    try:
        check_object_name(name, 63, "container name")
    except InvalidName as e:
        raise PolicyError(f"{where}.name", str(e)) from None
    out: dict[str, Any] = {
        "name": name,
        "image": check_image(raw.get("image") or profile.image, f"{where}.image", rules),
    }
    if "imagePullPolicy" in raw:
        if raw["imagePullPolicy"] not in ("Always", "IfNotPresent", "Never"):
            raise PolicyError(f"{where}.imagePullPolicy", "must be Always, IfNotPresent or Never")
        out["imagePullPolicy"] = raw["imagePullPolicy"]
    if "terminationMessagePolicy" in raw:
        if raw["terminationMessagePolicy"] not in ("File", "FallbackToLogsOnError"):
            raise PolicyError(
                f"{where}.terminationMessagePolicy", "must be File or FallbackToLogsOnError"
            )
        out["terminationMessagePolicy"] = raw["terminationMessagePolicy"]
    for key in ("command", "args"):
        if key in raw:
            out[key] = _strings(raw[key], f"{where}.{key}")
    if not out.get("command") and not out.get("args"):
        raise PolicyError(f"{where}.command", "a command (or args) is required")
    if "workingDir" in raw:
        out["workingDir"] = check_path(raw["workingDir"], f"{where}.workingDir")
    out["env"] = check_env(raw.get("env") or [], f"{where}.env")
    out["resources"] = check_resources(raw.get("resources"), f"{where}.resources", profile, rules)
    out["readOnlyRootFilesystem"] = check_security_context(
        raw.get("securityContext"), f"{where}.securityContext", pod=False
    )
    return out


POD_KEYS = {"containers", "restartPolicy", "terminationGracePeriodSeconds", "securityContext"}
POD_KEYS |= {"tolerations", "affinity", "nodeSelector", "enableServiceLinks"}
FALSE_ONLY = ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace")
FALSE_ONLY += ("automountServiceAccountToken",)


def check_pod_spec(raw: Any, where: str, profile: JobProfile, rules: Rules) -> tuple[dict, list]:
    raw = dict(_mapping(raw, where))
    for key in FALSE_ONLY:
        if key in raw:
            _only(raw.pop(key), False, f"{where}.{key}", POD_WHY[key])
    for key in ("volumes", "initContainers", "imagePullSecrets", "ephemeralContainers"):
        if raw.get(key) == []:
            raw.pop(key)
    if raw.get("serviceAccountName") in ("", "default") and "serviceAccount" not in raw:
        raw.pop("serviceAccountName")
    _refuse_unknown(raw, POD_KEYS, where, POD_WHY)
    placement = prune({k: raw.get(k) for k in ("nodeSelector", "tolerations", "affinity")})
    if placement and placement != profile.placement():
        key = next(iter(placement))
        raise PolicyError(
            f"{where}.{key}",
            f"node placement comes from the profile ({profile.name!r}); choose a profile instead",
        )
    pod: dict[str, Any] = {"restartPolicy": raw.get("restartPolicy", "Never")}
    if pod["restartPolicy"] not in ("Never", "OnFailure"):
        raise PolicyError(f"{where}.restartPolicy", "must be Never or OnFailure")
    if "terminationGracePeriodSeconds" in raw:
        pod["terminationGracePeriodSeconds"] = _int(
            raw["terminationGracePeriodSeconds"], f"{where}.terminationGracePeriodSeconds", 0, 300
        )
    if "enableServiceLinks" in raw:
        _only(raw["enableServiceLinks"], False, f"{where}.enableServiceLinks", "not allowed")
    check_security_context(raw.get("securityContext"), f"{where}.securityContext", pod=True)
    containers = raw.get("containers")
    if not isinstance(containers, list) or not containers:
        raise PolicyError(f"{where}.containers", "at least one container is required")
    if len(containers) > rules.max_containers:
        raise PolicyError(f"{where}.containers", f"at most {rules.max_containers} containers")
    checked = [
        check_container(c, f"{where}.containers[{i}]", profile, rules)
        for i, c in enumerate(containers)
    ]
    names = [c["name"] for c in checked]
    if len(set(names)) != len(names):
        raise PolicyError(f"{where}.containers", "container names must be unique")
    return pod, checked


def check_metadata(raw: Any, where: str, namespace: str, *, top: bool) -> dict[str, Any]:
    raw = _mapping(raw or {}, where)
    allowed = {"name", "generateName", "labels", "annotations", "namespace"}
    _refuse_unknown(raw, allowed, where, {"ownerReferences": "set by the platform"})
    if raw.get("namespace") not in (None, namespace):
        raise PolicyError(f"{where}.namespace", "the service chooses the namespace")
    out = {
        "labels": _user_map(raw.get("labels", {}), f"{where}.labels", labels=True),
        "annotations": _user_map(raw.get("annotations", {}), f"{where}.annotations", labels=False),
    }
    if top:
        out["name"] = raw.get("name")
        out["generateName"] = raw.get("generateName")
    return out


JOB_SPEC_KEYS = {"template", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}
JOB_SPEC_KEYS |= {"completions", "parallelism"}
JOB_SPEC_WHY = {
    "selector": "set by the API server",
    "manualSelector": "not allowed",
    "podFailurePolicy": "not allowed",
}


def check_job_spec(
    raw: Any, where: str, namespace: str, profile: JobProfile, rules: Rules
) -> tuple[dict, dict, list, dict]:
    raw = _mapping(raw, where)
    _refuse_unknown(raw, JOB_SPEC_KEYS, where, JOB_SPEC_WHY)
    spec = {
        "backoffLimit": _int(
            raw.get("backoffLimit", 0), f"{where}.backoffLimit", 0, rules.max_backoff_limit
        ),
        "activeDeadlineSeconds": _int(
            raw.get("activeDeadlineSeconds", rules.max_active_deadline_seconds),
            f"{where}.activeDeadlineSeconds",
            1,
            rules.max_active_deadline_seconds,
        ),
        "ttlSecondsAfterFinished": _int(
            raw.get("ttlSecondsAfterFinished", rules.default_ttl_seconds_after_finished),
            f"{where}.ttlSecondsAfterFinished",
            0,
            rules.max_ttl_seconds_after_finished,
        ),
    }
    for key in ("completions", "parallelism"):
        if key in raw:
            spec[key] = _int(raw[key], f"{where}.{key}", 1, rules.max_parallelism)
    template = _mapping(raw.get("template"), f"{where}.template")
    _refuse_unknown(template, {"metadata", "spec"}, f"{where}.template", {})
    tmeta = check_metadata(
        template.get("metadata"), f"{where}.template.metadata", namespace, top=False
    )
    pod, containers = check_pod_spec(template.get("spec"), f"{where}.template.spec", profile, rules)
    return spec, tmeta, containers, pod


CRON_KEYS = {"schedule", "jobTemplate", "concurrencyPolicy", "startingDeadlineSeconds", "suspend"}
CRON_KEYS |= {"successfulJobsHistoryLimit", "failedJobsHistoryLimit", "timeZone"}


def check_cron_spec(raw: Any, where: str) -> dict[str, Any]:
    raw = _mapping(raw, where)
    _refuse_unknown(raw, CRON_KEYS, where, {})
    schedule = raw.get("schedule")
    if not isinstance(schedule, str) or not (
        schedule.startswith("@") or len(schedule.split()) == 5
    ):
        raise PolicyError(f"{where}.schedule", "must be a cron schedule such as '0 3 * * *'")
    out: dict[str, Any] = {"schedule": schedule}
    # one run at a time: with Allow, runs of a slow job pile up without bound, beyond
    # what any quota or ceiling counted when the CronJob was submitted
    out["concurrencyPolicy"] = raw.get("concurrencyPolicy", "Forbid")
    if out["concurrencyPolicy"] not in ("Forbid", "Replace"):
        raise PolicyError(
            f"{where}.concurrencyPolicy",
            "must be Forbid or Replace (one run at a time; Allow lets runs pile up)",
        )
    if "startingDeadlineSeconds" in raw:
        out["startingDeadlineSeconds"] = _int(
            raw["startingDeadlineSeconds"], f"{where}.startingDeadlineSeconds", 0, 24 * 3600
        )
    if "suspend" in raw:
        if not isinstance(raw["suspend"], bool):
            raise PolicyError(f"{where}.suspend", "must be true or false")
        out["suspend"] = raw["suspend"]
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if key in raw:
            out[key] = _int(raw[key], f"{where}.{key}", 0, 10)
    if "timeZone" in raw:
        if not isinstance(raw["timeZone"], str):
            raise PolicyError(f"{where}.timeZone", "must be a string")
        out["timeZone"] = raw["timeZone"]
    return out


def infer_profile(raw_pod_spec: Any, rules: Rules) -> str | None:
    """The profile whose placement a submitted spec carries (kbatch merges it in)."""
    if not isinstance(raw_pod_spec, dict):
        return None
    placement = prune({k: raw_pod_spec.get(k) for k in ("nodeSelector", "tolerations", "affinity")})
    if not placement:
        return None
    for name, profile in rules.profiles.items():
        if profile.placement() == placement:
            return name
    return None


def check_profile_access(profile: JobProfile, caller: Membership | None, named: bool) -> None:
    """PolicyError naming the profile when the caller may not use it (``named``: the
    caller asked for it, else it is the default or inferred from the placement)."""
    if profile.usable_by(caller):
        return
    which = repr(profile.name) if named else f"{profile.name!r} (the default)"
    raise PolicyError(
        "profile",
        f"{which} is not available to you (it is for {profile.access.describe()}); "
        "see GET /profiles/",
    )


def check_submission(
    job: Any,
    kind: str,
    rules: Rules,
    namespace: str,
    profile_name: str | None = None,
    caller: Membership | None = None,
) -> CheckedJob:
    """Check a submitted Job or CronJob; PolicyError names the first refused field.

    ``caller``: the submitter's groups, checked against the profile's
    ``allowed_groups``; unknown (None), only profiles open to everyone may be used.
    """
    if kind not in ("Job", "CronJob"):
        raise ValueError(kind)
    raw = normalize(_mapping(job, "job"))
    _refuse_unknown(raw, {"apiVersion", "kind", "metadata", "spec"}, "", {"status": "read-only"})
    _only(raw.get("apiVersion", "batch/v1"), "batch/v1", "apiVersion", "must be batch/v1")
    _only(raw.get("kind", kind), kind, "kind", f"must be {kind}")
    meta = check_metadata(raw.get("metadata"), "metadata", namespace, top=True)
    spec = _mapping(raw.get("spec"), "spec")
    cron: dict[str, Any] = {}
    job_spec_raw, job_spec_where = spec, "spec"
    job_template_meta: dict[str, Any] = {"labels": {}, "annotations": {}}
    if kind == "CronJob":
        cron = check_cron_spec({k: v for k, v in spec.items() if k != "jobTemplate"}, "spec")
        jt = _mapping(spec.get("jobTemplate"), "spec.jobTemplate")
        _refuse_unknown(jt, {"metadata", "spec"}, "spec.jobTemplate", {})
        job_template_meta = check_metadata(
            jt.get("metadata"), "spec.jobTemplate.metadata", namespace, top=False
        )
        job_spec_raw, job_spec_where = jt.get("spec"), "spec.jobTemplate.spec"
    pod_raw = (
        (((job_spec_raw or {}).get("template") or {}).get("spec"))
        if isinstance(job_spec_raw, dict)
        else None
    )
    inferred = infer_profile(pod_raw, rules)
    profile = rules.profile(profile_name or inferred)
    check_profile_access(profile, caller, named=bool(profile_name or inferred))
    job_spec, tmeta, containers, pod = check_job_spec(
        job_spec_raw, job_spec_where, namespace, profile, rules
    )
    name, generate = meta.get("name"), meta.get("generateName")
    limit = MAX_CRONJOB_NAME if kind == "CronJob" else MAX_JOB_NAME
    try:
        if name is not None:
            check_object_name(name, limit, "metadata.name")
        elif generate is not None:
            if not isinstance(generate, str) or not generate:
                raise InvalidName("metadata.generateName must be a non-empty string")
        else:
            raise InvalidName("metadata.name or metadata.generateName is required")
    except InvalidName as e:
        raise PolicyError("metadata.name", str(e)) from None
    return CheckedJob(
        kind=kind,
        name=name,
        generate_name=generate,
        labels=meta["labels"],
        annotations=meta["annotations"],
        template_labels=tmeta["labels"],
        template_annotations=tmeta["annotations"],
        job_spec=job_spec,
        cron_spec=cron,
        pod=pod,
        containers=containers,
        profile=profile,
        job_template_labels=job_template_meta["labels"],
        job_template_annotations=job_template_meta["annotations"],
    )
