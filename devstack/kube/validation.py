"""What the real API server checks and fills in on create and update, per kind.

Pure functions over plain dicts: ``apply_defaults`` fills the fields the server
defaults, ``validate`` returns the causes of a 422 (empty when the object is fine),
``invalid_error`` words them like the real server.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest, Invalid
from .resources import Kind
from .selectors import _KEY_RE, _VALUE_RE

Obj = dict[str, Any]

SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
KEY_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)
PVC_IMMUTABLE_MSG = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)
MAX_DATA_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Cause:
    """One entry of ``details.causes`` in a 422 Status."""

    reason: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def _fmt(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", field, f"Invalid value: {_fmt(value)}: {detail}")


def not_supported(field: str, value: Any, supported: list[str]) -> Cause:
    opts = ", ".join(json.dumps(s) for s in supported)
    return Cause(
        "FieldValueNotSupported",
        field,
        f"Unsupported value: {_fmt(value)}: supported values: {opts}",
    )


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", field, f"Forbidden: {detail}")


def duplicate(field: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", field, f"Duplicate value: {_fmt(value)}")


def not_found(field: str, value: Any) -> Cause:
    return Cause("FieldValueNotFound", field, f"Not found: {_fmt(value)}")


def immutable(field: str, value: Any) -> Cause:
    return invalid(field, value if isinstance(value, str | int) else "...", "field is immutable")


def invalid_error(kind: Kind, name: str, causes: list[Cause]) -> Invalid:
    """``Pod "x" is invalid: spec.containers: Required value`` with details.causes."""
    texts = [f"{c.field}: {c.message}" for c in causes]
    body = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return Invalid(
        f'{kind.qualified_kind} "{name}" is invalid: {body}',
        details={
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [c.as_dict() for c in causes],
        },
    )


# -- names and metadata ------------------------------------------------------------


RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def name_causes(kind: Kind, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind.kind in RBAC_KINDS:
        # ValidateRBACName is a path segment name: "system:controller:job-controller" is fine
        if name in (".", ".."):
            return [invalid(field, name, f"may not be '{name}'")]
        return [invalid(field, name, f"may not contain '{c}'") for c in ("/", "%") if c in name]
    if kind.kind == "Namespace":
        regex, msg, limit = LABEL_RE, LABEL_MSG, 63
    elif kind.kind == "Service":
        regex, msg, limit = DNS1035_RE, DNS1035_MSG, 63
    else:
        regex, msg, limit = SUBDOMAIN_RE, SUBDOMAIN_MSG, 253
    causes = []
    if len(name) > limit:
        causes.append(invalid(field, name, f"must be no more than {limit} characters"))
    if not regex.match(name):
        causes.append(invalid(field, name, msg))
    return causes


def label_causes(labels: Any, field: str) -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(field, "...", "must be a map of strings")]
    causes = []
    for key, value in labels.items():
        if len(key.rsplit("/", 1)[-1]) > 63 or not _KEY_RE.match(key):
            causes.append(
                invalid(
                    field,
                    key,
                    KEY_MSG,
                )
            )
        if not isinstance(value, str):
            causes.append(invalid(f"{field}", value, "must be a string"))
        elif len(value) > 63:
            causes.append(invalid(field, value, "must be no more than 63 characters"))
        elif not _VALUE_RE.match(value):
            causes.append(
                invalid(
                    field,
                    value,
                    VALUE_MSG,
                )
            )
    return causes


def metadata_causes(kind: Kind, obj: Obj) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes = []
    name = meta.get("name")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes += name_causes(kind, name)
    causes += label_causes(meta.get("labels"), "metadata.labels")
    for key in meta.get("annotations") or {}:
        if not _KEY_RE.match(key):
            causes.append(
                invalid(
                    "metadata.annotations",
                    key,
                    KEY_MSG,
                )
            )
    return causes


# -- defaults -------------------------------------------------------------------------


def _container_defaults(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    res = c.setdefault("resources", {})
    if isinstance(res, dict) and res.get("limits"):
        requests = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            requests.setdefault(k, v)
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")


def pod_spec_defaults(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _container_defaults(c)
    for vol in spec.get("volumes") or []:
        for src in ("secret", "configMap"):
            if isinstance(vol.get(src), dict):
                vol[src].setdefault("defaultMode", 420)


def qos_class(spec: Obj) -> str:
    containers = [c for k in ("containers", "initContainers") for c in spec.get(k) or []]
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if any(k in req or k in lim for k in ("cpu", "memory")):
            any_set = True
        for k in ("cpu", "memory"):
            if k not in lim or str(req.get(k, lim.get(k))) != str(lim[k]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def _pod_defaults(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    pod_spec_defaults(spec)
    # admission plugins: ServiceAccount, Priority, DefaultTolerationSeconds
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    have = {t.get("key") for t in tolerations if isinstance(t, dict)}
    for t in _DEFAULT_TOLERATIONS:
        if t["key"] not in have:
            tolerations.append(dict(t))
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


def _job_spec_defaults(spec: Obj, meta: Obj, uid: str | None) -> None:
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    if not meta.get("labels") and tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"], spec["parallelism"] = 1, 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if not spec.get("podFailurePolicy"):
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if uid and not spec.get("manualSelector") and meta.get("name"):
        labels = tmeta.setdefault("labels", {})
        labels["batch.kubernetes.io/controller-uid"] = uid
        labels["batch.kubernetes.io/job-name"] = meta["name"]
        labels["controller-uid"] = uid
        labels["job-name"] = meta["name"]
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    pod_spec_defaults(template.setdefault("spec", {}))


def _service_defaults(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if "port" in port:
            port.setdefault("targetPort", port["port"])
    obj.setdefault("status", {"loadBalancer": {}})


def _secret_defaults(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.get("data") or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def apply_defaults(kind: Kind, obj: Obj, *, uid: str | None = None, create: bool = True) -> None:
    """Fill what the server defaults (in place); ``uid`` is the new object's uid."""
    meta = obj.setdefault("metadata", {})
    k = kind.kind
    if k == "Pod":
        if create:
            _pod_defaults(obj)
        else:
            pod_spec_defaults(obj.setdefault("spec", {}))
    elif k == "Job":
        _job_spec_defaults(obj.setdefault("spec", {}), meta, uid if create else None)
        obj.setdefault("status", {})
    elif k == "CronJob":
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        jt = spec.setdefault("jobTemplate", {})
        jspec = jt.setdefault("spec", {})
        pod_spec_defaults(jspec.setdefault("template", {}).setdefault("spec", {}))
        obj.setdefault("status", {})
    elif k == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if meta.get("name"):
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if create:
            obj["status"] = {"phase": "Active"}
    elif k == "Service":
        _service_defaults(obj)
    elif k == "Secret":
        _secret_defaults(obj)
    elif k == "PersistentVolumeClaim":
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    elif k == "NetworkPolicy":
        spec = obj.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if "policyTypes" not in spec:
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


