"""Pod volumes as directories on the host.

- ``nfs``: ``<nfs_root>/<path>`` (the server is ignored), created on demand;
- ``emptyDir``: ``<pod dir>/volumes/<name>``, mode 0777 like the real kubelet's;
- ``configMap`` / ``secret`` / ``projected``: one file per key (``items`` with
  key/path/mode and ``defaultMode`` honoured, secret data base64-decoded);
- ``persistentVolumeClaim``: ``<root>/pvc/<namespace>/<claim>`` (the claim must exist);
- ``hostPath``: the path itself.

Directories created for the pod are chowned to runAsUser / fsGroup when set. The
mount plan (volumeMount -> host directory, subPath applied) is a pure function.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .process import Lookup, configmap_values, expand, field_value, secret_values


class VolumeError(Exception):
    """A volume cannot be set up yet (FailedMount; the kubelet retries)."""


def _owner(pod: dict[str, Any]) -> tuple[int, int]:
    """(uid, gid) for directories made for the pod; -1 leaves a field unchanged."""
    psc = pod.get("spec", {}).get("securityContext") or {}
    uid = psc.get("runAsUser")
    if uid is None:
        containers = pod.get("spec", {}).get("containers") or [{}]
        uid = (containers[0].get("securityContext") or {}).get("runAsUser")
    gid = psc.get("fsGroup")
    if gid is None:
        gid = psc.get("runAsGroup")
    return (int(uid) if uid is not None else -1, int(gid) if gid is not None else -1)


def _make_dirs(path: Path, owner: tuple[int, int], mode: int = 0o755) -> None:
    """Create ``path`` and missing parents; chown what was created when running as root."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=mode)
        os.chmod(d, mode)
        if os.geteuid() == 0 and owner != (-1, -1):
            os.chown(d, *owner)


def _safe_rel(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not rel:
        raise VolumeError(f"invalid path {rel!r}: must be relative and may not contain '..'")
    return p


def _write_files(
    target: Path,
    values: dict[str, str],
    items: list[dict[str, Any]] | None,
    default_mode: int,
    fs_group: int | None,
) -> None:
    _make_dirs(target, (-1, -1))
    chosen = (
        [(it["key"], it.get("path") or it["key"], it.get("mode")) for it in items]
        if items
        else [(k, k, None) for k in values]
    )
    for key, rel, mode in chosen:
        if key not in values:
            raise VolumeError(f"configmap references non-existent config key: {key}")
        dest = target / _safe_rel(rel)
        _make_dirs(dest.parent, (-1, -1))
        dest.write_bytes(values[key].encode("utf-8", "surrogateescape"))
        perm = int(mode) if mode is not None else default_mode
        if fs_group is not None and os.geteuid() == 0:
            os.chown(dest, -1, fs_group)
            perm |= 0o040
        os.chmod(dest, perm)


def _key_source(
    kind: str, name: str, optional: bool, ns: str, lookup: Lookup, values: Callable
) -> dict[str, str]:
    obj = lookup(ns, name)
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{kind} "{name}" not found')
    return values(obj)


def prepare_volumes(
    pod: dict[str, Any],
    *,
    pod_dir: Path,
    nfs_root: Path,
    pvc_root: Path,
    pod_ip: str,
    get_secret: Lookup,
    get_configmap: Lookup,
    claim_exists: Callable[[str, str], bool],
) -> dict[str, Path]:
    """Materialise every volume of the pod; returns volume name -> host directory."""
    ns = pod.get("metadata", {}).get("namespace", "default")
    psc = pod.get("spec", {}).get("securityContext") or {}
    fs_group = psc.get("fsGroup")
    owner = _owner(pod)
    paths: dict[str, Path] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        name = vol.get("name", "")
        try:
            paths[name] = _prepare_one(
                vol, ns, pod, pod_dir, nfs_root, pvc_root, pod_ip, owner, fs_group,
                get_secret, get_configmap, claim_exists,
            )  # fmt: skip
        except VolumeError as e:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}') from None
    return paths


