"""The cluster DNS: who answers what (pure), the DNS wire format (pure), a tiny server.

As on OpenShift, the DNS "pod" (namespace ``openshift-dns``, label
``dns.operator.openshift.io/daemonset-dns: default``, ports ``dns`` UDP 5353 and
``dns-tcp`` TCP 5353) listens on 5353 in its own network namespace, and pods query a
Service address on port 53 that the node DNATs to it; NetworkPolicies therefore see
port 5353 (see nft.py).

Answers (A records only; other types of a known name get an empty NOERROR):

- ``<service>.<namespace>.svc.cluster.local``: the addresses of the *ready* workloads
  the Service's selector picks, like a headless Service. The stand-in has no
  kube-proxy, so a clusterIP would lead nowhere; the DNS Service itself
  (``dns-default.openshift-dns.svc``) answers with its NAT-ed address;
- ``<a-b-c-d>.<namespace>.pod.cluster.local``: ``a.b.c.d``;
- names of the static table the stand-in is given (e.g. ``s3.devstack.local``);
- anything else: NXDOMAIN. Short names work through the search list of the pods'
  /etc/resolv.conf (:func:`resolv_conf`), as in a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DOMAIN = "cluster.local"
DNS_NAMESPACE = "openshift-dns"
DNS_SERVICE = "dns-default"
DNS_LABELS = {"dns.operator.openshift.io/daemonset-dns": "default"}
DNS_PORTS = (
    {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
    {"name": "dns-tcp", "containerPort": 5353, "protocol": "TCP"},
)
TTL = 5
QTYPE_A, QTYPE_ANY, CLASS_IN = 1, 255, 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4


# -- who answers what ------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A ready workload a Service can select."""

    namespace: str
    labels: Mapping[str, str]
    ip: str


def lookup(
    name: str,
    *,
    services: Iterable[Mapping[str, Any]],
    endpoints: Iterable[Endpoint],
    hosts: Mapping[str, str | list[str]],
    dns_service_ip: str | None = None,
    domain: str = DOMAIN,
) -> list[str] | None:
    """The IPv4 addresses of ``name``; [] when it exists without any, None for NXDOMAIN."""
    name = name.lower().rstrip(".")
    if name in hosts:
        value = hosts[name]
        return [value] if isinstance(value, str) else list(value)
    suffix = f".svc.{domain}"
    if name.endswith(suffix):
        parts = name[: -len(suffix)].split(".")
        if len(parts) != 2:
            return None
        svc_name, ns = parts
        if dns_service_ip and (svc_name, ns) == (DNS_SERVICE, DNS_NAMESPACE):
            return [dns_service_ip]
        for svc in services:
            meta = svc.get("metadata") or {}
            if meta.get("name") == svc_name and meta.get("namespace") == ns:
                selector = (svc.get("spec") or {}).get("selector") or {}
                if not selector:
                    return []
                ips = {
                    e.ip
                    for e in endpoints
                    if e.namespace == ns and all(e.labels.get(k) == v for k, v in selector.items())
                }
                return sorted(ips, key=lambda ip: int(ipaddress.ip_address(ip)))
        return None
    suffix = f".pod.{domain}"
    if name.endswith(suffix):
        parts = name[: -len(suffix)].split(".")
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                return [str(ipaddress.IPv4Address(parts[0].replace("-", ".")))]
    return None


