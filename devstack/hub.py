"""A real JupyterHub process for the demo and the end-to-end tests.

The hub runs as its own process, configured by the repository's
``jupyterhub_config.py`` with only environment variables differing from production.
Its proxy (configurable-http-proxy) is its child; stopping the hub with SIGTERM makes
it stop the proxy, and anything still left in the process group is killed. With a
``prefix`` (a pod's ``run_prefix()``, devstack/kube/network) the hub, its proxy and its
managed services run in that pod's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "jupyterhub_config.py"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def notebook_command() -> str:
    """The single-user server of the stand-in's "notebook image" (see the Makefile)."""
    image = REPO_ROOT / ".venv-notebook" / "bin" / "jupyterhub-singleuser"
    return str(image) if image.exists() else "jupyterhub-singleuser"


def find_proxy() -> str | None:
    """configurable-http-proxy from PATH or the repository's local npm prefix."""
    local = REPO_ROOT / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


class HubProcess:
    """Start, wait for, and stop one JupyterHub process."""

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        *,
        config: Path = DEFAULT_CONFIG,
        public_url: str,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.log_path = log_path or self.workdir / "jupyterhub.log"
        self.extra_args = extra_args or []
        self.prefix = list(prefix or [])  # e.g. nsenter into a pod's network namespace
        self.proc: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        exe = Path(sys.executable).parent / "jupyterhub"
        return [
            *self.prefix,
            str(exe) if exe.exists() else "jupyterhub",
            "-f",
            str(self.config),
            *self.extra_args,
        ]

    def start(self, timeout: float = 90) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        proxy = find_proxy()
        if proxy:
            env["PATH"] = f"{Path(proxy).parent}{os.pathsep}{env.get('PATH', '')}"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.public_url}/hub/health"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterHub exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"JupyterHub did not answer {url} in {timeout}s:\n{self.log_tail()}")

    async def astart(self, timeout: float = 90) -> None:
        await asyncio.to_thread(self.start, timeout)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        proc, self.proc = self.proc, None
        # JupyterHub starts its managed services (the idle culler, the jobs service) and
        # its proxy in sessions of their own: killing the hub's group does not reach them,
        # so note them while they are still the hub's children and stop what outlives it.
        left = descendants(proc.pid) if proc is not None else {}
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        if proc is not None:
            # the proxy and anything else the hub left in its session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(5)
            self._stop_left_proxy()
            kill_survivors(left)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _stop_left_proxy(self) -> None:
        """JupyterHub starts its proxy in a session of its own: a hub that did not stop it
        in time (a loaded machine) leaves it holding the proxy's ports with its old token,
        and a hub started next on them gets 403 from it. Its pid file names it."""
        pid_file = self.workdir / "jupyterhub-proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"configurable-http-proxy" not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(50):  # gone, so its ports are free again
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            pid_file.unlink()

    async def astop(self, timeout: float = 15) -> None:
        await asyncio.to_thread(self.stop, timeout)


def start_time(pid: int) -> str | None:
    """A live process's start time (field 22 of /proc/PID/stat): a pid and its start time
    name one process, even after the pid is reused. None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process below ``root`` now, with its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        started = start_time(pid)
        if started is not None and pid not in found:
            found[pid] = started
            todo.extend(children.get(pid, ()))
    return found


def kill_survivors(processes: dict[int, str], wait: float = 5) -> None:
    """SIGKILL those of ``processes`` still alive (the same pid *and* start time), then wait
    for them to go."""
    alive = [pid for pid, started in processes.items() if start_time(pid) == started]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if start_time(pid) == processes[pid]]
        if alive:
            time.sleep(0.05)
