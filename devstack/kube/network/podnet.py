"""PodNetwork: one stand-in's pod network (addresses, namespaces, rules, cluster DNS).

The kubelet calls :meth:`PodNetwork.attach` before a pod's containers start (the pod's
netns exists and the rules already know the pod when its first process runs) and
:meth:`PodNetwork.release` when the pod is gone; it runs containers under
:meth:`PodNetwork.exec_prefix` and bind-mounts :meth:`PodNetwork.container_mounts`.
Everything else follows the store: a listener marks the rules dirty when a pod's labels
or ports, a NetworkPolicy or a Namespace change, and a task recomputes and applies them
(one ``nft -f`` transaction) after a short debounce. The listener only flags work: the
store must not be written from inside a listener.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store import Event, Store
from . import dns as dns_mod
from . import netns as io
from .nft import DnsNat, Layout, deny_all, render
from .policy import ContainerPort, Isolation, Workload, isolation, workload_from_pod

log = logging.getLogger(__name__)

PODS = "v1/pods"
SERVICES = "v1/services"
NAMESPACES = "v1/namespaces"
POLICIES = "networking.k8s.io/v1/networkpolicies"
FIRST_HOST = 16  # .1 node, .2 probe source, .10 DNS Service; workloads from .16


@dataclass
class Attachment:
    """A workload's place on the network."""

    key: str  # pod uid, or "endpoint:<namespace>/<name>"
    netns: str
    host_if: str
    ip: str
    workload: Workload
    resolv_conf: str | None = None  # endpoints: a file naming the cluster DNS

    @property
    def netns_path(self) -> str:
        return io.netns_path(self.netns)

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside this network namespace (as root)."""
        return ["nsenter", f"--net={self.netns_path}", "--"]

    def run_prefix(self) -> list[str]:
        """argv prefix that runs a command as this endpoint's process (as root): in its
        network namespace and, when the cluster DNS runs, in a private mount namespace
        with the cluster's /etc/resolv.conf, as a pod's container resolves names
        (``<service>`` and ``<service>.<namespace>`` through the search path)."""
        if self.resolv_conf is None or not Path("/etc/resolv.conf").exists():
            return self.exec_prefix()
        bind = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        private = ["unshare", "--mount", "--propagation", "private", "--"]
        return [*self.exec_prefix(), *private, "sh", "-c", bind, self.resolv_conf]


class PodNetwork:
    """Per-pod network namespaces with NetworkPolicy enforced; see network/__init__.py.

    ``name``: the 6-character instance id (random by default; a fixed one lets a new
    run remove what a crashed run of that name left). ``hosts``: the cluster DNS's
    static table for names outside cluster.local (``self.hosts`` may change while
    running, e.g. to name the node address once it is known). ``node_allowed``: let
    all traffic from the host into pods (default: only the kubelet's probes). ``dns``:
    run the cluster DNS pod.
    """

    def __init__(
        self,
        store: Store,
        *,
        name: str | None = None,
        hosts: Mapping[str, str | list[str]] | None = None,
        node_allowed: bool = False,
        debounce: float = 0.05,
        dns: bool = True,
    ) -> None:
        self.store = store
        self.names = io.Names(name or io.new_id())
        self.hosts = {k.lower().rstrip("."): v for k, v in (hosts or {}).items()}
        self.node_allowed = node_allowed
        self.debounce = debounce
        self.dns_enabled = dns
        self.subnet: ipaddress.IPv4Network | None = None
        self.node_ip = self.probe_ip = self.dns_ip = ""
        self.dns_target: str | None = None
        self._att: dict[str, Attachment] = {}
        self._n = 0
        self._next = 0
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._applied: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: Any = None
        self._dns: dns_mod.DnsServer | None = None
        self._dir: Path | None = None
        self._running = False

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Probe, reap leftovers, pick a /24, make the node bridge, rules and the DNS pod.

        Raises RuntimeError naming what is missing when the machine cannot enforce
        policies: this mode never falls back to allowing everything.
        """
        missing = await io.probe(self.names)
        if missing:
            raise RuntimeError(
                "devstack kube network='netns' cannot enforce NetworkPolicy on this machine; "
                f"missing: {'; '.join(missing)}. Refusing to start instead of allowing all "
                "traffic (use the default loopback network, which enforces nothing)."
            )
        await asyncio.to_thread(io.reap_orphans, self.names)
        await asyncio.to_thread(io.claim, self.names)
        atexit.register(self._atexit)
        self._running = True
        try:
            await self._make_node()
            self._dir = Path(tempfile.mkdtemp(prefix="kube-net-"))
            os.chmod(self._dir, 0o755)
            await self.sync()
            self._unsubscribe = self.store.add_listener(self._on_event)
            self._spawn(self._sync_loop())
            if self.dns_enabled:
                await self._start_dns()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "devstack network %s: pods on %s, node %s", self.names.id, self.subnet, self.node_ip
        )

    async def _make_node(self) -> None:
        """Pick a free /24 and put the node address on the bridge.

        Two instances starting at once could pick the same /24: whoever then sees the
        other's address in it steps back and picks again.
        """
        for _ in range(5):
            self.subnet = io.pick_subnet(await io.used_networks())
            base = self.subnet.network_address
            self.node_ip, self.probe_ip = str(base + 1), str(base + 2)
            self.dns_ip = str(base + 10)
            node_cidr = f"{self.node_ip}/{self.subnet.prefixlen}"
            await io.create_node(self.names, node_cidr, self.probe_ip)
            if not await io.shared(self.subnet, self.names.bridge):
                return
            await io.run(["ip", "link", "del", self.names.bridge])
        raise RuntimeError("devstack network: no uncontested 10.x.y.0/24 after 5 tries")

    async def stop(self) -> None:
        """Remove everything this instance made (namespaces, links, table, files)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._dns is not None:
            await self._dns.stop()
            self._dns = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for att in list(self._att.values()):
            if att.key.startswith("endpoint:"):
                await self._kill_in(att)
        self._att.clear()
        if self._running:
            failed = await asyncio.to_thread(io.remove_instance_sync, self.names)
            if failed:
                log.warning("devstack network %s: cleanup left %s", self.names.id, failed)
            self._running = False
        atexit.unregister(self._atexit)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._applied = None

    def _atexit(self) -> None:
        if self._running:
            io.remove_instance_sync(self.names)

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- pods --------------------------------------------------------------------------------
    async def attach(self, pod: Mapping[str, Any]) -> str:
        """Give a pod its netns and address (its earlier one when still free); the pod IP."""
        meta = pod.get("metadata") or {}
        uid = meta["uid"]
        if uid in self._att:
            return self._att[uid].ip
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.node_ip  # the node's network namespace, like a real hostNetwork pod
        preferred = (pod.get("status") or {}).get("podIP")
        att = await self._attach(
            uid,
            meta.get("namespace", ""),
            meta.get("name", ""),
            preferred,
            lambda ip: workload_from_pod(pod, ip),
        )
        text = dns_mod.resolv_conf(pod, self.dns_ip) if self.dns_enabled else None
        if text is not None and self._dir is not None:
            d = self._dir / uid
            d.mkdir(mode=0o755, exist_ok=True)
            (d / "resolv.conf").write_text(text)
            os.chmod(d / "resolv.conf", 0o644)
        return att.ip

    def release(self, uid: str) -> None:
        """The pod is gone: drop it from the rules and remove its netns (in the background)."""
        att = self._att.pop(uid, None)
        if att is None:
            return
        self._dirty.set()
        if self._dir is not None:
            shutil.rmtree(self._dir / uid, ignore_errors=True)
        self._spawn(io.remove_workload(att.netns, att.host_if))

    def exec_prefix(self, uid: str) -> list[str]:
        """argv prefix entering the pod's network namespace (as root); [] for hostNetwork."""
        att = self._att.get(uid)
        return att.exec_prefix() if att else []

    def netns_path(self, uid: str) -> str | None:
        att = self._att.get(uid)
        return att.netns_path if att else None

    def container_mounts(self, uid: str) -> list[dict[str, Any]]:
        """Files the kubelet bind-mounts into the pod's containers (/etc/resolv.conf)."""
        if self._dir is None or not Path("/etc/resolv.conf").exists():
            return []  # the shim would create the mount point on the host
        path = self._dir / uid / "resolv.conf"
        if not path.exists():
            return []
        return [{"source": str(path), "target": "/etc/resolv.conf", "readOnly": True}]

    # -- endpoints (host-side processes treated like pods) -------------------------------------
    async def add_endpoint(
        self,
        name: str,
        namespace: str,
        labels: Mapping[str, str] | None = None,
        ports: Iterable[Mapping[str, Any]] = (),
    ) -> Attachment:
        """A netns for a process the caller runs (``exec_prefix()``), policed like a pod.

        ``ports`` are container ports (``name``, ``containerPort``, ``protocol``) that
        named ports in policies resolve to. Processes still running in it are killed
        when the endpoint is removed.
        """
        key = f"endpoint:{namespace}/{name}"
        if key in self._att:
            raise ValueError(f"endpoint {namespace}/{name} exists")
        cports = tuple(
            ContainerPort(p["name"], int(p["containerPort"]), p.get("protocol") or "TCP")
            for p in ports
        )
        att = await self._attach(
            key,
            namespace,
            name,
            None,
            lambda ip: Workload(namespace, name, ip, dict(labels or {}), cports),
        )
        text = dns_mod.resolv_conf({"metadata": {"namespace": namespace}}, self.dns_ip)
        if self.dns_enabled and self._dir is not None and text is not None:
            d = self._dir / att.netns
            d.mkdir(mode=0o755, exist_ok=True)
            (d / "resolv.conf").write_text(text)
            os.chmod(d / "resolv.conf", 0o644)
            att.resolv_conf = str(d / "resolv.conf")
        return att

    def endpoint(self, name: str, namespace: str) -> Attachment | None:
        return self._att.get(f"endpoint:{namespace}/{name}")

    async def remove_endpoint(self, name: str, namespace: str) -> None:
        att = self._att.pop(f"endpoint:{namespace}/{name}", None)
        if att is None:
            return
        await self._kill_in(att)
        await io.remove_workload(att.netns, att.host_if)
        if self._dir is not None:
            shutil.rmtree(self._dir / att.netns, ignore_errors=True)
        await self.sync()

    async def _kill_in(self, att: Attachment) -> None:
        for pid in await io.netns_pids(att.netns):
            if pid == os.getpid():
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def _attach(
        self, key: str, ns: str, name: str, preferred: str | None, make: Any
    ) -> Attachment:
        if not self._running:
            raise RuntimeError("devstack network is not started")
        ip = self._allocate(preferred)
        n = self._n
        self._n += 1
        att = Attachment(key, self.names.netns(n, ns, name), self.names.host_if(n), ip, make(ip))
        self._att[key] = att  # reserves the address
        try:
            await io.add_workload(att.netns, att.host_if, ip, self.node_ip)
            await self.sync()
        except BaseException:
            self._att.pop(key, None)
            await io.remove_workload(att.netns, att.host_if)
            raise
        return att

    def _allocate(self, preferred: str | None) -> str:
        assert self.subnet is not None
        used = {a.ip for a in self._att.values()}
        base, last = self.subnet.network_address, self.subnet.num_addresses - 2
        if preferred and preferred not in used:
            with contextlib.suppress(ValueError):
                off = int(ipaddress.ip_address(preferred)) - int(base)
                if FIRST_HOST <= off <= last:
                    return preferred
        span = last - FIRST_HOST + 1
        for _ in range(span):
            off = FIRST_HOST + self._next % span
            self._next += 1
            ip = str(base + off)
            if ip not in used:
                return ip
        raise RuntimeError(f"devstack network: {self.subnet} has no free pod address")

    # -- rules ---------------------------------------------------------------------------------
    def workloads(self) -> list[Workload]:
        return [a.workload for a in self._att.values()]

    def rules(self) -> dict[str, Isolation]:
        """The isolation of every workload address, from the store as it is now."""
        namespaces = {
            o["metadata"]["name"]: o["metadata"].get("labels") or {}
            for o in self.store.list(NAMESPACES)[0]
        }
        policies = [
            p for p in self.store.list(POLICIES)[0] if not p["metadata"].get("deletionTimestamp")
        ]
        return isolation(self.workloads(), namespaces, policies)

    def layout(self) -> Layout:
        dns = DnsNat(self.dns_ip, self.dns_target) if self.dns_target else None
        return Layout(
            self.names.table, f"{self.names.link_prefix}*", self.probe_ip, self.node_allowed, dns
        )

    def script(self) -> str:
        return render(self.layout(), self.rules())

    @property
    def applied(self) -> str | None:
        """The script nftables holds now (None before the first one or after a failure)."""
        return self._applied

    async def sync(self) -> None:
        """Recompute and apply the rules now (a no-op when nothing changed).

        A rule set nftables refuses is replaced by one dropping everything on the pods'
        interfaces, and the error raised: never a stale, more permissive table.
        """
        async with self._lock:
            self._dirty.clear()
            text = self.script()
            if text == self._applied:
                return
            try:
                await io.apply_rules(text)
            except Exception:
                self._applied = None
                with contextlib.suppress(Exception):
                    await io.apply_rules(deny_all(self.layout()))
                raise
            self._applied = text

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.debounce)
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - logged; the table now drops everything
                log.exception("devstack network %s: applying the rules failed", self.names.id)

    def _on_event(self, event: Event) -> None:
        if event.resource == PODS:
            att = self._att.get((event.obj.get("metadata") or {}).get("uid", ""))
            if att is not None and event.type != "DELETED":
                w = workload_from_pod(event.obj, att.ip)
                if w != att.workload:
                    att.workload = w
                    self._dirty.set()
        elif event.resource in (POLICIES, NAMESPACES):
            self._dirty.set()

    # -- DNS -------------------------------------------------------------------------------------
    async def _start_dns(self) -> None:
        ep = await self.add_endpoint(
            dns_mod.DNS_SERVICE, dns_mod.DNS_NAMESPACE, dns_mod.DNS_LABELS, dns_mod.DNS_PORTS
        )
        udp, tcp = await io.sockets_in(
            ep.netns, [(socket.SOCK_DGRAM, "0.0.0.0", 5353), (socket.SOCK_STREAM, "0.0.0.0", 5353)]
        )
        self._dns = dns_mod.DnsServer(self.resolve)
        await self._dns.start(udp, tcp)
        self.dns_target = ep.ip
        await self.sync()

    def resolve(self, name: str) -> list[str] | None:
        """The cluster DNS's answer for ``name`` (see dns.py)."""
        endpoints = [
            dns_mod.Endpoint(a.workload.namespace, a.workload.labels, a.ip)
            for a in self._att.values()
            if a.key.startswith("endpoint:")
        ]
        for pod in self.store.list(PODS)[0]:
            st = pod.get("status") or {}
            cs = st.get("containerStatuses") or []
            if st.get("phase") == "Running" and st.get("podIP") and cs:
                if all(c.get("ready") for c in cs):
                    meta = pod["metadata"]
                    endpoints.append(
                        dns_mod.Endpoint(
                            meta.get("namespace", ""), meta.get("labels") or {}, st["podIP"]
                        )
                    )
        return dns_mod.lookup(
            name,
            services=self.store.list(SERVICES)[0],
            endpoints=endpoints,
            hosts=self.hosts,
            dns_service_ip=self.dns_ip,
        )
