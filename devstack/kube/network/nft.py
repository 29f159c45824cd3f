"""Render an isolation map (policy.py) as one nftables script for the stand-in's table.

Pure: data in, script text out. The script replaces the whole ``inet`` table in one
``nft -f`` transaction (create, delete, create: the usual atomic-replace idiom), so a
change of policies is never half-applied.

Where the rules sit (pods are routed through the host, see network/__init__.py):

- ``forward``: pod -> pod (and pod -> DNS pod after the Service DNAT);
- ``input``: pod -> an address of the host (the node, an "S3" the tests run);
- ``output``: host -> pod; the kubelet's probes (from the probe address) always pass.

Each of those jumps to ``police``: replies of accepted connections pass (conntrack),
then the source's egress chain (if it is isolated for egress), then the destination's
ingress chain (if isolated for ingress), each ``return``-ing on a match and dropping
otherwise. IPv6 is dropped on the pods' interfaces: pods only have IPv4 addresses.

DNS: the Service address is DNAT-ed (prerouting for pods, output for the host) to the
DNS pod's 5353, before the filter hooks, so policies see port 5353 as on OpenShift.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .policy import Allow, Isolation


@dataclass(frozen=True)
class DnsNat:
    """The cluster DNS Service address and the DNS pod it is translated to."""

    service_ip: str
    target_ip: str
    port: int = 53
    target_port: int = 5353


@dataclass(frozen=True)
class Layout:
    """What the rules need to know about the stand-in's plumbing."""

    table: str  # name of the inet table
    pod_ifaces: str  # glob of the host ends of the pods' veths, e.g. "vhab12cdp*"
    probe_ip: str | None = None  # source address of the kubelet's probes (always allowed)
    node_allowed: bool = False  # True: everything the host sends to pods passes
    dns: DnsNat | None = None


def chain_name(direction: str, ip: str) -> str:
    return f"{direction}_{ip.replace('.', '_')}"


def _set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def cidr_set(cidrs: Iterable[str]) -> list[str]:
    """CIDRs merged (nftables refuses overlapping intervals), /32 as plain addresses."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    out = []
    for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4):
        out.append(str(n.network_address) if n.prefixlen == 32 else str(n))
    return out


def port_set(ranges: Iterable[tuple[int, int]]) -> list[str]:
    """Port ranges merged where they overlap or touch."""
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged]


def allow_rules(a: Allow, field: str) -> list[str]:
    """nft rules (``return`` on match) for one Allow; ``field`` is saddr or daddr."""
    match = []
    if a.cidrs is not None:
        cidrs = cidr_set(a.cidrs)
        if not cidrs:
            return []
        match.append(f"ip {field} {_set(cidrs)}")
    if a.excepts:
        match.append(f"ip {field} != {_set(cidr_set(a.excepts))}")
    if a.ports is None:
        return [" ".join([*match, "return"])]
    by_proto: dict[str, list[tuple[int, int]] | None] = {}
    for p in a.ports:
        proto = p.protocol.lower()
        if proto in by_proto and by_proto[proto] is None:
            continue  # already every port of the protocol
        if not p.ranges:
            by_proto[proto] = None
            continue
        by_proto.setdefault(proto, [])
        by_proto[proto] = [*(by_proto[proto] or []), *p.ranges]
    rules = []
    for proto in sorted(by_proto):
        ranges = by_proto[proto]
        l4 = [f"meta l4proto {proto}"]
        if ranges is not None:
            l4.append(f"th dport {_set(port_set(ranges))}")
        rules.append(" ".join([*match, *l4, "return"]))
    return rules


def render(layout: Layout, rules: Mapping[str, Isolation]) -> str:
    """The whole table as an ``nft -f`` script (replaces the previous one atomically)."""
    t, ifs = layout.table, f'"{layout.pod_ifaces}"'
    ips = sorted(rules, key=lambda ip: int(ipaddress.ip_address(ip)))
    egress = [ip for ip in ips if rules[ip].egress is not None]
    ingress = [ip for ip in ips if rules[ip].ingress is not None]
    out = [f"table inet {t}", f"delete table inet {t}", f"table inet {t} {{"]

    police = [
        "ct state established,related accept",
        "ct state invalid drop",
        "meta nfproto ipv6 drop",
    ]
    if egress:
        items = ", ".join(f"{ip} : jump {chain_name('eg', ip)}" for ip in egress)
        police.append(f"ip saddr vmap {{ {items} }}")
    if ingress:
        items = ", ".join(f"{ip} : jump {chain_name('in', ip)}" for ip in ingress)
        police.append(f"ip daddr vmap {{ {items} }}")
    police.append("accept")
    out += _chain("police", police)

    for ip in egress:
        body = [r for a in rules[ip].egress or () for r in allow_rules(a, "daddr")]
        out += _chain(chain_name("eg", ip), [*body, "counter drop"])
    for ip in ingress:
        body = [r for a in rules[ip].ingress or () for r in allow_rules(a, "saddr")]
        out += _chain(chain_name("in", ip), [*body, "counter drop"])

    out += _chain(
        "forward",
        [f"iifname {ifs} jump police", f"oifname {ifs} jump police"],
        "type filter hook forward priority filter; policy accept;",
    )
    out += _chain(
        "input",
        [f"iifname {ifs} jump police"],
        "type filter hook input priority filter; policy accept;",
    )
    output = []
    if layout.node_allowed:
        output.append(f"oifname {ifs} meta nfproto ipv4 accept")
    elif layout.probe_ip:
        output.append(f"oifname {ifs} ip saddr {layout.probe_ip} accept")
    output.append(f"oifname {ifs} jump police")
    out += _chain("output", output, "type filter hook output priority filter; policy accept;")

    if layout.dns is not None:
        d = layout.dns
        nat = [
            f"ip daddr {d.service_ip} {proto} dport {d.port} "
            f"dnat ip to {d.target_ip}:{d.target_port}"
            for proto in ("udp", "tcp")
        ]
        out += _chain("dns_pods", nat, "type nat hook prerouting priority -100; policy accept;")
        out += _chain("dns_host", nat, "type nat hook output priority -100; policy accept;")
    out.append("}")
    return "\n".join(out) + "\n"


def deny_all(layout: Layout) -> str:
    """A table that drops everything on the pods' interfaces (when a rule set fails)."""
    t, ifs = layout.table, f'"{layout.pod_ifaces}"'
    out = [f"table inet {t}", f"delete table inet {t}", f"table inet {t} {{"]
    for hook, direction in (("forward", "iifname"), ("input", "iifname"), ("output", "oifname")):
        rules = [f"{direction} {ifs} drop"]
        if hook == "forward":
            rules.append(f"oifname {ifs} drop")
        out += _chain(hook, rules, f"type filter hook {hook} priority filter; policy accept;")
    out.append("}")
    return "\n".join(out) + "\n"


def _chain(name: str, rules: list[str], head: str | None = None) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if head:
        lines.append(f"\t\t{head}")
    lines += [f"\t\t{r}" for r in rules]
    lines.append("\t}")
    return lines