def _prepare_one(
    vol, ns, pod, pod_dir, nfs_root, pvc_root, pod_ip, owner, fs_group,
    get_secret, get_configmap, claim_exists,
) -> Path:  # fmt: skip
    name = vol["name"]
    target = pod_dir / "volumes" / name
    if "nfs" in vol:
        rel = (vol["nfs"].get("path") or "/").lstrip("/")
        path = nfs_root / _safe_rel(rel) if rel else nfs_root
        _make_dirs(path, owner)
        return path
    if "emptyDir" in vol:
        _make_dirs(target.parent, (-1, -1))
        _make_dirs(target, owner, 0o777)
        return target
    if "persistentVolumeClaim" in vol:
        claim = vol["persistentVolumeClaim"].get("claimName", "")
        if not claim_exists(ns, claim):
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        path = pvc_root / ns / claim
        _make_dirs(path.parent, (-1, -1))
        _make_dirs(path, owner, 0o777)
        return path
    if "hostPath" in vol:
        path = Path(vol["hostPath"].get("path", ""))
        if not path.exists():
            if vol["hostPath"].get("type") != "DirectoryOrCreate":
                raise VolumeError(f"hostPath type check failed: {path} does not exist")
            _make_dirs(path, (-1, -1))
        return path
    if "configMap" in vol:
        src = vol["configMap"]
        values = _key_source(
            "configmap", src.get("name", ""), bool(src.get("optional")), ns, get_configmap,
            configmap_values,
        )  # fmt: skip
        _write_files(target, values, src.get("items"), src.get("defaultMode", 0o644), fs_group)
        return target
    if "secret" in vol:
        src = vol["secret"]
        values = _key_source(
            "secret", src.get("secretName", ""), bool(src.get("optional")), ns, get_secret,
            secret_values,
        )  # fmt: skip
        _write_files(target, values, src.get("items"), src.get("defaultMode", 0o644), fs_group)
        return target
    if "projected" in vol:
        src = vol["projected"]
        mode = src.get("defaultMode", 0o644)
        for source in src.get("sources") or []:
            if "secret" in source or "configMap" in source:
                key = "secret" if "secret" in source else "configMap"
                s = source[key]
                values = _key_source(
                    key.lower(), s.get("name", ""), bool(s.get("optional")), ns,
                    get_secret if key == "secret" else get_configmap,
                    secret_values if key == "secret" else configmap_values,
                )  # fmt: skip
                _write_files(target, values, s.get("items"), mode, fs_group)
            elif "downwardAPI" in source:
                items = source["downwardAPI"].get("items") or []
                values = {
                    it["path"]: field_value(
                        pod, (it.get("fieldRef") or {}).get("fieldPath", ""), pod_ip
                    )
                    for it in items
                }
                _write_files(target, values, None, mode, fs_group)
            elif "serviceAccountToken" in source:
                # the devstack has no token signer: an empty token, which the API refuses
                path = source["serviceAccountToken"].get("path", "token")
                _write_files(target, {path: ""}, None, mode, fs_group)
            else:
                raise VolumeError("projected volume source not supported by the devstack kubelet")
        _make_dirs(target, (-1, -1))
        return target
    raise VolumeError("volume type not supported by the devstack kubelet")


def mount_plan(
    container: dict[str, Any], volume_paths: dict[str, Path], env: dict[str, str]
) -> list[dict[str, Any]]:
    """volumeMounts -> [{"name", "source", "target", "readOnly"}] with subPath applied.

    A subPath that does not exist yet is created as a directory (like the kubelet).
    """
    plan = []
    for vm in container.get("volumeMounts") or []:
        name = vm.get("name", "")
        if name not in volume_paths:
            raise VolumeError(f'volume "{name}" not found in the pod')
        source = volume_paths[name]
        sub = vm.get("subPath") or (expand(vm["subPathExpr"], env) if vm.get("subPathExpr") else "")
        if sub:
            source = source / _safe_rel(sub)
            if not source.exists():
                _make_dirs(source, (-1, -1))
        plan.append(
            {
                "name": name,
                "source": str(source),
                "target": vm.get("mountPath", ""),
                "readOnly": bool(vm.get("readOnly")),
            }
        )
    return plan


def mount_env(plan: list[dict[str, Any]]) -> dict[str, str]:
    """VALERIA_MOUNT_<VOLUME_NAME> -> host dir, for kubelets that cannot bind-mount."""
    return {
        "VALERIA_MOUNT_" + re.sub(r"[^A-Za-z0-9]", "_", m["name"]).upper(): m["source"]
        for m in plan
    }


def host_path_for(path: str, plan: list[dict[str, Any]]) -> str:
    """A container path mapped to the host through the mount plan (unmounted mode)."""
    best = None
    for m in plan:
        t = m["target"].rstrip("/") or "/"
        if (path == t or path.startswith(t + "/")) and (best is None or len(t) > len(best[0])):
            best = (t, m["source"])
    if best is None:
        return path
    return best[1] + path[len(best[0]) :]
