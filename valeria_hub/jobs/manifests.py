"""The hardened Job or CronJob built from a checked submission. Pure builders.

The platform builds every workload itself: the person's uid and gid from Vault, never
root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, no
service account token, the S3 keys through the job's own Secret, the NFS mounts and
environment of :func:`valeria_hub.storage.workload`, resources from a profile under
server-side caps, a capped deadline, backoffLimit 0 and a TTL by default, owner labels
everywhere.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

from ..storage import Workload, s3_secret_manifest
from ..vault import UserProfile
from .labels import USERNAME_ANNOTATION, platform_labels
from .policy import ENV_NAME, CheckedJob, Rules

CODE_ZIP_DIR = "/valeria-code-zip"


# -- extra environment ---------------------------------------------------------------------
@dataclass(frozen=True)
class ExtraEnv:
    name: str
    value: str = field(repr=False)
    secret: bool = False


TEMPLATE_FIELDS = ("username", "job_name", "image", "namespace")


def parse_extra_env(raw: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Operator's templates: ``NAME: "text {username}"`` or ``NAME: {value, secret}``."""
    out = {}
    for name, spec in raw.items():
        if not ENV_NAME.fullmatch(name):
            raise ValueError(f"extra_env: {name!r} is not an environment variable name")
        if isinstance(spec, str):
            template, secret = spec, False
        elif isinstance(spec, dict) and set(spec) <= {"value", "secret"} and "value" in spec:
            template, secret = str(spec["value"]), bool(spec.get("secret", False))
        else:
            raise ValueError(f"extra_env: {name!r} must be a string or {{value, secret}}")
        try:
            template.format(**{f: "" for f in TEMPLATE_FIELDS})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"extra_env: {name!r} uses an unknown placeholder ({e})") from None
        out[name] = (template, secret)
    return out


def render_extra_env(templates: dict[str, tuple[str, bool]], **fill: str) -> list[ExtraEnv]:
    return [ExtraEnv(n, t.format(**fill), s) for n, (t, s) in templates.items()]


# -- building ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where and as whom a checked job runs."""

    username: str
    namespace: str
    name: str
    secret_name: str
    configmap_name: str | None
    workload: Workload
    extra_env: tuple[ExtraEnv, ...] = ()
    job_env: tuple[tuple[str, str], ...] = ()


def _env(container: dict[str, Any], target: Target) -> list[dict[str, Any]]:
    platform: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in target.job_env]
    platform += copy.deepcopy(target.workload.env)
    for extra in target.extra_env:
        if extra.secret:
            ref = {"secretKeyRef": {"name": target.secret_name, "key": extra.name}}
            platform.append({"name": extra.name, "valueFrom": ref})
        else:
            platform.append({"name": extra.name, "value": extra.value})
    taken = {e["name"] for e in platform}
    return [e for e in container["env"] if e["name"] not in taken] + platform


def _container(c: dict[str, Any], target: Target, code_mount: dict | None) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in c.items() if k not in ("env", "readOnlyRootFilesystem")}
    out["env"] = _env(c, target)
    mounts = copy.deepcopy(target.workload.volume_mounts)
    if code_mount is not None:
        mounts.append(code_mount)
    if mounts:
        out["volumeMounts"] = mounts
    sc = copy.deepcopy(target.workload.container_security_context)
    if c.get("readOnlyRootFilesystem"):
        sc["readOnlyRootFilesystem"] = True
    out["securityContext"] = sc
    return out


def _unpack_container(
    main: dict[str, Any], target: Target, rules: Rules, code_dir: str
) -> dict[str, Any]:
    return {
        "name": "unpack-code",
        "image": rules.unpack_image or main["image"],
        "command": [*rules.unpack_command, f"{CODE_ZIP_DIR}/code.zip", code_dir],
        "volumeMounts": [
            {"name": "code-zip", "mountPath": CODE_ZIP_DIR, "readOnly": True},
            {"name": "code", "mountPath": code_dir},
        ],
        "resources": copy.deepcopy(main["resources"]),
        "securityContext": copy.deepcopy(target.workload.container_security_context),
    }