# -- validation -------------------------------------------------------------------------


def _container_causes(containers: Any, field: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(containers or []):
        at = f"{field}[{i}]"
        if not isinstance(c, dict):
            causes.append(invalid(at, "...", "must be an object"))
            continue
        name = c.get("name")
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            if not LABEL_RE.match(name) or len(name) > 63:
                causes.append(invalid(f"{at}.name", name, LABEL_MSG))
            if name in seen:
                causes.append(duplicate(f"{at}.name", name))
            seen.add(name)
        if not c.get("image"):
            causes.append(required(f"{at}.image"))
        for j, m in enumerate(c.get("volumeMounts") or []):
            if not m.get("name"):
                causes.append(required(f"{at}.volumeMounts[{j}].name"))
            elif m["name"] not in volumes:
                causes.append(not_found(f"{at}.volumeMounts[{j}].name", m["name"]))
            if not m.get("mountPath"):
                causes.append(required(f"{at}.volumeMounts[{j}].mountPath"))
        for j, e in enumerate(c.get("env") or []):
            if not e.get("name"):
                causes.append(required(f"{at}.env[{j}].name"))
    return causes


def pod_spec_causes(spec: Any, field: str, restart_policies: list[str]) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(f"{field}.containers")]
    causes: list[Cause] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        name = v.get("name") if isinstance(v, dict) else None
        if not name:
            causes.append(required(f"{field}.volumes[{i}].name"))
            continue
        if not LABEL_RE.match(name):
            causes.append(invalid(f"{field}.volumes[{i}].name", name, LABEL_MSG))
        if name in volumes:
            causes.append(duplicate(f"{field}.volumes[{i}].name", name))
        volumes.add(name)
    if not spec.get("containers"):
        causes.append(required(f"{field}.containers"))
    causes += _container_causes(spec.get("containers"), f"{field}.containers", volumes)
    causes += _container_causes(spec.get("initContainers"), f"{field}.initContainers", volumes)
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        causes.append(not_supported(f"{field}.restartPolicy", policy, restart_policies))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        causes.append(
            invalid(
                f"{field}.terminationGracePeriodSeconds",
                grace,
                "must be greater than or equal to 0",
            )
        )
    return causes


