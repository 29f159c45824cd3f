"""Network namespaces, veths, the node bridge and the nftables table: thin I/O over ``ip``/``nft``.

Every call is a subprocess with a timeout, run with asyncio (the stand-in's loop never
waits on one); the synchronous twins are for ``atexit`` and for reaping leftovers.
The only pure parts are the names (:class:`Names`) and the choice of a free /24
(:func:`pick_subnet`).

Names carry a per-instance id so stand-ins side by side never collide, and so that
everything of one instance can be found again: bridge ``vh<id>``, host ends of the
veths ``vh<id>p<n>``, namespaces ``vh<id>-<n>-<namespace>.<name>``, table ``inet vh<id>``.
Each running instance records its owner in ``/run/devstack-kube-net/<id>.json``; a
starting instance removes what instances whose owner process is gone left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TIMEOUT = 10.0
NETNS_DIR = Path("/run/netns")
STATE_DIR = Path("/run/devstack-kube-net")
CLONE_NEWNET = 0x40000000
_ID = re.compile(r"^[a-z0-9]{6}$")  # one length: no instance's names prefix another's


class CommandError(RuntimeError):
    """An ``ip``/``nft`` command failed; the message holds its stderr."""


@dataclass(frozen=True)
class Names:
    """Every name one stand-in instance uses on the host."""

    id: str

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"network instance id must match {_ID.pattern}, not {self.id!r}")

    @property
    def bridge(self) -> str:
        return f"vh{self.id}"

    @property
    def table(self) -> str:
        return f"vh{self.id}"

    @property
    def link_prefix(self) -> str:
        return f"vh{self.id}p"

    @property
    def netns_prefix(self) -> str:
        return f"vh{self.id}-"

    def host_if(self, n: int) -> str:
        return f"{self.link_prefix}{_base36(n)}"

    def netns(self, n: int, namespace: str, name: str) -> str:
        label = re.sub(r"[^A-Za-z0-9._-]", "_", f"{namespace}.{name}")
        return f"{self.netns_prefix}{n}-{label}"[:100]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def new_id() -> str:
    return "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=6))


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def pick_subnet(used: Iterable[str], rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.a.b.0/24 overlapping none of ``used`` (routes and addresses on the host)."""
    rng = rng or random.Random()
    taken = []
    for cidr in used:
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version == 4:
                taken.append(net)
    for _ in range(1000):
        net = ipaddress.IPv4Network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("devstack network: no free 10.x.y.0/24 on this machine")


def parse_used(route_lines: str, addr_lines: str) -> list[str]:
    """Destinations of ``ip -4 -o route show table all`` and prefixes of ``ip -4 -o addr``."""
    kinds = {"local", "broadcast", "unicast", "unreachable", "blackhole", "prohibit", "throw"}
    out = []
    for line in route_lines.splitlines():
        parts = line.split()
        if parts and parts[0] in kinds:
            parts = parts[1:]
        if parts and parts[0] != "default":
            out.append(parts[0])
    for line in addr_lines.splitlines():
        parts = line.split()
        if "inet" in parts:
            out.append(parts[parts.index("inet") + 1])
    return out


