"""What a user's workload looks like: identity, NFS mounts and the S3 Secret.

Shared by the notebook spawner and the jobs service, so that a notebook and a batch
job of the same person run with the same uid, see the same directories and carry the
same S3 keys. Everything here is pure: data in, Kubernetes manifests (plain dicts in
the API's JSON shape) out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Integer, List, Unicode
from traitlets.config import LoggingConfigurable

from .names import path_safe
from .vault import UserProfile

S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT_URL")

# The storage check: an init container that runs before the notebook (or job) and
# fails, naming the directory, when one of the person's directories is missing or not
# writable by their uid. Real kubelets create a missing subPath as root, so a home that
# was never made shows up as "not writable by your uid 1001 (it has uid 0, mode 755)".
STORAGE_CHECK_CONTAINER = "check-storage"
STORAGE_CHECK_MARK = "valeria-hub storage check:"
STORAGE_CHECK_EXIT = 78  # EX_CONFIG
STORAGE_CHECK_SCRIPT = f"""\
uid=$1; shift
while [ $# -ge 2 ]; do
  what=$1; dir=$2; shift 2
  if [ ! -d "$dir" ]; then
    problem="does not exist"
  elif [ ! -w "$dir" ] || [ ! -x "$dir" ]; then
    owner=$(stat -c 'uid %u, mode %a' "$dir" 2>/dev/null || echo 'an unknown owner')
    problem="is not writable by your uid $uid (it has $owner)"
  else
    continue
  fi
  echo "{STORAGE_CHECK_MARK} your $what directory $dir $problem" >&2
  exit {STORAGE_CHECK_EXIT}
done
"""
# the most of a failure message shown to the person
MAX_CHECK_MESSAGE = 300


def render_path(template: str, username: str, uid: int) -> str:
    """Fill ``{username}`` and ``{uid}``; refuse anything that climbs out with '..'."""
    path = template.format(username=path_safe(username), uid=uid)
    if any(part == ".." for part in path.split("/")):
        raise ValueError(f"path template {template!r} gives a path with '..'")
    return path


@dataclass(frozen=True)
class NfsMount:
    """One NFS-backed directory of the user (home, scratch...)."""

    name: str
    server: str
    export_path: str
    mount_path: str
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Workload:
    """The parts of a pod spec that give a workload its owner's identity and storage.

    ``env`` is the whole platform environment of the workload's main container: who
    it runs as (NB_USER, NB_UID, HOME) and the S3 variables, taken from the Secret.
    ``checked_dirs`` are the (name, path in the pod) of the directories the person must
    be able to write: what the storage check looks at.
    """

    home: str | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    container_security_context: dict[str, Any] = field(default_factory=dict)
    checked_dirs: tuple[tuple[str, str], ...] = ()

    def env_mapping(self) -> dict[str, Any]:
        """``env`` as KubeSpawner's environment mapping: a value, or ``{"valueFrom": ...}``
        (the S3 variables, references to the Secret that KubeSpawner passes on)."""
        return {
            e["name"]: e["value"] if "value" in e else {"valueFrom": e["valueFrom"]}
            for e in self.env
        }


def nfs_volumes(
    mounts: list[NfsMount], username: str, uid: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes (one per distinct export) and volumeMounts with per-user subPaths."""
    volumes: dict[str, dict[str, Any]] = {}
    volume_mounts = []
    for m in mounts:
        key = f"{m.server}:{m.export_path}"
        vol_name = volumes[key]["name"] if key in volumes else f"nfs-{m.name}"
        volumes.setdefault(
            key, {"name": vol_name, "nfs": {"server": m.server, "path": m.export_path}}
        )
        mount: dict[str, Any] = {
            "name": vol_name,
            "mountPath": render_path(m.mount_path, username, uid),
        }
        sub = render_path(m.sub_path, username, uid).strip("/") if m.sub_path else ""
        if sub:
            mount["subPath"] = sub
        if m.read_only:
            mount["readOnly"] = True
        volume_mounts.append(mount)
    return list(volumes.values()), volume_mounts


def home_dir(mounts: list[NfsMount], username: str, uid: int) -> str | None:
    """Where the person's home directory appears in a pod (HOME), if one is mounted."""
    for m in mounts:
        if m.name == "home":
            return render_path(m.mount_path, username, uid)
    return None


def identity_env(username: str, uid: int, home: str | None) -> list[dict[str, Any]]:
    """Who the workload runs as, for the programs inside (Jupyter's docker-stacks read
    NB_USER and NB_UID)."""
    env = [{"name": "NB_USER", "value": username}, {"name": "NB_UID", "value": str(uid)}]
    if home:
        env.append({"name": "HOME", "value": home})
    return env


def s3_env(secret_name: str) -> list[dict[str, Any]]:
    """Container env that takes the S3 variables from the Secret, never as plain values."""
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for key in S3_KEYS
    ]


