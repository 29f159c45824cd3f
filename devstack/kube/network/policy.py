"""NetworkPolicy semantics as Kubernetes defines them, as a pure translation.

Data in (workloads with addresses and labels, namespace labels, NetworkPolicy objects),
data out: for each workload address, whether it is isolated for ingress and egress and,
if so, the union of what its policies allow (:class:`Isolation`). ``nft.py`` renders that
into nftables; :func:`allowed` evaluates it directly, so the semantics can be tested
without root and the renderer can be checked against the same oracle.

The rules (networking.k8s.io/v1):

- a workload selected by ``spec.podSelector`` of any policy of its namespace whose
  ``policyTypes`` holds Ingress is isolated for ingress; only traffic matching at least
  one ingress rule of those policies enters (union); same for Egress. ``policyTypes``
  absent: Ingress, plus Egress when the policy has egress rules (the API server's
  defaulting; the stand-in's registry does the same);
- a rule with no ``from``/``to`` peers matches every address; with no ``ports`` every
  port and protocol; ``ingress: []`` (or absent) under Ingress allows nothing;
- peers are ORed; within one peer ``podSelector`` and ``namespaceSelector`` are ANDed;
  ``podSelector`` alone means the policy's own namespace; ``namespaceSelector`` matches
  namespace labels (every namespace carries ``kubernetes.io/metadata.name``; a namespace
  missing from the input gets just that label);
- ``ipBlock`` matches ``cidr`` minus ``except``. It matches any address, pod addresses
  included (Kubernetes leaves that to the implementation), and is the only way to name
  a host address such as the node's (see network/__init__.py);
- ports: ``protocol`` (TCP by default), ``port`` (number or name) and ``endPort``; a
  named port resolves to the container ports of the *destination* workload with that
  name and protocol (for egress, per destination workload; an address that is not a
  workload never matches a named port). A port entry that resolves to nothing allows
  nothing (it never widens to "all ports").

IPv6 ipBlocks are ignored: pods here only have IPv4 addresses.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..selectors import label_selector_from_dict

log = logging.getLogger(__name__)

NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class ContainerPort:
    """A container port a named port can resolve to."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Workload:
    """Anything with an address that policies select like a pod (pods, endpoints)."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True)
class Ports:
    """One protocol and its destination port ranges; no ranges means every port."""

    protocol: str
    ranges: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Allow:
    """Traffic with the peer address in ``cidrs`` minus ``excepts`` on ``ports``.

    ``cidrs`` None: any address; ``ports`` None: any protocol and port.
    """

    cidrs: tuple[str, ...] | None = None
    excepts: tuple[str, ...] = ()
    ports: tuple[Ports, ...] | None = None


@dataclass(frozen=True)
class Isolation:
    """What may enter/leave one address; None for a direction it is not isolated in."""

    ingress: tuple[Allow, ...] | None = None
    egress: tuple[Allow, ...] | None = None


def workload_from_pod(pod: Mapping[str, Any], ip: str) -> Workload:
    """A pod object (as the store holds it) with its address, as a Workload."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ports = []
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("name") and p.get("containerPort"):
                ports.append(
                    ContainerPort(p["name"], int(p["containerPort"]), p.get("protocol") or "TCP")
                )
    return Workload(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        ip=ip,
        labels=dict(meta.get("labels") or {}),
        ports=tuple(ports),
    )


# -- selection -----------------------------------------------------------------------------
def _selector(sel: Mapping[str, Any] | None) -> Any:
    """A predicate over labels, or None when the selector cannot be parsed (selects none)."""
    try:
        reqs = label_selector_from_dict(dict(sel) if sel else None)
    except (KeyError, TypeError, ValueError):
        log.warning("devstack network: ignoring an unparseable label selector %r", sel)
        return None
    return lambda labels: all(r.matches(dict(labels)) for r in reqs)