# -- commands -------------------------------------------------------------------------------
async def run(argv: list[str], *, stdin: str | None = None, timeout: float = TIMEOUT) -> str:
    """Run a command; its stdout, or CommandError with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def run_sync(argv: list[str], *, stdin: str | None = None, timeout: float = TIMEOUT) -> str:
    """``run`` for places without a loop (atexit, reaping); errors are CommandError."""
    try:
        p = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(f"{' '.join(argv)}: {e}") from None
    if p.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p.stdout


async def used_networks() -> list[str]:
    routes = await run(["ip", "-4", "-o", "route", "show", "table", "all"])
    addrs = await run(["ip", "-4", "-o", "addr", "show"])
    return parse_used(routes, addrs)


def addresses_in(addr_lines: str, subnet: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    """(device, address) of ``ip -4 -o addr`` lines whose address lies in ``subnet``."""
    out = []
    for line in addr_lines.splitlines():
        parts = line.split()
        if "inet" in parts and len(parts) > 1:
            addr = parts[parts.index("inet") + 1].split("/")[0]
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(addr) in subnet:
                    out.append((parts[1], addr))
    return out


async def shared(subnet: ipaddress.IPv4Network, own_device: str) -> bool:
    """Does a device other than ``own_device`` hold an address in ``subnet``?"""
    lines = await run(["ip", "-4", "-o", "addr", "show"])
    return any(dev != own_device for dev, _ in addresses_in(lines, subnet))


def write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


# -- the node --------------------------------------------------------------------------------
async def create_node(names: Names, node_cidr: str, probe_ip: str) -> None:
    """The per-instance bridge holding the node address (and the probe address)."""
    await run(
        ["ip", "-batch", "-"],
        stdin=f"link add {names.bridge} type bridge\n"
        f"addr add {node_cidr} dev {names.bridge}\n"
        f"addr add {probe_ip}/32 dev {names.bridge}\n"
        f"link set {names.bridge} up\n",
    )


async def add_workload(netns: str, host_if: str, ip: str, node_ip: str) -> None:
    """A netns with ``eth0`` (``ip``/32, default route via the node), routed from the host.

    No L2 between pods: each pod reaches everything through the host, so every packet
    between two pods is forwarded by the host and passes the nftables forward hook.
    """
    await run(["ip", "netns", "add", netns])
    try:
        await run(
            ["ip", "-batch", "-"],
            stdin=f"link add {host_if} type veth peer name eth0 netns {netns}\n"
            f"link set {host_if} up\n"
            f"route add {ip}/32 dev {host_if} src {node_ip}\n",
        )
        # forwarding per interface: the host's global ip_forward is left alone
        await asyncio.to_thread(write_sysctl, f"/proc/sys/net/ipv4/conf/{host_if}/forwarding", "1")
        mac = await asyncio.to_thread(Path(f"/sys/class/net/{host_if}/address").read_text)
        await run(
            ["ip", "-n", netns, "-batch", "-"],
            stdin="link set lo up\n"
            f"addr add {ip}/32 dev eth0\n"
            "link set eth0 up\n"
            f"route add {node_ip} dev eth0 scope link\n"
            f"route add default via {node_ip} dev eth0 src {ip}\n"
            # the gateway's MAC up front: no ARP answer needed from the host (arp_ignore)
            f"neigh replace {node_ip} lladdr {mac.strip()} dev eth0 nud permanent\n",
        )
    except BaseException:
        await remove_workload(netns, host_if)
        raise


async def remove_workload(netns: str, host_if: str) -> None:
    """Delete the veth (both ends) and the namespace; missing ones are fine."""
    for argv in (["ip", "link", "del", host_if], ["ip", "netns", "del", netns]):
        with contextlib.suppress(CommandError, TimeoutError, OSError):
            await run(argv)


async def apply_rules(script: str) -> None:
    await run(["nft", "-f", "-"], stdin=script)


async def netns_pids(netns: str) -> list[int]:
    with contextlib.suppress(CommandError, TimeoutError, OSError):
        return [int(p) for p in (await run(["ip", "netns", "pids", netns])).split()]
    return []


# -- removing everything of an instance ------------------------------------------------------
def remove_instance_sync(names: Names) -> list[str]:
    """Remove every netns, link and the table of instance ``names``; what failed.

    Processes still inside its namespaces (pods of an owner that was killed) are killed:
    in a namespace without links they could only linger.
    """
    failed = []
    for ns in _list_netns():
        if ns.startswith(names.netns_prefix):
            with contextlib.suppress(CommandError, ValueError):
                for pid in run_sync(["ip", "netns", "pids", ns]).split():
                    if int(pid) != os.getpid():
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(int(pid), signal.SIGKILL)
    for link in _list_links():
        if link == names.bridge or link.startswith(names.link_prefix):
            try:
                run_sync(["ip", "link", "del", link])
            except CommandError as e:
                if "Cannot find device" not in str(e):
                    failed.append(str(e))
    for ns in _list_netns():
        if ns.startswith(names.netns_prefix):
            try:
                run_sync(["ip", "netns", "del", ns])
            except CommandError as e:
                failed.append(str(e))
    try:
        tables = run_sync(["nft", "list", "tables"]).splitlines()
        for table in (names.table, f"{names.table}probe"):
            if f"table inet {table}" in tables:
                run_sync(["nft", "delete", "table", "inet", table])
    except CommandError as e:
        failed.append(str(e))
    with contextlib.suppress(FileNotFoundError):
        (STATE_DIR / f"{names.id}.json").unlink()
    with contextlib.suppress(OSError):
        STATE_DIR.rmdir()  # only when no other instance is recorded in it
    return failed


def _list_netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _list_links() -> list[str]:
    try:
        out = run_sync(["ip", "-o", "link", "show"])
    except CommandError:
        return []
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


# -- owners of instances ---------------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def claim(names: Names) -> None:
    """Record this process as the owner of instance ``names`` (before it makes anything)."""
    pid = os.getpid()
    data = json.dumps({"pid": pid, "start": _start_time(pid)})
    for _ in range(3):  # another instance may remove the empty directory in between
        STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            (STATE_DIR / f"{names.id}.json").write_text(data)
            return
        except FileNotFoundError:
            continue
    raise RuntimeError(f"devstack network: cannot record the owner in {STATE_DIR}")


def reap_orphans(own: Names) -> None:
    """Remove instances whose owner process is gone, and a previous one named like ``own``."""
    remove_instance_sync(own)
    try:
        files = list(STATE_DIR.glob("*.json"))
    except OSError:
        return
    for f in files:
        try:
            data = json.loads(f.read_text())
            names = Names(f.stem)
        except (OSError, ValueError):
            continue
        pid = int(data.get("pid") or 0)
        if pid and _start_time(pid) == data.get("start"):
            continue  # its owner still runs
        log.warning("devstack network: removing leftovers of instance %s", names.id)
        remove_instance_sync(names)


# -- sockets inside a namespace ---------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


async def sockets_in(
    netns: str, specs: list[tuple[int, str, int]], timeout: float = TIMEOUT
) -> list[socket.socket]:
    """Bound sockets (``(type, host, port)``) created inside ``netns``.

    A socket stays in the network namespace it was created in, so a fresh thread
    enters the namespace (setns only affects the calling thread), creates them and
    ends: no pooled thread is ever left in another namespace.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[socket.socket]] = loop.create_future()

    def deliver(result: list[socket.socket] | BaseException) -> None:
        if fut.done():
            if isinstance(result, list):
                for s in result:
                    s.close()
        elif isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)

    def work() -> None:
        socks: list[socket.socket] = []
        try:
            fd = os.open(netns_path(netns), os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            for type_, host, port in specs:
                s = socket.socket(socket.AF_INET, type_)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
                if type_ == socket.SOCK_STREAM:
                    s.listen(64)
                s.setblocking(False)
            loop.call_soon_threadsafe(deliver, socks)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            for s in socks:
                s.close()
            loop.call_soon_threadsafe(deliver, e)

    threading.Thread(target=work, name=f"netns-{netns}", daemon=True).start()
    return await asyncio.wait_for(fut, timeout)


# -- can this machine enforce? ----------------------------------------------------------------
async def probe(names: Names) -> list[str]:
    """What this machine lacks to enforce policies (empty when everything works)."""
    missing = []
    if os.geteuid() != 0:
        return ["root (network namespaces, veths and nftables need CAP_NET_ADMIN)"]
    for tool in ("ip", "nft", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            missing.append(f"the `{tool}` command")
    if missing:
        return missing
    ns, table = f"{names.netns_prefix}probe", f"{names.table}probe"
    try:
        await run(["ip", "netns", "add", ns])
    except (CommandError, TimeoutError, OSError) as e:
        return [f"`ip netns add` ({e})"]
    try:
        link = f"{names.link_prefix}probe"
        try:
            await run(
                ["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns]
            )
        except (CommandError, TimeoutError, OSError) as e:
            missing.append(f"veth pairs ({e})")
        else:
            try:
                forwarding = f"/proc/sys/net/ipv4/conf/{link}/forwarding"
                await asyncio.to_thread(write_sysctl, forwarding, "1")
            except OSError as e:
                missing.append(f"per-interface IPv4 forwarding ({e})")
        script = (
            f"table inet {table} {{\n"
            "\tchain f { type filter hook forward priority filter; policy accept;\n"
            "\t\tct state established,related accept\n\t\tip saddr { 10.0.0.1 } return\n\t}\n"
            "\tchain n { type nat hook prerouting priority -100; policy accept;\n"
            "\t\tip daddr 10.0.0.1 udp dport 53 dnat ip to 10.0.0.2:5353\n\t}\n"
            "}\n"
        )
        try:
            await run(["nft", "-f", "-"], stdin=script)
        except (CommandError, TimeoutError, OSError) as e:
            missing.append(f"nftables with conntrack and NAT ({e})")
        else:
            with contextlib.suppress(CommandError, TimeoutError, OSError):
                await run(["nft", "delete", "table", "inet", table])
    finally:
        await remove_workload(ns, f"{names.link_prefix}probe")
    return missing