def _bytes(n: int) -> str:
    """A byte count as a quantity: ``64Mi`` when it is whole mebibytes."""
    return f"{n // 2**20}Mi" if n % 2**20 == 0 else str(n)


def build_pod_template(checked: CheckedJob, target: Target, rules: Rules) -> dict[str, Any]:
    labels = {**checked.template_labels, **platform_labels(target.username)}
    annotations = {**checked.template_annotations, USERNAME_ANNOTATION: target.username}
    spec: dict[str, Any] = {
        **copy.deepcopy(checked.pod),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(target.workload.pod_security_context),
        **checked.profile.placement(),
    }
    volumes = copy.deepcopy(target.workload.volumes)
    code_mount = None
    if target.configmap_name:
        main = checked.containers[0]
        code_dir = main.get("workingDir") or rules.code_dir
        code_mount = {"name": "code", "mountPath": code_dir}
        volumes += [
            {
                "name": "code-zip",
                "configMap": {
                    "name": target.configmap_name,
                    "items": [{"key": "code", "path": "code.zip"}],
                },
            },
            # bounded like the unpacking (which stops at the same size): the kubelet
            # evicts a pod whose code directory grows past it
            {"name": "code", "emptyDir": {"sizeLimit": _bytes(rules.code_max_unpacked_bytes)}},
        ]
        spec["initContainers"] = [_unpack_container(main, target, rules, code_dir)]
    containers = []
    for i, c in enumerate(checked.containers):
        c = dict(c)
        if i == 0 and target.configmap_name and "workingDir" not in c:
            c["workingDir"] = rules.code_dir
        containers.append(_container(c, target, code_mount if i == 0 else None))
    spec["containers"] = containers
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def build_manifest(checked: CheckedJob, target: Target, rules: Rules) -> dict[str, Any]:
    """The hardened Job or CronJob, with name and namespace fixed by the service."""
    meta = {
        "name": target.name,
        "namespace": target.namespace,
        "labels": {**checked.labels, **platform_labels(target.username)},
        "annotations": {**checked.annotations, USERNAME_ANNOTATION: target.username},
    }
    job_spec = copy.deepcopy(checked.job_spec)
    job_spec["template"] = build_pod_template(checked, target, rules)
    if checked.kind == "Job":
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}
    jt_meta = {
        "labels": {**checked.job_template_labels, **platform_labels(target.username)},
        "annotations": {
            **checked.job_template_annotations,
            USERNAME_ANNOTATION: target.username,
        },
    }
    spec = {**checked.cron_spec, "jobTemplate": {"metadata": jt_meta, "spec": job_spec}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": spec}


def build_secret(
    target: Target, profile: UserProfile, s3_endpoint: str, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The job's own Secret: the S3 keys and the secret extra variables; ``owner`` is the
    Job's ownerReference, so the Secret goes with the Job."""
    manifest = s3_secret_manifest(
        target.secret_name,
        target.namespace,
        profile,
        s3_endpoint,
        labels={**platform_labels(target.username), "valeria.io/job": target.name},
        owner_references=[owner] if owner else None,
    )
    for extra in target.extra_env:
        if extra.secret:
            manifest["data"][extra.name] = base64.b64encode(extra.value.encode()).decode()
    manifest["metadata"]["annotations"] = {USERNAME_ANNOTATION: target.username}
    return manifest


def build_code_configmap(
    target: Target, data: bytes, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The uploaded code as a ConfigMap the init container unpacks; owned by the Job."""
    meta: dict[str, Any] = {
        "name": target.configmap_name,
        "namespace": target.namespace,
        "labels": {**platform_labels(target.username), "valeria.io/job": target.name},
        "annotations": {USERNAME_ANNOTATION: target.username},
    }
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "binaryData": {"code": base64.b64encode(data).decode("ascii")},
    }