def _matches(sel: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    pred = _selector(sel)
    return pred is not None and pred(labels)


def namespace_labels(namespaces: Mapping[str, Mapping[str, str]], ns: str) -> dict[str, str]:
    labels = dict(namespaces.get(ns) or {})
    labels.setdefault(NAME_LABEL, ns)
    return labels


def policy_types(policy: Mapping[str, Any]) -> tuple[str, ...]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types is None:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return tuple(types)


def selects(policy: Mapping[str, Any], w: Workload) -> bool:
    """Does ``policy`` apply to workload ``w`` (same namespace, podSelector matches)?"""
    meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
    return meta.get("namespace") == w.namespace and _matches(spec.get("podSelector"), w.labels)


def peer_workloads(
    peer: Mapping[str, Any],
    policy_ns: str,
    workloads: Iterable[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
) -> list[Workload]:
    """The workloads a podSelector/namespaceSelector peer names (ipBlock peers: none)."""
    if "podSelector" not in peer and "namespaceSelector" not in peer:
        return []
    out = []
    for w in workloads:
        if "namespaceSelector" in peer:
            if not _matches(peer["namespaceSelector"], namespace_labels(namespaces, w.namespace)):
                continue
        elif w.namespace != policy_ns:
            continue
        if "podSelector" in peer and not _matches(peer["podSelector"], w.labels):
            continue
        out.append(w)
    return out


def _v4(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _block(peer: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """(cidr, excepts) of an IPv4 ipBlock peer; None for IPv6 or malformed ones."""
    block = peer.get("ipBlock") or {}
    net = _v4(str(block.get("cidr", "")))
    if net is None:
        return None
    excepts = tuple(str(n) for n in (_v4(str(e)) for e in block.get("except") or []) if n)
    return str(net), excepts


def in_block(ip: str, cidr: str, excepts: Iterable[str]) -> bool:
    addr = ipaddress.ip_address(ip)
    if addr not in ipaddress.ip_network(cidr):
        return False
    return not any(addr in ipaddress.ip_network(e) for e in excepts)


# -- ports ----------------------------------------------------------------------------------
def _numeric_ports(entry: Mapping[str, Any]) -> Ports | None:
    """A port entry without a named port as Ports; None when it is a named one."""
    proto = (entry.get("protocol") or "TCP").upper()
    port = entry.get("port")
    if port is None:
        return Ports(proto)
    if isinstance(port, str) and not port.isdigit():
        return None
    first = int(port)
    last = int(entry.get("endPort") or first)
    return Ports(proto, ((first, max(first, last)),))


def resolve_named(entry: Mapping[str, Any], w: Workload) -> Ports | None:
    """A named port entry resolved on workload ``w``; None when ``w`` has no such port."""
    proto = (entry.get("protocol") or "TCP").upper()
    found = tuple(
        (p.port, p.port) for p in w.ports if p.name == entry.get("port") and p.protocol == proto
    )
    return Ports(proto, found) if found else None


def _is_named(entry: Mapping[str, Any]) -> bool:
    port = entry.get("port")
    return isinstance(port, str) and not port.isdigit()


# -- rules ----------------------------------------------------------------------------------
def _peer_allows(
    peers: list[Mapping[str, Any]] | None,
    policy_ns: str,
    workloads: list[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
    ports: tuple[Ports, ...] | None,
) -> list[Allow]:
    if not peers:
        return [Allow(None, (), ports)]
    out: list[Allow] = []
    ips: set[str] = set()
    for peer in peers:
        if "ipBlock" in peer:
            block = _block(peer)
            if block is not None:
                out.append(Allow((block[0],), block[1], ports))
            continue
        ips.update(w.ip for w in peer_workloads(peer, policy_ns, workloads, namespaces))
    if ips:
        out.insert(0, Allow(tuple(f"{ip}/32" for ip in sorted(ips, key=_ip_key)), (), ports))
    return out


def _ip_key(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


def ingress_allows(
    rule: Mapping[str, Any],
    policy_ns: str,
    target: Workload,
    workloads: list[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
) -> list[Allow]:
    """What one ingress rule lets into ``target`` (named ports resolve on ``target``)."""
    entries = rule.get("ports") or []
    ports: tuple[Ports, ...] | None = None
    if entries:
        resolved = [
            resolve_named(e, target) if _is_named(e) else _numeric_ports(e) for e in entries
        ]
        ports = tuple(p for p in resolved if p is not None)
        if not ports:
            return []
    return _peer_allows(rule.get("from"), policy_ns, workloads, namespaces, ports)


def egress_allows(
    rule: Mapping[str, Any],
    policy_ns: str,
    workloads: list[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
) -> list[Allow]:
    """What one egress rule lets out (named ports resolve per destination workload)."""
    entries = rule.get("ports") or []
    peers = rule.get("to")
    if not entries:
        return _peer_allows(peers, policy_ns, workloads, namespaces, None)
    out: list[Allow] = []
    numeric = tuple(p for p in (_numeric_ports(e) for e in entries if not _is_named(e)) if p)
    if numeric:
        out += _peer_allows(peers, policy_ns, workloads, namespaces, numeric)
    named = [e for e in entries if _is_named(e)]
    if named:
        for w in _destinations(peers, policy_ns, workloads, namespaces):
            resolved = tuple(p for p in (resolve_named(e, w) for e in named) if p is not None)
            if resolved:
                out.append(Allow((f"{w.ip}/32",), (), resolved))
    return out


def _destinations(
    peers: list[Mapping[str, Any]] | None,
    policy_ns: str,
    workloads: list[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
) -> list[Workload]:
    """The workloads the ``to`` peers cover (every workload when there are no peers)."""
    if not peers:
        return list(workloads)
    chosen: dict[str, Workload] = {}
    for peer in peers:
        if "ipBlock" in peer:
            block = _block(peer)
            if block is not None:
                for w in workloads:
                    if in_block(w.ip, *block):
                        chosen.setdefault(w.ip, w)
            continue
        for w in peer_workloads(peer, policy_ns, workloads, namespaces):
            chosen.setdefault(w.ip, w)
    return [chosen[ip] for ip in sorted(chosen, key=_ip_key)]


def isolation(
    workloads: Iterable[Workload],
    namespaces: Mapping[str, Mapping[str, str]],
    policies: Iterable[Mapping[str, Any]],
) -> dict[str, Isolation]:
    """Per workload address, its isolation and the union of its policies' allow rules.

    Only isolated workloads appear in the result: an address missing from it is
    reachable and may reach anything.
    """
    ws = list(workloads)
    pols = list(policies)
    out: dict[str, Isolation] = {}
    for w in ws:
        ingress: list[Allow] | None = None
        egress: list[Allow] | None = None
        for pol in pols:
            if not selects(pol, w):
                continue
            types = policy_types(pol)
            spec = pol.get("spec") or {}
            pns = (pol.get("metadata") or {}).get("namespace", "")
            if "Ingress" in types:
                ingress = ingress if ingress is not None else []
                for rule in spec.get("ingress") or []:
                    ingress += ingress_allows(rule or {}, pns, w, ws, namespaces)
            if "Egress" in types:
                egress = egress if egress is not None else []
                for rule in spec.get("egress") or []:
                    egress += egress_allows(rule or {}, pns, ws, namespaces)
        if ingress is not None or egress is not None:
            out[w.ip] = Isolation(
                ingress=None if ingress is None else tuple(dict.fromkeys(ingress)),
                egress=None if egress is None else tuple(dict.fromkeys(egress)),
            )
    return out


# -- the oracle -----------------------------------------------------------------------------
def allow_matches(a: Allow, peer_ip: str, protocol: str, port: int) -> bool:
    """Does one Allow cover traffic with ``peer_ip`` as the other end, to ``port``?"""
    if a.cidrs is not None and not any(in_block(peer_ip, c, a.excepts) for c in a.cidrs):
        return False
    if a.ports is None:
        return True
    proto = protocol.upper()
    for p in a.ports:
        if p.protocol != proto:
            continue
        if not p.ranges or any(lo <= port <= hi for lo, hi in p.ranges):
            return True
    return False


def allowed(rules: Mapping[str, Isolation], src: str, dst: str, protocol: str, port: int) -> bool:
    """Would a new connection ``src`` -> ``dst``:``port`` be let through (both ends' rules)?"""
    s, d = rules.get(src), rules.get(dst)
    if s is not None and s.egress is not None:
        if not any(allow_matches(a, dst, protocol, port) for a in s.egress):
            return False
    if d is not None and d.ingress is not None:
        if not any(allow_matches(a, src, protocol, port) for a in d.ingress):
            return False
    return True
