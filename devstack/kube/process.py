"""What a container's process looks like (argv, environment, identity) and how it runs.

The devstack has no images: a container is its ``command`` + ``args`` run as a local
process in its own process group, with a base "image" environment. Decisions are
pure functions; ``spawn``/``terminate`` are the I/O edge.

Network emulation: every pod shares the host network, so each pod gets its own
loopback address (127.N.x.y, from a random /16 per kubelet) and the bind-all address
``0.0.0.0`` in the container's command, args and env values is rewritten to that
address (``POD_IP`` is set too).
That is what lets two notebook servers on port 8888 coexist. A process that binds
all interfaces without saying ``0.0.0.0`` still binds every address. With
``KubeStandIn(network="netns")`` each pod has its own network namespace instead
(devstack/kube/network) and nothing is rewritten.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIND_ALL = re.compile(r"(?<![\d.])0\.0\.0\.0(?![\d.])")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

Lookup = Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> object or None


class ContainerConfigError(Exception):
    """The container cannot be created from its configuration (CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


class ContainerCreateError(ContainerConfigError):
    """The runtime could not create the container (CreateContainerError)."""

    reason = "CreateContainerError"


@dataclass(frozen=True)
class Identity:
    """Who the process runs as; ``uid`` None means the kubelet's own user."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()


@dataclass
class Launch:
    """Everything needed to start one container process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    identity: Identity
    mounts: list[dict[str, Any]] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    netns: str | None = None  # network namespace to enter first (network="netns" mode)


# -- $(VAR) expansion, as Kubernetes does it -------------------------------
def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace ``$(VAR)`` by its value when defined; ``$$`` escapes a ``$``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            out.append(env[name] if name in env else f"$({name})")
            i = close + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def rewrite_bind_all(text: str, pod_ip: str) -> str:
    """``0.0.0.0`` -> the pod's loopback address (see the module docstring)."""
    return BIND_ALL.sub(pod_ip, text)


# -- environment -------------------------------------------------------------
NOTEBOOK_VENV_BIN = Path(__file__).resolve().parents[2] / ".venv-notebook" / "bin"


def image_path(notebook_bin: Path = NOTEBOOK_VENV_BIN) -> str:
    """The "image's" PATH: the notebook venv's bin dir first when it exists (see the
    Makefile), then the kubelet's own interpreter's, then the kubelet's PATH.

    Containers run as the person's uid: the dev venv's ``python`` links into the
    operator's home (e.g. /root/.pyenv), which other uids cannot enter, so ``python``
    in a notebook or job must resolve to the notebook venv's, whose interpreter is the
    system's.
    """
    first = [str(notebook_bin)] if notebook_bin.is_dir() else []
    parts = [*first, str(Path(sys.executable).parent)]
    for p in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep):
        if p and p not in parts:
            parts.append(p)
    return os.pathsep.join(parts)


def home_for(uid: int | None) -> str:
    """HOME as a container runtime sets it: the passwd entry's, else "/"."""
    if uid is None or uid == os.geteuid():
        return os.environ.get("HOME") or _passwd_home(os.geteuid()) or "/"
    return _passwd_home(uid) or "/"


