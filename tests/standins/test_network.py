"""The netns pod network: NetworkPolicy semantics (pure), and enforced on real traffic.

The first half needs nothing: policy.py's translation is checked through its oracle
(``allowed``), nft.py's rendering and dns.py's answers as text/bytes. The second half
runs ``KubeStandIn(network="netns")`` (root, ``ip netns``, nftables) with pods serving
HTTP and clients connecting from inside other pods' network namespaces. Where the
machine cannot enforce policies those tests are skipped with the probe's message, and
fail with it under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from devstack.kube.network import dns, netns, nft
from devstack.kube.network.policy import (
    Allow,
    ContainerPort,
    Isolation,
    Ports,
    Workload,
    allowed,
    isolation,
    workload_from_pod,
)
from devstack.kube.server import KubeStandIn
from devstack.kube.store import NotFound

PY = sys.executable


def netpol(name: str, ns: str = "default", **spec: object) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def sel(**labels: str) -> dict:
    return {"matchLabels": labels}


# -- pure: the translation ---------------------------------------------------------------
A = Workload("default", "a", "10.0.0.16", {"app": "a"})
B = Workload(
    "default",
    "b",
    "10.0.0.17",
    {"app": "b", "tier": "db"},
    (ContainerPort("http", 8080), ContainerPort("dns", 5353, "UDP")),
)
C = Workload("team-a", "c", "10.0.0.18", {"app": "c", "role": "client"})
D = Workload("team-b", "d", "10.0.0.19", {"app": "d", "role": "client"})
E = Workload("team-a", "e", "10.0.0.20", {"app": "e"}, (ContainerPort("http", 9090),))
ALL = [A, B, C, D, E]
NAMESPACES = {"default": {}, "team-a": {"team": "a"}, "team-b": {"team": "b"}}
NODE = "10.0.0.1"


def ok(pols: list[dict], src: str, dst: str, port: int = 8080, proto: str = "TCP") -> bool:
    return allowed(isolation(ALL, NAMESPACES, pols), src, dst, proto, port)


def test_no_policy_allows_everything() -> None:
    assert isolation(ALL, NAMESPACES, []) == {}
    assert ok([], A.ip, B.ip) and ok([], NODE, B.ip) and ok([], B.ip, "192.0.2.9", 443)


def test_default_deny_ingress_isolates_selected_pods_only() -> None:
    deny = [netpol("deny", podSelector={}, policyTypes=["Ingress"])]
    assert not ok(deny, C.ip, A.ip) and not ok(deny, A.ip, B.ip) and not ok(deny, NODE, A.ip)
    assert ok(deny, A.ip, C.ip)  # team-a is not selected by a policy of "default"
    assert ok(deny, A.ip, "192.0.2.9", 443)  # egress is not isolated
    rules = isolation(ALL, NAMESPACES, deny)
    assert rules[A.ip] == Isolation(ingress=(), egress=None)


def test_deny_egress_and_policy_types_defaulting() -> None:
    deny_out = [netpol("deny-out", podSelector=sel(app="a"), policyTypes=["Egress"])]
    assert not ok(deny_out, A.ip, B.ip) and not ok(deny_out, A.ip, NODE)
    assert ok(deny_out, B.ip, A.ip)  # ingress to A is not isolated
    # without policyTypes: Ingress always, Egress when there are egress rules
    implied = [
        netpol("p", podSelector=sel(app="a"), egress=[{"to": [{"podSelector": sel(app="b")}]}])
    ]
    assert ok(implied, A.ip, B.ip) and not ok(implied, A.ip, C.ip) and not ok(implied, B.ip, A.ip)
    ingress_only = [netpol("p", podSelector=sel(app="a"), egress=[])]
    assert ok(ingress_only, A.ip, C.ip) and not ok(ingress_only, B.ip, A.ip)


def test_empty_rule_allows_all_and_empty_list_allows_none() -> None:
    everything = [netpol("all", podSelector=sel(app="b"), ingress=[{}])]
    assert ok(everything, NODE, B.ip, 1) and ok(everything, D.ip, B.ip, 53, "UDP")
    nothing = [netpol("none", podSelector=sel(app="b"), ingress=[])]
    assert not ok(nothing, A.ip, B.ip)


def test_pod_selector_means_the_policy_namespace() -> None:
    pol = [
        netpol(
            "p", podSelector=sel(app="b"), ingress=[{"from": [{"podSelector": sel(role="client")}]}]
        )
    ]
    assert not ok(pol, C.ip, B.ip)  # role=client, but in team-a
    same_ns = Workload("default", "f", "10.0.0.21", {"role": "client"})
    rules = isolation([*ALL, same_ns], NAMESPACES, pol)
    assert allowed(rules, same_ns.ip, B.ip, "TCP", 8080)


def test_namespace_selector_and_the_name_label() -> None:
    pol = [
        netpol(
            "p",
            podSelector=sel(app="b"),
            ingress=[{"from": [{"namespaceSelector": sel(team="a")}]}],
        )
    ]
    assert ok(pol, C.ip, B.ip) and ok(pol, E.ip, B.ip) and not ok(pol, D.ip, B.ip)
    assert not ok(pol, A.ip, B.ip)
    by_name = [
        netpol(
            "p",
            podSelector=sel(app="b"),
            ingress=[
                {"from": [{"namespaceSelector": sel(**{"kubernetes.io/metadata.name": "team-b"})}]}
            ],
        )
    ]
    # namespaces without that label in the input get it (the API server sets it on all)
    assert ok(by_name, D.ip, B.ip) and not ok(by_name, C.ip, B.ip)
    any_ns = [
        netpol("p", podSelector=sel(app="b"), ingress=[{"from": [{"namespaceSelector": {}}]}])
    ]
    assert ok(any_ns, D.ip, B.ip) and not ok(any_ns, NODE, B.ip)


def test_combined_peer_is_and_separate_peers_are_or() -> None:
    both = {"namespaceSelector": sel(team="a"), "podSelector": sel(role="client")}
    pol = [netpol("p", podSelector=sel(app="b"), ingress=[{"from": [both]}])]
    assert ok(pol, C.ip, B.ip)
    assert not ok(pol, E.ip, B.ip)  # team-a but not a client
    assert not ok(pol, D.ip, B.ip)  # a client but not in team-a
    either = [
        netpol(
            "p",
            podSelector=sel(app="b"),
            ingress=[
                {
                    "from": [
                        {"namespaceSelector": sel(team="a")},
                        {"podSelector": sel(role="client")},
                    ]
                }
            ],
        )
    ]
    assert ok(either, C.ip, B.ip) and ok(either, E.ip, B.ip) and not ok(either, D.ip, B.ip)


def test_ip_block_with_except() -> None:
    block = {"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.16/30", "10.0.0.1/32"]}}
    pol = [netpol("p", podSelector=sel(app="b"), ingress=[{"from": [block]}])]
    assert not ok(pol, A.ip, B.ip)  # .16 excepted
    assert not ok(pol, NODE, B.ip)
    assert ok(pol, E.ip, B.ip) and ok(pol, "10.0.0.200", B.ip)  # ipBlocks cover pod IPs too
    assert not ok(pol, "10.0.1.5", B.ip)
    out = [
        netpol(
            "p",
            podSelector=sel(app="a"),
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{NODE}/32"]}}]}],
        )
    ]
    assert ok(out, A.ip, "192.0.2.9", 443) and ok(out, A.ip, B.ip) and not ok(out, A.ip, NODE, 443)
    v6 = [
        netpol("p", podSelector=sel(app="b"), ingress=[{"from": [{"ipBlock": {"cidr": "::/0"}}]}])
    ]
    assert not ok(v6, A.ip, B.ip)  # an IPv6 block never matches IPv4 traffic


def test_ports_protocols_and_end_port() -> None:
    rule = {
        "ports": [
            {"port": 8080},
            {"protocol": "UDP", "port": 7000, "endPort": 7010},
            {"protocol": "SCTP"},
        ]
    }
    pol = [netpol("p", podSelector=sel(app="b"), ingress=[rule])]
    assert ok(pol, A.ip, B.ip, 8080) and not ok(pol, A.ip, B.ip, 8081)
    assert not ok(pol, A.ip, B.ip, 8080, "UDP")  # TCP is the default protocol
    assert ok(pol, A.ip, B.ip, 7000, "UDP") and ok(pol, A.ip, B.ip, 7010, "UDP")
    assert not ok(pol, A.ip, B.ip, 7011, "UDP") and not ok(pol, A.ip, B.ip, 7005)
    assert ok(pol, A.ip, B.ip, 1, "SCTP")  # a protocol without a port: all its ports


def test_named_ports_resolve_on_the_destination() -> None:
    ingress = [netpol("p", podSelector={}, ingress=[{"ports": [{"port": "http"}]}])]
    assert ok(ingress, A.ip, B.ip, 8080) and not ok(ingress, A.ip, B.ip, 9090)
    assert not ok(ingress, A.ip, B.ip, 5353, "UDP")
    # A has no port named http: nothing is allowed (never "all ports")
    assert (
        not ok(ingress, B.ip, A.ip, 8080)
        and isolation(ALL, NAMESPACES, ingress)[A.ip].ingress == ()
    )
    udp = [
        netpol(
            "p", podSelector=sel(app="b"), ingress=[{"ports": [{"port": "dns", "protocol": "UDP"}]}]
        )
    ]
    assert ok(udp, A.ip, B.ip, 5353, "UDP") and not ok(udp, A.ip, B.ip, 5353, "TCP")
    egress = [
        netpol(
            "p",
            podSelector=sel(app="a"),
            policyTypes=["Egress"],
            egress=[{"ports": [{"port": "http"}]}],
        )
    ]
    assert ok(egress, A.ip, B.ip, 8080) and ok(egress, A.ip, E.ip, 9090)  # per destination
    assert not ok(egress, A.ip, B.ip, 9090) and not ok(egress, A.ip, E.ip, 8080)
    assert not ok(egress, A.ip, "192.0.2.9", 8080)  # not a workload: no named ports
    mixed = [
        netpol(
            "p",
            podSelector=sel(app="a"),
            policyTypes=["Egress"],
            egress=[
                {
                    "to": [{"namespaceSelector": sel(team="a")}],
                    "ports": [{"port": "http"}, {"port": 22}],
                }
            ],
        )
    ]
    assert (
        ok(mixed, A.ip, E.ip, 9090)
        and ok(mixed, A.ip, C.ip, 22)
        and not ok(mixed, A.ip, B.ip, 8080)
    )


def test_policies_add_up() -> None:
    one = netpol(
        "one",
        podSelector=sel(app="b"),
        ingress=[{"from": [{"podSelector": sel(app="a")}], "ports": [{"port": 8080}]}],
    )
    two = netpol(
        "two",
        podSelector=sel(tier="db"),
        ingress=[{"from": [{"namespaceSelector": sel(team="b")}]}],
    )
    assert ok([one, two], A.ip, B.ip) and ok([one, two], D.ip, B.ip, 1)
    assert not ok([one, two], A.ip, B.ip, 1) and not ok([one, two], C.ip, B.ip)
    # a default deny in the same namespace takes nothing away from the others...
    deny_all = netpol("deny", podSelector={}, policyTypes=["Ingress", "Egress"])
    assert ok([one, two, deny_all], D.ip, B.ip, 1)
    # ...but closes the egress of default's pods: A may no longer reach B, nor C
    assert not ok([one, two, deny_all], A.ip, B.ip) and not ok([one, two, deny_all], A.ip, C.ip)
    rules = isolation(ALL, NAMESPACES, [one, two, deny_all])
    assert rules[A.ip].egress == () and rules[B.ip].egress == ()


def test_workload_from_pod_and_unparseable_selectors() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n", "labels": {"x": "y"}},
        "spec": {
            "containers": [{"ports": [{"name": "web", "containerPort": 80}, {"containerPort": 81}]}]
        },
    }
    w = workload_from_pod(pod, "10.0.0.5")
    assert (w.namespace, w.name, w.ip, dict(w.labels)) == ("n", "p", "10.0.0.5", {"x": "y"})
    assert w.ports == (ContainerPort("web", 80, "TCP"),)
    bad = {"matchExpressions": [{"key": "x", "operator": "Bogus"}]}
    assert isolation([w], {}, [netpol("p", "n", podSelector=bad)]) == {}  # selects nobody


# -- pure: rendering ---------------------------------------------------------------------
def test_render_collapses_sets_and_orders_chains() -> None:
    rules = {
        "10.0.0.17": Isolation(
            ingress=(
                Allow(("10.0.0.16/32", "10.0.0.18/32", "10.0.0.0/24")),
                Allow(
                    ("10.1.0.0/16",),
                    ("10.1.2.0/24",),
                    (Ports("TCP", ((80, 80), (81, 90), (100, 100))), Ports("UDP")),
                ),
                Allow(None, (), (Ports("TCP", ((1, 2),)), Ports("TCP"))),
            ),
            egress=(),
        )
    }
    layout = nft.Layout("vhtest", "vhtestp*", "10.0.0.2", dns=nft.DnsNat("10.0.0.10", "10.0.0.16"))
    text = nft.render(layout, rules)
    assert text.startswith("table inet vhtest\ndelete table inet vhtest\ntable inet vhtest {")
    assert "ip saddr 10.0.0.0/24 return" in text  # the /32s fold into the /24
    block = "ip saddr 10.1.0.0/16 ip saddr != 10.1.2.0/24"
    assert f"{block} meta l4proto tcp th dport {{ 80-90, 100 }} return" in text
    assert f"{block} meta l4proto udp return" in text
    assert "\t\tmeta l4proto tcp return" in text  # every TCP port wins over a range
    assert "ip daddr vmap { 10.0.0.17 : jump in_10_0_0_17 }" in text
    assert "ip saddr vmap { 10.0.0.17 : jump eg_10_0_0_17 }" in text
    assert "chain eg_10_0_0_17 {\n\t\tcounter drop\n\t}" in text
    assert 'oifname "vhtestp*" ip saddr 10.0.0.2 accept' in text
    assert "ip daddr 10.0.0.10 udp dport 53 dnat ip to 10.0.0.16:5353" in text
    assert "vmap" not in nft.render(layout, {})
    assert 'iifname "vhtestp*" drop' in nft.deny_all(layout)


def test_pick_subnet_avoids_used_networks() -> None:
    used = netns.parse_used(
        "default via 192.0.2.1 dev eth0\nlocal 10.9.0.1 dev lo table local\n10.0.0.0/9 dev x\n",
        "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n",
    )
    assert used == ["10.9.0.1", "10.0.0.0/9", "192.0.2.2/24"]
    rng = random.Random(1)
    for _ in range(50):
        net = netns.pick_subnet(used, rng)
        assert (
            net.prefixlen == 24
            and str(net).startswith("10.")
            and net.network_address.packed[1] >= 128
        )
    with pytest.raises(RuntimeError, match="no free"):
        netns.pick_subnet(["10.0.0.0/8"], rng)
    lines = (
        "7: vhaaaaaa    inet 10.5.6.1/24 scope global vhaaaaaa\n"
        "7: vhaaaaaa    inet 10.5.6.2/32 scope global vhaaaaaa\n"
        "9: vhbbbbbb    inet 10.5.6.1/24 scope global vhbbbbbb\n"
        "2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n"
    )
    found = netns.addresses_in(lines, ipaddress.IPv4Network("10.5.6.0/24"))
    assert found == [("vhaaaaaa", "10.5.6.1"), ("vhaaaaaa", "10.5.6.2"), ("vhbbbbbb", "10.5.6.1")]
    assert netns.Names("ab12cd").host_if(36**6 - 1) == "vhab12cdpzzzzzz"  # fits IFNAMSIZ
    for bad in ("Bad-Id", "abc", "abcdefg"):
        with pytest.raises(ValueError):
            netns.Names(bad)


# -- pure: DNS ---------------------------------------------------------------------------
SERVICES = [
    {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "b"}}},
    {"metadata": {"name": "ext", "namespace": "default"}, "spec": {}},
]
ENDPOINTS = [
    dns.Endpoint("default", {"app": "b"}, "10.0.0.17"),
    dns.Endpoint("default", {"app": "b", "x": "1"}, "10.0.0.9"),
    dns.Endpoint("team-a", {"app": "b"}, "10.0.0.30"),
]


def look(name: str) -> list[str] | None:
    return dns.lookup(
        name,
        services=SERVICES,
        endpoints=ENDPOINTS,
        hosts={"s3.devstack.local": "10.0.0.1"},
        dns_service_ip="10.0.0.10",
    )


def test_dns_answers_like_a_headless_service() -> None:
    assert look("web.default.svc.cluster.local.") == ["10.0.0.9", "10.0.0.17"]
    assert look("WEB.default.svc.cluster.local") == ["10.0.0.9", "10.0.0.17"]
    assert look("ext.default.svc.cluster.local") == []  # exists, no selector: no addresses
    assert look("web.team-a.svc.cluster.local") is None
    assert look("dns-default.openshift-dns.svc.cluster.local") == ["10.0.0.10"]
    assert look("10-0-0-17.default.pod.cluster.local") == ["10.0.0.17"]
    assert look("s3.devstack.local") == ["10.0.0.1"]
    for name in (
        "web",
        "web.default",
        "example.org",
        "x.y.z.svc.cluster.local",
        "bad.ns.pod.cluster.local",
    ):
        assert look(name) is None


def test_dns_wire_format() -> None:
    rcode, ips = dns.parse_a_records(dns.answer(dns.query("web.default.svc.cluster.local"), look))
    assert (rcode, ips) == (dns.NOERROR, ["10.0.0.9", "10.0.0.17"])
    assert dns.parse_a_records(dns.answer(dns.query("nope.default.svc.cluster.local"), look)) == (
        dns.NXDOMAIN,
        [],
    )
    aaaa = dns.answer(dns.query("web.default.svc.cluster.local", qtype=28), look)
    assert dns.parse_a_records(aaaa) == (dns.NOERROR, [])  # the name exists: empty NOERROR
    reply = dns.answer(dns.query("web.default.svc.cluster.local", qid=0xBEEF), look)
    assert reply[:2] == b"\xbe\xef" and reply[2] & 0x84 == 0x84  # QR and AA
    assert (
        dns.answer(b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05ab", look)[3] & 0xF
        == dns.FORMERR
    )
    assert dns.answer(b"xx", look) == b""
    many = lambda name: [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(40)]  # noqa: E731
    truncated = dns.answer(dns.query("big.default.svc.cluster.local"), many)
    assert truncated[2] & 0x02 and dns.parse_a_records(truncated) == (dns.NOERROR, [])
    assert len(dns.parse_a_records(dns.answer(dns.query("big"), many, limit=65535))[1]) == 40


def test_resolv_conf_as_the_kubelet_writes_it() -> None:
    pod = {"metadata": {"namespace": "team-a"}, "spec": {}}
    assert dns.resolv_conf(pod, "10.0.0.10") == (
        "search team-a.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.0.0.10\noptions ndots:5\n"
    )
    assert dns.resolv_conf({"spec": {"dnsPolicy": "Default"}}, "10.0.0.10") is None
    custom = {
        "spec": {
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "options": [{"name": "timeout", "value": "1"}, {"name": "rotate"}],
            },
        }
    }
    assert dns.resolv_conf(custom, "10.0.0.10") == "nameserver 1.1.1.1\noptions timeout:1 rotate\n"


# -- real traffic ------------------------------------------------------------------------
def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture
async def kube(tmp_path) -> AsyncIterator[KubeStandIn]:
    """A stand-in with network="netns" (skipped where it cannot enforce, failing on CI)."""
    s = KubeStandIn(root=tmp_path / "kube", network="netns")
    try:
        await s.start()
    except RuntimeError as e:
        if "cannot enforce" not in str(e) or _on_ci():
            raise
        pytest.skip(str(e))
    try:
        yield s
    finally:
        await s.stop()


def server_pod(
    name: str, port: int = 8080, ns: str = "default", probe: bool = False, **labels: str
) -> dict:
    container: dict = {
        "name": "web",
        "image": "python:3.11",
        "command": [PY, "-m", "http.server", str(port)],
        "args": ["--bind", "0.0.0.0", "--directory", "/"],
        "ports": [{"name": "http", "containerPort": port}],
    }
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }


def script_pod(
    name: str, code: str, args: list[str], spec: dict | None = None, **labels: str
) -> dict:
    container = {"name": "main", "image": "python:3.11", "command": [PY, "-c", code], "args": args}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [container], **(spec or {})},
    }


def phase(kube: KubeStandIn, name: str) -> str | None:
    return kube.store.get("v1/pods", "default", name)["status"].get("phase")


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}]},
}


async def until(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(NotFound):
            value = fn()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def connects(prefix: list[str], ip: str, port: int, timeout: float = 0.7) -> bool:
    """Does a TCP connection from inside ``prefix``'s netns (or the host) succeed?"""
    code = (
        "import socket,sys\ns=socket.socket();s.settimeout(float(sys.argv[3]))\n"
        "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('ok')\nexcept OSError as e:print(e)"
    )
    argv = [*prefix, PY, "-I", "-S", "-c", code, ip, str(port), str(timeout)]
    pipe = asyncio.subprocess.PIPE
    p = await asyncio.create_subprocess_exec(*argv, stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(p.communicate(), 15)
    assert p.returncode == 0, err
    return out.decode().strip() == "ok"


async def serving(kube: KubeStandIn, name: str, ns: str = "default", port: int = 8080) -> dict:
    """Wait for the pod's server to accept (from the host, before any policy)."""
    await until(lambda: kube.store.get("v1/pods", ns, name)["status"].get("podIP"))
    pod = kube.store.get("v1/pods", ns, name)
    ip = pod["status"]["podIP"]
    deadline = time.monotonic() + 20
    while not await connects([], ip, port, timeout=0.3):
        assert time.monotonic() < deadline, f"{ns}/{name} never served on {ip}:{port}"
        await asyncio.sleep(0.1)
    return pod


def prefix(kube: KubeStandIn, pod: dict) -> list[str]:
    return kube.network.exec_prefix(pod["metadata"]["uid"])


def ip(pod: dict) -> str:
    return pod["status"]["podIP"]


@pytest.mark.timeout(90)
async def test_pods_and_host_reach_a_pod_until_a_policy_denies(kube: KubeStandIn) -> None:
    net = kube.network
    kube.create_object(server_pod("a", app="a"))
    kube.create_object(server_pod("b", probe=True, app="b"))
    a, b = await asyncio.gather(serving(kube, "a"), serving(kube, "b"))
    assert ip(a) != ip(b)
    assert {ipaddress.ip_address(ip(a)), ipaddress.ip_address(ip(b))} <= set(net.subnet)
    # bound to 0.0.0.0 inside its own netns (no rewrite), the pod is reachable at its IP
    assert await connects([], ip(b), 8080) and await connects(prefix(kube, a), ip(b), 8080)

    kube.create_object(netpol("deny-b", podSelector=sel(app="b"), policyTypes=["Ingress"]))
    await net.sync()
    res = await asyncio.gather(connects(prefix(kube, a), ip(b), 8080), connects([], ip(b), 8080))
    assert res == [False, False]
    assert await connects(prefix(kube, b), ip(a), 8080)  # b's egress is not isolated
    # the kubelet's probes still pass (they come from the probe address): no Unhealthy event
    rv = kube.store.resource_version
    await asyncio.sleep(1.5)
    unhealthy = [
        e
        for e in kube.store.list("v1/events")[0]
        if e["reason"] == "Unhealthy" and int(e["metadata"]["resourceVersion"]) > rv
    ]
    assert unhealthy == []
    assert kube.store.get("v1/pods", "default", "b")["status"]["containerStatuses"][0]["ready"]

    kube.store.delete("networking.k8s.io/v1/networkpolicies", "default", "deny-b")
    await until(lambda: net.applied is not None and "in_" not in net.applied, 5)  # the watch
    assert await connects(prefix(kube, a), ip(b), 8080)


@pytest.mark.timeout(90)
async def test_only_labelled_pods_get_in_and_the_host_needs_an_ip_block(kube: KubeStandIn) -> None:
    net = kube.network
    kube.create_object(server_pod("web", app="web"))
    kube.create_object(server_pod("proxy", port=8081, component="proxy"))
    kube.create_object(server_pod("other", port=8082, app="other"))
    web, proxy, other = await asyncio.gather(
        serving(kube, "web"), serving(kube, "proxy", port=8081), serving(kube, "other", port=8082)
    )
    only_proxy = {"from": [{"podSelector": sel(component="proxy")}], "ports": [{"port": "http"}]}
    kube.create_object(netpol("web", podSelector=sel(app="web"), ingress=[only_proxy]))
    await net.sync()
    res = await asyncio.gather(
        connects(prefix(kube, proxy), ip(web), 8080),
        connects(prefix(kube, other), ip(web), 8080),
        connects([], ip(web), 8080),
    )
    assert res == [True, False, False]

    # the host (hub, proxy not yet in their own netns) needs an ipBlock for the node
    node = {"from": [{"ipBlock": {"cidr": f"{net.node_ip}/32"}}]}
    kube.create_object(netpol("node", podSelector=sel(app="web"), ingress=[node]))
    # relabelling a pod changes what it may reach (the rules follow the store)
    kube.store.mutate(
        "v1/pods", "default", "other", lambda p: p["metadata"]["labels"].update(component="proxy")
    )
    await until(lambda: net.applied == net.script(), 5)
    res = await asyncio.gather(
        connects([], ip(web), 8080), connects(prefix(kube, other), ip(web), 8080)
    )
    assert res == [True, True]


@pytest.mark.timeout(90)
async def test_namespace_selectors_across_namespaces_and_endpoints(kube: KubeStandIn) -> None:
    net = kube.network
    for ns, team in (("team-a", "a"), ("team-b", "b")):
        kube.create_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"team": team}},
            }
        )
    kube.create_object(server_pod("db", app="db"))
    db = await serving(kube, "db")
    # clients: host-side processes in endpoints, policed and selected like pods
    a_client = await net.add_endpoint("client", "team-a", {"role": "client"})
    a_other = await net.add_endpoint("other", "team-a", {"role": "other"})
    b_client = await net.add_endpoint("client", "team-b", {"role": "client"})
    peer = {"namespaceSelector": sel(team="a"), "podSelector": sel(role="client")}
    kube.create_object(netpol("db", podSelector=sel(app="db"), ingress=[{"from": [peer]}]))
    await net.sync()
    res = await asyncio.gather(
        *(connects(e.exec_prefix(), ip(db), 8080) for e in (a_client, a_other, b_client))
    )
    assert res == [True, False, False]

    # a namespace's labels change: its pods' rights follow
    kube.store.mutate(
        "v1/namespaces", "", "team-b", lambda o: o["metadata"]["labels"].update(team="a")
    )
    await until(lambda: net.applied == net.script(), 5)
    assert await connects(b_client.exec_prefix(), ip(db), 8080)

    netns_path = a_client.netns_path
    await net.remove_endpoint("client", "team-a")
    assert not await asyncio.to_thread(os.path.exists, netns_path)
    assert a_client.ip not in net.script()