def resolv_conf(pod: Mapping[str, Any], nameserver: str, domain: str = DOMAIN) -> str | None:
    """The pod's /etc/resolv.conf as the kubelet writes it; None for ``dnsPolicy: Default``."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace", "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "Default":
        return None
    config = spec.get("dnsConfig") or {}
    servers, searches, options = [], [], {}
    if policy != "None":
        servers = [nameserver]
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        options = {"ndots": "5"}
    servers += [s for s in config.get("nameservers") or [] if s not in servers]
    searches += [s for s in config.get("searches") or [] if s not in searches]
    for opt in config.get("options") or []:
        options[opt.get("name", "")] = opt.get("value")
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers[:3]]
    opts = [k if v is None else f"{k}:{v}" for k, v in options.items() if k]
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


# -- the wire format -----------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question section as received (echoed in the answer)


def parse_query(data: bytes) -> Query:
    """The first question of a query; ValueError when malformed."""
    if len(data) < 12:
        raise ValueError("short header")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount < 1:
        raise ValueError("no question")
    labels, i = [], 12
    while True:
        if i >= len(data):
            raise ValueError("truncated name")
        n = data[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        label = data[i + 1 : i + 1 + n]
        if len(label) != n:
            raise ValueError("truncated label")
        labels.append(label.decode("ascii", errors="replace"))
        i += 1 + n
    if i + 4 > len(data):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", data[i : i + 4])
    return Query(qid, flags, ".".join(labels), qtype, qclass, data[12 : i + 4])


def response(q: Query, rcode: int, ips: Iterable[str] = (), *, limit: int = 512) -> bytes:
    """An authoritative answer to ``q``; TC set when the answer does not fit ``limit``."""
    ips = list(ips) if q.qtype in (QTYPE_A, QTYPE_ANY) and q.qclass == CLASS_IN else []
    opcode, rd = q.flags & 0x7800, q.flags & 0x0100
    flags = 0x8000 | opcode | 0x0400 | rd | 0x0080 | rcode
    answers = b"".join(
        struct.pack("!HHHIH", 0xC00C, QTYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(ip)
        for ip in ips
    )
    msg = struct.pack("!HHHHHH", q.id, flags, 1, len(ips), 0, 0) + q.question + answers
    if len(msg) > limit:
        flags |= 0x0200
        msg = struct.pack("!HHHHHH", q.id, flags, 1, 0, 0, 0) + q.question
    return msg


def answer(data: bytes, resolve: Callable[[str], list[str] | None], limit: int = 512) -> bytes:
    """The reply to one query message (b"" when it is not worth one)."""
    try:
        q = parse_query(data)
    except ValueError:
        if len(data) >= 12:
            qid, flags = struct.unpack("!HH", data[:4])
            if not flags & 0x8000:
                out = struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | FORMERR, 0, 0, 0, 0)
                return out
        return b""
    if q.flags & 0x8000:
        return b""  # a response, not a query
    if q.flags & 0x7800:
        return response(q, NOTIMP)
    ips = resolve(q.name)
    if ips is None:
        return response(q, NXDOMAIN)
    return response(q, NOERROR, ips, limit=limit)


def query(name: str, qid: int = 0x1234, qtype: int = QTYPE_A) -> bytes:
    """A recursive query for ``name`` (what a stub resolver sends)."""
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def parse_a_records(data: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a response built by :func:`response`."""
    rcode, ancount = struct.unpack("!H", data[2:4])[0] & 0xF, struct.unpack("!H", data[6:8])[0]
    i = 12
    while data[i]:
        i += 1 + data[i]
    i += 5
    ips = []
    for _ in range(ancount):
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[i + 2 : i + 12])
        if rtype == QTYPE_A and rdlen == 4:
            ips.append(socket.inet_ntoa(data[i + 12 : i + 16]))
        i += 12 + rdlen
    return rcode, ips


# -- the server ------------------------------------------------------------------------------
class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolve: Callable[[str], list[str] | None]) -> None:
        self.resolve = resolve
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = answer(data, self.resolve)
        except Exception:  # noqa: BLE001 - one bad query must not stop the server
            log.exception("devstack dns: error answering a query")
            return
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer:
    """Answers on a UDP and a TCP socket (bound elsewhere, e.g. inside the DNS netns)."""

    def __init__(self, resolve: Callable[[str], list[str] | None]) -> None:
        self.resolve = resolve
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self, udp: socket.socket, tcp: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.resolve), sock=udp)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 30))[0]
                data = await asyncio.wait_for(reader.readexactly(size), 10)
                reply = answer(data, self.resolve, limit=65535)
                if not reply:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
            self._tcp = None