def _job_spec_causes(spec: Any, field: str, *, check_selector: bool) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(f"{field}.template")]
    causes: list[Cause] = []
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            causes.append(invalid(f"{field}.{key}", value, "must be greater than or equal to 0"))
    template = spec.get("template") or {}
    causes += label_causes(
        (template.get("metadata") or {}).get("labels"), f"{field}.template.metadata.labels"
    )
    causes += pod_spec_causes(
        template.get("spec"), f"{field}.template.spec", ["OnFailure", "Never"]
    )
    if check_selector and spec.get("selector") and not spec.get("manualSelector"):
        causes.append(invalid(f"{field}.selector", "...", "`selector` will be auto-generated"))
    return causes


_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _schedule_ok(schedule: str) -> bool:
    schedule = schedule.strip()
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        return False  # the real server rejects TZ in spec.schedule; use spec.timeZone
    if schedule in _CRON_MACROS or schedule.startswith("@every "):
        return True
    fields = schedule.split()
    return len(fields) == 5 and all(re.match(r"^[0-9*/,\-A-Za-z?]+$", f) for f in fields)


def _data_causes(obj: Obj, fields: tuple[str, ...]) -> list[Cause]:
    causes, total = [], 0
    for field in fields:
        for key, value in (obj.get(field) or {}).items():
            if not CONFIG_KEY_RE.match(key) or len(key) > 253:
                causes.append(invalid(f"{field}[{key}]", key, CONFIG_KEY_MSG))
            total += len(value or "")
    if total > MAX_DATA_BYTES:
        causes.append(
            Cause(
                "FieldValueTooLong",
                fields[0],
                f"Too long: must have at most {MAX_DATA_BYTES} bytes",
            )
        )
    return causes


def decode_errors(kind: Kind, obj: Obj) -> None:
    """What the real server rejects while decoding the body (400, not 422)."""
    if kind.kind == "Secret":
        for value in (obj.get("data") or {}).values():
            if not isinstance(value, str):
                raise BadRequest(
                    f'Secret in version "v1" cannot be handled as a Secret: json: cannot '
                    f"unmarshal {type(value).__name__} into Go struct field Secret.data of type "
                    f"[]uint8"
                )
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                    f"at input byte {_bad_base64_offset(value)}"
                ) from None
    if kind.kind == "ConfigMap":
        for value in (obj.get("data") or {}).values():
            if not isinstance(value, str):
                raise BadRequest(
                    'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: '
                    "cannot unmarshal number into Go struct field ConfigMap.data of type string"
                )