@pytest.mark.timeout(90)
async def test_egress_to_an_ip_block_is_enforced_on_the_real_destination(kube: KubeStandIn) -> None:
    net = kube.network
    # an "S3 endpoint" on the host, at the node-facing address
    s3 = await asyncio.start_server(lambda r, w: w.close(), net.node_ip, 0)
    s3_port = s3.sockets[0].getsockname()[1]
    try:
        kube.create_object(server_pod("a", app="a"))
        kube.create_object(server_pod("b", app="b"))
        a, b = await asyncio.gather(serving(kube, "a"), serving(kube, "b"))
        assert await connects(prefix(kube, a), net.node_ip, s3_port)
        no_node = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{net.node_ip}/32"]}}]}
        kube.create_object(
            netpol("out", podSelector=sel(app="a"), policyTypes=["Egress"], egress=[no_node])
        )
        await net.sync()
        res = await asyncio.gather(
            connects(prefix(kube, a), net.node_ip, s3_port),
            connects(prefix(kube, a), ip(b), 8080),
            connects(prefix(kube, b), net.node_ip, s3_port),
        )
        assert res == [False, True, True]
        # replies of allowed connections pass although a's ingress is closed now
        kube.create_object(netpol("in", podSelector=sel(app="a"), policyTypes=["Ingress"]))
        await net.sync()
        assert await connects(prefix(kube, a), ip(b), 8080)
    finally:
        s3.close()


