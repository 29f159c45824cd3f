"""The devstack kubelet: schedules pods onto its node and runs them as local processes.

It watches pods in the store like a real kubelet watches the API server: a new pod
without ``spec.nodeName`` is assigned to this node (acting as the scheduler), and each
pod of this node gets a loopback pod IP and a worker that runs its init containers,
then its containers, and writes ``status`` back. See process.py for the process model
and the 0.0.0.0 rewrite, volumes.py for volumes, shim.py for mount namespaces.

Deletion: when the API sets ``metadata.deletionTimestamp`` the kubelet sends SIGTERM
to every container's process group, waits up to ``deletionGracePeriodSeconds``, sends
SIGKILL, then deletes the pod from the store. A pod deleted from the store directly is
killed at once. The pod's directories (emptyDir, configMap/secret files, logs) go
with the pod; nfs and pvc data stay.

Isolation: running as root with a working ``unshare``, each container gets a private
mount namespace with its volumes bind-mounted at their mountPaths, and runs as its
securityContext's uid/gid. Otherwise (not root) the kubelet warns once and hands each
mount's host directory to the process in ``VALERIA_MOUNT_<VOLUME_NAME>`` (the working
directory is mapped through the mounts too); readOnly is then not enforced.

Network: by default each pod gets a loopback pod IP in the host's network namespace.
With a ``podnet`` (``KubeStandIn(network="netns")``, devstack/kube/network) each pod
gets its own network namespace, address and NetworkPolicy enforcement instead; its
containers enter the namespace (nsenter) before the shim, and probes come from the
node's probe address.

Exit: a terminated container's status carries its termination message like the real
kubelet's (``terminationMessagePolicy: FallbackToLogsOnError``: the end of its log when
it failed; process.termination_message). No file is mounted at terminationMessagePath.

Kubelet restart: ``stop()`` kills everything it started; a new Kubelet on the same
store treats containers that were running as terminated (exit 255, reason Unknown,
like after a node restart) and restarts them according to restartPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import shutil
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import process as proc_mod
from .events import record_event
from .podstatus import ContainerRun, pod_conditions, pull_policy, qos_class
from .store import Event, Gone, NotFound, Store, now_iso
from .volumes import VolumeError, host_path_for, mount_env, mount_plan, prepare_volumes

if TYPE_CHECKING:
    from .network import PodNetwork

log = logging.getLogger(__name__)

PODS = "v1/pods"
_CHUNK = 64 * 1024


class Kubelet:
    """Runs the pods of one node; see the module docstring."""

    def __init__(
        self,
        store: Store,
        *,
        root: Path,
        nfs_root: Path | None = None,
        node_name: str = "devstack-node",
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        config_retry: float = 2.0,
        shutdown_grace: float = 2.0,
        pod_network: str | None = None,
        isolate: bool | None = None,
        podnet: PodNetwork | None = None,
        schedule_delay: float = 0.05,
        container_nice: int | None = None,
    ) -> None:
        self.store = store
        # the containers' CPU priority on this machine (their session's autogroup and
        # nice value), or None to leave it: the morning-rush benchmark gives 19, as in a
        # cluster pods start on other nodes than the control plane it measures
        self.container_nice = container_nice
        # seconds between a pod's creation and its scheduling here. A real scheduler and
        # kubelet are other processes, on other machines, and take longer than this; here
        # they share the API server's loop, and acting at once held up the requests that
        # follow a pod's creation (a spawn's S3 Secret waited for its pod's start)
        self.schedule_delay = schedule_delay
        self.root = Path(root)
        self.nfs_root = Path(nfs_root) if nfs_root is not None else self.root / "nfs"
        self.node_name = node_name
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.config_retry = config_retry
        self.shutdown_grace = shutdown_grace
        # a random /16 of the loopback range, so that stand-ins running side by side
        # (parallel test runs) never hand out the same pod IP
        if pod_network is None:
            pod_network = f"127.{random.randint(16, 250)}.0.0/16"
        self.network = ipaddress.ip_network(pod_network)
        self._isolate = isolate
        self.podnet = podnet  # network="netns": per-pod network namespaces (network/)
        self.namespaced = False
        self.unshare: str | None = None
        self.stopping = False
        self._workers: dict[str, PodWorker] = {}
        self._ips: dict[str, str] = {}
        self._next_ip = 0
        self._watch_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._warned = False

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """List pods, adopt this node's, then watch for changes."""
        (self.root / "pods").mkdir(parents=True, exist_ok=True)
        self.namespaced = await self._probe_isolation()
        if self.podnet is not None and not self.namespaced:
            raise RuntimeError(
                "devstack kubelet: network='netns' needs root and unshare (containers enter "
                "their network namespace before dropping to their uid)"
            )
        if not self.namespaced and not self._warned:
            self._warned = True
            log.warning(
                "devstack kubelet: no private mount namespaces (not root or no unshare); "
                "volumes are exposed as VALERIA_MOUNT_<NAME> host paths, runAsUser is %s",
                "honoured" if os.geteuid() == 0 else "ignored",
            )
        pods, rv = self.store.list(PODS)
        for pod in pods:
            ip = pod.get("status", {}).get("podIP")
            if ip and pod.get("spec", {}).get("nodeName") == self.node_name:
                if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                    self._ips.setdefault(pod["metadata"]["uid"], ip)
        for pod in pods:
            self._handle("ADDED", pod)
        self._watch_task = asyncio.create_task(self._watch(rv))

    async def stop(self) -> None:
        """Stop watching and kill every process this kubelet started."""
        self.stopping = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        workers = list(self._workers.values())
        await asyncio.gather(*(w.shutdown(self.shutdown_grace) for w in workers))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._workers.clear()
        self._ips.clear()

    async def _probe_isolation(self) -> bool:
        if self._isolate is False or os.geteuid() != 0:
            return False
        self.unshare = shutil.which("unshare")
        if not self.unshare:
            return False
        try:
            p = await asyncio.create_subprocess_exec(
                self.unshare, "--mount", "--propagation", "private", "true",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            return await asyncio.wait_for(p.wait(), 10) == 0
        except (OSError, TimeoutError):
            return False

    async def _watch(self, rv: int) -> None:
        while not self.stopping:
            try:
                async for event in self.store.watch(PODS, None, rv):
                    rv = event.rv
                    self._on_event(event)
            except Gone:
                pods, rv = self.store.list(PODS)
                for pod in pods:
                    self._handle("MODIFIED", pod)
            except Exception:  # noqa: BLE001 - one bad pod must not stop the node
                log.exception("devstack kubelet: error handling a pod event")

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- events -----------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self._handle(event.type, event.obj)

    def _handle(self, type_: str, pod: dict[str, Any]) -> None:
        meta, spec = pod.get("metadata", {}), pod.get("spec", {})
        uid = meta.get("uid", "")
        worker = self._workers.get(uid)
        if type_ == "DELETED":
            if worker is not None:
                self._spawn(worker.kill_now())
            elif spec.get("nodeName") == self.node_name:
                self._remove_dirs(uid)
            return
        node = spec.get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp") and spec.get("schedulerName") in (
                None,
                "default-scheduler",
            ):
                asyncio.get_running_loop().call_later(self.schedule_delay, self._schedule, pod)
            return
        if node != self.node_name:
            return
        if worker is not None:
            worker.observe(pod)
            return
        if meta.get("deletionTimestamp"):
            # nothing of ours runs for it (finished, or never started): delete at once
            self._finish_delete(meta.get("namespace", ""), meta.get("name", ""), uid)
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self, pod)
        self._workers[uid] = worker
        worker.start()

    def _schedule(self, pod: dict[str, Any]) -> None:
        if self.stopping:
            return
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        try:
            current = self.store.get(PODS, ns, name)
        except NotFound:
            return
        if current["metadata"].get("uid") != meta.get("uid") or current["spec"].get("nodeName"):
            return
        current["spec"]["nodeName"] = self.node_name
        status = current.setdefault("status", {})
        status.setdefault("phase", "Pending")
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_iso(),
            }
        )
        status["conditions"] = conds
        updated = self.store.update(PODS, ns, current, check_rv=False, bump_generation=False)
        record_event(
            self.store, updated, "Scheduled",
            f"Successfully assigned {ns}/{name} to {self.node_name}",
            component="default-scheduler", kind="Pod", api_version="v1",
        )  # fmt: skip

    def _finish_delete(self, ns: str, name: str, uid: str) -> None:
        try:
            current = self.store.get(PODS, ns, name)
            if current["metadata"].get("uid") == uid:
                self.store.delete(PODS, ns, name)
        except NotFound:
            pass
        self._remove_dirs(uid)

    def _remove_dirs(self, uid: str) -> None:
        if uid:
            shutil.rmtree(self.root / "pods" / uid, ignore_errors=True)

    # -- pod IPs -------------------------------------------------------------------
    def allocate_ip(self, uid: str, preferred: str | None = None) -> str:
        """A loopback address unique among live pods (never 127.0.0.1)."""
        if uid in self._ips:
            return self._ips[uid]
        used = set(self._ips.values())
        if preferred and preferred not in used and ipaddress.ip_address(preferred) in self.network:
            self._ips[uid] = preferred
            return preferred
        size = self.network.num_addresses
        for _ in range(size):
            self._next_ip = self._next_ip % (size - 2) + 1
            ip = str(self.network.network_address + self._next_ip)
            if ip not in used and ip != "127.0.0.1" and not ip.endswith((".0", ".255")):
                self._ips[uid] = ip
                return ip
        raise RuntimeError("devstack kubelet: pod network exhausted")

    def release_ip(self, uid: str) -> None:
        self._ips.pop(uid, None)
        if self.podnet is not None:  # network="netns"
            self.podnet.release(uid)

    # -- logs ------------------------------------------------------------------------
    def _log_dir(self, uid: str, container: str) -> Path:
        return self.root / "pods" / uid / "logs" / container

    def _log_files(self, uid: str, container: str) -> list[Path]:
        d = self._log_dir(uid, container)
        try:
            files = [p for p in d.iterdir() if p.suffix == ".log" and p.stem.isdigit()]
        except FileNotFoundError:
            return []
        return sorted(files, key=lambda p: int(p.stem))

    def _locate(
        self, namespace: str, pod: str, container: str | None, previous: bool
    ) -> tuple[dict[str, Any], str, Path]:
        obj = self.store.get(PODS, namespace, pod)
        name = pick_container(obj, container)
        files = self._log_files(obj["metadata"]["uid"], name)
        if previous:
            if len(files) < 2:
                raise KeyError(f'previous terminated container "{name}" in pod "{pod}" not found')
            return obj, name, files[-2]
        if not files:
            raise KeyError(waiting_message(obj, name))
        return obj, name, files[-1]

    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        tail_lines: int | None = None,
        *,
        previous: bool = False,
    ) -> bytes:
        """A container's log (stdout and stderr interleaved).

        Raises NotFound (no such pod), KeyError (no log yet; the message is the real
        API's "is waiting to start" text) or ValueError (container not named / not
        in the pod: a 400 in the real API).
        """
        _, _, path = self._locate(namespace, pod, container, previous)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        return tail(data, tail_lines)

    async def follow_log(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        tail_lines: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Yield the log as it is written; ends when that container instance ends."""
        obj, name, path = self._locate(namespace, pod, container, False)
        uid, instance = obj["metadata"]["uid"], int(path.stem)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        offset = len(data)
        data = tail(data, tail_lines)
        if data:
            yield data
        while True:
            running = self._instance_running(uid, name, instance)
            try:
                with open(path, "rb") as f:  # noqa: ASYNC230 - a local log file
                    f.seek(offset)
                    chunk = f.read(_CHUNK)
            except FileNotFoundError:
                return
            if chunk:
                offset += len(chunk)
                yield chunk
                continue
            if not running:
                return
            await asyncio.sleep(0.05)

    def _instance_running(self, uid: str, container: str, instance: int) -> bool:
        worker = self._workers.get(uid)
        if worker is None or worker.deleted:
            return False
        run = worker.runs.get(container)
        return bool(run and run.live and run.instance == instance)


def tail(data: bytes, lines: int | None) -> bytes:
    """The last ``lines`` lines of ``data`` (a final unterminated line counts)."""
    if lines is None:
        return data
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def pick_container(pod: dict[str, Any], container: str | None) -> str:
    """The container a log request means, with the real API's 400 messages."""
    spec, name = pod.get("spec", {}), pod["metadata"]["name"]
    mains = [c.get("name", "") for c in spec.get("containers") or []]
    inits = [c.get("name", "") for c in spec.get("initContainers") or []]
    if container is None:
        if len(mains) == 1:
            return mains[0]
        msg = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]"
        )
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise ValueError(msg)
    if container not in mains and container not in inits:
        raise ValueError(f"container {container} is not valid for pod {name}")
    return container


