"""What every scenario shares: the machine and versions, statistics, the stand-ins
seeded with extra users, a real hub on the production configuration (plus the
benchmark instrumentation of ``hub_config.py``), logins over HTTP, and RSS from /proc.
"""

from __future__ import annotations

import contextlib
import functools
import html
import os
import platform
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import httpx

from benchmarks.looplag import read_records, summarize
from devstack.hub import HubProcess, free_port, notebook_command
from devstack.stack import DEMO_STORAGE, DemoStorage, DevStack

HERE = Path(__file__).resolve().parent
BENCH_CONFIG = HERE / "hub_config.py"
PRODUCTION_CONFIG = HERE.parent / "jupyterhub_config.py"
PACKAGES = ("jupyterhub", "jupyterhub-kubespawner", "oauthenticator", "valeria-hub")


# -- the machine ----------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """Core count, load and versions: printed with every scenario's figures."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "versions": versions,
    }


# -- statistics -----------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); 0.0 for no values. Pure."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, Any]:
    """Percentiles and max of durations given in seconds, as milliseconds. Pure."""
    out: dict[str, Any] = {"n": len(seconds)}
    for p in points:
        out[f"p{p}_ms"] = round(percentile(seconds, p) * 1000, 1)
    out["max_ms"] = round(max(seconds, default=0.0) * 1000, 1)
    return out


def median(values: list[float]) -> float:
    return percentile(values, 50)


# -- processes ------------------------------------------------------------------------
def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (VmRSS), in MiB; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, its living descendants and the children they reaped."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        todo += children(p)
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (/proc/stat), every process included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def child_matching(pid: int, needle: str) -> int | None:
    """The first child of ``pid`` whose command line contains ``needle``."""
    for child in children(pid):
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                return child
    return None


# -- the stand-ins --------------------------------------------------------------------
def bench_users(n: int, prefix: str = "u", first_uid: int = 20000) -> list[DemoStorage]:
    """``n`` provisioned users (uid, gid, S3 keys) besides the demo ones. Pure."""
    return [
        DemoStorage(
            f"{prefix}{i:04d}",
            first_uid + i,
            first_uid + i,
            f"BENCHKEY{i:012d}",
            f"bench-secret-{i:012d}",
        )
        for i in range(n)
    ]


def seeded_stack(workdir: Path, users: list[DemoStorage] = (), **kube_options: Any) -> DevStack:
    """The DevStack stand-ins, not started, with ``users`` added to the realm; starting
    provisions them in Vault and gives them NFS directories, as onboarding would."""
    stack = DevStack(
        workdir / "state",
        storage=[*DEMO_STORAGE, *users],
        kube_options=kube_options,
        openshift=True,
    )
    for u in users:
        stack.keycloak.add_user(
            username=u.username,
            password=u.username,
            email=f"{u.username}@bench.example",
            realm_roles=["hub-user"],
            enabled=True,
        )
    return stack


@contextlib.contextmanager
def bench_stack(
    workdir: Path, users: list[DemoStorage] = (), **kube_options: Any
) -> Iterator[DevStack]:
    """The seeded stand-ins (:func:`seeded_stack`), each in its own thread of this
    process (``benchmarks.standins`` runs them in a process of their own)."""
    stack = seeded_stack(workdir, users, **kube_options)
    with stack.serve_in_threads():
        yield stack


class StandIns(Protocol):
    """What a bench hub needs of the stand-ins, whether they serve in this process
    (:class:`DevStack`) or in their own (``benchmarks.standins.StandInsProcess``)."""

    def allow_redirects_to(self, public_url: str) -> None: ...

    def hub_environment(
        self,
        *,
        public_url: str,
        hub_port: int,
        proxy_api_port: int,
        singleuser_cmd: str | None = None,
        namespace: str = "default",
    ) -> dict[str, str]: ...