DNS_PODS = {
    "namespaceSelector": sel(**{"kubernetes.io/metadata.name": "openshift-dns"}),
    "podSelector": sel(**{"dns.operator.openshift.io/daemonset-dns": "default"}),
}
RESOLVE = """import socket, sys
print(open("/etc/resolv.conf").read().replace(chr(10), "|"))
for name in sys.argv[1:]:
    try:
        print(name, socket.gethostbyname(name))
    except OSError as e:
        print(name, "ERROR", e)
"""


@pytest.mark.timeout(90)
async def test_dns_needs_egress_to_5353_not_53(kube: KubeStandIn) -> None:
    net = kube.network
    net.hosts["s3.devstack.local"] = net.node_ip
    kube.create_object(server_pod("web", app="web"))
    kube.create_object(SERVICE)
    web = await serving(kube, "web")
    await until(lambda: net.resolve("web.default.svc.cluster.local"))

    for name, port in (("dns-5353", 5353), ("dns-53", 53)):
        ports = [{"protocol": "UDP", "port": port}, {"protocol": "TCP", "port": port}]
        egress = [{"to": [DNS_PODS], "ports": ports}]
        kube.create_object(
            netpol(name, podSelector=sel(client=name), policyTypes=["Egress"], egress=egress)
        )
    await net.sync()
    # short resolver timeouts keep the failing case quick
    opts = [{"name": "timeout", "value": "1"}, {"name": "attempts", "value": "1"}]
    fast = {"dnsConfig": {"options": opts}}
    good_names = ["web", "web.default.svc.cluster.local.", "s3.devstack.local"]
    kube.create_object(script_pod("good", RESOLVE, good_names, spec=fast, client="dns-5353"))
    bad_names = ["web.default.svc.cluster.local.", "s3.devstack.local."]
    kube.create_object(script_pod("bad", RESOLVE, bad_names, spec=fast, client="dns-53"))
    for name in ("good", "bad"):
        await until(lambda n=name: phase(kube, n) in ("Succeeded", "Failed"), 30)
    good = kube.kubelet.read_log("default", "good").decode().splitlines()
    bad = kube.kubelet.read_log("default", "bad").decode().splitlines()
    assert good[0] == (
        f"search default.svc.cluster.local svc.cluster.local cluster.local|nameserver {net.dns_ip}|"
        "options ndots:5 timeout:1 attempts:1|"
    )
    assert good[1:] == [
        f"web {ip(web)}",
        f"web.default.svc.cluster.local. {ip(web)}",
        f"s3.devstack.local {net.node_ip}",
    ]
    assert len(bad) == 3 and all(" ERROR " in line for line in bad[1:]), bad