def waiting_message(pod: dict[str, Any], container: str) -> str:
    status = pod.get("status", {})
    reason = "ContainerCreating"
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if s.get("name") == container:
            reason = (s.get("state") or {}).get("waiting", {}).get("reason", reason)
    name = pod["metadata"]["name"]
    return f'container "{container}" in pod "{name}" is waiting to start: {reason}'


class PodWorker:
    """Runs one pod: volumes, init containers in order, then every container."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.k = kubelet
        self.pod = pod
        meta, spec = pod["metadata"], pod.get("spec", {})
        self.ns, self.name, self.uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        self.dir = kubelet.root / "pods" / self.uid
        self.policy = spec.get("restartPolicy") or "Always"
        status = pod.get("status") or {}
        prev_init = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
        prev_main = {s.get("name"): s for s in status.get("containerStatuses") or []}
        init_specs = spec.get("initContainers") or []
        self.specs = {c.get("name", ""): c for c in init_specs + (spec.get("containers") or [])}
        self.inits = [
            ContainerRun.from_spec(
                c, init=True, previous=prev_init.get(c.get("name")), waiting="PodInitializing"
            )
            for c in init_specs
        ]
        waiting = "PodInitializing" if init_specs else "ContainerCreating"
        self.mains = [
            ContainerRun.from_spec(
                c, init=False, previous=prev_main.get(c.get("name")), waiting=waiting
            )
            for c in spec.get("containers") or []
        ]
        self.runs = {r.name: r for r in self.inits + self.mains}
        self.procs: dict[str, proc_mod.Container] = {}
        self.start_time = status.get("startTime")
        self.pod_ip = ""
        self.initialized = not init_specs
        self.init_failed = False
        self.phase = "Pending"
        self.terminating = False
        self.deleted = False
        self.quiet = False  # no more status writes (kubelet stopping / pod gone)
        self.volume_paths: dict[str, Path] = {}
        self.task: asyncio.Task | None = None
        self._probes: dict[str, asyncio.Task] = {}
        self._term_task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    # -- store access ------------------------------------------------------------------
    def _lookup(self, resource: str):  # noqa: ANN202
        def get(ns: str, name: str) -> dict[str, Any] | None:
            try:
                return self.k.store.get(resource, ns, name)
            except NotFound:
                return None

        return get

    def event(
        self, reason: str, message: str, *, type_: str = "Normal", run: ContainerRun | None = None
    ) -> None:
        if self.quiet:
            return
        field_path = None
        if run is not None:
            field_path = f"spec.{'initContainers' if run.init else 'containers'}{{{run.name}}}"
        record_event(
            self.k.store, self.pod, reason, message, type=type_, component="kubelet",
            host=self.k.node_name, field_path=field_path, kind="Pod", api_version="v1",
        )  # fmt: skip

    def observe(self, pod: dict[str, Any]) -> None:
        """A newer version of the pod: react to a graceful deletion request."""
        self.pod = pod
        meta = pod.get("metadata", {})
        if meta.get("deletionTimestamp") and self._term_task is None:
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
            self._term_task = self.k._spawn(self.terminate(float(grace)))

    # -- status --------------------------------------------------------------------------
    def compute_phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        if self.mains and all(r.final for r in self.mains):
            ok = all(r.state.get("terminated", {}).get("exitCode") == 0 for r in self.mains)
            return "Succeeded" if ok else "Failed"
        if any(r.started or r.restart_count or "terminated" in r.state for r in self.mains):
            return "Running"
        return "Pending"

    def write_status(self) -> None:
        if self.quiet or self.deleted:
            return
        self.phase = self.compute_phase()

        def apply(pod: dict[str, Any]) -> None:
            old = pod.get("status") or {}
            now = now_iso()
            status = dict(old)
            status.update(
                {
                    "phase": self.phase,
                    "hostIP": "127.0.0.1",
                    "hostIPs": [{"ip": "127.0.0.1"}],
                    "qosClass": qos_class(pod),
                    "conditions": pod_conditions(
                        old.get("conditions") or [],
                        phase=self.phase,
                        initialized=self.initialized,
                        inits=self.inits,
                        mains=self.mains,
                        now=now,
                    ),  # fmt: skip
                    "containerStatuses": [r.status() for r in self.mains],
                }
            )
            if self.pod_ip:
                status["podIP"] = self.pod_ip
                status["podIPs"] = [{"ip": self.pod_ip}]
            if self.start_time:
                status["startTime"] = self.start_time
            if self.inits:
                status["initContainerStatuses"] = [r.status() for r in self.inits]
            if status != old:
                pod["status"] = status
                self._changed = True

        try:
            self._changed = False
            current = self.k.store.get(PODS, self.ns, self.name)
            if current["metadata"].get("uid") != self.uid:
                return
            apply(current)
            if self._changed:
                self.pod = self.k.store.update(
                    PODS, self.ns, current, check_rv=False, bump_generation=False
                )
        except NotFound:
            pass

    # -- the pod's life ------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            prev_ip = (self.pod.get("status") or {}).get("podIP")
            if self.k.podnet is not None:  # network="netns": own netns, address, rules
                self.pod_ip = await self.k.podnet.attach(self.pod)
            else:
                self.pod_ip = self.k.allocate_ip(self.uid, prev_ip)
            self.start_time = self.start_time or now_iso()
            self.write_status()
            await self._prepare_volumes()
            for run in self.inits:
                if run.final and run.state.get("terminated", {}).get("exitCode") == 0:
                    continue
                if run.resume_code == 0 and "terminated" in run.state:
                    run.final = True
                    continue
                ok = await self._supervise(run)
                if self.terminating:
                    return
                if not ok:
                    self.init_failed = True
                    self.write_status()
                    return
            self.initialized = True
            self.write_status()
            await asyncio.gather(*(self._supervise(r) for r in self.mains))
            if not self.terminating:
                self.write_status()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - reported as a kubelet error, pod left as is
            log.exception("devstack kubelet: pod %s/%s failed", self.ns, self.name)

    async def _prepare_volumes(self) -> None:
        while True:
            try:
                self.volume_paths = prepare_volumes(
                    self.pod, pod_dir=self.dir, nfs_root=self.k.nfs_root,
                    pvc_root=self.k.root / "pvc", pod_ip=self.pod_ip,
                    get_secret=self._lookup("v1/secrets"),
                    get_configmap=self._lookup("v1/configmaps"),
                    claim_exists=self._claim_exists,
                )  # fmt: skip
                (self.dir / "logs").mkdir(parents=True, exist_ok=True)
                return
            except (VolumeError, proc_mod.ContainerConfigError) as e:
                self.event("FailedMount", str(e), type_="Warning")
            await asyncio.sleep(self.k.config_retry)

    def _claim_exists(self, ns: str, name: str) -> bool:
        return self.k.store.exists("v1/persistentvolumeclaims", ns, name)

    def _wants_restart(self, run: ContainerRun, code: int) -> bool:
        if self.policy == "Never":
            return False
        if run.init or self.policy == "OnFailure":
            return code != 0
        return True  # Always

    async def _supervise(self, run: ContainerRun) -> bool:
        """Run a container until it is final; True when it ended with exit code 0."""
        backoff = 0
        while True:
            if run.resume_code is not None:
                code: int | None = run.resume_code
                run.resume_code = None
            else:
                code = await self._run_once(run)
            if self.terminating or code is None:
                return code == 0
            if not self._wants_restart(run, code):
                run.final = True
                self.write_status()
                return code == 0
            delay = min(self.k.backoff_base * (2**backoff), self.k.backoff_max)
            backoff += 1
            run.last_state = {"terminated": run.state.get("terminated", {})}
            run.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {_seconds(delay)} restarting failed container="
                    f"{run.name} pod={self.name}_{self.ns}({self.uid})",
                }
            }
            self.write_status()
            self.event(
                "BackOff",
                f"Back-off restarting failed container {run.name} in pod "
                f"{self.name}_{self.ns}({self.uid})",
                type_="Warning",
                run=run,
            )
            await asyncio.sleep(delay)
            if self.terminating:
                return False
            run.restart_count += 1

    def _launch(self, run: ContainerRun) -> proc_mod.Launch:
        spec = self.specs[run.name]
        ident = proc_mod.identity(self.pod, spec)
        podnet = self.k.podnet
        bind_all = "0.0.0.0" if podnet is not None else None  # netns: no rewrite needed
        env = proc_mod.container_env(
            self.pod, spec, self.pod_ip, ident.uid,
            self._lookup("v1/secrets"), self._lookup("v1/configmaps"), bind_all=bind_all,
        )  # fmt: skip
        argv = proc_mod.container_argv(spec, env, self.pod_ip, bind_all=bind_all)
        try:
            plan = mount_plan(spec, self.volume_paths, env)
        except VolumeError as e:
            raise proc_mod.ContainerConfigError(str(e)) from None
        if podnet is not None:  # /etc/resolv.conf of the cluster DNS
            targets = {m["target"] for m in plan}
            plan += [m for m in podnet.container_mounts(self.uid) if m["target"] not in targets]
        cwd = spec.get("workingDir") or "/"
        protected = [
            sys.prefix, sys.base_prefix, str(Path(sys.executable).parent), str(self.k.root),
            str(self.k.nfs_root), str(proc_mod.SHIM.parent),
            *env.get("PATH", "").split(os.pathsep), *(m["source"] for m in plan),
        ]  # fmt: skip
        if not self.k.namespaced:
            env.update(mount_env(plan))
            cwd = host_path_for(cwd, plan)
        netns = podnet.netns_path(self.uid) if podnet is not None else None
        return proc_mod.Launch(argv, env, cwd, ident, plan, [p for p in protected if p], netns)

    async def _run_once(self, run: ContainerRun) -> int | None:
        """Start one instance and wait for it; None when terminating before it started."""
        while True:
            if self.terminating:
                return None
            try:
                launch = self._launch(run)
                break
            except proc_mod.ContainerConfigError as e:
                run.state = {"waiting": {"reason": e.reason, "message": str(e)}}
                self.write_status()
                self.event("Failed", f"Error: {e}", type_="Warning", run=run)
            await asyncio.sleep(self.k.config_retry)
        image = run.image
        if pull_policy(self.specs[run.name]) == "Always":
            self.event("Pulling", f'Pulling image "{image}"', run=run)
            self.event(
                "Pulled",
                f'Successfully pulled image "{image}" in 0s (0s including waiting). '
                "Image size: 0 bytes.",
                run=run,
            )
        else:
            self.event("Pulled", f'Container image "{image}" already present on machine', run=run)
        run.instance = run.restart_count
        log_dir = self.k._log_dir(self.uid, run.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{run.instance}.log"
        log_path.write_bytes(b"")
        run.live = True
        cid = run.new_container_id()
        self.event("Created", f"Created container: {run.name}", run=run)
        started = now_iso()
        exe_ok = self.k.namespaced or proc_mod.resolve_executable(launch.argv[0], launch.env)
        try:
            if not exe_ok:
                raise FileNotFoundError(
                    f'exec: "{launch.argv[0]}": executable file not found in $PATH'
                )
            proc = await proc_mod.spawn(
                launch, log_path, namespaced=self.k.namespaced, nice=self.k.container_nice
            )
        except OSError as e:
            msg = f"failed to create containerd task: failed to start container process: {e}"
            run.state = {
                "terminated": {
                    "exitCode": 128, "reason": "StartError", "message": msg,
                    "startedAt": "1970-01-01T00:00:00Z", "finishedAt": now_iso(),
                    "containerID": cid,
                }
            }  # fmt: skip
            run.live = False
            with contextlib.suppress(OSError):
                with open(log_path, "ab") as f:  # noqa: ASYNC230 - a local log file
                    f.write(f"{msg}\n".encode())
            self.write_status()
            self.event("Failed", f"Error: {msg}", type_="Warning", run=run)
            return 128
        self.procs[run.name] = proc
        run.running, run.started = True, True
        run.state = {"running": {"startedAt": started}}
        probe = self.specs[run.name].get("readinessProbe")
        if run.init:
            run.ready = False
        elif probe:
            run.ready = False
            self._probes[run.name] = asyncio.create_task(self._probe_loop(run, probe, launch))
        else:
            run.ready = True
        self.event("Started", f"Started container {run.name}", run=run)
        self.write_status()
        rc = await proc.wait()
        proc_mod.signal_group(proc.pid, signal.SIGKILL)  # the container's leftovers go with it
        self.procs.pop(run.name, None)
        prober = self._probes.pop(run.name, None)
        if prober is not None:
            prober.cancel()
        code = proc_mod.exit_code(rc)
        run.running, run.live, run.ready = False, False, run.init and code == 0
        run.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now_iso(),
                "containerID": cid,
            }
        }
        message = proc_mod.termination_message(self.specs[run.name], code, None, _log_end(log_path))
        if message is not None:
            run.state["terminated"]["message"] = message
        self.write_status()
        return code

    # -- readiness probes -------------------------------------------------------------------
    async def _probe_loop(
        self, run: ContainerRun, probe: dict[str, Any], launch: proc_mod.Launch
    ) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        timeout = float(probe.get("timeoutSeconds", 1))
        need_ok, need_fail = (
            int(probe.get("successThreshold", 1)),
            int(probe.get("failureThreshold", 3)),
        )
        oks = fails = 0
        while run.running:
            ok, why = await self._probe_once(run, probe, launch, timeout)
            if ok:
                oks, fails = oks + 1, 0
                if oks >= need_ok and not run.ready:
                    run.ready = True
                    self.write_status()
            else:
                oks, fails = 0, fails + 1
                self.event("Unhealthy", f"Readiness probe failed: {why}", type_="Warning", run=run)
                if fails >= need_fail and run.ready:
                    run.ready = False
                    self.write_status()
            await asyncio.sleep(period)

    def _port(self, port: Any, spec: dict[str, Any]) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"port {port} not found")

    async def _probe_once(
        self, run: ContainerRun, probe: dict[str, Any], launch: proc_mod.Launch, timeout: float
    ) -> tuple[bool, str]:
        spec = self.specs[run.name]
        try:
            if "exec" in probe:
                netns = self.k.podnet.exec_prefix(self.uid) if self.k.podnet else []
                p = await asyncio.create_subprocess_exec(
                    *netns, *probe["exec"].get("command", []), env=launch.env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )  # fmt: skip
                try:
                    rc = await asyncio.wait_for(p.wait(), timeout)
                except TimeoutError:
                    proc_mod.signal_group(p.pid, signal.SIGKILL)
                    await p.wait()
                    return False, f"command timed out after {timeout}s"
                return rc == 0, f"command exited with {rc}"
            if "httpGet" in probe or "tcpSocket" in probe:
                key = "httpGet" if "httpGet" in probe else "tcpSocket"
                cfg = probe[key]
                host = cfg.get("host") or self.pod_ip
                port = self._port(cfg.get("port"), spec)
                src = (self.k.podnet.probe_ip, 0) if self.k.podnet else None  # network="netns"
                return await asyncio.wait_for(_http_probe(host, port, cfg, key, src), timeout)
        except (OSError, TimeoutError, ValueError) as e:
            return False, str(e) or type(e).__name__
        return False, "unsupported probe"

    # -- stopping ------------------------------------------------------------------------
    async def _kill_all(self, grace: float) -> None:
        procs = list(self.procs.values())
        await asyncio.gather(*(proc_mod.terminate(p, grace) for p in procs))

    async def _cancel(self) -> None:
        if self.task is not None and not self.task.done():
            # let it record the exits it has just seen, then stop whatever it waits for
            await asyncio.wait([self.task], timeout=0.2)
        for task in [self.task, *self._probes.values()]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def terminate(self, grace: float) -> None:
        """Graceful deletion: Killing events, SIGTERM, wait ``grace``, SIGKILL, delete."""
        self.terminating = True
        for name in list(self.procs):
            self.event("Killing", f"Stopping container {name}", run=self.runs[name])
        await self._kill_all(grace)
        await self._cancel()
        self.write_status()
        self.deleted = True
        self.k._workers.pop(self.uid, None)
        self.k.release_ip(self.uid)
        self.k._finish_delete(self.ns, self.name, self.uid)

    async def kill_now(self) -> None:
        """The pod is gone from the store: SIGKILL at once and clean up."""
        self.terminating, self.deleted, self.quiet = True, True, True
        await self._kill_all(0)
        await self._cancel()
        self.k._workers.pop(self.uid, None)
        self.k.release_ip(self.uid)
        self.k._remove_dirs(self.uid)

    async def shutdown(self, grace: float) -> None:
        """Kubelet stop: kill the processes, keep the pod's files and status."""
        self.terminating, self.quiet = True, True
        pod_grace = float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))
        await self._kill_all(min(grace, pod_grace))
        await self._cancel()


def _log_end(path: Path, size: int = 4 * proc_mod.MAX_FALLBACK_BYTES) -> bytes:
    """The last ``size`` bytes of a container's log (a local file): the fallback
    termination message is cut from them."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read()
    except OSError:
        return b""


def _seconds(delay: float) -> str:
    return f"{delay:g}s" if delay < 60 else f"{int(delay // 60)}m{int(delay % 60)}s"


async def _http_probe(
    host: str, port: int, cfg: dict[str, Any], kind: str, local_addr: tuple[str, int] | None = None
) -> tuple[bool, str]:
    ctx = None
    if kind == "httpGet" and cfg.get("scheme", "HTTP").upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the real kubelet does not verify probe certificates
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, local_addr=local_addr)
    try:
        if kind == "tcpSocket":
            return True, ""
        path = cfg.get("path") or "/"
        headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in cfg.get("httpHeaders") or [])
        writer.write(
            f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.31\r\n"
            f"{headers}\r\n".encode()
        )
        await writer.drain()
        line = (await reader.readline()).decode("latin-1").split()
        code = int(line[1]) if len(line) >= 2 and line[1].isdigit() else 0
        return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
