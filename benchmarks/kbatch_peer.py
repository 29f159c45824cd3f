"""kbatch-proxy 0.4.2, the peer of the jobs scenario, run as its own deployment would be.

It lives in a virtualenv of its own (``make .venv-kbatch-proxy/.installed``: it needs
``kubernetes<36`` and pydantic 1), is registered as an external service ``kbatch`` on the
same hub (``VALERIA_BENCH_KBATCH``, read by ``hub_config.py``), is reached through the
same proxy at ``/services/kbatch/`` with the same user's hub token, and calls the same
Kubernetes stand-in with a token of its own. Its Helm chart gives it a ClusterRole over
namespaces, jobs, pods and configmaps everywhere; here that is a cluster-admin token.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from devstack.hub import free_port
from devstack.kube.kubeconfig import write_kubeconfig

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-kbatch-proxy"
VERSION = "0.4.2"
KUBE_TOKEN = "kbatch-proxy-bench-token"
KUBE_IDENTITY = {"user": "system:serviceaccount:kbatch:kbatch-proxy", "admin": True}
SERVICE = "kbatch"
PREFIX = f"/services/{SERVICE}"


class PeerMissing(RuntimeError):
    """kbatch-proxy is not installed where the benchmark looks for it."""


def python() -> Path:
    """The peer's interpreter, or PeerMissing naming the make target that installs it."""
    exe = VENV / "bin" / "python"
    if not (VENV / ".installed").exists() or not exe.exists():
        raise PeerMissing(
            f"kbatch-proxy {VERSION} is not installed: run `make {VENV.name}/.installed`"
        )
    return exe


def hub_environment(url: str, api_token: str) -> dict[str, str]:
    """What the bench hub needs to register the peer as an external service."""
    return {"VALERIA_BENCH_KBATCH": json.dumps({"url": url, "api_token": api_token})}


@contextlib.contextmanager
def running(workdir: Path, kube_url: str, hub_api_url: str, api_token: str) -> Iterator[str]:
    """kbatch-proxy under uvicorn on a free port (its URL); stopped on exit.

    Started before the hub knows it (the hub only routes to it); its settings come from
    the environment as its Helm chart gives them.
    """
    exe = python()
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = write_kubeconfig(workdir / "kubeconfig", kube_url, KUBE_TOKEN)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "KUBECONFIG": str(kubeconfig),
        "JUPYTERHUB_API_TOKEN": api_token,
        "JUPYTERHUB_API_URL": hub_api_url,
        "KBATCH_PREFIX": PREFIX,
        "KBATCH_INIT_LOGGING": "false",
        "KBATCH_SETTINGS_PATH": str(workdir / "kbatch.env"),  # not a .env of the cwd
    }
    log = (workdir / "kbatch-proxy.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "-m", "uvicorn", "kbatch_proxy.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"kbatch-proxy exited with {proc.returncode}: "
                    + (workdir / "kbatch-proxy.log").read_text()[-800:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}{PREFIX}/", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("kbatch-proxy did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