@pytest.mark.timeout(60)
async def test_dns_answers_over_udp_and_tcp_through_the_service_address(kube: KubeStandIn) -> None:
    net = kube.network
    kube.create_object(server_pod("web", app="web"))
    kube.create_object(SERVICE)
    web = await serving(kube, "web")
    await until(lambda: net.resolve("web.default.svc.cluster.local"))
    loop = asyncio.get_running_loop()

    def udp() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(dns.query("web.default.svc.cluster.local"), (net.dns_ip, 53))
            return s.recv(512)

    def tcp() -> bytes:
        q = dns.query("nope.default.svc.cluster.local")
        with socket.create_connection((net.dns_ip, 53), timeout=2) as s:
            s.sendall(len(q).to_bytes(2, "big") + q)
            size = int.from_bytes(s.recv(2), "big")
            return s.recv(size)

    # from the host too (the output NAT chain): the node's own resolver view
    assert dns.parse_a_records(await loop.run_in_executor(None, udp)) == (dns.NOERROR, [ip(web)])
    assert dns.parse_a_records(await loop.run_in_executor(None, tcp))[0] == dns.NXDOMAIN


@pytest.mark.timeout(60)
async def test_stop_leaves_nothing_and_a_crashed_instance_is_reaped(tmp_path) -> None:
    def ours(ident: str) -> list[str]:
        found = (
            [n for n in os.listdir("/run/netns") if n.startswith(f"vh{ident}")]
            if os.path.isdir("/run/netns")
            else []
        )
        links = subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True, timeout=10
        ).stdout
        tables = subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, timeout=10
        ).stdout
        found += [line for line in links.splitlines() if f" vh{ident}" in line]
        found += [line for line in tables.splitlines() if line.endswith(f" vh{ident}")]
        return found

    s = KubeStandIn(root=tmp_path / "kube", network="netns")
    try:
        await s.start()
    except RuntimeError as e:
        if "cannot enforce" not in str(e) or _on_ci():
            raise
        pytest.skip(str(e))
    ident = s.network.names.id
    s.create_object(server_pod("a", app="a"))
    await serving(s, "a")
    assert ours(ident)
    await s.stop()
    assert ours(ident) == [] and not (netns.STATE_DIR / f"{ident}.json").exists()

    # a crash: the owner dies without stopping; the next instance removes the leftovers
    from devstack.kube.network import PodNetwork

    crashed = PodNetwork(s.store, dns=False)
    await crashed.start()
    ep = await crashed.add_endpoint("x", "default")
    orphan = await asyncio.create_subprocess_exec(*ep.exec_prefix(), "sleep", "60")
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    state = netns.STATE_DIR / f"{crashed.names.id}.json"
    state.write_text(state.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {dead.pid}'))
    assert ours(crashed.names.id)
    crashed._running = False  # as if it had died: its own stop must not clean up
    next_one = PodNetwork(s.store, dns=False)
    try:
        await next_one.start()
        assert ours(crashed.names.id) == [] and not state.exists()
        assert await asyncio.wait_for(orphan.wait(), 5) == -9  # what ran inside went too
    finally:
        await next_one.stop()
        await crashed.stop()
        if orphan.returncode is None:
            orphan.kill()
            await orphan.wait()
    assert ours(next_one.names.id) == []


async def test_refuses_to_start_when_it_cannot_enforce(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    s = KubeStandIn(root=tmp_path / "kube", network="netns")
    with pytest.raises(RuntimeError, match=r"cannot enforce NetworkPolicy.*missing: root"):
        await s.start()
    assert s.url is None  # nothing was started
    assert KubeStandIn(run_kubelet=False).network is None  # the default stays loopback
    with pytest.raises(ValueError, match="network must be"):
        KubeStandIn(network="bridge")