def s3_secret_manifest(
    name: str,
    namespace: str,
    profile: UserProfile,
    endpoint_url: str,
    *,
    labels: dict[str, str] | None = None,
    owner_references: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The per-server (or per-job) Secret holding the user's S3 keys."""
    values = profile.s3_env(endpoint_url)
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner_references:
        meta["ownerReferences"] = owner_references
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """An ownerReference that makes the garbage collector delete the dependent (the S3
    Secret, a job's code ConfigMap) with its owner (the notebook pod, the Job).

    Set when the dependent is created, never patched in later: OpenShift's
    OwnerReferencesPermissionEnforcement lets the creator set it with the rights it
    has, and nobody needs ``patch`` on Secrets (a PATCH answers with the whole Secret).
    ``blockOwnerDeletion`` stays false: it only matters for foreground deletion, and
    setting it needs ``update`` on the owner's ``finalizers``.
    """
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "blockOwnerDeletion": False,
        "controller": False,
    }


def security_contexts(
    uid: int,
    gid: int | None,
    *,
    fs_group: int | None = None,
    supplemental_groups: list[int] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod and container security contexts: the user's uid, never root, nothing extra."""
    if uid <= 0:
        raise ValueError("a workload never runs as root")
    pod: dict[str, Any] = {
        "runAsUser": uid,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if gid is not None:
        pod["runAsGroup"] = gid
    if fs_group is not None:
        pod["fsGroup"] = fs_group
    if supplemental_groups:
        pod["supplementalGroups"] = list(supplemental_groups)
    container: dict[str, Any] = {
        "runAsUser": uid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if gid is not None:
        container["runAsGroup"] = gid
    return pod, container


def workload(
    profile: UserProfile,
    mounts: list[NfsMount],
    secret_name: str,
    *,
    fs_group: int | None = None,
    supplemental_groups: list[int] | None = None,
) -> Workload:
    """Everything a pod needs to run as ``profile``'s owner with their storage."""
    volumes, volume_mounts = nfs_volumes(mounts, profile.username, profile.uid)
    home = home_dir(mounts, profile.username, profile.uid)
    pod_sc, container_sc = security_contexts(
        profile.uid,
        profile.gid,
        fs_group=fs_group if fs_group is not None else profile.gid,
        supplemental_groups=supplemental_groups,
    )
    env = identity_env(profile.username, profile.uid, home) + s3_env(secret_name)
    checked = tuple(
        (m.name, render_path(m.mount_path, profile.username, profile.uid))
        for m in mounts
        if not m.read_only
    )
    return Workload(home, volumes, volume_mounts, env, pod_sc, container_sc, checked)


def storage_check_container(
    work: Workload,
    image: str,
    *,
    image_pull_policy: str | None = None,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The init container that checks ``work``'s directories before the workload runs.

    It runs ``/bin/sh`` from the workload's own image, with the workload's identity and
    mounts and nothing else (no S3 keys): what it prints is only the check's own
    message, which reaches the pod's status as its termination message
    (``FallbackToLogsOnError``) and from there the person (:func:`storage_check_failure`).
    """
    uid = work.container_security_context.get("runAsUser", "")
    args = [arg for name, path in work.checked_dirs for arg in (name, path)]
    checked = {path for _, path in work.checked_dirs}
    spec: dict[str, Any] = {
        "name": STORAGE_CHECK_CONTAINER,
        "image": image,
        "command": ["sh", "-c", STORAGE_CHECK_SCRIPT, STORAGE_CHECK_CONTAINER, str(uid), *args],
        "volumeMounts": [dict(m) for m in work.volume_mounts if m["mountPath"] in checked],
        "securityContext": dict(work.container_security_context),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if image_pull_policy:
        spec["imagePullPolicy"] = image_pull_policy
    if resources:
        spec["resources"] = resources
    return spec


def storage_check_failure(pod: dict[str, Any]) -> str | None:
    """Why the storage check of ``pod`` (the API's JSON) failed, or None while it has not.

    A failed init container is retried by the kubelet with back-off, so the failure is
    either its current state or, while it waits to be retried, its last state. The
    message is the check's own line when it wrote one, else what the runtime said (no
    ``sh`` in the image, for instance); never more than a short line.
    """
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") != STORAGE_CHECK_CONTAINER:
            continue
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            ended = state.get("terminated")
            if not ended or ended.get("exitCode") in (0, None):
                continue
            text = str(ended.get("message") or "")
            for line in reversed(text.splitlines()):
                if STORAGE_CHECK_MARK in line:
                    found = line.split(STORAGE_CHECK_MARK, 1)[1].strip()
                    return found[:MAX_CHECK_MESSAGE]
            why = f"the check of your storage failed ({ended.get('reason') or 'Error'}, exit "
            why += f"code {ended.get('exitCode')}"
            if ended.get("reason") == "StartError" and text:
                why += f": {text.strip().splitlines()[-1][:200]}"
            return why + ")"
    return None


@dataclass(frozen=True)
class Layout:
    """A StorageLayout's settings as plain data: what the jobs service keeps."""

    mounts: tuple[NfsMount, ...] = ()
    s3_endpoint_url: str = ""
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()

    def workload(self, profile: UserProfile, secret: str) -> Workload:
        return workload(
            profile,
            list(self.mounts),
            secret,
            fs_group=self.fs_group,
            supplemental_groups=list(self.supplemental_groups),
        )


class StorageLayout(LoggingConfigurable):
    """Where a user's NFS directories are and how they are mounted (spawner and jobs)."""

    nfs_server = Unicode("", config=True, help="NFS server address (host or IP).")
    nfs_path = Unicode("/", config=True, help="The NFS export path that holds the user trees.")
    home_mount_path = Unicode(
        "/home/{username}", config=True, help="Where the home directory appears in the pod."
    )
    home_sub_path = Unicode(
        "home/{username}",
        config=True,
        help="Home directory below the export; {username} and {uid} are filled in. "
        "Use 'users/home/{username}' for the existing Valeria layout.",
    )
    scratch_mount_path = Unicode(
        "/scratch", config=True, help="Where the scratch directory appears; empty: none."
    )
    scratch_sub_path = Unicode(
        "scratch/{username}", config=True, help="Scratch directory below the export."
    )
    valeria_layout = Bool(
        False,
        config=True,
        help="Mirror the existing deployments' layout: home at /users/home/{username} "
        "from users/home/{username} on the export.",
    )
    s3_endpoint_url = Unicode(
        "", config=True, help="The S3 (Ceph) endpoint URL given to workloads as S3_ENDPOINT_URL."
    )
    fs_group = Integer(
        None, allow_none=True, config=True, help="fsGroup for workloads; default: the user's gid."
    )
    supplemental_groups = List(
        Integer(), config=True, help="Supplemental group ids added to every workload."
    )

    def mounts(self) -> list[NfsMount]:
        if not self.nfs_server:
            return []
        home_mount, home_sub = self.home_mount_path, self.home_sub_path
        if self.valeria_layout:
            home_mount, home_sub = "/users/home/{username}", "users/home/{username}"
        result = [NfsMount("home", self.nfs_server, self.nfs_path, home_mount, home_sub)]
        if self.scratch_mount_path:
            result.append(
                NfsMount(
                    "scratch",
                    self.nfs_server,
                    self.nfs_path,
                    self.scratch_mount_path,
                    self.scratch_sub_path,
                )
            )
        return result

    def layout(self) -> Layout:
        return Layout(
            tuple(self.mounts()),
            self.s3_endpoint_url,
            self.fs_group,
            tuple(self.supplemental_groups),
        )

    def workload(self, profile: UserProfile, secret: str) -> Workload:
        return self.layout().workload(profile, secret)