def _passwd_home(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def base_environment(pod_name: str, uid: int | None) -> dict[str, str]:
    """The "image" environment every container starts from."""
    return {
        "PATH": image_path(),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": home_for(uid),
        "HOSTNAME": pod_name,
    }


def _decode(data: dict[str, str] | None) -> dict[str, str]:
    out = {}
    for k, v in (data or {}).items():
        out[k] = base64.b64decode(v).decode("utf-8", "surrogateescape")
    return out


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = _decode(secret.get("data"))
    values.update(secret.get("stringData") or {})
    return values


def configmap_values(cm: dict[str, Any]) -> dict[str, str]:
    values = dict(cm.get("data") or {})
    values.update(_decode(cm.get("binaryData")))
    return values


def field_value(pod: dict[str, Any], path: str, pod_ip: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def _key_ref(
    ref: dict[str, Any], kind: str, namespace: str, lookup: Lookup, values: Callable
) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = lookup(namespace, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    vals = values(obj)
    if key not in vals:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return vals[key]


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    pod_ip: str,
    uid: int | None,
    get_secret: Lookup,
    get_configmap: Lookup,
    *,
    bind_all: str | None = None,
) -> dict[str, str]:
    """The process environment: image base, envFrom, env (in order, with $(VAR)), POD_IP.

    Raises ContainerConfigError (like the real kubelet) for a missing required
    Secret/ConfigMap or key. ``bind_all``: what 0.0.0.0 becomes (default the pod IP).
    """
    ns = pod.get("metadata", {}).get("namespace", "default")
    env = base_environment(pod.get("metadata", {}).get("name", ""), uid)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for ref_key, kind, lookup, values in (
            ("secretRef", "Secret", get_secret, secret_values),
            ("configMapRef", "ConfigMap", get_configmap, configmap_values),
        ):
            ref = source.get(ref_key)
            if ref is None:
                continue
            obj = lookup(ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for k, v in values(obj).items():
                if ENV_NAME.match(prefix + k):
                    env[prefix + k] = v
    for item in container.get("env") or []:
        name = item.get("name", "")
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), env)
            continue
        vf = item["valueFrom"] or {}
        value: str | None
        if "secretKeyRef" in vf:
            value = _key_ref(vf["secretKeyRef"], "Secret", ns, get_secret, secret_values)
        elif "configMapKeyRef" in vf:
            value = _key_ref(
                vf["configMapKeyRef"], "ConfigMap", ns, get_configmap, configmap_values
            )
        elif "fieldRef" in vf:
            value = field_value(pod, vf["fieldRef"].get("fieldPath", ""), pod_ip)
        elif "resourceFieldRef" in vf:
            value = _resource_value(container, vf["resourceFieldRef"])
        else:
            raise ContainerConfigError(f"unsupported valueFrom for env {name}")
        if value is not None:
            env[name] = value
    env = {k: rewrite_bind_all(v, bind_all or pod_ip) for k, v in env.items()}
    env["POD_IP"] = pod_ip
    return env


def _resource_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    section, _, res = ref.get("resource", "").partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(res)
    return str(value) if value is not None else "0"


def container_argv(
    container: dict[str, Any], env: Mapping[str, str], pod_ip: str, *, bind_all: str | None = None
) -> list[str]:
    """command + args with $(VAR) expanded and 0.0.0.0 rewritten (to ``bind_all`` or pod_ip).

    There is no image entrypoint: when ``command`` is empty, ``args`` is the command;
    when both are empty the container cannot be created.
    """
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    argv = command + args
    if not argv:
        raise ContainerCreateError(
            "no command specified: the devstack kubelet runs command + args and has no "
            "image entrypoint"
        )
    return [rewrite_bind_all(expand(a, env), bind_all or pod_ip) for a in argv]


def resolve_executable(argv0: str, env: Mapping[str, str]) -> str | None:
    """Where exec would find ``argv0``, or None (a StartError, as from the runtime)."""
    if "/" in argv0:
        return argv0 if os.access(argv0, os.X_OK) else None
    return shutil.which(argv0, path=env.get("PATH", ""))


# -- identity ----------------------------------------------------------------
def identity(pod: dict[str, Any], container: dict[str, Any]) -> Identity:
    """uid/gid/groups from the pod and container securityContext (container wins).

    ``runAsNonRoot`` with uid 0 or no uid fails like the real kubelet (the image
    would run as root).
    """
    psc = pod.get("spec", {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return csc[key] if csc.get(key) is not None else psc.get(key)

    uid, gid, non_root = pick("runAsUser"), pick("runAsGroup"), pick("runAsNonRoot")
    if non_root and not uid:
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")
    if uid is not None and gid is None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = 0
    groups = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        groups.append(int(psc["fsGroup"]))
    if gid is not None and groups:
        groups.insert(0, int(gid))
    return Identity(
        uid=int(uid) if uid is not None else None,
        gid=int(gid) if gid is not None else None,
        groups=tuple(dict.fromkeys(groups)),
    )


# -- running -----------------------------------------------------------------
SHIM = Path(__file__).with_name("shim.py")


def shim_argv(launch: Launch) -> list[str]:
    """argv for a container in a private mount namespace (see shim.py)."""
    import json

    spec = {
        "argv": launch.argv,
        "cwd": launch.cwd,
        "uid": launch.identity.uid,
        "gid": launch.identity.gid,
        "groups": list(launch.identity.groups),
        "mounts": launch.mounts,
        "protected": launch.protected,
    }
    # network="netns": enter the pod's network namespace as root, before the uid drop
    netns = ["nsenter", f"--net={launch.netns}", "--"] if launch.netns else []
    return [
        *netns,
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-I",
        str(SHIM),
        json.dumps(spec),
    ]


class Container:
    """A started container process: ``pid``, ``returncode`` and ``wait()`` as an
    ``asyncio.subprocess.Process`` has them, the exit noticed through a pidfd (or, where
    there is none, a waiting thread) so that nothing blocks the stand-in's loop."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen
        self.pid = popen.pid
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): a thread waits
            thread = threading.Thread(target=self._wait_in_thread, args=(loop,), daemon=True)
            thread.start()
        else:
            loop.add_reader(self._pidfd, self._on_exit, loop)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _on_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._done(self._popen.wait())

    def _wait_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        code = self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._done, code)

    def _done(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def wait(self) -> int:
        """The exit status (negative: the signal), once the process has ended."""
        return await asyncio.shield(self._exited)


def _popen(
    argv: list[str], log_path: Path, env: Mapping[str, str], cwd: str, **kwargs: Any
) -> subprocess.Popen:
    with open(log_path, "ab", buffering=0) as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **kwargs,
        )


def lower_priority(pid: int, nice: int) -> None:
    """Give a session leader's whole session (its scheduler autogroup) and the process
    itself the ``nice`` value: with autogroups, a process's nice value alone weighs only
    against its own session's, and each container is a session of its own. A process
    already gone is fine."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)


async def spawn(
    launch: Launch, log_path: Path, *, namespaced: bool, nice: int | None = None
) -> Container:
    """Start the process in its own process group, stdout+stderr appended to ``log_path``;
    with ``nice``, at that CPU priority (:func:`lower_priority`) from its first steps on.

    The fork and exec run in a worker thread: on the stand-in's loop they held up every
    API request for 5 to 30 ms each time a container started (a spawn's S3 Secret,
    created right after its pod, waited for the pod's process), where a real API server
    never waits for a kubelet on another machine.
    """
    kwargs: dict[str, Any] = {}
    if namespaced:
        argv = shim_argv(launch)
        cwd = "/"
    else:
        argv, cwd = launch.argv, launch.cwd
        ident = launch.identity
        if os.geteuid() == 0 and ident.uid is not None:
            kwargs["user"] = ident.uid
            kwargs["group"] = ident.gid if ident.gid is not None else 0
            kwargs["extra_groups"] = list(ident.groups)

    def start() -> subprocess.Popen:
        popen = _popen(argv, log_path, launch.env, cwd, **kwargs)
        if nice is not None:
            lower_priority(popen.pid, nice)
        return popen

    return Container(await asyncio.to_thread(start))


def signal_group(pid: int, sig: int) -> None:
    """Signal a container's whole process group; gone groups are fine."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def terminate(proc: Container, grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL; reaps the process."""
    if proc.returncode is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(grace, 0))
        except TimeoutError:
            pass
    signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


# what the kubelet keeps of a termination message (pkg/kubelet/container: 4 KiB from the
# file; with FallbackToLogsOnError, the log's last 80 lines, at most 2 KiB)
MAX_TERMINATION_MESSAGE = 4096
MAX_FALLBACK_LINES = 80
MAX_FALLBACK_BYTES = 2048


def termination_message(
    container: dict[str, Any], exit_code: int, file_text: bytes | None, log_tail: bytes
) -> str | None:
    """``state.terminated.message`` as the kubelet writes it: the termination message
    file's content; with ``terminationMessagePolicy: FallbackToLogsOnError``, when that
    is empty and the container failed, the end of its log. None: no message.

    The stand-in does not mount a file at ``terminationMessagePath`` (its containers
    see the host's /dev), so ``file_text`` is None there and only the fallback applies.
    """
    text = (file_text or b"")[:MAX_TERMINATION_MESSAGE]
    if not text.strip() and exit_code != 0:
        if container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = log_tail.splitlines(keepends=True)[-MAX_FALLBACK_LINES:]
            text = b"".join(lines)[-MAX_FALLBACK_BYTES:]
    decoded = text.decode("utf-8", "replace")
    return decoded if decoded.strip() else None


def exit_code(returncode: int) -> int:
    """A container exit code: signals become 128 + signal number."""
    return 128 - returncode if returncode < 0 else returncode