@dataclass
class BenchHub:
    hub: HubProcess
    token: str
    looplag: Path

    @property
    def url(self) -> str:
        return self.hub.public_url

    def api(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client of the hub's REST API with the bench service's token."""
        return httpx.AsyncClient(
            base_url=f"{self.url}/hub/api",
            headers={"Authorization": f"token {self.token}"},
            timeout=kwargs.pop("timeout", 60),
            verify=kwargs.pop("verify", tls_context()),
            **kwargs,
        )

    def loop_stalls(self, since: float, until: float | None = None) -> dict[str, Any]:
        return summarize(read_records(self.looplag, since, until))

    @property
    def pid(self) -> int:
        assert self.hub.proc is not None
        return self.hub.proc.pid


@contextlib.contextmanager
def bench_hub(
    stack: StandIns,
    workdir: Path,
    *,
    namespace: str = "default",
    singleuser_cmd: str | None = None,
    public_url: str | None = None,
    **extra_env: str,
) -> Iterator[BenchHub]:
    """A real JupyterHub on the production config (+ bench instrumentation)."""
    workdir.mkdir(parents=True, exist_ok=True)
    public = public_url or f"http://127.0.0.1:{free_port()}"
    stack.allow_redirects_to(public)
    env = stack.hub_environment(
        public_url=public,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        singleuser_cmd=singleuser_cmd or notebook_command(),
        namespace=namespace,
    )
    token = secrets.token_hex(24)
    looplag = workdir / "looplag.jsonl"
    env.update(
        VALERIA_BENCH_BASE_CONFIG=str(PRODUCTION_CONFIG),
        VALERIA_BENCH_TOKEN=token,
        VALERIA_BENCH_LOOPLAG=str(looplag),
        **extra_env,
    )
    hub = HubProcess(env, workdir, config=BENCH_CONFIG, public_url=public)
    hub.start(timeout=120)
    try:
        yield BenchHub(hub, token, looplag)
    finally:
        hub.stop()


# -- people ---------------------------------------------------------------------------
_FORM_ACTION = re.compile(r'<form id="kc-form-login"[^>]*?action="([^"]+)"', re.S)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification, made once: each ``httpx.AsyncClient()`` otherwise
    loads the whole CA bundle (~0.2 s of CPU on a busy machine), 1,000 times in a rush."""
    return ssl.create_default_context()


def user_client(timeout: float = 120) -> httpx.AsyncClient:
    """A person's browser: cookies, redirects followed."""
    return httpx.AsyncClient(follow_redirects=True, timeout=timeout, verify=tls_context())


async def login(client: httpx.AsyncClient, hub_url: str, username: str) -> httpx.Response:
    """Log in as a browser would, without one: hub -> Keycloak form -> hub."""
    resp = await client.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
    match = _FORM_ACTION.search(resp.text)
    if match is None:  # an SSO session exists already
        return resp
    action = html.unescape(match.group(1))
    return await client.post(action, data={"username": username, "password": username})


def xsrf_headers(client: httpx.AsyncClient, hub_url: str) -> dict[str, str]:
    """What the hub's pages send with API calls made with the session cookie."""
    token = client.cookies.get("_xsrf", path="/hub/") or ""
    return {"X-XSRFToken": token, "Referer": f"{hub_url}/hub/home"}


async def wait_progress(
    client: httpx.AsyncClient, hub_url: str, user: str, headers: dict[str, str]
) -> dict[str, Any]:
    """Follow the spawn's progress stream to its last event (ready or failed)."""
    import json

    last: dict[str, Any] = {}
    async with client.stream(
        "GET",
        f"{hub_url}/hub/api/users/{user}/server/progress",
        headers={"Accept": "text/event-stream", **headers},
    ) as resp:
        if resp.status_code != 200:
            return {"failed": True, "message": f"progress HTTP {resp.status_code}"}
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
                if last.get("ready") or last.get("failed"):
                    break
    return last


def monotonic() -> float:
    return time.perf_counter()
