"""What ``valeria-hub jobs submit`` sends: a Job or CronJob built from options or a file.

A file (``-f job.yaml``) is either kbatch's short form (``name``, ``image``, ``command``,
``args``, ``env``, ``code``, ``profile``, ``schedule``) or a full ``batch/v1`` manifest;
command-line options win over the file. Only the service decides what is allowed: this
module builds the request, it does not second-guess the policy. Pure except reading
the file and zipping the code directory.
"""

from __future__ import annotations

import base64
import io
import os
import shlex
import zipfile
from pathlib import Path
from typing import Any

import yaml

SHORT_FORM_KEYS = {"name", "image", "command", "args", "env", "code", "profile", "schedule"}
SHORT_FORM_IGNORED = {"description"}


class SpecError(ValueError):
    """A submission that cannot be built; the message names the option or file key."""


def parse_env(items: list[str] | None) -> dict[str, str]:
    """``["KEY=VAL", ...]`` -> dict; the first bad item is named."""
    env: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def as_list(value: Any, where: str) -> list[str] | None:
    """A command or args given as a list, or as one string split like a shell would."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise SpecError(f"{where}: {e}") from None
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise SpecError(f"{where}: must be a string or a list of strings")


def load_spec_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise SpecError(f"-f {path}: {e.strerror or type(e).__name__}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"-f {path}: not valid YAML ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise SpecError(f"-f {path}: expected a mapping at the top level")
    if "apiVersion" not in data and "kind" not in data:
        unknown = set(data) - SHORT_FORM_KEYS - SHORT_FORM_IGNORED
        if unknown:
            raise SpecError(f"-f {path}: unknown key(s) {', '.join(sorted(unknown))}")
    return data


def zip_code(path: Path) -> bytes:
    """A zip of a file or a directory's regular files (paths relative to it)."""
    path = Path(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if path.is_file():
            z.write(path, path.name)
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
                for name in sorted(files):
                    full = Path(root, name)
                    if full.is_file() and not full.is_symlink():
                        z.write(full, full.relative_to(path).as_posix())
        else:
            raise SpecError(f"--code {path}: no such file or directory")
    return buf.getvalue()


def _container(image: str, command: list[str] | None, args: list[str] | None, env: dict) -> dict:
    c: dict[str, Any] = {"name": "job", "image": image}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if env:
        c["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    return c


def build_manifest(
    kind: str,
    *,
    name: str | None,
    image: str | None,
    command: list[str] | None,
    args: list[str] | None,
    env: dict[str, str],
    schedule: str | None = None,
) -> dict[str, Any]:
    """A minimal batch/v1 Job or CronJob; the service adds identity, storage and limits."""
    if not image:
        raise SpecError("--image is required (or `image:` in the file)")
    if kind == "CronJob" and not schedule:
        raise SpecError("--schedule is required for a cronjob, e.g. '0 3 * * *'")
    meta = {"name": name} if name else {"generateName": "cron-" if kind == "CronJob" else "job-"}
    pod = {"restartPolicy": "Never", "containers": [_container(image, command, args, env)]}
    job_spec = {"template": {"spec": pod}}
    if kind == "Job":
        spec: dict[str, Any] = job_spec
    else:
        spec = {"schedule": schedule, "jobTemplate": {"spec": job_spec}}
    return {"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": spec}


def build_body(
    kind: str,
    *,
    file: dict[str, Any] | None = None,
    name: str | None = None,
    image: str | None = None,
    command: Any = None,
    args: Any = None,
    env: dict[str, str] | None = None,
    schedule: str | None = None,
    profile: str | None = None,
    code: Path | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """The POST body ``{"job": ..., "code": ..., "profile": ...}``."""
    file = dict(file or {})
    if "apiVersion" in file or "kind" in file:
        if file.get("kind", kind) != kind:
            raise SpecError(f"-f: the file holds a {file.get('kind')}, not a {kind}")
        job = file
        if name:
            meta = dict(job.get("metadata") or {})
            meta.pop("generateName", None)
            job["metadata"] = {**meta, "name": name}
        code_path = code
    else:
        if not isinstance(file.get("env") or {}, dict):
            raise SpecError("-f: env must be a mapping of NAME: value")
        merged_env = {**(file.get("env") or {}), **(env or {})}
        job = build_manifest(
            kind,
            name=name or file.get("name"),
            image=image or file.get("image"),
            command=as_list(command, "--command") or as_list(file.get("command"), "command"),
            args=as_list(args, "--args") or as_list(file.get("args"), "args"),
            env=merged_env,
            schedule=schedule or file.get("schedule"),
        )
        profile = profile or file.get("profile")
        code_path = code or (Path(file["code"]) if file.get("code") else None)
    body: dict[str, Any] = {"job": job}
    if profile:
        body["profile"] = profile
    if code_path is not None:
        if base_dir is not None and not code_path.is_absolute() and code is None:
            code_path = base_dir / code_path
        body["code"] = base64.b64encode(zip_code(code_path)).decode("ascii")
    return body