def _bad_base64_offset(value: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    for i, ch in enumerate(value):
        if ch not in alphabet:
            return i
    return len(value) - len(value) % 4


def validate(kind: Kind, obj: Obj) -> list[Cause]:
    """Causes for a 422 on create (and on update, before the immutability checks)."""
    causes = metadata_causes(kind, obj)
    spec = obj.get("spec")
    k = kind.kind
    if k == "Pod":
        causes += pod_spec_causes(spec, "spec", ["Always", "OnFailure", "Never"])
    elif k == "Job":
        causes += _job_spec_causes(spec, "spec", check_selector=False)
    elif k == "CronJob":
        spec = spec or {}
        schedule = spec.get("schedule")
        if not schedule:
            causes.append(required("spec.schedule"))
        elif not _schedule_ok(schedule):
            causes.append(invalid("spec.schedule", schedule, "unparseable schedule"))
        policy = spec.get("concurrencyPolicy")
        if policy not in ("Allow", "Forbid", "Replace"):
            causes.append(
                not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"])
            )
        causes += _job_spec_causes(
            (spec.get("jobTemplate") or {}).get("spec"),
            "spec.jobTemplate.spec",
            check_selector=False,
        )
    elif k == "Service":
        spec = spec or {}
        svc_type = spec.get("type")
        types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
        if svc_type not in types:
            causes.append(not_supported("spec.type", svc_type, types))
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None" and svc_type != "ExternalName":
            causes.append(required("spec.ports"))
        names: set[str] = set()
        for i, p in enumerate(ports):
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                causes.append(
                    invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive")
                )
            if len(ports) > 1 and not p.get("name"):
                causes.append(required(f"spec.ports[{i}].name"))
            if p.get("name"):
                if p["name"] in names:
                    causes.append(duplicate(f"spec.ports[{i}].name", p["name"]))
                names.add(p["name"])
    elif k == "Secret":
        causes += _data_causes(obj, ("data",))
    elif k == "ConfigMap":
        causes += _data_causes(obj, ("data", "binaryData"))
    elif k == "PersistentVolumeClaim":
        spec = spec or {}
        if not spec.get("accessModes"):
            causes.append(required("spec.accessModes", "at least 1 access mode is required"))
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if not storage:
            causes.append(required("spec.resources[storage]"))
    elif k == "Event":
        involved = obj.get("involvedObject") or {}
        ns = (obj.get("metadata") or {}).get("namespace")
        if involved.get("namespace") and ns and involved["namespace"] != ns:
            causes.append(
                invalid(
                    "involvedObject.namespace",
                    involved["namespace"],
                    "does not match event.namespace",
                )
            )
    elif k == "NetworkPolicy":
        for i, t in enumerate((spec or {}).get("policyTypes") or []):
            if t not in ("Ingress", "Egress"):
                causes.append(not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"]))
    return causes


_POD_MUTABLE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _pod_spec_sans_mutable(spec: Obj) -> Obj:
    spec = json.loads(json.dumps(spec or {}))
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            c.pop("image", None)
    return spec


def update_causes(kind: Kind, new: Obj, old: Obj) -> list[Cause]:
    """The immutability rules of an update."""
    k = kind.kind
    causes: list[Cause] = []
    if k == "Pod":
        if _pod_spec_sans_mutable(new.get("spec")) != _pod_spec_sans_mutable(old.get("spec")):
            causes.append(forbidden("spec", _POD_MUTABLE_MSG))
    elif k == "Job":
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        for key in ("template", "selector", "completions", "completionMode"):
            if ns.get(key) != os_.get(key) and not (
                key == "completions" and ns.get("completionMode") == "Indexed"
            ):
                causes.append(immutable(f"spec.{key}", ns.get(key)))
    elif k in ("Secret", "ConfigMap"):
        if k == "Secret" and new.get("type") != old.get("type"):
            causes.append(immutable("type", new.get("type")))
        if old.get("immutable"):
            for key in ("data", "binaryData"):
                if new.get(key) != old.get(key):
                    causes.append(forbidden(key, "field is immutable when `immutable` is set"))
            if not new.get("immutable"):
                causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    elif k == "Service":
        old_ip = (old.get("spec") or {}).get("clusterIP")
        new_ip = (new.get("spec") or {}).get("clusterIP")
        if old_ip and new_ip != old_ip:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "spec.clusterIPs[0]",
                    f"Invalid value: []string{{{_fmt(new_ip)}}}: may not change once set",
                )
            )
    elif k == "PersistentVolumeClaim":
        ns = dict(new.get("spec") or {})
        os_ = dict(old.get("spec") or {})
        for s in (ns, os_):
            s.pop("resources", None)
            s.pop("volumeName", None)
        if ns != os_:
            causes.append(
                forbidden(
                    "spec",
                    PVC_IMMUTABLE_MSG,
                )
            )
    return causes
